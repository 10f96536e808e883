//! The persistent state of a `--persistent` VM: the overlay's upper layer (the guest's writes)
//! kept in a directory on a volume (`/cache` by default), reused by every later run.
//!
//! Layout of the state directory:
//!   bcvk-state.json   which image the state belongs to (its ID), and the files bcvk itself
//!                     wrote into the guest's root last time (units for shares, swap, ...),
//!                     removed before this run writes its own
//!   bcvk-state.lock   flock(2)ed for as long as a VM uses the state: one VM at a time
//!   upper/, work/     the overlay's upper and work directories
//!
//! A state belongs to one image ID: starting it with another (an updated tag) is refused, never
//! a silent mix of an old upper layer with new lower layers; `--reset` starts it over.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub const RECORD: &str = "bcvk-state.json";
pub const LOCK: &str = "bcvk-state.lock";
/// The seed of bcvk's SSH key for this VM (0600): kept, since the guest's root keeps the
/// authorized_keys file it was given, and an image's own tmpfiles rule may not overwrite it.
pub const SSH_SEED: &str = "bcvk-ssh-seed";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("--persistent: the state directory {} is missing or not a directory: mount a volume there (podman run -v NAME:{} ...)", .0.display(), .0.display())]
    NoDir(PathBuf),
    #[error("--persistent: the state in {} belongs to image {old} ({old_name}), not {new} ({new_name}): boot {old_name} again, use another volume, or pass --reset to start the state over from {new_name}", .dir.display())]
    OtherImage {
        dir: PathBuf,
        old: String,
        old_name: String,
        new: String,
        new_name: String,
    },
    #[error("--persistent: the state in {} is in use by another VM: stop it first (one state, one VM at a time)", .0.display())]
    Busy(PathBuf),
    #[error("--persistent: {} is unreadable or corrupt ({why}): pass --reset to start the state over", .path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("--persistent: cannot {what} {} ({source}): the state volume must be writable", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StateError {
    /// Its class in the table of exit codes (`exit`).
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            StateError::NoDir(_) | StateError::OtherImage { .. } => Exit::Usage,
            StateError::Corrupt { .. } => Exit::StoreCorrupt,
            StateError::Busy(_) => Exit::StateBusy,
            StateError::Io { .. } => Exit::Internal,
        }
    }
}

/// What `bcvk-state.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub image_id: String,
    pub image_name: String,
    /// Unix seconds when the state was created.
    pub created: u64,
    /// Paths (relative to the guest's root) bcvk wrote last run.
    #[serde(default)]
    pub generated: Vec<PathBuf>,
}

/// A state in use: the lock is held until this is dropped.
#[derive(Debug)]
pub struct PersistentState {
    pub dir: PathBuf,
    pub record: Record,
    /// True when this run created (or reset) the state.
    pub fresh: bool,
    /// Unlocked when dropped.
    _lock: Flock<File>,
}

impl PersistentState {
    /// Undo a state this run created and never used (the image turned out unfit for it), so
    /// that a refused run leaves the volume as it found it.
    pub fn discard(self) {
        if self.fresh {
            for sub in ["upper", "work"] {
                let _ = fs::remove_dir_all(self.dir.join(sub));
            }
            for f in [RECORD, LOCK] {
                let _ = fs::remove_file(self.dir.join(f));
            }
        }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// bcvk's SSH key seed for this state, made on first use.
    pub fn ssh_seed(&self) -> Result<[u8; 32], StateError> {
        use rand::RngExt;
        let path = self.dir.join(SSH_SEED);
        match fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| StateError::Corrupt {
                path: path.clone(),
                why: "not a 32-byte seed".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed: [u8; 32] = rand::rng().random();
                replace_durably(&self.dir, SSH_SEED, &seed, 0o600)?;
                Ok(seed)
            }
            Err(e) => Err(StateError::Corrupt {
                path,
                why: e.to_string(),
            }),
        }
    }

