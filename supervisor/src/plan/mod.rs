//! The plan of a run: everything bcvk decides from the options and the host before it reads the
//! store, mounts or starts anything, validated in one place ([`make`]). The kind of root is
//! known from the options ([`Source`]), except that a store image may turn out to be a
//! containerDisk: the few rules that depend on that are [`Plan::admit`]'s, checked as soon as
//! the root is known and before anything is started.
//!
//! Nothing here has a side effect: the unit tests build plans from argv without a VM.

use std::path::PathBuf;
use std::time::Duration;

use crate::arch::{Arch, ArchError};
use crate::cli::{AccelArg, NetArg, OnStallArg, RunArgs};
use crate::config::Initrd;
use crate::config::{BindSpec, DiskFileSpec, PortSpec, SerialOutSpec};
use crate::console::Echo;
use crate::disk::FirmwareKind;
use crate::exit::Exit;
use crate::logdir::LogDir;
use crate::qemu::Accel;
use crate::ssh::Tty;
use crate::virtiofsd::CacheMode;

mod accel;
pub use accel::{choose_accel, HostCaps};

#[cfg(test)]
mod tests;

/// A plan that cannot be carried out: a bad combination of options, or one the image refuses.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Usage(String),
    #[error("--accel kvm: {0}")]
    KvmUnavailable(String),
}

impl PlanError {
    pub fn exit(&self) -> Exit {
        match self {
            PlanError::Usage(_) => Exit::Usage,
            PlanError::KvmUnavailable(_) => Exit::Unavailable,
        }
    }
}

fn usage(msg: &str) -> PlanError {
    PlanError::Usage(msg.to_string())
}

/// Where the guest's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// IMAGE, resolved in the podman store: its kernel booted directly, or its disk image by
    /// firmware when it is a containerDisk.
    StoreImage { image: String },
    /// `--rootfs DIR`: a directory holding an image's root; `name` is IMAGE if given, else DIR.
    Directory { dir: PathBuf, name: String },
    /// `--disk-image FILE`, booted by firmware.
    DiskImage { file: PathBuf },
}

/// Where the guest's writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritesTo {
    /// Thrown away with the run: a tmpfs, or `--scratch DIR` when given.
    Throwaway { scratch: Option<PathBuf> },
    /// `--persistent`: kept in the state directory (a store image) or in the disk image.
    Persistent { state: PathBuf, reset: bool },
}

/// How the root boots, as far as the options say; the image decides the rest (see `boot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    pub initrd: Initrd,
    pub firmware: FirmwareKind,
    pub kargs: Vec<String>,
}

/// The VM's size and accelerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub accel: Accel,
    /// Why the accelerator is not what one would expect (said once, as a warning).
    pub accel_warning: Option<String>,
    /// `--accel auto` chose KVM: if KVM cannot run the guest, start over under TCG.
    pub tcg_fallback: bool,
    pub cpu: Option<String>,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// What the guest gets besides its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub binds: Vec<BindSpec>,
    pub bind_storage_ro: bool,
    pub systemd_units: Option<PathBuf>,
    pub swap_bytes: Option<u64>,
    pub disk_files: Vec<DiskFileSpec>,
    pub ports: Vec<PortSpec>,
    /// `--net none`: only bcvk's own forwards reach the guest.
    pub net_isolated: bool,
    pub serial_outs: Vec<SerialOutSpec>,
    pub root_cache: CacheMode,
    pub hostname: Option<String>,
    pub ssh_key: Option<PathBuf>,
    pub password: Option<String>,
    pub cloud_init: Option<PathBuf>,
    pub ignition: Option<PathBuf>,
    pub log_dir: Option<LogDir>,
}

/// How the run meets its user: the command, the console, the clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The remote command line of a one-shot run (`-- CMD` or `--execute`).
    pub command: Option<String>,
    pub command_tty: Tty,
    pub echo: Echo,
    /// `--console`: QEMU owns the terminal.
    pub interactive_console: bool,
    pub ready_timeout: Duration,
    /// The ready timeout once `--accel auto` fell back to TCG.
    pub fallback_ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub restart_on_stall: bool,
    pub log_cmdline: bool,
    /// `--debug`: prepare everything, then a shell instead of QEMU.
    pub debug: bool,
}

