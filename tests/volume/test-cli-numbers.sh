#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: numeric options of the nbdcrypt command are parsed strictly: --sector-size,
# --data-offset and --timeout refuse trailing junk (4096x), signs (-1), overflow
# (99999999999999999999), blanks and the empty string with exit 2 and a message naming the
# option and quoting the value, before touching the target; valid values still work.
source "$srcdir/functions.sh"

vol=$tmpdir/vol.img
truncate -s 8M "$vol"
head -c 32 /dev/urandom > "$tmpdir/kek"
chmod 600 "$tmpdir/kek"

# refused OPTION VALUE CMD ARGS...: exit 2, message names OPTION and quotes VALUE.
refused () {
  local opt=$1 val=$2 rc=0 out; shift 2
  out=$("$NBDCRYPT" "$@" "$opt" "$val" 2>&1) || rc=$?
  if [ "$rc" != 2 ]; then
    echo "$0: FAIL: nbdcrypt $* $opt '$val' exited $rc (want 2): $out" >&2; exit 1
  fi
  if ! grep -qF -- "$opt" <<<"$out" || ! grep -qF -- "'$val'" <<<"$out"; then
    echo "$0: FAIL: nbdcrypt $* $opt '$val': message names neither: $out" >&2; exit 1
  fi
  echo "refused $opt '$val': $out"
}

for v in 4096x -1 99999999999999999999 "" " 4096" "4096 " +4096 0x1000 4k; do
  refused --sector-size "$v" format "$vol" --kek-file "$tmpdir/kek"
done
for v in 1Mx -1M 99999999999999999999G 18014398509481984G "" 1MB; do
  refused --data-offset "$v" format "$vol" --kek-file "$tmpdir/kek"
done
# Refused before any header was written.
if cmp -s -n 4096 "$vol" /dev/zero; then :; else
  echo "$0: FAIL: a refused format wrote to the target" >&2; exit 1
fi

# Valid values.
"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/kek" --sector-size 512 --data-offset 2M >/dev/null
"$NBDCRYPT" dump --json "$vol" | grep -q '"sector_size": *512'
"$NBDCRYPT" dump --json "$vol" | grep -q '"data_offset": *2097152'

for v in 5x -1 99999999999999999999 "" 1.5; do
  refused --timeout "$v" verify "$vol" --kek-file "$tmpdir/kek"
done
"$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek" --timeout 5 >/dev/null
echo "all numeric options strict"
