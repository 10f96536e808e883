//! SSH into the guest: the readiness probe's `ssh true` loop and the one-shot command.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::error::VmError;
use crate::init::{Children, ExitInfo};
use crate::readiness;
use crate::spawn::{self, Role, Stdios};
use crate::ssh::{self, SshTarget, Tty};

/// The running one-shot command.
pub(super) type CommandFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<CommandEnd, VmError>>>>;

/// How the one-shot command's ssh ended, and what ssh itself said (shown only when its exit
/// code stands: a guest that went down under the command is reported as such instead).
pub(super) struct CommandEnd {
    pub exit: ExitInfo,
    pub ssh_said: Vec<String>,
}

/// How long a command's end that may be the guest going down (ssh's 255, or a signal's
/// 128+N) waits for QEMU to end, unless the guest answers SSH again first.
pub(super) const GUEST_GONE_WAIT: Duration = Duration::from_secs(60);

/// Whether a command's exit may mean the guest went down under it: ssh's own 255 (the
/// connection closed: a panic, a power-off), or death by a signal (a reboot's SIGTERM).
pub(super) fn may_be_guest_going_down(exit: ExitInfo) -> bool {
    matches!(exit.code(), 129..=192 | 255)
}

pub(super) fn ssh_bin() -> PathBuf {
    spawn::find_program("ssh").unwrap_or_else(|_| PathBuf::from("/usr/bin/ssh"))
}

/// Wait until a real `ssh true` round trip succeeds: started once a new connection reaches
/// the guest at once (its network answers), then again every poll while the guest resets it
/// (see `readiness`). Each attempt is logged at debug level with how it ended; ssh's own
/// messages go to `ssh-probe.log` in the run directory. Returns when the attempt that
/// succeeded started.
pub(super) async fn probe_ready(
    children: Children,
    target: SshTarget,
    net_port: Option<u16>,
    run_dir: PathBuf,
) -> Result<Instant, VmError> {
    let ssh = spawn::find_program("ssh").map_err(|e| VmError::SshClient(e.to_string()))?;
    let log = run_dir.join("ssh-probe.log");
    let mut network = net_port.is_none();
    let mut quick_failures = 0u32;
    let mut attempt = 0u32;
    loop {
        if !network {
            // A banner instead (the network probe unanswered): sshd is there, try it.
            let how = readiness::wait_for_network(target.port, net_port.expect("unset")).await;
            network = how == readiness::Reached::Network;
        } else if readiness::knock_first(quick_failures) {
            readiness::wait_for_sshd(target.port).await;
        }
        attempt += 1;
        let args = ssh::ssh_args(&target, Tty::No, 10, Some("true"), Some(&log));
        let stdios = Stdios {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            foreground: false,
        };
        let t = Instant::now();
        let sp = spawn::spawn(&children, Role::SshProbe, &ssh, &args, stdios)?;
        let exit = children.wait(sp.pid).await;
        let took = t.elapsed();
        tracing::debug!(attempt, %exit, ms = took.as_millis() as u64, "ssh probe: `ssh true` ended");
        if exit.success() {
            return Ok(t);
        }
        quick_failures = if took < readiness::QUICK_FAILURE {
            quick_failures + 1
        } else {
            0
        };
        tokio::time::sleep(readiness::retry_delay(took)).await;
    }
}

/// Run the one-shot command with the container's stdio, returning its exit status.
///
/// Under heavy load a connection can still drop during key exchange right after the probe
/// succeeded; ssh then exits 255 before the command ran. Its VERBOSE log (kept in a file, not
/// on the command's stderr) tells that case apart from a command that itself exited 255, and
/// only that case is retried.
pub(super) async fn run_command(
    children: Children,
    target: SshTarget,
    remote: String,
    tty: Tty,
    log: PathBuf,
) -> Result<CommandEnd, VmError> {
    let ssh = spawn::find_program("ssh").map_err(|e| VmError::SshClient(e.to_string()))?;
    let mut attempt = 1;
    loop {
        let _ = std::fs::remove_file(&log);
        let args = ssh::ssh_args(&target, tty, 10, Some(&remote), Some(&log));
        let stdios = Stdios {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            foreground: true,
        };
        let sp = spawn::spawn(&children, Role::SshCommand, &ssh, &args, stdios)?;
        let exit = children.wait(sp.pid).await;
        spawn::reclaim_terminal();
        if exit != ExitInfo::Code(255) {
            return Ok(CommandEnd {
                exit,
                ssh_said: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if ssh::authenticated(&text) || attempt == 3 {
            // What ssh said went to the log, not to stderr; the caller shows it.
            let ssh_said = text
                .lines()
                .filter(|l| ssh::noteworthy(l))
                .map(str::to_string)
                .collect();
            return Ok(CommandEnd { exit, ssh_said });
        }
        let reason = text
            .lines()
            .rev()
            .find(|l| ssh::noteworthy(l))
            .unwrap_or("no message")
            .to_string();
        tracing::warn!(
            attempt,
            %reason,
            "the SSH connection for the command failed before it started: retrying"
        );
        attempt += 1;
        readiness::wait_for_sshd(target.port).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn only_ssh_failures_and_signals_may_mean_the_guest_went_down() {
        for code in [0, 1, 42, 127, 128] {
            assert!(!may_be_guest_going_down(ExitInfo::Code(code)), "{code}");
        }
        for code in [130, 137, 143, 255] {
            assert!(may_be_guest_going_down(ExitInfo::Code(code)), "{code}");
        }
        assert!(may_be_guest_going_down(ExitInfo::Signaled(Signal::SIGKILL)));
    }
}
