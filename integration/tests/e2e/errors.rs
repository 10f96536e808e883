//! Bad input that must fail before any boot: one error line, its documented exit code, no leftovers.

use bcvk_integration::*;

use crate::{error_line, R};

pub(crate) fn unknown_image() -> R {
    let r = bcvk_oneshot(&[], &["localhost/bcvk-test/does-not-exist"]);
    check!(r.code == 66, "want exit 66: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("does-not-exist") && l.contains("image not known") && l.contains("podman"),
        "{l}"
    );
    check!(!r.stderr.contains("panicked"), "{}", r.show());
    Ok(())
}

pub(crate) fn image_without_kernel() -> R {
    let r = bcvk_oneshot(&[], &[&nokernel()]);
    check!(r.code == 66, "want exit 66: {}", r.show());
    let l = error_line(&r)?;
    check!(
        l.contains("No kernel found")
            && l.contains("has no bootable kernel (looked at /usr/lib/modules")
            && l.contains("is it a bootc image?"),
        "{l}"
    );
    Ok(())
}

pub(crate) fn resolves_short_names_and_ids() -> R {
    // The no-kernel error proves the reference resolved to that image.
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", &nokernel()])
        .stdout
        .trim()
        .to_string();
    for reference in ["bcvk-test/nokernel", &id[..12], &format!("sha256:{id}")] {
        let r = bcvk_oneshot(&[], &[reference]);
        check!(
            r.code == 66 && r.stderr.contains("has no bootable kernel"),
            "{reference}: {}",
            r.show()
        );
    }
    Ok(())
}

pub(crate) fn missing_store_mount() -> R {
    let mut a = run_prefix(false);
    a.insert(1, "--rm".into());
    a.extend([bcvk_image(), debian()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = podman(&refs);
    check!(r.code == 66, "want exit 66: {}", r.show());
    let l = error_line(&r)?;
    check!(l.contains("/run/host-storage") && l.contains("-v "), "{l}");
    Ok(())
}

/// Option values and spellings clap refuses: exit 64 and one `bcvk: error:` line (nothing
/// else on stderr) naming the option, with a long value cut short.
pub(crate) fn bad_option_values() -> R {
    let long_karg = "k".repeat(10_000);
    for (args, flag) in [
        (vec!["--memory", "4X"], "--memory"),
        (vec!["--vcpus", "0"], "--vcpus"),
        (vec!["--vcpus", "-1"], "--vcpus"),
        (vec!["--itype", "u1.huge"], "u1.small"),
        (vec!["--port", "99999:80"], "--port"),
        (vec!["--frobnicate"], "--frobnicate"),
        (vec!["--memroy", "2G"], "did you mean '--memory'?"),
        (vec!["--ready-timeout", "-5"], "--ready-timeout"),
        (vec!["--memory", "1G", "--memory", "2G"], "--memory"),
        (vec!["--log-level", "verbose"], "--log-level"),
        (vec!["--hostname", "hôte"], "--hostname"),
        (vec!["--karg", "a\nb"], "--karg"),
        (vec!["--karg", &long_karg], "--karg"),
    ] {
        let mut all = vec![debian()];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let r = bcvk_oneshot(&[], &refs);
        check!(r.code == 64, "{args:?}: want exit 64: {}", r.show());
        let l = error_line(&r)?;
        check!(
            r.stderr.trim_end() == l,
            "{args:?}: more than the error line on stderr: {}",
            r.show()
        );
        check!(
            l.contains(flag),
            "{args:?}: error does not name {flag}: {l}"
        );
        check!(l.len() < 1000, "{args:?}: a {}-character line", l.len());
    }
    // A missing --ssh-key file is a mistake in an option too (64), refused before the boot.
    let r = bcvk_oneshot(&[], &[&debian(), "--ssh-key", "/nonexistent/key.pub"]);
    check!(
        r.code == 64,
        "--ssh-key missing: want exit 64: {}",
        r.show()
    );
    let l = error_line(&r)?;
    check!(
        l.contains("--ssh-key") && l.contains("/nonexistent/key.pub"),
        "{l}"
    );
    Ok(())
}

pub(crate) fn kvm_forced_without_device() -> R {
    let r = podman(&[
        "run",
        "--rm",
        "--privileged",
        "--label",
        test_label(),
        "-v",
        &format!("{}:/run/host-storage:ro", host_store().display()),
        &bcvk_image(),
        &debian(),
        "--accel",
        "kvm",
    ]);
    // --privileged exposes host devices, so /dev/kvm may be visible; then KVM is tried and, on
    // a machine where KVM cannot run the guest, must fail loudly (exit 69).
    if r.code == 69 {
        let l = error_line(&r)?;
        check!(l.contains("kvm"), "{l}");
        return Ok(());
    }
    Err(format!("want exit 69: {}", r.show()).into())
}
