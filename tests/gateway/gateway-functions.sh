#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Sourced after tests/functions.sh: bring up and tear down the userspace iSCSI gateway's
# pieces (nbdfuse mounts, a tgtd on a loopback port). Shared by tests/gateway,
# perf/gateway-bench.sh and perf/gateway-random.sh.

# qemu's iscsi:// driver is a module of its own (qemu-block-extra on Debian).
qemu_has_iscsi () {
  ! qemu-img info iscsi://127.0.0.1:1/iqn.2000-01.invalid:x/0 2>&1 | grep -q 'Unknown protocol'
}
gateway_tools () {
  command -v tgtd && command -v tgtadm && command -v iscsi-readcapacity16 &&
    command -v iscsi-test-cu && qemu_has_iscsi
} >/dev/null 2>&1

# nbdfuse NAME: the volume as the file $tmpdir/NAME.mnt/lun. fusermount3 -u at exit (after
# tgtd is gone: a busy mount does not unmount), then nbdfuse is waited for.
fuse_mount () {
  local name=$1
  mkdir "$tmpdir/$name.mnt"
  nbdfuse -P "$tmpdir/$name.fuse.pid" "$tmpdir/$name.mnt/lun" \
    --unix "$tmpdir/$name.sock" 2>"$tmpdir/$name.fuse.log" &
  on_exit fuse_unmount "$name"
  for _ in $(seq 100); do
    [ -s "$tmpdir/$name.fuse.pid" ] && break
    kill -0 $! 2>/dev/null || { cat "$tmpdir/$name.fuse.log" >&2; return 1; }
    sleep 0.1
  done
  [ -s "$tmpdir/$name.fuse.pid" ] || { echo "$0: nbdfuse $name did not start" >&2; return 1; }
}
fuse_unmount () {
  local mnt="$tmpdir/$1.mnt" pid
  pid=$(cat "$tmpdir/$1.fuse.pid" 2>/dev/null) || return 0
  grep -qF " $mnt " /proc/mounts && fusermount3 -u "$mnt"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    fusermount3 -uz "$mnt"
  fi
  rm -f "$tmpdir/$1.fuse.pid"
}

# tgtd on a free loopback port; its control channel (-C, at most 32767) is named after the
# port, so that tests running at once never share a daemon. tgtd ignores SIGTERM: it is
# asked to leave through its control channel, and killed only if it does not.
free_port () {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
tgt () { tgtadm -C "$ctl" --lld iscsi "$@"; }
tgt_start () {
  local try
  for try in 1 2 3 4 5; do
    port=$(free_port)
    ctl=$((port % 32768))
    tgtd -f -C "$ctl" --iscsi portal="127.0.0.1:$port" >"$tmpdir/tgtd.log" 2>&1 &
    tgtd_pid=$!
    for _ in $(seq 50); do
      kill -0 "$tgtd_pid" 2>/dev/null || break
      tgt --op show --mode sys >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    kill -9 "$tgtd_pid" 2>/dev/null; wait "$tgtd_pid" 2>/dev/null
  done
  echo "$0: tgtd did not start:" >&2; cat "$tmpdir/tgtd.log" >&2
  return 1
}
# tgt_stop [strict]: every target (and its LUNs) deleted, then the daemon asked to leave;
# "strict" fails when it has to be killed.
tgt_stop () {
  [ -n "${tgtd_pid:-}" ] || return 0
  local tid
  for tid in $(tgt --op show --mode target 2>/dev/null | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
    tgt --op delete --force --mode target --tid "$tid" >/dev/null 2>&1
  done
  tgt --op delete --mode system >/dev/null 2>&1
  for _ in $(seq 100); do kill -0 "$tgtd_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$tgtd_pid" 2>/dev/null; then
    kill -9 "$tgtd_pid"
    if [ "${1:-}" = strict ]; then
      echo "$0: FAIL: tgtd did not leave on system delete" >&2; return 1
    fi
  fi
  wait "$tgtd_pid" 2>/dev/null
  tgtd_pid=
}
