//! CPU architectures: the host's (the one this supervisor was built for: the bcvk image is
//! built per architecture), an image's (from its config in the store, [`Arch::from_platform`]),
//! and what a guest of each needs from QEMU: the binary, the serial console's name, the UEFI
//! firmware, the default CPU model. A guest of the other architecture boots under TCG, on
//! purpose ([`plan_emulation`]); an architecture bcvk has no QEMU for is refused in one line.
//! All pure.

use crate::qemu::Accel;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("bcvk runs on x86_64 and aarch64 hosts only (see arch.rs)");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// Every architecture bcvk boots, as the error for any other names them.
pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// Where a guest's UEFI firmware comes from (see [`Arch::uefi_firmware`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UefiFiles {
    pub code: &'static str,
    /// The variable store each VM copies; `None`: a blank one.
    pub vars_template: Option<&'static str>,
    /// The size both flash files must have, when the files are not that size already.
    pub flash_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("image {image} is for {platform}, an architecture bcvk cannot boot: bcvk boots linux/amd64 and linux/arm64 images (with KVM on a host of the same architecture, under emulation on the other); use the image's amd64 or arm64 variant (podman pull --arch)")]
    Unsupported { image: String, platform: String },
    #[error("--accel kvm cannot run image {image} ({guest}) on this {host} host: KVM runs guests of the host's own architecture only; drop --accel kvm (or pass --accel tcg) to boot it under emulation, or use the image's {host} variant")]
    KvmForeign {
        image: String,
        guest: &'static str,
        host: &'static str,
    },
}

impl Arch {
    /// The architecture this supervisor runs on, which is the bcvk image's.
    pub const fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The image config's (and podman's `--arch`) name: Go's GOARCH.
    pub const fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// What `uname -m` says in a guest of this architecture.
    pub const fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// An image's architecture from its config's `os`, `architecture` and `variant` (the OCI
    /// image spec's platform fields). `image` names it in the error. The kernel's own names
    /// (`x86_64`, `aarch64`) are taken too: some hand-made configs carry them. Any arm64 variant
    /// (`v8`, `v9`, ...) is arm64: the variant names a minimum, and `max` (TCG) or the host's CPU
    /// (KVM) is what the guest gets. An amd64 variant (a microarchitecture level, `v2` to `v4`)
    /// is amd64 too, as for podman; under TCG such an image needs `--cpu max`.
    pub fn from_platform(
        image: &str,
        os: Option<&str>,
        architecture: &str,
        variant: Option<&str>,
    ) -> Result<Arch, ArchError> {
        let os_ok = matches!(os, None | Some("") | Some("linux"));
        let arch = match architecture {
            "amd64" | "x86_64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Aarch64),
            _ => None,
        };
        match arch {
            Some(a) if os_ok => Ok(a),
            _ => {
                let mut platform = format!("{}/{architecture}", os.unwrap_or("linux"));
                if let Some(v) = variant.filter(|v| !v.is_empty()) {
                    platform.push('/');
                    platform.push_str(v);
                }
                // The config is untrusted input that ends up in a one-line message.
                platform.retain(|c| !c.is_control());
                Err(ArchError::Unsupported {
                    image: image.to_string(),
                    platform,
                })
            }
        }
    }

    /// The QEMU that runs guests of this architecture.
    pub const fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The guest's name for its first serial port, the one bcvk reads as the console: the
    /// 16550 UART on q35, the PL011 UART on QEMU's `virt` machine.
    pub const fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// UEFI firmware for disk images, neither build with Secure Boot, which bcvk does not set
    /// up: Debian's OVMF with its variable store template; for arm64 the same ArmVirtQemu
    /// firmware Debian pads to 64 MiB as AAVMF, here its unpadded 3 MiB build from the same
    /// package (qemu-efi-aarch64), padded per VM instead, and a blank variable store, which
    /// the firmware formats at first boot: `virt`'s flash devices are 64 MiB each, and two
    /// padded files in the image would add 128 MiB to it for nothing but zeros.
    pub const fn uefi_firmware(self) -> UefiFiles {
        match self {
            Arch::X86_64 => UefiFiles {
                code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
                vars_template: Some("/usr/share/OVMF/OVMF_VARS_4M.fd"),
                flash_size: None,
            },
            Arch::Aarch64 => UefiFiles {
                code: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
                vars_template: None,
                flash_size: Some(64 << 20),
            },
        }
    }

    /// Whether this architecture has a BIOS to boot a disk's MBR code with (SeaBIOS on x86).
    pub const fn has_bios(self) -> bool {
        matches!(self, Arch::X86_64)
    }

    /// The CPU model when `--cpu` is not given.
    pub const fn default_cpu(self, accel: Accel) -> &'static str {
        match (self, accel) {
            (_, Accel::Kvm) => "host",
            // qemu64 boots ~50 s faster than max under TCG here (no AVX emulation). Without
            // SVM: qemu64 offers it, so udev loads kvm, kvm_amd and ccp (1.8 MB of modules)
            // just as sshd takes its first connection, which then took ~1.1 s longer than the
            // next one instead of ~0.5 s (README, issue 18); nested virtualization under TCG is
            // no use.
            (Arch::X86_64, Accel::Tcg) => "qemu64,-svm",
            // max: every feature an arm64 image may have been built for. Its pointer
            // authentication defaults to the architected QARMA5 cipher, which QEMU's manual
            // (docs/system/arm/cpu-features.rst) names as the costly part under TCG;
            // pauth-impdef=on keeps the feature with QEMU's cheaper implementation-defined
            // algorithm (the guest cannot tell: the keys never leave it).
            (Arch::Aarch64, Accel::Tcg) => "max,pauth-impdef=on",
        }
    }

    /// Whether /proc/cpuinfo says the CPU can run KVM guests. x86 names it (vmx, svm); an arm64
    /// kernel offers /dev/kvm only when it was booted at EL2 with virtualization, so there the
    /// device itself is the answer.
    pub fn cpu_can_virtualize(self, cpuinfo: &str) -> bool {
        match self {
            Arch::X86_64 => cpuinfo
                .lines()
                .filter(|l| l.starts_with("flags"))
                .flat_map(|l| l.split_whitespace())
                .any(|f| f == "vmx" || f == "svm"),
            Arch::Aarch64 => true,
        }
    }
}

