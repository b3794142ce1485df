#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the journal that the end of an online re-encryption leaves behind when it is
# interrupted after the final header is on both copies but before the journal is zeroed (a
# kill at that instant): the staged final header, which holds the data key wrapped under the
# KEKs of then, and the records. Made here from a real run: the end a `reencrypt --online
# --no-wait` staged (no server) is kept, the run is finished with `--take-over`, and the kept
# end and a record head are put back.
#   1. `nbdcrypt rewrap` to a new KEK clears it first: afterwards the data key wrapped under the
#      old KEK is nowhere in the first MiB, and everything below the data but the two header
#      copies is zero (before this was fixed, the staged header kept the old wrapping).
#   2. nbdkit serving the volume clears it when a client opens the volume, says so in its log,
#      and serves the same data (read back with nbdcopy).
#   3. A volume with a clean journal: no such line, nothing written.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
vol=$tmpdir/vol.img
truncate -s 9M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$tmpdir/kek-a" --create-kek --sector-size 4096 >/dev/null
head -c $((8 << 20)) /dev/urandom > "$tmpdir/data"
start_nbdkit fill --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$tmpdir/kek-a"
env -u LD_PRELOAD nbdcopy "$tmpdir/data" "$uri"
stop_nbdkit fill

# area OFFSET LENGTH [FILE]: copy bytes of the image out (or, with FILE, write FILE there).
area () {
  if [ $# = 3 ]; then
    dd if="$3" of="$vol" bs=1 seek="$1" count="$2" conv=notrunc status=none
  else
    dd if="$vol" bs=1 skip="$1" count="$2" status=none
  fi
}
# make_stale: the state an end killed between its header writes and the journal's zeroing
# leaves (from the saved staged header and record head).
make_stale () {
  area 4096 4096 "$tmpdir/staged"
  area $((8 << 10)) 4096 "$tmpdir/rec0"
  "$PYTHON" - "$vol" <<'EOF' || fail "the staged header or the record did not go back"
import sys
a = open(sys.argv[1], "rb").read(1 << 20)
assert a[4096] != 0 and any(a[8 << 10:12 << 10])
EOF
}

"$NBDCRYPT" reencrypt "$vol" --kek-file "$tmpdir/kek-a" --online --no-wait >/dev/null ||
  fail "reencrypt --online --no-wait failed"
area 4096 4096 > "$tmpdir/staged"
"$PYTHON" -c 'import sys; sys.exit(0 if any(open(sys.argv[1],"rb").read()) else 1)' \
  "$tmpdir/staged" || fail "no final header staged after the handover"
"$NBDCRYPT" reencrypt "$vol" --kek-file "$tmpdir/kek-a" --take-over >/dev/null ||
  fail "reencrypt --take-over failed"
gaps_zero "$vol" || fail "the take-over left the journal"
# A record head: random bytes where the journal's first record starts.
head -c 4096 /dev/urandom > "$tmpdir/rec0"
old_wdek=$(slot_wdeks "$vol")
"$PYTHON" - "$tmpdir/staged" "$old_wdek" <<'EOF' || fail "the staged header does not hold the keyslot's wrapped key"
import sys
assert bytes.fromhex(sys.argv[2]) in open(sys.argv[1], "rb").read()
EOF

# 1. rewrap clears it before it writes the new keyslot.
make_stale
"$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/kek-a" --new-kek-file "$tmpdir/kek-b" \
  --create-kek >/dev/null || fail "rewrap failed"
hex_absent "$vol" "$old_wdek" || fail "rewrap: the key wrapped under the old KEK is left"
gaps_zero "$vol" || fail "rewrap"
echo "rewrap: the interrupted end's journal cleared; no key wrapped under the old KEK left"

# 2. The filter clears it when a client opens the volume.
make_stale
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$tmpdir/kek-b"
env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
cmp -s "$tmpdir/data" "$tmpdir/back" || fail "the filter serves other data"
for _ in $(seq 100); do
  grep -q "cleared the journal left by the interrupted end" "$tmpdir/vol.log" && break
  sleep 0.1
done
grep -q "cleared the journal left by the interrupted end" "$tmpdir/vol.log" ||
  { cat "$tmpdir/vol.log"; fail "nbdkit did not say it cleared the journal"; }
gaps_zero "$vol" || fail "nbdkit"
stop_nbdkit vol
echo "nbdkit: $(grep -o "cleared the journal.*" "$tmpdir/vol.log")"

# 3. A clean journal: nothing said, nothing written.
sum0=$(head -c $((1 << 20)) "$vol" | md5sum)
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$tmpdir/kek-b"
env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
sleep 1
stop_nbdkit vol
grep -q "cleared the journal" "$tmpdir/vol.log" && fail "nbdkit cleared a clean journal"
[ "$(head -c $((1 << 20)) "$vol" | md5sum)" = "$sum0" ] || fail "nbdkit wrote to a clean header area"
cmp -s "$tmpdir/data" "$tmpdir/back" || fail "the filter serves other data"
echo "a clean journal: left as it was"
