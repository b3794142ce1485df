# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the shell tests: temp dir, cleanup, skipping, starting nbdkit on a Unix socket,
# and running under sanitizers when the build under test has them.
# Usage in a test:   source "$srcdir/functions.sh"   (srcdir is set by meson to tests/)
set -euo pipefail

export PATH="/usr/bin:$PATH"
# Key files, KEK files and kms.conf made by a test are private, as an operator's should be:
# the filter and the command warn about secret files other users can read.
umask 077
: "${srcdir:?run me through meson test}"
: "${top_srcdir:=$srcdir/..}"

# The Python that has the nbd, kmip and cryptography modules (Debian's); run every Python
# helper and script as "$PYTHON" script.py, never by its shebang.
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON

# Skip (exit 77) only when a tool or a kernel feature is truly unavailable, never to hide a
# failure. skip REASON...: say why and stop.
skip () { echo "$0: SKIP: $*"; exit 77; }
# requires CMD: CMD is on PATH.
requires () {
  command -v "$1" >/dev/null 2>&1 || skip "'$1' is not installed"
}
# requires_python: $PYTHON runs. requires_py MODULE: and imports MODULE.
requires_python () {
  "$PYTHON" -c '' 2>/dev/null || skip "'$PYTHON' does not run (set PYTHON)"
}
requires_py () {
  "$PYTHON" -c "import $1" 2>/dev/null || skip "python module '$1' is not installed"
}
# have_nbdkit_filter NAME / have_nbdkit_plugin NAME: nbdkit can load it (a condition);
# requires_nbdkit_filter NAME / requires_nbdkit_plugin NAME: skip if it cannot.
have_nbdkit_filter () { nbdkit --filter="$1" null --dump-plugin >/dev/null 2>&1; }
have_nbdkit_plugin () { nbdkit "$1" --dump-plugin >/dev/null 2>&1; }
requires_nbdkit_filter () {
  requires nbdkit
  have_nbdkit_filter "$1" || skip "nbdkit $1 filter not installed"
}
requires_nbdkit_plugin () {
  requires nbdkit
  have_nbdkit_plugin "$1" || skip "nbdkit $1 plugin not installed"
}

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nbdcrypt-test.XXXXXX")
_cleanup_cmds=()
_nbdkit_pidfiles=()

# on_exit CMD...: run CMD when the test ends, in reverse order of registration.
on_exit () { _cleanup_cmds+=("$*"); }

