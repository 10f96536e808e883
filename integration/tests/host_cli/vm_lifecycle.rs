//! Persistent VMs after `bcvk vm run`: list, stop, start, rm, their help, and the boot progress
//! shown while the host command waits.

use std::fs;

use super::harness::*;
use super::vm::{exit_inspect, vm_inspect, vol_inspect};

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
