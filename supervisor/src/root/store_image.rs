//! An image from the podman store: resolved read-only, its layers stacked as an overlay with a
//! writable layer (a tmpfs, `--scratch`, or the `--persistent` state) and the result shared
//! over virtiofs; a kernel in it makes it a tree, a sole disk image a containerDisk.

use std::path::Path;

use crate::arch::Arch;
use crate::opaque;
use crate::plan::{Plan, WritesTo};
use crate::rootfs::{self, Scratch};
use crate::store::{self, Store};
use crate::userns::Privileges;

use super::{container_disk, persistent, Prepared, Root, RootError};

pub fn prepare(
    name: &str,
    plan: &Plan,
    privileges: &Privileges,
    run_dir: &Path,
    prepared: &mut Prepared,
) -> Result<Root, RootError> {
    let store_root = store::locate_store(plan.storage.as_deref())?;
    let store = Store::open(&store_root)?;
    let image = store.resolve(name)?;
    // Refused before anything is mounted.
    let arch = match store.image_platform(&image)? {
        Some(p) => Arch::from_platform(
            &image.name,
            p.os.as_deref(),
            &p.architecture,
            p.variant.as_deref(),
        )?,
        None => Arch::host(),
    };
    tracing::info!(image = %image.name, id = %&image.id[..12], layers = image.layers.len(), arch = arch.oci_name(), mode = privileges.describe(), "image found");
    if !privileges.many_ids {
        tracing::warn!("the container maps a single user id: files of other owners in the image show as nobody (65534) in the guest; give the user subordinate ids (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER, then podman system migrate)");
    }
    let scratch = match &plan.writes {
        WritesTo::Persistent { state, reset } => {
            let st =
                prepared
                    .state
                    .insert(persistent::open(state, &image.id, &image.name, *reset)?);
            tracing::info!(
                dir = %st.dir.display(),
                "{} the persistent state",
                if st.fresh { "created" } else { "reusing" }
            );
            Scratch::Persistent {
                upper: st.upper(),
                work: st.work(),
            }
        }
        WritesTo::Throwaway { scratch: Some(dir) } => Scratch::Dir(dir.clone()),
        WritesTo::Throwaway { scratch: None } => Scratch::Tmpfs { size_bytes: None },
    };
    // Without CAP_SYS_ADMIN in the host's user namespace the overlay can use only user.*
    // xattrs: a rootful store's trusted.* opaque marks are then emulated (see `opaque`).
    // A persistent upper always keeps user.* xattrs, so that it serves in every mode.
    let persistent = matches!(plan.writes, WritesTo::Persistent { .. });
    let userxattr = image.userxattr || !privileges.trusted_xattrs() || persistent;
    let emulations = if userxattr && image.driver == store::Driver::Overlay {
        opaque::plan(store.root(), &image.layers)?
    } else {
        Vec::new()
    };
    let layout = rootfs::plan_rootfs(&image, run_dir, scratch, userxattr, &emulations);
    let mounted = prepared.rootfs.insert(rootfs::apply_rootfs(&layout)?);
    let dir = mounted.root().to_path_buf();
    let kind = container_disk::tree_or_disk(dir, &image.name, plan, run_dir, prepared, arch)?;
    Ok(Root {
        kind,
        arch,
        name: image.name.clone(),
        id: image.id.clone(),
        store_root: Some(store_root),
    })
}
