//! Faults and load: processes killed under the supervisor, signals at awkward moments,
//! repeated start/stop. Each ends well before a full boot, so they cost seconds, not minutes.

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

/// Ctrl-C typed in `podman run -it ... -- CMD` (on a terminal made by `script`): it reaches
/// the command in the guest through ssh's terminal, which dies of it; the run ends with 130
/// (128 + SIGINT, as a shell reports it), within a bounded time, the guest powered off.
pub fn ctrl_c_in_an_interactive_session() -> R {
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.insert(1, "-it".into());
    a.extend([
        bcvk_image(),
        debian(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        "echo command-started; sleep 600; echo not-reached".into(),
    ]);
    let mut term = Terminal::podman(&a)?;
    check!(
        term.wait_for("command-started", Duration::from_secs(600)),
        "the command never started: {}",
        tail(&term.seen, 20)
    );
    std::thread::sleep(Duration::from_secs(1));
    term.send(b"\x03")?;
    let Some(status) = term.wait_exit(Duration::from_secs(60))? else {
        return Err("Ctrl-C did not end the run within 60 s".into());
    };
    check!(
        status.code() == Some(130),
        "want 130 after Ctrl-C, got {status:?}: {}",
        tail(&term.seen, 20)
    );
    check!(
        !term.seen.contains("not-reached"),
        "the command went on after Ctrl-C"
    );
    Ok(())
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

fn snapshot() -> Snapshot {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().count())
        .unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .chars()
                        .all(|c| c.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    let containers = podman(&["ps", "-aq"]).stdout.lines().count();
    // Open files on the whole machine (the first field of file-nr).
    let fds = std::fs::read_to_string("/proc/sys/fs/file-nr")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    // podman's storage: one directory per layer, the containers' own included.
    let layers = std::fs::read_dir(host_store().join("overlay"))
        .map(|d| d.count())
        .unwrap_or(0);
    Snapshot {
        mounts,
        procs,
        containers,
        fds,
        layers,
    }
}

struct Snapshot {
    mounts: usize,
    procs: usize,
    containers: usize,
    fds: usize,
    layers: usize,
}

/// Repeated start/stop (stopped as soon as QEMU runs) leaves nothing growing behind.
pub fn start_stop_cycles() -> R {
    let cycles: usize = var("BCVK_TEST_CYCLES", "20").parse().unwrap_or(20);
    let before = snapshot();
    let tmp_before = std::fs::read_dir("/var/tmp")
        .map(|d| d.count())
        .unwrap_or(0);
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
    let after = snapshot();
    let tmp_after = std::fs::read_dir("/var/tmp")
        .map(|d| d.count())
        .unwrap_or(0);
    // (what, before, after, allowed growth). Processes: other programs come and go. Open
    // files are machine-wide (whatever outlives the cycles: podman, conmon, this test), hence
    // the slack; the supervisor's own descriptors are checked in a long-running VM by
    // main::supervisor_descriptors_stable.
    for (what, b, a, slack) in [
        ("mounts", before.mounts, after.mounts, 0),
        ("processes", before.procs, after.procs, 5),
        ("containers", before.containers, after.containers, 0),
        (
            "podman storage layer directories",
            before.layers,
            after.layers,
            0,
        ),
        ("open files", before.fds, after.fds, 64),
    ] {
        check!(
            a <= b + slack,
            "{what} grew over {cycles} cycles: {b} -> {a}"
        );
    }
    check!(
        tmp_after <= tmp_before,
        "/var/tmp grew: {tmp_before} -> {tmp_after}"
    );
    // Containers and processes left are checked by the runner, against what was there before.
    Ok(())
}

/// Three VMs of one image at once: separate keys and status, and a simultaneous stop of all
/// three is graceful. Light variant: they are stopped while booting. BCVK_HEAVY=1 waits until
/// all three are ready and checks SSH into each.
pub fn three_at_once() -> R {
    let heavy = var("BCVK_HEAVY", "0") == "1";
    let names = ["bcvk-it-trio-1", "bcvk-it-trio-2", "bcvk-it-trio-3"];
    let vms: Vec<Detached> = names
        .iter()
        .map(|n| {
            Detached::start(
                n,
                &[],
                &[
                    &debian(),
                    "--memory",
                    "1G",
                    "--vcpus",
                    "1",
                    "--stop-timeout",
                    "5",
                ],
            )
        })
        .collect::<Result<_, _>>()?;
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

/// Two VMs boot at once (each the other's load) with the guest's sshd at its defaults,
/// PerSourcePenalties included (OpenSSH 9.8+: connections closed before authentication count
/// against their source, and behind QEMU's user network every connection comes from
/// 10.0.2.2): both get ready, and neither sshd ever enforced a penalty, i.e. bcvk's readiness
/// probe did not pile up connections on it (issue 18).
pub fn ready_with_sshd_penalties_under_load() -> R {
    let names = ["bcvk-it-penalty-1", "bcvk-it-penalty-2"];
    let vms: Vec<Detached> = names
        .iter()
        .map(|n| {
            Detached::start(
                n,
                &[],
                &[
                    &debian(),
                    "--memory",
                    "1G",
                    "--vcpus",
                    "1",
                    "--stop-timeout",
                    "5",
                ],
            )
        })
        .collect::<Result<_, _>>()?;
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
        let r = vm.ssh("hostname");
        check!(r.code == 0 && r.stdout.trim() == vm.name, "{}", r.show());
    }
    for vm in &vms {
        let s = podman(&["stop", "-t", "30", &vm.name]);
        check!(s.code == 0, "{}", s.show());
    }
    Ok(())
}
