#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Quick start: install what is missing, build, and serve a demo encrypted volume.
#
# Creates ./demo/ (DEMO_DIR) with a sparse 64 MiB backing file and a fresh random 64-byte
# aes-256-xts key, serves it with nbdkit + the nbdcrypt filter in the background on a Unix
# socket, writes a text file into the volume with nbdcopy, reads it back with nbdsh, shows
# that the backing file holds only ciphertext, then prints how to connect and how to stop.
# Re-runnable: a previous demo server is stopped and the demo volume made afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
export PATH="/usr/bin:$PATH"          # Debian's python3 for nbdsh

builddir=${BUILDDIR:-build}
demo=${DEMO_DIR:-$top/demo}
size=64M
sock="$demo/nbd.sock"
pidfile="$demo/nbdkit.pid"
uri="nbd+unix:///?socket=$sock"
marker="NBDCRYPT-DEMO: this sentence is plaintext for NBD clients only"

step () { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing missing Debian packages (if any)"
./scripts/install-deps.sh

step "Building into $builddir/"
if [ -f "$builddir/build.ninja" ]; then
  :
elif [ -d "$builddir/meson-private" ]; then
  meson setup --wipe "$builddir" >/dev/null      # a setup that failed half-way
else
  meson setup "$builddir" >/dev/null
fi
if ! out=$(ninja -C "$builddir" 2>&1); then
  echo "$out" >&2
  echo "demo: the build failed" >&2
  exit 1
fi
filter="$top/$builddir/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so"
[ "${builddir#/}" != "$builddir" ] && filter="$builddir/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so"
echo "filter: $filter"

step "Creating the demo volume in $demo/"
mkdir -p "$demo"
if [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
  echo "stopped the previous demo server"
  for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$pidfile" "$sock" "$demo/disk.img" "$demo/volume.key"
( umask 077; head -c 64 /dev/urandom >"$demo/volume.key" )
truncate -s $size "$demo/disk.img"
echo "key:          $demo/volume.key (64 random bytes, mode 0600: aes-256-xts)"
echo "backing file: $demo/disk.img ($size, sparse)"

step "Serving it: nbdkit --filter=nbdcrypt file disk.img key-file=volume.key"
nbdkit -U "$sock" -P "$pidfile" --filter="$filter" \
  file "$demo/disk.img" key-file="$demo/volume.key"
for _ in $(seq 100); do [ -S "$sock" ] && [ -s "$pidfile" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "demo: nbdkit did not start" >&2; exit 1; }
echo "nbdkit pid $(cat "$pidfile"), socket $sock"

step "Writing a file into the volume with nbdcopy, at offset 0"
payload="$demo/payload.txt"
{ for i in $(seq 200); do echo "$marker (line $i)"; done; } >"$payload"
truncate -s 64K "$payload"            # nbdcopy copies whole files: a 64 KiB one
nbdcopy "$payload" "$uri"
echo "wrote $(stat -c %s "$payload") bytes"

step "Reading it back with nbdsh (libnbd)"
nbdsh -u "$uri" -c "
data = h.pread(65536, 0)
want = open('$payload', 'rb').read()
assert data == want, 'read-back differs!'
print('read back 65536 bytes, identical; first line:', bytes(data).split(b'\n')[0].decode())
"

step "What the storage sees: the backing file holds ciphertext"
count=$(grep -c -a "NBDCRYPT-DEMO" "$demo/disk.img" || true)
echo "occurrences of the plaintext marker in $demo/disk.img: $count"
echo "first 64 bytes of the backing file:"
head -c 64 "$demo/disk.img" | od -A d -t x1 | head -4
if [ "$count" != 0 ]; then
  echo "demo: FAIL: plaintext found in the backing file" >&2
  exit 1
fi

step "The demo volume is being served"
cat <<EOF
Connect:   nbdsh -u '$uri'
           qemu-img info '$uri'
           nbdfuse $demo/mnt '$uri' &   (then the plaintext is $demo/mnt/nbd)
Stop:      kill \$(cat $pidfile)
Run again: $0   (makes a fresh key and volume)
EOF
