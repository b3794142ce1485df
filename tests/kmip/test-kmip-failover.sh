#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: several servers are tried in order (refused, silent, down) and the first one
# that works is used; timeouts stay within the configured bound; misbehaving servers
# (truncated, oversized, garbage, wrong message, not TLS, reset) give clean one-line errors
# without crash or big allocation; version fallback against fake 1.0 and 1.2 servers;
# TransparentSymmetricKey material is read and wrapped keys are refused.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"

kmip_start_server kms
for m in silent-tcp silent-tls not-tls truncated oversized garbage bad-shape close kmip10 kmip12 transparent wrapped; do
  kmip_start_fake $m
done
dead=$(kmip_free_port)     # nothing listens there: connection refused

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
now () { date +%s.%N; }
conf () { local f="$tmpdir/$1.conf"; shift; kmip_write_conf "$f" "$@"; echo "$f"; }

# Failover: a refused and a silent server before the real one.
c=$(conf fo "server=127.0.0.1:$dead, 127.0.0.1:$fake_silent_tcp_port, 127.0.0.1:$kms_port" timeout=1.5)
t0=$(now)
"$NBDCRYPT" kms --config "$c" versions > "$tmpdir/out"
t=$(echo "$(now) - $t0" | bc)
grep -qx "server 127.0.0.1:$kms_port" "$tmpdir/out" || { cat "$tmpdir/out"; fail "did not fail over"; }
echo "failover past refused + silent server: ${t}s"
(( $(echo "$t < 4.5" | bc) )) || fail "failover took ${t}s (timeout 1.5 s)"
# Key operations through a failover (a refused server first), with a generous timeout so a
# loaded machine cannot make the slow Python server look dead.
c=$(conf fo2 "server=127.0.0.1:$dead, 127.0.0.1:$kms_port" timeout=10)
uid=$("$NBDCRYPT" kms --config "$c" create --activate)
"$NBDCRYPT" kms --config "$c" get "$uid" --out "$tmpdir/key"
[ "$(stat -c %s "$tmpdir/key")" = 32 ] || fail "key after failover"

# All servers down: one line that names each failure.
c=$(conf down "server=127.0.0.1:$dead, 127.0.0.1:$fake_silent_tcp_port" timeout=1)
t0=$(now)
if "$NBDCRYPT" kms --config "$c" versions 2> "$tmpdir/err"; then fail "all down succeeded"; fi
t=$(echo "$(now) - $t0" | bc)
cat "$tmpdir/err"
grep -q "all 2 KMS servers failed: 127.0.0.1:$dead: connection refused .*; 127.0.0.1:$fake_silent_tcp_port: TLS handshake timed out after 1.0 s" "$tmpdir/err" ||
  fail "all-down message"
(( $(echo "$t < 3" | bc) )) || fail "took ${t}s with timeout 1 s"

# expect MODE REGEX: a fake server in MODE yields a one-line error matching REGEX, within
# the timeout, exit status 1 (no crash), modest memory (no allocation of announced sizes).
expect () {
  local mode=$1 want=$2 port_var="fake_${1//-/_}_port" rc=0
  c=$(conf "$mode" "server=127.0.0.1:${!port_var}" timeout=2)
  t0=$(now)
  /usr/bin/time -f %M -o "$tmpdir/rss" "$NBDCRYPT" kms --config "$c" --kmip-version 1.4 \
    get 1 --out "$tmpdir/k-$mode" 2> "$tmpdir/err" || rc=$?
  t=$(echo "$(now) - $t0" | bc)
  echo "$mode: rc=$rc ${t}s maxrss=$(tail -1 "$tmpdir/rss")KB: $(cat "$tmpdir/err")"
  [ $rc -eq 1 ] || fail "$mode: exit status $rc"
  grep -Eq -- "$want" "$tmpdir/err" || fail "$mode: not /$want/"
  [ "$(wc -l < "$tmpdir/err")" -eq 1 ] || fail "$mode: not one line"
  (( $(echo "$t < 4" | bc) )) || fail "$mode: took ${t}s (timeout 2 s)"
  # ASan builds reserve much more; the point is that 2 GiB announced is never allocated.
  [ "$(tail -1 "$tmpdir/rss")" -lt 400000 ] || fail "$mode: used $(tail -1 "$tmpdir/rss") KB"
  [ ! -e "$tmpdir/k-$mode" ] || fail "$mode: output file created"
}
expect silent-tcp "TLS handshake timed out after 2.0 s"
expect silent-tls "no response within 2.0 s"
expect not-tls "does not speak TLS"
expect truncated "closed the connection in the middle of a response"
expect oversized "(too big|larger|exceeds|over).*"
expect garbage "bad response|malformed|decode|not a KMIP"
expect bad-shape "not a KMIP ResponseMessage"
expect close "the server closed the connection"

