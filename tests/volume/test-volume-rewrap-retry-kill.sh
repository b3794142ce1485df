#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a rewrap interrupted between its two copy writes (copy B under the new KEK at
# the higher sequence, copy A under the old) and what follows it.
#  - verify with the old KEK file opens it (as nbdkit and rewrap do), exits 0, reports the
#    half-finished rewrap and how to finish or roll it back; --repair alone refuses to choose;
#    --repair --use-copy A rolls it back.
#  - Retrying from the old KEK to a third KEK, killed with SIGKILL at random instants (header
#    writes slowed by NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS so that kills land inside a copy):
#    after every kill the volume opens with this run's old or new KEK, and the data key is
#    unchanged. Then the whole two-step sequence for real: a first rewrap killed at a random
#    instant, a retry from the first KEK to a third killed at a random instant.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires_python
# The write-delay hook exists only in the test build of the command.
NBDCRYPT=$NBDCRYPT_TEST_HOOKS

kill_test_volume
cp "$vol" "$tmpdir/fresh.img"
# The state a kill between the two copy writes of a rewrap kek0 -> kek1 leaves.
"$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/kek0" --new-kek-file "$tmpdir/kek1" >/dev/null
dd if="$tmpdir/fresh.img" of="$vol" bs=4096 count=1 conv=notrunc status=none
cp "$vol" "$tmpdir/split.img"
opens () { "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek$1" >/dev/null 2>&1; }
fail () { echo "$0: FAIL: $*"; "$NBDCRYPT" dump "$vol" >&2 || true; exit 1; }

# verify is consistent with nbdkit and rewrap: the old KEK opens the half-finished rewrap.
"$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek0" > "$tmpdir/out" 2>&1 ||
  { cat "$tmpdir/out"; fail "verify with the old KEK file refused a half-finished rewrap"; }
grep -q "unwrapped from copy A" "$tmpdir/out"
grep -q "a rewrap was interrupted: copy A (sequence 1) opened with this KEK" "$tmpdir/out"
grep -q "roll back with 'nbdcrypt verify --repair --use-copy A'" "$tmpdir/out"
opens 1 || fail "the new KEK does not open the half-finished rewrap"
if "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek0" --repair > "$tmpdir/out" 2>&1; then
  fail "--repair chose between the two KEKs by itself"
fi
grep -q "give --use-copy A to roll back" "$tmpdir/out"
"$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek0" --repair --use-copy A |
  grep -q "repaired header copy B"
opens 0 && ! opens 1 || fail "roll back: kek0 should open, kek1 not"
"$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek0" 2>&1 | grep -q warning &&
  fail "warning left after the roll back"

# check_after_kill ITER OLD NEW: the volume opens with OLD or NEW, with the original DEK.
check_after_kill () {
  local k
  for k in $2 $3; do
    if opens "$k"; then
      rm -f "$tmpdir/dek.now"
      "$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/kek$k" --dump-volume-key "$tmpdir/dek.now" \
        2>/dev/null
      cmp -s "$tmpdir/dek.orig" "$tmpdir/dek.now" || fail "iteration $1: the data key changed"
      return 0
    fi
  done
  opens 1 && fail "iteration $1: only the aborted first run's KEK (kek1) opens the volume"
  fail "iteration $1: the volume opens with no KEK"
}
# kill_rewrap OLD NEW MAX_US: rewrap OLD -> NEW, SIGKILL after a random delay below MAX_US.
kill_rewrap () {
  "$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/kek$1" --new-kek-file "$tmpdir/kek$2" \
    >/dev/null 2>&1 &
  local pid=$!
  sleep "$(printf '0.%06d' $(( RANDOM * 32768 % $3 + RANDOM % 1000 )))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

export NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS=2
inside=0
for iter in $(seq 30); do
  cp "$tmpdir/split.img" "$vol"
  kill_rewrap 0 2 200000                # a whole rewrap takes ~50-200 ms with the hook
  cmp -s "$vol" "$tmpdir/split.img" || inside=$((inside + 1))
  check_after_kill "$iter" 0 2
done
[ "$inside" -ge 5 ] || fail "only $inside of 30 retry kills landed after the first write began"

# The two-step sequence for real: first run killed, retried from kek0, killed again.
split=0
for iter in $(seq 31 60); do
  cp "$tmpdir/fresh.img" "$vol"
  kill_rewrap 0 1 200000
  opens 0 || continue                   # the first run finished its first copy: kek1 only
  json=$("$NBDCRYPT" dump --json "$vol" 2>/dev/null) || fail "iteration $iter: no valid copy"
  "$PYTHON" -c 'import json,sys; c=json.loads(sys.argv[1])["copies"]
sys.exit(0 if c[0]["valid"] and c[1]["valid"] and c[0]["kek_id"] != c[1]["kek_id"] else 1)' \
    "$json" && split=$((split + 1))
  kill_rewrap 0 2 200000
  check_after_kill "$iter" 0 2
done
echo "30 retries from a half-finished rewrap killed ($inside after the first write began), 30 two-step" \
  "kill sequences ($split left a split first run): always opened with kek0 or kek2"
