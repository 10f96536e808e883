//! `bcvk run`: turn the options into a VM plan, prepare it (store lookup, root file system,
//! kernel, key, credentials), run it, and clean up. Every step that can fail on bad input runs
//! before anything is started or mounted, and whatever was set up is undone on every path.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{AccelArg, CacheArg, InitrdArg, NetArg, RunArgs};
use crate::console::Echo;
use crate::credentials::{self, Credential};
use crate::guestfs;
use crate::init::{self, Children, ExitInfo};
use crate::kernel::{self, BootFiles, KernelError};
use crate::opaque;
use crate::qemu::{self, Accel, ConsoleSpec, NetSpec, PortForward, QemuSpec, VirtiofsShare};
use crate::rootfs::{self, MountedRootfs, RootSource, Scratch};
use crate::spawn::{self, SpawnError};
use crate::ssh::{self, SshTarget, Tty};
use crate::state::{self, PersistentState};
use crate::status::{self, SshEndpoint, State, Status, Timings};
use crate::store::{self, Store, StoreError};
use crate::userns::{self, Privileges};
use crate::virtiofsd::{CacheMode, Sandbox, VirtiofsSpec};
use crate::vm::{self, Outcome, VmError, VmLaunch};

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
    #[error("stopped by {0} before the VM started")]
    StoppedEarly(nix::sys::signal::Signal),
}

impl RunError {
    /// The documented exit code (see `cli::EXIT_CODES`).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_)
            | RunError::Credential(_)
            | RunError::Qemu(_)
            | RunError::Rootfs(
                rootfs::RootfsError::ScratchDir { .. }
                | rootfs::RootfsError::UnsafePath { .. }
                | rootfs::RootfsError::NoSource,
            ) => 64,
            RunError::Store(StoreError::ImageNotFound { .. })
            | RunError::Store(StoreError::Ambiguous { .. })
            | RunError::Store(StoreError::Locate { .. })
            | RunError::Kernel(KernelError::NoKernel { .. })
            | RunError::Rootfs(rootfs::RootfsError::RootDir { .. }) => 66,
            RunError::Store(_)
            | RunError::Opaque(_)
            | RunError::State(state::StateError::Corrupt { .. }) => 65,
            RunError::State(state::StateError::NoDir(_) | state::StateError::OtherImage { .. }) => {
                64
            }
            RunError::State(state::StateError::Busy(_)) => 73,
            RunError::Privileges(userns::UsernsError::Unshare(_) | userns::UsernsError::Map(_))
            | RunError::Rootfs(rootfs::RootfsError::Whiteout { .. }) => 77,
            RunError::KvmUnavailable(_) => 69,
            RunError::Vm(e) => e.exit_code(),
            RunError::StoppedEarly(sig) => 128 + *sig as i32,
            _ => 71,
        }
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

fn run_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
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

/// Everything `run` mounted or created, undone in reverse order.
struct Prepared {
    rootfs: Option<MountedRootfs>,
    /// A --persistent VM's state: locked until the root is unmounted.
    state: Option<PersistentState>,
    run_dir: PathBuf,
}

