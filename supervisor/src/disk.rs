//! VM disk images as the guest's root: which file (a `--disk-image`, or the sole disk file of
//! a containerDisk), its format, whether it is sound, which firmware boots it, and where the
//! guest's writes go. The image itself is never written unless the user asked for
//! `--persistent`, and then under a lock.
//!
//! The decisions (format from the magic, firmware from the partition table, a containerDisk's
//! file from a directory listing) are pure functions of bytes and names, unit-tested here;
//! `inspect` and `prepare_writes` run qemu-img, before the reaper starts.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::exit::Exit;
use crate::partitions::{le_u32, le_u64};
use crate::qemu::{DiskFormat, Firmware};
use crate::spawn;

/// OVMF from Debian's `ovmf` package: 4 MiB flash, no Secure Boot (which needs SMM).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// File names a containerDisk's disk may have (KubeVirt's convention), under / or /disk/.
const DISK_SUFFIXES: [&str; 3] = ["qcow2", "raw", "img"];
/// Enough of the disk for the MBR, the GPT header and 128 partition entries (512-byte
/// sectors), or the GPT header of a 4096-byte-sector disk.
const HEAD_BYTES: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(
        "--disk-image {0}: no such file in the container: bring it in with podman -v HOSTDIR:DIR"
    )]
    Missing(PathBuf),
    #[error("cannot open the disk image {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is a {what} image: bcvk boots qcow2 and raw; convert it with qemu-img convert -O qcow2")]
    Unsupported { path: PathBuf, what: &'static str },
    #[error("the disk image {path} is corrupt or truncated ({why}): repair it (qemu-img check -r all) or use an intact copy")]
    Corrupt { path: PathBuf, why: String },
    #[error("the disk image {path} has a backing file ({backing}): flatten it first with qemu-img convert -O qcow2")]
    Backing { path: PathBuf, backing: String },
    #[error("the disk image {path} has nothing to boot: no EFI system partition and no boot code in its MBR; install a bootloader, or force one with --firmware uefi|bios")]
    NoBootloader { path: PathBuf },
    #[error("--firmware bios: the disk image {path} has no boot code in its MBR, so BIOS cannot boot it: install a BIOS bootloader (grub-install --target=i386-pc), or use --firmware uefi")]
    NoBiosBootCode { path: PathBuf },
    #[error("the containerDisk {image} holds {count} disk images ({files}); a containerDisk holds exactly one *.qcow2, *.raw or *.img under / or /disk/")]
    ManyDisks {
        image: String,
        count: usize,
        files: String,
    },
    #[error("--persistent writes into a --disk-image file; the containerDisk {0} is part of a read-only image: drop --persistent, or copy its disk out and pass it with --disk-image")]
    PersistentContainerDisk(String),
    #[error("the disk image {path} is in use by another VM (it holds the lock): stop that VM first, or boot a copy")]
    Busy { path: PathBuf },
    #[error("--persistent: the disk image {path} is not writable here ({source}): mount it read-write (no :ro on podman -v)")]
    ReadOnly {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("UEFI firmware {0} is missing from the bcvk image (Debian's ovmf or qemu-efi-aarch64 package): rebuild the image")]
    NoOvmf(PathBuf),
    #[error("cannot prepare the disk image {path}: {why}")]
    Prepare { path: PathBuf, why: String },
}

impl DiskError {
    pub fn exit(&self) -> Exit {
        match self {
            DiskError::Missing(_)
            | DiskError::NoBootloader { .. }
            | DiskError::NoBiosBootCode { .. } => Exit::NotFound,
            DiskError::Open { .. }
            | DiskError::Unsupported { .. }
            | DiskError::Corrupt { .. }
            | DiskError::Backing { .. }
            | DiskError::ManyDisks { .. } => Exit::StoreCorrupt,
            DiskError::PersistentContainerDisk(_) | DiskError::ReadOnly { .. } => Exit::Usage,
            DiskError::Busy { .. } => Exit::StateBusy,
            DiskError::NoOvmf(_) | DiskError::Prepare { .. } => Exit::Internal,
        }
    }

    #[cfg(test)]
    fn exit_code(&self) -> i32 {
        self.exit().code()
    }
}

