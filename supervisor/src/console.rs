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
    /// Whether the guest's own userspace (systemd, after the switch to the real root) runs:
    /// before that, nothing in the guest can answer a power button or start sshd.
    pub fn in_userspace(self) -> bool {
        self >= Phase::Userspace
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
    } else if line.contains("Welcome to ") && !line.contains("GRUB") {
        // systemd's version banner ("systemd 257 running in system mode") prints in the
        // initrd too, so only the post-switch-root welcome marks the real userspace.
        Some(Phase::Userspace)
    } else if line.contains("OpenSSH") || line.contains("ssh.service") || line.contains("sshd") {
        Some(Phase::Sshd)
    } else {
        None
    }
}

/// A firmware's own words for "nothing to boot": OVMF's boot manager, its shell starting
/// (it runs when no boot option worked), SeaBIOS.
pub fn firmware_gave_up(line: &str) -> bool {
    line.contains("No bootable option or device was found")
        || line.contains("startup.nsh")
        || line.contains("No bootable device")
}

/// The guest's own clock in a console line: the kernel's printk timestamp `[ 12.345678] `
/// (CLOCK_MONOTONIC since the guest kernel started), which journald also puts in front of the
/// messages it forwards to the console (`systemd.journald.forward_to_console=1`).
/// The stamp need not start the line: a message that comes while agetty talks to the serial
/// terminal follows its escape sequences or its `login:` prompt on the same line.
pub fn guest_time(line: &str) -> Option<std::time::Duration> {
    line.match_indices('[')
        .find_map(|(i, _)| stamp_at(&line[i + 1..]))
}

/// The printk timestamp at the start of `rest` (just after its `[`).
fn stamp_at(rest: &str) -> Option<std::time::Duration> {
    let (stamp, _) = rest.split_once(']')?;
    let (secs, frac) = stamp.trim_start().split_once('.')?;
    if secs.is_empty()
        || frac.len() != 6
        || !(secs.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let micros: u64 = frac.parse().ok()?;
    Some(
        std::time::Duration::from_secs(secs.parse().ok()?)
            + std::time::Duration::from_micros(micros),
    )
}

/// Guest log lines that mark when sshd can first complete a handshake, as journald forwards
/// them to the console (`systemd.journald.forward_to_console=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// sshd's "Server listening on ...": its listening socket exists.
    SshdListening,
    /// systemd-networkd's "DHCPv4 address ... acquired": the guest can be reached.
    Address,
}

/// The [`Mark`] a console line is, if any.
pub fn mark_of(line: &str) -> Option<Mark> {
    if line.contains("]: Server listening on ") && line.contains(" sshd[") {
        Some(Mark::SshdListening)
    } else if line.contains(" systemd-networkd[") && line.contains(": DHCPv4 address ") {
        Some(Mark::Address)
    } else {
        None
    }
}

/// Guest clock to supervisor clock. A console line arrives after the guest wrote it, so its
/// arrival (ms since start) minus its timestamp bounds where the guest's clock read 0 from
/// above; the smallest such bound is the mapping. Taken only from lines within
/// [`GuestClock::WINDOW_MS`] of the time mapped: under TCG on a loaded host the guest's clock
/// runs a few percent off the host's (its TSC calibration), too much for one mapping of a
/// whole boot.
#[derive(Debug, Default, Clone)]
pub struct GuestClock {
    /// (guest ms, arrival ms)
    samples: Vec<(u64, i64)>,
}

impl GuestClock {
    pub const WINDOW_MS: u64 = 5_000;
    /// Enough for a boot's console; a long-running VM stops adding.
    const MAX_SAMPLES: usize = 20_000;

    pub fn push(&mut self, guest: std::time::Duration, arrival_ms: i64) {
        if self.samples.len() < Self::MAX_SAMPLES {
            self.samples.push((guest.as_millis() as u64, arrival_ms));
        }
    }

    /// `guest_ms` on the supervisor's clock (ms since start), if a line near it was seen.
    pub fn to_host_ms(&self, guest_ms: u64) -> Option<i64> {
        self.samples
            .iter()
            .filter(|(g, _)| g.abs_diff(guest_ms) <= Self::WINDOW_MS)
            .map(|&(g, arrival)| arrival - g as i64)
            .min()
            .map(|zero| zero + guest_ms as i64)
    }
}

