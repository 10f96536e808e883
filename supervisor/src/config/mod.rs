//! Parsing and validating the values of user options (sizes, instance types, port
//! mappings, bind mounts, ...) into plain typed values.
//!
//! The command line parser calls these through `FromStr` or `value_parser`; they know
//! nothing about flags. Errors name the offending value and what is accepted; a caller
//! that knows which flag the value came from adds it with [`ConfigError::for_flag`].
//!
//! Here the values about the VM itself (sizes, instance types, ports, kernel arguments, users,
//! host names); in `mounts` what the guest gets from the container's files (bind mounts,
//! extra disks, serial outputs).

mod mounts;
#[cfg(test)]
mod tests;

pub use mounts::{parse_bind, BindSpec, BindTarget, DiskFileSpec, DiskFormat, SerialOutSpec};

use std::fmt;
use std::str::FromStr;

/// Largest size accepted anywhere: far beyond any VM this tool runs, and small enough
/// that byte counts never get near overflowing.
const MAX_SIZE_BYTES: u64 = 16 << 40;
const MIB: u64 = 1 << 20;
const SIZE_HINT: &str =
    "use a number with an optional unit, like 512M, 4G or 2048 (MiB); units K, M, G, T are binary";

/// An option value that cannot be used.
/// The longest a value is shown in a message; longer ones end in "...".
pub const MAX_SHOWN: usize = 100;

/// A value as shown in a message: escaped onto one line (the message stays one line), cut to
/// [`MAX_SHOWN`] characters (a huge value cannot bury the explanation).
pub fn shown(value: &str) -> String {
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

/// The longest timeout an option takes: a year. Longer ones would overflow the clock's
/// `Instant` (a panic, and PID 1 aborts); no VM needs them.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// `--initrd`: whether the image's initramfs is booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Initrd {
    /// Skip it when the kernel has virtiofs built in (boots straight into the image's init)
    Auto,
    /// Always boot through the image's initramfs
    Yes,
    /// Never: the kernel must mount the virtiofs root itself
    No,
}

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
