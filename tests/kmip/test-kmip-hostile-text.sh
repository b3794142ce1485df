#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: text a KMS chooses cannot rewrite the terminal or forge log lines, and an answer
# about another object is refused. A fake server answers with ESC, BEL, CR and LF (and a forged
# "nbdkit: info:" line) in its Result Message, vendor string, key names and attribute values,
# and answers Get, GetAttributes, Activate and Encrypt for another object ("999", "1\0evil").
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"

kmip_start_fake hostile
conf="$tmpdir/hostile.conf"
kmip_write_conf "$conf" server=127.0.0.1:$fake_hostile_port

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
# No byte below 0x20 but the newline ending each line, and no DEL: what reaches a terminal or
# a log from these commands is the server's text escaped.
clean () {
  local f=$1
  if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$f"; then
    od -c "$f" | head -20 >&2
    fail "$2: raw control bytes in the output"
  fi
}
# kms ARGS...: run `nbdcrypt kms`, output in $tmpdir/out and $tmpdir/err, status in $rc.
kms () {
  rc=0
  "$NBDCRYPT" kms --config "$conf" "$@" > "$tmpdir/out" 2> "$tmpdir/err" || rc=$?
  clean "$tmpdir/out" "kms $* (stdout)"
  clean "$tmpdir/err" "kms $* (stderr)"
}

# The Result Message of a failure: one line, escaped, the forged log line inside it.
for cmd in "get k1 --out $tmpdir/key1" "attrs k1" "activate k1" "destroy k1" \
           "revoke k1" "set-attr k1 x-a b"; do
  # shellcheck disable=SC2086
  kms $cmd
  [ $rc -eq 1 ] || fail "kms $cmd: status $rc"
  [ "$(wc -l < "$tmpdir/err")" -eq 1 ] || { cat -A "$tmpdir/err" >&2; fail "kms $cmd: not one line"; }
  grep -qF 'Item Not Found: \x1b[2J\x1b]0;owned\x07bell\x0dover\x0anbdkit: info: KMS check OK \\ done' \
    "$tmpdir/err" || { cat "$tmpdir/err" >&2; fail "kms $cmd: message not escaped as expected"; }
done
[ ! -e "$tmpdir/key1" ] || fail "get wrote a key file on failure"

# Server-chosen text printed as data: vendor, names, attribute values, attribute names.
kms query
[ $rc -eq 0 ] || { cat "$tmpdir/err" >&2; fail "query: status $rc"; }
grep -qF 'vendor: \x1b[2J\x1b]0;owned\x07bell' "$tmpdir/out" || { cat "$tmpdir/out" >&2; fail "query vendor"; }
kms attrs names
[ $rc -eq 0 ] || { cat "$tmpdir/err" >&2; fail "attrs: status $rc"; }
grep -qF 'name: \x1b[2J' "$tmpdir/out" || { cat "$tmpdir/out" >&2; fail "attrs name"; }
grep -qF 'custom: x-note=\x1b[2J' "$tmpdir/out" || { cat "$tmpdir/out" >&2; fail "attrs custom"; }
[ "$(wc -l < "$tmpdir/out")" -eq 7 ] || { cat "$tmpdir/out" >&2; fail "attrs: not 7 lines"; }
kms attrs names --json
"$PYTHON" -c 'import json,sys; a=json.load(open(sys.argv[1])); assert a["names"][0].startswith("\x1b[2J"), a' \
  "$tmpdir/out" || fail "attrs --json does not carry the exact name"
kms attr-list names
[ "$(wc -l < "$tmpdir/out")" -eq 1 ] || { cat "$tmpdir/out" >&2; fail "attr-list: not 1 line"; }

# An identifier with a newline would forge a line of `kms locate`: refused.
kms locate
[ $rc -eq 1 ] || fail "locate with a newline in an identifier: status $rc"
grep -q "malformed Unique Identifier" "$tmpdir/err" || { cat "$tmpdir/err" >&2; fail "locate message"; }

# Answers about another object are refused, and no key bytes are written.
for uid in other nul; do
  want=$([ $uid = other ] && echo '"999"' || echo '"1\x00evil"')
  for cmd in "get $uid --out $tmpdir/key-$uid" "attrs $uid" "activate $uid" \
             "encrypt $uid --in $tmpdir/conf-copy --out $tmpdir/ct-$uid --iv 000102030405060708090a0b0c0d0e0f"; do
    cp "$conf" "$tmpdir/conf-copy"
    # shellcheck disable=SC2086
    kms $cmd
    [ $rc -eq 1 ] || { cat "$tmpdir/out" "$tmpdir/err" >&2; fail "kms $cmd: accepted ($rc)"; }
    grep -qF "the KMS answered for another object ($want)" "$tmpdir/err" ||
      { cat "$tmpdir/err" >&2; fail "kms $cmd: message"; }
  done
  [ ! -e "$tmpdir/key-$uid" ] || fail "get $uid wrote the other object's key"
  [ ! -e "$tmpdir/ct-$uid" ] || fail "encrypt $uid wrote the other object's output"
done
echo "$0: OK"
