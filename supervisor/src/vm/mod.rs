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
use crate::spawn::{self, Role, Stdios};
use crate::ssh::{self, SshTarget, Tty};
use crate::status::{self, State, Status};
use crate::virtiofsd::{self, Sandbox, VirtiofsSpec};

mod error;
mod guest_ssh;
mod progress;
mod shutdown;
mod stall;

pub use error::VmError;
use guest_ssh::{
    may_be_guest_going_down, probe_ready, run_command, ssh_bin, CommandEnd, CommandFuture,
    GUEST_GONE_WAIT,
};
use progress::ProgressLine;
pub use stall::restart_after_stall;
use stall::StallWatch;

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
    /// `--log-dir`'s console.txt, a second copy of the console.
    pub console_copy: Option<PathBuf>,
    pub ssh: SshTarget,
    /// The container port forwarded to [`readiness::NET_PROBE_GUEST_PORT`], if any.
    pub net_probe_port: Option<u16>,
    /// The one-shot command as one remote shell string.
    pub command: Option<String>,
    pub command_tty: Tty,
    pub ready_timeout: Duration,
    /// A stalled boot's run is started over (`--on-stall restart`): its end is not the VM's.
    pub restart_if_stalled: bool,
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
    /// Signs of a stalled guest kernel, before it is ready.
    stall: StallWatch,
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
        stall: StallWatch::new(Instant::now()),
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let result = vm.boot_and_supervise(&tx, &mut events, requests).await;
    // A stalled kernel answers no power button; and after either failure the run may go on
    // (TCG fallback, --on-stall restart).
    let graceful = !matches!(
        result,
        Err(VmError::Kvm { .. } | VmError::GuestStalled { .. })
    );
    vm.shutdown(graceful, requests).await;
    // After --console, QEMU had the terminal.
    spawn::reclaim_terminal();
    if vm.l.restart_if_stalled && matches!(result, Err(VmError::GuestStalled { .. })) {
        // Not exited: `bcvk status --wait` and `bcvk ssh` go on waiting for the restart.
        return result;
    }
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

        let deadline = self.ready_deadline();
        let qemu_pid = self.qemu_pid.expect("qemu started");
        let qemu_exit = self.children.clone();
        let qemu_exit = qemu_exit.wait(qemu_pid);
        tokio::pin!(qemu_exit);
        let vfs_exit = self.virtiofsd_exit();
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
                    return Ok(self.stop_requested(sig, events, &progress));
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
                        phase: self.phase,
                        tail: self.console_tail.lines(),
                    });
                }
                _ = ticker.tick(), if !self.ready => {
                    progress.show(self.l.started.elapsed(), self.phase);
                    if let Some(err) = self.firmware_gave_up().or_else(|| self.stalled()) {
                        progress.clear();
                        return Err(err);
                    }
                }
            }
        }
    }

    /// When readiness gives up. Checked: the options cap timeouts, but an Instant overflow
    /// would abort PID 1.
    fn ready_deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        now.checked_add(self.l.ready_timeout)
            .unwrap_or(now + Duration::from_secs(crate::config::MAX_TIMEOUT_SECS))
    }

    /// The first virtiofsd to exit: its tag and exit.
    fn virtiofsd_exit(&self) -> impl std::future::Future<Output = (String, ExitInfo)> {
        let children = self.children.clone();
        let pids: Vec<(String, Pid)> = self.vfs.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        async move {
            let waits = pids.into_iter().map(|(tag, pid)| {
                let c = children.clone();
                Box::pin(async move { (tag, c.wait(pid).await) })
            });
            futures_select_all(waits.collect()).await
        }
    }

    /// podman stop or Ctrl-C: the phases the console already announced count, since how the
    /// guest is stopped depends on how far it got.
    fn stop_requested(
        &mut self,
        sig: Signal,
        events: &mut mpsc::UnboundedReceiver<Event>,
        progress: &ProgressLine,
    ) -> Outcome {
        progress.clear();
        while let Ok(ev) = events.try_recv() {
            if let Event::Phase(p) = ev {
                self.on_phase(p, progress);
            }
        }
        tracing::info!(signal = %sig, "stopping the VM");
        Outcome::Stopped(sig)
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
        tracing::info!(
            pid = sp.pid.as_raw(),
            accel = %self.l.status.accel,
            ready_timeout_s = self.l.ready_timeout.as_secs(),
            "QEMU started"
        );
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
            let copy = self.l.console_copy.clone();
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