/// `--firmware`: which firmware boots a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FirmwareKind {
    /// UEFI when the disk has an EFI system partition, else BIOS when its MBR has boot code
    Auto,
    /// OVMF (UEFI)
    Uefi,
    /// SeaBIOS (legacy BIOS)
    Bios,
}

/// The format from the first bytes; `Err` names formats QEMU knows but bcvk does not take.
pub fn format_of(magic: &[u8]) -> Result<DiskFormat, &'static str> {
    let starts = |m: &[u8]| magic.starts_with(m);
    if starts(b"QFI\xfb") {
        Ok(DiskFormat::Qcow2)
    } else if starts(b"KDMV") || starts(b"# Disk DescriptorFile") {
        Err("VMDK")
    } else if starts(b"vhdxfile") {
        Err("VHDX")
    } else if starts(b"conectix") {
        Err("VHD")
    } else if magic.len() >= 0x44 && magic[0x40..0x44] == [0x7f, 0x10, 0xda, 0xbe] {
        Err("VDI")
    } else {
        Ok(DiskFormat::Raw)
    }
}

/// The EFI system partition's type GUID as it is stored (mixed-endian).
const ESP_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// What the start of a disk says about booting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootInfo {
    /// A GPT entry or an MBR partition of the EFI system partition type.
    pub esp: bool,
    /// The MBR's 440 bytes of boot code are not all zero (GRUB's boot.img, syslinux...).
    pub mbr_code: bool,
}

/// Read the MBR and the GPT (512- or 4096-byte sectors) from the disk's first bytes.
pub fn boot_info(head: &[u8]) -> BootInfo {
    let mut info = BootInfo::default();
    if head.len() < 512 || head[510..512] != [0x55, 0xaa] {
        return info;
    }
    info.mbr_code = head[..440].iter().any(|&b| b != 0);
    let mut protective = false;
    for i in 0..4 {
        let kind = head[446 + 16 * i + 4];
        info.esp |= kind == 0xef;
        protective |= kind == 0xee;
    }
    if !protective {
        return info;
    }
    for sector in [512usize, 4096] {
        let Some(hdr) = head.get(sector..sector + 92) else {
            continue;
        };
        if &hdr[..8] != b"EFI PART" {
            continue;
        }
        let (Some(lba), Some(count), Some(size)) =
            (le_u64(hdr, 72), le_u32(hdr, 80), le_u32(hdr, 84))
        else {
            continue;
        };
        let size = size as usize;
        if size < 128 {
            continue;
        }
        let start = (lba as usize).saturating_mul(sector);
        for i in 0..(count as usize).min(1024) {
            let at = start.saturating_add(i.saturating_mul(size));
            match head.get(at..at.saturating_add(16)) {
                Some(guid) if guid == ESP_GUID => info.esp = true,
                Some(_) => {}
                None => break,
            }
        }
    }
    info
}

/// Which firmware boots this disk.
pub fn choose_firmware(
    req: FirmwareKind,
    info: BootInfo,
    path: &Path,
    uefi: impl FnOnce() -> Firmware,
) -> Result<Firmware, DiskError> {
    match req {
        FirmwareKind::Uefi => Ok(uefi()),
        // Without boot code SeaBIOS jumps into zeros and hangs for good: refuse it here.
        FirmwareKind::Bios if !info.mbr_code => Err(DiskError::NoBiosBootCode {
            path: path.to_path_buf(),
        }),
        FirmwareKind::Bios => Ok(Firmware::Bios),
        FirmwareKind::Auto if info.esp => Ok(uefi()),
        FirmwareKind::Auto if info.mbr_code => Ok(Firmware::Bios),
        FirmwareKind::Auto => Err(DiskError::NoBootloader {
            path: path.to_path_buf(),
        }),
    }
}

