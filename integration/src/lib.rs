//! Helpers for the end-to-end tests: podman invocations of the real bcvk image, the store
//! fingerprint, and leak checks. Settings come from `integration/lib.sh` (exported by the
//! `integration/test` script); defaults match it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn bcvk_image() -> String {
    var("BCVK_IMAGE", "localhost/bcvk:latest")
}
pub fn debian() -> String {
    var("BCVK_TEST_DEBIAN", "localhost/bcvk-test/debian:latest")
}
/// The debian guest for arm64 (test-images/arm64/build.sh).
pub fn debian_arm64() -> String {
    var("BCVK_TEST_DEBIAN_ARM64", "localhost/bcvk-test/debian:arm64")
}
pub fn layered() -> String {
    var("BCVK_TEST_LAYERED", "localhost/bcvk-test/layered:latest")
}
pub fn nokernel() -> String {
    var("BCVK_TEST_NOKERNEL", "localhost/bcvk-test/nokernel:latest")
}
/// The VM disk images test-images/disk/build.sh makes (debian.qcow2, debian.raw, bad ones).
pub fn disk_dir() -> PathBuf {
    PathBuf::from(var(
        "BCVK_TEST_DISK_DIR",
        &format!(
            "{}/build/disk",
            env!("CARGO_MANIFEST_DIR").trim_end_matches("/integration")
        ),
    ))
}
pub fn containerdisk() -> String {
    var(
        "BCVK_TEST_CONTAINERDISK",
        "localhost/bcvk-test/containerdisk:latest",
    )
}
pub fn containerdisk_two() -> String {
    var(
        "BCVK_TEST_CONTAINERDISK_TWO",
        "localhost/bcvk-test/containerdisk-two:latest",
    )
}
/// A file's bytes, hashed: what "unchanged" means for a user's disk image.
pub fn file_digest(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
pub fn host_store() -> PathBuf {
    PathBuf::from(var("BCVK_HOST_STORE", "/var/lib/containers/storage"))
}

/// Every container the tests create carries this label, so teardown finds them all. Its
/// value is this test process's id: other people's test runs on the same machine carry
/// another, and teardown and the leak checks leave their containers alone.
pub fn test_label() -> &'static str {
    static LABEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LABEL.get_or_init(|| format!("bcvk.integration={}", std::process::id()))
}

/// The result of a command, with text output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn from(out: Output, elapsed: Duration) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }
    /// The last line on stderr (where bcvk's `bcvk: error: ` line is), or "".
    pub fn last_stderr_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }

    /// For assertion messages: everything this run printed.
    pub fn show(&self) -> String {
        format!(
            "exit {} after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end(),
            tail(&self.stderr, 60)
        )
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The cells of a table the host command prints (`bcvk ephemeral ps`, `bcvk vm list`): a row
/// a line, the columns two or more spaces apart (a cell holds single spaces: "5 minutes").
pub fn table_cells(out: &str) -> Vec<Vec<&str>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .collect()
}

/// The row of such a table whose first cell (NAME) is `name`.
pub fn table_row<'a>(out: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table_cells(out)
        .into_iter()
        .find(|row| row.first() == Some(&name))
}

/// Run a program to completion, capturing its output.
pub fn cmd(program: &str, args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Run::from(out, t.elapsed())
}

pub fn podman(args: &[&str]) -> Run {
    cmd("podman", args)
}

