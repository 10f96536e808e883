//! Tests of the host-side command `entrypoint/bcvk-host` without a VM: a fake `podman` (a
//! small sh script first on PATH) logs the argv of every call and prints canned output, and
//! each test checks the exact podman commands the script produced. Every test runs the
//! script under each POSIX shell installed (sh, dash, bash).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const IMAGE: &str = "localhost/bcvk:latest";
const STORE: &str = "/var/lib/containers/storage";
const LABEL: &str = "bcvk.ephemeral=1";
/// The health check the host command gives every VM container.
const HEALTH: &[&str] = &[
    "--health-cmd",
    "bcvk status --health",
    "--health-interval",
    "10s",
    "--health-start-period",
    "600s",
];

/// The fake podman. It logs each call as a line "--- podman" then one argument per line to
/// $FAKE_DIR/log. Canned data, all optional, in $FAKE_DIR:
///   graphroot            what `info` prints (default /var/lib/containers/storage)
///   containers           `ps` rows of ephemeral VMs: ID TAB NAME TAB STATUS [TAB VM LABEL]
///                        (the format decides the columns)
///   vm-containers        `ps` rows of persistent VMs: ID TAB NAME TAB STATUS TAB VM LABEL.
///                        `ps --filter label=bcvk.vm` lists these only, `label=bcvk.ephemeral=1`
///                        the others only, no label filter both, as podman would
///   inspect-ID           `container inspect` output for the ps format (state, then command)
///   labels-NAME          `container inspect` output for the label/state format
///   vm-NAME              `container inspect` output for the bcvk.vm label/state/stop timeout
///   exit-NAME, state-NAME  `container inspect` output for the state/exit code and the state
///                        alone formats
///                        (these three: one line per call, the last line repeating; a line
///                        "missing": no such container for that call)
///   volume-NAME          `volume inspect` output (its bcvk.vm label); absent: no such volume
///   volumes              `volume ls` rows: NAME TAB VM LABEL
///   du                   what `run ... --entrypoint du ...` prints
///   status-rcs           exit codes of successive `exec ... bcvk status --wait`, one a line
///   ssh-rc, run-rc, start-rc  exit codes of `exec ... bcvk ssh`, `run` and `start`
///   status-sleep         when present, `exec ... bcvk status --wait` takes 2 s
const FAKE_PODMAN: &str = r#"#!/bin/sh
d=$FAKE_DIR
{ echo '--- podman'; for a in "$@"; do printf '%s\n' "$a"; done; } >>"$d/log"
fmt=
filter=
prev=
last=
for a in "$@"; do
    [ "$prev" = --format ] && fmt=$a
    [ "$prev" = --filter ] && filter=$a
    prev=$a
    last=$a
done
# pop FILE: print its first line, and drop it when more lines follow.
pop() {
    head -n 1 "$1"
    if [ "$(wc -l <"$1")" -gt 1 ]; then
        tail -n +2 "$1" >"$1.new"
        mv "$1.new" "$1"
    fi
}
case $1 in
info)
    if [ -f "$d/graphroot" ]; then cat "$d/graphroot"; else echo /var/lib/containers/storage; fi
    ;;
ps)
    case $filter in
    label=bcvk.vm | label=bcvk.vm=*) files=vm-containers ;;
    label=bcvk.ephemeral=1) files=containers ;;
    *) files='containers vm-containers' ;;
    esac
    for f in $files; do
        [ -f "$d/$f" ] || continue
        while IFS='	' read -r id name status label; do
            case $fmt in
            *Status*bcvk.vm*) printf '%s\t%s\t%s\t%s\n' "$id" "$name" "$status" "$label" ;;
            *Status*) printf '%s\t%s\t%s\n' "$id" "$name" "$status" ;;
            *bcvk.vm*) printf '%s\t%s\t%s\n' "$id" "$name" "$label" ;;
            *) printf '%s\t%s\n' "$id" "$name" ;;
            esac
        done <"$d/$f"
    done
    ;;
container)
    case $fmt in
    *bcvk.vm*) f=$d/vm-$last ;;
    *ExitCode*) f=$d/exit-$last ;;
    *Labels*) f=$d/labels-$last ;;
    '{{.State.Status}}') f=$d/state-$last ;;
    *) f=$d/inspect-$last ;;
    esac
    if [ ! -f "$f" ]; then
        echo "Error: no such container $last" >&2
        exit 125
    fi
    case $f in
    */exit-* | */state-* | */vm-*)
        out=$(pop "$f")
        if [ "$out" = missing ]; then
            echo "Error: no such container $last" >&2
            exit 125
        fi
        printf '%s\n' "$out"
        ;;
    *) cat "$f" ;;
    esac
    ;;
volume)
    case $2 in
    inspect)
        if [ ! -f "$d/volume-$last" ]; then
            echo "Error: no such volume $last" >&2
            exit 125
        fi
        cat "$d/volume-$last"
        ;;
    ls) [ -f "$d/volumes" ] && cat "$d/volumes" ;;
    create | rm) echo "$last" ;;
    esac
    ;;
start)
    echo "$last"
    exit "$(cat "$d/start-rc" 2>/dev/null || echo 0)"
    ;;
exec)
    case " $* " in
    *" bcvk status --wait "*)
        [ -f "$d/status-sleep" ] && sleep 2
        rc=0
        if [ -s "$d/status-rcs" ]; then
            rc=$(head -n 1 "$d/status-rcs")
            tail -n +2 "$d/status-rcs" >"$d/status-rcs.new"
            mv "$d/status-rcs.new" "$d/status-rcs"
        fi
        echo "state: fake"
        exit "$rc"
        ;;
    *" bcvk ssh"*)
        exit "$(cat "$d/ssh-rc" 2>/dev/null || echo 0)"
        ;;
    esac
    ;;
run)
    case " $* " in
    *" --entrypoint du "*) [ -f "$d/du" ] && cat "$d/du" ;;
    *" --version "*) echo "bcvk 0.1.0" ;;
    *" --help "*) echo "Usage: bcvk run [OPTIONS] <IMAGE> [-- <COMMAND>...]" ;;
    *" -d "*) echo 0123456789abcdef ;;
    esac
    exit "$(cat "$d/run-rc" 2>/dev/null || echo 0)"
    ;;
stop | rm)
    echo "$last"
    ;;
logs)
    if [ -f "$d/logs-$last" ]; then cat "$d/logs-$last"; else echo "fake console log"; fi
    ;;
esac
exit 0
"#;

/// The host command as `bcvk install-host-cli` prints it: entrypoint/bcvk-host with the
/// option table of `bcvk run` written in from the supervisor's clap definitions.
fn script() -> PathBuf {
    static SCRIPT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join(format!("bcvk-host-{}", std::process::id()));
            fs::write(&path, bcvk::host_cli()).unwrap();
            path
        })
        .clone()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The POSIX shells to run the script with: sh always, dash and bash when installed.
fn shells() -> Vec<PathBuf> {
    let mut v = vec![find_in_path("sh").unwrap_or_else(|| PathBuf::from("/bin/sh"))];
    v.extend(["dash", "bash"].iter().filter_map(|s| find_in_path(s)));
    v
}

struct Fake {
    dir: tempfile::TempDir,
    shell: PathBuf,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    path: Option<String>,
}

struct Res {
    code: i32,
    stdout: String,
    stderr: String,
    calls: Vec<Vec<String>>,
    shell: PathBuf,
}

impl Res {
    fn show(&self) -> String {
        format!(
            "shell {}: exit {}\n--- stdout\n{}--- stderr\n{}--- calls\n{:#?}",
            self.shell.display(),
            self.code,
            self.stdout,
            self.stderr,
            self.calls
        )
    }

    /// The podman calls, each joined with spaces (for readable comparisons).
    fn joined(&self) -> Vec<String> {
        self.calls.iter().map(|c| c.join(" ")).collect()
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "{}", self.show());
    }

    fn assert_calls(&self, expected: &[Vec<String>]) {
        assert_eq!(self.calls, expected, "{}", self.show());
    }

    /// A usage error: exit 64, one `bcvk: error:` line, and podman never called.
    fn assert_usage_error(&self, needle: &str) {
        self.assert_code(64);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", self.show());
        assert!(lines[0].starts_with("bcvk: error: "), "{}", self.show());
        assert!(
            lines[0].contains(needle),
            "want {needle:?}: {}",
            self.show()
        );
        assert!(self.calls.is_empty(), "{}", self.show());
    }
}

