//! `bcvk run`: make the plan ([`crate::plan`]), prepare its root ([`crate::root`]) and boot
//! ([`crate::boot`]), make the launch ([`launch`]), run the VM ([`crate::vm`]) and undo
//! everything prepared. This module only executes a plan; what to do is decided before.

use std::path::{Path, PathBuf};
use std::time::Instant;

mod first_boot;
mod launch;

use crate::cli::RunArgs;
use crate::error::run_dir_err;
pub use crate::error::RunError;
use crate::init::{self, Children, ExitInfo};
use crate::plan::{self, HostFacts, Plan};
use crate::qemu;
use crate::root::{self, Prepared};
use crate::spawn;
use crate::status;
use crate::userns::{self, Privileges};
use crate::vm::{self, Outcome, VmError, VmLaunch};

/// The port QEMU forwards to the guest's sshd, inside the container only.
pub const SSH_PORT: u16 = 2222;
/// The container port of the readiness probe's forward to the guest's network (see
/// `readiness`).
pub const NET_PROBE_PORT: u16 = 2221;

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
    let mut plan = plan::make(&args, &HostFacts::probe())?;
    if let Some(w) = &plan.resources.accel_warning {
        tracing::warn!("{w}");
    }
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
            let launch = prepare(&mut plan, &privileges, &run_dir, &mut prepared, started)?;
            if let Ok(init::Request::Stop(sig)) = requests.try_recv() {
                return Err(RunError::StoppedEarly(sig));
            }
            if plan.session.debug {
                return debug_shell(&launch);
            }
            let outcome = run_vm(&plan, launch, &children, &mut requests).await?;
            Ok(exit_code(&plan, outcome))
        }
        .await;
        prepared.cleanup();
        result
    })
}

/// The container's exit code for how the VM ended.
fn exit_code(plan: &Plan, outcome: Outcome) -> i32 {
    match outcome {
        Outcome::PoweredOff => {
            tracing::info!("the guest powered off");
            0
        }
        Outcome::Stopped(sig) if plan.session.command.is_none() => {
            tracing::info!(signal = %sig, "VM stopped");
            0
        }
        Outcome::Stopped(sig) => 128 + sig as i32,
        Outcome::CommandExited(exit) => exit_code_of(exit),
    }
}

/// Everything before QEMU: the root, its boot, the launch. Nothing is mounted before the
/// plan, the user's files and the programs have been checked.
fn prepare(
    plan: &mut Plan,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
    started: Instant,
) -> Result<VmLaunch, RunError> {
    let programs = launch::Programs::find()?;
    let inputs = launch::Inputs::read(plan)?;
    fresh_run_dir(run_dir)?;
    let root = root::prepare(plan, privileges, run_dir, prepared)?;
    plan.admit(root.kind.shape(), inputs.user_seed.is_some())?;
    // A guest of the other architecture boots under TCG, on purpose, and says so in one line.
    let notice = plan
        .for_guest_arch(&root.name, root.arch)
        .map_err(root::RootError::from)?;
    if let Some(n) = notice {
        tracing::warn!("{n}");
    }
    let plan = &*plan;
    let programs = programs.with_qemu(root.arch)?;
    let boot = crate::boot::prepare(plan, &root, run_dir)?;
    launch::launch(
        launch::Context {
            plan,
            root: &root,
            boot,
            inputs: &inputs,
            programs,
            privileges,
            run_dir,
            started,
        },
        prepared,
    )
}

/// Run the VM, starting it over when it may: under TCG after KVM failed to run it (`--accel
/// auto`), and once after a stalled boot when `--on-stall restart` (see
/// `vm::restart_after_stall`).
async fn run_vm(
    plan: &Plan,
    mut launch: VmLaunch,
    children: &Children,
    requests: &mut tokio::sync::mpsc::UnboundedReceiver<init::Request>,
) -> Result<Outcome, RunError> {
    let mut fallback = plan
        .resources
        .tcg_fallback
        .then(|| launch.qemu.under_tcg(plan.resources.cpu.as_deref()))
        .flatten();
    let mut restarts = 0;
    loop {
        // A stalled boot ends before ready (the watch runs only until then): nothing of the
        // user's ran in it, no command started, nobody connected.
        launch.restart_if_stalled =
            vm::restart_after_stall(plan.session.restart_on_stall, restarts);
        match vm::run(launch.clone(), children.clone(), requests).await {
            Err(VmError::Kvm {
                detail,
                ready: false,
                ..
            }) if fallback.is_some() => {
                let qemu = fallback.take().expect("checked");
                tracing::warn!("KVM cannot run this guest ({detail}): falling back to TCG software emulation, boots take minutes; fix KVM (nested virtualization) or pass --accel tcg to skip the attempt");
                if plan.session.log_cmdline {
                    eprintln!(
                        "qemu (TCG fallback): {}",
                        spawn::shell_line(&launch.qemu_bin, &qemu::qemu_args(&qemu))
                    );
                }
                launch.status.accel = qemu.accel.name().into();
                launch.ready_timeout = plan.session.fallback_ready_timeout;
                launch.qemu = qemu;
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

/// `--debug`: everything is prepared; hand the container to a shell instead of QEMU.
fn debug_shell(launch: &VmLaunch) -> Result<i32, RunError> {
    eprintln!(
        "bcvk --debug: root {}, run directory {}; QEMU not started. Exit the shell to clean up.",
        match &launch.qemu.root {
            qemu::RootDevice::Share(_) => launch.shares[0].1.shared_dir.display(),
            qemu::RootDevice::Disk(d) => d.path.display(),
        },
        launch.run_dir.display()
    );
    let shell = spawn::find_program("bash").or_else(|_| spawn::find_program("sh"))?;
    Ok(spawn::run_foreground::<&str>(
        spawn::Role::DebugShell,
        &shell,
        &[],
    )?)
}
