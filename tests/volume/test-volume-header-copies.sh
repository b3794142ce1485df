#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the two header copies: one damaged (a flipped byte in copy A, or copy B zeroed)
# → the volume opens from the other with a warning naming the damaged copy, and `verify
# --repair` rewrites it; both damaged → refused with a reason naming both; garbage in the
# header's fields with a recomputed checksum → refused. Also through nbdkit once the filter
# serves volumes (see test-volume-serve-*.sh).
source "$srcdir/functions.sh"

vol=$tmpdir/vol.img kek=$tmpdir/kek
truncate -s 8M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek >/dev/null
cp "$vol" "$tmpdir/good.img"

# dump --json (no key): the documented keys, and values that match the bytes on disk.
"$NBDCRYPT" dump --json "$vol" > "$tmpdir/dump.json"
"$PYTHON" - "$tmpdir/dump.json" "$vol" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read(4096)
for k, t in [("uuid", str), ("cipher", str), ("sector_size", int), ("data_offset", int),
             ("kek_provider", str), ("kek_id", str), ("wrap", str), ("wrapped_dek", str)]:
    assert isinstance(d[k], t), k
assert (d["cipher"], d["sector_size"], d["data_offset"]) == ("aes-256-xts", 4096, 1 << 20)
assert (d["kek_provider"], d["wrap"]) == ("file", "aes-kwp") and d["kek_id"].startswith("sha256:")
assert bytes.fromhex(d["wrapped_dek"]) == raw[400:472], "wrapped_dek is not the on-disk bytes"
assert d["uuid"].replace("-", "") == raw[88:104].hex(), "uuid"
PY

flip () { # flip OFFSET
  local b
  b=$(dd if="$vol" bs=1 skip="$1" count=1 status=none | od -An -tu1 | tr -d ' ')
  printf "\\$(printf %03o $(( (b ^ 0x5a) & 255 )))" |
    dd of="$vol" bs=1 seek="$1" conv=notrunc status=none
}

# Copy A damaged.
flip 200
"$NBDCRYPT" verify "$vol" --kek-file "$kek" > "$tmpdir/out" 2>&1
grep -q "header copy A: INVALID: volume header: checksum mismatch" "$tmpdir/out"
grep -q "warning: header copy A is damaged" "$tmpdir/out"
grep -q "unwrapped from copy B" "$tmpdir/out"
"$NBDCRYPT" verify "$vol" --kek-file "$kek" --repair | grep "repaired header copy A" >/dev/null
cmp "$vol" "$tmpdir/good.img" || { echo "$0: FAIL: repair did not restore copy A"; exit 1; }

# Copy B wiped.
dd if=/dev/zero of="$vol" bs=4096 seek=128 count=1 conv=notrunc status=none
"$NBDCRYPT" verify "$vol" --kek-file "$kek" 2>&1 | grep "header copy B is damaged" >/dev/null
"$NBDCRYPT" dump --json "$vol" 2>/dev/null | grep '"copy": "B", "offset": 524288, "valid": false' >/dev/null

# Both damaged.
flip 300
if "$NBDCRYPT" verify "$vol" --kek-file "$kek" > "$tmpdir/out" 2>&1; then
  echo "$0: FAIL: opened with both copies damaged"; exit 1
fi
grep -q "corrupt in both copies" "$tmpdir/out"
if "$NBDCRYPT" dump "$vol" > "$tmpdir/out" 2>&1; then
  echo "$0: FAIL: dump of a volume with no valid copy succeeded"; exit 1
fi

# A value out of range with a valid checksum: refused by the parser, not trusted.
cp "$tmpdir/good.img" "$vol"
"$PYTHON" - "$vol" <<'PY'
import hashlib, sys
with open(sys.argv[1], "r+b") as f:
    for off in (0, 512 * 1024):
        f.seek(off); b = bytearray(f.read(4096))
        b[106:108] = (600).to_bytes(2, "big")         # wrapped key length > 512
        b[4064:4096] = hashlib.sha256(b[:4064]).digest()
        f.seek(off); f.write(b)
PY
if "$NBDCRYPT" verify "$vol" --kek-file "$kek" > "$tmpdir/out" 2>&1; then
  echo "$0: FAIL: opened a header with a 600-byte wrapped key"; exit 1
fi
grep -q "wrapped key length 600 out of range" "$tmpdir/out"
echo "header copies behave"
