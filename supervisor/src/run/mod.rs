//! `bcvk run`: turn the options into a VM plan, prepare it (store lookup, root file system,
//! kernel, key, credentials), run it, and clean up. Every step that can fail on bad input runs
//! before anything is started or mounted, and whatever was set up is undone on every path.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod root;

use crate::cli::{AccelArg, CacheArg, NetArg, OnStallArg, RunArgs};
use crate::console::Echo;
use crate::credentials::{self, Credential};
use crate::disk::{DiskError, Writes};
use crate::firstboot;
use crate::guestfs;
use crate::init::{self, Children, ExitInfo};
use crate::kernel::{BootFiles, KernelError};
use crate::opaque;
use crate::qemu::{
    self, Accel, BootSpec, ConsoleSpec, DiskFormat, DiskSpec, FwCfgFile, NetSpec, PortForward,
    QemuSpec, RootDevice, VirtiofsShare,
};
use crate::rootfs;
use crate::spawn::{self, SpawnError};
use crate::ssh::{self, SshTarget, Tty};
use crate::state;
use crate::status::{self, SshEndpoint, State, Status, Timings};
use crate::store::StoreError;
use crate::userns::{self, Privileges};
use crate::virtiofsd::{CacheMode, Sandbox, VirtiofsSpec};
use crate::vm::{self, Outcome, VmError, VmLaunch};

use root::{Prepared, Root, RootKind};

