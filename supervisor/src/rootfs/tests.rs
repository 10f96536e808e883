use super::*;
use crate::store::Layer;

fn image(layers: usize, short: bool, driver: Driver, userxattr: bool) -> ResolvedImage {
    let layers = (0..layers)
        .map(|n| {
            let id = format!("{n:0>64}");
            Layer {
                diff_dir: PathBuf::from(format!("/store/overlay/{id}/diff")),
                short_link: short.then(|| PathBuf::from(format!("/store/overlay/l/S{n:0>25}"))),
                id,
            }
        })
        .collect();
    ResolvedImage {
        id: "f".repeat(64),
        name: "localhost/os:latest".into(),
        layers,
        driver,
        userxattr,
    }
}

fn tmpfs() -> Scratch {
    Scratch::Tmpfs { size_bytes: None }
}

#[test]
fn plan_puts_scratch_under_the_run_dir() {
    let plan = plan_rootfs(
        &image(2, true, Driver::Overlay, false),
        Path::new("/run/bcvk"),
        tmpfs(),
        false,
        &[],
    );
    assert_eq!(plan.target, Path::new("/run/bcvk/root"));
    assert_eq!(plan.scratch_mount, Path::new("/run/bcvk/scratch"));
    assert_eq!(plan.upper, Path::new("/run/bcvk/scratch/upper"));
    assert_eq!(plan.work, Path::new("/run/bcvk/scratch/work"));
    assert_eq!(plan.short_lowerdirs().map(<[_]>::len), Some(2));
}

#[test]
fn scratch_dirs_are_unique_per_plan() {
    let img = image(1, false, Driver::Overlay, false);
    let scratch = Scratch::Dir(PathBuf::from("/var/scratch"));
    let a = plan_rootfs(&img, Path::new("/run/bcvk"), scratch.clone(), false, &[]);
    let b = plan_rootfs(&img, Path::new("/run/bcvk"), scratch, false, &[]);
    assert_ne!(a.scratch_mount, b.scratch_mount);
    assert!(a.scratch_mount.starts_with("/var/scratch"));
    let name = a.scratch_mount.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("bcvk-{}-", std::process::id())),
        "{name}"
    );
    assert_eq!(a.upper, a.scratch_mount.join("upper"));
}

#[test]
fn options_list_layers_top_first() {
    let plan = plan_rootfs(
        &image(3, true, Driver::Overlay, false),
        Path::new("/run/b"),
        tmpfs(),
        false,
        &[],
    );
    let options = overlay_options(&plan).unwrap();
    let layer = |n: usize| format!("/store/overlay/{n:0>64}/diff");
    let lower = format!("lowerdir={}:{}:{}", layer(0), layer(1), layer(2));
    assert_eq!(
        options,
        format!("{lower},upperdir=/run/b/scratch/upper,workdir=/run/b/scratch/work")
    );
}

#[test]
fn options_add_userxattr_for_rootless_stores() {
    let plan = plan_rootfs(
        &image(1, false, Driver::Overlay, true),
        Path::new("/r"),
        tmpfs(),
        true,
        &[],
    );
    assert!(overlay_options(&plan)
        .unwrap()
        .ends_with(",workdir=/r/scratch/work,userxattr"));
}

#[test]
fn vfs_stacks_only_the_top_layer() {
    let plan = plan_rootfs(
        &image(3, false, Driver::Vfs, false),
        Path::new("/r"),
        tmpfs(),
        false,
        &[],
    );
    assert_eq!(
        plan.lowerdirs(),
        [PathBuf::from(format!("/store/overlay/{:0>64}/diff", 0))]
    );
    assert!(!overlay_options(&plan).unwrap().contains(':'));
}

#[test]
fn long_options_fall_back_to_short_links() {
    // 60 full paths are ~5 KiB; 60 short ones ~2.5 KiB.
    let plan = plan_rootfs(
        &image(60, true, Driver::Overlay, false),
        Path::new("/r"),
        tmpfs(),
        false,
        &[],
    );
    let options = overlay_options(&plan).unwrap();
    assert!(
        options.starts_with("lowerdir=/store/overlay/l/S"),
        "{options}"
    );
    assert!(options.len() <= MAX_MOUNT_DATA);
    assert_eq!(options.matches(':').count(), 59);
}

