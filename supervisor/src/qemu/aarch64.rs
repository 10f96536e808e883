//! The argv for qemu-system-aarch64: QEMU's `virt` board, otherwise the x86 line (`argv`):
//! the same virtio-pci devices (virt has a PCIe host bridge), the same memfd RAM for
//! vhost-user-fs, the console on the first UART (a PL011: the guest's `ttyAMA0`).
//!
//! What differs, and why:
//! - the interrupt controller: GICv3, the newest QEMU emulates under TCG and the one that
//!   takes more than 8 vCPUs; under KVM `gic-version=host`, the host's own (a GICv2-only host
//!   such as a Raspberry Pi 4 could not run a GICv3 guest);
//! - no BIOS: `virt` boots a disk only through UEFI firmware (ArmVirtQemu, Debian's AAVMF),
//!   refused in [`validate`];
//! - SMBIOS reaches an arm64 guest only through UEFI, so a direct-kernel guest takes its
//!   systemd credentials through fw_cfg (`credentials::fw_cfg_credentials`), which `virt`
//!   describes in its device tree.

use std::ffi::OsString;

use super::{argv, Accel, BootSpec, Firmware, QemuError, QemuSpec};
use crate::arch::Arch;

/// The `-machine` value for `accel`.
pub(super) fn machine(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "virt,gic-version=host,memory-backend=mem",
        Accel::Tcg => "virt,gic-version=3,memory-backend=mem",
    }
}

/// [`QemuSpec::validate`], and what only an arm64 guest cannot have.
fn validate(spec: &QemuSpec) -> Result<(), QemuError> {
    spec.validate()?;
    if spec.boot == BootSpec::Firmware(Firmware::Bios) {
        return Err(QemuError::BiosOnAarch64);
    }
    Ok(())
}

impl QemuSpec {
    /// [`QemuSpec::validate`] for a guest of `arch`: what its machine cannot have as well.
    pub fn validate_for(&self, arch: Arch) -> Result<(), QemuError> {
        match arch {
            Arch::X86_64 => self.validate(),
            Arch::Aarch64 => validate(self),
        }
    }
}

