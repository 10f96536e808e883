//! The man-page examples of upstream bcvk's `ephemeral` commands, run literally through the
//! host-side command (entrypoint/bcvk-host, installed the documented way) against real VMs.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bcvk_integration::*;

use crate::R;

/// Install the host command as the README says: `podman run --rm IMAGE install-host-cli`.
pub(crate) fn install(dir: &std::path::Path) -> Result<PathBuf, String> {
    let r = podman(&["run", "--rm", &bcvk_image(), "install-host-cli"]);
    if r.code != 0 || !r.stdout.starts_with("#!") {
        return Err(format!("install-host-cli: {}", r.show()));
    }
    let path = dir.join("bcvk");
    std::fs::write(&path, &r.stdout).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

pub(crate) fn host_bcvk(bin: &std::path::Path, args: &[&str]) -> Run {
    cmd(bin.to_str().unwrap(), args)
}

/// Wait until a VM started by the host command is ready (through the host command itself).
fn wait_ready(bin: &std::path::Path, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let r = host_bcvk(bin, &["ephemeral", "status", name, "--json"]);
        if r.stdout.contains("\"ready\"") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{name} not ready: {}", r.show()));
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// A host command started by the test: on any way out of the test it gets SIGTERM (on which
/// bcvk-host stops the VM it started) and is waited for.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = cmd("kill", &["-TERM", &self.0.id().to_string()]);
            let _ = self.0.wait();
        }
    }
}

