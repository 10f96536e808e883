//! A guest kernel that stalled before the VM was ready (issue 28): under TCG a secondary vCPU's
//! timer can stop firing, RCU's grace-period kthread never wakes, and the boot hangs for good
//! in the kernel phase. Two signs end the run long before `--ready-timeout`:
//! - the kernel's own RCU stall report (`console::rcu_stall`), with no later boot phase
//!   within [`REPORT_GRACE`] (a guest that got over a short stall moves on, and is left alone);
//! - in the kernel phase, no console line at all for [`KERNEL_SILENCE`] (a kernel that prints
//!   nothing more, stall report or not; its phase prints a line every few seconds at most).
//!
//! The watch itself is pure: it is fed the console's counters and the clock once a second.

use std::time::{Duration, Instant};

use crate::console::Phase;

/// How long after the kernel's stall report the boot must have reached a later phase. The
/// report comes `rcu_cpu_stall_timeout` (21 s) after the stall began, so the run ends about
/// 50 s after it, 60 s at most with the ticks' rounding.
pub const REPORT_GRACE: Duration = Duration::from_secs(30);

/// How long the kernel phase may stay silent. The longest silence of a normal kernel phase
/// under TCG on this 2-core machine at load 14 to 19 was 5.1 s (integration/stall-rate's
/// boots, 2026-12-03): a twelvefold margin.
pub const KERNEL_SILENCE: Duration = Duration::from_secs(60);

/// Why the guest is taken for stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallSign {
    /// The kernel reported an RCU stall: its last report line.
    Report(String),
    /// The kernel phase printed nothing for this long.
    Silence(Duration),
}

impl std::fmt::Display for StallSign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StallSign::Report(line) => write!(
                f,
                "it reported an RCU stall, `{line}`, and booted no further in {} s",
                REPORT_GRACE.as_secs()
            ),
            StallSign::Silence(d) => write!(f, "its console was silent for {} s", d.as_secs()),
        }
    }
}

/// What the console showed up to a tick, and when the signs began.
#[derive(Debug, Clone)]
pub struct StallWatch {
    seen: u64,
    last_line: Instant,
    reports: u64,
    /// The latest report not yet outgrown: when it was noticed, in which phase, its line.
    report: Option<(Instant, Phase, String)>,
}

impl StallWatch {
    pub fn new(now: Instant) -> Self {
        StallWatch {
            seen: 0,
            last_line: now,
            reports: 0,
            report: None,
        }
    }

    /// Take in the console's counters (`console::Tail::seen`, `stall_reports`) at `now`.
    pub fn observe(
        &mut self,
        now: Instant,
        seen: u64,
        (reports, last_report): (u64, Option<String>),
        phase: Phase,
    ) {
        if seen != self.seen {
            self.seen = seen;
            self.last_line = now;
        }
        if reports != self.reports {
            self.reports = reports;
            // A report after the boot moved on starts its own grace; repeats of the same
            // stall (the kernel reports again every few rcu_cpu_stall_timeouts) do not.
            let outgrown = self.report.as_ref().is_none_or(|(_, p, _)| phase > *p);
            if let (true, Some(line)) = (outgrown, last_report) {
                self.report = Some((now, phase, line));
            }
        }
    }

    /// Whether the guest is stalled at `now`, in `phase`, and by which sign.
    pub fn verdict(&self, now: Instant, phase: Phase) -> Option<StallSign> {
        if let Some((at, p, line)) = &self.report {
            if phase == *p && now.saturating_duration_since(*at) >= REPORT_GRACE {
                return Some(StallSign::Report(line.clone()));
            }
        }
        let silent = now.saturating_duration_since(self.last_line);
        (phase == Phase::Kernel && silent >= KERNEL_SILENCE).then_some(StallSign::Silence(silent))
    }
}