impl Fake {
    fn new(shell: &Path) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let podman = bin.join("podman");
        fs::write(&podman, FAKE_PODMAN).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&podman, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.path().join("kvm"), "").unwrap();
        let cwd = dir.path().join("cwd");
        fs::create_dir(&cwd).unwrap();
        Fake {
            dir,
            shell: shell.to_path_buf(),
            cwd,
            env: Vec::new(),
            path: None,
        }
    }

    fn kvm(&self) -> String {
        self.dir.path().join("kvm").display().to_string()
    }

    fn set(&self, file: &str, content: &str) {
        fs::write(self.dir.path().join(file), content).unwrap();
    }

    fn env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    /// Adds a bcvk VM the fake lists (ps) and inspects.
    fn vm(&self, id: &str, name: &str, status: &str, state: &str, cmd: &[&str]) {
        let p = self.dir.path().join("containers");
        let mut rows = fs::read_to_string(&p).unwrap_or_default();
        rows.push_str(&format!("{id}\t{name}\t{status}\n"));
        fs::write(p, rows).unwrap();
        let mut inspect = format!("{state}\n");
        for a in cmd {
            inspect.push_str(a);
            inspect.push('\n');
        }
        self.set(&format!("inspect-{id}"), &inspect);
        self.set(&format!("labels-{name}"), &format!("1\t{state}\n"));
        // No bcvk.vm label: not a persistent VM.
        self.set(&format!("vm-{name}"), &format!("\t{state}\t10\n"));
    }

    /// Adds a persistent VM (container NAME labelled bcvk.vm=NAME running `run IMAGE
    /// --persistent`, stop timeout 60, and its state volume bcvk-vm-NAME) the fake lists
    /// and inspects.
    fn pvm(&self, id: &str, name: &str, status: &str, state: &str, image: &str) {
        let append = |file: &str, row: String| {
            let p = self.dir.path().join(file);
            let mut rows = fs::read_to_string(&p).unwrap_or_default();
            rows.push_str(&row);
            fs::write(p, rows).unwrap();
        };
        append("vm-containers", format!("{id}\t{name}\t{status}\t{name}\n"));
        self.set(
            &format!("inspect-{id}"),
            &format!("{state}\nrun\n{image}\n--persistent\n--stop-timeout=50\n"),
        );
        self.set(&format!("vm-{name}"), &format!("{name}\t{state}\t60\n"));
        // No bcvk.ephemeral label.
        self.set(&format!("labels-{name}"), &format!("\t{state}\n"));
        self.state_volume(name);
    }

    /// Adds the state volume bcvk-vm-NAME of VM NAME (listed and inspected).
    fn state_volume(&self, name: &str) {
        let p = self.dir.path().join("volumes");
        let mut rows = fs::read_to_string(&p).unwrap_or_default();
        rows.push_str(&format!("bcvk-vm-{name}\t{name}\n"));
        fs::write(p, rows).unwrap();
        self.set(&format!("volume-bcvk-vm-{name}"), &format!("{name}\n"));
    }

    fn run(&self, args: &[&str]) -> Res {
        self.run_stdin(args, None)
    }

    /// Runs the script; `calls` are this run's podman calls only.
    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Res {
        let _ = fs::remove_file(self.dir.path().join("log"));
        let fake_bin = self.dir.path().join("bin");
        let path = match &self.path {
            Some(p) => p.clone(),
            None => format!(
                "{}:{}",
                fake_bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        };
        let mut cmd = Command::new(&self.shell);
        cmd.arg(script())
            .args(args)
            .current_dir(&self.cwd)
            .env("PATH", path)
            .env("PWD", &self.cwd)
            .env("FAKE_DIR", self.dir.path())
            .env("BCVK_KVM_DEVICE", self.kvm())
            .env_remove("BCVK_IMAGE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out: Output = match stdin {
            None => cmd.stdin(Stdio::null()).output().unwrap(),
            Some(input) => {
                use std::io::Write;
                cmd.stdin(Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
        };
        Res {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            calls: self.calls(),
            shell: self.shell.clone(),
        }
    }

    /// Runs the script with stdin (and stdout) a terminal, through util-linux `script`,
    /// feeding it INPUT; None when `script` is not installed.
    fn run_tty(&self, args: &[&str], input: &str) -> Option<Res> {
        let script_bin = find_in_path("script")?;
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut line = quote(&self.shell.display().to_string());
        line.push(' ');
        line.push_str(&quote(&script().display().to_string()));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let _ = fs::remove_file(self.dir.path().join("log"));
        let fake_bin = self.dir.path().join("bin");
        let path = format!(
            "{}:{}",
            fake_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(script_bin);
        cmd.args(["-qec", &line, "/dev/null"])
            .current_dir(&self.cwd)
            .env("PATH", path)
            .env("PWD", &self.cwd)
            .env("FAKE_DIR", self.dir.path())
            .env("BCVK_KVM_DEVICE", self.kvm())
            .env_remove("BCVK_IMAGE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Some(Res {
            code: out.status.code().unwrap_or(-1),
            // The terminal merges stderr into stdout.
            stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            calls: self.calls(),
            shell: self.shell.clone(),
        })
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let log = fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let mut calls: Vec<Vec<String>> = Vec::new();
        for line in log.lines() {
            if line == "--- podman" {
                calls.push(Vec::new());
            } else {
                calls.last_mut().unwrap().push(line.to_string());
            }
        }
        calls
    }
}

/// Runs `f` once per shell, with a fresh fake each time.
fn each_shell(f: impl Fn(&mut Fake)) {
    for sh in shells() {
        let mut fake = Fake::new(&sh);
        f(&mut fake);
    }
}

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn info_call() -> Vec<String> {
    argv(&["info", "--format", "{{.Store.GraphRoot}}"])
}

/// `podman run` with PRE (-d, --name...), the fixed flags, EXTRA (volumes, -p), then the
/// bcvk image and its `run TARGET` arguments.
fn run_call(fake: &Fake, pre: &[&str], extra: &[&str], bcvk: &[&str]) -> Vec<String> {
    let mut v = argv(&["run"]);
    v.extend(argv(pre));
    v.extend(argv(&["--label", LABEL, "--device"]));
    v.push(fake.kvm());
    v.extend(argv(&["-v", &format!("{STORE}:/run/host-storage:ro")]));
    v.extend(argv(HEALTH));
    v.extend(argv(extra));
    v.push(IMAGE.into());
    v.push("run".into());
    v.extend(argv(bcvk));
    v
}

#[test]
fn script_parses_in_every_shell() {
    for sh in shells() {
        let out = Command::new(&sh).arg("-n").arg(script()).output().unwrap();
        assert!(
            out.status.success(),
            "{} -n: {}",
            sh.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn script_is_clean_under_shellcheck_when_installed() {
    let Some(sc) = find_in_path("shellcheck") else {
        return;
    };
    let out = Command::new(sc)
        .args(["-s", "sh"])
        .arg(script())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn run_detached_man_page_example() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run",
            "-d",
            "--rm",
            "-K",
            "--name",
            "testvm",
            "quay.io/fedora/fedora-bootc:42",
        ]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            run_call(
                f,
                &["-d", "--rm", "--name", "testvm"],
                &[],
                &["quay.io/fedora/fedora-bootc:42", "--ssh-keygen"],
            ),
        ]);
        // What podman run -d prints (the container ID) is passed on.
        assert_eq!(r.stdout, "0123456789abcdef\n", "{}", r.show());
        assert_eq!(r.stderr, "", "{}", r.show());
    });
}

#[test]
fn run_bind_with_name_keeps_the_name() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run",
            "--bind",
            "/home/user/code:workspace",
            "--name",
            "devvm",
            "localhost/img",
        ]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            run_call(
                f,
                &["--name", "devvm"],
                &["-v", "/home/user/code:/run/bcvk-host/1"],
                &["localhost/img", "--bind=/run/bcvk-host/1:workspace"],
            ),
        ]);
    });
}

#[test]
fn run_host_paths_become_volumes() {
    each_shell(|f| {
        for d in ["code", "units", "scratch", "disks", "out", "my code"] {
            fs::create_dir(f.cwd.join(d)).unwrap();
        }
        let cwd = f.cwd.display().to_string();
        let r = f.run(&[
            "ephemeral",
            "run",
            "--bind",
            "code",
            "--ro-bind=./units:/etc/guest-units",
            "--bind",
            "/srv/data/",
            "--ro-bind",
            "my code",
            "--mount-disk-file",
            "disks/data.qcow2:data:qcow2",
            "--mount-disk-file=/var/tmp/swap.img",
            "--systemd-units=units",
            "--virtio-serial-out",
            "log:out/serial.txt",
            "--ssh-key",
            "key.pub",
            "--scratch",
            "./scratch",
            // Upstream's STREAMS=DIR; a missing directory is created.
            "--log-dir=journal,console=logs/run-1",
            "localhost/img",
        ]);
        r.assert_code(0);
        assert!(f.cwd.join("logs/run-1").is_dir(), "--log-dir not created");
        let v = |n: u32| format!("/run/bcvk-host/{n}");
        let vols: Vec<String> = vec![
            "-v".into(),
            format!("{cwd}/code:{}", v(1)),
            "-v".into(),
            format!("{cwd}/units:{}:ro", v(2)),
            "-v".into(),
            format!("/srv/data:{}", v(3)),
            // Not a valid mount name: mounted under its own name for bcvk run to sanitise.
            "-v".into(),
            format!("{cwd}/my code:{}/my code:ro", v(4)),
            "-v".into(),
            format!("{cwd}/disks:{}", v(5)),
            "-v".into(),
            format!("/var/tmp:{}", v(6)),
            "-v".into(),
            format!("{cwd}/units:{}:ro", v(7)),
            "-v".into(),
            format!("{cwd}/out:{}", v(8)),
            "-v".into(),
            format!("{cwd}/key.pub:{}/key.pub:ro", v(9)),
            "-v".into(),
            format!("{cwd}/scratch:{}", v(10)),
            "-v".into(),
            format!("{cwd}/logs/run-1:{}", v(11)),
        ];
        let bcvk: Vec<String> = vec![
            "localhost/img".into(),
            format!("--bind={}:code", v(1)),
            format!("--ro-bind={}:/etc/guest-units", v(2)),
            format!("--bind={}:data", v(3)),
            format!("--ro-bind={}/my code", v(4)),
            format!("--mount-disk-file={}/data.qcow2:data:qcow2", v(5)),
            format!("--mount-disk-file={}/swap.img", v(6)),
            format!("--systemd-units={}", v(7)),
            format!("--virtio-serial-out=log:{}/serial.txt", v(8)),
            format!("--ssh-key={}/key.pub", v(9)),
            format!("--scratch={}", v(10)),
            format!("--log-dir={}", v(11)),
        ];
        let vols: Vec<&str> = vols.iter().map(String::as_str).collect();
        let bcvk: Vec<&str> = bcvk.iter().map(String::as_str).collect();
        r.assert_calls(&[info_call(), run_call(f, &[], &vols, &bcvk)]);
    });
}

