# ---------------------------------------------------------------------------------------
# Parsing the options of run and run-ssh

# in_list WORD LIST: true when WORD is in the space-padded LIST.
in_list() {
    case $2 in
    *" $1 "*) return 0 ;;
    esac
    return 1
}

# host_flag COMMAND ARG PFX USAGE: print USAGE and exit 0 for -h/--help; refuse ARG unless
# it is a flag of the host command COMMAND (ephemeral_ps, vm_rm, ...: HOST_FLAGS_COMMAND).
host_flag() {
    case $2 in
    -h | --help)
        "$4"
        exit 0
        ;;
    esac
    eval "_hf=\${HOST_FLAGS_$1}"
    in_list "$2" "$_hf" || usage_error "$3: unexpected argument '$2' (only${_hf% })"
}

# option_value ARG NEXT...: for an option that takes a value, set _opt and _val from
# --opt=value, or from --opt and the next argument (the caller then shifts it).
option_value() {
    case $1 in
    --*=*)
        _opt=${1%%=*}
        _val=${1#*=}
        ;;
    *)
        _opt=$1
        [ $# -gt 1 ] || usage_error "$PFX: $1 needs a value (see bcvk $VERB --help)"
        _val=$2
        ;;
    esac
}

# parse_run MODE ARGS...: MODE is run, run-ssh or vm-run. Sets the variables below; lists are
# quoted for eval.
parse_run() {
    MODE=$1
    shift
    # PFX starts error messages, VERB names the command in them.
    case $MODE in
    vm-run) PFX='vm run' VERB='vm run' ;;
    *) PFX=$MODE VERB="ephemeral $MODE" ;;
    esac
    DETACH='' INTERACTIVE='' TTY='' RM='' NAME='' WANT_HELP=
    unset STOP_TIMEOUT # set when --stop-timeout is given
    LABELS='' VOLUMES='' PUBLISH='' BCVK_ARGS='' COMMAND='' HAS_COMMAND='' TARGET='' STORAGE=
    DISK_HOST='' DISK_CPATH='' PERSISTENT=''
    while [ $# -gt 0 ]; do
        _a=$1
        shift
        if [ -n "$TARGET" ] && [ "$MODE" = run-ssh ]; then
            # Everything after IMAGE is the command to run over ssh.
            [ "$_a" = -- ] || push COMMAND "$_a"
            push COMMAND "$@"
            [ -n "$COMMAND" ] && HAS_COMMAND=1
            break
        fi
        case $_a in
        --)
            [ -n "$TARGET$DISK_HOST" ] || usage_error "$PFX: IMAGE must come before '--': bcvk $VERB [OPTIONS] IMAGE -- COMMAND..."
            [ $# -gt 0 ] || usage_error "$PFX: nothing follows '--': give the COMMAND to run in the guest, or drop '--'"
            push COMMAND "$@"
            HAS_COMMAND=1
            break
            ;;
        -h | --help) WANT_HELP=1 ;;
        --*)
            _opt=${_a%%=*}
            if in_list "$_opt" "$PODMAN_VALUE_OPTS$RUN_VALUE_OPTS"; then
                option_value "$_a" "$@"
                [ "$_a" = "$_opt" ] && shift
                run_option "$_opt" "$_val"
            elif in_list "$_opt" "$PODMAN_FLAG_OPTS"; then
                [ "$_a" = "$_opt" ] || usage_error "$PFX: $_opt takes no value, not '${_a#*=}' (see bcvk $VERB --help)"
                podman_flag "$_opt"
            elif in_list "$_opt" "$RUN_FLAG_OPTS"; then
                # A flag given a value (--console=true) is bcvk run's to judge.
                [ "$_a" = --persistent ] && PERSISTENT=1
                push BCVK_ARGS "$_a"
            elif upstream_hint "$_opt"; then
                usage_error "$PFX: $REPLY"
            else
                # shellcheck disable=SC2086 # the lists are space-separated words
                did_you_mean "$_opt" $RUN_VALUE_OPTS $RUN_FLAG_OPTS $PODMAN_FLAG_OPTS $PODMAN_VALUE_OPTS --help
                usage_error "$PFX: unknown option $_opt: ${REPLY}see bcvk $VERB --help"
            fi
            ;;
        -?*)
            _flags=${_a#-}
            while [ -n "$_flags" ]; do
                _rest=${_flags#?}
                _f=${_flags%"$_rest"}
                _flags=$_rest
                case $_f in
                h) WANT_HELP=1 ;;
                *)
                    _shorts=$PODMAN_SHORT_OPTS$RUN_SHORT_OPTS
                    case $_shorts in
                    *" $_f="*)
                        _long=${_shorts#*" $_f="}
                        _long=${_long%% *}
                        if in_list "$_long" "$PODMAN_VALUE_OPTS$RUN_VALUE_OPTS"; then
                            # The rest of the cluster, or the next argument, is the value.
                            if [ -n "$_flags" ]; then
                                _val=$_flags
                                _flags=
                            else
                                [ $# -gt 0 ] || usage_error "$PFX: -$_f needs a value (see bcvk $VERB --help)"
                                _val=$1
                                shift
                            fi
                            run_option "$_long" "$_val"
                        elif in_list "$_long" "$PODMAN_FLAG_OPTS"; then
                            podman_flag "$_long"
                        else
                            push BCVK_ARGS "$_long"
                        fi
                        ;;
                    *)
                        if upstream_hint "-$_f"; then
                            usage_error "$PFX: $REPLY"
                        fi
                        usage_error "$PFX: unknown option -$_f in '$_a' (see bcvk $VERB --help)"
                        ;;
                    esac
                    ;;
                esac
            done
            ;;
        *)
            [ -z "$TARGET" ] ||
                usage_error "$PFX: unexpected argument '$_a' after IMAGE '$TARGET': put the guest command after '--'"
            if [ -n "$DISK_HOST" ]; then
                # With --disk-image there is no IMAGE: run-ssh's command starts here.
                [ "$MODE" = run-ssh ] ||
                    usage_error "$PFX: unexpected argument '$_a': --disk-image boots a file, so there is no IMAGE; put the guest command after '--'"
                push COMMAND "$_a" "$@"
                HAS_COMMAND=1
                break
            fi
            TARGET=$_a
            ;;
        esac
    done
    return 0
}

