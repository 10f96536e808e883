//! The shared detached VM (`main`): started once with most options, it serves many checks
//! through `podman exec NAME bcvk ssh`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bcvk_integration::*;
use libtest_mimic::Failed;

use crate::{notify_listener, Notify, R};

struct MainVm {
    vm: Detached,
    dir: tempfile::TempDir,
    notify: Notify,
    started_ready: Result<serde_json::Value, String>,
}

static MAIN: OnceLock<Mutex<Option<MainVm>>> = OnceLock::new();

fn main_vm() -> Result<std::sync::MutexGuard<'static, Option<MainVm>>, Failed> {
    let cell = MAIN.get_or_init(|| Mutex::new(start_main_vm().map_err(|e| eprintln!("{e}")).ok()));
    let guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    check!(guard.is_some(), "the main VM did not start (see above)");
    Ok(guard)
}

pub(crate) const MAIN_NAME: &str = "bcvk-it-main";

fn start_main_vm() -> Result<MainVm, String> {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let w = |rel: &str, text: &str| -> Result<(), String> {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| e.to_string())
    };
    for d in ["rw", "disks", "logs"] {
        std::fs::create_dir_all(dir.path().join(d)).map_err(|e| e.to_string())?;
    }
    w("ro/readme", "read-only data\n")?;
    w(
        "units/system/bcvk-it-marker.service",
        "[Unit]\nDescription=integration marker\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo unit-ran > /run/bcvk-it-marker'\n[Install]\nWantedBy=multi-user.target\n",
    )?;
    // Enabled only by a link in DIR/system/*.wants/ (no [Install] section), as upstream allows.
    w(
        "units/system/bcvk-it-linked.service",
        "[Unit]\nDescription=integration unit enabled by a link\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo link-ran > /run/bcvk-it-linked'\n",
    )?;
    std::fs::create_dir_all(dir.path().join("units/system/multi-user.target.wants"))
        .map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(
        "../bcvk-it-linked.service",
        dir.path()
            .join("units/system/multi-user.target.wants/bcvk-it-linked.service"),
    )
    .map_err(|e| e.to_string())?;
    // A guest "web server" without extra packages: systemd socket activation.
    w(
        "units/system/bcvk-it-echo.socket",
        "[Socket]\nListenStream=8080\nAccept=yes\n[Install]\nWantedBy=sockets.target\n",
    )?;
    w(
        "units/system/bcvk-it-echo@.service",
        "[Service]\nExecStart=/bin/echo hello-from-guest\nStandardOutput=socket\n",
    )?;
    let notify = notify_listener(dir.path());
    let d = dir.path().display().to_string();
    let ours: Vec<String> = [
        "--label".to_string(),
        test_label().to_string(),
        "-p".into(),
        "127.0.0.1:18080:8080".into(),
        "-v".into(),
        format!("{d}/rw:/mnt/rw"),
        "-v".into(),
        format!("{d}/ro:/mnt/ro"),
        "-v".into(),
        format!("{d}/units:/mnt/units:ro"),
        "-v".into(),
        format!("{d}/disks:/mnt/disks"),
        "-v".into(),
        format!("{d}/logs:/mnt/logs"),
    ]
    .to_vec();
    let bcvk_args: Vec<String> = [
        "--memory",
        "2G",
        "--vcpus",
        "2",
        "--karg",
        "bcvk.test=main",
        "--bind",
        "/mnt/rw:work",
        "--ro-bind",
        "/mnt/ro:rodata",
        "--bind-storage-ro",
        "--systemd-units",
        "/mnt/units",
        "--add-swap",
        "256M",
        "--mount-disk-file",
        "/mnt/disks/extra.qcow2:extra",
        "--virtio-serial-out",
        "testport:/mnt/rw/serial.out",
        "--port",
        "8080:8080",
        "--log-dir",
        "journal,console=/mnt/logs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let argv = main_vm_argv(&ours, &bcvk_args, dir.path())?;
    eprintln!("main VM: {}", argv.join(" "));
    let _ = podman(&["rm", "-f", "-t", "0", MAIN_NAME]);
    let t0 = Instant::now();
    let out = std::process::Command::new("podman")
        .args(&argv)
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let vm = Detached {
        name: MAIN_NAME.into(),
    };
    if !out.status.success() {
        return Err(format!(
            "podman run failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            vm.logs()
        ));
    }
    eprintln!(
        "main VM: podman run returned after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let started_ready = vm.wait_ready(Duration::from_secs(600));
    Ok(MainVm {
        vm,
        dir,
        notify,
        started_ready,
    })
}

/// The main VM runs the command line Quadlet generates from examples/quadlet (written by
/// integration/quadlet-check.sh), so that very line is tested against a NOTIFY_SOCKET listener.
/// Only what needs systemd around it is changed: no --cgroups=split (it needs the unit's
/// delegated cgroup), no --rm (the exit code is checked after the stop), our container name;
/// the test's own podman options go before the image and its bcvk options after the Exec args.
fn main_vm_argv(ours: &[String], bcvk_args: &[String], dir: &Path) -> Result<Vec<String>, String> {
    let json = PathBuf::from(var("BCVK_QUADLET_JSON", "build/quadlet.json"));
    let json = if json.is_absolute() {
        json
    } else {
        examples::repo_root().join(json)
    };
    if !json.exists() {
        return Err(format!(
            "{} is missing: run integration/quadlet-check.sh {} first (integration/test does)",
            json.display(),
            json.display()
        ));
    }
    let generated = examples::quadlet_argv(&json, dir);
    let image_at = generated
        .iter()
        .position(|a| *a == bcvk_image())
        .ok_or(format!(
            "the Quadlet line does not run {}: {generated:?}",
            bcvk_image()
        ))?;
    let mut argv: Vec<String> = Vec::new();
    let mut it = generated[1..image_at].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cgroups=split" | "--rm" => {}
            "--name" => {
                it.next();
                argv.extend(["--name".into(), MAIN_NAME.into()]);
            }
            _ => argv.push(a.clone()),
        }
    }
    check_has(&argv, "--sdnotify=container")?;
    argv.extend(ours.iter().cloned());
    argv.extend(generated[image_at..].iter().cloned());
    argv.extend(bcvk_args.iter().cloned());
    Ok(argv)
}

