//! Unified Kernel Images: the PE section table and small sections read without loading the
//! (large) kernel and initramfs, which are then streamed out into the work directory, since
//! QEMU cannot boot a UKI directly.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use object::read::pe::PeFile64;
use object::read::ReadCache;
use object::LittleEndian as LE;

use super::{KernelError, KERNEL_HEADER_LEN, MAX_TEXT_SECTION};

/// Where a section's bytes are in the UKI file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    pub(super) offset: u64,
    pub(super) size: u64,
}

/// What a UKI holds, read without loading its (large) kernel and initramfs into memory.
pub(super) struct UkiInfo {
    pub(super) linux: Range,
    pub(super) initrd: Option<Range>,
    pub(super) cmdline: Option<String>,
    pub(super) uname: Option<String>,
    /// The UKI's path in the image, for messages.
    pub(super) rel: PathBuf,
}

/// Reads a UKI's section table and small sections, and checks that `.linux` holds a
/// kernel. Problems with the file's contents are `BadUki`; I/O errors are `Read`.
pub(super) fn inspect_uki(host: &Path, rel: &Path) -> Result<UkiInfo, KernelError> {
    let bad = |reason: String| KernelError::BadUki {
        path: rel.to_path_buf(),
        reason,
    };
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let file = File::open(host).map_err(read_err)?;
    let file_len = file.metadata().map_err(read_err)?.len();

    let mut sections: Vec<(Vec<u8>, Range)> = Vec::new();
    {
        // ReadCache reads only the headers the parser asks for, not the whole file.
        let cache = ReadCache::new(&file);
        let pe = PeFile64::parse(&cache)
            .map_err(|e| bad(format!("not a 64-bit PE/EFI executable: {e}")))?;
        for header in pe.section_table().iter() {
            // Sizes come from the file: only the bytes actually stored count. The virtual
            // size is the real content length when it is smaller (the raw size is rounded
            // up to the file alignment); 0 means the linker did not set it.
            let raw = u64::from(header.size_of_raw_data.get(LE));
            let virt = u64::from(header.virtual_size.get(LE));
            let size = if virt == 0 { raw } else { raw.min(virt) };
            let offset = u64::from(header.pointer_to_raw_data.get(LE));
            let name = header.raw_name();
            if offset + size > file_len {
                return Err(bad(format!(
                    "section {} extends past the end of the file",
                    String::from_utf8_lossy(name)
                )));
            }
            sections.push((name.to_vec(), Range { offset, size }));
        }
    }
    // Multi-profile UKIs repeat sections after a `.profile` marker; the first occurrence
    // belongs to the base (default) profile, which is what we boot.
    let find = |want: &[u8]| {
        sections
            .iter()
            .find(|(name, range)| name == want && range.size > 0)
            .map(|(_, range)| *range)
    };

    let linux = find(b".linux").ok_or_else(|| bad("it has no .linux section".to_string()))?;
    let head = read_range(&file, host, linux.offset, linux.size.min(KERNEL_HEADER_LEN))?;
    if !looks_like_kernel(&head) {
        return Err(bad(
            "its .linux section is not a Linux kernel image (no boot header)".to_string(),
        ));
    }
    let text = |name: &str| -> Result<Option<String>, KernelError> {
        let Some(range) = find(name.as_bytes()) else {
            return Ok(None);
        };
        if range.size > MAX_TEXT_SECTION {
            return Err(bad(format!(
                "its {name} section is {} bytes, more than the {MAX_TEXT_SECTION} allowed",
                range.size
            )));
        }
        let bytes = read_range(&file, host, range.offset, range.size)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| bad(format!("its {name} section is not UTF-8 text")))?;
        // Tools pad or terminate these strings with NULs and newlines.
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if text.chars().any(char::is_control) {
            return Err(bad(format!(
                "its {name} section contains control characters"
            )));
        }
        Ok((!text.is_empty()).then(|| text.to_string()))
    };
    let cmdline = text(".cmdline")?;
    let uname = text(".uname")?;
    if let Some(uname) = &uname {
        // The version ends up in messages and possibly in file names.
        if uname.contains('/') || uname.contains(char::is_whitespace) {
            return Err(bad(format!(
                "its .uname section '{uname}' is not a kernel version"
            )));
        }
    }
    Ok(UkiInfo {
        linux,
        initrd: find(b".initrd"),
        cmdline,
        uname,
        rel: rel.to_path_buf(),
    })
}

/// Whether `head` (the start of a `.linux` section) is a kernel QEMU can boot directly:
/// an x86 bzImage ("HdrS" at 0x202), an arm64 Image ("ARM\x64" at 0x38), or an EFI
/// zboot image ("zimg" at 4, as Fedora ships on arm64).
pub(super) fn looks_like_kernel(head: &[u8]) -> bool {
    let magic_at = |offset: usize, magic: &[u8]| {
        head.get(offset..offset + magic.len())
            .is_some_and(|m| m == magic)
    };
    magic_at(0x202, b"HdrS")
        || magic_at(0x38, b"ARM\x64")
        || (magic_at(0, b"MZ") && magic_at(4, b"zimg"))
}

pub(super) fn read_range(
    file: &File,
    host: &Path,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, KernelError> {
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let mut reader = file;
    reader.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    let mut buf = Vec::new();
    reader.take(size).read_to_end(&mut buf).map_err(read_err)?;
    if (buf.len() as u64) < size {
        return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}

/// Copies the UKI's kernel and initramfs into `work_dir`, streaming them so a large
/// initramfs never sits in memory.
pub(super) fn extract_uki(
    host: &Path,
    uki: &UkiInfo,
    work_dir: &Path,
) -> Result<(PathBuf, Option<PathBuf>), KernelError> {
    let file = File::open(host).map_err(|err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    })?;
    let kernel = work_dir.join("vmlinuz");
    copy_range(&file, host, uki.linux, &kernel)?;
    let initrd = match uki.initrd {
        Some(range) => {
            let path = work_dir.join("initrd.img");
            copy_range(&file, host, range, &path)?;
            Some(path)
        }
        None => {
            tracing::debug!("UKI /{} has no .initrd section", uki.rel.display());
            None
        }
    };
    Ok((kernel, initrd))
}

pub(super) fn copy_range(
    file: &File,
    host: &Path,
    range: Range,
    dest: &Path,
) -> Result<(), KernelError> {
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let write_err = |err| KernelError::Write {
        path: dest.to_path_buf(),
        err,
    };
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(range.offset))
        .map_err(read_err)?;
    let mut out = File::create(dest).map_err(write_err)?;
    // io::copy cannot tell a read error from a write error; both are reported against
    // the destination, whose message also covers the usual cause (a full disk).
    let copied = io::copy(&mut reader.take(range.size), &mut out).map_err(write_err)?;
    if copied < range.size {
        // The file shrank since it was inspected.
        return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}
