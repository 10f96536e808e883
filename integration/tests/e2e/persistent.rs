//! Persistent VMs (`--persistent` with a volume at /cache): the guest's changes survive a
//! graceful stop and start, a crash (SIGKILL) for everything synced, and a new container on the
//! same volume, in another privilege mode too; one VM at a time; another image is refused.

use std::time::Duration;

use bcvk_integration::*;

use crate::R;

const NAME: &str = "bcvk-it-persistent";
const VOLUME: &str = "bcvk-it-persistent-state";

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
    let vm = Detached::start(
        NAME,
        &["-v", &cache, "--stop-timeout", "60"],
        &[&debian(), "--persistent", "--stop-timeout", "50"],
    )?;
    vm.wait_ready(Duration::from_secs(600))?;
    let r = vm.ssh(CHANGE);
    check!(r.code == 0 && r.stdout.trim() == "changed", "{}", r.show());
    // One state, one VM: a second container on the same volume is refused at once.
    let r = bcvk_oneshot(&["-v", &cache], &[&debian(), "--persistent", "--", "true"]);
    let last = r.stderr.lines().last().unwrap_or_default().to_string();
    check!(
        r.code == 73 && last.contains("in use by another VM"),
        "a second VM on the state: want exit 73: {}",
        r.show()
    );
    // Graceful stop, then start: everything is there.
    let r = podman(&["stop", "-t", "60", NAME]);
    check!(r.code == 0, "{}", r.show());
    let r = podman(&["start", NAME]);
    check!(r.code == 0, "{}", r.show());
    vm.wait_ready(Duration::from_secs(600))?;
    let r = vm.ssh(FIND);
    check!(
        r.code == 0 && r.stdout == "kept\npersisted\nran\n",
        "after stop and start: {}",
        r.show()
    );
    // A crash while the guest writes: what it synced survives, and the state boots again.
    let r = vm.ssh(
        "echo before-crash > /root/synced && sync && \
         (while :; do date >> /root/unsynced; done) >/dev/null 2>&1 & sleep 1; echo writing",
    );
    check!(r.code == 0, "{}", r.show());
    let r = podman(&["kill", "-s", "KILL", NAME]);
    check!(r.code == 0, "{}", r.show());
    let _ = podman(&["wait", NAME]);
    let r = podman(&["rm", "-f", NAME]);
    check!(r.code == 0, "{}", r.show());
    // A new container on the same volume, this time --privileged (the state serves every mode).
    let mut a = run_prefix(true);
    a.insert(1, "--rm".into());
    a.extend(["--privileged".into(), "-v".into(), cache.clone()]);
    a.push(bcvk_image());
    a.extend(
        [
            debian().as_str(),
            "--persistent",
            "--",
            "sh",
            "-c",
            &format!("{FIND} && cat /root/synced"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = podman(&refs);
    check!(
        r.code == 0 && r.stdout == "kept\npersisted\nran\nbefore-crash\n",
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
    let last = r.stderr.lines().last().unwrap_or_default().to_string();
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
    Ok(())
}
