//! examples/kubernetes played with `podman kube play` (no cluster here). Adapted by
//! `kube::for_podman` only: podman 4.3 plays no Jobs (the Job's pod template is played as a
//! Pod), knows no device plugins (/dev/kvm is mapped as a CharDevice hostPath instead), and
//! the images point at local tags. podman 4.3 does not run readiness probes either, so the
//! test runs the probe's own exec command the way the kubelet would, every second.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bcvk_integration::kube::{self, Adapt};
use bcvk_integration::*;
use libtest_mimic::Failed;

use crate::R;

/// The example, adapted, written to DIR/NAME.yaml; returns the pod's spec and the file.
fn adapted(
    example: &Path,
    name: &str,
    dir: &Path,
    edit: impl FnOnce(&mut serde_yaml::Value) -> Result<(), String>,
) -> Result<(serde_yaml::Value, std::path::PathBuf), Failed> {
    let text = std::fs::read_to_string(example).map_err(|e| e.to_string())?;
    let mut pod = kube::for_podman(
        &text,
        &Adapt {
            name,
            target_image: &debian(),
            bcvk_image: &bcvk_image(),
            kvm: Path::new("/dev/kvm").exists(),
        },
    )?;
    edit(&mut pod)?;
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        serde_yaml::to_string(&pod).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok((pod, file))
}

fn names(args: &[&str]) -> BTreeSet<String> {
    podman(args)
        .stdout
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// What a played pod may leave behind: its pod, its containers, the volumes they mounted
/// (an `emptyDir`, if podman makes one a volume), bcvk VM processes of its containers.
/// Only what is the pod's own is judged: other people's tests run on this machine too.
struct Leftovers {
    volumes: BTreeSet<String>,
}

impl Leftovers {
    /// The named volumes the pod's containers (`ids`) mount, while they exist.
    fn of_pod(ids: &[String]) -> Leftovers {
        let mut volumes = BTreeSet::new();
        for id in ids {
            let r = podman(&[
                "inspect",
                "--format",
                "{{range .Mounts}}{{.Name}} {{end}}",
                id,
            ]);
            volumes.extend(r.stdout.split_whitespace().map(str::to_string));
        }
        Leftovers { volumes }
    }

    /// Everything of the pod NAME (with container ids `ids`) that is still there.
    fn of(&self, name: &str, ids: &[String]) -> Vec<String> {
        let mut left = Vec::new();
        if podman(&["pod", "exists", name]).code == 0 {
            left.push(format!("pod {name}"));
        }
        for c in names(&["ps", "-a", "--format", "{{.Names}}"]) {
            if c.starts_with(&format!("{name}-")) {
                left.push(format!("container {c}"));
            }
        }
        for v in &self.volumes {
            if podman(&["volume", "exists", v]).code == 0 {
                left.push(format!("volume {v}"));
            }
        }
        for proc_name in ["qemu-system-x86_64", "virtiofsd"] {
            for pid in cmd("pgrep", &["-f", proc_name]).stdout.lines() {
                let cgroup =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                if ids.iter().any(|id| cgroup.contains(id.as_str())) {
                    left.push(format!("process {pid} {proc_name}"));
                }
            }
        }
        left
    }
}

/// Every container id of the pod, the init container's too.
fn container_ids(name: &str) -> Vec<String> {
    names(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("pod={name}"),
        "--format",
        "{{.ID}}",
    ])
    .into_iter()
    .collect()
}

fn state(ctr: &str) -> (String, i32) {
    let r = podman(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        ctr,
    ]);
    let mut it = r.stdout.split_whitespace();
    let status = it.next().unwrap_or("gone").to_string();
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
    (status, code)
}

