#!/bin/bash
# The floor for a disk image in integration/bench: the shortest hand-written QEMU line that boots
# the same disk with the same firmware, accelerator, CPU model, memory and vCPUs as bcvk does,
# and the same readiness (an `ssh root@ true` round trip), command (`true`) and poweroff. Runs
# inside the bcvk image (same QEMU, OVMF, ssh) as PID 1, started by integration/bench:
#
#   podman run -v DISKDIR:/disk:ro -v SEEDDIR:/seed:ro -v .../bench-disk-floor.sh:/f.sh:ro \
#     -e FLOOR_DISK=debian.qcow2 -e FLOOR_FIRMWARE=uefi -e FLOOR_ACCEL=tcg -e FLOOR_CPU=qemu64,-svm \
#     -e FLOOR_MEMORY=4096 -e FLOOR_VCPUS=2 --entrypoint /bin/bash localhost/bcvk:latest /f.sh
#
# The seed (/seed/seed.img, a FAT volume labelled CIDATA holding a key for root and the default
# user, and a fresh instance-id) and its key (/seed/key) are made by the bench beforehand: bcvk
# makes its own inside its run, so that part counts against bcvk only.
# What it does, and nothing else: a copy of OVMF's variable store (UEFI), QEMU with the disk
# behind snapshot=on (QEMU's own throwaway overlay), the seed, user networking with an SSH
# forward and a second forward to guest port 1, virtio-rng, the console to a file; it waits
# until the guest's network answers on that second forward (see bench-floor.sh: QEMU's user
# network holds connections until the guest has an address), then `ssh true` every 100 ms until
# it succeeds (ready), `ssh true` (the command), `ssh systemctl poweroff --no-block`, and waits
# for QEMU. It skips what bcvk adds: the qcow2 check, the partition table read, the lock, its
# overlay file, the seed, QMP, console parsing, the status file.
# Timestamps (ms since this script started) go to /run/floor/timings as key=value lines:
# qemu_exec_ms, network_ms, ready_ms, command_done_ms, qemu_exit_ms.
set -eu

ms() { echo $(($(date +%s%N) / 1000000)); }
T0=$(ms)
R=/run/floor
mkdir -p $R
: >$R/timings
mark() { echo "$1=$(($(ms) - T0))" >>$R/timings; }

: "${FLOOR_DISK:?FLOOR_DISK (a file under /disk) is required}"
case ${FLOOR_ACCEL:-tcg} in
  tcg) ACCEL=tcg,thread=multi ;;
  kvm) ACCEL=kvm ;;
  *) echo "bench-disk-floor: FLOOR_ACCEL must be tcg or kvm" >&2; exit 64 ;;
esac
FW=()
case ${FLOOR_FIRMWARE:-uefi} in
  uefi)
    cp /usr/share/OVMF/OVMF_VARS_4M.fd $R/vars.fd
    FW=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
      -drive if=pflash,format=raw,unit=1,file=$R/vars.fd) ;;
  bios) ;;
  *) echo "bench-disk-floor: FLOOR_FIRMWARE must be uefi or bios" >&2; exit 64 ;;
esac
case $FLOOR_DISK in *.qcow2) FMT=qcow2 ;; *) FMT=raw ;; esac
READY_TIMEOUT_MS=$((${FLOOR_READY_TIMEOUT:-900} * 1000))

mark qemu_exec_ms
qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
  -machine q35,sata=off,smbus=off -accel "$ACCEL" -cpu "${FLOOR_CPU:-qemu64,-svm}" -smp "${FLOOR_VCPUS:-2}" \
  -m "${FLOOR_MEMORY:-4096}" "${FW[@]}" \
  -drive "if=none,id=disk0,file=/disk/$FLOOR_DISK,format=$FMT,snapshot=on" \
  -device virtio-blk-pci,drive=disk0,bootindex=0 \
  -drive if=none,id=seed0,file=/seed/seed.img,format=raw,readonly=on \
  -device virtio-blk-pci,drive=seed0 \
  -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2221-:1 \
  -device virtio-net-pci,netdev=net0,romfile= \
  -device virtio-rng-pci \
  -serial file:$R/console.log </dev/null &
QEMU=$!

guest() {
  ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=10 -i /seed/key -p 2222 -T root@127.0.0.1 -- "$@" </dev/null
}
alive() { kill -0 $QEMU 2>/dev/null || { echo "bench-disk-floor: QEMU exited before ready" >&2; exit 70; }; }
late() { [ $(($(ms) - T0)) -lt $READY_TIMEOUT_MS ] || { echo "bench-disk-floor: not ready in time" >&2; kill $QEMU; exit 75; }; }

# The guest's network answers when port 1's forward is closed at once (the guest's reset)
# rather than held; read's status: 0 data, 1 end of file, > 128 timeout (held). One knock in
# the background every 0.1 s, whether the held ones before it have ended or not.
net_knock() {
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/2221 || exit 1; read -r -t 0.3 -n 1 <&3; [ $? -le 128 ]' \
    2>/dev/null && : >$R/net-up
}
until [ -e $R/net-up ]; do
  alive; late; net_knock & sleep 0.1
done
mark network_ms
until guest true 2>/dev/null; do
  alive; late; sleep 0.1
done
mark ready_ms
guest true
mark command_done_ms
guest systemctl poweroff --no-block || true
wait $QEMU || true
mark qemu_exit_ms
