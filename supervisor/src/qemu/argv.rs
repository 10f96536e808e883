//! The argv for QEMU from a [`QemuSpec`]: a pure function. The line is the same for both
//! architectures but for the machine (q35 here, `virt` in `aarch64`), so it is built here
//! around the machine each names.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use super::*;
use crate::arch::Arch;

/// QemuOpts and keyval (-chardev, -device, -object, -blockdev, -smbios,
/// -qmp ...) split on ',' and read ",," as one literal comma. Paths may be
/// non-UTF-8, so this works on bytes.
fn escape_commas(s: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(s.len());
    for &b in s.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// Concatenates option-string pieces; paths go through `path`, escaped.
struct Opt(OsString);

impl Opt {
    fn new(s: &str) -> Opt {
        Opt(OsString::from(s))
    }
    fn s(mut self, s: &str) -> Opt {
        self.0.push(s);
        self
    }
    fn esc(mut self, s: impl AsRef<OsStr>) -> Opt {
        self.0.push(escape_commas(s.as_ref()));
        self
    }
}

struct Argv(Vec<OsString>);

impl Argv {
    fn opt(&mut self, name: &str, value: OsString) {
        self.0.push(name.into());
        self.0.push(value);
    }
}

/// The kind of boot, in one place.
fn boot_args(a: &mut Argv, boot: &BootSpec) {
    match boot {
        // -kernel/-initrd/-append are stored verbatim (no option parsing), so
        // their commas must not be doubled.
        BootSpec::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            a.opt("-kernel", kernel.clone().into_os_string());
            if let Some(initrd) = initrd {
                a.opt("-initrd", initrd.clone().into_os_string());
            }
            if !cmdline.is_empty() {
                a.opt("-append", cmdline.join(" ").into());
            }
        }
        BootSpec::Firmware(fw) => {
            if let Firmware::Uefi { code, vars } = fw {
                a.opt(
                    "-drive",
                    Opt::new("if=pflash,format=raw,unit=0,readonly=on,file=")
                        .esc(code)
                        .0,
                );
                a.opt(
                    "-drive",
                    Opt::new("if=pflash,format=raw,unit=1,file=").esc(vars).0,
                );
            }
            // A firmware that finds nothing to boot reboots at once instead of retrying
            // (SeaBIOS waits 60 s): with -no-reboot that ends QEMU, and bcvk reports it.
            a.opt("-boot", "strict=on,reboot-timeout=0".into());
        }
    }
}

/// One disk on virtio-blk: a format node over a file node, and its device.
fn disk_args(a: &mut Argv, node: &str, d: &DiskSpec, boot: bool) {
    let driver = match d.format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    // read-only on the format node is inherited by its file child.
    let mut opt = Opt::new("driver=")
        .s(driver)
        .s(&format!(
            ",node-name={node},file.driver=file,file.filename="
        ))
        .esc(&d.path);
    if d.readonly {
        opt = opt.s(",read-only=on");
    }
    a.opt("-blockdev", opt.0);
    let mut dev = Opt::new(&format!("virtio-blk-pci,drive={node},serial=")).esc(&d.serial);
    if boot {
        dev = dev.s(",bootindex=0");
    }
    a.opt("-device", dev.0);
}

/// The argv for the QEMU of the guest's architecture, without the binary itself.
/// Call [`QemuSpec::validate_for`] first; this does not check again.
pub fn qemu_args(spec: &QemuSpec) -> Vec<OsString> {
    qemu_args_for(spec.arch, spec)
}

