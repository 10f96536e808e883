//! `--log-dir DIR` (upstream bcvk's option): the guest's journal and its console as files in
//! DIR, a directory of the container (the host command mounts the host's there).
//!
//! - `journal.log`: the guest's journal from the start of the boot, `journalctl -o
//!   short-precise`, streamed over the virtio-serial port [`JOURNAL_PORT`] by a guest unit.
//!   `guestfs` installs that unit in every guest it configures, wanted by the port's device
//!   unit alone: without the port (no `--log-dir`) it never starts. It needs nothing in the
//!   image but systemd and journalctl, and no vsock (absent on GitHub's runners).
//! - `console.log`: a copy of the serial console as the console pump reads it (not with
//!   `--console`, where the terminal has it).
//!
//! The option travels as that port: `--log-dir DIR` adds `--virtio-serial-out
//! org.bcvk.journal:DIR/journal.log` ([`serial_out`]), and the VM finds the console copy's
//! place from it ([`console_copy`]), so the plan and the QEMU spec need nothing more.

use std::path::{Path, PathBuf};

use crate::config::SerialOutSpec;
use crate::guestfs::{escape_path, Entry};

/// The virtio-serial port the guest's journal is streamed to.
pub const JOURNAL_PORT: &str = "org.bcvk.journal";
pub const JOURNAL_FILE: &str = "journal.log";
pub const CONSOLE_FILE: &str = "console.log";
const UNIT: &str = "bcvk-journal.service";

/// Upstream writes `--log-dir STREAMS=DIR` (`journal`, `console` or both): accepted, and both
/// files are always written.
pub fn parse_log_dir(value: &str) -> Result<PathBuf, String> {
    let dir = match value.split_once('=') {
        Some((streams, dir))
            if !streams.is_empty()
                && streams
                    .split(',')
                    .all(|s| matches!(s, "journal" | "console")) =>
        {
            dir
        }
        _ => value,
    };
    if !dir.starts_with('/') {
        return Err(format!(
            "'{dir}': an absolute directory of the container is needed (the host command mounts a host directory there)"
        ));
    }
    Ok(PathBuf::from(dir))
}

/// The port that carries `--log-dir DIR`.
pub fn serial_out(dir: &Path) -> SerialOutSpec {
    SerialOutSpec {
        name: JOURNAL_PORT.into(),
        file: dir.join(JOURNAL_FILE),
    }
}

/// Where the console is copied: beside the journal, when a run has the journal port.
pub fn console_copy(ports: &[crate::qemu::SerialOutSpec]) -> Option<PathBuf> {
    ports
        .iter()
        .find(|p| p.name == JOURNAL_PORT)
        .and_then(|p| p.path.parent())
        .map(|d| d.join(CONSOLE_FILE))
}

/// The guest unit that streams the journal to the port, and the link that has the port's
/// device start it. `-n all` from the boot's start: journalctl -f alone shows only the last
/// ten lines. Not restarted: a second run would repeat the boot's journal.
pub fn guest_entries(unit_dir: &Path) -> Vec<Entry> {
    let port = Path::new("/dev/virtio-ports").join(JOURNAL_PORT);
    let device = format!("{}.device", escape_path(&port));
    let body = format!(
        "# Written by bcvk: --log-dir's journal stream; runs only when the port exists.\n\
         [Unit]\n\
         Description=bcvk: the journal to the host (--log-dir)\n\
         BindsTo={device}\n\
         After={device} systemd-journald.service\n\
         \n\
         [Service]\n\
         ExecStart=/usr/bin/journalctl --boot --follow --lines=all --output=short-precise\n\
         StandardOutput=file:{port}\n\
         StandardError=journal\n",
        port = port.display(),
    );
    vec![
        Entry::File {
            path: unit_dir.join(UNIT),
            contents: body.into_bytes(),
        },
        Entry::Symlink {
            path: unit_dir.join(format!("{device}.wants")).join(UNIT),
            target: Path::new("/").join(unit_dir).join(UNIT),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_directory_or_upstreams_streams_prefix() {
        for (value, dir) in [
            ("/logs", "/logs"),
            ("journal=/logs", "/logs"),
            ("journal,console=/logs/run-1", "/logs/run-1"),
            ("console=/a=b", "/a=b"),
            ("/a=b", "/a=b"),
        ] {
            assert_eq!(parse_log_dir(value).unwrap(), Path::new(dir), "{value}");
        }
        for bad in ["", "journal=", "logs", "journal=logs"] {
            assert!(parse_log_dir(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_port_carries_the_directory() {
        let s = serial_out(Path::new("/logs"));
        assert_eq!(
            (s.name.as_str(), s.file.as_path()),
            (JOURNAL_PORT, Path::new("/logs/journal.log"))
        );
        let ports = [
            crate::qemu::SerialOutSpec {
                name: "other".into(),
                path: "/x/out".into(),
            },
            crate::qemu::SerialOutSpec {
                name: s.name,
                path: s.file,
            },
        ];
        assert_eq!(
            console_copy(&ports),
            Some(PathBuf::from("/logs/console.log"))
        );
        assert_eq!(console_copy(&ports[..1]), None);
    }

    #[test]
    fn the_unit_is_started_by_the_port_alone() {
        let e = guest_entries(Path::new("etc/systemd/system"));
        let Entry::File { path, contents } = &e[0] else {
            panic!("{e:?}")
        };
        let unit = String::from_utf8_lossy(contents);
        assert_eq!(path, Path::new("etc/systemd/system/bcvk-journal.service"));
        assert!(unit.contains("BindsTo=dev-virtio\\x2dports-org.bcvk.journal.device\n"));
        assert!(unit.contains("StandardOutput=file:/dev/virtio-ports/org.bcvk.journal\n"));
        assert!(!unit.contains("[Install]"));
        assert_eq!(
            e[1],
            Entry::Symlink {
                path: "etc/systemd/system/dev-virtio\\x2dports-org.bcvk.journal.device.wants/bcvk-journal.service".into(),
                target: "/etc/systemd/system/bcvk-journal.service".into(),
            }
        );
    }
}
