#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Fault injection with nbdkit's error filter stacked UNDER ours (the first --filter is the
# outermost): errors reach the client, nothing else changes, the server keeps serving.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
requires_py cryptography
requires_nbdkit_filter error

here="$srcdir/filter"
key="$tmpdir/vol.key"
head -c 64 /dev/urandom >"$key"
errdir="$tmpdir/err"
mkdir "$errdir"

alive () {   # alive NAME: the nbdkit started as NAME is still running
  kill -0 "$(cat "$tmpdir/$1.pid")" 2>/dev/null ||
    { echo "$0: FAIL: nbdkit ($1) died:" >&2; cat "$tmpdir/$1.log" >&2; exit 1; }
}

for ss in 512 4096; do
  disk="$tmpdir/disk-$ss.img"
  truncate -s $((512 * 1024)) "$disk"

  start_nbdkit "fixed-$ss" --filter="$NBDCRYPT_FILTER" --filter=error \
    file "$disk" key-file="$key" sector-size=$ss error=EIO \
    error-pread-rate=1 error-pread-file="$errdir/pread" \
    error-pwrite-rate=1 error-pwrite-file="$errdir/pwrite" \
    error-zero-rate=1 error-zero-file="$errdir/zero"
  "$PYTHON" "$here/test-filter-errors.py" "$uri" "$disk" "$key" $ss "$errdir" fixed
  alive "fixed-$ss"
  grep -q "injecting EIO error" "$tmpdir/fixed-$ss.log" ||
    { echo "$0: FAIL: the error filter injected nothing" >&2; exit 1; }
  stop_nbdkit "fixed-$ss"

  start_nbdkit "random-$ss" --filter="$NBDCRYPT_FILTER" --filter=error \
    file "$disk" key-file="$key" sector-size=$ss error=EIO error-file="$errdir/all" \
    error-pread-rate=0.2 error-pwrite-rate=0.3 error-zero-rate=0.3
  "$PYTHON" "$here/test-filter-errors.py" "$uri" "$disk" "$key" $ss "$errdir" random
  alive "random-$ss"
  stop_nbdkit "random-$ss"
done

# For comparison only (not part of the verdict): nbdkit's own luks filter over the same
# injected read error.
luks="$tmpdir/luks.img"
if luks_comparison_image "$luks"; then
  # nbdkit's own filter, not ours: no sanitizer preload (NBDCRYPT_FILTER is what
  # start_nbdkit inspects for it; nbdkit itself is not instrumented).
  NBDCRYPT_FILTER=/usr/bin/nbdkit start_nbdkit luks --filter=luks --filter=error \
    file "$luks" passphrase=pw \
    error=EIO error-pread-rate=1 error-pread-file="$errdir/pread"
  touch "$errdir/pread"
  "$PYTHON" -c 'import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1])
try: h.pread(512, 0)
except nbd.Error: pass' "$uri" 2>/dev/null || true
  sleep 0.5
  pid=$(cat "$tmpdir/luks.pid")
  if kill -0 "$pid" 2>/dev/null; then state="kept running"; else state="died"; fi
  echo "one injected read error: nbdcrypt kept running; nbdkit luks filter $state"
  rm -f "$errdir/pread"
  stop_nbdkit luks
fi
echo "$0: OK"
