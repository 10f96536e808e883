#!/bin/sh
# bcvk: the host-side command of the bcvk container image.
#
# It implements `bcvk ephemeral ...` (run, run-ssh, ssh, ps, rm-all) and the persistent
# VMs' `bcvk vm ...` (run, ssh, list, stop, start, rm) by translating each command into
# podman commands that run the bcvk image. It needs only a POSIX shell and podman.
# Install it with:
#
#   podman run --rm localhost/bcvk install-host-cli > ~/.local/bin/bcvk
#   chmod +x ~/.local/bin/bcvk
#
# Environment: BCVK_IMAGE (the bcvk image, default localhost/bcvk:latest),
# BCVK_KVM_DEVICE (the KVM device to pass to the VM, default /dev/kvm).

set -u

BCVK_HOST_VERSION=0.1.0
IMAGE=${BCVK_IMAGE:-localhost/bcvk:latest}
KVM_DEVICE=${BCVK_KVM_DEVICE:-/dev/kvm}
LABEL=bcvk.ephemeral=1
# Persistent VMs (bcvk vm): the container and its state volume carry bcvk.vm=NAME, never
# $LABEL, so that 'bcvk ephemeral ps/rm-all' never see them.
VM_KEY=bcvk.vm
VM_VOLUME_PREFIX=bcvk-vm-
# The label podman_run_args gives the container.
KIND_LABEL=$LABEL
TAB=$(printf '\t')
NL='
'
# Ends wait_ready's capture of podman exec's output: the exit code follows it.
EXIT_MARK='bcvk-host-exit-code='
# The health check of every VM container.
HEALTH_CMD='bcvk status --health'
# Host paths are mounted below this directory in the container, one per option.
HOSTDIR=/run/bcvk-host

EX_USAGE=64

# Which commands and options there are (bcvk run's, podman's, the host command's own), and
# which take a value: their clap definitions are the only lists (supervisor/src/host_cmd.rs).
# `bcvk install-host-cli` replaces the next line with them; the copy in the source tree
# (entrypoint/bcvk-host) is only a template. Values are bcvk's to judge: the script reads
# only what it needs to mount host paths and publish ports.
# @BCVK_RUN_OPTION_TABLE@
if [ -z "${RUN_VALUE_OPTS+set}" ] || [ -z "${HOST_COMMANDS+set}" ]; then
    printf 'bcvk: error: %s\n' "this is the template of the host command, without its option lists: install it with podman run --rm $IMAGE install-host-cli > bcvk" >&2
    exit 70
fi

# ---------------------------------------------------------------------------------------
# Helpers

die() { # die CODE MESSAGE
    _code=$1
    shift
    printf 'bcvk: error: %s\n' "$*" >&2
    exit "$_code"
}

usage_error() {
    die "$EX_USAGE" "$@"
}

warn() {
    printf 'bcvk: warning: %s\n' "$*" >&2
}

# did_you_mean WORD CANDIDATE...: set REPLY to "did you mean 'C'? " for the CANDIDATE closest
# to WORD by edit distance (insertions, deletions, substitutions and swaps of two neighbours;
# at most 2, and under half of WORD's length), else to nothing.
did_you_mean() {
    _w=$1
    shift
    REPLY=$(awk -v w="$_w" 'BEGIN {
        best = ""; bd = 3; n = length(w)
        for (i = 1; i < ARGC; i++) {
            c = ARGV[i]; m = length(c)
            for (x = 0; x <= n; x++) d[x, 0] = x
            for (y = 0; y <= m; y++) d[0, y] = y
            for (x = 1; x <= n; x++)
                for (y = 1; y <= m; y++) {
                    v = d[x - 1, y] + 1
                    if (d[x, y - 1] + 1 < v) v = d[x, y - 1] + 1
                    t = d[x - 1, y - 1] + (substr(w, x, 1) != substr(c, y, 1))
                    if (t < v) v = t
                    # Two letters swapped count as one edit (rnu: run).
                    if (x > 1 && y > 1 && substr(w, x, 1) == substr(c, y - 1, 1) &&
                        substr(w, x - 1, 1) == substr(c, y, 1) && d[x - 2, y - 2] + 1 < v)
                        v = d[x - 2, y - 2] + 1
                    d[x, y] = v
                }
            if (d[n, m] < bd && d[n, m] * 2 < n) { bd = d[n, m]; best = c }
        }
        if (best != "") printf "did you mean '\''%s'\''? ", best
    }' "$@")
}

# or_list WORD...: set REPLY to "A, B or C".
or_list() {
    REPLY=
    while [ $# -gt 0 ]; do
        case $# in
        1) REPLY=${REPLY:+"$REPLY or "}$1 ;;
        *) REPLY=${REPLY:+"$REPLY, "}$1 ;;
        esac
        shift
    done
}

need_podman() {
    command -v podman >/dev/null 2>&1 ||
        die 127 "podman not found in PATH: install podman (bcvk runs its VMs in podman containers)"
}

# quote ARG: set REPLY to ARG quoted for the shell (for eval).
quote() {
    _rest=$1
    REPLY=
    while :; do
        case $_rest in
        *\'*)
            REPLY="$REPLY${_rest%%\'*}'\\''"
            _rest=${_rest#*\'}
            ;;
        *) break ;;
        esac
    done
    REPLY="'$REPLY$_rest'"
}

# push LIST ARG...: append the ARGs, quoted, to the variable named LIST.
push() {
    _list=$1
    shift
    for _arg in "$@"; do
        quote "$_arg"
        eval "$_list=\"\${$_list} \$REPLY\""
    done
}

