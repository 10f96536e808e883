# ---------------------------------------------------------------------------------------
# Persistent VMs: bcvk vm run/ssh/list/stop/start/rm. A VM NAME is a container NAME
# (labelled bcvk.vm=NAME) running `bcvk run IMAGE --persistent`, and a named volume
# bcvk-vm-NAME (labelled the same) mounted at /cache, which holds the VM's state.

# valid_vm_name NAME: a name podman accepts for a container (and, prefixed, a volume).
valid_vm_name() {
    case $1 in
    '' | [!A-Za-z0-9]* | *[!A-Za-z0-9_.-]*) return 1 ;;
    esac
    return 0
}

# vm_default_name IMAGE: set REPLY to the VM name derived from IMAGE: its last path
# component without tag or digest (quay.io/fedora/fedora-bootc:42 -> fedora-bootc; an
# image ID -> its first 12 digits), other characters than [A-Za-z0-9_.-] made '-'.
vm_default_name() {
    _n=${1%%@*}
    _n=${_n#sha256:}
    _n=${_n##*/}
    _n=${_n%%:*}
    case $_n in
    *[!0-9a-f]*) ;;
    ????????????*) _n=${_n%"${_n#????????????}"} ;;
    esac
    REPLY=
    while [ -n "$_n" ]; do
        _rest=${_n#?}
        _c=${_n%"$_rest"}
        _n=$_rest
        case $_c in
        [A-Za-z0-9_.-]) ;;
        *) _c=- ;;
        esac
        REPLY=$REPLY$_c
    done
    case $REPLY in
    [A-Za-z0-9]*) ;;
    *) REPLY=vm$REPLY ;;
    esac
}

# vm_lookup NAME: when a container NAME exists, set VM_LABEL (its bcvk.vm label, empty
# when it is not a persistent VM), VM_STATE and VM_STOP (its stop timeout); else return 1.
vm_lookup() {
    VM_LABEL='' VM_STATE='' VM_STOP=
    _out=$(podman container inspect --format "{{index .Config.Labels \"$VM_KEY\"}}$TAB{{.State.Status}}$TAB{{.Config.StopTimeout}}" "$1" 2>/dev/null </dev/null) ||
        return 1
    VM_LABEL=${_out%%"$TAB"*}
    _out=${_out#*"$TAB"}
    VM_STATE=${_out%%"$TAB"*}
    VM_STOP=${_out#*"$TAB"}
    return 0
}

# volume_label VOLUME: when VOLUME exists, set REPLY to its bcvk.vm label; else return 1.
volume_label() {
    REPLY=$(podman volume inspect --format "{{index .Labels \"$VM_KEY\"}}" "$1" 2>/dev/null </dev/null)
}

# need_pvm EXITCODE NAME: exit with EXITCODE unless NAME is a persistent bcvk VM's
# container; sets what vm_lookup sets.
need_pvm() {
    if ! vm_lookup "$2"; then
        if volume_label "$VM_VOLUME_PREFIX$2" && [ "$REPLY" = "$2" ]; then
            die "$1" "VM '$2' has no container, only its state (volume $VM_VOLUME_PREFIX$2): boot it again with bcvk vm run --name $2 IMAGE, or remove it with bcvk vm rm $2"
        fi
        die "$1" "no bcvk VM named '$2': list them with: bcvk vm list"
    fi
    [ -n "$VM_LABEL" ] ||
        die "$1" "container '$2' is not a persistent bcvk VM (it has no label $VM_KEY): list them with: bcvk vm list"
}

# vm_name_arg VERB ARGS...: the one NAME argument of a verb (set in REPLY); -f/--force
# sets FORCE when VERB is rm.
vm_name_arg() {
    _verb=$1
    shift
    REPLY='' FORCE=
    for _a in "$@"; do
        case $_a in
        -h | --help)
            "usage_vm_$_verb"
            exit 0
            ;;
        -*)
            eval "_hf=\${HOST_FLAGS_vm_$_verb}"
            in_list "$_a" "$_hf" || usage_error "vm $_verb: unknown option '$_a' (see bcvk vm $_verb --help)"
            FORCE=1 # -f, --force: rm's only flag
            ;;
        *)
            [ -z "$REPLY" ] || usage_error "vm $_verb: one NAME only, not '$_a' too"
            REPLY=$_a
            ;;
        esac
    done
    [ -n "$REPLY" ] || usage_error "vm $_verb: missing NAME: bcvk vm $_verb NAME (list the VMs with bcvk vm list)"
}

