//! VM disk images (issue 13): a containerDisk from the store booted by UEFI with the user's
//! cloud-init, Ignition, a password and a share; a raw disk booted by BIOS with --persistent
//! (written in place, under a lock), then by UEFI thrown away (the file unchanged); and the
//! bad inputs, each one line, a documented code, nothing left behind.

use std::path::Path;
use std::time::Duration;

use bcvk_integration::*;

use crate::R;

/// A disk boot under TCG on a loaded 2-core machine: firmware, GRUB, cloud-init's stages.
const DISK_READY: Duration = Duration::from_secs(900);

fn workdir(prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn last_line(r: &Run) -> String {
    r.last_stderr_line().to_string()
}

/// A containerDisk (qcow2 under /disk/) told apart from a bootc image, booted by UEFI (its
/// ESP), first-boot configured by the user's cloud-init with bcvk's key, password and share
/// merged in, Ignition delivered over fw_cfg, ssh as root and as the default user, and a
/// graceful stop.
pub fn containerdisk_uefi_cloud_init_ignition() -> R {
    let dir = workdir("bcvk-it-cdisk-")?;
    let d = dir.path();
    write(
        &d.join("seed/user-data"),
        "#cloud-config\nwrite_files:\n- path: /root/from-user-data\n  content: theirs\nruncmd:\n- [touch, /root/user-runcmd]\n",
    )?;
    write(
        &d.join("ign.json"),
        r#"{"ignition": {"version": "3.4.0"}, "storage": {"files": []}}"#,
    )?;
    write(&d.join("share/hello"), "shared\n")?;
    let vol = format!("{}:/in:ro", d.display());
    let vm = Detached::start(
        "bcvk-it-containerdisk",
        &["-v", &vol],
        &[
            &containerdisk(),
            "--cloud-init",
            "/in/seed",
            "--ignition",
            "/in/ign.json",
            "--password",
            "pa ss: 'w#rd\"",
            "--ro-bind",
            "/in/share:work",
            "--hostname",
            "disk-vm",
        ],
    )?;
    vm.wait_ready(DISK_READY)?;
    let logs = podman(&["logs", &vm.name]);
    let all = format!("{}{}", logs.stdout, logs.stderr);
    check!(
        all.contains("a containerDisk: booting its disk image")
            && all.contains("firmware=\"uefi\""),
        "the containerDisk was not recognised or not booted by UEFI: {}",
        vm.logs()
    );
    // cloud-init finishes its stages after sshd answers: wait for it in the guest.
    let r = vm.ssh(
        "cloud-init status --wait >/dev/null 2>&1; \
         test -d /sys/firmware/efi && echo efi; \
         cat /root/from-user-data; echo; test -e /root/user-runcmd && echo runcmd; \
         hostname; \
         cat /run/virtiofs-mnt-work/hello; touch /run/virtiofs-mnt-work/x 2>/dev/null || echo read-only; \
         getent shadow debian | cut -d: -f2 | cut -c1; \
         modprobe qemu_fw_cfg 2>/dev/null; \
         cat /sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw > /tmp/ign.json; \
         python3 -c 'import json; c = json.load(open(\"/tmp/ign.json\")); u = [x for x in c[\"passwd\"][\"users\"] if x[\"name\"] == \"root\"][0]; print(\"ignition\", c[\"ignition\"][\"version\"], c[\"storage\"], len(u[\"sshAuthorizedKeys\"]))' 2>&1 \
           || grep -c sshAuthorizedKeys /tmp/ign.json",
    );
    check!(r.code == 0, "checks in the guest: {}", r.show());
    let want =
        "efi\ntheirs\nruncmd\ndisk-vm\nshared\nread-only\n$\nignition 3.4.0 {'files': []} 1\n";
    check!(
        r.stdout == want,
        "want {want:?}: {}\n{}",
        r.show(),
        vm.logs()
    );
    // bcvk's key is authorized for the image's default user too: bcvk ssh --as.
    let r = vm.bcvk(&["ssh", "--as", "debian", "id -un"]);
    check!(
        r.code == 0 && r.stdout.trim() == "debian",
        "bcvk ssh --as debian: {}",
        r.show()
    );
    let status = vm.bcvk(&["status", "--json"]);
    check!(
        status.stdout.contains(&containerdisk()),
        "status names the image: {}",
        status.show()
    );
    let r = podman(&["stop", "-t", "60", &vm.name]);
    check!(r.code == 0, "{}", r.show());
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &vm.name]);
    check!(
        code.stdout.trim() == "0",
        "a graceful stop exits 0: {}\n{}",
        code.show(),
        vm.logs()
    );
    Ok(())
}

