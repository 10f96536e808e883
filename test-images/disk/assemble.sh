#!/bin/sh
# Lays the test disks out from the rootfs stage's file tree. Runs in the tools stage of
# test-images/disk/Containerfile, started by build.sh (unprivileged: plain files, no loop device):
#
#   podman run --rm --mount type=image,src=ROOTFS,dst=/tree -v RECIPE:/recipe:ro -v OUT:/out \
#     -e ROOT_UUID=... -e ESP_VOLID=... TOOLS sh /recipe/assemble.sh
#
# Writes into /out: debian.raw, debian.qcow2, truncated.qcow2, garbage.qcow2, nobootloader.raw,
# two/a.qcow2, two/b.raw, layout.txt. Layout (512-byte sectors), as Debian's cloud images have it:
#   p14  2048..8191         3 MiB   BIOS boot partition: GRUB i386-pc core.img (boot.img in the MBR)
#   p15  8192..262143     124 MiB   EFI system partition, FAT32 "EFI": /EFI/BOOT/BOOTX64.EFI
#   p1   262144..end-2049  rest     ext4 "root", the whole system including /boot
# Both GRUBs find the root by file-system UUID and read the one /boot/grub/grub.cfg.
set -eu
: "${ROOT_UUID:?}" "${ESP_VOLID:?}"
SIZE_MIB=${SIZE_MIB:-2048}
OUT=/out
W=$(mktemp -d)
export MTOOLS_SKIP_CHECK=1

total=$((SIZE_MIB * 2048))
root_start=262144
root_end=$((total - 2048 - 1))
disk=$OUT/debian.raw
rm -f "$disk"
truncate -s "${SIZE_MIB}M" "$disk"
sgdisk \
  -n 14:2048:8191 -t 14:EF02 -c 14:bios \
  -n 15:8192:262143 -t 15:EF00 -c 15:esp \
  -n 1:$root_start:$root_end -t 1:8304 -c 1:root \
  "$disk" >/dev/null

# The root: a copy of the tree with the files that name this disk (the tree is read-only, and
# podman leaves /etc/hosts, /etc/hostname and /etc/resolv.conf as empty files in images).
mkdir "$W/root"
cp -a /tree/. "$W/root/"
R=$W/root
printf '%s\n' "# <file system> <mount point> <type> <options> <dump> <pass>" \
  "UUID=$ROOT_UUID / ext4 rw,discard,errors=remount-ro 0 1" \
  "UUID=$ESP_VOLID /boot/efi vfat umask=0077 0 2" > "$R/etc/fstab"
printf '%s\n' "127.0.0.1	localhost" "::1		localhost ip6-localhost ip6-loopback" \
  "ff02::1		ip6-allnodes" "ff02::2		ip6-allrouters" > "$R/etc/hosts"
chmod 0644 "$R/etc/hosts"
rm -f "$R/etc/hostname" "$R/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
sed "s/@ROOT_UUID@/$ROOT_UUID/g" /recipe/grub.cfg.in > "$R/boot/grub/grub.cfg"
mkfs.ext4 -q -L root -U "$ROOT_UUID" -d "$R" -E offset=$((root_start * 512)) \
  "$disk" "$(( (root_end - root_start + 1) / 2 ))k"
rm -rf "$R"

# GRUB's first stage: a core image that finds the root by UUID and loads the rest from it.
printf '%s\n' "search --no-floppy --fs-uuid --set=root $ROOT_UUID" \
  'set prefix=($root)/boot/grub' > "$W/early.cfg"

# UEFI: the removable-media path, so no NVRAM boot entry is needed.
mkfs.vfat -F 32 -s 1 -n EFI -i "$(echo "$ESP_VOLID" | tr -d -)" --offset 8192 "$disk" $(( (262144 - 8192) / 2 )) >/dev/null
grub-mkimage -O x86_64-efi -d /usr/lib/grub/x86_64-efi -p /boot/grub -c "$W/early.cfg" \
  -o "$W/BOOTX64.EFI" part_gpt ext2 search search_fs_uuid
