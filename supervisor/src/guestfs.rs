//! Guest configuration written into the throwaway layer of the root file system, before boot.
//!
//! bcvk owns the guest's writable layer, so mount units for shares, the swap unit and the
//! user's `--systemd-units` are plain files put under /etc/systemd/system there. Unlike
//! `systemd.extra-unit.*` credentials (systemd >= 256) or `fstab.extra` (>= 254), this works
//! with any systemd, and nothing of it outlives the run. (The SSH key still travels as a
//! credential: that is the interface other tools and images expect.)

use std::path::{Path, PathBuf};

use crate::beneath;
use crate::config::{BindSpec, BindTarget, DiskFileSpec, DiskFormat, PortSpec};
use crate::qemu::DiskSpec;
use crate::spawn;

/// Size of a `--mount-disk-file` image created because it did not exist.
pub const NEW_DISK_SIZE: u64 = 10 << 30;
/// Where units go in the guest's root.
pub const UNIT_DIR: &str = "etc/systemd/system";

#[derive(Debug, thiserror::Error)]
pub enum GuestFsError {
    #[error("{flag} {path}: no such directory in the container: bring it in with podman -v HOSTDIR:{path}")]
    MissingSource { flag: &'static str, path: PathBuf },
    #[error("--systemd-units {dir}: {why}")]
    Units { dir: PathBuf, why: String },
    #[error("two shares use the name '{0}': give them distinct names (SRC:NAME)")]
    DuplicateShare(String),
    #[error("--port {0}: the container port {0} is taken by bcvk's own SSH forwards (SSH and its readiness probe): use another")]
    PortTaken(u16),
    #[error("cannot write {path} into the guest's root file system: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the disk image {path}: {why}")]
    Disk { path: PathBuf, why: String },
}

impl GuestFsError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            GuestFsError::MissingSource { .. }
            | GuestFsError::Units { .. }
            | GuestFsError::DuplicateShare(_)
            | GuestFsError::PortTaken(_) => Exit::Usage,
            // beneath.rs refuses a symlink of the image on the way as InvalidData: the image's
            // layout, not bcvk's fault.
            GuestFsError::Write { source, .. }
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                Exit::StoreCorrupt
            }
            GuestFsError::Write { .. } | GuestFsError::Disk { .. } => Exit::Internal,
        }
    }
}

/// What the user asked for that needs guest-side configuration.
#[derive(Debug, Clone, Default)]
pub struct GuestConfig {
    pub binds: Vec<BindSpec>,
    /// The store root to share read-only at /run/virtiofs-mnt-hoststorage.
    pub bind_storage: Option<PathBuf>,
    pub systemd_units: Option<PathBuf>,
    pub swap: bool,
    pub ports: Vec<PortSpec>,
    pub ssh_port: u16,
    /// The readiness probe's forward to the guest's network.
    pub probe_port: u16,
}

/// One extra virtiofs share and where the guest mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub source: PathBuf,
    pub readonly: bool,
    pub guest_path: PathBuf,
}

/// A file (or symlink) to create under the guest root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { path: PathBuf, contents: Vec<u8> },
    Symlink { path: PathBuf, target: PathBuf },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestPlan {
    pub shares: Vec<Share>,
    pub entries: Vec<Entry>,
}

/// systemd's path escaping (`systemd-escape --path`): the unit name of a mount point.
pub fn escape_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

fn mount_unit(share: &Share) -> (String, String) {
    let name = format!("{}.mount", escape_path(&share.guest_path));
    let opts = if share.readonly { "ro" } else { "rw" };
    let body = format!(
        "# Written by bcvk: the virtiofs share '{tag}'.\n[Unit]\nDescription=bcvk share {tag}\n\n[Mount]\nWhat={tag}\nWhere={path}\nType=virtiofs\nOptions={opts}\n",
        tag = share.tag,
        path = share.guest_path.display(),
    );
    (name, body)
}

/// The targets a unit's [Install] section asks to be wanted or required by.
pub fn install_targets(unit: &str) -> Vec<(String, &'static str)> {
    let mut in_install = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let kind = match key.trim() {
                "WantedBy" => ".wants",
                "RequiredBy" => ".requires",
                _ => continue,
            };
            out.extend(value.split_whitespace().map(|t| (t.to_string(), kind)));
        }
    }
    out
}

