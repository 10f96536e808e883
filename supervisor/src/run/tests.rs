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
    let scratch = RunError::from(rootfs::RootfsError::ScratchDir {
        path: "/nope".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    });
    assert_eq!(scratch.exit_code(), 64);
    let split = RunError::from(opaque::OpaqueError::TarSplit {
        layer: "a".repeat(64),
        path: "/s/overlay-layers/x.tar-split.gz".into(),
        source: std::io::Error::other("corrupt deflate stream"),
    });
    assert_eq!(split.exit_code(), 65);
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
