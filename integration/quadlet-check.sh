#!/usr/bin/env bash
# Check examples/quadlet/bcvk-demo.container with a real Quadlet generator. The host's podman
# (4.3) is older than the keys the example uses, so the check runs trixie's quadlet (podman 5.x)
# in a small local image built FROM the base image:
#   localhost/bcvk-quadlet:<hash of its recipe and the base image ID>
# built once; later runs reuse it and take a second or two.
#
# It runs `quadlet -dryrun` with the unit mounted at /etc/containers/systemd/, checks that the
# generated ExecStart= is a `podman run` with the pieces bcvk needs, and prints it.
#
# Usage: quadlet-check.sh [OUT.json]     (BCVK_QUADLET_UNIT=FILE checks another .container file)
#   OUT.json, when given, receives the generated command in machine-readable form:
#     {"unit": "bcvk-demo.service",
#      "exec_start": "<the ExecStart= value exactly as generated>",
#      "argv": ["/usr/bin/podman", "run", ...]}
#   argv is exec_start split the way systemd splits it (quotes removed); systemd specifiers
#   such as %N (the unit name without .service: "bcvk-demo") are left for the reader to expand,
#   and so are the options that only make sense under systemd (--cgroups=split, -d, --replace).
# Exit status: 0 when every check passed, 1 otherwise (with a message saying which).
set -euo pipefail
# shellcheck source=integration/lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:-}
unit=${BCVK_QUADLET_UNIT:-$BCVK_ROOT/examples/quadlet/bcvk-demo.container}
[ -f "$unit" ] || die "no unit at $unit"
name=$(basename "$unit" .container)

# The checker image: podman (and with it /usr/libexec/podman/quadlet) from trixie's archive.
base_id=$(podman image inspect --format '{{.Id}}' "$BCVK_BASE_IMAGE" 2>/dev/null) \
  || die "$BCVK_BASE_IMAGE is missing: run test-images/base/build.sh"
recipe='FROM '"$BCVK_BASE_IMAGE"'
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN test -x /usr/libexec/podman/quadlet'
hash=$( { printf "%s\n" "$recipe"; echo "$base_id"; } | sha256sum | cut -c1-12)
image=localhost/bcvk-quadlet:$hash
if ! podman image exists "$image"; then
  log "building $image (podman from trixie, once)"
  mkdir -p "$BCVK_BUILD"
  logf=$BCVK_BUILD/build-quadlet.log
  printf '%s\n' "$recipe" | podman build --layers -t "$image" -f - "$BCVK_BUILD" >"$logf" 2>&1 \
    || { tail -30 "$logf" >&2; die "building $image failed: full log in $logf"; }
fi

log "quadlet -dryrun on $(basename "$unit") ($(podman run --rm "$image" podman --version))"
errf=$(mktemp); trap 'rm -f "$errf"' EXIT
fail() {
  printf '%s\n' "--- quadlet -dryrun (exit $rc) said:" "$complaints" "--- and generated:" "$gen" >&2
  die "quadlet check of $unit: $*"
}
dryrun() { # dryrun [podman run options]: the generator's output in $gen, exit code in $rc
  set +e
  gen=$(podman run --rm --network none "$@" \
    -v "$unit:/etc/containers/systemd/$name.container:ro" \
    "$image" /usr/libexec/podman/quadlet -dryrun 2>"$errf")
  rc=$?
  set -e
  # Its log lines ("Loading source unit file ...") minus the one that is always there.
  complaints=$(grep -v 'Loading source unit file' "$errf" || true)
}
# AddDevice=-/dev/kvm: the generator adds the device only where it exists. First as on a host
# without KVM (the checker container has no /dev/kvm): no --device at all.
dryrun
[ "$rc" = 0 ] || fail "quadlet -dryrun exited $rc (no /dev/kvm)"
! grep -q -- '--device[= ]*-\?/dev/kvm' <<<"$gen" \
  || fail "without /dev/kvm the generated line still adds it (write AddDevice=-/dev/kvm)"
