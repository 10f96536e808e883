//! Command-line options (clap derive). Values are parsed by `config`; this module only names
//! the options, documents them, and inserts the implicit `run` subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, DiskFileSpec, PortSpec, SerialOutSpec};

#[derive(Debug, Parser)]
#[command(
    name = "bcvk",
    version,
    about = "Boot a bootable container image as a throwaway VM, from inside a container",
    long_about = "Boot a bootable container image as a throwaway VM, from inside a container.\n\n\
        podman run --rm -it --device /dev/kvm \\\n  \
        -v /var/lib/containers/storage:/run/host-storage:ro \\\n  \
        localhost/bcvk IMAGE [OPTIONS] [-- COMMAND...]\n\n\
        `bcvk IMAGE` is short for `bcvk run IMAGE`.",
    after_help = crate::exit::help_text()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log level: error, warn, info, debug or trace (RUST_LOG takes a full tracing filter).
    #[arg(long, global = true, env = "BCVK_LOG", default_value = "info",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot IMAGE as a VM (the default subcommand).
    Run(Box<RunArgs>),
    /// Open a shell, or run a command, in this container's VM (use with podman exec).
    Ssh(SshArgs),
    /// Show the state of this container's VM (use with podman exec).
    Status(StatusArgs),
    /// Install a bootc image to a disk image file: boot the image, attach the file, run the
    /// image's own `bootc install to-disk` onto it, the source read from the store.
    #[command(name = "to-disk")]
    ToDisk(Box<ToDiskArgs>),
    /// Print the host-side `bcvk` command (a POSIX sh script needing only podman).
    #[command(name = "install-host-cli")]
    InstallHostCli,
    /// Write man pages (bcvk.1, bcvk-run.1, ...) generated from these definitions into DIR;
    /// with --host, the host command's (bcvk.8, bcvk-ephemeral-run.8, ...): podman run --rm
    /// -v ~/.local/share/man/man8:/out localhost/bcvk:latest man --host /out
    Man {
        /// Output directory (created if missing).
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
        /// The host command's pages (section 8) instead of this container's (section 1).
        #[arg(long)]
        host: bool,
    },
}

/// Render the man pages: one for bcvk and one per visible subcommand.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use clap::CommandFactory;
    let root = Cli::command();
    let mut pages = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(root.clone()).render(&mut buf)?;
    pages.push(("bcvk.1".to_string(), buf));
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("bcvk-{}", sub.get_name());
        let sub = sub.clone().name(name.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    Ok(pages)
}

pub const SUBCOMMANDS: &[&str] = &[
    "run",
    "ssh",
    "status",
    "to-disk",
    "install-host-cli",
    "man",
    "help",
];

pub use crate::config::MAX_TIMEOUT_SECS;

/// A timeout in whole seconds, 0 to [`MAX_TIMEOUT_SECS`].
fn seconds(s: &str) -> Result<u64, String> {
    let n: u64 = s.trim().parse().map_err(|_| {
        format!("not a number of seconds: give a whole number from 0 to {MAX_TIMEOUT_SECS}")
    })?;
    if n > MAX_TIMEOUT_SECS {
        return Err(format!(
            "more than a year: give at most {MAX_TIMEOUT_SECS} seconds"
        ));
    }
    Ok(n)
}