/// The raw disk, copied: booted by SeaBIOS with --persistent (the guest's write lands in the
/// file; a second VM on it is refused while the first runs), then by UEFI thrown away (the
/// write is there, and the file is byte-identical afterwards).
pub fn raw_bios_persistent_then_uefi_throwaway() -> R {
    let dir = workdir("bcvk-it-rawdisk-")?;
    let raw = dir.path().join("d.raw");
    let r = cmd(
        "cp",
        &[
            "--sparse=always",
            &disk_dir().join("debian.raw").display().to_string(),
            &raw.display().to_string(),
        ],
    );
    check!(r.code == 0, "{}", r.show());
    let pristine = file_digest(&raw)?;
    let vol = format!("{}:/d", dir.path().display());
    let vm = Detached::start(
        "bcvk-it-rawdisk",
        &["-v", &vol],
        &[
            "--disk-image",
            "/d/d.raw",
            "--firmware",
            "bios",
            "--persistent",
        ],
    )?;
    vm.wait_ready(DISK_READY)?;
    let r =
        vm.ssh("test -d /sys/firmware/efi || echo bios; echo persisted > /root/persisted; sync");
    check!(r.code == 0 && r.stdout == "bios\n", "{}", r.show());
    // One writer per file, and no reader while it writes.
    for extra in [&["--persistent"][..], &[][..]] {
        let mut args = vec!["--disk-image", "/d/d.raw"];
        args.extend_from_slice(extra);
        args.extend(["--", "true"]);
        let r = bcvk_oneshot(&["-v", &vol], &args);
        check!(
            r.code == 73 && last_line(&r).contains("in use by another VM"),
            "a second VM on a disk written by --persistent ({extra:?}): want 73: {}",
            r.show()
        );
    }
    let r = podman(&["stop", "-t", "60", &vm.name]);
    check!(r.code == 0, "{}", r.show());
    drop(vm);
    let written = file_digest(&raw)?;
    check!(
        written != pristine,
        "--persistent left the disk image unchanged"
    );
    let r = bcvk_oneshot(
        &["-v", &vol],
        &[
            "--disk-image",
            "/d/d.raw",
            "--",
            "sh",
            "-c",
            "test -d /sys/firmware/efi && cat /root/persisted && echo gone > /root/persisted && sync",
        ],
    );
    check!(
        r.code == 0 && r.stdout == "persisted\n",
        "the throwaway UEFI boot: {}",
        r.show()
    );
    check!(
        file_digest(&raw)? == written,
        "a throwaway run changed the disk image"
    );
    let left = dir_entries(dir.path())?;
    check!(
        left == [raw.clone()],
        "left behind next to the disk: {left:?}"
    );
    Ok(())
}

