#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Unaligned/overlapping writes and reads at odd offsets (512 and 4096-byte sectors) against a
# model; sub-sector writes must decrypt-merge-encrypt and leave neighbour sectors untouched;
# large reads at odd offsets, whole and read in pieces (NBDCRYPT_READ_PIECE).
source "$srcdir/functions.sh"
source "$srcdir/filter/filter-functions.sh"
key128="$tmpdir/vol128.key"
head -c 32 /dev/urandom >"$key128"

for conf in 512:aes-256-xts 4096:aes-256-xts 512:aes-128-xts; do
  ss=${conf%:*} cipher=${conf#*:} name=unaligned-${conf/:/-}
  k=$key
  [ "$cipher" = aes-128-xts ] && k=$key128
  disk="$tmpdir/$name.img"
  # Not a whole number of sectors: the export is rounded down and the rest never touched.
  truncate -s $((1024 * 1024 + 4096 + 1000)) "$disk"
  start_nbdkit "$name" --filter="$NBDCRYPT_FILTER" file "$disk" \
    key-file="$k" sector-size=$ss cipher=$cipher
  echo "== sector-size $ss, $cipher"
  "$PYTHON" "$here/test-filter-unaligned.py" run "$uri" "$disk" "$k" $ss \
    "$tmpdir/$name.model"
  stop_nbdkit "$name"

  # Nothing held in the filter: a fresh nbdkit reads back the same plaintext.
  start_nbdkit "$name-again" --filter="$NBDCRYPT_FILTER" file "$disk" \
    key-file="$k" sector-size=$ss cipher=$cipher
  "$PYTHON" "$here/test-filter-unaligned.py" verify "$uri" "$tmpdir/$name.model"
  stop_nbdkit "$name-again"

  # Large reads, whole and in pieces (NBDCRYPT_READ_PIECE, plugin/nbdcrypt/filter-read.c):
  # one sector per piece, and a piece of three 4 KiB pages (not a power of two).
  for piece in 0 4096 12288; do
    export NBDCRYPT_READ_PIECE=$piece
    start_nbdkit "$name-piece-$piece" --filter="$NBDCRYPT_FILTER" file "$disk" \
      key-file="$k" sector-size=$ss cipher=$cipher
    echo "== large reads, NBDCRYPT_READ_PIECE=$piece"
    "$PYTHON" "$here/test-filter-unaligned.py" large "$uri" "$tmpdir/$name.model" $ss
    stop_nbdkit "$name-piece-$piece"
  done
  unset NBDCRYPT_READ_PIECE
done

# For comparison only (not part of the verdict): the same 1-byte write through nbdkit's own
# luks filter, which encrypts the merged sector without decrypting it first.
luks="$tmpdir/luks.img"
if luks_comparison_image "$luks"; then
  # nbdkit's own filter, not ours: no sanitizer preload (NBDCRYPT_FILTER is what
  # start_nbdkit inspects for it; nbdkit itself is not instrumented).
  NBDCRYPT_FILTER=/usr/bin/nbdkit start_nbdkit luks --filter=luks file "$luks" passphrase=pw
  theirs=$("$PYTHON" "$here/test-filter-unaligned.py" neighbour "$uri" || echo "?")
  stop_nbdkit luks
  start_nbdkit ours-demo --filter="$NBDCRYPT_FILTER" file "$tmpdir/unaligned-512-aes-256-xts.img" \
    key-file="$key" sector-size=512
  ours=$("$PYTHON" "$here/test-filter-unaligned.py" neighbour "$uri")
  stop_nbdkit ours-demo
  echo "1-byte write into a random 4 KiB: neighbour bytes damaged: nbdcrypt $ours," \
       "nbdkit luks filter $theirs"
  [ "$ours" = 0 ] || { echo "$0: FAIL: nbdcrypt damaged $ours neighbour bytes" >&2; exit 1; }
fi
echo "$0: OK"
