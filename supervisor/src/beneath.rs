//! Paths beneath a directory whose contents an image or a guest wrote (a layer, the guest's
//! root): resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no symlink of
//! theirs is followed and nothing outside the directory is reached, whatever they hold. Used
//! to read the store (`store`) and layers (`opaque`), and to write bcvk's files into the
//! guest's root (`guestfs`).
//!
//! A symlink in the way is refused, not resolved: unlike the kernel lookup (which follows the
//! image's links the way the guest would, for reading), a write has no business going through
//! the image's links, and an error naming the link says what is wrong.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Open `rel` beneath the directory `root` with no symbolic link at any component and no
/// `..` (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); on kernels without
/// `openat2` (before 5.6) by [`open_walk`], which applies the same rule. A refusal is ELOOP
/// (a link on the way) or EXDEV (an escape): see [`is_link_refusal`]. `mode` is for
/// `O_CREAT`.
pub fn open_beneath(
    root: impl AsFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    // openat2 refuses flags O_PATH ignores (EINVAL), so O_NOCTTY only without it.
    let flags = if flags.contains(OFlags::PATH) {
        flags | OFlags::CLOEXEC
    } else {
        flags | OFlags::CLOEXEC | OFlags::NOCTTY
    };
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    loop {
        match rustix::fs::openat2(&root, rel, flags, mode, how) {
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(Errno::NOSYS) => return open_walk(&root, rel, flags, mode),
            result => return result,
        }
    }
}

/// The same rule for kernels without `openat2`: one component at a time, each opened with
/// `O_NOFOLLOW`.
pub(crate) fn open_walk(
    root: impl AsFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let parts: Vec<&OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(part) => Ok(part),
            Component::CurDir => Ok(OsStr::new(".")),
            _ => Err(Errno::XDEV),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, dirs)) = parts.split_last() else {
        return Err(Errno::INVAL);
    };
    let mut dir: Option<OwnedFd> = None;
    for part in dirs {
        let next = match &dir {
            Some(d) => rustix::fs::openat(d, *part, WALK, Mode::empty()),
            None => rustix::fs::openat(&root, *part, WALK, Mode::empty()),
        }
        .map_err(symlink_errno)?;
        dir = Some(next);
    }
    match &dir {
        Some(d) => rustix::fs::openat(d, *last, flags | OFlags::NOFOLLOW, mode),
        None => rustix::fs::openat(&root, *last, flags | OFlags::NOFOLLOW, mode),
    }
    .map_err(symlink_errno)
}

const WALK: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// With `O_NOFOLLOW`, a link as the last component gives ELOOP, or ENOTDIR with
/// `O_DIRECTORY`; both are reported as the link they are.
fn symlink_errno(e: Errno) -> Errno {
    if e == Errno::NOTDIR {
        Errno::LOOP
    } else {
        e
    }
}

/// Whether resolution failed because of a link (or an escape from the root).
pub fn is_link_refusal(e: Errno) -> bool {
    e == Errno::LOOP || e == Errno::XDEV
}

/// `rel` as plain names (no `/`, `.` or `..`): the only paths the writers below take.
fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a plain relative path", rel.display()),
            )),
        })
        .collect()
}

/// [`open_beneath`] for the writers: an io::Error.
fn open_at(base: impl AsFd, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    Ok(open_beneath(base, rel, flags, mode)?)
}

fn open_root(root: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        flags | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Open the directory `rel` beneath `root` for reading (its entries, its xattrs).
pub fn open_dir(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    names(rel)?;
    let base = open_root(root, OFlags::RDONLY)?;
    if rel.as_os_str().is_empty() {
        return Ok(base);
    }
    open_at(
        &base,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
}

/// The error for a name that exists but cannot be walked through: a symlink (named as such),
/// or something else that is not a directory.
fn in_the_way(dir: impl AsFd, rel_so_far: &Path, name: &OsStr, e: io::Error) -> io::Error {
    let is_link = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
    if is_link {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "/{} is a symlink in the image: bcvk writes through no symlink of the image",
                rel_so_far.display()
            ),
        )
    } else {
        e
    }
}

/// `mkdir -p rel` beneath `root`, through directories only; returns the last one, opened
/// (`O_PATH`) for the `*at` calls below.
pub fn create_dirs(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let mut dir = open_root(root, OFlags::PATH)?;
    let mut so_far = PathBuf::new();
    for name in names(rel)? {
        so_far.push(name);
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(in_the_way(&dir, &so_far, name, e.into())),
        }
        dir = open_at(
            &dir,
            Path::new(name),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| in_the_way(&dir, &so_far, name, e))?;
    }
    Ok(dir)
}

/// The directory holding `rel` (created as needed) and `rel`'s last name.
fn parent_of<'a>(root: &Path, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", rel.display()),
        ));
    };
    names(rel)?;
    Ok((create_dirs(root, parent)?, name))
}