/// A vCPU count: 1 to [`crate::qemu::MAX_VCPUS`] (q35 without an IOMMU).
fn vcpus(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=crate::qemu::MAX_VCPUS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid vCPU count '{}' for --vcpus: give a whole number from 1 to {}",
            config::shown(s),
            crate::qemu::MAX_VCPUS
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when /dev/kvm opens and the CPU has vmx/svm, else TCG with a warning; TCG also when
    /// KVM then fails to run the guest before it is ready (warned, the boot starts over)
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// User-mode networking (NAT through the container's network, DNS from its resolv.conf)
    User,
    /// No connectivity: only bcvk's own SSH forward reaches the guest
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnStallArg {
    /// Boot once more with a fresh QEMU when nothing of the user's has run yet (never ready)
    Restart,
    /// End the run with exit 76
    Fail,
}

/// The VM's size, one definition for `bcvk run` and `bcvk to-disk` (its installer VM).
#[derive(Debug, Clone, Args)]
pub struct VmSize {
    /// Guest memory: 512M, 2G, or a bare number of MiB [default: 4G, or the --itype's].
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| config::parse_size_mib(s).map_err(|e| e.for_flag("--memory")))]
    pub memory: Option<u64>,

    /// Guest vCPUs [default: the container's CPUs, at most 4, or the --itype's].
    #[arg(long, value_name = "N", value_parser = vcpus)]
    pub vcpus: Option<u32>,

    /// An instance type setting vCPUs and memory: u1.nano, u1.micro, u1.small, u1.medium,
    /// u1.2xmedium, u1.large, u1.xlarge, u1.2xlarge, u1.4xlarge, u1.8xlarge.
    #[arg(long, value_name = "NAME", value_parser = |s: &str| config::parse_instance_type(s).map_err(|e| e.for_flag("--itype")))]
    pub itype: Option<config::InstanceType>,
}

#[derive(Debug, Args)]
#[command(after_help = crate::exit::help_text())]
pub struct RunArgs {
    /// The image: name[:tag], short name, image ID (or a unique prefix), or name@sha256:digest.
    /// A bootable container image (a kernel under /usr/lib/modules), or a containerDisk (one
    /// *.qcow2, *.raw or *.img under / or /disk/): bcvk tells them apart.
    /// With --rootfs it is optional and only names the VM (status, logs).
    #[arg(required_unless_present_any = ["disk_image", "rootfs"])]
    pub image: Option<String>,

