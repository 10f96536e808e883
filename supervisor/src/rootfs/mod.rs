//! The guest's root filesystem: the image's layers (or a directory holding the whole root,
//! `--rootfs`) stacked read-only with overlayfs under a throwaway writable upper layer.
//!
//! Planning (paths and the mount option string) is pure and unit-tested;
//! applying does the mounts and returns a guard that undoes them.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::opaque::Emulation;
use crate::store::{Driver, ResolvedImage};

/// mount(2) copies at most one page of option data, NUL included.
const MAX_MOUNT_DATA: usize = 4095;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("the image has no layers to mount: use a bootable container image")]
    NoLayers,
    #[error("--rootfs {}: {reason}: pass a directory that holds the image's root file system (usr/, etc/, ...)", .path.display())]
    RootDir { path: PathBuf, reason: String },
    #[error("path {} {reason}, which overlayfs mount options cannot carry: use a store and --scratch dir at plain absolute paths", .path.display())]
    UnsafePath { path: PathBuf, reason: &'static str },
    #[error("overlay mount options for {layers} layers are {len} bytes (short layer links used where the store has them), over the {limit}-byte limit of mount(2), and this kernel lacks the new mount API's lowerdir+ (Linux 6.8+) that has no such limit: run on a host with Linux 6.8 or later, or squash the image to fewer layers (podman build --squash)")]
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
    #[error("cannot mount the tmpfs scratch at {} ({source}): pass --scratch DIR (a volume) for the guest's writes", .path.display())]
    MountScratch { path: PathBuf, source: nix::Error },
    #[error("cannot mount the overlay root at {} ({source}{detail}): the host kernel needs overlayfs, and Linux 5.11+ to mount it without privileges (or run the container with --cap-add SYS_ADMIN)", .path.display())]
    MountOverlay {
        path: PathBuf,
        source: std::io::Error,
        /// What the kernel logged in the mount context, "; "-prefixed, or empty.
        detail: String,
    },
    #[error("cannot create the whiteout {} ({source}): the kernel must allow whiteouts (char 0:0) without CAP_MKNOD (Linux 5.8+); or run the container with --cap-add SYS_ADMIN", .path.display())]
    Whiteout { path: PathBuf, source: nix::Error },
    #[error("cannot unmount {} ({source}): stop whatever still uses the guest root (virtiofsd) and retry", .path.display())]
    Unmount { path: PathBuf, source: nix::Error },
    #[error("cannot remove {} ({source}): delete it by hand; it only holds throwaway guest writes", .path.display())]
    RemoveDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RootfsError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            RootfsError::ScratchDir { .. } | RootfsError::UnsafePath { .. } => Exit::Usage,
            RootfsError::RootDir { .. } => Exit::NotFound,
            RootfsError::Whiteout { .. } => Exit::Refused,
            _ => Exit::Internal,
        }
    }
}

/// Where the guest's writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scratch {
    /// In memory; the default.
    Tmpfs { size_bytes: Option<u64> },
    /// On a disk volume (--scratch DIR), for guests that write a lot.
    Dir(PathBuf),
    /// Kept: the upper and work dirs of a persistent state (see `state`), left in place.
    /// Synthetic layers still go in a tmpfs.
    Persistent { upper: PathBuf, work: PathBuf },
}

/// Files a container engine puts into a running container's root, which a `--rootfs` copied
/// out of a container (`cp -ax /. DIR` in an init container) carries along: systemd reads them
/// before it mounts /run and then believes it runs in a container ("Detected virtualization
/// podman"), so it ignores the SMBIOS credentials (no SSH key, no hostname). podman and
/// CRI-O write /run/.containerenv, docker /.dockerenv.
pub const ENGINE_MARKERS: &[&str] = &["run/.containerenv", ".dockerenv"];

