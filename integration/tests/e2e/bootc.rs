//! The real bootc image (test-images/bootc: bootc built from its own source): it boots as
//! users boot it, and `bcvk to-disk` installs it with its own `bootc install to-disk`.
//! Boots are few (each costs 30-60 s under TCG, an install about 8 minutes): one through
//! the mission's podman line with `--initrd yes`, one through the host command's `run-ssh`
//! (`--initrd auto`), a failing install, and one install whose result is booted once.

use std::path::Path;
use std::time::Duration;

use bcvk_integration::*;

use crate::host_cli::{host_bcvk, install};
use crate::{error_line, R};

pub fn bootc() -> String {
    var("BCVK_TEST_BOOTC", "localhost/bcvk-test/bootc:latest")
}

/// What a booted bootc guest must show, one `key=value` line each (checked by [`checks`]).
const CHECKS: &str = "bootc status >/dev/null 2>&1; echo status-rc=$?; \
    echo version=\"$(bootc --version)\"; \
    echo failed=\"$(systemctl --failed --no-legend --plain | tr '\\n' ' ')\"; \
    echo running=\"$(systemctl is-system-running --wait)\"";

fn checks(r: &Run, what: &str) -> R {
    let out = &r.stdout;
    check!(r.code == 0, "{what}: want exit 0: {}", r.show());
    check!(
        out.contains("status-rc=0\n"),
        "{what}: bootc status failed: {}",
        r.show()
    );
    check!(
        out.contains("version=bootc 1."),
        "{what}: bootc --version: {}",
        r.show()
    );
    check!(
        out.contains("failed=\"\"\n") || out.contains("failed=\n"),
        "{what}: failed units: {}",
        r.show()
    );
    check!(
        out.contains("running=running\n"),
        "{what}: is-system-running: {}",
        r.show()
    );
    Ok(())
}

/// The mission's line, no added privileges, through the image's own initramfs.
pub fn boots_with_its_initramfs() -> R {
    let r = bcvk_oneshot(
        &[],
        &[
            &bootc(),
            "--initrd",
            "yes",
            "--",
            "sh",
            "-c",
            &format!("{CHECKS}; systemd-analyze"),
        ],
    );
    checks(&r, "--initrd yes")?;
    check!(
        r.stdout.contains("(initrd)") && !r.stderr.contains("initrd=None"),
        "--initrd yes booted without the initramfs: {}",
        r.show()
    );
    Ok(())
}

/// The host command's `bcvk ephemeral run-ssh IMAGE COMMAND` (`--initrd auto`).
pub fn host_run_ssh() -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = install(dir.path())?;
    let r = host_bcvk(
        &bin,
        &["ephemeral", "run-ssh", &bootc(), "sh", "-c", CHECKS],
    );
    checks(&r, "run-ssh")
}

fn to_disk_prefix(out: &Path) -> Vec<String> {
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.extend(["-v".into(), format!("{}:/out", out.display())]);
    a.push(bcvk_image());
    a.push("to-disk".into());
    a
}

fn to_disk(out: &Path, args: &[&str]) -> Run {
    let mut a = to_disk_prefix(out);
    a.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    podman(&refs)
}

/// Refused before any VM: a source without bootc, a target that exists, a missing directory.
pub fn to_disk_refused_before_a_vm() -> R {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-todisk-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let r = to_disk(dir.path(), &[&debian(), "/out/disk.raw"]);
    check!(r.code == 66, "non-bootc source: want 66: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("not a bootc image") && l.contains("/usr/bin/bootc"),
        "{l}"
    );
    check!(
        !r.stderr.contains("QEMU started"),
        "a VM was started: {}",
        r.show()
    );
    check!(
        !dir.path().join("disk.raw").exists(),
        "a target was created for a refused source"
    );
    let existing = dir.path().join("old.raw");
    std::fs::write(&existing, "keep me").map_err(|e| e.to_string())?;
    let r = to_disk(dir.path(), &[&bootc(), "/out/old.raw"]);
    check!(r.code == 64, "existing target: want 64: {}", r.show());
    check!(error_line(&r)?.contains("--force"), "{}", r.show());
    check!(
        std::fs::read_to_string(&existing).map_err(|e| e.to_string())? == "keep me",
        "the existing target was changed"
    );
    let r = to_disk(dir.path(), &[&bootc(), "/out/missing/disk.raw"]);
    check!(r.code == 64, "missing directory: want 64: {}", r.show());
    check!(
        r.elapsed < Duration::from_secs(30),
        "refusals took {:?}",
        r.elapsed
    );
    Ok(())
}

/// A disk too small for bootc: bootc's own error line, exit 78, and no target left.
pub fn to_disk_too_small_fails_with_bootcs_error() -> R {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-todisk-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let r = to_disk(
        dir.path(),
        &["--disk-size", "1G", &bootc(), "/out/small.raw"],
    );
    check!(r.code == 78, "want 78: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("bootc install to-disk failed") && l.contains("error:"),
        "no bootc error in the line: {l}"
    );
    check!(l.ends_with("the target /out/small.raw was removed"), "{l}");
    // bootc's own words, on the trial's line.
    eprint!("({l}) ");
    check!(
        !dir.path().join("small.raw").exists(),
        "the failed target is still there"
    );
    Ok(())
}

/// The host command's `bcvk to-disk IMAGE ./disk.raw`, then the result booted with
/// `--disk-image` (UEFI): `bootc status --format json` names the installed image.
pub fn to_disk_installs_and_the_result_boots() -> R {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-todisk-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let bin = install(dir.path())?;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).map_err(|e| e.to_string())?;
    // A relative target, as a user types it: the host command mounts its directory.
    let r = cmd(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && {} to-disk {} ./disk.raw",
                out.display(),
                bin.display(),
                bootc()
            ),
        ],
    );
    check!(r.code == 0, "to-disk failed: {}", r.show());
    check!(
        r.stdout.contains("Installation complete"),
        "bootc's own output is not shown: {}",
        r.show()
    );
    let disk = out.join("disk.raw");
    check!(disk.is_file(), "no disk.raw");
    eprint!("(install {:.0} s) ", r.elapsed.as_secs_f64());
    let script = format!(
        "bootc status --format json; echo; {CHECKS}; findmnt -no FSTYPE /; test -d /sys/firmware/efi && echo uefi"
    );
    let r = bcvk_oneshot(
        &["-v", &format!("{}:/out:ro", out.display())],
        &["--disk-image", "/out/disk.raw", "--", "sh", "-c", &script],
    );
    checks(&r, "the installed disk")?;
    let json = r.stdout.lines().next().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("bootc status --format json: {e}: {}", r.show()))?;
    let booted = &v["status"]["booted"]["image"]["image"]["image"];
    check!(
        booted.as_str() == Some(bootc().as_str()),
        "bootc status names {booted}, not {}: {}",
        bootc(),
        r.show()
    );
    check!(
        r.stdout.contains("\nuefi\n"),
        "not booted by UEFI: {}",
        r.show()
    );
    Ok(())
}
