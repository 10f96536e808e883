//! QEMU (10.0, Debian trixie): what the VM is ([`QemuSpec`], checked by
//! [`QemuSpec::validate`]), its command line ([`qemu_args`], in `argv`) and a small async QMP
//! client ([`Qmp`], in `qmp`).
//!
//! The spec says the kind of root (a virtiofs share or a disk image) and the kind of boot
//! (a direct kernel or firmware) as types, each turned into arguments in one place.
//! The builder is pure: paths arrive resolved, nothing is spawned or read.

mod aarch64;
mod argv;
mod qmp;

pub use argv::{qemu_args, qemu_args_for};
pub use qmp::Qmp;

use std::collections::HashSet;

use crate::arch::Arch;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The name users see (status file, logs, `--accel`).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsShare {
    pub tag: String,
    pub socket: PathBuf,
}

/// A TCP port forward from the host (QEMU's side) into the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// None listens on every host address.
    pub host_addr: Option<Ipv4Addr>,
    /// The container's port and the guest's (`--port`'s value, or bcvk's own).
    pub port: PortSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// User-mode (slirp) networking. `restrict` cuts the guest off from the
    /// host and the outside; the forwards still work.
    User {
        forwards: Vec<PortForward>,
        restrict: bool,
    },
    None,
}

pub use crate::config::{DiskFormat, PortSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub format: DiskFormat,
    /// Shows up in the guest as /dev/disk/by-id/virtio-<serial>.
    pub serial: String,
    pub readonly: bool,
}

/// A virtio serial port written to a file (`--virtio-serial-out NAME:FILE`).
pub use crate::config::SerialOutSpec;

/// The guest console (ttyS0) on QEMU's stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleSpec {
    /// `interactive: false`: output only. QEMU still opens stdin, so the
    /// caller should give it /dev/null.
    ///
    /// `interactive: true`: the user types into the console. The chardev is
    /// a mux with no monitor attached, so the one escape that matters is
    /// Ctrl-a x, which quits QEMU (the VM dies, like pulling the plug);
    /// Ctrl-a a sends a literal Ctrl-a to the guest, Ctrl-a c has no monitor
    /// to switch to. `signal=off` sends Ctrl-c to the guest instead of
    /// killing QEMU.
    Stdio { interactive: bool },
}

/// What the guest's root file system lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootDevice {
    /// A virtiofs share (container layers or a directory) the kernel mounts as its root.
    Share(VirtiofsShare),
    /// A VM disk image on virtio-blk, first in the firmware's boot order.
    Disk(DiskSpec),
}

/// How the guest's kernel gets loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSpec {
    /// QEMU loads the kernel and initramfs itself (`-kernel`, `-initrd`, `-append`).
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: Vec<String>,
    },
    /// Firmware finds the bootloader on the root disk.
    Firmware(Firmware),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: the disk's MBR boot code.
    Bios,
    /// OVMF: its read-only code, and this VM's own copy of the variable store.
    Uefi { code: PathBuf, vars: PathBuf },
}

impl Firmware {
    pub fn name(&self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi { .. } => "uefi",
        }
    }
}

/// A file handed to the guest through QEMU's fw_cfg device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgFile {
    /// Must start with `opt/` (the name space QEMU leaves to users).
    pub name: String,
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    /// The guest's architecture: which machine, and which QEMU runs it.
    pub arch: Arch,
    pub accel: Accel,
    pub cpu: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// The kind of root: what the guest's root file system lives on.
    pub root: RootDevice,
    /// The kind of boot: who loads the kernel.
    pub boot: BootSpec,
    pub extra_shares: Vec<VirtiofsShare>,
    /// Files in the guest's fw_cfg (`/sys/firmware/qemu_fw_cfg/by_name/<name>/raw`).
    pub fw_cfg: Vec<FwCfgFile>,
    pub net: NetSpec,
    /// Values from `credentials::smbios_args`, already escaped.
    pub smbios: Vec<String>,
    pub disks: Vec<DiskSpec>,
    pub serial_outs: Vec<SerialOutSpec>,
    pub console: ConsoleSpec,
    pub qmp_socket: PathBuf,
    /// virtio-rng: entropy for early sshd key generation.
    pub rng: bool,
}

