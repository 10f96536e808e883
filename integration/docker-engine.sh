#!/usr/bin/env bash
# A private docker engine for the docker end-to-end test: Debian's docker.io dockerd with its own
# data root under build/, no iptables rules and no bridge (so it cannot disturb the host's or
# podman's networking; bcvk needs no container network for a one-shot with --net none), and the
# bcvk image copied in from podman. Usage: docker-engine.sh start|stop. `start` prints the
# DOCKER_HOST to use.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$BCVK_BUILD/docker
sock=$dir/docker.sock
export DOCKER_HOST=unix://$sock
case "${1:-start}" in
start)
  command -v dockerd >/dev/null || die "dockerd is missing: run integration/setup-host.sh"
  mkdir -p "$dir"
  if ! docker version >/dev/null 2>&1; then
    dockerd --iptables=false --ip6tables=false --bridge=none --host "$DOCKER_HOST" \
      --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
      >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
    docker version >/dev/null 2>&1 || { tail -20 "$dir/dockerd.log" >&2; die "dockerd did not start (log: $dir/dockerd.log)"; }
  fi
  # Copy the bcvk image in when podman's is newer than docker's copy.
  want=$(podman image inspect --format '{{.Id}}' "$BCVK_IMAGE")
  have=$(docker image inspect --format '{{index .Config.Labels "bcvk.podman-id"}}' "$BCVK_IMAGE" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    podman save "$BCVK_IMAGE" 2>/dev/null | docker load -q >/dev/null
    # Tag the copy with the podman image id it came from (a label can't be added on load).
    printf 'FROM %s\nLABEL bcvk.podman-id=%s\n' "$BCVK_IMAGE" "$want" | docker build -q -t "$BCVK_IMAGE" - >/dev/null
  fi
  echo "$DOCKER_HOST"
  ;;
stop)
  [ -f "$dir/docker.pid" ] && kill "$(cat "$dir/docker.pid")" 2>/dev/null || true
  ;;
*) die "usage: docker-engine.sh start|stop" ;;
esac
