//! `bcvk ssh` and `bcvk ephemeral run-ssh`: exec into a VM container, exit codes, waiting.

use super::harness::*;

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
            argv(&[
                "exec",
                &name,
                "bcvk",
                "status",
                "--wait",
                "--progress",
                "plain",
            ]),
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
        assert_eq!(j[1], name_call("myvm").join(" "), "{}", r.show());
        assert_eq!(
            j[4..],
            [
                "exec -i myvm bcvk ssh sh -c exit 42".to_string(),
                "stop myvm".to_string(),
                "rm -f myvm".to_string()
            ],
            "{}",
            r.show()
        );
        assert!(
            j[2].contains("-v /src:/run/bcvk-host/1 ")
                && j[2].ends_with("run img --bind=/run/bcvk-host/1:src"),
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
        assert_eq!(j.len(), 8, "{}", r.show());
        assert_eq!(j[1], name_call("vm").join(" "));
        assert_eq!(j[3], "exec vm bcvk status --wait --progress plain");
        assert_eq!(j[4], "exec vm bcvk status --wait --progress plain");
        assert_eq!(j[5], "exec -i vm bcvk ssh true");
        assert_eq!(j[6], "stop vm");
        assert_eq!(j[7], "rm -f vm");
    });
    // The VM failed without a reason in its log: no ssh, the VM is stopped and removed,
    // 255 like ssh.
    each_shell(|f| {
        f.set("status-rcs", "1\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img"]);
        r.assert_code(255);
        let j = r.joined();
        assert_eq!(
            j[3..],
            [
                "exec vm bcvk status --wait --progress plain".to_string(),
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
    // The VM exited while the host command waited for it, so podman exec failed (runc's
    // setns error): none of podman's words, the supervisor's line last and its code.
    each_shell(|f| {
        f.set("status-rcs", "126\n");
        f.set("state-vm", "exited\n");
        f.set("exit-vm", "exited\t66\n");
        f.set(
            "logs-vm",
            "bcvk: error: No kernel found in localhost/nokernel (...)\n",
        );
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img"]);
        r.assert_code(66);
        assert!(!r.stderr.contains("OCI runtime"), "{}", r.show());
        assert_eq!(
            r.stderr.lines().last().unwrap(),
            "bcvk: error: No kernel found in localhost/nokernel (...)",
            "{}",
            r.show()
        );
    });
    // The same failure while the container still runs: asked again, and the VM is used.
    each_shell(|f| {
        f.set("status-rcs", "126\n0\n");
        f.set("state-vm", "running\n");
        let r = f.run(&["ephemeral", "run-ssh", "--name", "vm", "img", "true"]);
        r.assert_code(0);
        let j = r.joined();
        assert!(
            j.iter().any(|c| c.ends_with("vm bcvk ssh true")),
            "{}",
            r.show()
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
        assert_eq!(r.calls.len(), 3, "{}", r.show());
    });
}