/// A containerDisk's disk file among `names` (the entries of / and /disk/, relative to the
/// image root, regular files only): `Ok(None)` when there is none.
pub fn container_disk_file(names: &[PathBuf], image: &str) -> Result<Option<PathBuf>, DiskError> {
    let disks: Vec<&PathBuf> = names
        .iter()
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| DISK_SUFFIXES.contains(&e))
        })
        .collect();
    match disks.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(DiskError::ManyDisks {
            image: image.to_string(),
            count: many.len(),
            files: many
                .iter()
                .map(|p| format!("/{}", p.display()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// List the regular files directly under `root` and `root/disk` (symlinks are not followed:
/// a containerDisk's disk is a file of the image).
pub fn list_disk_candidates(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["", "disk"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                out.push(Path::new(sub).join(e.file_name()));
            }
        }
    }
    out.sort();
    out
}

/// A disk image bcvk may boot: its file, format, and what its start says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub boot: BootInfo,
}

/// Check a disk image before anything is started: the format, that qemu-img can read all of
/// its metadata (a truncated or corrupt qcow2 fails here, not in the guest), no backing file,
/// and its partition table. `scratch` holds a copy of the first bytes of a qcow2.
pub fn inspect(path: &Path, scratch: &Path) -> Result<Inspected, DiskError> {
    let open_err = |source: std::io::Error| DiskError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    let meta = f.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(open_err(std::io::Error::other("not a regular file")));
    }
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut f)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(open_err)?;
    let corrupt = |why: String| DiskError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    if head.len() < 512 {
        return Err(corrupt(format!("only {} bytes", head.len())));
    }
    let format = format_of(&head).map_err(|what| DiskError::Unsupported {
        path: path.to_path_buf(),
        what,
    })?;
    // The guest's disk size: the file's for raw, the virtual size for qcow2.
    let mut disk_len = meta.len();
    if format == DiskFormat::Qcow2 {
        let info = qemu_img_json(&["info", "-f", "qcow2", "--output=json"], path)
            .map_err(|why| corrupt(first_line(&why)))?;
        if let Some(size) = info.get("virtual-size").and_then(|v| v.as_u64()) {
            disk_len = size;
        }
        if let Some(b) = info.get("backing-filename").and_then(|b| b.as_str()) {
            return Err(DiskError::Backing {
                path: path.to_path_buf(),
                backing: b.to_string(),
            });
        }
        // Exit 0 (clean) and 3 (leaked clusters: harmless) pass; 2 is corruption, 1 means the
        // check could not finish (unreadable metadata, a truncated file).
        let argv = check_argv(path);
        match spawn::run_helper("qemu-img", &argv) {
            Ok(_) => {}
            Err(spawn::SpawnError::HelperFailed { status, stderr, .. })
                if !status.contains("exit status: 3") =>
            {
                return Err(corrupt(first_line(&stderr)));
            }
            Err(spawn::SpawnError::HelperFailed { .. }) => {}
            Err(e) => return Err(corrupt(e.to_string())),
        }
        // The partition table lives in guest sectors: read them through qemu-img.
        let out = scratch.join("disk-head.raw");
        let _ = std::fs::remove_file(&out);
        let mut args: Vec<std::ffi::OsString> =
            ["dd", "-f", "qcow2", "-O", "raw", "bs=65536", "count=1"]
                .iter()
                .map(Into::into)
                .collect();
        let mut i = std::ffi::OsString::from("if=");
        i.push(path.as_os_str());
        let mut o = std::ffi::OsString::from("of=");
        o.push(out.as_os_str());
        args.extend([i, o]);
        spawn::run_helper("qemu-img", &args).map_err(|e| corrupt(first_line(&e.to_string())))?;
        head = std::fs::read(&out).map_err(open_err)?;
        let _ = std::fs::remove_file(&out);
    }
    // Cut short (a copy that stopped): refused here, before the guest hangs in its initrd.
    if let Some(why) = crate::partitions::shortfall(&head, disk_len) {
        return Err(corrupt(format!("truncated: {why}")));
    }
    Ok(Inspected {
        path: path.to_path_buf(),
        format,
        boot: boot_info(&head),
    })
}

fn check_argv(path: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "check".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        path.as_os_str().to_owned(),
    ]
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no detail")
        .trim_start_matches("qemu-img: ")
        .to_string()
}

fn qemu_img_json(args: &[&str], path: &Path) -> Result<serde_json::Value, String> {
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    argv.push(path.as_os_str());
    let out = spawn::run_helper("qemu-img", &argv).map_err(|e| match e {
        spawn::SpawnError::HelperFailed { stderr, .. } => stderr,
        other => other.to_string(),
    })?;
    serde_json::from_slice(&out).map_err(|e| e.to_string())
}

