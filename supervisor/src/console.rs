//! The guest's serial console: streamed to the container's stdout (so `podman logs` shows the
//! boot) or only to a file in one-shot mode, kept as a tail for error messages, and read for
//! the boot phase and for why the guest ended.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Lines of console kept for error messages.
pub const TAIL_LINES: usize = 40;

/// Boot phases as seen on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Firmware,
    Kernel,
    Initrd,
    SwitchRoot,
    Userspace,
    Sshd,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Firmware => "firmware",
            Phase::Kernel => "kernel",
            Phase::Initrd => "initrd",
            Phase::SwitchRoot => "switch-root",
            Phase::Userspace => "systemd",
            Phase::Sshd => "sshd",
        }
    }
}

/// The phase a console line announces, if any. Matches what Linux 6.x and systemd 252..257
/// print with and without `quiet`.
pub fn phase_of(line: &str) -> Option<Phase> {
    if line.contains("Linux version ") || line.contains("Booting the kernel") {
        Some(Phase::Kernel)
    } else if line.contains("(Initrd)")
        || line.contains("Initramfs")
        || line.contains("in initrd")
        || line.contains("Run /init as init process")
    {
        Some(Phase::Initrd)
    } else if line.contains("Switching root") || line.contains("Switch Root") {
        Some(Phase::SwitchRoot)
    } else if line.contains("Welcome to ") {
        // systemd's version banner ("systemd 257 running in system mode") prints in the
        // initrd too, so only the post-switch-root welcome marks the real userspace.
        Some(Phase::Userspace)
    } else if line.contains("OpenSSH") || line.contains("ssh.service") || line.contains("sshd") {
        Some(Phase::Sshd)
    } else {
        None
    }
}

/// Why the guest ended, read from the kernel's last words on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    PowerOff,
    Reboot,
    Panic,
    Unknown,
}

/// Classify from the console tail: the kernel prints these at KERN_EMERG, so even `quiet`
/// does not hide them.
pub fn classify_end<'a>(tail: impl IntoIterator<Item = &'a str>) -> GuestEnd {
    let mut end = GuestEnd::Unknown;
    for line in tail {
        if line.contains("Kernel panic - not syncing") {
            // A panic is final whatever follows (the "Rebooting in" line).
            return GuestEnd::Panic;
        } else if line.contains("reboot: Power down") || line.contains("reboot: System halted") {
            end = GuestEnd::PowerOff;
        } else if line.contains("reboot: Restarting system") {
            end = GuestEnd::Reboot;
        }
    }
    end
}

/// A hint for well-known guest failures, appended to the error message.
pub fn hint<'a>(tail: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    for line in tail {
        if line.contains("CPU ISA level is lower than required") {
            return Some(
                "the image needs a newer CPU model than the default for TCG: pass --cpu max",
            );
        }
        if line.contains("VFS: Unable to mount root fs") || line.contains("Cannot open root device")
        {
            return Some("the kernel could not mount the virtiofs root: the image needs an initramfs with virtiofs support (dracut's virtiofs module) or a kernel with CONFIG_VIRTIO_FS=y");
        }
        if line.contains("No working init found") || line.contains("Requested init") {
            return Some(
                "the kernel found no init: check --karg init=... and that the image has systemd",
            );
        }
    }
    None
}

/// The last lines of console output, shared between the pump and error reporting.
#[derive(Clone, Default)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Tail {
    pub fn push(&self, line: &str) {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == TAIL_LINES {
            l.pop_front();
        }
        l.push_back(line.to_string());
    }
    pub fn lines(&self) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().cloned().collect()
    }
    /// Refill from a file's last lines (the interactive console logs through QEMU directly).
    pub fn load_file(&self, path: &Path) {
        if let Ok(bytes) = std::fs::read(path) {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(TAIL_LINES);
            for line in &all[start..] {
                self.push(&clean(line));
            }
        }
    }
}

/// Strip terminal control sequences and carriage returns so tails and logs stay readable.
pub fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ ... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Where console lines go besides the tail and the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Stdout,
    Stderr,
    None,
}

/// Copy the console from QEMU's stdout: to `echo`, to `log_file`, into `tail`, reporting each
/// new phase through `on_phase`. Ends at EOF (QEMU exited).
pub async fn pump(
    source: impl tokio::io::AsyncRead + Unpin,
    echo: Echo,
    log_file: &Path,
    tail: Tail,
    on_phase: impl FnMut(Phase),
) {
    let out: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = match echo {
        Echo::Stdout => Some(Box::new(tokio::io::stdout())),
        Echo::Stderr => Some(Box::new(tokio::io::stderr())),
        Echo::None => None,
    };
    pump_into(source, out, log_file, tail, on_phase).await
}

