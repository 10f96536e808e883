#!/usr/bin/env bash
# The local base image every other image is built FROM (no registry is reachable here):
# a Debian trixie minbase rootfs from debootstrap, imported into podman as
#   localhost/bcvk-base:trixie-<hash of this recipe>   and tagged   localhost/bcvk-base:trixie
# It is rebuilt only when this recipe (or the mirror) changes, so a second run takes a second.
set -euo pipefail
. "$(dirname "$0")/../../integration/lib.sh"

suite=trixie
hash=$( { cat "$0"; echo "$BCVK_MIRROR"; } | sha256sum | cut -c1-12)
tagged=${BCVK_BASE_IMAGE}-$hash
if podman image exists "$tagged"; then
  podman tag "$tagged" "$BCVK_BASE_IMAGE"
  log "base image up to date: $tagged"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is missing: run integration/setup-host.sh"
root=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
log "debootstrap $suite minbase (about a minute)"
t0=$(date +%s)
debootstrap --variant=minbase "$suite" "$root" "$BCVK_MIRROR" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed (is $BCVK_MIRROR reachable?)"; }
rm -f "$root.log"
# Images built FROM this one install without recommends and keep no caches.
cat > "$root/etc/apt/apt.conf.d/90bcvk" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT
# Not the build host's identity: containers get theirs from the engine, guests from bcvk.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
: > "$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -c . \
  | podman import --change 'CMD ["/bin/bash"]' - "$tagged" >/dev/null
podman tag "$tagged" "$BCVK_BASE_IMAGE"
log "built $tagged in $(( $(date +%s) - t0 ))s"
