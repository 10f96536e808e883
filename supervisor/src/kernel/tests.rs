//! Kernel lookup on fake image trees and hand-made PE files.

use super::scan::*;
use super::uki::*;
use super::*;
use std::fs;
use std::os::unix::fs::symlink;

/// A fake kernel: just big enough to carry the x86 boot header magic.
fn bzimage(fill: u8) -> Vec<u8> {
    let mut k = vec![fill; 0x400];
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn add_kernel(root: &Path, kver: &str, initrd: bool) {
    let dir = root.join(MODULES_DIR).join(kver);
    write(&dir.join("vmlinuz"), &bzimage(1));
    if initrd {
        write(&dir.join("initramfs.img"), b"initrd");
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let work = tmp.path().join("work");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        work,
    }
}

fn find(f: &Fixture) -> Result<BootFiles, KernelError> {
    find_boot_files_for(
        crate::arch::Arch::X86_64,
        &f.root,
        "quay.io/test/image:latest",
        &f.work,
    )
}

/// Builds a minimal PE32+ file holding the given sections, laid out the way ukify
/// does: raw sizes rounded up to 0x200, virtual sizes exact.
fn pe(sections: &[(&str, &[u8])]) -> Vec<u8> {
    const ALIGN: usize = 0x200;
    let align = |n: usize| n.div_ceil(ALIGN) * ALIGN;
    let mut out = vec![0u8; 0x40];
    out[0..2].copy_from_slice(b"MZ");
    out[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes()); // e_lfanew
    out.extend_from_slice(b"PE\0\0");
    // COFF file header.
    out.extend_from_slice(&0x8664u16.to_le_bytes()); // machine: x86-64
    out.extend_from_slice(&(sections.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 12]); // timestamp, symbol table pointer and count
    out.extend_from_slice(&240u16.to_le_bytes()); // size of optional header
    out.extend_from_slice(&0x0022u16.to_le_bytes()); // executable, large-address aware
                                                     // PE32+ optional header: 112 fixed bytes then 16 data directories.
    let mut opt = vec![0u8; 240];
    opt[0..2].copy_from_slice(&0x20bu16.to_le_bytes());
    opt[32..36].copy_from_slice(&(ALIGN as u32).to_le_bytes()); // section alignment
    opt[36..40].copy_from_slice(&(ALIGN as u32).to_le_bytes()); // file alignment
    opt[108..112].copy_from_slice(&16u32.to_le_bytes()); // number of RVAs and sizes
    out.extend_from_slice(&opt);

    let mut offset = align(out.len() + 40 * sections.len());
    let mut data = Vec::new();
    for (name, content) in sections {
        let mut header = [0u8; 40];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let raw = align(content.len());
        header[8..12].copy_from_slice(&(content.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(offset as u32).to_le_bytes()); // virtual address
        header[16..20].copy_from_slice(&(raw as u32).to_le_bytes());
        header[20..24].copy_from_slice(&(offset as u32).to_le_bytes());
        header[36..40].copy_from_slice(&0x4000_0040u32.to_le_bytes()); // initialized, readable
        out.extend_from_slice(&header);
        let mut padded = content.to_vec();
        padded.resize(raw, 0);
        data.push((offset, padded));
        offset += raw;
    }
    for (offset, padded) in data {
        out.resize(offset, 0);
        out.extend_from_slice(&padded);
    }
    out
}

#[test]
fn one_kernel() {
    let f = fixture();
    add_kernel(&f.root, "6.12.0-1.fc42.x86_64", true);
    let boot = find(&f).unwrap();
    let dir = f.root.join(MODULES_DIR).join("6.12.0-1.fc42.x86_64");
    assert_eq!(
        boot,
        BootFiles {
            version: "6.12.0-1.fc42.x86_64".into(),
            kernel: dir.join("vmlinuz"),
            initrd: Some(dir.join("initramfs.img")),
            uki_cmdline: None,
            source: KernelSource::Modules,
            others: vec![],
            skipped: vec![],
        }
    );
}

#[test]
fn several_kernels_pick_newest() {
    let f = fixture();
    for kver in ["6.1.0", "6.12.9", "6.12.10", "6.12.10~rc1"] {
        add_kernel(&f.root, kver, true);
    }
    let boot = find(&f).unwrap();
    assert_eq!(boot.version, "6.12.10");
    assert_eq!(boot.others, vec!["6.12.10~rc1", "6.12.9", "6.1.0"]);
}

/// What `modules.builtin` lists for a kernel with virtiofs built in.
const BUILTIN: &str =
    "kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/virtiofs.ko\nkernel/drivers/virtio/virtio_pci.ko\n";

#[test]
fn missing_initramfs() {
    let f = fixture();
    add_kernel(&f.root, "6.12.0", false);
    // Without an initramfs, only a kernel with virtiofs built in can mount the root.
    let err = find(&f).unwrap_err();
    assert!(
        err.to_string().contains(
            "/usr/lib/modules/6.12.0: no initramfs.img, and modules.builtin does not list virtiofs"
        ),
        "{err}"
    );
    write(
        &f.root.join(MODULES_DIR).join("6.12.0/modules.builtin"),
        BUILTIN.as_bytes(),
    );
    let boot = find(&f).unwrap();
    assert_eq!(boot.initrd, None);
    assert!(boot.kernel.ends_with("6.12.0/vmlinuz"));
}

#[test]
fn newest_bootable_kernel_wins_and_the_others_are_explained() {
    let f = fixture();
    add_kernel(&f.root, "6.1.0", true);
    add_kernel(&f.root, "6.0.0", true);
    // Newer, but garbage, too short, another architecture's, or unable to mount the root.
    write(
        &f.root.join(MODULES_DIR).join("99.0.0-fake/vmlinuz"),
        &[b'x'; 4096],
    );
    write(
        &f.root.join(MODULES_DIR).join("99.0.0-fake/initramfs.img"),
        b"i",
    );
    write(&f.root.join(MODULES_DIR).join("98.0/vmlinuz"), b"MZ short");
    let mut arm = vec![0u8; 0x400];
    arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
    write(&f.root.join(MODULES_DIR).join("97.0/vmlinuz"), &arm);
    add_kernel(&f.root, "96.0", false);
    fs::create_dir_all(f.root.join(MODULES_DIR).join("95.0-modules-only")).unwrap();
    let boot = find(&f).unwrap();
    assert_eq!(boot.version, "6.1.0");
    assert_eq!(boot.others, ["6.0.0"]);
    let skipped = boot.skipped.join("\n");
    for (dir, why) in [
        (
            "99.0.0-fake",
            "vmlinuz is not an x86 Linux kernel (no bzImage boot header",
        ),
        ("98.0", "vmlinuz is 8 bytes, too short to be a kernel"),
        ("97.0", "vmlinuz is not an x86 Linux kernel"),
        ("96.0", "no initramfs.img"),
        (
            "95.0-modules-only",
            "no vmlinuz (non-empty file) nor *.efi UKI",
        ),
    ] {
        let line = format!("/usr/lib/modules/{dir}: {why}");
        assert!(skipped.contains(&line), "{line} not in {skipped}");
    }
    assert_eq!(boot.skipped.len(), 5, "{skipped}");
    // A name with a newline never reaches a message.
    write(
        &f.root.join(MODULES_DIR).join("99.1\nforged line/vmlinuz"),
        b"x",
    );
    assert_eq!(find(&f).unwrap().skipped.len(), 5);
    // Nothing bootable at all: 66's error names every place looked at.
    fs::remove_dir_all(f.root.join(MODULES_DIR).join("6.1.0")).unwrap();
    fs::remove_dir_all(f.root.join(MODULES_DIR).join("6.0.0")).unwrap();
    let err = find(&f).unwrap_err();
    let KernelError::NoKernel { looked, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(looked.len(), 6, "{looked:?}");
    let message = err.to_string();
    for place in [
        "/usr/lib/modules/99.0.0-fake: vmlinuz is not",
        "/usr/lib/modules/98.0:",
        "/usr/lib/modules/97.0:",
        "/usr/lib/modules/96.0:",
        "/usr/lib/modules/95.0-modules-only:",
        "/boot/EFI/Linux: missing",
    ] {
        assert!(message.contains(place), "{place} not in {message}");
    }
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn no_kernel_message() {
    let f = fixture();
    fs::create_dir_all(f.root.join(MODULES_DIR).join("6.12.0")).unwrap();
    let err = find(&f).unwrap_err();
    assert!(matches!(err, KernelError::NoKernel { .. }));
    assert_eq!(
        err.to_string(),
        "No kernel found: quay.io/test/image:latest has no bootable kernel (looked at \
         /usr/lib/modules/6.12.0: no vmlinuz (non-empty file) nor *.efi UKI; \
         /boot/EFI/Linux: missing or not a directory): is it a bootc image? It needs \
         usr/lib/modules/<version>/vmlinuz (a kernel of the image's architecture) with its initramfs.img, or a UKI; \
         a containerDisk needs one *.qcow2, *.raw or *.img under / or /disk/"
    );
}

#[test]
fn no_usr_at_all() {
    let f = fixture();
    assert!(matches!(find(&f), Err(KernelError::NoKernel { .. })));
}

#[test]
fn empty_vmlinuz_ignored() {
    let f = fixture();
    add_kernel(&f.root, "6.1.0", true);
    write(&f.root.join(MODULES_DIR).join("6.12.0/vmlinuz"), b"");
    let boot = find(&f).unwrap();
    assert_eq!(boot.version, "6.1.0");
    assert!(boot.others.is_empty());
}

#[test]
fn vmlinuz_directory_ignored() {
    let f = fixture();
    fs::create_dir_all(f.root.join(MODULES_DIR).join("6.12.0/vmlinuz")).unwrap();
    assert!(matches!(find(&f), Err(KernelError::NoKernel { .. })));
}

#[test]
fn symlink_escaping_root_refused() {
    let f = fixture();
    // A real file outside the rootfs, which a naive open() would happily follow to.
    write(
        &f.root.parent().unwrap().join("outside/vmlinuz"),
        &bzimage(2),
    );
    let dir = f.root.join(MODULES_DIR).join("6.12.0");
    fs::create_dir_all(&dir).unwrap();
    symlink("../../../../../outside/vmlinuz", dir.join("vmlinuz")).unwrap();
    let err = find(&f).unwrap_err();
    assert!(
        matches!(&err, KernelError::SymlinkEscapes { link, .. }
            if link == Path::new("usr/lib/modules/6.12.0/vmlinuz")),
        "{err:?}"
    );
    assert!(err.to_string().contains("outside the image"), "{err}");
}

#[test]
fn absolute_symlink_stays_in_root() {
    let f = fixture();
    // Inside the image "/boot/vmlinuz-6.12.0" means rootfs/boot/..., never the host's.
    write(&f.root.join("boot/vmlinuz-6.12.0"), &bzimage(3));
    let dir = f.root.join(MODULES_DIR).join("6.12.0");
    fs::create_dir_all(&dir).unwrap();
    symlink("/boot/vmlinuz-6.12.0", dir.join("vmlinuz")).unwrap();
    symlink("../../../../boot/missing", dir.join("initramfs.img")).unwrap();
    write(&dir.join("modules.builtin"), BUILTIN.as_bytes());
    let boot = find(&f).unwrap();
    assert_eq!(boot.kernel, f.root.join("boot/vmlinuz-6.12.0"));
    assert_eq!(boot.initrd, None);
}

#[test]
fn symlink_loop_reported() {
    let f = fixture();
    let dir = f.root.join(MODULES_DIR).join("6.12.0");
    fs::create_dir_all(&dir).unwrap();
    symlink("vmlinuz", dir.join("vmlinuz")).unwrap();
    assert!(matches!(find(&f), Err(KernelError::SymlinkLoop { .. })));
}

#[test]
fn equal_versions_are_ambiguous() {
    let f = fixture();
    add_kernel(&f.root, "6.1.0", true);
    let uki = pe(&[(".linux", &bzimage(4)), (".uname", b"6.12.0\0")]);
    write(&f.root.join("boot/EFI/Linux/a.efi"), &uki);
    write(&f.root.join("boot/EFI/Linux/b.efi"), &uki);
    let err = find(&f).unwrap_err();
    let KernelError::Ambiguous {
        version,
        candidates,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(version, "6.12.0");
    assert_eq!(
        candidates,
        &["/boot/EFI/Linux/a.efi", "/boot/EFI/Linux/b.efi"]
    );
}

#[test]
fn uki_split() {
    let f = fixture();
    let linux = bzimage(5);
    let initrd = b"070701 fake cpio".repeat(50);
    let uki = pe(&[
        (".osrel", b"ID=fedora\n"),
        (".cmdline", b"console=ttyS0 rw\n\0"),
        (".uname", b"6.13.2-200.fc42.x86_64\0"),
        (".linux", &linux),
        (".initrd", &initrd),
    ]);
    let path = f.root.join("boot/EFI/Linux/fedora.efi");
    write(&path, &uki);
    let boot = find(&f).unwrap();
    assert_eq!(
        boot,
        BootFiles {
            version: "6.13.2-200.fc42.x86_64".into(),
            kernel: f.work.join("vmlinuz"),
            initrd: Some(f.work.join("initrd.img")),
            uki_cmdline: Some("console=ttyS0 rw".into()),
            source: KernelSource::Uki { path },
            others: vec![],
            skipped: vec![],
        }
    );
    // Exact contents: the file-alignment padding is not copied.
    assert_eq!(fs::read(f.work.join("vmlinuz")).unwrap(), linux);
    assert_eq!(fs::read(f.work.join("initrd.img")).unwrap(), initrd);
}

#[test]
fn uki_in_modules_dir_without_uname() {
    let f = fixture();
    let uki = pe(&[(".linux", &bzimage(6))]);
    write(
        &f.root.join(MODULES_DIR).join("6.14.0/vmlinuz-virt.efi"),
        &uki,
    );
    add_kernel(&f.root, "6.13.0", true);
    let boot = find(&f).unwrap();
    assert_eq!(boot.version, "6.14.0");
    assert_eq!(boot.initrd, None);
    assert_eq!(boot.uki_cmdline, None);
    assert_eq!(boot.others, vec!["6.13.0"]);
    assert!(matches!(boot.source, KernelSource::Uki { .. }));
}

#[test]
fn vmlinuz_beats_uki_of_same_version() {
    let f = fixture();
    add_kernel(&f.root, "6.12.0", true);
    let uki = pe(&[(".linux", &bzimage(7)), (".uname", b"6.12.0")]);
    write(&f.root.join("boot/EFI/Linux/x.efi"), &uki);
    write(&f.root.join(MODULES_DIR).join("6.12.0/x.efi"), &uki);
    let boot = find(&f).unwrap();
    assert_eq!(boot.source, KernelSource::Modules);
    assert!(boot.others.is_empty());
}

#[test]
fn broken_uki_named_when_nothing_else() {
    let f = fixture();
    write(
        &f.root.join("boot/EFI/Linux/junk.efi"),
        b"not a PE file at all",
    );
    let err = find(&f).unwrap_err();
    assert!(matches!(err, KernelError::NoKernel { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("/boot/EFI/Linux/junk.efi: a broken UKI (not a 64-bit PE/EFI"),
        "{err}"
    );

    let no_linux = pe(&[(".cmdline", b"quiet")]);
    write(&f.root.join("boot/EFI/Linux/junk.efi"), &no_linux);
    let err = find(&f).unwrap_err();
    assert!(err.to_string().contains("no .linux section"), "{err}");

    let not_kernel = pe(&[(".linux", &[0u8; 0x400])]);
    write(&f.root.join("boot/EFI/Linux/junk.efi"), &not_kernel);
    let err = find(&f).unwrap_err();
    assert!(err.to_string().contains("not a Linux kernel"), "{err}");
}

#[test]
fn truncated_uki_is_broken() {
    let f = fixture();
    let mut uki = pe(&[(".linux", &bzimage(8))]);
    uki.truncate(uki.len() - 0x300);
    write(&f.root.join("boot/EFI/Linux/cut.efi"), &uki);
    let err = find(&f).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn broken_uki_ignored_when_a_kernel_exists() {
    let f = fixture();
    add_kernel(&f.root, "6.1.0", true);
    write(&f.root.join("boot/EFI/Linux/junk.efi"), b"MZ junk");
    assert_eq!(find(&f).unwrap().version, "6.1.0");
}

#[test]
fn uki_version_from_file_name() {
    for (name, want) in [
        ("boot/EFI/Linux/fedora-6.12.0-1.fc42.efi", "6.12.0-1.fc42"),
        ("boot/EFI/Linux/6.12.0.efi", "6.12.0"),
        ("boot/EFI/Linux/linux.efi", "linux"),
    ] {
        assert_eq!(version_from_file_name(Path::new(name)), want, "{name}");
    }
}

#[test]
fn kernel_magic() {
    let mut arm = vec![0u8; 0x40];
    arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let mut zboot = vec![0u8; 0x40];
    zboot[0..2].copy_from_slice(b"MZ");
    zboot[4..8].copy_from_slice(b"zimg");
    assert!(looks_like_kernel(&bzimage(0)));
    assert!(looks_like_kernel(&arm));
    assert!(looks_like_kernel(&zboot));
    assert!(!looks_like_kernel(&[0u8; 0x400]));
    assert!(!looks_like_kernel(b"HdrS"));
    assert!(!looks_like_kernel(&[]));
}

#[test]
fn version_compare_table() {
    use Ordering::*;
    let table = [
        ("6.12.10", "6.12.9", Greater),
        ("6.12.9", "6.1.0", Greater),
        ("6.1.0", "6.1.0", Equal),
        ("6.12", "6.12.1", Less),
        ("10", "9", Greater),
        ("6.12.0~rc1", "6.12.0", Less),
        ("6.12.0~rc1", "6.12.0~rc2", Less),
        ("6.12.0-rc1", "6.12.0", Greater),
        ("6.12.0-0.rc1.fc42", "6.12.0-1.fc42", Less),
        ("5.14.0-427.el9.x86_64", "5.14.0-70.el9.x86_64", Greater),
        ("6.1a", "6.1-", Less),
        ("a", "1", Greater),
        ("", "1", Less),
        ("", "", Equal),
        ("1.01", "1.1", Less),
        (
            "99999999999999999999999999",
            "99999999999999999999999998",
            Greater,
        ),
    ];
    for (a, b, want) in table {
        assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
    }
}

#[test]
fn detects_a_kernel_with_virtiofs_built_in() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("usr/lib/modules/6.12.0");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        !virtiofs_builtin(root.path(), "6.12.0"),
        "no modules.builtin"
    );
    std::fs::write(
        dir.join("modules.builtin"),
        "kernel/fs/fuse/fuse.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
    )
    .unwrap();
    assert!(
        !virtiofs_builtin(root.path(), "6.12.0"),
        "virtiofs is a module"
    );
    std::fs::write(
        dir.join("modules.builtin"),
        "kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/virtiofs.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
    )
    .unwrap();
    assert!(virtiofs_builtin(root.path(), "6.12.0"));
    assert!(!virtiofs_builtin(root.path(), "../../../etc"));
}

#[test]
fn the_guests_architecture_decides_which_vmlinuz_boots() {
    let f = fixture();
    add_kernel(&f.root, "8.0", true);
    let dir = f.root.join(MODULES_DIR).join("7.0");
    let mut arm = vec![0u8; 0x400];
    arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
    write(&dir.join("vmlinuz"), &arm);
    write(&dir.join("initramfs.img"), b"initrd");
    let on = |arch| find_boot_files_for(arch, &f.root, "img", &f.work).unwrap();
    let arm64 = on(crate::arch::Arch::Aarch64);
    assert_eq!(arm64.version, "7.0");
    assert_eq!(
        arm64.skipped,
        ["/usr/lib/modules/8.0: vmlinuz is an x86 kernel (a bzImage), not an arm64 one: the image's architecture says arm64, so its kernel must be too"]
    );
    let x86 = on(crate::arch::Arch::X86_64);
    assert_eq!(x86.version, "8.0");
    assert!(x86.skipped[0].starts_with("/usr/lib/modules/7.0: vmlinuz is not an x86 Linux kernel"));
}
