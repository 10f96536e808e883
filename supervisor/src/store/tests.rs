//! The store reader, tested on fake stores built in temporary directories.

use super::layers::*;
use super::metadata::*;
use super::reference::*;
use super::*;
use crate::beneath::open_beneath;
use rustix::io::Errno;
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
    let (_fx, store) = store_with(&[("a", &["quay.io/os:latest", "docker.io/library/os:latest"])]);
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
        // "image not known": podman's words, which upstream bcvk's users match on.
        message.contains("podman")
            && message.contains("image not known")
            && !message.contains('\n'),
        "{message}"
    );
    let err = store.resolve("zzz").unwrap_err();
    assert!(matches!(err, StoreError::ImageNotFound { suggestions, .. } if suggestions.is_empty()));
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
