usage_to_disk() {
    cat <<EOF
Usage: bcvk to-disk [OPTIONS] SOURCE_IMAGE TARGET_DISK

Install SOURCE_IMAGE (a bootc image in the host's podman store) to the disk image file
TARGET_DISK: a podman container of the bcvk image boots the image as a VM, attaches the
file, and runs the image's own 'bootc install to-disk' onto it. TARGET_DISK's directory is
mounted into the container; the store is mounted read-only. OPTIONS are those of the bcvk
image's 'to-disk' (below).
EOF
}

# cmd_to_disk ARGS...: podman run IMAGE to-disk ARGS, TARGET_DISK's directory mounted.
cmd_to_disk() {
    _args= _pos=0 _tgt=
    while [ $# -gt 0 ]; do
        _a=$1
        shift
        case $_a in
        -h | --help)
            usage_to_disk
            printf '\n'
            podman run --rm "$IMAGE" to-disk --help 2>/dev/null || true
            exit 0
            ;;
        --*=*) push _args "$_a" ;;
        --*)
            if in_list "$_a" "$HOST_VALUE_OPTS_to_disk"; then
                [ $# -gt 0 ] || usage_error "to-disk: $_a needs a value (see bcvk to-disk --help)"
                push _args "$_a" "$1"
                shift
            else
                push _args "$_a"
            fi
            ;;
        -?*) push _args "$_a" ;;
        *)
            case $_pos in
            0) push _args "$_a" ;;
            1) _tgt=$_a ;;
            *) usage_error "to-disk: one SOURCE_IMAGE and one TARGET_DISK, not also '$_a' (see bcvk to-disk --help)" ;;
            esac
            _pos=$((_pos + 1))
            ;;
        esac
    done
    [ -n "$_tgt" ] || usage_error "to-disk: missing SOURCE_IMAGE or TARGET_DISK: bcvk to-disk [OPTIONS] SOURCE_IMAGE TARGET_DISK"
    need_podman
    split_file to-disk "$_tgt"
    [ -d "$DIR" ] || usage_error "to-disk: the target's directory $DIR does not exist: create it first"
    STORAGE=$(podman info --format '{{.Store.GraphRoot}}') ||
        die 125 "'podman info' failed, so the podman store is unknown: check that podman works"
    VOLUMES=
    add_volume to-disk "$DIR" "$HOSTDIR/out"
    push _args "$HOSTDIR/out/$BASE"
    _run=
    push _run --rm
    if [ -e "$KVM_DEVICE" ]; then
        push _run --device "$KVM_DEVICE"
    else
        warn "$KVM_DEVICE does not exist: the install runs under slow software emulation (TCG)"
    fi
    push _run -v "$STORAGE:/run/host-storage:ro"
    _run="$_run $VOLUMES"
    push _run "$IMAGE" to-disk
    eval "set -- $_run $_args"
    exec podman run "$@"
}

cmd_version() {
    printf 'bcvk host command %s\n' "$BCVK_HOST_VERSION"
    need_podman
    _v=$(podman run --rm "$IMAGE" --version 2>/dev/null) ||
        die 1 "could not run $IMAGE --version: build or pull the image, or set BCVK_IMAGE"
    printf '%s: %s\n' "$IMAGE" "$_v"
}

cmd_ephemeral() {
    case ${1-} in
    '')
        usage_ephemeral >&2
        exit "$EX_USAGE"
        ;;
    -h | --help | help)
        usage_ephemeral
        exit 0
        ;;
    esac
    _sub=$1
    shift
    case $_sub in
    run) cmd_run "$@" ;;
    run-ssh) cmd_run_ssh "$@" ;;
    ssh) cmd_ssh ephemeral "$@" ;;
    ps | list) cmd_ps "$@" ;;
    rm-all) cmd_rm_all "$@" ;;
    status) cmd_status ephemeral_status "$@" ;;
    *)
        # shellcheck disable=SC2086 # the list is space-separated words
        did_you_mean "$_sub" $HOST_COMMANDS_ephemeral
        _hint=$REPLY
        # shellcheck disable=SC2086
        or_list $HOST_COMMANDS_ephemeral
        usage_error "unknown subcommand 'ephemeral $_sub': ${_hint}use $REPLY (see bcvk ephemeral --help)"
        ;;
    esac
}

main() {
    case ${1-} in
    '')
        usage_main >&2
        exit "$EX_USAGE"
        ;;
    -h | --help | help)
        usage_main
        exit 0
        ;;
    -V | --version | version) cmd_version ;;
    ephemeral)
        shift
        cmd_ephemeral "$@"
        ;;
    vm)
        shift
        cmd_vm "$@"
        ;;
    to-disk)
        shift
        cmd_to_disk "$@"
        ;;
    ssh)
        shift
        cmd_ssh ephemeral "$@"
        ;;
    status)
        shift
        cmd_status status "$@"
        ;;
    -*)
        did_you_mean "$1" --help --version
        usage_error "unknown option '$1': ${REPLY}see bcvk --help"
        ;;
    *)
        # shellcheck disable=SC2086 # the list is space-separated words
        did_you_mean "$1" $HOST_COMMANDS help version
        usage_error "unknown command '$1': ${REPLY}this bcvk supports 'ephemeral', 'vm' and 'to-disk' (see bcvk --help)"
        ;;
    esac
}

main "$@"
