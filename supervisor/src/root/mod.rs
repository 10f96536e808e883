//! The guest's root, one file per kind, chosen once ([`prepare`]) from the plan's [`Source`]:
//!
//! - [`store_image`]: an image from the podman store, its layers as an overlay with a
//!   writable layer on top, shared over virtiofs;
//! - [`directory`]: `--rootfs DIR`, a directory holding an image's root, under the same kind
//!   of throwaway layer;
//! - [`container_disk`]: a store image (or directory) without a kernel but with a sole disk
//!   image, booted as a disk;
//! - [`disk_image`]: `--disk-image FILE`, on virtio-blk behind a throwaway qcow2 overlay (or
//!   written in place with `--persistent`);
//! - [`persistent`]: a store image's `--persistent` state (the overlay's upper layer, kept).
//!
//! A tree comes out as [`RootKind::Tree`] with its kernel found, a disk as [`RootKind::Disk`];
//! how either boots is `boot`'s. Everything mounted, locked or created here is recorded in
//! [`Prepared`] and undone by its `cleanup`, on every path.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::arch::{Arch, ArchError};
use crate::disk::{DiskError, Inspected, Writes};
use crate::exit::Exit;
use crate::kernel::BootFiles;
use crate::kernel::KernelError;
use crate::opaque::OpaqueError;
use crate::plan::{Plan, RootShape, Source};
use crate::rootfs::MountedRootfs;
use crate::rootfs::RootfsError;
use crate::store::StoreError;
use crate::userns::Privileges;

pub mod container_disk;
pub mod directory;
pub mod disk_image;
pub mod persistent;
pub mod store_image;

pub use persistent::{PersistentState, StateError};

/// Why a root could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Opaque(#[from] OpaqueError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Arch(#[from] ArchError),
    #[error("cannot prepare {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RootError {
    /// Its class in the table of exit codes: the wrapped error's.
    pub fn exit(&self) -> Exit {
        match self {
            RootError::Store(e) => e.exit(),
            RootError::Rootfs(e) => e.exit(),
            RootError::Kernel(e) => e.exit(),
            RootError::Opaque(e) => e.exit(),
            RootError::State(e) => e.exit(),
            RootError::Disk(e) => e.exit(),
            RootError::Arch(_) => Exit::Unavailable,
            RootError::RunDir { .. } => Exit::Internal,
        }
    }
}

/// The error for a file or directory of the run that could not be made.
pub fn run_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> RootError + '_ {
    move |source| RootError::RunDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything a run mounted, locked or created, undone in reverse order.
pub struct Prepared {
    pub rootfs: Option<MountedRootfs>,
    /// A --persistent VM's state: locked until the root is unmounted.
    pub state: Option<PersistentState>,
    /// The lock on a disk image (shared, or exclusive with --persistent).
    pub disk_lock: Option<File>,
    pub run_dir: PathBuf,
}

impl Prepared {
    pub fn new(run_dir: &Path) -> Prepared {
        Prepared {
            rootfs: None,
            state: None,
            disk_lock: None,
            run_dir: run_dir.to_path_buf(),
        }
    }

    pub fn cleanup(&mut self) {
        // The disk overlay and firmware variables live in the run directory or --scratch.
        self.disk_lock = None;
        if let Some(r) = self.rootfs.take() {
            if let Err(e) = r.unmount() {
                tracing::warn!(error = %e, "cannot unmount the root file system");
            }
        }
        self.state = None;
        for leftover in ["ssh", "boot", "disks", "seed", "credentials"] {
            let _ = std::fs::remove_dir_all(self.run_dir.join(leftover));
        }
    }
}

/// The kind of root, prepared.
pub enum RootKind {
    /// A tree (an overlay at `dir`) shared over virtiofs; its kernel is booted directly.
    Tree { dir: PathBuf, kernel: BootFiles },
    /// A VM disk image, booted by firmware.
    Disk { disk: Inspected, writes: Writes },
}

impl RootKind {
    pub fn shape(&self) -> RootShape {
        match self {
            RootKind::Tree { .. } => RootShape::Tree,
            RootKind::Disk { .. } => RootShape::Disk,
        }
    }
}

/// The prepared root and what the run reports about it.
pub struct Root {
    pub kind: RootKind,
    /// The guest's architecture: the image's, from its config; the host's for a directory or
    /// a --disk-image, which carry none.
    pub arch: Arch,
    /// For logs and status: the image's name, or the disk image's path.
    pub name: String,
    /// The image's ID; empty for a directory or a --disk-image.
    pub id: String,
    /// The store's root, for --bind-storage-ro; none for a --disk-image.
    pub store_root: Option<PathBuf>,
}

/// Prepare the root the plan names: the one match on the kind of source.
pub fn prepare(
    plan: &Plan,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RootError> {
    match &plan.source {
        Source::DiskImage { file } => disk_image::prepare(file, plan, run_dir, prepared),
        Source::StoreImage { image } => {
            store_image::prepare(image, plan, privileges, run_dir, prepared)
        }
        Source::Directory { dir, name } => {
            directory::prepare(dir, name, plan, privileges, run_dir, prepared)
        }
    }
}