/// Why the guest ended, read from the kernel's last words on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestEnd {
    PowerOff,
    Reboot,
    Panic,
    #[default]
    Unknown,
}

/// How the guest's end stands after `line`, given how it stood before: the kernel prints
/// these at KERN_EMERG, so even `quiet` does not hide them. A panic is final whatever follows
/// (its stack dump, the other CPUs' backtraces, a "Rebooting in" line).
pub fn end_after(before: GuestEnd, line: &str) -> GuestEnd {
    if before == GuestEnd::Panic || line.contains("Kernel panic - not syncing") {
        GuestEnd::Panic
    } else if line.contains("reboot: Power down") || line.contains("reboot: System halted") {
        GuestEnd::PowerOff
    } else if line.contains("reboot: Restarting system") {
        GuestEnd::Reboot
    } else {
        before
    }
}

/// Whether a console line is the kernel's report of an RCU stall: a CPU, a task or RCU's own
/// grace-period kthread stuck for `rcupdate.rcu_cpu_stall_timeout` (21 s by default). Linux's
/// wording (kernel/rcu/tree_stall.h, tree_exp.h, tasks.h, the same from 4.19 to 6.12; "rcu: " is
/// its prefix since 5.0): `INFO: rcu_preempt detected stalls on CPUs/tasks:`, `INFO: rcu_sched
/// self-detected stall on CPU`, `INFO: rcu_preempt detected expedited stalls on CPUs/tasks: {`,
/// `INFO: rcu_tasks detected stalls on tasks:`, and the kthread's own lines that follow them,
/// `rcu_preempt kthread timer wakeup didn't happen for 15752 jiffies! ...` and
/// `rcu_preempt kthread starved for 15757 jiffies! ...`.
pub fn rcu_stall(line: &str) -> bool {
    let info = line.contains("INFO: rcu")
        && (line.contains(" detected stalls on ")
            || line.contains(" self-detected stall on CPU")
            || line.contains(" detected expedited stalls on "));
    let kthread = line.contains(" kthread timer wakeup didn't happen for ")
        || (line.contains(" kthread starved for ") && line.contains(" jiffies!"));
    info || (kthread && line.contains("rcu"))
}

