#!/usr/bin/env bash
# Build the guest images of the fault tests from the recipes beside this script, FROM the shared
# debian test guest (built by integration/build-images.sh, never rebuilt here):
#   localhost/bcvk-faults-test/fakekernel:latest   a newer, unbootable module directory
#   localhost/bcvk-faults-test/nobootable:latest   no bootable kernel at all
# The end-to-end tests call this; buildah's layer cache makes a second run take a second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../integration/lib.sh"
podman image exists "$BCVK_TEST_DEBIAN" \
  || die "$BCVK_TEST_DEBIAN is missing: build it with integration/build-images.sh guests"
for name in fakekernel nobootable; do
  tag=localhost/bcvk-faults-test/$name:latest
  logf="$BCVK_BUILD/build-bcvk-faults-test-$name.log"
  mkdir -p "$BCVK_BUILD"
  podman build --layers --build-arg "BASE=$BCVK_TEST_DEBIAN" -t "$tag" "$here/$name" >"$logf" 2>&1 \
    || { tail -20 "$logf" >&2; die "podman build of $tag failed: full log in $logf"; }
done
