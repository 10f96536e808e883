//! How the prepared root boots, one file per kind, chosen once ([`prepare`]) from the kind of
//! root: a tree's kernel directly ([`direct_kernel`]), a disk by firmware ([`firmware`]).

use std::path::Path;

use crate::disk::DiskError;
use crate::exit::Exit;
use crate::plan::{Plan, PlanError};
use crate::qemu::BootSpec;
use crate::root::{Root, RootKind};

pub mod direct_kernel;
pub mod firmware;

/// Why the root cannot boot as asked.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The options ask for what this image cannot do (`--initrd`).
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("cannot prepare {path}: {source}")]
    RunDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl BootError {
    /// Its class in the table of exit codes: the wrapped error's.
    pub fn exit(&self) -> Exit {
        match self {
            BootError::Plan(e) => e.exit(),
            BootError::Disk(e) => e.exit(),
            BootError::RunDir { .. } => Exit::Internal,
        }
    }
}

fn run_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootError + '_ {
    move |source| BootError::RunDir {
        path: path.to_path_buf(),
        source,
    }
}

/// The boot for this root, as QEMU takes it.
pub fn prepare(plan: &Plan, root: &Root, run_dir: &Path) -> Result<BootSpec, BootError> {
    match &root.kind {
        RootKind::Tree { dir, kernel } => {
            direct_kernel::prepare(plan, dir, kernel, &root.name, run_dir, root.arch)
        }
        RootKind::Disk { disk, .. } => firmware::prepare(plan, disk, run_dir, root.arch),
    }
}
