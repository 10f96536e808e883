//! Persistent VMs: `bcvk vm run/ssh/list/stop/start/rm`.

use super::harness::*;

pub(super) fn vm_inspect(name: &str) -> String {
    format!(
        "container inspect --format {{{{index .Config.Labels \"bcvk.vm\"}}}}\t{{{{.State.Status}}}}\t{{{{.Config.StopTimeout}}}} {name}"
    )
}

pub(super) fn vol_inspect(vol: &str) -> String {
    format!("volume inspect --format {{{{index .Labels \"bcvk.vm\"}}}} {vol}")
}

pub(super) fn exit_inspect(name: &str) -> String {
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
                "exec dev bcvk status --wait --progress plain".into(),
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
                "exec dev bcvk status --wait --progress plain".to_string(),
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
            "exec dev bcvk status --name dev --json",
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
