#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt add-kek` and `remove-kek` killed with SIGKILL at random instants, 50
# times with the header-write delay hook (each 4 KiB copy written in 512-byte flushed pieces;
# kill instants spread over the measured length of a whole run) and 10 times without; every
# sixth run is left to finish, so both commands also complete from every state: after each one the volume still opens with the KEK the command was
# given (kek0, never removed), the data key is unchanged, and the slot being added or removed
# is either there or not, in a valid copy (the copies may differ until the next update).
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires_python
# The hook exists only in the test build of the command.
NBDCRYPT=$NBDCRYPT_TEST_HOOKS

kill_test_volume

# kek1's fingerprint (docs/format.md), to tell whether its slot is there.
fp1=$("$PYTHON" -c 'import hashlib,sys; k=open(sys.argv[1],"rb").read(); print("sha256:" + hashlib.sha256(b"nbdcrypt kek fingerprint v1" + k).digest()[:16].hex())' "$tmpdir/kek1")

# How long one whole add-kek takes here with the hook (a loaded machine is slower), in us.
cp "$vol" "$tmpdir/probe.img"
t0=$(date +%s%N)
NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS=2 "$NBDCRYPT" add-kek "$tmpdir/probe.img" \
  --kek-file "$tmpdir/kek0" --new-kek-file "$tmpdir/kek1" >/dev/null
run_us=$(( ($(date +%s%N) - t0) / 1000 ))
rm -f "$tmpdir/probe.img"

torn=0 split=0 n=0 flips=0 last=0
for iter in $(seq 60); do
  # Alternate: add kek1 while the newest copy lacks it, else remove it.
  has=$("$NBDCRYPT" dump --json "$vol" 2>/dev/null |
        "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(int(sys.argv[1] in [s["kek_id"] for s in d["keyslots"]]))' "$fp1")
  [ "$has" = "$last" ] || flips=$((flips + 1))
  last=$has
  if [ "$has" = 1 ]; then
    op=(remove-kek "$vol" --kek-file "$tmpdir/kek0" --kek-id "$fp1")
  else
    op=(add-kek "$vol" --kek-file "$tmpdir/kek0" --new-kek-file "$tmpdir/kek1")
  fi
  delay_us=""
  if [ $((iter % 6)) = 0 ]; then
    "$NBDCRYPT" "${op[@]}" >/dev/null 2>&1 ||
      { echo "$0: FAIL: iteration $iter: ${op[*]} failed"; "$NBDCRYPT" "${op[@]}"; exit 1; }
  else
    if [ "$iter" -le 50 ]; then
      export NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS=2
      delay_us=$(( (RANDOM * 32768 + RANDOM) % (run_us * 6 / 5 + 1) ))
    else
      unset NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS
      delay_us=$(( RANDOM % 8000 ))
    fi
    "$NBDCRYPT" "${op[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    n=$((n + 1))
    unset NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS
  fi

  json=$("$NBDCRYPT" dump --json "$vol" 2>/dev/null) || {
    echo "$0: FAIL: iteration $iter: no valid header copy left"; "$NBDCRYPT" dump "$vol"; exit 1; }
  state=$("$PYTHON" -c '
import json, sys
d = json.loads(sys.argv[1]); c = d["copies"]
valid = [x["valid"] for x in c]
print("torn" if not all(valid) else ("split" if c[0]["sequence"] != c[1]["sequence"] else "ok"))
' "$json")
  case $state in torn) torn=$((torn + 1)) ;; split) split=$((split + 1)) ;; esac

  # The KEK the command was given always opens, with the same data key.
  rm -f "$tmpdir/dek.now"
  if ! "$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/kek0" --dump-volume-key "$tmpdir/dek.now" \
       2>"$tmpdir/err"; then
    echo "$0: FAIL: iteration $iter (${op[0]} killed after ${delay_us:-no} us): kek0 no longer" \
      "opens: $(cat "$tmpdir/err")"
    "$NBDCRYPT" dump "$vol" >&2 || true
    exit 1
  fi
  cmp -s "$tmpdir/dek.orig" "$tmpdir/dek.now" ||
    { echo "$0: FAIL: iteration $iter: the data key changed"; exit 1; }
  "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek0" >/dev/null 2>&1 ||
    { echo "$0: FAIL: iteration $iter: verify with kek0 failed"; exit 1; }
done
echo "$n kills (a whole run: $run_us us): $torn left a torn copy, $split left copies at" \
  "different sequences; the newest copy gained or lost kek1's slot $flips times; kek0" \
  "always opened"
if [ $((torn + split)) -lt 5 ]; then
  echo "$0: FAIL: only $((torn + split)) kills landed inside a header update"; exit 1
fi
