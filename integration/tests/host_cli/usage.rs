//! Usage errors, help, a missing podman, terminal flags and Ctrl-C.

use std::fs;
use std::process::{Command, Stdio};

use super::harness::*;
use super::ps_rm::three_vms;

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
fn typos_get_did_you_mean() {
    each_shell(|f| {
        let cases: &[(&[&str], &str)] = &[
            (&["ephmeral", "ps"], "did you mean 'ephemeral'?"),
            (&["--hepl"], "did you mean '--help'?"),
            (&["ephemeral", "rnu", "img"], "did you mean 'run'?"),
            (&["ephemeral", "run-shs", "img"], "did you mean 'run-ssh'?"),
            (&["vm", "strat", "dev"], "did you mean 'start'?"),
            (&["vm", "lsit"], "did you mean 'list'?"),
            // bcvk run's own options, from its clap definitions.
            (
                &["ephemeral", "run", "--memroy", "2G", "img"],
                "unknown option --memroy: did you mean '--memory'?",
            ),
            (
                &["ephemeral", "run-ssh", "--vcpu=2", "img"],
                "unknown option --vcpu: did you mean '--vcpus'?",
            ),
            (
                &["vm", "run", "--ssh-keygne", "img"],
                "did you mean '--ssh-keygen'?",
            ),
        ];
        for (args, needle) in cases {
            f.run(args).assert_usage_error(needle);
        }
        // Nothing close: no guess.
        for args in [
            &["libvirt", "run"][..],
            &["ephemeral", "run", "--frobnicate", "x"][..],
        ] {
            let r = f.run(args);
            r.assert_code(64);
            assert!(!r.stderr.contains("did you mean"), "{}", r.show());
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

/// The README's install block, run as written by a fresh account whose PATH lacks
/// `~/.local/bin` (root's, on Debian and Ubuntu): the directory is made, the host command
/// installed, and `bcvk` found in that shell and in a later login's.
#[test]
fn readme_install_block_works_on_a_fresh_account() {
    let readme = include_str!("../../../README.md");
    let block: String = readme
        .split_once("Install the host command once")
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block.to_string())
        .expect("README has the install block");
    assert!(block.contains("install-host-cli"), "{block}");
    for shell in shells() {
        let home = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        // A podman that answers `run --rm IMAGE install-host-cli` as the image does.
        let cli = bin.path().join("host-cli");
        fs::write(&cli, bcvk::host_cli()).unwrap();
        fs::write(
            bin.path().join("podman"),
            format!(
                "#!/bin/sh\n[ \"$*\" = 'run --rm {IMAGE} install-host-cli' ] || exit 125\nexec cat '{}'\n",
                cli.display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            let p = bin.path().join("podman");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!("{}:/usr/bin:/bin", bin.path().display());
        let run = |script: &str| {
            Command::new(&shell)
                .args(["-c", script])
                .current_dir(home.path())
                .env_clear()
                .env("HOME", home.path())
                .env("PATH", &path)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let out = run(&format!("set -e\n{block}\ncommand -v bcvk"));
        let installed = home.path().join(".local/bin/bcvk");
        assert!(
            out.status.success(),
            "{}: {}",
            shell.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            installed.display().to_string()
        );
        assert_eq!(fs::read_to_string(&installed).unwrap(), bcvk::host_cli());
        // A later login reads ~/.profile.
        let later = run(". ./.profile; command -v bcvk && bcvk --help >/dev/null");
        assert!(
            later.status.success(),
            "{}: {}",
            shell.display(),
            String::from_utf8_lossy(&later.stderr)
        );
    }
}
