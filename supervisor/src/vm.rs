//! One VM's life: start virtiofsd and QEMU, follow the boot, declare readiness, run the
//! one-shot command, and shut everything down in order, whatever ends the run.
//!
//! Shutdown order (also on every error): ask the guest to power off (ACPI over QMP, plus
//! `systemctl poweroff` over ssh once ready), wait `stop_timeout`, then QMP `quit`, then
//! SIGKILL; then virtiofsd (it exits by itself when QEMU disconnects), then leftover ssh
//! clients. The caller unmounts the root afterwards.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::console::{self, Echo, GuestEnd, Phase, Tail};
use crate::init::{Children, ExitInfo, Request};
use crate::qemu::{self, Accel, BootSpec, QemuSpec, Qmp};
use crate::readiness;
use crate::spawn::{self, Role, SpawnError, Stdios};
use crate::ssh::{self, SshTarget, Tty};
use crate::status::{self, State, Status};
use crate::virtiofsd::{self, Sandbox, VirtiofsSpec};

/// Everything needed to run the VM, prepared and validated by `run`.
#[derive(Clone)]
pub struct VmLaunch {
    pub run_dir: PathBuf,
    pub virtiofsd_bin: PathBuf,
    pub qemu_bin: PathBuf,
    /// (tag, spec); the root share first.
    pub shares: Vec<(String, VirtiofsSpec)>,
    pub qemu: QemuSpec,
    pub echo: Echo,
    pub interactive_console: bool,
    pub console_log: PathBuf,
    pub ssh: SshTarget,
    /// The container port forwarded to [`readiness::NET_PROBE_GUEST_PORT`], if any.
    pub net_probe_port: Option<u16>,
    /// The one-shot command as one remote shell string.
    pub command: Option<String>,
    pub command_tty: Tty,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub status: Status,
    pub started: Instant,
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered itself off.
    PoweredOff,
    /// Stopped on request (podman stop, Ctrl-C) and shut down cleanly.
    Stopped(Signal),
    /// The one-shot command finished with this status.
    CommandExited(ExitInfo),
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("virtiofsd for '{tag}' exited ({exit}) {when}{}", said(.stderr))]
    VirtiofsdDied {
        tag: String,
        exit: ExitInfo,
        when: &'static str,
        stderr: String,
    },
    #[error("virtiofsd for '{tag}' did not create its socket within {secs}s{}", said(.stderr))]
    VirtiofsdSocket {
        tag: String,
        secs: u64,
        stderr: String,
    },
    #[error("QEMU exited ({exit}) before the guest was done{}", said(.stderr))]
    QemuDied {
        exit: ExitInfo,
        stderr: String,
        tail: Vec<String>,
    },
    #[error("KVM cannot run this guest (QEMU: {detail}): run with --accel tcg, or fix KVM on the host (nested virtualization, /dev/kvm permissions)")]
    Kvm {
        detail: String,
        /// Whether the guest had been ready (a command may have run): then no retry.
        ready: bool,
        tail: Vec<String>,
    },
    #[error("the guest kernel panicked{hint}")]
    GuestPanic { hint: String, tail: Vec<String> },
    #[error("the guest rebooted; bcvk VMs are throwaway and end on reboot (the command did not finish){hint}")]
    GuestRebooted { hint: String, tail: Vec<String> },
    #[error("the guest powered off before {what}")]
    GuestEndedEarly {
        what: &'static str,
        tail: Vec<String>,
    },
    #[error("the guest was not reachable over SSH within {secs}s (last boot phase: {phase}): check that the image enables sshd, or raise --ready-timeout")]
    ReadyTimeout {
        secs: u64,
        phase: &'static str,
        tail: Vec<String>,
    },
    #[error("cannot run ssh in the guest: {0}")]
    SshClient(String),
    #[error("the {firmware} firmware found nothing to boot on the disk: it needs a bootloader for {firmware} (try the other --firmware, or install one)")]
    NothingToBoot {
        firmware: &'static str,
        tail: Vec<String>,
    },
}

/// A child's last words after a colon, or nothing: never a dangling `: `.
fn said(stderr: &str) -> String {
    let stderr = stderr.trim().trim_end_matches('|').trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl VmError {
    /// The documented exit code (README): 75 for readiness, 69 for KVM, 71 when a process
    /// cannot be started, 70 for everything the guest or its helpers did.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::Exit;
        match self {
            VmError::ReadyTimeout { .. } => Exit::NotReady,
            VmError::NothingToBoot { .. } => Exit::NotFound,
            VmError::Kvm { .. } => Exit::Unavailable,
            VmError::Spawn(_) => Exit::Internal,
            _ => Exit::GuestFailed,
        }
        .code()
    }

    /// The console lines that explain a guest-side failure.
    pub fn console_tail(&self) -> &[String] {
        match self {
            VmError::QemuDied { tail, .. }
            | VmError::Kvm { tail, .. }
            | VmError::GuestPanic { tail, .. }
            | VmError::GuestRebooted { tail, .. }
            | VmError::NothingToBoot { tail, .. }
            | VmError::GuestEndedEarly { tail, .. }
            | VmError::ReadyTimeout { tail, .. } => tail,
            _ => &[],
        }
    }
}

