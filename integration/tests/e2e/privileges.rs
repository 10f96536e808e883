//! The three privilege modes (podman's default capabilities rootful, --privileged, rootless)
//! and any number of layers: the guest's view of an image must be podman's view of it, file
//! by file, and the guest must see nothing else of the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use bcvk_integration::*;

use libtest_mimic::Failed;

use crate::R;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// podman's default capabilities and seccomp profile: bcvk's own user namespace.
    Unprivileged,
    /// `--privileged`: mounts in the container's namespaces, trusted.* xattrs read natively.
    Privileged,
    /// A regular user's rootless podman and its own store.
    Rootless,
}

impl Mode {
    /// What bcvk logs for this mode (`mode=` of its "image found" line).
    fn logged(self) -> &'static str {
        match self {
            Mode::Unprivileged => "mode=\"unprivileged, in bcvk's own user namespace\"",
            Mode::Privileged => "mode=\"privileged (CAP_SYS_ADMIN)\"",
            Mode::Rootless => "mode=\"rootless, unprivileged, in bcvk's own user namespace\"",
        }
    }
}

fn rootless_script() -> String {
    examples::repo_root()
        .join("integration/rootless.sh")
        .display()
        .to_string()
}

/// `podman ARGS` as root, or as the rootless test user (integration/rootless.sh).
pub fn podman_as(mode: Mode, args: &[&str]) -> Run {
    match mode {
        Mode::Rootless => {
            let script = rootless_script();
            let mut a = vec!["podman"];
            a.extend_from_slice(args);
            cmd(&script, &a)
        }
        _ => podman(args),
    }
}

/// The rootless test user's store.
pub fn rootless_store() -> Result<String, String> {
    let r = cmd(&rootless_script(), &["store"]);
    let store = r.stdout.trim().to_string();
    check_str(r.code == 0 && !store.is_empty(), || r.show())?;
    Ok(store)
}

