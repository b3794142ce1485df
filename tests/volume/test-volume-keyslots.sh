#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: keyslots. A volume formatted under KEK file A gets a second KEK file B with
# `nbdcrypt add-kek` (header version 3, both slots in `dump`, text and JSON); the real filter
# serves it with kek-file=B alone and reads the data written under A, which
# python3-cryptography also decrypts under the DEK it unwraps from B's slot; `remove-kek`
# drops A, after which A is refused with a clear message and B still serves (version 2 again);
# the last slot, a duplicate and a fifth slot are refused; version 1 and version 2 volumes
# made by the oracle (as earlier nbdcrypt wrote them) open, take add-kek and become version 3.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography
F=$NBDCRYPT_FILTER

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
# json_get IMAGE EXPR: a value of `nbdcrypt dump --json IMAGE` (d is the parsed object).
json_get () {
  "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($2)"
}
# fails_with REGEX COMMAND...: COMMAND exits 1 and says REGEX on stderr.
fails_with () {
  local want=$1 rc=0; shift
  "$@" >"$tmpdir/out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || { cat "$tmpdir/out" >&2; fail "$* exited $rc (want 1)"; }
  grep -Eq -- "$want" "$tmpdir/out" || { cat "$tmpdir/out" >&2; fail "$*: no /$want/"; }
}
serve_check () {             # serve_check KEKFILE PLAIN: the filter serves PLAIN with KEKFILE
  start_nbdkit vol --filter="$F" file "$vol" kek-file="$1"
  env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
  stop_nbdkit vol
  cmp -s "$2" "$tmpdir/back" || fail "data read with $(basename "$1") differs"
}

vol=$tmpdir/vol.img
truncate -s 8M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/A" --create-kek >/dev/null 2>&1
head -c $((7 << 20)) /dev/urandom > "$tmpdir/plain"
start_nbdkit vol --filter="$F" file "$vol" kek-file="$tmpdir/A"
env -u LD_PRELOAD nbdcopy "$tmpdir/plain" "$uri"
stop_nbdkit vol
fpA=$(json_get "$vol" 'd["kek_id"]')

# add-kek: B joins; the header becomes version 3 with both slots.
"$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/A" --new-kek-file "$tmpdir/B" --create-kek \
  > "$tmpdir/out"
grep -q "added keyslot 1 .*2 keyslots, header version 3" "$tmpdir/out" ||
  { cat "$tmpdir/out"; fail "add-kek output"; }
fpB=$(json_get "$vol" 'd["keyslots"][1]["kek_id"]')
[ "$(json_get "$vol" 'd["version"], len(d["keyslots"]), d["keyslots"][0]["kek_id"]')" = \
  "3 2 $fpA" ] || fail "dump --json after add-kek: $("$NBDCRYPT" dump --json "$vol")"
[ "$(json_get "$vol" '" ".join(" ".join(c["kek_ids"]) for c in d["copies"])')" = \
  "$fpA $fpB $fpA $fpB" ] || fail "both copies should hold both slots"
"$NBDCRYPT" dump "$vol" > "$tmpdir/dump"
grep -q "^slot 0: *file $fpA" "$tmpdir/dump" && grep -q "^slot 1: *file $fpB" "$tmpdir/dump" ||
  { cat "$tmpdir/dump"; fail "dump does not list both slots"; }

# B alone opens it: the filter, and the oracle from the documented layout.
serve_check "$tmpdir/B" "$tmpdir/plain"
oracle unwrap-dek "$vol" "$tmpdir/B" "$tmpdir/dek.B"
oracle unwrap-dek "$vol" "$tmpdir/A" "$tmpdir/dek.A"
cmp -s "$tmpdir/dek.A" "$tmpdir/dek.B" || fail "slots A and B hold different data keys"
oracle check-data "$vol" "$tmpdir/dek.B" "$tmpdir/plain"
oracle check-mac "$vol" "$tmpdir/dek.B" >/dev/null
serve_check "$tmpdir/A" "$tmpdir/plain"

# Refusals: a KEK the volume already has; an unknown key lists the slots.
fails_with "already has a keyslot for file KEK $fpA" \
  "$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/B" --new-kek-file "$tmpdir/A"
