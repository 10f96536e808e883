//! A guest of the other architecture: the arm64 debian guest (test-images/arm64/build.sh) on
//! this x86 host, booted by the amd64 bcvk image under TCG with qemu-system-aarch64. One boot,
//! several checks: it says so in one line, becomes ready, runs commands as arm64 with their
//! exit codes, got its credentials (no SMBIOS without firmware: fw_cfg), and stops gracefully.

use std::time::{Duration, Instant};

use bcvk_integration::*;

use crate::R;

pub fn foreign_guest_boots_under_emulation() -> R {
    let image = debian_arm64();
    check!(
        podman(&["image", "exists", &image]).code == 0,
        "{image} is not built: run test-images/arm64/build.sh (after integration/setup-host.sh)"
    );
    let t = Instant::now();
    // An emulated guest powers off slower than bcvk's default 8 s allow: raised, as README
    // says, with podman's own stop timeout.
    let vm = Detached::start(
        "bcvk-e2e-arm64",
        &["--stop-timeout", "120"],
        &[&image, "--hostname", "armguest", "--stop-timeout", "100"],
    )?;
    // An emulated arm64 guest boots several times slower than the native one under TCG.
    let status = vm.wait_ready(Duration::from_secs(1500))?;
    eprintln!("arm64 guest ready in {:?}", t.elapsed());
    check!(status["accel"] == "tcg", "not under TCG: {status}");
    let logs = podman(&["logs", &vm.name]);
    let notice: Vec<&str> = logs
        .stderr
        .lines()
        .filter(|l| l.contains("booting it under TCG emulation"))
        .collect();
    check!(
        notice.len() == 1
            && notice[0].contains("is arm64, this host is amd64")
            && notice[0].contains("qemu-system-aarch64"),
        "no one line saying the guest is emulated: {}",
        tail(&logs.stderr, 30)
    );

    let r = vm.ssh("uname -m; cat /proc/cmdline; hostname; ls /run/credentials/@system");
    check!(r.code == 0, "{}", r.show());
    let lines: Vec<&str> = r.stdout.lines().collect();
    check!(lines.first() == Some(&"aarch64"), "uname -m: {}", r.stdout);
    check!(
        lines.get(1).is_some_and(|c| c.contains("console=ttyAMA0")),
        "no console on the PL011: {}",
        r.stdout
    );
    // The hostname and the SSH keys came over fw_cfg (SSH working is the keys' proof).
    check!(lines.get(2) == Some(&"armguest"), "hostname: {}", r.stdout);
    check!(
        r.stdout.contains("ssh.authorized_keys.root") && r.stdout.contains("system.hostname"),
        "credentials: {}",
        r.stdout
    );
    let r = vm.ssh("exit 7");
    check!(r.code == 7, "exit code not kept: {}", r.show());

    let t = Instant::now();
    let r = podman(&["stop", "-t", "120", &vm.name]);
    check!(r.code == 0, "podman stop failed: {}", r.show());
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &vm.name]);
    let logs = podman(&["logs", &vm.name]);
    eprintln!("stopped in {:?}", t.elapsed());
    check!(
        code.stdout.trim() == "0" && !logs.stderr.contains("did not power off in time"),
        "not a graceful stop (exit {}, {:?}): {}",
        code.stdout.trim(),
        t.elapsed(),
        tail(&logs.stderr, 30)
    );
    Ok(())
}

/// A one-file image (no kernel) whose config says linux/s390x, imported as `name`.
fn import_s390x(name: &str) -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("marker"), "s390x\n").map_err(|e| e.to_string())?;
    let tar = cmd(
        "sh",
        &[
            "-c",
            &format!(
                "tar -C {} -c . | podman import -q --arch s390x - {name}",
                dir.path().display()
            ),
        ],
    );
    check!(tar.code == 0, "{}", tar.show());
    Ok(())
}

/// An image for an architecture bcvk has no QEMU for is refused from its config, in one line
/// with exit 69, before anything is mounted or booted.
pub fn other_architectures_are_refused() -> R {
    let image = "localhost/bcvk-test/s390x-refused:latest";
    import_s390x(image)?;
    let r = bcvk_oneshot(&[], &[image, "--", "true"]);
    let _ = podman(&["rmi", "-f", image]);
    check!(r.code == 69, "exit {} instead of 69: {}", r.code, r.show());
    let line = crate::error_line(&r)?;
    check!(
        line.contains("is for linux/s390x, an architecture bcvk cannot boot")
            && line.contains("linux/amd64 and linux/arm64"),
        "{line}"
    );
    check!(
        !r.stderr.contains("image found"),
        "refused too late: {}",
        r.show()
    );
    Ok(())
}

/// The arm64 bcvk image (integration/build-multiarch.sh: `$BCVK_IMAGE-arm64`) starts on this
/// host under binfmt and plans runs that need no VM: it reads the store, refuses an image of
/// an architecture it cannot boot (69) and finds no kernel in one without (66). Privileged,
/// because qemu-user's own thread keeps bcvk from entering a user namespace of its own (the
/// kernel refuses unshare to a threaded process); on an arm64 host that does not arise.
pub fn arm64_image_starts_under_binfmt() -> R {
    let arm = format!("{}-arm64", bcvk_image());
    let r = podman(&["run", "--rm", "--entrypoint", "uname", &arm, "-m"]);
    check!(
        r.stdout.trim() == "aarch64",
        "not an arm64 image: {}",
        r.show()
    );
    let r = podman(&["run", "--rm", &arm, "--version"]);
    check!(r.code == 0 && r.stdout.starts_with("bcvk "), "{}", r.show());
    let r = podman(&["run", "--rm", &arm, "--help"]);
    check!(
        r.code == 0 && r.stdout.contains("Exit codes:"),
        "{}",
        r.show()
    );

    let refused = "localhost/bcvk-test/s390x-refused-arm64:latest";
    import_s390x(refused)?;
    let store = format!("{}:/run/host-storage:ro", host_store().display());
    let plan = |image: &str| {
        podman(&[
            "run",
            "--rm",
            "--privileged",
            "--label",
            test_label(),
            "-v",
            &store,
            &arm,
            image,
            "--",
            "true",
        ])
    };
    let r = plan(refused);
    let _ = podman(&["rmi", "-f", refused]);
    check!(r.code == 69, "exit {}: {}", r.code, r.show());
    check!(
        crate::error_line(&r)?.contains("linux/s390x"),
        "{}",
        r.show()
    );
    let r = plan(&nokernel());
    check!(r.code == 66, "exit {}: {}", r.code, r.show());
    check!(
        crate::error_line(&r)?.contains("No kernel found"),
        "{}",
        r.show()
    );
    Ok(())
}
