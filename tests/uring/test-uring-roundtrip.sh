#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Data written through the uring plugin reads back identically through nbdkit's file plugin,
# and the reverse; buffered and direct, aligned and unaligned image sizes, odd offsets and
# lengths (direct-I/O bounce and read-modify-write paths), large split requests. The raw
# image is also compared byte for byte with the reference.
source "$srcdir/functions.sh"
source "$srcdir/uring/uring-functions.sh"

# size (24 MiB, or 24 MiB + 1034: a partial last block), direct, ring
for combo in "25165824 false per-thread" "25165824 true per-thread" "25166858 true per-thread" \
             "25166858 false shared" "25165824 true shared"; do
  read -r size direct ring <<<"$combo"
  img=$tmpdir/img ref=$tmpdir/ref
  rm -f "$img" "$ref"
  truncate -s $size "$img"
  truncate -s $size "$ref"
  seed=$RANDOM
  echo "size=$size direct=$direct ring=$ring seed=$seed"

  # uring writes, file plugin and the raw image agree.
  start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" file="$img" direct=$direct ring=$ring
  $io write "$uri" "$ref" $seed 25
  $io verify "$uri" "$ref" $((seed + 1)) 20
  stop_nbdkit uring
  cmp "$img" "$ref"
  start_nbdkit file file file="$img"
  $io verify "$uri" "$ref" $((seed + 2)) 20
  # file plugin writes, uring reads.
  $io write "$uri" "$ref" $((seed + 3)) 25
  stop_nbdkit file
  cmp "$img" "$ref"
  start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" file="$img" direct=$direct ring=$ring
  $io verify "$uri" "$ref" $((seed + 4)) 20
  stop_nbdkit uring
done
echo PASS
