//! Read-only reader for podman's image store (containers/storage).
//!
//! The host's store is bind-mounted read-only and is untrusted input: every
//! file is size-capped and parsed defensively, ids are checked before they
//! become paths, and nothing here panics on bad data. We never take the
//! store's lock files (the mount is read-only); if podman rewrites metadata
//! while we read it, the user sees a "corrupt metadata" error and retries.
//!
//! By concern: `metadata` reads the store's JSON records (size-capped, ids checked),
//! `reference` finds an image by name, ID or digest (and suggests close names), `layers`
//! turns an image into its chain of layer directories, each resolved beneath the root, `config`
//! reads an image's platform (its architecture) from its config.

mod config;
mod layers;
mod metadata;
mod reference;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

pub use config::Platform;
use metadata::{is_id, read_records, Image, ImageRecord, LayerRecord};
use reference::parse_name;

pub const DEFAULT_STORE_PATHS: &[&str] = &["/run/host-storage", "/var/lib/containers/storage"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no podman store at {}: mount it with -v /var/lib/containers/storage:/run/host-storage:ro, or pass --storage DIR", join_paths(.tried))]
    Locate { tried: Vec<PathBuf> },
    #[error("{} is not a podman store (no overlay-images/ or vfs-images/ in it): pass the storage root, e.g. --storage /var/lib/containers/storage", .path.display())]
    NotAStore { path: PathBuf },
    #[error("the store at {} uses the unsupported storage driver {driver:?}: bcvk reads only overlay and vfs stores; use podman's default overlay driver", .root.display())]
    UnsupportedDriver { root: PathBuf, driver: String },
    #[error("cannot read store metadata {}: {source}: check that the store is mounted readable (-v ...:/run/host-storage:ro)", .path.display())]
    ReadMetadata {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store metadata {} is {size} bytes, over the {limit}-byte limit: the store looks corrupt; check it with `podman images` on the host", .path.display())]
    MetadataTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("store metadata {} is corrupt ({source}): if podman was writing it, retry; else check the store with `podman images` on the host", .path.display())]
    ParseMetadata {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}; use a name like localhost/foo:latest, an image ID, or name@sha256:<digest>")]
    ParseReference {
        reference: String,
        reason: &'static str,
    },
    #[error("image {reference:?} not found in the store (image not known){}: build or pull it on the host with podman; bcvk reads the store read-only", did_you_mean(.suggestions))]
    ImageNotFound {
        reference: String,
        suggestions: Vec<String>,
    },
    #[error("image reference {reference:?} is ambiguous, it matches {}: use the full name or image ID", .candidates.join(", "))]
    Ambiguous {
        reference: String,
        candidates: Vec<String>,
    },
    #[error(
        "image {image} has no layers, so there is nothing to boot: use a bootable container image"
    )]
    NoLayers { image: String },
    #[error("image {image} refers to layer {layer:?}, which is not a valid layer id: the store is corrupt; remove and re-pull the image with podman")]
    LayerId { image: String, layer: String },
    #[error("image {image} needs layer {layer}, which is missing from the store's layer list: remove and re-pull the image with podman on the host")]
    MissingLayer { image: String, layer: String },
    #[error("layer {layer} has no usable directory {} ({source}): mount the whole storage root, not a part of it, or re-pull the image", .path.display())]
    LayerDir {
        layer: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} in the store is a symbolic link or passes through one: bcvk never follows links out of the store (it would boot files from elsewhere); remove the link, or re-pull the image with podman on the host", .path.display())]
    Symlink { path: PathBuf },
    #[error("the layer chain of image {image} loops back to layer {layer}: the store is corrupt; remove and re-pull the image with podman")]
    LayerCycle { image: String, layer: String },
    #[error("image {image} has more than {limit} layers, more than overlayfs can stack: squash it (podman build --squash) and retry")]
    TooManyLayers { image: String, limit: usize },
}

impl StoreError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            StoreError::ParseReference { .. } => Exit::Usage,
            StoreError::ImageNotFound { .. }
            | StoreError::Ambiguous { .. }
            | StoreError::Locate { .. } => Exit::NotFound,
            _ => Exit::StoreCorrupt,
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(" or ")
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay,
    Vfs,
}