_cleanup () {
  local rc=$? i
  set +e
  for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${_cleanup_cmds[i]}"; done
  for pf in "${_nbdkit_pidfiles[@]}"; do
    [ -s "$pf" ] && kill "$(cat "$pf")" 2>/dev/null
  done
  for pf in "${_nbdkit_pidfiles[@]}"; do
    if [ -s "$pf" ]; then
      for _ in $(seq 50); do kill -0 "$(cat "$pf")" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  # A sanitizer report from any nbdkit process fails the test.
  if compgen -G "$tmpdir/sanitizer.*" >/dev/null; then
    echo "$0: FAIL: sanitizer reports:" >&2
    cat "$tmpdir"/sanitizer.* >&2
    rc=1
  fi
  rm -rf "$tmpdir"
  exit $rc
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# When the filter/plugin under test was built with ASan/UBSan, nbdkit (not instrumented) must
# preload the runtimes, and reports go to files that _cleanup turns into a failure.
sanitizer_env () {
  local so=${1:-$NBDCRYPT_FILTER} libs
  libs=$(ldd "$so" 2>/dev/null | awk '/lib(asan|ubsan)\.so/ {print $3}' | tr '\n' ':')
  if [ -n "$libs" ]; then
    export LD_PRELOAD="${libs%:}"
    export ASAN_OPTIONS="detect_leaks=0:log_path=$tmpdir/sanitizer:abort_on_error=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$tmpdir/sanitizer"
  fi
}

# start_nbdkit NAME [nbdkit args...]: serve on $tmpdir/NAME.sock in the background; returns
# when the socket is ready. Sets $sock and $uri; the server is stopped at exit.
start_nbdkit () {
  local name=$1; shift
  sock="$tmpdir/$name.sock"
  local pidfile="$tmpdir/$name.pid" log="$tmpdir/$name.log"
  rm -f "$sock" "$pidfile"
  _nbdkit_pidfiles+=("$pidfile")
  ( sanitizer_env; exec nbdkit -U "$sock" -P "$pidfile" -f "$@" ) >"$log" 2>&1 &
  for _ in $(seq 300); do
    [ -s "$pidfile" ] && [ -S "$sock" ] && break
    if ! kill -0 $! 2>/dev/null; then
      echo "$0: nbdkit $* failed to start:" >&2; cat "$log" >&2; return 1
    fi
    sleep 0.1
  done
  [ -S "$sock" ] || { echo "$0: nbdkit did not start in 30s" >&2; cat "$log" >&2; return 1; }
  uri="nbd+unix:///?socket=$sock"
}

# stop_nbdkit NAME: stop a server started by start_nbdkit and wait for it to exit.
# wait_daemon PIDFILE SOCKET: after `nbdkit` without -f has returned (its parent exits once
# the server has forked), wait until the forked server has written PIDFILE and listens.
wait_daemon () {
  for _ in $(seq 300); do
    [ -s "$1" ] && [ -S "$2" ] && return 0
    sleep 0.1
  done
  echo "$0: the nbdkit daemon did not write $1 and listen on $2 in 30 s" >&2
  return 1
}

stop_nbdkit () {
  local pidfile="$tmpdir/$1.pid" pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

# nbdkit_fails EXPECTED_REGEX [nbdkit args...]: nbdkit must refuse to start and say why.
nbdkit_fails () {
  local want=$1; shift
  local out="$tmpdir/fail.out"
  # timeout: with libasan preloaded, nbdkit 1.32 can hang in exit() after a startup error
  # (p11-kit's destructor waits on glibc's locale lock); the message is already printed then.
  if ( sanitizer_env; exec timeout -s KILL 30 nbdkit -U - "$@" --run true ) \
       >"$out" 2>&1 </dev/null; then
    echo "$0: FAIL: nbdkit $* started but should have failed" >&2; return 1
  fi
  if ! grep -Eq -- "$want" "$out"; then
    echo "$0: FAIL: nbdkit $* error did not match /$want/:" >&2; cat "$out" >&2; return 1
  fi
}

# luks_comparison_image FILE: a 4 MiB LUKS1 container (passphrase "pw", in $tmpdir/pw; few
# PBKDF2 iterations to keep it quick) for comparisons with nbdkit's own luks filter, which
# reads LUKS1 only. Returns 1 when cryptsetup or nbdkit's luks filter is missing or fails.
luks_comparison_image () {
  command -v cryptsetup >/dev/null && have_nbdkit_filter luks || return 1
  truncate -s 4M "$1"
  printf pw >"$tmpdir/pw"
  cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
    --cipher aes-xts-plain64 --key-size 512 --key-file "$tmpdir/pw" "$1"
}

# LUKS1 as an independent reader/writer of dm-crypt's aes-xts-plain64 layout (qemu's own XTS).
# luks1_container FILE KEY PW: make FILE (already sized) a LUKS1 container whose volume key is
# the file KEY (32 or 64 bytes), unlocked by the passphrase file PW; cryptsetup with a fixed
# PBKDF iteration count (qemu-img's PBKDF benchmark fails now and then under load). Prints
# the payload offset in bytes.
luks1_container () {
  cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
    --cipher aes-xts-plain64 --key-size $(($(stat -c %s "$2") * 8)) --volume-key-file "$2" \
    --key-file "$3" "$1" || return 1
  # (errexit does not reach into $(...): each step says its own failure.)
  cryptsetup luksDump "$1" | awk '/^Payload offset:/ {print $3 * 512; found = 1} END {exit !found}'
}
# luks1_read FILE PW OUT: the container's plaintext, by qemu-img, to the raw file OUT.
luks1_read () {
  qemu-img convert --object secret,id=sec0,file="$2" \
    --image-opts "driver=luks,key-secret=sec0,file.driver=file,file.filename=$1" -O raw "$3"
}
# luks1_write IN FILE PW: the raw file IN written into the container by qemu-img.
luks1_write () {
  qemu-img convert -n --object secret,id=sec0,file="$3" -f raw "$1" \
    --target-image-opts "driver=luks,key-secret=sec0,file.driver=file,file.filename=$2"
}
