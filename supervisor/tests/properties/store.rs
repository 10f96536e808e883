//! The podman store is untrusted input: whatever its metadata holds, opening it and
//! resolving any reference must not panic, must not hand out a layer path outside the
//! store, and must fail with a one-line message. And on sane stores, references resolve
//! the way podman's do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path};

use bcvk::store::{Store, StoreError};
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::{assert_one_line, cases, tempdir};

/// Valid layer/image ids the hostile metadata draws from, so that records refer to each
/// other. Half share the prefix "abc", so short prefixes are ambiguous.
fn pool_id(n: usize) -> String {
    if n.is_multiple_of(2) {
        format!("{:02x}", n + 16).repeat(32)
    } else {
        format!("abc{n:061x}")
    }
}
const POOL: usize = 8;

fn pool_ids() -> impl Strategy<Value = String> {
    (0..POOL).prop_map(pool_id)
}

const NAMES: &[&str] = &[
    "localhost/os:latest",
    "localhost/os",
    "quay.io/org/os:41",
    "docker.io/library/fedora:latest",
    "registry.example.com:5000/tool:1",
    "os",
    "fedora",
    "org/os:41",
    "evil\nname:latest",
    "localhost/evil\nname:latest",
    "a,b:latest",
    "../../etc",
];

/// Strings for id/layer/parent/name/digest fields: mostly plausible, often hostile.
fn field_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => pool_ids(),
        2 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => pool_ids().prop_map(|id| format!("sha256:{id}")),
        1 => pool_ids().prop_map(|id| id.to_uppercase()),
        1 => pool_ids().prop_map(|id| format!("{id}\n")),
        1 => pool_ids().prop_map(|id| format!("../{}", &id[3..])),
        1 => prop::sample::select(&["", "..", ".", "/", "/etc", "../../etc", "../etc/passwd",
            "sha256:", "sha256:../etc", "\0", "l", "overlay"][..]).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[0-9a-f]{0,70}",
        1 => (any::<char>(), 1000..5000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        field_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record field: usually the right type, sometimes anything at all.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => field_string().prop_map(Value::String),
        1 => json_value(),
    ]
}

fn string_list() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::vec(field_string().prop_map(Value::String), 0..4)
            .prop_map(Value::Array),
        1 => json_value(),
    ]
}

fn record(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| prop::option::weighted(0.8, value).prop_map(move |v| (key, v)))
        .collect();
    (fields, prop::option::of((field_string(), json_value()))).prop_map(|(fields, extra)| {
        let mut map = Map::new();
        if let Some((key, value)) = extra {
            map.insert(key, value);
        }
        for (key, value) in fields {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        }
        Value::Object(map)
    })
}