impl super::Vm {
    /// The stall watch's tick: feed it the console's counters; a stalled guest's error.
    pub(super) fn stalled(&mut self) -> Option<super::VmError> {
        let now = Instant::now();
        let tail = &self.console_tail;
        self.stall
            .observe(now, tail.seen(), tail.stall_reports(), self.phase);
        let sign = self.stall.verdict(now, self.phase)?;
        tracing::debug!(phase = self.phase.label(), %sign, "the guest stalled");
        Some(super::VmError::GuestStalled {
            sign,
            phase: self.phase,
            restarted: false,
            tail: tail.lines(),
        })
    }
}

/// What `--on-stall` asks for after a stalled boot: restart it once, with a fresh QEMU and the
/// same plan, when no restart has been made yet. Only a boot that never got ready stalls (the
/// watch ends at ready), so nothing of the user's has run in the guest: no command started,
/// nobody connected.
pub fn restart_after_stall(allowed: bool, restarts: u32) -> bool {
    allowed && restarts == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "rcu: rcu_preempt kthread timer wakeup didn't happen for 15752 jiffies!";

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_report_with_no_later_phase_is_a_stall_after_the_grace() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        w.observe(at(t0, 5), 100, (0, None), Phase::Kernel);
        w.observe(at(t0, 30), 130, (1, Some(REPORT.into())), Phase::Kernel);
        // The report's own dump and later reports keep the console moving: not progress.
        w.observe(at(t0, 50), 190, (3, Some(REPORT.into())), Phase::Kernel);
        assert_eq!(w.verdict(at(t0, 59), Phase::Kernel), None);
        assert_eq!(
            w.verdict(at(t0, 60), Phase::Kernel),
            Some(StallSign::Report(REPORT.into()))
        );
        let msg = w.verdict(at(t0, 60), Phase::Kernel).unwrap().to_string();
        assert!(
            msg.contains("reported an RCU stall, `rcu: rcu_preempt kthread"),
            "{msg}"
        );
    }

    #[test]
    fn a_guest_that_boots_on_after_a_report_is_left_alone() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        w.observe(at(t0, 20), 50, (1, Some(REPORT.into())), Phase::Kernel);
        w.observe(at(t0, 35), 80, (1, Some(REPORT.into())), Phase::Userspace);
        assert_eq!(w.verdict(at(t0, 90), Phase::Userspace), None);
        assert_eq!(w.verdict(at(t0, 90), Phase::Sshd), None);
        // A new report in the later phase starts a new grace.
        w.observe(
            at(t0, 100),
            90,
            (2, Some("rcu: INFO: x".into())),
            Phase::Sshd,
        );
        assert_eq!(w.verdict(at(t0, 129), Phase::Sshd), None);
        assert_eq!(
            w.verdict(at(t0, 130), Phase::Sshd),
            Some(StallSign::Report("rcu: INFO: x".into()))
        );
    }

    #[test]
    fn only_the_kernel_phase_is_held_to_silence() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        w.observe(at(t0, 10), 40, (0, None), Phase::Kernel);
        w.observe(at(t0, 30), 40, (0, None), Phase::Kernel);
        assert_eq!(w.verdict(at(t0, 69), Phase::Kernel), None);
        assert_eq!(
            w.verdict(at(t0, 70), Phase::Kernel),
            Some(StallSign::Silence(Duration::from_secs(60)))
        );
        assert_eq!(
            StallSign::Silence(Duration::from_secs(61)).to_string(),
            "its console was silent for 61 s"
        );
        // The firmware (a boot menu's timeout, `quiet` hiding the kernel's banner) and the
        // userspace phases may be silent for long: no verdict.
        for phase in [
            Phase::Firmware,
            Phase::Initrd,
            Phase::Userspace,
            Phase::Sshd,
        ] {
            assert_eq!(w.verdict(at(t0, 600), phase), None, "{phase:?}");
        }
        // Any new line resets the silence.
        w.observe(at(t0, 65), 41, (0, None), Phase::Kernel);
        assert_eq!(w.verdict(at(t0, 120), Phase::Kernel), None);
    }

    #[test]
    fn a_stalled_boot_is_restarted_once() {
        assert!(restart_after_stall(true, 0));
        assert!(!restart_after_stall(true, 1), "once");
        assert!(!restart_after_stall(false, 0), "--on-stall fail");
    }
}