/// Remove [`ENGINE_MARKERS`] from the mounted root (whiteouts in the upper layer: the
/// `--rootfs` directory itself is not touched). Returns what was there.
pub fn remove_engine_markers(root: &Path) -> Result<Vec<PathBuf>, RootfsError> {
    let mut removed = Vec::new();
    for rel in ENGINE_MARKERS {
        let path = root.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(PathBuf::from(rel)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RootfsError::RemoveDir { path, source }),
        }
    }
    Ok(removed)
}

/// The read-only lower layers of the guest's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lower {
    /// A store image's layers.
    Layers {
        /// Top layer first, synthetic opaque-directory layers in their places.
        dirs: Vec<PathBuf>,
        /// The same layers by their short `overlay/l/` links, when every layer
        /// has one: the fallback when full paths overflow the mount data page.
        short: Option<Vec<PathBuf>>,
        /// Layers bcvk makes in the scratch before mounting (see `opaque`).
        synthetic: Vec<SyntheticLayer>,
    },
    /// A directory holding the whole root (`--rootfs`): the one lower layer, never written
    /// (the guest's writes go to the upper layer, as for an image). It has no whiteouts or
    /// opaque marks to honour: it is a plain tree.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    pub lower: Lower,
    pub scratch: Scratch,
    /// The tmpfs mount point, or the unique throwaway dir inside --scratch.
    pub scratch_mount: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
    pub userxattr: bool,
}

/// A lower layer of whiteouts only, emulating an opaque directory (see `opaque`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticLayer {
    pub dir: PathBuf,
    /// Relative to `dir`.
    pub whiteouts: Vec<PathBuf>,
}

impl RootfsPlan {
    /// Every lower dir, top first, as overlayfs stacks them.
    pub fn lowerdirs(&self) -> &[PathBuf] {
        match &self.lower {
            Lower::Layers { dirs, .. } => dirs,
            Lower::Dir(dir) => std::slice::from_ref(dir),
        }
    }

    /// The short-link spelling of `lowerdirs`, where the store has one for every layer.
    pub fn short_lowerdirs(&self) -> Option<&[PathBuf]> {
        match &self.lower {
            Lower::Layers { short, .. } => short.as_deref(),
            Lower::Dir(_) => None,
        }
    }

    pub fn synthetic(&self) -> &[SyntheticLayer] {
        match &self.lower {
            Lower::Layers { synthetic, .. } => synthetic,
            Lower::Dir(_) => &[],
        }
    }
}

/// `userxattr`: the overlay reads and writes `user.overlay.*` xattrs instead of `trusted.*`,
/// as it must in a user namespace and for a rootless store; `emulations` are the synthetic
/// layers that then stand in for `trusted.*` opaque marks (`opaque::plan`).
pub fn plan_rootfs(
    image: &ResolvedImage,
    run_dir: &Path,
    scratch: Scratch,
    userxattr: bool,
    emulations: &[Emulation],
) -> RootfsPlan {
    // Each vfs layer dir is a complete root, so only the top one is stacked.
    let layers = match image.driver {
        Driver::Overlay => &image.layers[..],
        Driver::Vfs => &image.layers[..image.layers.len().min(1)],
    };
    let scratch_mount = scratch_mount(&scratch, run_dir);
    let mut lowerdirs = Vec::new();
    let mut short_lowerdirs = Some(Vec::new());
    let mut synthetic = Vec::new();
    for (k, layer) in layers.iter().enumerate() {
        lowerdirs.push(layer.diff_dir.clone());
        short_lowerdirs = short_lowerdirs
            .zip(layer.short_link.clone())
            .map(|(mut v, s)| {
                v.push(s);
                v
            });
        for e in emulations.iter().filter(|e| e.below == k) {
            let dir = scratch_mount
                .join("opaque")
                .join(synthetic.len().to_string());
            lowerdirs.push(dir.clone());
            if let Some(v) = short_lowerdirs.as_mut() {
                v.push(dir.clone());
            }
            synthetic.push(SyntheticLayer {
                dir,
                whiteouts: e.whiteouts.clone(),
            });
        }
    }
    let lower = Lower::Layers {
        dirs: lowerdirs,
        short: short_lowerdirs,
        synthetic,
    };
    plan_with(lower, run_dir, scratch, scratch_mount, userxattr)
}