/// Records serde accepts (a string id, the other fields of the right type or null), so
/// that the hostile values get past parsing and into resolution.
fn typed_record(strings: &[&'static str], lists: &[&'static str]) -> BoxedStrategy<Value> {
    let string =
        || prop_oneof![9 => field_string().prop_map(Value::String), 1 => Just(Value::Null)];
    let list = || {
        prop_oneof![
            9 => prop::collection::vec(field_string().prop_map(Value::String), 0..4)
                .prop_map(Value::Array),
            1 => Just(Value::Null),
        ]
    };
    let fields: Vec<(&'static str, BoxedStrategy<Value>)> = strings
        .iter()
        .map(|key| (*key, string().boxed()))
        .chain(lists.iter().map(|key| (*key, list().boxed())))
        .collect();
    (field_string(), record(fields))
        .prop_map(|(id, mut record)| {
            record["id"] = Value::String(id);
            record
        })
        .boxed()
}

fn image_record() -> BoxedStrategy<Value> {
    typed_record(&["layer", "digest"], &["names", "digests"])
}

fn chaotic_image_record() -> BoxedStrategy<Value> {
    record(vec![
        ("id", field().boxed()),
        ("layer", field().boxed()),
        ("names", string_list().boxed()),
        ("digest", field().boxed()),
        ("digests", string_list().boxed()),
    ])
    .boxed()
}

fn layer_record() -> BoxedStrategy<Value> {
    typed_record(&["parent"], &[])
}

fn chaotic_layer_record() -> BoxedStrategy<Value> {
    record(vec![("id", field().boxed()), ("parent", field().boxed())]).boxed()
}

/// The bytes of one metadata file: records that parse, records of any shape, truncated
/// JSON, other JSON or junk.
fn metadata(
    typed: BoxedStrategy<Value>,
    chaotic: BoxedStrategy<Value>,
) -> impl Strategy<Value = Vec<u8>> {
    let list = prop::collection::vec(typed, 0..8);
    prop_oneof![
        6 => list.clone().prop_map(|r| serde_json::to_vec(&r).unwrap()),
        1 => prop::collection::vec(chaotic, 0..8).prop_map(|r| serde_json::to_vec(&r).unwrap()),
        1 => (list, any::<prop::sample::Index>()).prop_map(|(r, cut)| {
            let bytes = serde_json::to_vec(&r).unwrap();
            let at = cut.index(bytes.len() + 1);
            bytes[..at].to_vec()
        }),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// What the store holds on disk for one pool layer.
#[derive(Debug, Clone, Copy)]
enum LayerDisk {
    Missing,
    Dir,
    /// A good diff dir with a `link` file and a matching `l/` symlink.
    DirWithLink,
    /// `diff` is a symlink out of the store.
    DiffSymlinkOut,
    /// `diff` is a regular file.
    DiffFile,
    /// `link` names an `l/` entry that points out of the store.
    LinkOut,
    /// `link` holds a path, not a short name.
    LinkTraversal,
}

fn layer_disk() -> impl Strategy<Value = LayerDisk> {
    prop::sample::select(
        &[
            LayerDisk::Missing,
            LayerDisk::Dir,
            LayerDisk::DirWithLink,
            LayerDisk::DiffSymlinkOut,
            LayerDisk::DiffFile,
            LayerDisk::LinkOut,
            LayerDisk::LinkTraversal,
        ][..],
    )
}

/// A chain of layers, possibly very long or looping, with an image on top.
#[derive(Debug, Clone)]
struct Chain {
    len: usize,
    cycle: bool,
    dirs: bool,
}

fn chain() -> impl Strategy<Value = Option<Chain>> {
    prop::option::weighted(
        0.2,
        (
            prop_oneof![3 => 1..20usize, 1 => 495..505usize],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(len, cycle, dirs)| Chain { len, cycle, dirs }),
    )
}

#[derive(Debug, Clone)]
struct HostileStore {
    vfs: bool,
    images: Vec<u8>,
    layers: Vec<u8>,
    volatile: Option<Vec<u8>>,
    disk: Vec<LayerDisk>,
    chain: Option<Chain>,
}

fn hostile_store() -> impl Strategy<Value = HostileStore> {
    (
        prop::bool::weighted(0.2),
        metadata(image_record(), chaotic_image_record()),
        metadata(layer_record(), chaotic_layer_record()),
        prop::option::weighted(0.3, metadata(layer_record(), chaotic_layer_record())),
        prop::collection::vec(layer_disk(), POOL),
        chain(),
    )
        .prop_map(
            |(vfs, images, layers, volatile, disk, chain)| HostileStore {
                vfs,
                images,
                layers,
                volatile,
                disk,
                chain,
            },
        )
}

fn chain_id(n: usize) -> String {
    format!("c{n:063x}")
}

impl HostileStore {
    fn write(&self, root: &Path) {
        let driver = if self.vfs { "vfs" } else { "overlay" };
        fs::create_dir(root.join(format!("{driver}-images"))).unwrap();
        fs::create_dir(root.join(format!("{driver}-layers"))).unwrap();
        let mut images = self.images.clone();
        let mut layers = self.layers.clone();
        if let Some(chain) = &self.chain {
            // Replace the generated layer list by a well-formed chain; the images file
            // gets an image on top of it, if it holds a list.
            let mut records: Vec<Value> = (0..chain.len)
                .map(|n| {
                    let parent = match n {
                        0 if chain.cycle => Value::String(chain_id(chain.len - 1)),
                        0 => Value::Null,
                        _ => Value::String(chain_id(n - 1)),
                    };
                    serde_json::json!({"id": chain_id(n), "parent": parent})
                })
                .collect();
            records.push(serde_json::json!({"id": pool_id(0)}));
            layers = serde_json::to_vec(&records).unwrap();
            if let Ok(Value::Array(mut list)) = serde_json::from_slice::<Value>(&images) {
                list.push(serde_json::json!({
                    "id": pool_id(1),
                    "layer": chain_id(chain.len - 1),
                    "names": ["localhost/chain:latest"],
                }));
                images = serde_json::to_vec(&list).unwrap();
            }
            if chain.dirs {
                for n in 0..chain.len {
                    fs::create_dir_all(self.diff_dir(root, &chain_id(n))).unwrap();
                }
            }
        }
        fs::write(root.join(format!("{driver}-images/images.json")), images).unwrap();
        fs::write(root.join(format!("{driver}-layers/layers.json")), layers).unwrap();
        if let Some(volatile) = &self.volatile {
            fs::write(
                root.join(format!("{driver}-layers/volatile-layers.json")),
                volatile,
            )
            .unwrap();
        }
        for (n, disk) in self.disk.iter().enumerate() {
            self.write_layer(root, &pool_id(n), *disk);
        }
    }

    fn diff_dir(&self, root: &Path, id: &str) -> std::path::PathBuf {
        if self.vfs {
            root.join("vfs/dir").join(id)
        } else {
            root.join("overlay").join(id).join("diff")
        }
    }

    fn write_layer(&self, root: &Path, id: &str, disk: LayerDisk) {
        let diff = self.diff_dir(root, id);
        let parent = diff.parent().unwrap();
        let overlay = root.join("overlay");
        let short = format!("S{}", &id[..10]);
        match disk {
            LayerDisk::Missing => {}
            LayerDisk::Dir => fs::create_dir_all(&diff).unwrap(),
            LayerDisk::DirWithLink | LayerDisk::LinkOut | LayerDisk::LinkTraversal => {
                fs::create_dir_all(&diff).unwrap();
                fs::create_dir_all(overlay.join("l")).unwrap();
                let (link, target) = match disk {
                    LayerDisk::DirWithLink => (short.clone(), format!("../{id}/diff")),
                    LayerDisk::LinkOut => (short.clone(), "/etc".to_owned()),
                    _ => ("../../../../etc".to_owned(), format!("../{id}/diff")),
                };
                fs::create_dir_all(overlay.join(id)).unwrap();
                fs::write(overlay.join(id).join("link"), link).unwrap();
                let _ = symlink(target, overlay.join("l").join(&short));
            }
            LayerDisk::DiffSymlinkOut => {
                fs::create_dir_all(parent).unwrap();
                symlink("/etc", &diff).unwrap();
            }
            LayerDisk::DiffFile => {
                fs::create_dir_all(parent).unwrap();
                fs::write(&diff, "not a dir").unwrap();
            }
        }
    }
}

/// References to try: ones that name things in the store, and anything else.
fn reference() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => field_string(),
        2 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => Just("localhost/chain:latest".to_owned()),
        2 => (pool_ids(), 0..=64usize).prop_map(|(id, n)| id[..n].to_owned()),
        1 => (pool_ids(), 0..=64usize).prop_map(|(id, n)| format!("sha256:{}", &id[..n])),
        1 => (prop::sample::select(NAMES), pool_ids())
            .prop_map(|(name, id)| format!("{name}@sha256:{id}")),
    ]
}

fn assert_inside(root: &Path, path: &Path) {
    assert!(
        path.starts_with(root),
        "{} is outside the store {}",
        path.display(),
        root.display()
    );
    assert!(
        !path.components().any(|c| c == Component::ParentDir),
        "{} contains ..",
        path.display()
    );
}

fn check_resolve(store: &Store, root: &Path, reference: &str) {
    match store.resolve(reference) {
        Ok(image) => {
            assert_eq!(image.id.len(), 64, "{image:?}");
            assert!(!image.layers.is_empty(), "{image:?}");
            for layer in &image.layers {
                assert_inside(root, &layer.diff_dir);
                if let Some(link) = &layer.short_link {
                    assert_inside(root, link);
                }
                assert!(
                    layer.diff_dir.ends_with(&layer.id) || layer.diff_dir.ends_with("diff"),
                    "{layer:?}"
                );
            }
        }
        Err(err) => assert_one_line(&err.to_string()),
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn hostile_metadata_is_contained(
        store in hostile_store(),
        references in prop::collection::vec(reference(), 1..8),
    ) {
        let dir = tempdir();
        let root = dir.path();
        store.write(root);
        match Store::open(root) {
            Ok(opened) => {
                prop_assert_eq!(opened.root(), root);
                for name in opened.image_names() {
                    check_resolve(&opened, root, &name);
                }
                for reference in &references {
                    check_resolve(&opened, root, reference);
                }
            }
            Err(err) => assert_one_line(&err.to_string()),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        images in prop::collection::vec(any::<u8>(), 0..512),
        layers in prop::collection::vec(any::<u8>(), 0..512),
        reference in any::<String>(),
    ) {
        let dir = tempdir();
        let root = dir.path();
        fs::create_dir(root.join("overlay-images")).unwrap();
        fs::create_dir(root.join("overlay-layers")).unwrap();
        fs::write(root.join("overlay-images/images.json"), images).unwrap();
        fs::write(root.join("overlay-layers/layers.json"), layers).unwrap();
        match Store::open(root) {
            Ok(opened) => check_resolve(&opened, root, &reference),
            Err(err) => assert_one_line(&err.to_string()),
        }
    }
}

// ---- sane stores: references resolve like podman's ----

const REGISTRIES: &[&str] = &[
    "localhost",
    "quay.io",
    "docker.io",
    "registry.example.com:5000",
];

#[derive(Debug, Clone)]
struct Name {
    registry: &'static str,
    /// The repository path after the registry.
    path: String,
    tag: String,
}

impl Name {
    fn full(&self) -> String {
        format!("{}/{}:{}", self.registry, self.path, self.tag)
    }
    fn short(&self) -> String {
        format!("{}:{}", self.path, self.tag)
    }
}

fn name() -> impl Strategy<Value = Name> {
    // Components from a small alphabet so that short names collide across images;
    // no '-' in them, which the names that must not be found use.
    let component = "[a-z][a-z0-9]{0,3}";
    (
        prop::sample::select(REGISTRIES),
        prop::collection::vec(component, 1..3),
        prop_oneof![Just("latest".to_owned()), "[a-z0-9][a-z0-9._]{0,5}"],
    )
        .prop_map(|(registry, parts, tag)| Name {
            registry,
            path: parts.join("/"),
            tag,
        })
}

#[derive(Debug, Clone)]
struct SaneImage {
    id: String,
    names: Vec<Name>,
}

/// 1 to 6 images with distinct random ids and distinct full names (podman never gives
/// one name to two images).
fn sane_images() -> impl Strategy<Value = Vec<SaneImage>> {
    prop::collection::vec(("[0-9a-f]{64}", prop::collection::vec(name(), 0..4)), 1..6).prop_map(
        |images| {
            let mut ids = BTreeSet::new();
            let mut seen = BTreeSet::new();
            images
                .into_iter()
                .filter(|(id, _)| ids.insert(id.clone()))
                .map(|(id, names)| SaneImage {
                    id,
                    names: names
                        .into_iter()
                        .filter(|n| seen.insert(n.full()))
                        .collect(),
                })
                .collect()
        },
    )
}

/// The images a short name `path:tag` matches: any registry's `path:tag`, and
/// docker.io's `library/path:tag` for a one-component path. Returns (all, localhost).
fn short_matches(images: &[SaneImage], short: &Name) -> (BTreeSet<usize>, BTreeSet<usize>) {
    let mut all = BTreeSet::new();
    let mut local = BTreeSet::new();
    for (i, image) in images.iter().enumerate() {
        for n in &image.names {
            let official = n.registry == "docker.io"
                && !short.path.contains('/')
                && n.path == format!("library/{}", short.path);
            if n.tag == short.tag && (n.path == short.path || official) {
                all.insert(i);
                if n.registry == "localhost" {
                    local.insert(i);
                }
            }
        }
    }
    (all, local)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn sane_references_resolve(
        images in sane_images(),
        missing in "[a-z]{1,4}-[a-z]{1,4}",
    ) {
        let dir = tempdir();
        let root = dir.path();
        fs::create_dir(root.join("overlay-images")).unwrap();
        fs::create_dir(root.join("overlay-layers")).unwrap();
        let mut image_records = Vec::new();
        let mut layer_records = Vec::new();
        for (n, image) in images.iter().enumerate() {
            let layer = format!("{n:064x}");
            fs::create_dir_all(root.join("overlay").join(&layer).join("diff")).unwrap();
            layer_records.push(serde_json::json!({"id": layer}));
            let names: Vec<String> = image.names.iter().map(Name::full).collect();
            image_records.push(serde_json::json!({
                "id": image.id, "layer": layer, "names": names,
            }));
        }
        fs::write(root.join("overlay-images/images.json"),
            serde_json::to_vec(&image_records).unwrap()).unwrap();
        fs::write(root.join("overlay-layers/layers.json"),
            serde_json::to_vec(&layer_records).unwrap()).unwrap();
        let store = Store::open(root).unwrap();
        let resolve = |reference: &str| store.resolve(reference).map(|image| image.id);

        for (i, image) in images.iter().enumerate() {
            prop_assert_eq!(resolve(&image.id).unwrap(), image.id.clone());
            prop_assert_eq!(resolve(&format!("sha256:{}", image.id)).unwrap(), image.id.clone());
            let prefix = &image.id[..12];
            if images.iter().filter(|other| other.id.starts_with(prefix)).count() == 1 {
                prop_assert_eq!(resolve(prefix).unwrap(), image.id.clone());
            }
            for name in &image.names {
                prop_assert_eq!(resolve(&name.full()).unwrap(), image.id.clone(),
                    "full name {}", name.full());
                let (all, local) = short_matches(&images, name);
                prop_assert!(all.contains(&i));
                let wanted = name.short();
                if all.len() == 1 || local.len() == 1 {
                    let expected = &images[*if all.len() == 1 { &all } else { &local }
                        .iter().next().unwrap()].id;
                    prop_assert_eq!(&resolve(&wanted).unwrap(), expected, "short name {}", wanted);
                } else {
                    let ambiguous = matches!(store.resolve(&wanted), Err(StoreError::Ambiguous { .. }));
                    prop_assert!(ambiguous, "short name {} should be ambiguous", wanted);
                }
            }
        }

        // Generated names never contain '-', so these are not in the store.
        let by_registry: BTreeMap<&str, String> = REGISTRIES
            .iter()
            .map(|r| (*r, format!("{r}/{missing}:latest")))
            .collect();
        for reference in by_registry.values().map(String::as_str).chain([missing.as_str()]) {
            let not_found = matches!(store.resolve(reference), Err(StoreError::ImageNotFound { .. }));
            prop_assert!(not_found, "{} should not be found", reference);
        }
    }
}
