#!/usr/bin/env bash
# The VM disk images the disk-image tests boot, built from Debian's archive only (see README):
#   build/disk/debian.raw, debian.qcow2   a Debian trixie cloud-style disk (GPT; BIOS boot
#                                         partition, EFI system partition, ext4 root; cloud-init)
#   build/disk/truncated.qcow2, garbage.qcow2, nobootloader.raw   bad inputs for error tests
#   localhost/bcvk-test/containerdisk:latest       FROM scratch, one file: /disk/debian.qcow2
#   localhost/bcvk-test/containerdisk-two:latest   FROM scratch, /disk/a.qcow2 and /disk/b.raw
# and two helper images: localhost/bcvk-test/disk-rootfs (the root file system) and .../disk-tools
# (it plus the tools assemble.sh and check.sh use). Cached by a hash of this recipe (this
# directory, the mirror, the base image's ID): a rerun with nothing changed takes a second or two.
# No privileges, no loop device, no mount: assemble.sh writes the disk as a plain file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../integration/lib.sh"

out=$BCVK_TEST_DISK_DIR
rootfs=localhost/bcvk-test/disk-rootfs:latest
tools=localhost/bcvk-test/disk-tools:latest
podman image exists "$BCVK_BASE_IMAGE" || die "$BCVK_BASE_IMAGE is missing: run test-images/base/build.sh"
base_id=$(podman image inspect --format '{{.Id}}' "$BCVK_BASE_IMAGE")
# check.sh and README only describe or use the result: they are not part of the recipe.
hash=$( { cd "$here" && find . -type f ! -name check.sh ! -name README.md -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum; echo "$BCVK_MIRROR $base_id"; } | sha256sum | cut -c1-12)

outputs=(debian.raw debian.qcow2 truncated.qcow2 garbage.qcow2 nobootloader.raw layout.txt)
up_to_date() {
  [ "$(cat "$out/.recipe" 2>/dev/null)" = "$hash" ] || return 1
  local f i
  for f in "${outputs[@]}"; do [ -f "$out/$f" ] || return 1; done
  # The containerDisks carry the hash in a LABEL line of their Containerfile. (A --label on the
  # stage builds is not reliable: with every step cached, buildah 1.28 kept the old label.)
  for i in "$BCVK_TEST_CONTAINERDISK" "$BCVK_TEST_CONTAINERDISK_TWO"; do
    [ "$(podman image inspect --format '{{index .Labels "bcvk.recipe"}}' "$i" 2>/dev/null)" = "$hash" ] || return 1
  done
  podman image exists "$rootfs" && podman image exists "$tools"
}
if up_to_date; then
  log "disk images up to date ($hash): $out, $BCVK_TEST_CONTAINERDISK"
  exit 0
fi

t0=$(date +%s)
mkdir -p "$out"
rm -f "$out/.recipe"
logf=$BCVK_BUILD/build-disk.log
for stage in rootfs tools; do
  tag=$rootfs; [ $stage = tools ] && tag=$tools
  podman build --layers --target $stage --build-arg "BASE=$BCVK_BASE_IMAGE" \
    -t "$tag" "$here" >"$logf" 2>&1 || { tail -30 "$logf" >&2; die "podman build of $tag failed: full log in $logf"; }
done

# File-system identities derived from the recipe hash: the same recipe gives the same disk layout.
u=$(printf '%s' "bcvk-test-disk $hash" | sha256sum | cut -c1-32)
root_uuid=${u:0:8}-${u:8:4}-4${u:13:3}-a${u:17:3}-${u:20:12}
esp_volid=$(printf '%s' "${u:0:8}" | tr a-f A-F | sed 's/^\(....\)/\1-/')

# assemble.sh writes into a fresh directory; the results replace the old ones only when it
# succeeded, and the directory goes away whatever happens.
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
podman run --rm --network none \
  --mount "type=image,src=$rootfs,dst=/tree" -v "$here:/recipe:ro" -v "$work:/out" \
  -e ROOT_UUID="$root_uuid" -e ESP_VOLID="$esp_volid" \
  "$tools" sh /recipe/assemble.sh >"$logf" 2>&1 \
  || { tail -30 "$logf" >&2; die "assembling the disk failed: full log in $logf"; }
for f in "${outputs[@]}"; do mv -f "$work/$f" "$out/$f"; done

# The containerDisks: FROM scratch, as KubeVirt's are (one layer holding /disk/<file>).
containerdisk() { # TAG FILE...
  local tag=$1 ctx; shift
  ctx=$(mktemp -d "$work/ctx.XXXXXX")
  { echo "FROM scratch"; echo "LABEL bcvk.recipe=$hash"; } > "$ctx/Containerfile"
  local names=()
  for f in "$@"; do cp --reflink=auto --sparse=always "$f" "$ctx/"; names+=("$(basename "$f")"); done
  echo "COPY ${names[*]} /disk/" >> "$ctx/Containerfile"
  podman build --layers -t "$tag" "$ctx" >"$logf" 2>&1 \
    || { tail -30 "$logf" >&2; die "podman build of $tag failed: full log in $logf"; }
}
containerdisk "$BCVK_TEST_CONTAINERDISK" "$out/debian.qcow2"
containerdisk "$BCVK_TEST_CONTAINERDISK_TWO" "$work/two/a.qcow2" "$work/two/b.raw"

echo "$hash" > "$out/.recipe"
log "disk images built in $(( $(date +%s) - t0 ))s ($hash): $out, $BCVK_TEST_CONTAINERDISK"
