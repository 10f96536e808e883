//! A tree booted by its own kernel, given to QEMU directly (no bootloader): the root is the
//! virtiofs share [`ROOT_TAG`], mounted by the kernel itself when it has virtiofs built in, else
//! by the image's initramfs (`--initrd`).

use std::path::{Path, PathBuf};

use super::{run_dir_err, BootError};
use crate::arch::Arch;
use crate::config::Initrd;
use crate::kernel::{self, BootFiles};
use crate::plan::{Plan, PlanError};
use crate::qemu::BootSpec;

/// The tag of the root file system share; the kernel mounts it with `root=<tag>`.
pub const ROOT_TAG: &str = "rootfs";

pub fn prepare(
    plan: &Plan,
    root: &Path,
    kernel: &BootFiles,
    image: &str,
    run_dir: &Path,
    arch: Arch,
) -> Result<BootSpec, BootError> {
    let boot = initrd_policy(kernel.clone(), plan.boot.initrd, root, image)?;
    Ok(BootSpec::Kernel {
        kernel: boot.kernel.clone(),
        initrd: initrd_for_log_dir(&boot, plan, run_dir)?,
        cmdline: kernel_cmdline(&boot, &plan.boot.kargs, arch),
    })
}

/// `--initrd`: boot through the image's initramfs, or straight into its init when the kernel
/// can mount the virtiofs root itself.
fn initrd_policy(
    mut boot: BootFiles,
    arg: Initrd,
    root: &Path,
    image: &str,
) -> Result<BootFiles, PlanError> {
    let builtin = kernel::virtiofs_builtin(root, &boot.version);
    match arg {
        Initrd::Auto if builtin && boot.initrd.is_some() => {
            tracing::info!("the kernel has virtiofs built in: booting straight into the image's init, without the initramfs (--initrd yes to use it)");
            boot.initrd = None;
        }
        Initrd::No if !builtin => {
            return Err(PlanError::Usage(format!("--initrd no: kernel {} of {image} does not have virtiofs built in, so it cannot mount the root without its initramfs; use --initrd auto", boot.version)));
        }
        Initrd::No => boot.initrd = None,
        Initrd::Yes if boot.initrd.is_none() => {
            return Err(PlanError::Usage(format!(
                "--initrd yes: {image} has no initramfs.img beside its kernel"
            )));
        }
        _ => {}
    }
    if boot.initrd.is_none() && !builtin {
        return Err(PlanError::Usage(format!("{image} has no initramfs and its kernel lacks built-in virtiofs: the root cannot be mounted; add an initramfs with dracut's virtiofs module")));
    }
    for why in &boot.skipped {
        tracing::warn!("no bootable kernel in {why}");
    }
    if !boot.others.is_empty() || !boot.skipped.is_empty() {
        tracing::info!(chosen = %boot.version, older = ?boot.others, "booting the newest bootable kernel");
    }
    tracing::info!(kernel = %boot.kernel.display(), initrd = ?boot.initrd, "kernel found");
    Ok(boot)
}

/// The initrd to boot: with `--log-dir`'s journal, a copy that streams the initrd's journal
/// too ([`crate::logdir::initrd_with_stream`]).
fn initrd_for_log_dir(
    boot: &BootFiles,
    plan: &Plan,
    run_dir: &Path,
) -> Result<Option<PathBuf>, BootError> {
    match (&boot.initrd, &plan.guest.log_dir) {
        (Some(initrd), Some(log)) if log.journal => {
            // In boot/, which the run's cleanup removes.
            let dir = run_dir.join("boot");
            std::fs::create_dir_all(&dir).map_err(run_dir_err(&dir))?;
            let dest = dir.join("initrd-log-dir.img");
            crate::logdir::initrd_with_stream(initrd, &dest).map_err(run_dir_err(&dest))?;
            Ok(Some(dest))
        }
        (initrd, _) => Ok(initrd.clone()),
    }
}

/// The kernel command line: root from the virtiofs share, console on the serial port, and a
/// panic ends the VM (with QEMU's -no-reboot) instead of hanging it.
pub fn kernel_cmdline(boot: &BootFiles, kargs: &[String], arch: Arch) -> Vec<String> {
    let mut c: Vec<String> = vec![
        format!("root={ROOT_TAG}"),
        "rootfstype=virtiofs".into(),
        "rw".into(),
        format!("console={}", arch.console()),
        "panic=-1".into(),
        // The root has no SELinux labels (virtiofs over an overlay of the layers).
        "selinux=0".into(),
    ];
    if boot.initrd.is_none() {
        // Without an initramfs the kernel mounts the virtiofs root itself and execs init.
        c.push("init=/sbin/init".into());
    }
    c.extend(kargs.iter().cloned());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = kernel_cmdline(&boot, &["quiet".into(), "foo=bar".into()], Arch::X86_64);
        assert!(c.contains(&"console=ttyS0".to_string()));
        let arm = kernel_cmdline(&boot, &[], Arch::Aarch64);
        assert!(arm.contains(&"console=ttyAMA0".to_string()));
        assert!(!arm.iter().any(|a| a == "console=ttyS0"));
        assert_eq!(&c[..3], &["root=rootfs", "rootfstype=virtiofs", "rw"]);
        assert!(c.contains(&"panic=-1".to_string()));
        assert_eq!(&c[c.len() - 2..], &["quiet", "foo=bar"]);
        let no_initrd = BootFiles {
            initrd: None,
            ..boot
        };
        assert!(
            kernel_cmdline(&no_initrd, &[], Arch::X86_64).contains(&"init=/sbin/init".to_string())
        );
    }
}
