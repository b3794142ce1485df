#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: keys only in locked memory. A served volume (KEK file, and KMS with local wrap)
# and a raw key-file= volume: /proc/PID/status shows VmLck > 0 and /proc/PID/smaps a mapping
# with non-zero "Locked:" and "lo" and "dd" (MADV_DONTDUMP) in VmFlags; the process is not
# dumpable, so kill -ABRT under `ulimit -c unlimited` with core_pattern=core leaves no core
# file; no file anywhere under the test directory (apart from the key files themselves)
# contains the DEK or the KEK bytes. With allow-core-dumps=true the same kill does leave a core
# file (so the check can see one), and even then it holds no key: neither the KEK (never kept
# after the unwrap) nor the DEK / raw key nor any AES round key made from them (the engine's
# key schedules are in locked, MADV_DONTDUMP memory) - for the default engine and for the
# OpenSSL ones (NBDCRYPT_XTS_IMPL=openssl-xts, ecb-generic), which the CPU may not pick here.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
# ASan makes mlock() a no-op and disables core dumps itself: neither can be observed there.
if ldd "$NBDCRYPT_FILTER" | grep -q libasan; then
  skip "built with ASan, which ignores mlock and disables core dumps"
fi
core_pattern=$(cat /proc/sys/kernel/core_pattern)
case $core_pattern in
  core*) ;;
  *) skip "core_pattern is '$core_pattern' (need a plain file name to look for cores)" ;;
esac
ulimit -c unlimited

# contains FILE KEYFILE: does FILE contain the key in KEYFILE (any 16-byte piece) or an AES
# round key made from it (FIPS 197 key expansion of the whole key and of each XTS half, also
# with every 32-bit word byte-swapped as OpenSSL's C AES keeps them)? Says what it found.
cat >"$tmpdir/contains.py" <<'PY'
import sys

def sbox():
    s, p, q = [0] * 256, 1, 1
    rot = lambda x, k: ((x << k) | (x >> (8 - k))) & 0xff
    while True:
        p = (p ^ (p << 1) ^ (0x1b if p & 0x80 else 0)) & 0xff
        q ^= (q << 1) & 0xff; q ^= (q << 2) & 0xff; q ^= (q << 4) & 0xff
        if q & 0x80:
            q ^= 0x09
        s[p] = q ^ rot(q, 1) ^ rot(q, 2) ^ rot(q, 3) ^ rot(q, 4) ^ 0x63
        if p == 1:
            break
    s[0] = 0x63
    return s

S = sbox()

def round_keys(key):
    nk = len(key) // 4
    nr = nk + 6
    w = [list(key[4 * i:4 * i + 4]) for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (nr + 1)):
        t = list(w[i - 1])
        if i % nk == 0:
            t = [S[t[1]] ^ rcon, S[t[2]], S[t[3]], S[t[0]]]
            rcon = ((rcon << 1) ^ (0x1b if rcon & 0x80 else 0)) & 0xff
        elif nk > 6 and i % nk == 4:
            t = [S[b] for b in t]
        w.append([a ^ b for a, b in zip(w[i - nk], t)])
    return [bytes(sum(w[4 * r:4 * r + 4], [])) for r in range(nr + 1)]

# FIPS 197 appendix A.1 and A.3: the last word of the AES-128 and AES-256 schedules.
assert round_keys(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))[-1][-4:].hex() == "b6630ca6"
assert round_keys(bytes.fromhex("603deb1015ca71be2b73aef0857d7781"
                                "1f352c073b6108d72d9810a30914dff4"))[-1][-4:].hex() == "706c631e"

data = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
needles = {"key bytes %d..%d" % (i, i + 15): key[i:i + 16] for i in range(0, len(key) - 15, 16)}
parts = {"whole key": key} if len(key) in (16, 24, 32) else {}
if len(key) in (32, 64):
    parts["first half"], parts["second half"] = key[:len(key) // 2], key[len(key) // 2:]
for name, part in parts.items():
    for r, rk in enumerate(round_keys(part)):
        needles["round key %d of the %s" % (r, name)] = rk
        swapped = b"".join(rk[j:j + 4][::-1] for j in range(0, 16, 4))
        needles["round key %d of the %s, words byte-swapped" % (r, name)] = swapped
found = [n for n, b in needles.items() if b in data]
if found:
    print("%s holds %s: %s" % (sys.argv[1], sys.argv[2], ", ".join(found[:6])))
sys.exit(0 if found else 1)
PY
contains () {
  "$PYTHON" "$tmpdir/contains.py" "$1" "$2"
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
  done < <(find "$tmpdir" -type f -size -512M -not -path "$tmpdir/kms/*" \
             -not -name contains.py -print0)
}

run_case () {  # run_case NAME EXPECT_CORE(yes|no) nbdkit-args...   (DAEMON=1: no -f)
  local name=$1 expect=$2; shift 2
  local dir=$tmpdir/$name pid locked vmlck
  mkdir -p "$dir"
  if [ "${DAEMON:-0}" = 1 ]; then
    # nbdkit forks into the background (its working directory becomes /): the volume was
    # opened before the fork and its keys locked again in the child that serves.
    _nbdkit_pidfiles+=("$tmpdir/$name.pid")
    ( sanitizer_env; exec nbdkit -U "$dir/sock" -P "$tmpdir/$name.pid" "$@" ) \
      >"$tmpdir/$name.log" 2>&1 </dev/null
    wait_daemon "$tmpdir/$name.pid" "$dir/sock"
    uri="nbd+unix:///?socket=$dir/sock"
  else
    # nbdkit -f keeps its working directory: core_pattern=core puts a core file there.
    cd "$dir"
    start_nbdkit "$name" "$@"
    cd - >/dev/null
  fi
  echo "$uri" > "$dir/uri"
  pid=$(cat "$tmpdir/$name.pid")
  nbdsh -u "$(cat "$dir/uri")" -c 'h.pwrite(b"x" * 4096, 0)'
  vmlck=$(awk '/^VmLck:/ {print $2}' /proc/"$pid"/status)
  # Mappings with Locked > 0 whose VmFlags have lo (mlock) and dd (MADV_DONTDUMP).
  locked=$(awk '/^Locked:/ {l = $2} /^VmFlags:/ && l > 0 && / lo / && / dd / {n++}
                END {print n+0}' /proc/"$pid"/smaps)
  echo "$name: VmLck ${vmlck} kB, $locked locked, not-dumped mapping(s)"
  [ "${vmlck:-0}" -gt 0 ] && [ "$locked" -gt 0 ] ||
    { echo "$0: FAIL: $name: no locked key pages"; exit 1; }
  kill -ABRT "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  sleep 0.5
  cores=$(find "$tmpdir" -name 'core*' -type f | wc -l)
  if [ "${DAEMON:-0}" = 1 ]; then     # its working directory was /
    cores=$((cores + $(find / -maxdepth 1 -name 'core*' -type f -newer "$tmpdir/$name.log" |
                       wc -l)))
  fi
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

# The same volume served by a daemon (nbdkit without -f).
DAEMON=1 run_case file-daemon no --filter="$NBDCRYPT_FILTER" file "$tmpdir/f.img" \
  kek-file="$tmpdir/f.kek"
check_no_secrets "$tmpdir/f.kek" "$tmpdir/f.dek"

# KMS volume (local wrap: the KEK passes through this process).
kmip_start_server
kmip_write_conf "$tmpdir/kms.conf"
truncate -s 8M "$tmpdir/k.img"
"$NBDCRYPT" format "$tmpdir/k.img" --kms-config "$tmpdir/kms.conf" --create-kek >/dev/null
uid=$("$NBDCRYPT" dump --json "$tmpdir/k.img" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])')
"$NBDCRYPT" kms --config "$tmpdir/kms.conf" get "$uid" --out "$tmpdir/k.kek"
"$NBDCRYPT" dump "$tmpdir/k.img" --kms-config "$tmpdir/kms.conf" --dump-volume-key "$tmpdir/k.dek" 2>/dev/null
run_case kms no --filter="$NBDCRYPT_FILTER" file "$tmpdir/k.img" kms-config="$tmpdir/kms.conf"
# ($tmpdir/kms is the KMS's own state: its database holds the KEK by design.)
check_no_secrets "$tmpdir/f.kek" "$tmpdir/f.dek" "$tmpdir/k.kek" "$tmpdir/k.dek"

# Raw key file (read once before nbdkit forks, keyed in .after_fork).
truncate -s 8M "$tmpdir/r.img"
head -c 64 /dev/urandom >"$tmpdir/r.key"
run_case raw no --filter="$NBDCRYPT_FILTER" file "$tmpdir/r.img" key-file="$tmpdir/r.key"
check_no_secrets "$tmpdir/f.kek" "$tmpdir/f.dek" "$tmpdir/k.kek" "$tmpdir/k.dek" "$tmpdir/r.key"

# dumpable_case NAME KEYFILE... -- nbdkit-args: dumpable on request (positive control: a core
# is written), and the core holds none of the keys in KEYFILE..., nor their key schedules.
dumpable_case () {
  local name=$1 core k keys=()
  shift
  while [ "$1" != -- ]; do keys+=("$1"); shift; done
  shift
  run_case "$name" yes "$@" allow-core-dumps=true
  grep -q "allow-core-dumps=true: the process stays dumpable" "$tmpdir/$name.log"
  core=$(find "$tmpdir/$name" -name 'core*' -type f | head -1)
  for k in "${keys[@]}"; do
    if contains "$core" "$k"; then echo "$0: FAIL: $name: a key is in the core"; exit 1; fi
  done
  echo "$name: the core ($(du -k "$core" | cut -f1) kB) holds no key and no key schedule"
  rm -f "$core"
}
dumpable_case dumpable "$tmpdir/f.kek" "$tmpdir/f.dek" -- \
  --filter="$NBDCRYPT_FILTER" file "$tmpdir/f.img" kek-file="$tmpdir/f.kek"
dumpable_case raw-dumpable "$tmpdir/r.key" -- \
  --filter="$NBDCRYPT_FILTER" file "$tmpdir/r.img" key-file="$tmpdir/r.key"
# The OpenSSL engines (what a CPU without VAES uses): their contexts' pages are locked and
# not dumped (not wiped on fork: they are shared heap pages).
for impl in openssl-xts ecb-generic; do
  export NBDCRYPT_XTS_IMPL=$impl
  dumpable_case "raw-dumpable-$impl" "$tmpdir/r.key" -- \
    --filter="$NBDCRYPT_FILTER" -v file "$tmpdir/r.img" key-file="$tmpdir/r.key"
  grep -q "engine $impl" "$tmpdir/raw-dumpable-$impl.log" ||
    { echo "$0: FAIL: NBDCRYPT_XTS_IMPL=$impl was not used"; exit 1; }
done
unset NBDCRYPT_XTS_IMPL
# A KMS volume (local wrap): the KEK went through TLS, the KMIP decoder and the RFC 5649 unwrap.
# Copies of it that the dynamic linker's lazy binding spilled from vector registers onto the
# stack were found here once (see secmem_scrub_cpu).
dumpable_case kms-dumpable "$tmpdir/k.kek" "$tmpdir/k.dek" -- \
  --filter="$NBDCRYPT_FILTER" file "$tmpdir/k.img" kms-config="$tmpdir/kms.conf"
echo "keys stayed in locked, non-dumped memory"