/// The running one-shot command.
type CommandFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<CommandEnd, VmError>>>>;

/// How the one-shot command's ssh ended, and what ssh itself said (shown only when its exit
/// code stands: a guest that went down under the command is reported as such instead).
struct CommandEnd {
    exit: ExitInfo,
    ssh_said: Vec<String>,
}

/// How long a command's end that may be the guest going down (ssh's 255, or a signal's
/// 128+N) waits for QEMU to end, unless the guest answers SSH again first.
const GUEST_GONE_WAIT: Duration = Duration::from_secs(60);

/// Whether a command's exit may mean the guest went down under it: ssh's own 255 (the
/// connection closed: a panic, a power-off), or death by a signal (a reboot's SIGTERM).
fn may_be_guest_going_down(exit: ExitInfo) -> bool {
    matches!(exit.code(), 129..=192 | 255)
}
/// Sees each line a child writes to stderr.
type LineWatch = Box<dyn Fn(&str) + Send>;

/// Events from the helper tasks to the main loop.
enum Event {
    Phase(Phase),
    /// A console line with the guest's clock arrived (ms since start), and its mark if any.
    GuestClock {
        guest: Duration,
        arrival_ms: i64,
        mark: Option<console::Mark>,
    },
    KvmError(String),
}

struct Vm {
    l: VmLaunch,
    children: Children,
    qemu_pid: Option<Pid>,
    qemu_stderr: Tail,
    console_tail: Tail,
    console_done: Option<tokio::sync::oneshot::Receiver<()>>,
    vfs: Vec<(String, Pid, Tail)>,
    qmp: Option<Qmp>,
    ready: bool,
    phase: Phase,
    /// The guest's clock, from the console, and the marks on it (ms).
    clock: console::GuestClock,
    sshd_listening: Option<u64>,
    guest_address: Option<u64>,
}

