//! How a VM's run fails: each way named once, with its exit code and the console lines that
//! explain it.

use crate::console::Phase;
use crate::init::ExitInfo;
use crate::spawn::SpawnError;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("virtiofsd for '{tag}' exited ({exit}) {when}{}", said(.stderr))]
    VirtiofsdDied {
        tag: String,
        exit: ExitInfo,
        when: &'static str,
        stderr: String,
    },
    #[error("virtiofsd for '{tag}' did not create its socket within {secs}s{}", said(.stderr))]
    VirtiofsdSocket {
        tag: String,
        secs: u64,
        stderr: String,
    },
    #[error("QEMU exited ({exit}) before the guest was done{}", said(.stderr))]
    QemuDied {
        exit: ExitInfo,
        stderr: String,
        tail: Vec<String>,
    },
    #[error("KVM cannot run this guest (QEMU: {detail}): run with --accel tcg, or fix KVM on the host (nested virtualization, /dev/kvm permissions)")]
    Kvm {
        detail: String,
        /// Whether the guest had been ready (a command may have run): then no retry.
        ready: bool,
        tail: Vec<String>,
    },
    #[error("the guest kernel panicked{hint}")]
    GuestPanic { hint: String, tail: Vec<String> },
    #[error("the guest rebooted; bcvk VMs are throwaway and end on reboot (the command did not finish){hint}")]
    GuestRebooted { hint: String, tail: Vec<String> },
    #[error("the guest powered off before {what}")]
    GuestEndedEarly {
        what: &'static str,
        tail: Vec<String>,
    },
    #[error("Timeout waiting for readiness: the guest was not reachable over SSH within {secs}s (last boot phase: {}): {}", .phase.label(), ready_timeout_hint(*.phase))]
    ReadyTimeout {
        secs: u64,
        phase: Phase,
        tail: Vec<String>,
    },
    #[error("the guest's kernel stalled in the {} phase{}: {sign}; it would never have become ready. {}", .phase.label(), if *.restarted { " again after a restart" } else { "" }, stalled_hint(*.restarted))]
    GuestStalled {
        sign: super::stall::StallSign,
        phase: Phase,
        /// Whether this was the boot `--on-stall restart` started over.
        restarted: bool,
        tail: Vec<String>,
    },
    #[error("cannot run ssh in the guest: {0}")]
    SshClient(String),
    #[error("the {firmware} firmware found nothing to boot on the disk: it needs a bootloader for {firmware} (try the other --firmware, or install one)")]
    NothingToBoot {
        firmware: &'static str,
        tail: Vec<String>,
    },
}

/// What to do about a guest that never answered SSH, by how far its boot came: one that never
/// reached its userspace is stuck before sshd could matter (its console tail shows where).
fn ready_timeout_hint(phase: Phase) -> &'static str {
    if phase.in_userspace() {
        "check that the image enables sshd, or raise --ready-timeout"
    } else {
        "it never reached its userspace (the console lines above show where it stopped): check the image's kernel and boot, or raise --ready-timeout on a slow machine"
    }
}

/// What to do about a stalled guest kernel (README: Troubleshooting, issue 28).
fn stalled_hint(restarted: bool) -> &'static str {
    if restarted {
        "Under TCG on a busy host this is a lost timer interrupt (README: Troubleshooting): run it again on a less loaded host, or with KVM"
    } else {
        "Under TCG on a busy host this is a lost timer interrupt (README: Troubleshooting): run it again (--on-stall restart does so once by itself), or use KVM"
    }
}

/// A child's last words after a colon, or nothing: never a dangling `: `.
fn said(stderr: &str) -> String {
    let stderr = stderr.trim().trim_end_matches('|').trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl VmError {
    /// The documented exit code (README): 75 for readiness, 69 for KVM, 71 when a process
    /// cannot be started, 70 for everything the guest or its helpers did.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::Exit;
        match self {
            VmError::ReadyTimeout { .. } => Exit::NotReady,
            VmError::GuestStalled { .. } => Exit::Stalled,
            VmError::NothingToBoot { .. } => Exit::NotFound,
            VmError::Kvm { .. } => Exit::Unavailable,
            VmError::Spawn(_) => Exit::Internal,
            _ => Exit::GuestFailed,
        }
        .code()
    }

    /// The console lines that explain a guest-side failure.
    pub fn console_tail(&self) -> &[String] {
        match self {
            VmError::QemuDied { tail, .. }
            | VmError::Kvm { tail, .. }
            | VmError::GuestPanic { tail, .. }
            | VmError::GuestRebooted { tail, .. }
            | VmError::NothingToBoot { tail, .. }
            | VmError::GuestEndedEarly { tail, .. }
            | VmError::ReadyTimeout { tail, .. }
            | VmError::GuestStalled { tail, .. } => tail,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_end_in_a_dangling_separator() {
        let died = |stderr: &str| {
            VmError::QemuDied {
                exit: ExitInfo::Code(1),
                stderr: stderr.into(),
                tail: vec![],
            }
            .to_string()
        };
        assert_eq!(
            died(""),
            "QEMU exited (exit code 1) before the guest was done"
        );
        assert_eq!(
            died("  | "),
            "QEMU exited (exit code 1) before the guest was done"
        );
        assert_eq!(
            died("qemu: boom"),
            "QEMU exited (exit code 1) before the guest was done: qemu: boom"
        );
        let socket = VmError::VirtiofsdSocket {
            tag: "rootfs".into(),
            secs: 10,
            stderr: String::new(),
        };
        assert!(!socket.to_string().ends_with(": "), "{socket}");
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let tail = Vec::new;
        assert_eq!(
            VmError::GuestPanic {
                hint: String::new(),
                tail: tail()
            }
            .exit_code(),
            70
        );
        assert_eq!(
            VmError::GuestRebooted {
                hint: String::new(),
                tail: tail()
            }
            .exit_code(),
            70
        );
        let timeout = VmError::ReadyTimeout {
            secs: 1,
            phase: Phase::Kernel,
            tail: tail(),
        };
        assert_eq!(timeout.exit_code(), 75);
    }

    #[test]
    fn a_ready_timeout_points_at_sshd_only_once_the_userspace_runs() {
        let msg = |phase| {
            VmError::ReadyTimeout {
                secs: 600,
                phase,
                tail: Vec::new(),
            }
            .to_string()
        };
        for p in [Phase::Userspace, Phase::Sshd] {
            let m = msg(p);
            // Upstream bcvk's words, which its users match on.
            assert!(m.starts_with("Timeout waiting for readiness"), "{m}");
            assert!(m.contains("enables sshd"), "{m}");
            assert!(
                m.contains(&format!("last boot phase: {}", p.label())),
                "{m}"
            );
        }
        for p in [
            Phase::Firmware,
            Phase::Kernel,
            Phase::Initrd,
            Phase::SwitchRoot,
        ] {
            let m = msg(p);
            assert!(!m.contains("sshd"), "{m}");
            assert!(m.contains("never reached its userspace"), "{m}");
            assert!(m.contains("--ready-timeout"), "{m}");
        }
    }
}
