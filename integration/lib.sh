# Shared settings for the project's shell scripts: names every script, test and doc agrees on,
# and the project-local podman configuration written by setup-host.sh. Source it; don't run it.
BCVK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BCVK_BUILD=${BCVK_BUILD:-$BCVK_ROOT/build}
export BCVK_IMAGE=${BCVK_IMAGE:-localhost/bcvk:latest}
export BCVK_BASE_IMAGE=${BCVK_BASE_IMAGE:-localhost/bcvk-base:trixie}
export BCVK_TEST_DEBIAN=localhost/bcvk-test/debian:latest
# The debian guest for arm64, built under emulation (test-images/arm64/build.sh).
export BCVK_TEST_DEBIAN_ARM64=localhost/bcvk-test/debian:arm64
export BCVK_TEST_LAYERED=localhost/bcvk-test/layered:latest
export BCVK_TEST_NOKERNEL=localhost/bcvk-test/nokernel:latest
# Layer semantics (whiteouts, opaque dirs, owners, modes, caps, links, devices) in one image.
export BCVK_TEST_SEMANTICS=localhost/bcvk-test/semantics:latest
# The debian guest under 200 and 450 layers (integration/many-layers.sh).
export BCVK_TEST_LAYERS200=localhost/bcvk-test/layers200:latest
export BCVK_TEST_LAYERS450=localhost/bcvk-test/layers450:latest
# An image whose marker the guest must never see (it is not the guest's image).
export BCVK_TEST_BYSTANDER=localhost/bcvk-test/bystander:latest
# A real bootc image (bootc built from source, Debian sid) and the same plus one layer
# (test-images/bootc/build.sh).
export BCVK_TEST_BOOTC=localhost/bcvk-test/bootc:latest
export BCVK_TEST_BOOTC_V2=localhost/bcvk-test/bootc:v2
# VM disk images (test-images/disk/build.sh): the files under $BCVK_TEST_DISK_DIR (debian.qcow2,
# debian.raw, truncated.qcow2, garbage.qcow2, nobootloader.raw) and containerDisks in the store.
export BCVK_TEST_DISK_DIR=$BCVK_BUILD/disk
export BCVK_TEST_CONTAINERDISK=localhost/bcvk-test/containerdisk:latest
export BCVK_TEST_CONTAINERDISK_TWO=localhost/bcvk-test/containerdisk-two:latest
# The regular user rootless tests run podman as (integration/rootless.sh).
export BCVK_ROOTLESS_USER=${BCVK_ROOTLESS_USER:-bcvk-rootless}
export BCVK_HOST_STORE=${BCVK_HOST_STORE:-/var/lib/containers/storage}
# The Kubernetes schema validator setup-host.sh installs into $BCVK_BUILD/venv.
export BCVK_KUBE_VALIDATE_VERSION=1.37.0
# Debian mirror used by debootstrap and by apt inside image builds.
export BCVK_MIRROR=${BCVK_MIRROR:-http://deb.debian.org/debian}
# setup-host.sh writes this only when the machine needs it (see there).
if [ -z "${CONTAINERS_CONF:-}" ] && [ -f "$BCVK_BUILD/containers.conf" ]; then
  export CONTAINERS_CONF=$BCVK_BUILD/containers.conf
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