/// How a guest of `guest`'s architecture runs on `host`: `Ok(None)` natively (the accelerator
/// as chosen), `Ok(Some(notice))` under TCG, on purpose, with the one line to say so; an error
/// when KVM was demanded for a guest it cannot run.
pub fn plan_emulation(
    image: &str,
    guest: Arch,
    host: Arch,
    kvm_demanded: bool,
) -> Result<Option<String>, ArchError> {
    if guest == host {
        return Ok(None);
    }
    if kvm_demanded {
        return Err(ArchError::KvmForeign {
            image: image.to_string(),
            guest: guest.oci_name(),
            host: host.oci_name(),
        });
    }
    Ok(Some(format!(
        "image {image} is {}, this host is {}: booting it under TCG emulation with {} (boots take minutes; the host's own architecture would use KVM)",
        guest.oci_name(),
        host.oci_name(),
        guest.qemu_binary()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_the_build_target() {
        assert_eq!(Arch::host().uname(), std::env::consts::ARCH);
    }

    #[test]
    fn platforms_of_the_two_architectures() {
        let p = |os, a, v| Arch::from_platform("img", os, a, v);
        assert_eq!(p(Some("linux"), "amd64", None), Ok(Arch::X86_64));
        assert_eq!(p(None, "x86_64", None), Ok(Arch::X86_64));
        assert_eq!(p(Some("linux"), "arm64", Some("v8")), Ok(Arch::Aarch64));
        assert_eq!(p(Some(""), "arm64", None), Ok(Arch::Aarch64));
        assert_eq!(p(Some("linux"), "aarch64", Some("v9")), Ok(Arch::Aarch64));
        for a in ALL {
            assert_eq!(p(Some("linux"), a.oci_name(), None), Ok(a));
            assert_eq!(p(Some("linux"), a.uname(), None), Ok(a));
        }
    }

    #[test]
    fn other_platforms_are_refused_in_one_line() {
        for (os, arch, variant, shown) in [
            (Some("linux"), "s390x", None, "linux/s390x"),
            (Some("linux"), "ppc64le", None, "linux/ppc64le"),
            (Some("linux"), "riscv64", None, "linux/riscv64"),
            (Some("linux"), "arm", Some("v7"), "linux/arm/v7"),
            (Some("linux"), "386", None, "linux/386"),
            (Some("windows"), "amd64", None, "windows/amd64"),
            (None, "mips\n64", None, "linux/mips64"),
        ] {
            let err = Arch::from_platform("quay.io/x/y:1", os, arch, variant).unwrap_err();
            assert_eq!(
                err,
                ArchError::Unsupported {
                    image: "quay.io/x/y:1".into(),
                    platform: shown.into()
                }
            );
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains(shown) && msg.contains("linux/amd64 and linux/arm64"));
        }
    }

    #[test]
    fn what_each_guest_needs_from_qemu() {
        assert_eq!(Arch::X86_64.qemu_binary(), "qemu-system-x86_64");
        assert_eq!(Arch::Aarch64.qemu_binary(), "qemu-system-aarch64");
        assert_eq!(Arch::X86_64.console(), "ttyS0");
        assert_eq!(Arch::Aarch64.console(), "ttyAMA0");
        assert_eq!(Arch::X86_64.uefi_firmware().code, crate::disk::OVMF_CODE);
        assert_eq!(
            Arch::X86_64.uefi_firmware().vars_template,
            Some(crate::disk::OVMF_VARS)
        );
        let arm = Arch::Aarch64.uefi_firmware();
        assert!(arm.code.ends_with("QEMU_EFI.fd") && arm.vars_template.is_none());
        assert_eq!(arm.flash_size, Some(64 << 20));
        assert!(Arch::X86_64.has_bios() && !Arch::Aarch64.has_bios());
    }

    #[test]
    fn default_cpu_suits_accelerator_and_architecture() {
        for a in ALL {
            assert_eq!(a.default_cpu(Accel::Kvm), "host");
            assert_ne!(a.default_cpu(Accel::Tcg), "host");
        }
        assert_eq!(Arch::X86_64.default_cpu(Accel::Tcg), "qemu64,-svm");
        assert_eq!(Arch::Aarch64.default_cpu(Accel::Tcg), "max,pauth-impdef=on");
    }

    #[test]
    fn virtualization_flags() {
        let intel = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n";
        let plain = "processor\t: 0\nflags\t\t: fpu vme sse\nvmx flags\t: ept\n";
        assert!(Arch::X86_64.cpu_can_virtualize(intel));
        assert!(Arch::X86_64.cpu_can_virtualize("flags : svm"));
        // "vmx flags" is a line of its own, not a flag.
        assert!(!Arch::X86_64.cpu_can_virtualize(plain));
        // arm64's cpuinfo has "Features", never vmx/svm: the device decides.
        assert!(Arch::Aarch64.cpu_can_virtualize("Features\t: fp asimd evtstrm\n"));
    }

    #[test]
    fn a_foreign_guest_is_emulated_on_purpose() {
        assert_eq!(
            plan_emulation("img", Arch::X86_64, Arch::X86_64, true),
            Ok(None)
        );
        assert_eq!(
            plan_emulation("img", Arch::Aarch64, Arch::Aarch64, false),
            Ok(None)
        );
        let notice = plan_emulation("d:arm64", Arch::Aarch64, Arch::X86_64, false)
            .unwrap()
            .unwrap();
        assert!(notice.contains("d:arm64 is arm64, this host is amd64"));
        assert!(notice.contains("qemu-system-aarch64") && !notice.contains('\n'));
        let other = plan_emulation("x", Arch::X86_64, Arch::Aarch64, false)
            .unwrap()
            .unwrap();
        assert!(other.contains("qemu-system-x86_64"));
        let err = plan_emulation("d:arm64", Arch::Aarch64, Arch::X86_64, true).unwrap_err();
        assert!(matches!(
            err,
            ArchError::KvmForeign {
                guest: "arm64",
                host: "amd64",
                ..
            }
        ));
        assert!(err
            .to_string()
            .contains("--accel kvm cannot run image d:arm64"));
    }
}
