//! A VM disk image as the root (`--disk-image FILE`, or a containerDisk's file): inspected,
//! locked, and written through a throwaway qcow2 overlay, or in place with `--persistent`.

use std::path::Path;

use crate::disk::{self, DiskError, Writes};
use crate::plan::{Plan, WritesTo};

use super::{run_dir_err, Prepared, Root, RootError, RootKind};

/// `--disk-image FILE`.
pub fn prepare(
    file: &Path,
    plan: &Plan,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RootError> {
    if !file.exists() {
        return Err(DiskError::Missing(file.to_path_buf()).into());
    }
    tracing::info!(disk = %file.display(), "disk image");
    Ok(Root {
        kind: kind(file, plan, run_dir, prepared)?,
        // A disk image carries no config to say its architecture: the host's is assumed.
        arch: crate::arch::Arch::host(),
        name: file.display().to_string(),
        id: String::new(),
        store_root: None,
    })
}

/// The disk at `file`, inspected and locked, its writes set up; also a containerDisk's.
pub fn kind(
    file: &Path,
    plan: &Plan,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<RootKind, RootError> {
    let disks_dir = run_dir.join("disks");
    std::fs::create_dir_all(&disks_dir).map_err(run_dir_err(&disks_dir))?;
    let disk = disk::inspect(file, &disks_dir)?;
    // The overlay grows with the guest's writes: on --scratch when given, else in memory
    // with the rest of the run directory.
    let (persistent, overlay_dir) = match &plan.writes {
        WritesTo::Persistent { .. } => (true, disks_dir),
        WritesTo::Throwaway { scratch: Some(s) } => (false, s.join("bcvk-disks")),
        WritesTo::Throwaway { scratch: None } => (false, disks_dir),
    };
    let (writes, lock) = disk::prepare_writes(&disk, persistent, &overlay_dir)?;
    prepared.disk_lock = Some(lock);
    tracing::info!(
        format = ?disk.format,
        writes = match &writes {
            Writes::Overlay(_) => "throwaway overlay",
            Writes::InPlace => "into the image (--persistent)",
        },
        "disk image checked"
    );
    Ok(RootKind::Disk { disk, writes })
}