#[test]
fn run_value_options_in_both_forms() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run",
            "--memory=8G",
            "--vcpus",
            "4",
            "--karg=console=ttyS0",
            "--karg",
            "quiet",
            "--execute",
            "echo 'hi there'",
            "--log-level=debug",
            "--net",
            "none",
            "--itype=u1.small",
            "--hostname",
            "-weird",
            "--console",
            "--label",
            "team=qa",
            "--name=vm1",
            "localhost/img",
            "--cpu",
            "max",
        ]);
        r.assert_code(0);
        let expected = [
            info_call(),
            run_call(
                f,
                &["--name", "vm1"],
                &[],
                &[
                    "localhost/img",
                    "--memory=8G",
                    "--vcpus=4",
                    "--karg=console=ttyS0",
                    "--karg=quiet",
                    "--execute=echo 'hi there'",
                    "--log-level=debug",
                    "--net=none",
                    "--itype=u1.small",
                    "--hostname=-weird",
                    "--console",
                    "--cpu=max",
                ],
            ),
        ]
        .map(|mut call| {
            // The user's label comes right after bcvk's own.
            if let Some(i) = call.iter().position(|a| a == LABEL) {
                call.splice(i + 1..i + 1, argv(&["--label", "team=qa"]));
            }
            call
        });
        r.assert_calls(&expected);
    });
}

#[test]
fn run_ports_are_published_too() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run",
            "-d",
            "--port",
            "8080:80",
            "--port=2222:22",
            "localhost/img",
        ]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            run_call(
                f,
                &["-d"],
                &["-p", "8080:8080", "-p", "2222:2222"],
                &["localhost/img", "--port=8080:80", "--port=2222:22"],
            ),
        ]);
        for bad in ["80", "a:80", "8080:", ":80", "1:2:3"] {
            let r = f.run(&["ephemeral", "run", "--port", bad, "img"]);
            r.assert_usage_error("--port");
        }
    });
}

#[test]
fn run_combined_short_flags_and_guest_command() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run",
            "-dit",
            "--rm",
            "localhost/img",
            "--memory",
            "2G",
            "--",
            "sh",
            "-c",
            "exit 42",
        ]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            run_call(
                f,
                &["-d", "-i", "-t", "--rm"],
                &[],
                &["localhost/img", "--memory=2G", "--", "sh", "-c", "exit 42"],
            ),
        ]);
    });
    // The container's exit code (the guest command's) is kept.
    each_shell(|f| {
        f.set("run-rc", "42\n");
        let r = f.run(&["ephemeral", "run", "-it", "img", "--", "false"]);
        r.assert_code(42);
        assert_eq!(
            r.calls[1],
            run_call(f, &["-i", "-t"], &[], &["img", "--", "false"]),
            "{}",
            r.show()
        );
    });
}

#[test]
fn run_storage_image_and_missing_kvm() {
    each_shell(|f| {
        f.set("graphroot", "/home/u/.local/share/containers/storage\n");
        f.env("BCVK_IMAGE", "quay.io/me/bcvk:dev");
        f.env("BCVK_KVM_DEVICE", "/nonexistent/kvm");
        let r = f.run(&["ephemeral", "run", "img"]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            argv(&[
                "run",
                "--label",
                LABEL,
                "-v",
                "/home/u/.local/share/containers/storage:/run/host-storage:ro",
                "--health-cmd",
                "bcvk status --health",
                "--health-interval",
                "10s",
                "--health-start-period",
                "600s",
                "quay.io/me/bcvk:dev",
                "run",
                "img",
            ]),
        ]);
        assert_eq!(
            r.stderr.matches("software emulation").count(),
            1,
            "{}",
            r.show()
        );
        assert!(r.stderr.starts_with("bcvk: warning: "), "{}", r.show());

        // --storage names the host's store instead of asking podman.
        let r = f.run(&["ephemeral", "run", "--storage=/srv/store", "img"]);
        r.assert_code(0);
        assert!(
            r.joined()
                .contains(&"run --label bcvk.ephemeral=1 -v /srv/store:/run/host-storage:ro --health-cmd bcvk status --health --health-interval 10s --health-start-period 600s quay.io/me/bcvk:dev run img".to_string()),
            "{}",
            r.show()
        );
    });
}

#[test]
fn ssh_man_page_example() {
    each_shell(|f| {
        f.vm(
            "aaa",
            "testvm",
            "Up 2 minutes ago",
            "running",
            &["run", "img"],
        );
        let r = f.run(&["ephemeral", "ssh", "testvm", "systemctl status"]);
        r.assert_code(0);
        r.assert_calls(&[
            argv(&[
                "container",
                "inspect",
                "--format",
                "{{index .Config.Labels \"bcvk.ephemeral\"}}\t{{.State.Status}}",
                "testvm",
            ]),
            // stdin is not a terminal: -i so that piping works.
            argv(&["exec", "-i", "testvm", "bcvk", "ssh", "systemctl status"]),
        ]);
        // The remote command's exit code is kept; the shorthand works too.
        f.set("ssh-rc", "3\n");
        let r = f.run_stdin(&["ssh", "testvm", "--", "cat", ">/tmp/x"], Some("data"));
        r.assert_code(3);
        assert_eq!(
            r.calls.last().unwrap(),
            &argv(&["exec", "-i", "testvm", "bcvk", "ssh", "cat", ">/tmp/x"]),
            "{}",
            r.show()
        );
    });
}

#[test]
fn ssh_refuses_containers_that_are_not_bcvk_vms() {
    each_shell(|f| {
        f.set("labels-web", "\trunning\n");
        f.set("vm-web", "\trunning\t10\n");
        let r = f.run(&["ephemeral", "ssh", "web"]);
        r.assert_code(255);
        assert!(r.stderr.contains("'web' is not a bcvk VM"), "{}", r.show());
        assert_eq!(r.calls.len(), 2, "no exec: {}", r.show());

        let r = f.run(&["ephemeral", "ssh", "nosuch", "true"]);
        r.assert_code(255);
        assert!(
            r.stderr.contains("no container named 'nosuch'"),
            "{}",
            r.show()
        );

        f.set("labels-old", "1\texited\n");
        let r = f.run(&["ephemeral", "ssh", "old"]);
        r.assert_code(255);
        assert!(
            r.stderr.contains("not running (state: exited)"),
            "{}",
            r.show()
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
    });
}

/// The generated name of a run-ssh VM, from its `podman run` call.
fn run_ssh_name(r: &Res) -> String {
    let run = &r.calls[1];
    let i = run.iter().position(|a| a == "--name").expect("--name");
    run[i + 1].clone()
}

#[test]
fn run_ssh_man_page_example() {
    each_shell(|f| {
        let r = f.run(&[
            "ephemeral",
            "run-ssh",
            "--memory",
            "8G",
            "--vcpus",
            "4",
            "localhost/mybootc",
        ]);
        r.assert_code(0);
        let name = run_ssh_name(&r);
        assert!(
            name.len() == "bcvk-".len() + 8
                && name.starts_with("bcvk-")
                && name[5..].chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
        r.assert_calls(&[
            info_call(),
            run_call(
                f,
                &["-d", "--name", &name],
                &[],
                &["localhost/mybootc", "--memory=8G", "--vcpus=4"],
            ),
            argv(&["exec", &name, "bcvk", "status", "--wait"]),
            argv(&["exec", "-i", &name, "bcvk", "ssh"]),
            argv(&["stop", &name]),
            argv(&["rm", "-f", &name]),
        ]);
        assert!(r.stderr.contains("waiting for VM"), "{}", r.show());
        // Nothing on stdout but the session's.
        assert_eq!(r.stdout, "", "{}", r.show());
    });
}

#[test]
fn run_ssh_keeps_the_exit_code_and_stops_the_vm() {
    each_shell(|f| {
        f.set("ssh-rc", "42\n");
        let r = f.run(&[
            "ephemeral",
            "run-ssh",
            "--name",
            "myvm",
            "--bind=/src",
            "img",
            "sh",
            "-c",
            "exit 42",
        ]);
        r.assert_code(42);
        let j = r.joined();
        assert_eq!(
            j[3..],
            [
                "exec -i myvm bcvk ssh sh -c exit 42".to_string(),
                "stop myvm".to_string(),
                "rm -f myvm".to_string()
            ],
            "{}",
            r.show()
        );
        assert!(
            j[1].contains("-v /src:/run/bcvk-host/1 ")
                && j[1].ends_with("run img --bind=/run/bcvk-host/1:src"),
            "{}",
            r.show()
        );
    });
}

#[test]
fn run_ssh_waits_for_the_status_file_then_fails_cleanly() {
    // 66: the supervisor has not written its status yet; bcvk-host asks again.
    each_shell(|f| {
        f.set("status-rcs", "66\n0\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img", "--", "true"]);
        r.assert_code(0);
        let j = r.joined();
        assert_eq!(j.len(), 7, "{}", r.show());
        assert_eq!(j[2], "exec vm bcvk status --wait");
        assert_eq!(j[3], "exec vm bcvk status --wait");
        assert_eq!(j[4], "exec -i vm bcvk ssh true");
        assert_eq!(j[5], "stop vm");
        assert_eq!(j[6], "rm -f vm");
    });
    // The VM failed without a reason in its log: no ssh, the VM is stopped and removed,
    // 255 like ssh.
    each_shell(|f| {
        f.set("status-rcs", "1\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img"]);
        r.assert_code(255);
        let j = r.joined();
        assert_eq!(
            j[2..],
            [
                "exec vm bcvk status --wait".to_string(),
                "logs --tail 30 vm".to_string(),
                "container inspect --format {{.State.Status}}\t{{.State.ExitCode}} vm".to_string(),
                "logs vm".to_string(),
                "stop vm".to_string(),
                "rm -f vm".to_string()
            ],
            "{}",
            r.show()
        );
        assert!(
            r.stderr
                .lines()
                .last()
                .unwrap()
                .starts_with("bcvk: error: VM vm stopped without becoming ready"),
            "{}",
            r.show()
        );
    });
    // The supervisor stopped with its own reason (an image without a kernel): its line last,
    // its exit code, the container removed (no --rm: its log is read first).
    each_shell(|f| {
        f.set("status-rcs", "1\n");
        f.set("exit-vm", "exited\t66\n");
        f.set(
            "logs-vm",
            "bcvk: error: localhost/nokernel has no bootable kernel (...)\n",
        );
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img"]);
        r.assert_code(66);
        assert_eq!(
            r.stderr.lines().last().unwrap(),
            "bcvk: error: localhost/nokernel has no bootable kernel (...)",
            "{}",
            r.show()
        );
        let j = r.joined();
        assert_eq!(
            j[j.len() - 2..],
            ["stop vm".to_string(), "rm -f vm".to_string()]
        );
    });
    // The VM died during the session (ssh's 255): the supervisor's reason and code.
    each_shell(|f| {
        f.set("ssh-rc", "255\n");
        f.set("state-vm", "exited\n");
        f.set("exit-vm", "exited\t70\n");
        f.set("logs-vm", "bcvk: error: the guest's kernel panicked\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img", "true"]);
        r.assert_code(70);
        assert_eq!(
            r.stderr.lines().last().unwrap(),
            "bcvk: error: the guest's kernel panicked",
            "{}",
            r.show()
        );
    });
    // A guest command's own 255 while the VM runs stays 255.
    each_shell(|f| {
        f.set("ssh-rc", "255\n");
        f.set("state-vm", "running\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img", "true"]);
        r.assert_code(255);
    });
    // podman run itself failed: its exit code, nothing to stop.
    each_shell(|f| {
        f.set("run-rc", "125\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img"]);
        r.assert_code(125);
        assert_eq!(r.calls.len(), 2, "{}", r.show());
    });
}