/// The plan for a `--rootfs` directory: it is the single lower layer, as it is.
pub fn plan_rootfs_dir(
    dir: &Path,
    run_dir: &Path,
    scratch: Scratch,
    userxattr: bool,
) -> RootfsPlan {
    let scratch_mount = scratch_mount(&scratch, run_dir);
    plan_with(
        Lower::Dir(dir.to_path_buf()),
        run_dir,
        scratch,
        scratch_mount,
        userxattr,
    )
}

/// The tmpfs mount point, or a unique throwaway dir inside --scratch.
fn scratch_mount(scratch: &Scratch, run_dir: &Path) -> PathBuf {
    match scratch {
        Scratch::Tmpfs { .. } | Scratch::Persistent { .. } => run_dir.join("scratch"),
        Scratch::Dir(dir) => dir.join(unique_name()),
    }
}

fn plan_with(
    lower: Lower,
    run_dir: &Path,
    scratch: Scratch,
    scratch_mount: PathBuf,
    userxattr: bool,
) -> RootfsPlan {
    let (upper, work) = match &scratch {
        Scratch::Persistent { upper, work } => (upper.clone(), work.clone()),
        _ => (scratch_mount.join("upper"), scratch_mount.join("work")),
    };
    RootfsPlan {
        lower,
        upper,
        work,
        scratch_mount,
        scratch,
        target: run_dir.join("root"),
        userxattr,
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
    if plan.lowerdirs().is_empty() {
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
    let full = lowerdir_option(plan.lowerdirs())? + &rest;
    if full.len() <= MAX_MOUNT_DATA {
        return Ok(full);
    }
    let mut len = full.len();
    if let Some(short) = plan.short_lowerdirs() {
        let options = lowerdir_option(short)? + &rest;
        if options.len() <= MAX_MOUNT_DATA {
            return Ok(options);
        }
        len = options.len();
    }
    // Paths relative to <store>/overlay (as podman does, via chdir) would
    // fit more layers, but chdir is process-wide and we are multi-threaded.
    Err(RootfsError::OptionsTooLong {
        layers: plan.lowerdirs().len(),
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

/// Checks that hold whichever way the overlay is mounted: something to stack, and paths an
/// option string could carry (so the classic fallback never mis-parses one).
fn check_paths(plan: &RootfsPlan) -> Result<(), RootfsError> {
    if plan.lowerdirs().is_empty() {
        return Err(RootfsError::NoLayers);
    }
    for p in plan.lowerdirs().iter().chain([&plan.upper, &plan.work]) {
        option_path(p)?;
    }
    Ok(())
}

pub fn apply_rootfs(plan: &RootfsPlan) -> Result<MountedRootfs, RootfsError> {
    // Checked first so a bad plan touches nothing.
    check_paths(plan)?;
    let mut mounted = MountedRootfs {
        root: plan.target.clone(),
        steps: Vec::new(),
    };
    if let Err(err) = mounted.build(plan) {
        if let Err(cleanup) = mounted.teardown(true) {
            tracing::warn!("cleaning up after a failed rootfs mount: {cleanup}");
        }
        return Err(err);
    }
    Ok(mounted)
}

/// How the overlay was mounted (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountApi {
    /// fsopen/fsconfig with one `lowerdir+` per layer: no limit but the kernel's 500 layers.
    LowerdirPlus,
    /// mount(2) with one option string of at most a page.
    OptionString,
}

/// The new mount API: returns None where the kernel lacks it or `lowerdir+` (before 6.8).
fn mount_with_fsconfig(plan: &RootfsPlan) -> Option<Result<(), RootfsError>> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) if e == rustix::io::Errno::NOSYS => return None,
        Err(e) => return Some(Err(overlay_error(plan, e, None))),
    };
    let configure = || -> rustix::io::Result<()> {
        fsconfig_set_string(&fs, "source", "bcvk-root")?;
        for dir in plan.lowerdirs() {
            fsconfig_set_string(&fs, "lowerdir+", dir)?;
        }
        fsconfig_set_string(&fs, "upperdir", &plan.upper)?;
        fsconfig_set_string(&fs, "workdir", &plan.work)?;
        if plan.userxattr {
            fsconfig_set_flag(&fs, "userxattr")?;
        }
        fsconfig_create(&fs)
    };
    if let Err(e) = configure() {
        // An unknown key is EINVAL (a kernel before 6.8, or before 6.5 where overlay takes
        // the legacy option page): mount(2) says then what really holds, with the same plan.
        if e == rustix::io::Errno::INVAL {
            tracing::debug!(log = %context_log(&fs), "no lowerdir+ here: mounting with an option string");
            return None;
        }
        return Some(Err(overlay_error(plan, e, Some(context_log(&fs)))));
    }
    // nodev: the guest's own kernel opens its device nodes; nothing on the host side
    // (virtiofsd) should ever open one from this untrusted tree.
    let result = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .and_then(|mnt| {
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            &plan.target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    });
    Some(result.map_err(|e| overlay_error(plan, e, Some(context_log(&fs)))))
}

/// The messages the kernel queued on a mount context ("e overlay: ..." lines), joined.
fn context_log(fs: &std::os::fd::OwnedFd) -> String {
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 || lines.len() >= 4 {
            break;
        }
        lines.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    lines.join("; ")
}

fn overlay_error(plan: &RootfsPlan, e: rustix::io::Errno, log: Option<String>) -> RootfsError {
    RootfsError::MountOverlay {
        path: plan.target.clone(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
        detail: log
            .filter(|l| !l.is_empty())
            .map(|l| format!("; kernel: {l}"))
            .unwrap_or_default(),
    }
}

/// Mount the overlay at `plan.target`: the new mount API where the kernel has it, else
/// mount(2) with an option string (full layer paths, or the store's short links).
fn mount_overlay(plan: &RootfsPlan) -> Result<MountApi, RootfsError> {
    if let Some(result) = mount_with_fsconfig(plan) {
        return result.map(|()| MountApi::LowerdirPlus);
    }
    let options = overlay_options(plan)?;
    mount(
        Some("bcvk-root"),
        &plan.target,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&*options),
    )
    .map_err(|source| RootfsError::MountOverlay {
        path: plan.target.clone(),
        source: source.into(),
        detail: String::new(),
    })?;
    Ok(MountApi::OptionString)
}

/// Fill a synthetic layer: its whiteouts, with plain directories above them. Directory
/// attributes do not matter: the layer right above it has every one of them.
fn make_synthetic(layer: &SyntheticLayer) -> Result<(), RootfsError> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let create_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsError::CreateDir { path, source }
    };
    fs::create_dir_all(&layer.dir).map_err(create_err(&layer.dir))?;
    for rel in &layer.whiteouts {
        let path = layer.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(create_err(parent))?;
        }
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|source| RootfsError::Whiteout {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
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

    fn build(&mut self, plan: &RootfsPlan) -> Result<(), RootfsError> {
        match &plan.scratch {
            Scratch::Tmpfs { .. } | Scratch::Persistent { .. } => {
                let size_bytes = match &plan.scratch {
                    Scratch::Tmpfs { size_bytes } => *size_bytes,
                    _ => None,
                };
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
        // Inside the scratch, so they go away with it; a persistent state brings its own.
        if !matches!(plan.scratch, Scratch::Persistent { .. }) {
            make_dir(&plan.upper)?;
            make_dir(&plan.work)?;
        }
        for layer in plan.synthetic() {
            make_synthetic(layer)?;
        }
        self.mount_point(&plan.target)?;
        let api = mount_overlay(plan)?;
        tracing::debug!(
            ?api,
            layers = plan.lowerdirs().len(),
            synthetic = plan.synthetic().len(),
            userxattr = plan.userxattr,
            "guest root mounted"
        );
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
mod tests;
