# ---------------------------------------------------------------------------------------
# Subcommands

# image_run_help: print the options of bcvk run, from the image.
image_run_help() {
    if command -v podman >/dev/null 2>&1; then
        podman run --rm "$IMAGE" run --help ||
            printf '(could not run %s run --help: build the image, or set BCVK_IMAGE)\n' "$IMAGE"
    else
        printf '(podman is not installed: the options of bcvk run are not available)\n'
    fi
}

cmd_run() {
    parse_run run "$@"
    if [ -n "$WANT_HELP" ]; then
        usage_run_host
        image_run_help
        exit 0
    fi
    need_podman
    podman_run_args
    [ -z "$NAME" ] || name_free "$NAME"
    _pre=
    [ -n "$DETACH" ] && push _pre -d
    if [ -z "$DETACH" ] && [ -z "$INTERACTIVE" ] && [ -z "$TTY" ] && [ -z "$HAS_COMMAND" ] && stdin_is_tty; then
        INTERACTIVE=1 TTY=1
    fi
    [ -n "$INTERACTIVE" ] && push _pre -i
    [ -n "$TTY" ] && push _pre -t
    [ -n "$RM" ] && push _pre --rm
    [ -n "$NAME" ] && push _pre --name "$NAME"
    _cmd=
    [ -n "$COMMAND" ] && _cmd="'--' $COMMAND"
    eval "set -- $_pre $RUN_ARGS $_cmd"
    exec podman run "$@"
}

# ssh_exec_flags HAS_COMMAND: set REPLY to the podman exec flags for an ssh session.
ssh_exec_flags() {
    if stdin_is_tty; then
        if [ -n "$1" ]; then REPLY=; else REPLY=-it; fi
    else
        REPLY=-i
    fi
}

random_name() {
    _r=$(od -An -N4 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n')
    [ -n "$_r" ] || _r=$$
    REPLY=bcvk-$_r
}

# wait_ready NAME [restarted]: wait until the VM in container NAME is ready (podman exec
# NAME bcvk status --wait). When it fails, print its status and the console's tail and
# return 1. With "restarted" (after podman start), a status that is not ready while the
# container runs is asked again a few times: it may be the previous run's, read before
# the supervisor started afresh.
wait_ready() {
    printf 'bcvk: waiting for VM %s to be ready...\n' "$1" >&2
    _tries=0 _stale=0
    _progress='--progress plain'
    while :; do
        # shellcheck disable=SC2086 # _progress is two words or none
        _out=$({
            podman exec "$1" bcvk status --wait $_progress 2>&1
            printf '\n%s%s\n' "$EXIT_MARK" "$?"
        } | show_progress)
        _rc=${_out##*"$EXIT_MARK"}
        _out=${_out%"$EXIT_MARK"*}
        _out=${_out%"$NL"}
        _out=${_out%"$NL"}
        case $_rc in
        64)
            # A bcvk image older than this command has no --progress: wait without it.
            case $_out in
            *--progress*)
                if [ -n "$_progress" ]; then
                    _progress=
                    continue
                fi
                ;;
            esac
            ;;
        0) return 0 ;;
        66)
            # The supervisor has not written its status yet.
            _tries=$((_tries + 1))
            if [ "$_tries" -lt 120 ]; then
                sleep 1
                continue
            fi
            ;;
        1)
            if [ "${2-}" = restarted ] && [ "$_stale" -lt 5 ] &&
                [ "$(podman container inspect --format '{{.State.Status}}' "$1" 2>/dev/null)" = running ]; then
                _stale=$((_stale + 1))
                sleep 1
                continue
            fi
            ;;
        125 | 126 | 127 | 255)
            # podman exec itself failed, e.g. runc's "exec failed ... setns" into a container
            # whose VM was exiting: podman's words, not the VM's. Once the container has
            # stopped, its log and exit code say why; while it still runs, ask again.
            if [ "$(podman container inspect --format '{{.State.Status}}' "$1" 2>/dev/null)" != running ]; then
                podman logs --tail 30 "$1" >&2 2>/dev/null
                return 1
            fi
            _stale=$((_stale + 1))
            if [ "$_stale" -lt 10 ]; then
                sleep 1
                continue
            fi
            ;;
        esac
        printf '%s\n' "$_out" >&2
        podman logs --tail 30 "$1" >&2 2>/dev/null
        return 1
    done
}