fn three_vms(f: &Fake) {
    f.vm(
        "1111",
        "devvm",
        "Up 5 minutes ago",
        "running",
        &[
            "run",
            "localhost/fedora-bootc:42",
            "--memory=8G",
            "--bind=/run/bcvk-host/1:w",
        ],
    );
    // Started by hand, options first and in separate form.
    f.vm(
        "2222",
        "manual",
        "Exited (0) 2 hours ago",
        "exited",
        &[
            "--memory",
            "2G",
            "-K",
            "quay.io/centos-bootc/centos-bootc:stream10",
            "--",
            "ls",
        ],
    );
    f.vm(
        "3333",
        "odd\"name\\",
        "Created \"x\"",
        "Created",
        &["install-host-cli"],
    );
}

#[test]
fn ps_lists_bcvk_vms_with_their_target_images() {
    each_shell(|f| {
        three_vms(f);
        let r = f.run(&["ephemeral", "ps"]);
        r.assert_code(0);
        let inspect = |id: &str| {
            argv(&[
                "container",
                "inspect",
                "--format",
                "{{.State.Status}}{{\"\\n\"}}{{range .Config.Cmd}}{{.}}{{\"\\n\"}}{{end}}",
                id,
            ])
        };
        r.assert_calls(&[
            argv(&[
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                "label=bcvk.ephemeral=1",
                "--format",
                "{{.ID}}\t{{.Names}}\t{{.Status}}\t{{index .Labels \"bcvk.vm\"}}",
            ]),
            inspect("1111"),
            inspect("2222"),
            inspect("3333"),
        ]);
        let lines: Vec<Vec<&str>> = r
            .stdout
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                vec!["NAME", "IMAGE", "STATE", "UPTIME"],
                vec!["devvm", "localhost/fedora-bootc:42", "running", "5 minutes"],
                vec![
                    "manual",
                    "quay.io/centos-bootc/centos-bootc:stream10",
                    "exited",
                    "-"
                ],
                vec!["odd\"name\\", "-", "created", "-"],
            ],
            "{}",
            r.show()
        );
        // Columns line up.
        let col = |l: &str| l.find("IMAGE").or_else(|| l.find("localhost")).unwrap();
        let out: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(col(out[0]), col(out[1]), "{}", r.show());
    });
}

#[test]
fn ps_json_is_valid_json() {
    each_shell(|f| {
        three_vms(f);
        let r = f.run(&["ephemeral", "ps", "--json"]);
        r.assert_code(0);
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.show()));
        let expected = serde_json::json!([
            {"name": "devvm", "id": "1111", "image": "localhost/fedora-bootc:42",
             "state": "running", "status": "Up 5 minutes ago"},
            {"name": "manual", "id": "2222",
             "image": "quay.io/centos-bootc/centos-bootc:stream10",
             "state": "exited", "status": "Exited (0) 2 hours ago"},
            {"name": "odd\"name\\", "id": "3333", "image": "-",
             "state": "created", "status": "Created \"x\""},
        ]);
        assert_eq!(v, expected, "{}", r.show());

        // No VMs: an empty array, and a header alone for the table.
        fs::remove_file(f.dir.path().join("containers")).unwrap();
        let r = f.run(&["ephemeral", "ps", "--json"]);
        r.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v, serde_json::json!([]));
        let r = f.run(&["ephemeral", "ps"]);
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.show());
    });
}

#[test]
fn rm_all_refuses_to_ask_without_a_terminal() {
    each_shell(|f| {
        three_vms(f);
        let r = f.run(&["ephemeral", "rm-all"]);
        r.assert_code(64);
        assert!(r.stderr.contains("rm-all -f"), "{}", r.show());
        assert!(r.stderr.contains("3 bcvk VMs"), "{}", r.show());
        // Only the listing: nothing removed.
        assert_eq!(
            r.joined(),
            ["ps -a --filter label=bcvk.ephemeral=1 --format {{.ID}}\t{{.Names}}\t{{index .Labels \"bcvk.vm\"}}"],
            "{}",
            r.show()
        );
    });
}

#[test]
fn rm_all_force_removes_each_bcvk_vm() {
    each_shell(|f| {
        three_vms(f);
        let r = f.run(&["ephemeral", "rm-all", "-f"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                "ps -a --filter label=bcvk.ephemeral=1 --format {{.ID}}\t{{.Names}}\t{{index .Labels \"bcvk.vm\"}}",
                "rm -f 1111",
                "rm -f 2222",
                "rm -f 3333",
            ],
            "{}",
            r.show()
        );
        assert_eq!(
            r.stdout,
            "Removed devvm\nRemoved manual\nRemoved odd\"name\\\n",
            "{}",
            r.show()
        );
        // None: nothing to do, no question.
        fs::remove_file(f.dir.path().join("containers")).unwrap();
        let r = f.run(&["ephemeral", "rm-all", "--force"]);
        r.assert_code(0);
        assert_eq!(r.calls.len(), 1, "{}", r.show());
        let r = f.run(&["ephemeral", "rm-all"]);
        r.assert_code(0);
    });
}

#[test]
fn status_execs_bcvk_status() {
    each_shell(|f| {
        f.vm("aaa", "vm1", "Up 1 second ago", "running", &["run", "img"]);
        let r = f.run(&["status", "vm1", "--json", "--wait"]);
        r.assert_code(0);
        assert_eq!(
            r.joined().last().unwrap(),
            "exec vm1 bcvk status --json --wait",
            "{}",
            r.show()
        );
    });
}

#[test]
fn usage_errors_exit_64() {
    each_shell(|f| {
        let cases: &[(&[&str], &str)] = &[
            (&["libvirt", "run"], "unknown command 'libvirt'"),
            (&["--bogus"], "unknown option '--bogus'"),
            (
                &["ephemeral", "bogus"],
                "unknown subcommand 'ephemeral bogus'",
            ),
            (&["ephemeral", "run"], "missing IMAGE"),
            (&["ephemeral", "run", "--rm", "-d"], "missing IMAGE"),
            (
                &["ephemeral", "run", "img", "--memory"],
                "--memory needs a value",
            ),
            (&["ephemeral", "run", "-dx", "img"], "unknown option -x"),
            (
                &["ephemeral", "run", "img", "extra"],
                "unexpected argument 'extra'",
            ),
            (
                &["ephemeral", "run", "--", "ls"],
                "IMAGE must come before '--'",
            ),
            (&["ephemeral", "run", "--name=", "img"], "--name"),
            (
                &["ephemeral", "run", "--virtio-serial-out", "nofile", "img"],
                "NAME:FILE",
            ),
            (
                &["ephemeral", "run", "--bind", ":x", "img"],
                "--bind needs a host directory",
            ),
            (
                &["ephemeral", "run-ssh", "--vcpus"],
                "--vcpus needs a value",
            ),
            (&["ephemeral", "run-ssh"], "missing IMAGE"),
            (&["ephemeral", "ssh"], "missing NAME"),
            (&["ephemeral", "ssh", "-x"], "unknown option '-x'"),
            (&["ephemeral", "ps", "-a"], "unexpected argument '-a'"),
            (
                &["ephemeral", "rm-all", "--all"],
                "unexpected argument '--all'",
            ),
            (&["ephemeral", "status"], "missing NAME"),
        ];
        for (args, needle) in cases {
            let r = f.run(args);
            r.assert_usage_error(needle);
        }
        // No arguments at all: the usage on stderr.
        for args in [&[][..], &["ephemeral"][..]] {
            let r = f.run(args);
            r.assert_code(64);
            assert!(r.stderr.contains("Usage"), "{}", r.show());
        }
    });
}

