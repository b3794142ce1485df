#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad configuration: wrong key size, missing/unreadable key file, bad sector-size, cipher and
# discard values make nbdkit refuse to start with a message that says what is wrong; the
# key bytes never appear in any output (-v, --dump-plugin, --dump-config, error paths).
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd

F="$NBDCRYPT_FILTER"
# nbdkit with the sanitizer runtimes preloaded when the filter was built with them; clients
# run by --run must not inherit the preload.
nbdkit_san () { ( sanitizer_env; exec nbdkit "$@" ); }
exec_nbdkit_san () { sanitizer_env; exec nbdkit "$@"; }    # run in the background only
nosan='env -u LD_PRELOAD'
k64="$tmpdir/k64.key"; head -c 64 /dev/urandom >"$k64"
k32="$tmpdir/k32.key"; head -c 32 /dev/urandom >"$k32"

# fails_with REGEX... -- nbdkit args: nbdkit must refuse to start and its output must match
# every REGEX (so a message can be required to name both the file and the size).
# Like nbdkit_fails, but bounded in time: with libasan preloaded, nbdkit 1.32 hangs in exit()
# (p11-kit's destructor waits on glibc's locale lock) after any error printed with strerror,
# plugin or filter alike (nbdkit -U - file /nonexistent does it too). The message is out by
# then, so a process still there 5 s after its error is killed and judged on its message.
run_bounded () {   # run_bounded OUT CMD...: CMD must exec nbdkit (its pid is watched); sets $rc
  local out=$1 pid since=0
  shift
  "$@" >"$out" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 600); do
    kill -0 $pid 2>/dev/null || break
    if grep -q 'error:' "$out" && [ $((since += 1)) -ge 50 ]; then
      echo "(nbdkit killed 5 s after its error: the ASan exit hang)"
      kill -9 $pid 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rc=0
  wait $pid 2>/dev/null || rc=$?
}
fails_with () {
  local res=() r out="$tmpdir/fail.out"
  while [ "$1" != -- ]; do res+=("$1"); shift; done
  shift
  run_bounded "$out" exec_nbdkit_san -U - "$@" --run true
  if [ $rc = 0 ]; then
    echo "$0: FAIL: nbdkit $* started but should have failed" >&2; exit 1
  fi
  for r in "${res[@]}"; do
    grep -Eq -- "$r" "$out" ||
      { echo "$0: FAIL: nbdkit $* error did not match /$r/:" >&2; cat "$out" >&2; exit 1; }
  done
  echo "refused: $(grep -m1 nbdcrypt "$out" || head -1 "$out")"
}

