//! Parsing and validating the values of user options (sizes, instance types, port
//! mappings, bind mounts, ...) into plain typed values.
//!
//! The command line parser calls these through `FromStr` or `value_parser`; they know
//! nothing about flags. Errors name the offending value and what is accepted; a caller
//! that knows which flag the value came from adds it with [`ConfigError::for_flag`].

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// Largest size accepted anywhere: far beyond any VM this tool runs, and small enough
/// that byte counts never get near overflowing.
const MAX_SIZE_BYTES: u64 = 16 << 40;
const MIB: u64 = 1 << 20;
const SIZE_HINT: &str =
    "use a number with an optional unit, like 512M, 4G or 2048 (MiB); units K, M, G, T are binary";

/// An option value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `what` names the kind of value ("size", "port mapping"), `reason` says what is
    /// wrong and what is accepted.
    #[error("invalid {what} '{}'{}: {reason}", shown(value), for_flag(*flag))]
    Invalid {
        what: &'static str,
        value: String,
        flag: Option<&'static str>,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            what,
            value: value.to_string(),
            flag: None,
            reason: reason.into(),
        }
    }

    /// Names the flag the value came from, as in `"invalid size '4X' for --memory: ..."`.
    pub fn for_flag(self, flag: &'static str) -> Self {
        match self {
            ConfigError::Invalid {
                what,
                value,
                reason,
                ..
            } => ConfigError::Invalid {
                what,
                value,
                flag: Some(flag),
                reason,
            },
        }
    }
}

/// The value as shown in messages: escaped so that the message stays on one line, and
/// shortened so that a huge value cannot bury the explanation.
fn shown(value: &str) -> String {
    const MAX: usize = 100;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

fn for_flag(flag: Option<&'static str>) -> String {
    flag.map(|f| format!(" for {f}")).unwrap_or_default()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Parses a size into bytes; see [`parse_size_mib`] for the syntax.
fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let err = |reason: &str| ConfigError::invalid("size", s, reason);
    let junk = || err(SIZE_HINT);
    let t = s.trim();
    if t.starts_with('-') {
        return Err(err(&format!("sizes cannot be negative; {SIZE_HINT}")));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim_start_matches(' ').to_ascii_lowercase().as_str() {
        "b" => 0,
        "k" | "kb" | "kib" => 10,
        "" | "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(junk()),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(junk());
    }
    // More digits than this cannot be a sensible size, and bounding them keeps the
    // arithmetic below far from overflowing u128.
    if int.len() > 20 || frac.len() > 18 {
        return Err(err(&format!("too many digits; {SIZE_HINT}")));
    }
    let unit = 1u128 << shift;
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| junk())?
    };
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| junk())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    // Fractions round up: asking for "1.1K" should never give less than that.
    let bytes = int * unit + (frac_value * unit).div_ceil(scale);
    if bytes == 0 {
        return Err(err(&format!("the size must be more than 0; {SIZE_HINT}")));
    }
    if bytes > u128::from(MAX_SIZE_BYTES) {
        return Err(err("the largest size accepted is 16T; use a smaller size"));
    }
    Ok(bytes as u64)
}

/// Parses a memory size into MiB: "4G", "512M", "1.5G", "4GiB", "4096MiB", "1T", or a bare
/// number of MiB ("2048"). Units are binary and case-insensitive; "B" means bytes and K/B
/// amounts round up to whole MiB. Zero, negative values and more than 16 TiB are refused.
pub fn parse_size_mib(s: &str) -> Result<u64, ConfigError> {
    Ok(parse_size(s)?.div_ceil(MIB))
}

/// Parses a disk, swap or scratch size into bytes, with the same syntax as
/// [`parse_size_mib`]. A bare number means MiB here too, not bytes, so that "2048" means
/// the same for every size option (as for upstream bcvk's `--memory`); "B" asks for bytes.
pub fn parse_size_bytes(s: &str) -> Result<u64, ConfigError> {
    parse_size(s)
}