    /// Boot this VM disk image (qcow2 or raw, told from the file) instead of an image from the
    /// store: bring it in with podman -v. The guest writes to a throwaway overlay; with
    /// --persistent, into the file itself (locked: one VM per file).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath,
          conflicts_with_all = ["image", "state", "reset"])]
    pub disk_image: Option<PathBuf>,

    /// Which firmware boots a disk image: auto reads the disk (an EFI system partition means
    /// UEFI, else BIOS).
    #[arg(long, value_enum, default_value = "auto")]
    pub firmware: crate::disk::FirmwareKind,

    /// A cloud-init NoCloud directory (user-data, and optionally meta-data, vendor-data,
    /// network-config) for the guest's first boot; bcvk merges its SSH key, --password and
    /// --bind mounts into it. Disk images get bcvk's own seed without it.
    #[arg(long = "cloud-init", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub cloud_init: Option<PathBuf>,

    /// An Ignition config (JSON) handed to the guest over fw_cfg (opt/com.coreos/config),
    /// with bcvk's SSH key added for root.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ignition: Option<PathBuf>,

    /// The password of the image's default user, set through cloud-init (disk images, or
    /// with --cloud-init).
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Boot the root file system in this directory instead of an image from the store: a
    /// plain tree holding the image's root (usr/, etc/, its kernel under usr/lib/modules), as
    /// an init container of the image copies it into a shared volume on Kubernetes. It is
    /// never written: the guest's writes go to the throwaway layer above it, as for a store
    /// image. No store is read (except for --bind-storage-ro).
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath,
          conflicts_with_all = ["persistent", "disk_image"])]
    pub rootfs: Option<PathBuf>,

    /// Run this command in the guest once it is ready, then power off; its exit code becomes
    /// the container's.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// Like `-- COMMAND`, as one shell string run by the guest's shell.
    #[arg(long, value_name = "SHELL", conflicts_with = "command")]
    pub execute: Option<String>,

    /// The podman store to read (read-only) [default: /run/host-storage, then
    /// /var/lib/containers/storage]. A rootless store (~/.local/share/containers/storage)
    /// works when mounted anywhere and named here.
    #[arg(long, value_name = "DIR", env = "BCVK_STORAGE", value_hint = clap::ValueHint::DirPath)]
    pub storage: Option<PathBuf>,

    /// Put the throwaway writable layer on this directory (a volume) instead of a tmpfs in
    /// memory: for images that write a lot.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub scratch: Option<PathBuf>,

    /// Keep the guest's writes across runs (a persistent VM, as podman-bootc's): they live in
    /// the --state directory (a volume), tied to the image's ID, one VM at a time.
    #[arg(long, conflicts_with = "scratch")]
    pub persistent: bool,

    /// With --persistent: where the state lives (mount a volume there: -v NAME:/cache).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/cache",
        requires = "persistent"
    )]
    pub state: PathBuf,

    /// With --persistent: start the state over from the image (it is removed first).
    #[arg(long, requires = "persistent")]
    pub reset: bool,

    #[command(flatten)]
    pub size: VmSize,

    /// An extra kernel argument (repeatable).
    #[arg(long = "karg", value_name = "ARG", value_parser = |s: &str| config::parse_karg(s).map_err(|e| e.for_flag("--karg")))]
    pub kargs: Vec<String>,

    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,

    /// QEMU CPU model [default: host with KVM, qemu64,-svm with TCG; use max for images built
    /// for newer CPUs, e.g. x86-64-v3].
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,

    /// Attach the guest console to this terminal (run with -it); Ctrl-a x quits QEMU.
    /// Without it the console is streamed read-only to stdout (podman logs).
    #[arg(long)]
    pub console: bool,

    /// Stream the read-only console to stderr instead of stdout, also with -- COMMAND or
    /// --execute (where it is otherwise only kept in /run/bcvk/console.log): for logs that
    /// keep both streams, such as `kubectl logs` of a Job. stdout stays the command's alone.
    #[arg(long, conflicts_with = "console")]
    pub console_stderr: bool,

    /// Share a container directory read-write: SRC[:NAME|:/guest/path]. Mounted at
    /// /run/virtiofs-mnt-NAME, or at the guest path. Use podman -v to bring host dirs in.
    #[arg(long, value_name = "SRC[:NAME]", value_parser = |s: &str| config::parse_bind(s, false).map_err(|e| e.for_flag("--bind")))]
    pub bind: Vec<config::BindSpec>,

    /// Like --bind, read-only.
    #[arg(long = "ro-bind", value_name = "SRC[:NAME]", value_parser = |s: &str| config::parse_bind(s, true).map_err(|e| e.for_flag("--ro-bind")))]
    pub ro_bind: Vec<config::BindSpec>,

    /// Share the mounted podman store read-only at /run/virtiofs-mnt-hoststorage.
    #[arg(long)]
    pub bind_storage_ro: bool,

    /// Add a swap device of this size (e.g. 2G).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| config::parse_size_bytes(s).map_err(|e| e.for_flag("--add-swap")))]
    pub add_swap: Option<u64>,

    /// Attach a disk image FILE[:NAME[:raw|qcow2]] as /dev/disk/by-id/virtio-NAME (created
    /// sparse if missing; qcow2 by suffix).
    #[arg(long, value_name = "FILE[:NAME[:FMT]]")]
    pub mount_disk_file: Vec<DiskFileSpec>,

    /// Install and enable the units in DIR/system/ in the guest, with its *.wants/ and
    /// *.requires/ links.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub systemd_units: Option<PathBuf>,

    /// A guest port /dev/virtio-ports/NAME whose output lands in FILE: NAME:FILE.
    #[arg(long, value_name = "NAME:FILE")]
    pub virtio_serial_out: Vec<SerialOutSpec>,

    /// Write log streams into DIR, created if missing: STREAMS is journal, console or
    /// journal,console (a bare DIR: both). journal: journal.json, the guest's journal as
    /// `journalctl -o json` (one object a line, from the boot's first message), and
    /// journal-initrd.json, the initrd's part (empty without an initrd). console: console.txt,
    /// the serial console (console.log links to it).
    #[arg(long, value_name = "[STREAMS=]DIR", value_hint = clap::ValueHint::DirPath,
          value_parser = crate::logdir::parse_log_dir)]
    pub log_dir: Option<crate::logdir::LogDir>,

    /// Guest networking.
    #[arg(long, value_enum, default_value = "user")]
    pub net: NetArg,

    /// Forward a container port to a guest port: HOSTPORT:GUESTPORT (repeatable). Publish it
    /// with podman -p to reach it from the host.
    #[arg(long = "port", value_name = "HOST:GUEST")]
    pub ports: Vec<PortSpec>,

    /// Authorize this public key (a file in the container) instead of a generated one.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ssh_key: Option<PathBuf>,

    /// Accepted for upstream compatibility: a fresh key pair is always generated.
    #[arg(short = 'K', long = "ssh-keygen")]
    pub ssh_keygen: bool,

    /// Guest hostname [default: the container's name, unless the image sets one].
    #[arg(long, value_name = "NAME", value_parser = |s: &str| config::parse_hostname(s).map_err(|e| e.for_flag("--hostname")))]
    pub hostname: Option<String>,

    /// Seconds to wait for the guest to answer SSH before giving up (at most a year)
    /// [default: 240 with KVM, as upstream bcvk; 600 under TCG, whose boots take minutes on a
    /// loaded machine; chosen once the accelerator is known, after a fallback from KVM to TCG
    /// too].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub ready_timeout: Option<u64>,

    /// What to do when the guest's kernel stalls before the VM is ready (its RCU stall report,
    /// or a silent kernel phase; TCG on a busy host): restart it once, or fail (exit 76).
    #[arg(long, value_enum, value_name = "ACTION", default_value = "restart")]
    pub on_stall: OnStallArg,

    /// Seconds the guest gets to power off before QEMU is stopped [default: 8 when stopped by
    /// a signal, to stay below podman's own 10 s stop timeout (raise both: podman run
    /// --stop-timeout 60 ... --stop-timeout 50); 30 after a one-shot command].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub stop_timeout: Option<u64>,

    /// Whether to boot through the image's initramfs.
    #[arg(long, value_enum, default_value = "auto")]
    pub initrd: crate::config::Initrd,

    /// virtiofs cache mode for the root file system (--bind shares always use auto: the host
    /// may change them).
    #[arg(long, value_enum, default_value = "always")]
    pub virtiofs_cache: crate::virtiofsd::CacheMode,

    /// Print the QEMU and virtiofsd command lines.
    #[arg(long)]
    pub log_cmdline: bool,

    /// Prepare everything, print the command lines, then open a shell in the container
    /// instead of starting QEMU.
    #[arg(long)]
    pub debug: bool,
}