/// The part of a console line after the kernel's printk timestamp, for quoting it.
pub fn without_stamp(line: &str) -> &str {
    match line.trim_start().strip_prefix('[') {
        Some(rest) if stamp_at(rest).is_some() => {
            rest.split_once(']').map_or(line, |(_, l)| l.trim())
        }
        _ => line.trim(),
    }
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

/// The last lines of console output, shared between the pump and error reporting, and how
/// the guest's end stands over *all* lines seen: a panic's first line can scroll out of the
/// tail under its own stack dumps.
#[derive(Clone, Default)]
pub struct Tail {
    inner: Arc<Mutex<TailInner>>,
}

#[derive(Default)]
struct TailInner {
    lines: VecDeque<String>,
    end: GuestEnd,
    /// Lines pushed so far: whether the console moves.
    seen: u64,
    /// RCU stall report lines ([`rcu_stall`]) so far, and the last one.
    stalls: u64,
    last_stall: Option<String>,
}

impl Tail {
    fn lock(&self) -> std::sync::MutexGuard<'_, TailInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn push(&self, line: &str) {
        let mut t = self.lock();
        if t.lines.len() == TAIL_LINES {
            t.lines.pop_front();
        }
        t.lines.push_back(line.to_string());
        t.end = end_after(t.end, line);
        t.seen += 1;
        if rcu_stall(line) {
            t.stalls += 1;
            t.last_stall = Some(without_stamp(line).to_string());
        }
    }
    /// How many lines were pushed: it changes while the console moves.
    pub fn seen(&self) -> u64 {
        self.lock().seen
    }
    /// How many of them were the kernel's RCU stall reports, and the last such line.
    pub fn stall_reports(&self) -> (u64, Option<String>) {
        let t = self.lock();
        (t.stalls, t.last_stall.clone())
    }
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.iter().cloned().collect()
    }
    /// How the guest ended, from every line pushed.
    pub fn end(&self) -> GuestEnd {
        self.lock().end
    }
    /// Refill from a file (the interactive console logs through QEMU directly): every line
    /// passes, so that [`Tail::end`] sees them all.
    pub fn load_file(&self, path: &Path) {
        if let Ok(bytes) = std::fs::read(path) {
            for line in String::from_utf8_lossy(&bytes).lines() {
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
                match chars.peek() {
                    // CSI: ESC [ ... final byte in @..~
                    Some('[') => {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    // OSC (agetty resets the palette with one): ESC ] ... BEL or ESC \
                    Some(']') => {
                        chars.next();
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some())
                            {
                                break;
                            }
                        }
                    }
                    _ => {}
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

/// Copy the console from QEMU's stdout: to `echo`, to `log_file` (and `copy`, `--log-dir`'s
/// console.log), into `tail`, reporting each
/// new phase through `on_phase` and each guest timestamp ([`guest_time`]) as soon as its line
/// arrived through `on_guest_time`, with the line's [`Mark`] if it is one.
/// Ends at EOF (QEMU exited).
pub async fn pump(
    source: impl tokio::io::AsyncRead + Unpin,
    echo: Echo,
    log_file: &Path,
    copy: Option<&Path>,
    tail: Tail,
    on_phase: impl FnMut(Phase),
    on_guest_time: impl FnMut(std::time::Duration, Option<Mark>),
) {
    let out: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = match echo {
        Echo::Stdout => Some(Box::new(tokio::io::stdout())),
        Echo::Stderr => Some(Box::new(tokio::io::stderr())),
        Echo::None => None,
    };
    pump_into(source, out, log_file, copy, tail, on_phase, on_guest_time).await
}

async fn pump_into(
    source: impl tokio::io::AsyncRead + Unpin,
    mut echo: Option<impl tokio::io::AsyncWrite + Unpin>,
    log_file: &Path,
    copy: Option<&Path>,
    tail: Tail,
    mut on_phase: impl FnMut(Phase),
    mut on_guest_time: impl FnMut(std::time::Duration, Option<Mark>),
) {
    let mut logs = vec![tokio::fs::File::create(log_file).await.ok()];
    if let Some(copy) = copy {
        match tokio::fs::File::create(copy).await {
            Ok(f) => logs.push(Some(f)),
            Err(e) => {
                tracing::warn!(path = %copy.display(), error = %e, "cannot write the console copy")
            }
        }
    }
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
        // The phase is told before the line is shown: whoever reacts to the line (a Ctrl-C
        // once systemd says Welcome) finds bcvk already knowing the phase.
        let line = clean(&String::from_utf8_lossy(&raw));
        if let Some(t) = guest_time(&line) {
            on_guest_time(t, mark_of(&line));
        }
        if let Some(p) = phase_of(&line) {
            if p > last_phase {
                last_phase = p;
                on_phase(p);
            }
        }
        // Console output is passed through untouched; only the tail and phases use clean text.
        if let Some(out) = echo.as_mut() {
            let _ = out.write_all(&raw).await;
            let _ = out.flush().await;
        }
        for f in logs.iter_mut().flatten() {
            let _ = f.write_all(&raw).await;
        }
        tail.push(&line);
    }
    if let (true, Some(out)) = (mid_line, echo.as_mut()) {
        let _ = out.write_all(b"\n").await;
        let _ = out.flush().await;
    }
    for mut f in logs.into_iter().flatten() {
        let _ = f.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_boots_and_their_failures() {
        // GRUB greets on the serial console before the kernel: not systemd's welcome.
        assert_eq!(phase_of("Welcome to GRUB!"), None);
        assert_eq!(
            phase_of("Welcome to Debian GNU/Linux 13 (trixie)!"),
            Some(Phase::Userspace)
        );
        for l in [
            "BdsDxe: No bootable option or device was found.",
            "Press ESC in 5 seconds to skip startup.nsh or any other key to continue.",
            "No bootable device.  Retrying in 60 seconds.",
        ] {
            assert!(firmware_gave_up(l), "{l}");
        }
        assert!(!firmware_gave_up(
            "BdsDxe: starting Boot0001 \"UEFI Misc Device\""
        ));
    }

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
    fn reads_the_guests_clock_from_printk_and_journald_prefixes() {
        use std::time::Duration;
        assert_eq!(
            guest_time("[    0.000000] Linux version 6.12"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            guest_time("[   35.554939] sshd[268]: Server listening on 0.0.0.0 port 22."),
            Some(Duration::from_micros(35_554_939))
        );
        assert_eq!(
            guest_time("[12345.000001] x"),
            Some(Duration::from_micros(12_345_000_001))
        );
        // What agetty's terminal queries and prompt leave in front of a forwarded message.
        assert_eq!(
            guest_time("\x1b[!p]104\x07\x1b[?7h\x1b[6n\x1b[32766;32766H\x1b[6n[   45.763015] systemd-networkd[225]: enp0s2: DHCPv4 address 10.0.2.15/24"),
            Some(Duration::from_micros(45_763_015))
        );
        assert_eq!(
            guest_time("382760bee658 login: [   47.404000] sshd-session[296]: Accepted publickey"),
            Some(Duration::from_micros(47_404_000))
        );
        for no in [
            "[  OK  ] Started ssh.service",
            "[    1.2] short fraction",
            "[ -1.000000] negative",
            "no bracket",
            "[    1.000000 unclosed",
            "",
        ] {
            assert_eq!(guest_time(no), None, "{no}");
        }
    }

    #[test]
    fn maps_the_guests_clock_from_nearby_lines_only() {
        use std::time::Duration;
        let mut c = GuestClock::default();
        assert_eq!(c.to_host_ms(1000), None);
        // Early lines replayed late when the serial console registered.
        c.push(Duration::ZERO, 3_000);
        c.push(Duration::from_millis(100), 2_900);
        c.push(Duration::from_millis(1_000), 2_100);
        assert_eq!(c.to_host_ms(1_000), Some(2_100));
        assert_eq!(c.to_host_ms(0), Some(1_100));
        // Later, the guest's clock ran slow: 40 s of guest time took 42 s of the host's.
        c.push(Duration::from_millis(41_000), 44_200);
        c.push(Duration::from_millis(41_500), 44_900);
        assert_eq!(c.to_host_ms(41_000), Some(44_200));
        // Far from any line: nothing to map with.
        assert_eq!(c.to_host_ms(20_000), None);
        assert_eq!(
            mark_of("[   35.554939] sshd[268]: Server listening on 0.0.0.0 port 22."),
            Some(Mark::SshdListening)
        );
        assert_eq!(
            mark_of("[  106.551437] systemd-networkd[219]: enp0s2: DHCPv4 address 10.0.2.15/24, gateway 10.0.2.2 acquired from 10.0.2.2"),
            Some(Mark::Address)
        );
        assert_eq!(mark_of("[  OK  ] Started ssh.service"), None);
        assert_eq!(
            mark_of("[   35.5] sshd-session[293]: Connection from 10.0.2.2"),
            None
        );
    }

    fn classify_end<'a>(lines: impl IntoIterator<Item = &'a str>) -> GuestEnd {
        lines.into_iter().fold(GuestEnd::Unknown, end_after)
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

    /// The flake of `faults::guest_panic_during_a_command`: the panic's first line scrolled
    /// out of the 40-line tail under the stack dumps that follow it.
    #[test]
    fn a_panic_stays_known_after_it_scrolled_out_of_the_tail() {
        let tail = Tail::default();
        tail.push("[   9.0] sysrq: Trigger a crash");
        tail.push("[   9.0] Kernel panic - not syncing: sysrq triggered crash");
        for i in 0..TAIL_LINES * 2 {
            tail.push(&format!("[   9.1]  ? frame_{i}+0x1/0x2"));
        }
        tail.push("[   9.2] reboot: Restarting system");
        assert!(!tail.lines().iter().any(|l| l.contains("Kernel panic")));
        assert_eq!(tail.end(), GuestEnd::Panic);
        let clean = Tail::default();
        clean.push("[  20.0] reboot: Power down");
        assert_eq!(clean.end(), GuestEnd::PowerOff);
        assert_eq!(Tail::default().end(), GuestEnd::Unknown);
    }

    /// The words of real reports: Linux 6.12 under TCG here (issue 28), and the other kinds as
    /// tree_stall.h, tree_exp.h and tasks.h print them.
    #[test]
    fn knows_the_kernels_rcu_stall_reports() {
        for l in [
            "[  113.052034] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "[   88.1] rcu: INFO: rcu_sched self-detected stall on CPU",
            "[   88.1] rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... } 21 jiffies s: 105 root: 0x2/.",
            "[   88.1] INFO: rcu_tasks detected stalls on tasks:",
            "[   84.118400] rcu: rcu_preempt kthread timer wakeup didn't happen for 15752 jiffies! g-1187 f0x0 RCU_GP_WAIT_GPS(1) ->state=0x402",
            "[   84.1] rcu: rcu_preempt kthread starved for 15757 jiffies! g-1187 f0x0 RCU_GP_WAIT_GPS(1) ->state=0x402 ->cpu=1",
            "INFO: rcu_sched detected stalls on CPUs/tasks:",
        ] {
            assert!(rcu_stall(&clean(l)), "{l}");
        }
        for l in [
            "[    0.0] rcu: Preemptible hierarchical RCU implementation.",
            "[    0.0] rcu: \tRCU CPU stall warnings timeout set to 21 (rcu_cpu_stall_timeout).",
            "[    0.1] rcu: Hierarchical SRCU implementation.",
            "[   84.1] rcu: \tPossible timer handling issue on cpu=1 timer-softirq=2101",
            "[   45.1] systemd[1]: Starting a unit that says detected stalls on its own",
            "[  120.1] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
        ] {
            assert!(!rcu_stall(l), "{l}");
        }
        assert_eq!(
            without_stamp("[  113.052034] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
        );
        assert_eq!(without_stamp("[  OK  ] x"), "[  OK  ] x");
        let tail = Tail::default();
        tail.push("[   1.0] Linux version 6.12");
        assert_eq!(tail.stall_reports(), (0, None));
        tail.push("[   84.118399] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:");
        tail.push("[   84.118400] rcu: rcu_preempt kthread starved for 15757 jiffies! g-1187");
        assert_eq!(tail.seen(), 3);
        assert_eq!(
            tail.stall_reports(),
            (
                2,
                Some("rcu: rcu_preempt kthread starved for 15757 jiffies! g-1187".into())
            )
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
        assert_eq!(
            clean("\u{1b}[!p\u{1b}]104\u{7}\u{1b}[?7h\u{1b}[6n[   45.763015] x"),
            "[   45.763015] x"
        );
        assert_eq!(clean("a\u{1b}]0;title\u{1b}\\b"), "ab");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pump_writes_the_log_and_reports_phases_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let input: &[u8] = b"Linux version 6.12\nRun /init as init process\nLinux version again\nWelcome to Debian!\n";
        let tail = Tail::default();
        let mut phases = Vec::new();
        let mut times = Vec::new();
        pump(
            input,
            Echo::None,
            &log,
            None,
            tail.clone(),
            |p| phases.push(p),
            |t, _| times.push(t),
        )
        .await;
        assert_eq!(phases, vec![Phase::Kernel, Phase::Initrd, Phase::Userspace]);
        assert!(times.is_empty());
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
        let copy = dir.path().join("copy.log");
        pump_into(
            input,
            Some(&mut echoed),
            &log,
            Some(&copy),
            tail.clone(),
            |_| {},
            |_, _| {},
        )
        .await;
        assert_eq!(std::fs::read(&log).unwrap(), input);
        // --log-dir's console.log is the same bytes.
        assert_eq!(std::fs::read(&copy).unwrap(), input);
        assert_eq!(tail.lines().last().unwrap(), "vm login: ");
        // What podman logs shows ends the line, so bcvk's next line starts on its own.
        assert_eq!(echoed, b"Debian GNU/Linux 13 vm ttyS0\n\nvm login: \n");
        let mut echoed = Vec::new();
        pump_into(
            &b"a\nb\n"[..],
            Some(&mut echoed),
            &log,
            None,
            Tail::default(),
            |_| {},
            |_, _| {},
        )
        .await;
        assert_eq!(echoed, b"a\nb\n");
    }
}
