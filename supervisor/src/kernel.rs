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

use std::cmp::Ordering;
use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use object::read::pe::PeFile64;
use object::read::ReadCache;
use object::LittleEndian as LE;

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
    #[error("{image} has no bootable kernel ({}): is it a bootc image? It needs usr/lib/modules/<version>/vmlinuz (an x86 bzImage) with its initramfs.img, or a UKI; a containerDisk needs one *.qcow2, *.raw or *.img under / or /disk/", looked_at(.looked))]
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
    let mut found = Scan::default();
    found.modules(rootfs)?;
    for dir in UKI_DIRS {
        found.uki_dir(rootfs, Path::new(dir), None)?;
    }
    let Scan {
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

/// One kernel found in the image.
struct Candidate {
    version: String,
    /// Its path in the image, for messages.
    label: String,
    kind: Kind,
}

enum Kind {
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
#[derive(Default)]
struct Scan {
    candidates: Vec<Candidate>,
    skipped: Vec<String>,
    /// Places that held nothing at all (`/boot/EFI/Linux: missing`): named only when no
    /// kernel is found.
    absent: Vec<String>,
}

impl Scan {
    /// Looks at every `usr/lib/modules/<kver>/` directory.
    fn modules(&mut self, rootfs: &Path) -> Result<(), KernelError> {
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
                    if let Err(why) = check_bzimage(&kernel)? {
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
    fn uki_dir(
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
fn check_bzimage(host: &Path) -> Result<Result<(), String>, KernelError> {
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
fn version_from_file_name(rel: &Path) -> String {
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
fn list_dir(rootfs: &Path, rel: &Path) -> Result<Option<Vec<OsString>>, KernelError> {
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
fn regular_nonempty(rootfs: &Path, rel: &Path) -> Result<Option<PathBuf>, KernelError> {
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

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A piece of a path still to be walked.
enum Part {
    Root,
    Parent,
    Name(OsString),
}

/// Resolves `rel` inside the image as if `rootfs` were `/`, following symlinks by hand:
/// absolute link targets are taken relative to the rootfs, and a `..` that would climb
/// above it is refused. Returns the host path, free of symlinks below `rootfs`, or `None`
/// when some component does not exist.
fn resolve_in_root(rootfs: &Path, rel: &Path) -> Result<Option<PathBuf>, KernelError> {
    fn parts(path: &Path, origin: Option<usize>) -> Vec<(Part, Option<usize>)> {
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

/// Where a section's bytes are in the UKI file.
#[derive(Debug, Clone, Copy)]
struct Range {
    offset: u64,
    size: u64,
}

/// What a UKI holds, read without loading its (large) kernel and initramfs into memory.
struct UkiInfo {
    linux: Range,
    initrd: Option<Range>,
    cmdline: Option<String>,
    uname: Option<String>,
    /// The UKI's path in the image, for messages.
    rel: PathBuf,
}

/// Reads a UKI's section table and small sections, and checks that `.linux` holds a
/// kernel. Problems with the file's contents are `BadUki`; I/O errors are `Read`.
fn inspect_uki(host: &Path, rel: &Path) -> Result<UkiInfo, KernelError> {
    let bad = |reason: String| KernelError::BadUki {
        path: rel.to_path_buf(),
        reason,
    };
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let file = File::open(host).map_err(read_err)?;
    let file_len = file.metadata().map_err(read_err)?.len();

    let mut sections: Vec<(Vec<u8>, Range)> = Vec::new();
    {
        // ReadCache reads only the headers the parser asks for, not the whole file.
        let cache = ReadCache::new(&file);
        let pe = PeFile64::parse(&cache)
            .map_err(|e| bad(format!("not a 64-bit PE/EFI executable: {e}")))?;
        for header in pe.section_table().iter() {
            // Sizes come from the file: only the bytes actually stored count. The virtual
            // size is the real content length when it is smaller (the raw size is rounded
            // up to the file alignment); 0 means the linker did not set it.
            let raw = u64::from(header.size_of_raw_data.get(LE));
            let virt = u64::from(header.virtual_size.get(LE));
            let size = if virt == 0 { raw } else { raw.min(virt) };
            let offset = u64::from(header.pointer_to_raw_data.get(LE));
            let name = header.raw_name();
            if offset + size > file_len {
                return Err(bad(format!(
                    "section {} extends past the end of the file",
                    String::from_utf8_lossy(name)
                )));
            }
            sections.push((name.to_vec(), Range { offset, size }));
        }
    }
    // Multi-profile UKIs repeat sections after a `.profile` marker; the first occurrence
    // belongs to the base (default) profile, which is what we boot.
    let find = |want: &[u8]| {
        sections
            .iter()
            .find(|(name, range)| name == want && range.size > 0)
            .map(|(_, range)| *range)
    };

    let linux = find(b".linux").ok_or_else(|| bad("it has no .linux section".to_string()))?;
    let head = read_range(&file, host, linux.offset, linux.size.min(KERNEL_HEADER_LEN))?;
    if !looks_like_kernel(&head) {
        return Err(bad(
            "its .linux section is not a Linux kernel image (no boot header)".to_string(),
        ));
    }
    let text = |name: &str| -> Result<Option<String>, KernelError> {
        let Some(range) = find(name.as_bytes()) else {
            return Ok(None);
        };
        if range.size > MAX_TEXT_SECTION {
            return Err(bad(format!(
                "its {name} section is {} bytes, more than the {MAX_TEXT_SECTION} allowed",
                range.size
            )));
        }
        let bytes = read_range(&file, host, range.offset, range.size)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| bad(format!("its {name} section is not UTF-8 text")))?;
        // Tools pad or terminate these strings with NULs and newlines.
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if text.chars().any(char::is_control) {
            return Err(bad(format!(
                "its {name} section contains control characters"
            )));
        }
        Ok((!text.is_empty()).then(|| text.to_string()))
    };
    let cmdline = text(".cmdline")?;
    let uname = text(".uname")?;
    if let Some(uname) = &uname {
        // The version ends up in messages and possibly in file names.
        if uname.contains('/') || uname.contains(char::is_whitespace) {
            return Err(bad(format!(
                "its .uname section '{uname}' is not a kernel version"
            )));
        }
    }
    Ok(UkiInfo {
        linux,
        initrd: find(b".initrd"),
        cmdline,
        uname,
        rel: rel.to_path_buf(),
    })
}

/// Whether `head` (the start of a `.linux` section) is a kernel QEMU can boot directly:
/// an x86 bzImage ("HdrS" at 0x202), an arm64 Image ("ARM\x64" at 0x38), or an EFI
/// zboot image ("zimg" at 4, as Fedora ships on arm64).
fn looks_like_kernel(head: &[u8]) -> bool {
    let magic_at = |offset: usize, magic: &[u8]| {
        head.get(offset..offset + magic.len())
            .is_some_and(|m| m == magic)
    };
    magic_at(0x202, b"HdrS")
        || magic_at(0x38, b"ARM\x64")
        || (magic_at(0, b"MZ") && magic_at(4, b"zimg"))
}

fn read_range(file: &File, host: &Path, offset: u64, size: u64) -> Result<Vec<u8>, KernelError> {
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let mut reader = file;
    reader.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    let mut buf = Vec::new();
    reader.take(size).read_to_end(&mut buf).map_err(read_err)?;
    if (buf.len() as u64) < size {
        return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}

/// Copies the UKI's kernel and initramfs into `work_dir`, streaming them so a large
/// initramfs never sits in memory.
fn extract_uki(
    host: &Path,
    uki: &UkiInfo,
    work_dir: &Path,
) -> Result<(PathBuf, Option<PathBuf>), KernelError> {
    let file = File::open(host).map_err(|err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    })?;
    let kernel = work_dir.join("vmlinuz");
    copy_range(&file, host, uki.linux, &kernel)?;
    let initrd = match uki.initrd {
        Some(range) => {
            let path = work_dir.join("initrd.img");
            copy_range(&file, host, range, &path)?;
            Some(path)
        }
        None => {
            tracing::debug!("UKI /{} has no .initrd section", uki.rel.display());
            None
        }
    };
    Ok((kernel, initrd))
}

fn copy_range(file: &File, host: &Path, range: Range, dest: &Path) -> Result<(), KernelError> {
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let write_err = |err| KernelError::Write {
        path: dest.to_path_buf(),
        err,
    };
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(range.offset))
        .map_err(read_err)?;
    let mut out = File::create(dest).map_err(write_err)?;
    // io::copy cannot tell a read error from a write error; both are reported against
    // the destination, whose message also covers the usual cause (a full disk).
    let copied = io::copy(&mut reader.take(range.size), &mut out).map_err(write_err)?;
    if copied < range.size {
        // The file shrank since it was inspected.
        return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake kernel: just big enough to carry the x86 boot header magic.
    fn bzimage(fill: u8) -> Vec<u8> {
        let mut k = vec![fill; 0x400];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k
    }

    fn write(path: &Path, data: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn add_kernel(root: &Path, kver: &str, initrd: bool) {
        let dir = root.join(MODULES_DIR).join(kver);
        write(&dir.join("vmlinuz"), &bzimage(1));
        if initrd {
            write(&dir.join("initramfs.img"), b"initrd");
        }
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        work: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        let work = tmp.path().join("work");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&work).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            work,
        }
    }

    fn find(f: &Fixture) -> Result<BootFiles, KernelError> {
        find_boot_files(&f.root, "quay.io/test/image:latest", &f.work)
    }

    /// Builds a minimal PE32+ file holding the given sections, laid out the way ukify
    /// does: raw sizes rounded up to 0x200, virtual sizes exact.
    fn pe(sections: &[(&str, &[u8])]) -> Vec<u8> {
        const ALIGN: usize = 0x200;
        let align = |n: usize| n.div_ceil(ALIGN) * ALIGN;
        let mut out = vec![0u8; 0x40];
        out[0..2].copy_from_slice(b"MZ");
        out[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes()); // e_lfanew
        out.extend_from_slice(b"PE\0\0");
        // COFF file header.
        out.extend_from_slice(&0x8664u16.to_le_bytes()); // machine: x86-64
        out.extend_from_slice(&(sections.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 12]); // timestamp, symbol table pointer and count
        out.extend_from_slice(&240u16.to_le_bytes()); // size of optional header
        out.extend_from_slice(&0x0022u16.to_le_bytes()); // executable, large-address aware
                                                         // PE32+ optional header: 112 fixed bytes then 16 data directories.
        let mut opt = vec![0u8; 240];
        opt[0..2].copy_from_slice(&0x20bu16.to_le_bytes());
        opt[32..36].copy_from_slice(&(ALIGN as u32).to_le_bytes()); // section alignment
        opt[36..40].copy_from_slice(&(ALIGN as u32).to_le_bytes()); // file alignment
        opt[108..112].copy_from_slice(&16u32.to_le_bytes()); // number of RVAs and sizes
        out.extend_from_slice(&opt);

        let mut offset = align(out.len() + 40 * sections.len());
        let mut data = Vec::new();
        for (name, content) in sections {
            let mut header = [0u8; 40];
            header[..name.len()].copy_from_slice(name.as_bytes());
            let raw = align(content.len());
            header[8..12].copy_from_slice(&(content.len() as u32).to_le_bytes());
            header[12..16].copy_from_slice(&(offset as u32).to_le_bytes()); // virtual address
            header[16..20].copy_from_slice(&(raw as u32).to_le_bytes());
            header[20..24].copy_from_slice(&(offset as u32).to_le_bytes());
            header[36..40].copy_from_slice(&0x4000_0040u32.to_le_bytes()); // initialized, readable
            out.extend_from_slice(&header);
            let mut padded = content.to_vec();
            padded.resize(raw, 0);
            data.push((offset, padded));
            offset += raw;
        }
        for (offset, padded) in data {
            out.resize(offset, 0);
            out.extend_from_slice(&padded);
        }
        out
    }

    #[test]
    fn one_kernel() {
        let f = fixture();
        add_kernel(&f.root, "6.12.0-1.fc42.x86_64", true);
        let boot = find(&f).unwrap();
        let dir = f.root.join(MODULES_DIR).join("6.12.0-1.fc42.x86_64");
        assert_eq!(
            boot,
            BootFiles {
                version: "6.12.0-1.fc42.x86_64".into(),
                kernel: dir.join("vmlinuz"),
                initrd: Some(dir.join("initramfs.img")),
                uki_cmdline: None,
                source: KernelSource::Modules,
                others: vec![],
                skipped: vec![],
            }
        );
    }

    #[test]
    fn several_kernels_pick_newest() {
        let f = fixture();
        for kver in ["6.1.0", "6.12.9", "6.12.10", "6.12.10~rc1"] {
            add_kernel(&f.root, kver, true);
        }
        let boot = find(&f).unwrap();
        assert_eq!(boot.version, "6.12.10");
        assert_eq!(boot.others, vec!["6.12.10~rc1", "6.12.9", "6.1.0"]);
    }

    /// What `modules.builtin` lists for a kernel with virtiofs built in.
    const BUILTIN: &str =
        "kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/virtiofs.ko\nkernel/drivers/virtio/virtio_pci.ko\n";

    #[test]
    fn missing_initramfs() {
        let f = fixture();
        add_kernel(&f.root, "6.12.0", false);
        // Without an initramfs, only a kernel with virtiofs built in can mount the root.
        let err = find(&f).unwrap_err();
        assert!(err.to_string().contains("/usr/lib/modules/6.12.0: no initramfs.img, and modules.builtin does not list virtiofs"), "{err}");
        write(
            &f.root.join(MODULES_DIR).join("6.12.0/modules.builtin"),
            BUILTIN.as_bytes(),
        );
        let boot = find(&f).unwrap();
        assert_eq!(boot.initrd, None);
        assert!(boot.kernel.ends_with("6.12.0/vmlinuz"));
    }

    #[test]
    fn newest_bootable_kernel_wins_and_the_others_are_explained() {
        let f = fixture();
        add_kernel(&f.root, "6.1.0", true);
        add_kernel(&f.root, "6.0.0", true);
        // Newer, but garbage, too short, another architecture's, or unable to mount the root.
        write(
            &f.root.join(MODULES_DIR).join("99.0.0-fake/vmlinuz"),
            &[b'x'; 4096],
        );
        write(
            &f.root.join(MODULES_DIR).join("99.0.0-fake/initramfs.img"),
            b"i",
        );
        write(&f.root.join(MODULES_DIR).join("98.0/vmlinuz"), b"MZ short");
        let mut arm = vec![0u8; 0x400];
        arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
        write(&f.root.join(MODULES_DIR).join("97.0/vmlinuz"), &arm);
        add_kernel(&f.root, "96.0", false);
        fs::create_dir_all(f.root.join(MODULES_DIR).join("95.0-modules-only")).unwrap();
        let boot = find(&f).unwrap();
        assert_eq!(boot.version, "6.1.0");
        assert_eq!(boot.others, ["6.0.0"]);
        let skipped = boot.skipped.join("\n");
        for (dir, why) in [
            (
                "99.0.0-fake",
                "vmlinuz is not an x86 Linux kernel (no bzImage boot header",
            ),
            ("98.0", "vmlinuz is 8 bytes, too short to be a kernel"),
            ("97.0", "vmlinuz is not an x86 Linux kernel"),
            ("96.0", "no initramfs.img"),
            (
                "95.0-modules-only",
                "no vmlinuz (non-empty file) nor *.efi UKI",
            ),
        ] {
            let line = format!("/usr/lib/modules/{dir}: {why}");
            assert!(skipped.contains(&line), "{line} not in {skipped}");
        }
        assert_eq!(boot.skipped.len(), 5, "{skipped}");
        // A name with a newline never reaches a message.
        write(
            &f.root.join(MODULES_DIR).join("99.1\nforged line/vmlinuz"),
            b"x",
        );
        assert_eq!(find(&f).unwrap().skipped.len(), 5);
        // Nothing bootable at all: 66's error names every place looked at.
        fs::remove_dir_all(f.root.join(MODULES_DIR).join("6.1.0")).unwrap();
        fs::remove_dir_all(f.root.join(MODULES_DIR).join("6.0.0")).unwrap();
        let err = find(&f).unwrap_err();
        let KernelError::NoKernel { looked, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(looked.len(), 6, "{looked:?}");
        let message = err.to_string();
        for place in [
            "/usr/lib/modules/99.0.0-fake: vmlinuz is not",
            "/usr/lib/modules/98.0:",
            "/usr/lib/modules/97.0:",
            "/usr/lib/modules/96.0:",
            "/usr/lib/modules/95.0-modules-only:",
            "/boot/EFI/Linux: missing",
        ] {
            assert!(message.contains(place), "{place} not in {message}");
        }
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn no_kernel_message() {
        let f = fixture();
        fs::create_dir_all(f.root.join(MODULES_DIR).join("6.12.0")).unwrap();
        let err = find(&f).unwrap_err();
        assert!(matches!(err, KernelError::NoKernel { .. }));
        assert_eq!(
            err.to_string(),
            "quay.io/test/image:latest has no bootable kernel (looked at \
             /usr/lib/modules/6.12.0: no vmlinuz (non-empty file) nor *.efi UKI; \
             /boot/EFI/Linux: missing or not a directory): is it a bootc image? It needs \
             usr/lib/modules/<version>/vmlinuz (an x86 bzImage) with its initramfs.img, or a UKI; \
             a containerDisk needs one *.qcow2, *.raw or *.img under / or /disk/"
        );
    }

    #[test]
    fn no_usr_at_all() {
        let f = fixture();
        assert!(matches!(find(&f), Err(KernelError::NoKernel { .. })));
    }

    #[test]
    fn empty_vmlinuz_ignored() {
        let f = fixture();
        add_kernel(&f.root, "6.1.0", true);
        write(&f.root.join(MODULES_DIR).join("6.12.0/vmlinuz"), b"");
        let boot = find(&f).unwrap();
        assert_eq!(boot.version, "6.1.0");
        assert!(boot.others.is_empty());
    }

    #[test]
    fn vmlinuz_directory_ignored() {
        let f = fixture();
        fs::create_dir_all(f.root.join(MODULES_DIR).join("6.12.0/vmlinuz")).unwrap();
        assert!(matches!(find(&f), Err(KernelError::NoKernel { .. })));
    }

    #[test]
    fn symlink_escaping_root_refused() {
        let f = fixture();
        // A real file outside the rootfs, which a naive open() would happily follow to.
        write(
            &f.root.parent().unwrap().join("outside/vmlinuz"),
            &bzimage(2),
        );
        let dir = f.root.join(MODULES_DIR).join("6.12.0");
        fs::create_dir_all(&dir).unwrap();
        symlink("../../../../../outside/vmlinuz", dir.join("vmlinuz")).unwrap();
        let err = find(&f).unwrap_err();
        assert!(
            matches!(&err, KernelError::SymlinkEscapes { link, .. }
                if link == Path::new("usr/lib/modules/6.12.0/vmlinuz")),
            "{err:?}"
        );
        assert!(err.to_string().contains("outside the image"), "{err}");
    }

    #[test]
    fn absolute_symlink_stays_in_root() {
        let f = fixture();
        // Inside the image "/boot/vmlinuz-6.12.0" means rootfs/boot/..., never the host's.
        write(&f.root.join("boot/vmlinuz-6.12.0"), &bzimage(3));
        let dir = f.root.join(MODULES_DIR).join("6.12.0");
        fs::create_dir_all(&dir).unwrap();
        symlink("/boot/vmlinuz-6.12.0", dir.join("vmlinuz")).unwrap();
        symlink("../../../../boot/missing", dir.join("initramfs.img")).unwrap();
        write(&dir.join("modules.builtin"), BUILTIN.as_bytes());
        let boot = find(&f).unwrap();
        assert_eq!(boot.kernel, f.root.join("boot/vmlinuz-6.12.0"));
        assert_eq!(boot.initrd, None);
    }

    #[test]
    fn symlink_loop_reported() {
        let f = fixture();
        let dir = f.root.join(MODULES_DIR).join("6.12.0");
        fs::create_dir_all(&dir).unwrap();
        symlink("vmlinuz", dir.join("vmlinuz")).unwrap();
        assert!(matches!(find(&f), Err(KernelError::SymlinkLoop { .. })));
    }

    #[test]
    fn equal_versions_are_ambiguous() {
        let f = fixture();
        add_kernel(&f.root, "6.1.0", true);
        let uki = pe(&[(".linux", &bzimage(4)), (".uname", b"6.12.0\0")]);
        write(&f.root.join("boot/EFI/Linux/a.efi"), &uki);
        write(&f.root.join("boot/EFI/Linux/b.efi"), &uki);
        let err = find(&f).unwrap_err();
        let KernelError::Ambiguous {
            version,
            candidates,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(version, "6.12.0");
        assert_eq!(
            candidates,
            &["/boot/EFI/Linux/a.efi", "/boot/EFI/Linux/b.efi"]
        );
    }

    #[test]
    fn uki_split() {
        let f = fixture();
        let linux = bzimage(5);
        let initrd = b"070701 fake cpio".repeat(50);
        let uki = pe(&[
            (".osrel", b"ID=fedora\n"),
            (".cmdline", b"console=ttyS0 rw\n\0"),
            (".uname", b"6.13.2-200.fc42.x86_64\0"),
            (".linux", &linux),
            (".initrd", &initrd),
        ]);
        let path = f.root.join("boot/EFI/Linux/fedora.efi");
        write(&path, &uki);
        let boot = find(&f).unwrap();
        assert_eq!(
            boot,
            BootFiles {
                version: "6.13.2-200.fc42.x86_64".into(),
                kernel: f.work.join("vmlinuz"),
                initrd: Some(f.work.join("initrd.img")),
                uki_cmdline: Some("console=ttyS0 rw".into()),
                source: KernelSource::Uki { path },
                others: vec![],
                skipped: vec![],
            }
        );
        // Exact contents: the file-alignment padding is not copied.
        assert_eq!(fs::read(f.work.join("vmlinuz")).unwrap(), linux);
        assert_eq!(fs::read(f.work.join("initrd.img")).unwrap(), initrd);
    }

    #[test]
    fn uki_in_modules_dir_without_uname() {
        let f = fixture();
        let uki = pe(&[(".linux", &bzimage(6))]);
        write(
            &f.root.join(MODULES_DIR).join("6.14.0/vmlinuz-virt.efi"),
            &uki,
        );
        add_kernel(&f.root, "6.13.0", true);
        let boot = find(&f).unwrap();
        assert_eq!(boot.version, "6.14.0");
        assert_eq!(boot.initrd, None);
        assert_eq!(boot.uki_cmdline, None);
        assert_eq!(boot.others, vec!["6.13.0"]);
        assert!(matches!(boot.source, KernelSource::Uki { .. }));
    }

    #[test]
    fn vmlinuz_beats_uki_of_same_version() {
        let f = fixture();
        add_kernel(&f.root, "6.12.0", true);
        let uki = pe(&[(".linux", &bzimage(7)), (".uname", b"6.12.0")]);
        write(&f.root.join("boot/EFI/Linux/x.efi"), &uki);
        write(&f.root.join(MODULES_DIR).join("6.12.0/x.efi"), &uki);
        let boot = find(&f).unwrap();
        assert_eq!(boot.source, KernelSource::Modules);
        assert!(boot.others.is_empty());
    }

    #[test]
    fn broken_uki_named_when_nothing_else() {
        let f = fixture();
        write(
            &f.root.join("boot/EFI/Linux/junk.efi"),
            b"not a PE file at all",
        );
        let err = find(&f).unwrap_err();
        assert!(matches!(err, KernelError::NoKernel { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/boot/EFI/Linux/junk.efi: a broken UKI (not a 64-bit PE/EFI"),
            "{err}"
        );

        let no_linux = pe(&[(".cmdline", b"quiet")]);
        write(&f.root.join("boot/EFI/Linux/junk.efi"), &no_linux);
        let err = find(&f).unwrap_err();
        assert!(err.to_string().contains("no .linux section"), "{err}");

        let not_kernel = pe(&[(".linux", &[0u8; 0x400])]);
        write(&f.root.join("boot/EFI/Linux/junk.efi"), &not_kernel);
        let err = find(&f).unwrap_err();
        assert!(err.to_string().contains("not a Linux kernel"), "{err}");
    }

    #[test]
    fn truncated_uki_is_broken() {
        let f = fixture();
        let mut uki = pe(&[(".linux", &bzimage(8))]);
        uki.truncate(uki.len() - 0x300);
        write(&f.root.join("boot/EFI/Linux/cut.efi"), &uki);
        let err = find(&f).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
    }

    #[test]
    fn broken_uki_ignored_when_a_kernel_exists() {
        let f = fixture();
        add_kernel(&f.root, "6.1.0", true);
        write(&f.root.join("boot/EFI/Linux/junk.efi"), b"MZ junk");
        assert_eq!(find(&f).unwrap().version, "6.1.0");
    }

    #[test]
    fn uki_version_from_file_name() {
        for (name, want) in [
            ("boot/EFI/Linux/fedora-6.12.0-1.fc42.efi", "6.12.0-1.fc42"),
            ("boot/EFI/Linux/6.12.0.efi", "6.12.0"),
            ("boot/EFI/Linux/linux.efi", "linux"),
        ] {
            assert_eq!(version_from_file_name(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn kernel_magic() {
        let mut arm = vec![0u8; 0x40];
        arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let mut zboot = vec![0u8; 0x40];
        zboot[0..2].copy_from_slice(b"MZ");
        zboot[4..8].copy_from_slice(b"zimg");
        assert!(looks_like_kernel(&bzimage(0)));
        assert!(looks_like_kernel(&arm));
        assert!(looks_like_kernel(&zboot));
        assert!(!looks_like_kernel(&[0u8; 0x400]));
        assert!(!looks_like_kernel(b"HdrS"));
        assert!(!looks_like_kernel(&[]));
    }

    #[test]
    fn version_compare_table() {
        use Ordering::*;
        let table = [
            ("6.12.10", "6.12.9", Greater),
            ("6.12.9", "6.1.0", Greater),
            ("6.1.0", "6.1.0", Equal),
            ("6.12", "6.12.1", Less),
            ("10", "9", Greater),
            ("6.12.0~rc1", "6.12.0", Less),
            ("6.12.0~rc1", "6.12.0~rc2", Less),
            ("6.12.0-rc1", "6.12.0", Greater),
            ("6.12.0-0.rc1.fc42", "6.12.0-1.fc42", Less),
            ("5.14.0-427.el9.x86_64", "5.14.0-70.el9.x86_64", Greater),
            ("6.1a", "6.1-", Less),
            ("a", "1", Greater),
            ("", "1", Less),
            ("", "", Equal),
            ("1.01", "1.1", Less),
            (
                "99999999999999999999999999",
                "99999999999999999999999998",
                Greater,
            ),
        ];
        for (a, b, want) in table {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn detects_a_kernel_with_virtiofs_built_in() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("usr/lib/modules/6.12.0");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            !virtiofs_builtin(root.path(), "6.12.0"),
            "no modules.builtin"
        );
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/fs/fuse/fuse.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        assert!(
            !virtiofs_builtin(root.path(), "6.12.0"),
            "virtiofs is a module"
        );
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/virtiofs.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        assert!(virtiofs_builtin(root.path(), "6.12.0"));
        assert!(!virtiofs_builtin(root.path(), "../../../etc"));
    }
}
