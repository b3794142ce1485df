#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu through the filter (NBD over a Unix socket): qemu-img convert in, qemu-img compare
# against the source (also after a restart), and qemu-io writes at odd offsets verified with
# -P patterns and against the same commands applied by qemu-io to a plain raw file.
source "$srcdir/functions.sh"
requires nbdkit
requires qemu-img
requires qemu-io

key="$tmpdir/vol.key"
head -c 64 /dev/urandom >"$key"
size=$((24 * 1024 * 1024))

# Source: sparse, with random data at aligned and odd places and a stretch of zeros.
src="$tmpdir/src.raw"
truncate -s $size "$src"
for spec in 0:300000 1048577:5000 4194000:1048576 9000001:777 16777216:2097152 \
            $((size - 4097)):4097; do
  head -c "${spec#*:}" /dev/urandom |
    dd of="$src" bs=64K iflag=fullblock oflag=seek_bytes seek="${spec%:*}" conv=notrunc \
       status=none
done

# qemu-io commands at odd offsets: the writes, then -P reads that check them.
writes=(
  "write -P 0x11 1 1"
  "write -P 0x22 511 2"
  "write -P 0x33 4095 4098"
  "write -P 0x44 12345 67890"
  "write -z 513 1000"
  "write -P 0x55 1048576 1"
  "aio_write -P 0x66 2097155 5000"
  "aio_write -P 0x77 2102155 5000"
  "aio_write -P 0x78 2107155 3"
  "aio_flush"
  "writev -P 0x88 3145735 100 200 300"
  "write -P 0x99 4194303 2"
  "write -z 4198000 70000"
  "write -P 0xaa $((size - 3)) 3"
  "flush"
)
reads=(
  "read -P 0x11 1 1"
  "read -P 0x22 511 2"
  "read -P 0x33 4095 4098"
  "read -P 0x44 12345 67890"
  "read -P 0 513 1000"
  "read -P 0x55 1048576 1"
  "read -P 0x66 2097155 5000"
  "read -P 0x77 2102155 5000"
  "read -P 0x78 2107155 3"
  "readv -P 0x88 3145735 100 200 300"
  "read -P 0x99 4194303 2"
  "read -P 0 4198000 70000"
  "read -P 0xaa $((size - 3)) 3"
)
qemu_io () {   # qemu_io TARGET FORMAT-ARGS... -- COMMANDS...
  local target=$1 out="$tmpdir/qemu-io.out" args=() c
  shift
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  for c in "$@"; do args+=(-c "$c"); done
  if ! qemu-io "${args[@]}" "$target" >"$out" 2>&1 ||
     grep -Eqi 'verification failed|failed|error' "$out"; then
    echo "$0: FAIL: qemu-io on $target:" >&2; cat "$out" >&2; exit 1
  fi
}

for ss in 512 4096; do
  echo "== sector-size $ss"
  disk="$tmpdir/disk-$ss.img"
  truncate -s $size "$disk"
  start_nbdkit "qemu-$ss" --filter="$NBDCRYPT_FILTER" file "$disk" key-file="$key" sector-size=$ss
  qemu-img convert -n -f raw -O raw "$src" "$uri"
  qemu-img compare -q -f raw -F raw "$src" "$uri" ||
    { echo "$0: FAIL: qemu-img compare after convert" >&2; exit 1; }
  if cmp -s "$src" "$disk"; then echo "$0: FAIL: backing equals plaintext" >&2; exit 1; fi
  echo "qemu-img convert + compare: equal"

  # The same qemu-io writes on a plain raw copy (the reference) and through the filter.
  ref="$tmpdir/ref-$ss.raw"
  cp --sparse=always "$src" "$ref"
  qemu_io "$ref" -f raw -- "${writes[@]}" "${reads[@]}"
  qemu_io "$uri" -f raw -- "${writes[@]}" "${reads[@]}"
  qemu-img compare -q -f raw -F raw "$ref" "$uri" ||
    { echo "$0: FAIL: qemu-io writes through the filter differ from the reference" >&2; exit 1; }
  echo "qemu-io: ${#writes[@]} writes at odd offsets, ${#reads[@]} pattern reads, equal to reference"
  stop_nbdkit "qemu-$ss"

  # A new nbdkit reads back the same; qemu-img convert out of the filter gives the reference.
  start_nbdkit "qemu-$ss-again" --filter="$NBDCRYPT_FILTER" file "$disk" key-file="$key" \
    sector-size=$ss
  qemu_io "$uri" -f raw -r -- "${reads[@]}"
  qemu-img convert -f raw -O raw "$uri" "$tmpdir/out-$ss.raw"
  cmp "$ref" "$tmpdir/out-$ss.raw" ||
    { echo "$0: FAIL: convert out of the filter after restart differs" >&2; exit 1; }
  if command -v nbdcopy >/dev/null; then
    nbdcopy "$uri" "$tmpdir/nbdcopy-$ss.raw"
    cmp "$ref" "$tmpdir/nbdcopy-$ss.raw" ||
      { echo "$0: FAIL: nbdcopy out of the filter differs from the reference" >&2; exit 1; }
  fi
  echo "after restart: pattern reads pass, qemu-img convert and nbdcopy give the reference"
  stop_nbdkit "qemu-$ss-again"
done
echo "$0: OK"
