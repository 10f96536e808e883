//! Read-only reader for podman's image store (containers/storage).
//!
//! The host's store is bind-mounted read-only and is untrusted input: every
//! file is size-capped and parsed defensively, ids are checked before they
//! become paths, and nothing here panics on bad data. We never take the
//! store's lock files (the mount is read-only); if podman rewrites metadata
//! while we read it, the user sees a "corrupt metadata" error and retries.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::beneath::{is_link_refusal, open_beneath};

pub const DEFAULT_STORE_PATHS: &[&str] = &["/run/host-storage", "/var/lib/containers/storage"];

/// Real stores with thousands of images stay far below this; anything
/// bigger is corruption or hostile, and reading it would exhaust memory.
const MAX_METADATA_BYTES: u64 = 256 << 20;
/// overlayfs refuses more lower layers than this.
const MAX_LAYERS: usize = 500;
/// Shorter ID prefixes match too much to be meant as an ID.
const MIN_ID_PREFIX: usize = 3;
const MAX_SUGGESTIONS: usize = 5;

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
    #[error("image {reference:?} not found in the store{}: build or pull it on the host with podman; bcvk reads the store read-only", did_you_mean(.suggestions))]
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

// Only the fields we use; serde ignores the rest. Options tolerate `null`,
// which Go's encoder emits for nil slices.
#[derive(Deserialize)]
struct ImageRecord {
    id: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    digests: Option<Vec<String>>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    layer: Option<String>,
}

#[derive(Deserialize)]
struct LayerRecord {
    id: String,
    #[serde(default)]
    parent: Option<String>,
}

struct Image {
    id: String,
    digests: Vec<String>,
    names: Vec<String>,
    layer: Option<String>,
}

