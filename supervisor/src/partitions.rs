//! How long a disk must be, by its partition table: a raw disk shorter than that was cut
//! short (a copy that stopped, a download truncated) and would hang the guest in its initrd,
//! waiting for a root partition that is not all there, until the ready timeout. Read from the
//! disk's first bytes (pure), so `disk::inspect` refuses it before anything starts.

/// Where the partition table says the disk ends, and which of its structures says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEnd {
    /// The disk's least length in bytes.
    pub bytes: u64,
    /// What lies at that end, e.g. "the GPT's backup header" or "partition 1".
    pub what: String,
}

/// A little-endian u32 at `at`, if the bytes are there (GPT and MBR fields are little-endian).
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

/// A little-endian u64 at `at`, if the bytes are there.
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// The end of LBA `lba` (inclusive) in bytes, for `sector`-byte sectors.
fn end_of(lba: u64, sector: u64) -> u64 {
    lba.saturating_add(1).saturating_mul(sector)
}

/// The furthest of `ends`: (bytes, what).
fn furthest(ends: impl IntoIterator<Item = (u64, String)>) -> Option<TableEnd> {
    ends.into_iter()
        .max_by_key(|(bytes, _)| *bytes)
        .map(|(bytes, what)| TableEnd { bytes, what })
}

/// The GPT's end (512- or 4096-byte sectors): its backup header, its last usable LBA, and
/// the last sector of each partition. `None` without a GPT header.
fn gpt_end(head: &[u8]) -> Option<TableEnd> {
    for sector in [512usize, 4096] {
        let Some(hdr) = head.get(sector..sector + 92) else {
            continue;
        };
        if &hdr[..8] != b"EFI PART" {
            continue;
        }
        let s = sector as u64;
        let mut ends = Vec::new();
        if let Some(backup) = le_u64(hdr, 32) {
            ends.push((end_of(backup, s), "the GPT's backup header".to_string()));
        }
        if let Some(last) = le_u64(hdr, 48) {
            ends.push((end_of(last, s), "the GPT's last usable sector".to_string()));
        }
        let (Some(lba), Some(count), Some(size)) =
            (le_u64(hdr, 72), le_u32(hdr, 80), le_u32(hdr, 84))
        else {
            return furthest(ends);
        };
        let size = size as usize;
        if size >= 128 {
            let start = (lba as usize).saturating_mul(sector);
            for i in 0..(count as usize).min(1024) {
                let at = start.saturating_add(i.saturating_mul(size));
                let Some(entry) = head.get(at..at.saturating_add(128)) else {
                    break;
                };
                // An all-zero type GUID is an unused entry.
                if entry[..16].iter().all(|&b| b == 0) {
                    continue;
                }
                if let Some(last) = le_u64(entry, 40) {
                    ends.push((end_of(last, s), format!("partition {}", i + 1)));
                }
            }
        }
        return furthest(ends);
    }
    None
}

/// The end of an MBR's partitions (512-byte sectors); the protective entry of a GPT disk
/// (type 0xee) is left to [`gpt_end`].
fn mbr_end(head: &[u8]) -> Option<TableEnd> {
    if head.len() < 512 || head[510..512] != [0x55, 0xaa] {
        return None;
    }
    let ends = (0..4).filter_map(|i| {
        let e = &head[446 + 16 * i..462 + 16 * i];
        let (start, count) = (le_u32(e, 8)? as u64, le_u32(e, 12)? as u64);
        if e[4] == 0 || e[4] == 0xee || count == 0 {
            return None;
        }
        Some(((start + count) * 512, format!("partition {}", i + 1)))
    });
    furthest(ends)
}

/// Where the disk whose first bytes are `head` must at least end: by its GPT, else by its
/// MBR; `None` without a partition table.
pub fn table_end(head: &[u8]) -> Option<TableEnd> {
    gpt_end(head).or_else(|| mbr_end(head))
}