# show_progress: copy stdin to stdout, except the supervisor's progress lines ("bcvk: booting
# (12s): kernel", from bcvk status --wait --progress plain), which go to stderr: on a
# terminal as one line rewritten in place (cleared at the end), else as they are.
show_progress() {
    _shown=
    while IFS= read -r _line || [ -n "$_line" ]; do
        case $_line in
        'bcvk: booting ('*'s): '*)
            if [ -t 2 ]; then
                _secs=${_line#'bcvk: booting ('}
                _secs=${_secs%%'s): '*}
                printf '\r\033[K[%4ss] booting: %s' "$_secs" "${_line#*'s): '}" >&2
                _shown=1
            else
                printf '%s\n' "$_line" >&2
            fi
            ;;
        *) printf '%s\n' "$_line" ;;
        esac
    done
    [ -z "$_shown" ] || printf '\r\033[K' >&2
}

# The run-ssh VM's container: stopped and removed on every way out. Its podman run has no
# --rm, so that when the VM fails its log and exit code can still be read.
VM_TO_STOP=
stop_vm() {
    if [ -n "$VM_TO_STOP" ]; then
        _vm=$VM_TO_STOP
        VM_TO_STOP=
        podman stop "$_vm" >/dev/null 2>&1 </dev/null || true
        podman rm -f "$_vm" >/dev/null 2>&1 </dev/null || true
    fi
}

# run_ssh_failed NAME: the VM stopped (or never got ready): repeat the supervisor's own
# error line, remove the container, and exit with the supervisor's exit code.
run_ssh_failed() {
    _code=255
    if exit_code_of "$1"; then
        _code=$REPLY
        if supervisor_error "$1"; then
            stop_vm
            printf '%s\n' "$REPLY" >&2
            exit "$_code"
        fi
    fi
    stop_vm
    die "$_code" "VM $1 stopped without becoming ready, or lost its guest (see the messages above)"
}

cmd_run_ssh() {
    parse_run run-ssh "$@"
    if [ -n "$WANT_HELP" ]; then
        usage_run_ssh
        exit 0
    fi
    need_podman
    # -d, -i and -t are implied (or decided here); the container is removed on exit.
    podman_run_args
    if [ -n "$NAME" ]; then
        name_free "$NAME"
        _name=$NAME
    else
        random_name
        _name=$REPLY
    fi
    trap stop_vm EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    eval "set -- $RUN_ARGS"
    podman run -d --name "$_name" "$@" >/dev/null ||
        die $? "could not start the VM container $_name (podman run failed; see its message above)"
    VM_TO_STOP=$_name
    wait_ready "$_name" || run_ssh_failed "$_name"
    eval "set -- $COMMAND"
    ssh_exec_flags "$HAS_COMMAND"
    if [ -n "$REPLY" ]; then
        podman exec "$REPLY" "$_name" bcvk ssh "$@"
    else
        podman exec "$_name" bcvk ssh "$@"
    fi
    _rc=$?
    # 255: ssh lost the guest, or podman exec its container; when the VM failed meanwhile,
    # its own reason and code say more.
    if [ "$_rc" = 255 ]; then
        case $(podman container inspect --format '{{.State.Status}}' "$_name" 2>/dev/null </dev/null) in
        running | '') ;;
        *) run_ssh_failed "$_name" ;;
        esac
    fi
    stop_vm
    exit "$_rc"
}

