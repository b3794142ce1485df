#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: volumes keyed by a real PyKMIP server, OKMS profile (client pinned to KMIP 1.4,
# AES-256 KEKs): for wrap local and wrap kms, format → serve → random data → restart → intact,
# and the data area decrypts sector by sector under the DEK unwrapped independently (KEK
# fetched by PyKMIP's own client, unwrap and XTS by python3-cryptography). Then rewrap to a new
# KEK, revoke and destroy the old one, restart: intact, old KEK refused by `verify`. A revoked
# and a destroyed KEK make nbdkit refuse to start, naming the KEK. Headerless key-id=: a 64-byte
# Secret Data object registered with PyKMIP keys a raw volume, checked by the oracle.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4
kms () { "$NBDCRYPT" kms --config "$conf" "$@"; }
kek_id () { "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])'; }
oracle_check () {  # oracle_check IMAGE PLAIN
  rm -f "$tmpdir/kek.bin" "$tmpdir/dek.bin"
  oracle kms-get --port "$kmip_port" --pki "$kmip_pki" --version 1.4 "$(kek_id "$1")" "$tmpdir/kek.bin"
  oracle unwrap-dek "$1" "$tmpdir/kek.bin" "$tmpdir/dek.bin"
  oracle check-data "$1" "$tmpdir/dek.bin" "$2"
}
serve () { start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$1" kms-config="$conf"; }

for wrap in local kms; do
  vol=$tmpdir/$wrap.img
  truncate -s 17M "$vol"
  "$NBDCRYPT" format "$vol" --kms-config "$conf" --create-kek --name "kek-$wrap" --wrap "$wrap" >/dev/null
  serve "$vol"
  head -c $((16 << 20)) /dev/urandom > "$tmpdir/plain-$wrap"
  nbdcopy "$tmpdir/plain-$wrap" "$uri"
  stop_nbdkit vol
  serve "$vol"
  nbdcopy "$uri" "$tmpdir/back"
  cmp "$tmpdir/plain-$wrap" "$tmpdir/back" || { echo "$0: FAIL: $wrap: data differs"; exit 1; }
  stop_nbdkit vol
  oracle_check "$vol" "$tmpdir/plain-$wrap"
done

# Rotation: rewrap to a new KEK, revoke and destroy the old one, restart: intact.
vol=$tmpdir/local.img
old=$(kek_id "$vol")
"$NBDCRYPT" rewrap "$vol" --kms-config "$conf" --create-kek --name kek-rotated | grep "sequence 2" >/dev/null
new=$(kek_id "$vol")
[ "$old" != "$new" ]
kms revoke "$old" --reason superseded
kms destroy "$old"
serve "$vol"
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/plain-local" "$tmpdir/back" || { echo "$0: FAIL: data differs after rotation"; exit 1; }
stop_nbdkit vol
oracle_check "$vol" "$tmpdir/plain-local"

# Revoked, then destroyed KEK: nbdkit refuses to start and names it.
vol=$tmpdir/kms.img
uid=$(kek_id "$vol")
kms revoke "$uid" --reason compromised
volume_fails "KEK $uid is (compromised|deactivated) in the KMS" --filter="$NBDCRYPT_FILTER" \
  file "$vol" kms-config="$conf"
kms destroy "$uid"
volume_fails "KEK $uid (does not exist|is destroyed)" --filter="$NBDCRYPT_FILTER" \
  file "$vol" kms-config="$conf"

# Headerless: key-id= of 64 bytes of Secret Data registered by PyKMIP's client.
head -c 64 /dev/urandom > "$tmpdir/raw.key"
raw_uid=$("$PYTHON" -c "$(kmip_pyclient client 1.4)
from kmip.pie import objects
s = objects.SecretData(open('$tmpdir/raw.key', 'rb').read(), enums.SecretDataType.SEED)
uid = c.register(s)
c.activate(uid)
print(uid)")
truncate -s 8M "$tmpdir/raw.img"
start_nbdkit raw --filter="$NBDCRYPT_FILTER" file "$tmpdir/raw.img" kms-config="$conf" key-id="$raw_uid"
[ "$(nbdsh -u "$uri" -c 'print(h.get_size())')" = $((8 << 20)) ]
head -c $((8 << 20)) /dev/urandom > "$tmpdir/plain-raw"
nbdcopy "$tmpdir/plain-raw" "$uri"
stop_nbdkit raw
oracle check-raw "$tmpdir/raw.img" "$tmpdir/raw.key" 4096 "$tmpdir/plain-raw"
# A 32-byte AES key is the wrong size for aes-256-xts (OKMS issues AES-256 only: envelope mode).
uid32=$("$PYTHON" -c "$(kmip_pyclient client 1.4)
uid = c.create(enums.CryptographicAlgorithm.AES, 256)
c.activate(uid)
print(uid)")
volume_fails "holds 32 bytes but aes-256-xts needs 64" --filter="$NBDCRYPT_FILTER" \
  file "$tmpdir/raw.img" kms-config="$conf" key-id="$uid32"
echo "KMS-keyed volumes serve, rotate and match the oracle"
