#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt reencrypt` of a volume with a KMS keyslot (a real PyKMIP server, wrap
# kms: the KEK never leaves it) next to a KEK file slot. Given both keys, both slots are kept
# and wrap the new data key: nbdkit serves the same data through either alone, and
# python3-cryptography decrypts every sector under the new key only. Given only the KMS, the
# run removes the KEK file slot with a notice naming add-kek, and the KMS slot serves.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4 timeout=2
F=$NBDCRYPT_FILTER
fail () { echo "$0: FAIL: $*" >&2; exit 1; }
json_get () {
  "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($2)"
}
served_same () {  # served_same KEY-PARAM: nbdkit with that key serves $tmpdir/plain
  start_nbdkit vol --filter="$F" file "$vol" "$1"
  env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
  stop_nbdkit vol
  cmp -s "$tmpdir/plain" "$tmpdir/back" || fail "served with $1: other data"
}

vol=$tmpdir/vol.img
truncate -s 9M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/A" --create-kek >/dev/null 2>&1
"$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/A" --kms-config "$conf" --create-kek \
  --name reenc-kek --wrap kms >/dev/null
head -c $((8 << 20)) /dev/urandom > "$tmpdir/plain"
start_nbdkit vol --filter="$F" file "$vol" kms-config="$conf"
env -u LD_PRELOAD nbdcopy "$tmpdir/plain" "$uri"
stop_nbdkit vol
"$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/A" --dump-volume-key "$tmpdir/dek.0" 2>/dev/null

# Both keys given: both slots kept.
"$NBDCRYPT" reencrypt "$vol" --kms-config "$conf" --kek-file "$tmpdir/A" --zone-size 2M \
  >"$tmpdir/out" 2>"$tmpdir/err" || { cat "$tmpdir/err"; fail "reencrypt with both keys"; }
[ "$(json_get "$vol" '[s["kek_provider"] + "/" + s["wrap"] for s in d["keyslots"]]')" = \
  "['file/aes-kwp', 'kmip/kms']" ] || fail "slots after the run: $("$NBDCRYPT" dump "$vol")"
! grep -q "removed the keyslot" "$tmpdir/err" || fail "a slot was removed: $(cat "$tmpdir/err")"
"$NBDCRYPT" dump "$vol" --kms-config "$conf" --dump-volume-key "$tmpdir/dek.1k" 2>/dev/null
"$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/A" --dump-volume-key "$tmpdir/dek.1f" 2>/dev/null
cmp -s "$tmpdir/dek.1k" "$tmpdir/dek.1f" || fail "the two slots hold different keys"
cmp -s "$tmpdir/dek.0" "$tmpdir/dek.1k" && fail "the data key did not change"
oracle check-data "$vol" "$tmpdir/dek.1k" "$tmpdir/plain"
msg=$(oracle check-data "$vol" "$tmpdir/dek.0" "$tmpdir/plain" 2>&1 | tail -1) || true
[ "$msg" = "2048 of 2048 sectors differ" ] || fail "old key: $msg"
served_same kms-config="$conf"
served_same kek-file="$tmpdir/A"

# Only the KMS given: the KEK file slot goes, with a notice.
"$NBDCRYPT" reencrypt "$vol" --kms-config "$conf" >"$tmpdir/out" 2>"$tmpdir/err" ||
  { cat "$tmpdir/err"; fail "reencrypt with the KMS only"; }
grep -q "removed the keyslot of KEK file sha256:.*'nbdcrypt add-kek" "$tmpdir/err" ||
  fail "no notice: $(cat "$tmpdir/err")"
[ "$(json_get "$vol" '[s["kek_provider"] for s in d["keyslots"]], d["version"]')" = \
  "['kmip'] 2" ] || fail "slots: $("$NBDCRYPT" dump "$vol")"
served_same kms-config="$conf"
echo "KMS + KEK file slots re-encrypted together; the KMS alone drops the file slot"
