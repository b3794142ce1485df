#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Quick start: install what is missing, build, and show nbdcrypt's main job on this machine:
# a volume keyed by a KMS, its KEK rotated while it is served, then a raw key file volume.
#
# In ./demo/ (DEMO_DIR): a throwaway PKI (scripts/make-kms-pki.sh) and a local KMIP server
# (pykmip-server on 127.0.0.1, mutual TLS); a KEK created in it and a sparse 64 MiB volume
# formatted under it (nbdcrypt format); the volume served by nbdkit + the nbdcrypt filter with
# kms-config= on a Unix socket; a text file written into it with nbdcopy and read back with
# nbdsh; the backing file shown to hold only ciphertext; the KEK rotated while the volume is
# served (nbdcrypt rewrap --create-kek) and the data read again. Then the headerless case: a
# raw 64-byte key file. Prints how to connect and how to stop. Re-runnable: a previous demo
# is stopped and everything made afresh.
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

nbdcrypt="$top/$builddir/tools/nbdcrypt"
[ "${builddir#/}" != "$builddir" ] && nbdcrypt="$builddir/tools/nbdcrypt"
kms_pidfile="$demo/kms.pid"
raw_sock="$demo/raw.sock"
raw_pidfile="$demo/raw.pid"
raw_uri="nbd+unix:///?socket=$raw_sock"