fn check_str(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// `podman run --rm` of bcvk with IMAGE and `bcvk_args`, in `mode`.
pub fn bcvk_in(mode: Mode, image: &str, bcvk_args: &[&str]) -> Result<Run, String> {
    let store = match mode {
        Mode::Rootless => rootless_store()?,
        _ => host_store().display().to_string(),
    };
    let store_vol = format!("{store}:/run/host-storage:ro");
    let mut a = vec!["run", "--rm", "--label", test_label(), "-v", &store_vol];
    match mode {
        Mode::Privileged => a.push("--privileged"),
        // slirp4netns cannot open /dev/net/tun (0600) on this project's machines; QEMU's own
        // user network inside the container still carries bcvk's SSH.
        Mode::Rootless => a.extend(["--network", "none"]),
        Mode::Unprivileged => {}
    }
    if Path::new("/dev/kvm").exists() {
        // Rootless, a /dev/kvm of mode 0600 (as on this project's machines) passes through but
        // cannot be opened: bcvk must say so and use TCG.
        a.extend(["--device", "/dev/kvm"]);
    }
    let bcvk = bcvk_image();
    a.push(&bcvk);
    a.push(image);
    a.extend_from_slice(bcvk_args);
    Ok(podman_as(mode, &a))
}

fn list_script() -> Result<String, String> {
    let p = examples::repo_root().join("test-images/semantics/list.sh");
    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The container view of the semantics image, as `podman run IMAGE` shows it (rootful and
/// rootless stores each have their own).
fn container_listing(mode: Mode) -> Result<String, String> {
    static ROOTFUL: OnceLock<Result<String, String>> = OnceLock::new();
    static ROOTLESS: OnceLock<Result<String, String>> = OnceLock::new();
    let cell = if mode == Mode::Rootless {
        &ROOTLESS
    } else {
        &ROOTFUL
    };
    cell.get_or_init(|| {
        let script = list_script()?;
        let image = semantics();
        let r = podman_as(
            mode,
            &[
                "run",
                "--rm",
                "--label",
                test_label(),
                "--network",
                "none",
                &image,
                "sh",
                "-c",
                &script,
            ],
        );
        check_str(r.code == 0, || r.show())?;
        Ok(r.stdout)
    })
    .clone()
}

/// Paths whose content is not the image's: the container runtime's own mounts and the files
/// a booting guest writes (identity, keys, journal, timers, bcvk's SSH key). Anything else that
/// differs between the two views is a layer-semantics bug.
const NOT_THE_IMAGE: &[&str] = &[
    "/",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/machine-id",
    "/etc/ssh/ssh_host_",
    "/root/.ssh",
    "/var/lib/dbus/machine-id",
    "/var/lib/systemd/",
    "/var/log/journal",
    "/var/log/wtmp",
    "/var/log/btmp",
    "/var/log/lastlog",
    "/var/tmp/systemd-private-",
    "/var/lib/private",
    "/var/cache/private",
    "/var/log/private",
];

fn not_the_image(path: &str) -> bool {
    NOT_THE_IMAGE.iter().any(|p| {
        if p.ends_with('/') || p.ends_with('_') || p.ends_with('-') {
            path.starts_with(p)
        } else {
            path == *p || path.starts_with(&format!("{p}/"))
        }
    })
}

/// A directory above a path of `NOT_THE_IMAGE`: the booting guest writes below it, so the
/// overlay copies it up and merges it (link count 1) and its mtime may move.
fn written_below(path: &str) -> bool {
    NOT_THE_IMAGE
        .iter()
        .any(|p| p.len() > path.len() + 1 && p.starts_with(&format!("{path}/")))
}

/// The listing's lines by path, as compared: a directory `written_below` has its link count
/// and mtime (fields 6 and 7 of list.sh's) blanked.
fn by_path(listing: &str) -> BTreeMap<&str, String> {
    listing
        .lines()
        .filter_map(|l| {
            let mut fields: Vec<&str> = l.split('|').collect();
            let path = *fields.first()?;
            if fields.get(3) == Some(&"directory") && written_below(path) && fields.len() > 6 {
                fields[5] = "*";
                fields[6] = "*";
            }
            Some((path, fields.join("|")))
        })
        .collect()
}

/// Every difference between the two listings' file sections outside `NOT_THE_IMAGE`, and
/// whether their capability sections agree.
fn differences(container: &str, guest: &str) -> Vec<String> {
    let (c_files, c_caps) = container
        .split_once("--- capabilities\n")
        .unwrap_or((container, ""));
    let (g_files, g_caps) = guest
        .split_once("--- capabilities\n")
        .unwrap_or((guest, ""));
    let (c, g) = (by_path(c_files), by_path(g_files));
    let mut out = Vec::new();
    for (path, line) in &c {
        if not_the_image(path) {
            continue;
        }
        match g.get(path) {
            None => out.push(format!("missing in the guest: {line}")),
            Some(gl) if gl != line => out.push(format!("podman: {line}\nguest:  {gl}")),
            Some(_) => {}
        }
    }
    for (path, line) in &g {
        if !not_the_image(path) && !c.contains_key(path) {
            out.push(format!("only in the guest: {line}"));
        }
    }
    if c_caps.trim() != g_caps.trim() {
        out.push(format!(
            "file capabilities differ:\npodman: {c_caps}\nguest:  {g_caps}"
        ));
    }
    out
}

/// What the guest does after listing: write to, chown and `rm -rf` things of lower layers, and
/// look for anything of the store beyond its own image.
const GUEST_WRITES: &str = r#"
echo "--- guest writes"
chown 1234:1235 /opt/sem/guest/chown-me && stat -c 'chowned %u:%g' /opt/sem/guest/chown-me
rm -rf /opt/sem/guest/rmdir && test ! -e /opt/sem/guest/rmdir && echo removed-lower-tree
echo written > /opt/sem/keep/chowned && cat /opt/sem/keep/chowned
mknod /opt/sem/guest/node c 1 3 2>/dev/null && echo mknod-ok || echo mknod-refused
setpriv --reuid=65534 --regid=65534 --clear-groups cat /opt/sem/private/inner/file 2>/dev/null || echo private-refused
echo "virtiofs shares: $(grep -c ' virtiofs ' /proc/mounts)"
find / -xdev -name 'bcvk-bystander-marker*' 2>/dev/null | sed 's/^/found: /'
echo done
"#;

fn semantics() -> String {
    var(
        "BCVK_TEST_SEMANTICS",
        "localhost/bcvk-test/semantics:latest",
    )
}

/// Returns bcvk's stderr for further checks.
fn semantics_in(mode: Mode) -> Result<String, Failed> {
    let container = container_listing(mode)?;
    let script = format!("{}\n{GUEST_WRITES}", list_script()?);
    let t = Instant::now();
    let r = bcvk_in(mode, &semantics(), &["--execute", &script])?;
    check!(r.code == 0, "{}", r.show());
    check!(
        r.stderr.contains(mode.logged()),
        "bcvk should say it runs in mode {:?} ({}): {}",
        mode,
        mode.logged(),
        tail(&r.stderr, 30)
    );
    let (listing, writes) = r
        .stdout
        .split_once("--- guest writes\n")
        .ok_or(format!("no guest-writes section: {}", r.show()))?;
    let diff = differences(&container, listing);
    check!(
        diff.is_empty(),
        "the guest's view of {} differs from podman's in {} places ({:?} mode, {:.0}s):\n{}",
        semantics(),
        diff.len(),
        mode,
        t.elapsed().as_secs_f64(),
        diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    check!(
        listing.lines().count() > 5000,
        "the listing is too short to be a whole root: {}",
        tail(listing, 10)
    );
    // Writes of the guest: chown and rm -rf of lower-layer entries work; device nodes the
    // guest makes on its root are refused in a user namespace (the image's own show, above)
    // and allowed with --privileged; the 0700 dir of another uid stays closed to others.
    let mknod = if mode == Mode::Privileged {
        "mknod-ok"
    } else {
        "mknod-refused"
    };
    let want = format!(
        "chowned 1234:1235\nremoved-lower-tree\nwritten\n{mknod}\nprivate-refused\nvirtiofs shares: 1\ndone\n"
    );
    check!(
        writes == want,
        "guest writes: want {want:?}, got {writes:?}"
    );
    Ok(r.stderr)
}

pub fn semantics_unprivileged() -> R {
    semantics_in(Mode::Unprivileged).map(drop)
}

pub fn semantics_privileged() -> R {
    semantics_in(Mode::Privileged).map(drop)
}

pub fn semantics_rootless() -> R {
    let before = store_fingerprint_at(Path::new(&rootless_store()?), &[semantics()])?;
    let stderr = semantics_in(Mode::Rootless)?;
    let kvm = std::fs::metadata("/dev/kvm").map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o006
    });
    if matches!(kvm, Ok(0)) {
        check!(
            stderr.contains("/dev/kvm is not accessible (permission denied)")
                && stderr.contains("--group-add keep-groups"),
            "a /dev/kvm closed to the rootless user should be named, with the fix: {}",
            tail(&stderr, 20)
        );
    }
    let after = store_fingerprint_at(Path::new(&rootless_store()?), &[semantics()])?;
    check!(before == after, "the rootless user's store changed");
    Ok(())
}

/// 200 and 450 layers (near the kernel's 500) boot without privileges, every layer stacked.
pub fn many_layers() -> R {
    let base = podman(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &debian(),
    ]);
    let base: usize = base
        .stdout
        .trim()
        .parse()
        .map_err(|_| format!("layers of {}: {}", debian(), base.show()))?;
    for (n, image) in [
        (
            200,
            var(
                "BCVK_TEST_LAYERS200",
                "localhost/bcvk-test/layers200:latest",
            ),
        ),
        (
            450,
            var(
                "BCVK_TEST_LAYERS450",
                "localhost/bcvk-test/layers450:latest",
            ),
        ),
    ] {
        let r = bcvk_in(
            Mode::Unprivileged,
            &image,
            &["--", "sh", "-c", "ls /usr/share/bcvk-layers | wc -l"],
        )?;
        check!(r.code == 0, "{image}: {}", r.show());
        check!(
            r.stderr.contains(&format!("layers={n} ")),
            "{image} should have {n} layers: {}",
            tail(&r.stderr, 20)
        );
        let want = (n - base).to_string();
        check!(
            r.stdout.trim() == want,
            "{image}: the guest should see the files of all {want} added layers: {}",
            r.show()
        );
    }
    Ok(())
}

/// podman with its default capabilities but CAP_SETUID dropped cannot map bcvk's namespace:
/// one line naming the missing piece and the fix, exit 77, nothing left behind.
pub fn missing_capability() -> R {
    let store = format!("{}:/run/host-storage:ro", host_store().display());
    let image = bcvk_image();
    let r = podman(&[
        "run",
        "--rm",
        "--label",
        test_label(),
        "--cap-drop",
        "SETUID",
        "-v",
        &store,
        &image,
        &debian(),
        "--",
        "true",
    ]);
    check!(r.code == 77, "want exit 77: {}", r.show());
    let line = r.last_stderr_line();
    check!(
        line.starts_with("bcvk: error: cannot map the container's ids")
            && line.contains("CAP_SETUID"),
        "want one line naming CAP_SETUID: {}",
        r.show()
    );
    Ok(())
}
