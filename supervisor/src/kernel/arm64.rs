//! Whether a `vmlinuz` is a kernel qemu-system-aarch64 can boot directly (`-kernel` on the
//! `virt` machine), as `scan::check_bzimage` is for x86. arm64 kernels ship in three shapes,
//! all of which QEMU 10 loads (hw/arm/boot.c):
//!
//! - the Image: a 64-byte header whose magic "ARM\x64" sits at offset 56 (the kernel's
//!   Documentation/arch/arm64/booting.rst), with bit 0 of its flags at offset 24 the
//!   kernel's endianness (1: big-endian, which a little-endian `virt` guest cannot run);
//! - that Image compressed with gzip (`Image.gz`, which Debian's and Ubuntu's arm64 kernels
//!   are): QEMU inflates it, so its first 64 bytes decompressed must pass the same check;
//! - an EFI zboot image (Fedora's, CentOS's): a PE file with "MZ" at 0, "zimg" at 4, the
//!   payload's compression named at 24 and the Image's magic at 56. QEMU unpacks only a gzip
//!   payload (`unpack_efi_zboot_image`): any other would leave the guest in limbo.
//!
//! Anything else (an x86 bzImage, garbage, a truncated file) is refused with the reason, so
//! that the user hears it at once instead of at the readiness timeout.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::{KernelError, KERNEL_HEADER_LEN};

/// The Image header's size, and where its magic is.
const IMAGE_HEADER_LEN: usize = 64;
const MAGIC_OFFSET: usize = 56;
const MAGIC: &[u8; 4] = b"ARM\x64";
const FLAGS_OFFSET: usize = 24;
/// The zboot header's NUL-padded compression name.
const ZBOOT_COMPRESSION: std::ops::Range<usize> = 24..56;
const GZIP_MAGIC: &[u8; 2] = b"\x1f\x8b";

/// `Ok(Err(why))` when `host` is not an arm64 kernel QEMU can boot; `Err` only when it cannot
/// be read.
pub(super) fn check_arm64(host: &Path) -> Result<Result<(), String>, KernelError> {
    let read_err = |err| KernelError::Read {
        path: host.to_path_buf(),
        err,
    };
    let file = File::open(host).map_err(read_err)?;
    let mut head = Vec::new();
    (&file)
        .take(KERNEL_HEADER_LEN)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    if !head.starts_with(GZIP_MAGIC) {
        return Ok(check_head(&head));
    }
    // Inflate just the header, from the start of the file again.
    let mut inflated = Vec::new();
    let gz = GzDecoder::new(File::open(host).map_err(read_err)?);
    if let Err(e) = gz.take(IMAGE_HEADER_LEN as u64).read_to_end(&mut inflated) {
        return Ok(Err(format!(
            "is gzip data that does not inflate ({e}), not a compressed arm64 kernel"
        )));
    }
    Ok(match check_head(&inflated) {
        Ok(()) => Ok(()),
        Err(why) => Err(format!("is gzip-compressed, and inflated {why}")),
    })
}