/// A named VM shape, as in KubeVirt's u1 instance types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
}

const fn it(name: &'static str, vcpus: u32, memory_gib: u64) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib: memory_gib * 1024,
    }
}

pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "u1.nano",
        vcpus: 1,
        memory_mib: 512,
    },
    it("u1.micro", 1, 1),
    it("u1.small", 1, 2),
    it("u1.medium", 1, 4),
    it("u1.2xmedium", 2, 4),
    it("u1.large", 2, 8),
    it("u1.xlarge", 4, 16),
    it("u1.2xlarge", 8, 32),
    it("u1.4xlarge", 16, 64),
    it("u1.8xlarge", 32, 128),
];

/// Looks up an instance type by name, with or without the "u1." prefix, ignoring case.
pub fn parse_instance_type(s: &str) -> Result<InstanceType, ConfigError> {
    let wanted = s.trim();
    INSTANCE_TYPES
        .iter()
        .find(|t| {
            t.name.eq_ignore_ascii_case(wanted)
                || t.name
                    .strip_prefix("u1.")
                    .is_some_and(|short| short.eq_ignore_ascii_case(wanted))
        })
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = INSTANCE_TYPES.iter().map(|t| t.name).collect();
            ConfigError::invalid(
                "instance type",
                s,
                format!(
                    "use one of {} (the \"u1.\" prefix is optional)",
                    names.join(", ")
                ),
            )
        })
}

/// A TCP port forwarded from the container to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub host_port: u16,
    pub guest_port: u16,
}

impl FromStr for PortSpec {
    type Err = ConfigError;

    /// "HOST:GUEST" ("8080:80"), or "PORT" for the same port on both sides.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str = "use HOST:GUEST or PORT, with ports from 1 to 65535, like 8080:80";
        let err = |reason: String| ConfigError::invalid("port mapping", s, reason);
        let port = |p: &str| -> Result<u16, ConfigError> {
            // u16::from_str would also take "+80"; only plain digits are a port here.
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(HINT.to_string()));
            }
            match p.parse::<u32>() {
                Ok(n @ 1..=65535) => Ok(n as u16),
                _ => Err(err(format!("port {p} is out of range; {HINT}"))),
            }
        };
        let (host, guest) = s.split_once(':').unwrap_or((s, s));
        Ok(PortSpec {
            host_port: port(host)?,
            guest_port: port(guest)?,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host_port, self.guest_port)
    }
}

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

/// Whether `name` is 1..=max ASCII letters, digits, or characters `extra` accepts.
fn valid_name(name: &str, max: usize, extra: impl Fn(char) -> bool) -> bool {
    (1..=max).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || extra(c))
}

/// Turns a file name into an acceptable name: other characters become '_', and it is
/// cut to `max` characters.
fn sanitise(name: &str, max: usize, extra: impl Fn(char) -> bool) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || extra(c) {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// Image format of an extra disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskFormatOpt {
    Raw,
    Qcow2,
}

/// An extra disk attached to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFileSpec {
    pub path: PathBuf,
    /// The virtio-blk serial: the guest sees /dev/disk/by-id/virtio-NAME.
    pub name: String,
    pub format: DiskFormatOpt,
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
            "raw" => DiskFormatOpt::Raw,
            "qcow2" => DiskFormatOpt::Qcow2,
            "" if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("qcow2")) =>
            {
                DiskFormatOpt::Qcow2
            }
            "" => DiskFormatOpt::Raw,
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