/// The argv for `arch`'s QEMU (`Arch::qemu_binary`), without the binary itself.
pub fn qemu_args_for(arch: Arch, spec: &QemuSpec) -> Vec<OsString> {
    match arch {
        // q35 without its built-in AHCI controller and SMBus: every disk here is virtio-blk,
        // so no guest uses them, and without them its udev loads no ahci/libata/i2c_i801 and
        // probes no SATA ports while it is setting up the NIC. Under TCG (2026-12-02, 11
        // alternating pairs of boots) the guest's network came up nearer sshd's start with
        // them off, but time to ready did not differ measurably on that noisy machine: this
        // is leanness, not a measured gain.
        Arch::X86_64 => args_with_machine(spec, "q35,memory-backend=mem,sata=off,smbus=off"),
        Arch::Aarch64 => super::aarch64::qemu_args(spec),
    }
}

/// The whole line, with `machine` as the value of `-machine` (which must name
/// `memory-backend=mem`).
pub(super) fn args_with_machine(spec: &QemuSpec, machine: &str) -> Vec<OsString> {
    let mut a = Argv(Vec::new());

    // A lean machine: no default NIC, VGA, serial, parallel or monitor
    // (-nodefaults), no /etc/qemu config, no display. -no-reboot turns a
    // guest reboot into QEMU exiting, so "VM done" is simply "QEMU exited";
    // a guest panic ends QEMU too when the kernel reboots on panic (panic=N).
    for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
        a.0.push(flag.into());
    }
    a.opt("-display", "none".into());

    // vhost-user-fs needs guest RAM that virtiofsd can map: a shared memfd
    // backend, handed to the machine as its RAM. Its size must equal -m.
    let mem = format!("{}M", spec.memory_mib);
    a.opt("-machine", machine.into());
    a.opt(
        "-object",
        format!("memory-backend-memfd,id=mem,size={mem},share=on").into(),
    );
    a.opt(
        "-accel",
        match spec.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg,thread=multi",
        }
        .into(),
    );
    // -cpu has its own parser where ',' separates features: not escaped.
    a.opt("-cpu", spec.cpu.clone().into());
    a.opt("-smp", spec.vcpus.to_string().into());
    a.opt("-m", mem.into());

    boot_args(&mut a, &spec.boot);

    share_args(&mut a, spec);

    net_args(&mut a, &spec.net);

    for s in &spec.smbios {
        a.opt("-smbios", s.clone().into());
    }

    // The root disk (if any) comes first and alone carries a boot index.
    for (i, d) in spec.all_disks().enumerate() {
        let root = i == 0 && matches!(spec.root, RootDevice::Disk(_));
        disk_args(&mut a, &format!("disk{i}"), d, root);
    }

    for f in &spec.fw_cfg {
        a.opt(
            "-fw_cfg",
            Opt::new("name=").esc(&f.name).s(",file=").esc(&f.file).0,
        );
    }

    serial_out_args(&mut a, &spec.serial_outs);

    console_args(&mut a, spec);

    if spec.rng {
        a.opt("-device", "virtio-rng-pci".into());
    }
    a.0
}

/// One vhost-user-fs device per share, on its virtiofsd socket.
fn share_args(a: &mut Argv, spec: &QemuSpec) {
    for (i, share) in spec.shares().enumerate() {
        let id = format!("vfs{i}");
        a.opt(
            "-chardev",
            Opt::new("socket,id=")
                .s(&id)
                .s(",path=")
                .esc(&share.socket)
                .0,
        );
        // queue-size=1024 (the maximum; the default is 128): the root
        // filesystem carries all guest I/O, so allow more requests in flight.
        a.opt(
            "-device",
            Opt::new("vhost-user-fs-pci,chardev=")
                .s(&id)
                .s(",tag=")
                .esc(&share.tag)
                .s(",queue-size=1024")
                .0,
        );
    }
}

