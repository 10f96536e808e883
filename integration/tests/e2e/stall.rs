//! A guest kernel that stalls before the VM is ready (issue 28): bcvk must end the run within
//! about a minute of the first sign, after one restart, instead of waiting out
//! `--ready-timeout`.

use std::time::{Duration, Instant};

use bcvk_integration::*;

use crate::{error_line, R};

/// A real guest that hangs in its kernel phase: `root=/dev/vdz rootwait` (the kernel's own
/// arguments, after bcvk's) makes this image's kernel, which mounts its virtiofs root itself,
/// wait for a disk that never comes, printing nothing more. The RCU stall of issue 28 ends the
/// same way when the kernel's report does not come; its report is matched by unit tests
/// (console.rs, vm/stall.rs) on the kernel's wording. bcvk takes the silent kernel phase for a
/// stall after 60 s, restarts the VM once with a fresh QEMU (`--on-stall restart`, the
/// default), sees it stall again and ends with exit 76 and one line; a 600 s
/// `--ready-timeout` is never reached.
pub fn kernel_stall_restarts_once_then_ends() -> R {
    let t = Instant::now();
    let r = bcvk_oneshot(
        &[],
        &[
            &debian(),
            "--karg",
            "root=/dev/vdz",
            "--karg",
            "rootwait",
            "--",
            "true",
        ],
    );
    let took = t.elapsed();
    check!(r.code == 76, "want exit 76: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("stalled in the kernel phase again after a restart")
            && l.contains("its console was silent for 6")
            && l.contains("README"),
        "{l}"
    );
    let restarts = r
        .stderr
        .matches("restarting the VM once with a fresh QEMU (--on-stall restart)")
        .count();
    check!(
        restarts == 1,
        "want one restart, saw {restarts}: {}",
        r.show()
    );
    check!(
        r.stderr.contains("Waiting for root device /dev/vdz"),
        "console tail missing: {}",
        r.show()
    );
    // Two boots of ~15 s of kernel each, 60 s of silence each: far below the 600 s timeout.
    check!(took < Duration::from_secs(300), "took {took:?}");
    Ok(())
}