/// The argv for qemu-system-aarch64, without the binary itself.
/// Call [`validate`] first; this does not check again.
pub(super) fn qemu_args(spec: &QemuSpec) -> Vec<OsString> {
    argv::args_with_machine(spec, machine(spec.accel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::testing::*;
    use crate::qemu::{
        qemu_args_for, DiskFormat, DiskSpec, FwCfgFile, NetSpec, PortForward, RootDevice,
        SerialOutSpec, VirtiofsShare,
    };
    use proptest::prelude::*;

    fn arm(spec: &QemuSpec) -> Vec<String> {
        strings(qemu_args_for(Arch::Aarch64, spec))
    }

    fn tcg() -> QemuSpec {
        QemuSpec {
            accel: Accel::Tcg,
            cpu: Arch::Aarch64.default_cpu(Accel::Tcg).into(),
            ..spec()
        }
    }

    #[test]
    fn virt_with_gicv3_under_tcg_and_the_hosts_gic_under_kvm() {
        let a = arm(&tcg());
        assert_eq!(
            values(&a, "-machine"),
            ["virt,gic-version=3,memory-backend=mem"]
        );
        assert_eq!(values(&a, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(values(&a, "-cpu"), ["max,pauth-impdef=on"]);
        let k = arm(&spec());
        assert_eq!(
            values(&k, "-machine"),
            ["virt,gic-version=host,memory-backend=mem"]
        );
        assert_eq!(values(&k, "-cpu"), ["host"]);
        // q35's own switches would make QEMU refuse the virt machine.
        assert!(!a
            .iter()
            .chain(&k)
            .any(|x| x.contains("q35") || x.contains("sata=") || x.contains("smbus=")));
    }

    #[test]
    fn the_memfd_backs_the_machines_ram() {
        let a = arm(&tcg());
        assert_eq!(
            values(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=2048M,share=on"]
        );
        assert_eq!(values(&a, "-m"), ["2048M"]);
    }

    #[test]
    fn console_on_the_first_uart() {
        let a = arm(&QemuSpec {
            boot: BootSpec::Kernel {
                kernel: "/k".into(),
                initrd: None,
                cmdline: vec![format!("console={}", Arch::Aarch64.console())],
            },
            ..tcg()
        });
        assert_eq!(values(&a, "-append"), ["console=ttyAMA0"]);
        assert_eq!(values(&a, "-serial"), ["chardev:console"]);
        assert!(values(&a, "-chardev").contains(&"stdio,id=console,signal=off"));
    }

    #[test]
    fn a_disk_boots_through_uefi_and_never_through_a_bios() {
        let code = "/run/bcvk/disks/uefi-code.fd";
        let disk = RootDevice::Disk(DiskSpec {
            path: "/run/bcvk/disks/root-overlay.qcow2".into(),
            format: DiskFormat::Qcow2,
            serial: "bcvk-root".into(),
            readonly: false,
        });
        let uefi = QemuSpec {
            root: disk.clone(),
            boot: BootSpec::Firmware(Firmware::Uefi {
                code: code.into(),
                vars: "/run/bcvk/disks/uefi-vars.fd".into(),
            }),
            ..tcg()
        };
        validate(&uefi).unwrap();
        let a = arm(&uefi);
        assert_eq!(
            values(&a, "-drive"),
            [
                "if=pflash,format=raw,unit=0,readonly=on,file=/run/bcvk/disks/uefi-code.fd",
                "if=pflash,format=raw,unit=1,file=/run/bcvk/disks/uefi-vars.fd"
            ]
        );
        assert!(values(&a, "-device")
            .contains(&"virtio-blk-pci,drive=disk0,serial=bcvk-root,bootindex=0"));
        let bios = QemuSpec {
            root: disk,
            boot: BootSpec::Firmware(Firmware::Bios),
            ..tcg()
        };
        bios.validate_for(Arch::X86_64).unwrap();
        assert!(matches!(
            bios.validate_for(Arch::Aarch64),
            Err(QemuError::BiosOnAarch64)
        ));
        assert!(!QemuError::BiosOnAarch64.to_string().contains('\n'));
        // The shared checks still apply.
        assert!(matches!(
            validate(&QemuSpec { vcpus: 0, ..tcg() }),
            Err(QemuError::VcpusOutOfRange { .. })
        ));
        assert!(matches!(
            validate(&QemuSpec {
                cpu: "host".into(),
                ..tcg()
            }),
            Err(QemuError::HostCpuNeedsKvm)
        ));
    }

    #[test]
    fn credentials_through_fw_cfg_files() {
        let a = arm(&QemuSpec {
            fw_cfg: vec![FwCfgFile {
                name: "opt/io.systemd.credentials/system.hostname".into(),
                file: "/run/bcvk/creds/system.hostname".into(),
            }],
            ..tcg()
        });
        assert_eq!(
            values(&a, "-fw_cfg"),
            ["name=opt/io.systemd.credentials/system.hostname,file=/run/bcvk/creds/system.hostname"]
        );
        assert!(values(&a, "-smbios").is_empty());
    }

    fn path() -> impl Strategy<Value = String> {
        "/[a-z,=. ]{1,30}"
    }

    prop_compose! {
        fn any_spec()(
            tcg in any::<bool>(),
            vcpus in 1u32..=255,
            memory_mib in 128u64..65536,
            sock in path(),
            tags in proptest::collection::vec("[a-z0-9-]{1,20}", 0..3),
            ports in proptest::collection::vec((1u16.., 1u16..), 0..3),
            serial in proptest::collection::vec(("[a-z.]{1,10}", path()), 0..3),
            disks in proptest::collection::vec((path(), any::<bool>()), 0..3),
            fw in proptest::collection::vec(path(), 0..2),
            interactive in any::<bool>(),
            rng in any::<bool>(),
        ) -> QemuSpec {
            let accel = if tcg { Accel::Tcg } else { Accel::Kvm };
            QemuSpec {
                accel,
                cpu: Arch::Aarch64.default_cpu(accel).into(),
                vcpus,
                memory_mib,
                root: RootDevice::Share(VirtiofsShare { tag: "root".into(), socket: sock.into() }),
                extra_shares: tags.iter().enumerate().map(|(i, t)| VirtiofsShare {
                    tag: format!("{t}{i}"),
                    socket: format!("/s{i}").into(),
                }).collect(),
                net: NetSpec::User {
                    forwards: ports.iter().enumerate().map(|(i, (_, g))| PortForward {
                        host_addr: None,
                        port: crate::config::PortSpec {
                            host_port: 1000 + i as u16,
                            guest_port: *g,
                        },
                    }).collect(),
                    restrict: tcg,
                },
                serial_outs: serial.iter().enumerate().map(|(i, (n, p))| SerialOutSpec {
                    name: format!("{n}{i}"),
                    file: p.into(),
                }).collect(),
                disks: disks.iter().enumerate().map(|(i, (p, ro))| DiskSpec {
                    path: p.into(),
                    format: DiskFormat::Raw,
                    serial: format!("d{i}"),
                    readonly: *ro,
                }).collect(),
                fw_cfg: fw.iter().enumerate().map(|(i, p)| FwCfgFile {
                    name: format!("opt/io.systemd.credentials/c{i}"),
                    file: p.into(),
                }).collect(),
                console: crate::qemu::ConsoleSpec::Stdio { interactive },
                rng,
                ..spec()
            }
        }
    }

    proptest! {
        /// The arm64 line is the x86 line with only the machine changed: every device, file
        /// and option in the same order, so what the x86 tests prove of them holds here.
        #[test]
        fn only_the_machine_differs_from_x86(s in any_spec()) {
            validate(&s).unwrap();
            let x86 = argv(&s);
            let arm = arm(&s);
            prop_assert_eq!(x86.len(), arm.len());
            let i = pos(&arm, "-machine") + 1;
            prop_assert_eq!(&arm[i], machine(s.accel));
            prop_assert!(x86[i].starts_with("q35,"));
            for (j, (a, b)) in x86.iter().zip(&arm).enumerate() {
                if j != i {
                    prop_assert_eq!(a, b);
                }
            }
            prop_assert_eq!(values(&arm, "-machine").len(), 1);
            let smp = s.vcpus.to_string();
            prop_assert_eq!(values(&arm, "-smp"), [smp.as_str()]);
        }
    }
}
