//! The one place that starts processes: binary lookup, parent-death signal, argv logging.
//!
//! Nothing here waits for a child: as PID 1 the supervisor reaps every child itself
//! (`init::Reaper`), and a second `wait` on the same pid would steal its status. The only
//! exception is [`run_helper`], used before the reaper starts.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::Pid;

pub use crate::child::{Role, Spawned};
use crate::init::Children;

/// Directories searched after `$PATH`: Debian installs virtiofsd in /usr/libexec.
const EXTRA_DIRS: &[&str] = &["/usr/libexec", "/usr/lib/qemu", "/usr/local/libexec"];

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{name} not found in PATH or {dirs}: the bcvk image is incomplete, rebuild it")]
    NotFound { name: String, dirs: String },
    #[error("cannot start {role} ({program}): {source}")]
    Start {
        role: Role,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    HelperFailed {
        program: String,
        status: String,
        stderr: String,
    },
}

impl SpawnError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        Exit::Internal
    }
}

/// The stdio a child gets.
pub struct Stdios {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// The child takes the terminal (when stdin is the supervisor's controlling terminal):
    /// its process group becomes the foreground one, so it may read the terminal and put it
    /// in raw mode (ssh -t, QEMU's --console). Take it back with [`reclaim_terminal`].
    pub foreground: bool,
}

impl Stdios {
    /// stdin from /dev/null, stdout and stderr piped to the supervisor.
    pub fn piped() -> Stdios {
        Stdios {
            stdin: Stdio::null(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
            foreground: false,
        }
    }
}

/// Find `name` in `$PATH`, then in the libexec directories distributions use.
pub fn find_program(name: &str) -> Result<PathBuf, SpawnError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| SpawnError::NotFound {
            name: name.to_string(),
            dirs: EXTRA_DIRS.join(", "),
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Render an argv for logs and `--log-cmdline`, quoted so it can be pasted into a shell.
pub fn shell_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| shell_words::quote(&a.to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Start `program` with `args`. The child gets SIGKILL if the supervisor dies (it must not
/// outlive us: a QEMU without its supervisor is a leak), and its own process group: a
/// terminal's Ctrl-C (SIGINT to the foreground process group) reaches the supervisor alone,
/// which powers the guest off; QEMU and virtiofsd would die of it at once. A `foreground`
/// child (see [`Stdios`]) takes the terminal itself, before exec, so it never reads the
/// terminal from the background (which would stop it with SIGTTIN). The child is registered
/// with `children` (the reaper) under `role` in the same step ([`Children::start_child`]):
/// there is no moment where its exit could be reaped unregistered.
pub fn spawn(
    children: &Children,
    role: Role,
    program: &Path,
    args: &[OsString],
    stdios: Stdios,
) -> Result<Spawned, SpawnError> {
    children.start_child(role.clone(), || start(role, program, args, stdios))
}

fn start(
    role: Role,
    program: &Path,
    args: &[OsString],
    stdios: Stdios,
) -> Result<Spawned, SpawnError> {
    tracing::debug!(%role, argv = %shell_line(program, args), "spawn");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(stdios.stdin)
        .stdout(stdios.stdout)
        .stderr(stdios.stderr)
        .process_group(0);
    let foreground = stdios.foreground;
    // SAFETY: the closure runs between fork and exec (after setpgid) and only calls
    // async-signal-safe functions (prctl, sigprocmask, ioctl through nix; no allocation).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            if foreground {
                // Not a terminal, or not ours: ENOTTY, and the child simply stays behind.
                take_terminal(nix::unistd::getpgrp());
            }
            // The supervisor may run with signals blocked in some threads; children start clean.
            nix::sys::signal::SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| SpawnError::Start {
        role: role.clone(),
        program: program.to_path_buf(),
        source,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    // std's Child never reaps on drop; the reaper owns the wait.
    let mut child = child;
    Ok(Spawned {
        pid,
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    })
}

/// Make `pgrp` the foreground process group of the terminal on stdin, from a process that
/// may be in the background: with SIGTTOU blocked, the kernel allows it instead of stopping
/// the caller. Async-signal-safe. Returns whether it was done.
fn take_terminal(pgrp: Pid) -> bool {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))
        .is_err()
    {
        return false;
    }
    // SAFETY: fd 0 stays open for the duration of the call.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    let done = nix::unistd::tcsetpgrp(stdin, pgrp).is_ok();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    done
}

/// Give the terminal back to the supervisor after a `foreground` child ended, so the next
/// Ctrl-C reaches it again. Nothing happens without a terminal, or when it is ours already.
pub fn reclaim_terminal() {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return;
    }
    let ours = nix::unistd::getpgrp();
    if nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg != ours) && !take_terminal(ours) {
        tracing::debug!("cannot take the terminal back");
    }
}

