//! `--log-dir [STREAMS=]DIR` (upstream bcvk's option): the guest's journal and its console as
//! files in DIR, a directory of the container (the host command mounts the host's there).
//! STREAMS is `journal`, `console` or both (`journal,console`); a bare DIR means both.
//!
//! - `journal.json`: the guest's journal as `journalctl -o json` writes it, one object a line,
//!   from the boot's first message (`__SEQNUM` 1: the initrd's journal is carried over into the
//!   real root's), streamed over the virtio-serial port [`JOURNAL_PORT`] by a unit on the real
//!   root. `guestfs` installs that unit in every guest it configures, wanted by the port's
//!   device unit alone: without the port it never starts. It needs nothing in the image but
//!   systemd and journalctl, and no vsock (absent on GitHub's runners).
//! - `journal-initrd.json`: the same, streamed from inside the initrd over [`INITRD_PORT`] until
//!   the switch to the real root: what there is to read when the boot never leaves the initrd.
//!   The unit travels in a small cpio archive put before a copy of the initrd
//!   ([`initrd_with_stream`]). Empty when the image boots without an initrd.
//! - `console.txt`: the serial console as the console pump reads it (not with `--console`,
//!   where the terminal has it); `console.log`, bcvk's earlier name, links to it.
//!
//! The journal travels as ports like any `--virtio-serial-out` ([`serial_outs`]), so the plan
//! and the QEMU spec need nothing more for it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::SerialOutSpec;
use crate::guestfs::{escape_path, Entry};

/// The virtio-serial port the real root's journal is streamed to.
pub const JOURNAL_PORT: &str = "org.bcvk.journal";
/// The port the initrd's journal is streamed to.
pub const INITRD_PORT: &str = "org.bcvk.journal.initrd";
pub const JOURNAL_FILE: &str = "journal.json";
pub const INITRD_FILE: &str = "journal-initrd.json";
pub const CONSOLE_FILE: &str = "console.txt";
/// bcvk's earlier name for the console file: a link to [`CONSOLE_FILE`].
pub const CONSOLE_LINK: &str = "console.log";
const UNIT: &str = "bcvk-journal.service";
const INITRD_UNIT: &str = "bcvk-journal-initrd.service";

/// `--log-dir`'s value: the directory and the streams written into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    pub dir: PathBuf,
    pub journal: bool,
    pub console: bool,
}

impl LogDir {
    pub fn console_file(&self) -> Option<PathBuf> {
        self.console.then(|| self.dir.join(CONSOLE_FILE))
    }
}

/// `[STREAMS=]DIR`: STREAMS a comma-separated list of `journal` and `console` (upstream's
/// form); without it, both. DIR must be absolute (a directory of the container).
pub fn parse_log_dir(value: &str) -> Result<LogDir, String> {
    let (mut journal, mut console) = (true, true);
    let mut dir = value;
    if let Some((streams, rest)) = value.split_once('=') {
        if !streams.starts_with('/') {
            (journal, console) = (false, false);
            for s in streams.split(',') {
                match s {
                    "journal" => journal = true,
                    "console" => console = true,
                    other => {
                        return Err(format!(
                            "'{value}': unknown stream '{other}': STREAMS is journal, console or journal,console"
                        ))
                    }
                }
            }
            dir = rest;
        }
    }
    if !dir.starts_with('/') {
        return Err(format!(
            "'{dir}': an absolute directory of the container is needed (the host command mounts a host directory there)"
        ));
    }
    Ok(LogDir {
        dir: PathBuf::from(dir),
        journal,
        console,
    })
}

/// The ports that carry the journal streams (none without `journal`).
pub fn serial_outs(log: &LogDir) -> Vec<SerialOutSpec> {
    if !log.journal {
        return vec![];
    }
    [(JOURNAL_PORT, JOURNAL_FILE), (INITRD_PORT, INITRD_FILE)]
        .into_iter()
        .map(|(name, file)| SerialOutSpec {
            name: name.into(),
            file: log.dir.join(file),
        })
        .collect()
}