# Positive controls: the same command lines with good values start and serve.
starts () {
  nbdkit_san -U - --filter="$F" memory 1M "$@" --run "$nosan"' nbdsh -u "$uri" -c "
h.pwrite(b\"x\" * 4096, 0); assert h.pread(4096, 0) == b\"x\" * 4096"' ||
    { echo "$0: FAIL: nbdkit with $* did not start/serve" >&2; exit 1; }
}
starts key-file="$k64"
starts key-file="$k64" sector-size=512
starts key-file="$k64" sector-size=4096 cipher=aes-256-xts discard=off
starts key-file="$k32" cipher=aes-128-xts discard=on
echo "good configurations start"

# Wrong key sizes: the message names the file and the size it must have.
for n in 0 1 31 32 63 65 128; do
  head -c $n /dev/urandom >"$tmpdir/bad$n.key"
  [ $n = 64 ] && continue
  fails_with "$tmpdir/bad$n.key" '\b64\b' -- --filter="$F" memory 1M key-file="$tmpdir/bad$n.key"
done
for n in 16 31 33 64; do
  head -c $n /dev/urandom >"$tmpdir/b128-$n.key"
  fails_with "$tmpdir/b128-$n.key" '\b32\b' -- \
    --filter="$F" memory 1M key-file="$tmpdir/b128-$n.key" cipher=aes-128-xts
done
# XTS with both halves equal is refused (IEEE 1619 / FIPS), not silently weak.
h=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf "$(echo "$h$h" | sed 's/../\\x&/g')" >"$tmpdir/eq.key"
[ "$(stat -c %s "$tmpdir/eq.key")" = 64 ]
fails_with 'halves|equal|identical' "$tmpdir/eq.key" -- --filter="$F" memory 1M key-file="$tmpdir/eq.key"

# Missing, not a file, unreadable.
fails_with "$tmpdir/nonexistent.key" 'No such file|not exist|missing' -- \
  --filter="$F" memory 1M key-file="$tmpdir/nonexistent.key"
mkdir "$tmpdir/keydir"
fails_with "$tmpdir/keydir" -- --filter="$F" memory 1M key-file="$tmpdir/keydir"
fails_with 'key-file' -- --filter="$F" memory 1M
fails_with 'key-file' -- --filter="$F" memory 1M sector-size=512
if [ "$(id -u)" = 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$F"; then
  echo "unreadable key file: not checked (user nobody cannot read $F)"
elif [ "$(id -u)" = 0 ]; then
  # Root reads any file: drop to nobody for this one (the key sits in a private 0600 file).
  # Sanitizer logs go to a directory nobody can write, then join the others.
  pub="$tmpdir/pub"; mkdir "$pub"; chmod 711 "$tmpdir"; chmod 1777 "$pub"
  cp "$k64" "$pub/root-only.key"; chmod 600 "$pub/root-only.key"
  out="$tmpdir/unreadable.out"
  nobody_nbdkit () {
    sanitizer_env
    if [ -n "${LD_PRELOAD:-}" ]; then
      export ASAN_OPTIONS="detect_leaks=0:log_path=$pub/sanitizer:abort_on_error=1"
      export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$pub/sanitizer"
    fi
    exec setpriv --reuid=65534 --regid=65534 --clear-groups \
      nbdkit -U - --filter="$F" memory 1M key-file="$pub/root-only.key" --run true
  }
  run_bounded "$out" nobody_nbdkit
  mv "$pub"/sanitizer.* "$tmpdir"/ 2>/dev/null || true
  if [ $rc = 0 ]; then
    echo "$0: FAIL: nbdkit started with an unreadable key file" >&2; exit 1
  fi
  grep -q "$pub/root-only.key" "$out" && grep -Eq 'Permission denied' "$out" ||
    { echo "$0: FAIL: unreadable key file: unclear message:" >&2; cat "$out" >&2; exit 1; }
  echo "refused: $(grep -m1 nbdcrypt "$out")"
else
  cp "$k64" "$tmpdir/noread.key"; chmod 000 "$tmpdir/noread.key"
  fails_with "$tmpdir/noread.key" 'Permission denied' -- \
    --filter="$F" memory 1M key-file="$tmpdir/noread.key"
fi

# Bad values of the other parameters.
for v in 0 1 256 1000 1024 2048 8192 -512 abc 512x 4k ''; do
  fails_with 'sector-size' -- --filter="$F" memory 1M key-file="$k64" sector-size="$v"
done
for v in aes-192-xts aes-256-cbc des xts aes ''; do
  fails_with 'cipher' -- --filter="$F" memory 1M key-file="$k64" cipher="$v"
done
for v in maybe 2 onn ''; do
  fails_with 'discard' -- --filter="$F" memory 1M key-file="$k64" discard="$v"
done

# The key never appears in any output: debug output while serving, error paths (a key file
# one byte too long still holds key material), --dump-plugin and --dump-config.
leakcheck () {   # leakcheck KEYFILE OUTPUT...
  "$PYTHON" - "$@" <<'PY'
import base64, re, sys
key = open(sys.argv[1], "rb").read()
for path in sys.argv[2:]:
    out = open(path, "rb").read()
    hexonly = re.sub(rb"[^0-9a-f]", b"", out.lower())
    b64 = re.sub(rb"[^A-Za-z0-9+/]", b"", out)
    for i in range(0, len(key) - 7):
        w = key[i:i + 8]
        if w in out:
            sys.exit("FAIL: raw key bytes at key offset %d appear in %s" % (i, path))
        if w.hex().encode() in hexonly:
            sys.exit("FAIL: key bytes at key offset %d appear as hex in %s" % (i, path))
    for part in (key, key[:len(key) // 2], key[len(key) // 2:]):
        if base64.b64encode(part).rstrip(b"=")[:16] in b64:
            sys.exit("FAIL: the key appears base64-encoded in %s" % path)
print("no key material in %d outputs" % (len(sys.argv) - 2))
PY
}
# The checker itself must catch a key printed raw, as spaced hex, or in base64.
for enc in "cat" "od -An -tx1" "base64"; do
  $enc "$k64" >"$tmpdir/leak.out"
  if leakcheck "$k64" "$tmpdir/leak.out" >/dev/null 2>&1; then
    echo "$0: FAIL: leak checker missed a key printed by '$enc'" >&2; exit 1
  fi
done
nbdkit_san -v -U - --filter="$F" memory 1M key-file="$k64" sector-size=512 --run "$nosan"' nbdsh -u "$uri" -c "
h.pwrite(b\"a\" * 100, 3); h.pread(4096, 0); h.zero(512, 512); h.flush()"' \
  >"$tmpdir/v.out" 2>&1
grep -q 'nbdcrypt' "$tmpdir/v.out" || { echo "$0: FAIL: no -v output captured" >&2; exit 1; }
nbdkit_san -v -U - --filter="$F" memory 1M key-file="$k64" --dump-plugin >"$tmpdir/dump.out" 2>&1
grep -q 'nbdcrypt' "$tmpdir/dump.out" || { echo "$0: FAIL: --dump-plugin lacks the filter" >&2; exit 1; }
nbdkit --dump-config >"$tmpdir/config.out" 2>&1
nbdkit_san -v --filter="$F" memory 1M key-file="$k64" --dump-config >"$tmpdir/config2.out" 2>&1 || true
leakcheck "$k64" "$tmpdir/v.out" "$tmpdir/dump.out" "$tmpdir/config.out" "$tmpdir/config2.out"
nbdkit_san -v -U - --filter="$F" memory 1M key-file="$tmpdir/bad65.key" --run true \
  >"$tmpdir/v65.out" 2>&1 && { echo "$0: FAIL: 65-byte key accepted" >&2; exit 1; }
nbdkit_san -v -U - --filter="$F" memory 1M key-file="$tmpdir/eq.key" --run true \
  >"$tmpdir/veq.out" 2>&1 && { echo "$0: FAIL: equal halves accepted" >&2; exit 1; }
leakcheck "$tmpdir/bad65.key" "$tmpdir/v65.out"
leakcheck "$tmpdir/eq.key" "$tmpdir/veq.out"
nbdkit_san -v -U - --filter="$F" memory 1M key-file="$k32" cipher=aes-128-xts \
  --run "$nosan"' nbdsh -u "$uri" -c "h.pread(512, 0)"' >"$tmpdir/v32.out" 2>&1
leakcheck "$k32" "$tmpdir/v32.out"
echo "$0: OK"
