#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Writes wait only for writes that share a sector: while one client's read-modify-write is
# slow (the plugin below, slow-sector-plugin.sh, takes seconds to return the read of its last
# sector), another client's aligned writes elsewhere go ahead, while writes and zeroes to the
# sectors being read-modify-written wait and are not lost (see the .py).
source "$srcdir/functions.sh"
source "$srcdir/filter/filter-functions.sh"

for ss in 4096 512; do
  disk="$tmpdir/disk-$ss.img"
  head -c $((1024 * 1024)) /dev/urandom >"$disk"       # old content: noise, not zeros
  # A writes [10 S + 100, 12 S + 100): its read of sector 12 comes back 3 s after it was taken.
  SLOW_DISK="$disk" SLOW_OFFSET=$((12 * ss)) SLOW_SECONDS=3 \
    start_nbdkit "ranges-$ss" --filter="$NBDCRYPT_FILTER" sh "$here/slow-sector-plugin.sh" \
    key-file="$key" sector-size=$ss
  echo "== sector-size $ss, the read of sector 12 returns 3 s late"
  "$PYTHON" "$here/test-filter-write-ranges.py" "$uri" "$disk" "$key" $ss
  stop_nbdkit "ranges-$ss"
done
echo "$0: OK"
