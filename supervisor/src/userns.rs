//! Where bcvk's right to mount the guest's root comes from.
//!
//! With CAP_SYS_ADMIN (`--privileged`, `--cap-add SYS_ADMIN`) the container's own mount
//! namespace serves. Without it (podman's default capabilities, rootful or rootless) bcvk
//! moves itself into a user namespace of its own, with a mount namespace it owns: the ids of
//! the container are mapped to themselves (a forked helper, still in the container's
//! namespace, writes the maps), so owners stay what the image says and nothing widens what the
//! container may do. Every later mount (tmpfs scratch, overlay root) and every child (virtiofsd,
//! QEMU) lives in that namespace; it ends with bcvk, and its mounts with it.
//!
//! The parsing (capability masks, id maps) is pure and unit-tested; `acquire` does the work.

use std::io::{Read, Write};

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};

/// CAP_SYS_ADMIN's bit in the capability masks of /proc/PID/status.
const CAP_SYS_ADMIN: u32 = 21;

/// How the guest's root gets mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountRights {
    /// The container has CAP_SYS_ADMIN: mount in its own namespaces.
    Container,
    /// No CAP_SYS_ADMIN: bcvk's own user and mount namespaces, ids mapped to themselves.
    OwnUserNamespace,
}

/// What bcvk may do, settled once before anything else runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    pub mount: MountRights,
    /// The container runs in the host's initial user namespace (rootful podman or docker).
    pub host_userns: bool,
    /// The container maps more than one id (false: a rootless user without subordinate ids).
    pub many_ids: bool,
    /// pivot_root(2) is allowed here, so virtiofsd's namespace sandbox can work. Docker's
    /// default seccomp profile refuses it even with CAP_SYS_ADMIN; virtiofsd then dies *after*
    /// it has created its socket, so this is settled before it starts, not after it fails.
    pub pivot_root: bool,
    /// A new proc can be mounted in a new pid and mount namespace, as virtiofsd's namespace
    /// sandbox does. Without CAP_SYS_ADMIN in the host's user namespace the kernel allows that
    /// only where a proc mount is already fully visible, and a container's /proc is not (the
    /// engine masks /proc/keys and others): it worked with a store mounted only because the
    /// store's bind mount happened to carry another container's proc. Without a store (a
    /// --rootfs directory, on Kubernetes) virtiofsd died after creating its socket, racing
    /// QEMU. Settled before virtiofsd starts, like pivot_root.
    pub proc_mount: bool,
}

impl Privileges {
    /// `trusted.*` xattrs (a rootful store's overlay whiteout markers) can be read and
    /// written only with CAP_SYS_ADMIN in the host's initial user namespace.
    pub fn trusted_xattrs(&self) -> bool {
        self.mount == MountRights::Container && self.host_userns
    }

    /// For logs and status: which of the documented modes this run is in.
    pub fn describe(&self) -> &'static str {
        match (self.mount, self.host_userns) {
            (MountRights::Container, true) => "privileged (CAP_SYS_ADMIN)",
            (MountRights::Container, false) => "rootless, privileged (CAP_SYS_ADMIN)",
            (MountRights::OwnUserNamespace, true) => "unprivileged, in bcvk's own user namespace",
            (MountRights::OwnUserNamespace, false) => {
                "rootless, unprivileged, in bcvk's own user namespace"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is malformed ({line:?})")]
    Malformed { path: &'static str, line: String },
    #[error("bcvk must enter its user namespace before it starts threads ({0} running): this is a bug in bcvk")]
    Threads(usize),
    #[error("the container may not create a user namespace ({0}), and without CAP_SYS_ADMIN bcvk needs one to mount the guest's root: the engine's seccomp profile refuses it (docker's default does: add --cap-add SYS_ADMIN), or the host forbids it (sysctl user.max_user_namespaces=0, or AppArmor's kernel.apparmor_restrict_unprivileged_userns=1: allow it, or add --cap-add SYS_ADMIN)")]
    Unshare(nix::Error),
    #[error("cannot map the container's ids into bcvk's user namespace ({0}): the container lacks CAP_SETUID/CAP_SETGID (podman and docker grant them by default: do not drop them), or add --cap-add SYS_ADMIN")]
    Map(String),
    #[error("cannot start the helper that maps bcvk's user namespace: {0}")]
    Fork(nix::Error),
}

impl UsernsError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            UsernsError::Unshare(_) | UsernsError::Map(_) => Exit::Refused,
            _ => Exit::Internal,
        }
    }
}