#[test]
fn missing_podman_is_a_clear_error() {
    each_shell(|f| {
        let empty = f.dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        f.path = Some(empty.display().to_string());
        for args in [
            &["ephemeral", "run", "img"][..],
            &["ephemeral", "ps"][..],
            &["ephemeral", "ssh", "vm"][..],
        ] {
            let r = f.run(args);
            r.assert_code(127);
            assert_eq!(
                r.stderr.trim_end(),
                "bcvk: error: podman not found in PATH: install podman (bcvk runs its VMs in podman containers)",
                "{}",
                r.show()
            );
        }
    });
}

#[test]
fn help_and_version() {
    each_shell(|f| {
        for args in [
            &["--help"][..],
            &["help"][..],
            &["ephemeral", "--help"][..],
            &["ephemeral", "ps", "--help"][..],
            &["ephemeral", "rm-all", "-h"][..],
            &["ephemeral", "ssh", "--help"][..],
            &["ephemeral", "run-ssh", "--help"][..],
            &["ephemeral", "status", "--help"][..],
        ] {
            let r = f.run(args);
            r.assert_code(0);
            assert!(
                r.stdout.starts_with("Usage") || r.stdout.starts_with("bcvk"),
                "{}",
                r.show()
            );
            assert!(r.calls.is_empty(), "{}", r.show());
        }
        // run --help: the host side, then bcvk run's own options from the image.
        let r = f.run(&["ephemeral", "run", "--memory", "2G", "--help"]);
        r.assert_code(0);
        r.assert_calls(&[argv(&["run", "--rm", IMAGE, "run", "--help"])]);
        let host = r.stdout.find("-p HOST:HOST").expect("--port documented");
        let image = r.stdout.find("Usage: bcvk run").expect("image help");
        assert!(host < image, "{}", r.show());

        let r = f.run(&["--version"]);
        r.assert_code(0);
        assert_eq!(
            r.stdout,
            format!(
                "bcvk host command {}\n{IMAGE}: bcvk 0.1.0\n",
                env!("CARGO_PKG_VERSION")
            ),
            "{}",
            r.show()
        );
        r.assert_calls(&[argv(&["run", "--rm", IMAGE, "--version"])]);
    });
}

#[test]
fn terminal_stdin_decides_the_terminal_flags() {
    each_shell(|f| {
        f.vm("aaa", "vm1", "Up 1 second ago", "running", &["run", "img"]);
        // run: -it when stdin is a terminal and there is no command...
        let Some(r) = f.run_tty(&["ephemeral", "run", "img"], "") else {
            return;
        };
        r.assert_code(0);
        assert_eq!(
            r.calls[1],
            run_call(f, &["-i", "-t"], &[], &["img"]),
            "{}",
            r.show()
        );
        // ...but not with one, nor detached.
        let r = f
            .run_tty(&["ephemeral", "run", "img", "--execute=true"], "")
            .unwrap();
        assert_eq!(
            r.calls[1],
            run_call(f, &[], &[], &["img", "--execute=true"]),
            "{}",
            r.show()
        );
        let r = f.run_tty(&["ephemeral", "run", "-d", "img"], "").unwrap();
        assert_eq!(
            r.calls[1],
            run_call(f, &["-d"], &[], &["img"]),
            "{}",
            r.show()
        );
        // ssh: a terminal for a login shell, none for a command.
        let r = f.run_tty(&["ephemeral", "ssh", "vm1"], "").unwrap();
        r.assert_code(0);
        assert_eq!(r.joined()[1], "exec -it vm1 bcvk ssh", "{}", r.show());
        let r = f
            .run_tty(&["ephemeral", "ssh", "vm1", "uptime"], "")
            .unwrap();
        assert_eq!(r.joined()[1], "exec vm1 bcvk ssh uptime", "{}", r.show());
    });
}

#[test]
fn rm_all_asks_on_a_terminal() {
    each_shell(|f| {
        three_vms(f);
        let Some(r) = f.run_tty(&["ephemeral", "rm-all"], "n\n") else {
            return;
        };
        r.assert_code(1);
        assert!(
            r.stdout.contains("Remove 3 bcvk VMs? [y/N]"),
            "{}",
            r.show()
        );
        assert_eq!(r.calls.len(), 1, "nothing removed: {}", r.show());
        let r = f.run_tty(&["ephemeral", "rm-all"], "y\n").unwrap();
        r.assert_code(0);
        assert_eq!(
            r.joined()[1..],
            ["rm -f 1111", "rm -f 2222", "rm -f 3333"],
            "{}",
            r.show()
        );
    });
}

