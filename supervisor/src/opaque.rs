//! Opaque directories that the overlay cannot see by itself.
//!
//! A layer that replaces a directory marks it opaque: podman stores the mark as the xattr
//! `trusted.overlay.opaque=y` (rootful stores) or `user.overlay.opaque=y` (rootless ones).
//! An overlay mounted with `userxattr` (in a user namespace, where `trusted.*` is out of
//! reach) honours only the second. For the first, bcvk finds the marked directories in the
//! store's tar-split metadata (`overlay-layers/<id>.tar-split.gz`, one JSON object a line,
//! which keeps the layer's `DIR/.wh..wh..opq` entry), and emulates each mark with a
//! synthetic layer placed right below the marking layer, holding a whiteout at the
//! directory's own path: overlayfs's lookup stops at a whiteout below a directory (namei.c,
//! `ovl_lookup_single`), so the directory is the marking layer's alone, as an opaque one is:
//! not merged, with its own link count (a merged directory's is 1). The view is then the
//! one podman shows. The root itself, which has no path to white out, gets a whiteout for
//! every name the layers further down have in it.
//!
//! Parsing is pure and unit-tested; `plan` reads the store (never writes it).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use base64::Engine;

use crate::beneath;

use crate::store::Layer;

/// The marker entry a tar layer carries for an opaque directory.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "user.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum OpaqueError {
    #[error("cannot read the tar-split metadata of layer {layer} at {} ({source}): the store is corrupt; re-pull or rebuild the image", .path.display())]
    TarSplit {
        layer: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OpaqueError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        Exit::StoreCorrupt
    }
}

/// One tar-split line that names an entry. `name_raw` (base64) replaces `name` for names
/// that are not UTF-8.
#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
}

/// tar-split's type of a file entry (the other, 2, is a raw segment of the tar stream).
const FILE_ENTRY: u8 = 1;

/// A relative, normalised path from a tar entry name; None for names that climb out (`..`)
/// or are empty, which no honest layer has.
fn clean_relative(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The directories a layer marks opaque, relative to its root ("" for the root itself), read
/// from its tar-split stream (already decompressed). Lines are tested for the marker bytes
/// before any JSON is parsed: a layer of a hundred thousand files costs one scan.
pub fn opaque_dirs(reader: impl BufRead) -> std::io::Result<BTreeSet<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let mut dirs = BTreeSet::new();
    for line in reader.split(b'\n') {
        let line = line?;
        let raw = memfind(&line, b"\"name_raw\"");
        if !raw && !memfind(&line, OPAQUE_MARKER) {
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
            continue;
        };
        if entry.kind != FILE_ENTRY {
            continue;
        }
        let name: Vec<u8> = match (entry.name, entry.name_raw) {
            (Some(n), _) => n.into_bytes(),
            (None, Some(r)) => match base64::engine::general_purpose::STANDARD.decode(r) {
                Ok(b) => b,
                Err(_) => continue,
            },
            (None, None) => continue,
        };
        let path = Path::new(std::ffi::OsStr::from_bytes(&name));
        if path.file_name().map(|f| f.as_bytes()) != Some(OPAQUE_MARKER) {
            continue;
        }
        if let Some(dir) = path.parent().and_then(clean_relative) {
            dirs.insert(dir);
        }
    }
    Ok(dirs)
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Where containers/storage keeps a layer's tar-split metadata.
pub fn tar_split_path(store_root: &Path, layer_id: &str) -> PathBuf {
    store_root
        .join("overlay-layers")
        .join(format!("{layer_id}.tar-split.gz"))
}

/// A synthetic layer to place right below image layer `below` (an index into the top-first
/// layer list), holding a whiteout at each of `whiteouts` (relative paths): the opaque
/// directories themselves, or the names under an opaque root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulation {
    pub below: usize,
    pub whiteouts: Vec<PathBuf>,
}

/// Whether the directory carries the `user.overlay.opaque` mark the overlay honours itself.
fn marked_for_userxattr(dir: &OwnedFd) -> bool {
    let mut value = [0u8; 8];
    matches!(rustix::fs::fgetxattr(dir, OPAQUE_XATTR, &mut value), Ok(n) if value[..n] == *b"y")
}

fn names_in(dir: OwnedFd) -> Vec<std::ffi::OsString> {
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()
        })
        .filter(|n| n != "." && n != "..")
        .collect()
}

