#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Many in-flight aio requests over several connections on shared sectors, aligned and
# unaligned: no lost read-modify-write update, no torn sector; full verification after.
source "$srcdir/functions.sh"
source "$srcdir/filter/filter-functions.sh"
conns=4 inflight=64            # 256 requests in flight at once

for ss in 512 4096; do
  size=$((ss == 512 ? 1024 * 1024 : 2 * 1024 * 1024))
  # File below: writes only, then the backing file is checked with the XTS oracle.
  disk="$tmpdir/disk-$ss.img"
  truncate -s $size "$disk"
  start_nbdkit "file-$ss" --filter="$NBDCRYPT_FILTER" file "$disk" \
    key-file="$key" sector-size=$ss
  echo "== file plugin, sector-size $ss"
  "$PYTHON" "$here/test-filter-concurrent.py" "$uri" $ss $conns $inflight "$disk" "$key"
  stop_nbdkit "file-$ss"

  # Memory below (its allocator is atomic per request): reads of bytes nobody writes run
  # alongside the read-modify-writes of their sectors.
  start_nbdkit "mem-$ss" --filter="$NBDCRYPT_FILTER" memory $size \
    key-file="$key" sector-size=$ss
  echo "== memory plugin, sector-size $ss, concurrent reads"
  "$PYTHON" "$here/test-filter-concurrent.py" "$uri" $ss $conns $inflight
  stop_nbdkit "mem-$ss"

  # Writes below slowed down (delay filter under ours): between the read and the write of a
  # sub-sector read-modify-write there is now a millisecond, so a whole-sector write that
  # did not wait for it would land inside and be lost (phase C).
  start_nbdkit "delay-$ss" --filter="$NBDCRYPT_FILTER" --filter=delay memory $size \
    delay-write=1ms key-file="$key" sector-size=$ss
  echo "== memory plugin, writes below delayed 1 ms, sector-size $ss, phase C"
  PHASES=c "$PYTHON" "$here/test-filter-concurrent.py" "$uri" $ss $conns $inflight
  stop_nbdkit "delay-$ss"
done
echo "$0: OK"
