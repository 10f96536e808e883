//! Faults and load: processes killed under the supervisor, signals at awkward moments,
//! repeated start/stop. Each ends well before a full boot, so they cost seconds, not minutes.

use std::path::Path;
use std::time::{Duration, Instant};

use bcvk_integration::*;

use crate::R;

/// Wait until the VM of `vm` has QEMU running (state "booting").
fn wait_booting(vm: &Detached, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = vm.bcvk(&["status", "--json"]);
        if r.stdout.contains("\"booting\"") || r.stdout.contains("\"ready\"") {
            return Ok(());
        }
        if !vm.running() {
            return Err(format!("container ended early\n{}", vm.logs()));
        }
        if Instant::now() > deadline {
            return Err(format!("never booting\n{}", vm.logs()));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The host pid of the process of this container whose command line contains `needle`.
fn host_pid(vm: &Detached, needle: &str) -> Result<String, String> {
    let top = podman(&["top", &vm.name, "pid", "args"]);
    // podman top shows container pids; map to host pids through the container's init pid.
    let _ = top;
    let init = podman(&["inspect", "--format", "{{.State.Pid}}", &vm.name])
        .stdout
        .trim()
        .to_string();
    let children = cmd("pgrep", &["-P", &init, "-a"]);
    for line in children.stdout.lines() {
        if line.contains(needle) {
            return Ok(line.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    Err(format!(
        "no child '{needle}' of {init}: {}",
        children.stdout
    ))
}

/// Wait for the container to exit; returns its exit code and how long it took.
fn wait_exit(vm: &Detached, timeout: Duration) -> Result<(i32, Duration), String> {
    let t = Instant::now();
    while vm.running() {
        if t.elapsed() > timeout {
            return Err(format!("still running after {timeout:?}\n{}", vm.logs()));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &vm.name])
        .stdout
        .trim()
        .parse()
        .unwrap_or(-1);
    Ok((code, t.elapsed()))
}

fn kill_child(needle: &str, want_in_error: &str) -> R {
    let vm = Detached::start(
        &format!("bcvk-it-kill-{}", needle.replace(['/', '-'], "")),
        &[],
        &[&debian(), "--stop-timeout", "3"],
    )?;
    wait_booting(&vm, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = host_pid(&vm, needle)?;
    let k = cmd("kill", &["-9", &pid]);
    check!(k.code == 0, "kill failed: {}", k.show());
    let (code, took) = wait_exit(&vm, Duration::from_secs(60))?;
    let logs = podman(&["logs", &vm.name]);
    check!(
        code == 70,
        "want exit 70 after killing {needle}, got {code}: {}",
        tail(&logs.stderr, 20)
    );
    let err = logs
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bcvk: error:"))
        .unwrap_or("")
        .to_string();
    check!(
        err.contains(want_in_error),
        "error should name {want_in_error}: {err}"
    );
    check!(took < Duration::from_secs(30), "took {took:?} to end");
    Ok(())
}

pub fn kill_virtiofsd() -> R {
    kill_child("virtiofsd", "virtiofsd")
}

pub fn kill_qemu() -> R {
    kill_child("qemu-system", "QEMU exited (killed by SIGKILL)")
}

/// `podman stop` while the guest is still in early boot: bounded, clean, exit 0. The
/// supervisor's own notifications go straight to a listener here (`--sdnotify=ignore`, the
/// socket mounted in), since podman 4.3's conmon forwards only READY=1: STOPPING=1 must come on
/// the stop, and READY=1 never, the guest having never answered SSH.
pub fn sigterm_during_early_boot() -> R {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-notify-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let notify = crate::notify_listener(dir.path());
    let mount = format!("{}:/run/bcvk-it-notify", dir.path().display());
    let vm = Detached::start(
        "bcvk-it-early-stop",
        &[
            "--sdnotify=ignore",
            "-e",
            "NOTIFY_SOCKET=/run/bcvk-it-notify/notify.sock",
            "-v",
            &mount,
        ],
        &[&debian(), "--stop-timeout", "5"],
    )?;
    wait_booting(&vm, Duration::from_secs(60))?;
    let t = Instant::now();
    let r = podman(&["stop", "-t", "30", &vm.name]);
    check!(r.code == 0, "{}", r.show());
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &vm.name])
        .stdout
        .trim()
        .to_string();
    check!(
        code == "0",
        "a stopped VM exits 0, got {code}\n{}",
        vm.logs()
    );
    check!(
        t.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        t.elapsed()
    );
    let msgs: Vec<String> = notify
        .msgs
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    let has = |state: &str| msgs.iter().any(|m| m.lines().any(|l| l == state));
    check!(has("STOPPING=1"), "no STOPPING=1 on stop: {msgs:?}");
    check!(
        !has("READY=1"),
        "READY=1 before the guest was ready: {msgs:?}"
    );
    Ok(())
}

/// `podman run -it --name NAME ... bcvk IMAGE ARGS` on a real terminal, and a guard that
/// removes the container.
fn terminal_run(name: &str, bcvk_args: &[&str]) -> Result<(Terminal, Detached), String> {
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    let mut a = run_prefix(true);
    a.extend(["-it".into(), "--name".into(), name.into(), bcvk_image()]);
    a.extend(bcvk_args.iter().map(|s| s.to_string()));
    let term = Terminal::podman(&a)?;
    Ok((
        term,
        Detached {
            name: name.to_string(),
        },
    ))
}

/// The guest's own poweroff, as the kernel prints it last.
const POWER_DOWN: &str = "reboot: Power down";

/// Type Ctrl-C on the terminal of a run and wait up to `within` seconds for the run to end
/// with the exit code `want`.
fn ctrl_c_ends_with(term: &mut Terminal, within: u64, want: i32) -> R {
    term.send(b"\x03")?;
    let Some(status) = term.wait_exit(Duration::from_secs(within))? else {
        return Err(format!("Ctrl-C did not end the run within {within} s").into());
    };
    check!(
        status.code() == Some(want),
        "want {want} after Ctrl-C, got {status:?}: {}",
        tail(&term.seen, 20)
    );
    Ok(())
}

/// The guest powered itself off (QEMU was not killed by a signal), as `console` shows.
fn powered_off(console: &str, term: &Terminal) -> R {
    check!(
        console.contains(POWER_DOWN) && !term.seen.contains("terminating on signal"),
        "no guest poweroff on the console: {}",
        tail(console, 30)
    );
    Ok(())
}

/// Ctrl-C typed in `podman run -it ... IMAGE` (no command) while the guest boots (systemd
/// started, not yet ready): it reaches bcvk alone (QEMU and virtiofsd are in their own process
/// groups), which powers the guest off; the console shows it and the run ends with 0.
pub fn ctrl_c_while_booting() -> R {
    let (mut term, _vm) = terminal_run(
        "bcvk-faults-ctrlc-boot",
        // Under TCG on a loaded machine the power button driver loads a minute into the boot.
        &[&debian(), "--stop-timeout", "150"],
    )?;
    check!(
        term.wait_for("Welcome to ", Duration::from_secs(600)),
        "the guest's systemd never started: {}",
        tail(&term.seen, 20)
    );
    check!(
        !term.seen.contains("VM ready"),
        "ready already: not the booting phase"
    );
    // 0: a VM stopped cleanly.
    ctrl_c_ends_with(&mut term, 200, 0)?;
    powered_off(&term.seen, &term)
}

/// Ctrl-C in `podman run -it ... IMAGE` once the VM is ready: a graceful poweroff, exit 0.
pub fn ctrl_c_when_ready() -> R {
    let (mut term, _vm) = terminal_run(
        "bcvk-faults-ctrlc-ready",
        &[&debian(), "--stop-timeout", "60"],
    )?;
    check!(
        term.wait_for("VM ready after", Duration::from_secs(600)),
        "never ready: {}",
        tail(&term.seen, 20)
    );
    std::thread::sleep(Duration::from_secs(1));
    ctrl_c_ends_with(&mut term, 120, 0)?;
    powered_off(&term.seen, &term)
}

/// Ctrl-C typed in `podman run -it ... -- CMD` (on a terminal made by `script`): it reaches
/// the command in the guest through ssh's terminal, which dies of it; the run ends with 130
/// (128 + SIGINT, as a shell reports it), within a bounded time, the guest powered off (its
/// console, kept in /run/bcvk/console.log in this mode, shows it).
pub fn ctrl_c_in_an_interactive_session() -> R {
    let name = "bcvk-faults-ctrlc-cmd";
    let (mut term, _vm) = terminal_run(
        name,
        &[
            &debian(),
            "--",
            "sh",
            "-c",
            "echo command-started; sleep 600; echo not-reached",
        ],
    )?;
    check!(
        term.wait_for("command-started", Duration::from_secs(600)),
        "the command never started: {}",
        tail(&term.seen, 20)
    );
    std::thread::sleep(Duration::from_secs(1));
    // 130: 128 + SIGINT.
    ctrl_c_ends_with(&mut term, 120, 130)?;
    check!(
        !term.seen.contains("not-reached"),
        "the command went on after Ctrl-C"
    );
    let console = podman(&["cp", &format!("{name}:/run/bcvk/console.log"), "-"]);
    powered_off(&console.stdout, &term)
}

/// SIGINT to the container of a one-shot run (`podman kill --signal INT`; Ctrl-C of
/// `podman run` without `-t`, which podman forwards): it ends with 130.
pub fn sigint_to_oneshot() -> R {
    let vm = Detached::start(
        "bcvk-it-sigint",
        &[],
        &[&debian(), "--stop-timeout", "3", "--", "sleep", "600"],
    )?;
    wait_booting(&vm, Duration::from_secs(60))?;
    let k = podman(&["kill", "--signal", "INT", &vm.name]);
    check!(k.code == 0, "{}", k.show());
    let (code, took) = wait_exit(&vm, Duration::from_secs(60))?;
    check!(code == 130, "want 130, got {code}\n{}", vm.logs());
    check!(took < Duration::from_secs(20), "took {took:?}");
    Ok(())
}

/// What one cycle's container left that can be told apart as its own: the container, its
/// processes (by the container's cgroup), its mounts and its storage layer (by its id and its
/// layer's). Whatever else runs on the machine (other VMs, builds, other users) may come and
/// go meanwhile: machine-wide counts of processes, mounts, layers or open files are not this
/// test's to assert (the supervisor's own descriptors are checked in a long-running VM by
/// main::supervisor_descriptors_stable).
fn left_by(id: &str, layer: &str) -> Vec<String> {
    let mut left = Vec::new();
    if podman(&["container", "exists", id]).code == 0 {
        left.push(format!("container {id}"));
    }
    let ours = |text: &str| text.contains(id) || (!layer.is_empty() && text.contains(layer));
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        left.extend(m.lines().filter(|l| ours(l)).map(|l| format!("mount {l}")));
    }
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.chars().all(|c| c.is_ascii_digit())
            && std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(id))
        {
            left.push(format!("process {pid}"));
        }
    }
    if !layer.is_empty() && host_store().join("overlay").join(layer).exists() {
        left.push(format!("storage layer {layer}"));
    }
    left
}

/// Repeated start/stop (stopped as soon as QEMU runs) leaves nothing of its own behind.
pub fn start_stop_cycles() -> R {
    let cycles: usize = var("BCVK_TEST_CYCLES", "20").parse().unwrap_or(20);
    let mut made = Vec::new();
    for i in 0..cycles {
        let mut a = run_prefix(true);
        a.extend([
            "-d".into(),
            "--rm".into(),
            "--name".into(),
            "bcvk-it-cycle".into(),
            bcvk_image(),
            debian(),
            "--stop-timeout".into(),
            "1".into(),
        ]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = podman(&refs);
        check!(r.code == 0, "cycle {i}: {}", r.show());
        let id = r.stdout.trim().to_string();
        // The container's own layer: overlay/<layer>/diff is its upper directory.
        let upper = podman(&[
            "container",
            "inspect",
            "--format",
            "{{.GraphDriver.Data.UpperDir}}",
            &id,
        ]);
        let layer = Path::new(upper.stdout.trim())
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        made.push((id, layer));
        let vm = Detached {
            name: "bcvk-it-cycle".into(),
        };
        wait_booting(&vm, Duration::from_secs(60))?;
        let s = podman(&["stop", "-t", "20", "bcvk-it-cycle"]);
        check!(s.code == 0, "cycle {i}: {}", s.show());
        std::mem::forget(vm); // --rm removes it
        let t = Instant::now();
        while podman(&["container", "exists", "bcvk-it-cycle"]).code == 0
            && t.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    for (i, (id, layer)) in made.iter().enumerate() {
        check!(
            !layer.is_empty(),
            "cycle {i}: no storage layer found for {id}"
        );
        let left = left_by(id, layer);
        check!(left.is_empty(), "cycle {i} left: {left:?}");
    }
    let ours = podman(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label={}", test_label()),
        "--filter",
        "name=^bcvk-it-cycle$",
    ]);
    check!(
        ours.stdout.trim().is_empty(),
        "cycle containers left: {}",
        ours.show()
    );
    Ok(())
}

/// Detached VMs of the test image, one a name, started at once: 1 GiB, 1 vCPU, 5 s to stop.
fn start_small(names: &[&str]) -> Result<Vec<Detached>, String> {
    let args = [
        &debian(),
        "--memory",
        "1G",
        "--vcpus",
        "1",
        "--stop-timeout",
        "5",
    ];
    names
        .iter()
        .map(|n| Detached::start(n, &[], &args))
        .collect()
}

/// Three VMs of one image at once: separate keys and status, and a simultaneous stop of all
/// three is graceful. Light variant: they are stopped while booting. BCVK_HEAVY=1 waits until
/// all three are ready and checks SSH into each.
pub fn three_at_once() -> R {
    let heavy = var("BCVK_HEAVY", "0") == "1";
    let names = ["bcvk-it-trio-1", "bcvk-it-trio-2", "bcvk-it-trio-3"];
    let vms = start_small(&names)?;
    let mut keys = Vec::new();
    for vm in &vms {
        if heavy {
            vm.wait_ready(Duration::from_secs(900))?;
            let r = vm.ssh("hostname");
            check!(r.code == 0 && r.stdout.trim() == vm.name, "{}", r.show());
        } else {
            wait_booting(vm, Duration::from_secs(60))?;
        }
        let pubkey = podman(&["exec", &vm.name, "cat", "/run/bcvk/ssh/id_ed25519.pub"]);
        check!(pubkey.code == 0, "{}", pubkey.show());
        keys.push(pubkey.stdout);
    }
    keys.sort();
    keys.dedup();
    check!(keys.len() == 3, "VMs share SSH keys");
    let t = Instant::now();
    let handles: Vec<_> = names
        .iter()
        .map(|n| {
            let n = n.to_string();
            std::thread::spawn(move || podman(&["stop", "-t", "30", &n]))
        })
        .collect();
    for h in handles {
        let r = h.join().map_err(|_| "stop thread panicked")?;
        check!(r.code == 0, "{}", r.show());
    }
    for vm in &vms {
        let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &vm.name])
            .stdout
            .trim()
            .to_string();
        check!(code == "0", "{} exited {code}\n{}", vm.name, vm.logs());
    }
    check!(
        t.elapsed() < Duration::from_secs(30),
        "stopping three took {:?}",
        t.elapsed()
    );
    Ok(())
}