#[test]
fn run_ssh_stops_the_vm_on_ctrl_c() {
    each_shell(|f| {
        f.set("status-sleep", "");
        // SIGINT at its default, as in a terminal: a harness started in the background by a
        // shell (`cmd &`) inherits it ignored, and a shell cannot trap what it starts ignoring.
        let mut child = Command::new("env")
            .arg("--default-signal=INT")
            .arg(&f.shell)
            .arg(script())
            .args(["ephemeral", "run-ssh", "--name", "vm", "img"])
            .current_dir(&f.cwd)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    f.dir.path().join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("FAKE_DIR", f.dir.path())
            .env("BCVK_KVM_DEVICE", f.kvm())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fs::read_to_string(f.dir.path().join("log"))
            .unwrap_or_default()
            .contains("--wait")
        {
            assert!(std::time::Instant::now() < deadline, "no status call");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{}", f.shell.display());
        let calls = f.calls();
        assert_eq!(
            calls[calls.len() - 2..],
            [argv(&["stop", "vm"]), argv(&["rm", "-f", "vm"])],
            "{}: {calls:?}",
            f.shell.display()
        );
        assert!(
            !calls.iter().any(|c| c.contains(&"ssh".to_string())),
            "{calls:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Persistent VMs: bcvk vm run/ssh/list/stop/start/rm

fn vm_inspect(name: &str) -> String {
    format!(
        "container inspect --format {{{{index .Config.Labels \"bcvk.vm\"}}}}\t{{{{.State.Status}}}}\t{{{{.Config.StopTimeout}}}} {name}"
    )
}

fn vol_inspect(vol: &str) -> String {
    format!("volume inspect --format {{{{index .Labels \"bcvk.vm\"}}}} {vol}")
}

fn exit_inspect(name: &str) -> String {
    format!("container inspect --format {{{{.State.Status}}}}\t{{{{.State.ExitCode}}}} {name}")
}

/// `podman run` of persistent VM NAME: PRE after `-d --name NAME --stop-timeout STOP`,
/// its label, EXTRA_LABELS, the fixed flags, the state volume, EXTRA (volumes, -p), then
/// `IMAGE run TARGET --persistent` and BCVK.
fn vm_run_call(
    fake: &Fake,
    name: &str,
    stop: &str,
    extra_labels: &[&str],
    extra: &[&str],
    bcvk: &[&str],
) -> String {
    let mut v = argv(&["run", "-d", "--name", name, "--stop-timeout", stop]);
    v.extend(argv(&["--label", &format!("bcvk.vm={name}")]));
    // Over the bcvk image's own bcvk.ephemeral=1.
    v.extend(argv(&["--label", "bcvk.ephemeral=0"]));
    v.extend(argv(extra_labels));
    v.push("--device".into());
    v.push(fake.kvm());
    v.extend(argv(&["-v", &format!("{STORE}:/run/host-storage:ro")]));
    v.extend(argv(HEALTH));
    v.extend(argv(&["-v", &format!("bcvk-vm-{name}:/cache")]));
    v.extend(argv(extra));
    v.push(IMAGE.into());
    v.push("run".into());
    v.extend(argv(bcvk));
    v.join(" ")
}

#[test]
fn vm_run_creates_the_state_volume_and_a_labelled_container_then_waits() {
    each_shell(|f| {
        let r = f.run(&[
            "vm",
            "run",
            "--name",
            "dev",
            "--memory",
            "4G",
            "localhost/img",
        ]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                vm_inspect("dev"),
                info_call().join(" "),
                vol_inspect("bcvk-vm-dev"),
                "volume create --label bcvk.vm=dev bcvk-vm-dev".into(),
                vm_run_call(
                    f,
                    "dev",
                    "60",
                    &[],
                    &[],
                    &[
                        "localhost/img",
                        "--persistent",
                        "--stop-timeout=50",
                        "--memory=4G"
                    ]
                ),
                "exec dev bcvk status --wait".into(),
            ],
            "{}",
            r.show()
        );
        // Never the ephemeral label (bcvk ephemeral rm-all must not see it), no privileges.
        for c in r.joined() {
            assert!(!c.contains("bcvk.ephemeral=1"), "{c}");
            assert!(
                !c.contains("--privileged") && !c.contains("--cap-add"),
                "{c}"
            );
        }
        assert_eq!(r.stdout, "dev\n", "{}", r.show());
        assert!(r.stderr.contains("waiting for VM dev"), "{}", r.show());
        assert!(r.stderr.contains("bcvk vm ssh dev"), "{}", r.show());
    });
}

#[test]
fn vm_run_default_name_host_paths_ports_and_stop_timeout() {
    each_shell(|f| {
        let r = f.run(&[
            "vm",
            "run",
            "-d",
            "-K",
            "--bind",
            "/src",
            "--port=8080:80",
            "--stop-timeout",
            "20",
            "--label",
            "team=qa",
            "quay.io/fedora/fedora-bootc:42",
        ]);
        r.assert_code(0);
        let j = r.joined();
        assert_eq!(j[0], vm_inspect("fedora-bootc"), "{}", r.show());
        assert_eq!(
            j[4],
            vm_run_call(
                f,
                "fedora-bootc",
                "30",
                &["--label", "team=qa"],
                &["-v", "/src:/run/bcvk-host/1", "-p", "8080:8080"],
                &[
                    "quay.io/fedora/fedora-bootc:42",
                    "--persistent",
                    "--ssh-keygen",
                    "--bind=/run/bcvk-host/1:src",
                    "--port=8080:80",
                    "--stop-timeout=20"
                ]
            ),
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "fedora-bootc\n", "{}", r.show());
        // Names derived from other image references; --persistent given is not doubled.
        for (image, name) in [
            ("localhost:5000/team/app@sha256:0123", "app"),
            ("localhost/my_img+x:1", "my_img-x"),
            (
                "sha256:4d7e01a6a0370123456789abcdef0123456789abcdef0123456789abcdef0123",
                "4d7e01a6a037",
            ),
            ("_x", "vm_x"),
        ] {
            let r = f.run(&["vm", "run", "--persistent", image]);
            r.assert_code(0);
            let run = &r.calls[4];
            let i = run.iter().position(|a| a == "--name").unwrap();
            assert_eq!(run[i + 1], name, "{}", r.show());
            assert_eq!(
                run.iter().filter(|a| *a == "--persistent").count(),
                1,
                "{}",
                r.show()
            );
        }
    });
}

#[test]
fn vm_run_reuses_a_kept_state_and_passes_reset() {
    each_shell(|f| {
        f.state_volume("dev");
        let r = f.run(&["vm", "run", "--name=dev", "localhost/img", "--reset"]);
        r.assert_code(0);
        let j = r.joined();
        assert_eq!(j[2], vol_inspect("bcvk-vm-dev"), "{}", r.show());
        assert!(
            !j.iter().any(|c| c.starts_with("volume create")),
            "{}",
            r.show()
        );
        assert!(
            j[3].ends_with("run localhost/img --persistent --stop-timeout=50 --reset"),
            "{}",
            r.show()
        );
        assert!(r.stderr.contains("kept state"), "{}", r.show());
    });
}

#[test]
fn vm_run_refuses_names_in_use_and_one_shot_options() {
    each_shell(|f| {
        f.pvm("1111", "dev", "Up 1 minute ago", "running", "localhost/img");
        let r = f.run(&["vm", "run", "--name", "dev", "localhost/img"]);
        r.assert_code(1);
        assert!(r.stderr.contains("VM 'dev' exists"), "{}", r.show());
        assert_eq!(r.joined(), [vm_inspect("dev")], "{}", r.show());
        // Another container of that name.
        f.set("vm-web", "\trunning\t10\n");
        let r = f.run(&["vm", "run", "--name", "web", "localhost/img"]);
        r.assert_code(1);
        assert!(
            r.stderr.contains("is not a persistent bcvk VM"),
            "{}",
            r.show()
        );
        assert_eq!(r.calls.len(), 1, "{}", r.show());
        // A volume of that name that is not this VM's state.
        f.set("volume-bcvk-vm-new", "other\n");
        let r = f.run(&["vm", "run", "--name", "new", "localhost/img"]);
        r.assert_code(1);
        assert!(r.stderr.contains("is not VM new's state"), "{}", r.show());
        assert!(
            !r.joined().iter().any(|c| c.starts_with("run ")),
            "{}",
            r.show()
        );

        let cases: &[(&[&str], &str)] = &[
            (&["vm", "run"], "missing IMAGE"),
            (&["vm", "run", "--name", "x"], "missing IMAGE"),
            (&["vm", "run", "--rm", "img"], "--rm"),
            (&["vm", "run", "-it", "img"], "-i/-t"),
            (&["vm", "run", "img", "--", "ls"], "guest command"),
            (&["vm", "run", "--execute=ls", "img"], "guest command"),
            (&["vm", "run", "--name", "-x", "img"], "a VM name is"),
            (&["vm", "run", "--name", "a/b", "img"], "a VM name is"),
            (
                &["vm", "run", "--stop-timeout", "soon", "img"],
                "--stop-timeout",
            ),
            (
                &["vm", "run", "img", "--memory"],
                "vm run: --memory needs a value",
            ),
            (
                &["vm", "run", "img", "extra"],
                "unexpected argument 'extra'",
            ),
        ];
        for (args, needle) in cases {
            f.run(args).assert_usage_error(needle);
        }
    });
}

#[test]
fn vm_run_that_fails_cleans_up_and_keeps_the_exit_code() {
    // The supervisor refused (64: a state of another image): the container's exit code,
    // its log tail, and the new container and volume removed.
    each_shell(|f| {
        f.set("status-rcs", "1\n");
        f.set("exit-dev", "exited\t64\n");
        let r = f.run(&["vm", "run", "--name", "dev", "img"]);
        r.assert_code(64);
        assert_eq!(
            r.joined()[5..],
            [
                "exec dev bcvk status --wait".to_string(),
                "logs --tail 30 dev".into(),
                exit_inspect("dev"),
                "rm dev".into(),
                "volume rm bcvk-vm-dev".into(),
            ],
            "{}",
            r.show()
        );
        assert!(r.stderr.contains("fake console log"), "{}", r.show());
        let last = r.stderr.lines().last().unwrap();
        assert!(
            last.starts_with("bcvk: error: VM dev failed to start (exit code 64"),
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "", "{}", r.show());
    });
    // A kept state is kept; the container, still stopping at first, is waited for.
    each_shell(|f| {
        f.state_volume("dev");
        f.set("status-rcs", "1\n");
        f.set("exit-dev", "running\t0\nexited\t73\n");
        let r = f.run(&["vm", "run", "--name", "dev", "img"]);
        r.assert_code(73);
        let j = r.joined();
        assert_eq!(
            j[j.len() - 3..],
            [exit_inspect("dev"), exit_inspect("dev"), "rm dev".into()],
            "{}",
            r.show()
        );
        assert!(r.stderr.contains("--reset"), "{}", r.show());
    });
    // podman run itself failed: its exit code; the volume it would have used is removed.
    each_shell(|f| {
        f.set("run-rc", "125\n");
        let r = f.run(&["vm", "run", "--name", "dev", "img"]);
        r.assert_code(125);
        let j = r.joined();
        assert_eq!(
            j[j.len() - 2..],
            [vm_inspect("dev"), "volume rm bcvk-vm-dev".into()],
            "{}",
            r.show()
        );
        // A container it created but could not start is removed; one that runs (the name
        // taken meanwhile by another bcvk vm run) never.
        for (state, removed) in [("created", true), ("running", false)] {
            f.set("vm-dev", &format!("missing\ndev\t{state}\t60\n"));
            let r = f.run(&["vm", "run", "--name", "dev", "img"]);
            r.assert_code(125);
            assert_eq!(
                r.joined().contains(&"rm -f dev".to_string()),
                removed,
                "{}",
                r.show()
            );
        }
    });
}

#[test]
fn vm_ssh_keeps_the_exit_code_and_refuses_what_is_not_a_running_vm() {
    each_shell(|f| {
        f.pvm("1111", "dev", "Up 1 minute ago", "running", "localhost/img");
        f.set("ssh-rc", "7\n");
        let r = f.run(&["vm", "ssh", "dev", "uname", "-r"]);
        r.assert_code(7);
        assert_eq!(
            r.joined(),
            [vm_inspect("dev"), "exec -i dev bcvk ssh uname -r".into()],
            "{}",
            r.show()
        );
        let r = f.run(&["vm", "ssh", "dev", "--", "ls", "-l"]);
        assert_eq!(r.joined()[1], "exec -i dev bcvk ssh ls -l", "{}", r.show());

        f.pvm(
            "2222",
            "old",
            "Exited (0) 1 hour ago",
            "exited",
            "localhost/img",
        );
        f.state_volume("gone");
        f.set("vm-eph", "\trunning\t10\n");
        for (name, needle) in [
            (
                "old",
                "VM 'old' is not running (state: exited): start it with bcvk vm start old",
            ),
            ("nosuch", "no bcvk VM named 'nosuch'"),
            ("gone", "VM 'gone' has no container"),
            ("eph", "'eph' is not a persistent bcvk VM"),
        ] {
            let r = f.run(&["vm", "ssh", name, "true"]);
            r.assert_code(255);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
            assert!(r.stderr.contains(needle), "{}", r.show());
            assert!(
                !r.joined().iter().any(|c| c.starts_with("exec")),
                "{}",
                r.show()
            );
        }
        // The shorthands bcvk ssh and bcvk status take persistent VMs too.
        let r = f.run(&["ssh", "dev", "true"]);
        r.assert_code(7);
        assert_eq!(
            r.joined()[1..],
            [vm_inspect("dev"), "exec -i dev bcvk ssh true".into()],
            "{}",
            r.show()
        );
        let r = f.run(&["status", "dev", "--json"]);
        r.assert_code(0);
        assert_eq!(
            r.joined().last().unwrap(),
            "exec dev bcvk status --json",
            "{}",
            r.show()
        );
        let r = f.run(&["ssh", "old"]);
        r.assert_code(255);
        assert!(
            r.stderr.contains("not running (state: exited)"),
            "{}",
            r.show()
        );
        // A terminal for a login shell, none for a command.
        if let Some(r) = f.run_tty(&["vm", "ssh", "dev"], "") {
            r.assert_code(7);
            assert_eq!(r.joined()[1], "exec -it dev bcvk ssh", "{}", r.show());
            let r = f.run_tty(&["vm", "ssh", "dev", "uptime"], "").unwrap();
            assert_eq!(r.joined()[1], "exec dev bcvk ssh uptime", "{}", r.show());
        }
        f.run(&["vm", "ssh"])
            .assert_usage_error("vm ssh: missing NAME");
        f.run(&["vm", "ssh", "-t", "dev"])
            .assert_usage_error("unknown option '-t'");
    });
}

fn some_vms(f: &Fake) {
    f.pvm(
        "1111",
        "dev",
        "Up 5 minutes ago",
        "running",
        "localhost/fedora-bootc:42",
    );
    f.pvm(
        "2222",
        "old\"one",
        "Exited (0) 2 hours ago",
        "exited",
        "quay.io/centos-bootc/centos-bootc:stream10",
    );
    // A state whose container was removed by hand.
    f.state_volume("orphan");
    // An ephemeral VM: never listed here.
    f.vm("3333", "eph", "Up 1 minute ago", "running", &["run", "img"]);
    f.set(
        "du",
        "1610612736\t/state/bcvk-vm-dev\n4096\t/state/bcvk-vm-old\"one\n",
    );
}

#[test]
fn vm_list_shows_name_image_state_and_state_size() {
    each_shell(|f| {
        some_vms(f);
        let r = f.run(&["vm", "list"]);
        r.assert_code(0);
        let inspect = |id: &str| {
            format!(
                "container inspect --format {{{{.State.Status}}}}{{{{\"\\n\"}}}}{{{{range .Config.Cmd}}}}{{{{.}}}}{{{{\"\\n\"}}}}{{{{end}}}} {id}"
            )
        };
        assert_eq!(
            r.joined(),
            [
                "ps -a --no-trunc --filter label=bcvk.vm --format {{.ID}}\t{{.Names}}\t{{.Status}}\t{{index .Labels \"bcvk.vm\"}}".to_string(),
                "volume ls --filter label=bcvk.vm --format {{.Name}}\t{{index .Labels \"bcvk.vm\"}}".into(),
                format!(
                    "run --rm --network none --label bcvk.ephemeral=0 --entrypoint du -v bcvk-vm-dev:/state/bcvk-vm-dev:ro -v bcvk-vm-old\"one:/state/bcvk-vm-old\"one:ro -v bcvk-vm-orphan:/state/bcvk-vm-orphan:ro {IMAGE} -s -B1 /state/bcvk-vm-dev /state/bcvk-vm-old\"one /state/bcvk-vm-orphan"
                ),
                inspect("1111"),
                inspect("2222"),
            ],
            "{}",
            r.show()
        );
        let lines: Vec<Vec<&str>> = r
            .stdout
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                vec!["NAME", "IMAGE", "STATE", "SIZE"],
                vec!["dev", "localhost/fedora-bootc:42", "running", "1.5G"],
                vec![
                    "old\"one",
                    "quay.io/centos-bootc/centos-bootc:stream10",
                    "exited",
                    "4.0K"
                ],
                vec!["orphan", "-", "no-container", "-"],
            ],
            "{}",
            r.show()
        );
        let col = |l: &str| l.find("SIZE").or_else(|| l.find("1.5G")).unwrap();
        let out: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(col(out[0]), col(out[1]), "{}", r.show());

        let r = f.run(&["vm", "list", "--json"]);
        r.assert_code(0);
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.show()));
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "dev", "id": "1111", "image": "localhost/fedora-bootc:42",
                 "state": "running", "status": "Up 5 minutes ago", "volume": "bcvk-vm-dev",
                 "size": 1610612736u64},
                {"name": "old\"one", "id": "2222",
                 "image": "quay.io/centos-bootc/centos-bootc:stream10", "state": "exited",
                 "status": "Exited (0) 2 hours ago", "volume": "bcvk-vm-old\"one", "size": 4096},
                {"name": "orphan", "id": null, "image": null, "state": "no-container",
                 "status": null, "volume": "bcvk-vm-orphan", "size": null},
            ]),
            "{}",
            r.show()
        );

        // None: a header alone, an empty array, and no du container.
        for file in ["vm-containers", "volumes"] {
            fs::remove_file(f.dir.path().join(file)).unwrap();
        }
        let r = f.run(&["vm", "list"]);
        r.assert_code(0);
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.show());
        assert_eq!(r.calls.len(), 2, "{}", r.show());
        let r = f.run(&["vm", "list", "--json"]);
        assert_eq!(r.stdout, "[]\n", "{}", r.show());
        f.run(&["vm", "list", "-a"])
            .assert_usage_error("unexpected argument '-a'");
    });
}

