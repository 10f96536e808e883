//! Persistent VMs (`--persistent` with a volume at /cache): the guest's changes survive a
//! graceful stop and start, a crash (SIGKILL) for everything synced, and a new container on the
//! same volume, in another privilege mode too; one VM at a time; another image is refused.

use bcvk_integration::*;

use crate::R;

const NAME: &str = "bcvk-it-persistent";
/// The state volume `bcvk vm run --name NAME` makes.
const VOLUME: &str = "bcvk-vm-bcvk-it-persistent";

struct Volume;

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", NAME]);
        let _ = podman(&["volume", "rm", "-f", VOLUME]);
    }
}

/// What the first boot changes in the guest: a file, a user, an enabled unit of its own.
const CHANGE: &str = "echo kept > /root/kept \
    && useradd --create-home persisted \
    && printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c \"echo ran > /run/persisted-unit\"\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/persisted.service \
    && systemctl enable persisted.service 2>/dev/null && sync && echo changed";

/// What every later boot must find.
const FIND: &str = "cat /root/kept && id -un persisted && cat /run/persisted-unit";

pub fn survives_stop_start_crash_and_new_container() -> R {
    let _ = podman(&["rm", "-f", "-t", "0", NAME]);
    let _ = podman(&["volume", "rm", "-f", VOLUME]);
    let _cleanup = Volume;
    let cache = format!("{VOLUME}:/cache");
    // The lifecycle through the host command, as a user runs it: `bcvk vm run` returns once
    // the VM answers SSH.
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-vm-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let bin = crate::host_cli::install(dir.path())?;
    let vm = |args: &[&str]| {
        let mut a = vec!["vm"];
        a.extend_from_slice(args);
        crate::host_cli::host_bcvk(&bin, &a)
    };
    // No error-level noise from podman on a normal run (a health check podman cannot run
    // without systemd logs one on every run, start and rm).
    let quiet = |what: &str, r: &Run| -> R {
        check!(
            !r.stderr.contains("level=error"),
            "bcvk vm {what}: podman's error noise: {}",
            r.show()
        );
        Ok(())
    };
    let r = vm(&["run", "--name", NAME, "--label", test_label(), &debian()]);
    check!(r.code == 0, "bcvk vm run: {}", r.show());
    quiet("run", &r)?;
    let r = vm(&["ssh", NAME, CHANGE]);
    check!(r.code == 0 && r.stdout.trim() == "changed", "{}", r.show());
    // One state, one VM: a second container on the same volume is refused at once.
    let r = bcvk_oneshot(&["-v", &cache], &[&debian(), "--persistent", "--", "true"]);
    let last = r.last_stderr_line().to_string();
    check!(
        r.code == 73 && last.contains("in use by another VM"),
        "a second VM on the state: want exit 73: {}",
        r.show()
    );
    let r = vm(&["list"]);
    let row = table_row(&r.stdout, NAME).unwrap_or_default();
    check!(
        r.code == 0 && row.contains(&debian().as_str()) && row.contains(&"running"),
        "bcvk vm list should show {NAME} running {}: {}",
        debian(),
        r.show()
    );
    // Graceful stop, then start: everything is there.
    let r = vm(&["stop", NAME]);
    check!(r.code == 0, "bcvk vm stop: {}", r.show());
    quiet("stop", &r)?;
    // A stopped VM is not "(starting)" in podman ps (a health check that never ran).
    let ps = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{NAME}$"),
        "--format",
        "{{.Status}}",
    ]);
    check!(
        ps.code == 0 && !ps.stdout.contains("starting"),
        "podman ps of the stopped VM: {}",
        ps.show()
    );
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", NAME]);
    check!(
        code.stdout.trim() == "0",
        "a graceful stop exits 0: {}",
        code.show()
    );
    let r = vm(&["start", NAME]);
    check!(r.code == 0, "bcvk vm start: {}", r.show());
    quiet("start", &r)?;
    let r = vm(&["ssh", NAME, FIND]);
    check!(
        r.code == 0 && r.stdout == "kept\npersisted\nran\n",
        "after stop and start: {}",
        r.show()
    );
    let vm_ssh = |shell: &str| vm(&["ssh", NAME, shell]);
    // A crash while the guest writes: what it synced survives, and the state boots again.
    let r = vm_ssh(
        "echo before-crash > /root/synced && sync; \
         (while :; do date >> /root/unsynced; done) </dev/null >/dev/null 2>&1 & sleep 1; echo writing",
    );
    check!(r.code == 0, "{}", r.show());
    let r = podman(&["kill", "-s", "KILL", NAME]);
    check!(r.code == 0, "{}", r.show());
    let _ = podman(&["wait", NAME]);
    let r = podman(&["rm", "-f", NAME]);
    check!(r.code == 0, "{}", r.show());
    // A new container on the same volume, this time --privileged (the state serves every mode)
    // and with a --bind share, as ephemeral runs have them.
    let share = tempfile::Builder::new()
        .prefix("bcvk-it-share-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    std::fs::write(share.path().join("hello"), "shared\n").map_err(|e| e.to_string())?;
    let share_vol = format!("{}:/mnt/share", share.path().display());
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.extend(["--privileged".into(), "-v".into(), cache.clone()]);
    a.extend(["-v".into(), share_vol]);
    a.push(bcvk_image());
    a.extend(
        [
            debian().as_str(),
            "--persistent",
            "--bind",
            "/mnt/share:work",
            "--",
            "sh",
            "-c",
            &format!("{FIND} && cat /root/synced /run/virtiofs-mnt-work/hello"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = podman(&refs);
    check!(
        r.code == 0 && r.stdout == "kept\npersisted\nran\nbefore-crash\nshared\n",
        "after a crash, in a new container: {}",
        r.show()
    );
    check!(
        r.stderr.contains("reusing the persistent state"),
        "{}",
        tail(&r.stderr, 20)
    );
    // Another image on this state is refused, naming both IDs and --reset.
    let r = bcvk_oneshot(&["-v", &cache], &[&layered(), "--persistent", "--", "true"]);
    let last = r.last_stderr_line().to_string();
    let id = |image: &str| {
        podman(&["image", "inspect", "--format", "{{.Id}}", image])
            .stdout
            .trim()
            .chars()
            .take(12)
            .collect::<String>()
    };
    let (old, new) = (id(&debian()), id(&layered()));
    check!(
        r.code == 64
            && last.starts_with("bcvk: error: ")
            && last.contains(&old)
            && last.contains(&new)
            && last.contains("--reset"),
        "another image: want exit 64 naming {old}, {new} and --reset: {}",
        r.show()
    );
    // --reset starts over from that image.
    let r = bcvk_oneshot(
        &["-v", &cache],
        &[
            &layered(),
            "--persistent",
            "--reset",
            "--",
            "sh",
            "-c",
            "test ! -e /root/kept && cat /run/bcvk-layered-marker",
        ],
    );
    check!(
        r.code == 0 && r.stdout.trim() == "layered-unit-ran",
        "--reset: {}",
        r.show()
    );
    // `bcvk vm rm` takes the state volume with it (its container is gone already).
    let r = vm(&["rm", "-f", NAME]);
    check!(r.code == 0, "bcvk vm rm: {}", r.show());
    let r = podman(&["volume", "exists", VOLUME]);
    check!(r.code != 0, "bcvk vm rm left the volume {VOLUME}");
    Ok(())
}