/// Where the guest's writes to a disk image go.
#[derive(Debug)]
pub enum Writes {
    /// A qcow2 overlay over the untouched image, thrown away with the run.
    Overlay(PathBuf),
    /// Into the image itself (`--persistent`).
    InPlace,
}

/// Lock the image (shared when only read, exclusive when written: two VMs never write one
/// file, and none writes a file another reads), and create the overlay for a throwaway run.
/// The returned file holds the lock for as long as it is open.
pub fn prepare_writes(
    disk: &Inspected,
    persistent: bool,
    overlay_dir: &Path,
) -> Result<(Writes, File), DiskError> {
    let path = &disk.path;
    let file = if persistent {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DiskError::ReadOnly {
                path: path.clone(),
                source,
            })?
    } else {
        File::open(path).map_err(|source| DiskError::Open {
            path: path.clone(),
            source,
        })?
    };
    let mode = if persistent {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockShared
    };
    rustix::fs::flock(file.as_fd(), mode).map_err(|_| DiskError::Busy { path: path.clone() })?;
    if persistent {
        return Ok((Writes::InPlace, file));
    }
    let prep = |why: String| DiskError::Prepare {
        path: path.clone(),
        why,
    };
    std::fs::create_dir_all(overlay_dir).map_err(|e| prep(e.to_string()))?;
    let overlay = overlay_dir.join("root-overlay.qcow2");
    let _ = std::fs::remove_file(&overlay);
    let backing = std::path::absolute(path).map_err(|e| prep(e.to_string()))?;
    let fmt = match disk.format {
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Raw => "raw",
    };
    let args: Vec<std::ffi::OsString> = vec![
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-F".into(),
        fmt.into(),
        "-b".into(),
        backing.into_os_string(),
        overlay.clone().into_os_string(),
    ];
    spawn::run_helper("qemu-img", &args).map_err(|e| prep(first_line(&e.to_string())))?;
    Ok((Writes::Overlay(overlay), file))
}

/// The UEFI firmware for a guest of `arch`, with this VM's own variable store in `dir`.
pub fn uefi_firmware_for(arch: Arch, dir: &Path) -> Result<Firmware, DiskError> {
    let files = arch.uefi_firmware();
    match files.flash_size {
        None => uefi_firmware(dir),
        Some(size) => padded_uefi(Path::new(files.code), size, dir),
    }
}

/// The firmware's code padded to `size` in `dir`, and a blank variable store of that size,
/// both sparse: the padding costs no memory in the run directory's tmpfs.
fn padded_uefi(code: &Path, size: u64, dir: &Path) -> Result<Firmware, DiskError> {
    if !code.exists() {
        return Err(DiskError::NoOvmf(code.to_path_buf()));
    }
    let prep = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| DiskError::Prepare {
            path,
            why: e.to_string(),
        }
    };
    let padded = dir.join("uefi-code.fd");
    let vars = dir.join("uefi-vars.fd");
    let len = std::fs::copy(code, &padded).map_err(prep(&padded))?;
    if len > size {
        return Err(DiskError::Prepare {
            path: code.to_path_buf(),
            why: format!("the firmware is {len} bytes, more than the {size}-byte flash"),
        });
    }
    let set_len = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .and_then(|f| f.set_len(size))
            .map_err(prep(p))
    };
    set_len(&padded)?;
    set_len(&vars)?;
    Ok(Firmware::Uefi { code: padded, vars })
}