    /// Remember what bcvk wrote into the root this run (durably: the next run removes it).
    pub fn record_generated(&mut self, generated: Vec<PathBuf>) -> Result<(), StateError> {
        self.record.generated = generated;
        write_record(&self.dir, &self.record)
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { what, path, source }
}

fn write_record(dir: &Path, record: &Record) -> Result<(), StateError> {
    let text = serde_json::to_vec_pretty(record).expect("a record serialises");
    replace_durably(dir, RECORD, &text, 0o644)
}

/// Replace `dir/name` with `bytes` so that a crash leaves the old file or the new one, never
/// a part: a synced temporary file renamed over it, then the directory synced.
fn replace_durably(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("write", &tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("write", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

fn make_dirs(dir: &Path) -> Result<(), StateError> {
    for sub in ["upper", "work"] {
        let p = dir.join(sub);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&p)
            .map_err(io("create", &p))?;
        // upper's mode is the mode of the guest's /.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(io("create", &p))?;
    }
    Ok(())
}

/// Lock and open the state in `dir` for `image_id`, creating it on first use; `reset` starts
/// it over (only once the lock is held, so a running VM's state is never removed).
pub fn open(
    dir: &Path,
    image_id: &str,
    image_name: &str,
    reset: bool,
) -> Result<PersistentState, StateError> {
    if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Err(StateError::NoDir(dir.to_path_buf()));
    }
    let lock_path = dir.join(LOCK);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", &lock_path))?;
    let locked = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((_, nix::Error::EWOULDBLOCK)) => return Err(StateError::Busy(dir.to_path_buf())),
        Err((_, e)) => {
            return Err(StateError::Io {
                what: "lock",
                path: lock_path,
                source: e.into(),
            })
        }
    };
    finish_open(dir, image_id, image_name, reset, locked)
}

fn finish_open(
    dir: &Path,
    image_id: &str,
    image_name: &str,
    reset: bool,
    lock: Flock<File>,
) -> Result<PersistentState, StateError> {
    let record_path = dir.join(RECORD);
    let existing = match fs::read(&record_path) {
        Ok(bytes) => {
            Some(
                serde_json::from_slice::<Record>(&bytes).map_err(|e| StateError::Corrupt {
                    path: record_path.clone(),
                    why: e.to_string(),
                }),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(StateError::Corrupt {
                path: record_path,
                why: e.to_string(),
            })
        }
    };
    let fresh_record = || Record {
        image_id: image_id.to_string(),
        image_name: image_name.to_string(),
        created: crate::status::now_unix(),
        generated: Vec::new(),
    };
    let (record, fresh) = match existing {
        Some(Ok(r)) if r.image_id == image_id && !reset => {
            // The record is written after the directories: both exist in a state it names.
            for sub in ["upper", "work"] {
                let p = dir.join(sub);
                if !p.is_dir() {
                    return Err(StateError::Corrupt {
                        path: p,
                        why: "missing".into(),
                    });
                }
            }
            (r, false)
        }
        Some(Ok(r)) if !reset => {
            return Err(StateError::OtherImage {
                dir: dir.to_path_buf(),
                old: r.image_id[..12.min(r.image_id.len())].to_string(),
                old_name: r.image_name,
                new: image_id[..12.min(image_id.len())].to_string(),
                new_name: image_name.to_string(),
            })
        }
        Some(Err(e)) if !reset => return Err(e),
        _ => {
            // New, or --reset: the record goes first, so an interrupted reset is never
            // taken for the old state with the new image.
            let _ = fs::remove_file(&record_path);
            for sub in ["upper", "work"] {
                let p = dir.join(sub);
                if p.exists() {
                    fs::remove_dir_all(&p).map_err(io("remove", &p))?;
                }
            }
            make_dirs(dir)?;
            let r = fresh_record();
            write_record(dir, &r)?;
            (r, true)
        }
    };
    Ok(PersistentState {
        dir: dir.to_path_buf(),
        record,
        fresh,
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn creates_reuses_and_refuses_another_image() {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path(), A, "localhost/os:1", false).unwrap();
        assert!(s.fresh);
        fs::write(s.upper().join("kept"), "x").unwrap();
        drop(s);
        let s = open(d.path(), A, "localhost/os:1", false).unwrap();
        assert!(!s.fresh);
        assert!(s.upper().join("kept").exists());
        drop(s);
        let err = open(d.path(), B, "localhost/os:2", false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("aaaaaaaaaaaa") && msg.contains("bbbbbbbbbbbb") && msg.contains("--reset"),
            "{msg}"
        );
        let s = open(d.path(), B, "localhost/os:2", true).unwrap();
        assert!(s.fresh);
        assert!(!s.upper().join("kept").exists());
        assert_eq!(s.record.image_id, B);
    }

    #[test]
    fn one_vm_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let held = open(d.path(), A, "os", false).unwrap();
        let err = open(d.path(), A, "os", false).unwrap_err();
        assert!(matches!(err, StateError::Busy(_)), "{err}");
        // Not even --reset takes a state in use.
        assert!(matches!(
            open(d.path(), A, "os", true).unwrap_err(),
            StateError::Busy(_)
        ));
        assert!(held.upper().is_dir());
        drop(held);
        open(d.path(), A, "os", false).unwrap();
    }

    #[test]
    fn missing_dir_and_corrupt_record_are_named() {
        let d = tempfile::tempdir().unwrap();
        let err = open(&d.path().join("nope"), A, "os", false).unwrap_err();
        assert!(err.to_string().contains("-v NAME:"), "{err}");
        fs::write(d.path().join(RECORD), "{not json").unwrap();
        let err = open(d.path(), A, "os", false).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(open(d.path(), A, "os", true).unwrap().fresh);
    }

    #[test]
    fn the_ssh_seed_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = open(d.path(), A, "os", false).unwrap();
        let seed = s.ssh_seed().unwrap();
        assert_eq!(s.ssh_seed().unwrap(), seed);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(d.path().join(SSH_SEED)).unwrap().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn generated_files_are_recorded() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path(), A, "os", false).unwrap();
        s.record_generated(vec![PathBuf::from("etc/systemd/system/x.mount")])
            .unwrap();
        drop(s);
        let s = open(d.path(), A, "os", false).unwrap();
        assert_eq!(
            s.record.generated,
            [PathBuf::from("etc/systemd/system/x.mount")]
        );
    }
}
