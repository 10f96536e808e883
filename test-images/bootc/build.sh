#!/usr/bin/env bash
# A real bootc test image, built from Debian's archive plus bootc compiled from its own source:
#   localhost/bcvk-base:sid             a Debian sid minbase rootfs (debootstrap; cached by hash)
#   localhost/bcvk-test/bootc:latest    the bootc image (Containerfile, stage `bootc`)
#   localhost/bcvk-test/bootc:v2        the same plus one layer adding /usr/share/bcvk-test/v2
# Both carry the label bcvk.recipe=<hash of this directory, the mirror and bootc's commit>; when
# both images in the store carry the current hash, nothing is rebuilt (in any clone on this
# machine). The bootc sources come from the git bundles in $BCVK_VENDOR (default ../shared/vendor
# from the project's root) when they are there, else from the upstream URLs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../integration/lib.sh"

bootc_tag=v1.16.9
suite=sid
base=localhost/bcvk-base:$suite
vendor=${BCVK_VENDOR:-$BCVK_ROOT/../shared/vendor}
bootc_url=https://github.com/bootc-dev/bootc
# Git dependencies in bootc's Cargo.lock, and the bundle that holds each.
git_deps=("https://github.com/composefs/composefs-rs composefs-rs.bundle"
          "https://github.com/bootc-dev/bcvk bcvk.bundle")
logf=$BCVK_BUILD/build-bootc.log
mkdir -p "$BCVK_BUILD"

# The source: a bare mirror of the bundle (or the URL) under build/, reused by later runs.
src_git=$BCVK_BUILD/bootc-src/bootc.git
if [ -f "$vendor/bootc.bundle" ]; then origin=$vendor/bootc.bundle; else origin=$bootc_url; fi
if ! git -C "$src_git" rev-parse -q --verify "refs/tags/$bootc_tag^{commit}" >/dev/null 2>&1; then
  rm -rf "$src_git"
  git -c init.defaultBranch=main clone -q --bare "$origin" "$src_git" || die "cannot clone bootc from $origin"
fi
commit=$(git -C "$src_git" rev-parse "refs/tags/$bootc_tag^{commit}")

# README.md only describes the recipe: not part of the hash.
hash=$( { cd "$here" && find . -type f ! -name README.md -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum; echo "$BCVK_MIRROR $suite $bootc_tag $commit"; } | sha256sum | cut -c1-12)
label() { podman image inspect --format '{{index .Labels "bcvk.recipe"}}' "$1" 2>/dev/null || true; }
if [ "$(label "$BCVK_TEST_BOOTC")" = "$hash" ] && [ "$(label "$BCVK_TEST_BOOTC_V2")" = "$hash" ]; then
  log "bootc images up to date ($hash): $BCVK_TEST_BOOTC, $BCVK_TEST_BOOTC_V2"
  exit 0
fi
t0=$(date +%s)
: > "$logf"

# 1. The base: Debian sid minbase (bootc $bootc_tag needs ostree >= 2025.3; see README.md).
base_hash=$( { sed -n '/^# BASE-BEGIN/,/^# BASE-END/p' "$0"; echo "$BCVK_MIRROR $suite"; } | sha256sum | cut -c1-12)
# BASE-BEGIN
if ! podman image exists "$base-$base_hash"; then
  command -v debootstrap >/dev/null || die "debootstrap is missing: run integration/setup-host.sh"
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-base-$suite.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  log "debootstrap $suite minbase (about a minute)"
  debootstrap --variant=minbase "$suite" "$root" "$BCVK_MIRROR" >>"$logf" 2>&1 \
    || { tail -20 "$logf" >&2; die "debootstrap of $suite failed (is $BCVK_MIRROR reachable?): log in $logf"; }
  printf '%s\n' 'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
    'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/90bcvk"
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  : > "$root/etc/machine-id"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -c . \
    | podman import --change 'CMD ["/bin/bash"]' - "$base-$base_hash" >>"$logf" 2>&1
  rm -rf "$root"; trap - EXIT
fi
podman tag "$base-$base_hash" "$base"
# BASE-END

# 2. The build context: this recipe, bootc's tree at the tag, and the git dependencies.
ctx=$BCVK_BUILD/bootc-ctx
rm -rf "$ctx"; mkdir -p "$ctx/src/git"
cp -a "$here/." "$ctx/"
mkdir "$ctx/src/bootc"
git -C "$src_git" archive "$commit" | tar -x -C "$ctx/src/bootc"
: > "$ctx/src/gitconfig"
for dep in "${git_deps[@]}"; do
  read -r url bundle <<<"$dep"
  [ -f "$vendor/$bundle" ] || continue
  name=${bundle%.bundle}
  git -c init.defaultBranch=main clone -q --bare "$vendor/$bundle" "$ctx/src/git/$name.git" || die "cannot clone $vendor/$bundle"
  git config -f "$ctx/src/gitconfig" --add "url.file:///src/git/$name.git.insteadOf" "$url"
done
# v1.6.0 and older name composefs-rs under its former owner.
[ -d "$ctx/src/git/composefs-rs.git" ] && git config -f "$ctx/src/gitconfig" --add \
  url.file:///src/git/composefs-rs.git.insteadOf https://github.com/containers/composefs-rs

# 3. The images. The long step is the compile (its own nice level inside the build). The host's
# CA bundle is lent to it as a build secret (not kept in any layer): where crates.io is reached
# through a TLS-intercepting proxy, the builder trusts what the host trusts.
ca=${BCVK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
secret=(); [ -f "$ca" ] && secret=(--secret "id=host-ca,src=$ca")
log "building $BCVK_TEST_BOOTC from bootc $bootc_tag ($commit) on Debian $suite; log in $logf"
for target in bootc v2; do
  tag=$BCVK_TEST_BOOTC; [ $target = v2 ] && tag=$BCVK_TEST_BOOTC_V2
  nice -n 19 podman build --layers --target "$target" --build-arg "BASE=$base" \
    --build-arg "RECIPE=$hash" "${secret[@]}" -t "$tag" "$ctx" >>"$logf" 2>&1 \
    || { tail -30 "$logf" >&2; die "podman build of $tag (stage $target) failed: full log in $logf"; }
  [ "$(label "$tag")" = "$hash" ] || die "$tag was built but does not carry bcvk.recipe=$hash"
done
rm -rf "$ctx"
log "built $BCVK_TEST_BOOTC and $BCVK_TEST_BOOTC_V2 ($hash) in $(( $(date +%s) - t0 ))s"