fn unit_path(name: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(name)
}

fn enable(entries: &mut Vec<Entry>, unit: &str, target: &str, kind: &str) {
    entries.push(Entry::Symlink {
        path: unit_path(&format!("{target}{kind}")).join(unit),
        target: PathBuf::from("/").join(UNIT_DIR).join(unit),
    });
}

/// Plan the shares and the files to write. Reads `--systemd-units` files; writes nothing.
pub fn plan(cfg: &GuestConfig) -> Result<GuestPlan, GuestFsError> {
    let mut plan = GuestPlan::default();
    for p in &cfg.ports {
        if p.host_port == cfg.ssh_port || p.host_port == cfg.probe_port {
            return Err(GuestFsError::PortTaken(p.host_port));
        }
    }
    for b in &cfg.binds {
        let flag = if b.readonly { "--ro-bind" } else { "--bind" };
        if !b.source.is_dir() {
            return Err(GuestFsError::MissingSource {
                flag,
                path: b.source.clone(),
            });
        }
        let (name, guest_path) = match &b.target {
            BindTarget::Named(n) => (n.clone(), PathBuf::from(format!("/run/virtiofs-mnt-{n}"))),
            BindTarget::Path(p) => (escape_path(p).replace('\\', "_"), p.clone()),
        };
        plan.shares.push(Share {
            tag: format!("mnt-{name}"),
            source: b.source.clone(),
            readonly: b.readonly,
            guest_path,
        });
    }
    if let Some(store) = &cfg.bind_storage {
        plan.shares.push(Share {
            tag: "mnt-hoststorage".into(),
            source: store.clone(),
            readonly: true,
            guest_path: "/run/virtiofs-mnt-hoststorage".into(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for s in &plan.shares {
        if !seen.insert(s.tag.clone()) {
            return Err(GuestFsError::DuplicateShare(
                s.tag.trim_start_matches("mnt-").to_string(),
            ));
        }
    }
    for s in plan.shares.clone() {
        let (name, body) = mount_unit(&s);
        plan.entries.push(Entry::File {
            path: unit_path(&name),
            contents: body.into_bytes(),
        });
        // Wanted (not required) by local-fs.target: mounted before sshd starts, and a failed
        // share does not drop the guest into emergency mode.
        enable(&mut plan.entries, &name, "local-fs.target", ".wants");
    }
    if cfg.swap {
        let name = "dev-disk-by\\x2did-virtio\\x2dswap.swap";
        let body = "# Written by bcvk: --add-swap.\n[Unit]\nDescription=bcvk swap\n\n[Swap]\nWhat=/dev/disk/by-id/virtio-swap\n";
        plan.entries.push(Entry::File {
            path: unit_path(name),
            contents: body.into(),
        });
        enable(&mut plan.entries, name, "swap.target", ".wants");
        // Under TCG on a loaded machine udev can take longer than systemd's default 90 s
        // device timeout to announce the disk; the swap unit would then give up for good.
        plan.entries.push(Entry::File {
            path: unit_path("dev-disk-by\\x2did-virtio\\x2dswap.device.d/bcvk.conf"),
            contents: b"[Unit]\nJobRunningTimeoutSec=infinity\n".to_vec(),
        });
    }
    if let Some(dir) = &cfg.systemd_units {
        plan_units(dir, &mut plan.entries)?;
    }
    Ok(plan)
}

/// The `--systemd-units` entries alone (for guests configured through cloud-init).
pub fn unit_entries(dir: &Path) -> Result<Vec<Entry>, GuestFsError> {
    let mut entries = Vec::new();
    plan_units(dir, &mut entries)?;
    Ok(entries)
}

/// `--systemd-units DIR`: every unit in DIR/system/ is installed and enabled per its
/// [Install] section; drop-in directories (`UNIT.d/`) are copied as they are, and so are the
/// links of `TARGET.wants/` and `TARGET.requires/` (as upstream bcvk and `systemctl enable`
/// leave them): a unit without an [Install] section, or one of the image's own units, is
/// enabled by such a link alone.
fn plan_units(dir: &Path, entries: &mut Vec<Entry>) -> Result<(), GuestFsError> {
    let err = |why: String| GuestFsError::Units {
        dir: dir.to_path_buf(),
        why,
    };
    let system = dir.join("system");
    let list = std::fs::read_dir(&system).map_err(|e| {
        err(format!(
            "cannot read {}: {e} (units go in DIR/system/)",
            system.display()
        ))
    })?;
    let mut names: Vec<_> = list.flatten().map(|e| e.path()).collect();
    names.sort();
    let mut units = 0;
    for path in names {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if path.is_dir() && name.ends_with(".d") {
            for f in std::fs::read_dir(&path)
                .map_err(|e| err(format!("{}: {e}", path.display())))?
                .flatten()
            {
                let contents = std::fs::read(f.path())
                    .map_err(|e| err(format!("{}: {e}", f.path().display())))?;
                entries.push(Entry::File {
                    path: unit_path(&name).join(f.file_name()),
                    contents,
                });
            }
            continue;
        }
        if path.is_dir() && (name.ends_with(".wants") || name.ends_with(".requires")) {
            units += plan_links(&path, &name, entries).map_err(err)?;
            continue;
        }
        const KINDS: &[&str] = &[
            ".service",
            ".socket",
            ".timer",
            ".target",
            ".mount",
            ".path",
            ".swap",
            ".automount",
        ];
        if !path.is_file() || !KINDS.iter().any(|k| name.ends_with(k)) {
            continue;
        }
        let contents = std::fs::read(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        for (target, kind) in install_targets(&String::from_utf8_lossy(&contents)) {
            enable(entries, &name, &target, kind);
        }
        entries.push(Entry::File {
            path: unit_path(&name),
            contents,
        });
        units += 1;
    }
    if units == 0 {
        return Err(err(format!("no unit files in {}", system.display())));
    }
    Ok(())
}

/// The entries of one `TARGET.wants/` or `TARGET.requires/` directory: a symlink is made again
/// with its own target (systemd goes by the link's name; its target, relative like
/// `../foo.service` or absolute, is read in the guest), a regular file is copied. Returns how
/// many there were.
fn plan_links(path: &Path, dir_name: &str, entries: &mut Vec<Entry>) -> Result<usize, String> {
    let list = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut links: Vec<_> = list.flatten().collect();
    links.sort_by_key(|e| e.file_name());
    let mut n = 0;
    for l in links {
        let name = l.file_name();
        let unit = name.to_string_lossy();
        if unit.starts_with('.') {
            continue;
        }
        let guest = unit_path(dir_name).join(&name);
        let kind = l
            .file_type()
            .map_err(|e| format!("{}: {e}", l.path().display()))?;
        if kind.is_symlink() {
            let target =
                std::fs::read_link(l.path()).map_err(|e| format!("{}: {e}", l.path().display()))?;
            entries.push(Entry::Symlink {
                path: guest,
                target,
            });
        } else if kind.is_file() {
            let contents =
                std::fs::read(l.path()).map_err(|e| format!("{}: {e}", l.path().display()))?;
            entries.push(Entry::File {
                path: guest,
                contents,
            });
        } else {
            return Err(format!(
                "{}: neither a link nor a unit file",
                l.path().display()
            ));
        }
        n += 1;
    }
    Ok(n)
}

impl GuestPlan {
    /// The files `apply` writes, relative to the guest's root.
    pub fn generated_paths(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::File { path, .. } | Entry::Symlink { path, .. } => path.clone(),
            })
            .collect()
    }
}

/// Remove a file an earlier run wrote (a persistent state keeps them): only a file or a
/// symlink, only beneath the root and reached through no symlink (the guest wrote this tree);
/// anything else, or nothing there, is left as it is.
pub fn remove_generated(root: &Path, rel: &Path) {
    let _ = beneath::remove(root, rel);
}

/// Write the planned files into the mounted root (its throwaway upper layer, or a persistent
/// state). Nothing is written through a symlink of the image or of an earlier guest: a file or
/// link at a planned path is replaced, a symlink on the way to it is refused.
pub fn apply(plan: &GuestPlan, root: &Path) -> Result<(), GuestFsError> {
    for e in &plan.entries {
        let (rel, result) = match e {
            Entry::File { path, contents } => (path, beneath::write_file(root, path, contents)),
            Entry::Symlink { path, target } => (path, beneath::symlink(root, path, target)),
        };
        result.map_err(|source| GuestFsError::Write {
            path: PathBuf::from("/").join(rel),
            source,
        })?;
    }
    for s in &plan.shares {
        // The mount point may not exist in the image (a path under /run is created by systemd,
        // and so is any other when the guest mounts it: a symlink of the image on the way, as
        // bootc images' /mnt -> var/mnt, is left for the guest to follow).
        let _ = beneath::create_dirs(
            root,
            s.guest_path.strip_prefix("/").unwrap_or(&s.guest_path),
        );
    }
    Ok(())
}

/// Create the swap device and the requested disk images; returns the QEMU disks.
/// Runs helpers (mkswap, qemu-img), so it must run before the reaper takes over.
pub fn prepare_disks(
    swap: Option<u64>,
    files: &[DiskFileSpec],
    run_dir: &Path,
) -> Result<Vec<DiskSpec>, GuestFsError> {
    let mut disks = Vec::new();
    if let Some(size) = swap {
        let dir = run_dir.join("disks");
        let path = dir.join("swap.img");
        let disk_err = |why: String| GuestFsError::Disk {
            path: path.clone(),
            why,
        };
        std::fs::create_dir_all(&dir).map_err(|e| disk_err(e.to_string()))?;
        let f = std::fs::File::create(&path).map_err(|e| disk_err(e.to_string()))?;
        f.set_len(size).map_err(|e| disk_err(e.to_string()))?;
        spawn::run_helper("mkswap", &[path.as_os_str()]).map_err(|e| disk_err(e.to_string()))?;
        disks.push(DiskSpec {
            path,
            format: DiskFormat::Raw,
            serial: "swap".into(),
            readonly: false,
        });
    }
    for d in files {
        let disk_err = |why: String| GuestFsError::Disk {
            path: d.path.clone(),
            why,
        };
        if !d.path.exists() {
            match d.format {
                DiskFormat::Raw => {
                    let f = std::fs::File::create(&d.path).map_err(|e| disk_err(e.to_string()))?;
                    f.set_len(NEW_DISK_SIZE)
                        .map_err(|e| disk_err(e.to_string()))?;
                }
                DiskFormat::Qcow2 => {
                    let size = NEW_DISK_SIZE.to_string();
                    spawn::run_helper(
                        "qemu-img",
                        &[
                            std::ffi::OsStr::new("create"),
                            "-q".as_ref(),
                            "-f".as_ref(),
                            "qcow2".as_ref(),
                            d.path.as_os_str(),
                            size.as_ref(),
                        ],
                    )
                    .map_err(|e| disk_err(e.to_string()))?;
                }
            }
            tracing::info!(path = %d.path.display(), size_gib = NEW_DISK_SIZE >> 30, "created a sparse disk image");
        }
        disks.push(DiskSpec {
            path: d.path.clone(),
            format: d.format,
            serial: d.name.clone(),
            readonly: false,
        });
    }
    Ok(disks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_paths_like_systemd() {
        assert_eq!(
            escape_path(Path::new("/run/virtiofs-mnt-work")),
            "run-virtiofs\\x2dmnt\\x2dwork"
        );
        assert_eq!(escape_path(Path::new("/srv/my data/")), "srv-my\\x20data");
        assert_eq!(escape_path(Path::new("/")), "-");
        assert_eq!(escape_path(Path::new("/.hidden")), "\\x2ehidden");
    }

    #[test]
    fn install_sections_become_symlinks() {
        let unit = "[Unit]\nWantedBy=ignored.target\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target default.target\nRequiredBy=foo.service\n";
        assert_eq!(
            install_targets(unit),
            vec![
                ("multi-user.target".into(), ".wants"),
                ("default.target".into(), ".wants"),
                ("foo.service".into(), ".requires")
            ]
        );
    }

    #[test]
    fn binds_become_shares_with_mount_units() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GuestConfig {
            binds: vec![
                BindSpec {
                    source: dir.path().into(),
                    target: BindTarget::Named("work".into()),
                    readonly: false,
                },
                BindSpec {
                    source: dir.path().into(),
                    target: BindTarget::Path("/srv/data".into()),
                    readonly: true,
                },
            ],
            bind_storage: Some(dir.path().into()),
            swap: true,
            ssh_port: 2222,
            ..Default::default()
        };
        let plan = plan(&cfg).unwrap();
        let tags: Vec<_> = plan
            .shares
            .iter()
            .map(|s| (s.tag.as_str(), s.guest_path.to_str().unwrap(), s.readonly))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("mnt-work", "/run/virtiofs-mnt-work", false),
                ("mnt-srv-data", "/srv/data", true),
                ("mnt-hoststorage", "/run/virtiofs-mnt-hoststorage", true),
            ]
        );
        let root = tempfile::tempdir().unwrap();
        apply(&plan, root.path()).unwrap();
        let unit =
            std::fs::read_to_string(root.path().join("etc/systemd/system/srv-data.mount")).unwrap();
        assert!(
            unit.contains("What=mnt-srv-data\nWhere=/srv/data\nType=virtiofs\nOptions=ro\n"),
            "{unit}"
        );
        let link = root
            .path()
            .join("etc/systemd/system/local-fs.target.wants/run-virtiofs\\x2dmnt\\x2dwork.mount");
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            Path::new("/etc/systemd/system/run-virtiofs\\x2dmnt\\x2dwork.mount")
        );
        assert!(root
            .path()
            .join("etc/systemd/system/swap.target.wants/dev-disk-by\\x2did-virtio\\x2dswap.swap")
            .is_symlink());
        let dropin = root
            .path()
            .join("etc/systemd/system/dev-disk-by\\x2did-virtio\\x2dswap.device.d/bcvk.conf");
        assert!(std::fs::read_to_string(dropin)
            .unwrap()
            .contains("JobRunningTimeoutSec=infinity"));
        assert!(root.path().join("srv/data").is_dir());
    }

    #[test]
    fn rejects_missing_sources_duplicates_and_the_ssh_port() {
        let missing = GuestConfig {
            binds: vec![BindSpec {
                source: "/nonexistent/bcvk".into(),
                target: BindTarget::Named("x".into()),
                readonly: true,
            }],
            ..Default::default()
        };
        let err = plan(&missing).unwrap_err().to_string();
        assert!(
            err.contains("--ro-bind /nonexistent/bcvk") && err.contains("podman -v"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let b = BindSpec {
            source: dir.path().into(),
            target: BindTarget::Named("x".into()),
            readonly: false,
        };
        let dup = GuestConfig {
            binds: vec![b.clone(), b],
            ..Default::default()
        };
        assert!(plan(&dup).unwrap_err().to_string().contains("'x'"));
        let port = GuestConfig {
            ports: vec![PortSpec {
                host_port: 2222,
                guest_port: 80,
            }],
            ssh_port: 2222,
            ..Default::default()
        };
        assert!(matches!(plan(&port), Err(GuestFsError::PortTaken(2222))));
        let probe = GuestConfig {
            ports: vec![PortSpec {
                host_port: 2221,
                guest_port: 80,
            }],
            ssh_port: 2222,
            probe_port: 2221,
            ..Default::default()
        };
        assert!(matches!(plan(&probe), Err(GuestFsError::PortTaken(2221))));
    }

    #[test]
    fn systemd_units_are_installed_and_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("system");
        std::fs::create_dir_all(sys.join("marker.service.d")).unwrap();
        std::fs::write(
            sys.join("marker.service"),
            "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        std::fs::write(
            sys.join("marker.service.d/x.conf"),
            "[Service]\nEnvironment=A=1\n",
        )
        .unwrap();
        std::fs::write(sys.join("README"), "not a unit").unwrap();
        // Enabled by links alone, as `systemctl enable` or upstream's users leave them: a
        // unit without [Install], relative and absolute links, a required unit of the image.
        std::fs::write(
            sys.join("linked.service"),
            "[Service]\nExecStart=/bin/true\n",
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("default.target.wants")).unwrap();
        std::fs::create_dir_all(sys.join("marker.service.requires")).unwrap();
        std::os::unix::fs::symlink(
            "../linked.service",
            sys.join("default.target.wants/linked.service"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/ssh.service",
            sys.join("marker.service.requires/ssh.service"),
        )
        .unwrap();
        let plan = plan(&GuestConfig {
            systemd_units: Some(dir.path().into()),
            ..Default::default()
        })
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        apply(&plan, root.path()).unwrap();
        let etc = root.path().join("etc/systemd/system");
        assert!(etc.join("marker.service").is_file());
        assert!(etc.join("marker.service.d/x.conf").is_file());
        assert!(etc
            .join("multi-user.target.wants/marker.service")
            .is_symlink());
        assert!(!etc.join("README").exists());
        assert_eq!(
            std::fs::read_link(etc.join("default.target.wants/linked.service")).unwrap(),
            Path::new("../linked.service")
        );
        assert!(etc.join("default.target.wants/linked.service").is_file());
        assert_eq!(
            std::fs::read_link(etc.join("marker.service.requires/ssh.service")).unwrap(),
            Path::new("/usr/lib/systemd/system/ssh.service")
        );
        // Links alone are enough to make DIR a unit directory.
        let only_links = tempfile::tempdir().unwrap();
        let wants = only_links.path().join("system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink("/usr/lib/systemd/system/x.service", wants.join("x.service"))
            .unwrap();
        let mut entries = Vec::new();
        plan_units(only_links.path(), &mut entries).unwrap();
        assert_eq!(
            entries,
            vec![Entry::Symlink {
                path: "etc/systemd/system/multi-user.target.wants/x.service".into(),
                target: "/usr/lib/systemd/system/x.service".into(),
            }]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(plan_units(empty.path(), &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("DIR/system/"));
    }

    #[test]
    fn writes_through_no_symlink_of_the_image() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("root"), d.path().join("x"));
        std::fs::create_dir_all(root.join("etc/systemd")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // The image's etc/systemd/system is a link to a directory of the container.
        std::os::unix::fs::symlink(&outside, root.join("etc/systemd/system")).unwrap();
        let plan = plan(&GuestConfig {
            swap: true,
            ..Default::default()
        })
        .unwrap();
        let err = apply(&plan, &root).unwrap_err();
        assert!(matches!(err, GuestFsError::Write { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/etc/systemd/system is a symlink in the image"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A unit file of the image that is a link (a masked unit, or a link out of the root)
        // is replaced by bcvk's file; the link's target is untouched.
        std::fs::remove_file(root.join("etc/systemd/system")).unwrap();
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        std::fs::write(outside.join("victim"), "container file").unwrap();
        let unit = root.join("etc/systemd/system/dev-disk-by\\x2did-virtio\\x2dswap.swap");
        std::os::unix::fs::symlink(outside.join("victim"), &unit).unwrap();
        apply(&plan, &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "container file"
        );
        assert!(!unit.is_symlink());
        assert!(std::fs::read_to_string(&unit).unwrap().contains("[Swap]"));
    }

    #[test]
    fn removes_only_generated_files_beneath_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("etc/systemd/system/keep.d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("etc/systemd/system/old.mount"), "").unwrap();
        std::fs::write(outside.join("victim"), "").unwrap();
        // A guest-planted symlink must not lead the removal out of the root.
        std::os::unix::fs::symlink(&outside, root.join("etc/evil")).unwrap();
        remove_generated(&root, Path::new("etc/systemd/system/old.mount"));
        remove_generated(&root, Path::new("etc/evil/victim"));
        remove_generated(&root, Path::new("etc/systemd/system/keep.d"));
        remove_generated(&root, Path::new("../outside/victim"));
        assert!(!root.join("etc/systemd/system/old.mount").exists());
        assert!(outside.join("victim").exists());
        assert!(root.join("etc/systemd/system/keep.d").is_dir());
    }
}