/// One way a reference matched: which image, via which stored name, and
/// whether that name is a `localhost/` one (preferred on ambiguity).
struct Match {
    image: usize,
    name: String,
    localhost: bool,
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

/// Opens a store file beneath the root without blocking (a FIFO planted in the store would
/// hang a plain open) and insists on a regular file.
fn open_regular(root: &OwnedFd, rel: &Path) -> Result<fs::File, Errno> {
    let fd = open_beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
    let file = fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(Errno::INVAL),
        Err(e) => Err(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
    }
}

fn io_error(e: Errno, path: &Path) -> std::io::Error {
    if e == Errno::INVAL {
        std::io::Error::other(format!("{} is not a regular file", path.display()))
    } else {
        e.into()
    }
}

/// A missing file is an empty list: podman creates these lazily.
fn read_records<T: DeserializeOwned>(
    root_fd: &OwnedFd,
    root: &Path,
    rel: &str,
) -> Result<Vec<T>, StoreError> {
    let path = &root.join(rel);
    let read_err = |source| StoreError::ReadMetadata {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_regular(root_fd, Path::new(rel)) {
        Ok(file) => file,
        Err(e) if e == Errno::NOENT => return Ok(Vec::new()),
        Err(e) if is_link_refusal(e) => {
            return Err(StoreError::Symlink {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(read_err(io_error(e, path))),
    };
    let too_large = |size| StoreError::MetadataTooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_METADATA_BYTES,
    };
    let size = file.metadata().map_err(read_err)?.len();
    if size > MAX_METADATA_BYTES {
        return Err(too_large(size));
    }
    // The file may grow after the size check; the cap still holds.
    let mut data = Vec::new();
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() as u64 > MAX_METADATA_BYTES {
        return Err(too_large(data.len() as u64));
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&data).map_err(|source| StoreError::ParseMetadata {
        path: path.to_path_buf(),
        source,
    })
}

/// Ids become path components, so this check is also what keeps `../etc`
/// out of our paths.
fn is_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(is_id)
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

    fn find_image(&self, reference: &str) -> Result<(usize, String), StoreError> {
        let bad = |reason| StoreError::ParseReference {
            reference: reference.to_owned(),
            reason,
        };
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if hex.len() < MIN_ID_PREFIX || hex.len() > 64 || !is_lower_hex(hex) {
                return Err(bad(
                    "sha256: must be followed by 3 to 64 lowercase hex digits",
                ));
            }
            let mut matches = self.id_matches(hex);
            if matches.is_empty() && hex.len() == 64 {
                matches = self.digest_matches(reference);
            }
            return self.pick(reference, matches);
        }
        // Like podman, an ID (prefix) wins over a name that happens to be hex.
        let mut id_ambiguity = None;
        if reference.len() >= MIN_ID_PREFIX && reference.len() <= 64 && is_lower_hex(reference) {
            let matches = self.id_matches(reference);
            match matches.len() {
                0 => {}
                1 => return self.pick(reference, matches),
                _ => id_ambiguity = Some(self.pick(reference, matches)),
            }
        }
        let parsed = parse_name(reference).map_err(bad)?;
        let matches = self.name_matches(&parsed);
        match id_ambiguity {
            Some(err) if matches.is_empty() => err,
            _ => self.pick(reference, matches),
        }
    }

    fn id_matches(&self, prefix: &str) -> Vec<Match> {
        self.images
            .iter()
            .enumerate()
            .filter(|(_, image)| image.id.starts_with(prefix))
            .map(|(index, image)| Match {
                image: index,
                name: display_name(image),
                localhost: false,
            })
            .collect()
    }

    fn digest_matches(&self, digest: &str) -> Vec<Match> {
        self.images
            .iter()
            .enumerate()
            .filter(|(_, image)| image.digests.iter().any(|d| d == digest))
            .map(|(index, image)| Match {
                image: index,
                name: display_name(image),
                localhost: false,
            })
            .collect()
    }

    fn name_matches(&self, wanted: &NameRef) -> Vec<Match> {
        let qualified = is_qualified(wanted.repo);
        let mut matches = Vec::new();
        for (index, image) in self.images.iter().enumerate() {
            for name in &image.names {
                let Ok(stored) = parse_name(name) else {
                    continue;
                };
                let Some(localhost) = repo_matches(wanted.repo, qualified, stored.repo) else {
                    continue;
                };
                let hit = match wanted.digest {
                    Some(digest) => {
                        stored.digest == Some(digest) || image.digests.iter().any(|d| d == digest)
                    }
                    // No tag means :latest, on both sides.
                    None => {
                        stored.digest.is_none()
                            && stored.tag.unwrap_or("latest") == wanted.tag.unwrap_or("latest")
                    }
                };
                if hit {
                    matches.push(Match {
                        image: index,
                        name: name.clone(),
                        localhost,
                    });
                }
            }
        }
        matches
    }

    fn pick(&self, reference: &str, matches: Vec<Match>) -> Result<(usize, String), StoreError> {
        let mut images: Vec<usize> = matches.iter().map(|m| m.image).collect();
        images.sort_unstable();
        images.dedup();
        let mut local: Vec<usize> = matches
            .iter()
            .filter(|m| m.localhost)
            .map(|m| m.image)
            .collect();
        local.sort_unstable();
        local.dedup();
        let chosen = match (images.as_slice(), local.as_slice()) {
            ([], _) => {
                return Err(StoreError::ImageNotFound {
                    reference: reference.to_owned(),
                    suggestions: self.suggestions(reference),
                })
            }
            ([only], _) | (_, [only]) => *only,
            _ => {
                let mut candidates: Vec<String> = matches.into_iter().map(|m| m.name).collect();
                candidates.sort();
                candidates.dedup();
                return Err(StoreError::Ambiguous {
                    reference: reference.to_owned(),
                    candidates,
                });
            }
        };
        // Report the localhost name if that is how it matched, else the
        // first in sort order, so the answer is stable.
        let name = matches
            .iter()
            .filter(|m| m.image == chosen)
            .min_by_key(|m| (!m.localhost, m.name.clone()))
            .map(|m| m.name.clone())
            .unwrap_or_else(|| display_name(&self.images[chosen]));
        Ok((chosen, name))
    }

    fn suggestions(&self, reference: &str) -> Vec<String> {
        let wanted = parse_name(reference)
            .map(|n| last_component(n.repo))
            .unwrap_or(reference);
        let mut scored: Vec<(usize, String)> = self
            .image_names()
            .into_iter()
            .filter_map(|name| {
                let last = parse_name(&name).map(|n| last_component(n.repo)).ok()?;
                let distance = if last == wanted {
                    0
                } else {
                    edit_distance(wanted, last).min(edit_distance(reference, &name))
                };
                (distance <= 2.max(wanted.len() / 4)).then_some((distance, name))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(MAX_SUGGESTIONS)
            .map(|(_, name)| name)
            .collect()
    }

    fn layer_chain(&self, image: &Image, name: &str) -> Result<Vec<Layer>, StoreError> {
        let Some(top) = &image.layer else {
            return Err(StoreError::NoLayers {
                image: name.to_owned(),
            });
        };
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(top.clone());
        while let Some(id) = next {
            if !is_id(&id) {
                return Err(StoreError::LayerId {
                    image: name.to_owned(),
                    layer: id,
                });
            }
            if !seen.insert(id.clone()) {
                return Err(StoreError::LayerCycle {
                    image: name.to_owned(),
                    layer: id,
                });
            }
            if chain.len() == MAX_LAYERS {
                return Err(StoreError::TooManyLayers {
                    image: name.to_owned(),
                    limit: MAX_LAYERS,
                });
            }
            let Some(parent) = self.layers.get(&id) else {
                return Err(StoreError::MissingLayer {
                    image: name.to_owned(),
                    layer: id,
                });
            };
            next = parent.clone();
            chain.push(self.layer(id)?);
            if self.driver == Driver::Vfs {
                // Each vfs layer dir is a complete root; parents are not needed.
                break;
            }
        }
        Ok(chain)
    }

    fn layer(&self, id: String) -> Result<Layer, StoreError> {
        let rel = match self.driver {
            Driver::Overlay => Path::new("overlay").join(&id).join("diff"),
            Driver::Vfs => Path::new("vfs/dir").join(&id),
        };
        let diff_dir = self.root.join(&rel);
        // Every component beneath the root, not only the last: a layer dir replaced by a
        // link to elsewhere would boot that directory's files.
        match open_beneath(
            &self.root_fd,
            &rel,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        ) {
            Ok(_) => {}
            Err(e) if is_link_refusal(e) => return Err(StoreError::Symlink { path: diff_dir }),
            Err(e) => {
                return Err(StoreError::LayerDir {
                    layer: id,
                    path: diff_dir,
                    source: e.into(),
                })
            }
        }
        let short_link = match self.driver {
            Driver::Overlay => self.short_link(&id)?,
            Driver::Vfs => None,
        };
        Ok(Layer {
            id,
            diff_dir,
            short_link,
        })
    }

    /// `overlay/l/<short>`, only if `overlay/<id>/link` names it and it points back at this
    /// very layer: a stale link would mount another one. The `l/<short>` entry is the one
    /// link the store is made of; the directories leading to it and to `link` must be none.
    /// A missing or odd short link just means the long path is used; a link where a
    /// directory belongs is refused.
    fn short_link(&self, id: &str) -> Result<Option<PathBuf>, StoreError> {
        let refuse = |rel: &Path| StoreError::Symlink {
            path: self.root.join(rel),
        };
        let link_file = Path::new("overlay").join(id).join("link");
        let mut short = String::new();
        match open_regular(&self.root_fd, &link_file) {
            Ok(file) => {
                if file.take(64).read_to_string(&mut short).is_err() {
                    return Ok(None);
                }
            }
            Err(e) if is_link_refusal(e) => return Err(refuse(&link_file)),
            Err(_) => return Ok(None),
        }
        let short = short.trim();
        if short.is_empty() || short.len() > 32 || !short.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Ok(None);
        }
        let links = Path::new("overlay/l");
        let dir = match open_beneath(
            &self.root_fd,
            links,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(e) if is_link_refusal(e) => return Err(refuse(links)),
            Err(_) => return Ok(None),
        };
        let Ok(target) = rustix::fs::readlinkat(&dir, short, Vec::new()) else {
            return Ok(None);
        };
        let expected = format!("../{id}/diff");
        Ok((target.as_bytes() == expected.as_bytes()).then(|| self.root.join(links).join(short)))
    }
}

fn display_name(image: &Image) -> String {
    image
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| image.id[..12].to_owned())
}

struct NameRef<'a> {
    repo: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn parse_name(s: &str) -> Result<NameRef<'_>, &'static str> {
    if s.is_empty() || s.len() > 1024 {
        return Err("it must be 1 to 1024 characters");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) if is_digest(digest) => (rest, Some(digest)),
        Some(_) => return Err("the part after @ must be sha256:<64 hex digits>"),
        None => (s, None),
    };
    // A ':' after the last '/' starts a tag; one before it is a registry port.
    let base = rest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match rest[base..].rfind(':') {
        Some(i) => (&rest[..base + i], Some(&rest[base + i + 1..])),
        None => (rest, None),
    };
    if repo.split('/').any(str::is_empty) || tag == Some("") {
        return Err("it has an empty name component or tag");
    }
    Ok(NameRef { repo, tag, digest })
}

/// Whether a repository names its registry, as podman decides it.
fn is_qualified(repo: &str) -> bool {
    repo.split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

fn last_component(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// Some(is_localhost) if the stored repository satisfies the wanted one.
fn repo_matches(wanted: &str, qualified: bool, stored: &str) -> Option<bool> {
    let localhost = stored.starts_with("localhost/");
    if qualified {
        // docker.io/foo is stored as docker.io/library/foo.
        let official = wanted
            .strip_prefix("docker.io/")
            .filter(|rest| !rest.contains('/'))
            .is_some_and(|rest| stored.strip_prefix("docker.io/library/") == Some(rest));
        return (stored == wanted || official).then_some(localhost);
    }
    let official =
        !wanted.contains('/') && stored.strip_prefix("docker.io/library/") == Some(wanted);
    let any_registry = stored.split_once('/').is_some_and(|(registry, rest)| {
        rest == wanted && is_qualified(stored) && !registry.is_empty()
    });
    (official || any_registry).then_some(localhost)
}

/// Levenshtein distance; long inputs are not worth suggesting (and would be
/// quadratic), so they count as far apart.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 128 || b.len() > 128 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A 64-hex id starting with `prefix`, so tests can pick prefixes.
    fn id(prefix: &str) -> String {
        format!("{prefix:0<64}")
    }

    /// Builds a fake overlay (or vfs) store in a tempdir.
    struct Fixture {
        dir: tempfile::TempDir,
        driver: Driver,
        images: Vec<Value>,
        layers: Vec<Value>,
    }

    impl Fixture {
        fn new() -> Self {
            Self::with_driver(Driver::Overlay)
        }

        fn with_driver(driver: Driver) -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join(format!("{}-images", driver.prefix()))).unwrap();
            fs::create_dir(dir.path().join(format!("{}-layers", driver.prefix()))).unwrap();
            Fixture {
                dir,
                driver,
                images: Vec::new(),
                layers: Vec::new(),
            }
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        /// A layer with its diff dir, link file and `l/` symlink.
        fn layer(&mut self, layer: &str, parent: Option<&str>) -> &mut Self {
            self.layers.push(json!({"id": layer, "parent": parent}));
            let root = self.dir.path();
            if self.driver == Driver::Vfs {
                fs::create_dir_all(root.join("vfs/dir").join(layer)).unwrap();
                return self;
            }
            let short = format!("SHORT{}", &layer[..8].to_uppercase());
            fs::create_dir_all(root.join("overlay").join(layer).join("diff")).unwrap();
            fs::create_dir_all(root.join("overlay/l")).unwrap();
            fs::write(root.join("overlay").join(layer).join("link"), &short).unwrap();
            let target = format!("../{layer}/diff");
            std::os::unix::fs::symlink(target, root.join("overlay/l").join(short)).unwrap();
            self
        }

        fn image(&mut self, image: &str, top: Option<&str>, names: &[&str]) -> &mut Self {
            self.images
                .push(json!({"id": image, "layer": top, "names": names, "metadata": "x"}));
            self
        }

        fn raw_image(&mut self, record: Value) -> &mut Self {
            self.images.push(record);
            self
        }

        fn write(&self) {
            let prefix = self.driver.prefix();
            let images = serde_json::to_vec(&self.images).unwrap();
            fs::write(
                self.root().join(format!("{prefix}-images/images.json")),
                images,
            )
            .unwrap();
            let layers = serde_json::to_vec(&self.layers).unwrap();
            fs::write(
                self.root().join(format!("{prefix}-layers/layers.json")),
                layers,
            )
            .unwrap();
        }

        fn open(&self) -> Store {
            self.write();
            Store::open(self.root()).unwrap()
        }
    }

    /// A store with one single-layer image per given name list.
    fn store_with(images: &[(&str, &[&str])]) -> (Fixture, Store) {
        let mut fx = Fixture::new();
        for (n, (image, names)) in images.iter().enumerate() {
            let layer = id(&format!("{n}"));
            fx.layer(&layer, None)
                .image(&id(image), Some(&layer), names);
        }
        let store = fx.open();
        (fx, store)
    }

    fn resolved_id(store: &Store, reference: &str) -> String {
        store.resolve(reference).unwrap().id
    }

    #[test]
    fn resolves_layer_chain_top_first_with_short_links() {
        let mut fx = Fixture::new();
        let (bottom, mid, top) = (id("1"), id("2"), id("3"));
        fx.layer(&bottom, None)
            .layer(&mid, Some(&bottom))
            .layer(&top, Some(&mid));
        fx.image(&id("a"), Some(&top), &["localhost/os:latest"]);
        let store = fx.open();
        let image = store.resolve("localhost/os:latest").unwrap();
        let ids: Vec<&str> = image.layers.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, [top.as_str(), mid.as_str(), bottom.as_str()]);
        assert_eq!(
            image.layers[0].diff_dir,
            fx.root().join("overlay").join(&top).join("diff")
        );
        assert_eq!(
            image.layers[0].short_link,
            Some(fx.root().join("overlay/l/SHORT30000000"))
        );
        assert_eq!(
            (image.driver, image.name.as_str()),
            (Driver::Overlay, "localhost/os:latest")
        );
        // The fixture is owned by whoever runs the tests.
        assert_eq!(image.userxattr, nix::unistd::getuid().as_raw() != 0);
    }

