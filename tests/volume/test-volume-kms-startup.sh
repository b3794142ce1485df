#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: KMS unreachable at start: nbdkit retries with backoff for kms-startup-timeout=
# and then refuses to start with a one-line reason (within the timeout + a margin); started
# while the KMS is down and the KMS comes back within the timeout: it starts and serves.
# Also: wrong kms-config (a config naming a server that refuses) for `nbdcrypt verify`.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" timeout=2
truncate -s 8M "$tmpdir/vol.img"
"$NBDCRYPT" format "$tmpdir/vol.img" --kms-config "$conf" --create-kek >/dev/null
kmip_stop_server

t0=$(date +%s)
volume_fails "KMS unreachable: gave up after [0-9]+ attempts in [0-9]+ s .*kms-startup-timeout" \
  --filter="$NBDCRYPT_FILTER" file "$tmpdir/vol.img" kms-config="$conf" kms-startup-timeout=3
t1=$(date +%s)
echo "refused after $((t1 - t0)) s with kms-startup-timeout=3: $(grep -o 'KMS unreachable.*' "$tmpdir/vfail.out" | head -1)"
[ $((t1 - t0)) -ge 3 ] && [ $((t1 - t0)) -le 15 ] || { echo "$0: FAIL: timing"; exit 1; }

# Down at start, back after ~2 s: nbdkit waits and then serves.
( sleep 2; kmip_restart_server >/dev/null 2>&1 ) &
restarter=$!
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$tmpdir/vol.img" kms-config="$conf" \
  kms-startup-timeout=30
wait "$restarter"
nbdsh -u "$uri" -c 'h.pwrite(b"y" * 4096, 8192); assert h.pread(4096, 8192) == b"y" * 4096'
echo "started once the KMS came back"
