#!/usr/bin/env bash
# Proves the test disk boots with each firmware, with nothing but a hand-written QEMU line: the
# guest gets a cloud-init NoCloud seed holding an SSH key for root and for debian, and must
# answer `ssh root@` and `ssh debian@` (with passwordless sudo) through a user-network forward.
# Prints the time from QEMU's start to the first successful `ssh root@ true` for each firmware.
#
#   test-images/disk/check.sh [bios|uefi ...] [--disk FILE] [--seed vfat|iso]
#
# Defaults: both firmwares, build/disk/debian.qcow2, a vfat seed for bios and an iso9660 seed for
# uefi (so both kinds of seed are proven). QEMU, SeaBIOS and ssh come from the bcvk image
# ($BCVK_IMAGE); OVMF from it too once it has the ovmf package, else from the disk tools image
# (trixie's ovmf, the same files). CHECK_ACCEL=tcg|kvm (tcg), CHECK_VCPUS (2), CHECK_MEMORY
# (2048, MiB), CHECK_TIMEOUT (600 s). The guest's console goes to build/disk-check/<fw>.log.
#
# Inside the container the script runs again as `check.sh --inside FIRMWARE`: that part is the
# whole hand-written method (the floor a bench compares bcvk with), QEMU line included.
set -euo pipefail

ms() { echo $(($(date +%s%N) / 1000000)); }

if [ "${1:-}" = --inside ]; then
  fw=$2
  R=/run/check
  mkdir -p $R
  case $fw in
    bios) firmware=() ;;
    uefi)
      code=/usr/share/OVMF/OVMF_CODE_4M.fd vars=/usr/share/OVMF/OVMF_VARS_4M.fd
      [ -f $code ] || code=/tools/usr/share/OVMF/OVMF_CODE_4M.fd vars=/tools/usr/share/OVMF/OVMF_VARS_4M.fd
      cp $vars $R/OVMF_VARS_4M.fd
      firmware=(-drive if=pflash,format=raw,unit=0,readonly=on,file=$code
        -drive if=pflash,format=raw,unit=1,file=$R/OVMF_VARS_4M.fd) ;;
  esac
  case ${CHECK_ACCEL:-tcg} in tcg) accel=tcg,thread=multi ;; *) accel=$CHECK_ACCEL ;; esac
  format=$(case $DISK in *.qcow2) echo qcow2 ;; *) echo raw ;; esac)
  T0=$(ms)
  # snapshot=on: the guest's writes go to a temporary overlay, the disk file stays as it is.
  qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
    -machine q35 -accel $accel -cpu qemu64 -smp "${CHECK_VCPUS:-2}" -m "${CHECK_MEMORY:-2048}" \
    "${firmware[@]}" \
    -drive if=none,id=disk0,file=/disk/"$DISK",format=$format,snapshot=on \
    -device virtio-blk-pci,drive=disk0,bootindex=0 \
    -drive if=none,id=seed0,file=/seed/"$SEED",format=raw,readonly=on \
    -device virtio-blk-pci,drive=seed0 \
    -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0,romfile= \
    -device virtio-rng-pci \
    -serial file:/out/$fw.log </dev/null &
  qemu=$!
  guest() { # USER COMMAND...
    local u=$1; shift
    ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o LogLevel=ERROR -o ConnectTimeout=5 -i /seed/key -p 2222 -T "$u"@127.0.0.1 -- "$@" </dev/null
  }
  poll() { # USER COMMAND...: until it succeeds; its last error is kept in $R/err
    until guest "$@" >$R/err 2>&1; do
      kill -0 $qemu 2>/dev/null || { echo "$fw: QEMU exited before ssh $1@ answered" >&2; exit 70; }
      [ $(($(ms) - T0)) -lt $((${CHECK_TIMEOUT:-600} * 1000)) ] ||
        { echo "$fw: ssh $1@ did not answer in time; last error: $(cat $R/err)" >&2; kill $qemu; exit 75; }
      sleep 0.5
    done
  }
  poll root true
  root_ms=$(($(ms) - T0))
  poll debian sudo -n true
  debian_ms=$(($(ms) - T0))
  guest root 'cloud-init status --wait >/dev/null; cloud-init status --long; echo "firmware: $(test -d /sys/firmware/efi && echo uefi || echo bios)"; findmnt -n -o SOURCE,FSTYPE /; findmnt -n -o SOURCE,FSTYPE /boot/efi; cat /proc/cmdline; systemd-analyze 2>/dev/null | head -1; ls /etc/ssh/ssh_host_*key; systemd-analyze critical-chain --no-pager 2>/dev/null; systemd-analyze blame --no-pager 2>/dev/null | head -15' \
    > /out/$fw.guest.txt 2>&1 || true
  guest root systemctl poweroff --no-block >/dev/null 2>&1 || true
  wait $qemu || true
  echo "$fw: ssh root@ after ${root_ms} ms, ssh debian@ + sudo after ${debian_ms} ms (seed: $SEED)"
  exit 0