/// A unit that streams the whole journal of this boot as JSON to `port`, started by the
/// port's device. `--lines=all` from the boot's start: journalctl -f alone shows only the last
/// ten lines. Not restarted: a second run would repeat the boot's journal.
fn stream_unit(port_name: &str, what: &str) -> (String, String) {
    let port = Path::new("/dev/virtio-ports").join(port_name);
    let device = format!("{}.device", escape_path(&port));
    let body = format!(
        "# Written by bcvk: --log-dir's journal stream; runs only when the port exists.\n\
         [Unit]\n\
         Description=bcvk: the {what} journal to the host (--log-dir)\n\
         DefaultDependencies=no\n\
         BindsTo={device}\n\
         After={device} systemd-journald.service\n\
         \n\
         [Service]\n\
         ExecStart=/usr/bin/journalctl --boot --follow --lines=all --output=json\n\
         StandardOutput=file:{port}\n\
         StandardError=journal\n",
        port = port.display(),
    );
    (device, body)
}

fn unit_entries(unit_dir: &Path, name: &str, device: &str, body: String) -> Vec<Entry> {
    vec![
        Entry::File {
            path: unit_dir.join(name),
            contents: body.into_bytes(),
        },
        Entry::Symlink {
            path: unit_dir.join(format!("{device}.wants")).join(name),
            target: Path::new("/").join(unit_dir).join(name),
        },
    ]
}

/// The real root's stream unit and the link that has the port's device start it.
pub fn guest_entries(unit_dir: &Path) -> Vec<Entry> {
    let (device, body) = stream_unit(JOURNAL_PORT, "guest's");
    unit_entries(unit_dir, UNIT, &device, body)
}

/// The initrd's stream unit, for the cpio archive put before the initrd. Wanted by
/// sysinit.target, it finds the port through sysfs itself: in Debian's dracut initrd the
/// port's /dev/virtio-ports link (and so its device unit, which starts the real root's unit)
/// never appeared. (`$$`: systemd expands `$` in ExecStart= itself.)
pub fn initrd_entries(unit_dir: &Path) -> Vec<Entry> {
    let body = format!(
        "# Written by bcvk: --log-dir's journal stream from the initrd.\n\
         [Unit]\n\
         Description=bcvk: the initrd's journal to the host (--log-dir)\n\
         DefaultDependencies=no\n\
         After=systemd-journald.service\n\
         ConditionPathExists=/etc/initrd-release\n\
         \n\
         [Service]\n\
         ExecStart=/bin/sh -c 'while :; do for p in /sys/class/virtio-ports/*; do \
         [ \"$$(cat $$p/name 2>/dev/null)\" = {INITRD_PORT} ] && \
         exec journalctl --boot --follow --lines=all --output=json >/dev/$${{p##*/}}; \
         done; sleep 0.5; done'\n\
         StandardError=journal\n"
    );
    vec![
        Entry::File {
            path: unit_dir.join(INITRD_UNIT),
            contents: body.into_bytes(),
        },
        Entry::Symlink {
            path: unit_dir.join("sysinit.target.wants").join(INITRD_UNIT),
            target: Path::new("/").join(unit_dir).join(INITRD_UNIT),
        },
    ]
}

