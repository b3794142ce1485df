#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Readahead of sequential direct reads (plugin/uring/uring-readahead.c): writes, zeroes and trims
# just ahead of a sequential reader, from another connection and from its own, are never
# shadowed by chunks prefetched before them; a reader with requests in flight races a writer;
# the image ends up as the reference says. nbdkit's debug log must show that reads were
# really served from prefetched chunks and that writes discarded some.
source "$srcdir/functions.sh"
source "$srcdir/uring/uring-functions.sh"

# 40 MiB, and 40 MiB + 1034 (the partial last block is read buffered, never prefetched).
for size in 41943040 41944074; do
  for ra in 16M 4M; do
    img=$tmpdir/img ref=$tmpdir/ref
    rm -f "$img" "$ref"
    head -c $size /dev/urandom >"$img"
    cp "$img" "$ref"
    seed=$RANDOM
    echo "size=$size readahead=$ra seed=$seed"
    start_nbdkit uring -v "$NBDCRYPT_URING_PLUGIN" file="$img" direct=true readahead=$ra
    $io readahead "$uri" "$ref" $seed 2
    stop_nbdkit uring
    cmp "$img" "$ref"
    log=$tmpdir/uring.log
    served=$(sed -n 's/.*readahead: \([0-9]*\) reads served.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    dropped=$(sed -n 's/.*prefetched, \([0-9]*\) discarded.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    echo "reads served from readahead: $served, chunks discarded: $dropped"
    [ "$served" -gt 0 ] || { echo "FAIL: readahead never served a read" >&2; exit 1; }
    [ "$dropped" -gt 0 ] || { echo "FAIL: no write ever discarded a prefetched chunk" >&2; exit 1; }
  done
done

# readahead=0 turns it off; bad values are refused.
rm -f "$tmpdir/img"; truncate -s 8M "$tmpdir/img"
start_nbdkit uring -v "$NBDCRYPT_URING_PLUGIN" file="$tmpdir/img" direct=true readahead=0
$io verify "$uri" "$tmpdir/img" 1 5
stop_nbdkit uring
if grep -q "readahead:" "$tmpdir/uring.log"; then
  echo "FAIL: readahead=0 still prefetched" >&2; exit 1
fi
nbdkit_fails "readahead=3M: must be 0 or a power of two" \
  "$NBDCRYPT_URING_PLUGIN" file="$tmpdir/img" direct=true readahead=3M
echo PASS
