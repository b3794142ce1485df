#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: nbdcrypt format says, on stderr, that it chose the default 4096-byte encryption
# sectors and what ESXi/VMFS volumes should use instead; an explicit --sector-size silences
# it; stdout stays the one-line summary either way.
source "$srcdir/functions.sh"

vol=$tmpdir/vol.img
truncate -s 8M "$vol"
head -c 32 /dev/urandom > "$tmpdir/kek"

"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/kek" >"$tmpdir/out" 2>"$tmpdir/err"
cat "$tmpdir/err"
grep -q "^nbdcrypt format: note: 4096-byte encryption sectors (the default);.*--sector-size 512" \
  "$tmpdir/err" || { echo "$0: FAIL: no sector size note on stderr" >&2; exit 1; }
if grep -q note "$tmpdir/out"; then echo "$0: FAIL: the note went to stdout" >&2; exit 1; fi
grep -q "^formatted .*4096-byte sectors" "$tmpdir/out"

for ss in 512 4096; do
  "$NBDCRYPT" format "$vol" --kek-file "$tmpdir/kek" --force --sector-size "$ss" \
    >"$tmpdir/out" 2>"$tmpdir/err"
  if grep -q note "$tmpdir/err"; then
    echo "$0: FAIL: --sector-size $ss still prints the note" >&2; cat "$tmpdir/err" >&2; exit 1
  fi
  grep -q "^formatted .*$ss-byte sectors" "$tmpdir/out"
done
echo "format names its default sector size, and only when it chose it"