fn check_has(argv: &[String], flag: &str) -> Result<(), String> {
    argv.iter()
        .any(|a| a == flag)
        .then_some(())
        .ok_or(format!("{flag} missing from {argv:?}"))
}

fn with_main(f: impl FnOnce(&MainVm) -> R) -> R {
    let guard = main_vm()?;
    let m = guard.as_ref().expect("checked");
    if let Err(e) = &m.started_ready {
        return Err(format!("main VM never became ready: {e}").into());
    }
    f(m)
}

fn ssh_ok(m: &MainVm, shell: &str) -> Result<String, Failed> {
    let r = m.vm.ssh(shell);
    check!(r.code == 0, "`{shell}` failed in the guest: {}", r.show());
    Ok(r.stdout)
}

pub(crate) fn main_ready_notify_after_ssh() -> R {
    with_main(|m| {
        let msgs = m.notify.msgs.lock().unwrap().clone();
        let ready = msgs.iter().find(|(_, s)| s.lines().any(|l| l == "READY=1"));
        check!(ready.is_some(), "no READY=1 received; got {msgs:?}");
        // READY=1 means SSH answers: right after it, ssh must work at once.
        let r = m.vm.ssh("true");
        check!(r.code == 0, "ssh failed right after READY=1: {}", r.show());
        let status = m.started_ready.as_ref().unwrap();
        check!(
            status["timings"]["ready_ms"].as_u64().is_some(),
            "status lacks ready_ms: {status}"
        );
        check!(status["ssh"]["port"].as_u64() == Some(2222), "{status}");
        Ok(())
    })
}

pub(crate) fn main_ssh_twice_and_exit_code() -> R {
    with_main(|m| {
        let a = m.vm.ssh("hostname");
        let b = m.vm.bcvk(&["ssh", "hostname"]);
        check!(a.code == 0 && b.code == 0, "{}\n{}", a.show(), b.show());
        // Without --privileged podman tells the container its hostname, not its name: the
        // guest gets the container's hostname (podman run --hostname; by default its ID).
        let want = podman(&["inspect", "--format", "{{.Config.Hostname}}", MAIN_NAME]);
        check!(
            !want.stdout.trim().is_empty() && a.stdout.trim() == want.stdout.trim(),
            "guest hostname should be the container's hostname {:?}: {}",
            want.stdout.trim(),
            a.show()
        );
        let r = m.vm.bcvk(&["ssh", "sh", "-c", "echo 'two words'; exit 7"]);
        check!(
            r.code == 7,
            "bcvk ssh must return the remote exit code: {}",
            r.show()
        );
        check!(r.stdout.trim() == "two words", "{}", r.show());
        let st = m.vm.bcvk(&["status"]);
        check!(
            st.code == 0 && st.stdout.contains("state: ready"),
            "{}",
            st.show()
        );
        Ok(())
    })
}

