//! What a run can fail with: [`RunError`] wraps each module's error, whose `exit` gives its
//! class in the table of exit codes; `RunError` only delegates.

use std::path::{Path, PathBuf};

use crate::boot::BootError;
use crate::credentials;
use crate::firstboot;
use crate::guestfs;
use crate::plan::PlanError;
use crate::qemu;
use crate::root::RootError;
use crate::spawn::SpawnError;
use crate::ssh;
use crate::userns;
use crate::vm::VmError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error(transparent)]
    Credential(#[from] credentials::CredentialError),
    #[error(transparent)]
    Qemu(#[from] qemu::QemuError),
    #[error(transparent)]
    GuestFs(#[from] guestfs::GuestFsError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot prepare {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Privileges(#[from] userns::UsernsError),
    #[error(transparent)]
    FirstBoot(#[from] firstboot::FirstBootError),
    #[error("stopped by {0} before the VM started")]
    StoppedEarly(nix::sys::signal::Signal),
}

impl RunError {
    /// The documented exit code (see `exit`): each module's error says its own class.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::Exit;
        let class = match self {
            RunError::StoppedEarly(sig) => return 128 + *sig as i32,
            RunError::Vm(e) => return e.exit_code(),
            RunError::Plan(e) => e.exit(),
            RunError::Root(e) => e.exit(),
            RunError::Boot(e) => e.exit(),
            RunError::Ssh(e) => e.exit(),
            RunError::Credential(e) => e.exit(),
            RunError::Qemu(e) => e.exit(),
            RunError::GuestFs(e) => e.exit(),
            RunError::Spawn(e) => e.exit(),
            RunError::Privileges(e) => e.exit(),
            RunError::FirstBoot(e) => e.exit(),
            RunError::RunDir { .. } => Exit::Internal,
        };
        class.code()
    }

    pub fn console_tail(&self) -> &[String] {
        match self {
            RunError::Vm(e) => e.console_tail(),
            _ => &[],
        }
    }
}

pub(crate) fn run_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::RunDir {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_privileges_are_77_and_store_metadata_65() {
        let unshare = RunError::from(userns::UsernsError::Unshare(nix::Error::EPERM));
        assert_eq!(unshare.exit_code(), 77);
        assert!(
            unshare.to_string().contains("--cap-add SYS_ADMIN"),
            "{unshare}"
        );
        let map = RunError::from(userns::UsernsError::Map(
            "writing /proc/1/uid_map: EPERM".into(),
        ));
        assert_eq!(map.exit_code(), 77);
        assert!(map.to_string().contains("CAP_SETUID"), "{map}");
        assert_eq!(
            RunError::from(userns::UsernsError::Threads(3)).exit_code(),
            71
        );
        // A user's mistake is usage, never "internal".
        let scratch = RootError::from(crate::rootfs::RootfsError::ScratchDir {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(RunError::from(scratch).exit_code(), 64);
        let split = RootError::from(crate::opaque::OpaqueError::TarSplit {
            layer: "a".repeat(64),
            path: "/s/overlay-layers/x.tar-split.gz".into(),
            source: std::io::Error::other("corrupt deflate stream"),
        });
        assert_eq!(RunError::from(split).exit_code(), 65);
    }

    #[test]
    fn a_missing_or_bad_ssh_key_is_usage_64() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ssh::read_public_key(&dir.path().join("nope.pub")).unwrap_err();
        assert_eq!(RunError::from(missing).exit_code(), 64);
        std::fs::write(dir.path().join("bad.pub"), "not a key\n").unwrap();
        let bad = ssh::read_public_key(&dir.path().join("bad.pub")).unwrap_err();
        assert_eq!(RunError::from(bad).exit_code(), 64);
        let unreadable = ssh::read_public_key(dir.path()).unwrap_err();
        assert_eq!(RunError::from(unreadable).exit_code(), 64);
    }

    #[test]
    fn a_write_refused_by_the_images_symlink_is_65_other_write_errors_71() {
        let write = |source| {
            RunError::from(guestfs::GuestFsError::Write {
                path: "/etc/systemd/system/x.service".into(),
                source,
            })
            .exit_code()
        };
        let link = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/etc/systemd/system is a symlink in the image: bcvk writes through no symlink of the image",
        );
        assert_eq!(write(link), 65);
        assert_eq!(
            write(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            71
        );
    }
}
