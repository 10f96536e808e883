//! Finding the kernel (and initramfs) to boot inside a bootc image's root filesystem.
//!
//! The supervisor boots the image with QEMU's direct kernel boot, so it needs a kernel
//! file and, usually, an initramfs. bootc images ship them in one of two shapes:
//!
//! * `usr/lib/modules/<kver>/vmlinuz` with `initramfs.img` beside it (the common case);
//! * a Unified Kernel Image: a PE/EFI binary whose `.linux`, `.initrd`, `.cmdline` and
//!   `.uname` sections carry the kernel, the initramfs, a command line and the kernel
//!   version. UKIs are looked for as `usr/lib/modules/<kver>/*.efi` and
//!   `boot/EFI/Linux/*.efi`. QEMU cannot boot a UKI directly, so the chosen UKI's kernel
//!   and initramfs are copied out into the work directory.
//!
//! The root filesystem comes from an image the user pulled, so it is untrusted: every
//! path inside it is resolved with the rootfs as `/`, and a symlink that would climb
//! out of it is refused rather than followed.
//!
//! By concern: `scan` looks through the image for candidates (resolving every path with the
//! image's root as `/`), `uki` reads and splits Unified Kernel Images; this module picks the
//! kernel and explains what it did not pick.

mod arm64;
mod scan;
#[cfg(test)]
mod tests;
mod uki;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use scan::{Candidate, Kind, Scan};
use uki::extract_uki;

/// Where kernel version directories live, relative to the image root.
const MODULES_DIR: &str = "usr/lib/modules";
/// Directories holding UKIs that are not tied to a version directory (the Boot Loader
/// Specification's type #2 entries). `usr/lib/kernel` is deliberately not searched: it
/// holds kernel-install configuration and plugins, not kernels.
const UKI_DIRS: &[&str] = &["boot/EFI/Linux"];
/// Same limit as Linux's MAXSYMLINKS, so a link loop in the image ends with an error.
const MAX_SYMLINK_HOPS: usize = 40;
/// `.cmdline` and `.uname` are short strings; a huge one means a corrupt or hostile file,
/// and refusing it keeps us from allocating whatever size the header claims.
const MAX_TEXT_SECTION: u64 = 64 * 1024;
/// Enough of the `.linux` section to see the boot header of any supported kernel format.
const KERNEL_HEADER_LEN: u64 = 0x240;

/// Why no bootable kernel could be found or prepared.
///
/// I/O errors are spelled out in the message instead of being exposed as `source()`, so
/// that the one-line message is complete and nothing is printed twice in error chains.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("No kernel found: {image} has no bootable kernel ({}): is it a bootc image? It needs usr/lib/modules/<version>/vmlinuz (a kernel of the image's architecture) with its initramfs.img, or a UKI; a containerDisk needs one *.qcow2, *.raw or *.img under / or /disk/", looked_at(.looked))]
    NoKernel {
        image: String,
        /// Every place looked at, with why it held no bootable kernel.
        looked: Vec<String>,
    },
    #[error(
        "several kernels with the same version {version} in the image ({}): keep only one of them in the image",
        candidates.join(", ")
    )]
    Ambiguous {
        version: String,
        candidates: Vec<String>,
    },
    #[error(
        "refusing symlink /{} -> {} in the image: it points outside the image's root filesystem; make it a regular file or a link that stays inside the image",
        link.display(),
        target.display()
    )]
    SymlinkEscapes { link: PathBuf, target: PathBuf },
    #[error(
        "too many levels of symlinks resolving /{} in the image: fix the symlink loop in the image",
        path.display()
    )]
    SymlinkLoop { path: PathBuf },
    #[error(
        "UKI /{} in the image is broken ({reason}): rebuild it (for example with ukify) or remove it from the image",
        path.display()
    )]
    BadUki { path: PathBuf, reason: String },
    #[error(
        "cannot read {}: {err}; check that the image's root filesystem is mounted and readable",
        path.display()
    )]
    Read { path: PathBuf, err: io::Error },
    #[error(
        "cannot write {}: {err}; check that the work directory is writable and has free space",
        path.display()
    )]
    Write { path: PathBuf, err: io::Error },
}

impl KernelError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            KernelError::Read { .. } | KernelError::Write { .. } => Exit::Internal,
            // The image's layout: no kernel, or none bcvk can tell apart or reach.
            _ => Exit::NotFound,
        }
    }
}

fn looked_at(looked: &[String]) -> String {
    if looked.is_empty() {
        format!("no /{MODULES_DIR} nor /{} in it", UKI_DIRS.join(" nor /"))
    } else {
        format!("looked at {}", looked.join("; "))
    }
}

/// Where the chosen kernel came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// `usr/lib/modules/<kver>/vmlinuz`.
    Modules,
    /// A Unified Kernel Image; `path` is the UKI's absolute path inside the mounted rootfs.
    Uki { path: PathBuf },
}

/// The files QEMU needs for direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The `<kver>` directory name, or the UKI's `.uname` when it has one.
    pub version: String,
    /// Absolute path: inside the mounted rootfs, or the extracted file in the work directory.
    pub kernel: PathBuf,
    /// None when the image ships no initramfs (the kernel must then mount the root itself).
    pub initrd: Option<PathBuf>,
    /// The UKI's `.cmdline` section, if any; the caller decides whether to use it.
    pub uki_cmdline: Option<String>,
    pub source: KernelSource,
    /// Versions of the other kernels found and not chosen, newest first.
    pub others: Vec<String>,
    /// The places that held no bootable kernel, each with why (`/usr/lib/modules/X: ...`).
    pub skipped: Vec<String>,
}

