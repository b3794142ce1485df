#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: data written through the filter with real clients (nbdcopy, libnbd as nbdsh
# uses it) lands in the backing file as exactly the ciphertext an independent XTS
# (python3-cryptography, via oracle.py) computes, sector by sector, for 512- and 4096-byte
# sectors and aes-128/aes-256; it reads back equal after a restart of nbdkit; the export
# size is the backing size rounded down to whole sectors.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdcopy
requires nbdsh
requires_py cryptography
requires_py nbd

oracle="$srcdir/filter/oracle.py"
size=$((3 * 1024 * 1024 + 1000))      # not a whole number of sectors

for cipher in aes-256-xts aes-128-xts; do
  for ss in 4096 512; do
    case $cipher in aes-256-xts) klen=64 ;; aes-128-xts) klen=32 ;; esac
    d="$tmpdir/$cipher-$ss"
    mkdir "$d"
    head -c $klen /dev/urandom >"$d/key"
    truncate -s $size "$d/disk"
    export_size=$((size / ss * ss))
    head -c $export_size /dev/urandom >"$d/plain"
    args=(--filter="$NBDCRYPT_FILTER" file "$d/disk" key-file="$d/key" cipher=$cipher
          sector-size=$ss)

    start_nbdkit srv "${args[@]}"
    got=$(nbdsh -u "$uri" -c 'print(h.get_size())')
    if [ "$got" != "$export_size" ]; then
      echo "$0: FAIL: $cipher/$ss: export size $got, want $export_size" >&2
      exit 1
    fi
    nbdcopy "$d/plain" "$uri"
    "$PYTHON" "$oracle" write-random "$uri" "$d/plain" 150 "$cipher-$ss"
    stop_nbdkit srv

    "$PYTHON" "$oracle" check "$d/key" $cipher $ss "$d/disk" "$d/plain"

    # A fresh nbdkit reads the same plaintext back.
    start_nbdkit srv "${args[@]}"
    nbdcopy "$uri" "$d/readback"
    stop_nbdkit srv
    if ! cmp "$d/plain" "$d/readback"; then
      echo "$0: FAIL: $cipher/$ss: read-back differs from what was written" >&2
      exit 1
    fi
    echo "$cipher, $ss-byte sectors: OK"
  done
done
