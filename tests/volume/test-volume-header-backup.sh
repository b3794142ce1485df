#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: nbdcrypt header backup / restore. Data written through the filter survives the
# loss of both header copies once the backup is restored; a backup never overwrites a file;
# restore refuses a file that is not a backup, and a backup of another volume over a valid
# header unless --force.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires_py nbd
F=$NBDCRYPT_FILTER

truncate -s 8M "$tmpdir/vol.img" "$tmpdir/other.img"
"$NBDCRYPT" format "$tmpdir/vol.img" --kek-file "$tmpdir/kek" --create-kek >/dev/null
"$NBDCRYPT" format "$tmpdir/other.img" --kek-file "$tmpdir/kek" >/dev/null
head -c 65536 /dev/urandom >"$tmpdir/data"
( sanitizer_env; exec nbdkit -U - --filter="$F" file "$tmpdir/vol.img" kek-file="$tmpdir/kek" \
    --run "env -u LD_PRELOAD nbdcopy '$tmpdir/data' \"\$uri\"" )

"$NBDCRYPT" header backup "$tmpdir/vol.img" "$tmpdir/hdr.bak"
[ "$(stat -c %a "$tmpdir/hdr.bak")" = 600 ] || { echo "$0: FAIL: backup mode" >&2; exit 1; }
if "$NBDCRYPT" header backup "$tmpdir/vol.img" "$tmpdir/hdr.bak" 2>"$tmpdir/err"; then
  echo "$0: FAIL: a backup overwrote a file" >&2; exit 1
fi
grep -q "never overwritten" "$tmpdir/err"

# Both copies lost: the volume cannot be opened.
dd if=/dev/zero of="$tmpdir/vol.img" bs=4096 count=1 conv=notrunc status=none
dd if=/dev/zero of="$tmpdir/vol.img" bs=4096 seek=128 count=1 conv=notrunc status=none
volume_fails "header" --filter="$F" file "$tmpdir/vol.img" kek-file="$tmpdir/kek"

# Not a backup: refused, the target untouched.
head -c 100 /dev/urandom >"$tmpdir/junk"
if "$NBDCRYPT" header restore "$tmpdir/vol.img" "$tmpdir/junk" 2>"$tmpdir/err"; then
  echo "$0: FAIL: restored from a file that is not a backup" >&2; exit 1
fi
grep -q "not a header backup" "$tmpdir/err"

"$NBDCRYPT" header restore "$tmpdir/vol.img" "$tmpdir/hdr.bak"
( sanitizer_env; exec nbdkit -U - --filter="$F" file "$tmpdir/vol.img" kek-file="$tmpdir/kek" \
    --run "env -u LD_PRELOAD nbdcopy \"\$uri\" '$tmpdir/back'" )
cmp <(head -c 65536 "$tmpdir/back") "$tmpdir/data" ||
  { echo "$0: FAIL: data differs after the restore" >&2; exit 1; }
echo "restored: the data reads back"

# Another volume's header stays, unless --force.
cp "$tmpdir/other.img" "$tmpdir/other.orig"
if "$NBDCRYPT" header restore "$tmpdir/other.img" "$tmpdir/hdr.bak" 2>"$tmpdir/err"; then
  echo "$0: FAIL: restored over another volume's header" >&2; exit 1
fi
grep -q "another volume" "$tmpdir/err"
cmp "$tmpdir/other.img" "$tmpdir/other.orig" || { echo "$0: FAIL: refused, yet changed" >&2; exit 1; }
"$NBDCRYPT" header restore --force "$tmpdir/other.img" "$tmpdir/hdr.bak"
"$NBDCRYPT" dump "$tmpdir/other.img" | grep -q "$("$NBDCRYPT" dump "$tmpdir/vol.img" | awk '/^uuid:/ {print $2}')"
echo "$0: OK"
