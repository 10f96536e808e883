#!/bin/sh
# The floor for integration/bench: the shortest hand-written sequence that boots a bootable image
# the way bcvk does, so that bcvk's time can be compared with what the same work costs without it.
# Runs inside the bcvk image (same QEMU, virtiofsd, ssh) as PID 1, started by integration/bench:
#
#   podman run --privileged -v STORE:/run/host-storage:ro -v .../bench-floor.sh:/bench-floor.sh:ro \
#     -e FLOOR_LOWERDIRS=... -e FLOOR_MEMORY=4096 -e FLOOR_VCPUS=2 -e FLOOR_ACCEL=tcg \
#     -e FLOOR_CPU=qemu64,-svm --entrypoint /bin/sh localhost/bcvk:latest /bench-floor.sh
#
# FLOOR_LOWERDIRS is the image's layer dirs, top first, colon-separated, as paths inside the
# container (the bench computes them on the host from `podman image inspect`: the same layer
# diffs bcvk finds itself in the store). What it does, and nothing else:
#   tmpfs + overlay root; virtiofsd on it (bcvk's options); QEMU with bcvk's machine, memory,
#   accelerator, CPU, devices and kernel command line; an ed25519 key from ssh-keygen passed as
#   the ssh.authorized_keys.root SMBIOS credential; wait until the guest's network answers
#   (below), then `ssh true` polled every 100 ms until it succeeds (ready); `ssh true` (the
#   command); `ssh systemctl poweroff --no-block`; wait for QEMU and virtiofsd to exit.
# Waiting for the guest's network first is the best hand-written method, not an extra: QEMU's
# user network accepts a forwarded connection at once and, while the guest has no address yet,
# retransmits its SYN with TCP back-off (3 s, 6 s, ...), so an `ssh true` started before that
# reaches sshd seconds late or times out after ConnectTimeout (10 s), as the first floor's
# plain loop did (FLOOR_NET_WAIT=0 keeps that loop, to measure it). A second forward leads to
# guest port 1, where nothing listens: the guest's reset there (a connection closed at once
# instead of held) says its network answers. bash's /dev/tcp knocks, one every 0.1 s, each
# held at most 0.3 s.
# It skips what bcvk adds: store lookup, kernel search beyond one glob, QMP, console parsing,
# status file, option checks, cleanup (the container's end unmounts everything).
# Timestamps (ms since this script started, like bcvk's status.json timings) go to
# /run/floor/timings as key=value lines: qemu_exec_ms, network_ms, ready_ms, command_done_ms,
# qemu_exit_ms. FLOOR_KARGS: extra kernel arguments (the bench passes bcvk's --karg ones).
set -eu

ms() { echo $(($(date +%s%N) / 1000000)); }
T0=$(ms)
R=/run/floor
mkdir -p $R
: >$R/timings
mark() { echo "$1=$(($(ms) - T0))" >>$R/timings; }

: "${FLOOR_LOWERDIRS:?FLOOR_LOWERDIRS (the image layer dirs, top first) is required}"
MEMORY=${FLOOR_MEMORY:-4096}
VCPUS=${FLOOR_VCPUS:-2}
CPU=${FLOOR_CPU:-qemu64,-svm}
CACHE=${FLOOR_VIRTIOFS_CACHE:-always}
case ${FLOOR_ACCEL:-tcg} in
  tcg) ACCEL=tcg,thread=multi ;;
  kvm) ACCEL=kvm ;;
  *) echo "bench-floor: FLOOR_ACCEL must be tcg or kvm" >&2; exit 64 ;;
esac
READY_TIMEOUT_MS=$((${FLOOR_READY_TIMEOUT:-600} * 1000))

# The root file system: the image's layers under a throwaway tmpfs upper, as bcvk mounts it.
mkdir -p $R/scratch $R/root
mount -t tmpfs -o mode=0700 floor-scratch $R/scratch
mkdir $R/scratch/upper $R/scratch/work
# mount(2) with the whole option string, as bcvk does: util-linux's fsconfig(2) path refuses the
# colon-separated lowerdir here.
LIBMOUNT_FORCE_MOUNT2=always mount -t overlay -o "nodev,lowerdir=$FLOOR_LOWERDIRS,upperdir=$R/scratch/upper,workdir=$R/scratch/work" \
  floor-root $R/root

