//! `--rootfs DIR`: a directory holding an image's root (copied there by an init container of
//! the image, on Kubernetes), under the same kind of throwaway layer as a store image. The
//! directory itself is never written.

use std::path::{Path, PathBuf};

use crate::plan::{Plan, WritesTo};
use crate::rootfs::{self, RootfsError, Scratch};
use crate::store;
use crate::userns::Privileges;

use super::{container_disk, Prepared, Root, RootError};

/// The directory must exist and look like a root (a `usr` directory), checked before anything
/// is mounted so that a typo fails first. Returns it made absolute.
pub fn check(dir: &Path) -> Result<PathBuf, RootfsError> {
    let bad = |reason: String| RootfsError::RootDir {
        path: dir.to_path_buf(),
        reason,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("not a directory".into())),
        Err(e) => return Err(bad(e.to_string())),
    }
    if !dir.join("usr").is_dir() {
        return Err(bad(
            "has no usr/ directory, so it is not a root file system".into(),
        ));
    }
    std::path::absolute(dir).map_err(|e| bad(e.to_string()))
}

pub fn prepare(
    dir: &Path,
    name: &str,
    plan: &Plan,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RootError> {
    let dir = check(dir)?;
    // No store is read, unless its share is asked for.
    let store_root = if plan.guest.bind_storage_ro {
        Some(store::locate_store(plan.storage.as_deref())?)
    } else {
        None
    };
    tracing::info!(rootfs = %name, mode = privileges.describe(), "booting a root directory (--rootfs)");
    let scratch = match &plan.writes {
        WritesTo::Throwaway { scratch: Some(d) } => Scratch::Dir(d.clone()),
        _ => Scratch::Tmpfs { size_bytes: None },
    };
    let layout = rootfs::plan_rootfs_dir(&dir, run_dir, scratch, !privileges.trusted_xattrs());
    let mounted = prepared.rootfs.insert(rootfs::apply_rootfs(&layout)?);
    let root = mounted.root().to_path_buf();
    for marker in rootfs::remove_engine_markers(&root)? {
        tracing::info!(file = %marker.display(), from = %dir.display(), "hidden from the guest: a container engine's marker, copied with the root, would make systemd think it runs in a container");
    }
    // A directory carries no config to say its architecture: the host's is assumed.
    let arch = crate::arch::Arch::host();
    let kind = container_disk::tree_or_disk(root, name, plan, run_dir, prepared, arch)?;
    Ok(Root {
        kind,
        arch,
        name: name.to_string(),
        id: String::new(),
        store_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_with_usr_is_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let not_root = |p: &Path| matches!(check(p), Err(RootfsError::RootDir { .. }));
        // Missing, a file, a directory without usr/.
        assert!(not_root(&root));
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(not_root(&dir.path().join("file")));
        std::fs::create_dir(&root).unwrap();
        assert!(not_root(&root));
        std::fs::create_dir(root.join("usr")).unwrap();
        assert_eq!(check(&root).unwrap(), root);
    }
}
