//! The search through the image: `usr/lib/modules/<kver>/` (vmlinuz and initramfs.img, or
//! UKIs) and the UKI directories, every path resolved with the image's root as `/` and a link
//! that would climb out of it refused.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::arm64::check_arm64;
use super::uki::{inspect_uki, UkiInfo};
use super::{virtiofs_builtin, KernelError, KERNEL_HEADER_LEN, MAX_SYMLINK_HOPS, MODULES_DIR};
use crate::arch::Arch;

/// One kernel found in the image.
pub(super) struct Candidate {
    pub(super) version: String,
    /// Its path in the image, for messages.
    pub(super) label: String,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    Modules {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
    },
    Uki {
        /// The UKI's resolved path on the host.
        host: PathBuf,
        uki: UkiInfo,
    },
}

/// What the search collected: bootable kernels, and every place that held none, with why
/// (told to the user whether or not another kernel is chosen).
pub(super) struct Scan {
    /// The guest's architecture: a `vmlinuz` must be its kernel.
    pub(super) arch: Arch,
    pub(super) candidates: Vec<Candidate>,
    pub(super) skipped: Vec<String>,
    /// Places that held nothing at all (`/boot/EFI/Linux: missing`): named only when no
    /// kernel is found.
    pub(super) absent: Vec<String>,
}

impl Scan {
    pub(super) fn new(arch: Arch) -> Scan {
        Scan {
            arch,
            candidates: Vec::new(),
            skipped: Vec::new(),
            absent: Vec::new(),
        }
    }

