//! A disk booted by firmware: UEFI (OVMF, with a copy of its variables for this run) when the
//! disk has an EFI system partition or `--firmware uefi` says so, else legacy BIOS (SeaBIOS)
//! when its MBR has boot code.

use std::path::{Path, PathBuf};

use super::{run_dir_err, BootError};
use crate::arch::Arch;
use crate::disk::{self, Inspected};
use crate::plan::Plan;
use crate::qemu::{BootSpec, Firmware};

pub fn prepare(
    plan: &Plan,
    disk: &Inspected,
    run_dir: &Path,
    arch: Arch,
) -> Result<BootSpec, BootError> {
    let chosen = disk::choose_firmware(plan.boot.firmware, disk.boot, &disk.path, || {
        Firmware::Uefi {
            code: disk::OVMF_CODE.into(),
            vars: PathBuf::new(),
        }
    })?;
    let firmware = match chosen {
        Firmware::Uefi { .. } => {
            // The variables are written by the guest: a copy in the run directory.
            let disks_dir = run_dir.join("disks");
            std::fs::create_dir_all(&disks_dir).map_err(run_dir_err(&disks_dir))?;
            disk::uefi_firmware_for(arch, &disks_dir)?
        }
        Firmware::Bios => Firmware::Bios,
    };
    tracing::info!(firmware = firmware.name(), "booting the disk by firmware");
    Ok(BootSpec::Firmware(firmware))
}