/// Run a short helper (mkswap, qemu-img) to completion; returns what it printed on stdout.
/// Only valid BEFORE the reaper starts, since it waits for its own child.
pub fn run_helper<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Result<Vec<u8>, SpawnError> {
    let program = find_program(name)?;
    let argv: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    tracing::debug!(argv = %shell_line(&program, &argv), "run helper");
    let out = Command::new(&program)
        .args(&argv)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SpawnError::Start {
            role: Role::Helper,
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(SpawnError::HelperFailed {
            program: name.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Replace this process with `program` (`bcvk ssh`): returns only when that failed.
pub fn exec<S: AsRef<OsStr>>(role: Role, program: &Path, args: &[S]) -> SpawnError {
    use std::os::unix::process::CommandExt;
    let source = Command::new(program).args(args).exec();
    SpawnError::Start {
        role,
        program: program.to_path_buf(),
        source,
    }
}

/// Run `program` in the foreground with this process's stdio until it ends (`--debug`'s
/// shell, before any other child is started); returns its exit code.
pub fn run_foreground<S: AsRef<OsStr>>(
    role: Role,
    program: &Path,
    args: &[S],
) -> Result<i32, SpawnError> {
    use std::os::unix::process::CommandExt;
    let name = program.file_name().unwrap_or(program.as_os_str());
    let status = Command::new(program)
        .arg0(name)
        .args(args)
        .status()
        .map_err(|source| SpawnError::Start {
            role,
            program: program.to_path_buf(),
            source,
        })?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_reports_missing_programs() {
        assert!(find_program("sh").unwrap().ends_with("sh"));
        let err = find_program("no-such-program-bcvk").unwrap_err();
        assert!(err.to_string().contains("no-such-program-bcvk not found"));
    }

    #[test]
    fn shell_line_quotes_arguments() {
        let line = shell_line(
            Path::new("/usr/bin/qemu"),
            &["-append".into(), "root=rootfs rw".into()],
        );
        assert_eq!(line, "/usr/bin/qemu -append 'root=rootfs rw'");
    }

    #[test]
    fn children_get_their_own_process_group() {
        // A terminal's SIGINT goes to the foreground process group: the supervisor's, never
        // its children's. Without a terminal, `foreground` changes nothing.
        for foreground in [false, true] {
            let sp = start(
                Role::SshProbe,
                &find_program("sleep").unwrap(),
                &["5".into()],
                Stdios {
                    stdin: Stdio::null(),
                    stdout: Stdio::null(),
                    stderr: Stdio::null(),
                    foreground,
                },
            )
            .unwrap();
            let pgid = nix::unistd::getpgid(Some(sp.pid)).unwrap();
            assert_eq!(pgid, sp.pid);
            assert_ne!(pgid, nix::unistd::getpgrp());
            nix::sys::signal::kill(sp.pid, nix::sys::signal::Signal::SIGKILL).unwrap();
            nix::sys::wait::waitpid(sp.pid, None).unwrap();
        }
        // No terminal here (or not ours): nothing to take back, and no hang.
        reclaim_terminal();
    }

    #[test]
    fn helper_failure_carries_stderr() {
        let err = run_helper("sh", &["-c", "echo boom >&2; exit 3"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }
}