esp="$disk@@$((8192 * 512))"
mmd -i "$esp" ::/EFI ::/EFI/BOOT
mcopy -i "$esp" "$W/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# BIOS: what grub-bios-setup does when it embeds GRUB in a BIOS boot partition, done by hand
# (grub-bios-setup insists on finding a block device under its -d directory, and there is none
# in an unprivileged container). boot.img's code goes in the MBR before the disk signature and
# partition table (bytes 0..439); it loads the first sector of core.img from the LBA stored at
# its offset 0x5c; that sector (diskboot.img) loads the rest from the blocklist in its last 12
# bytes {u64 start LBA, u16 sectors, u16 segment}: grub-mkimage fills in sectors and segment, the
# start is the sector after it. Offsets: include/grub/i386/pc/boot.h in GRUB's source.
grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -p /boot/grub -c "$W/early.cfg" \
  -o "$W/core.img" biosdisk part_gpt ext2 search search_fs_uuid
core_lba=2048
[ "$(stat -c %s "$W/core.img")" -le $(( (8192 - core_lba) * 512 )) ] || { echo "core.img does not fit" >&2; exit 1; }
le64() { # the 8 little-endian bytes of $1, as printf escapes
  n=$1 i=0 s=
  while [ $i -lt 8 ]; do s="$s\\$(printf %03o $((n % 256)))"; n=$((n / 256)); i=$((i + 1)); done
  printf "$s"
}
dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none
le64 $core_lba | dd of="$disk" bs=1 seek=$((0x5c)) conv=notrunc status=none
dd if="$W/core.img" of="$disk" bs=512 seek=$core_lba conv=notrunc status=none
le64 $((core_lba + 1)) | dd of="$disk" bs=1 seek=$((core_lba * 512 + 500)) conv=notrunc status=none

sgdisk -v "$disk" | grep -q "No problems found" || { sgdisk -v "$disk" >&2; exit 1; }
qemu-img convert -c -f raw -O qcow2 "$disk" "$OUT/debian.qcow2"

# Bad inputs for error tests.
q=$OUT/debian.qcow2
head -c $(( $(stat -c %s "$q") / 2 )) "$q" > "$OUT/truncated.qcow2"
{ printf 'QFI\373'; yes 'not a qcow2 header' | head -c 65532; } > "$OUT/garbage.qcow2"
nb=$OUT/nobootloader.raw
rm -f "$nb"
truncate -s 64M "$nb"
sgdisk -n 1:2048:0 -t 1:8300 -c 1:data "$nb" >/dev/null
mkdir "$W/nb"
echo "this disk has no bootloader: it must never boot" > "$W/nb/README"
mkfs.ext4 -q -L data -d "$W/nb" -E offset=$((2048 * 512)) "$nb" 60M
mkdir -p "$OUT/two"
truncate -s 1M "$OUT/two/b.raw"
qemu-img create -q -f qcow2 "$OUT/two/a.qcow2" 1M

{
  echo "debian.raw / debian.qcow2: ${SIZE_MIB} MiB, GPT"
  sgdisk -p "$disk" | sed -n '/^Number/,$p'
  echo "root ext4 UUID=$ROOT_UUID  ESP vfat UUID=$ESP_VOLID"
  sgdisk -i 1 "$disk" | grep 'unique GUID' | sed 's/^/root /'
  echo "kernel: $(readlink /tree/vmlinuz)  initrd: $(readlink /tree/initrd.img)"
  echo "cmdline: $(sed -n 's/^[[:space:]]*linux [^ ]* //p' /recipe/grub.cfg.in | sed "s/@ROOT_UUID@/$ROOT_UUID/")"
} > "$OUT/layout.txt"
rm -rf "$W"
