#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the full key lifecycle through `nbdcrypt kms` against a real pykmip-server at
# every KMIP version 1.0-1.4 and 2.0: create (+activate, batched), get (raw; transparent), attrs,
# attr-list, locate (name, state, paging), register (key, secret data), encrypt/decrypt (CBC;
# GCM with AAD and tag from 1.4) checked with python3-cryptography, custom x- attributes,
# revoke, destroy; and the server's own answers for what it lacks.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
requires_py cryptography

kmip_start_server
conf="$tmpdir/kms.conf"
kmip_write_conf "$conf" max-version=2.0

kms () { "$NBDCRYPT" kms --config "$conf" "$@"; }
fail () { echo "$0: FAIL: $*" >&2; exit 1; }
# expect_fail REGEX CMD...: the command must fail with one stderr line matching REGEX.
expect_fail () {
  local want=$1; shift
  if "$@" > "$tmpdir/out" 2> "$tmpdir/err"; then fail "$* succeeded"; fi
  grep -Eq -- "$want" "$tmpdir/err" || { cat "$tmpdir/err" >&2; fail "$*: error not /$want/"; }
  [ "$(wc -l < "$tmpdir/err")" -eq 1 ] || { cat "$tmpdir/err" >&2; fail "$*: not one line"; }
}
hex () { od -An -tx1 -v "$1" | tr -d ' \n'; }

# Negotiation: the highest version both speak, bounded by max-version (default 1.4).
kms versions > "$tmpdir/v"
grep -qx "using 2.0" "$tmpdir/v" || { cat "$tmpdir/v"; fail "max-version=2.0 did not give 2.0"; }
grep -qx "supported 2.0 1.4 1.3 1.2 1.1 1.0" "$tmpdir/v" || fail "DiscoverVersions list"
kmip_write_conf "$tmpdir/default.conf"
"$NBDCRYPT" kms --config "$tmpdir/default.conf" versions | grep -qx "using 1.4" ||
  fail "default max-version should negotiate 1.4"
kmip_write_conf "$tmpdir/pinned.conf" version=1.1
"$NBDCRYPT" kms --config "$tmpdir/pinned.conf" versions | grep -qx "using 1.1" ||
  fail "version = 1.1 pin"
kms query | grep -q "^vendor: PyKMIP" || fail "query vendor"
kms query | grep -q "^operations:.* Get .*DiscoverVersions" || fail "query operations"

for v in 1.0 1.1 1.2 1.3 1.4 2.0; do
  k () { kms --kmip-version "$v" "$@"; }
  name="vol-$v-$RANDOM"

  # Create + Activate, then read it back.
  uid=$(k create --name "$name" --activate)
  [ -n "$uid" ] || fail "$v: no uid"
  k get "$uid" --out "$tmpdir/key-$v"
  [ "$(stat -c %s:%a "$tmpdir/key-$v")" = "32:600" ] || fail "$v: key file not 32 bytes 0600"
  k attrs "$uid" --json > "$tmpdir/attrs"
  "$PYTHON" - "$tmpdir/attrs" "$name" <<'PY' || fail "$v: attrs"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["state"] == "Active" and a["algorithm"] == "AES" and a["length"] == 256, a