#[test]
fn too_many_layers_is_a_clear_error() {
    let plan = plan_rootfs(
        &image(60, false, Driver::Overlay, false),
        Path::new("/r"),
        tmpfs(),
        false,
        &[],
    );
    let err = overlay_options(&plan).unwrap_err();
    assert!(
        matches!(err, RootfsError::OptionsTooLong { layers: 60, .. }),
        "{err}"
    );
    let plan = plan_rootfs(
        &image(200, true, Driver::Overlay, false),
        Path::new("/r"),
        tmpfs(),
        false,
        &[],
    );
    let err = overlay_options(&plan).unwrap_err();
    assert!(err.to_string().contains("200 layers") && err.to_string().contains("squash"));
}

#[test]
fn unsafe_paths_are_rejected() {
    let img = image(1, false, Driver::Overlay, false);
    for run_dir in ["/run/a:b", "/run/a,b", "/run/a\\b", "relative"] {
        let plan = plan_rootfs(&img, Path::new(run_dir), tmpfs(), false, &[]);
        let err = overlay_options(&plan).unwrap_err();
        assert!(
            matches!(err, RootfsError::UnsafePath { .. }),
            "{run_dir}: {err}"
        );
    }
    let mut plan = plan_rootfs(&img, Path::new("/r"), tmpfs(), false, &[]);
    plan.lower = Lower::Dir(PathBuf::from("/store/x:y/diff"));
    assert!(matches!(
        overlay_options(&plan),
        Err(RootfsError::UnsafePath { .. })
    ));
    plan.lower = Lower::Layers {
        dirs: vec![],
        short: None,
        synthetic: vec![],
    };
    assert!(matches!(overlay_options(&plan), Err(RootfsError::NoLayers)));
}

#[test]
fn a_rootfs_dir_is_the_single_lower() {
    let plan = plan_rootfs_dir(Path::new("/rootfs"), Path::new("/run/bcvk"), tmpfs(), true);
    assert_eq!(plan.lower, Lower::Dir(PathBuf::from("/rootfs")));
    assert_eq!(plan.lowerdirs(), [PathBuf::from("/rootfs")]);
    assert_eq!(plan.short_lowerdirs(), None);
    assert!(plan.synthetic().is_empty());
    assert_eq!(plan.upper, Path::new("/run/bcvk/scratch/upper"));
    assert_eq!(
        overlay_options(&plan).unwrap(),
        "lowerdir=/rootfs,upperdir=/run/bcvk/scratch/upper,workdir=/run/bcvk/scratch/work,userxattr"
    );
    let on_disk = plan_rootfs_dir(
        Path::new("/rootfs"),
        Path::new("/run/bcvk"),
        Scratch::Dir("/vol".into()),
        false,
    );
    assert!(on_disk.upper.to_str().unwrap().starts_with("/vol/bcvk-"));
}

#[test]
fn bad_plans_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan_rootfs(
        &image(1, false, Driver::Overlay, false),
        dir.path(),
        tmpfs(),
        false,
        &[],
    );
    plan.lower = Lower::Layers {
        dirs: vec![],
        short: None,
        synthetic: vec![],
    };
    assert!(apply_rootfs(&plan).is_err());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Really mounts, which needs root and overlayfs; skips itself otherwise.
#[test]
fn mounts_and_cleans_up_when_privileged() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, run_dir, scratch) = (
        dir.path().join("lower"),
        dir.path().join("run"),
        dir.path().join("scratch"),
    );
    for d in [&lower, &run_dir, &scratch] {
        fs::create_dir(d).unwrap();
    }
    fs::write(lower.join("hello"), "from the image").unwrap();
    fs::create_dir(lower.join("run")).unwrap();
    fs::write(lower.join("run/.containerenv"), "").unwrap();
    let mut img = image(1, false, Driver::Overlay, false);
    img.layers[0].diff_dir = lower.clone();
    let plans = [tmpfs(), Scratch::Dir(scratch.clone())]
        .into_iter()
        .flat_map(|choice| {
            [
                plan_rootfs(&img, &run_dir, choice.clone(), false, &[]),
                // A --rootfs directory mounts the same way, as the one lower.
                plan_rootfs_dir(&lower, &run_dir, choice, false),
            ]
        });
    for plan in plans {
        let mounted = match apply_rootfs(&plan) {
            Ok(mounted) => mounted,
            Err(err @ (RootfsError::MountScratch { .. } | RootfsError::MountOverlay { .. })) => {
                eprintln!("skipping the real mount test: {err}");
                return;
            }
            Err(err) => panic!("{err}"),
        };
        let root = mounted.root().to_path_buf();
        assert_eq!(
            fs::read_to_string(root.join("hello")).unwrap(),
            "from the image"
        );
        // A marker the engine left goes from the guest's view only.
        assert_eq!(
            remove_engine_markers(&root).unwrap(),
            [PathBuf::from("run/.containerenv")]
        );
        assert!(!root.join("run/.containerenv").exists());
        fs::write(root.join("hello"), "changed").unwrap();
        mounted.unmount().unwrap();
        // Writes are thrown away and the image is untouched.
        assert_eq!(
            fs::read_to_string(lower.join("hello")).unwrap(),
            "from the image"
        );
        assert!(lower.join("run/.containerenv").exists());
        assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
        assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
    }
    // Dropping without unmount() still cleans up.
    drop(apply_rootfs(&plan_rootfs(&img, &run_dir, tmpfs(), false, &[])).unwrap());
    assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
}

