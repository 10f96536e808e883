//! The accelerator: KVM where it can run the guest, else TCG, said with the reason.

use crate::arch::Arch;
use crate::cli::AccelArg;
use crate::qemu::Accel;

use super::PlanError;

/// What the host offers for acceleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCaps {
    /// Ok when /dev/kvm opens read-write; else why not.
    pub kvm_device: Result<(), String>,
    /// /proc/cpuinfo lists vmx or svm.
    pub cpu_virt_flags: bool,
}

impl HostCaps {
    pub fn probe() -> HostCaps {
        let kvm_device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "/dev/kvm does not exist in the container: add --device /dev/kvm to the podman (or docker) run command".to_string(),
                std::io::ErrorKind::PermissionDenied => "/dev/kvm is not accessible (permission denied): make it usable by the container's user on the host (0666, as a udev rule does on ubuntu runners), or with rootless podman and a /dev/kvm of group kvm add --group-add keep-groups".to_string(),
                _ => format!("/dev/kvm cannot be opened: {e}"),
            });
        let cpu_virt_flags = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| Arch::host().cpu_can_virtualize(&c))
            .unwrap_or(false);
        HostCaps {
            kvm_device,
            cpu_virt_flags,
        }
    }
}

/// Pick the accelerator. `auto` takes KVM only when the device opens AND the CPU shows
/// hardware virtualization: a /dev/kvm without vmx/svm (a paravirtual or broken nested KVM)
/// makes QEMU abort or pause on stock kernels. The warning says which and why.
pub fn choose_accel(req: AccelArg, caps: &HostCaps) -> Result<(Accel, Option<String>), PlanError> {
    match req {
        AccelArg::Tcg => Ok((Accel::Tcg, None)),
        AccelArg::Kvm => match &caps.kvm_device {
            Ok(()) => {
                let warn = (!caps.cpu_virt_flags).then(|| "the CPU reports no vmx/svm flags: KVM may fail to run the guest; --accel auto would use TCG".to_string());
                Ok((Accel::Kvm, warn))
            }
            Err(why) => Err(PlanError::KvmUnavailable(why.clone())),
        },
        AccelArg::Auto => match (&caps.kvm_device, caps.cpu_virt_flags) {
            (Ok(()), true) => Ok((Accel::Kvm, None)),
            (Ok(()), false) => Ok((Accel::Tcg, Some("/dev/kvm exists but the CPU reports no vmx/svm virtualization flags (nested virtualization off, or a paravirtual KVM that cannot run stock kernels): using TCG software emulation, boots take minutes; --accel kvm forces KVM".into()))),
            (Err(why), _) => Ok((Accel::Tcg, Some(format!("KVM unavailable ({why}): using TCG software emulation, boots take minutes")))),
        },
    }
}