# exit_code_of NAME: wait up to 10 s for container NAME to stop, then set REPLY to its exit
# code (255 when it has none, or none that says it failed). False while it still runs.
exit_code_of() {
    _n=0
    while :; do
        _st=$(podman container inspect --format "{{.State.Status}}$TAB{{.State.ExitCode}}" "$1" 2>/dev/null </dev/null)
        case $_st in
        running* | stopping*)
            _n=$((_n + 1))
            if [ "$_n" -le 10 ]; then
                sleep 1
                continue
            fi
            return 1
            ;;
        esac
        break
    done
    REPLY=${_st#*"$TAB"}
    case $REPLY in
    '' | 0 | *[!0-9]*) REPLY=255 ;;
    esac
}

# supervisor_error NAME: set REPLY to the last `bcvk: error:` line of container NAME's log
# (the supervisor's own reason); false when it has none.
supervisor_error() {
    REPLY=$(podman logs "$1" 2>&1 </dev/null | grep '^bcvk: error: ' | tail -n 1)
    [ -n "$REPLY" ]
}

# vm_failed VERB NAME [VOLUME CREATED]: the VM did not become ready (wait_ready has shown
# why). Waits a little for its container to stop, then exits with the container's exit
# code (255 when it still runs or has none). After a failed `vm run` the container is
# removed, and the state volume too when this run CREATED it.
vm_failed() {
    exit_code_of "$2" ||
        die 255 "VM $2 did not become ready and is still running (see the messages above): see podman logs $2, stop it with bcvk vm stop $2"
    _code=$REPLY
    [ "$1" = run ] ||
        die "$_code" "VM $2 stopped with exit code $_code (see the messages above): try again with bcvk vm start $2, or remove it with bcvk vm rm $2"
    podman rm "$2" >/dev/null 2>&1 </dev/null
    if [ -n "$4" ]; then
        podman volume rm "$3" >/dev/null 2>&1 </dev/null
        die "$_code" "VM $2 failed to start (exit code $_code, see the messages above): its container and new state volume are removed"
    fi
    die "$_code" "VM $2 failed to start (exit code $_code, see the messages above): its container is removed, its state kept in volume $3 (bcvk vm run --name $2 --reset IMAGE starts it over; bcvk vm rm $2 removes it)"
}

