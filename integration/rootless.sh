#!/usr/bin/env bash
# Rootless podman for the tests: a regular user with its own store, as a bcvk user without root
# has. Run as root; idempotent.
#   rootless.sh setup            create the user, its subordinate ids, its podman configuration
#   rootless.sh load IMAGE...    copy images from root's store into the user's (skipped when
#                                the user's copy has the same ID)
#   rootless.sh podman ARGS...   run podman as that user
#   rootless.sh store            print the user's store (graphroot)
# Facts this relies on (measured on this project's machine): rootless podman needs uidmap and a
# subuid/subgid range; podman 4.3 picks vfs unless the user's storage.conf says overlay;
# /dev/net/tun is 0600 here, so slirp4netns fails: the tests run rootless containers with
# --network none (QEMU's own user-mode network inside the container still carries bcvk's SSH).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

user=$BCVK_ROOTLESS_USER
home=/var/lib/$user

as_user() {
  local uid; uid=$(id -u "$user")
  local rt=/run/user/$uid
  if [ ! -d "$rt" ]; then
    mkdir -p "$rt"; chown "$user:" "$rt"; chmod 0700 "$rt"
  fi
  (cd / && runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="$rt" "$@")
}

setup() {
  [ "$(id -u)" = 0 ] || die "rootless.sh setup must run as root (it creates the test user)"
  if ! id "$user" >/dev/null 2>&1; then
    log "creating the rootless test user $user"
    useradd --system --create-home --home-dir "$home" --shell /usr/sbin/nologin "$user"
  fi
  # useradd --system gives no subordinate ids: add one range, once.
  for f in subuid subgid; do
    touch "/etc/$f"
    grep -q "^$user:" "/etc/$f" || echo "$user:300000:65536" >> "/etc/$f"
  done
  local conf=$home/.config/containers
  mkdir -p "$conf"
  printf '[storage]\ndriver = "overlay"\n' > "$conf/storage.conf"
  # The machine's quirks (runc, clamped ulimits: see setup-host.sh) apply to the user too.
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    cp "$CONTAINERS_CONF" "$conf/containers.conf"
  else
    rm -f "$conf/containers.conf"
  fi
  chown -R "$user:" "$home/.config"
  as_user podman info --format '{{.Store.GraphDriverName}}' | grep -qx overlay \
    || die "rootless podman for $user does not use the overlay driver: see 'rootless.sh podman info'"
}

load() {
  for image in "$@"; do
    local id; id=$(podman image inspect --format '{{.Id}}' "$image")
    if [ "$(as_user podman image inspect --format '{{.Id}}' "$image" 2>/dev/null)" = "$id" ]; then
      continue
    fi
    log "copying $image into $user's store"
    podman save --format docker-archive "$image" | as_user podman load -q >/dev/null
    [ "$(as_user podman image inspect --format '{{.Id}}' "$image")" = "$id" ] \
      || die "$image has another ID in $user's store after loading"
  done
}

cmd=${1:-}; shift || true
case "$cmd" in
  setup) setup ;;
  load) load "$@" ;;
  podman) as_user podman "$@" ;;
  store) as_user podman info --format '{{.Store.GraphRoot}}' ;;
  *) die "usage: rootless.sh setup | load IMAGE... | podman ARGS... | store" ;;
esac
