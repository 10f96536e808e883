//! How the prepared root boots, one file per kind, chosen once ([`prepare`]) from the kind of
//! root: a tree's kernel directly ([`direct_kernel`]), a disk by firmware ([`firmware`]).

use std::path::Path;

use crate::plan::Plan;
use crate::qemu::BootSpec;
use crate::root::{Root, RootKind};
use crate::run::RunError;

pub mod direct_kernel;
pub mod firmware;

/// The boot for this root, as QEMU takes it.
pub fn prepare(plan: &Plan, root: &Root, run_dir: &Path) -> Result<BootSpec, RunError> {
    match &root.kind {
        RootKind::Tree { dir, kernel } => {
            direct_kernel::prepare(plan, dir, kernel, &root.name, run_dir)
        }
        RootKind::Disk { disk, .. } => firmware::prepare(plan, disk, run_dir),
    }
}