/// Run the VM to its end. Cleans up its processes on every path.
pub async fn run(
    launch: VmLaunch,
    children: Children,
    requests: &mut mpsc::UnboundedReceiver<Request>,
) -> Result<Outcome, VmError> {
    let mut vm = Vm {
        l: launch,
        children,
        qemu_pid: None,
        qemu_stderr: Tail::default(),
        console_tail: Tail::default(),
        console_done: None,
        vfs: Vec::new(),
        qmp: None,
        ready: false,
        phase: Phase::Firmware,
        clock: console::GuestClock::default(),
        sshd_listening: None,
        guest_address: None,
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let result = vm.boot_and_supervise(&tx, &mut events, requests).await;
    let graceful = !matches!(result, Err(VmError::Kvm { .. }));
    vm.shutdown(graceful, requests).await;
    // After --console, QEMU had the terminal.
    spawn::reclaim_terminal();
    let mut status = vm.l.status.clone();
    status.state = State::Exited;
    // The same code and message the run ends with (run.rs maps outcomes the same way).
    status.exit_code = Some(match &result {
        Ok(Outcome::CommandExited(e)) => e.code().clamp(0, 255),
        Ok(Outcome::Stopped(sig)) if vm.l.command.is_some() => 128 + *sig as i32,
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    });
    status.message = result.as_ref().err().map(|e| e.to_string());
    let _ = status::write(&vm.l.run_dir, &status);
    result
}

impl Vm {
    fn elapsed_ms(&self) -> u64 {
        self.l.started.elapsed().as_millis() as u64
    }

    fn set_state(&mut self, state: State) {
        self.l.status.state = state;
        if let Err(e) = status::write(&self.l.run_dir, &self.l.status) {
            tracing::warn!(error = %e, "cannot write the status file");
        }
    }

    async fn boot_and_supervise(
        &mut self,
        tx: &mpsc::UnboundedSender<Event>,
        events: &mut mpsc::UnboundedReceiver<Event>,
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) -> Result<Outcome, VmError> {
        self.start_virtiofsd().await?;
        self.start_qemu(tx)?;
        self.set_state(State::Booting);
        self.connect_qmp().await;

        // checked: the options cap timeouts, but an Instant overflow would abort PID 1.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(self.l.ready_timeout)
            .unwrap_or(now + Duration::from_secs(crate::cli::MAX_TIMEOUT_SECS));
        let qemu_pid = self.qemu_pid.expect("qemu started");
        let qemu_exit = self.children.clone();
        let qemu_exit = qemu_exit.wait(qemu_pid);
        tokio::pin!(qemu_exit);
        let vfs_exit = {
            let children = self.children.clone();
            let pids: Vec<(String, Pid)> =
                self.vfs.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
            async move {
                let waits = pids.into_iter().map(|(tag, pid)| {
                    let c = children.clone();
                    Box::pin(async move { (tag, c.wait(pid).await) })
                });
                futures_select_all(waits.collect()).await
            }
        };
        tokio::pin!(vfs_exit);
        let readiness = self.probe();
        tokio::pin!(readiness);
        let mut command: Option<CommandFuture> = None;
        let progress =
            ProgressLine::new(self.l.echo != Echo::Stdout && std::io::stderr().is_terminal());
        let mut ticker = tokio::time::interval(Duration::from_secs(1));

        loop {
            tokio::select! {
                Some(req) = requests.recv() => {
                    let Request::Stop(sig) = req;
                    progress.clear();
                    // Phases the console already announced count: how the guest is stopped
                    // depends on how far it got.
                    while let Ok(ev) = events.try_recv() {
                        if let Event::Phase(p) = ev {
                            self.on_phase(p, &progress);
                        }
                    }
                    tracing::info!(signal = %sig, "stopping the VM");
                    return Ok(Outcome::Stopped(sig));
                }
                Some(ev) = events.recv() => match ev {
                    Event::Phase(p) => self.on_phase(p, &progress),
                    Event::GuestClock { guest, arrival_ms, mark } => {
                        self.on_guest_clock(guest, arrival_ms, mark)
                    }
                    Event::KvmError(detail) => {
                        progress.clear();
                        return Err(VmError::Kvm { detail, ready: self.ready, tail: self.console_tail.lines() });
                    }
                },
                exit = &mut qemu_exit => {
                    progress.clear();
                    self.qemu_pid = None;
                    return self.qemu_ended(exit, command.is_some()).await;
                }
                (tag, exit) = &mut vfs_exit => {
                    progress.clear();
                    // virtiofsd exits by itself when QEMU goes away (guest poweroff, panic):
                    // then QEMU's exit, not virtiofsd's, says what happened.
                    if let Ok(qexit) = tokio::time::timeout(Duration::from_secs(3), &mut qemu_exit).await {
                        self.qemu_pid = None;
                        return self.qemu_ended(qexit, command.is_some()).await;
                    }
                    let stderr = self.vfs.iter().find(|(t, _, _)| *t == tag).map(|(_, _, tail)| tail.lines().join(" | ")).unwrap_or_default();
                    return Err(VmError::VirtiofsdDied { tag, exit, when: "while the VM ran", stderr });
                }
                res = &mut readiness, if !self.ready => {
                    let attempt_start = res?;
                    self.l.status.timings.ready_attempt_ms =
                        Some(attempt_start.saturating_duration_since(self.l.started).as_millis() as u64);
                    progress.clear();
                    self.on_ready();
                    if let Some(remote) = self.l.command.clone() {
                        command = Some(Box::pin(run_command(self.children.clone(), self.l.ssh.clone(), remote, self.l.command_tty, self.l.run_dir.join("ssh-command.log"))));
                    }
                }
                res = async { command.as_mut().expect("guarded").await }, if command.is_some() => {
                    let CommandEnd { exit, ssh_said } = res?;
                    self.l.status.timings.command_done_ms = Some(self.elapsed_ms());
                    tracing::debug!(%exit, "command finished");
                    if may_be_guest_going_down(exit) {
                        // A panic, reboot or power-off under the command ends QEMU (-no-reboot);
                        // a guest that answers SSH again is alive, and the exit code stands.
                        let alive = self.probe();
                        tokio::select! {
                            qexit = &mut qemu_exit => {
                                self.qemu_pid = None;
                                return self.qemu_ended(qexit, true).await;
                            }
                            res = alive => {
                                res?;
                            }
                            Some(Request::Stop(sig)) = requests.recv() => {
                                tracing::info!(signal = %sig, "stopping the VM");
                                return Ok(Outcome::Stopped(sig));
                            }
                            _ = tokio::time::sleep(GUEST_GONE_WAIT) => {}
                        }
                    }
                    for line in ssh_said {
                        eprintln!("ssh: {line}");
                    }
                    return Ok(Outcome::CommandExited(exit));
                }
                _ = tokio::time::sleep_until(deadline), if !self.ready => {
                    progress.clear();
                    return Err(VmError::ReadyTimeout {
                        secs: self.l.ready_timeout.as_secs(),
                        phase: self.phase.label(),
                        tail: self.console_tail.lines(),
                    });
                }
                _ = ticker.tick(), if !self.ready => {
                    progress.show(self.l.started.elapsed(), self.phase);
                    if let Some(err) = self.firmware_gave_up() {
                        progress.clear();
                        return Err(err);
                    }
                }
            }
        }
    }

    /// A firmware boot that found nothing to boot: UEFI's shell or its own message on the
    /// console while no kernel has started. (SeaBIOS reboots instead, which ends QEMU.)
    fn firmware_gave_up(&self) -> Option<VmError> {
        let BootSpec::Firmware(fw) = &self.l.qemu.boot else {
            return None;
        };
        if self.phase != Phase::Firmware {
            return None;
        }
        let tail = self.console_tail.lines();
        tail.iter()
            .any(|l| console::firmware_gave_up(l))
            .then(|| VmError::NothingToBoot {
                firmware: fw.name(),
                tail,
            })
    }

    /// A readiness probe of this VM's guest (see `probe_ready`); owns what it needs.
    fn probe(&self) -> impl std::future::Future<Output = Result<Instant, VmError>> {
        probe_ready(
            self.children.clone(),
            self.l.ssh.clone(),
            self.l.net_probe_port,
            self.l.run_dir.clone(),
        )
    }

    /// Start one virtiofsd for share `index` and record it.
    fn spawn_virtiofsd(&mut self, index: usize) -> Result<(), VmError> {
        let (tag, spec) = &self.l.shares[index];
        let _ = std::fs::remove_file(&spec.socket);
        let args = virtiofsd::virtiofsd_args(spec);
        let role = Role::Virtiofsd { tag: tag.clone() };
        let stdios = Stdios {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::piped(),
            foreground: false,
        };
        let sp = spawn::spawn(
            &self.children,
            role.clone(),
            &self.l.virtiofsd_bin,
            &args,
            stdios,
        )?;
        let tail = Tail::default();
        if let Some(err) = sp.stderr {
            forward_lines(err, role.to_string(), tail.clone(), None);
        }
        let entry = (tag.clone(), sp.pid, tail);
        match self.vfs.get_mut(index) {
            Some(slot) => *slot = entry,
            None => self.vfs.push(entry),
        }
        Ok(())
    }

    async fn start_virtiofsd(&mut self) -> Result<(), VmError> {
        for index in 0..self.l.shares.len() {
            self.spawn_virtiofsd(index)?;
        }
        // virtiofsd creates its socket when it is ready to accept QEMU.
        const SOCKET_WAIT: Duration = Duration::from_secs(10);
        let start = Instant::now();
        for index in 0..self.l.shares.len() {
            while !self.l.shares[index].1.socket.exists() {
                let (tag, pid, tail) = self.vfs[index].clone();
                if !self.children.is_alive(pid) {
                    let exit = self.children.wait(pid).await;
                    tokio::time::sleep(Duration::from_millis(50)).await; // let stderr drain
                    let stderr = tail.lines().join(" | ");
                    // A refused pivot_root is settled before the start (userns::Privileges);
                    // this catches the rest of the namespace sandbox (its pid namespace, its
                    // /proc) failing early. The container is the isolation boundary already:
                    // fall back to virtiofsd's chroot sandbox.
                    let spec = &mut self.l.shares[index].1;
                    if spec.sandbox == Sandbox::Namespace
                        && stderr.contains("Error entering sandbox")
                    {
                        tracing::warn!(%tag, "virtiofsd cannot enter its namespace sandbox here (seccomp or missing privileges): using its chroot sandbox");
                        spec.sandbox = Sandbox::Chroot;
                        self.spawn_virtiofsd(index)?;
                        continue;
                    }
                    return Err(VmError::VirtiofsdDied {
                        tag,
                        exit,
                        when: "at start",
                        stderr,
                    });
                }
                if start.elapsed() > SOCKET_WAIT {
                    return Err(VmError::VirtiofsdSocket {
                        tag,
                        secs: SOCKET_WAIT.as_secs(),
                        stderr: tail.lines().join(" | "),
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        tracing::debug!(
            ms = start.elapsed().as_millis() as u64,
            "virtiofsd sockets ready"
        );
        Ok(())
    }

    fn start_qemu(&mut self, tx: &mpsc::UnboundedSender<Event>) -> Result<(), VmError> {
        let args: Vec<OsString> = qemu::qemu_args(&self.l.qemu);
        let stdios = if self.l.interactive_console {
            Stdios {
                stdin: Stdio::inherit(),
                stdout: Stdio::inherit(),
                stderr: Stdio::piped(),
                foreground: true,
            }
        } else {
            Stdios::piped()
        };
        let sp = spawn::spawn(&self.children, Role::Qemu, &self.l.qemu_bin, &args, stdios)?;
        self.qemu_pid = Some(sp.pid);
        self.l.status.timings.qemu_exec_ms = Some(self.elapsed_ms());
        tracing::info!(pid = sp.pid.as_raw(), accel = %self.l.status.accel, "QEMU started");
        if let Some(err) = sp.stderr {
            let tx = tx.clone();
            forward_lines(
                err,
                "qemu".into(),
                self.qemu_stderr.clone(),
                Some(Box::new(move |line: &str| {
                    // With KVM that cannot run the guest, QEMU 7..10 reports this and then PAUSES
                    // instead of exiting: without this watch the run would hang until the timeout.
                    if qemu::kvm_failure(line) {
                        let _ = tx.send(Event::KvmError(line.trim().to_string()));
                    }
                })),
            );
        }
        if let Some(out) = sp.stdout {
            let tail = self.console_tail.clone();
            let log = self.l.console_log.clone();
            let copy = crate::logdir::console_copy(&self.l.qemu.serial_outs);
            let echo = self.l.echo;
            let started = self.l.started;
            let tx = tx.clone();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            self.console_done = Some(done_rx);
            let out =
                tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(out))
                    .map_err(|e| VmError::SshClient(format!("console pipe: {e}")))?;
            tokio::spawn(async move {
                let clock_tx = tx.clone();
                console::pump(
                    out,
                    echo,
                    &log,
                    copy.as_deref(),
                    tail,
                    |p| {
                        let _ = tx.send(Event::Phase(p));
                    },
                    |guest, mark| {
                        let _ = clock_tx.send(Event::GuestClock {
                            guest,
                            arrival_ms: started.elapsed().as_millis() as i64,
                            mark,
                        });
                    },
                )
                .await;
                let _ = done_tx.send(());
            });
        }
        Ok(())
    }

    async fn connect_qmp(&mut self) {
        let path = self.l.qemu.qmp_socket.clone();
        for _ in 0..200 {
            if path.exists() {
                match Qmp::connect(&path).await {
                    Ok(q) => {
                        self.qmp = Some(q);
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "QMP not ready yet"),
                }
            }
            if self
                .qemu_pid
                .map(|p| !self.children.is_alive(p))
                .unwrap_or(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tracing::warn!("QMP socket did not come up: graceful shutdown falls back to signals");
    }

    fn on_phase(&mut self, p: Phase, progress: &ProgressLine) {
        self.phase = p;
        if !self.ready {
            // `bcvk status` shows it; written now, not only at the next state change.
            self.l.status.phase = p.label().into();
            let state = self.l.status.state;
            self.set_state(state);
        }
        let ms = Some(self.elapsed_ms());
        let t = &mut self.l.status.timings;
        match p {
            Phase::Kernel => t.kernel_ms = t.kernel_ms.or(ms),
            Phase::Initrd => t.initrd_ms = t.initrd_ms.or(ms),
            Phase::SwitchRoot => t.switch_root_ms = t.switch_root_ms.or(ms),
            _ => {}
        }
        if !progress.active {
            tracing::info!(
                phase = p.label(),
                elapsed_s = self.l.started.elapsed().as_secs(),
                "boot phase"
            );
        }
    }

    fn on_guest_clock(&mut self, guest: Duration, arrival_ms: i64, mark: Option<console::Mark>) {
        self.clock.push(guest, arrival_ms);
        let g = Some(guest.as_millis() as u64);
        match mark {
            Some(console::Mark::SshdListening) => self.sshd_listening = self.sshd_listening.or(g),
            Some(console::Mark::Address) => self.guest_address = self.guest_address.or(g),
            None => {}
        }
        // Lines after them still refine the mapping.
        let t = &mut self.l.status.timings;
        if let Some(g) = self.sshd_listening {
            t.sshd_listening_ms = self.clock.to_host_ms(g);
        }
        if let Some(g) = self.guest_address {
            t.guest_address_ms = self.clock.to_host_ms(g);
        }
    }

    fn on_ready(&mut self) {
        self.ready = true;
        let ms = self.elapsed_ms();
        self.l.status.timings.ready_ms = Some(ms);
        self.set_state(State::Ready);
        let secs = ms as f64 / 1000.0;
        let msg = format!("VM ready after {secs:.1}s");
        readiness::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&msg),
        ]);
        if self.l.command.is_none() {
            tracing::info!("{msg}: connect with `podman exec -it <container> bcvk ssh`");
        } else {
            tracing::info!("{msg}");
        }
    }

    async fn qemu_ended(
        &mut self,
        exit: ExitInfo,
        command_started: bool,
    ) -> Result<Outcome, VmError> {
        // Let the console pump drain what QEMU wrote last.
        if let Some(done) = self.console_done.take() {
            // QEMU is gone, so EOF follows the last bytes; the wait bounds only a stalled pump.
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        } else {
            self.console_tail.load_file(&self.l.console_log);
        }
        let tail = self.console_tail.lines();
        let kvm_detail = (self.l.qemu.accel == Accel::Kvm && !exit.success())
            .then(|| {
                self.qemu_stderr
                    .lines()
                    .into_iter()
                    .find(|l| qemu::kvm_failure(l))
            })
            .flatten();
        if let Some(detail) = kvm_detail {
            return Err(VmError::Kvm {
                detail: detail.trim().to_string(),
                ready: self.ready,
                tail,
            });
        }
        let hint = console::hint(tail.iter().map(String::as_str))
            .map(|h| format!(": {h}"))
            .unwrap_or_default();
        // A firmware that finds nothing to boot resets the machine, which ends QEMU.
        if matches!(self.l.qemu.boot, BootSpec::Firmware(_))
            && self.phase == Phase::Firmware
            && !self.ready
            && exit.success()
        {
            if let BootSpec::Firmware(fw) = &self.l.qemu.boot {
                return Err(VmError::NothingToBoot {
                    firmware: fw.name(),
                    tail,
                });
            }
        }
        match self.console_tail.end() {
            GuestEnd::Panic => Err(VmError::GuestPanic { hint, tail }),
            GuestEnd::Reboot => Err(VmError::GuestRebooted { hint, tail }),
            _ if !exit.success() => Err(VmError::QemuDied {
                exit,
                stderr: self.qemu_stderr.lines().join(" | "),
                tail,
            }),
            _ if self.l.command.is_some() => Err(VmError::GuestEndedEarly {
                what: if command_started {
                    "the command finished"
                } else {
                    "it was ready"
                },
                tail,
            }),
            _ => Ok(Outcome::PoweredOff),
        }
    }

    /// `systemctl poweroff` over ssh, in the background: ACPI needs logind listening to the
    /// power button, and not every image (nor every boot phase) has it.
    fn ssh_poweroff(&mut self) {
        let args = ssh::ssh_args(
            &self.l.ssh,
            Tty::No,
            5,
            Some("systemctl poweroff --no-block"),
            None,
        );
        let stdios = Stdios {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            foreground: false,
        };
        // Registered as it starts; nobody waits for it (the reaper logs its exit).
        let _ = spawn::spawn(&self.children, Role::SshPoweroff, &ssh_bin(), &args, stdios);
    }

    /// Stop everything, in order. Never fails: it logs and goes on.
    async fn shutdown(&mut self, graceful: bool, requests: &mut mpsc::UnboundedReceiver<Request>) {
        if let Some(pid) = self.qemu_pid.filter(|p| self.children.is_alive(*p)) {
            self.set_state(State::Stopping);
            let mut exited = false;
            // No STOPPING=1 after a KVM failure: the run may go on under TCG, and a service
            // manager told STOPPING=1 would take the service for gone.
            if graceful {
                readiness::notify(&[sd_notify::NotifyState::Stopping]);
            }
            // The power button is answered by systemd-logind: before the guest's userspace
            // runs, nothing in it would act on the request, and waiting only delays the end.
            if graceful && !answers_acpi(self.ready, self.phase) {
                tracing::info!(
                    phase = self.phase.label(),
                    "the guest has not booted far enough to power off by itself: stopping QEMU"
                );
            } else if graceful {
                tracing::info!(
                    timeout_s = self.l.stop_timeout.as_secs(),
                    "asking the guest to power off"
                );
                if let Some(q) = self.qmp.as_mut() {
                    if let Err(e) = q.system_powerdown().await {
                        tracing::debug!(error = %e, "QMP system_powerdown failed");
                    }
                }
                if self.ready {
                    self.ssh_poweroff();
                }
                let deadline = tokio::time::sleep(self.l.stop_timeout);
                tokio::pin!(deadline);
                let answers = self.probe();
                tokio::pin!(answers);
                let mut probing = !self.ready;
                // A press that came while logind was still starting is lost: press again.
                let mut again = tokio::time::interval_at(
                    tokio::time::Instant::now() + ACPI_REPEAT,
                    ACPI_REPEAT,
                );
                loop {
                    tokio::select! {
                        _ = self.children.wait(pid) => {
                            exited = true;
                            break;
                        }
                        _ = &mut deadline => {
                            tracing::warn!(timeout_s = self.l.stop_timeout.as_secs(), "the guest did not power off in time: stopping QEMU");
                            break;
                        }
                        Some(_) = requests.recv() => {
                            tracing::warn!("second stop request: stopping QEMU now");
                            break;
                        }
                        _ = again.tick() => {
                            if let Some(q) = self.qmp.as_mut() {
                                let _ = tokio::time::timeout(Duration::from_secs(1), q.system_powerdown()).await;
                            }
                        }
                        // Stopped while booting: the power button driver may load late (udev
                        // coldplug); as soon as sshd answers, ask over ssh too.
                        res = &mut answers, if probing => {
                            probing = false;
                            self.ready = res.is_ok();
                            if self.ready {
                                self.ssh_poweroff();
                            }
                        }
                    }
                }
            }
            if !exited {
                if let Some(q) = self.qmp.as_mut() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), q.quit()).await;
                }
                self.children.stop(pid, Duration::from_secs(2)).await;
            }
        }
        self.qemu_pid = None;
        for (tag, pid, _) in std::mem::take(&mut self.vfs) {
            if self.children.is_alive(pid) {
                let exit = self.children.stop(pid, Duration::from_secs(2)).await;
                tracing::debug!(%tag, %exit, "virtiofsd stopped");
            }
        }
        // ssh clients (probe, command, poweroff) have nothing left to talk to.
        self.children.signal_all(
            |r| matches!(r, Role::SshProbe | Role::SshCommand | Role::SshPoweroff),
            Signal::SIGKILL,
        );
        for (pid, _) in self.children.alive() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.children.wait(pid)).await;
        }
        for path in run_dir_leftovers(&self.l) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How often the ACPI power button is pressed again while the guest shuts down.
const ACPI_REPEAT: Duration = Duration::from_secs(3);

/// Whether the guest can act on an ACPI power-off request: its userspace (systemd, logind)
/// runs. In the firmware, kernel or initramfs phases the request would go unanswered.
fn answers_acpi(ready: bool, phase: Phase) -> bool {
    ready || phase >= Phase::Userspace
}

/// What a run leaves in the run directory besides the status file and the console log: the
/// sockets, virtiofsd's pid files (`<socket>.pid`, its lock), the command's ssh log.
fn run_dir_leftovers(l: &VmLaunch) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (_, spec) in &l.shares {
        let mut pid = spec.socket.clone().into_os_string();
        pid.push(".pid");
        paths.push(spec.socket.clone());
        paths.push(pid.into());
    }
    paths.push(l.qemu.qmp_socket.clone());
    paths.push(l.run_dir.join("ssh-command.log"));
    paths
}