/// Finds the kernel to boot in `rootfs` (the image's mounted root filesystem).
///
/// The newest kernel by [`compare_versions`] wins; a `vmlinuz` beats a UKI of the same
/// version. A chosen UKI is split into `<work_dir>/vmlinuz` and `<work_dir>/initrd.img`.
/// `image_name` is only used in the error message when there is no kernel at all.
pub fn find_boot_files(
    rootfs: &Path,
    image_name: &str,
    work_dir: &Path,
) -> Result<BootFiles, KernelError> {
    find_boot_files_for(Arch::host(), rootfs, image_name, work_dir)
}

/// [`find_boot_files`] for a guest of `arch`: a `vmlinuz` that is not its kernel is skipped,
/// with why.
pub fn find_boot_files_for(
    arch: Arch,
    rootfs: &Path,
    image_name: &str,
    work_dir: &Path,
) -> Result<BootFiles, KernelError> {
    let mut found = Scan::new(arch);
    found.modules(rootfs)?;
    for dir in UKI_DIRS {
        found.uki_dir(rootfs, Path::new(dir), None)?;
    }
    let Scan {
        arch: _,
        mut candidates,
        skipped,
        absent,
    } = found;

    if candidates.is_empty() {
        return Err(KernelError::NoKernel {
            image: image_name.to_string(),
            looked: skipped.into_iter().chain(absent).collect(),
        });
    }

    // The same kernel is often shipped both ways; the plain files need no extraction.
    let module_versions: HashSet<String> = candidates
        .iter()
        .filter(|c| matches!(c.kind, Kind::Modules { .. }))
        .map(|c| c.version.clone())
        .collect();
    candidates.retain(|c| {
        matches!(c.kind, Kind::Modules { .. }) || !module_versions.contains(&c.version)
    });
    // Newest first; the label keeps the order deterministic for equal versions.
    candidates.sort_by(|a, b| {
        compare_versions(&b.version, &a.version).then_with(|| a.label.cmp(&b.label))
    });

    let mut rest = candidates.into_iter();
    let Some(chosen) = rest.next() else {
        return Err(KernelError::NoKernel {
            image: image_name.to_string(),
            looked: skipped.into_iter().chain(absent).collect(),
        });
    };
    let rest: Vec<Candidate> = rest.collect();
    let ties: Vec<String> = rest
        .iter()
        .filter(|c| c.version == chosen.version)
        .map(|c| c.label.clone())
        .collect();
    if !ties.is_empty() {
        let mut candidates = vec![chosen.label];
        candidates.extend(ties);
        return Err(KernelError::Ambiguous {
            version: chosen.version,
            candidates,
        });
    }
    let others = rest.into_iter().map(|c| c.version).collect();

    match chosen.kind {
        Kind::Modules { kernel, initrd } => Ok(BootFiles {
            version: chosen.version,
            kernel,
            initrd,
            uki_cmdline: None,
            source: KernelSource::Modules,
            others,
            skipped,
        }),
        Kind::Uki { host, uki } => {
            let (kernel, initrd) = extract_uki(&host, &uki, work_dir)?;
            Ok(BootFiles {
                version: chosen.version,
                kernel,
                initrd,
                uki_cmdline: uki.cmdline,
                source: KernelSource::Uki { path: host },
                others,
                skipped,
            })
        }
    }
}

/// Compares kernel versions like `sort -V`: runs of digits compare as numbers, letters
/// sort before other characters, and `~` sorts before anything, even the end of the
/// string, so `6.12~rc1` < `6.12`.
///
/// Strings that compare equal as versions but differ (`1.01` and `1.1`) are ordered
/// bytewise, so `Equal` means the strings are identical.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    // The rank of a non-digit byte; digits and the end of the string rank 0 so that a
    // digit run on one side and the end on the other are handled by the numeric part.
    fn rank(c: Option<&u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
            Some(c) => i32::from(*c) + 256,
        }
    }
    let is_digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);

    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() || j < y.len() {
        while (i < x.len() && !is_digit(x, i)) || (j < y.len() && !is_digit(y, j)) {
            let (rx, ry) = (rank(x.get(i)), rank(y.get(j)));
            if rx != ry {
                return rx.cmp(&ry);
            }
            // Equal nonzero ranks mean both sides hold a non-digit, so both can advance.
            i += 1;
            j += 1;
        }
        // Numbers of any length: skip leading zeros, then the longer run is bigger, and
        // for equal lengths the first differing digit decides.
        while x.get(i) == Some(&b'0') {
            i += 1;
        }
        while y.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(x, i) && is_digit(y, j) {
            if first_diff == Ordering::Equal {
                first_diff = x[i].cmp(&y[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(x, i) {
            return Ordering::Greater;
        }
        if is_digit(y, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    x.cmp(y)
}

/// Whether the kernel `version` of the image at `rootfs` can mount a virtiofs root by itself:
/// virtiofs, fuse and virtio_pci built in (listed in its `modules.builtin`). Such a kernel can
/// boot straight into the image's init, skipping the initramfs.
pub fn virtiofs_builtin(rootfs: &Path, version: &str) -> bool {
    // `version` comes from a directory name or a UKI's .uname: never let it leave the root.
    if version.is_empty() || version.contains('/') || version.starts_with('.') {
        return false;
    }
    let path = rootfs
        .join("usr/lib/modules")
        .join(version)
        .join("modules.builtin");
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let has = |suffix: &str| text.lines().any(|l| l.trim_end().ends_with(suffix));
    has("fs/fuse/virtiofs.ko") && has("fs/fuse/fuse.ko") && has("virtio/virtio_pci.ko")
}
