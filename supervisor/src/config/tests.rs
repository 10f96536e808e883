//! Option values: what is accepted, what is refused and how the refusal reads.

use super::*;
use std::path::PathBuf;

const G: u64 = 1024;

#[test]
fn size_mib_good() {
    for (input, want) in [
        ("4G", 4 * G),
        ("4g", 4 * G),
        ("512M", 512),
        ("512m", 512),
        ("2048", 2048),
        ("1.5G", 1536),
        ("0.5G", 512),
        (".5G", 512),
        ("4GiB", 4 * G),
        ("4gib", 4 * G),
        ("4GB", 4 * G),
        ("4096MiB", 4096),
        ("1T", G * G),
        ("16T", 16 * G * G),
        ("1K", 1),
        ("1025K", 2),
        ("1KiB", 1),
        ("1B", 1),
        ("1048576B", 1),
        ("1048577b", 2),
        ("1.0001M", 2),
        // Blanks around the value (a newline from a file or $(...)) are harmless.
        (" 4G ", 4 * G),
        ("4G\n", 4 * G),
        ("4 G", 4 * G),
        ("007", 7),
        ("2.", 2),
    ] {
        assert_eq!(parse_size_mib(input), Ok(want), "{input:?}");
    }
}

#[test]
fn size_mib_bad() {
    for input in [
        "",
        " ",
        "0",
        "0G",
        "0.0M",
        "-1G",
        "-0",
        "4X",
        "G",
        "4GG",
        "4 G B",
        "1.2.3G",
        "1,5G",
        "+4G",
        "0x10",
        "4e3",
        "17T",
        "16385G",
        "16.0001T",
        "99999999999999999999999G",
        "1.0000000000000000000001G",
        "4\nG",
        "four",
        "∞",
        ".",
        "4Gi",
        "4iB",
    ] {
        assert!(parse_size_mib(input).is_err(), "{input:?} was accepted");
    }
}

#[test]
fn size_bytes() {
    for (input, want) in [
        ("2048", 2048 * MIB),
        ("10G", 10 << 30),
        ("1.5K", 1536),
        ("1.1K", 1127), // 1126.4 rounds up
        ("512B", 512),
        ("16TiB", 16 << 40),
    ] {
        assert_eq!(parse_size_bytes(input), Ok(want), "{input:?}");
    }
    for input in ["0", "0B", "-5G", "12Q", "17T"] {
        assert!(parse_size_bytes(input).is_err(), "{input:?} was accepted");
    }
}

#[test]
fn size_error_message() {
    let err = parse_size_mib("4X").unwrap_err().for_flag("--memory");
    let msg = err.to_string();
    assert!(
        msg.starts_with("invalid size '4X' for --memory: use a number with an optional unit"),
        "{msg}"
    );
    assert!(msg.contains("512M, 4G or 2048 (MiB)"), "{msg}");
    assert!(!msg.contains('\n'));
    let msg = parse_size_mib("-1G").unwrap_err().to_string();
    assert!(
        msg.starts_with("invalid size '-1G': sizes cannot be negative"),
        "{msg}"
    );
    let msg = parse_size_mib("0").unwrap_err().to_string();
    assert!(msg.contains("more than 0"), "{msg}");
    let msg = parse_size_mib("17T").unwrap_err().to_string();
    assert!(msg.contains("16T"), "{msg}");
}

#[test]
fn error_display_is_one_short_line() {
    let msg = parse_size_mib(&format!("4\n{}", "9".repeat(500)))
        .unwrap_err()
        .to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("'4\\n999"), "{msg}");
    assert!(msg.len() < 400, "{msg}");
}

#[test]
fn instance_types() {
    for (input, name, vcpus, memory_mib) in [
        ("u1.nano", "u1.nano", 1, 512),
        ("nano", "u1.nano", 1, 512),
        ("u1.micro", "u1.micro", 1, G),
        ("small", "u1.small", 1, 2 * G),
        ("U1.Small", "u1.small", 1, 2 * G),
        ("u1.medium", "u1.medium", 1, 4 * G),
        ("2xmedium", "u1.2xmedium", 2, 4 * G),
        ("u1.large", "u1.large", 2, 8 * G),
        ("xlarge", "u1.xlarge", 4, 16 * G),
        ("u1.2xlarge", "u1.2xlarge", 8, 32 * G),
        ("4xlarge", "u1.4xlarge", 16, 64 * G),
        ("u1.8xlarge", "u1.8xlarge", 32, 128 * G),
    ] {
        let t = parse_instance_type(input).unwrap();
        assert_eq!(
            (t.name, t.vcpus, t.memory_mib),
            (name, vcpus, memory_mib),
            "{input}"
        );
    }
    assert_eq!(INSTANCE_TYPES.len(), 10);
    assert_eq!(parse_instance_type(" u1.small ").unwrap().name, "u1.small");
    for input in ["", "u1.", "u2.small", "huge", "u1small", "u1.small.x"] {
        let msg = parse_instance_type(input).unwrap_err().to_string();
        assert!(msg.contains("u1.nano, u1.micro"), "{msg}");
        assert!(msg.contains("u1.8xlarge"), "{msg}");
    }
}