/// `bytes` for a message: MiB when it is a whole number of them, else bytes.
pub fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a disk of `len` bytes is shorter than its partition table says, if it is.
pub fn shortfall(head: &[u8], len: u64) -> Option<String> {
    let end = table_end(head)?;
    (len < end.bytes).then(|| {
        format!(
            "{} long, but {} ends at {}",
            size_text(len),
            end.what,
            size_text(end.bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX: [u8; 16] = [0xaf; 16];

    /// A GPT disk of `sectors` 512-byte sectors, as sgdisk lays it out: entries at LBA 2,
    /// first usable 34, backup header in the last sector; `parts` as (first, last) LBAs.
    fn gpt(sectors: u64, parts: &[(u64, u64)]) -> Vec<u8> {
        let mut d = vec![0u8; 64 << 10];
        d[446 + 4] = 0xee;
        d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        d[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xaa;
        let h = &mut d[512..512 + 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(sectors - 1).to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        for (i, (first, last)) in parts.iter().enumerate() {
            let at = 1024 + 128 * i;
            d[at..at + 16].copy_from_slice(&LINUX);
            d[at + 32..at + 40].copy_from_slice(&first.to_le_bytes());
            d[at + 40..at + 48].copy_from_slice(&last.to_le_bytes());
        }
        d
    }

    fn mbr(parts: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut d = vec![0u8; 512];
        for (i, (kind, start, count)) in parts.iter().enumerate() {
            let e = 446 + 16 * i;
            d[e + 4] = *kind;
            d[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            d[e + 12..e + 16].copy_from_slice(&count.to_le_bytes());
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    #[test]
    fn a_gpt_disk_ends_at_its_backup_header() {
        // 2 GiB, as test-images/disk's debian.raw.
        let sectors = 4 << 20;
        let head = gpt(sectors, &[(262144, 4192255), (2048, 8191), (8192, 262143)]);
        let end = table_end(&head).unwrap();
        assert_eq!(end.bytes, 2 << 30);
        assert_eq!(end.what, "the GPT's backup header");
        assert_eq!(shortfall(&head, 2 << 30), None);
        assert_eq!(shortfall(&head, 3 << 30), None, "a grown disk is fine");
        let cut = (2u64 << 30) * 6 / 10;
        let why = shortfall(&head, cut).unwrap();
        assert!(
            why.ends_with("the GPT's backup header ends at 2048 MiB"),
            "{why}"
        );
        assert!(why.starts_with(&format!("{cut} bytes long")), "{why}");
    }

    #[test]
    fn a_partition_past_the_headers_is_the_end() {
        // A table whose backup header was not moved when a partition was added past it.
        let head = gpt(2048, &[(34, 4095)]);
        let end = table_end(&head).unwrap();
        assert_eq!((end.bytes, end.what.as_str()), (2 << 20, "partition 1"));
    }

    #[test]
    fn an_mbr_disk_ends_at_its_last_partition() {
        let head = mbr(&[
            (0x83, 2048, 100_000),
            (0x82, 102_048, 20_000),
            (0, 0, 999_999),
        ]);
        let end = table_end(&head).unwrap();
        assert_eq!(
            (end.bytes, end.what.as_str()),
            (122_048 * 512, "partition 2")
        );
        assert!(shortfall(&head, 122_048 * 512).is_none());
        assert!(shortfall(&head, 122_047 * 512).is_some());
        // A protective MBR without its GPT, and no table at all: nothing to check.
        assert_eq!(table_end(&mbr(&[(0xee, 1, u32::MAX)])), None);
        assert_eq!(table_end(&[0u8; 4096]), None);
        assert_eq!(table_end(b"short"), None);
    }

    #[test]
    fn a_4k_sector_gpt_is_read_in_4k_sectors() {
        let mut d = vec![0u8; 64 << 10];
        d[510] = 0x55;
        d[511] = 0xaa;
        d[446 + 4] = 0xee;
        let h = &mut d[4096..4096 + 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[32..40].copy_from_slice(&(262_143u64).to_le_bytes());
        assert_eq!(table_end(&d).unwrap().bytes, 1 << 30);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_an_end_or_none(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..9000)) {
            let _ = shortfall(&bytes, 0);
        }
    }
}