# podman_flag OPTION: one of podman's flags (PODMAN_FLAG_OPTS), by its long spelling.
podman_flag() {
    case $1 in
    --detach) DETACH=1 ;;
    --interactive) INTERACTIVE=1 ;;
    --tty) TTY=1 ;;
    --rm) RM=1 ;;
    esac
}

# run_option OPTION VALUE: one option that takes a value.
run_option() {
    _opt=$1
    _val=$2
    case $_opt in
    --name)
        [ -n "$_val" ] || usage_error "$PFX: --name needs a non-empty NAME"
        NAME=$_val
        ;;
    --label) push LABELS --label "$_val" ;;
    --stop-timeout)
        STOP_TIMEOUT=$_val
        push BCVK_ARGS "$_opt=$_val"
        ;;
    --execute)
        HAS_COMMAND=1
        push BCVK_ARGS "--execute=$_val"
        ;;
    --bind | --ro-bind)
        _src=${_val%%:*}
        [ -n "$_src" ] || usage_error "$PFX: $_opt needs a host directory: $_opt DIR[:NAME|:/guest/path]"
        abspath "$_src"
        _host=$REPLY
        next_mount
        _cpath=$CPATH
        _ro=
        [ "$_opt" = --ro-bind ] && _ro=ro
        case $_val in
        *:*)
            add_volume "$_opt" "$_host" "$_cpath" $_ro
            push BCVK_ARGS "$_opt=$_cpath:${_val#*:}"
            ;;
        *)
            # The guest path is /run/virtiofs-mnt-NAME with NAME the directory's name, as
            # with upstream bcvk.
            _base=${_host##*/}
            [ -n "$_base" ] || usage_error "$PFX: $_opt $_val: no mount name can be derived from '/': use $_opt /:NAME"
            if valid_mount_name "$_base"; then
                add_volume "$_opt" "$_host" "$_cpath" $_ro
                push BCVK_ARGS "$_opt=$_cpath:$_base"
            else
                # bcvk run derives (and sanitises) the name from the directory's name.
                add_volume "$_opt" "$_host" "$_cpath/$_base" $_ro
                push BCVK_ARGS "$_opt=$_cpath/$_base"
            fi
            ;;
        esac
        ;;
    --mount-disk-file)
        _file=${_val%%:*}
        _spec=
        case $_val in *:*) _spec=:${_val#*:} ;; esac
        [ -n "$_file" ] || usage_error "$PFX: --mount-disk-file needs a FILE: --mount-disk-file FILE[:NAME[:FMT]]"
        split_file "$_opt" "$_file"
        next_mount
        add_volume "$_opt" "$DIR" "$CPATH"
        push BCVK_ARGS "$_opt=$CPATH/$BASE$_spec"
        ;;
    --virtio-serial-out)
        case $_val in
        ?*:?*) ;;
        *) usage_error "$PFX: --virtio-serial-out needs NAME:FILE, not '$_val'" ;;
        esac
        split_file "$_opt" "${_val#*:}"
        next_mount
        add_volume "$_opt" "$DIR" "$CPATH"
        push BCVK_ARGS "$_opt=${_val%%:*}:$CPATH/$BASE"
        ;;
    --ssh-key)
        [ -n "$_val" ] || usage_error "$PFX: --ssh-key needs a public key FILE"
        split_file "$_opt" "$_val"
        next_mount
        # Only the key file itself: never its directory (~/.ssh holds private keys).
        add_volume "$_opt" "$DIR/$BASE" "$CPATH/$BASE" ro
        push BCVK_ARGS "$_opt=$CPATH/$BASE"
        ;;
    --systemd-units | --scratch | --cloud-init)
        [ -n "$_val" ] || usage_error "$PFX: $_opt needs a host directory"
        abspath "$_val"
        _host=$REPLY
        next_mount
        if [ "$_opt" = --scratch ]; then
            add_volume "$_opt" "$_host" "$CPATH"
        else
            add_volume "$_opt" "$_host" "$CPATH" ro
        fi
        push BCVK_ARGS "$_opt=$CPATH"
        ;;
    --ignition)
        [ -n "$_val" ] || usage_error "$PFX: --ignition needs a config FILE"
        split_file "$_opt" "$_val"
        next_mount
        # Only the config file, read-only.
        add_volume "$_opt" "$DIR/$BASE" "$CPATH/$BASE" ro
        push BCVK_ARGS "$_opt=$CPATH/$BASE"
        ;;
    --log-dir)
        # Upstream's STREAMS=DIR (the streams pass on to the supervisor), or DIR: both.
        _streams=
        case $_val in
        journal=* | console=* | journal,console=* | console,journal=*)
            _streams=${_val%%=*}=
            _val=${_val#*=}
            ;;
        esac
        [ -n "$_val" ] || usage_error "$PFX: --log-dir needs a host directory"
        mkdir -p -- "$_val" || usage_error "$PFX: --log-dir: cannot create the directory '$_val'"
        abspath "$_val"
        next_mount
        add_volume "$_opt" "$REPLY" "$CPATH"
        push BCVK_ARGS "$_opt=$_streams$CPATH"
        ;;
    --storage)
        [ -n "$_val" ] || usage_error "$PFX: --storage needs the host's podman store directory"
        abspath "$_val"
        case $REPLY in
        *:*) usage_error "$PFX: --storage: the host path '$REPLY' contains ':', which podman -v cannot mount" ;;
        esac
        STORAGE=$REPLY
        ;;
    --disk-image)
        # Only the file; read-only unless --persistent lets the guest write into it (the
        # volume is added once all options are known: see podman_run_args).
        [ -n "$_val" ] || usage_error "$PFX: --disk-image needs a FILE (qcow2 or raw)"
        [ -f "$_val" ] || usage_error "$PFX: --disk-image $_val: no such file on this host"
        split_file "$_opt" "$_val"
        next_mount
        DISK_HOST=$DIR/$BASE
        DISK_CPATH=$CPATH/$BASE
        push BCVK_ARGS "--disk-image=$DISK_CPATH"
        ;;
    --port)
        # HOST:GUEST or PORT (both the same): HOST is published on the host too. A value
        # whose HOST podman could not publish is not: bcvk run refuses it, with its reason.
        _hport=${_val%%:*}
        case $_hport in
        '' | *[!0-9]* | ??????*) ;;
        *) [ "$_hport" -lt 1 ] || [ "$_hport" -gt 65535 ] || push PUBLISH -p "$_hport:$_hport" ;;
        esac
        push BCVK_ARGS "--port=$_val"
        ;;
    *)
        if in_list "$_opt" "$RUN_HOST_FILE_OPTS"; then
            # A host file bcvk run reads: only the file, read-only.
            [ -n "$_val" ] || usage_error "$PFX: $_opt needs a FILE"
            split_file "$_opt" "$_val"
            next_mount
            add_volume "$_opt" "$DIR/$BASE" "$CPATH/$BASE" ro
            push BCVK_ARGS "$_opt=$CPATH/$BASE"
        elif in_list "$_opt" "$RUN_HOST_DIR_OPTS"; then
            [ -n "$_val" ] || usage_error "$PFX: $_opt needs a host directory"
            abspath "$_val"
            next_mount
            add_volume "$_opt" "$REPLY" "$CPATH"
            push BCVK_ARGS "$_opt=$CPATH"
        else
            push BCVK_ARGS "$_opt=$_val"
        fi
        ;;
    esac
}