# The image's one kernel, and its initramfs unless the kernel can mount the root itself.
set -- $R/root/usr/lib/modules/*/vmlinuz
if [ $# != 1 ] || [ ! -f "$1" ]; then
  echo "bench-floor: want exactly one kernel, found: $*" >&2
  exit 66
fi
KERNEL=$1
# FLOOR_INITRD: yes, no, or auto as bcvk's --initrd auto decides: skip the initramfs when the
# kernel has virtiofs, fuse and virtio_pci built in, and start the image's init directly.
INITRD_ARGS="-initrd ${KERNEL%/vmlinuz}/initramfs.img"
INIT_KARG=
builtin=${KERNEL%/vmlinuz}/modules.builtin
case ${FLOOR_INITRD:-auto} in
  yes) ;;
  no) INITRD_ARGS= INIT_KARG=' init=/sbin/init' ;;
  auto)
    if grep -q 'fs/fuse/virtiofs.ko$' "$builtin" 2>/dev/null && grep -q 'fs/fuse/fuse.ko$' "$builtin" &&
      grep -q 'virtio/virtio_pci.ko$' "$builtin"; then
      INITRD_ARGS= INIT_KARG=' init=/sbin/init'
    fi
    ;;
  *) echo "bench-floor: FLOOR_INITRD must be yes, no or auto" >&2; exit 64 ;;
esac

# virtiofsd raises its fd limit to this, as bcvk asks (dash's ulimit has -H).
# shellcheck disable=SC3045
NOFILE=$(ulimit -Hn)
ssh-keygen -q -t ed25519 -N '' -C floor -f $R/key
KEYCRED=$(base64 -w0 $R/key.pub)

/usr/libexec/virtiofsd --socket-path=$R/vfs.sock --shared-dir=$R/root --cache="$CACHE" \
  --sandbox=namespace --xattr --rlimit-nofile="$NOFILE" --log-level=warn &
VFS=$!
while [ ! -S $R/vfs.sock ]; do sleep 0.005; done

mark qemu_exec_ms
qemu-system-x86_64 -nodefaults -no-user-config -no-reboot -display none \
  -machine q35,memory-backend=mem,sata=off,smbus=off -object memory-backend-memfd,id=mem,size="$MEMORY"M,share=on \
  -accel $ACCEL -cpu "$CPU" -smp "$VCPUS" -m "$MEMORY"M \
  -kernel "$KERNEL" $INITRD_ARGS \
  -append "root=rootfs rootfstype=virtiofs rw console=ttyS0 panic=-1 selinux=0$INIT_KARG${FLOOR_KARGS:+ $FLOOR_KARGS}" \
  -chardev socket,id=vfs0,path=$R/vfs.sock -device vhost-user-fs-pci,chardev=vfs0,tag=rootfs,queue-size=1024 \
  -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2221-:1 -device virtio-net-pci,netdev=net0,romfile= \
  -smbios "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root=$KEYCRED" \
  -chardev stdio,id=console,signal=off -serial chardev:console \
  -device virtio-rng-pci </dev/null &
QEMU=$!

guest() {
  ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=10 -i $R/key -p 2222 -T root@127.0.0.1 -- "$@"
}

alive() {
  kill -0 $QEMU 2>/dev/null || { echo "bench-floor: QEMU died before the guest was ready" >&2; exit 70; }
  [ $(($(ms) - T0)) -lt $READY_TIMEOUT_MS ] || { echo "bench-floor: guest not ready in time" >&2; kill $QEMU; exit 75; }
}
# One knock, in the background: read's status 0 (data) or 1 (end of file: the guest reset it)
# leaves $R/net-up; > 128 is a timeout (slirp held it: no guest network yet). A knock starts
# every 0.1 s whether the held ones before it have ended or not (as bcvk's probe does).
net_knock() {
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/2221 || exit 1; read -r -t 0.3 -n 1 <&3; [ $? -le 128 ]' \
    2>/dev/null && : >$R/net-up
}
if [ "${FLOOR_NET_WAIT:-1}" = 1 ]; then
  until [ -e $R/net-up ]; do
    alive
    net_knock &
    sleep 0.1
  done
  mark network_ms
fi
until guest true </dev/null >/dev/null 2>&1; do
  alive
  sleep 0.1
done
mark ready_ms
rc=0
guest true </dev/null || rc=$?
mark command_done_ms
guest systemctl poweroff --no-block </dev/null || true
qrc=0
wait $QEMU || qrc=$?
mark qemu_exit_ms
wait $VFS || true
[ $qrc = 0 ] || { echo "bench-floor: QEMU exited with $qrc" >&2; exit 70; }
exit $rc
