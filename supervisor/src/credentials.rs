//! systemd credentials for the guest, delivered over SMBIOS type 11.
//!
//! systemd (PID 1, >= 252) imports every SMBIOS OEM string of the form
//! `io.systemd.credential.binary:NAME=BASE64` as a system credential, and the
//! consumers named below pick them up during boot. Everything here is pure:
//! the caller hands the results to `qemu::QemuSpec::smbios`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// One system credential: its name (a file name under
/// `/run/credentials/@system/`) and its raw contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub name: String,
    pub value: Vec<u8>,
}

impl Credential {
    /// A credential with a checked name. The struct's fields are public for
    /// convenience; this constructor is the checked way in.
    pub fn new(name: &str, value: impl Into<Vec<u8>>) -> Result<Credential, CredentialError> {
        validate_credential_name(name)?;
        Ok(Credential {
            name: name.to_owned(),
            value: value.into(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "SSH public key is empty; pass the contents of a .pub file, e.g. ~/.ssh/id_ed25519.pub"
    )]
    EmptySshKey,
    #[error("SSH public key spans several lines; pass exactly one key (one line of a .pub file)")]
    MultiLineSshKey,
    #[error("SSH public key starts with {start:?}, not a key type; pass a public key line beginning with ssh-, ecdsa- or sk- (not a private key or fingerprint)")]
    UnknownSshKeyType { start: String },
    #[error("hostname {hostname:?} is invalid ({reason}); use dot-separated labels of 1-63 letters, digits and '-', 253 characters at most")]
    InvalidHostname { hostname: String, reason: String },
    #[error("unit name {name:?} is invalid ({reason}); use e.g. \"bcvk-probe.service\": letters, digits, ':', '-', '_', '.', '\\\\', at most one '@', and a known unit suffix")]
    InvalidUnitName { name: String, reason: String },
    #[error("credential name {name:?} is invalid ({reason}); use a plain file name without '/', '=', whitespace or control characters, 255 bytes at most")]
    InvalidCredentialName { name: String, reason: String },
}

impl CredentialError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        Exit::Usage
    }
}