/// Read a pipe to its end on a thread, so the child never blocks on a full pipe.
fn collect(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

pub fn man_page_examples() -> R {
    let dir = tempfile::Builder::new()
        .prefix("bcvk-it-host-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let bin = install(dir.path())?;
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).map_err(|e| e.to_string())?;
    let image = debian();
    // The man page's names, made this run's own: the machine may hold other VMs, even ones
    // named testvm, and this test checks and removes only what it created.
    let pid = std::process::id();
    let (testvm, devvm_name, bystander) = (
        format!("testvm-{pid}"),
        format!("devvm-{pid}"),
        format!("bcvk-it-bystander-{pid}"),
    );
    let (testvm, devvm_name, bystander) =
        (testvm.as_str(), devvm_name.as_str(), bystander.as_str());
    // run-ssh names its VM bcvk-RANDOM: this label tells ours from the others.
    let runssh_label = format!("bcvk.it-runssh={pid}");
    // Removed on every way out of this test, failed checks included.
    let _vms = [testvm, devvm_name, bystander].map(|n| Detached { name: n.into() });
    // A container that is not a bcvk VM: rm-all must leave it alone.
    let by = podman(&[
        "create",
        "--name",
        bystander,
        "--label",
        test_label(),
        &var("BCVK_BASE_IMAGE", "localhost/bcvk-base:trixie"),
        "true",
    ]);
    check!(by.code == 0, "{}", by.show());

    // bcvk ephemeral run -d --rm -K --name testvm IMAGE
    let r = host_bcvk(
        &bin,
        &[
            "ephemeral",
            "run",
            "-d",
            "--rm",
            "-K",
            "--name",
            testvm,
            &image,
        ],
    );
    check!(r.code == 0, "run -d: {}", r.show());
    // bcvk ephemeral run --bind /home/user/code:workspace --name devvm IMAGE (foreground)
    let code_bind = format!("{}:workspace", code.display());
    let mut devvm = std::process::Command::new(&bin)
        .args([
            "ephemeral",
            "run",
            "--bind",
            &code_bind,
            "--name",
            devvm_name,
            &image,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Reaped)
        .map_err(|e| e.to_string())?;
    // bcvk ephemeral run-ssh --memory 8G --vcpus 4 IMAGE, a session typed on its stdin.
    let mut runssh = std::process::Command::new(&bin)
        .args([
            "ephemeral",
            "run-ssh",
            "--label",
            &runssh_label,
            "--memory",
            "8G",
            "--vcpus",
            "4",
            &image,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let runssh_out = collect(runssh.stdout.take().unwrap());
    let runssh_err = collect(runssh.stderr.take().unwrap());
    let mut runssh = Reaped(runssh);
    runssh
        .0
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo session-nproc=$(nproc); exit 5\n")
        .map_err(|e| e.to_string())?;

    wait_ready(&bin, testvm)?;
    // bcvk ephemeral ssh testvm 'systemctl status', twice.
    for _ in 0..2 {
        let r = host_bcvk(&bin, &["ephemeral", "ssh", testvm, "systemctl status"]);
        check!(
            r.code == 0 && r.stdout.contains("State:"),
            "ssh testvm: {}",
            r.show()
        );
    }
    let ps = host_bcvk(&bin, &["ephemeral", "ps"]);
    check!(
        table_row(&ps.stdout, testvm).is_some() && !ps.stdout.contains(bystander),
        "ps: {}",
        ps.show()
    );
    let json = host_bcvk(&bin, &["ephemeral", "ps", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout)
        .map_err(|e| format!("ps --json: {e}: {}", json.show()))?;
    check!(
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == testvm
                && x["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("bcvk-test/debian")))),
        "ps --json: {v}"
    );

    wait_ready(&bin, devvm_name)?;
    let r = host_bcvk(
        &bin,
        &[
            "ephemeral",
            "ssh",
            devvm_name,
            "echo from-devvm > /run/virtiofs-mnt-workspace/proof",
        ],
    );
    check!(r.code == 0, "{}", r.show());
    let proof = std::fs::read_to_string(code.join("proof")).unwrap_or_default();
    check!(
        proof == "from-devvm\n",
        "bind not writable from the guest: {proof:?}"
    );

    let status = runssh.0.wait().map_err(|e| e.to_string())?;
    let stdout = runssh_out.join().unwrap_or_default();
    let stderr = runssh_err.join().unwrap_or_default();
    check!(
        status.code() == Some(5),
        "run-ssh must return the session's exit code 5: {status:?}\n{stdout}\n{stderr}"
    );
    check!(
        stdout.contains("session-nproc=4"),
        "run-ssh --vcpus 4: {stdout}"
    );
    // run-ssh removes its VM when the session ends: its container (bcvk-RANDOM), by its label.
    let left = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={runssh_label}"),
        "--format",
        "{{.Names}}",
    ]);
    check!(
        left.code == 0 && left.stdout.trim().is_empty(),
        "run-ssh VM left: {}",
        left.show()
    );

    // podman stop testvm: --rm removes it.
    let s = podman(&["stop", "-t", "60", testvm]);
    check!(s.code == 0, "{}", s.show());
    let t = Instant::now();
    while podman(&["container", "exists", testvm]).code == 0
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    check!(
        podman(&["container", "exists", testvm]).code != 0,
        "--rm did not remove testvm"
    );

    // bcvk ephemeral rm-all: refuses without a terminal, -f removes devvm and nothing else.
    let r = host_bcvk(&bin, &["ephemeral", "rm-all"]);
    check!(
        r.code == 64,
        "rm-all without -f and no terminal should refuse: {}",
        r.show()
    );
    // rm-all -f removes every bcvk VM on the machine: run it only when devvm is the last one,
    // never to remove VMs this test did not create.
    let others: Vec<String> = podman(&[
        "ps",
        "-a",
        "--filter",
        "label=bcvk.ephemeral=1",
        "--format",
        "{{.Names}}",
    ])
    .stdout
    .lines()
    .filter(|n| *n != devvm_name)
    .map(String::from)
    .collect();
    if others.is_empty() {
        let r = host_bcvk(&bin, &["ephemeral", "rm-all", "-f"]);
        check!(r.code == 0, "{}", r.show());
        check!(
            podman(&["container", "exists", devvm_name]).code != 0,
            "rm-all left devvm"
        );
        check!(
            podman(&["container", "exists", bystander]).code == 0,
            "rm-all removed a non-bcvk container"
        );
    } else {
        eprintln!("rm-all -f not run: other bcvk VMs are on this machine ({others:?})");
        let _ = podman(&["rm", "-f", "-t", "0", devvm_name]);
    }
    let _ = devvm.0.wait();
    Ok(())
}

/// `bcvk ephemeral run-ssh` of an image without a kernel: the supervisor's own line comes
/// last and its exit code (66) is kept, though the container is gone afterwards.
pub fn run_ssh_reports_the_supervisor_error() -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = install(dir.path())?;
    let name = format!("bcvk-e2e-nokernel-{}", std::process::id());
    let r = host_bcvk(
        &bin,
        &["ephemeral", "run-ssh", "--name", &name, &nokernel()],
    );
    crate::check!(r.code == 66, "want exit 66: {}", r.show());
    let last = r.last_stderr_line();
    crate::check!(
        last.starts_with("bcvk: error: ") && last.contains("No kernel found"),
        "the supervisor's line is not last: {}",
        r.show()
    );
    // The VM exits while the host command waits for it: none of podman's own errors
    // (runc's "exec failed ... setns" once leaked here).
    crate::check!(
        !r.stderr.lines().any(|l| l.starts_with("Error: ")),
        "a podman error leaked: {}",
        r.show()
    );
    let left = podman(&["container", "exists", &name]);
    crate::check!(left.code == 1, "container {name} left behind");
    Ok(())
}

/// `bcvk ephemeral run/run-ssh --name N` with N taken: exit 1 and one line saying what holds
/// the name, not podman's 125 and its message; the container is left alone.
pub fn name_in_use() -> R {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = install(dir.path())?;
    let name = format!("bcvk-e2e-taken-{}", std::process::id());
    let _gone = Detached { name: name.clone() };
    let c = podman(&[
        "create",
        "--name",
        &name,
        "--label",
        test_label(),
        &var("BCVK_BASE_IMAGE", "localhost/bcvk-base:trixie"),
        "true",
    ]);
    crate::check!(c.code == 0, "{}", c.show());
    let image = debian();
    for args in [
        ["run", "-d", "--name", &name, &image],
        ["run-ssh", "--memory=1G", "--name", &name, &image],
    ] {
        let verb = args[0];
        let r = host_bcvk(&bin, &[&["ephemeral"][..], &args[..]].concat());
        crate::check!(r.code == 1, "{verb}: want exit 1: {}", r.show());
        crate::check!(
            r.stderr.lines().count() == 1
                && r.stderr.starts_with("bcvk: error: ")
                && r.stderr
                    .contains("a container of that name exists (state: created)"),
            "{verb}: {}",
            r.show()
        );
    }
    let still = podman(&["container", "exists", &name]);
    crate::check!(still.code == 0, "container {name} was removed");
    Ok(())
}

/// The image holds what bcvk runs and not what it never runs.
pub fn image_carries_only_what_bcvk_runs() -> R {
    let list = podman(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &bcvk_image(),
        "-c",
        "ls /usr/bin /usr/sbin /usr/libexec /usr/share/qemu /usr/share/seabios /usr/share/OVMF \
            /usr/share/qemu-efi-aarch64; \
         ls -d /usr/share/ovmf /usr/share/AAVMF /usr/share/perl5 /usr/lib/apt /var/lib/dpkg/status \
            2>/dev/null; true",
    ]);
    crate::check!(list.code == 0, "{}", list.show());
    let have: std::collections::BTreeSet<&str> = list.stdout.lines().collect();
    for want in [
        "bcvk",
        "qemu-system-x86_64",
        "qemu-img",
        "virtiofsd",
        "ssh",
        "mkswap",
        "bios-256k.bin",
        "kvmvapic.bin",
        "linuxboot_dma.bin",
        "efi-virtio.rom",
        "OVMF_CODE_4M.fd",
        "OVMF_VARS_4M.fd",
        // The other architecture's guests: arm64 (an arm64 image carries qemu-system-x86_64).
        "qemu-system-aarch64",
        "QEMU_EFI.fd",
        // Image scanners and SBOM tools read the package database.
        "/var/lib/dpkg/status",
    ] {
        crate::check!(have.contains(want), "{want} is missing: {}", list.stdout);
    }
    for gone in [
        "qemu-system-i386",
        "qemu-system-x86_64-microvm",
        "qemu-io",
        "qemu-nbd",
        "qemu-storage-daemon",
        "qemu-pr-helper",
        "qemu-vmsr-helper",
        "bios-microvm.bin",
        "qboot.rom",
        "openbios-ppc",
        "slof.bin",
        "s390-ccw.img",
        "OVMF_CODE_4M.secboot.fd",
        "OVMF_CODE_4M.ms.fd",
        "OVMF_VARS_4M.ms.fd",
        "/usr/share/ovmf",
        "qemu-system-arm",
        "qemu-system-armhf",
        "/usr/share/AAVMF",
        "PkKek-1-snakeoil.key",
        "perl",
        "/usr/share/perl5",
        "apt-get",
        "dpkg-reconfigure",
        "/usr/lib/apt",
    ] {
        crate::check!(!have.contains(gone), "{gone} is still in the image");
    }
    Ok(())
}