async fn pump_into(
    source: impl tokio::io::AsyncRead + Unpin,
    mut echo: Option<impl tokio::io::AsyncWrite + Unpin>,
    log_file: &Path,
    tail: Tail,
    mut on_phase: impl FnMut(Phase),
) {
    let mut log = tokio::fs::File::create(log_file).await.ok();
    let mut reader = BufReader::new(source);
    let mut raw = Vec::new();
    let mut last_phase = Phase::Firmware;
    // Whether the last bytes echoed ended a line: a guest ending mid-line (at a `login: `
    // prompt) would leave the next line of `podman logs`, bcvk's own, glued to it.
    let mut mid_line = false;
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        mid_line = !raw.ends_with(b"\n");
        // Console output is passed through untouched; only the tail and phases use clean text.
        if let Some(out) = echo.as_mut() {
            let _ = out.write_all(&raw).await;
            let _ = out.flush().await;
        }
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(&raw).await;
        }
        let line = clean(&String::from_utf8_lossy(&raw));
        if let Some(p) = phase_of(&line) {
            if p > last_phase {
                last_phase = p;
                on_phase(p);
            }
        }
        tail.push(&line);
    }
    if let (true, Some(out)) = (mid_line, echo.as_mut()) {
        let _ = out.write_all(b"\n").await;
        let _ = out.flush().await;
    }
    if let Some(mut f) = log {
        let _ = f.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_a_debian_boot() {
        let boot = [
            ("[    0.000000] Linux version 6.12.57+deb13-amd64 (debian-kernel@lists.debian.org)", Some(Phase::Kernel)),
            ("[    1.2] Run /init as init process", Some(Phase::Initrd)),
            ("[    1.5] systemd[1]: Running in initrd.", Some(Phase::Initrd)),
            ("Welcome to \u{1b}[1mDebian GNU/Linux 13 (trixie) dracut-106-5 (Initramfs)\u{1b}[0m!", Some(Phase::Initrd)),
            ("[  OK  ] Reached target Switch Root.", Some(Phase::SwitchRoot)),
            ("Welcome to Debian GNU/Linux 13 (trixie)!", Some(Phase::Userspace)),
            ("         Starting ssh.service - OpenBSD Secure Shell server...", Some(Phase::Sshd)),
            ("random noise", None),
        ];
        for (line, want) in boot {
            assert_eq!(phase_of(&clean(line)), want, "{line}");
        }
    }

    #[test]
    fn classifies_how_the_guest_ended() {
        assert_eq!(
            classify_end(["x", "[ 9.1] reboot: Power down"]),
            GuestEnd::PowerOff
        );
        assert_eq!(
            classify_end(["reboot: Restarting system"]),
            GuestEnd::Reboot
        );
        let panic = [
            "Kernel panic - not syncing: Requested init /nonexistent failed (error -2).",
            "Rebooting in -1 seconds..",
            "reboot: Restarting system",
        ];
        assert_eq!(classify_end(panic), GuestEnd::Panic);
        assert_eq!(classify_end(["nothing"]), GuestEnd::Unknown);
        assert!(hint(panic).unwrap().contains("init"));
        assert!(
            hint(["Fatal glibc error: CPU ISA level is lower than required"])
                .unwrap()
                .contains("--cpu max")
        );
    }

    #[test]
    fn tail_keeps_the_last_lines_and_clean_strips_escapes() {
        let t = Tail::default();
        for i in 0..100 {
            t.push(&format!("line {i}"));
        }
        let l = t.lines();
        assert_eq!(l.len(), TAIL_LINES);
        assert_eq!(l.last().unwrap(), "line 99");
        assert_eq!(clean("\u{1b}[0;32m  OK  \u{1b}[0m] done\r"), "  OK  ] done");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pump_writes_the_log_and_reports_phases_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let input: &[u8] = b"Linux version 6.12\nRun /init as init process\nLinux version again\nWelcome to Debian!\n";
        let tail = Tail::default();
        let mut phases = Vec::new();
        pump(input, Echo::None, &log, tail.clone(), |p| phases.push(p)).await;
        assert_eq!(phases, vec![Phase::Kernel, Phase::Initrd, Phase::Userspace]);
        assert_eq!(std::fs::read(&log).unwrap(), input);
        assert_eq!(tail.lines().len(), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pump_ends_a_last_partial_line_in_the_log_too() {
        // The console file keeps the guest's bytes as they were; the tail has the partial line.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let input: &[u8] = b"Debian GNU/Linux 13 vm ttyS0\n\nvm login: ";
        let tail = Tail::default();
        let mut echoed = Vec::new();
        pump_into(input, Some(&mut echoed), &log, tail.clone(), |_| {}).await;
        assert_eq!(std::fs::read(&log).unwrap(), input);
        assert_eq!(tail.lines().last().unwrap(), "vm login: ");
        // What podman logs shows ends the line, so bcvk's next line starts on its own.
        assert_eq!(echoed, b"Debian GNU/Linux 13 vm ttyS0\n\nvm login: \n");
        let mut echoed = Vec::new();
        pump_into(
            &b"a\nb\n"[..],
            Some(&mut echoed),
            &log,
            Tail::default(),
            |_| {},
        )
        .await;
        assert_eq!(echoed, b"a\nb\n");
    }
}
