//! `bcvk to-disk SOURCE_IMAGE TARGET_DISK`: install a bootc image to a disk image file.
//!
//! The image is its own installer, as with upstream bcvk: an ephemeral VM of it boots with
//! the store shared read-only (`--bind-storage-ro`) and the target attached as virtio-blk
//! serial `output`, and runs the image's own `bootc install to-disk` onto it, the source
//! being `containers-storage:IMAGE` read through an additional image store over the share
//! (the guest's own store is a tmpfs; nothing is written to the host's). The VM is a plain
//! `bcvk run` (its `RunArgs` built by clap from an argv, then [`crate::run::run`]).
//!
//! Everything that can be checked is checked before any VM: the source resolves and carries
//! `/usr/bin/bootc`, the target is new (or `--force`). On any failure the target is
//! removed: a half-written disk never looks like a good one. bootc's own last error line
//! comes back from the guest over a virtio serial port.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::cli::{Cli, Command, ToDiskArgs};
use crate::config::DiskFormat;
use crate::exit::Exit;
use crate::run::RunError;
use crate::spawn::SpawnError;
use crate::store::{self, ResolvedImage};

/// The target's virtio-blk serial: the guest sees /dev/disk/by-id/virtio-output.
pub const DISK_NAME: &str = "output";
/// The guest port bootc's last error line is written to.
pub const ERROR_PORT: &str = "org.bcvk.to-disk.error";
/// Where the guest finds the host store (`--bind-storage-ro`).
pub const GUEST_STORE: &str = "/run/virtiofs-mnt-hoststorage";
/// The disk's size without `--disk-size`: sparse, so only what bootc writes takes room.
pub const DEFAULT_DISK_SIZE: u64 = 10 << 30;
/// Where the error port's file lives in the container.
const ERROR_DIR: &str = "/run/bcvk-to-disk";

#[derive(Debug, thiserror::Error)]
pub enum ToDiskError {
    #[error("{image} is not a bootc image: it has no /usr/bin/bootc, which installs it; give a bootc image (one built FROM a bootc base image)")]
    NotBootc { image: String },
    #[error("the target {} exists: give --force to overwrite it, or another path", .0.display())]
    TargetExists(PathBuf),
    #[error("the target's directory {} does not exist: create it, or bring it in with podman -v DIR:/out", .0.display())]
    TargetDir(PathBuf),
    #[error("cannot create the target {}: {source}; make its directory writable (podman -v DIR:/out, not :ro)", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the qcow2 target {}: {source}", .path.display())]
    CreateQcow2 { path: PathBuf, source: SpawnError },
    #[error("cannot read {image} in the store ({source}): the store is unreadable or corrupt")]
    ReadImage {
        image: String,
        source: rustix::io::Errno,
    },
    #[error("the installer VM's options were refused: {0}")]
    Options(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("bootc install to-disk failed (exit {code}): {line}")]
    InstallFailed { code: i32, line: String },
}

impl ToDiskError {
    /// The documented exit code (see `exit`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ToDiskError::NotBootc { .. } => Exit::NotFound.code(),
            ToDiskError::TargetExists(_)
            | ToDiskError::TargetDir(_)
            | ToDiskError::Create { .. } => Exit::Usage.code(),
            ToDiskError::ReadImage { .. } => Exit::StoreCorrupt.code(),
            ToDiskError::CreateQcow2 { .. } | ToDiskError::Options(_) => Exit::Internal.code(),
            ToDiskError::Run(e) => e.exit_code(),
            ToDiskError::InstallFailed { .. } => Exit::InstallFailed.code(),
        }
    }
}

/// What `to-disk` does, decided from the options and the image before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDiskPlan {
    /// The image's name in the store (what the installed system tracks, as upstream's).
    pub image: String,
    pub target: PathBuf,
    pub format: DiskFormat,
    pub size: u64,
    /// bootc's own options (after `bootc install to-disk`).
    pub bootc_options: Vec<String>,
}