/// `bcvk to-disk`: upstream bcvk's options by their names (see crate::to_disk).
#[derive(Debug, Args)]
#[command(after_help = crate::exit::help_text())]
pub struct ToDiskArgs {
    /// The bootc image to install, from the store (as for bcvk run): it must carry
    /// /usr/bin/bootc, and is its own installer.
    pub source_image: String,
    /// The disk image file to write (in the container: bring its directory in with podman -v).
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub target_disk: PathBuf,
    /// The root filesystem (bootc install --filesystem) [default: the image's install config].
    #[arg(long, value_parser = ["ext4", "xfs", "btrfs"])]
    pub filesystem: Option<String>,
    /// The disk's size: 10G, 5120M, or a bare number of MiB [default: 10G; sparse].
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| config::parse_size_bytes(s).map_err(|e| e.for_flag("--disk-size")))]
    pub disk_size: Option<u64>,
    /// The root filesystem's size (bootc install --root-size) [default: the rest of the disk].
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| config::parse_size_bytes(s).map_err(|e| e.for_flag("--root-size")))]
    pub root_size: Option<u64>,
    /// The disk image's format.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: config::DiskFormat,
    /// A kernel argument of the installed system (bootc install --karg; repeatable).
    #[arg(long = "karg", value_name = "ARG", value_parser = |s: &str| config::parse_karg(s).map_err(|e| e.for_flag("--karg")))]
    pub kargs: Vec<String>,
    /// Install with bootc's composefs-native backend [default: on when the image has no
    /// bootupd (/usr/bin/bootupctl), which bootc's ostree backend needs].
    #[arg(long)]
    pub composefs_backend: bool,
    /// The bootloader (bootc install --bootloader): systemd, grub or none.
    #[arg(long, value_parser = ["systemd", "grub", "none"])]
    pub bootloader: Option<String>,
    /// Install without fs-verity (composefs backend) where the filesystem lacks it.
    #[arg(long)]
    pub allow_missing_fsverity: bool,
    /// The installer VM's size.
    #[command(flatten)]
    pub size: VmSize,
    /// Stream the installer VM's console to stderr (bootc's output is on stdout).
    #[arg(long)]
    pub console: bool,
    /// Overwrite TARGET_DISK when it exists (without it, an existing file is refused).
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Force a terminal (-tt) even when stdin is not one.
    #[arg(short = 't')]
    pub tty: bool,
    /// Never allocate a terminal.
    #[arg(short = 'T', conflicts_with = "tty")]
    pub no_tty: bool,
    /// Seconds to wait for the VM to become ready first (at most a year).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = seconds)]
    pub timeout: u64,
    /// Log in as this user instead of root (bcvk's key is authorized for the image's default
    /// user too on cloud-init guests).
    #[arg(long = "as", value_name = "USER", value_parser = |s: &str| config::parse_user(s).map_err(|e| e.for_flag("--as")))]
    pub user: Option<String>,
    /// The command to run (a login shell without one); its exit code is returned.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status file as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait until the VM is ready (or has exited).
    #[arg(long)]
    pub wait: bool,
    /// The VM's name to show (the host command passes the container's name, which the
    /// container cannot see); by default the guest's host name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// With --wait, show the boot's progress on stderr while waiting: `tty`, one line
    /// rewritten in place (time since the VM started, boot phase); `plain`, a line each time
    /// the phase changes (for logs). The host command passes it.
    #[arg(long, value_enum, requires = "wait", value_name = "tty|plain")]
    pub progress: Option<crate::status::Progress>,
    /// A health check (podman run --health-cmd 'bcvk status --health'): exit 0 when the VM
    /// is ready, else 1 with one line saying why.
    #[arg(long, conflicts_with_all = ["json", "wait", "progress", "name"])]
    pub health: bool,
}

