//! A containerDisk: an image from the store (or a `--rootfs` tree) without a kernel but with a
//! sole disk image under / or /disk/ (KubeVirt's format), booted as that disk. Whether a tree
//! is one is decided here, once its root is mounted: a kernel makes it a tree.

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::disk::{self, DiskError};
use crate::kernel::{self, KernelError};
use crate::plan::{Plan, WritesTo};

use super::{disk_image, Prepared, RootError, RootKind};

/// The mounted tree at `dir` as a root: booted by its kernel, or, having none but a disk
/// image, as a containerDisk.
pub fn tree_or_disk(
    dir: PathBuf,
    name: &str,
    plan: &Plan,
    run_dir: &Path,
    prepared: &mut Prepared,
    arch: Arch,
) -> Result<RootKind, RootError> {
    match kernel::find_boot_files_for(arch, &dir, name, &run_dir.join("boot")) {
        Ok(kernel) => Ok(RootKind::Tree { dir, kernel }),
        Err(no_kernel @ KernelError::NoKernel { .. }) => {
            let Some(file) = disk::container_disk_file(&disk::list_disk_candidates(&dir), name)?
            else {
                return Err(no_kernel.into());
            };
            tracing::info!(disk = %format!("/{}", file.display()), "a containerDisk: booting its disk image");
            if matches!(plan.writes, WritesTo::Persistent { .. }) {
                if let Some(st) = prepared.state.take() {
                    st.discard();
                }
                return Err(DiskError::PersistentContainerDisk(name.to_string()).into());
            }
            disk_image::kind(&dir.join(file), plan, run_dir, prepared)
        }
        Err(e) => Err(e.into()),
    }
}