/// Checks what systemd and the SMBIOS transport need from a credential name:
/// it becomes a file name (no '/', not "." or "..", <= 255 bytes) and is
/// followed by '=' in the OEM string, so it must not contain one itself.
pub fn validate_credential_name(name: &str) -> Result<(), CredentialError> {
    let bad = |reason: &str| CredentialError::InvalidCredentialName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("a directory name"));
    }
    if name.contains('/') {
        return Err(bad("contains '/'"));
    }
    if name.contains('=') {
        return Err(bad("contains '='"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    Ok(())
}

/// Credentials that let `root` log in with `public_key`.
///
/// Two are returned, on purpose:
/// - `ssh.authorized_keys.root`: systemd >= 252 ships tmpfiles.d/provision.conf,
///   which writes it to /root/.ssh/authorized_keys.
/// - `tmpfiles.extra`: read by systemd-tmpfiles (also >= 252) on every boot; it
///   covers distributions that drop or trim provision.conf. Its `f+` line
///   replaces an authorized_keys file the image may ship, so the key bcvk
///   needs is there even then (the VM is throwaway; the image is not).
///
/// When both apply they write the same bytes, so their order does not matter.
pub fn ssh_key_credentials(public_keys: &[&str]) -> Result<Vec<Credential>, CredentialError> {
    let mut keys = Vec::new();
    for public_key in public_keys {
        let key = public_key.trim();
        if key.is_empty() {
            return Err(CredentialError::EmptySshKey);
        }
        if key.contains('\n') || key.contains('\r') {
            return Err(CredentialError::MultiLineSshKey);
        }
        if !["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p)) {
            return Err(CredentialError::UnknownSshKeyType {
                start: key.chars().take(12).collect(),
            });
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(CredentialError::EmptySshKey);
    }

    // tmpfiles expands '%' specifiers and C escapes in the argument of `f`
    // lines, and writes it without a trailing newline; key comments may hold
    // either character, so both are escaped, and "\n" separates and ends keys.
    let escaped: String = keys
        .iter()
        .map(|k| format!("{}\\n", k.replace('\\', "\\\\").replace('%', "%%")))
        .collect();
    let tmpfiles = format!(
        "d /root/.ssh 0700 root root -\n\
         f+ /root/.ssh/authorized_keys 0600 root root - {escaped}\n"
    );
    let authorized: String = keys.iter().map(|k| format!("{k}\n")).collect();

    Ok(vec![
        Credential {
            name: "ssh.authorized_keys.root".to_owned(),
            value: authorized.into_bytes(),
        },
        Credential {
            name: "tmpfiles.extra".to_owned(),
            value: tmpfiles.into_bytes(),
        },
    ])
}

/// `system.hostname`: the guest's hostname, used by systemd (>= 254) when
/// /etc/hostname does not set one. Older guests ignore it.
pub fn hostname_credential(hostname: &str) -> Result<Credential, CredentialError> {
    let bad = |reason: &str| CredentialError::InvalidHostname {
        hostname: hostname.to_owned(),
        reason: reason.to_owned(),
    };
    if hostname.is_empty() {
        return Err(bad("empty"));
    }
    if hostname.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in hostname.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad("characters other than letters, digits and '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("label starts or ends with '-'"));
        }
    }
    Ok(Credential {
        name: "system.hostname".to_owned(),
        value: hostname.as_bytes().to_vec(),
    })
}

/// One line of an fstab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub what: String,
    pub where_: String,
    pub fstype: String,
    /// Joined with ','; empty means "defaults".
    pub options: Vec<String>,
}

impl FstabEntry {
    /// A virtiofs share mounted at `where_`.
    ///
    /// Options are `ro`/`rw` plus `nofail`: a share that fails to mount then
    /// fails only its own mount unit instead of dropping the whole boot into
    /// emergency mode, so the guest still comes up with SSH and the failure
    /// can be read from the journal.
    pub fn virtiofs(tag: &str, where_: &str, readonly: bool) -> FstabEntry {
        FstabEntry {
            what: tag.to_owned(),
            where_: where_.to_owned(),
            fstype: "virtiofs".to_owned(),
            options: vec![
                if readonly { "ro" } else { "rw" }.to_owned(),
                "nofail".to_owned(),
            ],
        }
    }

    /// A swap device (e.g. `/dev/disk/by-id/virtio-<serial>`), with `nofail`
    /// so a missing disk neither fails nor delays swap.target.
    pub fn swap(device: &str) -> FstabEntry {
        FstabEntry {
            what: device.to_owned(),
            where_: "none".to_owned(),
            fstype: "swap".to_owned(),
            options: vec!["nofail".to_owned()],
        }
    }
}

/// fstab fields are separated by whitespace; fstab(5) escapes it in octal.
fn fstab_escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// `fstab.extra`: extra fstab lines, read by systemd-fstab-generator
/// (systemd >= 254; older guests ignore it). None when there is nothing to
/// mount, so no empty credential is sent.
pub fn fstab_extra_credential(entries: &[FstabEntry]) -> Option<Credential> {
    if entries.is_empty() {
        return None;
    }
    let mut text = String::new();
    for e in entries {
        let options = if e.options.is_empty() {
            "defaults".to_owned()
        } else {
            e.options.join(",")
        };
        text.push_str(&format!(
            "{} {} {} {} 0 0\n",
            fstab_escape(&e.what),
            fstab_escape(&e.where_),
            fstab_escape(&e.fstype),
            fstab_escape(&options),
        ));
    }
    Some(Credential {
        name: "fstab.extra".to_owned(),
        value: text.into_bytes(),
    })
}

const EXTRA_UNIT_SUFFIXES: &[&str] = &[
    ".service", ".mount", ".socket", ".target", ".timer", ".path", ".swap",
];

/// Drop-ins may extend any unit type, including ones bcvk never creates.
const DROPIN_UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".mount",
    ".socket",
    ".target",
    ".timer",
    ".path",
    ".swap",
    ".automount",
    ".slice",
    ".scope",
    ".device",
];

/// A subset of systemd's unit_name_is_valid(): systemd-debug-generator
/// ignores (with only a log line in the guest) credentials whose unit name
/// fails it, so catching it here turns a silent no-op into an error.
fn validate_unit_name(name: &str, suffixes: &[&str]) -> Result<(), CredentialError> {
    let bad = |reason: &str| CredentialError::InvalidUnitName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    let Some(stem) = suffixes.iter().find_map(|s| name.strip_suffix(s)) else {
        return Err(bad(&format!("suffix is not one of {}", suffixes.join(" "))));
    };
    if stem.is_empty() {
        return Err(bad("nothing before the suffix"));
    }
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
    {
        return Err(bad("characters outside [A-Za-z0-9:-_.\\@]"));
    }
    if stem.matches('@').count() > 1 {
        return Err(bad("more than one '@'"));
    }
    if stem.starts_with('@') {
        return Err(bad("starts with '@'"));
    }
    Ok(())
}

/// `systemd.extra-unit.<unit_name>`: systemd-debug-generator (systemd >= 256)
/// writes `contents` as a unit file. It does not enable the unit ([Install]
/// is ignored); pull it in with a drop-in (see [`unit_dropin_credential`]) or
/// `systemd.wants=` on the kernel command line.
pub fn unit_credential(unit_name: &str, contents: &[u8]) -> Result<Credential, CredentialError> {
    validate_unit_name(unit_name, EXTRA_UNIT_SUFFIXES)?;
    Ok(Credential {
        name: format!("systemd.extra-unit.{unit_name}"),
        value: contents.to_vec(),
    })
}