/// The virtio-fs config space holds the tag in 36 bytes.
pub const MAX_TAG_LEN: usize = 36;
/// VIRTIO_BLK_ID_BYTES: longer serials are cut short by the guest.
pub const MAX_DISK_SERIAL_LEN: usize = 20;
/// sun_path is 108 bytes on Linux, including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Below this, a systemd guest with an initrd does not reliably boot.
pub const MIN_MEMORY_MIB: u64 = 128;
/// q35 without an IOMMU tops out at 255 vCPUs (8-bit APIC IDs).
pub const MAX_VCPUS: u32 = 255;
/// FW_CFG_MAX_FILE_PATH is 56 bytes, including the terminating NUL.
pub const MAX_FW_CFG_NAME_LEN: usize = 55;
/// Generous for /dev/virtio-ports/<name> and readable in `ls`.
pub const MAX_SERIAL_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("{vcpus} vCPUs requested; use 1 to 255 (the q35 limit without an IOMMU)")]
    VcpusOutOfRange { vcpus: u32 },
    #[error("{mib} MiB of guest memory is too little; give the VM at least 128 MiB")]
    MemoryTooSmall { mib: u64 },
    #[error("CPU model is empty; pass one such as \"host\" (KVM) or \"max\" (TCG)")]
    EmptyCpu,
    #[error(
        "CPU model \"host\" needs KVM but TCG was chosen; use \"max\" with TCG, or enable KVM"
    )]
    HostCpuNeedsKvm,
    #[error("virtiofs tag {tag:?} is invalid ({reason}); use 1 to 36 bytes without whitespace or control characters")]
    InvalidTag { tag: String, reason: &'static str },
    #[error("virtiofs tag {0:?} is used by two shares; give every share its own tag")]
    DuplicateTag(String),
    #[error(
        "virtio-serial port name {name:?} is invalid ({reason}); use 1 to 64 of [A-Za-z0-9._-]"
    )]
    InvalidSerialName { name: String, reason: &'static str },
    #[error("virtio-serial port name {0:?} is used twice; give every port its own name")]
    DuplicateSerialName(String),
    #[error("host port {0} is forwarded twice; forward each host port once")]
    DuplicateHostPort(u16),
    #[error("port forward uses port 0; pass real host and guest ports")]
    ZeroPort,
    #[error("disk serial {serial:?} is invalid ({reason}); use 1 to 20 of [A-Za-z0-9._-]")]
    InvalidDiskSerial {
        serial: String,
        reason: &'static str,
    },
    #[error("disk serial {0:?} is used twice; give every disk its own serial")]
    DuplicateDiskSerial(String),
    #[error("an arm64 guest has no BIOS to boot a disk with (QEMU's virt machine boots UEFI only): boot the disk image with --firmware uefi")]
    BiosOnAarch64,
    #[error("{0} firmware boots a disk, but the root is a virtiofs share; boot the kernel directly or give a disk image")]
    FirmwareWithoutDisk(&'static str),
    #[error("fw_cfg name {0:?} is invalid or used twice; use a unique name under opt/ of at most 55 bytes")]
    InvalidFwCfgName(String),
    #[error("socket path {path:?} is {len} bytes, over the 107-byte UNIX socket limit; use a shorter directory such as /run/bcvk")]
    SocketPathTooLong { path: PathBuf, len: usize },

    #[error("cannot connect to QMP socket {path:?}: {source}; check that QEMU is running with -qmp on that path")]
    QmpConnect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP I/O failed: {0}; the QEMU process has probably died, check its exit status")]
    QmpIo(#[source] std::io::Error),
    #[error("QMP connection closed by QEMU; it has exited or is exiting, check its exit status")]
    QmpClosed,
    #[error("QMP protocol error: {0}; this QEMU speaks something unexpected, check its version")]
    QmpProtocol(String),
    #[error(
        "QMP command {command:?} failed: {class}: {desc}; fix the command or the VM state it needs"
    )]
    QmpCommand {
        command: String,
        class: String,
        desc: String,
    },
}

impl QemuError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        Exit::Usage
    }
}

fn check_socket_path(path: &Path) -> Result<(), QemuError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(QemuError::SocketPathTooLong {
            path: path.to_owned(),
            len,
        });
    }
    Ok(())
}

/// Whether a line QEMU wrote to stderr says KVM cannot run the guest. Depending on the host
/// kernel and QEMU version this shows as an abort on an MSR write, an internal error after
/// which QEMU pauses (and would sit there), or a vCPU that cannot be created.
pub fn kvm_failure(line: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "KVM internal error",
        "failed to set MSR",
        "kvm_buf_set_msrs",
        "kvm_init_vcpu",
        "kvm run failed",
        "KVM_CREATE_VCPU",
    ];
    MARKERS.iter().any(|m| line.contains(m))
}

