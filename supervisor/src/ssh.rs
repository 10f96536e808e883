//! SSH into the guest: the per-VM key pair, and the ssh client's command line.
//!
//! The key is generated in process (no ssh-keygen), written 0600 under /run/bcvk/ssh, and its
//! public half reaches the guest as systemd credentials (see `credentials`). The ssh client is
//! OpenSSH's, started in batch mode against the port QEMU forwards inside the container.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngExt as _;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot create the SSH key {path}: {source}")]
    WriteKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the SSH key: {0}")]
    Encode(String),
    #[error("cannot read the --ssh-key file {path}: {source}: pass an OpenSSH public key file (e.g. ~/.ssh/id_ed25519.pub) mounted into the container")]
    ReadPublicKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an OpenSSH public key (expected one line like 'ssh-ed25519 AAAA... comment')")]
    BadPublicKey { path: PathBuf },
}

impl SshError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            // A `--ssh-key` that is missing, unreadable or not a key: a mistake in an option,
            // as for a missing `--bind` directory (not an image "not found").
            SshError::BadPublicKey { .. } | SshError::ReadPublicKey { .. } => Exit::Usage,
            _ => Exit::Internal,
        }
    }
}

/// The key files of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub private: PathBuf,
    pub public_line: String,
}

/// Generate a fresh ed25519 key pair into `dir` (created 0700): `id_ed25519` (0600) and
/// `id_ed25519.pub`. Each VM gets its own; nothing is reused across runs.
pub fn generate_key(dir: &Path, comment: &str) -> Result<KeyPair, SshError> {
    key_from_seed(dir, comment, rand::rng().random())
}

/// The key pair of a 32-byte ed25519 seed, written to `dir` as `generate_key` does: a
/// persistent VM keeps its seed, so the key its guest already authorized keeps working.
pub fn key_from_seed(dir: &Path, comment: &str, seed: [u8; 32]) -> Result<KeyPair, SshError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SshError::WriteKey { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(write_err(dir))?;
    let keypair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let private = ssh_key::PrivateKey::new(keypair.into(), comment)
        .map_err(|e| SshError::Encode(e.to_string()))?;
    let pem = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| SshError::Encode(e.to_string()))?;
    let public_line = private
        .public_key()
        .to_openssh()
        .map_err(|e| SshError::Encode(e.to_string()))?;

    let key_path = dir.join("id_ed25519");
    let _ = std::fs::remove_file(&key_path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(write_err(&key_path))?;
    f.write_all(pem.as_bytes()).map_err(write_err(&key_path))?;
    let pub_path = dir.join("id_ed25519.pub");
    std::fs::write(&pub_path, format!("{public_line}\n")).map_err(write_err(&pub_path))?;
    Ok(KeyPair {
        private: key_path,
        public_line,
    })
}

/// Read a user's own public key (`--ssh-key FILE`): one line, an OpenSSH public key.
pub fn read_public_key(path: &Path) -> Result<String, SshError> {
    let text = std::fs::read_to_string(path).map_err(|source| SshError::ReadPublicKey {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.trim();
    let algo = line.split_whitespace().next().unwrap_or("");
    let known = algo.starts_with("ssh-") || algo.starts_with("ecdsa-") || algo.starts_with("sk-");
    if line.is_empty()
        || line.contains('\n')
        || !known
        || ssh_key::PublicKey::from_openssh(line).is_err()
    {
        return Err(SshError::BadPublicKey {
            path: path.to_path_buf(),
        });
    }
    Ok(line.to_string())
}

/// How to reach the guest's sshd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
}

/// Whether ssh should allocate a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tty {
    /// `-T`: never (probes, scripted commands).
    No,
    /// `-t`: when our stdin is a terminal.
    Yes,
    /// `-tt`: force, even without a local terminal.
    Force,
}

