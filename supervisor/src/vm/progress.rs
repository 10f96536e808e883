//! The booting VM's one updating line on a terminal: elapsed time and boot phase.

use std::time::Duration;

use crate::console::Phase;

/// A single updating progress line on a terminal (elapsed time and boot phase).
pub(super) struct ProgressLine {
    pub(super) active: bool,
}

impl ProgressLine {
    pub(super) fn new(active: bool) -> ProgressLine {
        ProgressLine { active }
    }
    pub(super) fn show(&self, elapsed: Duration, phase: Phase) {
        if self.active {
            eprint!(
                "{}",
                crate::status::progress_line(elapsed.as_secs(), phase.label())
            );
        }
    }
    pub(super) fn clear(&self) {
        if self.active {
            eprint!("\r\x1b[K");
        }
    }
}
