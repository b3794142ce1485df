#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the kmip-client C API against pykmip-server (kmip-api-test.c): connection reuse,
# batching (Get+State; Create+Activate+Get through the ID placeholder, at 1.0-2.0; kmip_batch
# with a failed item, against pykmip and a server that stops at failures), threads
# sharing a handle, and transparent reconnection after a server restart.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
api=${1:?usage: test-kmip-api.sh PATH-OF-kmip-api-test}

kmip_start_server
for v in 1.0 1.1 1.2 1.3 1.4 2.0; do
  kmip_write_conf "$tmpdir/$v.conf" version=$v
done
for v in 1.0 1.4 2.0; do
  "$api" "$tmpdir/$v.conf" basic
done
# ID placeholder batches (Create + Activate + Get), request counts, on fresh handles.
for v in 1.0 1.1 1.2 1.3 1.4 2.0; do
  "$api" "$tmpdir/$v.conf" placeholder
done
# A server that honours the placeholder in Activate too (fake): one message for all three;
# one whose Get answers for another object (a leaked placeholder): refused.
for m in placeholder stale-placeholder; do
  kmip_start_fake $m
  port_var="fake_${m//-/_}_port"
  kmip_write_conf "$tmpdir/$m.conf" server="127.0.0.1:${!port_var}" version=1.4
  "$api" "$tmpdir/$m.conf" $m-fake
done
kmip_write_conf "$tmpdir/kms.conf"
"$api" "$tmpdir/kms.conf" threads
# kmip_batch: pykmip-server goes on after a failed item ("Continue"); a server that stops
# anyway and caps the items a message (fake) gets the rest in later, smaller messages.
for v in 1.4 2.0; do
  "$api" "$tmpdir/$v.conf" batch
done
kmip_start_fake batch-stop
kmip_write_conf "$tmpdir/batch-stop.conf" server="127.0.0.1:$fake_batch_stop_port" version=1.4
"$api" "$tmpdir/batch-stop.conf" batch-stop-fake
grep -c "^request: .* continue$" "$tmpdir/fake_batch_stop/stderr.log" | grep -qx 7

# reconnect_around CMD...: run the "reconnect" scenario, doing CMD while the program holds
# an open connection; its next call must notice, reconnect once and succeed.
reconnect_around () {
  rm -f "$tmpdir/go"
  mkfifo "$tmpdir/go"
  "$api" "$tmpdir/kms.conf" reconnect < "$tmpdir/go" > "$tmpdir/out" &
  local pid=$!
  exec 3> "$tmpdir/go"
  for _ in $(seq 100); do grep -q ready "$tmpdir/out" && break; sleep 0.1; done
  grep -q ready "$tmpdir/out" || { echo "$0: FAIL: reconnect program not ready" >&2; exit 1; }
  "$@"
  echo go >&3
  exec 3>&-
  wait $pid
  cat "$tmpdir/out"
}

# The server restarts (same port and database).
reconnect_around kmip_restart_server
grep -qx "reconnect: ok, 2 connections, now connected to 127.0.0.1:$kms_port" "$tmpdir/out"

# Failover of a live handle: two servers sharing one database (a replicated KMS); the first
# goes down while the program is connected to it, and the next call lands on the second.
kmip_start_server kms2 server kms
kmip_write_conf "$tmpdir/kms.conf" server="127.0.0.1:$kms_port, 127.0.0.1:$kms2_port"
reconnect_around kmip_stop_server kms
grep -qx "ready, connected to 127.0.0.1:$kms_port" "$tmpdir/out"
grep -qx "reconnect: ok, 2 connections, now connected to 127.0.0.1:$kms2_port" "$tmpdir/out"
echo "$0: OK"
