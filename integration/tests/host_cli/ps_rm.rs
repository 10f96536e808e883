//! `bcvk ps`, `bcvk rm --all` and `bcvk status` over the ephemeral VMs.

use std::fs;

use super::harness::*;

pub(crate) fn three_vms(f: &Fake) {
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
        assert_eq!(
            table_cells(&r.stdout),
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
            "exec vm1 bcvk status --name vm1 --json --wait",
            "{}",
            r.show()
        );
    });
}
