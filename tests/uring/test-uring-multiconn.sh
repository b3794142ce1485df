#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Four connections (multi-conn) write interleaved 100-byte records at the same time, buffered
# and direct: with direct=true neighbouring records share 512-byte blocks, so the unaligned
# read-modify-write must be serialised across connections or records are lost.
source "$srcdir/functions.sh"
source "$srcdir/uring/uring-functions.sh"

for direct in true false; do
  for ring in per-thread shared none; do
    echo "direct=$direct ring=$ring"
    rm -f "$tmpdir/img" "$tmpdir/ref"
    truncate -s 1M "$tmpdir/img"
    truncate -s 1M "$tmpdir/ref"
    start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" file="$tmpdir/img" direct=$direct ring=$ring
    $io multiconn "$uri" "$tmpdir/ref" 4 3
    $io verify "$uri" "$tmpdir/ref" 1 20
    stop_nbdkit uring
    cmp "$tmpdir/img" "$tmpdir/ref"
  done
done
echo PASS
