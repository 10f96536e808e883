//! Persistent VMs: `bcvk vm run/ssh/list/stop/start/rm`.

use std::fs;

use super::harness::*;

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
        assert_eq!(
            table_cells(&r.stdout),
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
                "exec old bcvk status --wait --progress plain".into()
            ],
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "old\n", "{}", r.show());
        assert!(
            r.stderr
                .ends_with("bcvk: VM old is ready: bcvk vm ssh old\n"),
            "{}",
            r.show()
        );
        // The previous run's status, read before the supervisor started afresh: asked again
        // while the container runs.
        f.set("status-rcs", "1\n0\n");
        f.set("state-old", "running\n");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.joined()[2..],
            [
                "exec old bcvk status --wait --progress plain".to_string(),
                "container inspect --format {{.State.Status}} old".into(),
                "exec old bcvk status --wait --progress plain".into()
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
            [
                vm_inspect("dev"),
                "exec dev bcvk status --wait --progress plain".into()
            ],
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

/// While it waits, the host command shows the supervisor's boot phases (plain lines here,
/// where stderr is no terminal), never twice, and falls back to a plain wait with a bcvk image
/// that predates --progress.
#[test]
fn the_wait_shows_the_boot_progress() {
    each_shell(|f| {
        f.pvm("2222", "old", "Exited (0) 1 hour ago", "exited", "img");
        f.set(
            "progress",
            "bcvk: booting (3s): kernel\nbcvk: booting (9s): systemd\n",
        );
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.stderr,
            "bcvk: waiting for VM old to be ready...\n\
             bcvk: booting (3s): kernel\n\
             bcvk: booting (9s): systemd\n\
             bcvk: VM old is ready: bcvk vm ssh old\n",
            "{}",
            r.show()
        );
        assert_eq!(r.stdout, "old\n", "{}", r.show());
        // Not ready: the status is shown once, without the progress lines again.
        f.set("status-rcs", "75\n");
        let r = f.run(&["vm", "start", "old"]);
        assert_eq!(
            r.stderr.matches("booting (9s): systemd").count(),
            1,
            "{}",
            r.show()
        );
        assert!(r.stderr.contains("state: fake"), "{}", r.show());
        // An older bcvk image: asked again without --progress.
        f.set("no-progress", "");
        f.set("status-rcs", "0\n");
        let r = f.run(&["vm", "start", "old"]);
        r.assert_code(0);
        assert_eq!(
            r.joined()[2..],
            [
                "exec old bcvk status --wait --progress plain".to_string(),
                "exec old bcvk status --wait".into()
            ],
            "{}",
            r.show()
        );
        assert!(!r.stderr.contains("--progress"), "{}", r.show());
    });
}