/// The tag of the root file system share; the kernel mounts it with `root=<tag>`.
pub const ROOT_TAG: &str = "rootfs";
/// The port QEMU forwards to the guest's sshd, inside the container only.
pub const SSH_PORT: u16 = 2222;
/// The container port of the readiness probe's forward to the guest's network (see
/// `readiness`).
pub const NET_PROBE_PORT: u16 = 2221;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error(transparent)]
    Credential(#[from] credentials::CredentialError),
    #[error(transparent)]
    Qemu(#[from] qemu::QemuError),
    #[error(transparent)]
    GuestFs(#[from] guestfs::GuestFsError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("--accel kvm: {0}")]
    KvmUnavailable(String),
    #[error("cannot prepare {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Privileges(#[from] userns::UsernsError),
    #[error(transparent)]
    Opaque(#[from] opaque::OpaqueError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    FirstBoot(#[from] firstboot::FirstBootError),
    #[error("stopped by {0} before the VM started")]
    StoppedEarly(nix::sys::signal::Signal),
}

impl RunError {
    /// The documented exit code (see `exit`): user mistakes are usage errors or "not found",
    /// `Internal` only for bcvk's own faults.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::Exit;
        use guestfs::GuestFsError;
        let class = match self {
            RunError::StoppedEarly(sig) => return 128 + *sig as i32,
            RunError::Vm(e) => return e.exit_code(),
            RunError::Usage(_)
            | RunError::Credential(_)
            | RunError::Qemu(_)
            | RunError::Store(StoreError::ParseReference { .. })
            | RunError::Rootfs(
                rootfs::RootfsError::ScratchDir { .. }
                | rootfs::RootfsError::UnsafePath { .. }
                | rootfs::RootfsError::NoSource,
            )
            | RunError::GuestFs(
                GuestFsError::MissingSource { .. }
                | GuestFsError::Units { .. }
                | GuestFsError::DuplicateShare(_)
                | GuestFsError::PortTaken(_),
            )
            // A `--ssh-key` that is missing, unreadable or not a key: a mistake in an
            // option, as for a missing `--bind` directory (not an image "not found").
            | RunError::Ssh(
                ssh::SshError::BadPublicKey { .. } | ssh::SshError::ReadPublicKey { .. },
            )
            | RunError::State(state::StateError::NoDir(_) | state::StateError::OtherImage { .. }) => {
                Exit::Usage
            }
            RunError::Store(
                StoreError::ImageNotFound { .. }
                | StoreError::Ambiguous { .. }
                | StoreError::Locate { .. },
            )
            | RunError::Rootfs(rootfs::RootfsError::RootDir { .. })
            | RunError::Kernel(
                KernelError::NoKernel { .. }
                | KernelError::Ambiguous { .. }
                | KernelError::BadUki { .. }
                | KernelError::SymlinkEscapes { .. }
                | KernelError::SymlinkLoop { .. },
            ) => Exit::NotFound,
            RunError::Store(_)
            | RunError::Opaque(_)
            | RunError::State(state::StateError::Corrupt { .. }) => Exit::StoreCorrupt,
            RunError::State(state::StateError::Busy(_)) => Exit::StateBusy,
            RunError::Privileges(userns::UsernsError::Unshare(_) | userns::UsernsError::Map(_))
            | RunError::Rootfs(rootfs::RootfsError::Whiteout { .. }) => Exit::Refused,
            RunError::KvmUnavailable(_) => Exit::Unavailable,
            RunError::Disk(e) => e.exit(),
            // beneath.rs refuses a symlink of the image on the way as InvalidData: the image's
            // layout, not bcvk's fault.
            RunError::GuestFs(GuestFsError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                Exit::StoreCorrupt
            }
            RunError::FirstBoot(firstboot::FirstBootError::Seed { .. }) => Exit::Internal,
            RunError::FirstBoot(_) => Exit::Usage,
            RunError::Rootfs(_)
            | RunError::Kernel(KernelError::Read { .. } | KernelError::Write { .. })
            | RunError::Ssh(_)
            | RunError::GuestFs(GuestFsError::Write { .. } | GuestFsError::Disk { .. })
            | RunError::Spawn(_)
            | RunError::RunDir { .. }
            | RunError::Privileges(_)
            | RunError::State(state::StateError::Io { .. }) => Exit::Internal,
        };
        class.code()
    }

    pub fn console_tail(&self) -> &[String] {
        match self {
            RunError::Vm(e) => e.console_tail(),
            _ => &[],
        }
    }
}

/// What the host offers for acceleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCaps {
    /// Ok when /dev/kvm opens read-write; else why not.
    pub kvm_device: Result<(), String>,
    /// /proc/cpuinfo lists vmx or svm.
    pub cpu_virt_flags: bool,
}

impl HostCaps {
    pub fn probe() -> HostCaps {
        let kvm_device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "/dev/kvm does not exist in the container: add --device /dev/kvm to the podman (or docker) run command".to_string(),
                std::io::ErrorKind::PermissionDenied => "/dev/kvm is not accessible (permission denied): make it usable by the container's user on the host (0666, as a udev rule does on ubuntu runners), or with rootless podman and a /dev/kvm of group kvm add --group-add keep-groups".to_string(),
                _ => format!("/dev/kvm cannot be opened: {e}"),
            });
        let cpu_virt_flags = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| cpu_has_virt_flags(&c))
            .unwrap_or(false);
        HostCaps {
            kvm_device,
            cpu_virt_flags,
        }
    }
}