#[test]
fn synthetic_layers_sit_right_below_their_layer() {
    let emulations = [Emulation {
        below: 1,
        whiteouts: vec![PathBuf::from("opt/d/old")],
    }];
    let plan = plan_rootfs(
        &image(3, true, Driver::Overlay, true),
        Path::new("/r"),
        tmpfs(),
        true,
        &emulations,
    );
    let synthetic = PathBuf::from("/r/scratch/opaque/0");
    assert_eq!(plan.lowerdirs().len(), 4);
    assert_eq!(plan.lowerdirs()[2], synthetic);
    assert_eq!(plan.short_lowerdirs().unwrap()[2], synthetic);
    assert_eq!(
        plan.synthetic(),
        [SyntheticLayer {
            dir: synthetic,
            whiteouts: vec![PathBuf::from("opt/d/old")],
        }]
    );
}

/// Really mounts, as podman's unprivileged containers and rootless stores need: userxattr,
/// an opaque directory emulated by a synthetic layer (a whiteout at its own path), 300 layers (more than an option
/// string carries) through lowerdir+. Needs root and Linux 6.8+; skips itself otherwise.
#[test]
fn mounts_opaque_emulation_and_many_layers() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    fs::create_dir(&run_dir).unwrap();
    let mut img = image(300, false, Driver::Overlay, false);
    for (n, layer) in img.layers.iter_mut().enumerate() {
        layer.diff_dir = dir.path().join(format!("layers/{n:0>200}"));
        fs::create_dir_all(layer.diff_dir.join("many")).unwrap();
        fs::write(layer.diff_dir.join(format!("many/{n}")), "").unwrap();
    }
    // Layer 1 replaces opt/d (opaque in a rootful store: trusted.*, unreadable here).
    let (top, base) = (&img.layers[1].diff_dir, &img.layers[2].diff_dir);
    fs::create_dir_all(base.join("opt/d/sub")).unwrap();
    fs::write(base.join("opt/d/old"), "").unwrap();
    fs::create_dir_all(top.join("opt/d")).unwrap();
    fs::write(top.join("opt/d/new"), "").unwrap();
    let emulations = [Emulation {
        below: 1,
        whiteouts: vec![PathBuf::from("opt/d")],
    }];
    let plan = plan_rootfs(&img, &run_dir, tmpfs(), true, &emulations);
    assert!(overlay_options(&plan).is_err(), "too long for mount(2)");
    let mounted = match apply_rootfs(&plan) {
        Ok(mounted) => mounted,
        Err(err) => {
            eprintln!("skipping the real mount test: {err}");
            return;
        }
    };
    let root = mounted.root().to_path_buf();
    let names = |p: &str| {
        let mut v: Vec<String> = fs::read_dir(root.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("opt/d"), ["new"]);
    for hidden in ["opt/d/old", "opt/d/sub"] {
        assert!(fs::symlink_metadata(root.join(hidden)).is_err(), "{hidden}");
    }
    // Not merged, as an opaque directory is not: its own link count (1 if merged), mode and
    // times, those of layer 1's directory.
    let (seen, real) = (
        fs::metadata(root.join("opt/d")).unwrap(),
        fs::metadata(top.join("opt/d")).unwrap(),
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (seen.nlink(), seen.mode(), seen.mtime()),
        (real.nlink(), real.mode(), real.mtime())
    );
    assert_eq!(seen.nlink(), 2);
    // The guest writes into it (a copy-up): the lower entries stay hidden.
    fs::write(root.join("opt/d/mine"), "").unwrap();
    assert_eq!(names("opt/d"), ["mine", "new"]);
    assert_eq!(names("many").len(), 300);
    // A lower directory removed whole from the guest (needs userxattr in a namespace).
    fs::remove_dir_all(root.join("opt")).unwrap();
    assert!(!root.join("opt").exists());
    mounted.unmount().unwrap();
    assert!(base.join("opt/d/old").exists());
    assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
}
