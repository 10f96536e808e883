#!/usr/bin/env bash
# Build every image the project runs, from Debian's archive only (nothing is pulled):
#   localhost/bcvk-base:trixie        debootstrap (cached by recipe hash)
#   localhost/bcvk:latest             the product: supervisor + QEMU + virtiofsd
#   localhost/bcvk-test/debian:latest, .../layered:latest, .../nokernel:latest   test guests
#   localhost/bcvk-test/debian:arm64  the debian guest for arm64 (test-images/arm64/build.sh),
#                                     built under emulation, only when asked for with `arm64`
#   localhost/bcvk-test/semantics, bystander, layers200, layers450      privilege-mode tests
#   build/disk/debian.{qcow2,raw} + bad disks, localhost/bcvk-test/containerdisk{,-two}:latest
#                                     VM disk images (test-images/disk/build.sh, cached by hash)
#   localhost/bcvk-test/bootc:latest, :v2   a real bootc image, bootc compiled from source
#                                     (test-images/bootc/build.sh, cached by hash; the first
#                                     build takes about an hour, later runs "up to date" in 0.1 s)
# Re-running is cheap: buildah's layer cache keeps the apt layers; only changed steps rebuild.
# Usage: build-images.sh [bcvk|guests|bootc|arm64|all]   (default all: bcvk, guests and bootc)
# The bcvk image for both architectures as one manifest list: integration/build-multiarch.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
what=${1:-all}

build() { # build TAG CONTEXT [podman build args...]
  local tag=$1 ctx=$2; shift 2
  local t0; t0=$(date +%s)
  local logf="$BCVK_BUILD/build-${tag//[\/:]/_}.log"
  mkdir -p "$BCVK_BUILD"
  podman build --layers "$@" -t "$tag" "$ctx" >"$logf" 2>&1 \
    || { tail -30 "$logf" >&2; die "podman build of $tag failed: full log in $logf"; }
  log "$tag built in $(( $(date +%s) - t0 ))s"
}

"$BCVK_ROOT/test-images/base/build.sh"

if [ "$what" = all ] || [ "$what" = bcvk ]; then
  log "building the supervisor (cargo build --release)"
  (cd "$BCVK_ROOT" && cargo build --release --locked -q -p bcvk)
  build "$BCVK_IMAGE" "$BCVK_ROOT" -f "$BCVK_ROOT/Containerfile" --build-arg "BASE=$BCVK_BASE_IMAGE"
fi
if [ "$what" = all ] || [ "$what" = guests ]; then
  build "$BCVK_TEST_DEBIAN" "$BCVK_ROOT/test-images/debian" --build-arg "BASE=$BCVK_BASE_IMAGE"
  build "$BCVK_TEST_LAYERED" "$BCVK_ROOT/test-images/layered" --build-arg "BASE=$BCVK_TEST_DEBIAN"
  # A plain rootfs without any kernel: the base itself, under the name the tests use.
  podman tag "$BCVK_BASE_IMAGE" "$BCVK_TEST_NOKERNEL"
  build "$BCVK_TEST_SEMANTICS" "$BCVK_ROOT/test-images/semantics" --build-arg "BASE=$BCVK_TEST_DEBIAN"
  build "$BCVK_TEST_BYSTANDER" "$BCVK_ROOT/test-images/bystander" --build-arg "BASE=$BCVK_BASE_IMAGE"
  for n in 200 450; do
    t0=$(date +%s)
    var=BCVK_TEST_LAYERS$n
    python3 "$BCVK_ROOT/integration/many-layers.py" "$BCVK_TEST_DEBIAN" "$n" "${!var}" \
      || die "building the $n-layer test image failed"
    log "${!var} ready in $(( $(date +%s) - t0 ))s"
  done
  "$BCVK_ROOT/test-images/disk/build.sh"
fi
# The arm64 guest, under emulation: 25 to 50 minutes the first time (cached by recipe hash), so
# only when asked for (integration/demo asks); the e2e trial that boots it is ignored without it.
if [ "$what" = arm64 ]; then
  t0=$(date +%s)
  "$BCVK_ROOT/test-images/arm64/build.sh"
  log "arm64 test guest ready in $(( $(date +%s) - t0 ))s"
fi
if [ "$what" = all ] || [ "$what" = bootc ]; then
  t0=$(date +%s)
  "$BCVK_ROOT/test-images/bootc/build.sh" \
    || die "building the bootc test images failed (test-images/bootc/build.sh; log in $BCVK_BUILD/build-bootc.log)"
  log "bootc test images ready in $(( $(date +%s) - t0 ))s"
fi
# Dangling images left by rebuilds only cost disk. Only those older than an hour: a build running
# beside this one (another checkout, a second terminal) has intermediate images that look
# dangling, and removing them makes that build fail ("image not known").
podman image prune -f --filter until=1h >/dev/null 2>&1 || true