/// The check on the first bytes of an uncompressed file.
pub(super) fn check_head(head: &[u8]) -> Result<(), String> {
    if head.len() < IMAGE_HEADER_LEN {
        return Err(format!("is {} bytes, too short to be a kernel", head.len()));
    }
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if !at(MAGIC_OFFSET, MAGIC) {
        if at(0x202, b"HdrS") {
            return Err("is an x86 kernel (a bzImage), not an arm64 one: the image's architecture says arm64, so its kernel must be too".into());
        }
        return Err(
            "is not an arm64 Linux kernel (no Image magic \"ARM\\x64\" at offset 56, and not gzip-compressed)"
                .into(),
        );
    }
    if at(0, b"MZ") && at(4, b"zimg") {
        let name = &head[ZBOOT_COMPRESSION];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        return if name == b"gzip" {
            Ok(())
        } else {
            Err(format!(
                "is an EFI zboot kernel whose payload is {}-compressed, and QEMU unpacks only gzip: boot the image's disk through UEFI instead, or build the kernel with gzip zboot",
                String::from_utf8_lossy(name).escape_debug()
            ))
        };
    }
    if head[FLAGS_OFFSET] & 1 == 1 {
        return Err(
            "is a big-endian arm64 kernel, which QEMU's little-endian virt machine cannot run"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use std::io::Write;

    /// An Image header as the kernel's linker script lays it out: code0 is "MZ" and a branch
    /// when the EFI stub is built in, text_offset 0, image_size, flags (LE, 4K pages).
    fn image(len: usize) -> Vec<u8> {
        let mut k = vec![0u8; len];
        k[0..4].copy_from_slice(b"MZ@\xfa");
        k[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        k[24] = 0b1010;
        k[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(MAGIC);
        k
    }

    fn zboot(compression: &str) -> Vec<u8> {
        let mut k = image(0x400);
        k[4..8].copy_from_slice(b"zimg");
        k[24..56].fill(0);
        k[24..24 + compression.len()].copy_from_slice(compression.as_bytes());
        k
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn check_file(data: &[u8]) -> Result<(), String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmlinuz");
        std::fs::write(&p, data).unwrap();
        check_arm64(&p).unwrap()
    }

    #[test]
    fn an_image_plain_or_gzipped_boots() {
        assert_eq!(check_file(&image(0x1000)), Ok(()));
        assert_eq!(check_file(&image(IMAGE_HEADER_LEN)), Ok(()));
        assert_eq!(check_file(&gzip(&image(0x10000))), Ok(()));
    }

    #[test]
    fn zboot_only_with_gzip() {
        assert_eq!(check_file(&zboot("gzip")), Ok(()));
        let why = check_file(&zboot("zstd")).unwrap_err();
        assert!(
            why.contains("zstd-compressed") && why.contains("only gzip"),
            "{why}"
        );
        // A name filling all 32 bytes has no NUL.
        let why = check_file(&zboot(&"x".repeat(32))).unwrap_err();
        assert!(why.contains(&"x".repeat(32)), "{why}");
    }

    #[test]
    fn other_files_are_refused_with_the_reason() {
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(check_file(&bz)
            .unwrap_err()
            .contains("x86 kernel (a bzImage)"));
        assert!(check_file(&gzip(&bz))
            .unwrap_err()
            .starts_with("is gzip-compressed, and inflated is not an arm64 Linux kernel"));
        assert_eq!(
            check_file(&image(0x400)[..63]).unwrap_err(),
            "is 63 bytes, too short to be a kernel"
        );
        let why = check_file(&vec![7u8; 0x400]).unwrap_err();
        assert!(
            why.contains("no Image magic \"ARM\\x64\" at offset 56"),
            "{why}"
        );
        // The magic one byte off is not the magic.
        let mut off = vec![0u8; 0x400];
        off[57..61].copy_from_slice(MAGIC);
        assert!(check_file(&off).is_err());
        let mut be = image(0x400);
        be[FLAGS_OFFSET] |= 1;
        assert!(check_file(&be).unwrap_err().contains("big-endian"));
        // Truncated gzip: the header does not inflate.
        let gz = gzip(&image(0x10000));
        assert!(check_file(&gz[..12])
            .unwrap_err()
            .starts_with("is gzip data that does not inflate"));
        // A gzipped file too short once inflated.
        assert!(check_file(&gzip(b"tiny"))
            .unwrap_err()
            .contains("inflated is 4 bytes"));
    }

    #[test]
    fn messages_are_one_line() {
        for data in [vec![0u8; 3], vec![1u8; 0x400], zboot("lz\n4")] {
            let why = check_file(&data).unwrap_err();
            assert!(!why.contains('\n'), "{why:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = check_head(&bytes);
        }

        #[test]
        fn any_header_with_the_magic_and_le_flags_boots_unless_zboot(
            mut bytes in proptest::collection::vec(any::<u8>(), 64..600)
        ) {
            bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(MAGIC);
            bytes[FLAGS_OFFSET] &= !1;
            bytes[4] = b'x';
            prop_assert_eq!(check_head(&bytes), Ok(()));
        }
    }
}
