//! A plan and its prepared root made into a [`VmLaunch`]: the guest's configuration written
//! into the root (or its cloud-init seed), its credentials, the shares, QEMU's spec, the
//! status. The one match on the kind of root for QEMU's root device is [`root_device`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::arch::Arch;
use crate::boot::direct_kernel::ROOT_TAG;
use crate::credentials::{self, Credential};
use crate::disk::Writes;
use crate::firstboot::{self, UserSeed};
use crate::guestfs::{self, GuestPlan};
use crate::plan::Plan;
use crate::qemu::{
    self, BootSpec, ConsoleSpec, DiskFormat, DiskSpec, FwCfgFile, NetSpec, PortForward, PortSpec,
    QemuSpec, RootDevice, VirtiofsShare,
};
use crate::root::{Prepared, Root, RootError, RootKind};
use crate::spawn;
use crate::ssh::{self, SshTarget};
use crate::status::{self, State, Status, Timings};
use crate::userns::Privileges;
use crate::virtiofsd::{CacheMode, Sandbox, VirtiofsSpec};
use crate::vm::VmLaunch;

use super::{run_dir_err, RunError, NET_PROBE_PORT, SSH_PORT};

/// What the run read before anything was mounted: the user's first-boot files.
pub struct Inputs {
    pub user_seed: Option<UserSeed>,
    /// `--ignition FILE`: its name and text.
    pub ignition: Option<(PathBuf, String)>,
}

impl Inputs {
    pub fn read(plan: &Plan) -> Result<Inputs, RunError> {
        let user_seed = plan
            .guest
            .cloud_init
            .as_deref()
            .map(firstboot::read_user_seed)
            .transpose()?;
        let ignition = match &plan.guest.ignition {
            Some(f) => Some((
                f.clone(),
                std::fs::read_to_string(f).map_err(|e| firstboot::FirstBootError::Ignition {
                    file: f.clone(),
                    why: format!(
                        "cannot read it ({e}): bring it in with podman -v HOSTFILE:FILE:ro"
                    ),
                })?,
            )),
            None => None,
        };
        Ok(Inputs {
            user_seed,
            ignition,
        })
    }
}

/// The programs a run needs, found before anything is mounted (the QEMU of the guest's
/// architecture once the root says which: [`Programs::with_qemu`]).
pub struct Programs {
    pub virtiofsd: PathBuf,
    pub qemu: PathBuf,
}

impl Programs {
    pub fn find() -> Result<Programs, RunError> {
        let p = Programs {
            virtiofsd: spawn::find_program("virtiofsd")?,
            qemu: spawn::find_program(Arch::host().qemu_binary())?,
        };
        // Fail now, not at readiness, if the image lacks the ssh client.
        spawn::find_program("ssh")?;
        Ok(p)
    }

    /// The same, with the QEMU for a guest of `arch`.
    pub fn with_qemu(self, arch: Arch) -> Result<Programs, RunError> {
        Ok(Programs {
            qemu: spawn::find_program(arch.qemu_binary())?,
            ..self
        })
    }
}

/// Everything the launch is made of, for [`launch`].
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub root: &'a Root,
    pub boot: BootSpec,
    pub inputs: &'a Inputs,
    pub programs: Programs,
    pub privileges: &'a Privileges,
    pub run_dir: &'a Path,
    pub started: Instant,
}

