//! Tests of the host-side command `entrypoint/bcvk-host` without a VM: a fake `podman` (a
//! small sh script first on PATH) logs the argv of every call and prints canned output, and
//! each test checks the exact podman commands the script produced. Every test runs the
//! script under each POSIX shell installed (sh, dash, bash).

mod harness;
mod options;
mod ps_rm;
mod run;
mod ssh;
mod to_disk;
mod usage;
mod vm;
mod vm_lifecycle;
