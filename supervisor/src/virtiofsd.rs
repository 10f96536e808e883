//! Command line for virtiofsd (the Rust implementation; Debian trixie ships
//! 1.13 at /usr/libexec/virtiofsd), one process per shared directory.
//!
//! Pure: paths arrive resolved; spawning and waiting are the caller's. Note
//! for the caller: with `--sandbox=namespace` virtiofsd forks into new
//! namespaces, and the socket appears only once it is ready to accept, so
//! "socket exists" is the readiness signal to wait for before starting QEMU.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// virtiofsd's `--cache=` (bcvk's `--virtiofs-cache`): how long the guest may cache data and
/// metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// Cache and revalidate after 1 s (for trees that change behind the guest's back)
    Auto,
    /// Cache without revalidating: only the guest writes the root, and under TCG this boots
    /// about twice as fast as auto (integration/bench)
    Always,
    /// No caching
    Never,
    /// Cache metadata, not data
    Metadata,
}

impl CacheMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Auto => "auto",
            CacheMode::Always => "always",
            CacheMode::Never => "never",
            CacheMode::Metadata => "metadata",
        }
    }
}

/// `--sandbox=`: how virtiofsd confines itself to the shared directory.
/// `Namespace` needs to create user/mount/pid namespaces (fine in a
/// privileged container); `Chroot` is for when that is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    Namespace,
    Chroot,
    None,
}

