#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a KEK revoked in a real KMIP server (PyKMIP) while nbdkit serves the volume,
# key-check-interval=1.
# on-revoke=disconnect (the default): a connection open across the revocation gets EPERM on
# its next reads, writes and write-zeroes, never data; new connections are refused; the reason
# is logged; a scan of the process's memory (/proc/PID/mem) that finds the DEK before the
# revocation finds none of its bytes after it; connections writing flat out during the
# revocation leave no garbage and lose no acknowledged write, and a read held in the plugin
# below (nbdkit's delay filter) while the keys are wiped returns the right data or EPERM (python3-cryptography decrypts
# every block with the DEK from `nbdcrypt dump --dump-volume-key`). The same for a headerless
# key-id= volume.
# on-revoke=shutdown: nbdkit exits non-zero within the interval plus a few seconds while an
# idle client stays connected.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdsh
requires_py nbd
requires_py cryptography
nbdkit_fails "on-revoke=bogus: expected disconnect, shutdown or refuse" \
  --filter="$NBDCRYPT_FILTER" null kek-file=/nonexistent on-revoke=bogus
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4 timeout=2
kms () { "$NBDCRYPT" kms --config "$conf" "$@"; }
io () { "$PYTHON" "$srcdir/volume/revoke-io.py" "$@"; }
json_field () { "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
wait_log () {  # wait_log NAME REGEX SECONDS
  for _ in $(seq $(($3 * 10))); do grep -Eq "$2" "$tmpdir/$1.log" && return 0; sleep 0.1; done
  echo "$0: FAIL: no /$2/ in the log after $3 s:"; cat "$tmpdir/$1.log"; exit 1
}
wait_file () {
  for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "$0: FAIL: $1 never appeared"; exit 1
}
# Memory scans read other processes' memory: valgrind cannot host that, and ASan's allocator
# keeps its own copies of freed blocks' metadata only (never their contents), so it stays on.
register_secret () {  # register_secret KEYFILE: 64 bytes of Secret Data, active; prints its UID
  "$PYTHON" -c "$(kmip_pyclient client 1.4)
from kmip.pie import objects
s = objects.SecretData(open('$1', 'rb').read(), enums.SecretDataType.SEED)
uid = c.register(s)
c.activate(uid)
print(uid)"
}
scan_hits () { io scan "$1" "$2" 2>"$tmpdir/scan.err"; }

# revoke_while_serving NAME KEY-FILE ARGS...: serve with ARGS (on-revoke= left at its default),
# revoke the key named by $revoke_uid, check everything the description says.
revoke_while_serving () {
  local name=$1 key=$2 d=$tmpdir/$1; shift 2
  mkdir -p "$d/hold" "$d/hammer"
  start_nbdkit "$name" --filter="$NBDCRYPT_FILTER" "$@" key-check-interval=1
  local pid; pid=$(cat "$tmpdir/$name.pid")

  io hold "$uri" "$d/hold" >"$d/hold.out" 2>&1 &
  local holder=$!
  io hammer "$uri" "$d/hammer" 4 >"$d/hammer.out" 2>&1 &
  local hammer=$!
  wait_file "$d/hold/ready"
  wait_file "$d/hammer/ready"

  local before; before=$(scan_hits "$pid" "$key")
  [ "$before" -gt 0 ] || { echo "$0: FAIL: $name: the scan finds no key bytes while serving:"
                           cat "$tmpdir/scan.err"; exit 1; }

  kms revoke "$revoke_uid" --reason compromised
  wait_log "$name" "is compromised in the KMS.*volume key wiped from memory.*on-revoke=disconnect" 10
  wait "$hammer" || { echo "$0: FAIL: $name: hammer:"; cat "$d/hammer.out"; exit 1; }
  cat "$d/hammer.out"

  touch "$d/hold/go"
  local rc=0
  wait "$holder" || rc=$?
  cat "$d/hold.out"
  [ "$rc" = 0 ] || { echo "$0: FAIL: $name: a request after the revocation was served"; exit 1; }
  [ "$(grep -c 'failed: EPERM ' "$d/hold.out")" = 5 ] ||
    { echo "$0: FAIL: $name: expected EPERM for every request"; exit 1; }

  if nbdsh -u "$uri" -c 'h.pread(512, 0)' >"$d/new.out" 2>&1; then
    echo "$0: FAIL: $name: a new connection was served after the revocation"; exit 1
  fi
  grep -q "connection refused: key .* is compromised" "$tmpdir/$name.log"

  local after; after=$(scan_hits "$pid" "$key")
  if [ "$after" != 0 ]; then
    echo "$0: FAIL: $name: $after copies of key bytes still in memory after the wipe:"
    cat "$tmpdir/scan.err"; exit 1
  fi
  echo "$name: key bytes in memory: $before places before the revocation, 0 after"
  kill -0 "$pid" || { echo "$0: FAIL: $name: nbdkit exited with on-revoke=disconnect"; exit 1; }
  stop_nbdkit "$name"
}

# Header mode: a volume whose KEK is in the KMS.
vol=$tmpdir/vol.img
truncate -s 17M "$vol"
"$NBDCRYPT" format "$vol" --kms-config "$conf" --create-kek >/dev/null
"$NBDCRYPT" dump "$vol" --kms-config "$conf" --dump-volume-key "$tmpdir/vol.dek" 2>/dev/null
revoke_uid=$(json_field "$vol" kek_id)
revoke_while_serving vol "$tmpdir/vol.dek" file "$vol" kms-config="$conf"
io check "$vol" "$tmpdir/vol.dek" "$(json_field "$vol" data_offset)" "$tmpdir/vol/hammer"

# key-id=: a headerless volume keyed by 64 bytes of Secret Data held by the KMS.
head -c 64 /dev/urandom > "$tmpdir/raw.key"
revoke_uid=$(register_secret "$tmpdir/raw.key")
truncate -s 8M "$tmpdir/raw.img"
revoke_while_serving raw "$tmpdir/raw.key" file "$tmpdir/raw.img" kms-config="$conf" \
  key-id="$revoke_uid"
io check "$tmpdir/raw.img" "$tmpdir/raw.key" 0 "$tmpdir/raw/hammer"

# A read that is in the plugin below (nbdkit's delay filter: 300 ms each) while the keys are
# wiped either completes with intact keys or fails; it never decrypts with a wiped schedule.
# key-id= with force-headerless=true: the delay filter cannot sleep outside a connection,
# where a header would be read.
if have_nbdkit_filter delay; then
  head -c 64 /dev/urandom > "$tmpdir/slow.key"
  slow_uid=$(register_secret "$tmpdir/slow.key")
  truncate -s 4M "$tmpdir/slow.img"
  start_nbdkit slow --filter="$NBDCRYPT_FILTER" --filter=delay file "$tmpdir/slow.img" \
    kms-config="$conf" key-id="$slow_uid" force-headerless=true key-check-interval=1 \
    delay-read=300ms
  mkdir -p "$tmpdir/slow"
  io reader "$uri" "$tmpdir/slow" >"$tmpdir/slow.out" 2>&1 &
  reader=$!
  wait_file "$tmpdir/slow/ready"
  sleep 1
  kms revoke "$slow_uid" --reason compromised
  wait "$reader" || { echo "$0: FAIL: read during the wipe:"; cat "$tmpdir/slow.out"; exit 1; }
  cat "$tmpdir/slow.out"
  stop_nbdkit slow
else
  echo "nbdkit's delay filter missing: reads in flight during the wipe not checked"
fi

# on-revoke=shutdown with an idle client attached: exits non-zero, promptly.
vol2=$tmpdir/vol2.img
truncate -s 4M "$vol2"
"$NBDCRYPT" format "$vol2" --kms-config "$conf" --create-kek >/dev/null
sock2=$tmpdir/vol2.sock
( sanitizer_env; exec nbdkit -U "$sock2" -f --filter="$NBDCRYPT_FILTER" file "$vol2" \
    kms-config="$conf" key-check-interval=1 on-revoke=shutdown ) >"$tmpdir/vol2.log" 2>&1 &
srv=$!
on_exit "kill $srv 2>/dev/null || true"
wait_file "$sock2"
mkdir -p "$tmpdir/idle"
"$PYTHON" -c "
import nbd, os, sys, time
h = nbd.NBD(); h.connect_uri('nbd+unix:///?socket=$sock2'); h.pread(4096, 0)
open('$tmpdir/idle/ready', 'w').close()
time.sleep(120)" >/dev/null 2>&1 &
idle=$!
on_exit "kill $idle 2>/dev/null || true"
wait_file "$tmpdir/idle/ready"
t0=$(date +%s.%N)
kms revoke "$(json_field "$vol2" kek_id)" --reason ceased
rc=0
timeout 20 tail --pid="$srv" -f /dev/null || { echo "$0: FAIL: nbdkit still running 20 s after the revocation"; cat "$tmpdir/vol2.log"; exit 1; }
wait "$srv" || rc=$?
t1=$(date +%s.%N)
[ "$rc" != 0 ] || { echo "$0: FAIL: on-revoke=shutdown exited 0"; cat "$tmpdir/vol2.log"; exit 1; }
grep -q "volume key wiped from memory; shutting down" "$tmpdir/vol2.log"
kill -0 "$idle" 2>/dev/null || { echo "$0: FAIL: the idle client was gone before the test ended it"; exit 1; }
secs=$(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")
awk "BEGIN {exit !($t1 - $t0 < 1 + 1 + 5)}" ||
  { echo "$0: FAIL: on-revoke=shutdown took $secs s (interval 1 s)"; exit 1; }
echo "on-revoke=shutdown: exit status $rc $secs s after the revoke, an idle client attached"
