//! `bcvk to-disk`: the target's directory mounted, the store read-only, the options passed on.

use std::fs;

use crate::harness::*;

#[test]
fn to_disk_mounts_the_targets_directory_and_passes_the_options() {
    each_shell(|f| {
        fs::create_dir(f.cwd.join("out")).unwrap();
        let cwd = f.cwd.display().to_string();
        let r = f.run(&[
            "to-disk",
            "--format",
            "qcow2",
            "--karg=console=ttyS0",
            "--disk-size",
            "20G",
            "-f",
            "localhost/my-bootc",
            "./out/disk.qcow2",
        ]);
        r.assert_code(0);
        let mut want = argv(&["run", "--rm", "--device"]);
        want.push(f.kvm());
        want.extend(argv(&[
            "-v",
            &format!("{STORE}:/run/host-storage:ro"),
            "-v",
            &format!("{cwd}/out:/run/bcvk-host/out"),
            IMAGE,
            "to-disk",
            "--format",
            "qcow2",
            "--karg=console=ttyS0",
            "--disk-size",
            "20G",
            "-f",
            "localhost/my-bootc",
            "/run/bcvk-host/out/disk.qcow2",
        ]));
        r.assert_calls(&[info_call(), want]);
    });
}

#[test]
fn to_disk_refuses_a_missing_target_or_directory() {
    each_shell(|f| {
        f.run(&["to-disk", "localhost/my-bootc"])
            .assert_usage_error("missing SOURCE_IMAGE or TARGET_DISK");
        f.run(&["to-disk", "localhost/my-bootc", "nodir/disk.raw"])
            .assert_usage_error("does not exist");
        f.run(&["to-disk", "a", "b.raw", "c"])
            .assert_usage_error("not also 'c'");
    });
}