    #[test]
    fn bad_short_links_are_ignored() {
        let mut fx = Fixture::new();
        let (a, b) = (id("1"), id("2"));
        fx.layer(&a, None)
            .layer(&b, Some(&a))
            .image(&id("a"), Some(&b), &["localhost/x:latest"]);
        // a's link names a dir that points at another layer; b's is hostile.
        fs::write(
            fx.root().join("overlay").join(&a).join("link"),
            "SHORT20000000",
        )
        .unwrap();
        fs::write(fx.root().join("overlay").join(&b).join("link"), "../../etc").unwrap();
        let image = fx.open().resolve("localhost/x").unwrap();
        assert!(image.layers.iter().all(|l| l.short_link.is_none()));
    }

    /// Replaces `rel` (a directory of the store) by a link to a copy of it outside the
    /// store, as an attacker with write access to the store would.
    fn move_out_and_link(fx: &Fixture, outside: &Path, rel: &str) -> PathBuf {
        let inside = fx.root().join(rel);
        let copy = outside.join(rel.replace('/', "_"));
        fs::rename(&inside, &copy).unwrap();
        std::os::unix::fs::symlink(&copy, &inside).unwrap();
        inside
    }

    fn two_layer_fixture() -> (Fixture, String, String) {
        let mut fx = Fixture::new();
        let (a, b) = (id("1"), id("2"));
        fx.layer(&a, None)
            .layer(&b, Some(&a))
            .image(&id("a"), Some(&b), &["localhost/x:latest"]);
        fx.write();
        (fx, a, b)
    }