#[test]
fn ephemeral_ps_and_rm_all_never_see_persistent_vms() {
    each_shell(|f| {
        some_vms(f);
        // A persistent VM made by hand that kept the image's bcvk.ephemeral=1: listed by
        // podman's label filter, skipped by bcvk.
        let p = f.dir.path().join("containers");
        let mut rows = fs::read_to_string(&p).unwrap();
        rows.push_str("5555\thandmade\tUp 1 minute ago\thandmade\n");
        fs::write(p, rows).unwrap();
        let r = f.run(&["ephemeral", "ps"]);
        r.assert_code(0);
        assert_eq!(r.stdout.lines().count(), 2, "{}", r.show());
        assert!(r.stdout.contains("eph"), "{}", r.show());
        let r = f.run(&["ephemeral", "rm-all", "-f"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                "ps -a --filter label=bcvk.ephemeral=1 --format {{.ID}}\t{{.Names}}\t{{index .Labels \"bcvk.vm\"}}",
                "rm -f 3333"
            ],
            "{}",
            r.show()
        );
        // And vm rm never removes an ephemeral VM.
        let r = f.run(&["vm", "rm", "-f", "eph"]);
        r.assert_code(1);
        assert!(
            r.stderr.contains("not a persistent bcvk VM"),
            "{}",
            r.show()
        );
        assert!(
            !r.joined().iter().any(|c| c.starts_with("rm")),
            "{}",
            r.show()
        );
    });
}

#[test]
fn vm_stop_gives_the_guest_its_stop_timeout() {
    each_shell(|f| {
        f.pvm("1111", "dev", "Up 5 minutes ago", "running", "img");
        let r = f.run(&["vm", "stop", "dev"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [vm_inspect("dev"), "stop -t 60 dev".into()],
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "dev\n", "{}", r.show());
        // Already stopped: nothing to do.
        f.pvm("2222", "old", "Exited (0) 1 hour ago", "exited", "img");
        let r = f.run(&["vm", "stop", "old"]);
        r.assert_code(0);
        assert_eq!(r.calls.len(), 1, "{}", r.show());
        assert!(r.stderr.contains("not running"), "{}", r.show());
        let r = f.run(&["vm", "stop", "nosuch"]);
        r.assert_code(1);
        assert!(
            r.stderr.contains("no bcvk VM named 'nosuch'"),
            "{}",
            r.show()
        );
        f.run(&["vm", "stop"])
            .assert_usage_error("vm stop: missing NAME");
        f.run(&["vm", "stop", "a", "b"])
            .assert_usage_error("one NAME only");
        f.run(&["vm", "stop", "-f", "a"])
            .assert_usage_error("unknown option '-f'");
    });
}

#[test]
fn vm_start_starts_then_waits_until_ready() {
    each_shell(|f| {
        f.pvm("2222", "old", "Exited (0) 1 hour ago", "exited", "img");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                vm_inspect("old"),
                "start old".into(),
                "exec old bcvk status --wait".into()
            ],
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "old\n", "{}", r.show());
        // The previous run's status, read before the supervisor started afresh: asked again
        // while the container runs.
        f.set("status-rcs", "1\n0\n");
        f.set("state-old", "running\n");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.joined()[2..],
            [
                "exec old bcvk status --wait".to_string(),
                "container inspect --format {{.State.Status}} old".into(),
                "exec old bcvk status --wait".into()
            ],
            "{}",
            r.show()
        );
        // Already running: only the wait.
        f.pvm("1111", "dev", "Up 5 minutes ago", "running", "img");
        let r = f.run(&["vm", "start", "dev"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [vm_inspect("dev"), "exec dev bcvk status --wait".into()],
            "{}",
            r.show()
        );
    });
    // The VM stops before it is ready (73: its state is in use): that code, the container
    // kept.
    each_shell(|f| {
        f.pvm("2222", "old", "Exited (0) 1 hour ago", "exited", "img");
        f.set("status-rcs", "1\n");
        f.set("state-old", "exited\n");
        f.set("exit-old", "exited\t73\n");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(73);
        let j = r.joined();
        assert_eq!(j.last().unwrap(), &exit_inspect("old"), "{}", r.show());
        assert!(!j.iter().any(|c| c.starts_with("rm")), "{}", r.show());
        assert!(r.stderr.contains("bcvk vm start old"), "{}", r.show());
        // podman start failed: its code.
        f.set("start-rc", "125\n");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(125);
        assert_eq!(r.calls.len(), 2, "{}", r.show());
        f.run(&["vm", "start"])
            .assert_usage_error("vm start: missing NAME");
    });
}