impl RunArgs {
    /// `--log-dir`: create DIR and its files and add the journal's ports ([`crate::logdir`]),
    /// which the run then carries like any `--virtio-serial-out`.
    pub fn apply_log_dir(&mut self) -> Result<(), String> {
        let Some(log) = &self.log_dir else {
            return Ok(());
        };
        let ports = crate::logdir::serial_outs(log);
        if let Some(s) = self
            .virtio_serial_out
            .iter()
            .find(|s| ports.iter().any(|p| p.name == s.name))
        {
            return Err(format!(
                "--virtio-serial-out: the port name {} is --log-dir's: choose another",
                s.name
            ));
        }
        crate::logdir::prepare(log).map_err(|e| format!("--log-dir {}: {e}", log.dir.display()))?;
        self.virtio_serial_out.extend(ports);
        Ok(())
    }
}

/// Upstream bcvk spellings that bcvk does not take, each with what to use instead. `bcvk run`
/// and the host command (through [`crate::host_cmd::shell_table`]) refuse them with this one line,
/// instead of clap's or the shell's guess at what went wrong.
pub const UPSTREAM_SPELLINGS: &[(&str, &str)] = &[
    (
        "--network",
        "use --net user|none for the guest's network (the container's network is podman's)",
    ),
    (
        "-e",
        "use --execute SHELL or -- COMMAND to run a command in the guest, --systemd-units DIR to configure it",
    ),
    (
        "--env",
        "use --execute SHELL or -- COMMAND to run a command in the guest, --systemd-units DIR to configure it",
    ),
    (
        "--output",
        "use podman logs NAME for the console; a command's output is its stdout",
    ),
];