# podman_run_args: set RUN_ARGS, the arguments of `podman run` for the parsed options
# (without -d/-i/-t/--rm/--name, which the callers add), labelled $KIND_LABEL.
podman_run_args() {
    [ -n "$TARGET$DISK_HOST" ] || usage_error "$PFX: missing IMAGE: bcvk $VERB [OPTIONS] IMAGE, or --disk-image FILE (see --help)"
    _health=
    podman_runs_health_checks && _health=1
    if [ -n "$DISK_HOST" ]; then
        if [ -n "$PERSISTENT" ]; then
            add_volume --disk-image "$DISK_HOST" "$DISK_CPATH"
        else
            add_volume --disk-image "$DISK_HOST" "$DISK_CPATH" ro
        fi
    fi
    if [ -z "$STORAGE" ]; then
        STORAGE=$(podman info --format '{{.Store.GraphRoot}}') ||
            die 125 "'podman info' failed, so the podman store is unknown: check that podman works, or give --storage DIR"
        [ -n "$STORAGE" ] || die 125 "'podman info' reported no store (GraphRoot): give --storage DIR"
    fi
    RUN_ARGS=
    push RUN_ARGS --label "$KIND_LABEL"
    RUN_ARGS="$RUN_ARGS $LABELS"
    if [ -e "$KVM_DEVICE" ]; then
        push RUN_ARGS --device "$KVM_DEVICE"
    else
        warn "$KVM_DEVICE does not exist: the VM falls back to slow software emulation (TCG)"
    fi
    push RUN_ARGS -v "$STORAGE:/run/host-storage:ro"
    # `podman ps` shows (starting) until SSH works, then (healthy). The start period covers
    # bcvk's own --ready-timeout default: the boot's failures are bcvk's to report.
    if [ -n "$_health" ]; then
        push RUN_ARGS --health-cmd "$HEALTH_CMD" --health-interval 10s --health-start-period 600s
    fi
    RUN_ARGS="$RUN_ARGS $VOLUMES $PUBLISH"
    push RUN_ARGS "$IMAGE" run
    [ -n "$TARGET" ] && push RUN_ARGS "$TARGET"
    RUN_ARGS="$RUN_ARGS $BCVK_ARGS"
}

