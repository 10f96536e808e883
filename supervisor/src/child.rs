//! What a child of the supervisor is: its [`Role`] and, once started, its [`Spawned`] handle.
//! Shared by `spawn` (which starts children) and `init` (which reaps them).

use std::fmt;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use nix::unistd::Pid;

/// What a child is for; used in logs and to decide what its exit means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Virtiofsd {
        tag: String,
    },
    Qemu,
    SshProbe,
    SshCommand,
    SshPoweroff,
    /// `bcvk ssh`: ssh takes this process's place.
    SshExec,
    /// `--debug`'s shell, instead of QEMU.
    DebugShell,
    /// A short helper run to completion before the VM (mkswap, qemu-img).
    Helper,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Virtiofsd { tag } => write!(f, "virtiofsd[{tag}]"),
            Role::Qemu => f.write_str("qemu"),
            Role::SshProbe => f.write_str("ssh-probe"),
            Role::SshCommand => f.write_str("ssh-command"),
            Role::SshPoweroff => f.write_str("ssh-poweroff"),
            Role::SshExec => f.write_str("ssh"),
            Role::DebugShell => f.write_str("debug shell"),
            Role::Helper => f.write_str("helper"),
        }
    }
}

/// A started child. Its exit is observed through the reaper, never through this handle.
pub struct Spawned {
    pub pid: Pid,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}