/// Plan the install: pure. `has_bootupd`: the image carries /usr/bin/bootupctl; bootc's
/// ostree backend cannot install a bootloader without it, so without it the composefs
/// backend is chosen (its systemd-boot needs no bootupd).
pub fn plan(args: &ToDiskArgs, image: &str, target: PathBuf, has_bootupd: bool) -> ToDiskPlan {
    let mut o: Vec<String> = vec![
        "--generic-image".into(),
        "--skip-fetch-check".into(),
        "--source-imgref".into(),
        format!("containers-storage:{image}"),
    ];
    if let Some(fs) = &args.filesystem {
        o.extend(["--filesystem".into(), fs.clone()]);
    }
    if let Some(bytes) = args.root_size {
        // bootc's --root-size takes M, G or T; whole MiB, rounded up.
        o.extend([
            "--root-size".into(),
            format!("{}M", bytes.div_ceil(1 << 20)),
        ]);
    }
    o.extend(args.kargs.iter().map(|k| format!("--karg={k}")));
    if args.composefs_backend || !has_bootupd {
        o.push("--composefs-backend".into());
    }
    if let Some(b) = &args.bootloader {
        o.extend(["--bootloader".into(), b.clone()]);
    }
    if args.allow_missing_fsverity {
        o.push("--allow-missing-verity".into());
    }
    ToDiskPlan {
        image: image.to_string(),
        target,
        format: args.format,
        size: args.disk_size.unwrap_or(DEFAULT_DISK_SIZE),
        bootc_options: o,
    }
}

/// Quote one word for bash.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=/.,:@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The guest's script (bash): the host store as an additional image store of a tmpfs
/// store, then bootc's install, its stderr also kept so that its last error line can be
/// sent back over [`ERROR_PORT`].
pub fn guest_script(plan: &ToDiskPlan) -> String {
    let device = format!("/dev/disk/by-id/virtio-{DISK_NAME}");
    let mut bootc = vec!["bootc", "install", "to-disk"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    bootc.extend(plan.bootc_options.iter().cloned());
    bootc.push(device.clone());
    let bootc: Vec<String> = bootc.iter().map(|w| quote(w)).collect();
    format!(
        r#"set -u
port=/dev/virtio-ports/{ERROR_PORT}
fail() {{ echo "bcvk to-disk: $1" >&2; printf '%s\n' "$1" > "$port"; exit 1; }}
mountpoint -q {GUEST_STORE} || fail "the host store is not mounted at {GUEST_STORE}"
mkdir -p /var/lib/containers /etc/containers && mount -t tmpfs tmpfs /var/lib/containers \
  || fail "cannot mount a tmpfs on /var/lib/containers"
cat > /etc/containers/storage.conf <<'EOF' || fail "cannot write /etc/containers/storage.conf"
[storage]
driver = "overlay"
graphroot = "/var/lib/containers/storage"
runroot = "/run/containers/storage"
[storage.options]
additionalimagestores = ["{GUEST_STORE}"]
EOF
test -b {device} || fail "the target disk {device} is missing"
printf '%s\n' {shown}
# bootc's stderr shown and kept (pipefail: the pipe's status is bootc's, tee's is 0).
set -o pipefail
{{ {cmd} 2>&1 1>&3 3>&- | tee /run/bcvk-bootc.err >&2 3>&-; }} 3>&1
rc=$?
if [ "$rc" -ne 0 ]; then
  line=$(grep -v '^[[:space:]]*$' /run/bcvk-bootc.err | tail -n 1)
  printf '%s\n' "${{line:-bootc exited with $rc and printed no error}}" > "$port"
fi
exit "$rc"
"#,
        cmd = bootc.join(" "),
        shown = quote(&format!("bcvk to-disk: {}", bootc.join(" ")))
    )
}

/// The `bcvk run` argv of the installer VM (parsed by clap into its `RunArgs`).
pub fn run_argv(args: &ToDiskArgs, plan: &ToDiskPlan, error_file: &Path) -> Vec<OsString> {
    let fmt = match plan.format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    let mut a: Vec<OsString> = vec!["bcvk".into(), "run".into(), plan.image.clone().into()];
    a.push("--bind-storage-ro".into());
    let mut disk = OsString::from("--mount-disk-file=");
    disk.push(&plan.target);
    disk.push(format!(":{DISK_NAME}:{fmt}"));
    a.push(disk);
    let mut port = OsString::from(format!("--virtio-serial-out={ERROR_PORT}:"));
    port.push(error_file);
    a.push(port);
    if let Some(m) = args.size.memory {
        a.push(format!("--memory={m}M").into());
    }
    if let Some(v) = args.size.vcpus {
        a.push(format!("--vcpus={v}").into());
    }
    if let Some(t) = args.size.itype {
        a.push(format!("--itype={}", t.name).into());
    }
    if args.console {
        a.push("--console-stderr".into());
    }
    a.extend(["--".into(), "bash".into(), "-c".into()]);
    a.push(guest_script(plan).into());
    a
}

/// Whether the image carries `rel` (a path without symlinks on the way): the topmost layer
/// that has the name decides (a whiteout, a 0:0 character device, hides it). A symlink at
/// `rel` itself counts as present (ELOOP from the last component).
pub fn image_has(image: &ResolvedImage, rel: &str) -> Result<bool, ToDiskError> {
    let read = |source| ToDiskError::ReadImage {
        image: image.name.clone(),
        source,
    };
    for layer in &image.layers {
        let dir = match rustix::fs::open(
            &layer.diff_dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(e) => return Err(read(e)),
        };
        match crate::beneath::open_beneath(&dir, Path::new(rel), OFlags::PATH, Mode::empty()) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).map_err(read)?;
                let whiteout = rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::CharacterDevice
                    && st.st_rdev == 0;
                return Ok(!whiteout);
            }
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => continue,
            Err(e) if crate::beneath::is_link_refusal(e) => return Ok(true),
            Err(e) => return Err(read(e)),
        }
    }
    Ok(false)
}