/// The ssh client's argv (without the program) for running `remote` (already one shell string,
/// or empty for a login shell). Batch mode: no password prompts, no host-key questions (the
/// guest's host key is new on every boot, so recording it would only produce warnings).
/// With `log`, ssh's own messages go to that file at VERBOSE level instead of stderr: the
/// caller can then tell a connection that never authenticated from a remote command that
/// exited 255 (see [`authenticated`]).
pub fn ssh_args(
    target: &SshTarget,
    tty: Tty,
    connect_timeout_s: u32,
    remote: Option<&str>,
    log: Option<&Path>,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut opt = |k: &str, v: &str| {
        a.push("-o".into());
        a.push(format!("{k}={v}").into());
    };
    opt("BatchMode", "yes");
    opt("PasswordAuthentication", "no");
    opt("KbdInteractiveAuthentication", "no");
    opt("StrictHostKeyChecking", "no");
    opt("UserKnownHostsFile", "/dev/null");
    opt("GlobalKnownHostsFile", "/dev/null");
    opt("LogLevel", if log.is_some() { "VERBOSE" } else { "ERROR" });
    opt("IdentitiesOnly", "yes");
    opt("ConnectTimeout", &connect_timeout_s.to_string());
    // A guest that dies mid-command must not leave ssh hanging forever.
    opt("ServerAliveInterval", "5");
    opt("ServerAliveCountMax", "6");
    if let Some(log) = log {
        a.push("-E".into());
        a.push(log.as_os_str().to_os_string());
    }
    a.push("-i".into());
    a.push(target.key.clone().into_os_string());
    a.push("-p".into());
    a.push(target.port.to_string().into());
    a.push(match tty {
        Tty::No => "-T".into(),
        Tty::Yes => "-t".into(),
        Tty::Force => "-tt".into(),
    });
    a.push(format!("{}@{}", target.user, target.host).into());
    if let Some(r) = remote {
        // `--` keeps a remote command starting with '-' from being read as an ssh option.
        a.push("--".into());
        a.push(r.into());
    }
    a
}

/// Whether an ssh log written through `ssh_args(.., Some(log))` shows that the session was
/// authenticated, i.e. the remote command was started.
pub fn authenticated(log_text: &str) -> bool {
    log_text.lines().any(|l| l.contains("Authenticated to "))
}

/// Join a command's words into one remote shell string that the guest's shell splits back into
/// exactly these words (ssh itself joins its arguments with spaces, losing the boundaries).
pub fn remote_command(words: &[String]) -> String {
    shell_words::join(words)
}

/// The one-shot command as run in the guest: `remote` (shell code for the login shell) in a
/// child of a shell that outlives the terminal's signals, so that a command killed by Ctrl-C
/// in an `-it` session ends with the shell's 130 (128 + SIGINT) instead of ssh's 255 (sshd
/// reports a signal death as `exit-signal`, which the OpenSSH client turns into 255). The
/// outer shell's trap is a handler, not an ignore, so the inner shell starts with the default
/// dispositions and dies of the signal as usual; `$SHELL` is the login shell sshd set.
pub fn one_shot_remote(remote: &str) -> String {
    let script = r#"trap : INT QUIT TERM HUP; "${SHELL:-/bin/sh}" -c "$1"; exit $?"#;
    shell_words::join(["sh", "-c", script, "bcvk", remote])
}

