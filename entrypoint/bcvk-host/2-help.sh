# ---------------------------------------------------------------------------------------
# Help

usage_main() {
    cat <<EOF
bcvk: boot bootable container images as VMs, throwaway or persistent, through podman

Usage:
  bcvk ephemeral run [OPTIONS] IMAGE [-- COMMAND...]   Boot IMAGE as a VM in a container
  bcvk ephemeral run-ssh [OPTIONS] IMAGE [COMMAND...]  Boot, ssh in, then stop the VM
  bcvk ephemeral ssh NAME [COMMAND...]                 ssh into a running VM
  bcvk ephemeral ps [--json]                           List the bcvk VMs
  bcvk ephemeral rm-all [-f]                           Remove all bcvk VMs
  bcvk ephemeral status NAME [--json] [--wait]         Show a VM's state
  bcvk vm run [--name NAME] [OPTIONS] IMAGE            Boot IMAGE as a persistent VM
  bcvk vm ssh|stop|start|rm NAME, bcvk vm list         Manage persistent VMs
  bcvk to-disk [OPTIONS] IMAGE TARGET_DISK             Install IMAGE to a disk image file
  bcvk ssh NAME [COMMAND...]                           ssh into a VM, ephemeral or persistent
  bcvk status NAME [--json] [--wait]                   Show a VM's state, ephemeral or persistent
  bcvk --version | --help

Run 'bcvk ephemeral SUBCOMMAND --help' for a subcommand's options, and
'bcvk vm --help' for persistent VMs (their changes survive stop and start).

Each VM is a podman container of the bcvk image ($IMAGE; set BCVK_IMAGE to use another),
labelled $LABEL, which reads IMAGE from the host's podman store (read-only).
This command needs only a POSIX shell and podman.
EOF
}

usage_ephemeral() {
    cat <<EOF
Usage: bcvk ephemeral SUBCOMMAND [OPTIONS]

Subcommands:
  run [OPTIONS] IMAGE [-- COMMAND...]   Boot IMAGE as a VM in a podman container
  run-ssh [OPTIONS] IMAGE [COMMAND...]  Boot IMAGE, ssh in (or run COMMAND), then stop the VM
  ssh NAME [COMMAND...]                 Open a shell, or run COMMAND, in a running VM
  ps [--json]                           List the bcvk VMs (containers labelled $LABEL)
  rm-all [-f|--force]                   Remove all bcvk VMs (asks first unless -f)
  status NAME [--json] [--wait]         Show a VM's state (--wait: until it is ready)

Run 'bcvk ephemeral SUBCOMMAND --help' for details.
EOF
}

usage_run_host() {
    cat <<EOF
Usage: bcvk ephemeral run [PODMAN OPTIONS] [OPTIONS] IMAGE [-- COMMAND...]

Boot IMAGE (from the host's podman store) as a VM inside a podman container of
$IMAGE. The container is labelled $LABEL; list it with 'bcvk ephemeral ps',
reach it with 'bcvk ephemeral ssh NAME'.

Podman options (passed to podman run):
  -d, --detach        Run in the background and print the container ID
  -i, --interactive   Keep stdin open
  -t, --tty           Allocate a terminal (with --console: the guest console)
      --rm            Remove the container when the VM stops
      --name NAME     Name the container (default: podman picks one)
      --label K=V     Add a container label (repeatable)
Short options combine: -it, -dit. Without -d, and without COMMAND or --execute,
-it is added when stdin is a terminal.

Host paths: these options take paths on the host, which are mounted into the
container (under $HOSTDIR/N) and handed to bcvk run there. Relative paths are
relative to the current directory.
  --bind DIR[:NAME|:/guest/path]   Shared read-write; without NAME, the directory's
                                   name is the NAME (guest: /run/virtiofs-mnt-NAME)
  --ro-bind DIR[:NAME|:/guest/path]  Likewise, read-only
  --mount-disk-file FILE[:NAME[:FMT]]  FILE's directory is mounted; FILE is created
                                   if missing
  --systemd-units DIR              Mounted read-only
  --virtio-serial-out NAME:FILE    FILE's directory is mounted
  --log-dir [STREAMS=]DIR          Created if missing and mounted: journal.json,
                                   journal-initrd.json, console.txt land in it
  --ssh-key FILE                   The public key file is mounted read-only
  --scratch DIR                    The writable layer lives on DIR
  --cloud-init DIR                 A NoCloud directory, mounted read-only
  --ignition FILE                  The Ignition config file is mounted read-only
  --storage DIR                    The podman store to read (default: the one
                                   'podman info' reports), mounted read-only at
                                   /run/host-storage
  --port HOST:GUEST | PORT         Also publishes HOST on the host (podman -p HOST:HOST),
                                   so the guest port GUEST is reachable at localhost:HOST

The container runs with podman's default capabilities (no --privileged) and
--device $KVM_DEVICE (without $KVM_DEVICE the VM runs under slow software emulation). Both '--opt value' and '--opt=value'
work. Other options go to bcvk run in the container:

EOF
}

usage_run_ssh() {
    cat <<EOF
Usage: bcvk ephemeral run-ssh [OPTIONS] IMAGE [COMMAND...]

Boot IMAGE as a VM in the background (a container named bcvk-RANDOM unless --name,
removed when it stops), wait until it is ready, open an ssh session (or run COMMAND)
in it, then stop it - also when ssh fails or on Ctrl-C. The exit code is the ssh
session's (the COMMAND's); 255 when the VM never became ready.

OPTIONS are those of 'bcvk ephemeral run' (see 'bcvk ephemeral run --help'), given
before IMAGE; everything after IMAGE is the COMMAND.
EOF
}

