//! `bcvk run`: the podman command it builds, the script itself under each shell.

use std::fs;
use std::process::Command;

use super::harness::*;

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
            name_call("testvm"),
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
            name_call("devvm"),
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
        for d in [
            "code", "units", "scratch", "disks", "out", "my code", "seed", "cfg",
        ] {
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
            "--cloud-init",
            "seed",
            "--ignition=./cfg/config.ign",
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
            // Read-only: bcvk only reads them (the file alone, not its directory).
            "-v".into(),
            format!("{cwd}/seed:{}:ro", v(12)),
            "-v".into(),
            format!("{cwd}/cfg/config.ign:{}/config.ign:ro", v(13)),
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
            format!("--log-dir=journal,console={}", v(11)),
            format!("--cloud-init={}", v(12)),
            format!("--ignition={}/config.ign", v(13)),
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
            name_call("vm1"),
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
        // A bare PORT is HOST:GUEST with both the same, as bcvk run takes it.
        let r = f.run(&["ephemeral", "run", "-d", "--port", "80", "img"]);
        r.assert_code(0);
        r.assert_calls(&[
            info_call(),
            run_call(f, &["-d"], &["-p", "80:80"], &["img", "--port=80"]),
        ]);
        // Values are bcvk run's to judge (it refuses these with its reason): the host
        // command passes them on, and publishes no port it could not read a HOST from.
        for bad in ["a:80", ":80", "99999:80", "0"] {
            let r = f.run(&["ephemeral", "run", "-d", "--port", bad, "img"]);
            r.assert_code(0);
            let port = format!("--port={bad}");
            r.assert_calls(&[info_call(), run_call(f, &["-d"], &[], &["img", &port])]);
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
        let mut run = argv(&[
            "run",
            "--label",
            LABEL,
            "-v",
            "/home/u/.local/share/containers/storage:/run/host-storage:ro",
        ]);
        run.extend(argv(HEALTH));
        run.extend(argv(&["quay.io/me/bcvk:dev", "run", "img"]));
        r.assert_calls(&[info_call(), run]);
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

/// A --name in use is refused before podman run (which would exit 125 with its own
/// message): exit 1, one line saying what holds the name.
#[test]
fn run_with_a_name_in_use_says_so() {
    each_shell(|f| {
        f.vm("abc", "taken", "Up 2 minutes", "running", &["run", "img"]);
        for verb in ["run", "run-ssh"] {
            let r = f.run(&["ephemeral", verb, "--name", "taken", "img"]);
            r.assert_code(1);
            assert_eq!(
                r.stderr,
                format!("bcvk: error: {verb}: --name taken: a bcvk VM of that name exists (state: running): remove it with podman rm -f taken (bcvk ephemeral ps lists them), or give another --name\n"),
                "{}",
                r.show()
            );
            assert!(!r.calls.iter().any(|c| c[0] == "run"), "{}", r.show());
        }
        f.set("labels-db", "\texited\n");
        let r = f.run(&["ephemeral", "run", "-d", "--name=db", "img"]);
        r.assert_code(1);
        assert!(
            r.stderr.ends_with("--name db: a container of that name exists (state: exited), not an ephemeral bcvk VM: give another --name\n"),
            "{}",
            r.show()
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
    });
}

/// Health checks only where podman can run them (systemd's manager socket there, or
/// BCVK_HEALTHCHECK=on): elsewhere every podman run/start/rm would log an error and
/// `podman ps` would show "(starting)" for good.
#[test]
fn health_checks_only_where_podman_runs_them() {
    each_shell(|f| {
        let has_health = |r: &Res| {
            r.calls
                .iter()
                .any(|c| c.iter().any(|a| a == "--health-cmd"))
        };
        let r = f.run(&["ephemeral", "run", "-d", "img"]);
        r.assert_code(0);
        assert!(has_health(&r), "{}", r.show());
        f.env = vec![("BCVK_HEALTHCHECK".into(), "off".into())];
        let r = f.run(&["ephemeral", "run", "-d", "img"]);
        r.assert_code(0);
        assert!(!has_health(&r), "{}", r.show());
        assert_eq!(r.stderr, "", "{}", r.show());
        // auto: as the manager's socket says (root runs these tests).
        f.env = vec![("BCVK_HEALTHCHECK".into(), "auto".into())];
        let r = f.run(&["vm", "run", "--name", "v", "img"]);
        let systemd = std::path::Path::new("/run/systemd/private").exists();
        assert_eq!(has_health(&r), systemd, "{}", r.show());
        f.env = vec![("BCVK_HEALTHCHECK".into(), "sometimes".into())];
        f.run(&["ephemeral", "run", "-d", "img"])
            .assert_usage_error("BCVK_HEALTHCHECK=sometimes: use auto, on or off");
    });
}