impl Sandbox {
    pub fn as_str(self) -> &'static str {
        match self {
            Sandbox::Namespace => "namespace",
            Sandbox::Chroot => "chroot",
            Sandbox::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsSpec {
    pub socket: PathBuf,
    pub shared_dir: PathBuf,
    pub readonly: bool,
    pub cache: CacheMode,
    pub sandbox: Sandbox,
    pub xattr: bool,
    /// `Some(0)` tells virtiofsd to leave the limit unchanged.
    pub rlimit_nofile: Option<u64>,
    /// `Some(0)` disables the pool (requests are served on the queue
    /// thread); None keeps virtiofsd's default.
    pub thread_pool_size: Option<u32>,
    /// error | warn | info | debug
    pub log_level: String,
}

/// Longest path a UNIX socket can bind to: sun_path is 108 bytes on Linux,
/// including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VirtiofsError {
    #[error("virtiofsd log level {0:?} is unknown; use one of error, warn, info, debug")]
    InvalidLogLevel(String),
    #[error("virtiofsd socket path {path:?} is {len} bytes, over the 107-byte UNIX socket limit; put the socket in a shorter directory such as /run/bcvk")]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("virtiofsd {what} {path:?} is relative; pass an absolute path (virtiofsd may change directory before using it)")]
    RelativePath { what: &'static str, path: PathBuf },
}

impl VirtiofsSpec {
    pub fn validate(&self) -> Result<(), VirtiofsError> {
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(VirtiofsError::InvalidLogLevel(self.log_level.clone()));
        }
        for (what, path) in [
            ("socket", &self.socket),
            ("shared directory", &self.shared_dir),
        ] {
            if !path.is_absolute() {
                return Err(VirtiofsError::RelativePath {
                    what,
                    path: path.clone(),
                });
            }
        }
        let len = path_len(&self.socket);
        if len > MAX_SOCKET_PATH {
            return Err(VirtiofsError::SocketPathTooLong {
                path: self.socket.clone(),
                len,
            });
        }
        Ok(())
    }
}

fn path_len(p: &Path) -> usize {
    p.as_os_str().len()
}

fn opt_path(name: &str, path: &Path) -> OsString {
    let mut s = OsString::from(name);
    s.push(path.as_os_str());
    s
}

/// The argv for virtiofsd, without the binary itself.
///
/// Deliberately absent: `--tag`. It makes virtiofsd advertise the tag via
/// VHOST_USER_PROTOCOL_F_CONFIG, which QEMU ignores (the tag is set on
/// vhost-user-fs-pci) and which crashes QEMU 7.1-8.0 while it logs a warning
/// about the unsupported feature.
pub fn virtiofsd_args(spec: &VirtiofsSpec) -> Vec<OsString> {
    let mut args = vec![
        opt_path("--socket-path=", &spec.socket),
        opt_path("--shared-dir=", &spec.shared_dir),
        format!("--cache={}", spec.cache.as_str()).into(),
        format!("--sandbox={}", spec.sandbox.as_str()).into(),
    ];
    if spec.readonly {
        // The read-only passthrough (EROFS for every modifying request)
        // arrived in virtiofsd 1.13.0; older virtiofsd rejects the option.
        // A guest-side `ro` mount alone would not stop a root guest from
        // remounting rw, so the host side enforces it.
        args.push("--readonly".into());
    }
    if spec.xattr {
        args.push("--xattr".into());
    }
    if let Some(n) = spec.rlimit_nofile {
        // Without it virtiofsd raises RLIMIT_NOFILE to
        // min(1000000, fs.nr_open), which fails without CAP_SYS_RESOURCE.
        args.push(format!("--rlimit-nofile={n}").into());
    }
    if let Some(n) = spec.thread_pool_size {
        args.push(format!("--thread-pool-size={n}").into());
    }
    args.push(format!("--log-level={}", spec.log_level).into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn spec() -> VirtiofsSpec {
        VirtiofsSpec {
            socket: "/run/bcvk/root.sock".into(),
            shared_dir: "/run/bcvk/rootfs".into(),
            readonly: false,
            cache: CacheMode::Auto,
            sandbox: Sandbox::Namespace,
            xattr: false,
            rlimit_nofile: None,
            thread_pool_size: None,
            log_level: "info".into(),
        }
    }

    fn strs(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn minimal_argv() {
        assert_eq!(
            strs(virtiofsd_args(&spec())),
            [
                "--socket-path=/run/bcvk/root.sock",
                "--shared-dir=/run/bcvk/rootfs",
                "--cache=auto",
                "--sandbox=namespace",
                "--log-level=info",
            ]
        );
    }

    #[test]
    fn full_argv() {
        let s = VirtiofsSpec {
            readonly: true,
            cache: CacheMode::Never,
            sandbox: Sandbox::Chroot,
            xattr: true,
            rlimit_nofile: Some(65536),
            thread_pool_size: Some(16),
            log_level: "debug".into(),
            ..spec()
        };
        assert_eq!(
            strs(virtiofsd_args(&s)),
            [
                "--socket-path=/run/bcvk/root.sock",
                "--shared-dir=/run/bcvk/rootfs",
                "--cache=never",
                "--sandbox=chroot",
                "--readonly",
                "--xattr",
                "--rlimit-nofile=65536",
                "--thread-pool-size=16",
                "--log-level=debug",
            ]
        );
    }

    #[test]
    fn every_cache_and_sandbox_value() {
        for (mode, s) in [
            (CacheMode::Auto, "--cache=auto"),
            (CacheMode::Always, "--cache=always"),
            (CacheMode::Never, "--cache=never"),
            (CacheMode::Metadata, "--cache=metadata"),
        ] {
            let args = strs(virtiofsd_args(&VirtiofsSpec {
                cache: mode,
                ..spec()
            }));
            assert_eq!(args[2], s);
        }
        for (sb, s) in [
            (Sandbox::Namespace, "--sandbox=namespace"),
            (Sandbox::Chroot, "--sandbox=chroot"),
            (Sandbox::None, "--sandbox=none"),
        ] {
            let args = strs(virtiofsd_args(&VirtiofsSpec {
                sandbox: sb,
                ..spec()
            }));
            assert_eq!(args[3], s);
        }
    }

    #[test]
    fn never_passes_tag() {
        let args = strs(virtiofsd_args(&VirtiofsSpec {
            readonly: true,
            xattr: true,
            rlimit_nofile: Some(1),
            thread_pool_size: Some(1),
            ..spec()
        }));
        assert!(args.iter().all(|a| !a.starts_with("--tag")), "{args:?}");
    }

    #[test]
    fn paths_pass_through_verbatim() {
        // clap takes the whole value: no comma escaping, non-UTF-8 kept.
        let s = VirtiofsSpec {
            shared_dir: PathBuf::from(OsString::from_vec(b"/a,b/\xff".to_vec())),
            ..spec()
        };
        assert_eq!(
            virtiofsd_args(&s)[1].clone().into_vec(),
            b"--shared-dir=/a,b/\xff".to_vec()
        );
    }

    #[test]
    fn validate() {
        assert_eq!(spec().validate(), Ok(()));
        assert_eq!(
            VirtiofsSpec {
                log_level: "trace".into(),
                ..spec()
            }
            .validate(),
            Err(VirtiofsError::InvalidLogLevel("trace".into()))
        );
        assert!(matches!(
            VirtiofsSpec {
                socket: "rel.sock".into(),
                ..spec()
            }
            .validate(),
            Err(VirtiofsError::RelativePath { what: "socket", .. })
        ));
        assert!(matches!(
            VirtiofsSpec {
                shared_dir: "rootfs".into(),
                ..spec()
            }
            .validate(),
            Err(VirtiofsError::RelativePath {
                what: "shared directory",
                ..
            })
        ));
        let long = format!("/{}", "s".repeat(107));
        assert!(matches!(
            VirtiofsSpec {
                socket: long.into(),
                ..spec()
            }
            .validate(),
            Err(VirtiofsError::SocketPathTooLong { len: 108, .. })
        ));
        let fits = format!("/{}", "s".repeat(106));
        assert_eq!(
            VirtiofsSpec {
                socket: fits.into(),
                ..spec()
            }
            .validate(),
            Ok(())
        );
    }
}
