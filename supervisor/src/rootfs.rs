//! The guest's root filesystem: the image's layers stacked read-only with
//! overlayfs under a throwaway writable upper layer.
//!
//! Planning (paths and the mount option string) is pure and unit-tested;
//! applying does the mounts and returns a guard that undoes them.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::store::{Driver, ResolvedImage};

/// mount(2) copies at most one page of option data, NUL included.
const MAX_MOUNT_DATA: usize = 4095;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("the image has no layers to mount: use a bootable container image")]
    NoLayers,
    #[error("path {} {reason}, which overlayfs mount options cannot carry: use a store and --scratch dir at plain absolute paths", .path.display())]
    UnsafePath { path: PathBuf, reason: &'static str },
    #[error("overlay mount options for {layers} layers are {len} bytes (short layer links used where the store has them), over the kernel's {limit}-byte limit: squash the image to fewer layers (podman build --squash)")]
    OptionsTooLong {
        layers: usize,
        len: usize,
        limit: usize,
    },
    #[error("--scratch dir {} is unusable ({source}): pass an existing writable directory", .path.display())]
    ScratchDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create directory {} ({source}): check that the run dir and --scratch dir are writable", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount the tmpfs scratch at {} ({source}): run the container with --privileged, or pass --scratch DIR", .path.display())]
    MountScratch { path: PathBuf, source: nix::Error },
    #[error("cannot mount the overlay root at {} ({source}): run the container with --privileged on a host with overlayfs; a rootless store needs kernel 5.11+ for userxattr", .path.display())]
    MountOverlay { path: PathBuf, source: nix::Error },
    #[error("cannot unmount {} ({source}): stop whatever still uses the guest root (virtiofsd) and retry", .path.display())]
    Unmount { path: PathBuf, source: nix::Error },
    #[error("cannot remove {} ({source}): delete it by hand; it only holds throwaway guest writes", .path.display())]
    RemoveDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the guest's writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scratch {
    /// In memory; the default.
    Tmpfs { size_bytes: Option<u64> },
    /// On a disk volume (--scratch DIR), for guests that write a lot.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Top layer first.
    pub lowerdirs: Vec<PathBuf>,
    /// The same layers by their short `overlay/l/` links, when every layer
    /// has one: the fallback when full paths overflow the mount data page.
    pub short_lowerdirs: Option<Vec<PathBuf>>,
    pub scratch: Scratch,
    /// The tmpfs mount point, or the unique throwaway dir inside --scratch.
    pub scratch_mount: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
    pub userxattr: bool,
}

pub fn plan_rootfs(image: &ResolvedImage, run_dir: &Path, scratch: Scratch) -> RootfsPlan {
    // Each vfs layer dir is a complete root, so only the top one is stacked.
    let layers = match image.driver {
        Driver::Overlay => &image.layers[..],
        Driver::Vfs => &image.layers[..image.layers.len().min(1)],
    };
    let scratch_mount = match &scratch {
        Scratch::Tmpfs { .. } => run_dir.join("scratch"),
        Scratch::Dir(dir) => dir.join(unique_name()),
    };
    RootfsPlan {
        lowerdirs: layers.iter().map(|l| l.diff_dir.clone()).collect(),
        short_lowerdirs: layers.iter().map(|l| l.short_link.clone()).collect(),
        upper: scratch_mount.join("upper"),
        work: scratch_mount.join("work"),
        scratch_mount,
        scratch,
        target: run_dir.join("root"),
        userxattr: image.userxattr,
    }
}

/// Several bcvk containers may share one --scratch volume, so each run
/// gets its own dir; pid + time + counter is unique enough, and creating it
/// fails rather than reuses if it somehow exists.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "bcvk-{}-{:x}",
        std::process::id(),
        nanos ^ count.rotate_right(16)
    )
}

/// overlayfs splits its options on ',' and lowerdir on ':' (with '\'
/// escapes); rather than rely on escaping, which older kernels handle
/// differently, such paths are refused. They never occur in podman stores.
fn option_path(path: &Path) -> Result<&str, RootfsError> {
    let unsafe_path = |reason| RootfsError::UnsafePath {
        path: path.to_path_buf(),
        reason,
    };
    let text = path.to_str().ok_or_else(|| unsafe_path("is not UTF-8"))?;
    if !path.is_absolute() {
        return Err(unsafe_path("is relative"));
    }
    if text.contains([':', ',', '\\', '\0']) {
        return Err(unsafe_path("contains ':', ',', '\\' or NUL"));
    }
    Ok(text)
}