/// A `newc` cpio archive of `entries` (paths relative to the root), with their parent
/// directories first: the kernel's unpacker creates no missing parents.
pub fn cpio(entries: &[Entry]) -> Vec<u8> {
    fn header(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
        out.extend_from_slice(b"070701");
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let namesize = name.len() as u32 + 1;
        for v in [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            namesize,
            0,
        ] {
            out.extend_from_slice(format!("{v:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut ino = 1;
    for e in entries {
        let (path, mode, data) = match e {
            Entry::File { path, contents } => (path, 0o100644, contents.clone()),
            Entry::Symlink { path, target } => (
                path,
                0o120777,
                target.as_os_str().as_encoded_bytes().to_vec(),
            ),
        };
        for parent in path
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let p = parent.to_string_lossy().into_owned();
            if !p.is_empty() && !dirs.contains(&p) {
                header(&mut out, ino, 0o040755, &p, &[]);
                ino += 1;
                dirs.push(p);
            }
        }
        header(&mut out, ino, mode, &path.to_string_lossy(), &data);
        ino += 1;
    }
    header(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

/// `initrd` at `dest` behind a cpio archive of the initrd's stream unit. The kernel unpacks
/// concatenated archives in turn; the uncompressed one goes first, as early microcode does,
/// so that nothing depends on where a compressed image's decompressor stops reading.
pub fn initrd_with_stream(initrd: &Path, dest: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(dest)?;
    // Every record is padded to 4 bytes, so the image that follows starts aligned.
    f.write_all(&cpio(&initrd_entries(Path::new("etc/systemd/system"))))?;
    std::io::copy(&mut std::fs::File::open(initrd)?, &mut f)?;
    Ok(())
}

/// Create DIR, the stream files (so that journal-initrd.json is there even when the image boots
/// without an initrd) and console.log's link.
pub fn prepare(log: &LogDir) -> std::io::Result<()> {
    std::fs::create_dir_all(&log.dir)?;
    for p in serial_outs(log) {
        std::fs::File::create(&p.file)?;
    }
    if log.console {
        let link = log.dir.join(CONSOLE_LINK);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.is_symlink() || m.is_file() => std::fs::remove_file(&link)?,
            _ => {}
        }
        std::os::unix::fs::symlink(CONSOLE_FILE, &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_directory_or_upstreams_streams_prefix() {
        for (value, dir, journal, console) in [
            ("/logs", "/logs", true, true),
            ("journal=/logs", "/logs", true, false),
            ("console=/logs", "/logs", false, true),
            ("journal,console=/logs/run-1", "/logs/run-1", true, true),
            ("console,journal=/a=b", "/a=b", true, true),
            ("/a=b", "/a=b", true, true),
        ] {
            assert_eq!(
                parse_log_dir(value).unwrap(),
                LogDir {
                    dir: dir.into(),
                    journal,
                    console
                },
                "{value}"
            );
        }
        for bad in [
            "",
            "journal=",
            "logs",
            "journal=logs",
            "serial=/logs",
            "=/logs",
        ] {
            assert!(parse_log_dir(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_ports_carry_the_journal_files() {
        let log = parse_log_dir("/logs").unwrap();
        let s: Vec<_> = serial_outs(&log)
            .into_iter()
            .map(|s| (s.name, s.file))
            .collect();
        assert_eq!(
            s,
            [
                (JOURNAL_PORT.into(), PathBuf::from("/logs/journal.json")),
                (
                    INITRD_PORT.into(),
                    PathBuf::from("/logs/journal-initrd.json")
                ),
            ]
        );
        assert_eq!(log.console_file(), Some("/logs/console.txt".into()));
        let console_only = parse_log_dir("console=/logs").unwrap();
        assert!(serial_outs(&console_only).is_empty());
        assert_eq!(parse_log_dir("journal=/l").unwrap().console_file(), None);
    }

    #[test]
    fn the_units_stream_json_and_are_started_by_their_port_alone() {
        let e = guest_entries(Path::new("etc/systemd/system"));
        let Entry::File { path, contents } = &e[0] else {
            panic!("{e:?}")
        };
        let unit = String::from_utf8_lossy(contents);
        assert_eq!(path, Path::new("etc/systemd/system/bcvk-journal.service"));
        assert!(unit.contains("BindsTo=dev-virtio\\x2dports-org.bcvk.journal.device\n"));
        assert!(unit.contains("StandardOutput=file:/dev/virtio-ports/org.bcvk.journal\n"));
        assert!(unit.contains("--lines=all --output=json\n"));
        assert!(!unit.contains("[Install]"));
        assert_eq!(
            e[1],
            Entry::Symlink {
                path: "etc/systemd/system/dev-virtio\\x2dports-org.bcvk.journal.device.wants/bcvk-journal.service".into(),
                target: "/etc/systemd/system/bcvk-journal.service".into(),
            }
        );
        let i = initrd_entries(Path::new("etc/systemd/system"));
        let Entry::File { contents, .. } = &i[0] else {
            panic!("{i:?}")
        };
        assert!(String::from_utf8_lossy(contents)
            .contains("= org.bcvk.journal.initrd ] && exec journalctl --boot --follow --lines=all --output=json >/dev/$${p##*/};"));
    }

    /// The archive read back the way the kernel does: 110-byte headers, name and data each
    /// padded to 4 bytes, parents before children, a trailer.
    #[test]
    fn the_cpio_archive_is_newc_with_parents_first() {
        let a = cpio(&initrd_entries(Path::new("etc/systemd/system")));
        let mut at = 0;
        let mut seen = Vec::new();
        loop {
            assert_eq!(&a[at..at + 6], b"070701", "at {at}");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[at + 6 + 8 * i..][..8]).unwrap(), 16)
                    .unwrap() as usize
            };
            let (mode, size, namesize) = (field(1), field(6), field(11));
            let name = std::str::from_utf8(&a[at + 110..at + 110 + namesize - 1]).unwrap();
            assert_eq!(a[at + 110 + namesize - 1], 0);
            let data_at = (at + 110 + namesize).next_multiple_of(4);
            let data = &a[data_at..data_at + size];
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
            seen.push((name.to_string(), mode & 0o170000, data.to_vec()));
        }
        assert_eq!(at, a.len());
        let names: Vec<_> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/systemd",
                "etc/systemd/system",
                "etc/systemd/system/bcvk-journal-initrd.service",
                "etc/systemd/system/sysinit.target.wants",
                "etc/systemd/system/sysinit.target.wants/bcvk-journal-initrd.service",
            ]
        );
        assert_eq!(seen[2].1, 0o040000);
        assert_eq!(seen[3].1, 0o100000);
        assert!(String::from_utf8_lossy(&seen[3].2).contains("journalctl"));
        assert_eq!(seen[5].1, 0o120000);
        assert_eq!(
            seen[5].2,
            b"/etc/systemd/system/bcvk-journal-initrd.service"
        );
    }

    #[test]
    fn the_initrd_copy_starts_with_the_archive_and_ends_with_the_image() {
        let d = tempfile::tempdir().unwrap();
        let (src, dest) = (d.path().join("initrd"), d.path().join("initrd-log"));
        std::fs::write(&src, b"(\xb5/\xfdcompressed").unwrap();
        initrd_with_stream(&src, &dest).unwrap();
        let out = std::fs::read(&dest).unwrap();
        let archive = cpio(&initrd_entries(Path::new("etc/systemd/system")));
        assert_eq!(archive.len() % 4, 0);
        assert_eq!(&out[..archive.len()], archive);
        assert_eq!(&out[archive.len()..], b"(\xb5/\xfdcompressed");
        assert_eq!(std::fs::read(&src).unwrap(), b"(\xb5/\xfdcompressed");
    }

    #[test]
    fn prepare_creates_the_files_and_the_console_link() {
        let d = tempfile::tempdir().unwrap();
        let log = parse_log_dir(&format!("{}/run", d.path().display())).unwrap();
        prepare(&log).unwrap();
        prepare(&log).unwrap();
        for f in [JOURNAL_FILE, INITRD_FILE] {
            assert!(log.dir.join(f).is_file(), "{f}");
        }
        assert_eq!(
            std::fs::read_link(log.dir.join(CONSOLE_LINK)).unwrap(),
            Path::new(CONSOLE_FILE)
        );
    }
}
