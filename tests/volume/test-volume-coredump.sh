#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: keys only in locked memory. A served volume (KEK file, and KMS with local wrap):
# /proc/PID/status shows VmLck > 0 and /proc/PID/smaps a mapping with non-zero "Locked:";
# the process is not dumpable, so kill -ABRT under `ulimit -c unlimited` with
# core_pattern=core leaves no core file; no file anywhere under the test directory (apart from
# the key files themselves) contains the DEK or the KEK bytes. Positive control:
# with allow-core-dumps=true the same kill does leave a core file (so the check can see one),
# and even then the KEK (never kept after the unwrap) is not in it.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
# ASan makes mlock() a no-op and disables core dumps itself: neither can be observed there.
if ldd "$NBDCRYPT_FILTER" | grep -q libasan; then
  echo "$0: SKIP: built with ASan, which ignores mlock and disables core dumps"; exit 77
fi
core_pattern=$(cat /proc/sys/kernel/core_pattern)
case $core_pattern in
  core*) ;;
  *) echo "$0: SKIP: core_pattern is '$core_pattern' (need a plain file name to look for cores)"
     exit 77 ;;
esac
ulimit -c unlimited

# contains FILE KEYFILE: does FILE contain the bytes of KEYFILE (any 16-byte half)?
contains () {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
hit = any(key[i:i + 16] in data for i in range(0, len(key), 16))
sys.exit(0 if hit else 1)
PY
}

check_no_secrets () {  # check_no_secrets KEYFILE...: no file under $tmpdir holds them
  local f k
  while IFS= read -r -d '' f; do
    for k in "$@"; do
      [ "$f" = "$k" ] && continue 2
    done
    for k in "$@"; do
      if contains "$f" "$k"; then echo "$0: FAIL: $f contains the bytes of $k"; exit 1; fi
    done
  done < <(find "$tmpdir" -type f -size -512M -not -path "$tmpdir/kms/*" -print0)
}

run_case () {  # run_case NAME EXPECT_CORE(yes|no) nbdkit-args...
  local name=$1 expect=$2; shift 2
  local dir=$tmpdir/$name pid locked vmlck
  mkdir -p "$dir"
  # nbdkit -f keeps its working directory: core_pattern=core puts a core file there.
  cd "$dir"
  start_nbdkit "$name" "$@"
  cd - >/dev/null
  echo "$uri" > "$dir/uri"
  pid=$(cat "$tmpdir/$name.pid")
  nbdsh -u "$(cat "$dir/uri")" -c 'h.pwrite(b"x" * 4096, 0)'
  vmlck=$(awk '/^VmLck:/ {print $2}' /proc/"$pid"/status)
  locked=$(awk '/^Locked:/ && $2 > 0 {n++} END {print n+0}' /proc/"$pid"/smaps)
  echo "$name: VmLck ${vmlck} kB, $locked mapping(s) with Locked > 0"
  [ "${vmlck:-0}" -gt 0 ] && [ "$locked" -gt 0 ] ||
    { echo "$0: FAIL: $name: no locked key pages"; exit 1; }
  kill -ABRT "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  sleep 0.5
  cores=$(find "$tmpdir" -name 'core*' -type f | wc -l)
  if [ "$expect" = no ] && [ "$cores" != 0 ]; then
    echo "$0: FAIL: $name: a core file was written"; find "$tmpdir" -name 'core*'; exit 1
  fi
  if [ "$expect" = yes ] && [ "$cores" = 0 ]; then
    echo "$0: FAIL: $name: allow-core-dumps=true but no core file (the check cannot see cores)"
    exit 1
  fi
  echo "$name: $cores core file(s) after kill -ABRT"
}

# KEK file volume.
truncate -s 8M "$tmpdir/f.img"
"$NBDCRYPT" format "$tmpdir/f.img" --kek-file "$tmpdir/f.kek" --create-kek >/dev/null
"$NBDCRYPT" dump "$tmpdir/f.img" --kek-file "$tmpdir/f.kek" --dump-volume-key "$tmpdir/f.dek" 2>/dev/null
run_case file no --filter="$NBDCRYPT_FILTER" file "$tmpdir/f.img" kek-file="$tmpdir/f.kek"
check_no_secrets "$tmpdir/f.kek" "$tmpdir/f.dek"

# KMS volume (local wrap: the KEK passes through this process).
kmip_start_server
kmip_write_conf "$tmpdir/kms.conf"
truncate -s 8M "$tmpdir/k.img"
"$NBDCRYPT" format "$tmpdir/k.img" --kms-config "$tmpdir/kms.conf" --create-kek >/dev/null
uid=$("$NBDCRYPT" dump --json "$tmpdir/k.img" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])')
"$NBDCRYPT" kms --config "$tmpdir/kms.conf" get "$uid" --out "$tmpdir/k.kek"
"$NBDCRYPT" dump "$tmpdir/k.img" --kms-config "$tmpdir/kms.conf" --dump-volume-key "$tmpdir/k.dek" 2>/dev/null
run_case kms no --filter="$NBDCRYPT_FILTER" file "$tmpdir/k.img" kms-config="$tmpdir/kms.conf"
# ($tmpdir/kms is the KMS's own state: its database holds the KEK by design.)
check_no_secrets "$tmpdir/f.kek" "$tmpdir/f.dek" "$tmpdir/k.kek" "$tmpdir/k.dek"

# Positive control: dumpable on request, and the core it leaves has no KEK in it.
run_case dumpable yes --filter="$NBDCRYPT_FILTER" file "$tmpdir/f.img" kek-file="$tmpdir/f.kek" \
  allow-core-dumps=true
grep -q "allow-core-dumps=true: the process stays dumpable" "$tmpdir/dumpable.log"
core=$(find "$tmpdir/dumpable" -name 'core*' -type f | head -1)
if contains "$core" "$tmpdir/f.kek"; then echo "$0: FAIL: the KEK is in the core"; exit 1; fi
if contains "$core" "$tmpdir/f.dek"; then
  echo "note: with allow-core-dumps=true the core holds DEK bytes (the engine's AES key schedules live in the heap)"
else
  echo "note: with allow-core-dumps=true the core holds no DEK bytes"
fi
rm -f "$core"
echo "keys stayed in locked, non-dumped memory"