/// The one line refusing an upstream spelling `arg` (`--opt` or `--opt=value`), if it is one.
pub fn upstream_spelling(arg: &str) -> Option<String> {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    UPSTREAM_SPELLINGS
        .iter()
        .find(|(spelling, _)| *spelling == name)
        .map(|(spelling, hint)| format!("{spelling} is upstream bcvk's spelling: {hint}"))
}

/// When clap refuses argv: the first upstream spelling in it (before `--`), refused with
/// what to use instead.
pub fn upstream_spelling_in(argv: &[std::ffi::OsString]) -> Option<String> {
    argv.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .find_map(upstream_spelling)
}

/// `bcvk IMAGE ...` means `bcvk run IMAGE ...`: insert `run` unless the first argument is a
/// subcommand or a top-level flag. A leading `--log-level LEVEL` (global) is stepped over.
pub fn with_default_subcommand(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let top_flags = ["-h", "--help", "-V", "--version"];
    let mut at = 1;
    loop {
        match argv.get(at).and_then(|a| a.to_str()) {
            Some("--log-level") => at += 2,
            Some(f) if f.starts_with("--log-level=") => at += 1,
            _ => break,
        }
    }
    let first = argv.get(at).and_then(|a| a.to_str()).map(str::to_owned);
    match first {
        None => {}
        Some(f) if SUBCOMMANDS.contains(&f.as_str()) || top_flags.contains(&f.as_str()) => {}
        Some(_) => argv.insert(at, "run".into()),
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = with_default_subcommand(args.iter().map(|s| s.into()).collect());
        Cli::try_parse_from(argv)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).unwrap().command {
            Command::Run(r) => *r,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn status_takes_the_name_to_show_and_progress_with_wait() {
        let Command::Status(a) = parse(&["bcvk", "status", "--name", "dev", "--json"])
            .unwrap()
            .command
        else {
            panic!("not status")
        };
        assert_eq!(a.name.as_deref(), Some("dev"));
        assert!(parse(&["bcvk", "status", "--health", "--name", "dev"]).is_err());
        assert!(parse(&["bcvk", "status", "--progress", "plain"]).is_err());
        let Command::Status(a) = parse(&["bcvk", "status", "--wait", "--progress", "tty"])
            .unwrap()
            .command
        else {
            panic!("not status")
        };
        assert_eq!(a.progress, Some(crate::status::Progress::Tty));
    }

    #[test]
    fn man_pages_cover_every_subcommand_and_flag() {
        let pages = man_pages().unwrap();
        let names: Vec<_> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "bcvk.1",
                "bcvk-run.1",
                "bcvk-ssh.1",
                "bcvk-status.1",
                "bcvk-to-disk.1",
                "bcvk-install-host-cli.1",
                "bcvk-man.1"
            ]
        );
        let run = String::from_utf8_lossy(&pages[1].1).to_string();
        for flag in [
            "memory",
            "bind\\-storage\\-ro",
            "virtio\\-serial\\-out",
            "ready\\-timeout",
        ] {
            assert!(run.contains(flag), "bcvk-run.1 lacks {flag}");
        }
        // What --log-dir writes and --ready-timeout's defaults, as the help says them.
        for said in [
            "journal.json",
            "journal\\-initrd.json",
            "console.txt",
            "240 with KVM",
            "600 under TCG",
        ] {
            assert!(run.contains(said), "bcvk-run.1 lacks {said}");
        }
    }

    #[test]
    fn log_levels_are_the_five_documented_ones() {
        for level in ["error", "warn", "info", "debug", "trace"] {
            let cli = parse(&["bcvk", "--log-level", level, "localhost/img"]).unwrap();
            assert_eq!(cli.log_level, level);
            let cli = parse(&["bcvk", "localhost/img", "--log-level", level]).unwrap();
            assert_eq!(cli.log_level, level);
        }
        assert_eq!(parse(&["bcvk", "localhost/img"]).unwrap().log_level, "info");
        let cli = parse(&["bcvk", "--log-level=warn", "localhost/img"]).unwrap();
        assert_eq!(cli.log_level, "warn");
        assert!(matches!(cli.command, Command::Run(_)));
        for bogus in ["bogus", "INFO!", "bcvk=debug", ""] {
            let err = parse(&["bcvk", "localhost/img", "--log-level", bogus])
                .err()
                .unwrap_or_else(|| panic!("{bogus:?} accepted"));
            // main maps every error clap prints on stderr to 64.
            assert!(err.use_stderr(), "{bogus:?}");
            assert!(err.to_string().contains("--log-level"), "{err}");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rootfs_makes_the_image_optional() {
        let r = run_args(&["bcvk", "--rootfs", "/rootfs", "--", "true"]);
        assert_eq!(
            (r.image, r.rootfs, r.command),
            (
                None,
                Some(PathBuf::from("/rootfs")),
                vec!["true".to_string()]
            )
        );
        let r = run_args(&["bcvk", "--rootfs", "/rootfs", "quay.io/x/y"]);
        assert_eq!(r.image.as_deref(), Some("quay.io/x/y"));
        // Without either there is nothing to boot; a directory has no state to keep.
        assert!(parse(&["bcvk", "run"]).is_err());
        assert!(parse(&["bcvk", "--rootfs", "/r", "--persistent"]).is_err());
    }

    #[test]
    fn image_alone_means_run_and_command_follows_double_dash() {
        let r = run_args(&[
            "bcvk",
            "localhost/img",
            "--memory",
            "2G",
            "--",
            "sh",
            "-c",
            "exit 42",
        ]);
        assert_eq!(r.image.as_deref(), Some("localhost/img"));
        assert_eq!(r.size.memory, Some(2048));
        assert_eq!(r.command, vec!["sh", "-c", "exit 42"]);
        let r = run_args(&["bcvk", "run", "img", "--karg", "a=b", "--karg", "quiet"]);
        assert_eq!(r.kargs, vec!["a=b", "quiet"]);
        // Options may come before the image too.
        let r = run_args(&["bcvk", "--vcpus", "2", "img"]);
        assert_eq!((r.image.as_deref(), r.size.vcpus), (Some("img"), Some(2)));
    }

    #[test]
    fn subcommands_are_not_taken_for_images() {
        assert!(
            matches!(parse(&["bcvk", "ssh", "uname", "-r"]).unwrap().command, Command::Ssh(s) if s.command == ["uname", "-r"])
        );
        assert!(
            matches!(parse(&["bcvk", "status", "--json"]).unwrap().command, Command::Status(s) if s.json)
        );
        assert!(matches!(
            parse(&["bcvk", "install-host-cli"]).unwrap().command,
            Command::InstallHostCli
        ));
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        let err = parse(&["bcvk", "img", "--memory", "4X"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--memory"), "{err}");
        let err = parse(&["bcvk", "img", "--vcpus", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--vcpus"), "{err}");
        let err = parse(&["bcvk", "img", "--itype", "u1.huge"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("u1.small"), "{err}");
        let err = parse(&["bcvk", "img", "--execute", "true", "--", "true"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be used with"), "{err}");
        assert!(parse(&["bcvk", "img", "--accel", "xen"]).is_err());
    }
}
