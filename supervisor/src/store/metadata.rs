//! The store's metadata: `<driver>-images/images.json` and `<driver>-layers/layers.json`
//! (and `volatile-layers.json`), read as untrusted input: size-capped, opened beneath the root
//! through no link and without blocking, ids checked before they become paths.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::StoreError;
use crate::beneath::{is_link_refusal, open_beneath};

/// Real stores with thousands of images stay far below this; anything
/// bigger is corruption or hostile, and reading it would exhaust memory.
pub(super) const MAX_METADATA_BYTES: u64 = 256 << 20;

// Only the fields we use; serde ignores the rest. Options tolerate `null`,
// which Go's encoder emits for nil slices.
#[derive(Deserialize)]
pub(super) struct ImageRecord {
    pub(super) id: String,
    #[serde(default)]
    pub(super) digest: Option<String>,
    #[serde(default)]
    pub(super) digests: Option<Vec<String>>,
    #[serde(default)]
    pub(super) names: Option<Vec<String>>,
    #[serde(default)]
    pub(super) layer: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct LayerRecord {
    pub(super) id: String,
    #[serde(default)]
    pub(super) parent: Option<String>,
}

pub(super) struct Image {
    pub(super) id: String,
    pub(super) digests: Vec<String>,
    pub(super) names: Vec<String>,
    pub(super) layer: Option<String>,
}

/// Opens a store file beneath the root without blocking (a FIFO planted in the store would
/// hang a plain open) and insists on a regular file.
pub(super) fn open_regular(root: &OwnedFd, rel: &Path) -> Result<fs::File, Errno> {
    let fd = open_beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
    let file = fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(Errno::INVAL),
        Err(e) => Err(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
    }
}

pub(super) fn io_error(e: Errno, path: &Path) -> std::io::Error {
    if e == Errno::INVAL {
        std::io::Error::other(format!("{} is not a regular file", path.display()))
    } else {
        e.into()
    }
}

/// A missing file is an empty list: podman creates these lazily.
pub(super) fn read_records<T: DeserializeOwned>(
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
pub(super) fn is_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(super) fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(super) fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(is_id)
}