/// The `podman run` arguments every bcvk container needs: the store, read-only, and /dev/kvm.
/// No added privileges: podman's default capabilities and seccomp profile are enough.
pub fn run_prefix(store_mount: bool) -> Vec<String> {
    let mut a: Vec<String> = ["run", "--label", test_label()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if Path::new("/dev/kvm").exists() {
        a.extend(["--device".into(), "/dev/kvm".into()]);
    }
    if store_mount {
        a.extend([
            "-v".into(),
            format!("{}:/run/host-storage:ro", host_store().display()),
        ]);
    }
    a
}

/// `podman run --rm <prefix> <podman_extra> bcvk <bcvk_args>`, to completion.
pub fn bcvk_oneshot(podman_extra: &[&str], bcvk_args: &[&str]) -> Run {
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.extend(podman_extra.iter().map(|s| s.to_string()));
    a.push(bcvk_image());
    a.extend(bcvk_args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    podman(&refs)
}

/// A detached bcvk container, removed when dropped.
pub struct Detached {
    pub name: String,
}

impl Detached {
    pub fn start(
        name: &str,
        podman_extra: &[&str],
        bcvk_args: &[&str],
    ) -> Result<Detached, String> {
        let _ = podman(&["rm", "-f", "-t", "0", name]);
        let mut a = run_prefix(true);
        a.extend(["-d".into(), "--name".into(), name.into()]);
        a.extend(podman_extra.iter().map(|s| s.to_string()));
        a.push(bcvk_image());
        a.extend(bcvk_args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = podman(&refs);
        if r.code != 0 {
            return Err(format!("podman run -d failed: {}", r.show()));
        }
        Ok(Detached {
            name: name.to_string(),
        })
    }

    /// `podman exec NAME bcvk ARGS...`
    pub fn bcvk(&self, args: &[&str]) -> Run {
        let mut a = vec!["exec", self.name.as_str(), "bcvk"];
        a.extend_from_slice(args);
        podman(&a)
    }

    /// `podman exec NAME bcvk ssh -- CMD` run by the guest's shell.
    pub fn ssh(&self, shell: &str) -> Run {
        self.bcvk(&["ssh", shell])
    }

    /// Wait until `bcvk status` says ready; returns the status JSON.
    pub fn wait_ready(&self, timeout: Duration) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.bcvk(&["status", "--json"]);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.stdout) {
                match v["state"].as_str() {
                    Some("ready") => return Ok(v),
                    Some("exited") => return Err(format!("VM exited: {v}\n{}", self.logs())),
                    _ => {}
                }
            } else if !self.running() {
                return Err(format!("container is gone\n{}", self.logs()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {timeout:?}\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    pub fn running(&self) -> bool {
        podman(&["inspect", "--format", "{{.State.Running}}", &self.name])
            .stdout
            .trim()
            == "true"
    }

    pub fn logs(&self) -> String {
        let r = podman(&["logs", &self.name]);
        format!(
            "--- podman logs (tail)\n{}\n{}",
            tail(&r.stdout, 40),
            tail(&r.stderr, 40)
        )
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// What must not change in the host store: for each test image, its record in images.json,
/// the records of its layers in layers.json, and every file under its layers (path, type,
/// size, mode, mtime, and for regular files up to 1 MiB, the contents). The whole metadata
/// files do change while tests run: podman itself records the test containers there.
pub fn store_fingerprint(images: &[String]) -> Result<String, String> {
    store_fingerprint_at(&host_store(), images)
}

/// `store_fingerprint` of the store at `store` (a rootless user's, say).
pub fn store_fingerprint_at(store: &Path, images: &[String]) -> Result<String, String> {
    let read_json = |p: &str| -> Result<serde_json::Value, String> {
        let path = store.join(p);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let imgs = read_json("overlay-images/images.json")?;
    let layers = read_json("overlay-layers/layers.json")?;
    let mut h = Sha256::new();
    let mut hashed = std::collections::BTreeSet::new();
    let by_id: BTreeMap<String, &serde_json::Value> = layers
        .as_array()
        .ok_or("layers.json is not an array")?
        .iter()
        .filter_map(|l| Some((l["id"].as_str()?.to_string(), l)))
        .collect();
    for name in images {
        let full = if name.contains(':') {
            name.clone()
        } else {
            format!("{name}:latest")
        };
        let rec = imgs
            .as_array()
            .ok_or("images.json is not an array")?
            .iter()
            .find(|i| {
                i["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| x.as_str() == Some(full.as_str())))
            })
            .ok_or(format!("{full} not in the store"))?;
        h.update(rec.to_string());
        let mut layer = rec["layer"].as_str().map(str::to_string);
        while let Some(id) = layer {
            let l = by_id.get(&id).ok_or(format!("layer {id} missing"))?;
            h.update(l.to_string());
            // Images share layers: each one's files are hashed once.
            if hashed.insert(id.clone()) {
                hash_tree(&store.join("overlay").join(&id).join("diff"), &mut h)?;
            }
            layer = l["parent"].as_str().map(str::to_string);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The paths of what a directory holds (for "nothing left behind" checks), the error naming it.
pub fn dir_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect())
}

fn hash_tree(dir: &Path, h: &mut Sha256) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| format!("{}: {e}", d.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            h.update(format!(
                "{}|{}|{}|{}|{}\n",
                p.display(),
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ));
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.size() <= 1 << 20 {
                if let Ok(bytes) = std::fs::read(&p) {
                    h.update(&bytes);
                }
            }
        }
    }
    Ok(())
}

/// Host-side traces a bcvk run must not leave: VM processes, bcvk containers of the tests,
/// mounts of the supervisor's run directory.
pub fn leaks() -> Vec<String> {
    let mut found = Vec::new();
    for proc_name in ["qemu-system-x86_64", "virtiofsd"] {
        let r = cmd("pgrep", &["-a", "-f", proc_name]);
        // Only bcvk's own VMs (their files live under /run/bcvk): other QEMUs on the machine,
        // such as a benchmark's hand-written floor, are not ours to judge.
        for line in r
            .stdout
            .lines()
            .filter(|l| !l.contains("pgrep") && l.contains("/run/bcvk/"))
        {
            let pid = line.split_whitespace().next().unwrap_or("");
            if of_this_run(pid) {
                found.push(format!("process: {line}"));
            }
        }
    }
    let ps = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={}", test_label()),
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    for line in ps.stdout.lines().filter(|l| !l.trim().is_empty()) {
        found.push(format!("container: {line}"));
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mounts.lines().filter(|l| l.contains("/run/bcvk")) {
            found.push(format!("mount: {line}"));
        }
    }
    found
}

/// Whether a VM process belongs to this test run: its container (from its cgroup) carries this
/// run's label, or no longer exists (an orphan, a real leak). Other people's VMs on the machine,
/// in their own containers, are never judged, nor killed by `clean_leaks`.
fn of_this_run(pid: &str) -> bool {
    let Ok(cgroup) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    // A container in a pod (podman kube play, podman run --pod) sits in a cgroup named for the
    // pod's id and then its own: judging by the first id alone took every pod's VM for an
    // orphan, and other test runs on the machine SIGKILLed it.
    let mut ids: Vec<&str> = cgroup
        .split(['/', '-', '\n', '.'])
        .filter(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    ids.dedup();
    if ids.is_empty() {
        return false;
    }
    for id in &ids {
        if podman(&["pod", "exists", id]).code == 0 {
            continue;
        }
        let r = podman(&[
            "container",
            "inspect",
            "--format",
            "{{index .Config.Labels \"bcvk.integration\"}}",
            id,
        ]);
        if r.code == 0 {
            return format!("bcvk.integration={}", r.stdout.trim()) == test_label();
        }
    }
    // No container of these ids exists: an orphan, unless its pod still does.
    !ids.iter()
        .any(|id| podman(&["pod", "exists", id]).code == 0)
}

/// The stable identity of a `leaks()` entry: a container by name (its status text changes as
/// time passes), a process by pid and command line, a mount by its line.
pub fn leak_key(entry: &str) -> String {
    match entry.strip_prefix("container: ") {
        Some(rest) => format!(
            "container: {}",
            rest.split_whitespace().next().unwrap_or("")
        ),
        None => entry.to_string(),
    }
}

/// The keys (`leak_key`) of what `leaks()` finds now.
pub fn leak_keys() -> std::collections::BTreeSet<String> {
    leaks().iter().map(|e| leak_key(e)).collect()
}

/// What `leaks()` finds now that is not in `before` (keys from `leak_key`), waiting up to
/// `grace` for containers removed by `--rm` and exiting processes to go.
pub fn new_leaks(before: &std::collections::BTreeSet<String>, grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    loop {
        let new: Vec<String> = leaks()
            .into_iter()
            .filter(|e| !before.contains(&leak_key(e)))
            .collect();
        if new.is_empty() || Instant::now() >= deadline {
            return new;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Remove what a failed test left (so that the next test starts clean): containers by name,
/// processes by pid.
pub fn clean_leaks(entries: &[String]) {
    for e in entries {
        if let Some(rest) = e.strip_prefix("container: ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            let _ = podman(&["rm", "-f", "-t", "0", name]);
        } else if let Some(rest) = e.strip_prefix("process: ") {
            let pid = rest.split_whitespace().next().unwrap_or("");
            let _ = cmd("kill", &["-9", pid]);
        }
    }
}

/// The kernel version the debian test image ships (its /usr/lib/modules entry).
pub fn image_kernel_version(image: &str) -> Result<String, String> {
    let r = podman(&[
        "run",
        "--rm",
        "--entrypoint",
        "ls",
        image,
        "/usr/lib/modules",
    ]);
    if r.code != 0 {
        return Err(r.show());
    }
    r.stdout
        .lines()
        .last()
        .map(str::to_string)
        .ok_or("no kernel in image".into())
}
pub mod examples;
pub mod kube;

/// `podman ARGS` on a real terminal (made by `script`), as a person at a shell runs it: what
/// it prints is collected, bytes can be typed, and it is killed if still running when dropped.
pub struct Terminal {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    chunks: std::sync::mpsc::Receiver<String>,
    /// Everything printed so far (as far as `wait_for`/`wait_exit` have read).
    pub seen: String,
}

impl Terminal {
    pub fn podman(args: &[String]) -> Result<Terminal, String> {
        let line = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new("script")
            .args(["-qfec", &format!("podman {line}"), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("script: {e}"))?;
        let mut stdout = child.stdout.take().expect("piped");
        let (tx, chunks) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Terminal {
            child,
            stdin,
            chunks,
            seen: String::new(),
        })
    }

    /// Read until `marker` has been printed (true) or `timeout` passes or the command ends
    /// (false).
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.seen.contains(marker) && Instant::now() < deadline {
            match self.chunks.recv_timeout(Duration::from_secs(1)) {
                Ok(chunk) => self.seen.push_str(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) if matches!(self.child.try_wait(), Ok(Some(_))) => break,
                Err(_) => {}
            }
        }
        self.seen.contains(marker)
    }

    /// Type `bytes` on the terminal.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().ok_or("the terminal is closed")?;
        stdin.write_all(bytes).map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())
    }

    /// Wait for the command to end, then read what it printed last; None after `timeout`.
    pub fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, String> {
        let t = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if t.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        self.stdin = None;
        while let Ok(chunk) = self.chunks.recv_timeout(Duration::from_millis(200)) {
            self.seen.push_str(&chunk);
        }
        Ok(Some(status))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