# stdin_is_tty: true when stdin is a terminal.
stdin_is_tty() {
    [ -t 0 ]
}

# abspath PATH: set REPLY to PATH made absolute (relative to the current directory), without
# trailing slashes. A directory that exists is resolved with cd (so "." and ".." vanish).
abspath() {
    _p=$1
    case $_p in
    /*) ;;
    *)
        while :; do
            case $_p in
            ./*) _p=${_p#./} ;;
            *) break ;;
            esac
        done
        [ "$_p" = . ] && _p=
        _p=${PWD%/}/$_p
        ;;
    esac
    while :; do
        case $_p in
        ?*/) _p=${_p%/} ;;
        *) break ;;
        esac
    done
    if [ -d "$_p" ]; then
        _resolved=$(cd -- "$_p" 2>/dev/null && pwd) && _p=$_resolved
    fi
    REPLY=$_p
}

# split_file PATH: set DIR and BASE from an absolute file PATH (made absolute first).
split_file() { # split_file OPTION PATH
    abspath "$2"
    BASE=${REPLY##*/}
    DIR=${REPLY%/*}
    [ -n "$DIR" ] || DIR=/
    [ -n "$BASE" ] || usage_error "$1: '$2' names no file"
    abspath "$DIR"
    DIR=$REPLY
}

# next_mount: set CPATH to a fresh container path for a host path.
NMOUNT=0
next_mount() {
    NMOUNT=$((NMOUNT + 1))
    CPATH=$HOSTDIR/$NMOUNT
}

# add_volume OPTION HOSTPATH CONTAINERPATH [ro]
add_volume() {
    case $2 in
    *:*) usage_error "$1: the host path '$2' contains ':', which podman -v cannot mount: rename or symlink it" ;;
    esac
    if [ "${4-}" = ro ]; then
        push VOLUMES -v "$2:$3:ro"
    else
        push VOLUMES -v "$2:$3"
    fi
}

# valid_mount_name NAME: what bcvk run accepts as a --bind NAME.
valid_mount_name() {
    case $1 in
    '' | *[!A-Za-z0-9_.-]*) return 1 ;;
    esac
    [ "${#1}" -le 30 ]
}

json_escape() { # json_escape STRING: set REPLY to STRING escaped for a JSON string
    _rest=$1
    REPLY=
    while :; do
        case $_rest in
        *[\\\"]*)
            _head=${_rest%%[\\\"]*}
            _rest=${_rest#"$_head"}
            _c=${_rest%"${_rest#?}"}
            _rest=${_rest#?}
            REPLY="$REPLY$_head\\$_c"
            ;;
        *) break ;;
        esac
    done
    REPLY=$REPLY$_rest
}

# check_vm EXITCODE NAME: exit with EXITCODE unless NAME is a running bcvk VM, ephemeral
# or persistent.
check_vm() {
    _out=$(podman container inspect --format "{{index .Config.Labels \"bcvk.ephemeral\"}}$TAB{{.State.Status}}" "$2" 2>/dev/null) ||
        die "$1" "no container named '$2': list the bcvk VMs with: bcvk ephemeral ps (persistent VMs: bcvk vm list)"
    _label=${_out%%"$TAB"*}
    _state=${_out#*"$TAB"}
    if [ "$_label" != 1 ]; then
        { vm_lookup "$2" && [ -n "$VM_LABEL" ]; } ||
            die "$1" "container '$2' is not a bcvk VM (it has no label $LABEL nor $VM_KEY): list the bcvk VMs with: bcvk ephemeral ps, bcvk vm list"
        _state=$VM_STATE
    fi
    [ "$_state" = running ] ||
        die "$1" "bcvk VM '$2' is not running (state: $_state): see podman logs $2"
}

# podman_runs_health_checks: whether podman can run the VM's health check. podman (4.x)
# runs health checks from transient systemd timers: without a systemd manager to ask (no
# systemd as PID 1, or no user manager for rootless podman) each podman run, start and rm of
# the container logs "level=error ... unable to get systemd connection to add healthchecks",
# and `podman ps` shows "(starting)" for good. BCVK_HEALTHCHECK=on adds the check anyway
# (e.g. for podman --remote), =off never; auto (the default) asks the managers' sockets.
podman_runs_health_checks() {
    case ${BCVK_HEALTHCHECK:-auto} in
    on) return 0 ;;
    off) return 1 ;;
    auto) ;;
    *) usage_error "BCVK_HEALTHCHECK=$BCVK_HEALTHCHECK: use auto, on or off" ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        [ -S /run/systemd/private ]
    else
        [ -n "${XDG_RUNTIME_DIR-}" ] && [ -S "$XDG_RUNTIME_DIR/systemd/private" ]
    fi
}

# name_free NAME: exit 1, saying what is there and what to do, when a container named NAME
# exists (else podman run would refuse it with its own 125 and message).
name_free() {
    _out=$(podman container inspect --format "{{index .Config.Labels \"bcvk.ephemeral\"}}$TAB{{.State.Status}}" "$1" 2>/dev/null </dev/null) ||
        return 0
    _label=${_out%%"$TAB"*}
    _state=${_out#*"$TAB"}
    [ "$_label" != 1 ] ||
        die 1 "$PFX: --name $1: a bcvk VM of that name exists (state: $_state): remove it with podman rm -f $1 (bcvk ephemeral ps lists them), or give another --name"
    die 1 "$PFX: --name $1: a container of that name exists (state: $_state), not an ephemeral bcvk VM: give another --name"
}

