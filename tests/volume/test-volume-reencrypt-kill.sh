#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt reencrypt` killed with SIGKILL at random instants, at least 30 times,
# each kill followed by a resume (the next run): with the write-delay hook (each zone's data
# written in flushed 128 KiB pieces with a pause after each) the kill instants spread over the
# measured length of a whole run, so they land in the start, in journal and data writes of
# many zones, and in the end's header writes. Every seventh run is left to finish (the next
# run then starts a new re-encryption): after each, and at the end, every sector decrypts to
# the data written under the volume's current key (python3-cryptography oracle), under the
# original key none does, and a valid header copy always remains.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires_py cryptography
NBDCRYPT=$NBDCRYPT_TEST_HOOKS

vol=$tmpdir/vol.img kek=$tmpdir/kek
truncate -s 17M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --sector-size 4096 >/dev/null
"$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.orig" 2>/dev/null
head -c $((16 << 20)) /dev/urandom > "$tmpdir/plain"
oracle encrypt-data "$vol" "$tmpdir/dek.orig" "$tmpdir/plain"
export NBDCRYPT_TEST_REENCRYPT_DELAY_MS=3
run=("$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --zone-size 1M)

check_data () {
  rm -f "$tmpdir/dek.now"
  "$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$tmpdir/dek.now" 2>/dev/null
  oracle check-data "$vol" "$tmpdir/dek.now" "$tmpdir/plain" >/dev/null ||
    { echo "$0: FAIL: $1: data not intact under the current key"; exit 1; }
}

# How long one whole run takes here with the hook, in us.
cp "$vol" "$tmpdir/probe.img"
t0=$(date +%s%N)
"$NBDCRYPT" reencrypt "$tmpdir/probe.img" --kek-file "$kek" --zone-size 1M >/dev/null 2>&1
run_us=$(( ($(date +%s%N) - t0) / 1000 ))
rm -f "$tmpdir/probe.img"

kills=0 flagged=0 finished=0
for iter in $(seq 42); do
  if [ $((iter % 7)) = 0 ]; then
    "${run[@]}" >/dev/null 2>"$tmpdir/err" ||
      { echo "$0: FAIL: iteration $iter: the run failed:"; cat "$tmpdir/err"; exit 1; }
    finished=$((finished + 1))
    check_data "iteration $iter (finished)"
    continue
  fi
  # A resumed run has only the rest to do: spread its kill over that part (plus start-up).
  left=$("$NBDCRYPT" dump --json "$vol" | "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["reencrypt"]; print(1000 if r is None else 1000 - 1000 * r["done_sectors"] // r["total_sectors"])')
  span=$(( run_us * left / 1000 * 11 / 10 + 150000 ))
  delay_us=$(( (RANDOM * 32768 + RANDOM) % span ))
  "${run[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  kills=$((kills + 1))
  json=$("$NBDCRYPT" dump --json "$vol" 2>/dev/null) ||
    { echo "$0: FAIL: iteration $iter: no valid header copy left"; "$NBDCRYPT" dump "$vol"; exit 1; }
  [ "$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["reencrypt"] is not None)' "$json")" = True ] &&
    flagged=$((flagged + 1))
done
"${run[@]}" >/dev/null 2>"$tmpdir/err" || { echo "$0: FAIL: last run:"; cat "$tmpdir/err"; exit 1; }
check_data "the end"
msg=$(oracle check-data "$vol" "$tmpdir/dek.orig" "$tmpdir/plain" 2>&1 | tail -1) || true
[ "$msg" = "4096 of 4096 sectors differ" ] || { echo "$0: FAIL: original key: $msg"; exit 1; }
echo "$kills kills (a whole run: $run_us us), $flagged left a re-encryption in progress," \
  "$finished runs finished; data intact after each finished run"
if [ "$kills" -lt 30 ] || [ "$flagged" -lt 12 ]; then
  echo "$0: FAIL: too few kills ($kills) or too few inside a run ($flagged)"; exit 1
fi