    #[track_caller]
    fn assert_refused<T>(result: Result<T, StoreError>, path: &Path) {
        let Err(err) = result else {
            panic!("{} was followed", path.display())
        };
        assert!(
            matches!(&err, StoreError::Symlink { path: p } if p == path),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn links_out_of_the_store_are_refused_at_every_component() {
        let outside = tempfile::tempdir().unwrap();
        // The layer dir itself (the case of the issue), its diff, the parent's layer dir.
        for rel in ["overlay/{b}", "overlay/{b}/diff", "overlay/{a}"] {
            let (fx, a, b) = two_layer_fixture();
            let rel = rel.replace("{a}", &a).replace("{b}", &b);
            let link = move_out_and_link(&fx, outside.path(), &rel);
            let expected = if rel.ends_with("diff") {
                link
            } else {
                link.join("diff")
            };
            assert_refused(Store::open(fx.root()).unwrap().resolve("x"), &expected);
        }
        // The whole overlay/ directory.
        let (fx, _, b) = two_layer_fixture();
        move_out_and_link(&fx, outside.path(), "overlay");
        assert_refused(
            Store::open(fx.root()).unwrap().resolve("x"),
            &fx.root().join("overlay").join(&b).join("diff"),
        );
        // The metadata: a directory or a file replaced by a link.
        let (fx, _, _) = two_layer_fixture();
        move_out_and_link(&fx, outside.path(), "overlay-layers");
        assert_refused(
            Store::open(fx.root()),
            &fx.root().join("overlay-layers/layers.json"),
        );
        let (fx, _, _) = two_layer_fixture();
        let images = move_out_and_link(&fx, outside.path(), "overlay-images/images.json");
        assert_refused(Store::open(fx.root()), &images);
        // The short links' directory, and a layer's link file.
        let (fx, _, _) = two_layer_fixture();
        let links = move_out_and_link(&fx, outside.path(), "overlay/l");
        assert_refused(Store::open(fx.root()).unwrap().resolve("x"), &links);
        let (fx, _, b) = two_layer_fixture();
        let link_file = move_out_and_link(&fx, outside.path(), &format!("overlay/{b}/link"));
        assert_refused(Store::open(fx.root()).unwrap().resolve("x"), &link_file);
        // vfs: the layer dir.
        let mut fx = Fixture::with_driver(Driver::Vfs);
        let layer = id("1");
        fx.layer(&layer, None)
            .image(&id("a"), Some(&layer), &["localhost/v:latest"]);
        fx.write();
        let dir = move_out_and_link(&fx, outside.path(), &format!("vfs/dir/{layer}"));
        assert_refused(Store::open(fx.root()).unwrap().resolve("v"), &dir);
    }

    #[test]
    fn links_inside_the_store_are_refused_too() {
        // A link that stays inside the store still swaps one layer for another.
        let (fx, a, b) = two_layer_fixture();
        let top = fx.root().join("overlay").join(&b);
        fs::remove_dir_all(&top).unwrap();
        std::os::unix::fs::symlink(&a, &top).unwrap();
        assert_refused(
            Store::open(fx.root()).unwrap().resolve("x"),
            &top.join("diff"),
        );
    }

    #[test]
    fn a_linked_store_root_is_still_a_store() {
        // The root is the user's choice (--storage, a mount point) and may be a link.
        let (fx, _, _) = two_layer_fixture();
        let elsewhere = tempfile::tempdir().unwrap();
        let root = elsewhere.path().join("storage");
        std::os::unix::fs::symlink(fx.root(), &root).unwrap();
        let image = Store::open(&root).unwrap().resolve("x").unwrap();
        assert_eq!(image.layers.len(), 2);
        assert!(image.layers.iter().all(|l| l.short_link.is_some()));
    }

    #[test]
    fn the_walk_without_openat2_applies_the_same_rule() {
        let (fx, _, b) = two_layer_fixture();
        let root = rustix::fs::open(
            fx.root(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let rel = format!("overlay/{b}/diff");
        let dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        assert!(crate::beneath::open_walk(&root, Path::new(&rel), dir, Mode::empty()).is_ok());
        assert_eq!(
            crate::beneath::open_walk(&root, Path::new("overlay/../overlay"), dir, Mode::empty())
                .unwrap_err(),
            Errno::XDEV
        );
        let outside = tempfile::tempdir().unwrap();
        move_out_and_link(&fx, outside.path(), &format!("overlay/{b}"));
        assert_eq!(
            crate::beneath::open_walk(&root, Path::new(&rel), dir, Mode::empty()).unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(
            crate::beneath::open_walk(
                &root,
                Path::new(&format!("overlay/{b}")),
                dir,
                Mode::empty()
            )
            .unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(
            open_beneath(&root, Path::new(&rel), dir, Mode::empty()).unwrap_err(),
            Errno::LOOP
        );
    }

    #[test]
    fn full_names_need_exact_tag_and_default_to_latest() {
        let (_fx, store) = store_with(&[
            ("a", &["quay.io/org/os:latest"]),
            ("b", &["quay.io/org/os:41", "docker.io/library/fedora:41"]),
        ]);
        assert_eq!(resolved_id(&store, "quay.io/org/os"), id("a"));
        assert_eq!(resolved_id(&store, "quay.io/org/os:41"), id("b"));
        assert_eq!(resolved_id(&store, "docker.io/fedora:41"), id("b"));
        assert!(matches!(
            store.resolve("quay.io/org/os:40"),
            Err(StoreError::ImageNotFound { .. })
        ));
        assert!(matches!(
            store.resolve("quay.io/os"),
            Err(StoreError::ImageNotFound { .. })
        ));
    }

    #[test]
    fn short_names_match_any_registry() {
        let (_fx, store) = store_with(&[
            ("a", &["docker.io/library/fedora:41"]),
            ("b", &["quay.io/org/os:latest"]),
            ("c", &["registry.example.com:5000/tool:1"]),
        ]);
        assert_eq!(resolved_id(&store, "fedora:41"), id("a"));
        assert_eq!(resolved_id(&store, "org/os"), id("b"));
        assert_eq!(resolved_id(&store, "tool:1"), id("c"));
        let image = store.resolve("org/os").unwrap();
        assert_eq!(image.name, "quay.io/org/os:latest");
        // "library/fedora" is not "fedora" with a registry in front.
        assert!(store.resolve("os").is_err());
    }

    #[test]
    fn short_names_prefer_localhost_else_ambiguous() {
        let (_fx, store) = store_with(&[
            ("a", &["quay.io/x/os:latest"]),
            ("b", &["localhost/os:latest"]),
            ("c", &["docker.io/library/os:latest"]),
        ]);
        assert_eq!(resolved_id(&store, "os"), id("b"));
        let (_fx, store) = store_with(&[
            ("a", &["quay.io/os:latest"]),
            ("c", &["docker.io/library/os:latest"]),
        ]);
        let err = store.resolve("os").unwrap_err();
        assert!(matches!(&err, StoreError::Ambiguous { candidates, .. } if candidates.len() == 2));
        assert!(err.to_string().contains("use the full name"), "{err}");
        // The same image under two names is not ambiguous.
        let (_fx, store) =
            store_with(&[("a", &["quay.io/os:latest", "docker.io/library/os:latest"])]);
        assert_eq!(
            store.resolve("os").unwrap().name,
            "docker.io/library/os:latest"
        );
    }

    #[test]
    fn ids_and_unique_prefixes() {
        let (_fx, store) = store_with(&[
            ("abc1", &["localhost/one:latest"]),
            ("abc2", &[]),
            ("def", &[]),
        ]);
        assert_eq!(resolved_id(&store, &id("abc1")), id("abc1"));
        assert_eq!(resolved_id(&store, "abc1"), id("abc1"));
        assert_eq!(
            resolved_id(&store, &format!("sha256:{}", id("def"))),
            id("def")
        );
        assert_eq!(resolved_id(&store, "sha256:def"), id("def"));
        assert_eq!(store.resolve("abc2").unwrap().name, id("abc2")[..12]);
        assert_eq!(store.resolve("abc1").unwrap().name, "localhost/one:latest");
        assert!(matches!(
            store.resolve("abc"),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            store.resolve("sha256:ab"),
            Err(StoreError::ParseReference { .. })
        ));
        assert!(matches!(
            store.resolve("sha256:../etc"),
            Err(StoreError::ParseReference { .. })
        ));
    }

    #[test]
    fn hex_looking_names_fall_back_to_names() {
        let (_fx, store) = store_with(&[
            ("abc1", &[]),
            ("abc2", &[]),
            ("9", &["localhost/abc:latest"]),
        ]);
        assert_eq!(resolved_id(&store, "abc"), id("9"));
    }

    #[test]
    fn digests_match_image_digest_lists() {
        let digest = format!("sha256:{}", id("d1"));
        let other = format!("sha256:{}", id("d2"));
        let mut fx = Fixture::new();
        fx.layer(&id("1"), None);
        fx.raw_image(json!({"id": id("a"), "layer": id("1"), "digest": digest,
            "names": ["quay.io/org/os:latest"]}));
        fx.raw_image(json!({"id": id("b"), "layer": id("1"), "digests": [other],
            "names": null}));
        let store = fx.open();
        assert_eq!(resolved_id(&store, &digest), id("a"));
        assert_eq!(
            resolved_id(&store, &format!("quay.io/org/os@{digest}")),
            id("a")
        );
        assert_eq!(resolved_id(&store, &format!("org/os@{digest}")), id("a"));
        assert_eq!(resolved_id(&store, &other), id("b"));
        assert!(store
            .resolve(&format!("quay.io/org/other@{digest}"))
            .is_err());
        assert!(store.resolve(&format!("quay.io/org/os@{other}")).is_err());
        assert!(matches!(
            store.resolve("os@sha256:12"),
            Err(StoreError::ParseReference { .. })
        ));
    }

    #[test]
    fn not_found_suggests_close_names() {
        let (_fx, store) = store_with(&[
            ("a", &["quay.io/org/fedora-bootc:42"]),
            ("b", &["localhost/fedora-bootc:latest"]),
            ("c", &["docker.io/library/alpine:latest"]),
        ]);
        let err = store.resolve("fedora-boot").unwrap_err();
        let StoreError::ImageNotFound { suggestions, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            suggestions,
            &[
                "localhost/fedora-bootc:latest",
                "quay.io/org/fedora-bootc:42"
            ]
        );
        let message = err.to_string();
        assert!(
            message.contains("podman") && !message.contains('\n'),
            "{message}"
        );
        let err = store.resolve("zzz").unwrap_err();
        assert!(
            matches!(err, StoreError::ImageNotFound { suggestions, .. } if suggestions.is_empty())
        );
    }

    #[test]
    fn invalid_references_are_rejected() {
        let (_fx, store) = store_with(&[("a", &["localhost/os:latest"])]);
        for bad in ["", "os:", "a//b", "/os", "os@latest", "with space"] {
            let err = store.resolve(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::ParseReference { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn image_names_are_sorted() {
        let (_fx, store) = store_with(&[("a", &["z/z:1", "b/b:1"]), ("b", &["a/a:1"])]);
        assert_eq!(store.image_names(), ["a/a:1", "b/b:1", "z/z:1"]);
    }

    #[test]
    fn corrupt_metadata_is_an_error() {
        let fx = Fixture::new();
        let images = fx.root().join("overlay-images/images.json");
        for bad in [
            &b"[{\"id\": \"ab"[..],
            b"{\"id\": 1}",
            b"[{\"id\": 5}]",
            b"[1]",
        ] {
            fs::write(&images, bad).unwrap();
            let err = Store::open(fx.root()).err().unwrap();
            assert!(matches!(err, StoreError::ParseMetadata { .. }), "{err}");
        }
        // Missing and empty files are an empty store.
        fs::write(&images, b"  ").unwrap();
        assert!(Store::open(fx.root()).unwrap().image_names().is_empty());
        fs::remove_file(&images).unwrap();
        assert!(Store::open(fx.root()).unwrap().image_names().is_empty());
        fs::create_dir(&images).unwrap();
        assert!(matches!(
            Store::open(fx.root()),
            Err(StoreError::ReadMetadata { .. })
        ));
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let fx = Fixture::new();
        let file = fs::File::create(fx.root().join("overlay-layers/layers.json")).unwrap();
        file.set_len(MAX_METADATA_BYTES + 1).unwrap(); // sparse, so cheap
        assert!(matches!(
            Store::open(fx.root()),
            Err(StoreError::MetadataTooLarge { .. })
        ));
    }

    #[test]
    fn bad_layer_ids_never_become_paths() {
        let mut fx = Fixture::new();
        fx.layer(&id("1"), Some("../../etc"));
        fx.image(&id("a"), Some(&id("1")), &["localhost/a:latest"]);
        fx.image(&id("b"), Some("../etc"), &["localhost/b:latest"]);
        fx.raw_image(json!({"id": "../etc", "layer": id("1"), "names": ["localhost/c:latest"]}));
        let store = fx.open();
        assert!(matches!(
            store.resolve("localhost/a"),
            Err(StoreError::LayerId { .. })
        ));
        assert!(matches!(
            store.resolve("localhost/b"),
            Err(StoreError::LayerId { .. })
        ));
        // The record with an invalid image id was skipped.
        assert!(matches!(
            store.resolve("localhost/c"),
            Err(StoreError::ImageNotFound { .. })
        ));
    }

    #[test]
    fn invalid_names_are_dropped_and_stay_out_of_messages() {
        let mut fx = Fixture::new();
        fx.image(&id("a"), None, &["evil\nimage localhost/x:latest"]);
        fx.layer(&id("1"), None).image(
            &id("b"),
            Some(&id("1")),
            &["bad\n", "localhost/good:latest"],
        );
        let store = fx.open();
        assert_eq!(store.image_names(), ["localhost/good:latest"]);
        // Found by id, the image is shown by its id, not by the bogus name.
        let err = store.resolve(&id("a")).unwrap_err();
        assert!(matches!(err, StoreError::NoLayers { .. }), "{err}");
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message:?}");
        assert!(message.contains(&id("a")[..12]), "{message}");
        assert_eq!(
            store.resolve(&id("b")).unwrap().name,
            "localhost/good:latest"
        );
    }

    #[test]
    fn broken_chains_are_errors() {
        let mut fx = Fixture::new();
        let (a, b) = (id("1"), id("2"));
        fx.layer(&a, Some(&b)).layer(&b, Some(&a));
        fx.image(&id("a"), Some(&a), &["localhost/cycle:latest"]);
        fx.image(&id("b"), Some(&id("9")), &["localhost/missing:latest"]);
        fx.image(&id("c"), None, &["localhost/empty:latest"]);
        let layer_without_dir = id("3");
        fx.layers.push(json!({"id": layer_without_dir}));
        fx.image(
            &id("d"),
            Some(&layer_without_dir),
            &["localhost/nodir:latest"],
        );
        let store = fx.open();
        assert!(matches!(
            store.resolve("cycle"),
            Err(StoreError::LayerCycle { .. })
        ));
        let err = store.resolve("missing").unwrap_err();
        assert!(matches!(&err, StoreError::MissingLayer { layer, .. } if *layer == id("9")));
        assert!(matches!(
            store.resolve("empty"),
            Err(StoreError::NoLayers { .. })
        ));
        assert!(matches!(
            store.resolve("nodir"),
            Err(StoreError::LayerDir { .. })
        ));
    }

    #[test]
    fn chains_are_capped() {
        let mut fx = Fixture::new();
        let ids: Vec<String> = (0..=MAX_LAYERS).map(|n| id(&format!("{n:x}f"))).collect();
        for pair in ids.windows(2) {
            fx.layers.push(json!({"id": pair[1], "parent": pair[0]}));
        }
        fx.layers.push(json!({"id": ids[0]}));
        fx.image(&id("a"), Some(&ids[MAX_LAYERS]), &["localhost/deep:latest"]);
        let store = fx.open();
        // Without diff dirs the top layer already fails.
        assert!(matches!(
            store.resolve("deep"),
            Err(StoreError::LayerDir { .. })
        ));
        fs::create_dir_all(fx.root().join("overlay")).unwrap();
        for layer in &ids {
            fs::create_dir_all(fx.root().join("overlay").join(layer).join("diff")).unwrap();
        }
        assert!(matches!(
            store.resolve("deep"),
            Err(StoreError::TooManyLayers { .. })
        ));
    }

    #[test]
    fn volatile_layers_are_merged() {
        let mut fx = Fixture::new();
        let (a, b) = (id("1"), id("2"));
        fx.layer(&a, None)
            .layer(&b, Some(&a))
            .image(&id("a"), Some(&b), &["localhost/v:latest"]);
        fx.write();
        let volatile = serde_json::to_vec(&[&fx.layers[1]]).unwrap();
        fs::write(
            fx.root().join("overlay-layers/volatile-layers.json"),
            volatile,
        )
        .unwrap();
        fs::write(
            fx.root().join("overlay-layers/layers.json"),
            serde_json::to_vec(&[&fx.layers[0]]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            Store::open(fx.root())
                .unwrap()
                .resolve("v")
                .unwrap()
                .layers
                .len(),
            2
        );
    }

    #[test]
    fn vfs_stores_use_the_top_layer_only() {
        let mut fx = Fixture::with_driver(Driver::Vfs);
        let (a, b) = (id("1"), id("2"));
        fx.layer(&a, None)
            .layer(&b, Some(&a))
            .image(&id("a"), Some(&b), &["localhost/v:latest"]);
        let image = fx.open().resolve("v").unwrap();
        assert_eq!(image.driver, Driver::Vfs);
        assert!(!image.userxattr);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].diff_dir, fx.root().join("vfs/dir").join(&b));
    }

    #[test]
    fn other_drivers_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("btrfs-images")).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(&err, StoreError::UnsupportedDriver { driver, .. } if driver == "btrfs"));
        let err = locate_store(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("btrfs"), "{err}");
    }

    #[test]
    fn locate_store_prefers_explicit_and_validates_it() {
        let fx = Fixture::new();
        assert_eq!(locate_store(Some(fx.root())).unwrap(), fx.root());
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            locate_store(Some(empty.path())),
            Err(StoreError::NotAStore { .. })
        ));
        let missing = empty.path().join("nope");
        assert!(matches!(
            locate_store(Some(&missing)),
            Err(StoreError::NotAStore { .. })
        ));
    }

    #[test]
    fn locate_store_defaults_in_order_or_explains() {
        // Depends on the machine, so only check the result is consistent.
        let first = DEFAULT_STORE_PATHS
            .iter()
            .find(|p| detect_driver(Path::new(p)).is_ok());
        match (locate_store(None), first) {
            (Ok(found), Some(first)) => assert_eq!(found, Path::new(first)),
            (Err(err), None) => {
                let message = err.to_string();
                assert!(
                    message.contains("/run/host-storage or /var/lib/containers/storage")
                        || message.contains("unsupported"),
                    "{message}"
                );
            }
            (result, first) => panic!("{result:?} vs {first:?}"),
        }
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance(&"a".repeat(200), "a"), usize::MAX);
    }
}