assert a["object_type"] == "SymmetricKey" and a["names"] == [sys.argv[2]], a
assert a["usage_mask"] & 0xC == 0xC, a
PY
  k attr-list "$uid" | grep -qx "Cryptographic Length" || fail "$v: attr-list"
  [ "$(k locate --name "$name")" = "$uid" ] || fail "$v: locate by name"
  k locate --state active --type symmetric-key | grep -qx "$uid" || fail "$v: locate by state"

  # Create without activation stays Pre-Active; activate moves it.
  uid2=$(k create --length 128)
  k attrs "$uid2" | grep -qx "state: PreActive" || fail "$v: pre-active"
  k attrs "$uid2" | grep -qx "length: 128" || fail "$v: length 128"
  k activate "$uid2"
  k attrs "$uid2" | grep -qx "state: Active" || fail "$v: activate"

  # Register known bytes and get the same bytes back; secret data too.
  head -c 32 /dev/urandom > "$tmpdir/reg-$v"
  ruid=$(k register --in "$tmpdir/reg-$v" --name "reg-$name")
  k get "$ruid" --out "$tmpdir/reg-back-$v"
  cmp "$tmpdir/reg-$v" "$tmpdir/reg-back-$v" || fail "$v: registered key differs"
  head -c 20 /dev/urandom > "$tmpdir/sd-$v"
  suid=$(k register --secret-data --in "$tmpdir/sd-$v")
  k get "$suid" --out "$tmpdir/sd-back-$v"
  cmp "$tmpdir/sd-$v" "$tmpdir/sd-back-$v" || fail "$v: secret data differs"
  k attrs "$suid" | grep -qx "object type: SecretData" || fail "$v: secret data type"

  # Encrypt/Decrypt exist from KMIP 1.2; the result is checked with python3-cryptography.
  k activate "$ruid"
  printf 'wrap me: a data encryption key' > "$tmpdir/plain"
  iv=000102030405060708090a0b0c0d0e0f
  if [ "$v" = 1.0 ] || [ "$v" = 1.1 ]; then
    expect_fail "Encrypt failed: Operation Not Supported" \
      k encrypt "$ruid" --in "$tmpdir/plain" --out "$tmpdir/ct-$v" --iv $iv
  else
    k encrypt "$ruid" --in "$tmpdir/plain" --out "$tmpdir/ct-$v" --iv $iv
    "$PYTHON" - "$tmpdir/reg-$v" "$tmpdir/ct-$v" "$tmpdir/plain" $iv <<'PY' ||
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import padding
key, ct, pt = (open(f, "rb").read() for f in sys.argv[1:4])
d = Cipher(algorithms.AES(key), modes.CBC(bytes.fromhex(sys.argv[4]))).decryptor()
u = padding.PKCS7(128).unpadder()
assert u.update(d.update(ct) + d.finalize()) + u.finalize() == pt
PY
      fail "$v: server-side AES-CBC ciphertext does not decrypt locally"
    k decrypt "$ruid" --in "$tmpdir/ct-$v" --out "$tmpdir/pt-$v" --iv $iv
    cmp "$tmpdir/plain" "$tmpdir/pt-$v" || fail "$v: decrypt"
  fi
  # AES-GCM (nonce, additional data, 16-byte tag after the ciphertext): the Authenticated
  # Encryption fields exist from KMIP 1.4. Checked with python3-cryptography both ways; a
  # wrong AAD or a flipped tag bit fails on the server (PyKMIP: General Failure).
  nonce=0a0b0c0d0e0f101112131415
  if [ "${v/./}" -lt 14 ]; then
    expect_fail "Encrypt: GCM tags and additional data need KMIP 1.4 or later" \
      k encrypt "$ruid" --mode gcm --iv $nonce --aad 01 --in "$tmpdir/plain" --out "$tmpdir/g-$v"
  else
    k encrypt "$ruid" --mode gcm --iv $nonce --aad 6869 --in "$tmpdir/plain" \
      --out "$tmpdir/gct-$v"
    "$PYTHON" - "$tmpdir/reg-$v" "$tmpdir/gct-$v" "$tmpdir/plain" $nonce \
        "$tmpdir/lct-$v" <<'PY' || fail "$v: server-side AES-GCM does not match python3-cryptography"
import sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key, ct, pt = (open(f, "rb").read() for f in sys.argv[1:4])
g = AESGCM(key)
assert len(ct) == len(pt) + 16
assert g.decrypt(bytes.fromhex(sys.argv[4]), ct, b"hi") == pt
# A locally made ciphertext (other nonce, no AAD) for the server to decrypt.
open(sys.argv[5], "wb").write(g.encrypt(bytes(12), pt + b"!", None))
PY
    k decrypt "$ruid" --mode gcm --iv $nonce --aad 6869 --in "$tmpdir/gct-$v" \
      --out "$tmpdir/gpt-$v"
    cmp "$tmpdir/plain" "$tmpdir/gpt-$v" || fail "$v: GCM decrypt"
    k decrypt "$ruid" --mode gcm --iv 000000000000000000000000 --in "$tmpdir/lct-$v" \
      --out "$tmpdir/lpt-$v"
    [ "$(cat "$tmpdir/lpt-$v")" = "$(cat "$tmpdir/plain")!" ] || fail "$v: GCM decrypt of ours"
    expect_fail "Decrypt failed: General Failure" k decrypt "$ruid" --mode gcm --iv $nonce \
      --aad 6870 --in "$tmpdir/gct-$v" --out "$tmpdir/bad-$v"
    "$PYTHON" -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[-1] ^= 1
