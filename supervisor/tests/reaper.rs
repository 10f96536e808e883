//! The reaper, tested with stand-in children (/bin/sh). A test binary of its own: the reaper's
//! `waitpid(-1)` would steal the children of tests running beside it in one process.

use std::time::Duration;

use bcvk::init::{become_subreaper, start, Children, ExitInfo};
use bcvk::spawn::Role;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use bcvk::spawn::{find_program, spawn, Spawned, Stdios};
use std::process::Stdio;

fn sh(children: &Children, role: Role, script: &str) -> Pid {
    let stdios = Stdios {
        stdin: Stdio::null(),
        stdout: Stdio::null(),
        stderr: Stdio::null(),
        foreground: false,
    };
    spawn(
        children,
        role,
        &find_program("sh").unwrap(),
        &["-c".into(), script.into()],
        stdios,
    )
    .unwrap()
    .pid
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// Tests here share one process-wide reaper (`waitpid(-1)`), so they run in one test to
// avoid stealing each other's children.
#[test]
fn reaper_delivers_exit_codes_signals_and_orphans() {
    rt().block_on(async {
        become_subreaper();
        let children = Children::default();
        let _requests = start(children.clone()).unwrap();

        let quick = sh(&children, Role::SshProbe, "exit 42");
        let slow = sh(&children, Role::SshCommand, "sleep 0.3; exit 7");
        assert_eq!(children.wait(quick).await, ExitInfo::Code(42));
        assert_eq!(children.wait(slow).await, ExitInfo::Code(7));

        // Killed by a signal: 128 + signo.
        let victim = sh(&children, Role::Qemu, "sleep 30");
        signal::kill(victim, Signal::SIGKILL).unwrap();
        let info = children.wait(victim).await;
        assert_eq!(info, ExitInfo::Signaled(Signal::SIGKILL));
        assert_eq!(info.code(), 137);

        // An orphan (grandchild whose parent exited) is reaped too: no zombie remains.
        let parent = sh(&children, Role::SshProbe, "sleep 0.2 & exit 0");
        children.wait(parent).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(children.alive().is_empty());
        let zombies = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                let ppid_ok = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .map(|ppid| ppid == std::process::id().to_string())
                    .unwrap_or(false);
                ppid_ok && stat.contains(") Z ")
            })
            .count();
        assert_eq!(zombies, 0);

        // stop(): a child ignoring SIGTERM is killed after the grace periods.
        let stubborn = sh(&children, Role::Qemu, "trap '' TERM; sleep 30");
        let info = children.stop(stubborn, Duration::from_millis(100)).await;
        assert_eq!(info, ExitInfo::Signaled(Signal::SIGKILL));

        // A child that exits before its start returns, with a reaper on another thread
        // reaping all the while: registered in the same step, so its exit is its own, not an
        // orphan's (with registration after the start, this wait never ended).
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reaper = {
            let (children, busy) = (children.clone(), busy.clone());
            std::thread::spawn(move || {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    children.reap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        for code in [3, 4, 5] {
            let sp = children
                .start_child(Role::SshProbe, || {
                    let child = std::process::Command::new("sh")
                        .args(["-c", &format!("exit {code}")])
                        .spawn()?;
                    // The child is gone long before it is registered.
                    std::thread::sleep(Duration::from_millis(200));
                    Ok::<_, std::io::Error>(Spawned {
                        pid: Pid::from_raw(child.id() as i32),
                        stdin: None,
                        stdout: None,
                        stderr: None,
                    })
                })
                .unwrap();
            let info = tokio::time::timeout(Duration::from_secs(5), children.wait(sp.pid))
                .await
                .expect("the exit of a child that ended before its start returned was lost");
            assert_eq!(info, ExitInfo::Code(code));
        }
        busy.store(false, std::sync::atomic::Ordering::Relaxed);
        reaper.join().unwrap();
    });
}