/// Parse the hex `CapEff:` line of /proc/PID/status.
pub fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The `Threads:` count of /proc/PID/status.
fn thread_count(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One line of /proc/PID/uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdExtent {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

pub fn parse_id_map(text: &str, path: &'static str) -> Result<Vec<IdExtent>, UsernsError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| UsernsError::Malformed {
                    path,
                    line: l.into(),
                })?;
            match f[..] {
                [inside, outside, count] if count > 0 => Ok(IdExtent {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(UsernsError::Malformed {
                    path,
                    line: l.into(),
                }),
            }
        })
        .collect()
}

/// The initial user namespace maps every id to itself, in one extent.
pub fn is_host_userns(uid_map: &[IdExtent]) -> bool {
    uid_map
        == [IdExtent {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }]
}

/// The map bcvk writes for its own namespace: every id the container has, mapped to itself
/// (the container's own map in the parent's terms is one extent per line; the kernel wants
/// them all in one write).
pub fn identity_map(container: &[IdExtent]) -> String {
    container
        .iter()
        .map(|e| format!("{} {} {}\n", e.inside, e.inside, e.count))
        .collect()
}

fn read_proc(path: &'static str) -> Result<String, UsernsError> {
    std::fs::read_to_string(path).map_err(|source| UsernsError::Read { path, source })
}

/// Settle the privileges; without CAP_SYS_ADMIN, move this process into its own user and
/// mount namespaces. Must run while the process has one thread (before the runtime starts).
pub fn acquire() -> Result<Privileges, UsernsError> {
    let status = read_proc("/proc/self/status")?;
    let uid_map = parse_id_map(&read_proc("/proc/self/uid_map")?, "/proc/self/uid_map")?;
    let host_userns = is_host_userns(&uid_map);
    let many_ids = uid_map.iter().map(|e| u64::from(e.count)).sum::<u64>() > 1;
    let caps = effective_caps(&status).ok_or(UsernsError::Malformed {
        path: "/proc/self/status",
        line: "no CapEff line".into(),
    })?;
    if caps & (1 << CAP_SYS_ADMIN) != 0 {
        return Ok(Privileges {
            mount: MountRights::Container,
            host_userns,
            many_ids,
            pivot_root: pivot_root_allowed(),
            proc_mount: proc_mount_allowed(),
        });
    }
    let threads = thread_count(&status).unwrap_or(0);
    if threads != 1 {
        return Err(UsernsError::Threads(threads));
    }
    let gid_map = parse_id_map(&read_proc("/proc/self/gid_map")?, "/proc/self/gid_map")?;
    enter_own_namespace(&identity_map(&uid_map), &identity_map(&gid_map))?;
    Ok(Privileges {
        mount: MountRights::OwnUserNamespace,
        host_userns,
        many_ids,
        pivot_root: pivot_root_allowed(),
        proc_mount: proc_mount_allowed(),
    })
}

/// Ask the kernel for pivot_root("", ""): a seccomp filter or a missing CAP_SYS_ADMIN over the
/// mount namespace answers EPERM before the paths are looked at; otherwise the empty path
/// fails with ENOENT and nothing moves.
fn pivot_root_allowed() -> bool {
    match rustix::process::pivot_root("", "") {
        Err(e) => e != rustix::io::Errno::PERM,
        Ok(()) => true,
    }
}

/// Try what virtiofsd's namespace sandbox does first: a new mount and pid namespace, and a
/// new proc mounted over /proc there, in a throwaway child (pid 1 of that namespace) so that
/// nothing changes here. Must run while the process has one thread (a forked child of a
/// threaded process may only call async-signal-safe functions).
fn proc_mount_allowed() -> bool {
    use nix::mount::{mount, MsFlags};
    let attempt = || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
        // Nothing of the attempt may propagate back.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        // SAFETY: still single-threaded (the caller's contract, inherited by this child).
        match unsafe { fork() }? {
            ForkResult::Child => {
                let flags = MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_RELATIME;
                let code = i32::from(
                    mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>).is_err(),
                );
                // SAFETY: _exit skips the parent's atexit handlers and buffered state.
                unsafe { nix::libc::_exit(code) }
            }
            ForkResult::Parent { child } => match wait_helper(child)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                _ => Err(nix::Error::EPERM),
            },
        }
    };
    // SAFETY: the caller guarantees a single thread; the child only makes syscalls and exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = i32::from(attempt().is_err());
            // SAFETY: as above.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            matches!(wait_helper(child), Ok(WaitStatus::Exited(_, 0)))
        }
        Err(_) => false,
    }
}

