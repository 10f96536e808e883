//! End-to-end tests: real podman, the real bcvk image, real QEMU (TCG here, ~90 s a boot).
//!
//! Boots are few and shared: one detached VM (`main`) started with most options serves many
//! checks through `podman exec NAME bcvk ssh`; one-shot runs cover command mode. Trials run in
//! the order listed (run with --test-threads=1); the store fingerprint is taken before the
//! first and compared by the last, and teardown removes every test container.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bcvk_integration::*;
use libtest_mimic::{Arguments, Failed, Trial};

pub type R = Result<(), Failed>;

#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

mod arm64;
mod bootc;
mod disk;
mod errors;
mod faults;
mod host_cli;
mod kubernetes;
mod main_vm;
mod persistent;
mod privileges;
mod stall;

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// The error line bcvk prints: one line, naming the problem and the fix.
fn error_line(r: &Run) -> Result<String, Failed> {
    let l = last_line(&r.stderr).to_string();
    check!(
        l.starts_with("bcvk: error: "),
        "no bcvk error line: {}",
        r.show()
    );
    Ok(l)
}

// ---------------------------------------------------------------- one-shot command

fn oneshot_command() -> R {
    let kver = image_kernel_version(&debian())?;
    let script = "uname -r; nproc; grep MemTotal /proc/meminfo; cat /proc/cmdline; \
                  echo to-stderr >&2; \
                  if timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/2222' 2>/dev/null; then echo net-reachable; else echo net-isolated; fi; \
                  exit 42";
    let r = bcvk_oneshot(
        &[],
        &[
            &debian(),
            "--net",
            "none",
            "--itype",
            "u1.small",
            "--log-cmdline",
            "--karg",
            "bcvk.test=oneshot",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    check!(
        r.code == 42,
        "want the command's exit code 42: {}",
        r.show()
    );
    let out: Vec<&str> = r.stdout.lines().collect();
    check!(
        out.first() == Some(&kver.as_str()),
        "uname -r should print the guest kernel {kver}: {}",
        r.show()
    );
    check!(
        out.get(1) == Some(&"1"),
        "nproc should be 1 for --itype u1.small: {}",
        r.show()
    );
    let mem_kb: u64 = out
        .get(2)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    check!(
        (1_800_000..=2_097_152).contains(&mem_kb),
        "MemTotal {mem_kb} kB for --itype u1.small (2G): {}",
        r.show()
    );
    check!(
        r.stdout.contains("bcvk.test=oneshot"),
        "karg missing from /proc/cmdline: {}",
        r.show()
    );
    check!(
        r.stdout.contains("net-isolated"),
        "--net none guest reached 10.0.2.2: {}",
        r.show()
    );
    check!(
        r.stderr.contains("to-stderr"),
        "guest stderr should reach stderr: {}",
        r.show()
    );
    check!(
        !r.stderr.contains("to-stderr\n") || !r.stdout.contains("to-stderr"),
        "stderr leaked into stdout"
    );
    check!(
        r.stderr.contains("qemu: ")
            && r.stderr.contains(" -kernel ")
            && r.stderr.contains("virtiofsd: "),
        "--log-cmdline should print both command lines: {}",
        r.show()
    );
    check!(
        !r.stdout.contains("Linux version"),
        "console output must not pollute stdout in command mode"
    );
    Ok(())
}

// ---------------------------------------------------------------- the shared detached VM

pub(crate) struct Notify {
    pub(crate) path: PathBuf,
    pub(crate) msgs: Arc<Mutex<Vec<(Instant, String)>>>,
}

pub(crate) fn notify_listener(dir: &Path) -> Notify {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    let msgs = Arc::new(Mutex::new(Vec::new()));
    let m = msgs.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            m.lock().unwrap().push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    });
    Notify { path, msgs }
}