/// ssh's own lines worth showing when a one-shot command ends with 255 (its log is VERBOSE):
/// not debug output, not the usual chatter of a session that ran.
pub fn noteworthy(log_line: &str) -> bool {
    const CHATTER: [&str; 4] = [
        "Authenticated to ",
        "Warning: Permanently added",
        "Transferred: ",
        "Bytes per second: ",
    ];
    !log_line.starts_with("debug")
        && !log_line.trim().is_empty()
        && !CHATTER.iter().any(|c| log_line.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_private_key_readable_only_by_root_and_a_valid_public_line() {
        let dir = tempfile::tempdir().unwrap();
        let kp = generate_key(&dir.path().join("ssh"), "bcvk-test").unwrap();
        let mode = std::fs::metadata(&kp.private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(dir.path().join("ssh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert!(
            kp.public_line.starts_with("ssh-ed25519 AAAA"),
            "{}",
            kp.public_line
        );
        assert!(kp.public_line.ends_with(" bcvk-test"));
        let pem = std::fs::read_to_string(&kp.private).unwrap();
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        // Private and public halves belong together; two runs differ.
        let parsed = ssh_key::PrivateKey::from_openssh(&pem).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), kp.public_line);
        let again = generate_key(&dir.path().join("ssh"), "bcvk-test").unwrap();
        assert_ne!(again.public_line, kp.public_line);
    }

    #[test]
    fn reads_user_public_keys_and_rejects_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let kp = generate_key(dir.path(), "me").unwrap();
        let pub_path = dir.path().join("id_ed25519.pub");
        assert_eq!(read_public_key(&pub_path).unwrap(), kp.public_line);
        let err = read_public_key(&kp.private).unwrap_err();
        assert!(
            err.to_string().contains("is not an OpenSSH public key"),
            "{err}"
        );
        let err = read_public_key(&dir.path().join("missing.pub")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read the --ssh-key file"),
            "{err}"
        );
    }

    #[test]
    fn ssh_args_are_batch_mode_with_the_key_and_port() {
        let t = SshTarget {
            host: "127.0.0.1".into(),
            port: 2222,
            user: "root".into(),
            key: "/run/bcvk/ssh/id_ed25519".into(),
        };
        let args: Vec<String> = ssh_args(&t, Tty::No, 10, Some("uname -r"), None)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for want in [
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=no",
            "-o UserKnownHostsFile=/dev/null",
            "-o PasswordAuthentication=no",
            "-o ConnectTimeout=10",
            "-i /run/bcvk/ssh/id_ed25519 -p 2222 -T root@127.0.0.1 -- uname -r",
        ] {
            assert!(joined.contains(want), "missing {want:?} in {joined}");
        }
        let login = ssh_args(&t, Tty::Yes, 10, None, None);
        let logged: Vec<String> = ssh_args(
            &t,
            Tty::No,
            10,
            Some("true"),
            Some(Path::new("/run/bcvk/ssh.log")),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        let joined = logged.join(" ");
        assert!(
            joined.contains("-o LogLevel=VERBOSE") && joined.contains("-E /run/bcvk/ssh.log"),
            "{joined}"
        );
        assert!(authenticated(
            "debug\nAuthenticated to 127.0.0.1 ([127.0.0.1]:2222) using \"publickey\".\n"
        ));
        assert!(!authenticated("Connection closed by 127.0.0.1 port 2222\n"));
        assert_eq!(login.last().unwrap(), "root@127.0.0.1");
        assert!(login.contains(&OsString::from("-t")));
    }

    #[test]
    fn one_shot_remote_runs_the_command_under_a_signal_proof_shell() {
        let inner = "echo 'a b'; exit 42";
        let words = shell_words::split(&one_shot_remote(inner)).unwrap();
        assert_eq!(words[0], "sh");
        assert_eq!(words[1], "-c");
        assert!(
            words[2].starts_with("trap : INT QUIT TERM HUP;"),
            "{}",
            words[2]
        );
        assert_eq!(words[3], "bcvk");
        assert_eq!(words[4], inner);
        assert_eq!(words.len(), 5);
    }

    #[test]
    fn one_shot_remote_keeps_exit_codes_and_turns_sigint_into_130() {
        use std::os::unix::process::CommandExt;
        use std::process::Command;
        let run = |inner: &str| {
            let words = shell_words::split(&one_shot_remote(inner)).unwrap();
            let mut cmd = Command::new(&words[0]);
            cmd.args(&words[1..]).env("SHELL", "/bin/sh");
            // Its own process group, as sshd gives a session: `kill 0` below must not reach
            // the test harness.
            cmd.process_group(0);
            // And SIGINT at its default, as sshd gives it: a harness started in the background
            // by a shell (`cmd &`) inherits SIGINT ignored, and a shell cannot undo that.
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    use nix::sys::signal::{signal, SigHandler, Signal};
                    signal(Signal::SIGINT, SigHandler::SigDfl)
                        .map(drop)
                        .map_err(std::io::Error::from)
                });
            }
            cmd.output().unwrap()
        };
        let out = run("echo 'a b'; echo err >&2; exit 42");
        assert_eq!(out.status.code(), Some(42));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        // What Ctrl-C does to the foreground process group: every member gets SIGINT.
        let out = run("kill -INT 0; sleep 5; echo not-reached");
        assert_eq!(out.status.code(), Some(130), "{out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("not-reached"));
    }

    #[test]
    fn only_noteworthy_ssh_lines_are_shown() {
        assert!(noteworthy("Connection to 127.0.0.1 closed by remote host."));
        assert!(!noteworthy("debug1: channel 0: new session"));
        assert!(!noteworthy(
            "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts."
        ));
        assert!(!noteworthy(
            "Transferred: sent 3944, received 3552 bytes, in 4.1 seconds"
        ));
        assert!(!noteworthy("Bytes per second: sent 959.4, received 864.0"));
        assert!(!noteworthy(
            "Authenticated to 127.0.0.1 ([127.0.0.1]:2222) using \"publickey\"."
        ));
    }

    #[test]
    fn remote_command_keeps_word_boundaries() {
        let words: Vec<String> = ["sh", "-c", "echo 'a b'; exit 42"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let joined = remote_command(&words);
        assert_eq!(shell_words::split(&joined).unwrap(), words);
        assert_eq!(remote_command(&["true".to_string()]), "true");
    }
}
