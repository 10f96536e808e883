#!/bin/sh
# List every file of the root, one line each:
# path|owner|mode|type|size|links|mtime|device|target|md5 (size only for non-directories:
# a directory's is its file system's way of counting entries; md5 only for regular files),
# then every file capability. Link counts are listed for directories too: overlayfs gives a
# merged directory 1 and any other its own, so an opaque directory shows 1 where it is
# wrongly merged. Run in the container view of an image and in the guest: the listings must
# agree.
# /proc /sys /dev /run /tmp are the runtime's, not the image's.
set -eu
out=$(mktemp -d)
prune='( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp ) -prune'
# shellcheck disable=SC2086
find / -xdev $prune -o -exec stat -c '%n|%u:%g|%a|%F|%s|%h|%Y|%t,%T|%N' {} + > "$out/meta"
# shellcheck disable=SC2086
find / -xdev $prune -o -type f -exec md5sum {} + > "$out/sums"
awk -F'|' '
  NR == FNR { sum[substr($0, 35)] = substr($0, 1, 32); next }
  {
    if ($4 == "directory") { $5 = "-" }
    print $0 "|" ($4 ~ /regular/ ? sum[$1] : "-")
  }' OFS='|' "$out/sums" "$out/meta" | LC_ALL=C sort
echo "--- capabilities"
getcap -r / 2>/dev/null | grep -vE '^/(proc|sys|dev|run|tmp)/' | LC_ALL=C sort || true
rm -rf "$out"
