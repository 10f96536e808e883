//! The fake podman, the host command under test, and helpers shared by the tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) use bcvk_integration::table_cells;

pub(crate) const IMAGE: &str = "localhost/bcvk:latest";
pub(crate) const STORE: &str = "/var/lib/containers/storage";
pub(crate) const LABEL: &str = "bcvk.ephemeral=1";
/// The health check the host command gives every VM container where podman can run it
/// (`BCVK_HEALTHCHECK=on`, as the fake's runs set).
pub(crate) const HEALTH: &[&str] = &[
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
///                        (125 and over: podman's own exec failure, runc's setns error)
///   ssh-rc, run-rc, start-rc  exit codes of `exec ... bcvk ssh`, `run` and `start`
///   status-sleep         when present, `exec ... bcvk status --wait` takes 2 s
///   progress             what `exec ... bcvk status --wait --progress plain` prints on stderr
///                        before its status
///   no-progress          when present, that command is refused as an older bcvk refuses it
pub(crate) const FAKE_PODMAN: &str = r#"#!/bin/sh
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
        case " $* " in
        *" --progress plain "*)
            if [ -f "$d/no-progress" ]; then
                echo "bcvk: error: unexpected argument '--progress' found" >&2
                exit 64
            fi
            [ -f "$d/progress" ] && cat "$d/progress" >&2
            ;;
        esac
        rc=0
        if [ -s "$d/status-rcs" ]; then
            rc=$(head -n 1 "$d/status-rcs")
            tail -n +2 "$d/status-rcs" >"$d/status-rcs.new"
            mv "$d/status-rcs.new" "$d/status-rcs"
        fi
        if [ "$rc" -ge 125 ]; then
            echo "Error: OCI runtime error: runc: exec failed: unable to start container process: error executing setns process: exit status 1" >&2
        else
            echo "state: fake"
        fi
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
pub(crate) fn script() -> PathBuf {
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

pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The POSIX shells to run the script with: sh always, dash and bash when installed.
pub(crate) fn shells() -> Vec<PathBuf> {
    let mut v = vec![find_in_path("sh").unwrap_or_else(|| PathBuf::from("/bin/sh"))];
    v.extend(["dash", "bash"].iter().filter_map(|s| find_in_path(s)));
    v
}

pub(crate) struct Fake {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) shell: PathBuf,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) path: Option<String>,
}

pub(crate) struct Res {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) calls: Vec<Vec<String>>,
    pub(crate) shell: PathBuf,
}

impl Res {
    pub(crate) fn show(&self) -> String {
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
    pub(crate) fn joined(&self) -> Vec<String> {
        self.calls.iter().map(|c| c.join(" ")).collect()
    }

    pub(crate) fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "{}", self.show());
    }

    pub(crate) fn assert_calls(&self, expected: &[Vec<String>]) {
        assert_eq!(self.calls, expected, "{}", self.show());
    }

    /// A usage error: exit 64, one `bcvk: error:` line, and podman never called.
    pub(crate) fn assert_usage_error(&self, needle: &str) {
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
    pub(crate) fn new(shell: &Path) -> Fake {
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

    pub(crate) fn kvm(&self) -> String {
        self.dir.path().join("kvm").display().to_string()
    }

    pub(crate) fn set(&self, file: &str, content: &str) {
        fs::write(self.dir.path().join(file), content).unwrap();
    }

    pub(crate) fn env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    /// Adds a bcvk VM the fake lists (ps) and inspects.
    pub(crate) fn vm(&self, id: &str, name: &str, status: &str, state: &str, cmd: &[&str]) {
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
    pub(crate) fn pvm(&self, id: &str, name: &str, status: &str, state: &str, image: &str) {
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
    pub(crate) fn state_volume(&self, name: &str) {
        let p = self.dir.path().join("volumes");
        let mut rows = fs::read_to_string(&p).unwrap_or_default();
        rows.push_str(&format!("bcvk-vm-{name}\t{name}\n"));
        fs::write(p, rows).unwrap();
        self.set(&format!("volume-bcvk-vm-{name}"), &format!("{name}\n"));
    }

    pub(crate) fn run(&self, args: &[&str]) -> Res {
        self.run_stdin(args, None)
    }

    /// PATH with the fake podman first.
    fn fake_path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Sets `cmd` up as every run of the script: PATH, in the test's directory, the fake's
    /// canned data, the test's environment; stdout and stderr captured. The log of podman
    /// calls starts afresh.
    fn prepare(&self, cmd: &mut Command, path: &str) {
        let _ = fs::remove_file(self.dir.path().join("log"));
        cmd.current_dir(&self.cwd)
            .env("PATH", path)
            .env("PWD", &self.cwd)
            .env("FAKE_DIR", self.dir.path())
            .env("BCVK_KVM_DEVICE", self.kvm())
            // As where podman runs health checks (a systemd host): the tests' host may not be.
            .env("BCVK_HEALTHCHECK", "on")
            .env_remove("BCVK_IMAGE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    /// Runs the script; `calls` are this run's podman calls only.
    pub(crate) fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Res {
        let path = self.path.clone().unwrap_or_else(|| self.fake_path());
        let mut cmd = Command::new(&self.shell);
        cmd.arg(script()).args(args);
        self.prepare(&mut cmd, &path);
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
    pub(crate) fn run_tty(&self, args: &[&str], input: &str) -> Option<Res> {
        let script_bin = find_in_path("script")?;
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut line = quote(&self.shell.display().to_string());
        line.push(' ');
        line.push_str(&quote(&script().display().to_string()));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let mut cmd = Command::new(script_bin);
        cmd.args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped());
        self.prepare(&mut cmd, &self.fake_path());
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

    pub(crate) fn calls(&self) -> Vec<Vec<String>> {
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
pub(crate) fn each_shell(f: impl Fn(&mut Fake)) {
    for sh in shells() {
        let mut fake = Fake::new(&sh);
        f(&mut fake);
    }
}

pub(crate) fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn info_call() -> Vec<String> {
    argv(&["info", "--format", "{{.Store.GraphRoot}}"])
}

/// The look-up of a `--name` before `podman run`: a name in use is refused first.
pub(crate) fn name_call(name: &str) -> Vec<String> {
    argv(&[
        "container",
        "inspect",
        "--format",
        "{{index .Config.Labels \"bcvk.ephemeral\"}}\t{{.State.Status}}",
        name,
    ])
}

/// `podman run` with PRE (-d, --name...), the fixed flags, EXTRA (volumes, -p), then the
/// bcvk image and its `run TARGET` arguments.
pub(crate) fn run_call(fake: &Fake, pre: &[&str], extra: &[&str], bcvk: &[&str]) -> Vec<String> {
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