open(sys.argv[2], 'wb').write(b)" "$tmpdir/gct-$v" "$tmpdir/gbad-$v"
    expect_fail "Decrypt failed: General Failure" k decrypt "$ruid" --mode gcm --iv $nonce \
      --aad 6869 --in "$tmpdir/gbad-$v" --out "$tmpdir/bad2-$v"
    if [ -e "$tmpdir/bad-$v" ] || [ -e "$tmpdir/bad2-$v" ]; then
      fail "$v: output written after a bad AAD or tag"
    fi
  fi

  # What pykmip-server 0.10 lacks, reported as the server says it.
  expect_fail "Rekey failed: Operation Not Supported" k rekey "$uid"
  # PyKMIP has no AddAttribute payload parser: it rejects the message as a whole.
  expect_fail "AddAttribute failed: Invalid Message" k set-attr "$uid" Name extra
  expect_fail "AddAttribute failed: Invalid Message" k set-attr "$uid" x-vsphere-id abc
  # Custom attributes: PyKMIP stores none. At 1.x its ModifyAttribute fails on the unknown
  # name; at 2.0 our Vendor Attribute (an Attribute structure: Vendor Identification "x",
  # Attribute Name "vsphere-id") is refused by its New Attribute parser, which knows only its
  # own attribute tags ("Unrecognized attribute type: Tags.ATTRIBUTE").
  if [ "$v" = 2.0 ]; then
    expect_fail "ModifyAttribute failed: Invalid Message" \
      k set-attr "$uid" x-vsphere-id abc --modify
  else
    expect_fail "ModifyAttribute failed: General Failure" \
      k set-attr "$uid" x-vsphere-id abc --modify
  fi
  expect_fail "custom x-NAME attributes can be set" k set-attr "$uid" x- abc
  if [ "$v" = 2.0 ]; then r="Attribute Not Found"; else r="Invalid Field"; fi
  expect_fail "ModifyAttribute failed: $r: The 'Contact Information' attribute is not set" \
    k set-attr "$uid" "Contact Information" ops --modify
  k set-attr "$uid" Name "renamed-$name" --modify
  k attrs "$uid" | grep -qx "name: renamed-$name" || fail "$v: ModifyAttribute Name"
  # Get in TransparentSymmetricKey format: the server's verbatim answer (it cannot convert).
  if k get "$uid" --format transparent --out "$tmpdir/tkey-$v" 2> "$tmpdir/err"; then
    cmp "$tmpdir/key-$v" "$tmpdir/tkey-$v" || fail "$v: transparent key differs"
  else
    grep -Eq "Get failed: Key Format Type Not Supported" "$tmpdir/err" ||
      { cat "$tmpdir/err"; fail "$v: transparent get"; }
  fi

  # Revoke (compromise), destroy; then the key is gone.
  k revoke "$uid" --reason compromised --message "test"
  k attrs "$uid" | grep -qx "state: Compromised" || fail "$v: revoke compromised"
  k revoke "$uid2" --reason superseded
  k attrs "$uid2" | grep -qx "state: Deactivated" || fail "$v: revoke superseded"
  k destroy "$uid"
  expect_fail "Get failed: Item Not Found" k get "$uid" --out "$tmpdir/gone-$v"
  [ ! -e "$tmpdir/gone-$v" ] || fail "$v: output file left behind"
  expect_fail "Activate failed: Item Not Found" k activate "no-such-key-$v"
done

# Paging: --max limits the count; --offset skips (KMIP >= 1.3 on the wire, applied locally
# for older versions).
all=$(kms locate | wc -l)
[ "$all" -ge 18 ] || fail "locate found only $all objects"
[ "$(kms locate --max 3 | wc -l)" -eq 3 ] || fail "locate --max 3"
for v in 1.2 1.4; do
  kms --kmip-version $v locate > "$tmpdir/all"
  kms --kmip-version $v locate --offset 2 > "$tmpdir/off"
  diff <(tail -n +3 "$tmpdir/all") "$tmpdir/off" || fail "$v: locate --offset 2"
done

# The CLI refuses to write key bytes to a terminal or over an existing file.
expect_fail "must not exist" kms get "$ruid" --out "$tmpdir/reg-1.4"
expect_fail "--out FILE is required" kms get "$ruid"
echo "$0: OK"