/// The launch of this plan on this root.
pub fn launch(cx: Context, prepared: &mut Prepared) -> Result<VmLaunch, RunError> {
    let (plan, root, run_dir) = (cx.plan, cx.root, cx.run_dir);
    let guest = guest_plan(plan, root)?;
    let keys = ssh_keys(plan, prepared, run_dir)?;
    let public: Vec<&str> = keys.public.iter().map(String::as_str).collect();
    let mut creds: Vec<Credential> = credentials::ssh_key_credentials(&public)?;
    if let Some(h) = &plan.guest.hostname {
        creds.push(credentials::hostname_credential(h)?);
    }
    if let RootKind::Tree { dir, .. } = &root.kind {
        write_guest_config(&guest, dir, prepared)?;
    }
    let shares = shares(plan, root, &guest, sandbox(cx.privileges), run_dir);
    let mut disks = guestfs::prepare_disks(plan.guest.swap_bytes, &plan.guest.disk_files, run_dir)?;
    disks.extend(seed_disk(
        plan,
        root,
        &guest,
        &keys.public,
        cx.inputs,
        run_dir,
    )?);
    let mut fw_cfg = ignition_file(cx.inputs, &keys.public, run_dir)?;
    // SMBIOS reaches an arm64 guest only through firmware: fw_cfg always does (credentials.rs).
    let smbios = match root.arch {
        Arch::X86_64 => credentials::smbios_args(&creds),
        Arch::Aarch64 => {
            fw_cfg.extend(credential_files(&creds, run_dir)?);
            Vec::new()
        }
    };
    let qemu_spec = QemuSpec {
        arch: root.arch,
        accel: plan.resources.accel,
        cpu: plan
            .resources
            .cpu
            .clone()
            .unwrap_or_else(|| root.arch.default_cpu(plan.resources.accel).into()),
        vcpus: plan.resources.vcpus,
        memory_mib: plan.resources.memory_mib,
        root: root_device(root, &shares),
        boot: cx.boot,
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
            forwards: forwards(plan),
            restrict: plan.guest.net_isolated,
        },
        smbios,
        disks,
        serial_outs: plan.guest.serial_outs.clone(),
        console: ConsoleSpec::Stdio {
            interactive: plan.session.interactive_console,
        },
        qmp_socket: run_dir.join("qmp.sock"),
        rng: true,
    };
    qemu_spec.validate_for(root.arch)?;
    if plan.session.log_cmdline {
        log_command_lines(&cx.programs, &shares, &qemu_spec);
    }
    let ssh = SshTarget {
        host: "127.0.0.1".into(),
        port: SSH_PORT,
        user: "root".into(),
        key: keys.private,
    };
    let status = first_status(plan, root, &ssh, run_dir)?;
    let s = &plan.session;
    Ok(VmLaunch {
        run_dir: run_dir.to_path_buf(),
        virtiofsd_bin: cx.programs.virtiofsd,
        qemu_bin: cx.programs.qemu,
        shares,
        qemu: qemu_spec,
        echo: s.echo,
        interactive_console: s.interactive_console,
        console_log: run_dir.join("console.log"),
        console_copy: plan.guest.log_dir.as_ref().and_then(|l| l.console_file()),
        ssh,
        net_probe_port: Some(NET_PROBE_PORT),
        command: s.command.clone(),
        command_tty: s.command_tty,
        ready_timeout: s.ready_timeout,
        restart_if_stalled: false,
        stop_timeout: s.stop_timeout,
        status,
        started: cx.started,
    })
}

/// The virtiofs shares: a tree's root first, then the guest's (`--bind`, the store).
fn shares(
    plan: &Plan,
    root: &Root,
    guest: &GuestPlan,
    sandbox: Sandbox,
    run_dir: &Path,
) -> Vec<(String, VirtiofsSpec)> {
    let mut shares = Vec::new();
    if let RootKind::Tree { dir, .. } = &root.kind {
        let spec = share_spec(
            run_dir,
            sandbox,
            ROOT_TAG,
            dir,
            false,
            plan.guest.root_cache,
        );
        shares.push((ROOT_TAG.to_string(), spec));
    }
    for share in &guest.shares {
        let spec = share_spec(
            run_dir,
            sandbox,
            &share.tag,
            &share.source,
            share.readonly,
            CacheMode::Auto,
        );
        shares.push((share.tag.clone(), spec));
    }
    shares
}

/// `--log-cmdline`: the command lines of virtiofsd and QEMU, on stderr.
fn log_command_lines(programs: &Programs, shares: &[(String, VirtiofsSpec)], qemu: &QemuSpec) {
    for (_, s) in shares {
        eprintln!(
            "virtiofsd: {}",
            spawn::shell_line(&programs.virtiofsd, &crate::virtiofsd::virtiofsd_args(s))
        );
    }
    eprintln!(
        "qemu: {}",
        spawn::shell_line(&programs.qemu, &qemu::qemu_args(qemu))
    );
}

