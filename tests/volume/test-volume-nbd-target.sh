#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: TARGET as an NBD URI (libnbd): `nbdcrypt format/dump/verify/rewrap` on an
# nbdkit memory export and on an nbdkit file export; the header lands where docs/format.md
# says (checked on the file below nbdkit), and the refusal of occupied targets works over NBD.
source "$srcdir/functions.sh"
requires nbdkit

kek=$tmpdir/kek kek2=$tmpdir/kek2
start_nbdkit mem memory 16M
"$NBDCRYPT" format "$uri" --kek-file "$kek" --create-kek | grep "^formatted" >/dev/null
"$NBDCRYPT" dump --json "$uri" | grep '"data_offset": 1048576, "data_size": 15728640' >/dev/null
"$NBDCRYPT" verify "$uri" --kek-file "$kek" | grep "key check value OK" >/dev/null
"$NBDCRYPT" rewrap "$uri" --kek-file "$kek" --new-kek-file "$kek2" --create-kek | grep "sequence 2" >/dev/null
"$NBDCRYPT" verify "$uri" --kek-file "$kek2" >/dev/null
if "$NBDCRYPT" format "$uri" --kek-file "$kek" 2>"$tmpdir/err"; then
  echo "$0: FAIL: reformatted a volume over NBD without --force"; exit 1
fi
grep -q "nbdcrypt volume header" "$tmpdir/err"

truncate -s 16M "$tmpdir/disk.img"
start_nbdkit file file "$tmpdir/disk.img"
"$NBDCRYPT" format "$uri" --kek-file "$kek" --sector-size 512 --data-offset 2M >/dev/null
stop_nbdkit file
# Copy A at 0, copy B at 512 KiB, in the file under nbdkit.
[ "$(head -c 8 "$tmpdir/disk.img")" = NBDCRYPT ]
[ "$(dd if="$tmpdir/disk.img" bs=1 skip=524288 count=8 status=none)" = NBDCRYPT ]
"$NBDCRYPT" dump --json "$tmpdir/disk.img" | grep '"sector_size": 512, "data_offset": 2097152' >/dev/null
echo "NBD targets work"