/// Checks one kernel argument: non-empty, no control characters, and spaces only inside
/// double quotes (`key="a b"`), the way the kernel splits its command line. Quotes must
/// be balanced, or the rest of the command line would be swallowed into this argument.
pub fn parse_karg(s: &str) -> Result<String, ConfigError> {
    // The kernel's command line is 2048 bytes on x86 and arm64; one argument can't be longer.
    const MAX: usize = 2048;
    const HINT: &str =
        "use one argument like console=ttyS0 or key=\"a b\", with spaces only inside double quotes";
    let err =
        |reason: &str| ConfigError::invalid("kernel argument", s, format!("{reason}; {HINT}"));
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > MAX {
        return Err(err("it is longer than the kernel's 2048-byte command line"));
    }
    if has_control(s) {
        return Err(err(
            "newlines, tabs and other control characters are not allowed",
        ));
    }
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if c.is_whitespace() && !(quoted && c == ' ') {
            return Err(err("it contains a space outside quotes"));
        }
    }
    if quoted {
        return Err(err("a double quote is not closed"));
    }
    Ok(s.to_string())
}

/// Checks a guest host name: dot-separated RFC 1123 labels of 1 to 63 letters, digits and
/// '-', not starting or ending with '-'. The whole name is limited to Linux's 64 bytes
/// (HOST_NAME_MAX), not DNS's 253, since the guest kernel has to accept it.
/// A login name for `bcvk ssh --as`: what useradd accepts (POSIX portable names).
pub fn parse_user(s: &str) -> Result<String, ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(ConfigError::invalid(
            "user name",
            s,
            "use 1 to 32 of letters, digits, '.', '_' and '-', not starting with '-'",
        ))
    }
}