/// User-mode networking with its forwards, on one virtio NIC.
fn net_args(a: &mut Argv, net: &NetSpec) {
    if let NetSpec::User { forwards, restrict } = net {
        let mut netdev = String::from("user,id=net0");
        if *restrict {
            netdev.push_str(",restrict=on");
        }
        for f in forwards {
            let addr = f.host_addr.map(|a| a.to_string()).unwrap_or_default();
            netdev.push_str(&format!(
                ",hostfwd=tcp:{addr}:{}-:{}",
                f.port.host_port, f.port.guest_port
            ));
        }
        a.opt("-netdev", netdev.into());
        // romfile= (empty): with a direct kernel boot there is nothing to
        // PXE-boot, and skipping the iPXE option ROM means the VM does not
        // depend on the ipxe-qemu package being installed.
        a.opt("-device", "virtio-net-pci,netdev=net0,romfile=".into());
    }
}

/// `--virtio-serial-out`: a virtio-serial port per file.
fn serial_out_args(a: &mut Argv, outs: &[SerialOutSpec]) {
    if !outs.is_empty() {
        a.opt("-device", "virtio-serial-pci,id=vser0".into());
        for (i, s) in outs.iter().enumerate() {
            let id = format!("vport{i}");
            a.opt(
                "-chardev",
                Opt::new("file,id=").s(&id).s(",path=").esc(&s.file).0,
            );
            a.opt(
                "-device",
                Opt::new("virtserialport,bus=vser0.0,chardev=")
                    .s(&id)
                    .s(",name=")
                    .esc(&s.name)
                    .0,
            );
        }
    }
}