/// A long-running VM serves many sessions: the supervisor's descriptors do not grow with them,
/// and no zombie is left in the container.
pub(crate) fn main_supervisor_descriptors_stable() -> R {
    with_main(|m| {
        let count = || -> Result<usize, Failed> {
            let r = podman(&["exec", &m.vm.name, "sh", "-c", "ls /proc/1/fd | wc -l"]);
            check!(r.code == 0, "{}", r.show());
            Ok(r.stdout.trim().parse().unwrap_or(usize::MAX))
        };
        let before = count()?;
        for _ in 0..10 {
            let r = m.vm.bcvk(&["ssh", "true"]);
            check!(r.code == 0, "{}", r.show());
            let r = m.vm.bcvk(&["status", "--json"]);
            check!(r.code == 0, "{}", r.show());
        }
        let after = count()?;
        check!(
            after <= before,
            "the supervisor's open descriptors grew over 20 sessions: {before} -> {after}"
        );
        let z = podman(&[
            "exec",
            &m.vm.name,
            "sh",
            "-c",
            "grep -l '^State:.*Z' /proc/[0-9]*/status || true",
        ]);
        check!(
            z.stdout.trim().is_empty(),
            "zombies in the container: {}",
            z.show()
        );
        Ok(())
    })
}

pub(crate) fn main_resources_and_kargs() -> R {
    with_main(|m| {
        let out = ssh_ok(m, "nproc; grep MemTotal /proc/meminfo; cat /proc/cmdline; systemctl is-system-running --wait || true")?;
        check!(out.lines().next() == Some("2"), "{out}");
        check!(out.contains("bcvk.test=main"), "{out}");
        check!(out.contains("running") || out.contains("degraded"), "{out}");
        Ok(())
    })
}

pub(crate) fn main_console_in_podman_logs() -> R {
    with_main(|m| {
        let r = podman(&["logs", &m.vm.name]);
        check!(
            r.stdout.contains("Linux version") || r.stdout.contains("Welcome to"),
            "boot console missing from podman logs stdout: {}",
            tail(&r.stdout, 20)
        );
        check!(
            r.stderr.contains("VM ready"),
            "no ready line in podman logs: {}",
            tail(&r.stderr, 20)
        );
        Ok(())
    })
}

pub(crate) fn main_bind_rw_and_ro() -> R {
    with_main(|m| {
        ssh_ok(m, "echo from-guest > /run/virtiofs-mnt-work/hello && sync")?;
        let host = std::fs::read_to_string(m.dir.path().join("rw/hello")).unwrap_or_default();
        check!(
            host == "from-guest\n",
            "guest write did not reach the host volume: {host:?}"
        );
        let out = ssh_ok(m, "cat /run/virtiofs-mnt-rodata/readme; if touch /run/virtiofs-mnt-rodata/x 2>/dev/null; then echo WRITABLE; else echo refused; fi")?;
        check!(
            out.contains("read-only data") && out.contains("refused"),
            "{out}"
        );
        check!(
            !m.dir.path().join("ro/x").exists(),
            "a write through --ro-bind reached the host"
        );
        Ok(())
    })
}

pub(crate) fn main_units_swap_disk_serial() -> R {
    with_main(|m| {
        let out = ssh_ok(m, "cat /run/bcvk-it-marker /run/bcvk-it-linked; swapon --show --noheadings; ls -l /dev/disk/by-id/virtio-extra; echo serial-data > /dev/virtio-ports/testport")?;
        check!(out.contains("unit-ran"), "injected unit did not run: {out}");
        check!(
            out.contains("link-ran"),
            "a unit enabled by a .wants/ link did not run: {out}"
        );
        check!(
            out.contains("/dev/vd") || out.contains("partition") || out.contains("dm-"),
            "no swap listed: {out}"
        );
        check!(out.contains("virtio-extra"), "{out}");
        check!(
            m.dir.path().join("disks/extra.qcow2").exists(),
            "missing disk file was not created"
        );
        std::thread::sleep(Duration::from_millis(500));
        let serial =
            std::fs::read_to_string(m.dir.path().join("rw/serial.out")).unwrap_or_default();
        check!(
            serial.contains("serial-data"),
            "virtio-serial output did not land in the file: {serial:?}"
        );
        Ok(())
    })
}