/// Create the target: a sparse raw file, or an empty qcow2 of that size.
fn create_target(plan: &ToDiskPlan) -> Result<(), ToDiskError> {
    let path = &plan.target;
    match plan.format {
        DiskFormat::Raw => {
            let f = std::fs::File::create(path).map_err(|source| ToDiskError::Create {
                path: path.clone(),
                source,
            })?;
            f.set_len(plan.size).map_err(|source| ToDiskError::Create {
                path: path.clone(),
                source,
            })
        }
        DiskFormat::Qcow2 => {
            // qemu-img refuses to overwrite nothing: a --force'd old file goes first.
            let _ = std::fs::remove_file(path);
            let size = plan.size.to_string();
            let argv = [
                OsString::from("create"),
                "-q".into(),
                "-f".into(),
                "qcow2".into(),
                path.clone().into(),
                size.into(),
            ];
            crate::spawn::run_helper("qemu-img", &argv)
                .map(|_| ())
                .map_err(|source| ToDiskError::CreateQcow2 {
                    path: path.clone(),
                    source,
                })
        }
    }
}

/// Resolve the source and check it, check the target: everything before any VM.
fn validate(args: &ToDiskArgs) -> Result<ToDiskPlan, ToDiskError> {
    let explicit = std::env::var_os("BCVK_STORAGE").map(PathBuf::from);
    let root = store::locate_store(explicit.as_deref())
        .map_err(|e| RunError::from(crate::root::RootError::from(e)))?;
    let image = store::Store::open(&root)
        .and_then(|s| s.resolve(&args.source_image))
        .map_err(|e| RunError::from(crate::root::RootError::from(e)))?;
    if !image_has(&image, "usr/bin/bootc")? {
        return Err(ToDiskError::NotBootc {
            image: image.name.clone(),
        });
    }
    let has_bootupd = image_has(&image, "usr/bin/bootupctl")?;
    let target = std::path::absolute(&args.target_disk).map_err(|source| ToDiskError::Create {
        path: args.target_disk.clone(),
        source,
    })?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(ToDiskError::TargetDir(dir.to_path_buf()));
    }
    if target.symlink_metadata().is_ok() && !args.force {
        return Err(ToDiskError::TargetExists(target));
    }
    Ok(plan(args, &image.name, target, has_bootupd))
}

/// Run the installer VM: Ok when bootc succeeded.
fn install(args: &ToDiskArgs, plan: &ToDiskPlan) -> Result<(), ToDiskError> {
    std::fs::create_dir_all(ERROR_DIR).map_err(|e| ToDiskError::Options(e.to_string()))?;
    let error_file = Path::new(ERROR_DIR).join("bootc-error");
    let _ = std::fs::remove_file(&error_file);
    let argv = run_argv(args, plan, &error_file);
    let run_args = match crate::usage::parse(argv) {
        Ok(Cli {
            command: Command::Run(r),
            ..
        }) => *r,
        Ok(_) => return Err(ToDiskError::Options("not a run".into())),
        Err(crate::usage::Refusal::Usage(line)) => return Err(ToDiskError::Options(line)),
        Err(crate::usage::Refusal::Display(e)) => return Err(ToDiskError::Options(e.to_string())),
    };
    let code = crate::run::run(run_args)?;
    if code == 0 {
        return Ok(());
    }
    let line = std::fs::read_to_string(&error_file)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| match code {
            130 | 143 => "interrupted".to_string(),
            _ => "it printed no error line (see its output above)".to_string(),
        });
    Err(ToDiskError::InstallFailed { code, line })
}