#[test]
fn ports() {
    for (input, host, guest) in [
        ("8080:80", 8080, 80),
        ("8080", 8080, 8080),
        ("1:65535", 1, 65535),
        ("2222:22", 2222, 22),
        ("00080:22", 80, 22),
    ] {
        let p: PortSpec = input.parse().unwrap();
        assert_eq!(
            p,
            PortSpec {
                host_port: host,
                guest_port: guest
            },
            "{input}"
        );
    }
    assert_eq!(
        PortSpec {
            host_port: 8080,
            guest_port: 80
        }
        .to_string(),
        "8080:80"
    );
    for input in [
        "",
        ":",
        "8080:",
        ":80",
        "0",
        "0:80",
        "80:0",
        "65536",
        "8080:70000",
        "1:2:3",
        "+80",
        "-80",
        " 80",
        "80 ",
        "http",
        "8080/tcp",
        "999999",
        "80:8o",
    ] {
        assert!(input.parse::<PortSpec>().is_err(), "{input:?} was accepted");
    }
    let msg = "70000".parse::<PortSpec>().unwrap_err().to_string();
    assert!(
        msg.contains("out of range") && msg.contains("1 to 65535"),
        "{msg}"
    );
}

#[test]
fn binds_good() {
    let named = |n: &str| BindTarget::Named(n.to_string());
    let path = |p: &str| BindTarget::Path(PathBuf::from(p));
    for (input, source, target) in [
        ("/data", "/data", named("data")),
        ("/srv/my data!", "/srv/my data!", named("my_data_")),
        ("/srv/v1.2-x_y", "/srv/v1.2-x_y", named("v1.2-x_y")),
        ("/srv/data/", "/srv/data/", named("data")),
        ("/data:src", "/data", named("src")),
        ("/data:/mnt/data", "/data", path("/mnt/data")),
        ("/data:/mnt//data/./x/", "/data", path("/mnt/data/x")),
        ("/data:/var/lib/data", "/data", path("/var/lib/data")),
        ("/data:/run/data", "/data", path("/run/data")),
        ("/data:/home/user/data", "/data", path("/home/user/data")),
        ("/data:/usrdata", "/data", path("/usrdata")),
    ] {
        let spec = parse_bind(input, true).unwrap();
        assert_eq!(
            spec,
            BindSpec {
                source: PathBuf::from(source),
                target,
                readonly: true
            },
            "{input}"
        );
    }
    assert!(!parse_bind("/data", false).unwrap().readonly);
    let long = format!("/srv/{}", "a".repeat(40));
    assert_eq!(
        parse_bind(&long, false).unwrap().target,
        named(&"a".repeat(30))
    );
}