fn debug_prepares_and_cleans_up() -> R {
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.insert(1, "-i".into());
    a.extend([bcvk_image(), debian(), "--debug".into()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = std::process::Command::new("podman")
        .args(&refs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ls /run/bcvk/root/usr/lib/modules; test -S /run/bcvk/vfs-rootfs.sock || echo no-socket; exit 3\n")
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(
        out.status.code() == Some(3),
        "the shell's exit code should be returned: {stdout}\n{stderr}"
    );
    check!(
        stdout.contains(&image_kernel_version(&debian())?),
        "root file system not prepared: {stdout}"
    );
    check!(
        stdout.contains("no-socket"),
        "--debug must not start virtiofsd/QEMU: {stdout}"
    );
    check!(
        stderr.contains("qemu: ") && stderr.contains("virtiofsd: "),
        "command lines not printed: {stderr}"
    );
    Ok(())
}

/// `--console` on a terminal: the console is interactive and Ctrl-a x quits QEMU.
fn console_interactive() -> R {
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.insert(1, "-it".into());
    a.extend([bcvk_image(), debian(), "--console".into()]);
    let mut term = Terminal::podman(&a)?;
    check!(
        term.wait_for("Linux version", Duration::from_secs(240)),
        "no console on the terminal: {}",
        tail(&term.seen, 20)
    );
    term.send(b"\x01x")?;
    let status = term.wait_exit(Duration::from_secs(60))?;
    check!(status.is_some(), "Ctrl-a x did not end the VM");
    check!(
        status.is_some_and(|st| st.code().is_some()),
        "ended by a signal: {status:?}"
    );
    Ok(())
}

/// The podman line of examples/github-actions, run verbatim with the test image.
fn github_actions_command_line() -> R {
    let argv: Vec<String> = examples::github_actions_command()
        .into_iter()
        .map(|a| {
            if a == examples::GITHUB_ACTIONS_TARGET {
                debian()
            } else {
                a
            }
        })
        .filter(|a| a != "--device" && a != "/dev/kvm" || Path::new("/dev/kvm").exists())
        .collect();
    check!(
        argv.first().map(String::as_str) == Some("podman"),
        "{argv:?}"
    );
    let mut args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    args.insert(1, "--label");
    args.insert(2, test_label());
    let r = podman(&args);
    check!(r.code == 0, "{}", r.show());
    check!(r.stdout.trim() == "running", "want 'running': {}", r.show());
    Ok(())
}

/// The same image under docker (Debian's docker.io engine, started by
/// integration/docker-engine.sh): nothing in the supervisor may depend on podman. Docker's
/// --privileged asks for every capability, which this CI machine's bounding set lacks, so the
/// documented minimal set is used.
fn docker_oneshot() -> R {
    let host = var("BCVK_DOCKER_HOST", "");
    let kver = image_kernel_version(&debian())?;
    let store = format!("{}:/run/host-storage:ro", host_store().display());
    let mut args = vec![
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--network",
        "none",
        "-v",
        &store,
    ];
    if Path::new("/dev/kvm").exists() {
        args.extend(["--device", "/dev/kvm"]);
    }
    let image = bcvk_image();
    let target = debian();
    args.extend([
        image.as_str(),
        target.as_str(),
        "--net",
        "none",
        "--",
        "sh",
        "-c",
        "uname -r; exit 3",
    ]);
    let t = Instant::now();
    let out = std::process::Command::new("docker")
        .args(&args)
        .env("DOCKER_HOST", &host)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(
        out.status.code() == Some(3),
        "want exit 3 after {:?}: {stdout}\n{}",
        t.elapsed(),
        tail(&stderr, 30)
    );
    check!(stdout.trim() == kver, "want {kver}: {stdout}");
    // Without CAP_SYS_ADMIN docker's seccomp profile refuses the user namespace bcvk needs:
    // one line naming the flag, exit 77, at once.
    let no_cap: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--cap-add" && *a != "SYS_ADMIN")
        .collect();
    let out = std::process::Command::new("docker")
        .args(&no_cap)
        .env("DOCKER_HOST", &host)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    check!(
        out.status.code() == Some(77)
            && last.starts_with("bcvk: error: ")
            && last.contains("--cap-add SYS_ADMIN"),
        "without CAP_SYS_ADMIN under docker: want exit 77 and one line naming --cap-add SYS_ADMIN, got {:?}: {}",
        out.status.code(),
        tail(&stderr, 10)
    );
    Ok(())
}

// ---------------------------------------------------------------- layers

fn layered_image_layers_and_whiteouts() -> R {
    let script = "test ! -e /usr/share/bcvk-test/delete-me && echo deleted-ok; \
                  ls /usr/share/bcvk-test/replace-me; id -u bcvktest >/dev/null && echo user-ok; \
                  cat /run/bcvk-layered-marker";
    // Also the smallest privilege set the README documents: CAP_SYS_ADMIN (overlay and tmpfs
    // mounts, virtiofsd's namespace sandbox) instead of --privileged, plus /dev/kvm if present.
    let store = format!("{}:/run/host-storage:ro", host_store().display());
    // --scratch: the throwaway layer on a volume; nothing of it may remain after the run.
    let scratch = tempfile::Builder::new()
        .prefix("bcvk-it-scratch-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let scratch_vol = format!("{}:/scratch", scratch.path().display());
    // --log-dir journal=: through the initramfs, journal-initrd.json has the initrd's part.
    let logs = tempfile::Builder::new()
        .prefix("bcvk-it-logs-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let logs_vol = format!("{}:/logs", logs.path().display());
    // --accel auto's runtime fallback: a /proc/cpuinfo showing vmx makes auto try KVM, which
    // cannot run the guest on machines like this project's (no nested virtualization), so the
    // boot must start over under TCG with a warning. Where KVM works, KVM simply runs it.
    let cpuinfo = scratch.path().join("cpuinfo");
    let real = std::fs::read_to_string("/proc/cpuinfo").map_err(|e| e.to_string())?;
    let faked: String = real
        .lines()
        .map(
            |l| match l.starts_with("flags") && !l.contains(" vmx") && !l.contains(" svm") {
                true => format!("{l} vmx\n"),
                false => format!("{l}\n"),
            },
        )
        .collect();
    std::fs::write(&cpuinfo, faked).map_err(|e| e.to_string())?;
    let cpuinfo_vol = format!("{}:/proc/cpuinfo:ro", cpuinfo.display());
    let mut args = vec![
        "run",
        "--rm",
        "--label",
        test_label(),
        "--cap-add",
        "SYS_ADMIN",
        "-v",
        &store,
        "-v",
        &scratch_vol,
        "-v",
        &logs_vol,
    ];
    let kvm = Path::new("/dev/kvm").exists();
    if kvm {
        args.extend(["--device", "/dev/kvm", "-v", &cpuinfo_vol]);
    }
    let image = bcvk_image();
    let target = layered();
    args.extend([
        image.as_str(),
        target.as_str(),
        // The debian kernel has virtiofs built in, so other boots skip the initramfs
        // (--initrd auto); this one goes through dracut's, as images with a modular
        // virtiofs (Fedora, CentOS) must.
        "--initrd",
        "yes",
        "--log-cmdline",
        "--scratch",
        "/scratch",
        "--log-dir",
        "journal=/logs",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let r = podman(&args);
    check!(r.code == 0, "{}", r.show());
    std::fs::remove_file(&cpuinfo).map_err(|e| e.to_string())?;
    let left = dir_entries(scratch.path())?;
    check!(
        left.is_empty(),
        "the throwaway layer was left in --scratch: {left:?}"
    );
    check!(
        r.stderr.contains(" -initrd "),
        "--initrd yes should pass the image's initramfs to QEMU: {}",
        tail(&r.stderr, 20)
    );
    initrd_journal(logs.path())?;
    // --ready-timeout's default follows the accelerator QEMU runs with, the fallback's too.
    for l in r.stderr.lines().filter(|l| l.contains("QEMU started")) {
        let want = if l.contains("accel=kvm") { 240 } else { 600 };
        check!(
            l.contains(&format!("ready_timeout_s={want}")),
            "want a {want} s ready timeout: {l}"
        );
    }
    if kvm && r.stderr.contains("falling back to TCG") {
        let fallback = r
            .stderr
            .lines()
            .find(|l| l.starts_with("qemu (TCG fallback): "))
            .unwrap_or_default();
        check!(
            r.stderr.contains("-accel kvm") && fallback.contains("tcg,thread=multi"),
            "the first QEMU should run KVM, the fallback TCG: {}",
            tail(&r.stderr, 30)
        );
        check!(
            r.stderr.contains("KVM cannot run this guest ("),
            "the warning should quote QEMU: {}",
            tail(&r.stderr, 30)
        );
    } else if kvm {
        // No fallback: KVM must really have run it.
        check!(
            r.stderr.contains("accel=kvm") && !r.stderr.contains("accel=tcg"),
            "auto with vmx shown should use KVM, or fall back with a warning: {}",
            tail(&r.stderr, 30)
        );
    }
    let want = "deleted-ok\nnew.txt\nuser-ok\nlayered-unit-ran\n";
    check!(r.stdout == want, "want {want:?}: {}", r.show());
    Ok(())
}

/// `--log-dir journal=DIR` of a boot through the initramfs: journal-initrd.json is the initrd's
/// journal (streamed from inside it by the unit bcvk puts before it), from the boot's first
/// message and without the real root's; no console. (journal.json is main::log_dir's: this
/// one-shot may power off before the real root's stream, started by its port's device unit,
/// has written anything.)
fn initrd_journal(logs: &Path) -> R {
    let text = std::fs::read_to_string(logs.join("journal-initrd.json")).unwrap_or_default();
    let initrd =
        main_vm::journal_objects(&text).map_err(|e| format!("journal-initrd.json: {e}"))?;
    let message = |e: &serde_json::Value| e["MESSAGE"].as_str().unwrap_or("").to_string();
    check!(
        initrd[0]["__SEQNUM"] == "1" && initrd.iter().all(|e| e["_RUNTIME_SCOPE"] == "initrd"),
        "journal-initrd.json does not start at the boot's first message, or holds more than the initrd's: {}",
        initrd[0]
    );
    check!(
        initrd.iter().any(|e| message(e).contains("initrd"))
            && !initrd
                .iter()
                .any(|e| message(e).contains("Reached target multi-user.target")),
        "journal-initrd.json is not the initrd's part: {} entries, last {:?}",
        initrd.len(),
        initrd.last().map(message)
    );
    check!(
        !logs.join("console.txt").exists(),
        "--log-dir journal= wrote the console too"
    );
    Ok(())
}

// ---------------------------------------------------------------- guest faults

fn kernel_panic_ends_the_run() -> R {
    let t = Instant::now();
    let r = bcvk_oneshot(
        &[],
        &[
            &debian(),
            "--karg",
            "rdinit=/nonexistent",
            "--karg",
            "init=/nonexistent",
            "--",
            "true",
        ],
    );
    check!(r.code == 70, "want exit 70: {}", r.show());
    let l = error_line(&r)?;
    check!(l.contains("panicked"), "{l}");
    check!(
        r.stderr.contains("Kernel panic"),
        "console tail missing: {}",
        r.show()
    );
    check!(
        t.elapsed() < Duration::from_secs(300),
        "took {:?}",
        t.elapsed()
    );
    Ok(())
}

fn readiness_timeout_when_sshd_is_masked() -> R {
    let r = bcvk_oneshot(
        &[],
        &[
            &debian(),
            "--karg",
            "systemd.mask=ssh.service",
            // Long enough for the guest's userspace (systemd runs ~6 s into a TCG boot here,
            // so that the hint must name sshd), not for a whole boot: it is waited out in full.
            "--ready-timeout",
            "75",
            "--",
            "true",
        ],
    );
    check!(r.code == 75, "want exit 75: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("not reachable over SSH within 75s") && l.contains("sshd"),
        "{l}"
    );
    Ok(())
}

// ---------------------------------------------------------------- global checks

static FINGERPRINT: OnceLock<Result<String, String>> = OnceLock::new();

/// What was left on the machine after the last test that was checked (keys from `leak_key`).
static BASELINE: Mutex<Option<BTreeSet<String>>> = Mutex::new(None);

/// Run a test, then hold it to account for what it left behind: containers, bcvk's QEMU and
/// virtiofsd processes, mounts that were not there before it started. A leftover fails that
/// test (not a later one) and is removed, so one leak is reported once, where it happened.
/// The main:: tests share a VM that outlives each of them; they are judged together, by
/// main::stops_gracefully, against what was there before the first of them.
fn attributed(name: &str, f: fn() -> R) -> R {
    let mut baseline = BASELINE.lock().unwrap_or_else(|e| e.into_inner());
    let before = baseline.get_or_insert_with(leak_keys).clone();
    // Each trial's own time, so the suite's ~30 min budget can be followed trial by trial.
    let t0 = Instant::now();
    let r = f();
    // On the trial's own line: "test NAME ... (12.3 s) ok".
    eprint!("({:.1} s) ", t0.elapsed().as_secs_f64());
    if name.starts_with("main::") && name != "main::stops_gracefully" {
        return r;
    }
    let left = new_leaks(&before, Duration::from_secs(15));
    clean_leaks(&left);
    *baseline = Some(leak_keys());
    match (r, left.is_empty()) {
        (r, true) => r,
        (Ok(()), false) => Err(format!("left behind: {left:#?}").into()),
        (Err(e), false) => Err(format!(
            "{}\nand left behind (now removed): {left:#?}",
            e.message().unwrap_or("")
        )
        .into()),
    }
}

fn test_images() -> Vec<String> {
    let mut images = vec![
        debian(),
        layered(),
        nokernel(),
        containerdisk(),
        containerdisk_two(),
        bootc::bootc(),
    ];
    for (name, default) in [
        (
            "BCVK_TEST_SEMANTICS",
            "localhost/bcvk-test/semantics:latest",
        ),
        (
            "BCVK_TEST_BYSTANDER",
            "localhost/bcvk-test/bystander:latest",
        ),
        (
            "BCVK_TEST_LAYERS450",
            "localhost/bcvk-test/layers450:latest",
        ),
    ] {
        images.push(var(name, default));
    }
    images
}

fn store_unchanged() -> R {
    let before = FINGERPRINT.get().expect("taken at start").clone()?;
    let after = store_fingerprint(&test_images())?;
    check!(
        before == after,
        "the host store changed under the test images"
    );
    Ok(())
}

fn nothing_left_behind() -> R {
    // Containers of finished tests are removed; give podman a moment.
    std::thread::sleep(Duration::from_secs(1));
    let _ = podman(&["rm", "-f", "-t", "0", main_vm::MAIN_NAME]);
    let leaks = leaks();
    check!(leaks.is_empty(), "left behind: {leaks:#?}");
    Ok(())
}

/// A trial's function.
type TrialFn = fn() -> R;

/// The trials, in run order (run with --test-threads=1): each one's name and function, one
/// line a trial. The main VM's trials share one boot (see main_vm.rs); the two global ones
/// check, last, what the whole run left behind.
#[rustfmt::skip]
const TRIALS: &[(&str, TrialFn)] = &[
    ("errors::unknown_image", errors::unknown_image),
    ("errors::image_without_kernel", errors::image_without_kernel),
    ("errors::resolves_short_names_and_ids", errors::resolves_short_names_and_ids),
    ("errors::missing_store_mount", errors::missing_store_mount),
    ("errors::bad_option_values", errors::bad_option_values),
    ("errors::kvm_forced_without_device", errors::kvm_forced_without_device),
    ("oneshot::command_exit_code_streams_resources_net_none", oneshot_command),
    ("main::ready_notify_after_ssh", main_vm::main_ready_notify_after_ssh),
    ("main::ssh_twice_hostname_exit_code_status", main_vm::main_ssh_twice_and_exit_code),
    ("main::supervisor_descriptors_stable", main_vm::main_supervisor_descriptors_stable),
    ("main::resources_and_kargs", main_vm::main_resources_and_kargs),
    ("main::console_in_podman_logs", main_vm::main_console_in_podman_logs),
    ("main::bind_rw_and_ro", main_vm::main_bind_rw_and_ro),
    ("main::units_swap_disk_serial", main_vm::main_units_swap_disk_serial),
    ("main::log_dir", main_vm::main_log_dir),
    ("main::port_forward", main_vm::main_port_forward),
    ("main::dns_and_store_share", main_vm::main_dns_and_store_share),
    ("main::ssh_not_exposed_outside_the_container", main_vm::main_ssh_not_exposed_outside_the_container),
    ("main::not_listed_as_ephemeral", main_vm::main_not_listed_as_ephemeral),
    ("main::stops_gracefully", main_vm::main_stops_gracefully),
    ("options::debug_prepares_and_cleans_up", debug_prepares_and_cleans_up),
    ("options::console_interactive", console_interactive),
    ("examples::github_actions_command_line", github_actions_command_line),
    ("layers::layered_image_whiteouts_user_unit_kvm_fallback", layered_image_layers_and_whiteouts),
    ("faults::kernel_panic_ends_the_run", kernel_panic_ends_the_run),
    ("faults::kernel_stall_restarts_once_then_ends", stall::kernel_stall_restarts_once_then_ends),
    ("faults::readiness_timeout_when_sshd_is_masked", readiness_timeout_when_sshd_is_masked),
    ("privileges::missing_capability", privileges::missing_capability),
    ("privileges::semantics_unprivileged", privileges::semantics_unprivileged),
    ("privileges::semantics_privileged", privileges::semantics_privileged),
    ("privileges::semantics_rootless", privileges::semantics_rootless),
    ("privileges::many_layers_200_450", privileges::many_layers),
    ("persistent::survives_stop_start_crash_and_new_container", persistent::survives_stop_start_crash_and_new_container),
    ("disk::bad_inputs", disk::bad_inputs),
    ("disk::containerdisk_uefi_cloud_init_ignition", disk::containerdisk_uefi_cloud_init_ignition),
    ("disk::raw_bios_persistent_then_uefi_throwaway", disk::raw_bios_persistent_then_uefi_throwaway),
    ("bootc::boots_with_its_initramfs", bootc::boots_with_its_initramfs),
    ("bootc::host_run_ssh", bootc::host_run_ssh),
    ("to_disk::refused_before_a_vm", bootc::to_disk_refused_before_a_vm),
    ("to_disk::too_small_fails_with_bootcs_error", bootc::to_disk_too_small_fails_with_bootcs_error),
    ("to_disk::installs_and_the_result_boots", bootc::to_disk_installs_and_the_result_boots),
    ("host_cli::man_page_examples", host_cli::man_page_examples),
    ("host_cli::name_in_use", host_cli::name_in_use),
    ("host_cli::run_ssh_reports_the_supervisor_error", host_cli::run_ssh_reports_the_supervisor_error),
    ("image::carries_only_what_bcvk_runs", host_cli::image_carries_only_what_bcvk_runs),
    ("arm64::other_architectures_are_refused", arm64::other_architectures_are_refused),
    ("arm64::arm64_image_starts_under_binfmt", arm64::arm64_image_starts_under_binfmt),
    ("arm64::foreign_guest_boots_under_emulation", arm64::foreign_guest_boots_under_emulation),
    ("kubernetes::job_exit_code_and_logs", kubernetes::job_exit_code_and_logs),
    ("kubernetes::pod_ready_ssh_and_graceful_down", kubernetes::pod_ready_ssh_and_graceful_down),
    ("docker::oneshot_under_docker", docker_oneshot),
    ("faults::store_layer_symlink_is_refused", faults::store_layer_symlink_is_refused),
    ("faults::kernel_choice_skips_unbootable_kernels", faults::kernel_choice_skips_unbootable_kernels),
    ("faults::guest_panic_during_a_command", faults::guest_panic_during_a_command),
    ("faults::guest_reboot_during_a_command", faults::guest_reboot_during_a_command),
    ("faults::early_readiness_timeout_stops_at_once", faults::early_readiness_timeout_stops_at_once),
    ("faults::kill_virtiofsd", faults::kill_virtiofsd),
    ("faults::kill_qemu", faults::kill_qemu),
    ("faults::sigterm_during_early_boot", faults::sigterm_during_early_boot),
    ("faults::sigint_to_oneshot", faults::sigint_to_oneshot),
    ("faults::ctrl_c_while_booting", faults::ctrl_c_while_booting),
    ("faults::ctrl_c_when_ready", faults::ctrl_c_when_ready),
    ("faults::ctrl_c_in_an_interactive_session", faults::ctrl_c_in_an_interactive_session),
    ("load::start_stop_cycles", faults::start_stop_cycles),
    ("load::three_at_once", faults::three_at_once),
    ("load::ready_with_sshd_penalties_under_load", faults::ready_with_sshd_penalties_under_load),
    ("global::store_unchanged", store_unchanged),
    ("global::nothing_left_behind", nothing_left_behind),
];

/// Whether the trial `name` is left out of this run, for want of what it needs: the docker
/// trials need a docker daemon (BCVK_DOCKER_HOST).
fn ignored(name: &str) -> bool {
    (name.starts_with("docker::") && var("BCVK_DOCKER_HOST", "").is_empty())
        // Only when integration/build-multiarch.sh has built it.
        || (name == "arm64::arm64_image_starts_under_binfmt"
            && podman(&["image", "exists", &format!("{}-arm64", bcvk_image())]).code != 0)
        // Only when integration/build-images.sh arm64 (or integration/demo) has built it.
        || (name == "arm64::foreign_guest_boots_under_emulation" && !arm64_guest_built())
}

fn arm64_guest_built() -> bool {
    podman(&["image", "exists", &debian_arm64()]).code == 0
}

fn main() {
    let args = Arguments::from_args();
    if !arm64_guest_built() {
        eprintln!("arm64::foreign_guest_boots_under_emulation is ignored: {} is not built (integration/build-images.sh arm64 builds it under emulation, 25 to 50 minutes the first time; integration/demo does)", debian_arm64());
    }
    FINGERPRINT.get_or_init(|| store_fingerprint(&test_images()));
    // Failures are printed as they happen too: a run takes long, and the summary comes last.
    let trials = TRIALS
        .iter()
        .map(|&(name, f)| {
            Trial::test(name, move || {
                let r = attributed(name, f);
                if let Err(e) = &r {
                    eprintln!("\n!!! {name} failed: {}\n", e.message().unwrap_or(""));
                }
                r
            })
            .with_ignored_flag(ignored(name))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // Only this run's containers (by its label): others may run the suite on this machine.
    let leftovers = podman(&["ps", "-aq", "--filter", &format!("label={}", test_label())]);
    for id in leftovers.stdout.split_whitespace() {
        let _ = podman(&["rm", "-f", "-t", "0", id]);
    }
    conclusion.exit();
}
