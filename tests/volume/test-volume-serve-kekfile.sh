#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a volume keyed by a local KEK file (no KMS), served by the real filter over the
# file plugin: export size = size − data offset; random data written with nbdcopy survives an
# nbdkit restart; the data area decrypts sector by sector with python3-cryptography's XTS
# under the DEK that python3-cryptography's RFC 5649 unwrap gets from the header (for 4096-
# and 512-byte sectors, aes-256 and aes-128); wrong KEK file, a KMS config for a file volume,
# one damaged header copy (opens, warns) and both (refused) through nbdkit.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography
export_size () { nbdsh -u "$1" -c 'print(h.get_size())'; }

for case in "aes-256-xts 4096" "aes-128-xts 512"; do
  set -- $case
  cipher=$1 ss=$2
  vol=$tmpdir/vol-$ss.img kek=$tmpdir/kek-$ss
  truncate -s 24M "$vol"
  "$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --cipher "$cipher" \
    --sector-size "$ss" >/dev/null
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  [ "$(export_size "$uri")" = $((23 << 20)) ] || { echo "$0: FAIL: export size"; exit 1; }
  head -c $((23 << 20)) /dev/urandom > "$tmpdir/plain"
  nbdcopy "$tmpdir/plain" "$uri"
  stop_nbdkit vol
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  nbdcopy "$uri" "$tmpdir/back"
  cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: data differs after restart"; exit 1; }
  stop_nbdkit vol
  # Independent oracle: unwrap from the header bytes, decrypt every sector.
  rm -f "$tmpdir/dek"
  oracle unwrap-dek "$vol" "$kek" "$tmpdir/dek"
  oracle check-data "$vol" "$tmpdir/dek" "$tmpdir/plain"
  cp "$tmpdir/plain" "$tmpdir/vol-$ss.plain"
  # The backing file is ciphertext: no 4 KiB block of plaintext appears in it.
  if head -c 4096 "$tmpdir/plain" | cmp -s - <(dd if="$vol" bs=1M skip=1 count=1 status=none | head -c 4096); then
    echo "$0: FAIL: plaintext in the backing file"; exit 1
  fi
done

vol=$tmpdir/vol-4096.img kek=$tmpdir/kek-4096
cp "$tmpdir/vol-4096.plain" "$tmpdir/plain"
head -c 32 /dev/urandom > "$tmpdir/other.kek"
volume_fails "wrong KEK file: .*other.kek" --filter="$NBDCRYPT_FILTER" file "$vol" \
  kek-file="$tmpdir/other.kek"
printf '[kms]\nserver = 127.0.0.1:1\n' > "$tmpdir/kms.conf"
volume_fails "this volume's KEK is a local KEK file .*give kek-file=" \
  --filter="$NBDCRYPT_FILTER" file "$vol" kms-config="$tmpdir/kms.conf"
volume_fails "do not combine" --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek" \
  key-file="$kek"

# One damaged copy: serves, with a warning naming the copy; both: refuses.
dd if=/dev/urandom of="$vol" bs=1 seek=1000 count=16 conv=notrunc status=none
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/plain" "$tmpdir/back"
grep -q "header copy A is damaged" "$tmpdir/vol.log" ||
  { echo "$0: FAIL: no warning in the log:"; cat "$tmpdir/vol.log"; exit 1; }
stop_nbdkit vol
dd if=/dev/urandom of="$vol" bs=1 seek=$((512 * 1024 + 1000)) count=16 conv=notrunc status=none
volume_fails "corrupt in both copies" --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
truncate -s 8M "$tmpdir/blank.img"
volume_fails "no nbdcrypt volume header" --filter="$NBDCRYPT_FILTER" file "$tmpdir/blank.img" \
  kek-file="$kek"
echo "KEK-file volumes serve, survive restarts and match the oracle"