# cmd_ssh KIND ARGS...: KIND is ephemeral (bcvk ephemeral ssh, bcvk ssh) or vm (bcvk vm ssh).
cmd_ssh() {
    _kind=$1
    shift
    if [ "$_kind" = vm ]; then
        _pfx='vm ssh' _ls='bcvk vm list'
    else
        _pfx=ssh _ls='bcvk ephemeral ps'
    fi
    case ${1-} in
    -h | --help)
        if [ "$_kind" = vm ]; then usage_vm_ssh; else usage_ssh; fi
        exit 0
        ;;
    '') usage_error "$_pfx: missing NAME: bcvk $_kind ssh NAME [COMMAND...] (list the VMs with $_ls)" ;;
    -*) usage_error "$_pfx: unknown option '$1': bcvk $_kind ssh NAME [COMMAND...]" ;;
    esac
    need_podman
    _name=$1
    shift
    [ "${1-}" = -- ] && shift
    if [ "$_kind" = vm ]; then
        need_pvm 255 "$_name"
        [ "$VM_STATE" = running ] ||
            die 255 "VM '$_name' is not running (state: $VM_STATE): start it with bcvk vm start $_name"
    else
        check_vm 255 "$_name"
    fi
    _has=
    [ $# -gt 0 ] && _has=1
    ssh_exec_flags "$_has"
    if [ -n "$REPLY" ]; then
        exec podman exec "$REPLY" "$_name" bcvk ssh "$@"
    fi
    exec podman exec "$_name" bcvk ssh "$@"
}

# cmd_status COMMAND ARGS...: COMMAND is status or ephemeral_status (their flags' list).
cmd_status() {
    _cmd=$1
    shift
    _name='' _st=
    for _a in "$@"; do
        case $_a in
        -*)
            # Every flag passes on to bcvk status.
            host_flag "$_cmd" "$_a" status usage_status
            push _st "$_a"
            ;;
        *)
            [ -z "$_name" ] || usage_error "status: one NAME only, not '$_a' too"
            _name=$_a
            ;;
        esac
    done
    [ -n "$_name" ] || usage_error "status: missing NAME: bcvk ephemeral status NAME [--json] [--wait]"
    need_podman
    check_vm 1 "$_name"
    eval "set -- $_st"
    # The container's name is the VM's: the supervisor only knows the guest's host name.
    exec podman exec "$_name" bcvk status --name "$_name" "$@"
}

# vm_info ID: set VM_STATE and VM_IMAGE (the VM's target image) from podman inspect.
vm_info() {
    VM_STATE=
    VM_IMAGE=-
    _info=$(podman container inspect --format '{{.State.Status}}{{"\n"}}{{range .Config.Cmd}}{{.}}{{"\n"}}{{end}}' "$1" 2>/dev/null </dev/null) ||
        return 1
    _first=1 _skip='' _state_done=
    # The command is [run] [OPTIONS] IMAGE ...: the first argument that is neither an
    # option nor an option's value.
    while IFS= read -r _line; do
        if [ -z "$_state_done" ]; then
            VM_STATE=$_line
            _state_done=1
            continue
        fi
        if [ -n "$_skip" ]; then
            _skip=
            continue
        fi
        case $_line in
        run)
            if [ -n "$_first" ]; then
                _first=
                continue
            fi
            ;;
        --) break ;;
        --*=*) _first= && continue ;;
        --*)
            in_list "$_line" "$RUN_VALUE_OPTS" && _skip=1
            _first=
            continue
            ;;
        -?)
            case $RUN_SHORT_OPTS in
            *" ${_line#-}="*)
                _long=${RUN_SHORT_OPTS#*" ${_line#-}="}
                in_list "${_long%% *}" "$RUN_VALUE_OPTS" && _skip=1
                ;;
            esac
            _first=
            continue
            ;;
        -*) _first= && continue ;;
        esac
        # `podman exec NAME bcvk ssh` and the like name no image.
        [ "$_line" != run ] && in_list "$_line" "$BCVK_SUBCOMMANDS" || VM_IMAGE=$_line
        break
    done <<EOF
$_info
EOF
    return 0
}

