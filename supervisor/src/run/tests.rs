use super::*;

fn caps(kvm: bool, flags: bool) -> HostCaps {
    HostCaps {
        kvm_device: if kvm {
            Ok(())
        } else {
            Err(
                "/dev/kvm does not exist in the container: add --device /dev/kvm to the podman (or docker) run command"
                    .into(),
            )
        },
        cpu_virt_flags: flags,
    }
}

#[test]
fn accel_auto_uses_kvm_only_when_it_can_run_the_guest() {
    assert_eq!(
        choose_accel(AccelArg::Auto, &caps(true, true)).unwrap(),
        (Accel::Kvm, None)
    );
    let (a, w) = choose_accel(AccelArg::Auto, &caps(true, false)).unwrap();
    assert_eq!(a, Accel::Tcg);
    assert!(w.unwrap().contains("no vmx/svm"));
    let (a, w) = choose_accel(AccelArg::Auto, &caps(false, true)).unwrap();
    assert_eq!(a, Accel::Tcg);
    assert!(w.unwrap().contains("--device /dev/kvm"));
    assert_eq!(
        choose_accel(AccelArg::Tcg, &caps(true, true)).unwrap(),
        (Accel::Tcg, None)
    );
}

#[test]
fn accel_kvm_without_device_is_an_error_with_the_fix() {
    let err = choose_accel(AccelArg::Kvm, &caps(false, true)).unwrap_err();
    assert_eq!(err.exit_code(), 69);
    assert!(err.to_string().contains("add --device /dev/kvm"), "{err}");
    let (a, w) = choose_accel(AccelArg::Kvm, &caps(true, false)).unwrap();
    assert_eq!(a, Accel::Kvm);
    assert!(w.is_some());
}

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

#[test]
fn detects_virtualization_flags() {
    assert!(cpu_has_virt_flags(
        "processor: 0\nflags\t\t: fpu vme vmx sse\n"
    ));
    assert!(cpu_has_virt_flags("flags : fpu svm\n"));
    assert!(!cpu_has_virt_flags("flags : fpu vme sse hypervisor\n"));
    assert!(!cpu_has_virt_flags("vmx flags : none\n"));
}

#[test]
fn cmdline_mounts_the_virtiofs_root_and_appends_kargs_last() {
    let boot = BootFiles {
        version: "6.12".into(),
        kernel: "/k".into(),
        initrd: Some("/i".into()),
        uki_cmdline: None,
        source: crate::kernel::KernelSource::Modules,
        others: vec![],
        skipped: vec![],
    };
    let c = kernel_cmdline(&boot, &["quiet".into(), "foo=bar".into()]);
    assert_eq!(&c[..3], &["root=rootfs", "rootfstype=virtiofs", "rw"]);
    assert!(c.contains(&"panic=-1".to_string()));
    assert_eq!(&c[c.len() - 2..], &["quiet", "foo=bar"]);
    let no_initrd = BootFiles {
        initrd: None,
        ..boot
    };
    assert!(kernel_cmdline(&no_initrd, &[]).contains(&"init=/sbin/init".to_string()));
}

#[test]
fn reads_the_container_name_from_containerenv() {
    let env = "engine=\"podman-4.3.1\"\nname=\"testvm\"\nid=\"abc\"\n";
    assert_eq!(container_name(env).as_deref(), Some("testvm"));
    assert_eq!(container_name("engine=\"podman\"\n"), None);
}

#[test]
fn ready_timeout_defaults_by_accelerator_and_an_explicit_value_wins() {
    let args = |extra: &[&str]| {
        let mut argv = vec!["bcvk", "run"];
        argv.extend_from_slice(extra);
        argv.push("localhost/img");
        match <crate::cli::Cli as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .command
        {
            crate::cli::Command::Run(a) => *a,
            _ => unreachable!(),
        }
    };
    let d = args(&[]);
    assert_eq!(ready_timeout(&d, Accel::Kvm), Duration::from_secs(240));
    assert_eq!(ready_timeout(&d, Accel::Tcg), Duration::from_secs(600));
    let explicit = args(&["--ready-timeout", "90"]);
    for accel in [Accel::Kvm, Accel::Tcg] {
        assert_eq!(ready_timeout(&explicit, accel), Duration::from_secs(90));
    }
}