fn lowerdir_option(dirs: &[PathBuf]) -> Result<String, RootfsError> {
    let parts = dirs
        .iter()
        .map(|d| option_path(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("lowerdir={}", parts.join(":")))
}

pub fn overlay_options(plan: &RootfsPlan) -> Result<String, RootfsError> {
    if plan.lowerdirs.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let mut rest = format!(
        ",upperdir={},workdir={}",
        option_path(&plan.upper)?,
        option_path(&plan.work)?
    );
    if plan.userxattr {
        // The layers of a rootless store carry user.overlay.* xattrs.
        rest.push_str(",userxattr");
    }
    let full = lowerdir_option(&plan.lowerdirs)? + &rest;
    if full.len() <= MAX_MOUNT_DATA {
        return Ok(full);
    }
    let mut len = full.len();
    if let Some(short) = &plan.short_lowerdirs {
        let options = lowerdir_option(short)? + &rest;
        if options.len() <= MAX_MOUNT_DATA {
            return Ok(options);
        }
        len = options.len();
    }
    // Paths relative to <store>/overlay (as podman does, via chdir) would
    // fit more layers, but chdir is process-wide and we are multi-threaded.
    Err(RootfsError::OptionsTooLong {
        layers: plan.lowerdirs.len(),
        len,
        limit: MAX_MOUNT_DATA,
    })
}

/// Something apply_rootfs did that teardown must undo.
#[derive(Debug)]
enum Step {
    /// A directory we created empty (a mount point).
    Dir(PathBuf),
    /// Our throwaway dir inside --scratch, removed with its contents.
    Tree(PathBuf),
    Mount(PathBuf),
}

/// The mounted guest root. Unmount it explicitly to see errors; dropping it
/// tears down best-effort and logs what went wrong.
#[derive(Debug)]
pub struct MountedRootfs {
    root: PathBuf,
    /// In the order done; undone in reverse.
    steps: Vec<Step>,
}

pub fn apply_rootfs(plan: &RootfsPlan) -> Result<MountedRootfs, RootfsError> {
    // Checked first so a bad plan touches nothing.
    let options = overlay_options(plan)?;
    let mut mounted = MountedRootfs {
        root: plan.target.clone(),
        steps: Vec::new(),
    };
    if let Err(err) = mounted.build(plan, &options) {
        if let Err(cleanup) = mounted.teardown(true) {
            tracing::warn!("cleaning up after a failed rootfs mount: {cleanup}");
        }
        return Err(err);
    }
    Ok(mounted)
}

fn make_dir(path: &Path) -> Result<(), RootfsError> {
    let create_err = |source| RootfsError::CreateDir {
        path: path.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(create_err)?;
    // Not left to the umask: upper's mode becomes the mode of the guest's /.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(create_err)
}

impl MountedRootfs {
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn unmount(mut self) -> Result<(), RootfsError> {
        // On error, Drop retries lazily with whatever is left.
        self.teardown(false)
    }

    /// A mount point that already exists (a leftover or one the caller made)
    /// is reused and left in place afterwards.
    fn mount_point(&mut self, path: &Path) -> Result<(), RootfsError> {
        if path.is_dir() {
            return Ok(());
        }
        make_dir(path)?;
        self.steps.push(Step::Dir(path.to_path_buf()));
        Ok(())
    }

    fn build(&mut self, plan: &RootfsPlan, options: &str) -> Result<(), RootfsError> {
        match &plan.scratch {
            Scratch::Tmpfs { size_bytes } => {
                self.mount_point(&plan.scratch_mount)?;
                let mut data = String::from("mode=0700");
                if let Some(size) = size_bytes {
                    data.push_str(&format!(",size={size}"));
                }
                let flags = MsFlags::empty();
                mount(
                    Some("bcvk-scratch"),
                    &plan.scratch_mount,
                    Some("tmpfs"),
                    flags,
                    Some(&*data),
                )
                .map_err(|source| RootfsError::MountScratch {
                    path: plan.scratch_mount.clone(),
                    source,
                })?;
                self.steps.push(Step::Mount(plan.scratch_mount.clone()));
            }
            Scratch::Dir(dir) => {
                if let Err(source) = fs::metadata(dir).and_then(|m| {
                    m.is_dir()
                        .then_some(())
                        .ok_or(std::io::Error::other("not a directory"))
                }) {
                    return Err(RootfsError::ScratchDir {
                        path: dir.clone(),
                        source,
                    });
                }
                // Never reuse an existing dir: it would not be ours to delete.
                make_dir(&plan.scratch_mount)?;
                self.steps.push(Step::Tree(plan.scratch_mount.clone()));
            }
        }
        // Inside the scratch, so they go away with it.
        make_dir(&plan.upper)?;
        make_dir(&plan.work)?;
        self.mount_point(&plan.target)?;
        // nodev: the guest's own kernel opens its device nodes; nothing on the
        // host side (virtiofsd) should ever open one from this untrusted tree,
        // and this privileged container can reach every host device.
        mount(
            Some("bcvk-root"),
            &plan.target,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(options),
        )
        .map_err(|source| RootfsError::MountOverlay {
            path: plan.target.clone(),
            source,
        })?;
        self.steps.push(Step::Mount(plan.target.clone()));
        Ok(())
    }

    /// Undoes the steps in reverse. A failed step stays in `steps` (as do
    /// the ones before it) so a later lazy attempt can retry. `lazy`
    /// detaches busy mounts and then keeps the scratch tree, since a
    /// detached overlay may still be writing into it.
    fn teardown(&mut self, lazy: bool) -> Result<(), RootfsError> {
        let mut detached = false;
        while let Some(step) = self.steps.pop() {
            let result = match &step {
                Step::Mount(path) => umount2(path, MntFlags::empty())
                    .or_else(|err| {
                        if lazy {
                            detached = true;
                            umount2(path, MntFlags::MNT_DETACH)
                        } else {
                            Err(err)
                        }
                    })
                    .map_err(|source| RootfsError::Unmount {
                        path: path.clone(),
                        source,
                    }),
                Step::Dir(path) => fs::remove_dir(path).map_err(|source| RootfsError::RemoveDir {
                    path: path.clone(),
                    source,
                }),
                Step::Tree(path) if detached => {
                    tracing::warn!(
                        "leaving scratch dir {} behind: its overlay was busy",
                        path.display()
                    );
                    Ok(())
                }
                Step::Tree(path) => {
                    fs::remove_dir_all(path).map_err(|source| RootfsError::RemoveDir {
                        path: path.clone(),
                        source,
                    })
                }
            };
            if let Err(err) = result {
                self.steps.push(step);
                return Err(err);
            }
        }
        Ok(())
    }
}

impl Drop for MountedRootfs {
    fn drop(&mut self) {
        if self.steps.is_empty() {
            return;
        }
        tracing::warn!(
            "guest root {} is still mounted; tearing it down lazily",
            self.root.display()
        );
        if let Err(err) = self.teardown(true) {
            tracing::warn!("{err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Layer;

    fn image(layers: usize, short: bool, driver: Driver, userxattr: bool) -> ResolvedImage {
        let layers = (0..layers)
            .map(|n| {
                let id = format!("{n:0>64}");
                Layer {
                    diff_dir: PathBuf::from(format!("/store/overlay/{id}/diff")),
                    short_link: short.then(|| PathBuf::from(format!("/store/overlay/l/S{n:0>25}"))),
                    id,
                }
            })
            .collect();
        ResolvedImage {
            id: "f".repeat(64),
            name: "localhost/os:latest".into(),
            layers,
            driver,
            userxattr,
        }
    }

    fn tmpfs() -> Scratch {
        Scratch::Tmpfs { size_bytes: None }
    }

    #[test]
    fn plan_puts_scratch_under_the_run_dir() {
        let plan = plan_rootfs(
            &image(2, true, Driver::Overlay, false),
            Path::new("/run/bcvk"),
            tmpfs(),
        );
        assert_eq!(plan.target, Path::new("/run/bcvk/root"));
        assert_eq!(plan.scratch_mount, Path::new("/run/bcvk/scratch"));
        assert_eq!(plan.upper, Path::new("/run/bcvk/scratch/upper"));
        assert_eq!(plan.work, Path::new("/run/bcvk/scratch/work"));
        assert_eq!(plan.short_lowerdirs.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn scratch_dirs_are_unique_per_plan() {
        let img = image(1, false, Driver::Overlay, false);
        let scratch = Scratch::Dir(PathBuf::from("/var/scratch"));
        let a = plan_rootfs(&img, Path::new("/run/bcvk"), scratch.clone());
        let b = plan_rootfs(&img, Path::new("/run/bcvk"), scratch);
        assert_ne!(a.scratch_mount, b.scratch_mount);
        assert!(a.scratch_mount.starts_with("/var/scratch"));
        let name = a.scratch_mount.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("bcvk-{}-", std::process::id())),
            "{name}"
        );
        assert_eq!(a.upper, a.scratch_mount.join("upper"));
    }

    #[test]
    fn options_list_layers_top_first() {
        let plan = plan_rootfs(
            &image(3, true, Driver::Overlay, false),
            Path::new("/run/b"),
            tmpfs(),
        );
        let options = overlay_options(&plan).unwrap();
        let layer = |n: usize| format!("/store/overlay/{n:0>64}/diff");
        let lower = format!("lowerdir={}:{}:{}", layer(0), layer(1), layer(2));
        assert_eq!(
            options,
            format!("{lower},upperdir=/run/b/scratch/upper,workdir=/run/b/scratch/work")
        );
    }

    #[test]
    fn options_add_userxattr_for_rootless_stores() {
        let plan = plan_rootfs(
            &image(1, false, Driver::Overlay, true),
            Path::new("/r"),
            tmpfs(),
        );
        assert!(overlay_options(&plan)
            .unwrap()
            .ends_with(",workdir=/r/scratch/work,userxattr"));
    }

    #[test]
    fn vfs_stacks_only_the_top_layer() {
        let plan = plan_rootfs(
            &image(3, false, Driver::Vfs, false),
            Path::new("/r"),
            tmpfs(),
        );
        assert_eq!(
            plan.lowerdirs,
            [PathBuf::from(format!("/store/overlay/{:0>64}/diff", 0))]
        );
        assert!(!overlay_options(&plan).unwrap().contains(':'));
    }

    #[test]
    fn long_options_fall_back_to_short_links() {
        // 60 full paths are ~5 KiB; 60 short ones ~2.5 KiB.
        let plan = plan_rootfs(
            &image(60, true, Driver::Overlay, false),
            Path::new("/r"),
            tmpfs(),
        );
        let options = overlay_options(&plan).unwrap();
        assert!(
            options.starts_with("lowerdir=/store/overlay/l/S"),
            "{options}"
        );
        assert!(options.len() <= MAX_MOUNT_DATA);
        assert_eq!(options.matches(':').count(), 59);
    }

    #[test]
    fn too_many_layers_is_a_clear_error() {
        let plan = plan_rootfs(
            &image(60, false, Driver::Overlay, false),
            Path::new("/r"),
            tmpfs(),
        );
        let err = overlay_options(&plan).unwrap_err();
        assert!(
            matches!(err, RootfsError::OptionsTooLong { layers: 60, .. }),
            "{err}"
        );
        let plan = plan_rootfs(
            &image(200, true, Driver::Overlay, false),
            Path::new("/r"),
            tmpfs(),
        );
        let err = overlay_options(&plan).unwrap_err();
        assert!(err.to_string().contains("200 layers") && err.to_string().contains("squash"));
    }

    #[test]
    fn unsafe_paths_are_rejected() {
        let img = image(1, false, Driver::Overlay, false);
        for run_dir in ["/run/a:b", "/run/a,b", "/run/a\\b", "relative"] {
            let plan = plan_rootfs(&img, Path::new(run_dir), tmpfs());
            let err = overlay_options(&plan).unwrap_err();
            assert!(
                matches!(err, RootfsError::UnsafePath { .. }),
                "{run_dir}: {err}"
            );
        }
        let mut plan = plan_rootfs(&img, Path::new("/r"), tmpfs());
        plan.lowerdirs = vec![PathBuf::from("/store/x:y/diff")];
        assert!(matches!(
            overlay_options(&plan),
            Err(RootfsError::UnsafePath { .. })
        ));
        plan.lowerdirs.clear();
        assert!(matches!(overlay_options(&plan), Err(RootfsError::NoLayers)));
    }

    #[test]
    fn bad_plans_touch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan_rootfs(
            &image(1, false, Driver::Overlay, false),
            dir.path(),
            tmpfs(),
        );
        plan.lowerdirs.clear();
        assert!(apply_rootfs(&plan).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Really mounts, which needs root and overlayfs; skips itself otherwise.
    #[test]
    fn mounts_and_cleans_up_when_privileged() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, run_dir, scratch) = (
            dir.path().join("lower"),
            dir.path().join("run"),
            dir.path().join("scratch"),
        );
        for d in [&lower, &run_dir, &scratch] {
            fs::create_dir(d).unwrap();
        }
        fs::write(lower.join("hello"), "from the image").unwrap();
        let mut img = image(1, false, Driver::Overlay, false);
        img.layers[0].diff_dir = lower.clone();
        for choice in [tmpfs(), Scratch::Dir(scratch.clone())] {
            let plan = plan_rootfs(&img, &run_dir, choice);
            let mounted = match apply_rootfs(&plan) {
                Ok(mounted) => mounted,
                Err(
                    err @ (RootfsError::MountScratch { .. } | RootfsError::MountOverlay { .. }),
                ) => {
                    eprintln!("skipping the real mount test: {err}");
                    return;
                }
                Err(err) => panic!("{err}"),
            };
            let root = mounted.root().to_path_buf();
            assert_eq!(
                fs::read_to_string(root.join("hello")).unwrap(),
                "from the image"
            );
            fs::write(root.join("hello"), "changed").unwrap();
            mounted.unmount().unwrap();
            // Writes are thrown away and the image is untouched.
            assert_eq!(
                fs::read_to_string(lower.join("hello")).unwrap(),
                "from the image"
            );
            assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
            assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
        }
        // Dropping without unmount() still cleans up.
        drop(apply_rootfs(&plan_rootfs(&img, &run_dir, tmpfs())).unwrap());
        assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
    }
}