#[test]
fn vm_rm_removes_the_container_and_its_state_volume() {
    each_shell(|f| {
        f.pvm("2222", "old", "Exited (0) 1 hour ago", "exited", "img");
        let r = f.run(&["vm", "rm", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                vm_inspect("old"),
                vol_inspect("bcvk-vm-old"),
                "rm old".into(),
                "volume rm bcvk-vm-old".into()
            ],
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "old\n", "{}", r.show());

        // Running: refused without -f, removed with it.
        f.pvm("1111", "dev", "Up 5 minutes ago", "running", "img");
        let r = f.run(&["vm", "rm", "dev"]);
        r.assert_code(1);
        assert!(r.stderr.contains("VM dev is running"), "{}", r.show());
        assert!(r.stderr.contains("bcvk vm rm -f dev"), "{}", r.show());
        assert_eq!(r.joined(), [vm_inspect("dev")], "{}", r.show());
        for force in ["-f", "--force"] {
            let r = f.run(&["vm", "rm", force, "dev"]);
            r.assert_code(0);
            assert_eq!(
                r.joined()[2..],
                ["rm -f dev".to_string(), "volume rm bcvk-vm-dev".into()],
                "{}",
                r.show()
            );
        }

        // A state without its container: the volume only.
        f.state_volume("orphan");
        let r = f.run(&["vm", "rm", "orphan"]);
        r.assert_code(0);
        assert_eq!(
            r.joined(),
            [
                vm_inspect("orphan"),
                vol_inspect("bcvk-vm-orphan"),
                "volume rm bcvk-vm-orphan".into()
            ],
            "{}",
            r.show()
        );
        // A volume of that name that is not the VM's state is left alone.
        f.pvm("4444", "x", "Exited (0) 1 hour ago", "exited", "img");
        f.set("volume-bcvk-vm-x", "\n");
        let r = f.run(&["vm", "rm", "x"]);
        r.assert_code(0);
        assert_eq!(r.joined().last().unwrap(), "rm x", "{}", r.show());
        assert!(
            r.stderr.starts_with("bcvk: warning: volume bcvk-vm-x"),
            "{}",
            r.show()
        );

        let r = f.run(&["vm", "rm", "nosuch"]);
        r.assert_code(1);
        assert!(
            r.stderr.contains("no bcvk VM named 'nosuch'"),
            "{}",
            r.show()
        );
        assert_eq!(r.calls.len(), 2, "{}", r.show());
        f.run(&["vm", "rm"])
            .assert_usage_error("vm rm: missing NAME");
        f.run(&["vm", "rm", "-f"])
            .assert_usage_error("vm rm: missing NAME");
        f.run(&["vm", "rm", "--all"])
            .assert_usage_error("unknown option '--all'");
    });
}

#[test]
fn vm_help_maps_each_verb_to_podman_bootc_and_upstream_bcvk() {
    each_shell(|f| {
        let r = f.run(&["vm", "--help"]);
        r.assert_code(0);
        assert!(r.calls.is_empty(), "{}", r.show());
        for (verb, pb, up) in [
            ("run", "run", "libvirt run"),
            ("ssh", "ssh", "libvirt ssh"),
            ("list", "list", "libvirt list"),
            ("stop", "stop", "libvirt stop"),
            ("start", "-", "libvirt start"),
            ("rm", "rm", "libvirt rm"),
        ] {
            let line = r
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{verb} ")))
                .unwrap_or_else(|| panic!("{verb}: {}", r.show()));
            let words: Vec<&str> = line
                .split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(words[words.len() - 2..], [pb, up], "{line}");

            let args = ["vm", verb, "--help"];
            let h = f.run(&args);
            h.assert_code(0);
            assert!(
                h.stdout.starts_with(&format!("Usage: bcvk vm {verb}")),
                "{}",
                h.show()
            );
            assert!(h.stdout.contains(&format!("bcvk {up}")), "{}", h.show());
            if pb != "-" {
                assert!(
                    h.stdout.contains(&format!("podman-bootc {pb}")),
                    "{}",
                    h.show()
                );
            }
        }
        // vm run --help also shows bcvk run's options from the image.
        let r = f.run(&["vm", "run", "--help"]);
        r.assert_calls(&[argv(&["run", "--rm", IMAGE, "run", "--help"])]);
        assert!(r.stdout.contains("Usage: bcvk run"), "{}", r.show());
        // The main help names the vm verbs.
        let r = f.run(&["--help"]);
        assert!(r.stdout.contains("bcvk vm run"), "{}", r.show());

        let r = f.run(&["vm"]);
        r.assert_code(64);
        assert!(r.stderr.contains("Usage: bcvk vm"), "{}", r.show());
        f.run(&["vm", "bogus"])
            .assert_usage_error("unknown subcommand 'vm bogus'");
    });
}

/// Every option of `bcvk run`, read from its clap definition, passes through the host
/// command, in both the `--opt VALUE` and `--opt=VALUE` forms: the script has no list of
/// its own to drift (`bcvk install-host-cli` writes clap's into it).
#[test]
fn every_option_of_bcvk_run_passes_through() {
    use clap::CommandFactory;
    let root = bcvk::cli::Cli::command();
    let run = root.find_subcommand("run").unwrap();
    let globals = root.get_arguments().filter(|a| a.is_global_set());
    let args: Vec<_> = run
        .get_arguments()
        .chain(globals)
        .filter(|a| a.get_long().is_some())
        .filter(|a| {
            !matches!(
                a.get_action(),
                clap::ArgAction::Help | clap::ArgAction::Version
            )
        })
        .cloned()
        .collect();
    assert!(args.len() > 25, "{} options", args.len());
    for sh in shells() {
        let f = Fake::new(&sh);
        let host = f.dir.path().join("host");
        fs::create_dir(&host).unwrap();
        let file = host.join("file");
        fs::write(&file, "x").unwrap();
        let (host, file) = (host.display().to_string(), file.display().to_string());
        for arg in &args {
            let long = format!("--{}", arg.get_long().unwrap());
            // A value the host command accepts, and what reaches `bcvk run` (a prefix).
            let (value, passed): (String, String) = match long.as_str() {
                _ if !arg.get_action().takes_values() => (String::new(), long.clone()),
                "--storage" => (host.clone(), format!("{host}:/run/host-storage:ro")),
                "--bind" | "--ro-bind" => {
                    (format!("{host}:n"), format!("{long}=/run/bcvk-host/1:n"))
                }
                "--mount-disk-file" => (file.clone(), format!("{long}=/run/bcvk-host/1/file")),
                "--virtio-serial-out" => (
                    format!("out:{file}"),
                    format!("{long}=out:/run/bcvk-host/1/file"),
                ),
                "--port" => ("8080:80".into(), "--port=8080:80".into()),
                _ => match arg.get_value_hint() {
                    clap::ValueHint::FilePath => {
                        (file.clone(), format!("{long}=/run/bcvk-host/1/file"))
                    }
                    clap::ValueHint::DirPath => (host.clone(), format!("{long}=/run/bcvk-host/1")),
                    _ => {
                        let v = arg
                            .get_possible_values()
                            .first()
                            .map(|p| p.get_name().to_string())
                            .unwrap_or_else(|| "7".into());
                        (v.clone(), format!("{long}={v}"))
                    }
                },
            };
            let forms: Vec<Vec<String>> = if value.is_empty() {
                vec![vec![long.clone()]]
            } else {
                vec![
                    vec![long.clone(), value.clone()],
                    vec![format!("{long}={value}")],
                ]
            };
            for form in forms {
                let mut argv = vec!["ephemeral", "run", "-d"];
                argv.extend(form.iter().map(String::as_str));
                // A disk image takes the place of IMAGE.
                if long != "--disk-image" {
                    argv.push("localhost/img");
                }
                let r = f.run(&argv);
                r.assert_code(0);
                let call = r
                    .calls
                    .iter()
                    .find(|c| c.first().map(String::as_str) == Some("run"));
                let call = call.unwrap_or_else(|| panic!("{form:?}: no podman run: {}", r.show()));
                assert!(
                    call.iter().any(|a| a.starts_with(&passed)),
                    "{form:?}: podman run lacks {passed:?}: {}",
                    r.show()
                );
            }
        }
    }
}

/// --disk-image takes the place of IMAGE: the file alone is mounted, read-only unless
/// --persistent (then the guest writes into it); run-ssh's command follows directly.
#[test]
fn disk_image_mounts_the_file_alone() {
    for sh in shells() {
        let f = Fake::new(&sh);
        let host = f.dir.path().join("imgs");
        fs::create_dir(&host).unwrap();
        let disk = host.join("d.qcow2");
        fs::write(&disk, "x").unwrap();
        let d = disk.display().to_string();
        for (extra, mount) in [
            (None, format!("{d}:/run/bcvk-host/1/d.qcow2:ro")),
            (
                Some("--persistent"),
                format!("{d}:/run/bcvk-host/1/d.qcow2"),
            ),
        ] {
            let mut argv = vec!["ephemeral", "run", "-d", "--disk-image", &d];
            argv.extend(extra);
            let r = f.run(&argv);
            r.assert_code(0);
            let call = r.calls.iter().find(|c| c[0] == "run").unwrap();
            assert!(call.contains(&mount), "{mount}: {}", r.show());
            let at = call.iter().position(|a| a == "run").unwrap();
            let bcvk_run = call[at + 1..].iter().position(|a| a == "run").unwrap() + at + 1;
            assert_eq!(
                call[bcvk_run + 1],
                "--disk-image=/run/bcvk-host/1/d.qcow2",
                "{}",
                r.show()
            );
        }
        let r = f.run(&["ephemeral", "run", "--disk-image", &d, "extra"]);
        r.assert_usage_error("no IMAGE; put the guest command after '--'");
        let r = f.run(&["ephemeral", "run", "--disk-image", "/no/such.qcow2"]);
        r.assert_usage_error("no such file on this host");
    }
}

/// An option bcvk does not have is refused on the host, before podman runs; upstream
/// spellings name bcvk's equivalent.
#[test]
fn unknown_and_upstream_options_are_refused_with_the_equivalent() {
    for sh in shells() {
        let f = Fake::new(&sh);
        let r = f.run(&["ephemeral", "run", "--future-flag=x", "img"]);
        r.assert_usage_error("unknown option --future-flag");
        for (spelling, hint) in bcvk::cli::UPSTREAM_SPELLINGS {
            let value_form = format!("{spelling}=x");
            let argv: Vec<&str> = if spelling.starts_with("--") {
                vec!["ephemeral", "run-ssh", &value_form, "img"]
            } else {
                vec!["ephemeral", "run", spelling, "x", "img"]
            };
            let r = f.run(&argv);
            r.assert_usage_error(hint);
        }
        let r = f.run(&["ephemeral", "run", "-de", "FOO=1", "img"]);
        r.assert_usage_error("use --execute");
    }
}
