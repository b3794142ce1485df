#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt reencrypt` replaces the data key: data written through the real
# filter (4096- and 512-byte sectors, aes-256 and aes-128, one zone and many) decrypts sector
# by sector under the NEW key with python3-cryptography's XTS, and under the OLD key none of
# the sectors does; the old wrapped key is in neither header copy, the journal gaps are zero
# again, and the filter serves the same data. A keyslot whose KEK is not given is removed with
# a notice saying how to add it back. A run interrupted in the middle of a zone's data write
# (test hook) leaves a flagged volume: `dump` shows the progress, the filter refuses it with a
# message naming the command, the header MAC covers the wrapped next key, and the next run
# resumes and finishes (the per-sector hash rule). An NBD URI target (nbdkit's file plugin,
# zones bigger than the 16 MiB request pieces) is re-encrypted the same way.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py cryptography

for case in "aes-256-xts 4096 1M" "aes-128-xts 512 64M"; do
  set -- $case
  cipher=$1 ss=$2 zone=$3
  vol=$tmpdir/vol-$ss.img kek=$tmpdir/kek-$ss
  truncate -s 24M "$vol"
  "$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --cipher "$cipher" \
    --sector-size "$ss" >/dev/null
  if [ "$ss" = 4096 ]; then
    # A second keyslot whose KEK the run is not given: it must go, with a notice.
    "$NBDCRYPT" add-kek "$vol" --kek-file "$kek" --new-kek-file "$tmpdir/kek-extra" \
      --create-kek >/dev/null
  fi
  head -c $((23 << 20)) /dev/urandom > "$tmpdir/plain"
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  env -u LD_PRELOAD nbdcopy "$tmpdir/plain" "$uri"
  stop_nbdkit vol
  rm -f "$tmpdir/dek.old" "$tmpdir/dek.new"
  "$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.old" 2>/dev/null
  old_wdeks=$(slot_wdeks "$vol")

  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --zone-size "$zone" \
    >"$tmpdir/out" 2>"$tmpdir/err" ||
    { echo "$0: FAIL: reencrypt ($case) failed:"; cat "$tmpdir/out" "$tmpdir/err"; exit 1; }
  grep -q "MB/s" "$tmpdir/out" || { echo "$0: FAIL: no throughput printed"; exit 1; }
  if [ "$ss" = 4096 ]; then
    grep -q "removed the keyslot of KEK file sha256:.*add-kek" "$tmpdir/err" ||
      { echo "$0: FAIL: no notice for the removed keyslot:"; cat "$tmpdir/err"; exit 1; }
  fi
  [ "$("$NBDCRYPT" dump --json "$vol" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["keyslots"]), d["reencrypt"])')" = "1 None" ] ||
    { echo "$0: FAIL: expected one keyslot and no re-encryption left"; "$NBDCRYPT" dump "$vol"; exit 1; }

  "$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.new" 2>/dev/null
  cmp -s "$tmpdir/dek.old" "$tmpdir/dek.new" && { echo "$0: FAIL: the data key is unchanged"; exit 1; }
  oracle check-data "$vol" "$tmpdir/dek.new" "$tmpdir/plain"
  oracle check-mac "$vol" "$tmpdir/dek.new"
  # Under the old key, no sector decrypts to what was written.
  n=$(( (23 << 20) / ss ))
  msg=$(oracle check-data "$vol" "$tmpdir/dek.old" "$tmpdir/plain" 2>&1 | tail -1) || true
  [ "$msg" = "$n of $n sectors differ" ] ||
    { echo "$0: FAIL: under the old key: '$msg', want all $n sectors to differ"; exit 1; }
  # shellcheck disable=SC2086
  hex_absent "$vol" $old_wdeks
  gaps_zero "$vol"

  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
  stop_nbdkit vol
  cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: the filter serves other data"; exit 1; }
  echo "$case: re-encrypted; new key decrypts all $n sectors, old key none"
done

# Interrupted in the middle of the third zone's data write (512-byte sectors, 1 MiB zones).
NBDCRYPT=$NBDCRYPT_TEST_HOOKS
vol=$tmpdir/vol-512.img kek=$tmpdir/kek-512
rm -f "$tmpdir/dek.old"
"$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.old" 2>/dev/null
rc=0
NBDCRYPT_TEST_REENCRYPT_CRASH_AFTER=$(( (2 << 20) + (512 << 10) + 3 * 512 )) \
  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --zone-size 1M >/dev/null 2>&1 || rc=$?
[ "$rc" = 99 ] || { echo "$0: FAIL: the crash hook did not fire (rc $rc)"; exit 1; }
"$NBDCRYPT" dump "$vol" | grep -q "re-encryption in progress: 4096 of 47104 sectors" ||
  { echo "$0: FAIL: dump does not show the progress:"; "$NBDCRYPT" dump "$vol"; exit 1; }
