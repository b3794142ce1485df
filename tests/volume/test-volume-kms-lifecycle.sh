#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a served volume through the KEK's life: KMS stopped while serving → the key
# check warns, new connections and I/O keep working, nothing is lost (checked after a restart);
# rewrap while serving, then the old KEK revoked and destroyed → still serving (the key check
# follows the header to the new KEK);
# KEK revoked while serving with on-revoke=refuse → new connections refused within the
# key-check interval while an open connection keeps working; on-revoke=shutdown → nbdkit
# exits (test-volume-revoke covers the default, disconnect, and shutdown with clients
# attached). Prints connection setup times with the KMS up and stopped.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdcopy
requires_py nbd
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4 timeout=2
kms () { "$NBDCRYPT" kms --config "$conf" "$@"; }
kek_id () { "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])'; }
wait_log () {  # wait_log REGEX SECONDS
  for _ in $(seq $(($2 * 10))); do grep -Eq "$1" "$tmpdir/vol.log" && return 0; sleep 0.1; done
  echo "$0: FAIL: no /$1/ in the log after $2 s:"; cat "$tmpdir/vol.log"; exit 1
}

vol=$tmpdir/vol.img
truncate -s 17M "$vol"
"$NBDCRYPT" format "$vol" --kms-config "$conf" --create-kek >/dev/null
uid=$(kek_id "$vol")
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kms-config="$conf" key-check-interval=1
t_up=$("$PYTHON" "$srcdir/volume/conn-time.py" "$uri" 20)
echo "KMS up:      $t_up"

# KMS outage: checks fail with a warning, serving goes on, nothing is lost.
kmip_stop_server
wait_log "cannot get the state of $uid from the KMS.*still serving" 10
t_down=$("$PYTHON" "$srcdir/volume/conn-time.py" "$uri" 20)
echo "KMS stopped: $t_down"
head -c $((16 << 20)) /dev/urandom > "$tmpdir/plain"
nbdcopy "$tmpdir/plain" "$uri"
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: I/O during the outage"; exit 1; }
kmip_restart_server
wait_log "the KMS answers again" 15
stop_nbdkit vol
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kms-config="$conf" key-check-interval=1 \
  on-revoke=refuse
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: outage writes lost after restart"; exit 1; }

# Rotation while serving: rewrap to a new KEK, revoke and destroy the old one; the running
# server follows the header to the new KEK and keeps accepting connections.
old=$uid
"$NBDCRYPT" rewrap "$vol" --kms-config "$conf" --create-kek >/dev/null
uid=$(kek_id "$vol")
wait_log "rewrapped from KEK $old to KEK $uid" 10
kms revoke "$old" --reason superseded
kms destroy "$old"
sleep 3                         # three check intervals
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: data after rotation while serving"; exit 1; }
if grep -q "refusing new connections" "$tmpdir/vol.log"; then
  echo "$0: FAIL: revoking the rotated-out KEK cut the volume off"; exit 1
fi
echo "rotated from KEK $old to $uid while serving; old KEK revoked and destroyed; still serving"

# Revocation while serving, on-revoke=refuse: new connections refused within the interval
# (1 s, + one check), while a connection opened before keeps working and loses nothing.
"$PYTHON" "$srcdir/volume/conn-holder.py" "$uri" "$tmpdir" > "$tmpdir/holder.out" 2>&1 &
holder=$!
for _ in $(seq 100); do [ -e "$tmpdir/ready" ] && break; sleep 0.1; done
[ -e "$tmpdir/ready" ] || { echo "$0: FAIL: holder did not connect"; cat "$tmpdir/holder.out"; exit 1; }
t0=$(date +%s.%N)
kms revoke "$uid" --reason compromised
refused=
for _ in $(seq 100); do
  if ! nbdsh -u "$uri" -c 'h.pread(512, 0)' >/dev/null 2>&1; then refused=1; break; fi
  sleep 0.1
done
t1=$(date +%s.%N)
[ -n "$refused" ] || { echo "$0: FAIL: still accepting connections 10 s after revocation"; exit 1; }
echo "new connections refused $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s after the revoke (interval 1 s)"
grep -q "is compromised in the KMS" "$tmpdir/vol.log"
touch "$tmpdir/go"
wait "$holder" || { echo "$0: FAIL: open connection broken:"; cat "$tmpdir/holder.out"; exit 1; }
cat "$tmpdir/holder.out"
stop_nbdkit vol
volume_fails "KEK $uid is compromised" --filter="$NBDCRYPT_FILTER" file "$vol" kms-config="$conf"

# on-revoke=shutdown: nbdkit stops by itself.
vol2=$tmpdir/vol2.img
truncate -s 4M "$vol2"
"$NBDCRYPT" format "$vol2" --kms-config "$conf" --create-kek >/dev/null
start_nbdkit vol2 --filter="$NBDCRYPT_FILTER" file "$vol2" kms-config="$conf" \
  key-check-interval=1 on-revoke=shutdown
pid=$(cat "$tmpdir/vol2.pid")
kms revoke "$(kek_id "$vol2")" --reason ceased
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "$0: FAIL: nbdkit still running after revocation"; exit 1; fi
grep -q "shutting down" "$tmpdir/vol2.log"
echo "revocation and KMS outage handled"
