//! The QEMU command line: user-supplied paths and names cannot break out of the option
//! value they are put in, and each share's chardev comes before the device using it.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use bcvk::arch::Arch;
use bcvk::qemu::{
    qemu_args, Accel, BootSpec, ConsoleSpec, DiskFormat, DiskSpec, Firmware, FwCfgFile, NetSpec,
    PortForward, PortSpec, QemuSpec, RootDevice, SerialOutSpec, VirtiofsShare,
};
use proptest::prelude::*;

use crate::{assert_one_line, cases, qemu_opts, Opts};

/// Paths as the user may pass them: any bytes but NUL, with plenty of commas and
/// QEMU-meaningful characters.
fn path() -> impl Strategy<Value = PathBuf> {
    let byte = prop_oneof![
        3 => prop::sample::select(&b",=/:. "[..]),
        3 => b'a'..=b'z',
        1 => 1..=255u8,
    ];
    prop::collection::vec(byte, 0..40).prop_map(|mut bytes| {
        bytes.insert(0, b'/');
        PathBuf::from(OsString::from_vec(bytes))
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9,=:._-]{0,12}",
        1 => any::<String>(),
    ]
}

fn share() -> impl Strategy<Value = VirtiofsShare> {
    (text(), path()).prop_map(|(tag, socket)| VirtiofsShare { tag, socket })
}

fn disk() -> impl Strategy<Value = DiskSpec> {
    (path(), any::<bool>(), text(), any::<bool>()).prop_map(|(path, qcow2, serial, readonly)| {
        DiskSpec {
            path,
            format: if qcow2 {
                DiskFormat::Qcow2
            } else {
                DiskFormat::Raw
            },
            serial,
            readonly,
        }
    })
}

fn spec() -> impl Strategy<Value = QemuSpec> {
    let forward = (
        prop::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(host_addr, host_port, guest_port)| PortForward {
            host_addr,
            port: PortSpec {
                host_port,
                guest_port,
            },
        });
    let net = prop_oneof![
        (prop::collection::vec(forward, 0..4), any::<bool>())
            .prop_map(|(forwards, restrict)| NetSpec::User { forwards, restrict }),
        Just(NetSpec::None),
    ];
    let serial_out = (text(), path()).prop_map(|(name, path)| SerialOutSpec { name, file: path });
    // The kinds of root and boot, each of them.
    let root = prop_oneof![
        share().prop_map(RootDevice::Share),
        disk().prop_map(RootDevice::Disk),
    ];
    let boot = prop_oneof![
        (
            path(),
            prop::option::of(path()),
            prop::collection::vec(text(), 0..3)
        )
            .prop_map(|(kernel, initrd, cmdline)| BootSpec::Kernel {
                kernel,
                initrd,
                cmdline
            }),
        Just(BootSpec::Firmware(Firmware::Bios)),
        (path(), path()).prop_map(|(code, vars)| BootSpec::Firmware(Firmware::Uefi { code, vars })),
    ];
    let fw_cfg = (text(), path()).prop_map(|(name, file)| FwCfgFile { name, file });
    let machine = (
        any::<bool>(),
        prop_oneof![Just("host".to_owned()), Just("max".to_owned()), text()],
        prop_oneof![0..=300u32, any::<u32>()],
        prop_oneof![0..=4096u64, any::<u64>()],
        boot,
        prop::collection::vec(fw_cfg, 0..3),
        prop::collection::vec(text(), 0..3),
        any::<bool>(),
        any::<bool>(),
    );
    (
        machine,
        root,
        prop::collection::vec(share(), 0..4),
        net,
        prop::collection::vec(disk(), 0..4),
        prop::collection::vec(serial_out, 0..3),
        path(),
        prop::sample::select(vec![Arch::X86_64, Arch::Aarch64]),
    )
        .prop_map(
            |(
                (kvm, cpu, vcpus, memory_mib, boot, fw_cfg, smbios, interactive, rng),
                root,
                extra_shares,
                net,
                disks,
                serial_outs,
                qmp_socket,
                arch,
            )| QemuSpec {
                arch,
                accel: if kvm { Accel::Kvm } else { Accel::Tcg },
                cpu,
                vcpus,
                memory_mib,
                root,
                boot,
                extra_shares,
                fw_cfg,
                net,
                smbios,
                disks,
                serial_outs,
                console: ConsoleSpec::Stdio { interactive },
                qmp_socket,
                rng,
            },
        )
}

