//! What the guest gets from the container's files: bind mounts (`--bind`, `--ro-bind`),
//! extra disks (`--mount-disk-file`) and serial outputs (`--virtio-serial-out`).

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use super::{has_control, sanitise, valid_name, ConfigError};

/// Where a bind mount appears in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    /// Mounted at /run/virtiofs-mnt-<NAME>.
    Named(String),
    /// Mounted at this absolute guest path.
    Path(PathBuf),
}

/// A container directory shared with the guest over virtiofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    pub source: PathBuf,
    pub target: BindTarget,
    pub readonly: bool,
}

/// Longest mount name: it becomes the virtiofs tag "mnt-NAME", and tags are at most 36
/// bytes.
const MAX_MOUNT_NAME: usize = 30;
const BIND_HINT: &str = "use SRC, SRC:NAME or SRC:/guest/path, with SRC an absolute path";

/// Top-level guest directories that cannot take a bind mount, anywhere below them, and
/// why. Everything bootc boots from lives here, or the kernel's own filesystems do.
const RESERVED_TREES: &[(&str, &str)] = &[
    ("usr", "it holds the booted image's read-only system files"),
    (
        "etc",
        "it is the system configuration, merged at each update",
    ),
    ("boot", "it holds the bootloader and kernels"),
    ("proc", "it is the kernel's process filesystem"),
    ("sys", "it is the kernel's sysfs"),
    ("dev", "it holds device nodes"),
    ("sysroot", "it is the physical root of a bootc system"),
    ("ostree", "it holds the system's deployments"),
    ("bin", "it is a link into /usr"),
    ("sbin", "it is a link into /usr"),
    ("lib", "it is a link into /usr"),
    ("lib64", "it is a link into /usr"),
];
/// Directories that can hold bind mounts below them but must not be replaced themselves.
const RESERVED_DIRS: &[&str] = &["run", "var"];

/// Parses a bind mount: "SRC" (named after SRC's file name), "SRC:NAME" (mounted at
/// /run/virtiofs-mnt-NAME) or "SRC:/guest/path". SRC is an absolute path in the
/// container and cannot contain ':'.
pub fn parse_bind(s: &str, readonly: bool) -> Result<BindSpec, ConfigError> {
    let err = |reason: String| ConfigError::invalid("bind mount", s, reason);
    if has_control(s) {
        return Err(err(format!(
            "control characters are not allowed; {BIND_HINT}"
        )));
    }
    let (source, target) = match s.split_once(':') {
        Some((source, target)) => (source, Some(target)),
        None => (s, None),
    };
    if !source.starts_with('/') {
        return Err(err(format!(
            "the source must be an absolute path in the container; {BIND_HINT}"
        )));
    }
    let source = PathBuf::from(source);
    let target = match target {
        None => {
            let name = source.file_name().ok_or_else(|| {
                err(format!(
                    "no mount name can be derived from the source; {BIND_HINT}"
                ))
            })?;
            BindTarget::Named(sanitise(&name.to_string_lossy(), MAX_MOUNT_NAME, |c| {
                c == '_' || c == '.' || c == '-'
            }))
        }
        Some("") => return Err(err(format!("nothing follows ':'; {BIND_HINT}"))),
        Some(path) if path.starts_with('/') => BindTarget::Path(guest_path(path).map_err(err)?),
        Some(name) => {
            if !valid_name(name, MAX_MOUNT_NAME, |c| c == '_' || c == '.' || c == '-') {
                return Err(err(format!(
                    "the mount name must be 1 to {MAX_MOUNT_NAME} letters, digits, '_', '.' or '-'; {BIND_HINT}"
                )));
            }
            BindTarget::Named(name.to_string())
        }
    };
    Ok(BindSpec {
        source,
        target,
        readonly,
    })
}

