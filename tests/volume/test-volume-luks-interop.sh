#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: "the volume is openable by dm-crypt with the DEK and the offset", checked with an
# independent implementation, since there is no device-mapper here. A 512-byte-sector volume
# is formatted (kek-file) and filled through the filter; `nbdcrypt dump --dump-volume-key`
# gives the DEK; cryptsetup makes a LUKS1 container around that DEK (aes-xts-plain64, the
# payload's 512-byte sectors counted from its start: dm-crypt's layout with -o/--offset), and
# the volume's data area (from data_offset on) is copied into the payload. qemu's LUKS driver
# (its own XTS) must read the same plaintext; then qemu writes new data, the payload is copied
# back into the data area, and the filter must read qemu's data. aes-256 and aes-128.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdcopy
requires qemu-img
requires cryptsetup
requires_py json

printf 'volume interop' >"$tmpdir/pw"

for cipher in aes-256-xts aes-128-xts; do
  vol=$tmpdir/$cipher.img kek=$tmpdir/$cipher.kek luks=$tmpdir/$cipher.luks
  truncate -s 12M "$vol"
  "$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --cipher "$cipher" \
    --sector-size 512 >/dev/null
  off=$("$NBDCRYPT" dump --json "$vol" |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["data_offset"])')
  data_size=$(($(stat -c %s "$vol") - off))

  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  head -c $data_size /dev/urandom >"$tmpdir/a.raw"
  nbdcopy "$tmpdir/a.raw" "$uri"
  stop_nbdkit vol

  rm -f "$tmpdir/dek"
  "$NBDCRYPT" dump "$vol" --dump-volume-key "$tmpdir/dek" --kek-file "$kek" >/dev/null

  # A LUKS1 container around the DEK, its payload = our data area.
  truncate -s $((4 << 20)) "$luks"
  payload=$(luks1_container "$luks" "$tmpdir/dek" "$tmpdir/pw")
  truncate -s "$payload" "$luks"
  dd if="$vol" of="$luks" bs=64K iflag=skip_bytes skip="$off" oflag=append conv=notrunc \
     status=none

  luks1_read "$luks" "$tmpdir/pw" "$tmpdir/a.qemu"
  cmp "$tmpdir/a.raw" "$tmpdir/a.qemu" ||
    { echo "$0: FAIL: $cipher: qemu's LUKS driver, given the dumped DEK and the data area," \
           "reads other bytes than were written through the filter" >&2; exit 1; }

  # Back: qemu encrypts, the payload goes into the data area, the filter decrypts.
  head -c $data_size /dev/urandom >"$tmpdir/b.raw"
  luks1_write "$tmpdir/b.raw" "$luks" "$tmpdir/pw"
  dd if="$luks" of="$vol" bs=64K iflag=skip_bytes skip="$payload" oflag=seek_bytes \
     seek="$off" conv=notrunc status=none
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  nbdcopy "$uri" "$tmpdir/b.ours"
  stop_nbdkit vol
  cmp "$tmpdir/b.raw" "$tmpdir/b.ours" ||
    { echo "$0: FAIL: $cipher: the filter reads other bytes than qemu's LUKS driver wrote" >&2
      exit 1; }
  echo "$0: $cipher: data area <-> LUKS1 payload under the dumped DEK: $data_size bytes, both ways"
done