/// OVMF with this VM's own copy of the variable store in `dir`.
pub fn uefi_firmware(dir: &Path) -> Result<Firmware, DiskError> {
    for f in [OVMF_CODE, OVMF_VARS] {
        if !Path::new(f).exists() {
            return Err(DiskError::NoOvmf(f.into()));
        }
    }
    let vars = dir.join("uefi-vars.fd");
    std::fs::copy(OVMF_VARS, &vars).map_err(|e| DiskError::Prepare {
        path: vars.clone(),
        why: e.to_string(),
    })?;
    Ok(Firmware::Uefi {
        code: OVMF_CODE.into(),
        vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_firmware_is_padded_per_vm_with_a_blank_store() {
        let d = tempfile::tempdir().unwrap();
        let code = d.path().join("QEMU_EFI.fd");
        std::fs::write(&code, b"firmware").unwrap();
        let Firmware::Uefi { code: c, vars } = padded_uefi(&code, 4096, d.path()).unwrap() else {
            panic!("not UEFI")
        };
        let c = std::fs::read(c).unwrap();
        assert_eq!(c.len(), 4096);
        assert!(c.starts_with(b"firmware") && c[8..].iter().all(|&b| b == 0));
        assert_eq!(std::fs::read(vars).unwrap(), vec![0u8; 4096]);
        // A firmware bigger than the flash cannot be padded to it.
        assert!(padded_uefi(&code, 4, d.path()).is_err());
        let missing = padded_uefi(&d.path().join("nope.fd"), 4096, d.path()).unwrap_err();
        assert!(matches!(missing, DiskError::NoOvmf(_)));
    }

    fn mbr(code: bool, types: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; HEAD_BYTES];
        if code {
            d[0] = 0xeb;
            d[1] = 0x63;
        }
        for (i, t) in types.iter().enumerate() {
            d[446 + 16 * i + 4] = *t;
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    fn gpt(sector: usize, code: bool, types: &[[u8; 16]]) -> Vec<u8> {
        let mut d = mbr(code, &[0xee]);
        let h = &mut d[sector..sector + 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let at = 2 * sector + 128 * i;
            d[at..at + 16].copy_from_slice(t);
        }
        d
    }

    const BIOS_BOOT: [u8; 16] = *b"Hah!IdontNeedEFI";
    const LINUX: [u8; 16] = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];

    #[test]
    fn formats_by_magic() {
        assert_eq!(format_of(b"QFI\xfb\0\0\0\x03"), Ok(DiskFormat::Qcow2));
        assert_eq!(format_of(&[0u8; 512]), Ok(DiskFormat::Raw));
        assert_eq!(format_of(b"KDMV...."), Err("VMDK"));
        assert_eq!(format_of(b"vhdxfile"), Err("VHDX"));
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(format_of(&vdi), Err("VDI"));
    }

    #[test]
    fn partition_tables_tell_the_firmware() {
        let p = Path::new("d");
        let uefi = || Firmware::Uefi {
            code: "c".into(),
            vars: "v".into(),
        };
        // A hybrid disk (BIOS boot partition, ESP, root; GRUB in the MBR): UEFI by default.
        let hybrid = boot_info(&gpt(512, true, &[BIOS_BOOT, ESP_GUID, LINUX]));
        assert_eq!(
            hybrid,
            BootInfo {
                esp: true,
                mbr_code: true
            }
        );
        assert_eq!(
            choose_firmware(FirmwareKind::Auto, hybrid, p, uefi).unwrap(),
            uefi()
        );
        assert_eq!(
            choose_firmware(FirmwareKind::Bios, hybrid, p, uefi).unwrap(),
            Firmware::Bios
        );
        // GPT, BIOS only.
        let bios = boot_info(&gpt(512, true, &[BIOS_BOOT, LINUX]));
        assert_eq!(
            bios,
            BootInfo {
                esp: false,
                mbr_code: true
            }
        );
        assert_eq!(
            choose_firmware(FirmwareKind::Auto, bios, p, uefi).unwrap(),
            Firmware::Bios
        );
        // 4096-byte sectors.
        assert!(boot_info(&gpt(4096, false, &[ESP_GUID])).esp);
        // MBR with an ESP partition; MBR with code only.
        assert_eq!(
            boot_info(&mbr(false, &[0x83, 0xef])),
            BootInfo {
                esp: true,
                mbr_code: false
            }
        );
        assert_eq!(
            boot_info(&mbr(true, &[0x83])),
            BootInfo {
                esp: false,
                mbr_code: true
            }
        );
        // Nothing to boot: a partition table without boot code or ESP, or no table at all.
        let none = boot_info(&gpt(512, false, &[LINUX]));
        assert_eq!(none, BootInfo::default());
        let err = choose_firmware(FirmwareKind::Auto, none, p, uefi).unwrap_err();
        assert_eq!(err.exit_code(), 66);
        assert!(err.to_string().contains("--firmware"), "{err}");
        assert_eq!(boot_info(&[0u8; 100]), BootInfo::default());
        assert_eq!(boot_info(&vec![0u8; HEAD_BYTES]), BootInfo::default());
        // Forced UEFI boots a disk that has nothing recognisable.
        assert_eq!(
            choose_firmware(FirmwareKind::Uefi, none, p, uefi).unwrap(),
            uefi()
        );
    }

    #[test]
    fn garbage_partition_tables_never_panic() {
        let mut d = gpt(512, true, &[ESP_GUID]);
        // Entries said to start far beyond the bytes read, huge counts and sizes.
        d[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!boot_info(&d).esp);
        d[512 + 84..512 + 88].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!boot_info(&d).esp);
    }

    proptest::proptest! {
        #[test]
        fn boot_info_takes_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..9000)) {
            let _ = boot_info(&bytes);
            let _ = format_of(&bytes);
        }
    }

    #[test]
    fn a_container_disk_holds_exactly_one_disk() {
        let names = |n: &[&str]| n.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            container_disk_file(&names(&["disk/fedora.qcow2", "README"]), "i").unwrap(),
            Some(PathBuf::from("disk/fedora.qcow2"))
        );
        assert_eq!(
            container_disk_file(&names(&["etc", "x.iso"]), "i").unwrap(),
            None
        );
        let err = container_disk_file(&names(&["a.img", "disk/b.raw"]), "img").unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.to_string().contains("/a.img, /disk/b.raw"), "{err}");
    }

    #[test]
    fn candidates_are_regular_files_of_root_and_disk() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("disk")).unwrap();
        std::fs::write(d.path().join("disk/a.qcow2"), b"x").unwrap();
        std::fs::write(d.path().join("top.img"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link.raw")).unwrap();
        std::fs::create_dir(d.path().join("dir.raw")).unwrap();
        assert_eq!(
            list_disk_candidates(d.path()),
            [PathBuf::from("disk/a.qcow2"), PathBuf::from("top.img")]
        );
    }

    #[test]
    fn raw_disks_are_inspected_without_qemu_img() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.raw");
        std::fs::write(&p, gpt(512, true, &[BIOS_BOOT, ESP_GUID])).unwrap();
        let i = inspect(&p, d.path()).unwrap();
        assert_eq!(i.format, DiskFormat::Raw);
        assert!(i.boot.esp && i.boot.mbr_code);
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(inspect(&p, d.path()).unwrap_err().exit_code(), 65);
        // An MBR disk whose partition ends past the file: truncated, 65, the file untouched.
        let mut head = mbr(true, &[0x83]);
        head[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        head[446 + 12..446 + 16].copy_from_slice(&1000u32.to_le_bytes());
        std::fs::write(&p, &head).unwrap();
        let err = inspect(&p, d.path()).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(
            err.to_string()
                .contains("truncated: 65536 bytes long, but partition 1 ends at 512512 bytes"),
            "{err}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), head);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(1001 * 512)
            .unwrap();
        assert!(inspect(&p, d.path()).is_ok());
        std::fs::write(&p, b"KDMV and more bytes".repeat(40)).unwrap();
        assert!(inspect(&p, d.path())
            .unwrap_err()
            .to_string()
            .contains("VMDK"));
        assert_eq!(
            inspect(&d.path().join("none"), d.path())
                .unwrap_err()
                .exit_code(),
            65
        );
    }

    #[test]
    fn locks_keep_writers_apart() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.raw");
        std::fs::write(&p, gpt(512, true, &[ESP_GUID])).unwrap();
        let disk = Inspected {
            path: p.clone(),
            format: DiskFormat::Raw,
            boot: BootInfo::default(),
        };
        let (w, held) = prepare_writes(&disk, true, d.path()).unwrap();
        assert!(matches!(w, Writes::InPlace));
        let err = prepare_writes(&disk, true, d.path()).unwrap_err();
        assert_eq!(err.exit_code(), 73);
        drop(held);
        let (_, reader) = prepare_writes(&disk, true, d.path()).unwrap();
        drop(reader);
        // Throwaway runs share the file; then a writer must wait.
        let Ok((Writes::Overlay(o), r1)) = prepare_writes(&disk, false, &d.path().join("o1"))
        else {
            // No qemu-img on this machine: nothing more to check here.
            return;
        };
        assert!(o.exists());
        let (_, _r2) = prepare_writes(&disk, false, &d.path().join("o2")).unwrap();
        assert_eq!(
            prepare_writes(&disk, true, d.path())
                .unwrap_err()
                .exit_code(),
            73
        );
        drop(r1);
    }
}