/// --log-dir: upstream's files. journal.json is the guest's journal as `journalctl -o json`
/// (one object a line) from the boot's first message on, so a script waiting for the
/// multi-user target's message finds it; journal-initrd.json is there and empty (this boot
/// skips the initramfs: see layered_image_layers_and_whiteouts for one through it);
/// console.txt is the console, and console.log (bcvk's earlier name) links to it.
pub(crate) fn main_log_dir() -> R {
    with_main(|m| {
        let out = ssh_ok(
            m,
            "systemctl is-active bcvk-journal.service; echo bcvk-it-journal-marker | systemd-cat -t bcvk-it",
        )?;
        check!(
            out.starts_with("active"),
            "the journal stream is not running: {out}"
        );
        let logs = m.dir.path().join("logs");
        let journal = logs.join("journal.json");
        let mut text = String::new();
        for _ in 0..60 {
            text = std::fs::read_to_string(&journal).unwrap_or_default();
            if text.contains("bcvk-it-journal-marker") {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let entries = journal_objects(&text).map_err(|e| format!("journal.json: {e}"))?;
        let message = |e: &serde_json::Value| e["MESSAGE"].as_str().unwrap_or("").to_string();
        check!(
            entries
                .iter()
                .any(|e| message(e) == "bcvk-it-journal-marker"),
            "the guest's journal did not reach {}: {} entries, last {:?}",
            journal.display(),
            entries.len(),
            entries.last().map(message)
        );
        // From the boot's first message, not just the last lines.
        check!(
            entries[0]["__SEQNUM"] == "1",
            "journal.json does not start at the boot's first message: {}",
            entries[0]
        );
        let multi_user = |e: &serde_json::Value| {
            message(e).contains("Reached target") && message(e).contains("multi-user.target")
        };
        check!(
            entries.iter().any(multi_user),
            "journal.json has no 'Reached target ... multi-user.target' message"
        );
        let initrd = std::fs::metadata(logs.join("journal-initrd.json")).map(|m| m.len());
        check!(
            matches!(initrd, Ok(0)),
            "journal-initrd.json should be there and empty without an initrd: {initrd:?}"
        );
        let console = std::fs::read_to_string(logs.join("console.txt")).unwrap_or_default();
        check!(
            console.contains("Linux version") || console.contains("Welcome to"),
            "console.txt is not the console: {} bytes",
            console.len()
        );
        check!(
            std::fs::read_link(logs.join("console.log")).ok() == Some("console.txt".into()),
            "console.log is not a link to console.txt"
        );
        Ok(())
    })
}

/// A journal stream's complete lines, each a JSON object; at least one.
pub(crate) fn journal_objects(text: &str) -> Result<Vec<serde_json::Value>, String> {
    // The last line may be still being written.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let objects = complete
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v.is_object())
                .ok_or_else(|| format!("not a JSON object: {:?}", &l[..l.len().min(200)]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if objects.is_empty() {
        return Err("empty".into());
    }
    Ok(objects)
}

pub(crate) fn main_port_forward() -> R {
    with_main(|_| {
        let mut s = std::net::TcpStream::connect_timeout(
            &"127.0.0.1:18080".parse().unwrap(),
            Duration::from_secs(10),
        )
        .map_err(|e| format!("connect to the published port: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let _ = s.write_all(b"hi\n");
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        check!(
            got.contains("hello-from-guest"),
            "guest service not reached through --port: {got:?}"
        );
        Ok(())
    })
}

pub(crate) fn main_stops_gracefully() -> R {
    let mut guard = main_vm()?;
    let m = guard.take().expect("checked");
    // Written right before the stop, without sync: a graceful poweroff must keep it.
    let r = m.vm.ssh("echo late > /run/virtiofs-mnt-work/late");
    check!(r.code == 0, "{}", r.show());
    let t = Instant::now();
    let r = podman(&["stop", "-t", "60", &m.vm.name]);
    let took = t.elapsed();
    check!(r.code == 0, "podman stop failed: {}", r.show());
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &m.vm.name])
        .stdout
        .trim()
        .to_string();
    let logs = podman(&["logs", &m.vm.name]);
    check!(
        code == "0",
        "a stopped VM should exit 0, got {code}: {}",
        tail(&logs.stderr, 30)
    );
    check!(took < Duration::from_secs(60), "stop took {took:?}");
    check!(
        !logs.stderr.contains("did not power off in time"),
        "the guest was killed, not powered off: {}",
        tail(&logs.stderr, 30)
    );
    // podman 4.3's conmon forwards only MAINPID and READY=1 to the manager, so STOPPING=1
    // cannot be observed through it here: faults::sigterm_during_early_boot listens to the
    // supervisor directly instead.
    // Data written before the stop is on disk.
    check!(m.dir.path().join("rw/hello").exists(), "bind data lost");
    let late = std::fs::read_to_string(m.dir.path().join("rw/late")).unwrap_or_default();
    check!(
        late == "late\n",
        "data written before the stop was lost: {late:?}"
    );
    drop(m);
    Ok(())
}

pub(crate) fn main_dns_and_store_share() -> R {
    with_main(|m| {
        // DNS through slirp's 10.0.2.3, which forwards to the container's resolver.
        let out = ssh_ok(m, "getent hosts deb.debian.org >/dev/null && echo dns-ok || echo dns-failed; \
             test -f /run/virtiofs-mnt-hoststorage/overlay-images/images.json && echo store-visible; \
             touch /run/virtiofs-mnt-hoststorage/x 2>/dev/null && echo STORE-WRITABLE || echo store-ro")?;
        check!(
            out.contains("store-visible") && out.contains("store-ro"),
            "{out}"
        );
        // The container's own DNS may be unavailable on an offline CI machine: only then skip.
        let host_dns = cmd("getent", &["hosts", "deb.debian.org"]).code == 0;
        check!(
            !host_dns || out.contains("dns-ok"),
            "guest DNS failed while the host resolves: {out}"
        );
        Ok(())
    })
}

pub(crate) fn main_ssh_not_exposed_outside_the_container() -> R {
    with_main(|m| {
        let ip = podman(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &m.vm.name,
        ])
        .stdout
        .trim()
        .to_string();
        check!(!ip.is_empty(), "container has no IP");
        let addr: std::net::SocketAddr = format!("{ip}:2222")
            .parse()
            .map_err(|e| format!("{ip}: {e}"))?;
        let reached = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok();
        check!(
            !reached,
            "the guest's SSH forward answers on the container's address {addr}"
        );
        let perms = podman(&[
            "exec",
            &m.vm.name,
            "stat",
            "-c",
            "%a",
            "/run/bcvk/ssh/id_ed25519",
        ]);
        check!(
            perms.stdout.trim() == "600",
            "private key mode: {}",
            perms.show()
        );
        let logs = podman(&["logs", &m.vm.name]);
        check!(
            !logs.stdout.contains("PRIVATE KEY") && !logs.stderr.contains("PRIVATE KEY"),
            "the private key was printed"
        );
        Ok(())
    })
}

/// The image carries no `bcvk.ephemeral` label: only the host command sets it on what it
/// creates, so `bcvk ephemeral ps` and `rm-all` never see (or remove) a Quadlet unit's VM.
pub(crate) fn main_not_listed_as_ephemeral() -> R {
    with_main(|m| {
        let r = podman(&[
            "ps",
            "--filter",
            "label=bcvk.ephemeral=1",
            "--format",
            "{{.Names}}",
        ]);
        check!(
            r.code == 0 && !r.stdout.lines().any(|l| l == m.vm.name),
            "the Quadlet unit's VM is labelled ephemeral: {}",
            r.show()
        );
        let r = podman(&[
            "ps",
            "--filter",
            &format!("label={}", test_label()),
            "--format",
            "{{.Names}}",
        ]);
        check!(
            r.stdout.lines().any(|l| l == m.vm.name),
            "podman ps by its own label: {}",
            r.show()
        );
        Ok(())
    })
}
