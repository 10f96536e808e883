//! First-boot configuration for guests that customise themselves: a cloud-init NoCloud seed
//! (a small FAT volume labelled CIDATA) and an Ignition config (handed over fw_cfg as
//! `opt/com.coreos/config`).
//!
//! bcvk's own needs (its SSH key for root and the image's default user, `--password`, the
//! `--bind` shares and swap as mounts, `--systemd-units`) are merged into what the user gives
//! (`--cloud-init DIR`, `--ignition FILE`), never replacing it. YAML and JSON go through
//! serde_yaml and serde_json: nothing is pasted into strings. Everything here but
//! [`write_seed_image`] is pure.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value as Yaml};

/// The fw_cfg name Ignition reads on QEMU.
pub const IGNITION_FW_CFG: &str = "opt/com.coreos/config";
/// The volume label NoCloud looks for (cloud-init matches it case-insensitively).
const SEED_LABEL: &[u8; 11] = b"CIDATA     ";

#[derive(Debug, thiserror::Error)]
pub enum FirstBootError {
    #[error("--cloud-init {dir}: {why}")]
    CloudInitDir { dir: PathBuf, why: String },
    #[error("--cloud-init {dir}: {file} is not valid YAML ({why}): fix it, or check it with cloud-init schema")]
    CloudInitYaml {
        dir: PathBuf,
        file: &'static str,
        why: String,
    },
    #[error("--ignition {file}: {why}")]
    Ignition { file: PathBuf, why: String },
    #[error("cannot write the cloud-init seed {path}: {why}")]
    Seed { path: PathBuf, why: String },
}

impl FirstBootError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            FirstBootError::Seed { .. } => Exit::Internal,
            _ => Exit::Usage,
        }
    }
}

/// What bcvk adds to the guest's first boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstBoot {
    /// NoCloud's instance-id: a new one makes cloud-init treat the boot as a first boot.
    pub instance_id: String,
    pub hostname: Option<String>,
    /// Public key lines authorized for root and for the image's default user.
    pub keys: Vec<String>,
    /// `--password`: the default user's password.
    pub password: Option<String>,
    /// fstab entries cloud-init's mounts module adds: (what, where, type, options).
    pub mounts: Vec<[String; 4]>,
    /// Files to write (unit files from `--systemd-units`), and links to make.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Units to start once written (systemd only reads new unit files after a reload).
    pub start_units: Vec<String>,
}

/// The user's NoCloud files (`--cloud-init DIR`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSeed {
    pub dir: PathBuf,
    pub user_data: String,
    pub meta_data: Option<String>,
    pub vendor_data: Option<String>,
    pub network_config: Option<String>,
}