usage_ssh() {
    cat <<EOF
Usage: bcvk ephemeral ssh NAME [COMMAND...]

Open a login shell, or run COMMAND, in the running bcvk VM NAME (see 'bcvk ephemeral
ps'), through 'podman exec NAME bcvk ssh'. The exit code is COMMAND's (255 when ssh
could not run it, or NAME is not a running bcvk VM). With stdin a terminal and no
COMMAND the session gets a terminal; with stdin not a terminal, stdin is passed to
COMMAND (so piping works).
EOF
}

usage_ps() {
    cat <<EOF
Usage: bcvk ephemeral ps [--json]

List the bcvk VMs: the podman containers labelled $LABEL, running or not, with
their NAME, target IMAGE, STATE and UPTIME. With --json, print a JSON array of
objects {"name", "id", "image", "state", "status"}.
EOF
}

usage_rm_all() {
    cat <<EOF
Usage: bcvk ephemeral rm-all [-f|--force]

Remove (podman rm -f) all bcvk VMs: the containers labelled $LABEL, running or not.
Other containers are never touched. Asks for confirmation unless -f; without a
terminal to ask on, -f is required.
EOF
}

usage_status() {
    cat <<EOF
Usage: bcvk ephemeral status NAME [--json] [--wait]

Show the state of the bcvk VM NAME (podman exec NAME bcvk status). --wait waits until
it is ready (or has failed). Exit code 0 when ready.
EOF
}

usage_vm() {
    cat <<EOF
Usage: bcvk vm VERB [OPTIONS]

Persistent VMs: each VM is a podman container NAME of $IMAGE, labelled
$VM_KEY=NAME, running 'bcvk run IMAGE --persistent', and a named volume
${VM_VOLUME_PREFIX}NAME (labelled the same) mounted at /cache that keeps the VM's
state: what the guest changes survives stop and start, until 'bcvk vm rm'.
The VM keeps running in the background after the command returns.

Verbs:                                  podman-bootc   upstream bcvk
  run [--name NAME] [OPTIONS] IMAGE     run            libvirt run
      Boot IMAGE as a new VM; returns once it is ready for ssh
  ssh NAME [COMMAND...]                 ssh            libvirt ssh
      Open a shell, or run COMMAND (its exit code is kept)
  list [--json]                         list           libvirt list
      NAME, IMAGE, STATE and the SIZE of each VM's state
  stop NAME                             stop           libvirt stop
      Power the guest off (podman stop, with time to do so)
  start NAME                            -              libvirt start
      Boot a stopped VM again from its state; returns once ready
  rm [-f] NAME                          rm             libvirt rm
      Remove the container and its state volume (-f: also when running)

Run 'bcvk vm VERB --help' for details. 'bcvk status NAME [--json] [--wait]' and
'bcvk ssh NAME' work for these VMs too. Ephemeral VMs ('bcvk ephemeral') are
separate: 'bcvk ephemeral ps' and 'rm-all' never list or remove these (their
containers get ${LABEL%=*}=0 over the image's $LABEL, and any
container with a $VM_KEY label is skipped).

Exit codes: 0 done; 64 bad usage; 1 no such VM, or not in a state the verb
accepts; run and start: the container's exit code when the VM stopped before it
was ready (e.g. 64 a state made from another image ID, 73 a state in use by
another container), 255 when it still runs but is not ready; ssh: COMMAND's
code, 255 when ssh could not run it; other podman failures: podman's exit code.
EOF
}

usage_vm_run() {
    cat <<EOF
Usage: bcvk vm run [--name NAME] [OPTIONS] IMAGE

Boot IMAGE (from the host's podman store) as a persistent VM named NAME, in the
background, and return once the VM answers ssh (printing NAME). Like
'podman-bootc run IMAGE' and upstream 'bcvk libvirt run IMAGE'.

  --name NAME   The VM's name (default: IMAGE's last path component without
                tag or digest: quay.io/fedora/fedora-bootc:42 -> fedora-bootc)
  --label K=V   Add a container label (repeatable)
  --reset       Start the VM's state over (a state kept from an earlier VM of
                that name is reused; one made from another image ID is refused)
  --stop-timeout SECS  Time the guest gets to power off (default 50 here);
                the container gets SECS+10 s from podman stop

Creates the volume ${VM_VOLUME_PREFIX}NAME (or reuses it when it is left from a VM
of the same name whose container is gone) and runs, with no added privileges:
  podman run -d --name NAME --stop-timeout SECS+10 --label $VM_KEY=NAME
    --label ${LABEL%=*}=0 --device $KVM_DEVICE -v STORE:/run/host-storage:ro -v ${VM_VOLUME_PREFIX}NAME:/cache
    $IMAGE run IMAGE --persistent --stop-timeout=SECS [OPTIONS]
then waits for 'podman exec NAME bcvk status --wait'. When the VM stops before it is
ready, its container is removed (and the volume, when this run created it), and
the exit code is the container's.

The host-path and port options are those of 'bcvk ephemeral run' (see its --help):
--bind, --ro-bind, --mount-disk-file, --systemd-units, --virtio-serial-out,
--ssh-key, --storage, --port. -d is implied. Not accepted: --rm, -i, -t,
-- COMMAND, --execute (run commands with 'bcvk vm ssh NAME COMMAND'). Other
options go to bcvk run in the container:

EOF
}

