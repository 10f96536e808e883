//! systemd credentials for the guest, delivered over SMBIOS type 11, or QEMU's fw_cfg where
//! the guest has no SMBIOS.
//!
//! systemd (PID 1, >= 252) imports every SMBIOS OEM string of the form
//! `io.systemd.credential.binary:NAME=BASE64` as a system credential, and the
//! consumers named below pick them up during boot. Everything here is pure:
//! the caller hands the results to `qemu::QemuSpec::smbios`.
//!
//! An arm64 guest booted without firmware (`-kernel` on `virt`) has no SMBIOS: QEMU's tables
//! reach a guest only through UEFI. The same import step of systemd reads the fw_cfg files
//! `opt/io.systemd.credentials/NAME` ([`fw_cfg_credentials`]), which was chosen over the
//! kernel command line (`systemd.set_credential_binary=`) because:
//! - it has no size limit, where arm64's command line holds 2048 bytes (COMMAND_LINE_SIZE),
//!   and two keys (bcvk's and the user's) in both SSH credentials, with an RSA-4096 user key,
//!   come near that on their own, before the root and console arguments and `--karg`s;
//! - it is readable by root only in the guest (/sys/firmware/qemu_fw_cfg), where
//!   /proc/cmdline is readable by every user;
//! - the bytes travel as they are (no base64), and it is the channel bcvk already uses for
//!   Ignition.
//!
//! What it needs: the guest kernel's qemu_fw_cfg driver, which systemd's PID 1 loads itself
//! before importing, in a QEMU guest (`virt` names fw-cfg in its device tree). If an initrd
//! lacks the module, systemd imports nothing there and the booted system imports them all.

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
    #[error("{reason}")]
    InvalidHostname { reason: String },
    #[error("credential name {name:?} is invalid ({reason}); use a plain file name without '/', '=', whitespace or control characters, 255 bytes at most")]
    InvalidCredentialName { name: String, reason: String },
    #[error("credential name {name:?} is too long for fw_cfg, which carries an arm64 guest's credentials: with its prefix {FW_CFG_PREFIX:?} a name may have 28 bytes at most")]
    FwCfgNameTooLong { name: String },
}

/// The fw_cfg directory systemd imports credentials from.
pub const FW_CFG_PREFIX: &str = "opt/io.systemd.credentials/";

/// Each credential as a fw_cfg file: its fw_cfg name and its contents, in order. The caller
/// writes the contents to files QEMU reads at start (`qemu::FwCfgFile`). A name must fit
/// fw_cfg's 55 bytes (FW_CFG_MAX_FILE_PATH, 56 with the NUL) with the prefix.
pub fn fw_cfg_credentials(creds: &[Credential]) -> Result<Vec<(String, &[u8])>, CredentialError> {
    creds
        .iter()
        .map(|c| {
            let name = format!("{FW_CFG_PREFIX}{}", c.name);
            if name.len() > crate::qemu::MAX_FW_CFG_NAME_LEN {
                return Err(CredentialError::FwCfgNameTooLong {
                    name: c.name.clone(),
                });
            }
            Ok((name, c.value.as_slice()))
        })
        .collect()
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
    // The one rule for host names, as `--hostname` checks them.
    crate::config::parse_hostname(hostname).map_err(|e| CredentialError::InvalidHostname {
        reason: e.to_string(),
    })?;
    Ok(Credential {
        name: "system.hostname".to_owned(),
        value: hostname.as_bytes().to_vec(),
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

    #[test]
    fn fw_cfg_carries_the_same_credentials_raw() {
        let mut creds = ssh_key_credentials(&[KEY]).unwrap();
        creds.push(hostname_credential("vm").unwrap());
        let files = fw_cfg_credentials(&creds).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "opt/io.systemd.credentials/ssh.authorized_keys.root",
                "opt/io.systemd.credentials/tmpfiles.extra",
                "opt/io.systemd.credentials/system.hostname"
            ]
        );
        // The bytes as they are: what SMBIOS carries in base64.
        for ((_, value), arg) in files.iter().zip(smbios_args(&creds)) {
            assert_eq!(value.to_vec(), decode_smbios(&arg).1);
        }
        // Every name passes QemuSpec's fw_cfg check.
        for (name, _) in &files {
            assert!(name.len() <= crate::qemu::MAX_FW_CFG_NAME_LEN && name.starts_with("opt/"));
        }
    }

    #[test]
    fn fw_cfg_names_are_limited() {
        let ok = Credential::new(&"n".repeat(28), "v").unwrap();
        assert_eq!(fw_cfg_credentials(&[ok]).unwrap()[0].0.len(), 55);
        let long = Credential::new(&"n".repeat(29), "v").unwrap();
        let err = fw_cfg_credentials(&[long]).unwrap_err();
        assert!(matches!(err, CredentialError::FwCfgNameTooLong { .. }));
        assert!(err.to_string().contains("28 bytes") && !err.to_string().contains('\n'));
        // A unit credential's name is too long for it (bcvk puts units in the tree instead).
        let unit = Credential::new("systemd.extra-unit.bcvk-probe.service", "x").unwrap();
        assert!(fw_cfg_credentials(&[unit]).is_err());
    }

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
        let long = ["a".repeat(31), "b".repeat(32)].join(".");
        assert_eq!(long.len(), 64);
        assert!(hostname_credential(&long).is_ok());
    }

    #[test]
    fn hostname_invalid() {
        // Longer than 64 characters in all (the kernel's limit, and --hostname's).
        let long = ["a".repeat(32), "b".repeat(32)].join(".");
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
