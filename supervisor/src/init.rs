//! PID 1 duties: signals and reaping.
//!
//! As PID 1 of a container the supervisor receives no signal it has not installed a handler
//! for, inherits every orphan of the container, and must reap them all. One reaper owns every
//! `waitpid`: children started through `spawn` are registered with their role in the step that
//! starts them, and whoever needs a child's exit awaits it here (a second `wait` elsewhere
//! would steal the status).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use crate::child::{Role, Spawned};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    Code(i32),
    Signaled(Signal),
}

impl ExitInfo {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitInfo::Code(c) => c,
            ExitInfo::Signaled(s) => 128 + s as i32,
        }
    }
    pub fn success(self) -> bool {
        self == ExitInfo::Code(0)
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit code {c}"),
            ExitInfo::Signaled(s) => write!(f, "killed by {s}"),
        }
    }
}

#[derive(Default)]
struct Registry {
    roles: HashMap<Pid, Role>,
    waiters: HashMap<Pid, Vec<oneshot::Sender<ExitInfo>>>,
    /// Exits of registered children, kept for a later `wait` (a child may die before anyone
    /// asks about it).
    exited: HashMap<Pid, ExitInfo>,
}

/// The registry of live children and the reaper. Cheap to clone.
#[derive(Clone, Default)]
pub struct Children {
    inner: Arc<Mutex<Registry>>,
}

impl Children {
    /// Start a child with `start` (which forks it) and register it in the same step: the
    /// registry stays locked from before the fork until the pid is recorded, and the reaper
    /// takes that lock before each `waitpid`. So no exit is reaped as an orphan's before its
    /// role is known (a child may exit before `start` returns), whatever thread the reaper
    /// runs on; and std's own wait for a child that failed to exec is never raced either.
    /// `spawn::spawn` is the caller; tests may start stand-ins with it.
    pub fn start_child<E>(
        &self,
        role: Role,
        start: impl FnOnce() -> Result<Spawned, E>,
    ) -> Result<Spawned, E> {
        let mut reg = self.lock();
        let sp = start()?;
        reg.roles.insert(sp.pid, role);
        Ok(sp)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a registered child to exit.
    pub async fn wait(&self, pid: Pid) -> ExitInfo {
        let rx = {
            let mut reg = self.lock();
            if let Some(info) = reg.exited.remove(&pid) {
                return info;
            }
            let (tx, rx) = oneshot::channel();
            reg.waiters.entry(pid).or_default().push(tx);
            rx
        };
        // The sender lives in the registry until the exit is delivered; a dropped sender can
        // only mean the registry itself is gone, which does not happen while we run.
        rx.await.unwrap_or(ExitInfo::Code(-1))
    }

    /// Children registered and not yet reaped.
    pub fn alive(&self) -> Vec<(Pid, Role)> {
        let reg = self.lock();
        let mut v: Vec<_> = reg.roles.iter().map(|(p, r)| (*p, r.clone())).collect();
        v.sort_by_key(|(p, _)| p.as_raw());
        v
    }

    pub fn is_alive(&self, pid: Pid) -> bool {
        self.lock().roles.contains_key(&pid)
    }

    /// Reap every child that has exited (orphans included), without blocking. Returns the
    /// registered ones with their roles, after handing each exit to its waiters.
    pub fn reap(&self) -> Vec<(Pid, Role, ExitInfo)> {
        let mut done = Vec::new();
        loop {
            // Locked before the waitpid: a child being started is registered first.
            let mut reg = self.lock();
            let info = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitInfo::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitInfo::Signaled(sig)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue, // stopped/continued: not an exit
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    break;
                }
            };
            let (pid, exit) = info;
            match reg.roles.remove(&pid) {
                Some(role) => {
                    match reg.waiters.remove(&pid) {
                        Some(waiters) => waiters.into_iter().for_each(|w| {
                            let _ = w.send(exit);
                        }),
                        None => {
                            reg.exited.insert(pid, exit);
                        }
                    }
                    done.push((pid, role, exit));
                }
                None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped orphan"),
            }
        }
        done
    }

    /// Send `sig` to every registered child with a role matching `which`.
    pub fn signal_all(&self, which: impl Fn(&Role) -> bool, sig: Signal) {
        for (pid, role) in self.alive() {
            if which(&role) {
                tracing::debug!(pid = pid.as_raw(), %role, ?sig, "signal child");
                let _ = signal::kill(pid, sig);
            }
        }
    }

    /// Wait up to `grace` for `pid` to exit on its own, then SIGTERM, then SIGKILL.
    pub async fn stop(&self, pid: Pid, grace: Duration) -> ExitInfo {
        if let Ok(info) = tokio::time::timeout(grace, self.wait(pid)).await {
            return info;
        }
        let _ = signal::kill(pid, Signal::SIGTERM);
        if let Ok(info) = tokio::time::timeout(Duration::from_secs(2), self.wait(pid)).await {
            return info;
        }
        let _ = signal::kill(pid, Signal::SIGKILL);
        self.wait(pid).await
    }
}

/// Signals the supervisor acts on (besides SIGCHLD, which drives the reaper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM/SIGINT/SIGHUP/SIGQUIT: stop the VM gracefully (a second one forces).
    Stop(Signal),
}

/// Install the signal handlers and start the reaper. Call before any child is spawned and from
/// within the tokio runtime. Job-control signals are ignored: a PID 1 that stops on SIGTTOU when
/// writing to the terminal would hang the container.
pub fn start(children: Children) -> std::io::Result<mpsc::UnboundedReceiver<Request>> {
    use signal_hook::consts::*;
    for sig in [
        Signal::SIGTTOU,
        Signal::SIGTTIN,
        Signal::SIGTSTP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code; nothing can run concurrently here that
        // depends on the previous disposition.
        unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) }
            .map_err(std::io::Error::from)?;
    }
    let mut signals =
        signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT])?;
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<i32>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if raw_tx.send(sig).is_err() {
                    break;
                }
            }
        })?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Reap anything that exited before the handler was installed.
        log_exits(children.reap());
        while let Some(sig) = raw_rx.recv().await {
            if sig == SIGCHLD {
                log_exits(children.reap());
            } else if let Ok(s) = Signal::try_from(sig) {
                tracing::info!(signal = %s, "received signal");
                let _ = tx.send(Request::Stop(s));
            }
        }
    });
    Ok(rx)
}

fn log_exits(exits: Vec<(Pid, Role, ExitInfo)>) {
    for (pid, role, exit) in exits {
        tracing::debug!(pid = pid.as_raw(), %role, %exit, "child exited");
    }
}

/// When not PID 1 (tests, `docker run --init`), become a subreaper so grandchildren that
/// outlive their parents (virtiofsd's sandbox helper) are still ours to reap.
pub fn become_subreaper() {
    if std::process::id() != 1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::debug!(error = %e, "cannot become a child subreaper");
        }
    }
}