stop_pid () {  # stop_pid PIDFILE: stop a previous demo process
  [ -s "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

step "Starting afresh in $demo/"
mkdir -p "$demo"
stop_pid "$pidfile"
stop_pid "$raw_pidfile"
if [ -s "$kms_pidfile" ]; then
  kill -- -"$(cat "$kms_pidfile")" 2>/dev/null || true
  sleep 1
  kill -9 -- -"$(cat "$kms_pidfile")" 2>/dev/null || true
  rm -f "$kms_pidfile"
fi
rm -rf "$demo/pki" "$demo/kms" "$demo/kms.conf" "$demo/disk.img" "$demo/raw.img" \
  "$demo/volume.key" "$sock" "$raw_sock"

step "A throwaway PKI and a local KMIP server (pykmip-server, mutual TLS, 127.0.0.1)"
./scripts/make-kms-pki.sh "$demo/pki"
echo "PKI: $demo/pki/{ca,server,client}.pem (+ keys, mode 0600)"
mkdir -p "$demo/kms"
port=$(/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '%s\n' "[server]" "hostname=127.0.0.1" "port=$port" \
  "certificate_path=$demo/pki/server.pem" "key_path=$demo/pki/server.key" \
  "ca_path=$demo/pki/ca.pem" "auth_suite=TLS1.2" "enable_tls_client_auth=True" \
  "database_path=$demo/kms/pykmip.db" >"$demo/kms/server.conf"
setsid /usr/bin/python3 /usr/bin/pykmip-server -f "$demo/kms/server.conf" \
  -l "$demo/kms/server.log" >"$demo/kms/stdout.log" 2>&1 </dev/null &
echo $! >"$kms_pidfile"
for _ in $(seq 300); do
  grep -q "Starting connection service" "$demo/kms/server.log" 2>/dev/null &&
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" \
      2>/dev/null && break
  sleep 0.1
done
grep -q "Starting connection service" "$demo/kms/server.log" ||
  { cat "$demo/kms/stdout.log" >&2; echo "demo: pykmip-server did not start" >&2; exit 1; }
echo "KMIP server: 127.0.0.1:$port (pid $(cat "$kms_pidfile"))"
printf '%s\n' "# nbdcrypt's KMS configuration (see nbdcrypt-kms.conf(5))" "[kms]" \
  "server = 127.0.0.1:$port" "ca = $demo/pki/ca.pem" "client-cert = $demo/pki/client.pem" \
  "client-key = $demo/pki/client.key" "timeout = 10" >"$demo/kms.conf"
echo "nbdcrypt's KMS configuration: $demo/kms.conf"

step "Formatting the volume under a new KEK created in the KMS"
truncate -s $size "$demo/disk.img"
"$nbdcrypt" format "$demo/disk.img" --kms-config "$demo/kms.conf" --create-kek --name demo-kek
"$nbdcrypt" dump "$demo/disk.img"

step "Serving it: nbdkit --filter=nbdcrypt file disk.img kms-config=kms.conf"
nbdkit -U "$sock" -P "$pidfile" --filter="$filter" \
  file "$demo/disk.img" kms-config="$demo/kms.conf"
for _ in $(seq 100); do [ -S "$sock" ] && [ -s "$pidfile" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "demo: nbdkit did not start" >&2; exit 1; }
echo "nbdkit pid $(cat "$pidfile"), socket $sock"

step "Writing a file into the volume with nbdcopy, at offset 0"
payload="$demo/payload.txt"
{ for i in $(seq 200); do echo "$marker (line $i)"; done; } >"$payload"
truncate -s 64K "$payload"            # nbdcopy copies whole files: a 64 KiB one
nbdcopy "$payload" "$uri"
echo "wrote $(stat -c %s "$payload") bytes"

readback () {  # readback URI: the payload reads back identically
  nbdsh -u "$1" -c "
data = h.pread(65536, 0)
want = open('$payload', 'rb').read()
assert data == want, 'read-back differs!'
print('read back 65536 bytes, identical; first line:', bytes(data).split(b'\n')[0].decode())
"
}
step "Reading it back with nbdsh (libnbd)"
readback "$uri"

step "What the storage sees: the backing file holds ciphertext"
count=$(grep -c -a "NBDCRYPT-DEMO" "$demo/disk.img" || true)
echo "occurrences of the plaintext marker in $demo/disk.img: $count"
echo "first 64 bytes of the data area (after the 1 MiB header area):"
dd if="$demo/disk.img" bs=64 skip=16384 count=1 status=none | od -A d -t x1 | head -4
if [ "$count" != 0 ]; then
  echo "demo: FAIL: plaintext found in the backing file" >&2
  exit 1
fi

step "Rotating the KEK while the volume is served: only the wrapped DEK changes"
"$nbdcrypt" rewrap "$demo/disk.img" --kms-config "$demo/kms.conf" --create-kek --name demo-kek-2
"$nbdcrypt" dump "$demo/disk.img" | grep -i "kek"
readback "$uri"

step "Without a KMS: a headerless volume keyed by a raw key file"
( umask 077; head -c 64 /dev/urandom >"$demo/volume.key" )
truncate -s $size "$demo/raw.img"
echo "nbdkit --filter=nbdcrypt file raw.img key-file=volume.key  (64 random bytes: aes-256-xts)"
nbdkit -U "$raw_sock" -P "$raw_pidfile" --filter="$filter" \
  file "$demo/raw.img" key-file="$demo/volume.key"
for _ in $(seq 100); do [ -S "$raw_sock" ] && [ -s "$raw_pidfile" ] && break; sleep 0.1; done
nbdcopy "$payload" "$raw_uri"
readback "$raw_uri"
echo "occurrences of the plaintext marker in $demo/raw.img:" \
  "$(grep -c -a "NBDCRYPT-DEMO" "$demo/raw.img" || true)"

step "The demo volumes are being served"
cat <<EOF
KMS-keyed volume:  nbdsh -u '$uri'
                   qemu-img info '$uri'
                   nbdfuse $demo/mnt '$uri' &   (then the plaintext is $demo/mnt/nbd)
                   $nbdcrypt dump $demo/disk.img
Raw key volume:    nbdsh -u '$raw_uri'
Stop:              kill \$(cat $pidfile) \$(cat $raw_pidfile); kill -- -\$(cat $kms_pidfile)
Run again:         $0   (a fresh PKI, KMS, KEKs and volumes)
EOF
