//! What bcvk adds to a cloud-init guest's first boot (see `firstboot` for the seed's files).

use std::path::Path;

use crate::firstboot;
use crate::guestfs;
use crate::plan::{Plan, WritesTo};
use crate::root::{Root, RootKind};

use super::RunError;

/// What bcvk adds to a cloud-init guest's first boot. A disk image's guest gets its shares,
/// swap and units this way (bcvk cannot write into its root); a bootc image gets them in its
/// root, and here only the keys, host name and password.
pub fn first_boot(
    plan: &Plan,
    root: &Root,
    guest: &guestfs::GuestPlan,
    keys: Vec<String>,
) -> Result<firstboot::FirstBoot, RunError> {
    let mut fb = firstboot::FirstBoot {
        instance_id: match (
            &root.kind,
            matches!(plan.writes, WritesTo::Persistent { .. }),
        ) {
            // A persistent disk keeps its identity: cloud-init's once-per-instance steps (host
            // keys, users) are not redone at every boot.
            (RootKind::Disk { disk, .. }, true) => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(disk.path.as_os_str().as_encoded_bytes());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("bcvk-{hex}")
            }
            _ => format!("bcvk-{:016x}", rand::random::<u64>()),
        },
        hostname: plan.guest.hostname.clone(),
        keys,
        password: plan.guest.password.clone(),
        ..firstboot::FirstBoot::default()
    };
    if let RootKind::Tree { .. } = root.kind {
        return Ok(fb);
    }
    for s in &guest.shares {
        let mut opts = String::from("defaults,nofail");
        if s.readonly {
            opts.push_str(",ro");
        }
        fb.mounts.push([
            s.tag.clone(),
            s.guest_path.display().to_string(),
            "virtiofs".into(),
            opts,
        ]);
    }
    if plan.guest.swap_bytes.is_some() {
        fb.mounts.push([
            "/dev/disk/by-id/virtio-swap".into(),
            "none".into(),
            "swap".into(),
            "sw,nofail".into(),
        ]);
    }
    if let Some(dir) = &plan.guest.systemd_units {
        for e in guestfs::unit_entries(dir)? {
            match e {
                guestfs::Entry::File { path, contents } => {
                    fb.files.push((Path::new("/").join(path), contents))
                }
                guestfs::Entry::Symlink { path, target } => {
                    if let Some(unit) = target.file_name() {
                        fb.start_units.push(unit.to_string_lossy().into_owned());
                    }
                    fb.links.push((Path::new("/").join(path), target));
                }
            }
        }
    }
    Ok(fb)
}