cmd_vm_run() {
    parse_run vm-run "$@"
    if [ -n "$WANT_HELP" ]; then
        usage_vm_run
        image_run_help
        exit 0
    fi
    [ -z "$RM" ] ||
        usage_error "vm run: --rm would remove the VM when it stops: a persistent VM is removed with bcvk vm rm NAME"
    [ -z "$INTERACTIVE$TTY" ] ||
        usage_error "vm run: -i/-t: the VM always runs in the background: open a shell in it with bcvk vm ssh NAME"
    [ -z "$HAS_COMMAND" ] ||
        usage_error "vm run: a guest command (-- COMMAND, --execute) would power the VM off when it ends: run it with bcvk vm ssh NAME COMMAND once the VM is up"
    [ -n "$TARGET" ] || usage_error "vm run: missing IMAGE: bcvk vm run [--name NAME] [OPTIONS] IMAGE (see --help)"
    if [ -n "$NAME" ]; then
        valid_vm_name "$NAME" ||
            usage_error "vm run: --name '$NAME': a VM name is letters, digits, '_', '.' and '-', starting with a letter or digit"
        _name=$NAME
    else
        vm_default_name "$TARGET"
        _name=$REPLY
    fi
    # bcvk's stop timeout (the guest's time to power off) and podman's, 10 s above it, so
    # that `podman stop` (bcvk vm stop, or by hand) lets the guest power off.
    if [ -z "${STOP_TIMEOUT+set}" ]; then
        STOP_TIMEOUT=50
        _st=
        push _st --stop-timeout=50
        BCVK_ARGS="$_st $BCVK_ARGS"
    fi
    case $STOP_TIMEOUT in
    '' | *[!0-9]*) usage_error "vm run: --stop-timeout needs a number of seconds, not '$STOP_TIMEOUT'" ;;
    esac
    case " $BCVK_ARGS " in
    *" '--persistent' "*) ;;
    *) BCVK_ARGS="'--persistent' $BCVK_ARGS" ;;
    esac
    _vol=$VM_VOLUME_PREFIX$_name
    _v=
    push _v -v "$_vol:/cache"
    VOLUMES="$_v $VOLUMES"
    KIND_LABEL=$VM_KEY=$_name
    # Explicitly not ephemeral: bcvk images before 0.1.0's lean image carried $LABEL, which
    # their containers inherit, and 'bcvk ephemeral ps/rm-all' select on it.
    _l=
    push _l --label "${LABEL%=*}=0"
    LABELS="$_l $LABELS"
    need_podman
    if vm_lookup "$_name"; then
        [ -z "$VM_LABEL" ] ||
            die 1 "VM '$_name' exists (state: $VM_STATE): start it with bcvk vm start $_name, remove it with bcvk vm rm $_name, or give another --name"
        die 1 "a container named '$_name' exists and is not a persistent bcvk VM: give the VM another --name"
    fi
    podman_run_args
    _created=
    if volume_label "$_vol"; then
        [ "$REPLY" = "$_name" ] ||
            die 1 "volume $_vol exists and is not VM $_name's state (its label $VM_KEY is '$REPLY'): give the VM another --name"
        printf 'bcvk: VM %s boots from its kept state (volume %s; --reset starts it over)\n' "$_name" "$_vol" >&2
    else
        podman volume create --label "$VM_KEY=$_name" "$_vol" >/dev/null </dev/null ||
            die $? "could not create the state volume $_vol (podman volume create failed; see its message above)"
        _created=1
    fi
    eval "set -- $RUN_ARGS"
    _rc=0
    podman run -d --name "$_name" --stop-timeout "$((STOP_TIMEOUT + 10))" "$@" >/dev/null || _rc=$?
    if [ "$_rc" -ne 0 ]; then
        # A container this run created but could not start (never one that runs: the
        # name may have been taken meanwhile by another bcvk vm run).
        if vm_lookup "$_name" && [ "$VM_LABEL" = "$_name" ]; then
            case $VM_STATE in
            created | configured | exited) podman rm -f "$_name" >/dev/null 2>&1 </dev/null ;;
            esac
        fi
        [ -z "$_created" ] || podman volume rm "$_vol" >/dev/null 2>&1 </dev/null
        die "$_rc" "could not start the VM container $_name (podman run failed; see its message above)"
    fi
    wait_ready "$_name" || vm_failed run "$_name" "$_vol" "$_created"
    printf 'bcvk: VM %s is ready: bcvk vm ssh %s\n' "$_name" "$_name" >&2
    printf '%s\n' "$_name"
}

cmd_vm_start() {
    vm_name_arg start "$@"
    _name=$REPLY
    need_podman
    need_pvm 1 "$_name"
    _how=
    if [ "$VM_STATE" = running ]; then
        printf 'bcvk: VM %s is already running\n' "$_name" >&2
    else
        podman start "$_name" >/dev/null </dev/null ||
            die $? "could not start VM $_name (podman start failed; see its message above)"
        _how=restarted
    fi
    wait_ready "$_name" $_how || vm_failed start "$_name"
    printf 'bcvk: VM %s is ready: bcvk vm ssh %s\n' "$_name" "$_name" >&2
    printf '%s\n' "$_name"
}

cmd_vm_stop() {
    vm_name_arg stop "$@"
    _name=$REPLY
    need_podman
    need_pvm 1 "$_name"
    case $VM_STATE in
    running | paused | stopping) ;;
    *)
        printf 'bcvk: VM %s is not running (state: %s)\n' "$_name" "$VM_STATE" >&2
        return 0
        ;;
    esac
    # The container's stop timeout is bcvk's --stop-timeout plus 10 s (see vm run).
    _t=$VM_STOP
    case $_t in
    '' | *[!0-9]*) _t=60 ;;
    esac
    podman stop -t "$_t" "$_name" >/dev/null </dev/null ||
        die $? "could not stop VM $_name (podman stop failed; see its message above)"
    printf '%s\n' "$_name"
}

