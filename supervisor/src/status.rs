//! The VM's state as others see it: `/run/bcvk/status.json` (read by `bcvk status` and
//! `bcvk ssh` through `podman exec`) and the one-line summaries printed for people.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Where the supervisor keeps its runtime files inside the container.
pub const RUN_DIR: &str = "/run/bcvk";
pub const STATUS_FILE: &str = "status.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Booting,
    Ready,
    Stopping,
    Exited,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Starting => "starting",
            State::Booting => "booting",
            State::Ready => "ready",
            State::Stopping => "stopping",
            State::Exited => "exited",
        })
    }
}

/// Milliseconds since the supervisor started, per phase (absent until reached).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_exec_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_root_ms: Option<u64>,
    /// When the readiness probe started the `ssh true` that succeeded (ready_ms is its end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_attempt_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_done_ms: Option<u64>,
    /// When the guest's sshd started listening, on the guest's own clock mapped onto these
    /// (see `console::GuestClock`): known when journald forwards sshd's "Server listening" to
    /// the console (`--karg systemd.journald.forward_to_console=1`, as integration/bench does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sshd_listening_ms: Option<i64>,
    /// When the guest's network got its address (systemd-networkd's "DHCPv4 address ...
    /// acquired"), mapped the same way: sshd can complete a handshake from the later of the two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_address_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    pub image: String,
    pub image_id: String,
    pub accel: String,
    /// The VM's name: the guest's hostname (by default the container's name or hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub vcpus: u32,
    #[serde(default)]
    pub memory_mib: u64,
    /// The boot phase last seen on the console (firmware, kernel, initrd, switch-root,
    /// userspace), kept once the VM is ready.
    #[serde(default)]
    pub phase: String,
    /// Unix time (seconds) the supervisor started.
    pub started_at: u64,
    pub timings: Timings,
    pub ssh: crate::ssh::SshTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no bcvk VM runs in this container ({path} is missing): run this inside a bcvk container, e.g. podman exec NAME bcvk status")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a bcvk status file ({source}): is the supervisor of another version?")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn status_path(run_dir: &Path) -> PathBuf {
    run_dir.join(STATUS_FILE)
}