volume_fails "offline re-encryption is in progress: finish it with 'nbdcrypt reencrypt TARGET'" \
  --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
# Keyslots are fixed during a run (its end writes the slots it was given), and an online run
# (or a take-over) does not adopt an offline one.
head -c 32 /dev/urandom > "$tmpdir/kek-other"
for cmd in "add-kek $vol --kek-file $kek --new-kek-file $tmpdir/kek-other" \
           "rewrap $vol --kek-file $kek --new-kek-file $tmpdir/kek-other" \
           "remove-kek $vol --kek-file $kek --slot 0"; do
  if $NBDCRYPT $cmd >"$tmpdir/out" 2>&1 || ! grep -q "keyslots it was given" "$tmpdir/out"; then
    echo "$0: FAIL: '$cmd' during a re-encryption was not refused:"; cat "$tmpdir/out"; exit 1
  fi
done
if "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online --no-wait >"$tmpdir/out" 2>&1 ||
   ! grep -q "an offline re-encryption of this volume is in progress" "$tmpdir/out"; then
  echo "$0: FAIL: --online took over an offline run:"; cat "$tmpdir/out"; exit 1
fi

# The wrapped next key is under the header MAC: a changed byte (checksum fixed) is refused.
cp "$vol" "$tmpdir/edited.img"
"$PYTHON" - "$tmpdir/edited.img" <<'EOF'
import hashlib, sys
with open(sys.argv[1], "r+b") as f:
    for off in (0, 512 << 10):
        f.seek(off); a = bytearray(f.read(4096))
        a[3340] ^= 1
        a[4064:4096] = hashlib.sha256(a[:4064]).digest()
        f.seek(off); f.write(a)
EOF
if "$NBDCRYPT" dump "$tmpdir/edited.img" --kek-file "$kek" --dump-volume-key "$tmpdir/x" \
     2>"$tmpdir/err"; then
  echo "$0: FAIL: an edited next key opened"; exit 1
fi
grep -q "header authentication failed" "$tmpdir/err" ||
  { echo "$0: FAIL: edited next key: wrong message:"; cat "$tmpdir/err"; exit 1; }

# Resume, itself cut in the middle of the pending zone: that zone then holds new sectors from
# both runs and old ones, told apart by their hashes.
rc=0
NBDCRYPT_TEST_REENCRYPT_CRASH_AFTER=$(( (300 << 10) + 512 )) \
  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --zone-size 1M >/dev/null 2>&1 || rc=$?
[ "$rc" = 99 ] || { echo "$0: FAIL: the crash hook did not fire on resume (rc $rc)"; exit 1; }
"$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --zone-size 1M >"$tmpdir/out" 2>"$tmpdir/err" ||
  { echo "$0: FAIL: resume failed:"; cat "$tmpdir/err"; exit 1; }
grep -q "resuming at sector 4096 of 47104" "$tmpdir/err" ||
  { echo "$0: FAIL: did not resume at the journal's zone:"; cat "$tmpdir/err"; exit 1; }
rm -f "$tmpdir/dek.new"
"$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.new" 2>/dev/null
oracle check-data "$vol" "$tmpdir/dek.new" "$tmpdir/plain"
msg=$(oracle check-data "$vol" "$tmpdir/dek.old" "$tmpdir/plain" 2>&1 | tail -1) || true
[ "$msg" = "47104 of 47104 sectors differ" ] || { echo "$0: FAIL: old key: $msg"; exit 1; }
gaps_zero "$vol"
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
stop_nbdkit vol
cmp "$tmpdir/plain" "$tmpdir/back" || { echo "$0: FAIL: data changed across the crashes"; exit 1; }
echo "crash in a zone's data write, then in its resume: resumed, data intact under the new key"

# The target as an NBD URI: the raw file served by nbdkit's file plugin.
start_nbdkit raw file "$vol"
"$NBDCRYPT" reencrypt "$uri" --kek-file "$kek" --zone-size 20M >/dev/null 2>"$tmpdir/err" ||
  { echo "$0: FAIL: reencrypt over NBD:"; cat "$tmpdir/err"; exit 1; }
stop_nbdkit raw
cp "$tmpdir/dek.new" "$tmpdir/dek.prev"; rm -f "$tmpdir/dek.new"
"$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.new" 2>/dev/null
cmp -s "$tmpdir/dek.prev" "$tmpdir/dek.new" && { echo "$0: FAIL: NBD run kept the key"; exit 1; }
oracle check-data "$vol" "$tmpdir/dek.new" "$tmpdir/plain"
echo "re-encrypted again through an NBD URI"