cmd_vm_rm() {
    vm_name_arg rm "$@"
    _name=$REPLY
    need_podman
    _label=$_name _ctr=''
    if vm_lookup "$_name"; then
        [ -n "$VM_LABEL" ] ||
            die 1 "container '$_name' is not a persistent bcvk VM (it has no label $VM_KEY): bcvk vm rm removes only those"
        _label=$VM_LABEL _ctr=1
        case $VM_STATE in
        running | paused | stopping)
            [ -n "$FORCE" ] ||
                die 1 "VM $_name is running: stop it first (bcvk vm stop $_name), or remove it anyway with bcvk vm rm -f $_name"
            ;;
        esac
    fi
    _vol=$VM_VOLUME_PREFIX$_label _vm_vol=
    if volume_label "$_vol"; then
        if [ "$REPLY" = "$_label" ]; then
            _vm_vol=1
        else
            warn "volume $_vol is not VM $_label's state (its label $VM_KEY is '$REPLY'): left alone"
        fi
    fi
    [ -n "$_ctr$_vm_vol" ] || die 1 "no bcvk VM named '$_name': list them with: bcvk vm list"
    if [ -n "$_ctr" ]; then
        if [ -n "$FORCE" ]; then
            podman rm -f "$_name" >/dev/null </dev/null
        else
            podman rm "$_name" >/dev/null </dev/null
        fi || die $? "could not remove the container of VM $_name (podman rm failed; see its message above)"
    fi
    if [ -n "$_vm_vol" ]; then
        podman volume rm "$_vol" >/dev/null </dev/null ||
            die $? "could not remove the state volume $_vol of VM $_name (podman volume rm failed; see its message above); is another container using it? podman ps -a --filter volume=$_vol"
    fi
    printf '%s\n' "$_name"
}

# human BYTES: set REPLY to BYTES in K, M, G, T (1024-based, one decimal below 10).
human() {
    _b=$1 _u=B _t=0
    for _next in K M G T; do
        [ "$_b" -ge 1024 ] || break
        _t=$((_b * 10 / 1024 % 10))
        _b=$((_b / 1024))
        _u=$_next
    done
    if [ "$_u" != B ] && [ "$_b" -lt 10 ]; then
        REPLY=$_b.$_t$_u
    else
        REPLY=$_b$_u
    fi
}

cmd_vm_list() {
    _json=
    for _a in "$@"; do
        host_flag vm_list "$_a" 'vm list' usage_vm_list
        [ "$_a" != --json ] || _json=1
    done
    need_podman
    _ctrs=$(podman ps -a --no-trunc --filter "label=$VM_KEY" --format "{{.ID}}$TAB{{.Names}}$TAB{{.Status}}$TAB{{index .Labels \"$VM_KEY\"}}" </dev/null) ||
        die 125 "'podman ps' failed: check that podman works"
    _vols=$(podman volume ls --filter "label=$VM_KEY" --format "{{.Name}}$TAB{{index .Labels \"$VM_KEY\"}}" </dev/null) ||
        die 125 "'podman volume ls' failed: check that podman works"
    # The space each state volume takes, measured by du in one throwaway container of the
    # bcvk image: the volumes may live on another machine (podman machine, remote).
    _sizes=
    _du='' _paths=
    while IFS=$TAB read -r _vname _vlabel; do
        [ -n "$_vname" ] || continue
        push _du -v "$_vname:/state/$_vname:ro"
        push _paths "/state/$_vname"
    done <<EOT
$_vols
EOT
    if [ -n "$_du" ]; then
        _sizes=$(eval "podman run --rm --network none --label \"\${LABEL%=*}=0\" --entrypoint du $_du \"\$IMAGE\" -s -B1 $_paths" 2>/dev/null </dev/null)
    fi
    _nl='
'
    _rows='' _seen=' ' _wn=4 _wi=5 _ws=5
    # Rows: ID TAB NAME TAB STATUS TAB STATE TAB IMAGE TAB VOLUME, one per line.
    while IFS=$TAB read -r _id _cname _status _vlabel; do
        [ -n "$_id" ] || continue
        vm_info "$_id" || continue # removed meanwhile
        _state=$(printf '%s' "$VM_STATE" | tr '[:upper:]' '[:lower:]')
        _vol=$VM_VOLUME_PREFIX$_vlabel
        _seen="$_seen$_vol "
        _rows=$_rows$_id$TAB$_cname$TAB$_status$TAB$_state$TAB$VM_IMAGE$TAB$_vol$_nl
    done <<EOT
$_ctrs
EOT
    # State volumes whose container is gone.
    while IFS=$TAB read -r _vname _vlabel; do
        [ -n "$_vname" ] || continue
        case $_seen in *" $_vname "*) continue ;; esac
        _rows=$_rows-$TAB$_vlabel$TAB-${TAB}no-container$TAB-$TAB$_vname$_nl
    done <<EOT