head -c 32 /dev/urandom > "$tmpdir/W"; chmod 600 "$tmpdir/W"
volume_fails "wrong KEK file: its fingerprint .* is in none of this volume's keyslots \(slot 0: KEK file $fpA, slot 1: KEK file $fpB\)" \
  --filter="$F" file "$vol" kek-file="$tmpdir/W"
rc=0; "$NBDCRYPT" remove-kek "$vol" --kek-file "$tmpdir/B" >"$tmpdir/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "exactly one of --slot N, --kek-id ID" "$tmpdir/out" ||
  fail "remove-kek without a slot: rc $rc, $(cat "$tmpdir/out")"

# remove-kek A (opened with B): A is refused, B serves, the header is version 2 again.
"$NBDCRYPT" remove-kek "$vol" --kek-file "$tmpdir/B" --kek-id "$fpA" > "$tmpdir/out" 2>&1
grep -q "removed keyslot 0 .*1 keyslot left, header version 2" "$tmpdir/out" ||
  { cat "$tmpdir/out"; fail "remove-kek output"; }
[ "$(json_get "$vol" 'd["version"], len(d["keyslots"]), d["kek_id"]')" = "2 1 $fpB" ] ||
  fail "dump after remove-kek"
volume_fails "wrong KEK file: .*/A has fingerprint $fpA but the volume was wrapped under $fpB" \
  --filter="$F" file "$vol" kek-file="$tmpdir/A"
fails_with "wrong KEK file" "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/A"
serve_check "$tmpdir/B" "$tmpdir/plain"
fails_with "keyslot 0 is the volume's last: removing it would lose the data key" \
  "$NBDCRYPT" remove-kek "$vol" --kek-file "$tmpdir/B" --slot 0

# Four slots at most; a fifth is refused before --create-kek makes a file.
for k in C D E; do
  "$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/B" --new-kek-file "$tmpdir/$k" --create-kek \
    >/dev/null
done
fails_with "has 4 keyslots, the most a header holds" \
  "$NBDCRYPT" add-kek "$vol" --kek-file "$tmpdir/E" --new-kek-file "$tmpdir/G" --create-kek
[ ! -e "$tmpdir/G" ] || fail "a refused add-kek created its KEK file"
serve_check "$tmpdir/E" "$tmpdir/plain"
# rewrap changes the slot it opened with (D is slot 2) and keeps the others.
fpD=$(json_get "$vol" 'd["keyslots"][2]["kek_id"]')
"$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/D" --new-kek-file "$tmpdir/W" > "$tmpdir/out"
grep -q "keyslot 2: KEK file $fpD -> file" "$tmpdir/out" || { cat "$tmpdir/out"; fail rewrap; }
[ "$(json_get "$vol" 'len(d["keyslots"]), d["kek_id"]')" = "4 $fpB" ] || fail "rewrap slots"
fails_with "no keyslot|wrong KEK file" "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/D"
serve_check "$tmpdir/W" "$tmpdir/plain"
fails_with "keyslot 1 already holds file KEK" \
  "$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/W" --new-kek-file "$tmpdir/C"

# Volumes written before keyslots: version 1 and version 2 (oracle-made) open, take add-kek.
for v in 1 2; do
  old=$tmpdir/v$v.img
  truncate -s 8M "$old"
  head -c 32 /dev/urandom > "$tmpdir/K$v"; chmod 600 "$tmpdir/K$v"
  oracle make-v$v "$old" "$tmpdir/K$v" "$tmpdir/dek.v$v" 4096
  oracle encrypt-data "$old" "$tmpdir/dek.v$v" "$tmpdir/plain"
  [ "$(json_get "$old" 'd["version"]')" = "$v" ] || fail "fixture is not version $v"
  "$NBDCRYPT" add-kek "$old" --kek-file "$tmpdir/K$v" --new-kek-file "$tmpdir/N$v" \
    --create-kek >/dev/null 2>&1
  [ "$(json_get "$old" 'd["version"], len(d["keyslots"])')" = "3 2" ] ||
    fail "version $v volume after add-kek: $("$NBDCRYPT" dump "$old")"
  oracle check-mac "$old" "$tmpdir/dek.v$v" >/dev/null
  vol=$old serve_check "$tmpdir/N$v" "$tmpdir/plain"
  vol=$old serve_check "$tmpdir/K$v" "$tmpdir/plain"
done
echo "keyslots: add, open with either KEK, remove, refusals, version 1/2 upgrades: OK"