# A server without DiscoverVersions (KMIP 1.0): the client falls back to 1.0, and the
# server's failure reason and message come through verbatim.
c=$(conf kmip10 "server=127.0.0.1:$fake_kmip10_port" max-version=2.0)
if "$NBDCRYPT" kms --config "$c" get some-key --out "$tmpdir/k10" 2> "$tmpdir/err"; then
  fail "kmip10: succeeded"
fi
cat "$tmpdir/err"
grep -qx "nbdcrypt kms get: Get failed: Item Not Found: request version 1.0" "$tmpdir/err" ||
  fail "kmip10: no fallback to 1.0"
"$NBDCRYPT" kms --config "$c" versions > "$tmpdir/out"
grep -qx "using 1.0" "$tmpdir/out" || fail "kmip10: versions"
grep -q "supported unknown (DiscoverVersions failed: DiscoverVersions failed: Operation Not Supported: DiscoverVersions is not a KMIP 1.0 operation)" "$tmpdir/out" ||
  { cat "$tmpdir/out"; fail "kmip10: versions output"; }
# A 1.2 server that refuses a 2.0 header: DiscoverVersions is asked again in the version it
# answered in, and 1.2 is used.
c=$(conf kmip12 "server=127.0.0.1:$fake_kmip12_port" max-version=2.0)
"$NBDCRYPT" kms --config "$c" versions > "$tmpdir/out"
grep -qx "using 1.2" "$tmpdir/out" || { cat "$tmpdir/out"; fail "kmip12: not 1.2"; }
grep -qx "supported 1.2 1.1 1.0" "$tmpdir/out" || { cat "$tmpdir/out"; fail "kmip12: list"; }
if "$NBDCRYPT" kms --config "$c" get some-key --out "$tmpdir/k12" 2> "$tmpdir/err"; then
  fail "kmip12: succeeded"
fi
grep -q "Item Not Found: request version 1.2" "$tmpdir/err" || fail "kmip12: $(cat "$tmpdir/err")"

# Key material in TransparentSymmetricKey format (a Key inside a Key Material structure), and
# a wrapped key, which this client refuses rather than return wrapped bytes as the key.
c=$(conf transparent "server=127.0.0.1:$fake_transparent_port" version=1.4)
"$NBDCRYPT" kms --config "$c" get k1 --format transparent --out "$tmpdir/tkey"
[ "$(od -An -tx1 -v "$tmpdir/tkey" | tr -d ' \n')" = "$(printf '%02x' $(seq 0 31))" ] ||
  fail "transparent key bytes"
c=$(conf wrapped "server=127.0.0.1:$fake_wrapped_port" version=1.4)
if "$NBDCRYPT" kms --config "$c" get k1 --out "$tmpdir/wkey" 2> "$tmpdir/err"; then
  fail "wrapped key accepted"
fi
grep -q "returned the key wrapped" "$tmpdir/err" || fail "wrapped: $(cat "$tmpdir/err")"
echo "$0: OK"