impl Driver {
    /// containers/storage names its metadata dirs `<driver>-images` etc.
    fn prefix(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::Vfs => "vfs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub name: String,
    /// Top first: the order overlayfs's lowerdir= wants.
    pub layers: Vec<Layer>,
    pub driver: Driver,
    pub userxattr: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub id: String,
    pub diff_dir: PathBuf,
    pub short_link: Option<PathBuf>,
}

pub struct Store {
    root: PathBuf,
    /// The root, opened once: every path beneath it is resolved from here.
    root_fd: OwnedFd,
    driver: Driver,
    images: Vec<Image>,
    /// layer id -> parent id
    layers: HashMap<String, Option<String>>,
    userxattr: bool,
}

pub fn locate_store(explicit: Option<&Path>) -> Result<PathBuf, StoreError> {
    if let Some(path) = explicit {
        detect_driver(path)?;
        return Ok(path.to_path_buf());
    }
    // A default holding a foreign driver's store explains the failure better
    // than "no store", so remember it.
    let mut foreign = None;
    for candidate in DEFAULT_STORE_PATHS.iter().map(Path::new) {
        match detect_driver(candidate) {
            Ok(_) => return Ok(candidate.to_path_buf()),
            Err(e @ StoreError::UnsupportedDriver { .. }) if foreign.is_none() => foreign = Some(e),
            Err(_) => {}
        }
    }
    Err(foreign.unwrap_or_else(|| StoreError::Locate {
        tried: DEFAULT_STORE_PATHS.iter().map(PathBuf::from).collect(),
    }))
}

fn detect_driver(root: &Path) -> Result<Driver, StoreError> {
    for driver in [Driver::Overlay, Driver::Vfs] {
        if root.join(format!("{}-images", driver.prefix())).is_dir() {
            return Ok(driver);
        }
    }
    let mut foreign: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix("-images").map(str::to_owned)
        })
        .collect();
    foreign.sort();
    match foreign.into_iter().next() {
        Some(driver) => Err(StoreError::UnsupportedDriver {
            root: root.to_path_buf(),
            driver,
        }),
        None => Err(StoreError::NotAStore {
            path: root.to_path_buf(),
        }),
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let driver = detect_driver(root)?;
        let prefix = driver.prefix();
        // The root itself is the user's choice (--storage, or the mount point) and may be
        // reached through links; nothing beneath it may.
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StoreError::ReadMetadata {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        let image_records: Vec<ImageRecord> =
            read_records(&root_fd, root, &format!("{prefix}-images/images.json"))?;
        let mut layers = HashMap::new();
        for file in ["layers.json", "volatile-layers.json"] {
            let rel = format!("{prefix}-layers/{file}");
            let path = root.join(&rel);
            for record in read_records::<LayerRecord>(&root_fd, root, &rel)? {
                // Skip rather than fail: one odd record must not make every
                // other image unbootable. Chains through it fail on lookup.
                if is_id(&record.id) {
                    let parent = record.parent.filter(|p| !p.is_empty());
                    layers.insert(record.id, parent);
                } else {
                    tracing::warn!(path = %path.display(), id = %record.id, "skipping layer record with invalid id");
                }
            }
        }
        let mut images = Vec::new();
        for record in image_records {
            if !is_id(&record.id) {
                tracing::warn!(id = %record.id, "skipping image record with invalid id");
                continue;
            }
            let mut digests: Vec<String> = record.digest.into_iter().collect();
            digests.extend(record.digests.unwrap_or_default());
            // A name no reference can match is of no use, and would end up in
            // messages: one with a newline could forge lines of output.
            let names = record
                .names
                .unwrap_or_default()
                .into_iter()
                .filter(|name| {
                    let valid = parse_name(name).is_ok();
                    if !valid {
                        tracing::warn!(id = %record.id, name = ?name, "skipping invalid image name");
                    }
                    valid
                })
                .collect();
            images.push(Image {
                id: record.id,
                digests,
                names,
                layer: record.layer.filter(|l| !l.is_empty()),
            });
        }
        let metadata = rustix::fs::fstat(&root_fd).map_err(|e| StoreError::ReadMetadata {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        // A rootless user's store keeps overlay whiteouts in user.overlay.*
        // xattrs; vfs layers are plain trees and need no overlay xattrs.
        let userxattr = driver == Driver::Overlay && metadata.st_uid != 0;
        Ok(Store {
            root: root.to_path_buf(),
            root_fd,
            driver,
            images,
            layers,
            userxattr,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn image_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| i.names.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage, StoreError> {
        let (index, name) = self.find_image(reference)?;
        let image = &self.images[index];
        let layers = self.layer_chain(image, &name)?;
        Ok(ResolvedImage {
            id: image.id.clone(),
            name,
            layers,
            driver: self.driver,
            userxattr: self.userxattr,
        })
    }
}
