#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the kmip-client C API against pykmip-server (kmip-api-test.c): connection reuse,
# batching, threads sharing a handle, and transparent reconnection after a server restart.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
api=${1:?usage: test-kmip-api.sh PATH-OF-kmip-api-test}

kmip_start_server
for v in 1.0 1.4 2.0; do
  kmip_write_conf "$tmpdir/$v.conf" version=$v
  "$api" "$tmpdir/$v.conf" basic
done
kmip_write_conf "$tmpdir/kms.conf"
"$api" "$tmpdir/kms.conf" threads

# Reconnect: the program holds an open connection while the server restarts (same port and
# database); its next call must see EOF, reconnect once and succeed.
mkfifo "$tmpdir/go"
"$api" "$tmpdir/kms.conf" reconnect < "$tmpdir/go" > "$tmpdir/out" &
pid=$!
exec 3> "$tmpdir/go"
for _ in $(seq 100); do grep -q ready "$tmpdir/out" && break; sleep 0.1; done
grep -q ready "$tmpdir/out" || { echo "$0: FAIL: reconnect program not ready" >&2; exit 1; }
kmip_restart_server
echo go >&3
exec 3>&-
wait $pid
cat "$tmpdir/out"
grep -q "reconnect: ok, 2 connections" "$tmpdir/out"
echo "$0: OK"
