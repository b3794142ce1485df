#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: envelope encryption with a real PyKMIP server, OKMS profile (client pinned to
# KMIP 1.4, AES-256 KEK, UUID-style identifiers as the server issues them): `nbdcrypt format`
# with --create-kek and with --kek-id, wrap local (RFC 5649) and wrap kms (server-side
# Encrypt); the DEK is unwrapped independently — KEK fetched by PyKMIP's own client (pinned
# to 1.4 too), RFC 5649 / AES-CBC by python3-cryptography, key check value recomputed — and
# equals what `dump --dump-volume-key` writes. A KEK that is not active, missing, or another
# identity's is refused with a reason; a KEK file volume refuses a KMS config and vice versa.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires_py cryptography
kmip_start_server
kmip_write_conf "$tmpdir/kms.conf" version=1.4
kms () { "$NBDCRYPT" kms --config "$tmpdir/kms.conf" "$@"; }

check_dek () {  # check_dek IMAGE: the oracle's DEK == the tool's DEK
  local img=$1 uid
  uid=$("$NBDCRYPT" dump --json "$img" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])')
  rm -f "$tmpdir/kek.bin" "$tmpdir/dek.oracle" "$tmpdir/dek.tool"
  oracle kms-get --port "$kmip_port" --pki "$kmip_pki" --version 1.4 "$uid" "$tmpdir/kek.bin"
  [ "$(stat -c %s "$tmpdir/kek.bin")" = 32 ] || { echo "$0: FAIL: KEK is not AES-256"; exit 1; }
  oracle unwrap-dek "$img" "$tmpdir/kek.bin" "$tmpdir/dek.oracle"
  "$NBDCRYPT" dump "$img" --kms-config "$tmpdir/kms.conf" --dump-volume-key "$tmpdir/dek.tool" 2>/dev/null
  [ "$(stat -c %a "$tmpdir/dek.tool")" = 600 ] || { echo "$0: FAIL: key file not 0600"; exit 1; }
  cmp "$tmpdir/dek.oracle" "$tmpdir/dek.tool" || { echo "$0: FAIL: $img: DEKs differ"; exit 1; }
  [ "$(stat -c %s "$tmpdir/dek.tool")" = 64 ]
}

# 1. --create-kek, local wrap (default).
truncate -s 8M "$tmpdir/a.img"
"$NBDCRYPT" format "$tmpdir/a.img" --kms-config "$tmpdir/kms.conf" --create-kek --name vol-a-kek \
  > "$tmpdir/out"
grep -q "KEK: kmip .* (wrap aes-kwp)" "$tmpdir/out"
"$NBDCRYPT" dump --json "$tmpdir/a.img" | grep '"kek_provider": "kmip"' >/dev/null
check_dek "$tmpdir/a.img"
uid_a=$("$NBDCRYPT" dump --json "$tmpdir/a.img" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])')
kms locate --name vol-a-kek | grep -x "$uid_a" >/dev/null

# 2. --kek-id of a KEK created by PyKMIP's own client, wrap kms (the KEK never leaves the KMS).
uid_b=$("$PYTHON" -c "$(kmip_pyclient client 1.4)
uid = c.create(enums.CryptographicAlgorithm.AES, 256)
c.activate(uid)
print(uid)")
truncate -s 8M "$tmpdir/b.img"
"$NBDCRYPT" format "$tmpdir/b.img" --kms-config "$tmpdir/kms.conf" --kek-id "$uid_b" --wrap kms \
  | grep "wrap kms" >/dev/null
"$NBDCRYPT" dump --json "$tmpdir/b.img" | grep '"wrap": "kms"' >/dev/null
check_dek "$tmpdir/b.img"
"$NBDCRYPT" verify "$tmpdir/b.img" --kms-config "$tmpdir/kms.conf" | grep "KEK $uid_b (kmip): active" >/dev/null

# 3. Refusals with reasons.
uid_pre=$("$PYTHON" -c "$(kmip_pyclient client 1.4)
print(c.create(enums.CryptographicAlgorithm.AES, 256))")     # created, never activated
truncate -s 8M "$tmpdir/c.img"
if "$NBDCRYPT" format "$tmpdir/c.img" --kms-config "$tmpdir/kms.conf" --kek-id "$uid_pre" \
     2>"$tmpdir/err"; then echo "$0: FAIL: formatted with a pre-active KEK"; exit 1; fi
grep -q "is pre-active in the KMS" "$tmpdir/err"
if "$NBDCRYPT" format "$tmpdir/c.img" --kms-config "$tmpdir/kms.conf" --kek-id 99999 \
     2>"$tmpdir/err"; then echo "$0: FAIL: formatted with a missing KEK"; exit 1; fi
grep -q "99999 does not exist in the KMS" "$tmpdir/err"
# Another identity's KEK.
uid_other=$("$PYTHON" -c "$(kmip_pyclient client2 1.4)
uid = c.create(enums.CryptographicAlgorithm.AES, 256)
c.activate(uid)
print(uid)")
if "$NBDCRYPT" format "$tmpdir/c.img" --kms-config "$tmpdir/kms.conf" --kek-id "$uid_other" \
     2>"$tmpdir/err"; then echo "$0: FAIL: formatted with another identity's KEK"; exit 1; fi
grep -Eiq "permission denied|not visible|does not exist" "$tmpdir/err"
# The wrong kind of key option for the volume.
head -c 32 /dev/urandom > "$tmpdir/kek.file"
if "$NBDCRYPT" verify "$tmpdir/a.img" --kek-file "$tmpdir/kek.file" 2>"$tmpdir/err"; then
  echo "$0: FAIL: KMS volume opened with a KEK file"; exit 1; fi
grep -q "KEK (.*) is in a KMS: give --kms-config" "$tmpdir/err"
# Nothing was written to c.img by the refused formats.
[ "$(tr -d '\0' < "$tmpdir/c.img" | wc -c)" = 0 ]
echo "envelope encryption checked against PyKMIP + python3-cryptography"