/// The console on stdio, on the serial port, and the QMP socket.
fn console_args(a: &mut Argv, spec: &QemuSpec) {
    let ConsoleSpec::Stdio { interactive } = spec.console;
    // See ConsoleSpec for why mux=on only when interactive.
    a.opt(
        "-chardev",
        if interactive {
            "stdio,id=console,mux=on,signal=off"
        } else {
            "stdio,id=console,signal=off"
        }
        .into(),
    );
    a.opt("-serial", "chardev:console".into());

    // wait=off: QEMU starts the guest without waiting for a QMP client.
    // "path=" is spelt out: after "unix:" QEMU takes a first piece holding
    // '=' for a key=value pair, so an implied path "/a=b" would not be a path.
    a.opt(
        "-qmp",
        Opt::new("unix:path=")
            .esc(&spec.qmp_socket)
            .s(",server=on,wait=off")
            .0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::testing::*;

    #[test]
    fn lean_machine() {
        let a = argv(&spec());
        for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
            assert!(a.contains(&flag.to_owned()), "{flag}");
        }
        assert_eq!(values(&a, "-display"), ["none"]);
        assert!(!a.iter().any(|x| x == "-nographic" || x == "-enable-kvm"));
        assert_eq!(values(&a, "-cpu"), ["host"]);
        assert_eq!(values(&a, "-smp"), ["2"]);
    }

    #[test]
    fn accel() {
        assert_eq!(values(&argv(&spec()), "-accel"), ["kvm"]);
        let tcg = QemuSpec {
            accel: Accel::Tcg,
            cpu: "max".into(),
            ..spec()
        };
        assert_eq!(values(&argv(&tcg), "-accel"), ["tcg,thread=multi"]);
    }

    #[test]
    fn shared_memory_backend() {
        let a = argv(&spec());
        assert_eq!(
            values(&a, "-machine"),
            ["q35,memory-backend=mem,sata=off,smbus=off"]
        );
        assert_eq!(
            values(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=2048M,share=on"]
        );
        assert_eq!(values(&a, "-m"), ["2048M"]);
    }

    #[test]
    fn direct_kernel_boot() {
        let a = argv(&spec());
        assert_eq!(values(&a, "-kernel"), ["/run/bcvk/vmlinuz"]);
        assert_eq!(values(&a, "-initrd"), ["/run/bcvk/initrd.img"]);
        assert_eq!(
            values(&a, "-append"),
            ["rootfstype=virtiofs root=root console=ttyS0"]
        );
        let no_initrd = argv(&QemuSpec {
            boot: BootSpec::Kernel {
                kernel: "/k".into(),
                initrd: None,
                cmdline: vec!["a=1,2".into()],
            },
            ..spec()
        });
        assert!(values(&no_initrd, "-initrd").is_empty());
        // Not option-parsed by QEMU: commas stay single.
        assert_eq!(values(&no_initrd, "-append"), ["a=1,2"]);
    }

    #[test]
    fn shares_root_first_chardev_before_device() {
        let s = QemuSpec {
            extra_shares: vec![VirtiofsShare {
                tag: "mnt-work".into(),
                socket: "/run/bcvk/a,b.sock".into(),
            }],
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-chardev")[..2],
            [
                "socket,id=vfs0,path=/run/bcvk/root.sock",
                "socket,id=vfs1,path=/run/bcvk/a,,b.sock"
            ]
        );
        let devs: Vec<_> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("vhost-user-fs-pci"))
            .collect();
        assert_eq!(
            devs,
            [
                "vhost-user-fs-pci,chardev=vfs0,tag=root,queue-size=1024",
                "vhost-user-fs-pci,chardev=vfs1,tag=mnt-work,queue-size=1024"
            ]
        );
        for i in 0..2 {
            let chardev = a
                .iter()
                .position(|x| x.contains(&format!("id=vfs{i},")))
                .unwrap();
            let device = a
                .iter()
                .position(|x| x.contains(&format!("chardev=vfs{i},")))
                .unwrap();
            assert!(chardev < device);
        }
    }

    #[test]
    fn user_network() {
        let s = QemuSpec {
            net: NetSpec::User {
                forwards: vec![
                    PortForward {
                        host_addr: Some(Ipv4Addr::LOCALHOST),
                        port: PortSpec {
                            host_port: 2222,
                            guest_port: 22,
                        },
                    },
                    PortForward {
                        host_addr: None,
                        port: PortSpec {
                            host_port: 8080,
                            guest_port: 80,
                        },
                    },
                ],
                restrict: true,
            },
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-netdev"),
            ["user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp::8080-:80"]
        );
        assert!(values(&a, "-device").contains(&"virtio-net-pci,netdev=net0,romfile="));

        let open = argv(&QemuSpec {
            net: NetSpec::User {
                forwards: vec![],
                restrict: false,
            },
            ..spec()
        });
        assert_eq!(values(&open, "-netdev"), ["user,id=net0"]);
    }

    #[test]
    fn no_network_means_no_nic() {
        let a = argv(&spec());
        assert!(values(&a, "-netdev").is_empty());
        assert!(!a.iter().any(|x| x.contains("virtio-net")));
    }

    #[test]
    fn smbios_passed_verbatim() {
        let creds = [crate::credentials::hostname_credential("vm").unwrap()];
        let s = QemuSpec {
            smbios: crate::credentials::smbios_args(&creds),
            ..spec()
        };
        assert_eq!(
            values(&argv(&s), "-smbios"),
            ["type=11,value=io.systemd.credential.binary:system.hostname=dm0="]
        );
    }

    #[test]
    fn disks() {
        let s = QemuSpec {
            disks: vec![
                DiskSpec {
                    path: "/var/lib/bcvk/swap,1.raw".into(),
                    format: DiskFormat::Raw,
                    serial: "swap0".into(),
                    readonly: false,
                },
                DiskSpec {
                    path: "/images/data.qcow2".into(),
                    format: DiskFormat::Qcow2,
                    serial: "data".into(),
                    readonly: true,
                },
            ],
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-blockdev"),
            [
                "driver=raw,node-name=disk0,file.driver=file,file.filename=/var/lib/bcvk/swap,,1.raw",
                "driver=qcow2,node-name=disk1,file.driver=file,file.filename=/images/data.qcow2,read-only=on",
            ]
        );
        let devs: Vec<_> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("virtio-blk-pci"))
            .collect();
        assert_eq!(
            devs,
            [
                "virtio-blk-pci,drive=disk0,serial=swap0",
                "virtio-blk-pci,drive=disk1,serial=data"
            ]
        );
    }

    #[test]
    fn serial_outs() {
        let s = QemuSpec {
            serial_outs: vec![
                SerialOutSpec {
                    name: "org.bcvk.journal".into(),
                    file: "/run/bcvk/journal,log".into(),
                },
                SerialOutSpec {
                    name: "status".into(),
                    file: "/run/bcvk/status".into(),
                },
            ],
            ..spec()
        };
        let a = argv(&s);
        let devs = values(&a, "-device");
        assert_eq!(
            devs.iter()
                .filter(|d| d.starts_with("virtio-serial-pci"))
                .count(),
            1
        );
        assert_eq!(
            values(&a, "-chardev")[1..3],
            [
                "file,id=vport0,path=/run/bcvk/journal,,log",
                "file,id=vport1,path=/run/bcvk/status"
            ]
        );
        let ports: Vec<_> = devs
            .into_iter()
            .filter(|d| d.starts_with("virtserialport"))
            .collect();
        assert_eq!(
            ports,
            [
                "virtserialport,bus=vser0.0,chardev=vport0,name=org.bcvk.journal",
                "virtserialport,bus=vser0.0,chardev=vport1,name=status"
            ]
        );
        assert!(pos(&a, "virtio-serial-pci,id=vser0") < pos(&a, ports[0]));
        // None requested: no controller either.
        assert!(!argv(&spec()).iter().any(|x| x.contains("virtio-serial")));
    }

    #[test]
    fn console() {
        let a = argv(&spec());
        assert!(values(&a, "-chardev").contains(&"stdio,id=console,signal=off"));
        assert_eq!(values(&a, "-serial"), ["chardev:console"]);
        assert!(!a
            .iter()
            .any(|x| x.contains("mux=on") || x == "-monitor" || x == "-mon"));

        let i = argv(&QemuSpec {
            console: ConsoleSpec::Stdio { interactive: true },
            ..spec()
        });
        // mux=on for the Ctrl-a x escape, but still no monitor behind it.
        assert!(values(&i, "-chardev").contains(&"stdio,id=console,mux=on,signal=off"));
        assert_eq!(values(&i, "-serial"), ["chardev:console"]);
        assert!(!i.iter().any(|x| x == "-monitor" || x == "-mon"));
    }

    #[test]
    fn qmp_and_rng() {
        let a = argv(&QemuSpec {
            qmp_socket: "/run/a,b/qmp.sock".into(),
            ..spec()
        });
        assert_eq!(
            values(&a, "-qmp"),
            ["unix:path=/run/a,,b/qmp.sock,server=on,wait=off"]
        );
        // An '=' in the path must not turn it into an option name.
        let e = argv(&QemuSpec {
            qmp_socket: "/run/wait=on/qmp.sock".into(),
            ..spec()
        });
        assert_eq!(
            values(&e, "-qmp"),
            ["unix:path=/run/wait=on/qmp.sock,server=on,wait=off"]
        );
        assert!(!values(&a, "-device").contains(&"virtio-rng-pci"));
        let r = argv(&QemuSpec {
            rng: true,
            ..spec()
        });
        assert!(values(&r, "-device").contains(&"virtio-rng-pci"));
    }

    #[test]
    fn non_utf8_paths_escaped_bytewise() {
        let s = QemuSpec {
            qmp_socket: PathBuf::from(OsString::from_vec(b"/r/\xff,q".to_vec())),
            ..spec()
        };
        let a = qemu_args_for(Arch::X86_64, &s);
        let i = a.iter().position(|x| x == "-qmp").unwrap();
        assert_eq!(
            a[i + 1].clone().into_vec(),
            b"unix:path=/r/\xff,,q,server=on,wait=off".to_vec()
        );
    }

    fn disk_root(boot: BootSpec) -> QemuSpec {
        QemuSpec {
            root: RootDevice::Disk(DiskSpec {
                path: "/run/bcvk/disks/root-overlay.qcow2".into(),
                format: DiskFormat::Qcow2,
                serial: "bcvk-root".into(),
                readonly: false,
            }),
            boot,
            disks: vec![DiskSpec {
                path: "/run/bcvk/seed/cidata.img".into(),
                format: DiskFormat::Raw,
                serial: "cidata".into(),
                readonly: true,
            }],
            fw_cfg: vec![FwCfgFile {
                name: "opt/com.coreos/config".into(),
                file: "/run/bcvk/seed/ign,ition.json".into(),
            }],
            ..spec()
        }
    }

    #[test]
    fn uefi_boot_of_a_disk_root() {
        let s = disk_root(BootSpec::Firmware(Firmware::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/run/bcvk/disks/uefi-vars.fd".into(),
        }));
        s.validate().unwrap();
        let a = argv(&s);
        assert!(values(&a, "-kernel").is_empty() && values(&a, "-append").is_empty());
        assert_eq!(
            values(&a, "-drive"),
            [
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                "if=pflash,format=raw,unit=1,file=/run/bcvk/disks/uefi-vars.fd"
            ]
        );
        assert_eq!(values(&a, "-boot"), ["strict=on,reboot-timeout=0"]);
        // The root disk first and alone in the boot order, then the seed, read-only.
        assert_eq!(
            values(&a, "-blockdev"),
            [
                "driver=qcow2,node-name=disk0,file.driver=file,file.filename=/run/bcvk/disks/root-overlay.qcow2",
                "driver=raw,node-name=disk1,file.driver=file,file.filename=/run/bcvk/seed/cidata.img,read-only=on"
            ]
        );
        let devices = values(&a, "-device");
        assert!(devices.contains(&"virtio-blk-pci,drive=disk0,serial=bcvk-root,bootindex=0"));
        assert!(devices.contains(&"virtio-blk-pci,drive=disk1,serial=cidata"));
        // No virtiofs share for the root.
        assert!(!devices.iter().any(|d| d.starts_with("vhost-user-fs-pci")));
        assert_eq!(
            values(&a, "-fw_cfg"),
            ["name=opt/com.coreos/config,file=/run/bcvk/seed/ign,,ition.json"]
        );
    }

    #[test]
    fn bios_boot_has_no_flash() {
        let s = disk_root(BootSpec::Firmware(Firmware::Bios));
        s.validate().unwrap();
        let a = argv(&s);
        assert!(values(&a, "-drive").is_empty());
        assert_eq!(values(&a, "-boot"), ["strict=on,reboot-timeout=0"]);
    }

    #[test]
    fn firmware_needs_a_disk_and_fw_cfg_names_are_checked() {
        let bad = QemuSpec {
            boot: BootSpec::Firmware(Firmware::Bios),
            ..spec()
        };
        assert!(matches!(
            bad.validate(),
            Err(QemuError::FirmwareWithoutDisk("bios"))
        ));
        for name in ["com.coreos/config", &format!("opt/{}", "x".repeat(60))] {
            let mut s = disk_root(BootSpec::Firmware(Firmware::Bios));
            s.fw_cfg[0].name = name.to_string();
            assert!(matches!(s.validate(), Err(QemuError::InvalidFwCfgName(_))));
        }
        let mut twice = disk_root(BootSpec::Firmware(Firmware::Bios));
        twice.fw_cfg.push(twice.fw_cfg[0].clone());
        assert!(matches!(
            twice.validate(),
            Err(QemuError::InvalidFwCfgName(_))
        ));
        // The root disk's serial counts against the others.
        let mut dup = disk_root(BootSpec::Firmware(Firmware::Bios));
        dup.disks[0].serial = "bcvk-root".into();
        assert!(matches!(
            dup.validate(),
            Err(QemuError::DuplicateDiskSerial(_))
        ));
    }
}
