//! How the VM is brought down: ACPI power button, `systemctl poweroff` over SSH, then QEMU's
//! quit and signals, each with its deadline.

use super::*;

impl Vm {
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
    pub(super) async fn shutdown(
        &mut self,
        graceful: bool,
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) {
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
    ready || phase.in_userspace()
}

#[cfg(test)]
mod tests {
    use super::*;

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