/// Bad disk inputs: one line naming the problem and the fix, the documented code, the files
/// unchanged, nothing left (the containers are --rm; a refused --persistent leaves its
/// volume empty).
pub fn bad_inputs() -> R {
    let dir = workdir("bcvk-it-baddisk-")?;
    let d = dir.path();
    for f in ["truncated.qcow2", "garbage.qcow2", "nobootloader.raw"] {
        let r = cmd(
            "cp",
            &[
                &disk_dir().join(f).display().to_string(),
                &d.display().to_string(),
            ],
        );
        check!(r.code == 0, "{}", r.show());
    }
    truncated_raw(&disk_dir().join("debian.raw"), &d.join("truncated.raw"))?;
    write(&d.join("seed/meta-data"), "instance-id: x\n")?;
    write(&d.join("bad.ign"), "variant: fcos\nversion: 1.5.0\n")?;
    let before: Vec<(String, String)> = [
        "truncated.qcow2",
        "garbage.qcow2",
        "nobootloader.raw",
        "truncated.raw",
    ]
    .iter()
    .map(|f| Ok((f.to_string(), file_digest(&d.join(f))?)))
    .collect::<Result<_, String>>()?;
    let vol = format!("{}:/d:ro", d.display());
    let state = "bcvk-it-baddisk-state";
    let _ = podman(&["volume", "rm", "-f", state]);
    let state_vol = format!("{state}:/cache");
    let cdisk = containerdisk();
    let two = containerdisk_two();
    let deb = debian();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--disk-image", "/d/truncated.qcow2"],
            65,
            "corrupt or truncated",
        ),
        (
            vec!["--disk-image", "/d/garbage.qcow2"],
            65,
            "corrupt or truncated",
        ),
        // Cut to 60 %: its GPT's backup header and root partition end past the file.
        (vec!["--disk-image", "/d/truncated.raw"], 65, "truncated: "),
        (
            vec!["--disk-image", "/d/nobootloader.raw"],
            66,
            "nothing to boot",
        ),
        // Forced, the firmware finds nothing either: no boot code for SeaBIOS (refused before
        // it starts), OVMF starts its shell (seen on the console).
        (
            vec!["--disk-image", "/d/nobootloader.raw", "--firmware", "bios"],
            66,
            "no boot code in its MBR",
        ),
        (
            vec!["--disk-image", "/d/nobootloader.raw", "--firmware", "uefi"],
            66,
            "uefi firmware found nothing to boot",
        ),
        (
            vec!["--disk-image", "/d/none.qcow2"],
            66,
            "no such file in the container",
        ),
        (
            vec![&two],
            65,
            "holds 2 disk images (/disk/a.qcow2, /disk/b.raw)",
        ),
        (vec![&cdisk, "--persistent"], 64, "drop --persistent"),
        (
            vec![&cdisk, "--cloud-init", "/d/seed"],
            64,
            "has no user-data",
        ),
        (
            vec![&cdisk, "--ignition", "/d/bad.ign"],
            64,
            "not valid JSON",
        ),
        (vec![&cdisk, "--karg", "quiet"], 64, "drop --karg"),
        (
            vec![&deb, "--password", "x"],
            64,
            "--password is set through cloud-init",
        ),
        (
            vec!["--disk-image", "/d/garbage.qcow2", &deb],
            64,
            "cannot be used with",
        ),
    ];
    let _cleanup = scopeguard(state);
    for (args, code, says) in cases {
        let mut a = args.clone();
        a.extend(["--", "true"]);
        let r = bcvk_oneshot(&["-v", &vol, "-v", &state_vol], &a);
        let last = last_line(&r);
        check!(
            r.code == code && last.contains(says) && last.starts_with("bcvk: error:")
                || (code == 64 && r.code == 64 && r.stderr.contains(says)),
            "{args:?}: want exit {code} and {says:?} on the last line: {}",
            r.show()
        );
    }
    for (f, digest) in before {
        check!(file_digest(&d.join(&f))? == digest, "{f} changed");
    }
    let mount = podman(&["volume", "inspect", "--format", "{{.Mountpoint}}", state]);
    let left = dir_entries(Path::new(mount.stdout.trim()))?;
    check!(
        left.is_empty(),
        "a refused --persistent left {left:?} in its volume"
    );
    Ok(())
}

/// A copy of the raw disk `from` cut to 60 % of its length, as a copy that stopped: its
/// first MiB (the partition table) copied, the rest left sparse, which is all a check before
/// the boot reads.
fn truncated_raw(from: &Path, to: &Path) -> R {
    use std::io::Read;
    let len = std::fs::metadata(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .len();
    let mut head = Vec::new();
    std::fs::File::open(from)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut head))
        .map_err(|e| format!("{}: {e}", from.display()))?;
    std::fs::write(to, &head).map_err(|e| format!("{}: {e}", to.display()))?;
    std::fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| f.set_len(len * 6 / 10))
        .map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(())
}

struct VolumeGuard(&'static str);

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        let _ = podman(&["volume", "rm", "-f", self.0]);
    }
}

fn scopeguard(volume: &'static str) -> VolumeGuard {
    VolumeGuard(volume)
}