/// Read `--cloud-init DIR`: user-data is required (NoCloud ignores a seed without it).
pub fn read_user_seed(dir: &Path) -> Result<UserSeed, FirstBootError> {
    let err = |why: String| FirstBootError::CloudInitDir {
        dir: dir.to_path_buf(),
        why,
    };
    if !dir.is_dir() {
        return Err(err(
            "no such directory in the container: bring it in with podman -v HOSTDIR:DIR:ro".into(),
        ));
    }
    let read = |name: &str| -> Result<Option<String>, FirstBootError> {
        match std::fs::read(dir.join(name)) {
            Ok(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| err(format!("{name} is not UTF-8 text"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(format!("cannot read {name}: {e}"))),
        }
    };
    let user_data = read("user-data")?.ok_or_else(|| {
        err(
            "has no user-data file: NoCloud needs one (it may hold just the line #cloud-config)"
                .into(),
        )
    })?;
    Ok(UserSeed {
        dir: dir.to_path_buf(),
        user_data,
        meta_data: read("meta-data")?,
        vendor_data: read("vendor-data")?,
        network_config: read("network-config")?,
    })
}

fn yaml_mapping(text: &str, dir: &Path, file: &'static str) -> Result<Mapping, FirstBootError> {
    let bad = |why: String| FirstBootError::CloudInitYaml {
        dir: dir.to_path_buf(),
        file,
        why,
    };
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml::from_str::<Yaml>(text).map_err(|e| bad(e.to_string()))? {
        Yaml::Mapping(m) => Ok(m),
        Yaml::Null => Ok(Mapping::new()),
        _ => Err(bad("the top level is not a mapping".into())),
    }
}

fn key(k: &str) -> Yaml {
    Yaml::String(k.into())
}

/// Append `items` to the sequence at `k` (created if absent).
fn append(m: &mut Mapping, k: &str, items: impl IntoIterator<Item = Yaml>) -> Result<(), String> {
    let entry = m
        .entry(key(k))
        .or_insert_with(|| Yaml::Sequence(Vec::new()));
    match entry {
        Yaml::Sequence(seq) => {
            seq.extend(items);
            Ok(())
        }
        Yaml::Null => {
            *entry = Yaml::Sequence(items.into_iter().collect());
            Ok(())
        }
        _ => Err(format!("{k} is not a list")),
    }
}

/// meta-data: the user's, with bcvk's instance-id and hostname where the user set none, and
/// bcvk's keys added to `public-keys` (cloud-init gives those to the default user, and to root
/// when `disable_root` is false).
pub fn meta_data(fb: &FirstBoot, user: Option<&UserSeed>) -> Result<String, FirstBootError> {
    let mut m = match user.and_then(|u| u.meta_data.as_deref().map(|t| (u, t))) {
        Some((u, text)) => yaml_mapping(text, &u.dir, "meta-data")?,
        None => Mapping::new(),
    };
    if !m.contains_key(key("instance-id")) {
        m.insert(key("instance-id"), key(&fb.instance_id));
    }
    if let Some(h) = &fb.hostname {
        if !m.contains_key(key("local-hostname")) {
            m.insert(key("local-hostname"), key(h));
        }
    }
    let keys = fb.keys.iter().map(|k| key(k));
    // NoCloud also takes a single string here: make it a list first.
    if let Some(Yaml::String(one)) = m.get(key("public-keys")).cloned() {
        m.insert(key("public-keys"), Yaml::Sequence(vec![Yaml::String(one)]));
    }
    append(&mut m, "public-keys", keys).map_err(|why| FirstBootError::CloudInitYaml {
        dir: user.map(|u| u.dir.clone()).unwrap_or_default(),
        file: "meta-data",
        why,
    })?;
    Ok(serde_yaml::to_string(&m).expect("a mapping of strings serializes"))
}

/// user-data: the user's `#cloud-config` with bcvk's additions merged in, or bcvk's alone.
/// A user-data that is not cloud-config (a script, a MIME archive) is passed as it is: bcvk's
/// keys still arrive through meta-data, but its mounts, password and units cannot be merged,
/// so those are refused.
pub fn user_data(fb: &FirstBoot, user: Option<&UserSeed>) -> Result<String, FirstBootError> {
    let (dir, text) = match user {
        Some(u) => (u.dir.clone(), Some(u.user_data.as_str())),
        None => (PathBuf::new(), None),
    };
    let cloud_config = text.is_none_or(|t| t.trim_start().starts_with("#cloud-config"));
    let extras = fb.password.is_some()
        || !fb.mounts.is_empty()
        || !fb.files.is_empty()
        || !fb.links.is_empty();
    if !cloud_config {
        if extras {
            return Err(FirstBootError::CloudInitDir {
                dir,
                why: "user-data is not #cloud-config, so bcvk cannot merge --password, --bind, --add-swap or --systemd-units into it: make it #cloud-config, or drop those options".into(),
            });
        }
        return Ok(text.unwrap_or_default().to_string());
    }
    let mut m = match text {
        Some(t) => yaml_mapping(t, &dir, "user-data")?,
        None => Mapping::new(),
    };
    let merge_err = |why: String| FirstBootError::CloudInitYaml {
        dir: dir.clone(),
        file: "user-data",
        why,
    };
    // Root keeps bcvk's key usable: readiness and `bcvk ssh` log in as root.
    m.insert(key("disable_root"), Yaml::Bool(false));
    append(
        &mut m,
        "ssh_authorized_keys",
        fb.keys.iter().map(|k| key(k)),
    )
    .map_err(merge_err)?;
    if let Some(p) = &fb.password {
        m.insert(key("password"), key(p));
        let mut chpasswd = Mapping::new();
        chpasswd.insert(key("expire"), Yaml::Bool(false));
        m.insert(key("chpasswd"), Yaml::Mapping(chpasswd));
        // Not ssh_pwauth: cloud-init would rewrite sshd's configuration and restart it after
        // sshd started, under a readiness probe or a command. The password is for the console
        // (and for sudo); a user who wants password logins over SSH says so in --cloud-init.
    }
    if !fb.mounts.is_empty() {
        let rows = fb.mounts.iter().map(|row| {
            Yaml::Sequence(
                row.iter()
                    .map(|f| key(f))
                    .chain([key("0"), key("0")])
                    .collect(),
            )
        });
        append(&mut m, "mounts", rows).map_err(merge_err)?;
    }
    if !fb.files.is_empty() {
        use base64::Engine as _;
        let files = fb.files.iter().map(|(path, contents)| {
            let mut f = Mapping::new();
            f.insert(key("path"), key(&path.to_string_lossy()));
            f.insert(key("encoding"), key("b64"));
            f.insert(
                key("content"),
                key(&base64::engine::general_purpose::STANDARD.encode(contents)),
            );
            f.insert(key("permissions"), key("0644"));
            Yaml::Mapping(f)
        });
        append(&mut m, "write_files", files).map_err(merge_err)?;
    }
    if !fb.links.is_empty() || !fb.start_units.is_empty() {
        // runcmd entries given as lists are exec'd without a shell: no quoting involved.
        let mut cmds: Vec<Yaml> = Vec::new();
        let argv = |a: &[&str]| Yaml::Sequence(a.iter().map(|s| key(s)).collect());
        for (link, target) in &fb.links {
            let parent = link.parent().unwrap_or(Path::new("/"));
            cmds.push(argv(&["mkdir", "-p", &parent.to_string_lossy()]));
            cmds.push(argv(&[
                "ln",
                "-sfn",
                &target.to_string_lossy(),
                &link.to_string_lossy(),
            ]));
        }
        cmds.push(argv(&["systemctl", "daemon-reload"]));
        if !fb.start_units.is_empty() {
            let mut start = vec!["systemctl", "start", "--no-block"];
            start.extend(fb.start_units.iter().map(String::as_str));
            cmds.push(argv(&start));
        }
        append(&mut m, "runcmd", cmds).map_err(merge_err)?;
    }
    Ok(format!(
        "#cloud-config\n{}",
        serde_yaml::to_string(&m).expect("a mapping serializes")
    ))
}

/// The seed's files: meta-data, user-data, and the user's vendor-data and network-config.
pub fn seed_files(
    fb: &FirstBoot,
    user: Option<&UserSeed>,
) -> Result<Vec<(&'static str, Vec<u8>)>, FirstBootError> {
    let mut files = vec![
        ("meta-data", meta_data(fb, user)?.into_bytes()),
        ("user-data", user_data(fb, user)?.into_bytes()),
    ];
    if let Some(u) = user {
        if let Some(v) = &u.vendor_data {
            files.push(("vendor-data", v.clone().into_bytes()));
        }
        if let Some(n) = &u.network_config {
            files.push(("network-config", n.clone().into_bytes()));
        }
    }
    Ok(files)
}

/// Write `files` into a new FAT volume labelled CIDATA at `path` (attached read-only).
pub fn write_seed_image(path: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), FirstBootError> {
    use std::io::Write;
    let err = |why: String| FirstBootError::Seed {
        path: path.to_path_buf(),
        why,
    };
    let payload: u64 = files.iter().map(|(_, c)| c.len() as u64).sum();
    // FAT12 with room to spare: 1 MiB plus the payload, rounded up to a MiB.
    let size = (payload + (2 << 20)) & !((1 << 20) - 1);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    file.set_len(size).map_err(|e| err(e.to_string()))?;
    fatfs::format_volume(
        &mut file,
        fatfs::FormatVolumeOptions::new().volume_label(*SEED_LABEL),
    )
    .map_err(|e| err(format!("formatting: {e}")))?;
    let fs = fatfs::FileSystem::new(&mut file, fatfs::FsOptions::new())
        .map_err(|e| err(format!("opening: {e}")))?;
    for (name, contents) in files {
        let mut f = fs
            .root_dir()
            .create_file(name)
            .map_err(|e| err(format!("{name}: {e}")))?;
        f.truncate().map_err(|e| err(format!("{name}: {e}")))?;
        f.write_all(contents)
            .map_err(|e| err(format!("{name}: {e}")))?;
    }
    fs.unmount().map_err(|e| err(format!("closing: {e}")))?;
    Ok(())
}

/// `--ignition FILE` with bcvk's keys added to root's `sshAuthorizedKeys`.
pub fn ignition_config(file: &Path, text: &str, keys: &[String]) -> Result<String, FirstBootError> {
    use serde_json::{json, Value};
    let bad = |why: String| FirstBootError::Ignition {
        file: file.to_path_buf(),
        why,
    };
    let mut cfg: Value = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "not valid JSON ({e}); Butane YAML must be converted with butane first"
        ))
    })?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| bad("the top level is not a JSON object".into()))?;
    if obj
        .get("ignition")
        .and_then(|i| i.get("version"))
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(bad("has no ignition.version: every Ignition config names its spec version, e.g. {\"ignition\": {\"version\": \"3.4.0\"}}".into()));
    }
    let passwd = obj
        .entry("passwd")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("passwd is not an object".into()))?;
    let users = passwd
        .entry("users")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| bad("passwd.users is not a list".into()))?;
    let root = match users
        .iter()
        .position(|u| u.get("name").and_then(Value::as_str) == Some("root"))
    {
        Some(i) => &mut users[i],
        None => {
            users.push(json!({"name": "root"}));
            users.last_mut().expect("just pushed")
        }
    };
    let list = root
        .as_object_mut()
        .ok_or_else(|| bad("a passwd.users entry is not an object".into()))?
        .entry("sshAuthorizedKeys")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| bad("root's sshAuthorizedKeys is not a list".into()))?;
    list.extend(keys.iter().map(|k| Value::String(k.clone())));
    Ok(serde_json::to_string_pretty(&cfg).expect("JSON serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb() -> FirstBoot {
        FirstBoot {
            instance_id: "bcvk-1".into(),
            hostname: Some("vm1".into()),
            keys: vec!["ssh-ed25519 AAAA bcvk".into()],
            ..FirstBoot::default()
        }
    }

    fn parse(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    fn user(user_data: &str, meta: Option<&str>) -> UserSeed {
        UserSeed {
            dir: "/seed".into(),
            user_data: user_data.into(),
            meta_data: meta.map(str::to_string),
            ..UserSeed::default()
        }
    }

    #[test]
    fn bcvk_alone_gives_keys_hostname_and_root_login() {
        let files = seed_files(&fb(), None).unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["meta-data", "user-data"]);
        let meta = parse(std::str::from_utf8(&files[0].1).unwrap());
        assert_eq!(meta[&key("instance-id")], key("bcvk-1"));
        assert_eq!(meta[&key("local-hostname")], key("vm1"));
        assert_eq!(
            meta[&key("public-keys")],
            Yaml::Sequence(vec![key("ssh-ed25519 AAAA bcvk")])
        );
        let ud = std::str::from_utf8(&files[1].1).unwrap();
        assert!(ud.starts_with("#cloud-config\n"), "{ud}");
        let ud = parse(ud);
        assert_eq!(ud[&key("disable_root")], Yaml::Bool(false));
        assert_eq!(
            ud[&key("ssh_authorized_keys")],
            Yaml::Sequence(vec![key("ssh-ed25519 AAAA bcvk")])
        );
    }

    #[test]
    fn the_users_config_is_kept_and_bcvks_added() {
        let u = user(
            "#cloud-config\nssh_authorized_keys: [\"ssh-rsa THEIRS\"]\nruncmd: [[touch, /x]]\npackages: [vim]\n",
            Some("instance-id: mine\npublic-keys: ssh-rsa META\n"),
        );
        let mut f = fb();
        f.password = Some("pa'ss: \"word\"\n#".into());
        f.mounts = vec![[
            "mnt-work".into(),
            "/work dir".into(),
            "virtiofs".into(),
            "defaults,nofail".into(),
        ]];
        f.files = vec![("/etc/systemd/system/a.service".into(), b"[Unit]\n".to_vec())];
        f.links = vec![(
            "/etc/systemd/system/multi-user.target.wants/a.service".into(),
            "../a.service".into(),
        )];
        f.start_units = vec!["a.service".into()];
        let meta = parse(&meta_data(&f, Some(&u)).unwrap());
        assert_eq!(meta[&key("instance-id")], key("mine"));
        assert_eq!(meta[&key("local-hostname")], key("vm1"));
        assert_eq!(
            meta[&key("public-keys")],
            Yaml::Sequence(vec![key("ssh-rsa META"), key("ssh-ed25519 AAAA bcvk")])
        );
        let ud = parse(&user_data(&f, Some(&u)).unwrap());
        assert_eq!(ud[&key("packages")], Yaml::Sequence(vec![key("vim")]));
        assert_eq!(
            ud[&key("ssh_authorized_keys")],
            Yaml::Sequence(vec![key("ssh-rsa THEIRS"), key("ssh-ed25519 AAAA bcvk")])
        );
        // The password survives YAML-special characters unchanged.
        assert_eq!(ud[&key("password")], key("pa'ss: \"word\"\n#"));
        let mounts = ud[&key("mounts")].as_sequence().unwrap();
        assert_eq!(
            mounts[0],
            Yaml::Sequence(
                [
                    "mnt-work",
                    "/work dir",
                    "virtiofs",
                    "defaults,nofail",
                    "0",
                    "0"
                ]
                .map(key)
                .to_vec()
            )
        );
        let wf = &ud[&key("write_files")].as_sequence().unwrap()[0];
        assert_eq!(wf[&key("encoding")], key("b64"));
        assert_eq!(wf[&key("content")], key("W1VuaXRdCg=="));
        let runcmd = ud[&key("runcmd")].as_sequence().unwrap();
        // The user's own command first, then bcvk's links, reload and start.
        assert_eq!(runcmd[0], Yaml::Sequence(vec![key("touch"), key("/x")]));
        assert_eq!(
            runcmd.last().unwrap(),
            &Yaml::Sequence(
                ["systemctl", "start", "--no-block", "a.service"]
                    .map(key)
                    .to_vec()
            )
        );
    }

    #[test]
    fn non_cloud_config_user_data_passes_through_unless_merging_is_needed() {
        let script = user("#!/bin/sh\necho hi\n", None);
        assert_eq!(
            user_data(&fb(), Some(&script)).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        let mut f = fb();
        f.password = Some("x".into());
        let err = user_data(&f, Some(&script)).unwrap_err().to_string();
        assert!(
            err.contains("not #cloud-config") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_and_wrong_shapes_are_one_line_errors() {
        for (ud, meta) in [
            ("#cloud-config\n: : [\n", None),
            ("#cloud-config\n- a\n- b\n", None),
            ("#cloud-config\nruncmd: 5\n", None),
            ("#cloud-config\n", Some("public-keys: {a: 1}\n")),
        ] {
            let mut f = fb();
            f.start_units = vec!["a.service".into()];
            let u = user(ud, meta);
            let err = seed_files(&f, Some(&u)).unwrap_err().to_string();
            assert!(
                err.starts_with("--cloud-init /seed:") && !err.contains('\n'),
                "{err}"
            );
        }
    }

    #[test]
    fn user_seed_needs_user_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meta-data"), "instance-id: x\n").unwrap();
        let err = read_user_seed(dir.path()).unwrap_err().to_string();
        assert!(err.contains("has no user-data"), "{err}");
        std::fs::write(dir.path().join("user-data"), "#cloud-config\n").unwrap();
        std::fs::write(dir.path().join("vendor-data"), "#cloud-config\n").unwrap();
        let u = read_user_seed(dir.path()).unwrap();
        assert_eq!(u.meta_data.as_deref(), Some("instance-id: x\n"));
        assert!(u.vendor_data.is_some() && u.network_config.is_none());
        let files = seed_files(&fb(), Some(&u)).unwrap();
        assert_eq!(files.len(), 3);
        assert!(read_user_seed(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn seed_image_is_a_cidata_fat_volume_holding_the_files() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.img");
        let files = seed_files(&fb(), None).unwrap();
        write_seed_image(&path, &files).unwrap();
        let img = std::fs::read(&path).unwrap();
        // The boot sector's label (FAT12/16 at offset 43) is what blkid reports.
        assert_eq!(&img[43..54], SEED_LABEL);
        let mut f = std::fs::File::open(&path).unwrap();
        let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
        for (name, contents) in &files {
            let mut got = Vec::new();
            fs.root_dir()
                .open_file(name)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(&got, contents);
        }
        // Never over an existing file.
        assert!(write_seed_image(&path, &files).is_err());
    }

    #[test]
    fn ignition_keys_are_merged_into_root() {
        let keys = vec!["ssh-ed25519 AAAA bcvk".to_string()];
        let cfg = r#"{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k1"]},{"name":"root","sshAuthorizedKeys":["k2"]}]},"storage":{"files":[]}}"#;
        let out: serde_json::Value =
            serde_json::from_str(&ignition_config(Path::new("c.ign"), cfg, &keys).unwrap())
                .unwrap();
        assert_eq!(
            out["passwd"]["users"][0]["sshAuthorizedKeys"],
            serde_json::json!(["k1"])
        );
        assert_eq!(
            out["passwd"]["users"][1]["sshAuthorizedKeys"],
            serde_json::json!(["k2", "ssh-ed25519 AAAA bcvk"])
        );
        assert_eq!(out["storage"], serde_json::json!({"files": []}));
        let bare = ignition_config(
            Path::new("c.ign"),
            r#"{"ignition":{"version":"3.0.0"}}"#,
            &keys,
        )
        .unwrap();
        let out: serde_json::Value = serde_json::from_str(&bare).unwrap();
        assert_eq!(
            out["passwd"]["users"],
            serde_json::json!([{"name": "root", "sshAuthorizedKeys": ["ssh-ed25519 AAAA bcvk"]}])
        );
        for bad in [
            "",
            "[]",
            "{}",
            "variant: fcos\nversion: 1.5.0",
            r#"{"ignition":{"version":"3.4.0"},"passwd":[]}"#,
        ] {
            let err = ignition_config(Path::new("c.ign"), bad, &keys)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("--ignition c.ign:") && !err.contains('\n'),
                "{err}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_password_and_key_round_trip(pw in ".*", k in "[ -~]{1,80}") {
            let mut f = fb();
            f.password = Some(pw.clone());
            f.keys = vec![k.clone()];
            let ud = parse(&user_data(&f, None).unwrap());
            proptest::prop_assert_eq!(&ud[&key("password")], &key(&pw));
            proptest::prop_assert_eq!(&ud[&key("ssh_authorized_keys")], &Yaml::Sequence(vec![key(&k)]));
        }
    }
}
