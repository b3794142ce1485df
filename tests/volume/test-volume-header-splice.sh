#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: copy A taken from another volume formatted under the same KEK file (with a
# higher sequence, so "newest wins" would pick it): verify exits 1 naming both copies and
# --use-copy, nbdkit refuses to start, dump warns; verify --use-copy B opens from B;
# verify --repair --use-copy B rewrites copy A, after which the image is byte-identical to the
# original and serves the data written before the splice.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy

kek=$tmpdir/kek vol=$tmpdir/vol.img other=$tmpdir/other.img
truncate -s 8M "$vol" "$other"
"$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek >/dev/null
"$NBDCRYPT" format "$other" --kek-file "$kek" >/dev/null
head -c 32 /dev/urandom > "$tmpdir/kek2"
# The other volume's header at sequence 3 (two rewraps, back to the same KEK).
"$NBDCRYPT" rewrap "$other" --kek-file "$kek" --new-kek-file "$tmpdir/kek2" >/dev/null
"$NBDCRYPT" rewrap "$other" --kek-file "$tmpdir/kek2" --new-kek-file "$kek" >/dev/null

head -c $((7 << 20)) /dev/urandom > "$tmpdir/plain"
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
nbdcopy "$tmpdir/plain" "$uri"
stop_nbdkit vol
cp "$vol" "$tmpdir/good.img"

# The splice: copy A of the other volume over copy A.
dd if="$other" of="$vol" bs=4096 count=1 conv=notrunc status=none

if "$NBDCRYPT" verify "$vol" --kek-file "$kek" > "$tmpdir/out" 2>&1; then
  echo "$0: FAIL: verify accepted a copy A from another volume:"; cat "$tmpdir/out"; exit 1
fi
grep -q "header copies A and B belong to different volumes (UUID" "$tmpdir/out"
grep -q "repair --use-copy A' (or B)" "$tmpdir/out"
volume_fails "belong to different volumes" --filter="$NBDCRYPT_FILTER" file "$vol" \
  kek-file="$kek"
"$NBDCRYPT" dump "$vol" 2>&1 >/dev/null | grep -q "belong to different volumes"
"$NBDCRYPT" dump --json "$vol" 2>/dev/null | grep -q '"copies_agree": false'
# --repair alone does not choose.
if "$NBDCRYPT" verify "$vol" --kek-file "$kek" --repair >/dev/null 2>&1; then
  echo "$0: FAIL: --repair chose a copy by itself"; exit 1
fi
cmp -s "$vol" "$tmpdir/good.img" && { echo "$0: FAIL: test setup: no splice"; exit 1; }

# Each copy can be checked on its own; the operator keeps B.
"$NBDCRYPT" verify "$vol" --kek-file "$kek" --use-copy B | grep -q "unwrapped from copy B"
"$NBDCRYPT" verify "$vol" --kek-file "$kek" --use-copy B --repair |
  grep -q "repaired header copy A (rewritten from copy B)"
cmp "$vol" "$tmpdir/good.img" || { echo "$0: FAIL: repair did not restore copy A"; exit 1; }
"$NBDCRYPT" verify "$vol" --kek-file "$kek" >/dev/null
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
nbdcopy "$uri" "$tmpdir/back"
stop_nbdkit vol
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: data differs after the repair"; exit 1; }

# The same splice into copy B, kept copy A.
dd if="$other" of="$vol" bs=4096 skip=128 seek=128 count=1 conv=notrunc status=none
volume_fails "belong to different volumes" --filter="$NBDCRYPT_FILTER" file "$vol" \
  kek-file="$kek"
"$NBDCRYPT" verify "$vol" --kek-file "$kek" --repair --use-copy A | grep -q "repaired header copy B"
cmp "$vol" "$tmpdir/good.img" || { echo "$0: FAIL: repair did not restore copy B"; exit 1; }
echo "spliced copies refused and repaired by choice"