impl Prepared {
    fn cleanup(&mut self) {
        if let Some(r) = self.rootfs.take() {
            if let Err(e) = r.unmount() {
                tracing::warn!(error = %e, "cannot unmount the root file system");
            }
        }
        self.state = None;
        for leftover in ["ssh", "boot", "disks"] {
            let _ = std::fs::remove_dir_all(self.run_dir.join(leftover));
        }
    }
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
        let mut prepared = Prepared {
            rootfs: None,
            state: None,
            run_dir: run_dir.clone(),
        };
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
            let outcome = match (vm::run(launch, children.clone(), &mut requests).await, retry) {
                (Err(VmError::Kvm { detail, ready: false, .. }), Some((mut launch, qemu))) => {
                    tracing::warn!("KVM cannot run this guest ({detail}): falling back to TCG software emulation, boots take minutes; fix KVM (nested virtualization) or pass --accel tcg to skip the attempt");
                    if args.log_cmdline {
                        eprintln!(
                            "qemu (TCG fallback): {}",
                            spawn::shell_line(&launch.qemu_bin, &qemu::qemu_args(&qemu))
                        );
                    }
                    launch.status.accel = qemu.accel.name().into();
                    launch.qemu = qemu;
                    vm::run(launch, children.clone(), &mut requests).await?
                }
                (result, _) => result?,
            };
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
    // Look everything up before touching anything. A --rootfs directory needs no store.
    let source = RootSource::decide(args.image.as_deref(), args.rootfs.as_deref())?;
    let store_root = match source {
        RootSource::Dir { .. } if !args.bind_storage_ro => None,
        _ => Some(store::locate_store(args.storage.as_deref())?),
    };
    let (found, image_name, image_id) = match (&source, &store_root) {
        (RootSource::Store { image }, Some(store_root)) => {
            let store = Store::open(store_root)?;
            let image = store.resolve(image)?;
            tracing::info!(image = %image.name, id = %&image.id[..12], layers = image.layers.len(), mode = privileges.describe(), "image found");
            let (name, id) = (image.name.clone(), image.id.clone());
            (Some((store, image)), name, id)
        }
        (_, _) => {
            tracing::info!(rootfs = %source.name(), mode = privileges.describe(), "booting a root directory (--rootfs)");
            (None, source.name().to_string(), String::new())
        }
    };
    if !privileges.many_ids {
        tracing::warn!("the container maps a single user id: files of other owners in the image show as nobody (65534) in the guest; give the user subordinate ids (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER, then podman system migrate)");
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
    let guest = guestfs::plan(&guestfs::GuestConfig {
        binds: args.bind.iter().chain(&args.ro_bind).cloned().collect(),
        bind_storage: store_root.clone().filter(|_| args.bind_storage_ro),
        systemd_units: args.systemd_units.clone(),
        swap: args.add_swap.is_some(),
        ports: args.ports.clone(),
        ssh_port: SSH_PORT,
        probe_port: NET_PROBE_PORT,
    })?;
    let virtiofsd_bin = spawn::find_program("virtiofsd")?;
    let qemu_bin = spawn::find_program("qemu-system-x86_64")?;
    // Fail now, not at readiness, if the image lacks the ssh client.
    spawn::find_program("ssh")?;

    fresh_run_dir(run_dir)?;
    if args.persistent {
        let st = state::open(&args.state, &image_id, &image_name, args.reset)?;
        tracing::info!(
            dir = %st.dir.display(),
            "{} the persistent state",
            if st.fresh { "created" } else { "reusing" }
        );
        prepared.state = Some(st);
    }
    let scratch = match (&prepared.state, &args.scratch) {
        (Some(st), _) => Scratch::Persistent {
            upper: st.upper(),
            work: st.work(),
        },
        (None, Some(dir)) => Scratch::Dir(dir.clone()),
        (None, None) => Scratch::Tmpfs { size_bytes: None },
    };
    // Without CAP_SYS_ADMIN in the host's user namespace the overlay can use only user.*
    // xattrs: a rootful store's trusted.* opaque marks are then emulated (see `opaque`).
    // A persistent upper always keeps user.* xattrs, so that it serves in every mode.
    let mode_userxattr = !privileges.trusted_xattrs() || args.persistent;
    let plan = match (&found, &source) {
        (Some((store, image)), _) => {
            let userxattr = image.userxattr || mode_userxattr;
            let emulations = if userxattr && image.driver == store::Driver::Overlay {
                opaque::plan(store.root(), &image.layers)?
            } else {
                Vec::new()
            };
            rootfs::plan_rootfs(image, run_dir, scratch, userxattr, &emulations)
        }
        (None, RootSource::Dir { dir, .. }) => {
            rootfs::plan_rootfs_dir(dir, run_dir, scratch, mode_userxattr)
        }
        (None, RootSource::Store { .. }) => unreachable!("a store image is always looked up"),
    };
    prepared.rootfs = Some(rootfs::apply_rootfs(&plan)?);
    let root = prepared
        .rootfs
        .as_ref()
        .expect("mounted")
        .root()
        .to_path_buf();
    if let RootSource::Dir { dir, .. } = &source {
        for marker in rootfs::remove_engine_markers(&root)? {
            tracing::info!(file = %marker.display(), from = %dir.display(), "hidden from the guest: a container engine's marker, copied with the root, would make systemd think it runs in a container");
        }
    }
    let mut boot = kernel::find_boot_files(&root, &image_name, &run_dir.join("boot"))?;
    let builtin = kernel::virtiofs_builtin(&root, &boot.version);
    match args.initrd {
        InitrdArg::Auto if builtin && boot.initrd.is_some() => {
            tracing::info!("the kernel has virtiofs built in: booting straight into the image's init, without the initramfs (--initrd yes to use it)");
            boot.initrd = None;
        }
        InitrdArg::No if !builtin => {
            return Err(RunError::Usage(format!("--initrd no: kernel {} of {} does not have virtiofs built in, so it cannot mount the root without its initramfs; use --initrd auto", boot.version, image_name)));
        }
        InitrdArg::No => boot.initrd = None,
        InitrdArg::Yes if boot.initrd.is_none() => {
            return Err(RunError::Usage(format!(
                "--initrd yes: {} has no initramfs.img beside its kernel",
                image_name
            )));
        }
        _ => {}
    }
    if boot.initrd.is_none() && !builtin {
        return Err(RunError::Usage(format!("{} has no initramfs and its kernel lacks built-in virtiofs: the root cannot be mounted; add an initramfs with dracut's virtiofs module", image_name)));
    }
    for why in &boot.skipped {
        tracing::warn!("no bootable kernel in {why}");
    }
    if !boot.others.is_empty() || !boot.skipped.is_empty() {
        tracing::info!(chosen = %boot.version, older = ?boot.others, "booting the newest bootable kernel");
    }
    tracing::info!(kernel = %boot.kernel.display(), initrd = ?boot.initrd, "kernel found");

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
    if let Some(st) = prepared.state.as_mut() {
        // Last run's units (shares, swap, ...) go, so that only this run's options hold.
        for rel in &st.record.generated {
            guestfs::remove_generated(&root, rel);
        }
        st.record_generated(guest.generated_paths())?;
    }
    guestfs::apply(&guest, &root)?;
    let disks = guestfs::prepare_disks(args.add_swap, &args.mount_disk_file, run_dir)?;

    // virtiofsd's namespace sandbox needs pivot_root and a new /proc; where the engine
    // forbids either, the container already confines virtiofsd and its chroot sandbox is what
    // remains.
    let sandbox = if privileges.pivot_root && privileges.proc_mount {
        Sandbox::Namespace
    } else if !privileges.pivot_root {
        tracing::info!("pivot_root is refused here (docker's seccomp profile does): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    } else {
        tracing::info!("no new /proc can be mounted here (no fully visible proc mount: the engine masks parts of /proc): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    };
    let mut shares = vec![(
        ROOT_TAG.to_string(),
        VirtiofsSpec {
            socket: run_dir.join("vfs-rootfs.sock"),
            shared_dir: root.clone(),
            readonly: false,
            cache: match args.virtiofs_cache {
                CacheArg::Auto => CacheMode::Auto,
                CacheArg::Always => CacheMode::Always,
                CacheArg::Never => CacheMode::Never,
                CacheArg::Metadata => CacheMode::Metadata,
            },
            sandbox,
            xattr: true,
            rlimit_nofile: nofile_hard_limit(),
            thread_pool_size: None,
            log_level: "warn".into(),
        },
    )];
    for share in &guest.shares {
        shares.push((
            share.tag.clone(),
            VirtiofsSpec {
                socket: run_dir.join(format!("vfs-{}.sock", share.tag)),
                shared_dir: share.source.clone(),
                readonly: share.readonly,
                cache: CacheMode::Auto,
                sandbox,
                xattr: true,
                rlimit_nofile: nofile_hard_limit(),
                thread_pool_size: None,
                log_level: "warn".into(),
            },
        ));
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
        kernel: boot.kernel.clone(),
        initrd: boot.initrd.clone(),
        cmdline: kernel_cmdline(&boot, &args.kargs),
        root_share: VirtiofsShare {
            tag: ROOT_TAG.into(),
            socket: shares[0].1.socket.clone(),
        },
        extra_shares: shares[1..]
            .iter()
            .map(|(tag, s)| VirtiofsShare {
                tag: tag.clone(),
                socket: s.socket.clone(),
            })
            .collect(),
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
        image: image_name.clone(),
        image_id: image_id.clone(),
        accel: accel.name().into(),
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
        ready_timeout: Duration::from_secs(args.ready_timeout),
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
        "bcvk --debug: root file system at {}, run directory {}; QEMU not started. Exit the shell to clean up.",
        launch.shares[0].1.shared_dir.display(),
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
mod tests {
    use super::*;

    fn caps(kvm: bool, flags: bool) -> HostCaps {
        HostCaps {
            kvm_device: if kvm {
                Ok(())
            } else {
                Err(
                    "/dev/kvm does not exist in the container: add --device /dev/kvm to the podman (or docker) run command"
                        .into(),
                )
            },
            cpu_virt_flags: flags,
        }
    }

    #[test]
    fn accel_auto_uses_kvm_only_when_it_can_run_the_guest() {
        assert_eq!(
            choose_accel(AccelArg::Auto, &caps(true, true)).unwrap(),
            (Accel::Kvm, None)
        );
        let (a, w) = choose_accel(AccelArg::Auto, &caps(true, false)).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert!(w.unwrap().contains("no vmx/svm"));
        let (a, w) = choose_accel(AccelArg::Auto, &caps(false, true)).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert!(w.unwrap().contains("--device /dev/kvm"));
        assert_eq!(
            choose_accel(AccelArg::Tcg, &caps(true, true)).unwrap(),
            (Accel::Tcg, None)
        );
    }

    #[test]
    fn accel_kvm_without_device_is_an_error_with_the_fix() {
        let err = choose_accel(AccelArg::Kvm, &caps(false, true)).unwrap_err();
        assert_eq!(err.exit_code(), 69);
        assert!(err.to_string().contains("add --device /dev/kvm"), "{err}");
        let (a, w) = choose_accel(AccelArg::Kvm, &caps(true, false)).unwrap();
        assert_eq!(a, Accel::Kvm);
        assert!(w.is_some());
    }

    #[test]
    fn refused_privileges_are_77_and_store_metadata_65() {
        let unshare = RunError::from(userns::UsernsError::Unshare(nix::Error::EPERM));
        assert_eq!(unshare.exit_code(), 77);
        assert!(
            unshare.to_string().contains("--cap-add SYS_ADMIN"),
            "{unshare}"
        );
        let map = RunError::from(userns::UsernsError::Map(
            "writing /proc/1/uid_map: EPERM".into(),
        ));
        assert_eq!(map.exit_code(), 77);
        assert!(map.to_string().contains("CAP_SETUID"), "{map}");
        assert_eq!(
            RunError::from(userns::UsernsError::Threads(3)).exit_code(),
            71
        );
        // A user's mistake is usage, never "internal".
        let scratch = RunError::from(rootfs::RootfsError::ScratchDir {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(scratch.exit_code(), 64);
        let split = RunError::from(opaque::OpaqueError::TarSplit {
            layer: "a".repeat(64),
            path: "/s/overlay-layers/x.tar-split.gz".into(),
            source: std::io::Error::other("corrupt deflate stream"),
        });
        assert_eq!(split.exit_code(), 65);
    }

    #[test]
    fn detects_virtualization_flags() {
        assert!(cpu_has_virt_flags(
            "processor: 0\nflags\t\t: fpu vme vmx sse\n"
        ));
        assert!(cpu_has_virt_flags("flags : fpu svm\n"));
        assert!(!cpu_has_virt_flags("flags : fpu vme sse hypervisor\n"));
        assert!(!cpu_has_virt_flags("vmx flags : none\n"));
    }

    #[test]
    fn cmdline_mounts_the_virtiofs_root_and_appends_kargs_last() {
        let boot = BootFiles {
            version: "6.12".into(),
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            uki_cmdline: None,
            source: kernel::KernelSource::Modules,
            others: vec![],
            skipped: vec![],
        };
        let c = kernel_cmdline(&boot, &["quiet".into(), "foo=bar".into()]);
        assert_eq!(&c[..3], &["root=rootfs", "rootfstype=virtiofs", "rw"]);
        assert!(c.contains(&"panic=-1".to_string()));
        assert_eq!(&c[c.len() - 2..], &["quiet", "foo=bar"]);
        let no_initrd = BootFiles {
            initrd: None,
            ..boot
        };
        assert!(kernel_cmdline(&no_initrd, &[]).contains(&"init=/sbin/init".to_string()));
    }

    #[test]
    fn reads_the_container_name_from_containerenv() {
        let env = "engine=\"podman-4.3.1\"\nname=\"testvm\"\nid=\"abc\"\n";
        assert_eq!(container_name(env).as_deref(), Some("testvm"));
        assert_eq!(container_name("engine=\"podman\"\n"), None);
    }
}