/// The guest's shares, units, swap and ports, checked.
fn guest_plan(plan: &Plan, root: &Root) -> Result<GuestPlan, RunError> {
    let g = &plan.guest;
    let mut guest = guestfs::plan(&guestfs::GuestConfig {
        binds: g.binds.clone(),
        bind_storage: g.bind_storage_ro.then(|| root.store_root.clone()).flatten(),
        // Disk images get their units through cloud-init (see `seed_disk`).
        systemd_units: match root.kind {
            RootKind::Tree { .. } => g.systemd_units.clone(),
            RootKind::Disk { .. } => None,
        },
        swap: g.swap_bytes.is_some(),
        ports: g.ports.clone(),
        ssh_port: SSH_PORT,
        probe_port: NET_PROBE_PORT,
    })?;
    // The journal's stream unit: inert unless the run has --log-dir's port (see logdir).
    guest
        .entries
        .extend(crate::logdir::guest_entries(Path::new(guestfs::UNIT_DIR)));
    Ok(guest)
}

/// Write the guest's configuration into a tree, replacing what a persistent state's last run
/// wrote, so that only this run's options hold.
fn write_guest_config(
    guest: &GuestPlan,
    dir: &Path,
    prepared: &mut Prepared,
) -> Result<(), RunError> {
    if let Some(st) = prepared.state.as_mut() {
        for rel in &st.record.generated {
            guestfs::remove_generated(dir, rel);
        }
        st.record_generated(guest.generated_paths())
            .map_err(RootError::from)?;
    }
    guestfs::apply(guest, dir)?;
    Ok(())
}

struct Keys {
    /// Every key the guest authorizes: bcvk's own first.
    public: Vec<String>,
    /// bcvk's own private key, for readiness and `bcvk ssh`.
    private: PathBuf,
}

fn ssh_keys(plan: &Plan, prepared: &Prepared, run_dir: &Path) -> Result<Keys, RunError> {
    let own = match &prepared.state {
        Some(st) => ssh::key_from_seed(
            &run_dir.join("ssh"),
            "bcvk",
            st.ssh_seed().map_err(RootError::from)?,
        )?,
        None => ssh::generate_key(&run_dir.join("ssh"), "bcvk")?,
    };
    let mut public = vec![own.public_line];
    // The user's own key authorizes them; bcvk still needs its own, so both are authorized.
    if let Some(user_key) = &plan.guest.ssh_key {
        public.extend(ssh::read_public_key(user_key)?.lines().map(str::to_string));
    }
    Ok(Keys {
        public,
        private: own.private,
    })
}

/// virtiofsd's namespace sandbox needs pivot_root; where the engine forbids it, the container
/// already confines virtiofsd and its chroot sandbox is what remains. It needs a new /proc
/// too, which an engine that masks parts of /proc refuses.
fn sandbox(privileges: &Privileges) -> Sandbox {
    if privileges.pivot_root && privileges.proc_mount {
        Sandbox::Namespace
    } else if !privileges.pivot_root {
        tracing::info!("pivot_root is refused here (docker's seccomp profile does): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    } else {
        tracing::info!("no new /proc can be mounted here (no fully visible proc mount: the engine masks parts of /proc): virtiofsd uses its chroot sandbox");
        Sandbox::Chroot
    }
}

fn share_spec(
    run_dir: &Path,
    sandbox: Sandbox,
    tag: &str,
    dir: &Path,
    readonly: bool,
    cache: CacheMode,
) -> VirtiofsSpec {
    VirtiofsSpec {
        socket: run_dir.join(format!("vfs-{tag}.sock")),
        shared_dir: dir.to_path_buf(),
        readonly,
        cache,
        sandbox,
        xattr: true,
        rlimit_nofile: nofile_hard_limit(),
        thread_pool_size: None,
        log_level: "warn".into(),
    }
}

fn nofile_hard_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(_, hard)| hard)
        .filter(|h| *h != nix::sys::resource::RLIM_INFINITY)
}

/// QEMU's root device: the root share (first in `shares`) or the disk's writable file.
fn root_device(root: &Root, shares: &[(String, VirtiofsSpec)]) -> RootDevice {
    match &root.kind {
        RootKind::Tree { .. } => RootDevice::Share(VirtiofsShare {
            tag: ROOT_TAG.into(),
            socket: shares[0].1.socket.clone(),
        }),
        RootKind::Disk { disk, writes } => {
            let (path, format) = match writes {
                Writes::Overlay(p) => (p.clone(), DiskFormat::Qcow2),
                Writes::InPlace => (disk.path.clone(), disk.format),
            };
            RootDevice::Disk(DiskSpec {
                path,
                format,
                serial: "bcvk-root".into(),
                readonly: false,
            })
        }
    }
}