kvm=()
if [ -e /dev/kvm ]; then kvm=(--device /dev/kvm); fi
dryrun "${kvm[@]}"
# An unsupported key or a bad value makes quadlet skip the unit and exit 1.
[ "$rc" = 0 ] || fail "quadlet -dryrun exited $rc"
[ -z "$complaints" ] || fail "quadlet complained"
grep -q "^---$name.service---\$" <<<"$gen" || fail "no $name.service was generated"

exec_start=$(sed -n 's/^ExecStart=//p' <<<"$gen")
[ -n "$exec_start" ] || fail "the generated service has no ExecStart="
[ "$(wc -l <<<"$exec_start")" = 1 ] || fail "more than one ExecStart= line"

# Split as systemd does for these simple cases: words, "double" or 'single' quotes, backslashes.
# xargs parses quotes like that and expands nothing ($, *, ~ stay as they are).
mapfile -t argv < <(printf '%s\n' "$exec_start" | xargs printf '%s\n')
if [ "${argv[0]##*/}" != podman ] || [ "${argv[1]:-}" != run ]; then
  fail "ExecStart= is not a 'podman run': $exec_start"
fi

has() { # has WORD...: the words appear in argv consecutively
  local want=("$@") i j
  for ((i = 0; i + ${#want[@]} <= ${#argv[@]}; i++)); do
    for ((j = 0; j < ${#want[@]}; j++)); do
      [ "${argv[i+j]}" = "${want[j]}" ] || continue 2
    done
    return 0
  done
  return 1
}
# The values the unit sets: read them back from the unit itself.
want_image=$(sed -n 's/^Image=//p' "$unit")
want_exec=$(sed -n 's/^Exec=//p' "$unit")
if [ -z "$want_image" ] || [ -z "$want_exec" ]; then fail "the unit has no Image= or no Exec="; fi
mapfile -t exec_words < <(printf '%s\n' "$want_exec" | xargs printf '%s\n')

has --sdnotify=container || fail "no --sdnotify=container (Notify=true)"
if [ ${#kvm[@]} -gt 0 ]; then
  has --device /dev/kvm || fail "no --device /dev/kvm where the host has it (AddDevice=-/dev/kvm)"
fi
has -v /var/lib/containers/storage:/run/host-storage:ro \
  || fail "no read-only store volume -v /var/lib/containers/storage:/run/host-storage:ro"
! has --privileged || fail "--privileged is not needed: bcvk runs with podman's default capabilities"
# The unit's podman stop timeout: PodmanArgs=--stop-timeout N (StopTimeout= needs Podman 5).
podman_stop=$(sed -n 's/^PodmanArgs=.*--stop-timeout[= ]\([0-9]*\).*/\1/p' "$unit")
[ -n "$podman_stop" ] || fail "the unit sets no PodmanArgs=--stop-timeout N"
! grep -q '^StopTimeout=' "$unit" || fail "StopTimeout= needs Quadlet 5: use PodmanArgs=--stop-timeout"
has --stop-timeout "$podman_stop" || fail "no --stop-timeout $podman_stop in the generated podman run"
has --health-cmd "bcvk status --health" || fail "no --health-cmd 'bcvk status --health'"
has "$want_image" "${exec_words[@]}" || fail "the image and Exec= arguments ($want_image $want_exec) are not last"
[ "${argv[-1]}" = "${exec_words[-1]}" ] || fail "something follows the Exec= arguments"

# bcvk's own stop timeout must leave the guest time to power off before podman kills it.
bcvk_stop=8
for ((i = 0; i < ${#exec_words[@]}; i++)); do
  case ${exec_words[i]} in
    --stop-timeout) bcvk_stop=${exec_words[i+1]} ;;
    --stop-timeout=*) bcvk_stop=${exec_words[i]#*=} ;;
  esac
done
[ "$bcvk_stop" -lt "$podman_stop" ] \
  || fail "bcvk --stop-timeout $bcvk_stop is not below the unit's podman --stop-timeout $podman_stop"

if [ -n "$out" ]; then
  printf '%s\n' "${argv[@]}" \
    | jq -R . | jq -s --arg unit "$name.service" --arg exec_start "$exec_start" \
        '{unit: $unit, exec_start: $exec_start, argv: .}' > "$out.tmp"
  mv "$out.tmp" "$out"
fi
log "quadlet check passed; generated ExecStart:"
printf 'ExecStart=%s\n' "$exec_start"