/// Names that end up inside paths and QEMU option values.
fn portable_name(s: &str, max: usize) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.len() > max {
        return Err("too long");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("characters outside [A-Za-z0-9._-]");
    }
    Ok(())
}

impl QemuSpec {
    /// All shares, root first, as they appear on the command line.
    pub fn shares(&self) -> impl Iterator<Item = &VirtiofsShare> {
        let root = match &self.root {
            RootDevice::Share(s) => Some(s),
            RootDevice::Disk(_) => None,
        };
        root.into_iter().chain(&self.extra_shares)
    }

    /// All disks, root first, as they appear on the command line.
    pub fn all_disks(&self) -> impl Iterator<Item = &DiskSpec> {
        let root = match &self.root {
            RootDevice::Disk(d) => Some(d),
            RootDevice::Share(_) => None,
        };
        root.into_iter().chain(&self.disks)
    }

    /// The same VM under TCG, for `--accel auto` when KVM turned out unable to run the guest;
    /// `None` when there is nothing to fall back to (already TCG, or a `--cpu` that needs KVM).
    pub fn under_tcg(&self, user_cpu: Option<&str>) -> Option<QemuSpec> {
        if self.accel != Accel::Kvm {
            return None;
        }
        let tcg = QemuSpec {
            accel: Accel::Tcg,
            cpu: user_cpu.unwrap_or(self.arch.default_cpu(Accel::Tcg)).into(),
            ..self.clone()
        };
        tcg.validate_for(tcg.arch).ok().map(|()| tcg)
    }

