#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: header fields are authenticated. A version 2 header's MAC matches the one
# python3-cryptography computes from docs/format.md (HKDF + HMAC-SHA256). sector_size,
# data_offset or UUID edited in both copies with recomputed checksums, or the header relabelled
# version 1: verify and nbdkit refuse ("header authentication failed"), never serve noise.
# A version 1 header written by the oracle still opens (verify, nbdkit, data decrypts), with a
# warning; verify --repair upgrades it to version 2 with the same data key, and rewrap of a
# version 1 volume writes version 2.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography

vol=$tmpdir/vol.img kek=$tmpdir/kek
truncate -s 8M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek >/dev/null
"$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek" 2>/dev/null
oracle check-mac "$vol" "$tmpdir/dek" >/dev/null
"$NBDCRYPT" dump --json "$vol" | grep -q '"version": 2,' ||
  { echo "$0: FAIL: format did not write version 2"; exit 1; }
cp "$vol" "$tmpdir/good.img"

# edit [OFFSET STRUCT-FORMAT VALUE]...: set big-endian fields in both copies of the good
# image, fix the checksums.
edit () {
  cp "$tmpdir/good.img" "$vol"
  "$PYTHON" - "$vol" "$@" <<'PY'
import hashlib, struct, sys
path, a = sys.argv[1], sys.argv[2:]
with open(path, "r+b") as f:
    for base in (0, 512 * 1024):
        f.seek(base); b = bytearray(f.read(4096))
        for off, fmt, val in zip(a[0::3], a[1::3], a[2::3]):
            v = bytes.fromhex(val) if fmt == "hex" else struct.pack(fmt, int(val))
            b[int(off):int(off) + len(v)] = v
        b[4064:4096] = hashlib.sha256(b[:4064]).digest()
        f.seek(base); f.write(b)
PY
}
# Version 2 says "header authentication failed"; relabelled version 1, the v1 key check fails.
why="header authentication failed|key check value mismatch"
refused () { # refused WHAT: verify and nbdkit both refuse, saying why
  if "$NBDCRYPT" verify "$vol" --kek-file "$kek" > "$tmpdir/out" 2>&1; then
    echo "$0: FAIL: verify accepted $1:"; cat "$tmpdir/out"; exit 1
  fi
  grep -Eq "$why" "$tmpdir/out" || { echo "$0: FAIL: $1: wrong reason:"; cat "$tmpdir/out"; exit 1; }
  volume_fails "$why" --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
}
edit 32 '>I' 512;        refused "sector size 4096 -> 512"
edit 24 '>Q' 2097152;    refused "data offset 1 MiB -> 2 MiB"
edit 88 hex 00112233445566778899aabbccddeeff;  refused "another UUID"
edit 8 '>H' 1;           refused "the header relabelled version 1"
# Relabelled version 1 and edited: the MAC sits where v1 wants its key check value.
edit 8 '>H' 1 32 '>I' 512;  refused "version 1 with sector size 512"

# A version 1 volume (written by the oracle, as nbdcrypt 1 did) still opens and serves.
v1=$tmpdir/v1.img
truncate -s 8M "$v1"
oracle make-v1 "$v1" "$kek" "$tmpdir/dek1" 4096
head -c $((7 << 20)) /dev/urandom > "$tmpdir/plain"
oracle encrypt-data "$v1" "$tmpdir/dek1" "$tmpdir/plain"
"$NBDCRYPT" verify "$v1" --kek-file "$kek" > "$tmpdir/out" 2>&1 ||
  { echo "$0: FAIL: a version 1 header does not open:"; cat "$tmpdir/out"; exit 1; }
grep -q "header version 1: its fields are not authenticated" "$tmpdir/out"
start_nbdkit v1 --filter="$NBDCRYPT_FILTER" file "$v1" kek-file="$kek"
nbdcopy "$uri" "$tmpdir/back"
stop_nbdkit v1
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: version 1 data differs"; exit 1; }

# verify --repair upgrades it: version 2 in both copies, same DEK, MAC per the oracle.
"$NBDCRYPT" verify "$v1" --kek-file "$kek" --repair | grep -q "upgraded the header to version 2"
"$NBDCRYPT" dump --json "$v1" > "$tmpdir/dump.json"
"$PYTHON" -c '
import json, sys; d = json.load(open(sys.argv[1]))
assert d["version"] == 2 and [c["version"] for c in d["copies"]] == [2, 2], d
assert d["copies_agree"] and d["sequence"] == 2, d' "$tmpdir/dump.json"
oracle check-mac "$v1" "$tmpdir/dek1" >/dev/null
rm -f "$tmpdir/dek1.now"
"$NBDCRYPT" dump "$v1" --kek-file "$kek" --dump-volume-key "$tmpdir/dek1.now" 2>/dev/null
cmp -s "$tmpdir/dek1" "$tmpdir/dek1.now" || { echo "$0: FAIL: upgrade changed the DEK"; exit 1; }
out=$("$NBDCRYPT" verify "$v1" --kek-file "$kek" --repair 2>&1)
case $out in *repaired*|*upgraded*) echo "$0: FAIL: repair of a sound v2 volume wrote: $out"; exit 1 ;; esac

# rewrap of a version 1 volume writes version 2.
oracle make-v1 "$v1" "$kek" "$tmpdir/dek1" 4096
head -c 32 /dev/urandom > "$tmpdir/kek2"
"$NBDCRYPT" rewrap "$v1" --kek-file "$kek" --new-kek-file "$tmpdir/kek2" >/dev/null 2>&1
"$NBDCRYPT" dump --json "$v1" | grep -q '"version": 2,'
oracle check-mac "$v1" "$tmpdir/dek1" >/dev/null
echo "header fields authenticated; version 1 opens and upgrades"