/// The synthetic layers an overlay with `userxattr` needs to show `layers` (top first) as
/// podman does. Layers without tar-split metadata are reported once and taken as having no
/// opaque directories.
pub fn plan(store_root: &Path, layers: &[Layer]) -> Result<Vec<Emulation>, OpaqueError> {
    let mut out = Vec::new();
    for (k, layer) in layers.iter().enumerate() {
        let path = tar_split_path(store_root, &layer.id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(layer = %&layer.id[..12], "no tar-split metadata for this layer: directories it marks opaque in trusted.* xattrs cannot be seen without CAP_SYS_ADMIN, and lower layers' files may show through them");
                continue;
            }
            Err(source) => {
                return Err(OpaqueError::TarSplit {
                    layer: layer.id.clone(),
                    path,
                    source,
                })
            }
        };
        let dirs = opaque_dirs(BufReader::new(flate2::read::MultiGzDecoder::new(file))).map_err(
            |source| OpaqueError::TarSplit {
                layer: layer.id.clone(),
                path: path.clone(),
                source,
            },
        )?;
        let mut whiteouts: BTreeSet<PathBuf> = BTreeSet::new();
        // Parents sort before their children: a directory already hidden whole is skipped.
        for dir in &dirs {
            if whiteouts.iter().any(|w| dir.starts_with(w)) {
                continue;
            }
            match beneath::open_dir(&layer.diff_dir, dir) {
                Ok(fd) if !marked_for_userxattr(&fd) => {}
                // Marked for userxattr (a rootless store), or not a directory of this layer.
                _ => continue,
            }
            // Opened through directories only: overlayfs merges a directory only through
            // directories, so a lower layer whose path goes through a symlink contributes
            // nothing there, and must not be read through it.
            let mut below = layers[k + 1..]
                .iter()
                .filter_map(|lower| beneath::open_dir(&lower.diff_dir, dir).ok())
                .peekable();
            if below.peek().is_none() {
                continue;
            }
            if dir.as_os_str().is_empty() {
                // The root has no path to white out: each lower name is hidden instead.
                for fd in below {
                    whiteouts.extend(names_in(fd).into_iter().map(PathBuf::from));
                }
            } else {
                // A whiteout at the directory's own path ends its lookup there: it is then
                // the marking layer's directory alone, not merged, as an opaque directory is
                // (same entries, and the same link count: overlayfs gives merged ones 1).
                whiteouts.insert(dir.clone());
            }
        }
        if !whiteouts.is_empty() {
            out.push(Emulation {
                below: k,
                whiteouts: whiteouts.into_iter().collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SPLIT: &str = r#"{"type":2,"payload":"dXN0YXIAMDA=","position":0}
{"type":1,"name":"usr/","payload":null,"position":1}
{"type":1,"name":"usr/share/odir/.wh..wh..opq","size":0,"payload":null,"position":2}
{"type":1,"name":"./opt/x/.wh..wh..opq","size":0,"payload":null,"position":3}
{"type":1,"name":"etc/.wh.gone","size":0,"payload":null,"position":4}
{"type":1,"name":".wh..wh..opq","size":0,"payload":null,"position":5}
{"type":1,"name":"../evil/.wh..wh..opq","size":0,"payload":null,"position":6}
{"type":1,"name":"a/.wh..wh..opq.not","size":0,"payload":null,"position":7}
{"type":1,"name_raw":"dmFyL/8vLndoLi53aC4ub3Bx","size":0,"payload":null,"position":8}
"#;

    #[test]
    fn finds_opaque_markers_only() {
        let dirs = opaque_dirs(SPLIT.as_bytes()).unwrap();
        use std::os::unix::ffi::OsStrExt;
        let raw = PathBuf::from(std::ffi::OsStr::from_bytes(b"var/\xff"));
        let want: BTreeSet<PathBuf> = [
            PathBuf::from("usr/share/odir"),
            PathBuf::from("opt/x"),
            PathBuf::new(),
            raw,
        ]
        .into_iter()
        .collect();
        assert_eq!(dirs, want);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let dirs = opaque_dirs(&b"not json .wh..wh..opq\n{\"type\":1}\n\xff\xfe\n"[..]).unwrap();
        assert!(dirs.is_empty());
    }

    fn layer(root: &Path, id: &str) -> Layer {
        let diff_dir = root.join("overlay").join(id).join("diff");
        std::fs::create_dir_all(&diff_dir).unwrap();
        Layer {
            id: id.to_string(),
            diff_dir,
            short_link: None,
        }
    }

    fn write_split(root: &Path, id: &str, names: &[&str]) {
        let dir = root.join("overlay-layers");
        std::fs::create_dir_all(&dir).unwrap();
        let f = File::create(tar_split_path(root, id)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        for n in names {
            writeln!(
                gz,
                "{{\"type\":1,\"name\":\"{n}\",\"size\":0,\"position\":0}}"
            )
            .unwrap();
        }
        gz.finish().unwrap();
    }

    #[test]
    fn plans_whiteouts_for_names_below_an_opaque_dir() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path();
        let (top, mid, base) = ("c".repeat(64), "b".repeat(64), "a".repeat(64));
        let layers = vec![layer(root, &top), layer(root, &mid), layer(root, &base)];
        // base: opt/d/{old,sub/x}; mid: replaces opt/d (opaque) with new; top: nothing.
        std::fs::create_dir_all(layers[2].diff_dir.join("opt/d/sub")).unwrap();
        std::fs::write(layers[2].diff_dir.join("opt/d/old"), "").unwrap();
        std::fs::create_dir_all(layers[1].diff_dir.join("opt/d")).unwrap();
        std::fs::write(layers[1].diff_dir.join("opt/d/new"), "").unwrap();
        // A symlinked path in a lower layer contributes nothing (overlay would not merge it).
        std::fs::create_dir_all(layers[1].diff_dir.join("srv/e")).unwrap();
        std::fs::create_dir_all(root.join("outside/e")).unwrap();
        std::fs::write(root.join("outside/e/secret"), "").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), layers[2].diff_dir.join("srv")).unwrap();
        write_split(root, &top, &[]);
        write_split(
            root,
            &mid,
            &[
                "opt/d/.wh..wh..opq",
                "srv/e/.wh..wh..opq",
                "gone/.wh..wh..opq",
            ],
        );
        write_split(root, &base, &[]);
        let plan = plan(root, &layers).unwrap();
        assert_eq!(
            plan,
            [Emulation {
                below: 1,
                whiteouts: vec![PathBuf::from("opt/d")],
            }]
        );
    }

    #[test]
    fn an_opaque_root_hides_each_name_and_nested_marks_need_nothing_more() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path();
        let (top, base) = ("b".repeat(64), "a".repeat(64));
        let layers = vec![layer(root, &top), layer(root, &base)];
        std::fs::create_dir_all(layers[1].diff_dir.join("opt/x/y")).unwrap();
        std::fs::write(layers[1].diff_dir.join("etc"), "").unwrap();
        std::fs::create_dir_all(layers[0].diff_dir.join("opt/x/y")).unwrap();
        // opt/x hides opt/x/y too: one whiteout, no directory to hold a second one.
        write_split(root, &top, &["opt/x/.wh..wh..opq", "opt/x/y/.wh..wh..opq"]);
        let planned = plan(root, &layers).unwrap();
        assert_eq!(planned[0].whiteouts, [PathBuf::from("opt/x")]);
        write_split(root, &top, &[".wh..wh..opq", "opt/x/.wh..wh..opq"]);
        let planned = plan(root, &layers).unwrap();
        assert_eq!(
            planned[0].whiteouts,
            [PathBuf::from("etc"), PathBuf::from("opt")]
        );
    }

    #[test]
    fn user_marked_dirs_and_missing_metadata_need_nothing() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path();
        let (top, base) = ("b".repeat(64), "a".repeat(64));
        let layers = vec![layer(root, &top), layer(root, &base)];
        std::fs::create_dir_all(layers[1].diff_dir.join("d")).unwrap();
        std::fs::write(layers[1].diff_dir.join("d/old"), "").unwrap();
        std::fs::create_dir_all(layers[0].diff_dir.join("d")).unwrap();
        // No tar-split at all: nothing to emulate (and a warning).
        assert_eq!(plan(root, &layers).unwrap(), []);
        write_split(root, &top, &["d/.wh..wh..opq"]);
        assert_eq!(plan(root, &layers).unwrap().len(), 1);
        // A rootless store's own mark is honoured by the overlay: no emulation. (tmpfs has
        // user xattrs since Linux 6.6; elsewhere the check is skipped.)
        if rustix::fs::setxattr(
            layers[0].diff_dir.join("d"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok()
        {
            assert_eq!(plan(root, &layers).unwrap(), []);
        }
    }

    #[test]
    fn corrupt_metadata_is_an_error() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path();
        let id = "a".repeat(64);
        let layers = vec![layer(root, &id)];
        std::fs::create_dir_all(root.join("overlay-layers")).unwrap();
        std::fs::write(tar_split_path(root, &id), "not gzip").unwrap();
        let err = plan(root, &layers).unwrap_err();
        assert!(err.to_string().contains("store is corrupt"), "{err}");
    }
}