#[test]
fn binds_bad() {
    for (input, why) in [
        ("", "absolute"),
        ("data", "absolute"),
        ("./data", "absolute"),
        ("data:/mnt/x", "absolute"),
        ("/", "no mount name"),
        ("/data:", "nothing follows"),
        ("/data:bad name", "mount name"),
        ("/data:a/b", "mount name"),
        (&format!("/data:{}", "n".repeat(31)), "mount name"),
        ("/data:/", "whole root"),
        ("/data://", "whole root"),
        ("/data:/.", "whole root"),
        ("/data:/mnt/../etc", "'..'"),
        ("/data:/usr", "/usr is reserved"),
        ("/data:/usr/share/x", "/usr is reserved"),
        ("/data:/etc/foo", "/etc is reserved"),
        ("/data:/proc", "/proc is reserved"),
        ("/data:/sys/fs", "/sys is reserved"),
        ("/data:/dev", "/dev is reserved"),
        ("/data:/boot", "/boot is reserved"),
        ("/data:/sysroot", "/sysroot is reserved"),
        ("/data:/lib/modules", "/lib is reserved"),
        ("/data:/run", "/run itself"),
        ("/data:/var/", "/var itself"),
        ("/da\nta", "control"),
    ] {
        let msg = match parse_bind(input, false) {
            Ok(spec) => panic!("{input:?} was accepted as {spec:?}"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(why), "{input:?}: {msg}");
        assert!(msg.starts_with("invalid bind mount '"), "{msg}");
    }
}

#[test]
fn disks() {
    use DiskFormat::*;
    for (input, path, name, format) in [
        ("/disks/data.img", "/disks/data.img", "data", Raw),
        ("/disks/data.qcow2", "/disks/data.qcow2", "data", Qcow2),
        ("/disks/data.QCOW2", "/disks/data.QCOW2", "data", Qcow2),
        ("/disks/data", "/disks/data", "data", Raw),
        ("/disks/data.img:db", "/disks/data.img", "db", Raw),
        ("/disks/data.img:db:qcow2", "/disks/data.img", "db", Qcow2),
        ("/disks/data.qcow2:db:raw", "/disks/data.qcow2", "db", Raw),
        ("/disks/data.qcow2::RAW", "/disks/data.qcow2", "data", Raw),
        ("/disks/x.qcow2:db:", "/disks/x.qcow2", "db", Qcow2),
        ("/d/my disk.v2.img", "/d/my disk.v2.img", "my_disk_v2", Raw),
        (
            "/d/abcdefghijklmnopqrstuvwxyz.raw",
            "/d/abcdefghijklmnopqrstuvwxyz.raw",
            "abcdefghijklmnopqrst",
            Raw,
        ),
        ("rel/data.img", "rel/data.img", "data", Raw),
    ] {
        let spec: DiskFileSpec = input.parse().unwrap();
        assert_eq!(
            spec,
            DiskFileSpec {
                path: PathBuf::from(path),
                name: name.to_string(),
                format
            },
            "{input}"
        );
    }
    for input in [
        "",
        ":db",
        "/",
        "/d/x.img:db:vmdk",
        "/d/x.img:bad.name",
        "/d/x.img:abcdefghijklmnopqrstu",
        "/d/x.img:a:raw:extra",
        "/d/x\n.img",
    ] {
        assert!(
            input.parse::<DiskFileSpec>().is_err(),
            "{input:?} was accepted"
        );
    }
}

#[test]
fn serial_outputs() {
    for (input, name, file) in [
        ("log:/var/log/guest.log", "log", "/var/log/guest.log"),
        ("org.example.log_1-x:/out", "org.example.log_1-x", "/out"),
        ("n:/a:b", "n", "/a:b"),
    ] {
        let spec: SerialOutSpec = input.parse().unwrap();
        assert_eq!(
            spec,
            SerialOutSpec {
                name: name.to_string(),
                file: PathBuf::from(file)
            },
            "{input}"
        );
    }
    let long = format!("{}:/out", "n".repeat(65));
    for input in [
        "",
        "log",
        ":/out",
        "log:",
        "log:out.txt",
        "bad name:/out",
        "a/b:/out",
        &long,
        "log:/o\nut",
    ] {
        assert!(
            input.parse::<SerialOutSpec>().is_err(),
            "{input:?} was accepted"
        );
    }
}

#[test]
fn kargs() {
    for input in [
        "console=ttyS0",
        "quiet",
        "systemd.unit=rescue.target",
        "key=\"a b\"",
        "\"key=a b\"",
        "rd.break=pre-mount",
        "x=é",
    ] {
        assert_eq!(parse_karg(input).as_deref(), Ok(input), "{input}");
    }
    let long = "a".repeat(2049);
    for input in [
        "",
        " ",
        "a b",
        "quiet ",
        "a=\"b",
        "a\nb",
        "a=\"b\nc\"",
        "a\tb",
        "a=\"b\tc\"",
        "\0",
        &long,
    ] {
        assert!(parse_karg(input).is_err(), "{input:?} was accepted");
    }
    let msg = parse_karg("a\nb").unwrap_err().to_string();
    assert!(
        msg.starts_with("invalid kernel argument 'a\\nb': newlines"),
        "{msg}"
    );
}

#[test]
fn hostnames() {
    let label63 = "a".repeat(63);
    for input in [
        "vm",
        "my-vm",
        "VM1",
        "vm1.example.com",
        "1",
        "a-b-c",
        label63.as_str(),
    ] {
        assert_eq!(parse_hostname(input).as_deref(), Ok(input), "{input}");
    }
    let label64 = "a".repeat(64);
    let total65 = format!("{}.{}", "a".repeat(32), "b".repeat(32));
    for input in [
        "",
        "-vm",
        "vm-",
        "my_vm",
        "my vm",
        "vm.",
        ".vm",
        "a..b",
        "vm.-x",
        "é",
        label64.as_str(),
        total65.as_str(),
        "vm\n",
    ] {
        assert!(parse_hostname(input).is_err(), "{input:?} was accepted");
    }
}