/// Checks a guest mount point and returns it normalised (no "." or repeated slashes).
fn guest_path(path: &str) -> Result<PathBuf, String> {
    const ELSEWHERE: &str = "mount somewhere like /mnt/NAME, /srv/NAME or /var/NAME";
    if path.len() > 4095 {
        return Err(format!("the guest path is too long; {ELSEWHERE}"));
    }
    let mut normal = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => normal.push(c),
            Component::ParentDir => {
                return Err(format!(
                    "'..' is not allowed in the guest path; {ELSEWHERE}"
                ))
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut names = normal.iter().skip(1).filter_map(|c| c.to_str());
    let Some(top) = names.next() else {
        return Err(format!("it would hide the guest's whole root; {ELSEWHERE}"));
    };
    if let Some((_, why)) = RESERVED_TREES.iter().find(|(dir, _)| *dir == top) {
        return Err(format!("/{top} is reserved because {why}; {ELSEWHERE}"));
    }
    if RESERVED_DIRS.contains(&top) && names.next().is_none() {
        return Err(format!(
            "/{top} itself cannot be replaced, only directories below it; {ELSEWHERE}"
        ));
    }
    Ok(normal)
}

/// A disk file's image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// An extra disk attached to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFileSpec {
    pub path: PathBuf,
    /// The virtio-blk serial: the guest sees /dev/disk/by-id/virtio-NAME.
    pub name: String,
    pub format: DiskFormat,
}

/// Longest disk name: virtio-blk serials are 20 bytes.
const MAX_DISK_NAME: usize = 20;

impl FromStr for DiskFileSpec {
    type Err = ConfigError;

    /// "FILE[:NAME[:raw|qcow2]]". NAME defaults to the file's stem; an empty NAME or
    /// format means the default. Without a format, a ".qcow2" file is qcow2 and anything
    /// else raw. FILE cannot contain ':'; a relative FILE is kept as given, for the
    /// caller to resolve.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str =
            "use FILE[:NAME[:raw|qcow2]], with NAME 1 to 20 letters, digits, '_' or '-'";
        let err = |reason: &str| ConfigError::invalid("disk", s, format!("{reason}; {HINT}"));
        if has_control(s) {
            return Err(err("control characters are not allowed"));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (file, name, format) = match parts[..] {
            [file] => (file, "", ""),
            [file, name] => (file, name, ""),
            [file, name, format] => (file, name, format),
            _ => return Err(err("too many ':'")),
        };
        if file.is_empty() {
            return Err(err("the file name is empty"));
        }
        let path = PathBuf::from(file);
        let is_serial_char = |c| c == '_' || c == '-';
        let name = if name.is_empty() {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem.is_empty() {
                return Err(err("no disk name can be derived from the file name"));
            }
            sanitise(&stem, MAX_DISK_NAME, is_serial_char)
        } else if valid_name(name, MAX_DISK_NAME, is_serial_char) {
            name.to_string()
        } else {
            return Err(err("the disk name is not valid"));
        };
        let format = match format.to_ascii_lowercase().as_str() {
            "raw" => DiskFormat::Raw,
            "qcow2" => DiskFormat::Qcow2,
            "" if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("qcow2")) =>
            {
                DiskFormat::Qcow2
            }
            "" => DiskFormat::Raw,
            _ => return Err(err("the format must be raw or qcow2")),
        };
        Ok(DiskFileSpec { path, name, format })
    }
}

/// A virtio serial port whose guest output is written to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialOutSpec {
    /// The virtio port name: the guest sees /dev/virtio-ports/NAME.
    pub name: String,
    pub file: PathBuf,
}

impl FromStr for SerialOutSpec {
    type Err = ConfigError;

    /// "NAME:FILE", NAME being 1 to 64 letters, digits, '_', '.' or '-', FILE absolute.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str = "use NAME:FILE, with NAME 1 to 64 letters, digits, '_', '.' or '-' \
             and FILE an absolute path, like org.example.log:/var/log/guest.log";
        let err =
            |reason: &str| ConfigError::invalid("serial output", s, format!("{reason}; {HINT}"));
        if has_control(s) {
            return Err(err("control characters are not allowed"));
        }
        let Some((name, file)) = s.split_once(':') else {
            return Err(err("there is no ':'"));
        };
        if !valid_name(name, 64, |c| c == '_' || c == '.' || c == '-') {
            return Err(err("the port name is not valid"));
        }
        if !file.starts_with('/') {
            return Err(err("the file must be an absolute path"));
        }
        Ok(SerialOutSpec {
            name: name.to_string(),
            file: PathBuf::from(file),
        })
    }
}
