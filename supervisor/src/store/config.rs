//! An image's platform (os, architecture, variant) from its config in the store: the JSON
//! blob containers/storage keeps as the image's "big data" under the key `sha256:<id>` (an
//! image's ID is its config's digest), in `<driver>-images/<id>/`. Read as untrusted input,
//! as the rest of the store: size-capped, opened beneath the root through no link.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rustix::io::Errno;
use serde::Deserialize;

use super::metadata::{io_error, is_id, open_regular};
use super::{ResolvedImage, Store, StoreError};
use crate::beneath::is_link_refusal;

/// Image configs are a few KiB (history and labels included); a bigger one is corrupt.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The platform fields of an image config (OCI image spec, "Properties").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: Option<String>,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// containers/storage's file name for a big-data key (`makeBigDataBaseName`): the key itself
/// when it is only `[a-z0-9.]`, else `=` and the key in standard base64.
fn big_data_file_name(key: &str) -> String {
    let plain = key
        .bytes()
        .all(|b| b == b'.' || b.is_ascii_digit() || b.is_ascii_lowercase());
    if plain {
        key.to_string()
    } else {
        format!("={}", BASE64.encode(key))
    }
}

impl Store {
    /// The image's platform, from its config; `None` when the store holds no config for it (an
    /// image that was never committed with one) or the config names no architecture: the
    /// caller then assumes the host's.
    pub fn image_platform(&self, image: &ResolvedImage) -> Result<Option<Platform>, StoreError> {
        if !is_id(&image.id) {
            return Ok(None);
        }
        let rel = PathBuf::from(format!("{}-images", self.driver.prefix()))
            .join(&image.id)
            .join(big_data_file_name(&format!("sha256:{}", image.id)));
        let path = self.root.join(&rel);
        let read_err = |source| StoreError::ReadMetadata {
            path: path.clone(),
            source,
        };
        let file = match open_regular(&self.root_fd, &rel) {
            Ok(f) => f,
            Err(e) if e == Errno::NOENT => return Ok(None),
            Err(e) if is_link_refusal(e) => return Err(StoreError::Symlink { path }),
            Err(e) => return Err(read_err(io_error(e, &path))),
        };
        let mut data = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(read_err)?;
        if data.len() as u64 > MAX_CONFIG_BYTES {
            return Err(StoreError::MetadataTooLarge {
                path,
                size: data.len() as u64,
                limit: MAX_CONFIG_BYTES,
            });
        }
        parse_platform(&data, &path)
    }
}

fn parse_platform(data: &[u8], path: &Path) -> Result<Option<Platform>, StoreError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        os: Option<String>,
        #[serde(default)]
        architecture: Option<String>,
        #[serde(default)]
        variant: Option<String>,
    }
    let c: Config = serde_json::from_slice(data).map_err(|source| StoreError::ParseMetadata {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(c.architecture
        .filter(|a| !a.is_empty())
        .map(|architecture| Platform {
            os: c.os,
            architecture,
            variant: c.variant,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Driver;
    use std::fs;

    const ID: &str = "b2f1ca9dfb9e7cb4bf7bace7ba43f57b005df460e3a7b7bed617e211c99788ea";

    fn store(config: Option<&[u8]>) -> (tempfile::TempDir, Store, ResolvedImage) {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("overlay-images");
        fs::create_dir_all(images.join(ID)).unwrap();
        fs::create_dir_all(dir.path().join("overlay-layers")).unwrap();
        fs::write(images.join("images.json"), "[]").unwrap();
        fs::write(dir.path().join("overlay-layers/layers.json"), "[]").unwrap();
        if let Some(c) = config {
            // The name podman 4.3 gave this config in this machine's store.
            let name = "=c2hhMjU2OmIyZjFjYTlkZmI5ZTdjYjRiZjdiYWNlN2JhNDNmNTdiMDA1ZGY0NjBlM2E3YjdiZWQ2MTdlMjExYzk5Nzg4ZWE=";
            fs::write(images.join(ID).join(name), c).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let image = ResolvedImage {
            id: ID.into(),
            name: "localhost/x:latest".into(),
            layers: vec![],
            driver: Driver::Overlay,
            userxattr: false,
        };
        (dir, store, image)
    }

    #[test]
    fn big_data_names_as_containers_storage_writes_them() {
        assert_eq!(big_data_file_name("manifest"), "manifest");
        assert_eq!(big_data_file_name("a.b9"), "a.b9");
        assert_eq!(big_data_file_name("sha256:ab"), "=c2hhMjU2OmFi");
        assert_eq!(big_data_file_name("Manifest"), "=TWFuaWZlc3Q=");
    }

    #[test]
    fn platform_from_the_config() {
        let (_d, s, img) = store(Some(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","config":{}}"#,
        ));
        assert_eq!(
            s.image_platform(&img).unwrap(),
            Some(Platform {
                os: Some("linux".into()),
                architecture: "arm64".into(),
                variant: Some("v8".into())
            })
        );
        let (_d, s, img) = store(Some(br#"{"architecture":"amd64","os":"linux"}"#));
        assert_eq!(
            s.image_platform(&img).unwrap().unwrap().architecture,
            "amd64"
        );
    }

    #[test]
    fn no_config_or_no_architecture_is_unknown() {
        let (_d, s, img) = store(None);
        assert_eq!(s.image_platform(&img).unwrap(), None);
        let (_d, s, img) = store(Some(br#"{"os":"linux","architecture":""}"#));
        assert_eq!(s.image_platform(&img).unwrap(), None);
        let (_d, s, img) = store(Some(b"{}"));
        assert_eq!(s.image_platform(&img).unwrap(), None);
    }

    #[test]
    fn corrupt_or_huge_configs_are_store_errors() {
        let (_d, s, img) = store(Some(b"{\"architecture\": 5}"));
        assert!(matches!(
            s.image_platform(&img),
            Err(StoreError::ParseMetadata { .. })
        ));
        let big = vec![b' '; (MAX_CONFIG_BYTES + 2) as usize];
        let (_d, s, img) = store(Some(&big));
        assert!(matches!(
            s.image_platform(&img),
            Err(StoreError::MetadataTooLarge { .. })
        ));
    }

    #[test]
    fn a_linked_config_is_refused() {
        let (d, s, img) = store(None);
        let outside = d.path().join("elsewhere.json");
        fs::write(&outside, br#"{"architecture":"arm64"}"#).unwrap();
        let name = big_data_file_name(&format!("sha256:{ID}"));
        std::os::unix::fs::symlink(
            &outside,
            d.path().join("overlay-images").join(ID).join(name),
        )
        .unwrap();
        assert!(matches!(
            s.image_platform(&img),
            Err(StoreError::Symlink { .. })
        ));
    }

    #[test]
    fn an_id_that_is_not_one_never_becomes_a_path() {
        let (_d, s, mut img) = store(Some(br#"{"architecture":"arm64"}"#));
        img.id = "../../etc".into();
        assert_eq!(s.image_platform(&img).unwrap(), None);
    }
}
