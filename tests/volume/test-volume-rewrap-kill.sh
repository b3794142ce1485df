#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt rewrap` killed with SIGKILL at random instants, 60 times with the
# header-write delay hook (NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS: each 4 KiB copy written in
# 512-byte flushed pieces, so kills land inside a copy) and 20 times without it: after every
# kill the volume opens with the old or the new KEK, and the data key is unchanged.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires_python
# The hook exists only in the test build of the command.
NBDCRYPT=$NBDCRYPT_TEST_HOOKS

kill_test_volume

# Which KEK file opens the volume now (newest copy first, as the filter does)?
opener () {
  local k
  for k in 0 1 2; do
    if "$NBDCRYPT" verify "$vol" --kek-file "$tmpdir/kek$k" >/dev/null 2>&1; then
      echo "$k"; return 0
    fi
  done
  return 1
}

cur=0 torn=0 split=0 n=0
for iter in $(seq 80); do
  new=$(( (cur + 1 + RANDOM % 2) % 3 ))
  if [ "$iter" -le 60 ]; then
    export NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS=2
    delay_us=$(( RANDOM % 50000 ))          # a whole rewrap takes ~40-60 ms here
  else
    unset NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS
    delay_us=$(( RANDOM % 8000 ))
  fi
  "$NBDCRYPT" rewrap "$vol" --kek-file "$tmpdir/kek$cur" --new-kek-file "$tmpdir/kek$new" \
    >/dev/null 2>&1 &
  pid=$!
  sleep "$(printf '0.%06d' "$delay_us")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  n=$((n + 1))

  json=$("$NBDCRYPT" dump --json "$vol" 2>/dev/null) || {
    echo "$0: FAIL: iteration $iter: no valid header copy left"; "$NBDCRYPT" dump "$vol"; exit 1; }
  state=$("$PYTHON" -c '
import json, sys
d = json.loads(sys.argv[1]); c = d["copies"]
valid = [x["valid"] for x in c]
print("torn" if not all(valid) else ("split" if c[0]["sequence"] != c[1]["sequence"] else "ok"))
' "$json")
  case $state in torn) torn=$((torn + 1)) ;; split) split=$((split + 1)) ;; esac

  if ! k=$(opener); then
    echo "$0: FAIL: iteration $iter (killed after ${delay_us} us): the volume opens with no KEK"
    "$NBDCRYPT" dump "$vol" >&2 || true
    exit 1
  fi
  if [ "$k" != "$cur" ] && [ "$k" != "$new" ]; then
    echo "$0: FAIL: iteration $iter: opened with kek$k, expected kek$cur or kek$new"; exit 1
  fi
  rm -f "$tmpdir/dek.now"
  "$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/kek$k" --dump-volume-key "$tmpdir/dek.now" 2>/dev/null
  cmp -s "$tmpdir/dek.orig" "$tmpdir/dek.now" ||
    { echo "$0: FAIL: iteration $iter: the data key changed"; exit 1; }
  cur=$k
done
echo "$n kills: $torn left a torn copy, $split left copies at different sequences; all opened"
# The hook must actually have put kills inside the write window, or this test proves nothing.
if [ $((torn + split)) -lt 5 ]; then
  echo "$0: FAIL: only $((torn + split)) kills landed inside a header update"; exit 1
fi
