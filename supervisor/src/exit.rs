//! The one table of bcvk's exit codes. Every code the supervisor chooses is an [`Exit`]; the
//! `--help` text and the README's "Exit codes" table are rendered from [`TABLE`] (a unit test
//! compares the README with it), so the three cannot drift apart.
//!
//! The numbers follow BSD's sysexits.h where one fits (64 EX_USAGE, 65 EX_DATAERR, 66
//! EX_NOINPUT, 69 EX_UNAVAILABLE, 70 EX_SOFTWARE, 71 EX_OSERR, 73 EX_CANTCREAT, 75
//! EX_TEMPFAIL, 77 EX_NOPERM), so that systemd's `RestartPreventExitStatus=` can name the
//! failures a restart cannot fix.

/// A failure class of the supervisor, with its documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A mistake of the user: bad option, value or combination.
    Usage,
    /// The store's own data is unreadable or corrupt.
    StoreCorrupt,
    /// Something named by the user is not there: image, kernel, store, file.
    NotFound,
    /// The accelerator cannot be used.
    Unavailable,
    /// The guest or one of its helpers failed.
    GuestFailed,
    /// bcvk's own fault.
    Internal,
    /// The persistent state is locked by another VM.
    StateBusy,
    /// The guest never answered SSH in time.
    NotReady,
    /// The guest's kernel stalled before it was ready.
    Stalled,
    /// The host or engine refuses what bcvk cannot do without.
    Refused,
    /// `to-disk`: the image's `bootc install` failed in the guest.
    InstallFailed,
}

impl Exit {
    /// Every class, in the order of the table.
    pub const ALL: [Exit; 11] = [
        Exit::Usage,
        Exit::StoreCorrupt,
        Exit::NotFound,
        Exit::Unavailable,
        Exit::GuestFailed,
        Exit::Internal,
        Exit::StateBusy,
        Exit::NotReady,
        Exit::Stalled,
        Exit::Refused,
        Exit::InstallFailed,
    ];

    pub const fn code(self) -> i32 {
        match self {
            Exit::Usage => 64,
            Exit::StoreCorrupt => 65,
            Exit::NotFound => 66,
            Exit::Unavailable => 69,
            Exit::GuestFailed => 70,
            Exit::Internal => 71,
            Exit::StateBusy => 73,
            Exit::NotReady => 75,
            // No sysexits code fits; next to 75 since both may pass when run again.
            Exit::Stalled => 76,
            Exit::Refused => 77,
            // 78 is EX_CONFIG, which no other class of bcvk's uses; the install's own
            // failure is a separate class so that scripts can tell it from a VM's.
            Exit::InstallFailed => 78,
        }
    }

    /// What the code means, as documented (markdown: backquotes around option names).
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Usage => "bad usage or option value (a missing `--bind` directory or `--ssh-key`, a port bcvk uses, a malformed image reference); `--persistent` with no state directory, or a state made from another image; `to-disk`: a target that exists (without `--force`), or whose directory is missing or read-only",
            Exit::StoreCorrupt => "the podman store is unreadable or corrupt; or a disk image is (a truncated or corrupt qcow2, a raw disk shorter than its partition table, a backing file, an unsupported format, a containerDisk with more than one disk); or an image whose layout would lead bcvk's writes through a symlink (`/etc/systemd/system` a symlink, for `--systemd-units`)",
            Exit::NotFound => "image not found (or a `--rootfs` directory missing or without `usr/`), image without a bootable kernel or disk (the error names every place looked at), no store mounted, a `--disk-image` not there, or a disk the firmware finds nothing to boot on; `to-disk`: a source image without `/usr/bin/bootc` (not a bootc image)",
            Exit::Unavailable => "the accelerator is unavailable (`--accel kvm` without `/dev/kvm`, KVM cannot run the guest, or the image is of the other architecture); or the image is for an architecture bcvk cannot boot (it boots linux/amd64 and linux/arm64)",
            Exit::GuestFailed => "the guest failed: kernel panic, reboot, QEMU or virtiofsd died (also while a one-shot command runs: then not ssh's 255)",
            Exit::Internal => "internal error: bcvk's own fault (mount, spawn, files under `/run/bcvk`), never a mistake in the options",
            Exit::StateBusy => "`--persistent`: the state, or the disk image, is in use by another VM (one VM at a time writes it)",
            Exit::NotReady => "the guest never answered SSH within `--ready-timeout`",
            Exit::Stalled => "the guest's kernel stalled before it was ready (its RCU stall report and no later boot phase within 30 s, or no console output for 60 s in the kernel phase); with `--on-stall restart` (the default), in its one restart too: a hazard of TCG, see Troubleshooting",
            Exit::InstallFailed => "`to-disk`: the image's `bootc install to-disk` failed in the guest (a disk too small, a filesystem or bootloader it cannot use): bootc's last error line is shown and the target file removed",
            Exit::Refused => "the host or engine refuses something bcvk needs and cannot do without: a user namespace (docker's default seccomp profile, `user.max_user_namespaces=0`, AppArmor's userns restriction), the id maps (`CAP_SETUID`/`CAP_SETGID` dropped), whiteouts without `CAP_MKNOD` (kernels before 5.8)",
        }
    }
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        e.code()
    }
}

/// The codes that are not failures of bcvk: a clean end, and a one-shot command's own code.
const OK: &str =
    "the guest powered off, or the VM was stopped cleanly (`podman stop`); `bcvk status`: ready";
const COMMAND: &str = "with `-- COMMAND`/`--execute`: the command's exit code, 128+N when a signal N killed it in the guest, as a shell reports it (255: ssh could not run it); `bcvk status`: 1 while not ready";
const PODMAN: &str = "the host command, passing podman's own code on (the supervisor never exits so): 125 podman itself failed, with its message above (an option of podman's, an image it cannot pull); 126 the container's command could not be run; 127 podman is not installed (the host command says so), or the container's command was not found";
const SIGNALS: &str = "a one-shot command interrupted by SIGINT / SIGTERM: `podman kill`, `podman stop`, or Ctrl-C in a `podman run -it` session (the command dies of it in the guest)";

/// Every row of the documented table: (code, meaning), in order.
pub fn table() -> Vec<(String, &'static str)> {
    let mut rows = vec![("0".to_string(), OK), ("1..255".to_string(), COMMAND)];
    rows.extend(
        Exit::ALL
            .iter()
            .map(|e| (e.code().to_string(), e.meaning())),
    );
    rows.push(("125, 126, 127".to_string(), PODMAN));
    rows.push(("130, 143".to_string(), SIGNALS));
    rows
}

/// The README's table (markdown).
pub fn markdown() -> String {
    let mut out = String::from("| code | meaning |\n| --- | --- |\n");
    for (code, meaning) in table() {
        out.push_str(&format!("| {code} | {meaning} |\n"));
    }
    out
}

/// The `--help` epilogue (plain text, no backquotes).
pub fn help_text() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, meaning) in table() {
        out.push_str(&format!("  {code:<9}{}\n", meaning.replace('`', "")));
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    /// The README documents exactly this table, row by row.
    #[test]
    fn readme_table_is_this_table() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split_once("\n## Exit codes\n")
            .expect("README has an Exit codes section")
            .1;
        let table: String = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            table,
            markdown(),
            "README's exit code table differs; paste this:\n{}",
            markdown()
        );
    }

    #[test]
    fn help_text_is_plain() {
        let text = help_text();
        assert!(text.starts_with("Exit codes:\n  0 "));
        assert!(!text.contains('`'));
        assert!(text.contains("\n  64       bad usage"));
    }
}