/// What the host offers that a plan depends on; [`HostFacts::probe`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub caps: HostCaps,
    /// The container's name or host name, when it is a valid host name.
    pub container_name: Option<String>,
    /// stdin and stdout are both terminals.
    pub terminal: bool,
    pub cpus: u32,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
        use std::io::IsTerminal;
        // The container's name where podman tells it (only --privileged containers get it in
        // /run/.containerenv), else the container's own hostname (podman run --hostname; by
        // default its ID, under docker too).
        let container_name = std::fs::read_to_string("/run/.containerenv")
            .ok()
            .and_then(|c| container_name(&c))
            .or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
            })
            .and_then(|n| crate::config::parse_hostname(&n).ok());
        HostFacts {
            caps: HostCaps::probe(),
            container_name,
            terminal: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        }
    }
}

/// The container's name, from podman's /run/.containerenv (only privileged containers get it).
pub fn container_name(containerenv: &str) -> Option<String> {
    containerenv
        .lines()
        .find_map(|l| l.strip_prefix("name=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_string)
        .filter(|n| !n.is_empty())
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub source: Source,
    /// `--storage`: the store's root, else the usual places (see `store::locate_store`).
    pub storage: Option<PathBuf>,
    pub writes: WritesTo,
    pub boot: BootOptions,
    pub resources: Resources,
    pub guest: Guest,
    pub session: Session,
}

/// The kind of root, as far as [`Plan::admit`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootShape {
    /// A tree booted by its kernel (store image or directory).
    Tree,
    /// A disk image booted by firmware (`--disk-image` or a containerDisk).
    Disk,
}

/// The plan for `bcvk run`'s options on this host.
pub fn make(args: &RunArgs, host: &HostFacts) -> Result<Plan, PlanError> {
    let one_shot = !args.command.is_empty() || args.execute.is_some();
    if args.console && one_shot {
        return Err(usage("--console cannot be combined with a command: the console and the command would share the terminal"));
    }
    let source = source(args)?;
    if args.bind_storage_ro && matches!(source, Source::DiskImage { .. }) {
        return Err(usage("--bind-storage-ro shares the store an IMAGE came from; with --disk-image there is none: mount it with --ro-bind"));
    }
    if matches!(source, Source::DiskImage { .. }) && !args.kargs.is_empty() {
        return Err(karg_on_disk());
    }
    let (accel, accel_warning) = choose_accel(args.accel, &host.caps)?;
    Ok(Plan {
        writes: match (args.persistent, &args.scratch) {
            (true, _) => WritesTo::Persistent {
                state: args.state.clone(),
                reset: args.reset,
            },
            (false, scratch) => WritesTo::Throwaway {
                scratch: scratch.clone(),
            },
        },
        boot: BootOptions {
            initrd: args.initrd,
            firmware: args.firmware,
            kargs: args.kargs.clone(),
        },
        resources: resources(args, host, accel, accel_warning),
        guest: guest(args, host),
        session: session(args, host, accel, one_shot),
        source,
        storage: args.storage.clone(),
    })
}

fn source(args: &RunArgs) -> Result<Source, PlanError> {
    Ok(match (&args.disk_image, &args.rootfs, &args.image) {
        (Some(file), _, _) => Source::DiskImage { file: file.clone() },
        (None, Some(dir), image) => Source::Directory {
            dir: dir.clone(),
            name: image.clone().unwrap_or_else(|| dir.display().to_string()),
        },
        (None, None, Some(image)) => Source::StoreImage {
            image: image.clone(),
        },
        (None, None, None) => {
            return Err(usage(
                "no image given: name an IMAGE from the store, or pass --rootfs DIR",
            ))
        }
    })
}

fn karg_on_disk() -> PlanError {
    usage("--karg: a disk image boots with its bootloader's kernel command line; drop --karg (or change the image's bootloader configuration)")
}

fn resources(
    args: &RunArgs,
    host: &HostFacts,
    accel: Accel,
    accel_warning: Option<String>,
) -> Resources {
    let size = &args.size;
    let (vcpus, memory_mib) = match size.itype {
        Some(t) => (
            size.vcpus.unwrap_or(t.vcpus),
            size.memory.unwrap_or(t.memory_mib),
        ),
        None => (
            size.vcpus.unwrap_or(host.cpus.clamp(1, 4)),
            size.memory.unwrap_or(4096),
        ),
    };
    Resources {
        accel,
        accel_warning,
        tcg_fallback: args.accel == AccelArg::Auto && accel == Accel::Kvm,
        cpu: args.cpu.clone(),
        vcpus,
        memory_mib,
    }
}

fn guest(args: &RunArgs, host: &HostFacts) -> Guest {
    Guest {
        binds: args.bind.iter().chain(&args.ro_bind).cloned().collect(),
        bind_storage_ro: args.bind_storage_ro,
        systemd_units: args.systemd_units.clone(),
        swap_bytes: args.add_swap,
        disk_files: args.mount_disk_file.clone(),
        ports: args.ports.clone(),
        net_isolated: args.net == NetArg::None,
        serial_outs: args.virtio_serial_out.clone(),
        root_cache: args.virtiofs_cache,
        hostname: args
            .hostname
            .clone()
            .or_else(|| host.container_name.clone()),
        ssh_key: args.ssh_key.clone(),
        password: args.password.clone(),
        cloud_init: args.cloud_init.clone(),
        ignition: args.ignition.clone(),
        log_dir: args.log_dir.clone(),
    }
}

fn session(args: &RunArgs, host: &HostFacts, accel: Accel, one_shot: bool) -> Session {
    let command = match (&args.execute, args.command.is_empty()) {
        (Some(e), _) => Some(crate::ssh::one_shot_remote(e)),
        (None, false) => Some(crate::ssh::one_shot_remote(&crate::ssh::remote_command(
            &args.command,
        ))),
        (None, true) => None,
    };
    Session {
        command,
        command_tty: if host.terminal { Tty::Yes } else { Tty::No },
        // One-shot: stdout belongs to the command; interactive: QEMU owns the terminal.
        echo: if args.console {
            Echo::None
        } else if args.console_stderr {
            Echo::Stderr
        } else if one_shot {
            Echo::None
        } else {
            Echo::Stdout
        },
        interactive_console: args.console,
        ready_timeout: ready_timeout(args.ready_timeout, accel),
        fallback_ready_timeout: ready_timeout(args.ready_timeout, Accel::Tcg),
        // A one-shot run has no podman stop deadline to beat: let the guest shut down properly.
        stop_timeout: Duration::from_secs(args.stop_timeout.unwrap_or(if one_shot {
            30
        } else {
            8
        })),
        restart_on_stall: args.on_stall == OnStallArg::Restart,
        log_cmdline: args.log_cmdline || args.debug,
        debug: args.debug,
    }
}

/// `--ready-timeout`, or its default for the accelerator: upstream bcvk's 240 s with KVM, where
/// a boot takes seconds; 600 s under TCG, where it takes 30-40 s on an idle machine and minutes
/// on a loaded one.
pub fn ready_timeout(given: Option<u64>, accel: Accel) -> Duration {
    Duration::from_secs(given.unwrap_or(match accel {
        Accel::Kvm => 240,
        Accel::Tcg => 600,
    }))
}

impl Plan {
    /// A guest of `guest`'s architecture on this host: a foreign one boots under TCG, on
    /// purpose (returned: the one line that says so), unless `--accel kvm` demanded KVM (an
    /// auto choice of KVM is not a demand).
    pub fn for_guest_arch(
        &mut self,
        image: &str,
        guest: Arch,
    ) -> Result<Option<String>, ArchError> {
        let r = &mut self.resources;
        let kvm_demanded = r.accel == Accel::Kvm && !r.tcg_fallback;
        let notice = crate::arch::plan_emulation(image, guest, Arch::host(), kvm_demanded)?;
        if notice.is_some() {
            r.accel = Accel::Tcg;
            r.tcg_fallback = false;
            self.session.ready_timeout = self.session.fallback_ready_timeout;
        }
        Ok(notice)
    }

    /// The rules that depend on the kind of root, checked once it is known: `store` says
    /// whether the root came from a store, `user_seed` whether `--cloud-init` gave one.
    pub fn admit(&self, shape: RootShape, user_seed: bool) -> Result<(), PlanError> {
        if shape == RootShape::Disk && !self.boot.kargs.is_empty() {
            return Err(karg_on_disk());
        }
        // A disk image's guest is configured through cloud-init; a tree only with a user seed.
        let seeded = shape == RootShape::Disk || user_seed;
        if self.guest.password.is_some() && !seeded {
            return Err(usage("--password is set through cloud-init: it needs a disk image or --cloud-init DIR (a bootc image takes --ssh-key, or a user in the image)"));
        }
        Ok(())
    }
}