/// `systemd.unit-dropin.<unit_name>`: systemd-debug-generator (systemd >= 256)
/// writes `contents` as the drop-in `<unit_name>.d/50-credential.conf`.
///
/// Only one drop-in per unit: systemd 256 and 257 take the whole suffix as
/// the unit name, so the `systemd.unit-dropin.<unit>~<dropin>` form that later
/// releases accept (to name the drop-in) fails their unit-name check and is
/// ignored. This function therefore takes no drop-in name.
pub fn unit_dropin_credential(
    unit_name: &str,
    contents: &[u8],
) -> Result<Credential, CredentialError> {
    validate_unit_name(unit_name, DROPIN_UNIT_SUFFIXES)?;
    Ok(Credential {
        name: format!("systemd.unit-dropin.{unit_name}"),
        value: contents.to_vec(),
    })
}

/// QEMU's option parser splits on ',' and reads ",," as a literal comma.
fn escape_commas(s: &str) -> String {
    s.replace(',', ",,")
}

/// The value of one `-smbios` option per credential.
///
/// The `binary:` form carries base64, so contents may hold newlines or any
/// byte; base64 has no ',' but a name could, hence the escaping.
pub fn smbios_args(creds: &[Credential]) -> Vec<String> {
    creds
        .iter()
        .map(|c| {
            format!(
                "type=11,value=io.systemd.credential.binary:{}={}",
                escape_commas(&c.name),
                BASE64.encode(&c.value)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcvkTestKeyMaterial user@host";

    fn decode_smbios(arg: &str) -> (String, Vec<u8>) {
        let rest = arg
            .strip_prefix("type=11,value=io.systemd.credential.binary:")
            .expect("prefix");
        // Names hold no '='; base64 only uses it as trailing padding.
        let (name, b64) = rest.split_once('=').expect("name=value");
        (name.to_owned(), BASE64.decode(b64).expect("base64"))
    }

    #[test]
    fn ssh_key_gives_both_credentials() {
        let creds = ssh_key_credentials(&[&format!("  {KEY}\n")]).unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].name, "ssh.authorized_keys.root");
        assert_eq!(creds[0].value, format!("{KEY}\n").into_bytes());
        assert_eq!(creds[1].name, "tmpfiles.extra");
        assert_eq!(
            String::from_utf8(creds[1].value.clone()).unwrap(),
            format!(
                "d /root/.ssh 0700 root root -\n\
                 f+ /root/.ssh/authorized_keys 0600 root root - {KEY}\\n\n"
            )
        );
    }

    #[test]
    fn ssh_key_escapes_tmpfiles_specials() {
        let creds = ssh_key_credentials(&["ssh-rsa AAAA 100%\\done"]).unwrap();
        let text = String::from_utf8(creds[1].value.clone()).unwrap();
        assert!(
            text.ends_with("- ssh-rsa AAAA 100%%\\\\done\\n\n"),
            "{text}"
        );
        // The plain credential is not escaped.
        assert_eq!(creds[0].value, b"ssh-rsa AAAA 100%\\done\n");
    }

    #[test]
    fn ssh_key_accepts_known_types() {
        for k in [
            "ssh-rsa AAAA",
            "ecdsa-sha2-nistp256 AAAA",
            "sk-ssh-ed25519@openssh.com AAAA",
        ] {
            assert!(ssh_key_credentials(&[k]).is_ok(), "{k}");
        }
    }

    #[test]
    fn ssh_key_rejects_bad_input() {
        assert_eq!(
            ssh_key_credentials(&[" \n "]),
            Err(CredentialError::EmptySshKey)
        );
        assert_eq!(
            ssh_key_credentials(&[&format!("{KEY}\n{KEY}")]),
            Err(CredentialError::MultiLineSshKey)
        );
        assert_eq!(
            ssh_key_credentials(&["ssh-rsa AAAA\rssh-rsa BBBB"]),
            Err(CredentialError::MultiLineSshKey)
        );
        assert!(matches!(
            ssh_key_credentials(&["-----BEGIN OPENSSH PRIVATE KEY-----"]),
            Err(CredentialError::UnknownSshKeyType { .. })
        ));
        assert!(matches!(
            ssh_key_credentials(&["SHA256:abcdef"]),
            Err(CredentialError::UnknownSshKeyType { .. })
        ));
    }

    #[test]
    fn hostname_valid() {
        let c = hostname_credential("bcvk-vm.example").unwrap();
        assert_eq!(c.name, "system.hostname");
        assert_eq!(c.value, b"bcvk-vm.example");
        assert!(hostname_credential(&"a".repeat(63)).is_ok());
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(long.len(), 253);
        assert!(hostname_credential(&long).is_ok());
    }

    #[test]
    fn hostname_invalid() {
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        for h in [
            "",
            "-vm",
            "vm-",
            "a..b",
            "vm.",
            "under_score",
            "sp ace",
            "ünï",
            &"a".repeat(64),
            &long,
        ] {
            assert!(
                matches!(
                    hostname_credential(h),
                    Err(CredentialError::InvalidHostname { .. })
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn fstab_extra() {
        assert_eq!(fstab_extra_credential(&[]), None);
        let c = fstab_extra_credential(&[
            FstabEntry::virtiofs("mnt-work", "/run/virtiofs-mnt-work", false),
            FstabEntry::virtiofs("ro-data", "/mnt/with space", true),
            FstabEntry::swap("/dev/disk/by-id/virtio-swap0"),
            FstabEntry {
                what: "tmpfs".into(),
                where_: "/scratch".into(),
                fstype: "tmpfs".into(),
                options: vec![],
            },
        ])
        .unwrap();
        assert_eq!(c.name, "fstab.extra");
        assert_eq!(
            String::from_utf8(c.value).unwrap(),
            "mnt-work /run/virtiofs-mnt-work virtiofs rw,nofail 0 0\n\
             ro-data /mnt/with\\040space virtiofs ro,nofail 0 0\n\
             /dev/disk/by-id/virtio-swap0 none swap nofail 0 0\n\
             tmpfs /scratch tmpfs defaults 0 0\n"
        );
    }

    #[test]
    fn extra_unit() {
        let c = unit_credential("bcvk-probe.service", b"[Service]\nExecStart=/bin/true\n").unwrap();
        assert_eq!(c.name, "systemd.extra-unit.bcvk-probe.service");
        assert_eq!(c.value, b"[Service]\nExecStart=/bin/true\n");
        for ok in [
            "getty@ttyS0.service",
            "serial-getty@.service",
            "run-virtiofs\\x2dwork.mount",
            "a.timer",
            "a.path",
            "a.socket",
            "a.target",
            "dev-vdb.swap",
        ] {
            assert!(unit_credential(ok, b"").is_ok(), "{ok}");
        }
    }

    #[test]
    fn extra_unit_rejects_bad_names() {
        for bad in [
            "",
            ".service",
            "foo",
            "foo.slice",
            "foo bar.service",
            "a/b.service",
            "a@b@c.service",
            "@a.service",
            "a~b.service",
            &format!("{}.service", "a".repeat(250)),
        ] {
            assert!(
                matches!(
                    unit_credential(bad, b""),
                    Err(CredentialError::InvalidUnitName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unit_dropin() {
        let c = unit_dropin_credential("multi-user.target", b"[Unit]\nWants=bcvk-probe.service\n")
            .unwrap();
        assert_eq!(c.name, "systemd.unit-dropin.multi-user.target");
        assert!(unit_dropin_credential("user.slice", b"").is_ok());
        // The newer "~NAME" suffix is not accepted: systemd 256/257 ignore it.
        assert!(unit_dropin_credential("sshd.service~10-bcvk", b"").is_err());
    }

    #[test]
    fn smbios_exact_and_roundtrip() {
        let creds = ssh_key_credentials(&[KEY]).unwrap();
        let args = smbios_args(&creds);
        assert_eq!(args.len(), 2);
        assert_eq!(
            args[0],
            format!(
                "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root={}",
                BASE64.encode(format!("{KEY}\n"))
            )
        );
        for (arg, cred) in args.iter().zip(&creds) {
            let (name, value) = decode_smbios(arg);
            assert_eq!(name, cred.name);
            assert_eq!(value, cred.value);
        }
    }

    #[test]
    fn smbios_known_base64() {
        let c = Credential::new("system.hostname", "vm").unwrap();
        assert_eq!(
            smbios_args(&[c]),
            vec!["type=11,value=io.systemd.credential.binary:system.hostname=dm0=".to_owned()]
        );
    }

    #[test]
    fn smbios_doubles_commas_in_names() {
        let c = Credential {
            name: "a,b".into(),
            value: b"x,y".to_vec(),
        };
        assert_eq!(
            smbios_args(&[c]),
            vec!["type=11,value=io.systemd.credential.binary:a,,b=eCx5".to_owned()]
        );
    }

    #[test]
    fn credential_name_validation() {
        assert!(Credential::new("a,b", "").is_ok());
        for bad in ["", ".", "..", "a/b", "a=b", "a b", "a\nb"] {
            assert!(
                matches!(
                    Credential::new(bad, ""),
                    Err(CredentialError::InvalidCredentialName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Credential::new(&"a".repeat(256), "").is_err());
    }
}
