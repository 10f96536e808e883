#!/usr/bin/env bash
# The bcvk image for both architectures under one reference: a manifest list (podman manifest)
# of a linux/amd64 and a linux/arm64 image, built on an x86-64 host. The supervisor is
# cross-compiled for arm64 (rustup's aarch64-unknown-linux-gnu, linked by
# gcc-aarch64-linux-gnu), never built under emulation; only the arm64 image's apt step and its
# bcvk man/install-host-cli steps run its arm64 programs, under qemu-user-static (binfmt).
# integration/setup-host.sh installs all of it.
#   build-multiarch.sh [IMAGE [podman build args...]]     (IMAGE default $BCVK_IMAGE)
# makes IMAGE-amd64 and IMAGE-arm64 (":latest" -> ":latest-amd64"), then IMAGE as the list of
# both. The release workflow passes its --label arguments and pushes IMAGE with --all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
image=${1:-$BCVK_IMAGE}
shift || true
case $image in *:*) ;; *) image=$image:latest ;; esac
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
  || die "no binfmt_misc handler for arm64 binaries: run integration/setup-host.sh"
command -v aarch64-linux-gnu-gcc >/dev/null \
  || die "aarch64-linux-gnu-gcc is missing (the arm64 supervisor's linker): run integration/setup-host.sh"

# Base images: Debian's, or on a machine without a registry the local debootstrap ones.
base_amd64=${BCVK_BASE_AMD64:-docker.io/library/debian:trixie}
base_arm64=${BCVK_BASE_ARM64:-docker.io/library/debian:trixie}
if [ "${BCVK_LOCAL_BASE:-}" = 1 ]; then
  "$BCVK_ROOT/test-images/base/build.sh"
  # The arm64 base comes with the arm64 test guest (cached by recipe hash).
  "$BCVK_ROOT/test-images/arm64/build.sh"
  base_amd64=$BCVK_BASE_IMAGE base_arm64=$BCVK_BASE_IMAGE-arm64
fi

t0=$(date +%s)
log "building the supervisor for amd64 and, cross-compiled, for arm64"
(cd "$BCVK_ROOT" && cargo build --release --locked -q -p bcvk \
  && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
     cargo build --release --locked -q -p bcvk --target aarch64-unknown-linux-gnu)
file -b "$BCVK_ROOT/target/aarch64-unknown-linux-gnu/release/bcvk" | grep -q 'ARM aarch64' \
  || die "target/aarch64-unknown-linux-gnu/release/bcvk is not an arm64 program"

mkdir -p "$BCVK_BUILD"
for arch in amd64 arm64; do
  case $arch in
    amd64) bin=target/release/bcvk base=$base_amd64 ;;
    arm64) bin=target/aarch64-unknown-linux-gnu/release/bcvk base=$base_arm64 ;;
  esac
  t1=$(date +%s)
  logf=$BCVK_BUILD/build-bcvk-$arch.log
  podman build --layers --platform "linux/$arch" -f "$BCVK_ROOT/Containerfile" \
    --build-arg "BASE=$base" --build-arg "BCVK_BIN=$bin" "$@" -t "$image-$arch" "$BCVK_ROOT" \
    >"$logf" 2>&1 || { tail -30 "$logf" >&2; die "podman build of $image-$arch failed: full log in $logf"; }
  got=$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$image-$arch")
  [ "$got" = "linux/$arch" ] || die "$image-$arch is $got, not linux/$arch"
  log "$image-$arch built in $(( $(date +%s) - t1 ))s ($(podman image inspect --format '{{.Size}}' "$image-$arch") bytes)"
done

# A plain image of that name would stand in the list's way.
podman manifest exists "$image" 2>/dev/null && podman manifest rm "$image" >/dev/null
podman image exists "$image" && podman rmi "$image" >/dev/null
podman manifest create "$image" >/dev/null
for arch in amd64 arm64; do
  podman manifest add "$image" "containers-storage:$image-$arch" >/dev/null
done
log "$image: a manifest list of linux/amd64 and linux/arm64, built in $(( $(date +%s) - t0 ))s"