    pub fn validate(&self) -> Result<(), QemuError> {
        if !(1..=MAX_VCPUS).contains(&self.vcpus) {
            return Err(QemuError::VcpusOutOfRange { vcpus: self.vcpus });
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(QemuError::MemoryTooSmall {
                mib: self.memory_mib,
            });
        }
        if self.cpu.is_empty() {
            return Err(QemuError::EmptyCpu);
        }
        // QEMU refuses "-cpu host" without a hardware accelerator.
        if self.accel == Accel::Tcg && (self.cpu == "host" || self.cpu.starts_with("host,")) {
            return Err(QemuError::HostCpuNeedsKvm);
        }

        let mut tags = HashSet::new();
        for share in self.shares() {
            let bad = |reason| QemuError::InvalidTag {
                tag: share.tag.clone(),
                reason,
            };
            if share.tag.is_empty() {
                return Err(bad("empty"));
            }
            if share.tag.len() > MAX_TAG_LEN {
                return Err(bad("longer than 36 bytes"));
            }
            // The tag is also the first field of an fstab line in the guest.
            if share
                .tag
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad("whitespace or control characters"));
            }
            if !tags.insert(share.tag.as_str()) {
                return Err(QemuError::DuplicateTag(share.tag.clone()));
            }
            check_socket_path(&share.socket)?;
        }

        if let NetSpec::User { forwards, .. } = &self.net {
            let mut ports = HashSet::new();
            for f in forwards {
                if f.port.host_port == 0 || f.port.guest_port == 0 {
                    return Err(QemuError::ZeroPort);
                }
                if !ports.insert(f.port.host_port) {
                    return Err(QemuError::DuplicateHostPort(f.port.host_port));
                }
            }
        }

        if let (BootSpec::Firmware(fw), RootDevice::Share(_)) = (&self.boot, &self.root) {
            return Err(QemuError::FirmwareWithoutDisk(fw.name()));
        }
        let mut names = HashSet::new();
        for f in &self.fw_cfg {
            if !f.name.starts_with("opt/") || f.name.len() > MAX_FW_CFG_NAME_LEN {
                return Err(QemuError::InvalidFwCfgName(f.name.clone()));
            }
            if !names.insert(f.name.as_str()) {
                return Err(QemuError::InvalidFwCfgName(f.name.clone()));
            }
        }

        let mut serials = HashSet::new();
        for d in self.all_disks() {
            portable_name(&d.serial, MAX_DISK_SERIAL_LEN).map_err(|reason| {
                QemuError::InvalidDiskSerial {
                    serial: d.serial.clone(),
                    reason,
                }
            })?;
            if !serials.insert(d.serial.as_str()) {
                return Err(QemuError::DuplicateDiskSerial(d.serial.clone()));
            }
        }

        let mut names = HashSet::new();
        for s in &self.serial_outs {
            portable_name(&s.name, MAX_SERIAL_NAME_LEN).map_err(|reason| {
                QemuError::InvalidSerialName {
                    name: s.name.clone(),
                    reason,
                }
            })?;
            if !names.insert(s.name.as_str()) {
                return Err(QemuError::DuplicateSerialName(s.name.clone()));
            }
        }

        check_socket_path(&self.qmp_socket)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn spec() -> QemuSpec {
        QemuSpec {
            arch: Arch::X86_64,
            accel: Accel::Kvm,
            cpu: "host".into(),
            vcpus: 2,
            memory_mib: 2048,
            root: RootDevice::Share(VirtiofsShare {
                tag: "root".into(),
                socket: "/run/bcvk/root.sock".into(),
            }),
            boot: BootSpec::Kernel {
                kernel: "/run/bcvk/vmlinuz".into(),
                initrd: Some("/run/bcvk/initrd.img".into()),
                cmdline: vec![
                    "rootfstype=virtiofs".into(),
                    "root=root".into(),
                    "console=ttyS0".into(),
                ],
            },
            extra_shares: vec![],
            fw_cfg: vec![],
            net: NetSpec::None,
            smbios: vec![],
            disks: vec![],
            serial_outs: vec![],
            console: ConsoleSpec::Stdio { interactive: false },
            qmp_socket: "/run/bcvk/qmp.sock".into(),
            rng: false,
        }
    }

    /// The x86 line (the tests in `argv`), whatever the host.
    pub(crate) fn argv(spec: &QemuSpec) -> Vec<String> {
        strings(argv::qemu_args_for(crate::arch::Arch::X86_64, spec))
    }

    pub(crate) fn strings(args: Vec<std::ffi::OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    /// Every value given to `flag`, in order.
    pub(crate) fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    pub(crate) fn pos(args: &[String], value: &str) -> usize {
        args.iter()
            .position(|a| a == value)
            .unwrap_or_else(|| panic!("{value} missing from {args:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn kvm_failures_are_recognised_in_qemu_stderr() {
        for line in [
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069",
            "qemu-system-x86_64: target/i386/kvm/kvm.c:3877: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
            "KVM internal error. Suberror: 1",
            "qemu-system-x86_64: kvm_init_vcpu: kvm_arch_init_vcpu failed (0): Operation not permitted",
            "error: kvm run failed Bad address",
        ] {
            assert!(kvm_failure(line), "{line}");
        }
        for line in [
            "qemu-system-x86_64: warning: host doesn't support requested feature",
            "qemu-system-x86_64: -device vhost-user-fs-pci: Failed to read from slave.",
            "",
        ] {
            assert!(!kvm_failure(line), "{line}");
        }
    }

    #[test]
    fn tcg_fallback_keeps_the_vm_and_changes_accelerator_and_cpu() {
        let kvm = spec();
        let tcg = kvm.under_tcg(None).unwrap();
        assert_eq!(tcg.accel, Accel::Tcg);
        assert_eq!(tcg.cpu, "qemu64,-svm");
        assert_eq!(
            QemuSpec {
                accel: Accel::Kvm,
                cpu: kvm.cpu.clone(),
                ..tcg.clone()
            },
            kvm
        );
        let a = argv(&tcg);
        assert_eq!(values(&a, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(values(&a, "-cpu"), ["qemu64,-svm"]);
        // A CPU model the user chose is kept; one that needs KVM leaves nothing to fall back to.
        assert_eq!(kvm.under_tcg(Some("max")).unwrap().cpu, "max");
        assert_eq!(kvm.under_tcg(Some("host")), None);
        assert_eq!(tcg.under_tcg(None), None);
        // An arm64 guest falls back to its own architecture's model.
        let arm = QemuSpec {
            arch: Arch::Aarch64,
            ..spec()
        };
        assert_eq!(arm.under_tcg(None).unwrap().cpu, "max,pauth-impdef=on");
    }

    #[test]
    fn validate_accepts_sample() {
        spec().validate().unwrap();
    }

    #[test]
    fn validate_limits() {
        use QemuError as E;
        let check = |s: QemuSpec| s.validate().unwrap_err();
        assert!(matches!(
            check(QemuSpec { vcpus: 0, ..spec() }),
            E::VcpusOutOfRange { .. }
        ));
        assert!(matches!(
            check(QemuSpec {
                vcpus: 256,
                ..spec()
            }),
            E::VcpusOutOfRange { .. }
        ));
        QemuSpec {
            vcpus: 255,
            memory_mib: 128,
            ..spec()
        }
        .validate()
        .unwrap();
        assert!(matches!(
            check(QemuSpec {
                memory_mib: 127,
                ..spec()
            }),
            E::MemoryTooSmall { .. }
        ));
        assert!(matches!(
            check(QemuSpec {
                cpu: String::new(),
                ..spec()
            }),
            E::EmptyCpu
        ));
        assert!(matches!(
            check(QemuSpec {
                accel: Accel::Tcg,
                ..spec()
            }),
            E::HostCpuNeedsKvm
        ));
        let long_sock = PathBuf::from(format!("/{}", "q".repeat(107)));
        assert!(matches!(
            check(QemuSpec {
                qmp_socket: long_sock.clone(),
                ..spec()
            }),
            E::SocketPathTooLong { len: 108, .. }
        ));
        let mut s = spec();
        s.root = RootDevice::Share(VirtiofsShare {
            tag: "root".into(),
            socket: long_sock,
        });
        assert!(matches!(check(s), E::SocketPathTooLong { .. }));
    }

    #[test]
    fn validate_tags() {
        use QemuError as E;
        let with_extra = |tag: &str| QemuSpec {
            extra_shares: vec![VirtiofsShare {
                tag: tag.into(),
                socket: "/run/bcvk/x.sock".into(),
            }],
            ..spec()
        };
        with_extra(&"t".repeat(36)).validate().unwrap();
        assert!(matches!(
            with_extra(&"t".repeat(37)).validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(
            with_extra("").validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(
            with_extra("a b").validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(with_extra("root").validate(), Err(E::DuplicateTag(t)) if t == "root"));
    }

    #[test]
    fn validate_forwards() {
        use QemuError as E;
        let fwd = |host_port, guest_port| PortForward {
            host_addr: None,
            port: PortSpec {
                host_port,
                guest_port,
            },
        };
        let net = |forwards| QemuSpec {
            net: NetSpec::User {
                forwards,
                restrict: false,
            },
            ..spec()
        };
        net(vec![fwd(2222, 22), fwd(8080, 22)]).validate().unwrap();
        assert!(matches!(
            net(vec![fwd(2222, 22), fwd(2222, 80)]).validate(),
            Err(E::DuplicateHostPort(2222))
        ));
        assert!(matches!(net(vec![fwd(0, 22)]).validate(), Err(E::ZeroPort)));
        assert!(matches!(net(vec![fwd(22, 0)]).validate(), Err(E::ZeroPort)));
    }

    #[test]
    fn validate_disks_and_serial_ports() {
        use QemuError as E;
        let disk = |serial: &str| DiskSpec {
            path: "/d.raw".into(),
            format: DiskFormat::Raw,
            serial: serial.into(),
            readonly: false,
        };
        let disks = |d| QemuSpec { disks: d, ..spec() };
        disks(vec![disk(&"s".repeat(20))]).validate().unwrap();
        assert!(matches!(
            disks(vec![disk(&"s".repeat(21))]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("")]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("a,b")]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("a"), disk("a")]).validate(),
            Err(E::DuplicateDiskSerial(_))
        ));

        let port = |name: &str| SerialOutSpec {
            name: name.into(),
            file: "/run/bcvk/out".into(),
        };
        let ports = |p| QemuSpec {
            serial_outs: p,
            ..spec()
        };
        ports(vec![port("org.bcvk.journal")]).validate().unwrap();
        for bad in ["", "a/b", "a b", &"n".repeat(65)] {
            assert!(
                matches!(
                    ports(vec![port(bad)]).validate(),
                    Err(E::InvalidSerialName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ports(vec![port("x"), port("x")]).validate(),
            Err(E::DuplicateSerialName(_))
        ));
    }

    #[test]
    fn error_messages_are_one_line() {
        let errors = [
            QemuError::VcpusOutOfRange { vcpus: 0 },
            QemuError::HostCpuNeedsKvm,
            QemuError::QmpClosed,
            QemuError::QmpCommand {
                command: "cont".into(),
                class: "GenericError".into(),
                desc: "nope".into(),
            },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.contains(';'), "{s}");
        }
    }
}
