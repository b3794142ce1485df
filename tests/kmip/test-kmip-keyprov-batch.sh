#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: one KMIP key provider for many volumes (keyprov-batch-test.c) against
# pykmip-server: batched prefetch of KEKs and KMS-wrapped DEKs, unwraps without round trips,
# a revoked or destroyed KEK failing alone, batched key-state checks, threads sharing it.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
prog=${1:?usage: test-kmip-keyprov-batch.sh PATH-OF-keyprov-batch-test}

kmip_start_server
# Both encodings of the State query (1.x Attribute Name, 2.0 Attribute Reference).
for v in 1.4 2.0; do
  kmip_write_conf "$tmpdir/$v.conf" version=$v
  mkdir -p "$tmpdir/scratch-$v"
  "$prog" "$tmpdir/$v.conf" "$tmpdir/scratch-$v"
done
echo "$0: OK"
