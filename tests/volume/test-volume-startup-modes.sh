#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: a volume that cannot be opened fails nbdkit's start - non-zero exit status,
# the one-line reason on stderr, no server left behind - in every mode nbdkit runs in: the
# default (forks into the background), -f, --run (which must not run its command), -s, and
# systemd socket activation (LISTEN_FDS). A KMS retry at start is logged as a warning.
# Refusals: a wrong KEK file, the KMS unreachable past kms-startup-timeout=, a corrupt header,
# key-file= over a volume with a header or over a LUKS container. The volume is opened before
# nbdkit forks; the daemon that serves still holds its keys locked (VmLck, "lo" and "dd"
# mappings) and wiped in its own forks ("wf").
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires_py nbd
F=$NBDCRYPT_FILTER
asan=false
ldd "$F" | grep -q libasan && asan=true

truncate -s 8M "$tmpdir/vol.img"
"$NBDCRYPT" format "$tmpdir/vol.img" --kek-file "$tmpdir/kek" --create-kek >/dev/null
head -c 32 /dev/urandom >"$tmpdir/wrong"; chmod 600 "$tmpdir/wrong"
cp "$tmpdir/vol.img" "$tmpdir/corrupt.img"
printf 'garbage!' | dd of="$tmpdir/corrupt.img" bs=1 seek=100 conv=notrunc status=none
printf 'garbage!' | dd of="$tmpdir/corrupt.img" bs=1 seek=$((512 * 1024 + 100)) conv=notrunc status=none
head -c 64 /dev/urandom >"$tmpdir/raw.key"

kmip_start_server
kmip_write_conf "$tmpdir/kms.conf" timeout=2
truncate -s 8M "$tmpdir/kvol.img"
"$NBDCRYPT" format "$tmpdir/kvol.img" --kms-config "$tmpdir/kms.conf" --create-kek >/dev/null
kmip_stop_server

# refuse WHY REGEX ARGS...: every mode exits non-zero within 60 s with REGEX on stderr.
refuse () {
  local why=$1 want=$2; shift 2
  local mode rc out=$tmpdir/out sock=$tmpdir/m.sock
  for mode in daemon foreground run single socket-activation; do
    rm -f "$sock" "$tmpdir/m.pid" "$tmpdir/ran"
    rc=0
    case $mode in
      daemon) ( sanitizer_env; exec timeout 60 nbdkit -U "$sock" -P "$tmpdir/m.pid" "$@" ) ;;
      foreground) ( sanitizer_env; exec timeout 60 nbdkit -f -U "$sock" "$@" ) ;;
      run) ( sanitizer_env; exec timeout 60 nbdkit -U - "$@" --run "touch '$tmpdir/ran'" ) ;;
      single) ( sanitizer_env; exec timeout 60 nbdkit -s "$@" ) ;;
      socket-activation)
        ( sanitizer_env; exec timeout 60 "$PYTHON" "$srcdir/volume/listen-fds.py" "$sock" \
            nbdkit -f "$@" ) ;;
    esac >"$out" 2>&1 </dev/null || rc=$?
    if [ $rc = 0 ] || [ $rc = 124 ]; then
      echo "$0: FAIL: $why, $mode: exit status $rc" >&2; cat "$out" >&2; exit 1
    fi
    grep -Eq -- "$want" "$out" ||
      { echo "$0: FAIL: $why, $mode: no /$want/ on stderr:" >&2; cat "$out" >&2; exit 1; }
    [ ! -e "$tmpdir/ran" ] || { echo "$0: FAIL: $why: --run ran its command" >&2; exit 1; }
    if [ -s "$tmpdir/m.pid" ] && kill -0 "$(cat "$tmpdir/m.pid")" 2>/dev/null; then
      echo "$0: FAIL: $why, $mode: a server is still running" >&2; exit 1
    fi
    echo "$why, $mode: exit $rc: $(grep -m1 -o 'nbdcrypt: .*' "$out" | cut -c1-110)"
  done
}

refuse "wrong KEK" "wrong KEK file" --filter="$F" file "$tmpdir/vol.img" kek-file="$tmpdir/wrong"
refuse "corrupt headers" "header" --filter="$F" file "$tmpdir/corrupt.img" kek-file="$tmpdir/kek"
refuse "KMS down" "KMS unreachable" \
  --filter="$F" file "$tmpdir/kvol.img" kms-config="$tmpdir/kms.conf" kms-startup-timeout=1