cmd_ps() {
    _json=
    for _a in "$@"; do
        host_flag ephemeral_ps "$_a" ps usage_ps
        [ "$_a" != --json ] || _json=1
    done
    need_podman
    # The bcvk image carries $LABEL, so a persistent VM (labelled $VM_KEY) made without
    # overriding it would match too: skipped.
    _list=$(podman ps -a --no-trunc --filter "label=$LABEL" --format "{{.ID}}$TAB{{.Names}}$TAB{{.Status}}$TAB{{index .Labels \"$VM_KEY\"}}") ||
        die 125 "'podman ps' failed: check that podman works"
    _rows='' _wn=4 _wi=5 _ws=5
    _nl='
'
    # Rows: ID TAB NAME TAB STATUS TAB STATE TAB IMAGE, one per line.
    while IFS=$TAB read -r _id _cname _status _vmlabel; do
        if [ -z "$_id" ] || [ -n "$_vmlabel" ]; then continue; fi
        vm_info "$_id" || continue # removed meanwhile
        _state=$(printf '%s' "$VM_STATE" | tr '[:upper:]' '[:lower:]')
        _rows=$_rows$_id$TAB$_cname$TAB$_status$TAB$_state$TAB$VM_IMAGE$_nl
        [ "${#_cname}" -le "$_wn" ] || _wn=${#_cname}
        [ "${#VM_IMAGE}" -le "$_wi" ] || _wi=${#VM_IMAGE}
        [ "${#_state}" -le "$_ws" ] || _ws=${#_state}
    done <<EOF
$_list
EOF
    if [ -n "$_json" ]; then
        _sep=
        printf '['
        while IFS=$TAB read -r _id _cname _status _state _image; do
            [ -n "$_id" ] || continue
            printf '%s\n  {' "$_sep"
            _sep=,
            json_escape "$_cname"
            _jname=$REPLY
            json_escape "$_id"
            _jid=$REPLY
            json_escape "$_image"
            _jimage=$REPLY
            json_escape "$_state"
            _jstate=$REPLY
            json_escape "$_status"
            printf '"name": "%s", "id": "%s", "image": "%s", "state": "%s", "status": "%s"}' \
                "$_jname" "$_jid" "$_jimage" "$_jstate" "$REPLY"
        done <<EOF
$_rows
EOF
        [ -n "$_sep" ] && printf '\n'
        printf ']\n'
        return 0
    fi
    _fmt="%-${_wn}s  %-${_wi}s  %-${_ws}s  %s\n"
    # shellcheck disable=SC2059 # the format only holds field widths
    printf "$_fmt" NAME IMAGE STATE UPTIME
    while IFS=$TAB read -r _id _cname _status _state _image; do
        [ -n "$_id" ] || continue
        _up=-
        if [ "$_state" = running ]; then
            _up=${_status#Up }
            _up=${_up% ago}
        fi
        # shellcheck disable=SC2059
        printf "$_fmt" "$_cname" "$_image" "$_state" "$_up"
    done <<EOF
$_rows
EOF
}

cmd_rm_all() {
    _force=
    for _a in "$@"; do
        host_flag ephemeral_rm_all "$_a" rm-all usage_rm_all
        _force=1 # -f, --force
    done
    need_podman
    # Never a persistent VM (labelled $VM_KEY), even one that also carries $LABEL (from
    # the bcvk image) unoverridden.
    _list=$(podman ps -a --filter "label=$LABEL" --format "{{.ID}}$TAB{{.Names}}$TAB{{index .Labels \"$VM_KEY\"}}") ||
        die 125 "'podman ps' failed: check that podman works"
    _n=0 _names=
    while IFS=$TAB read -r _id _cname _vmlabel; do
        if [ -z "$_id" ] || [ -n "$_vmlabel" ]; then continue; fi
        _n=$((_n + 1))
        _names="$_names $_cname"
    done <<EOF
$_list
EOF
    if [ "$_n" -eq 0 ]; then
        printf 'No bcvk VMs to remove.\n' >&2
        return 0
    fi
    if [ -z "$_force" ]; then
        stdin_is_tty ||
            usage_error "rm-all: $_n bcvk VMs would be removed, but stdin is not a terminal to confirm on: use bcvk ephemeral rm-all -f"
        printf 'bcvk VMs:%s\n' "$_names" >&2
        printf 'Remove %s bcvk VMs? [y/N] ' "$_n" >&2
        read -r _answer || _answer=
        case $_answer in
        y | Y | yes | YES | Yes) ;;
        *)
            printf 'Nothing removed.\n' >&2
            return 1
            ;;
        esac
    fi
    _failed=0
    while IFS=$TAB read -r _id _cname _vmlabel; do
        if [ -z "$_id" ] || [ -n "$_vmlabel" ]; then continue; fi
        if podman rm -f "$_id" >/dev/null </dev/null; then
            printf 'Removed %s\n' "$_cname"
        else
            warn "could not remove $_cname ($_id)"
            _failed=1
        fi
    done <<EOF
$_list
EOF
    return "$_failed"
}