/// Write atomically (temp file + rename) so a concurrent `bcvk status` never reads half a file.
pub fn write(run_dir: &Path, status: &Status) -> Result<(), StatusError> {
    let path = status_path(run_dir);
    let tmp = run_dir.join(format!(".{STATUS_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(status).expect("status serializes");
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| StatusError::Write { path, source })
}

pub fn read(run_dir: &Path) -> Result<Status, StatusError> {
    let path = status_path(run_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StatusError::Missing { path })
        }
        Err(source) => return Err(StatusError::Read { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| StatusError::Parse { path, source })
}

/// The human form of `bcvk status`.
pub fn render(status: &Status) -> String {
    let mut out = format!(
        "state: {} (boot phase: {})\nimage: {} ({})\naccel: {}, {} vCPUs, {} MiB\n",
        status.state,
        if status.phase.is_empty() {
            "-"
        } else {
            &status.phase
        },
        status.image,
        &status.image_id[..status.image_id.len().min(12)],
        status.accel,
        status.vcpus,
        status.memory_mib
    );
    if let Some(name) = &status.name {
        out.push_str(&format!("name: {name}\n"));
    }
    if let Some(ms) = status.timings.ready_ms {
        out.push_str(&format!("ready after: {:.1}s\n", ms as f64 / 1000.0));
    }
    let uptime = now_unix().saturating_sub(status.started_at);
    out.push_str(&format!(
        "uptime: {uptime}s\nssh: {}@{}:{} (bcvk ssh)\n",
        status.ssh.user, status.ssh.host, status.ssh.port
    ));
    if let Some(code) = status.exit_code {
        out.push_str(&format!("exit code: {code}\n"));
    }
    if let Some(msg) = &status.message {
        out.push_str(&format!("message: {msg}\n"));
    }
    out
}

/// Wait until the VM is ready or has exited, polling the status file.
pub fn wait_ready(run_dir: &Path, timeout: std::time::Duration) -> Result<Status, StatusError> {
    wait_ready_watching(run_dir, timeout, |_| {})
}

/// [`wait_ready`], handing every status read while waiting (not the last) to `watch`.
pub fn wait_ready_watching(
    run_dir: &Path,
    timeout: std::time::Duration,
    mut watch: impl FnMut(&Status),
) -> Result<Status, StatusError> {
    // None: no deadline a clock can reach (an overflowing Instant would panic).
    let deadline = std::time::Instant::now().checked_add(timeout);
    let before_deadline = || deadline.is_none_or(|d| std::time::Instant::now() < d);
    loop {
        // Missing: a restarted container's bcvk has removed the last run's file and not yet
        // written its own.
        let st = match read(run_dir) {
            Err(StatusError::Missing { .. }) if before_deadline() => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                continue;
            }
            other => other?,
        };
        if matches!(st.state, State::Ready | State::Exited | State::Stopping) || !before_deadline()
        {
            return Ok(st);
        }
        watch(&st);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The one updating line of a booting VM on a terminal: the cursor back to the line's start,
/// the line cleared, then the seconds since the VM started and its boot phase. The
/// supervisor's own progress (`podman run -it`) and `bcvk status --wait --progress tty` show it.
/// How `bcvk status --wait --progress` shows the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    Tty,
    Plain,
}

pub fn progress_line(elapsed_secs: u64, phase: &str) -> String {
    format!("\r\x1b[K[{elapsed_secs:>4}s] booting: {phase}")
}

/// What `bcvk status --wait --progress` shows while the VM boots, on stderr: for a terminal
/// one line, rewritten in place, with the time since the VM started and its boot phase; for
/// a log, a line each time the phase changes. `None`: nothing to print now.
pub fn progress_text(
    st: &Status,
    mode: Progress,
    last_phase: &mut String,
    now_unix: u64,
) -> Option<String> {
    let elapsed = now_unix.saturating_sub(st.started_at);
    let phase = if st.phase.is_empty() { "-" } else { &st.phase };
    match mode {
        Progress::Tty => {
            *last_phase = phase.to_string();
            Some(progress_line(elapsed, phase))
        }
        Progress::Plain if last_phase.as_str() != phase => {
            *last_phase = phase.to_string();
            Some(format!("bcvk: booting ({elapsed}s): {phase}\n"))
        }
        Progress::Plain => None,
    }
}

/// `bcvk status --health`, podman's `--health-cmd`: 0 when the VM is ready, else 1 (podman
/// and docker reserve other codes) with one line saying why; silent when healthy.
pub fn health(run_dir: &Path) -> i32 {
    match read(run_dir) {
        Ok(st) if st.state == State::Ready => 0,
        Ok(st) => {
            println!("the VM is {} (boot phase: {})", st.state, st.phase);
            1
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_tty_rewrites_one_line_plain_prints_phase_changes() {
        use Progress;
        let mut st = sample();
        st.state = State::Starting;
        st.started_at = 1000;
        st.phase = "kernel".into();
        let mut last = String::new();
        assert_eq!(
            progress_text(&st, Progress::Tty, &mut last, 1012).as_deref(),
            Some("\r\x1b[K[  12s] booting: kernel")
        );
        let mut last = String::new();
        assert_eq!(
            progress_text(&st, Progress::Plain, &mut last, 1012).as_deref(),
            Some("bcvk: booting (12s): kernel\n")
        );
        assert_eq!(progress_text(&st, Progress::Plain, &mut last, 1013), None);
        st.phase = "systemd".into();
        assert_eq!(
            progress_text(&st, Progress::Plain, &mut last, 1020).as_deref(),
            Some("bcvk: booting (20s): systemd\n")
        );
        // A clock behind the start (another host's) shows 0, never wraps.
        assert_eq!(
            progress_text(&st, Progress::Tty, &mut last, 10).as_deref(),
            Some("\r\x1b[K[   0s] booting: systemd")
        );
    }

    fn sample() -> Status {
        Status {
            state: State::Ready,
            image: "localhost/foo:latest".into(),
            image_id: "ab".repeat(32),
            accel: "tcg".into(),
            name: Some("vm1".into()),
            vcpus: 2,
            memory_mib: 2048,
            phase: "userspace".into(),
            started_at: now_unix(),
            timings: Timings {
                ready_ms: Some(1500),
                ..Default::default()
            },
            ssh: crate::ssh::SshTarget {
                host: "127.0.0.1".into(),
                port: 2222,
                user: "root".into(),
                key: "/run/bcvk/ssh/id_ed25519".into(),
            },
            exit_code: None,
            message: None,
        }
    }

    #[test]
    fn round_trips_and_renders() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample()).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, sample());
        let json = std::fs::read_to_string(status_path(dir.path())).unwrap();
        assert!(json.contains("\"state\": \"ready\""), "{json}");
        let text = render(&back);
        assert!(
            text.contains("state: ready (boot phase: userspace)"),
            "{text}"
        );
        assert!(text.contains("accel: tcg, 2 vCPUs, 2048 MiB"), "{text}");
        assert!(text.contains("name: vm1"), "{text}");
        assert!(json.contains("\"memory_mib\": 2048"), "{json}");
        assert_eq!(health(dir.path()), 0);
        let mut booting = sample();
        booting.state = State::Booting;
        booting.phase = "kernel".into();
        write(dir.path(), &booting).unwrap();
        assert_eq!(health(dir.path()), 1);
        assert_eq!(health(&dir.path().join("missing")), 1);
        assert!(text.contains("image: localhost/foo:latest (abababababab)"));
        assert!(text.contains("ready after: 1.5s"));
    }

    #[test]
    fn missing_and_corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err
            .to_string()
            .contains("no bcvk VM runs in this container"));
        std::fs::write(status_path(dir.path()), b"{not json").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not a bcvk status file"));
    }
}
