#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# dm-crypt compatibility through an independent implementation. There is no device-mapper
# here, so dm-crypt itself cannot open a volume; but a LUKS1 container (made by cryptsetup
# with our key as its volume key) holds an aes-xts-plain64 payload whose sectors are 512
# bytes counted from the payload start: exactly dm-crypt's layout. qemu's LUKS driver (its
# own XTS code) reads and writes that payload. So, for aes-128-xts and aes-256-xts:
#   1. the filter (sector-size=512, over nbdkit's offset filter at the payload offset) writes
#      random data; qemu-img reads the container with the passphrase: same bytes;
#   2. qemu-img writes other random data into the container; the filter reads it back.
# (qemu 7.2 and nbdkit 1.32 read LUKS1 only, whose sectors are 512 bytes, so 4096-byte
# sectors are checked by test-filter-oracle.sh against python3-cryptography alone.)
source "$srcdir/functions.sh"
requires nbdkit
requires nbdcopy
requires qemu-img
requires cryptsetup

size=$((8 * 1024 * 1024))
printf 'correct horse' >"$tmpdir/pw"

for cipher in aes-128-xts aes-256-xts; do
  bits=$([ $cipher = aes-256-xts ] && echo 512 || echo 256)
  key="$tmpdir/$cipher.key"
  head -c $((bits / 8)) /dev/urandom >"$key"

  # The container: header + key slot made by cryptsetup around OUR key, then the payload.
  luks="$tmpdir/$cipher.luks"
  truncate -s $((4 * 1024 * 1024 + size)) "$luks"
  payload=$(luks1_container "$luks" "$key" "$tmpdir/pw")
  plain_size=$(($(stat -c %s "$luks") - payload))

  # 1. Written by the filter, read by qemu.
  head -c $plain_size /dev/urandom >"$tmpdir/a.raw"
  start_nbdkit ours --filter="$NBDCRYPT_FILTER" --filter=offset file "$luks" \
    offset=$payload key-file="$key" cipher=$cipher sector-size=512
  nbdcopy "$tmpdir/a.raw" "$uri"
  stop_nbdkit ours
  luks1_read "$luks" "$tmpdir/pw" "$tmpdir/a.qemu"
  cmp "$tmpdir/a.raw" "$tmpdir/a.qemu" ||
    { echo "$0: FAIL: $cipher: qemu's LUKS driver reads other bytes than the filter wrote" >&2
      exit 1; }

  # 2. Written by qemu, read by the filter.
  head -c $plain_size /dev/urandom >"$tmpdir/b.raw"
  luks1_write "$tmpdir/b.raw" "$luks" "$tmpdir/pw"
  start_nbdkit ours --filter="$NBDCRYPT_FILTER" --filter=offset file "$luks" \
    offset=$payload key-file="$key" cipher=$cipher sector-size=512
  nbdcopy "$uri" "$tmpdir/b.ours"
  stop_nbdkit ours
  cmp "$tmpdir/b.raw" "$tmpdir/b.ours" ||
    { echo "$0: FAIL: $cipher: the filter reads other bytes than qemu's LUKS driver wrote" >&2
      exit 1; }

  # The container's header still holds our key: cryptsetup unlocks it and dumps the same key.
  rm -f "$tmpdir/dumped"
  cryptsetup luksDump -q --dump-volume-key --volume-key-file "$tmpdir/dumped" \
    --key-file "$tmpdir/pw" "$luks" >/dev/null
  cmp -s "$key" "$tmpdir/dumped" ||
    { echo "$0: FAIL: $cipher: cryptsetup dumps another volume key" >&2; exit 1; }
  echo "$0: $cipher: filter -> qemu LUKS and qemu LUKS -> filter: ${plain_size} bytes identical"
done