pub fn cpu_has_virt_flags(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Pick the accelerator. `auto` takes KVM only when the device opens AND the CPU shows
/// hardware virtualization: a /dev/kvm without vmx/svm (a paravirtual or broken nested KVM)
/// makes QEMU abort or pause on stock kernels. The warning says which and why.
pub fn choose_accel(req: AccelArg, caps: &HostCaps) -> Result<(Accel, Option<String>), RunError> {
    match req {
        AccelArg::Tcg => Ok((Accel::Tcg, None)),
        AccelArg::Kvm => match &caps.kvm_device {
            Ok(()) => {
                let warn = (!caps.cpu_virt_flags).then(|| "the CPU reports no vmx/svm flags: KVM may fail to run the guest; --accel auto would use TCG".to_string());
                Ok((Accel::Kvm, warn))
            }
            Err(why) => Err(RunError::KvmUnavailable(why.clone())),
        },
        AccelArg::Auto => match (&caps.kvm_device, caps.cpu_virt_flags) {
            (Ok(()), true) => Ok((Accel::Kvm, None)),
            (Ok(()), false) => Ok((Accel::Tcg, Some("/dev/kvm exists but the CPU reports no vmx/svm virtualization flags (nested virtualization off, or a paravirtual KVM that cannot run stock kernels): using TCG software emulation, boots take minutes; --accel kvm forces KVM".into()))),
            (Err(why), _) => Ok((Accel::Tcg, Some(format!("KVM unavailable ({why}): using TCG software emulation, boots take minutes")))),
        },
    }
}

/// `--ready-timeout`, or its default for the accelerator: upstream bcvk's 240 s with KVM, where
/// a boot takes seconds; 600 s under TCG, where it takes 30-40 s on an idle machine and minutes
/// on a loaded one.
pub fn ready_timeout(args: &RunArgs, accel: Accel) -> Duration {
    Duration::from_secs(args.ready_timeout.unwrap_or(match accel {
        Accel::Kvm => 240,
        Accel::Tcg => 600,
    }))
}

/// The initrd to boot: with `--log-dir`'s journal, a copy that streams the initrd's journal
/// too ([`crate::logdir::initrd_with_stream`]).
fn initrd_for_log_dir(
    boot: &BootFiles,
    args: &RunArgs,
    run_dir: &Path,
) -> Result<Option<PathBuf>, RunError> {
    match (&boot.initrd, &args.log_dir) {
        (Some(initrd), Some(log)) if log.journal => {
            // In boot/, which the run's cleanup removes.
            let dir = run_dir.join("boot");
            std::fs::create_dir_all(&dir).map_err(run_dir_err(&dir))?;
            let dest = dir.join("initrd-log-dir.img");
            crate::logdir::initrd_with_stream(initrd, &dest).map_err(run_dir_err(&dest))?;
            Ok(Some(dest))
        }
        (initrd, _) => Ok(initrd.clone()),
    }
}

/// The kernel command line: root from the virtiofs share, console on the serial port, and a
/// panic ends the VM (with QEMU's -no-reboot) instead of hanging it.
pub fn kernel_cmdline(boot: &BootFiles, kargs: &[String]) -> Vec<String> {
    let mut c: Vec<String> = vec![
        format!("root={ROOT_TAG}"),
        "rootfstype=virtiofs".into(),
        "rw".into(),
        "console=ttyS0".into(),
        "panic=-1".into(),
        // The root has no SELinux labels (virtiofs over an overlay of the layers).
        "selinux=0".into(),
    ];
    if boot.initrd.is_none() {
        // Without an initramfs the kernel mounts the virtiofs root itself and execs init.
        c.push("init=/sbin/init".into());
    }
    c.extend(kargs.iter().cloned());
    c
}

pub fn default_vcpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .min(4)
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

pub(crate) fn run_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::RunDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Prepare the run directory: a fresh one each run (a restarted container must not see the
/// previous run's sockets, key or status).
fn fresh_run_dir(run_dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(run_dir).map_err(run_dir_err(run_dir))?;
    for entry in std::fs::read_dir(run_dir)
        .map_err(run_dir_err(run_dir))?
        .flatten()
    {
        let p = entry.path();
        // A leftover mount from a crashed run would make remove_dir_all fail; try to unmount.
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
    Ok(())
}

/// Run the VM; returns the container's exit code.
pub fn run(args: RunArgs) -> Result<i32, RunError> {
    let started = Instant::now();
    // A restarted container (podman start) still has the last run's status: gone first, so
    // that `bcvk status --wait` never reports the old run as this one.
    let _ = std::fs::remove_file(Path::new(status::RUN_DIR).join(status::STATUS_FILE));
    // Before the runtime: a process with threads cannot enter a new user namespace.
    let privileges = userns::acquire()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::RunDir {
            path: "tokio runtime".into(),
            source: e,
        })?;
    rt.block_on(async move {
        init::become_subreaper();
        let children = Children::default();
        let mut requests = init::start(children.clone()).map_err(|e| RunError::RunDir {
            path: "signal handlers".into(),
            source: e,
        })?;
        let run_dir = PathBuf::from(status::RUN_DIR);
        let mut prepared = Prepared::new(&run_dir);
        let result = async {
            let launch = prepare(&args, &privileges, &run_dir, &mut prepared, started)?;
            if let Ok(init::Request::Stop(sig)) = requests.try_recv() {
                return Err(RunError::StoppedEarly(sig));
            }
            if args.debug {
                return debug_shell(&launch);
            }
            let retry = (args.accel == AccelArg::Auto)
                .then(|| launch.qemu.under_tcg(args.cpu.as_deref()))
                .flatten()
                .map(|qemu| (launch.clone(), qemu));
            let outcome = run_vm(&args, launch, retry, &children, &mut requests).await?;
            Ok(match outcome {
                Outcome::PoweredOff => {
                    tracing::info!("the guest powered off");
                    0
                }
                Outcome::Stopped(sig) if args.command.is_empty() && args.execute.is_none() => {
                    tracing::info!(signal = %sig, "VM stopped");
                    0
                }
                Outcome::Stopped(sig) => 128 + sig as i32,
                Outcome::CommandExited(exit) => exit_code_of(exit),
            })
        }
        .await;
        prepared.cleanup();
        result
    })
}

/// Run the VM, starting it over when it may: under TCG after KVM failed to run it (`retry`),
/// and once after a stalled boot when `--on-stall restart` (see `vm::restart_after_stall`).
async fn run_vm(
    args: &RunArgs,
    mut launch: VmLaunch,
    mut retry: Option<(VmLaunch, qemu::QemuSpec)>,
    children: &Children,
    requests: &mut tokio::sync::mpsc::UnboundedReceiver<init::Request>,
) -> Result<Outcome, RunError> {
    let mut restarts = 0;
    loop {
        // A stalled boot ends before ready (the watch runs only until then): nothing of the
        // user's ran in it, no command started, nobody connected.
        launch.restart_if_stalled =
            vm::restart_after_stall(args.on_stall == OnStallArg::Restart, restarts, false);
        match vm::run(launch.clone(), children.clone(), requests).await {
            Err(VmError::Kvm {
                detail,
                ready: false,
                ..
            }) if retry.is_some() => {
                let (mut next, qemu) = retry.take().expect("checked");
                tracing::warn!("KVM cannot run this guest ({detail}): falling back to TCG software emulation, boots take minutes; fix KVM (nested virtualization) or pass --accel tcg to skip the attempt");
                if args.log_cmdline {
                    eprintln!(
                        "qemu (TCG fallback): {}",
                        spawn::shell_line(&next.qemu_bin, &qemu::qemu_args(&qemu))
                    );
                }
                next.status.accel = qemu.accel.name().into();
                next.ready_timeout = ready_timeout(args, qemu.accel);
                next.qemu = qemu;
                launch = next;
            }
            Err(VmError::GuestStalled { sign, phase, .. }) if launch.restart_if_stalled => {
                restarts += 1;
                tracing::warn!("the guest's kernel stalled in the {} phase ({sign}): restarting the VM once with a fresh QEMU (--on-stall restart)", phase.label());
            }
            Err(VmError::GuestStalled {
                sign, phase, tail, ..
            }) => {
                return Err(VmError::GuestStalled {
                    sign,
                    phase,
                    restarted: restarts > 0,
                    tail,
                }
                .into())
            }
            result => return Ok(result?),
        }
    }
}

fn exit_code_of(exit: ExitInfo) -> i32 {
    exit.code().clamp(0, 255)
}

fn prepare(
    args: &RunArgs,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
    started: Instant,
) -> Result<VmLaunch, RunError> {
    let one_shot = !args.command.is_empty() || args.execute.is_some();
    if args.console && one_shot {
        return Err(RunError::Usage("--console cannot be combined with a command: the console and the command would share the terminal".into()));
    }
    let (accel, warning) = choose_accel(args.accel, &HostCaps::probe())?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let (vcpus, memory_mib) = match args.itype {
        Some(t) => (
            args.vcpus.unwrap_or(t.vcpus),
            args.memory.unwrap_or(t.memory_mib),
        ),
        None => (
            args.vcpus.unwrap_or_else(default_vcpus),
            args.memory.unwrap_or(4096),
        ),
    };
    let virtiofsd_bin = spawn::find_program("virtiofsd")?;
    let qemu_bin = spawn::find_program("qemu-system-x86_64")?;
    // Fail now, not at readiness, if the image lacks the ssh client.
    spawn::find_program("ssh")?;
    // The user's first-boot files are read (and refused) before anything is mounted.
    let user_seed = args
        .cloud_init
        .as_deref()
        .map(firstboot::read_user_seed)
        .transpose()?;
    let ignition = match &args.ignition {
        Some(f) => Some((
            f.clone(),
            std::fs::read_to_string(f).map_err(|e| firstboot::FirstBootError::Ignition {
                file: f.clone(),
                why: format!("cannot read it ({e}): bring it in with podman -v HOSTFILE:FILE:ro"),
            })?,
        )),
        None => None,
    };

    fresh_run_dir(run_dir)?;
    let root = root::prepare(args, privileges, run_dir, prepared)?;
    let guest = guestfs::plan(&guestfs::GuestConfig {
        binds: args.bind.iter().chain(&args.ro_bind).cloned().collect(),
        bind_storage: args
            .bind_storage_ro
            .then(|| root.store_root.clone())
            .flatten(),
        // Disk images get their units through cloud-init (below).
        systemd_units: match root.kind {
            RootKind::Tree { .. } => args.systemd_units.clone(),
            RootKind::Disk { .. } => None,
        },
        swap: args.add_swap.is_some(),
        ports: args.ports.clone(),
        ssh_port: SSH_PORT,
        probe_port: NET_PROBE_PORT,
    })?;
    if matches!(root.kind, RootKind::Disk { .. }) && !args.kargs.is_empty() {
        return Err(RunError::Usage("--karg: a disk image boots with its bootloader's kernel command line; drop --karg (or change the image's bootloader configuration)".into()));
    }
    if args.bind_storage_ro && root.store_root.is_none() {
        return Err(RunError::Usage("--bind-storage-ro shares the store an IMAGE came from; with --disk-image there is none: mount it with --ro-bind".into()));
    }

    let mut creds: Vec<Credential> = Vec::new();
    let own = match &prepared.state {
        Some(st) => ssh::key_from_seed(&run_dir.join("ssh"), "bcvk", st.ssh_seed()?)?,
        None => ssh::generate_key(&run_dir.join("ssh"), "bcvk")?,
    };
    let (public_key, private_key) = match &args.ssh_key {
        // The user's own key authorizes them; bcvk still needs its own for readiness and
        // `bcvk ssh`, so both are authorized.
        Some(user_key) => {
            let theirs = ssh::read_public_key(user_key)?;
            (format!("{}\n{}", own.public_line, theirs), own.private)
        }
        None => (own.public_line, own.private),
    };
    let keys: Vec<&str> = public_key.lines().collect();
    creds.extend(credentials::ssh_key_credentials(&keys)?);
    // Else the container's name where podman tells it (only --privileged containers get it in
    // /run/.containerenv), else the container's own hostname (podman run --hostname; by
    // default its ID, under docker too).
    let hostname = args.hostname.clone().or_else(|| {
        std::fs::read_to_string("/run/.containerenv")
            .ok()
            .and_then(|c| container_name(&c))
            .or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
            })
            .and_then(|n| crate::config::parse_hostname(&n).ok())
    });
    if let Some(h) = &hostname {
        creds.push(credentials::hostname_credential(h)?);
    }
    // virtiofsd's namespace sandbox needs pivot_root; where the engine forbids it, the
    // container already confines virtiofsd and its chroot sandbox is what remains.
    // It needs a new /proc too, which an engine that masks parts of /proc refuses.
    let sandbox = if privileges.pivot_root && privileges.proc_mount {
        Sandbox::Namespace
    } else if !privileges.pivot_root {
        tracing::info!("pivot_root is refused here (docker's seccomp profile does): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    } else {
        tracing::info!("no new /proc can be mounted here (no fully visible proc mount: the engine masks parts of /proc): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    };
    let share_spec = |tag: &str, dir: &Path, readonly: bool, cache: CacheMode| VirtiofsSpec {
        socket: run_dir.join(format!("vfs-{tag}.sock")),
        shared_dir: dir.to_path_buf(),
        readonly,
        cache,
        sandbox,
        xattr: true,
        rlimit_nofile: nofile_hard_limit(),
        thread_pool_size: None,
        log_level: "warn".into(),
    };
    let mut shares: Vec<(String, VirtiofsSpec)> = Vec::new();
    let mut disks = guestfs::prepare_disks(args.add_swap, &args.mount_disk_file, run_dir)?;
    let mut fw_cfg = Vec::new();
    let seed_keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    // The kind of root and the kind of boot, in one place.
    let (qemu_root, qemu_boot, needs_seed) = match &root.kind {
        RootKind::Tree { dir, boot } => {
            if let Some(st) = prepared.state.as_mut() {
                // Last run's units (shares, swap, ...) go, so that only this run's options hold.
                for rel in &st.record.generated {
                    guestfs::remove_generated(dir, rel);
                }
                st.record_generated(guest.generated_paths())?;
            }
            guestfs::apply(&guest, dir)?;
            let cache = match args.virtiofs_cache {
                CacheArg::Auto => CacheMode::Auto,
                CacheArg::Always => CacheMode::Always,
                CacheArg::Never => CacheMode::Never,
                CacheArg::Metadata => CacheMode::Metadata,
            };
            shares.push((ROOT_TAG.into(), share_spec(ROOT_TAG, dir, false, cache)));
            let root_dev = RootDevice::Share(VirtiofsShare {
                tag: ROOT_TAG.into(),
                socket: shares[0].1.socket.clone(),
            });
            let boot = BootSpec::Kernel {
                kernel: boot.kernel.clone(),
                initrd: initrd_for_log_dir(boot, args, run_dir)?,
                cmdline: kernel_cmdline(boot, &args.kargs),
            };
            // A bootc image with cloud-init reads a seed only when the user gives one.
            (root_dev, boot, user_seed.is_some())
        }
        RootKind::Disk {
            disk,
            writes,
            firmware,
        } => {
            let (path, format) = match writes {
                Writes::Overlay(p) => (p.clone(), DiskFormat::Qcow2),
                Writes::InPlace => (disk.path.clone(), disk.format),
            };
            let root_dev = RootDevice::Disk(DiskSpec {
                path,
                format,
                serial: "bcvk-root".into(),
                readonly: false,
            });
            (root_dev, BootSpec::Firmware(firmware.clone()), true)
        }
    };
    for share in &guest.shares {
        shares.push((
            share.tag.clone(),
            share_spec(&share.tag, &share.source, share.readonly, CacheMode::Auto),
        ));
    }
    if needs_seed {
        let fb = first_boot(args, &root, &guest, hostname.clone(), seed_keys.clone())?;
        let files = firstboot::seed_files(&fb, user_seed.as_ref())?;
        let seed_dir = run_dir.join("seed");
        std::fs::create_dir_all(&seed_dir).map_err(run_dir_err(&seed_dir))?;
        let seed = seed_dir.join("cidata.img");
        firstboot::write_seed_image(&seed, &files)?;
        disks.push(DiskSpec {
            path: seed,
            format: DiskFormat::Raw,
            serial: "cidata".into(),
            readonly: true,
        });
    } else if args.password.is_some() {
        return Err(RunError::Usage("--password is set through cloud-init: it needs a disk image or --cloud-init DIR (a bootc image takes --ssh-key, or a user in the image)".into()));
    }
    if let Some((file, text)) = &ignition {
        let cfg = firstboot::ignition_config(file, text, &seed_keys)?;
        let seed_dir = run_dir.join("seed");
        std::fs::create_dir_all(&seed_dir).map_err(run_dir_err(&seed_dir))?;
        let path = seed_dir.join("ignition.json");
        std::fs::write(&path, cfg).map_err(run_dir_err(&path))?;
        fw_cfg.push(FwCfgFile {
            name: firstboot::IGNITION_FW_CFG.into(),
            file: path,
        });
    }
    let smbios = credentials::smbios_args(&creds);
    let cpu = args
        .cpu
        .clone()
        .unwrap_or_else(|| qemu::default_cpu(accel).into());
    let mut forwards = vec![PortForward {
        host_addr: Some(std::net::Ipv4Addr::LOCALHOST),
        host_port: SSH_PORT,
        guest_port: 22,
    }];
    forwards.push(PortForward {
        host_addr: Some(std::net::Ipv4Addr::LOCALHOST),
        host_port: NET_PROBE_PORT,
        guest_port: crate::readiness::NET_PROBE_GUEST_PORT,
    });
    forwards.extend(args.ports.iter().map(|p| PortForward {
        host_addr: None,
        host_port: p.host_port,
        guest_port: p.guest_port,
    }));
    let qemu_spec = QemuSpec {
        accel,
        cpu,
        vcpus,
        memory_mib,
        root: qemu_root,
        boot: qemu_boot,
        extra_shares: shares
            .iter()
            .filter(|(tag, _)| tag != ROOT_TAG)
            .map(|(tag, s)| VirtiofsShare {
                tag: tag.clone(),
                socket: s.socket.clone(),
            })
            .collect(),
        fw_cfg,
        // --net none keeps a NIC for bcvk's own SSH forward only: restrict=on isolates the
        // guest from the container's network and everything beyond it.
        net: NetSpec::User {
            forwards,
            restrict: args.net == NetArg::None,
        },
        smbios,
        disks,
        serial_outs: args
            .virtio_serial_out
            .iter()
            .map(|s| qemu::SerialOutSpec {
                name: s.name.clone(),
                path: s.file.clone(),
            })
            .collect(),
        console: ConsoleSpec::Stdio {
            interactive: args.console,
        },
        qmp_socket: run_dir.join("qmp.sock"),
        rng: true,
    };
    qemu_spec.validate()?;
    if args.log_cmdline || args.debug {
        for (_, s) in &shares {
            eprintln!(
                "virtiofsd: {}",
                spawn::shell_line(&virtiofsd_bin, &crate::virtiofsd::virtiofsd_args(s))
            );
        }
        eprintln!(
            "qemu: {}",
            spawn::shell_line(&qemu_bin, &qemu::qemu_args(&qemu_spec))
        );
    }
    let command = if let Some(e) = &args.execute {
        Some(ssh::one_shot_remote(e))
    } else if !args.command.is_empty() {
        Some(ssh::one_shot_remote(&ssh::remote_command(&args.command)))
    } else {
        None
    };
    let status = Status {
        state: State::Starting,
        image: root.name.clone(),
        image_id: root.id.clone(),
        accel: accel.name().into(),
        name: hostname.clone(),
        vcpus,
        memory_mib,
        phase: crate::console::Phase::Firmware.label().into(),
        started_at: status::now_unix(),
        timings: Timings::default(),
        ssh: SshEndpoint {
            host: "127.0.0.1".into(),
            port: SSH_PORT,
            user: "root".into(),
            key: private_key.clone(),
        },
        exit_code: None,
        message: None,
    };
    status::write(run_dir, &status).map_err(|e| RunError::RunDir {
        path: run_dir.join(status::STATUS_FILE),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(VmLaunch {
        run_dir: run_dir.to_path_buf(),
        virtiofsd_bin,
        qemu_bin,
        shares,
        qemu: qemu_spec,
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
        console_log: run_dir.join("console.log"),
        console_copy: args.log_dir.as_ref().and_then(|l| l.console_file()),
        ssh: SshTarget {
            host: "127.0.0.1".into(),
            port: SSH_PORT,
            user: "root".into(),
            key: private_key,
        },
        net_probe_port: Some(NET_PROBE_PORT),
        command,
        command_tty: if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            Tty::Yes
        } else {
            Tty::No
        },
        ready_timeout: ready_timeout(args, accel),
        restart_if_stalled: false,
        // A one-shot run has no podman stop deadline to beat: let the guest shut down properly.
        stop_timeout: Duration::from_secs(args.stop_timeout.unwrap_or(if one_shot {
            30
        } else {
            8
        })),
        status,
        started,
    })
}

/// What bcvk adds to a cloud-init guest's first boot. A disk image's guest gets its shares,
/// swap and units this way (bcvk cannot write into its root); a bootc image gets them in its
/// root, and here only the keys, host name and password.
fn first_boot(
    args: &RunArgs,
    root: &Root,
    guest: &guestfs::GuestPlan,
    hostname: Option<String>,
    keys: Vec<String>,
) -> Result<firstboot::FirstBoot, RunError> {
    let mut fb = firstboot::FirstBoot {
        instance_id: match (&root.kind, args.persistent) {
            // A persistent disk keeps its identity: cloud-init's once-per-instance steps (host
            // keys, users) are not redone at every boot.
            (RootKind::Disk { disk, .. }, true) => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(disk.path.as_os_str().as_encoded_bytes());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("bcvk-{hex}")
            }
            _ => format!("bcvk-{:016x}", rand::random::<u64>()),
        },
        hostname,
        keys,
        password: args.password.clone(),
        ..firstboot::FirstBoot::default()
    };
    if let RootKind::Tree { .. } = root.kind {
        return Ok(fb);
    }
    for s in &guest.shares {
        let mut opts = String::from("defaults,nofail");
        if s.readonly {
            opts.push_str(",ro");
        }
        fb.mounts.push([
            s.tag.clone(),
            s.guest_path.display().to_string(),
            "virtiofs".into(),
            opts,
        ]);
    }
    if args.add_swap.is_some() {
        fb.mounts.push([
            "/dev/disk/by-id/virtio-swap".into(),
            "none".into(),
            "swap".into(),
            "sw,nofail".into(),
        ]);
    }
    if let Some(dir) = &args.systemd_units {
        for e in guestfs::unit_entries(dir)? {
            match e {
                guestfs::Entry::File { path, contents } => {
                    fb.files.push((Path::new("/").join(path), contents))
                }
                guestfs::Entry::Symlink { path, target } => {
                    if let Some(unit) = target.file_name() {
                        fb.start_units.push(unit.to_string_lossy().into_owned());
                    }
                    fb.links.push((Path::new("/").join(path), target));
                }
            }
        }
    }
    Ok(fb)
}

fn nofile_hard_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(_, hard)| hard)
        .filter(|h| *h != nix::sys::resource::RLIM_INFINITY)
}

/// `--debug`: everything is prepared; hand the container to a shell instead of QEMU.
fn debug_shell(launch: &VmLaunch) -> Result<i32, RunError> {
    use std::os::unix::process::CommandExt;
    eprintln!(
        "bcvk --debug: root {}, run directory {}; QEMU not started. Exit the shell to clean up.",
        match &launch.qemu.root {
            RootDevice::Share(_) => launch.shares[0].1.shared_dir.display(),
            RootDevice::Disk(d) => d.path.display(),
        },
        launch.run_dir.display()
    );
    let shell = spawn::find_program("bash").or_else(|_| spawn::find_program("sh"))?;
    let status = std::process::Command::new(&shell)
        .arg0("bash")
        .status()
        .map_err(|e| {
            RunError::Spawn(SpawnError::Start {
                role: spawn::Role::Qemu,
                program: shell.clone(),
                source: e,
            })
        })?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests;