$_vols
EOT
    # Add the sizes (bytes, - when unknown) and the column widths.
    _out=
    while IFS=$TAB read -r _id _cname _status _state _image _vol; do
        [ -n "$_id" ] || continue
        _size=-
        while IFS=$TAB read -r _bytes _path; do
            if [ "$_path" = "/state/$_vol" ]; then
                case $_bytes in
                '' | *[!0-9]*) ;;
                *) _size=$_bytes ;;
                esac
            fi
        done <<EOT
$_sizes
EOT
        _out=$_out$_id$TAB$_cname$TAB$_status$TAB$_state$TAB$_image$TAB$_vol$TAB$_size$_nl
        [ "${#_cname}" -le "$_wn" ] || _wn=${#_cname}
        [ "${#_image}" -le "$_wi" ] || _wi=${#_image}
        [ "${#_state}" -le "$_ws" ] || _ws=${#_state}
    done <<EOT
$_rows
EOT
    if [ -n "$_json" ]; then
        _sep=
        printf '['
        while IFS=$TAB read -r _id _cname _status _state _image _vol _size; do
            [ -n "$_id" ] || continue
            printf '%s\n  {' "$_sep"
            _sep=,
            json_escape "$_cname"
            printf '"name": "%s", ' "$REPLY"
            for _f in id:"$_id" image:"$_image" state:"$_state" status:"$_status" volume:"$_vol"; do
                _v=${_f#*:}
                if [ "$_v" = - ]; then
                    printf '"%s": null, ' "${_f%%:*}"
                else
                    json_escape "$_v"
                    printf '"%s": "%s", ' "${_f%%:*}" "$REPLY"
                fi
            done
            if [ "$_size" = - ]; then _size=null; fi
            printf '"size": %s}' "$_size"
        done <<EOT
$_out
EOT
        [ -n "$_sep" ] && printf '\n'
        printf ']\n'
        return 0
    fi
    _fmt="%-${_wn}s  %-${_wi}s  %-${_ws}s  %s\n"
    # shellcheck disable=SC2059 # the format only holds field widths
    printf "$_fmt" NAME IMAGE STATE SIZE
    while IFS=$TAB read -r _id _cname _status _state _image _vol _size; do
        [ -n "$_id" ] || continue
        if [ "$_size" != - ]; then
            human "$_size"
            _size=$REPLY
        fi
        # shellcheck disable=SC2059
        printf "$_fmt" "$_cname" "$_image" "$_state" "$_size"
    done <<EOT
$_out
EOT
}

cmd_vm() {
    case ${1-} in
    '')
        usage_vm >&2
        exit "$EX_USAGE"
        ;;
    -h | --help | help)
        usage_vm
        exit 0
        ;;
    esac
    _sub=$1
    shift
    case $_sub in
    run) cmd_vm_run "$@" ;;
    ssh) cmd_ssh vm "$@" ;;
    list | ls | ps) cmd_vm_list "$@" ;;
    stop) cmd_vm_stop "$@" ;;
    start) cmd_vm_start "$@" ;;
    rm) cmd_vm_rm "$@" ;;
    *)
        # shellcheck disable=SC2086 # the list is space-separated words
        did_you_mean "$_sub" $HOST_COMMANDS_vm
        _hint=$REPLY
        # shellcheck disable=SC2086
        or_list $HOST_COMMANDS_vm
        usage_error "unknown subcommand 'vm $_sub': ${_hint}use $REPLY (see bcvk vm --help)"
        ;;
    esac
}