/// `bcvk to-disk`: the exit code, errors printed as one `bcvk: error:` line.
pub fn to_disk_subcommand(args: &ToDiskArgs) -> i32 {
    let started = std::time::Instant::now();
    let plan = match validate(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bcvk: error: {e}");
            return e.exit_code();
        }
    };
    tracing::info!(
        image = %plan.image,
        target = %plan.target.display(),
        format = ?plan.format,
        size_mib = plan.size >> 20,
        "installing with the image's own bootc install to-disk"
    );
    let result = create_target(&plan).and_then(|()| install(args, &plan));
    match result {
        Ok(()) => {
            tracing::info!(
                target = %plan.target.display(),
                secs = started.elapsed().as_secs(),
                "installed: boot it with bcvk --disk-image"
            );
            0
        }
        Err(e) => {
            if let ToDiskError::Run(r) = &e {
                let tail = r.console_tail();
                if !tail.is_empty() {
                    eprintln!("--- last {} lines of the guest console ---", tail.len());
                    tail.iter().for_each(|l| eprintln!("{l}"));
                    eprintln!("---");
                }
            }
            let removed = match std::fs::remove_file(&plan.target) {
                Ok(()) => format!("; the target {} was removed", plan.target.display()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(err) => format!(
                    "; the target {} could not be removed ({err}): do not use it",
                    plan.target.display()
                ),
            };
            eprintln!("bcvk: error: {e}{removed}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Driver, Layer};

    fn args(extra: &[&str]) -> ToDiskArgs {
        let mut argv = vec!["bcvk", "to-disk"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["localhost/img", "/out/disk.raw"]);
        match crate::usage::parse(argv.iter().map(OsString::from).collect()) {
            Ok(Cli {
                command: Command::ToDisk(a),
                ..
            }) => *a,
            Ok(other) => panic!("not to-disk: {other:?}"),
            Err(crate::usage::Refusal::Usage(l)) => panic!("{l}"),
            Err(crate::usage::Refusal::Display(e)) => panic!("{e}"),
        }
    }

    fn refusal(extra: &[&str]) -> String {
        let mut argv = vec!["bcvk", "to-disk"];
        argv.extend_from_slice(extra);
        match crate::usage::parse(argv.iter().map(OsString::from).collect()) {
            Err(crate::usage::Refusal::Usage(l)) => l,
            other => panic!("{extra:?} not refused: {other:?}"),
        }
    }

    #[test]
    fn options_have_upstream_names_and_are_validated() {
        let a = args(&[
            "--filesystem=xfs",
            "--disk-size=20G",
            "--root-size=1G",
            "--format=qcow2",
            "--karg=console=ttyS0",
            "--bootloader=systemd",
            "--memory=2G",
            "--vcpus=2",
            "--itype=u1.small",
            "--console",
            "--force",
        ]);
        assert_eq!(a.filesystem.as_deref(), Some("xfs"));
        assert_eq!(a.disk_size, Some(20 << 30));
        assert_eq!(a.root_size, Some(1 << 30));
        assert_eq!(a.format, DiskFormat::Qcow2);
        assert_eq!(a.kargs, ["console=ttyS0"]);
        assert_eq!((a.size.memory, a.size.vcpus), (Some(2048), Some(2)));
        assert!(a.console && a.force && !a.composefs_backend);
        let d = args(&[]);
        assert_eq!(
            (d.format, d.disk_size, d.force),
            (DiskFormat::Raw, None, false)
        );
        assert!(refusal(&["--filesystem=zfs", "i", "t"]).contains("--filesystem"));
        assert!(refusal(&["--disk-size=4X", "i", "t"]).contains("--disk-size"));
        assert!(refusal(&["--format=vmdk", "i", "t"]).contains("--format"));
        assert!(refusal(&["--bootloader=lilo", "i", "t"]).contains("--bootloader"));
        assert!(refusal(&["localhost/img"]).contains("TARGET_DISK"));
    }

    #[test]
    fn plan_passes_bootc_its_options_and_picks_composefs_without_bootupd() {
        let a = args(&["--root-size=1500M", "--karg=quiet", "--filesystem=ext4"]);
        let p = plan(&a, "localhost/img:latest", "/out/disk.raw".into(), false);
        assert_eq!(
            p.bootc_options,
            [
                "--generic-image",
                "--skip-fetch-check",
                "--source-imgref",
                "containers-storage:localhost/img:latest",
                "--filesystem",
                "ext4",
                "--root-size",
                "1500M",
                "--karg=quiet",
                "--composefs-backend",
            ]
        );
        assert_eq!(p.size, DEFAULT_DISK_SIZE);
        // With bootupd, bootc's ostree backend unless asked otherwise.
        let p = plan(&args(&[]), "i", "/t".into(), true);
        assert!(!p.bootc_options.contains(&"--composefs-backend".to_string()));
        let a = args(&[
            "--composefs-backend",
            "--bootloader=grub",
            "--allow-missing-fsverity",
        ]);
        let p = plan(&a, "i", "/t".into(), true);
        assert!(p.bootc_options.ends_with(&[
            "--composefs-backend".to_string(),
            "--bootloader".to_string(),
            "grub".to_string(),
            "--allow-missing-verity".to_string()
        ]));
    }

    #[test]
    fn the_installer_vm_is_a_bcvk_run_with_the_store_the_disk_and_the_script() {
        let a = args(&[
            "--format=qcow2",
            "--memory=3G",
            "--console",
            "--itype=u1.medium",
        ]);
        let p = plan(&a, "localhost/img:latest", "/out/disk.qcow2".into(), false);
        let argv = run_argv(&a, &p, Path::new("/run/bcvk-to-disk/bootc-error"));
        let r = match crate::usage::parse(argv) {
            Ok(Cli {
                command: Command::Run(r),
                ..
            }) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.image.as_deref(), Some("localhost/img:latest"));
        assert!(r.bind_storage_ro && r.console_stderr && !r.console);
        assert_eq!(r.size.memory, Some(3072));
        assert_eq!(r.size.itype.map(|t| t.name), Some("u1.medium"));
        let disk = &r.mount_disk_file[0];
        assert_eq!(disk.path, Path::new("/out/disk.qcow2"));
        assert_eq!(disk.name, DISK_NAME);
        assert_eq!(disk.format, crate::config::DiskFormat::Qcow2);
        assert_eq!(r.virtio_serial_out[0].name, ERROR_PORT);
        assert_eq!(r.command[..2], ["bash", "-c"]);
        assert_eq!(r.command[2], guest_script(&p));
    }

    #[test]
    fn the_guest_script_installs_from_the_shared_store_and_reports_the_last_error() {
        let a = args(&["--karg=a=\"b c\""]);
        let p = plan(&a, "localhost/img:latest", "/t".into(), false);
        let s = guest_script(&p);
        assert!(s.contains(&format!("additionalimagestores = [\"{GUEST_STORE}\"]")));
        assert!(
            s.contains(
                "bootc install to-disk --generic-image --skip-fetch-check --source-imgref \
             containers-storage:localhost/img:latest '--karg=a=\"b c\"' \
             --composefs-backend /dev/disk/by-id/virtio-output 2>&1 1>&3 3>&- | tee"
            ),
            "{s}"
        );
        assert!(s.contains(&format!("port=/dev/virtio-ports/{ERROR_PORT}")));
        assert!(s.contains("tail -n 1)\n"), "{s}");
        assert!(
            s.contains("printf '%s\\n' 'bcvk to-disk: bootc install"),
            "{s}"
        );
    }

    fn image(layers: &[&Path]) -> ResolvedImage {
        ResolvedImage {
            id: "0".repeat(64),
            name: "localhost/img:latest".into(),
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, d)| Layer {
                    id: format!("{i:064}"),
                    diff_dir: d.to_path_buf(),
                    short_link: None,
                })
                .collect(),
            driver: Driver::Overlay,
            userxattr: false,
        }
    }

    #[test]
    fn image_has_looks_through_the_layers_top_first() {
        let t = tempfile::tempdir().unwrap();
        let (top, base) = (t.path().join("top"), t.path().join("base"));
        std::fs::create_dir_all(top.join("usr/bin")).unwrap();
        std::fs::create_dir_all(base.join("usr/bin")).unwrap();
        std::fs::write(base.join("usr/bin/bootc"), "").unwrap();
        std::os::unix::fs::symlink("bootc", top.join("usr/bin/bootupctl")).unwrap();
        let img = image(&[&top, &base]);
        assert!(image_has(&img, "usr/bin/bootc").unwrap());
        assert!(image_has(&img, "usr/bin/bootupctl").unwrap());
        assert!(!image_has(&img, "usr/bin/podman").unwrap());
        assert!(!image_has(&image(&[&top]), "usr/bin/bootc").unwrap());
        // A file where a directory is expected hides nothing and has nothing.
        std::fs::write(top.join("usr/lib"), "").unwrap();
        assert!(!image_has(&img, "usr/lib/bootc").unwrap());
    }

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(ToDiskError::NotBootc { image: "i".into() }.exit_code(), 66);
        assert_eq!(ToDiskError::TargetExists("/t".into()).exit_code(), 64);
        let failed = ToDiskError::InstallFailed {
            code: 1,
            line: "error: too small".into(),
        };
        assert_eq!(failed.exit_code(), 78);
        assert_eq!(
            failed.to_string(),
            "bootc install to-disk failed (exit 1): error: too small"
        );
    }
}