    /// Looks at every `usr/lib/modules/<kver>/` directory.
    pub(super) fn modules(&mut self, rootfs: &Path) -> Result<(), KernelError> {
        let modules = Path::new(MODULES_DIR);
        let Some(names) = list_dir(rootfs, modules)? else {
            self.absent
                .push(format!("/{MODULES_DIR}: missing or not a directory"));
            return Ok(());
        };
        if names.is_empty() {
            self.absent.push(format!("/{MODULES_DIR}: empty"));
        }
        for name in names {
            let Some(kver) = name.to_str() else {
                tracing::debug!("skipping non-UTF-8 name {name:?} in /{MODULES_DIR}");
                continue;
            };
            // Names end up in one-line messages: a newline in one could forge lines.
            if kver.chars().any(char::is_control) {
                tracing::debug!("skipping name {kver:?} with control characters in /{MODULES_DIR}");
                continue;
            }
            let rel = modules.join(kver);
            let Some(dir) = resolve_in_root(rootfs, &rel)? else {
                continue;
            };
            if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let label = format!("/{}", rel.display());
            match regular_nonempty(rootfs, &rel.join("vmlinuz"))? {
                Some(kernel) => {
                    let check = match self.arch {
                        Arch::X86_64 => check_bzimage(&kernel)?,
                        Arch::Aarch64 => check_arm64(&kernel)?,
                    };
                    if let Err(why) = check {
                        self.skipped.push(format!("{label}: vmlinuz {why}"));
                        continue;
                    }
                    let initrd = regular_nonempty(rootfs, &rel.join("initramfs.img"))?;
                    if initrd.is_none() {
                        if !virtiofs_builtin(rootfs, kver) {
                            self.skipped.push(format!("{label}: no initramfs.img, and modules.builtin does not list virtiofs, fuse and virtio_pci, so the kernel could not mount the root"));
                            continue;
                        }
                        tracing::debug!("{label} has no initramfs.img");
                    }
                    // A UKI in the same directory is the same kernel; vmlinuz needs no
                    // extraction, so the UKI is not even opened.
                    self.candidates.push(Candidate {
                        version: kver.to_string(),
                        label: format!("{label}/vmlinuz"),
                        kind: Kind::Modules { kernel, initrd },
                    });
                }
                None => {
                    let before = self.candidates.len() + self.skipped.len();
                    self.uki_dir(rootfs, &rel, Some(kver))?;
                    if self.candidates.len() + self.skipped.len() == before {
                        self.skipped.push(format!(
                            "{label}: no vmlinuz (non-empty file) nor *.efi UKI"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Looks at the `*.efi` files in `rel_dir`; `kver` is the version of the enclosing
    /// `usr/lib/modules/<kver>` directory, used when a UKI has no `.uname`.
    pub(super) fn uki_dir(
        &mut self,
        rootfs: &Path,
        rel_dir: &Path,
        kver: Option<&str>,
    ) -> Result<(), KernelError> {
        let Some(names) = list_dir(rootfs, rel_dir)? else {
            if kver.is_none() {
                self.absent.push(format!(
                    "/{}: missing or not a directory",
                    rel_dir.display()
                ));
            }
            return Ok(());
        };
        let before = self.candidates.len() + self.skipped.len();
        for name in names {
            let rel = rel_dir.join(&name);
            let is_efi = rel
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("efi"));
            if !is_efi {
                continue;
            }
            let Some(host) = regular_nonempty(rootfs, &rel)? else {
                continue;
            };
            let uki = match inspect_uki(&host, &rel) {
                Ok(uki) => uki,
                Err(KernelError::BadUki { path, reason }) => {
                    self.skipped
                        .push(format!("/{}: a broken UKI ({reason})", path.display()));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let version = match (&uki.uname, kver) {
                (Some(uname), _) => uname.clone(),
                (None, Some(kver)) => kver.to_string(),
                (None, None) => version_from_file_name(&rel),
            };
            self.candidates.push(Candidate {
                version,
                label: format!("/{}", rel.display()),
                kind: Kind::Uki { host, uki },
            });
        }
        if kver.is_none() && self.candidates.len() + self.skipped.len() == before {
            self.absent
                .push(format!("/{}: no *.efi UKI", rel_dir.display()));
        }
        Ok(())
    }
}

/// Whether a `vmlinuz` is a kernel qemu-system-x86_64 can boot directly: an x86 bzImage,
/// whose setup header carries "HdrS" at 0x202. Anything else (garbage, a compressed blob,
/// another architecture's kernel) would leave QEMU in the firmware until the readiness
/// timeout. `Ok(Err(why))` when it is not one.
pub(super) fn check_bzimage(host: &Path) -> Result<Result<(), String>, KernelError> {
    let file = File::open(host).map_err(|err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    })?;
    let mut head = Vec::new();
    (&file)
        .take(KERNEL_HEADER_LEN)
        .read_to_end(&mut head)
        .map_err(|err| KernelError::Read {
            path: host.to_path_buf(),
            err,
        })?;
    Ok(if (head.len() as u64) < KERNEL_HEADER_LEN {
        Err(format!("is {} bytes, too short to be a kernel", head.len()))
    } else if head.get(0x202..0x206) == Some(b"HdrS") {
        Ok(())
    } else {
        Err("is not an x86 Linux kernel (no bzImage boot header \"HdrS\" at 0x202)".into())
    })
}

/// Guesses a version from a UKI's file name when it has no `.uname` section. Boot Loader
/// Specification names look like `<entry-token>-<kver>.efi`, so a leading non-numeric
/// token is dropped to make `fedora-6.12.0.efi` compare as `6.12.0`.
pub(super) fn version_from_file_name(rel: &Path) -> String {
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.starts_with(|c: char| c.is_ascii_digit()) {
        return stem;
    }
    let bytes = stem.as_bytes();
    let dash_digit = bytes
        .windows(2)
        .position(|w| w[0] == b'-' && w[1].is_ascii_digit());
    match dash_digit {
        Some(pos) => stem[pos + 1..].to_string(),
        None => stem,
    }
}

/// Lists a directory of the image, sorted so that results do not depend on readdir
/// order. `None` when it does not exist or is not a directory.
pub(super) fn list_dir(rootfs: &Path, rel: &Path) -> Result<Option<Vec<OsString>>, KernelError> {
    let Some(dir) = resolve_in_root(rootfs, rel)? else {
        return Ok(None);
    };
    let read_err = |err| KernelError::Read {
        path: dir.clone(),
        err,
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry.map_err(read_err)?.file_name());
    }
    names.sort();
    Ok(Some(names))
}

/// Resolves `rel` and returns its host path if it is a non-empty regular file. An empty
/// file is what a half-finished kernel install or a placeholder leaves, so it is skipped
/// rather than handed to QEMU.
pub(super) fn regular_nonempty(rootfs: &Path, rel: &Path) -> Result<Option<PathBuf>, KernelError> {
    let Some(host) = resolve_in_root(rootfs, rel)? else {
        return Ok(None);
    };
    match fs::symlink_metadata(&host) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => Ok(Some(host)),
        Ok(_) => {
            tracing::debug!("ignoring /{}: not a non-empty regular file", rel.display());
            Ok(None)
        }
        Err(e) if is_missing(&e) => Ok(None),
        Err(err) => Err(KernelError::Read { path: host, err }),
    }
}

pub(super) fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A piece of a path still to be walked.
pub(super) enum Part {
    Root,
    Parent,
    Name(OsString),
}

/// Resolves `rel` inside the image as if `rootfs` were `/`, following symlinks by hand:
/// absolute link targets are taken relative to the rootfs, and a `..` that would climb
/// above it is refused. Returns the host path, free of symlinks below `rootfs`, or `None`
/// when some component does not exist.
pub(super) fn resolve_in_root(rootfs: &Path, rel: &Path) -> Result<Option<PathBuf>, KernelError> {
    pub(super) fn parts(path: &Path, origin: Option<usize>) -> Vec<(Part, Option<usize>)> {
        path.components()
            .filter_map(|c| match c {
                Component::RootDir | Component::Prefix(_) => Some(Part::Root),
                Component::CurDir => None,
                Component::ParentDir => Some(Part::Parent),
                Component::Normal(n) => Some(Part::Name(n.to_os_string())),
            })
            .map(|p| (p, origin))
            .collect()
    }
    let host_of = |resolved: &[OsString]| {
        let mut p = rootfs.to_path_buf();
        p.extend(resolved);
        p
    };

    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<(Part, Option<usize>)> = parts(rel, None).into();
    // Each followed link as (its path in the image, its target), for error messages.
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();

    while let Some((part, origin)) = pending.pop_front() {
        match part {
            Part::Root => resolved.clear(),
            Part::Parent => {
                if resolved.pop().is_none() {
                    let (link, target) = origin
                        .and_then(|i| links.get(i).cloned())
                        .unwrap_or_else(|| (rel.to_path_buf(), rel.to_path_buf()));
                    return Err(KernelError::SymlinkEscapes { link, target });
                }
            }
            Part::Name(name) => {
                resolved.push(name);
                let host = host_of(&resolved);
                let meta = match fs::symlink_metadata(&host) {
                    Ok(meta) => meta,
                    Err(e) if is_missing(&e) => return Ok(None),
                    Err(err) => return Err(KernelError::Read { path: host, err }),
                };
                if !meta.file_type().is_symlink() {
                    continue;
                }
                if links.len() >= MAX_SYMLINK_HOPS {
                    return Err(KernelError::SymlinkLoop {
                        path: rel.to_path_buf(),
                    });
                }
                let target = fs::read_link(&host).map_err(|err| KernelError::Read {
                    path: host.clone(),
                    err,
                })?;
                let link_in_image: PathBuf = resolved.iter().collect();
                // The link's target replaces the link itself, relative to its directory.
                resolved.pop();
                for part in parts(&target, Some(links.len())).into_iter().rev() {
                    pending.push_front(part);
                }
                links.push((link_in_image, target));
            }
        }
    }
    Ok(Some(host_of(&resolved)))
}