# While the KMS is down at start, one warning per retry (not an error), then the refusal.
( sanitizer_env; exec timeout 60 nbdkit -f -U "$tmpdir/r.sock" --filter="$F" file "$tmpdir/kvol.img" \
    kms-config="$tmpdir/kms.conf" kms-startup-timeout=2 ) >"$tmpdir/retry.out" 2>&1 </dev/null || true
n=$(grep -c 'nbdcrypt: warning: .*retrying in' "$tmpdir/retry.out" || true)
[ "$n" -ge 2 ] && ! grep -q 'error: .*retrying in' "$tmpdir/retry.out" ||
  { echo "$0: FAIL: KMS retries at start not logged as warnings:" >&2; cat "$tmpdir/retry.out" >&2; exit 1; }
echo "KMS down: $n retries logged, e.g. $(grep -m1 -o 'warning: .*' "$tmpdir/retry.out" | cut -c1-100)"

refuse "key-file over a header" "force-headerless=true" \
  --filter="$F" file "$tmpdir/vol.img" key-file="$tmpdir/raw.key"
if command -v cryptsetup >/dev/null; then
  truncate -s 8M "$tmpdir/luks.img"
  printf pw >"$tmpdir/pw"
  cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file "$tmpdir/pw" "$tmpdir/luks.img"
  refuse "key-file over LUKS" "a LUKS header.*force-headerless=true" \
    --filter="$F" file "$tmpdir/luks.img" key-file="$tmpdir/raw.key"
fi

# The daemon that serves: keys locked, not dumped, wiped in its forks; it serves the volume.
_nbdkit_pidfiles+=("$tmpdir/d.pid")
( sanitizer_env; exec nbdkit -U "$tmpdir/d.sock" -P "$tmpdir/d.pid" \
    --filter="$F" file "$tmpdir/vol.img" kek-file="$tmpdir/kek" ) >"$tmpdir/d.log" 2>&1
wait_daemon "$tmpdir/d.pid" "$tmpdir/d.sock"
pid=$(cat "$tmpdir/d.pid")
nbdsh -u "nbd+unix:///?socket=$tmpdir/d.sock" -c '
h.pwrite(b"z" * 8192, 4096)
assert h.pread(8192, 4096) == b"z" * 8192'
if ! $asan; then
  vmlck=$(awk '/^VmLck:/ {print $2}' "/proc/$pid/status")
  [ "$vmlck" -gt 0 ] || { echo "$0: FAIL: the daemon locks no memory (VmLck $vmlck kB)" >&2; exit 1; }
  grep -A30 -E '^[0-9a-f]+-' "/proc/$pid/smaps" | grep '^VmFlags:' | grep ' lo ' |
    grep ' dd ' | grep -q ' wf ' ||
    { echo "$0: FAIL: no locked, not-dumped, wipe-on-fork mapping in the daemon" >&2; exit 1; }
  echo "daemon: VmLck $vmlck kB, its key memory locked, not dumped, wiped on fork"
fi
stop_nbdkit d

# -u: what only root may read (the KEK file, 0600) is read before nbdkit drops privileges.
if id nobody >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  chmod 711 "$tmpdir"
  mkdir -m 777 "$tmpdir/pub"
  cp "$tmpdir/vol.img" "$tmpdir/pub/u.img"; chmod 666 "$tmpdir/pub/u.img"
  chmod 600 "$tmpdir/kek"
  _nbdkit_pidfiles+=("$tmpdir/pub/u.pid")
  ( sanitizer_env; exec nbdkit -u nobody -U "$tmpdir/pub/u.sock" -P "$tmpdir/pub/u.pid" \
      --filter="$F" file "$tmpdir/pub/u.img" kek-file="$tmpdir/kek" ) >"$tmpdir/u.log" 2>&1 ||
    { echo "$0: FAIL: -u nobody with a root-only KEK file:" >&2; cat "$tmpdir/u.log" >&2; exit 1; }
  wait_daemon "$tmpdir/pub/u.pid" "$tmpdir/pub/u.sock"
  upid=$(cat "$tmpdir/pub/u.pid")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$upid/status")
  [ "$uid" = "$(id -u nobody)" ] || { echo "$0: FAIL: the server runs as uid $uid" >&2; exit 1; }
  nbdsh -u "nbd+unix:///?socket=$tmpdir/pub/u.sock" -c 'assert h.pread(8192, 4096) == b"z" * 8192'
  kill "$upid"
  echo "-u nobody: KEK file read as root before the drop; serving as uid $uid"
fi
echo "$0: OK"