fi

. "$(dirname "$0")/../../integration/lib.sh"
fws=() disk=debian.qcow2 seedkind=
while [ $# -gt 0 ]; do
  case $1 in
    bios|uefi) fws+=("$1") ;;
    --disk) disk=$2; shift ;;
    --seed) seedkind=$2; shift ;;
    *) die "usage: check.sh [bios|uefi ...] [--disk FILE] [--seed vfat|iso]" ;;
  esac
  shift
done
[ ${#fws[@]} -gt 0 ] || fws=(bios uefi)
dir=$BCVK_TEST_DISK_DIR
[ -f "$dir/$disk" ] || die "$dir/$disk is missing: run test-images/disk/build.sh"
tools=localhost/bcvk-test/disk-tools:latest
podman image exists "$tools" || die "$tools is missing: run test-images/disk/build.sh"
podman image exists "$BCVK_IMAGE" || die "$BCVK_IMAGE is missing: run integration/build-images.sh bcvk"
out=$BCVK_BUILD/disk-check
mkdir -p "$out"
seed=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-disk-seed.XXXXXX")
trap 'rm -rf "$seed"' EXIT

# The seed: meta-data and user-data (a key for root and for the default user, debian).
ssh-keygen -q -t ed25519 -N '' -C bcvk-disk-check -f "$seed/key"
key=$(cat "$seed/key.pub")
mkdir "$seed/cidata"
printf 'instance-id: bcvk-check-%s\nlocal-hostname: disk-check\n' "$(date +%s)" > "$seed/cidata/meta-data"
# Top-level ssh_authorized_keys go to the default user and, as the image sets disable_root: false,
# to root as they are.
printf '#cloud-config\nssh_authorized_keys: ["%s"]\n' "$key" > "$seed/cidata/user-data"
# vfat: a FAT volume labelled CIDATA; iso9660: volume id cidata (cloud-init takes either case).
podman run --rm -v "$seed:/seed" "$tools" sh -c '
  set -e
  mkfs.vfat -n CIDATA -C /seed/seed.vfat 2048 >/dev/null
  mcopy -i /seed/seed.vfat /seed/cidata/meta-data /seed/cidata/user-data ::/
  genisoimage -quiet -output /seed/seed.iso -volid cidata -joliet -rock /seed/cidata/meta-data /seed/cidata/user-data'

for fw in "${fws[@]}"; do
  kind=$seedkind
  [ -n "$kind" ] || { [ "$fw" = bios ] && kind=vfat || kind=iso; }
  kvm=()
  [ "${CHECK_ACCEL:-tcg}" = kvm ] && kvm=(--device /dev/kvm)
  podman run --rm "${kvm[@]}" \
    -e DISK="$disk" -e SEED="seed.$kind" \
    -e CHECK_ACCEL -e CHECK_VCPUS -e CHECK_MEMORY -e CHECK_TIMEOUT \
    -v "$dir:/disk:ro" -v "$seed:/seed:ro" -v "$out:/out" \
    -v "$(cd "$(dirname "$0")" && pwd)/check.sh:/check.sh:ro" \
    --mount "type=image,src=$tools,dst=/tools" \
    --entrypoint /bin/bash "$BCVK_IMAGE" /check.sh --inside "$fw"
done