/// The cloud-init seed (NoCloud, a small FAT disk): a disk image's guest always gets one, a
/// tree only with `--cloud-init`.
fn seed_disk(
    plan: &Plan,
    root: &Root,
    guest: &GuestPlan,
    keys: &[String],
    inputs: &Inputs,
    run_dir: &Path,
) -> Result<Option<DiskSpec>, RunError> {
    let needs_seed = matches!(root.kind, RootKind::Disk { .. }) || inputs.user_seed.is_some();
    if !needs_seed {
        return Ok(None);
    }
    let fb = super::first_boot::first_boot(plan, root, guest, keys.to_vec())?;
    let files = firstboot::seed_files(&fb, inputs.user_seed.as_ref())?;
    let seed_dir = run_dir.join("seed");
    std::fs::create_dir_all(&seed_dir).map_err(run_dir_err(&seed_dir))?;
    let seed = seed_dir.join("cidata.img");
    firstboot::write_seed_image(&seed, &files)?;
    Ok(Some(DiskSpec {
        path: seed,
        format: DiskFormat::Raw,
        serial: "cidata".into(),
        readonly: true,
    }))
}

/// `--ignition FILE`, with bcvk's keys added, as QEMU's fw_cfg file.
fn ignition_file(
    inputs: &Inputs,
    keys: &[String],
    run_dir: &Path,
) -> Result<Vec<FwCfgFile>, RunError> {
    let Some((file, text)) = &inputs.ignition else {
        return Ok(Vec::new());
    };
    let cfg = firstboot::ignition_config(file, text, keys)?;
    let seed_dir = run_dir.join("seed");
    std::fs::create_dir_all(&seed_dir).map_err(run_dir_err(&seed_dir))?;
    let path = seed_dir.join("ignition.json");
    std::fs::write(&path, cfg).map_err(run_dir_err(&path))?;
    Ok(vec![FwCfgFile {
        name: firstboot::IGNITION_FW_CFG.into(),
        file: path,
    }])
}

/// bcvk's own forwards (SSH, the readiness probe), on the container's loopback only, then the
/// user's `--port`s.
fn forwards(plan: &Plan) -> Vec<PortForward> {
    let own = |host_port, guest_port| PortForward {
        host_addr: Some(std::net::Ipv4Addr::LOCALHOST),
        port: PortSpec {
            host_port,
            guest_port,
        },
    };
    let mut f = vec![
        own(SSH_PORT, 22),
        own(NET_PROBE_PORT, crate::readiness::NET_PROBE_GUEST_PORT),
    ];
    f.extend(plan.guest.ports.iter().map(|p| PortForward {
        host_addr: None,
        port: p.clone(),
    }));
    f
}

/// The status file's first state, written before anything starts.
fn first_status(
    plan: &Plan,
    root: &Root,
    ssh: &SshTarget,
    run_dir: &Path,
) -> Result<Status, RunError> {
    let status = Status {
        state: State::Starting,
        image: root.name.clone(),
        image_id: root.id.clone(),
        accel: plan.resources.accel.name().into(),
        name: plan.guest.hostname.clone(),
        vcpus: plan.resources.vcpus,
        memory_mib: plan.resources.memory_mib,
        phase: crate::console::Phase::Firmware.label().into(),
        started_at: status::now_unix(),
        timings: Timings::default(),
        ssh: ssh.clone(),
        exit_code: None,
        message: None,
    };
    status::write(run_dir, &status).map_err(|e| RunError::RunDir {
        path: run_dir.join(status::STATUS_FILE),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(status)
}

/// The credentials as fw_cfg files (see `credentials::fw_cfg_credentials`), written to
/// `run_dir/credentials/`, readable by bcvk alone.
fn credential_files(creds: &[Credential], run_dir: &Path) -> Result<Vec<FwCfgFile>, RunError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = run_dir.join("credentials");
    std::fs::create_dir_all(&dir).map_err(run_dir_err(&dir))?;
    let mut files = Vec::new();
    for (c, (name, value)) in creds.iter().zip(credentials::fw_cfg_credentials(creds)?) {
        let path = dir.join(&c.name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value))
            .map_err(run_dir_err(&path))?;
        files.push(FwCfgFile { name, file: path });
    }
    Ok(files)
}