pub fn ssh_bin() -> PathBuf {
    spawn::find_program("ssh").unwrap_or_else(|_| PathBuf::from("/usr/bin/ssh"))
}

/// Wait until a real `ssh true` round trip succeeds: started once a new connection reaches
/// the guest at once (its network answers), then again every poll while the guest resets it
/// (see `readiness`). Each attempt is logged at debug level with how it ended; ssh's own
/// messages go to `ssh-probe.log` in the run directory. Returns when the attempt that
/// succeeded started.
async fn probe_ready(
    children: Children,
    target: SshTarget,
    net_port: Option<u16>,
    run_dir: PathBuf,
) -> Result<Instant, VmError> {
    let ssh = spawn::find_program("ssh").map_err(|e| VmError::SshClient(e.to_string()))?;
    let log = run_dir.join("ssh-probe.log");
    let mut network = net_port.is_none();
    let mut quick_failures = 0u32;
    let mut attempt = 0u32;
    loop {
        if !network {
            // A banner instead (the network probe unanswered): sshd is there, try it.
            let how = readiness::wait_for_network(target.port, net_port.expect("unset")).await;
            network = how == readiness::Reached::Network;
        } else if readiness::knock_first(quick_failures) {
            readiness::wait_for_sshd(target.port).await;
        }
        attempt += 1;
        let args = ssh::ssh_args(&target, Tty::No, 10, Some("true"), Some(&log));
        let stdios = Stdios {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            foreground: false,
        };
        let t = Instant::now();
        let sp = spawn::spawn(&children, Role::SshProbe, &ssh, &args, stdios)?;
        let exit = children.wait(sp.pid).await;
        let took = t.elapsed();
        tracing::debug!(attempt, %exit, ms = took.as_millis() as u64, "ssh probe: `ssh true` ended");
        if exit.success() {
            return Ok(t);
        }
        quick_failures = if took < readiness::QUICK_FAILURE {
            quick_failures + 1
        } else {
            0
        };
        tokio::time::sleep(readiness::retry_delay(took)).await;
    }
}

