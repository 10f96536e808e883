use std::time::Duration;

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

fn host(kvm: bool) -> HostFacts {
    HostFacts {
        caps: caps(kvm, kvm),
        container_name: Some("ctr".into()),
        terminal: false,
        cpus: 8,
    }
}

fn args(extra: &[&str]) -> RunArgs {
    let mut argv = vec!["bcvk", "run"];
    argv.extend_from_slice(extra);
    match <crate::cli::Cli as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .command
    {
        crate::cli::Command::Run(a) => *a,
        _ => unreachable!(),
    }
}

fn plan(extra: &[&str]) -> Result<Plan, PlanError> {
    make(&args(extra), &host(false))
}

fn refusal(extra: &[&str]) -> String {
    let e = plan(extra).unwrap_err();
    assert_eq!(e.exit().code(), 64, "{e}");
    e.to_string()
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
    assert_eq!(err.exit().code(), 69);
    assert!(err.to_string().contains("add --device /dev/kvm"), "{err}");
    let (a, w) = choose_accel(AccelArg::Kvm, &caps(true, false)).unwrap();
    assert_eq!(a, Accel::Kvm);
    assert!(w.is_some());
}

#[test]
fn reads_the_container_name_from_containerenv() {
    let env = "engine=\"podman-4.3.1\"\nname=\"testvm\"\nid=\"abc\"\n";
    assert_eq!(container_name(env).as_deref(), Some("testvm"));
    assert_eq!(container_name("engine=\"podman\"\n"), None);
}

#[test]
fn ready_timeout_defaults_by_accelerator_and_an_explicit_value_wins() {
    assert_eq!(ready_timeout(None, Accel::Kvm), Duration::from_secs(240));
    assert_eq!(ready_timeout(None, Accel::Tcg), Duration::from_secs(600));
    for accel in [Accel::Kvm, Accel::Tcg] {
        assert_eq!(ready_timeout(Some(90), accel), Duration::from_secs(90));
    }
    let p = make(&args(&["localhost/img"]), &host(true)).unwrap();
    assert_eq!(p.session.ready_timeout, Duration::from_secs(240));
    assert!(p.resources.tcg_fallback);
    assert_eq!(p.session.fallback_ready_timeout, Duration::from_secs(600));
}

#[test]
fn the_source_is_the_disk_image_then_the_directory_then_the_image() {
    let p = plan(&["localhost/img"]).unwrap();
    assert_eq!(
        p.source,
        Source::StoreImage {
            image: "localhost/img".into(),
        }
    );
    let p = plan(&["--rootfs", "/r", "quay.io/x/y:1"]).unwrap();
    assert_eq!(
        p.source,
        Source::Directory {
            dir: "/r".into(),
            name: "quay.io/x/y:1".into()
        }
    );
    let p = plan(&["--rootfs", "/r"]).unwrap();
    assert_eq!(
        p.source,
        Source::Directory {
            dir: "/r".into(),
            name: "/r".into()
        }
    );
    let p = plan(&["--disk-image", "/d.qcow2"]).unwrap();
    assert_eq!(
        p.source,
        Source::DiskImage {
            file: "/d.qcow2".into()
        }
    );
}

#[test]
fn bad_combinations_are_refused_before_anything_starts() {
    assert!(refusal(&["--console", "img", "--", "true"]).contains("--console cannot be combined"));
    assert!(refusal(&["--disk-image", "/d", "--karg", "quiet"]).contains("--karg"));
    assert!(refusal(&["--disk-image", "/d", "--bind-storage-ro"]).contains("--bind-storage-ro"));
}

#[test]
fn rules_that_need_the_root_are_checked_by_admit() {
    let p = plan(&["--karg", "quiet", "--password", "pw", "img"]).unwrap();
    assert!(
        p.admit(RootShape::Disk, false).is_err(),
        "karg on a containerDisk"
    );
    let e = p.admit(RootShape::Tree, false).unwrap_err();
    assert!(e.to_string().contains("--password"), "{e}");
    assert!(p.admit(RootShape::Tree, true).is_ok());
    let d = plan(&["--password", "pw", "img"]).unwrap();
    assert!(d.admit(RootShape::Disk, false).is_ok());
}

#[test]
fn resources_from_itype_defaults_and_explicit_values() {
    let p = plan(&["img"]).unwrap();
    assert_eq!((p.resources.vcpus, p.resources.memory_mib), (4, 4096));
    let p = plan(&["--itype", "u1.small", "img"]).unwrap();
    assert_eq!((p.resources.vcpus, p.resources.memory_mib), (1, 2048));
    let p = plan(&["--itype", "u1.small", "--vcpus", "3", "img"]).unwrap();
    assert_eq!(p.resources.vcpus, 3);
    assert!(
        !p.resources.tcg_fallback,
        "no KVM: nothing to fall back from"
    );
}

#[test]
fn the_session_follows_the_mode() {
    let p = plan(&["img", "--", "echo", "hi"]).unwrap();
    assert_eq!(p.session.echo, Echo::None);
    assert_eq!(p.session.stop_timeout, Duration::from_secs(30));
    assert!(p.session.command.unwrap().contains("echo"));
    let p = plan(&["img"]).unwrap();
    assert_eq!(p.session.echo, Echo::Stdout);
    assert_eq!(p.session.stop_timeout, Duration::from_secs(8));
    assert_eq!(p.session.command, None);
    let p = plan(&["--console-stderr", "img", "--", "true"]).unwrap();
    assert_eq!(p.session.echo, Echo::Stderr);
    let p = plan(&["--console", "img"]).unwrap();
    assert!(p.session.interactive_console);
    assert_eq!(p.session.echo, Echo::None);
}

#[test]
fn the_hostname_is_the_option_else_the_containers() {
    assert_eq!(
        plan(&["img"]).unwrap().guest.hostname.as_deref(),
        Some("ctr")
    );
    let p = plan(&["--hostname", "vm1", "img"]).unwrap();
    assert_eq!(p.guest.hostname.as_deref(), Some("vm1"));
}

#[test]
fn persistent_writes_go_to_the_state() {
    let p = plan(&["--persistent", "img"]).unwrap();
    assert!(matches!(
        p.writes,
        WritesTo::Persistent { reset: false, .. }
    ));
    let p = plan(&["--scratch", "/s", "img"]).unwrap();
    assert_eq!(
        p.writes,
        WritesTo::Throwaway {
            scratch: Some("/s".into())
        }
    );
}

#[test]
fn a_foreign_guest_runs_under_tcg_unless_kvm_is_demanded() {
    use crate::arch::Arch;
    let other = match Arch::host() {
        Arch::X86_64 => Arch::Aarch64,
        Arch::Aarch64 => Arch::X86_64,
    };
    let mut p = make(&args(&["img"]), &host(true)).unwrap();
    assert_eq!(p.for_guest_arch("img", Arch::host()).unwrap(), None);
    assert_eq!(p.resources.accel, Accel::Kvm);
    let notice = p.for_guest_arch("img", other).unwrap().unwrap();
    assert!(notice.contains("TCG"), "{notice}");
    assert_eq!(p.resources.accel, Accel::Tcg);
    assert!(!p.resources.tcg_fallback);
    assert_eq!(p.session.ready_timeout, Duration::from_secs(600));
    let mut kvm = make(&args(&["--accel", "kvm", "img"]), &host(true)).unwrap();
    assert!(kvm.for_guest_arch("img", other).is_err());
}