/// `s` with each comma doubled, written out independently of the code under test.
fn doubled(s: &[u8]) -> Vec<u8> {
    s.iter()
        .flat_map(|&b| if b == b',' { vec![b, b] } else { vec![b] })
        .collect()
}

/// (option, value) pairs of an argv; flags without a value are skipped.
fn options(args: &[OsString]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let name = args[i].to_string_lossy().into_owned();
        if ["-nodefaults", "-no-user-config", "-no-reboot"].contains(&name.as_str()) {
            i += 1;
            continue;
        }
        out.push((name, args[i + 1].as_bytes().to_vec()));
        i += 2;
    }
    out
}

/// The index of the option `name` whose parsed value has `key=value`, and that value
/// parsed. Panics unless there is exactly one.
fn find(opts: &[(String, Vec<u8>)], name: &str, key: &str, value: &str) -> (usize, Opts) {
    let found: Vec<_> = opts
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| n == name)
        .map(|(i, (_, v))| (i, qemu_opts(v)))
        .filter(|(_, kv)| {
            kv.iter()
                .any(|(k, v)| k == key.as_bytes() && v == value.as_bytes())
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} with {key}={value}: {opts:?}");
    found.into_iter().next().unwrap()
}

/// The value of `key` in parsed option `kv`; exactly one.
fn get<'a>(kv: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> &'a [u8] {
    let values: Vec<_> = kv.iter().filter(|(k, _)| k == key.as_bytes()).collect();
    assert_eq!(values.len(), 1, "{key} in {kv:?}");
    &values[0].1
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn user_values_stay_inside_their_option(spec in spec()) {
        // The builder does not need a valid spec to be injection-safe.
        let _ = spec.validate_for(spec.arch).map_err(|err| assert_one_line(&err.to_string()));
        let opts = options(&qemu_args(&spec));
        // One machine, the guest architecture's, whatever else the spec holds.
        let machines: Vec<_> = opts.iter().filter(|(n, _)| n == "-machine").collect();
        prop_assert_eq!(machines.len(), 1);
        let machine = qemu_opts(&machines[0].1);
        prop_assert_eq!(&machine[0].1[..], match spec.arch {
            Arch::X86_64 => &b"q35"[..],
            Arch::Aarch64 => &b"virt"[..],
        });
        prop_assert_eq!(get(&machine, "memory-backend"), b"mem");

        for (i, share) in spec.shares().enumerate() {
            let id = format!("vfs{i}");
            let (chardev_at, chardev) = find(&opts, "-chardev", "id", &id);
            let (device_at, device) = find(&opts, "-device", "chardev", &id);
            prop_assert!(chardev_at < device_at, "{} device before its chardev", id);
            prop_assert_eq!(get(&chardev, "path"), share.socket.as_os_str().as_bytes());
            prop_assert_eq!(get(&device, "tag"), share.tag.as_bytes());
            prop_assert_eq!(chardev.len(), 3);
            prop_assert_eq!(device.len(), 4);
        }
        let root_disk = matches!(spec.root, RootDevice::Disk(_));
        for (i, disk) in spec.all_disks().enumerate() {
            let node = format!("disk{i}");
            let (blockdev_at, blockdev) = find(&opts, "-blockdev", "node-name", &node);
            let (device_at, device) = find(&opts, "-device", "drive", &node);
            prop_assert!(blockdev_at < device_at);
            prop_assert_eq!(get(&blockdev, "file.filename"), disk.path.as_os_str().as_bytes());
            prop_assert_eq!(get(&blockdev, "file.driver"), b"file");
            prop_assert_eq!(blockdev.len(), if disk.readonly { 5 } else { 4 });
            prop_assert_eq!(get(&device, "serial"), disk.serial.as_bytes());
            // Only the root disk is in the boot order.
            if i == 0 && root_disk {
                prop_assert_eq!(get(&device, "bootindex"), b"0");
                prop_assert_eq!(device.len(), 4);
            } else {
                prop_assert_eq!(device.len(), 3);
            }
        }
        let fw: Vec<_> = opts.iter().filter(|(n, _)| n == "-fw_cfg").map(|(_, v)| qemu_opts(v)).collect();
        prop_assert_eq!(fw.len(), spec.fw_cfg.len());
        for (kv, f) in fw.iter().zip(&spec.fw_cfg) {
            prop_assert_eq!(kv.len(), 2);
            prop_assert_eq!(get(kv, "name"), f.name.as_bytes());
            prop_assert_eq!(get(kv, "file"), f.file.as_os_str().as_bytes());
        }
        let pflash: Vec<_> = opts.iter().filter(|(n, _)| n == "-drive").map(|(_, v)| qemu_opts(v)).collect();
        match &spec.boot {
            BootSpec::Firmware(Firmware::Uefi { code, vars }) => {
                prop_assert_eq!(pflash.len(), 2);
                prop_assert_eq!(get(&pflash[0], "file"), code.as_os_str().as_bytes());
                prop_assert_eq!(get(&pflash[0], "readonly"), b"on");
                prop_assert_eq!(get(&pflash[1], "file"), vars.as_os_str().as_bytes());
                prop_assert_eq!(pflash[1].len(), 4);
            }
            _ => prop_assert!(pflash.is_empty()),
        }
        for (i, out) in spec.serial_outs.iter().enumerate() {
            let id = format!("vport{i}");
            let (chardev_at, chardev) = find(&opts, "-chardev", "id", &id);
            let (device_at, device) = find(&opts, "-device", "chardev", &id);
            prop_assert!(chardev_at < device_at);
            prop_assert_eq!(get(&chardev, "path"), out.file.as_os_str().as_bytes());
            prop_assert_eq!(get(&device, "name"), out.name.as_bytes());
            prop_assert_eq!(chardev.len(), 3);
            prop_assert_eq!(device.len(), 4);
        }
        let qmp: Vec<_> = opts.iter().filter(|(n, _)| n == "-qmp").collect();
        prop_assert_eq!(qmp.len(), 1);
        // QEMU reads what follows "unix:" as options whose first piece, unless it
        // holds an '=', is the path.
        let qmp = qmp[0].1.strip_prefix(b"unix:").unwrap();
        let qmp = qemu_opts(qmp);
        prop_assert_eq!(qmp.len(), 3);
        let path = if qmp[0].0.is_empty() { &qmp[0].1[..] } else { get(&qmp, "path") };
        prop_assert_eq!(path, spec.qmp_socket.as_os_str().as_bytes());

        // And the plain statement of it: each path is in its raw option value with
        // every comma doubled.
        for (name, key, id, path) in spec.shares().enumerate()
            .map(|(i, s)| ("-chardev", "id", format!("vfs{i}"), &s.socket))
            .chain(spec.all_disks().enumerate()
                .map(|(i, d)| ("-blockdev", "node-name", format!("disk{i}"), &d.path)))
            .chain(spec.serial_outs.iter().enumerate()
                .map(|(i, s)| ("-chardev", "id", format!("vport{i}"), &s.file)))
        {
            let (at, _) = find(&opts, name, key, &id);
            let escaped = doubled(path.as_os_str().as_bytes());
            prop_assert!(
                opts[at].1.windows(escaped.len()).any(|w| w == escaped.as_slice()),
                "{} {:?} lacks {:?}", name, opts[at].1, escaped
            );
        }
    }
}