/// Run the one-shot command with the container's stdio, returning its exit status.
///
/// Under heavy load a connection can still drop during key exchange right after the probe
/// succeeded; ssh then exits 255 before the command ran. Its VERBOSE log (kept in a file, not
/// on the command's stderr) tells that case apart from a command that itself exited 255, and
/// only that case is retried.
async fn run_command(
    children: Children,
    target: SshTarget,
    remote: String,
    tty: Tty,
    log: PathBuf,
) -> Result<CommandEnd, VmError> {
    let ssh = spawn::find_program("ssh").map_err(|e| VmError::SshClient(e.to_string()))?;
    let mut attempt = 1;
    loop {
        let _ = std::fs::remove_file(&log);
        let args = ssh::ssh_args(&target, tty, 10, Some(&remote), Some(&log));
        let stdios = Stdios {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            foreground: true,
        };
        let sp = spawn::spawn(&children, Role::SshCommand, &ssh, &args, stdios)?;
        let exit = children.wait(sp.pid).await;
        spawn::reclaim_terminal();
        if exit != ExitInfo::Code(255) {
            return Ok(CommandEnd {
                exit,
                ssh_said: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if ssh::authenticated(&text) || attempt == 3 {
            // What ssh said went to the log, not to stderr; the caller shows it.
            let ssh_said = text
                .lines()
                .filter(|l| ssh::noteworthy(l))
                .map(str::to_string)
                .collect();
            return Ok(CommandEnd { exit, ssh_said });
        }
        let reason = text
            .lines()
            .rev()
            .find(|l| ssh::noteworthy(l))
            .unwrap_or("no message")
            .to_string();
        tracing::warn!(
            attempt,
            %reason,
            "the SSH connection for the command failed before it started: retrying"
        );
        attempt += 1;
        readiness::wait_for_sshd(target.port).await;
    }
}

/// Log a child's stderr lines and keep them as a tail; `watch` sees each line.
fn forward_lines(
    stream: std::process::ChildStderr,
    who: String,
    tail: Tail,
    watch: Option<LineWatch>,
) {
    let Ok(rx) =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(stream))
    else {
        return;
    };
    tokio::spawn(async move {
        let mut lines = BufReader::new(rx).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::warn!(target: "bcvk::child", "{who}: {line}");
            if let Some(w) = &watch {
                w(&line);
            }
            tail.push(&line);
        }
    });
}

/// Resolve to the first of several futures (all of the same type).
async fn futures_select_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) -> F::Output {
    if futs.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A single updating progress line on a terminal (elapsed time and boot phase).
struct ProgressLine {
    active: bool,
}

impl ProgressLine {
    fn new(active: bool) -> ProgressLine {
        ProgressLine { active }
    }
    fn show(&self, elapsed: Duration, phase: Phase) {
        if self.active {
            eprint!(
                "\r\x1b[K[{:>4}s] booting: {}",
                elapsed.as_secs(),
                phase.label()
            );
        }
    }
    fn clear(&self) {
        if self.active {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_end_in_a_dangling_separator() {
        let died = |stderr: &str| {
            VmError::QemuDied {
                exit: ExitInfo::Code(1),
                stderr: stderr.into(),
                tail: vec![],
            }
            .to_string()
        };
        assert_eq!(
            died(""),
            "QEMU exited (exit code 1) before the guest was done"
        );
        assert_eq!(
            died("  | "),
            "QEMU exited (exit code 1) before the guest was done"
        );
        assert_eq!(
            died("qemu: boom"),
            "QEMU exited (exit code 1) before the guest was done: qemu: boom"
        );
        let socket = VmError::VirtiofsdSocket {
            tag: "rootfs".into(),
            secs: 10,
            stderr: String::new(),
        };
        assert!(!socket.to_string().ends_with(": "), "{socket}");
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let tail = Vec::new;
        assert_eq!(
            VmError::GuestPanic {
                hint: String::new(),
                tail: tail()
            }
            .exit_code(),
            70
        );
        assert_eq!(
            VmError::GuestRebooted {
                hint: String::new(),
                tail: tail()
            }
            .exit_code(),
            70
        );
        let timeout = VmError::ReadyTimeout {
            secs: 1,
            phase: "kernel",
            tail: tail(),
        };
        assert_eq!(timeout.exit_code(), 75);
    }

    #[test]
    fn only_ssh_failures_and_signals_may_mean_the_guest_went_down() {
        for code in [0, 1, 42, 127, 128] {
            assert!(!may_be_guest_going_down(ExitInfo::Code(code)), "{code}");
        }
        for code in [130, 137, 143, 255] {
            assert!(may_be_guest_going_down(ExitInfo::Code(code)), "{code}");
        }
        assert!(may_be_guest_going_down(ExitInfo::Signaled(Signal::SIGKILL)));
    }

    #[test]
    fn only_a_guest_with_userspace_answers_acpi() {
        for phase in [
            Phase::Firmware,
            Phase::Kernel,
            Phase::Initrd,
            Phase::SwitchRoot,
        ] {
            assert!(!answers_acpi(false, phase), "{phase:?}");
            assert!(answers_acpi(true, phase), "{phase:?}");
        }
        assert!(answers_acpi(false, Phase::Userspace));
        assert!(answers_acpi(false, Phase::Sshd));
    }
}
