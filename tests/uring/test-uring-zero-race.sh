#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Changes to different bytes of one block, in flight together, all land: an unaligned write
# beside a write-zeroes, a trim or another unaligned write. With direct=true the unaligned
# write is a read-modify-write of the whole block, so every other change to that block
# (zero and trim by fallocate included) must be ordered against it. Buffered and direct,
# with and without a ring.
source "$srcdir/functions.sh"
source "$srcdir/uring/uring-functions.sh"

for direct in true false; do
  for ring in per-thread none; do
    echo "direct=$direct ring=$ring"
    rm -f "$tmpdir/img" "$tmpdir/ref"
    truncate -s 8M "$tmpdir/img"
    truncate -s 8M "$tmpdir/ref"
    start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" file="$tmpdir/img" direct=$direct ring=$ring
    $io mixrace "$uri" "$tmpdir/ref" 1 600
    $io verify "$uri" "$tmpdir/ref" 2 20
    stop_nbdkit uring
    cmp "$tmpdir/img" "$tmpdir/ref"
  done
done
echo PASS
