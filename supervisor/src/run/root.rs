//! The guest's root and how it boots: the one place where the kind of root is chosen.
//!
//! - A bootable container image from the store: its layers as an overlay with a writable
//!   layer (tmpfs, `--scratch`, or the `--persistent` state), shared over virtiofs, and its
//!   kernel booted directly.
//! - A VM disk image (`--disk-image`, or a containerDisk from the store): on virtio-blk behind
//!   a throwaway qcow2 overlay (or written in place with `--persistent`), booted by firmware.
//!
//! Everything mounted, locked or created here is recorded in [`Prepared`] and undone by its
//! `cleanup`, on every path.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::cli::{FirmwareArg, InitrdArg, RunArgs};
use crate::disk::{self, DiskError, FirmwareKind, Inspected, Writes};
use crate::kernel::{self, BootFiles, KernelError};
use crate::opaque;
use crate::qemu::Firmware;
use crate::rootfs::{self, MountedRootfs, RootSource, Scratch};
use crate::state::{self, PersistentState};
use crate::store::{self, Store};
use crate::userns::Privileges;

use super::RunError;

/// Everything `run` mounted, locked or created, undone in reverse order.
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
        for leftover in ["ssh", "boot", "disks", "seed"] {
            let _ = std::fs::remove_dir_all(self.run_dir.join(leftover));
        }
    }
}

/// The kind of root, prepared.
pub enum RootKind {
    /// Container layers (an overlay at `dir`) over virtiofs, the image's kernel booted directly.
    Tree { dir: PathBuf, boot: BootFiles },
    /// A VM disk image, booted by firmware.
    Disk {
        disk: Inspected,
        writes: Writes,
        firmware: Firmware,
    },
}

/// The prepared root and what the run reports about it.
pub struct Root {
    pub kind: RootKind,
    /// For logs and status: the image's name, or the disk image's path.
    pub name: String,
    /// The image's ID; empty for a --disk-image.
    pub id: String,
    /// The store's root, for --bind-storage-ro; none for a --disk-image.
    pub store_root: Option<PathBuf>,
}