/// Fork a helper that stays in the container's user namespace (where it holds CAP_SETUID and
/// CAP_SETGID), unshare, and let the helper write our maps; a process may map only its own id
/// into a namespace it created itself.
fn enter_own_namespace(uid_map: &str, gid_map: &str) -> Result<(), UsernsError> {
    let (go_r, go_w) = std::io::pipe().map_err(|e| UsernsError::Map(e.to_string()))?;
    let (err_r, err_w) = std::io::pipe().map_err(|e| UsernsError::Map(e.to_string()))?;
    let parent = getpid();
    // SAFETY: the process is single-threaded (checked by the caller), so the child may
    // allocate and use std freely; it only writes two files and exits.
    match unsafe { fork() }.map_err(UsernsError::Fork)? {
        ForkResult::Child => {
            drop(go_w);
            drop(err_r);
            let code = map_helper(parent, go_r, err_w, uid_map, gid_map);
            // SAFETY: _exit skips the parent's atexit handlers and buffered state.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            drop(err_w);
            let unshared = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS);
            // Closing the pipe without a byte tells the helper to give up.
            let mut go_w = go_w;
            if unshared.is_ok() {
                let _ = go_w.write_all(b"g");
            }
            drop(go_w);
            let mut why = String::new();
            let mut err_r = err_r;
            let _ = err_r.read_to_string(&mut why);
            let status = wait_helper(child);
            unshared.map_err(UsernsError::Unshare)?;
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(other) => Err(UsernsError::Map(if why.is_empty() {
                    format!("helper ended with {other:?}")
                } else {
                    why
                })),
                Err(e) => Err(UsernsError::Map(e.to_string())),
            }
        }
    }
}

fn wait_helper(child: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(child, None) {
            Err(nix::Error::EINTR) => continue,
            other => return other,
        }
    }
}

fn map_helper(
    parent: Pid,
    mut go: std::io::PipeReader,
    mut err: std::io::PipeWriter,
    uid_map: &str,
    gid_map: &str,
) -> i32 {
    let mut byte = [0u8; 1];
    if !matches!(go.read(&mut byte), Ok(1)) {
        return 2;
    }
    for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{parent}/{file}");
        if let Err(e) = std::fs::write(&path, map) {
            let _ = write!(err, "writing {path}: {e}");
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_effective_caps_and_threads() {
        let status =
            "Name:\tbcvk\nThreads:\t1\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\n";
        let caps = effective_caps(status).unwrap();
        assert_eq!(caps, 0xa80425fb);
        // podman's default set has no CAP_SYS_ADMIN; --privileged's has.
        assert_eq!(caps & (1 << CAP_SYS_ADMIN), 0);
        assert_ne!(
            effective_caps("CapEff:\t000001ffffffffff\n").unwrap() & (1 << CAP_SYS_ADMIN),
            0
        );
        assert_eq!(thread_count(status), Some(1));
        assert_eq!(effective_caps("Name: x\n"), None);
    }

    #[test]
    fn identity_maps_keep_every_extent() {
        let rootful = parse_id_map("         0          0 4294967295\n", "m").unwrap();
        assert!(is_host_userns(&rootful));
        assert_eq!(identity_map(&rootful), "0 0 4294967295\n");
        let rootless = parse_id_map(
            "         0       1000          1\n         1     100000      65536\n",
            "m",
        )
        .unwrap();
        assert!(!is_host_userns(&rootless));
        assert_eq!(identity_map(&rootless), "0 0 1\n1 1 65536\n");
    }

    #[test]
    fn malformed_maps_are_errors() {
        for bad in ["0 0\n", "a b c\n", "0 0 0\n", "0 0 1 1\n"] {
            assert!(parse_id_map(bad, "m").is_err(), "{bad:?}");
        }
        assert_eq!(parse_id_map("", "m").unwrap(), []);
    }

    #[test]
    fn only_the_host_namespace_with_sys_admin_reads_trusted_xattrs() {
        let p = |mount, host_userns| Privileges {
            mount,
            host_userns,
            many_ids: true,
            pivot_root: true,
            proc_mount: true,
        };
        assert!(p(MountRights::Container, true).trusted_xattrs());
        assert!(!p(MountRights::Container, false).trusted_xattrs());
        assert!(!p(MountRights::OwnUserNamespace, true).trusted_xattrs());
    }
}