usage_vm_ssh() {
    cat <<EOF
Usage: bcvk vm ssh NAME [COMMAND...]

Open a login shell, or run COMMAND, in the running persistent VM NAME, through
'podman exec NAME bcvk ssh'. The exit code is COMMAND's (255 when ssh could not run
it, or NAME is not a running VM). Like 'podman-bootc ssh' and upstream
'bcvk libvirt ssh'. Stdin is handled as by 'bcvk ephemeral ssh'.
EOF
}

usage_vm_list() {
    cat <<EOF
Usage: bcvk vm list [--json]

List the persistent VMs: the containers labelled $VM_KEY, running or not, with their
NAME, target IMAGE, STATE and the SIZE their state volume takes on disk (measured
by du in a throwaway container of $IMAGE), and state volumes whose container is
gone (STATE no-container). Like 'podman-bootc list' and upstream
'bcvk libvirt list'. With --json, a JSON array of objects {"name", "id", "image",
"state", "status", "volume", "size"} (size in bytes; null when unknown).
EOF
}

usage_vm_stop() {
    cat <<EOF
Usage: bcvk vm stop NAME

Power the VM NAME off gracefully: 'podman stop -t T NAME', with T the container's
stop timeout (bcvk's --stop-timeout + 10 s, see 'bcvk vm run --help'), so the guest
gets its time to power off before QEMU is stopped. The state is kept; boot the VM
again with 'bcvk vm start NAME'. Like 'podman-bootc stop' and upstream
'bcvk libvirt stop'.
EOF
}

usage_vm_start() {
    cat <<EOF
Usage: bcvk vm start NAME

Boot the stopped VM NAME again from its kept state ('podman start NAME') and wait
until it answers ssh (printing NAME). Like upstream 'bcvk libvirt start'
(podman-bootc has no start verb).
EOF
}

usage_vm_rm() {
    cat <<EOF
Usage: bcvk vm rm [-f|--force] NAME

Remove the VM NAME: its container, then its state volume ${VM_VOLUME_PREFIX}NAME
(everything the guest wrote is lost). A running VM is refused unless -f (which
removes it running). Like 'podman-bootc rm [-f]' and upstream 'bcvk libvirt rm'.
EOF
}

