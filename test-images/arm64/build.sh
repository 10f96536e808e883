#!/usr/bin/env bash
# The arm64 test guest, built on this (x86-64) machine under emulation (qemu-user-static with
# binfmt_misc, which integration/setup-host.sh installs and registers):
#   localhost/bcvk-base:trixie-arm64        debootstrap --arch arm64 minbase
#   localhost/bcvk-test/debian:arm64        test-images/debian's recipe for arm64 (the same
#                                           Containerfile, dracut.conf and rootfs/, with the
#                                           arm64 kernel package in place of linux-image-amd64)
# Both are tagged <tag>-<hash of the recipe> too, and rebuilt only when the recipe (this script,
# test-images/debian, the mirror) changes. test-images/debian is read, not changed, so the amd64
# guests the other tests use keep their cache.
set -euo pipefail
. "$(dirname "$0")/../../integration/lib.sh"

suite=trixie
debian=$BCVK_ROOT/test-images/debian
hash=$( { cat "$0"; echo "$BCVK_MIRROR"; cd "$debian" && find . -type f -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum; } | sha256sum | cut -c1-12)
base=$BCVK_BASE_IMAGE-arm64
guest=$BCVK_TEST_DEBIAN_ARM64

[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
  || die "no binfmt_misc handler for aarch64 binaries: run integration/setup-host.sh (it installs qemu-user-static and registers it)"

if podman image exists "$guest-$hash" && podman image exists "$base-$hash"; then
  podman tag "$base-$hash" "$base"
  podman tag "$guest-$hash" "$guest"
  log "arm64 test guest up to date: $guest-$hash"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is missing: run integration/setup-host.sh"
t0=$(date +%s)
if ! podman image exists "$base-$hash"; then
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-base-arm64.XXXXXX")
  trap 'rm -rf "$root" "$root.log"' EXIT
  log "debootstrap --arch arm64 $suite minbase (under emulation: a few minutes)"
  debootstrap --arch=arm64 --variant=minbase "$suite" "$root" "$BCVK_MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; die "debootstrap --arch arm64 failed (is $BCVK_MIRROR reachable, is qemu-aarch64 registered in binfmt_misc?)"; }
  # As test-images/base/build.sh: no recommends, no caches, no build host identity.
  cat > "$root/etc/apt/apt.conf.d/90bcvk" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  : > "$root/etc/machine-id"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -c . \
    | podman import --arch arm64 --change 'CMD ["/bin/bash"]' - "$base-$hash" >/dev/null
  rm -rf "$root" "$root.log"
  trap - EXIT
  log "built $base-$hash in $(( $(date +%s) - t0 ))s"
fi
podman tag "$base-$hash" "$base"

# The debian guest's context, its kernel package for arm64.
ctx=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-debian-arm64.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp -a "$debian/." "$ctx/"
sed -i 's/\blinux-image-amd64\b/linux-image-arm64/' "$ctx/Containerfile"
grep -q linux-image-arm64 "$ctx/Containerfile" \
  || die "test-images/debian/Containerfile no longer names linux-image-amd64: update $0"
logf=$BCVK_BUILD/build-debian-arm64.log
mkdir -p "$BCVK_BUILD"
t1=$(date +%s)
podman build --layers --platform linux/arm64 --build-arg "BASE=$base-$hash" -t "$guest-$hash" "$ctx" \
  >"$logf" 2>&1 || { tail -30 "$logf" >&2; die "podman build of $guest failed: full log in $logf"; }
podman tag "$guest-$hash" "$guest"
log "$guest built in $(( $(date +%s) - t1 ))s ($(( $(date +%s) - t0 ))s with its base)"
