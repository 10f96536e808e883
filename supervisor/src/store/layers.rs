//! An image's layers: the chain from its top layer down through the parents, each layer's
//! directory resolved beneath the store's root through no link, and overlay's short links
//! (`overlay/l/<short>`) where they point back at their layer.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::metadata::{is_id, open_regular, Image};
use super::{Driver, Layer, Store, StoreError};
use crate::beneath::{is_link_refusal, open_beneath};

/// overlayfs refuses more lower layers than this.
pub(super) const MAX_LAYERS: usize = 500;

impl Store {
    pub(super) fn layer_chain(&self, image: &Image, name: &str) -> Result<Vec<Layer>, StoreError> {
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

    pub(super) fn layer(&self, id: String) -> Result<Layer, StoreError> {
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
    pub(super) fn short_link(&self, id: &str) -> Result<Option<PathBuf>, StoreError> {
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
