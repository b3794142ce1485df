#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: our client and PyKMIP's own client (ProxyKmipClient) agree on the same server:
# a key created (or registered) by ours has the same bytes when fetched by theirs, and a key
# created or registered by theirs has the same bytes when fetched by ours; names and states
# set by one are seen by the other. At KMIP 1.2 (PyKMIP's default), 1.4 and 2.0; and a key
# created and fetched in one exchange through the ID placeholder, at 1.0-2.0.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"

kmip_start_server
fail () { echo "$0: FAIL: $*" >&2; exit 1; }
hex () { od -An -tx1 -v "$1" | tr -d ' \n'; }

for v in 1.2 1.4 2.0; do
  kmip_write_conf "$tmpdir/kms.conf" version=$v
  kms () { "$NBDCRYPT" kms --config "$tmpdir/kms.conf" "$@"; }

  # Ours creates, theirs reads.
  uid=$(kms create --name "ours-$v" --activate)
  kms get "$uid" --out "$tmpdir/ours-$v"
  theirs=$("$PYTHON" - <<PY
$(kmip_pyclient client $v)
k = c.get("$uid")
names = [a.attribute_value.name_value.value for a in c.get_attributes("$uid", ["Name"])[1]]
assert names == ["ours-$v"], names
print(k.value.hex(), k.cryptographic_length, c.get_attributes("$uid", ["State"])[1][0].attribute_value.value.name)
PY
)
  [ "$theirs" = "$(hex "$tmpdir/ours-$v") 256 ACTIVE" ] ||
    fail "$v: PyKMIP sees '$theirs' for our key $(hex "$tmpdir/ours-$v")"

  # Theirs creates and registers, ours reads.
  "$PYTHON" - > "$tmpdir/py-$v" <<PY
$(kmip_pyclient client $v)
from kmip.pie import objects
uid = c.create(enums.CryptographicAlgorithm.AES, 256, name="theirs-$v")
c.activate(uid)
k = c.get(uid)
reg = objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 128, bytes(range(16)),
                           [enums.CryptographicUsageMask.ENCRYPT], name="theirs-reg-$v")
ruid = c.register(reg)
print(uid, k.value.hex(), ruid)
PY
  read -r tuid tkey ruid < "$tmpdir/py-$v"
  kms get "$tuid" --out "$tmpdir/theirs-$v"
  [ "$(hex "$tmpdir/theirs-$v")" = "$tkey" ] || fail "$v: our Get differs from PyKMIP's"
  kms attrs "$tuid" | grep -qx "name: theirs-$v" || fail "$v: name set by PyKMIP"
  kms attrs "$tuid" | grep -qx "state: Active" || fail "$v: state set by PyKMIP"
  kms get "$ruid" --out "$tmpdir/theirs-reg-$v"
  [ "$(hex "$tmpdir/theirs-reg-$v")" = 000102030405060708090a0b0c0d0e0f ] ||
    fail "$v: registered by PyKMIP, read by us"
  [ "$(kms locate --name "theirs-reg-$v")" = "$ruid" ] || fail "$v: locate PyKMIP's key"

  # Ours registers, theirs reads.
  head -c 32 /dev/urandom > "$tmpdir/reg-$v"
  ouid=$(kms register --in "$tmpdir/reg-$v" --name "ours-reg-$v")
  got=$("$PYTHON" -c "$(kmip_pyclient client $v)
print(c.get('$ouid').value.hex())")
  [ "$got" = "$(hex "$tmpdir/reg-$v")" ] || fail "$v: registered by us, read by PyKMIP"
  echo "$v: ours->theirs and theirs->ours agree"
done
# Create + Activate + Get through the ID placeholder (create --out): the bytes our client
# fetched in the creating exchange are the key PyKMIP's client fetches, at every version.
for v in 1.0 1.1 1.2 1.3 1.4 2.0; do
  kmip_write_conf "$tmpdir/ph.conf" version=$v
  uid=$("$NBDCRYPT" kms --config "$tmpdir/ph.conf" create --activate --name "ph-$v" \
          --out "$tmpdir/ph-$v")
  [ "$(stat -c %s:%a "$tmpdir/ph-$v")" = "32:600" ] || fail "$v: create --out file"
  got=$("$PYTHON" -c "$(kmip_pyclient client)
print(c.get('$uid').value.hex(), c.get_attributes('$uid', ['State'])[1][0].attribute_value.value.name)")
  [ "$got" = "$(hex "$tmpdir/ph-$v") ACTIVE" ] ||
    fail "$v: create --out wrote $(hex "$tmpdir/ph-$v"), PyKMIP sees '$got'"
done
echo "create --activate --out (ID placeholder): PyKMIP's client reads the same bytes at 1.0-2.0"
echo "$0: OK"