/// Prepare the root the options name.
pub fn prepare(
    args: &RunArgs,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RunError> {
    match (&args.image, &args.disk_image) {
        (_, Some(file)) => {
            if !file.exists() {
                return Err(DiskError::Missing(file.clone()).into());
            }
            tracing::info!(disk = %file.display(), "disk image");
            let kind = disk_root(file, args, run_dir, prepared)?;
            Ok(Root {
                kind,
                name: file.display().to_string(),
                id: String::new(),
                store_root: None,
            })
        }
        (_, None) => match RootSource::decide(args.image.as_deref(), args.rootfs.as_deref())? {
            RootSource::Store { image } => from_store(&image, args, privileges, run_dir, prepared),
            RootSource::Dir { dir, name } => {
                from_dir(&dir, &name, args, privileges, run_dir, prepared)
            }
        },
    }
}

/// `--rootfs DIR`: a directory holding the image's root (copied there by an init container
/// of the image, on Kubernetes), under the same throwaway layer as a store image.
fn from_dir(
    dir: &Path,
    name: &str,
    args: &RunArgs,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RunError> {
    // No store is read, unless its share is asked for.
    let store_root = if args.bind_storage_ro {
        Some(store::locate_store(args.storage.as_deref())?)
    } else {
        None
    };
    tracing::info!(rootfs = %name, mode = privileges.describe(), "booting a root directory (--rootfs)");
    let scratch = match &args.scratch {
        Some(d) => Scratch::Dir(d.clone()),
        None => Scratch::Tmpfs { size_bytes: None },
    };
    let plan = rootfs::plan_rootfs_dir(dir, run_dir, scratch, !privileges.trusted_xattrs());
    let mounted = prepared.rootfs.insert(rootfs::apply_rootfs(&plan)?);
    let root = mounted.root().to_path_buf();
    for marker in rootfs::remove_engine_markers(&root)? {
        tracing::info!(file = %marker.display(), from = %dir.display(), "hidden from the guest: a container engine's marker, copied with the root, would make systemd think it runs in a container");
    }
    let kind = tree_or_container_disk(root, name, args, run_dir, prepared)?;
    Ok(Root {
        kind,
        name: name.to_string(),
        id: String::new(),
        store_root,
    })
}

fn firmware_kind(arg: FirmwareArg) -> Option<FirmwareKind> {
    match arg {
        FirmwareArg::Auto => None,
        FirmwareArg::Uefi => Some(FirmwareKind::Uefi),
        FirmwareArg::Bios => Some(FirmwareKind::Bios),
    }
}

/// A disk image as the root: inspected, locked, behind an overlay unless --persistent.
fn disk_root(
    file: &Path,
    args: &RunArgs,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<RootKind, RunError> {
    let disks_dir = run_dir.join("disks");
    std::fs::create_dir_all(&disks_dir).map_err(super::run_dir_err(&disks_dir))?;
    let disk = disk::inspect(file, &disks_dir)?;
    let firmware = disk::choose_firmware(firmware_kind(args.firmware), disk.boot, file, || {
        Firmware::Uefi {
            code: disk::OVMF_CODE.into(),
            vars: PathBuf::new(),
        }
    })?;
    let firmware = match firmware {
        Firmware::Uefi { .. } => disk::uefi_firmware(&disks_dir)?,
        Firmware::Bios => Firmware::Bios,
    };
    // The overlay grows with the guest's writes: on --scratch when given, else in memory
    // with the rest of the run directory.
    let overlay_dir = args
        .scratch
        .as_ref()
        .map(|s| s.join("bcvk-disks"))
        .unwrap_or_else(|| disks_dir.clone());
    let (writes, lock) = disk::prepare_writes(&disk, args.persistent, &overlay_dir)?;
    prepared.disk_lock = Some(lock);
    tracing::info!(
        format = ?disk.format,
        firmware = firmware.name(),
        writes = match &writes {
            Writes::Overlay(_) => "throwaway overlay",
            Writes::InPlace => "into the image (--persistent)",
        },
        "disk image checked"
    );
    Ok(RootKind::Disk {
        disk,
        writes,
        firmware,
    })
}

/// An image from the store: mount its layers, then find its kernel, or its disk when it is a
/// containerDisk.
fn from_store(
    name: &str,
    args: &RunArgs,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RunError> {
    let store_root = store::locate_store(args.storage.as_deref())?;
    let store = Store::open(&store_root)?;
    let image = store.resolve(name)?;
    tracing::info!(image = %image.name, id = %&image.id[..12], layers = image.layers.len(), mode = privileges.describe(), "image found");
    if !privileges.many_ids {
        tracing::warn!("the container maps a single user id: files of other owners in the image show as nobody (65534) in the guest; give the user subordinate ids (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER, then podman system migrate)");
    }
    if args.persistent {
        let st = state::open(&args.state, &image.id, &image.name, args.reset)?;
        tracing::info!(
            dir = %st.dir.display(),
            "{} the persistent state",
            if st.fresh { "created" } else { "reusing" }
        );
        prepared.state = Some(st);
    }
    let scratch = match (&prepared.state, &args.scratch) {
        (Some(st), _) => Scratch::Persistent {
            upper: st.upper(),
            work: st.work(),
        },
        (None, Some(dir)) => Scratch::Dir(dir.clone()),
        (None, None) => Scratch::Tmpfs { size_bytes: None },
    };
    // Without CAP_SYS_ADMIN in the host's user namespace the overlay can use only user.*
    // xattrs: a rootful store's trusted.* opaque marks are then emulated (see `opaque`).
    // A persistent upper always keeps user.* xattrs, so that it serves in every mode.
    let userxattr = image.userxattr || !privileges.trusted_xattrs() || args.persistent;
    let emulations = if userxattr && image.driver == store::Driver::Overlay {
        opaque::plan(store.root(), &image.layers)?
    } else {
        Vec::new()
    };
    let plan = rootfs::plan_rootfs(&image, run_dir, scratch, userxattr, &emulations);
    let mounted = prepared.rootfs.insert(rootfs::apply_rootfs(&plan)?);
    let dir = mounted.root().to_path_buf();
    let kind = tree_or_container_disk(dir, &image.name, args, run_dir, prepared)?;
    Ok(Root {
        kind,
        name: image.name.clone(),
        id: image.id.clone(),
        store_root: Some(store_root),
    })
}

/// A mounted tree boots its kernel directly; a tree without one but with a sole disk image
/// under / or /disk/ is a containerDisk, booted by firmware.
fn tree_or_container_disk(
    dir: PathBuf,
    name: &str,
    args: &RunArgs,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<RootKind, RunError> {
    match kernel::find_boot_files(&dir, name, &run_dir.join("boot")) {
        Ok(boot) => Ok(RootKind::Tree {
            boot: initrd_policy(boot, args.initrd, &dir, name)?,
            dir,
        }),
        Err(no_kernel @ KernelError::NoKernel { .. }) => {
            let Some(file) = disk::container_disk_file(&disk::list_disk_candidates(&dir), name)?
            else {
                return Err(no_kernel.into());
            };
            tracing::info!(disk = %format!("/{}", file.display()), "a containerDisk: booting its disk image");
            if args.persistent {
                if let Some(st) = prepared.state.take() {
                    st.discard();
                }
                return Err(DiskError::PersistentContainerDisk(name.to_string()).into());
            }
            disk_root(&dir.join(file), args, run_dir, prepared)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--initrd`: boot through the image's initramfs, or straight into its init when the kernel
/// can mount the virtiofs root itself.
fn initrd_policy(
    mut boot: BootFiles,
    arg: InitrdArg,
    root: &Path,
    image: &str,
) -> Result<BootFiles, RunError> {
    let builtin = kernel::virtiofs_builtin(root, &boot.version);
    match arg {
        InitrdArg::Auto if builtin && boot.initrd.is_some() => {
            tracing::info!("the kernel has virtiofs built in: booting straight into the image's init, without the initramfs (--initrd yes to use it)");
            boot.initrd = None;
        }
        InitrdArg::No if !builtin => {
            return Err(RunError::Usage(format!("--initrd no: kernel {} of {image} does not have virtiofs built in, so it cannot mount the root without its initramfs; use --initrd auto", boot.version)));
        }
        InitrdArg::No => boot.initrd = None,
        InitrdArg::Yes if boot.initrd.is_none() => {
            return Err(RunError::Usage(format!(
                "--initrd yes: {image} has no initramfs.img beside its kernel"
            )));
        }
        _ => {}
    }
    if boot.initrd.is_none() && !builtin {
        return Err(RunError::Usage(format!("{image} has no initramfs and its kernel lacks built-in virtiofs: the root cannot be mounted; add an initramfs with dracut's virtiofs module")));
    }
    for why in &boot.skipped {
        tracing::warn!("no bootable kernel in {why}");
    }
    if !boot.others.is_empty() || !boot.skipped.is_empty() {
        tracing::info!(chosen = %boot.version, older = ?boot.others, "booting the newest bootable kernel");
    }
    tracing::info!(kernel = %boot.kernel.display(), initrd = ?boot.initrd, "kernel found");
    Ok(boot)
}
