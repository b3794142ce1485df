#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a KMS keyslot next to a KEK file slot, with a real PyKMIP server. A volume
# formatted under KEK file A gets a KMS KEK (created by add-kek, wrap kms: the KEK never leaves
# the server); nbdkit serves it with kms-config= alone and reads the data written under A;
# python3-cryptography decrypts the data under the DEK it unwraps with the KEK PyKMIP's own
# client fetches. While nbdkit serves through the KMS slot (slot 1), revoking that KEK is seen
# by the key check (it watches the KEK the volume opened with) and new connections are
# refused. The KEK file slot still opens the volume after the revocation (a recovery KEK);
# remove-kek of the revoked KMS slot leaves a version 2 one-slot volume that the file serves.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdcopy
requires nbdsh
requires_py cryptography
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4 timeout=2
kms () { "$NBDCRYPT" kms --config "$conf" "$@"; }
F=$NBDCRYPT_FILTER

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
json_get () {
  "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($2)"
}
wait_log () {  # wait_log NAME REGEX SECONDS
  for _ in $(seq $(($3 * 10))); do grep -Eq "$2" "$tmpdir/$1.log" && return 0; sleep 0.1; done
  echo "$0: FAIL: no /$2/ in the log after $3 s:"; cat "$tmpdir/$1.log"; exit 1
}

vol=$tmpdir/vol.img
truncate -s 9M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/A" --create-kek >/dev/null 2>&1
head -c $((8 << 20)) /dev/urandom > "$tmpdir/plain"
start_nbdkit vol --filter="$F" file "$vol" kek-file="$tmpdir/A"
env -u LD_PRELOAD nbdcopy "$tmpdir/plain" "$uri"
stop_nbdkit vol
fpA=$(json_get "$vol" 'd["kek_id"]')

# A KMS KEK joins: the key given is the file; the new KEK is created in --kms-config's KMS.
"$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/A" --kms-config "$conf" --create-kek \
  --name slot-kek --wrap kms >"$tmpdir/out"
grep -q "added keyslot 1 .*KEK kmip .* (wrap kms); 2 keyslots, header version 3" "$tmpdir/out" ||
  { cat "$tmpdir/out"; fail "add-kek output"; }
uid=$(json_get "$vol" 'd["keyslots"][1]["kek_id"]')
[ "$(json_get "$vol" 'd["keyslots"][0]["kek_provider"], d["keyslots"][1]["kek_provider"]')" = \
  "file kmip" ] || fail "slots: $("$NBDCRYPT" dump "$vol")"

# The oracle: the KEK from PyKMIP's client, the kms-wrapped slot unwrapped, the data decrypted.
oracle kms-get --port "$kmip_port" --pki "$kmip_pki" --version 1.4 "$uid" "$tmpdir/kek.bin"
oracle unwrap-dek "$vol" "$tmpdir/kek.bin" "$tmpdir/dek.kms"
oracle unwrap-dek "$vol" "$tmpdir/A" "$tmpdir/dek.A"
cmp -s "$tmpdir/dek.kms" "$tmpdir/dek.A" || fail "the two slots hold different data keys"
oracle check-data "$vol" "$tmpdir/dek.kms" "$tmpdir/plain"

# Served through the KMS slot only; the log names the KEK it opened with.
start_nbdkit vol --filter="$F" file "$vol" kms-config="$conf" key-check-interval=1
env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
cmp -s "$tmpdir/plain" "$tmpdir/back" || fail "data read through the KMS slot differs"
# Revoked while served: the key check watches the KMS slot's KEK, not slot 0's file.
kms revoke "$uid" --reason compromised
wait_log vol "is compromised in the KMS" 10
if env -u LD_PRELOAD nbdsh -u "$uri" -c 'h.pread(512, 0)' >"$tmpdir/new.out" 2>&1; then
  fail "a new connection was served after the KMS KEK was revoked"
fi
stop_nbdkit vol
volume_fails "$uid" --filter="$F" file "$vol" kms-config="$conf"

# The recovery KEK file still opens it; remove the revoked KMS slot with it.
start_nbdkit vol --filter="$F" file "$vol" kek-file="$tmpdir/A"
env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
stop_nbdkit vol
cmp -s "$tmpdir/plain" "$tmpdir/back" || fail "data read through the file slot differs"
"$NBDCRYPT" remove-kek "$vol" --kek-file "$tmpdir/A" --kek-id "$uid" >/dev/null 2>&1
[ "$(json_get "$vol" 'd["version"], len(d["keyslots"]), d["kek_id"]')" = "2 1 $fpA" ] ||
  fail "after remove-kek: $("$NBDCRYPT" dump "$vol")"
volume_fails "this volume's KEK is a local KEK file .*give kek-file=" \
  --filter="$F" file "$vol" kms-config="$conf"
echo "a KMS keyslot next to a KEK file: served, revoked, recovered through the file: OK"
