# Shared settings for the project's shell scripts: names every script, test and doc agrees on,
# and the project-local podman configuration written by setup-host.sh. Source it; don't run it.
BCVK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BCVK_BUILD=${BCVK_BUILD:-$BCVK_ROOT/build}
export BCVK_IMAGE=${BCVK_IMAGE:-localhost/bcvk:latest}
export BCVK_BASE_IMAGE=${BCVK_BASE_IMAGE:-localhost/bcvk-base:trixie}
export BCVK_TEST_DEBIAN=localhost/bcvk-test/debian:latest
export BCVK_TEST_LAYERED=localhost/bcvk-test/layered:latest
export BCVK_TEST_NOKERNEL=localhost/bcvk-test/nokernel:latest
export BCVK_HOST_STORE=${BCVK_HOST_STORE:-/var/lib/containers/storage}
# Debian mirror used by debootstrap and by apt inside image builds.
export BCVK_MIRROR=${BCVK_MIRROR:-http://deb.debian.org/debian}
# setup-host.sh writes this only when the machine needs it (see there).
if [ -z "${CONTAINERS_CONF:-}" ] && [ -f "$BCVK_BUILD/containers.conf" ]; then
  export CONTAINERS_CONF=$BCVK_BUILD/containers.conf
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