/// Remove whatever file or symlink is at `name` (a directory stays and makes the caller fail).
fn clear(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Write `contents` as a new file at `rel` beneath `root` (mode 0644): a file or symlink
/// already there is replaced, never written through.
pub fn write_file(root: &Path, rel: &Path, contents: &[u8]) -> io::Result<()> {
    let (dir, name) = parent_of(root, rel)?;
    clear(&dir, name)?;
    let fd = open_at(
        &dir,
        Path::new(name),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o644),
    )?;
    io::Write::write_all(&mut std::fs::File::from(fd), contents)
}

/// Make `rel` beneath `root` a symlink to `target` (which is not looked at: the guest
/// resolves it), replacing a file or symlink already there.
pub fn symlink(root: &Path, rel: &Path, target: &Path) -> io::Result<()> {
    let (dir, name) = parent_of(root, rel)?;
    clear(&dir, name)?;
    Ok(rustix::fs::symlinkat(target, &dir, name)?)
}

/// Remove the file or symlink at `rel` beneath `root`, if its directory is reached through
/// directories only. A directory at `rel`, or nothing there, is left as it is.
pub fn remove(root: &Path, rel: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(());
    };
    names(rel)?;
    let base = open_root(root, OFlags::PATH)?;
    let dir = if parent.as_os_str().is_empty() {
        base
    } else {
        open_at(
            &base,
            parent,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )?
    };
    // AT_REMOVEDIR is not given: a directory there stays.
    clear(&dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn writes_and_links_beneath_the_root() {
        let d = tempfile::tempdir().unwrap();
        write_file(d.path(), Path::new("etc/a/b.conf"), b"x").unwrap();
        assert_eq!(fs::read(d.path().join("etc/a/b.conf")).unwrap(), b"x");
        // Replaced, not appended to or written through.
        write_file(d.path(), Path::new("etc/a/b.conf"), b"yy").unwrap();
        assert_eq!(fs::read(d.path().join("etc/a/b.conf")).unwrap(), b"yy");
        symlink(d.path(), Path::new("etc/a/l"), Path::new("/etc/a/b.conf")).unwrap();
        symlink(d.path(), Path::new("etc/a/l"), Path::new("../x")).unwrap();
        assert_eq!(
            fs::read_link(d.path().join("etc/a/l")).unwrap(),
            Path::new("../x")
        );
        assert!(open_dir(d.path(), Path::new("etc/a")).is_ok());
        for bad in ["../x", "/etc/x", "etc/../x", ""] {
            let e = write_file(d.path(), Path::new(bad), b"").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn symlinks_of_the_image_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        fs::create_dir_all(root.join("etc/systemd")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "host").unwrap();
        // A directory of the path is a link out of the root: refused, naming it.
        std::os::unix::fs::symlink(&outside, root.join("etc/systemd/system")).unwrap();
        let e = write_file(&root, Path::new("etc/systemd/system/x.service"), b"").unwrap_err();
        assert!(
            e.to_string()
                .contains("/etc/systemd/system is a symlink in the image"),
            "{e}"
        );
        assert!(symlink(&root, Path::new("etc/systemd/system/l"), Path::new("/")).is_err());
        assert!(create_dirs(&root, Path::new("etc/systemd/system/sub")).is_err());
        assert!(open_dir(&root, Path::new("etc/systemd/system")).is_err());
        assert!(remove(&root, Path::new("etc/systemd/system/victim")).is_err());
        // Even a link that stays inside the root is not walked through.
        std::os::unix::fs::symlink("systemd", root.join("etc/inside")).unwrap();
        assert!(write_file(&root, Path::new("etc/inside/y"), b"").is_err());
        // The last name a link (the image's masked unit, a link to a file outside): the link
        // is replaced, its target untouched.
        std::os::unix::fs::symlink(outside.join("victim"), root.join("etc/unit")).unwrap();
        write_file(&root, Path::new("etc/unit"), b"ours").unwrap();
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "host");
        assert_eq!(fs::read_to_string(root.join("etc/unit")).unwrap(), "ours");
        assert!(!root.join("etc/unit").is_symlink());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn removes_files_and_links_only() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/dir")).unwrap();
        fs::write(d.path().join("a/f"), "").unwrap();
        std::os::unix::fs::symlink("/nonexistent", d.path().join("a/l")).unwrap();
        remove(d.path(), Path::new("a/f")).unwrap();
        remove(d.path(), Path::new("a/l")).unwrap();
        remove(d.path(), Path::new("a/missing")).unwrap();
        assert!(remove(d.path(), Path::new("a/dir")).is_err());
        assert!(d.path().join("a/dir").is_dir());
        assert!(!d.path().join("a/f").exists() && !d.path().join("a/l").is_symlink());
    }
}