fn wait_exited(ctr: &str, timeout: Duration) -> Result<i32, Failed> {
    let deadline = Instant::now() + timeout;
    loop {
        match state(ctr) {
            (s, code) if s == "exited" => return Ok(code),
            (s, _) if s == "gone" => return Err(format!("{ctr} is gone").into()),
            _ => {}
        }
        check!(
            Instant::now() < deadline,
            "{ctr} still runs after {timeout:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `podman kube down FILE`, then nothing of the pod may remain.
fn down(file: &Path, name: &str, ids: &[String], before: &Leftovers) -> Result<Duration, Failed> {
    let t = Instant::now();
    let r = podman(&["kube", "down", &file.to_string_lossy()]);
    let took = t.elapsed();
    check!(r.code == 0, "kube down: {}", r.show());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = before.of(name, ids);
        if left.is_empty() {
            return Ok(took);
        }
        if Instant::now() > deadline {
            return Err(format!("left behind by {name}: {left:?}").into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Removes the pod when a check fails half-way.
struct PodGuard(String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &self.0]);
    }
}

/// The Job's pod template played as is: the guest command's exit code is the container's
/// (what makes a Kubernetes Job succeed or fail with backoffLimit 0), its output is the
/// container's stdout and the console its stderr; then again with the command replaced by
/// `exit 3`, which must come back as 3.
pub fn job_exit_code_and_logs() -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let kernel = image_kernel_version(&debian())?;
    for (want, command) in [(0, None), (3, Some(["sh", "-c", "echo failing; exit 3"]))] {
        let name = format!("bcvk-e2e-job-{}-{want}", std::process::id());
        let (_, file) = adapted(&kube::job_path(), &name, dir.path(), |pod| {
            if let Some(c) = command {
                let vm = kube::container(pod, "vm").ok_or("no vm container")?;
                kube::set_guest_command(vm, &c)?;
            }
            Ok(())
        })?;
        let _guard = PodGuard(name.clone());
        let t = Instant::now();
        let r = podman(&["kube", "play", &file.to_string_lossy()]);
        check!(r.code == 0, "kube play: {}", r.show());
        let ctr = format!("{name}-vm");
        let ids = container_ids(&name);
        let before = Leftovers::of_pod(&ids);
        let code = wait_exited(&ctr, Duration::from_secs(900))?;
        let logs = podman(&["logs", &ctr]);
        eprintln!(
            "job (want {want}): exit {code} after {:.1}s",
            t.elapsed().as_secs_f64()
        );
        check!(
            code == want,
            "the Job's container should exit {want}, got {code}:\n{}",
            tail(&logs.stderr, 40)
        );
        if want == 0 {
            check!(
                logs.stdout.lines().any(|l| l.trim() == kernel),
                "uname -r ({kernel}) not in the command's output: {}",
                logs.stdout
            );
        } else {
            check!(logs.stdout.contains("failing"), "{}", logs.stdout);
        }
        // The console, on stderr beside bcvk's own log lines.
        check!(
            logs.stderr.contains("Linux version") && logs.stderr.contains("root directory"),
            "the console and the --rootfs log line should be in the logs:\n{}",
            tail(&logs.stderr, 40)
        );
        // The init container's copy carries podman's /run/.containerenv: bcvk hides it, or
        // the guest's systemd would take itself for a container and ignore the SSH key.
        check!(
            !logs.stderr.contains("Detected virtualization podman"),
            "the guest believes it runs in a container:\n{}",
            tail(&logs.stderr, 40)
        );
        down(&file, &name, &ids, &before)?;
    }
    Ok(())
}

/// The Pod example: not ready (by its own readiness probe's command) until the guest answers
/// SSH; `bcvk ssh` through exec keeps the command's exit code; `podman kube down` powers the
/// guest off within the grace period and leaves nothing.
pub fn pod_ready_ssh_and_graceful_down() -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let name = format!("bcvk-e2e-pod-{}", std::process::id());
    let (mut pod, file) = adapted(&kube::pod_path(), &name, dir.path(), |_| Ok(()))?;
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .ok_or("no grace period")?;
    let probe = kube::readiness_command(kube::container(&mut pod, "vm").ok_or("no vm")?)
        .ok_or("no readiness probe")?;
    let _guard = PodGuard(name.clone());
    let r = podman(&["kube", "play", &file.to_string_lossy()]);
    check!(r.code == 0, "kube play: {}", r.show());
    let ctr = format!("{name}-vm");
    let ids = container_ids(&name);
    let before = Leftovers::of_pod(&ids);
    eprintln!("pod: volumes of its containers: {:?}", before.volumes);
    // Follow the logs from the start: kube down removes the container, and its log with it.
    let log_path = dir.path().join("vm.log");
    let log_file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut follower = Command::new("podman")
        .args(["logs", "-f", &ctr])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| e.to_string())?;

    let t = Instant::now();
    let (mut not_ready, mut ready_after) = (0, None);
    while t.elapsed() < Duration::from_secs(900) {
        let mut a = vec!["exec", ctr.as_str()];
        a.extend(probe.iter().map(String::as_str));
        if podman(&a).code == 0 {
            ready_after = Some(t.elapsed());
            break;
        }
        not_ready += 1;
        check!(
            state(&ctr).0 == "running",
            "the VM container stopped: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let ready_after = ready_after.ok_or("never ready")?;
    eprintln!(
        "pod: ready after {:.1}s ({not_ready} probes said not ready)",
        ready_after.as_secs_f64()
    );
    check!(not_ready > 0, "ready at the first probe: before the boot?");
    // Ready means SSH works: the very next command gets through, with its exit code.
    let st = podman(&["exec", &ctr, "bcvk", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).map_err(|e| e.to_string())?;
    check!(v["state"] == "ready", "{v}");
    // For the README's resource figures: each process's resident memory at ready (guest RAM
    // is QEMU's shared memory, RssShmem), and the container's memory cgroup.
    let mem = podman(&[
        "exec",
        &ctr,
        "sh",
        "-c",
        "for f in /proc/[0-9]*/status; do awk '/^(Name|RssAnon|RssFile|RssShmem):/ {printf \"%s %s \", $1, $2} END {print \"\"}' $f; done; \
         cat /sys/fs/cgroup/memory.current /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null",
    ]);
    eprintln!("pod: memory at ready (kB):\n{}", mem.stdout.trim_end());
    let r = podman(&["exec", &ctr, "bcvk", "ssh", "sh", "-c", "exit 7"]);
    check!(r.code == 7, "bcvk ssh through exec: {}", r.show());
    let r = podman(&[
        "exec",
        &ctr,
        "bcvk",
        "ssh",
        "test",
        "-d",
        "/usr/lib/modules",
    ]);
    check!(r.code == 0, "{}", r.show());

    // podman 4.3 ignores terminationGracePeriodSeconds (the container's stop timeout stays
    // its default 10 s, and kube down stops with it): where it did, stop the pod first as
    // the kubelet does, SIGTERM and up to the grace period, then kube down removes it.
    let stop_timeout = podman(&["inspect", "--format", "{{.Config.StopTimeout}}", &ctr]);
    let t = Instant::now();
    let mut stopped_logs = None;
    if stop_timeout.stdout.trim() != grace.to_string() {
        eprintln!(
            "pod: podman set a {} s stop timeout, not the {grace} s grace period: pod stop -t {grace} first",
            stop_timeout.stdout.trim()
        );
        let r = podman(&["pod", "stop", "-t", &grace.to_string(), &name]);
        check!(r.code == 0, "pod stop: {}", r.show());
        // The stopped container's own log is complete; the `podman logs -f` follower may miss
        // the last lines when the container goes (seen once with podman 4.3: "VM stopped").
        stopped_logs = Some(podman(&["logs", &ctr]));
    }
    down(&file, &name, &ids, &before)?;
    let took = t.elapsed();
    let _ = follower.wait();
    let mut logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Some(r) = stopped_logs.filter(|r| r.code == 0) {
        logs = format!("{}{}", r.stdout, r.stderr);
    }
    eprintln!("pod: stopped and removed in {:.1}s", took.as_secs_f64());
    check!(
        took < Duration::from_secs(grace),
        "kube down took {took:?}, over the {grace} s grace period"
    );
    check!(
        logs.contains("VM stopped") && !logs.contains("did not power off in time"),
        "the guest was not powered off gracefully:\n{}",
        tail(&logs, 30)
    );
    check!(
        logs.contains("reboot: Power down") || logs.contains("Powering off"),
        "no poweroff on the console:\n{}",
        tail(&logs, 30)
    );
    Ok(())
}