/// The guest images of the kernel-choice tests, built from test-images/faults/ (FROM the
/// shared debian guest; cached, so a second call takes a second).
fn fault_images() -> Result<(), String> {
    let script = bcvk_integration::examples::repo_root().join("test-images/faults/build.sh");
    let r = cmd(&script.display().to_string(), &[]);
    if r.code != 0 {
        return Err(format!("building the fault images failed: {}", r.show()));
    }
    Ok(())
}

/// A store copy whose top layer dir of the debian image is a symlink out of the store: bcvk
/// refuses it with 65 naming the path, before anything is mounted or booted.
pub fn store_layer_symlink_is_refused() -> R {
    let store = host_store();
    let image_id = podman(&["image", "inspect", "--format", "{{.Id}}", &debian()])
        .stdout
        .trim()
        .to_string();
    let images_json = std::fs::read(store.join("overlay-images/images.json"))
        .map_err(|e| format!("the host store: {e}"))?;
    let images: serde_json::Value =
        serde_json::from_slice(&images_json).map_err(|e| e.to_string())?;
    let top = images
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == image_id.as_str()))
        .and_then(|i| i["layer"].as_str())
        .ok_or(format!("no record of {image_id} in images.json"))?
        .to_string();
    let dir = tempfile::Builder::new()
        .prefix("bcvk-faults-store-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let copy = dir.path().join("storage");
    for sub in ["overlay-images", "overlay-layers", "overlay"] {
        std::fs::create_dir_all(copy.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::write(copy.join("overlay-images/images.json"), &images_json)
        .map_err(|e| e.to_string())?;
    std::fs::copy(
        store.join("overlay-layers/layers.json"),
        copy.join("overlay-layers/layers.json"),
    )
    .map_err(|e| e.to_string())?;
    // The "layer" the link leads to: a directory outside the store, mounted in the container.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("diff/etc")).map_err(|e| e.to_string())?;
    std::fs::write(outside.join("diff/etc/planted"), "not from the image\n")
        .map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/run/outside", copy.join("overlay").join(&top))
        .map_err(|e| e.to_string())?;
    let mut a = run_prefix(false);
    a.insert(1, "--rm".into());
    a.extend([
        "-v".into(),
        format!("{}:/run/host-storage:ro", copy.display()),
        "-v".into(),
        format!("{}:/run/outside:ro", outside.display()),
        bcvk_image(),
        debian(),
        "--".into(),
        "true".into(),
    ]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = podman(&refs);
    check!(r.code == 65, "want exit 65: {}", r.show());
    let err = r
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bcvk: error:"))
        .unwrap_or("");
    check!(
        err.contains(&format!("/run/host-storage/overlay/{top}/diff"))
            && err.contains("symbolic link"),
        "the error must name the linked path: {}",
        r.show()
    );
    Ok(())
}

/// A newer module directory whose vmlinuz is not a kernel is skipped, with its reason, and the
/// real kernel boots; an image with no bootable kernel ends with 66 naming every directory.
pub fn kernel_choice_skips_unbootable_kernels() -> R {
    fault_images()?;
    let r = bcvk_oneshot(
        &[],
        &["localhost/bcvk-faults-test/nobootable:latest", "--", "true"],
    );
    check!(r.code == 66, "want exit 66: {}", r.show());
    let err = r
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bcvk: error:"))
        .unwrap_or("");
    let kver = image_kernel_version(&debian())?;
    for place in [
        format!("/usr/lib/modules/{kver}: vmlinuz is not an x86 Linux kernel"),
        "/usr/lib/modules/99.0.0-fake: no vmlinuz".to_string(),
        "/boot/EFI/Linux: missing".to_string(),
    ] {
        check!(err.contains(&place), "{place:?} not named: {}", r.show());
    }
    check!(
        !r.stderr.contains("qemu"),
        "QEMU must not start: {}",
        r.show()
    );

    let r = bcvk_oneshot(
        &[],
        &[
            "localhost/bcvk-faults-test/fakekernel:latest",
            "--",
            "uname",
            "-r",
        ],
    );
    check!(r.code == 0, "want the real kernel to boot: {}", r.show());
    check!(
        r.stdout.trim() == kver,
        "booted {:?}, want {kver}",
        r.stdout.trim()
    );
    check!(
        r.stderr.contains("no bootable kernel in /usr/lib/modules/99.0.0-fake: vmlinuz is not an x86 Linux kernel")
            && r.stderr.contains(&format!("chosen={kver}")),
        "the choice and the skip must be said: {}",
        r.show()
    );
    Ok(())
}

/// Run `-- sh -c SCRIPT` in a detached container; returns its exit code, the bcvk error line
/// and status.json as it was left.
fn command_ending(name: &str, script: &str) -> Result<(i32, String, serde_json::Value), String> {
    let vm = Detached::start(name, &[], &[&debian(), "--", "sh", "-c", script])?;
    let (code, _) = wait_exit(&vm, Duration::from_secs(900))?;
    let logs = podman(&["logs", &vm.name]);
    let err = logs
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bcvk: error:"))
        .unwrap_or("")
        .to_string();
    let status = podman(&["cp", &format!("{name}:/run/bcvk/status.json"), "-"]);
    // podman cp writes a tar stream: the JSON is the one {...} in it.
    let text = status.stdout;
    let json = text
        .find('{')
        .and_then(|a| text.rfind('}').map(|b| &text[a..=b]))
        .ok_or(format!("no status.json: {}", status.stderr))?;
    let status = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
    if code != 70 {
        return Err(format!("want 70, got {code}\n{}", tail(&logs.stderr, 30)));
    }
    Ok((code, err, status))
}

/// The guest panics (sysrq crash) while a one-shot command runs: 70 and the panic, never ssh's
/// 255; status.json says the same.
pub fn guest_panic_during_a_command() -> R {
    let (code, err, status) = command_ending(
        "bcvk-faults-crash",
        "echo crashing; echo c > /proc/sysrq-trigger; sleep 60",
    )?;
    check!(
        err.starts_with("bcvk: error: the guest kernel panicked"),
        "{err}"
    );
    check!(status["exit_code"] == code, "status.json: {status}");
    check!(
        status["message"].as_str().is_some_and(|m| err.ends_with(m)),
        "status.json message vs error line: {status} / {err}"
    );
    Ok(())
}

/// The guest reboots (`systemctl reboot`) while a one-shot command runs: 70, the reboot named.
pub fn guest_reboot_during_a_command() -> R {
    let (code, err, status) = command_ending("bcvk-faults-reboot", "systemctl reboot; sleep 120")?;
    check!(err.contains("the guest rebooted"), "{err}");
    check!(status["exit_code"] == code, "status.json: {status}");
    check!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("rebooted")),
        "{status}"
    );
    Ok(())
}

/// A readiness timeout while the guest is still in its kernel: no ACPI answer can come, so
/// bcvk stops QEMU at once (no --stop-timeout wait), exits 75, and leaves in /run/bcvk only the
/// run's record (status.json, console.log): no sockets, no virtiofsd pid files.
pub fn early_readiness_timeout_stops_at_once() -> R {
    let name = "bcvk-faults-early-timeout";
    let vm = Detached::start(
        name,
        &[],
        &[&debian(), "--ready-timeout", "3", "--", "true"],
    )?;
    let (code, took) = wait_exit(&vm, Duration::from_secs(120))?;
    check!(code == 75, "want 75, got {code}\n{}", vm.logs());
    check!(
        took < Duration::from_secs(20),
        "took {took:?}: waited for an answer that cannot come\n{}",
        vm.logs()
    );
    let logs = podman(&["logs", name]);
    check!(
        logs.stderr
            .contains("has not booted far enough to power off by itself"),
        "{}",
        tail(&logs.stderr, 20)
    );
    let listing = cmd(
        "sh",
        &["-c", &format!("podman cp {name}:/run/bcvk - | tar t")],
    );
    let mut left: Vec<&str> = listing.stdout.lines().collect();
    left.sort();
    check!(
        left == ["bcvk", "bcvk/console.log", "bcvk/status.json"],
        "left in /run/bcvk: {left:?}"
    );
    Ok(())
}

/// Two VMs boot at once (each the other's load) with the guest's sshd at its defaults,
/// PerSourcePenalties included (OpenSSH 9.8+: connections closed before authentication count
/// against their source, and behind QEMU's user network every connection comes from
/// 10.0.2.2): both get ready, and neither sshd ever enforced a penalty, i.e. bcvk's readiness
/// probe did not pile up connections on it (issue 18).
pub fn ready_with_sshd_penalties_under_load() -> R {
    let names = ["bcvk-it-penalty-1", "bcvk-it-penalty-2"];
    let vms = start_small(&names)?;
    for vm in &vms {
        vm.wait_ready(Duration::from_secs(900))?;
    }
    for vm in &vms {
        // The guest's sshd runs with PerSourcePenalties at its default (on, noauth:1).
        let cfg = vm.ssh("sshd -T | grep -i '^persourcepenalties'");
        check!(cfg.code == 0, "{}", cfg.show());
        let cfg = cfg.stdout.to_lowercase();
        check!(
            cfg.contains("noauth:1") && !cfg.contains("persourcepenalties no"),
            "{}: sshd's PerSourcePenalties is not at its default: {cfg}",
            vm.name
        );
        // Never enforced: sshd logs each connection it refuses for a penalty at its default
        // LogLevel INFO ("drop connection #N from [10.0.2.2]:PORT on ... penalty: ...");
        // activations are logged too where LogLevel is VERBOSE.
        let log = vm.ssh("journalctl -b -o cat --no-pager _COMM=sshd _COMM=sshd-session");
        check!(log.code == 0, "{}", log.show());
        let enforced: Vec<&str> = log
            .stdout
            .lines()
            .filter(|l| {
                l.contains("penalty")
                    && (l.contains("drop connection")
                        || l.contains("activating")
                        || l.contains(" active "))
            })
            .collect();
        check!(
            enforced.is_empty(),
            "{}: sshd enforced a penalty on the probe's source:\n{}\n--- sshd log\n{}",
            vm.name,
            enforced.join("\n"),
            tail(&log.stdout, 40)
        );
        // And far from it: connections closed before authentication (1 s of penalty each,
        // enforced from 15 s) are the probe's one knock or waiting connection at most, not a
        // pile (the first probe's 2 s reconnect loop made dozens).
        let preauth = log
            .stdout
            .lines()
            .filter(|l| l.starts_with("Connection closed by 10.0.2.2 port") && !l.contains("user"))
            .count();
        check!(
            preauth <= 3,
            "{}: {preauth} connections closed before authentication\n--- sshd log\n{}",
            vm.name,
            tail(&log.stdout, 40)
        );
        // The guest's hostname is the container's (podman run --hostname; by default its ID).
        let r = vm.ssh("hostname");
        let want = podman(&["inspect", "--format", "{{.Config.Hostname}}", &vm.name]);
        check!(
            r.code == 0 && !want.stdout.trim().is_empty() && r.stdout.trim() == want.stdout.trim(),
            "want {:?}: {}",
            want.stdout.trim(),
            r.show()
        );
    }
    for vm in &vms {
        let s = podman(&["stop", "-t", "30", &vm.name]);
        check!(s.code == 0, "{}", s.show());
    }
    Ok(())
}
