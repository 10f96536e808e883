#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine to build and test bcvk: install the host packages, and write a
# project-local containers.conf (never the global one) for the quirks some machines have:
#  - cgroups v1/hybrid: crun 1.8 refuses them ("cgroups in hybrid mode not supported"): use runc;
#  - no CAP_SYS_RESOURCE: podman's default ulimits exceed the hard limits and runc fails with
#    "setrlimit ... operation not permitted": clamp them to the hard limits, nproc to at most
#    32768 (podman 4.3 itself runs clamped to that here).
# Idempotent and quick when everything is in place. Scripts pick the file up through lib.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need=()
# qemu-user-static (with binfmt-support to register it): the arm64 test guest and the arm64
# bcvk image are built on this x86 machine by running their arm64 programs under emulation;
# gcc-aarch64-linux-gnu links the supervisor cross-compiled for arm64 (rustup's
# aarch64-unknown-linux-gnu target, added below).
for pkg in podman runc debootstrap conmon openssh-client jq docker.io uidmap python3 python3-venv \
    qemu-user-static binfmt-support gcc-aarch64-linux-gnu libc6-dev-arm64-cross; do
  # GitHub's Ubuntu runners bring Docker's own packages (moby-runc, containerd.io, docker-ce),
  # which conflict with Debian's runc and docker.io: a runc or a dockerd already there will do.
  case $pkg in
    runc) command -v runc >/dev/null && continue ;;
    docker.io) command -v dockerd >/dev/null && command -v docker >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing host packages: ${need[*]}"
  [ "$(id -u)" = 0 ] || die "installing ${need[*]} needs root: run this script as root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

# binfmt_misc runs arm64 programs through qemu-aarch64-static, in containers too: Debian
# registers it with the F flag (the interpreter is opened once, at registration, so it need not
# exist in the container). A container or a minimal host may have binfmt_misc unmounted.
binfmt=/proc/sys/fs/binfmt_misc
if ! [ -e "$binfmt/qemu-aarch64" ]; then
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" \
    || die "cannot mount binfmt_misc on $binfmt (needed to run arm64 programs under emulation): run 'mount -t binfmt_misc binfmt_misc $binfmt' as root"
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64 \
    || die "cannot register qemu-aarch64 with binfmt_misc: see 'update-binfmts --display qemu-aarch64'"
fi
grep -q '^flags:.*F' "$binfmt/qemu-aarch64" \
  || die "qemu-aarch64 is registered in binfmt_misc without the F flag, so containers cannot use it: re-register it from Debian's qemu-user-static (update-binfmts --disable/--enable qemu-aarch64)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  log "adding the Rust target aarch64-unknown-linux-gnu (the arm64 bcvk image's supervisor)"
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi

mkdir -p "$BCVK_BUILD"
conf=$BCVK_BUILD/containers.conf
runtime=""
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then runtime=runc; fi
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=32768
[ "$nproc" -gt 32768 ] && nproc=32768
clamp=""
# Only clamp where podman's defaults (nofile 1048576, nproc 4194304) would exceed the hard limits
# and we may not raise them.
if ! capsh --has-p=cap_sys_resource >/dev/null 2>&1 && { [ "$nofile" -lt 1048576 ] || [ "$nproc" -lt 4194304 ]; }; then
  clamp=yes
fi
# AppArmor hosts (Ubuntu, GitHub's ubuntu-24.04 runners): podman's default profile
# (containers-default, from containers/common) says `deny mount`, which AppArmor enforces inside
# user namespaces too, and bcvk mounts the guest's root (in its own namespaces, never on the
# host). The tests' containers run unconfined, as the README tells Ubuntu users to run bcvk.
apparmor=""
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; then apparmor=yes; fi
# Ubuntu 23.10+ confines an unconfined process that creates a user namespace without
# CAP_SYS_ADMIN to a profile without capabilities (kernel.apparmor_restrict_unprivileged_userns),
# so bcvk's user namespace could mount nothing. On a CI runner (a throwaway machine) it is
# lifted; elsewhere the user decides.
restrict=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [ "$(cat "$restrict" 2>/dev/null)" = 1 ]; then
  if [ "${CI:-}" = true ] || [ "${GITHUB_ACTIONS:-}" = true ]; then
    log "CI runner: lifting kernel.apparmor_restrict_unprivileged_userns (bcvk builds the guest's root in a user namespace)"
    sysctl -qw kernel.apparmor_restrict_unprivileged_userns=0
  else
    die "kernel.apparmor_restrict_unprivileged_userns=1: bcvk's tests run it without added capabilities, in a user namespace this setting leaves without any: run 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' (CI=true does it), or see README 'Troubleshooting'"
  fi
fi
if [ -n "$runtime$clamp$apparmor" ]; then
  {
    echo "# written by integration/setup-host.sh for this machine; used through CONTAINERS_CONF"
    echo "[containers]"
    [ -n "$clamp" ] && echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
    [ -n "$apparmor" ] && echo "apparmor_profile = \"unconfined\""
    echo "[engine]"
    [ -n "$runtime" ] && echo "runtime = \"$runtime\""
  } > "$conf.tmp"
  mv "$conf.tmp" "$conf"
  export CONTAINERS_CONF=$conf
else
  rm -f "$conf"
fi
podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} {{.Store.GraphRoot}}' >/dev/null \
  || die "podman does not work on this machine: see 'podman info'"
log "host ready: podman $(podman version --format '{{.Client.Version}}'), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'), store $(podman info --format '{{.Store.GraphRoot}}')${CONTAINERS_CONF:+, config $CONTAINERS_CONF}"
# The Kubernetes schema validator for examples/kubernetes (PyPI's kubernetes-validate: it ships
# the API's JSON schemas for 1.25-1.37, so validating needs no network).
kv=$BCVK_BUILD/venv/bin/kubernetes-validate
if ! [ -x "$kv" ] || [ "$("$kv" --version 2>/dev/null)" != "$BCVK_KUBE_VALIDATE_VERSION" ]; then
  log "installing kubernetes-validate $BCVK_KUBE_VALIDATE_VERSION into $BCVK_BUILD/venv"
  python3 -m venv "$BCVK_BUILD/venv"
  "$BCVK_BUILD/venv/bin/pip" install -q "kubernetes-validate==$BCVK_KUBE_VALIDATE_VERSION" \
    || die "pip install kubernetes-validate failed (PyPI unreachable?)"
fi
# A regular user with rootless podman and its own store, for the rootless tests.
"$(dirname "$0")/rootless.sh" setup