pub fn parse_hostname(s: &str) -> Result<String, ConfigError> {
    const HINT: &str = "use letters, digits and '-' in dot-separated parts of at most 63 characters, \
         not starting or ending with '-', at most 64 characters in all, like my-vm or vm1.example.com";
    let err = |reason: &str| ConfigError::invalid("host name", s, format!("{reason}; {HINT}"));
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > 64 {
        return Err(err("it is longer than 64 characters"));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(err("it has an empty part"));
        }
        if label.len() > 63 {
            return Err(err("a part is longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(err(
                "it contains a character other than a letter, digit, '-' or '.'",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("a part starts or ends with '-'"));
        }
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1024;

    #[test]
    fn size_mib_good() {
        for (input, want) in [
            ("4G", 4 * G),
            ("4g", 4 * G),
            ("512M", 512),
            ("512m", 512),
            ("2048", 2048),
            ("1.5G", 1536),
            ("0.5G", 512),
            (".5G", 512),
            ("4GiB", 4 * G),
            ("4gib", 4 * G),
            ("4GB", 4 * G),
            ("4096MiB", 4096),
            ("1T", G * G),
            ("16T", 16 * G * G),
            ("1K", 1),
            ("1025K", 2),
            ("1KiB", 1),
            ("1B", 1),
            ("1048576B", 1),
            ("1048577b", 2),
            ("1.0001M", 2),
            // Blanks around the value (a newline from a file or $(...)) are harmless.
            (" 4G ", 4 * G),
            ("4G\n", 4 * G),
            ("4 G", 4 * G),
            ("007", 7),
            ("2.", 2),
        ] {
            assert_eq!(parse_size_mib(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn size_mib_bad() {
        for input in [
            "",
            " ",
            "0",
            "0G",
            "0.0M",
            "-1G",
            "-0",
            "4X",
            "G",
            "4GG",
            "4 G B",
            "1.2.3G",
            "1,5G",
            "+4G",
            "0x10",
            "4e3",
            "17T",
            "16385G",
            "16.0001T",
            "99999999999999999999999G",
            "1.0000000000000000000001G",
            "4\nG",
            "four",
            "∞",
            ".",
            "4Gi",
            "4iB",
        ] {
            assert!(parse_size_mib(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn size_bytes() {
        for (input, want) in [
            ("2048", 2048 * MIB),
            ("10G", 10 << 30),
            ("1.5K", 1536),
            ("1.1K", 1127), // 1126.4 rounds up
            ("512B", 512),
            ("16TiB", 16 << 40),
        ] {
            assert_eq!(parse_size_bytes(input), Ok(want), "{input:?}");
        }
        for input in ["0", "0B", "-5G", "12Q", "17T"] {
            assert!(parse_size_bytes(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn size_error_message() {
        let err = parse_size_mib("4X").unwrap_err().for_flag("--memory");
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid size '4X' for --memory: use a number with an optional unit"),
            "{msg}"
        );
        assert!(msg.contains("512M, 4G or 2048 (MiB)"), "{msg}");
        assert!(!msg.contains('\n'));
        let msg = parse_size_mib("-1G").unwrap_err().to_string();
        assert!(
            msg.starts_with("invalid size '-1G': sizes cannot be negative"),
            "{msg}"
        );
        let msg = parse_size_mib("0").unwrap_err().to_string();
        assert!(msg.contains("more than 0"), "{msg}");
        let msg = parse_size_mib("17T").unwrap_err().to_string();
        assert!(msg.contains("16T"), "{msg}");
    }

    #[test]
    fn error_display_is_one_short_line() {
        let msg = parse_size_mib(&format!("4\n{}", "9".repeat(500)))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("'4\\n999"), "{msg}");
        assert!(msg.len() < 400, "{msg}");
    }

    #[test]
    fn instance_types() {
        for (input, name, vcpus, memory_mib) in [
            ("u1.nano", "u1.nano", 1, 512),
            ("nano", "u1.nano", 1, 512),
            ("u1.micro", "u1.micro", 1, G),
            ("small", "u1.small", 1, 2 * G),
            ("U1.Small", "u1.small", 1, 2 * G),
            ("u1.medium", "u1.medium", 1, 4 * G),
            ("2xmedium", "u1.2xmedium", 2, 4 * G),
            ("u1.large", "u1.large", 2, 8 * G),
            ("xlarge", "u1.xlarge", 4, 16 * G),
            ("u1.2xlarge", "u1.2xlarge", 8, 32 * G),
            ("4xlarge", "u1.4xlarge", 16, 64 * G),
            ("u1.8xlarge", "u1.8xlarge", 32, 128 * G),
        ] {
            let t = parse_instance_type(input).unwrap();
            assert_eq!(
                (t.name, t.vcpus, t.memory_mib),
                (name, vcpus, memory_mib),
                "{input}"
            );
        }
        assert_eq!(INSTANCE_TYPES.len(), 10);
        assert_eq!(parse_instance_type(" u1.small ").unwrap().name, "u1.small");
        for input in ["", "u1.", "u2.small", "huge", "u1small", "u1.small.x"] {
            let msg = parse_instance_type(input).unwrap_err().to_string();
            assert!(msg.contains("u1.nano, u1.micro"), "{msg}");
            assert!(msg.contains("u1.8xlarge"), "{msg}");
        }
    }

    #[test]
    fn ports() {
        for (input, host, guest) in [
            ("8080:80", 8080, 80),
            ("8080", 8080, 8080),
            ("1:65535", 1, 65535),
            ("2222:22", 2222, 22),
            ("00080:22", 80, 22),
        ] {
            let p: PortSpec = input.parse().unwrap();
            assert_eq!(
                p,
                PortSpec {
                    host_port: host,
                    guest_port: guest
                },
                "{input}"
            );
        }
        assert_eq!(
            PortSpec {
                host_port: 8080,
                guest_port: 80
            }
            .to_string(),
            "8080:80"
        );
        for input in [
            "",
            ":",
            "8080:",
            ":80",
            "0",
            "0:80",
            "80:0",
            "65536",
            "8080:70000",
            "1:2:3",
            "+80",
            "-80",
            " 80",
            "80 ",
            "http",
            "8080/tcp",
            "999999",
            "80:8o",
        ] {
            assert!(input.parse::<PortSpec>().is_err(), "{input:?} was accepted");
        }
        let msg = "70000".parse::<PortSpec>().unwrap_err().to_string();
        assert!(
            msg.contains("out of range") && msg.contains("1 to 65535"),
            "{msg}"
        );
    }

    #[test]
    fn binds_good() {
        let named = |n: &str| BindTarget::Named(n.to_string());
        let path = |p: &str| BindTarget::Path(PathBuf::from(p));
        for (input, source, target) in [
            ("/data", "/data", named("data")),
            ("/srv/my data!", "/srv/my data!", named("my_data_")),
            ("/srv/v1.2-x_y", "/srv/v1.2-x_y", named("v1.2-x_y")),
            ("/srv/data/", "/srv/data/", named("data")),
            ("/data:src", "/data", named("src")),
            ("/data:/mnt/data", "/data", path("/mnt/data")),
            ("/data:/mnt//data/./x/", "/data", path("/mnt/data/x")),
            ("/data:/var/lib/data", "/data", path("/var/lib/data")),
            ("/data:/run/data", "/data", path("/run/data")),
            ("/data:/home/user/data", "/data", path("/home/user/data")),
            ("/data:/usrdata", "/data", path("/usrdata")),
        ] {
            let spec = parse_bind(input, true).unwrap();
            assert_eq!(
                spec,
                BindSpec {
                    source: PathBuf::from(source),
                    target,
                    readonly: true
                },
                "{input}"
            );
        }
        assert!(!parse_bind("/data", false).unwrap().readonly);
        let long = format!("/srv/{}", "a".repeat(40));
        assert_eq!(
            parse_bind(&long, false).unwrap().target,
            named(&"a".repeat(30))
        );
    }

    #[test]
    fn binds_bad() {
        for (input, why) in [
            ("", "absolute"),
            ("data", "absolute"),
            ("./data", "absolute"),
            ("data:/mnt/x", "absolute"),
            ("/", "no mount name"),
            ("/data:", "nothing follows"),
            ("/data:bad name", "mount name"),
            ("/data:a/b", "mount name"),
            (&format!("/data:{}", "n".repeat(31)), "mount name"),
            ("/data:/", "whole root"),
            ("/data://", "whole root"),
            ("/data:/.", "whole root"),
            ("/data:/mnt/../etc", "'..'"),
            ("/data:/usr", "/usr is reserved"),
            ("/data:/usr/share/x", "/usr is reserved"),
            ("/data:/etc/foo", "/etc is reserved"),
            ("/data:/proc", "/proc is reserved"),
            ("/data:/sys/fs", "/sys is reserved"),
            ("/data:/dev", "/dev is reserved"),
            ("/data:/boot", "/boot is reserved"),
            ("/data:/sysroot", "/sysroot is reserved"),
            ("/data:/lib/modules", "/lib is reserved"),
            ("/data:/run", "/run itself"),
            ("/data:/var/", "/var itself"),
            ("/da\nta", "control"),
        ] {
            let msg = match parse_bind(input, false) {
                Ok(spec) => panic!("{input:?} was accepted as {spec:?}"),
                Err(e) => e.to_string(),
            };
            assert!(msg.contains(why), "{input:?}: {msg}");
            assert!(msg.starts_with("invalid bind mount '"), "{msg}");
        }
    }

    #[test]
    fn disks() {
        use DiskFormatOpt::*;
        for (input, path, name, format) in [
            ("/disks/data.img", "/disks/data.img", "data", Raw),
            ("/disks/data.qcow2", "/disks/data.qcow2", "data", Qcow2),
            ("/disks/data.QCOW2", "/disks/data.QCOW2", "data", Qcow2),
            ("/disks/data", "/disks/data", "data", Raw),
            ("/disks/data.img:db", "/disks/data.img", "db", Raw),
            ("/disks/data.img:db:qcow2", "/disks/data.img", "db", Qcow2),
            ("/disks/data.qcow2:db:raw", "/disks/data.qcow2", "db", Raw),
            ("/disks/data.qcow2::RAW", "/disks/data.qcow2", "data", Raw),
            ("/disks/x.qcow2:db:", "/disks/x.qcow2", "db", Qcow2),
            ("/d/my disk.v2.img", "/d/my disk.v2.img", "my_disk_v2", Raw),
            (
                "/d/abcdefghijklmnopqrstuvwxyz.raw",
                "/d/abcdefghijklmnopqrstuvwxyz.raw",
                "abcdefghijklmnopqrst",
                Raw,
            ),
            ("rel/data.img", "rel/data.img", "data", Raw),
        ] {
            let spec: DiskFileSpec = input.parse().unwrap();
            assert_eq!(
                spec,
                DiskFileSpec {
                    path: PathBuf::from(path),
                    name: name.to_string(),
                    format
                },
                "{input}"
            );
        }
        for input in [
            "",
            ":db",
            "/",
            "/d/x.img:db:vmdk",
            "/d/x.img:bad.name",
            "/d/x.img:abcdefghijklmnopqrstu",
            "/d/x.img:a:raw:extra",
            "/d/x\n.img",
        ] {
            assert!(
                input.parse::<DiskFileSpec>().is_err(),
                "{input:?} was accepted"
            );
        }
    }

    #[test]
    fn serial_outputs() {
        for (input, name, file) in [
            ("log:/var/log/guest.log", "log", "/var/log/guest.log"),
            ("org.example.log_1-x:/out", "org.example.log_1-x", "/out"),
            ("n:/a:b", "n", "/a:b"),
        ] {
            let spec: SerialOutSpec = input.parse().unwrap();
            assert_eq!(
                spec,
                SerialOutSpec {
                    name: name.to_string(),
                    file: PathBuf::from(file)
                },
                "{input}"
            );
        }
        let long = format!("{}:/out", "n".repeat(65));
        for input in [
            "",
            "log",
            ":/out",
            "log:",
            "log:out.txt",
            "bad name:/out",
            "a/b:/out",
            &long,
            "log:/o\nut",
        ] {
            assert!(
                input.parse::<SerialOutSpec>().is_err(),
                "{input:?} was accepted"
            );
        }
    }

    #[test]
    fn kargs() {
        for input in [
            "console=ttyS0",
            "quiet",
            "systemd.unit=rescue.target",
            "key=\"a b\"",
            "\"key=a b\"",
            "rd.break=pre-mount",
            "x=é",
        ] {
            assert_eq!(parse_karg(input).as_deref(), Ok(input), "{input}");
        }
        let long = "a".repeat(2049);
        for input in [
            "",
            " ",
            "a b",
            "quiet ",
            "a=\"b",
            "a\nb",
            "a=\"b\nc\"",
            "a\tb",
            "a=\"b\tc\"",
            "\0",
            &long,
        ] {
            assert!(parse_karg(input).is_err(), "{input:?} was accepted");
        }
        let msg = parse_karg("a\nb").unwrap_err().to_string();
        assert!(
            msg.starts_with("invalid kernel argument 'a\\nb': newlines"),
            "{msg}"
        );
    }

    #[test]
    fn hostnames() {
        let label63 = "a".repeat(63);
        for input in [
            "vm",
            "my-vm",
            "VM1",
            "vm1.example.com",
            "1",
            "a-b-c",
            label63.as_str(),
        ] {
            assert_eq!(parse_hostname(input).as_deref(), Ok(input), "{input}");
        }
        let label64 = "a".repeat(64);
        let total65 = format!("{}.{}", "a".repeat(32), "b".repeat(32));
        for input in [
            "",
            "-vm",
            "vm-",
            "my_vm",
            "my vm",
            "vm.",
            ".vm",
            "a..b",
            "vm.-x",
            "é",
            label64.as_str(),
            total65.as_str(),
            "vm\n",
        ] {
            assert!(parse_hostname(input).is_err(), "{input:?} was accepted");
        }
    }
}
