#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: key-file= is read once, in .config_complete (so that a bad key file stops
# nbdkit with a message on the terminal, before it forks), into locked memory kept across
# nbdkit's fork; the engine is keyed from that copy in .after_fork, in the process that serves,
# and the copy is wiped. Shown here:
#  - daemon mode (no -f: nbdkit forks into the background): what a client writes through it
#    reads back identically through a foreground nbdkit on the same image, and the image holds
#    ciphertext - so the daemon was keyed, after its fork, with the right key; its key
#    schedules are in a locked (Locked > 0, "lo"), not-dumped ("dd") mapping (not under ASan,
#    which ignores mlock);
#  - the key file removed, or replaced by another valid key, after it was read (the window is
#    held open by a plugin whose get_ready waits for the test): nbdkit serves with the key it
#    read, checked against python3-cryptography's XTS; nothing reads the file again;
#  - a pipe as key file: read once, it serves with the key it carried.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd

F="$NBDCRYPT_FILTER"
key="$tmpdir/k.key"; head -c 64 /dev/urandom >"$key"
truncate -s 4M "$tmpdir/disk.img"
asan=false
ldd "$F" | grep -q libasan && asan=true

# 1. Daemon mode: nbdkit forks into the background before .after_fork.
_nbdkit_pidfiles+=("$tmpdir/d.pid")
( sanitizer_env; exec nbdkit -U "$tmpdir/d.sock" -P "$tmpdir/d.pid" \
    --filter="$F" file "$tmpdir/disk.img" key-file="$key" ) >"$tmpdir/d.log" 2>&1
for _ in $(seq 300); do [ -s "$tmpdir/d.pid" ] && [ -S "$tmpdir/d.sock" ] && break; sleep 0.1; done
pid=$(cat "$tmpdir/d.pid")
head -c 1048576 /dev/urandom >"$tmpdir/data"
nbdsh -u "nbd+unix:///?socket=$tmpdir/d.sock" -c "
data = open('$tmpdir/data', 'rb').read()
h.pwrite(data, 0)
h.pwrite(data[:1000], 2000000 + 7)
assert h.pread(len(data), 0) == data
h.flush()
"
# (Not under ASan: it ignores mlock, and marks its own shadow memory MADV_DONTDUMP.)
$asan || "$PYTHON" - "$pid" <<'PY'
import sys
pid = sys.argv[1]
ok = []
cur = None
for line in open("/proc/%s/smaps" % pid):
    f = line.split()
    if "-" in f[0] and len(f) >= 5 and not line.startswith(("VmFlags", "Locked")):
        cur = {"range": f[0], "locked": 0}
    elif line.startswith("Locked:"):
        cur["locked"] = int(f[1])
    elif line.startswith("VmFlags:"):
        flags = set(f[1:])
        if "dd" in flags and "lo" in flags and cur["locked"] > 0:
            ok.append("%s %s" % (cur["range"], " ".join(sorted(flags & {"lo", "dd", "wf"}))))
if not ok:
    sys.exit("FAIL: the daemon has no locked, not-dumped mapping (where are its key schedules?)")
print("daemon: locked, not-dumped mappings:", "; ".join(ok))
PY
stop_nbdkit d
if cmp -s <(head -c 1048576 "$tmpdir/disk.img") "$tmpdir/data"; then
  echo "$0: FAIL: the image holds the plaintext" >&2; exit 1
fi
start_nbdkit fg --filter="$F" file "$tmpdir/disk.img" key-file="$key"
nbdsh -u "$uri" -c "
data = open('$tmpdir/data', 'rb').read()
assert h.pread(len(data), 0) == data, 'daemon and foreground disagree'
assert h.pread(1000, 2000000 + 7) == data[:1000]
"
stop_nbdkit fg
echo "daemon mode: keyed after its fork with the right key"

# 2. The key file changes after it was read: nbdkit serves with the key it read.
# window ACTION: nbdkit (foreground, on $tmpdir/w.sock) with a plugin whose get_ready - run
# after the filter's .config_complete, before .after_fork - waits until ACTION has run. The
# plugin reads as zeros, so the first 512 bytes served are the XTS decryption of a zero
# sector 0 under the key nbdkit keyed its engine with: saved in $tmpdir/w.read. rc=0 if it
# served, else nbdkit's exit status (the output is in $out).
out="$tmpdir/w.out"
window () {
  local pid since=0
  rm -f "$tmpdir/ready" "$tmpdir/go" "$tmpdir/w.sock" "$tmpdir/w.read"
  cp "$key" "$tmpdir/w.key"
  ( sanitizer_env; exec nbdkit -f -U "$tmpdir/w.sock" --filter="$F" eval \
      get_size='echo 1048576' \
      pread='exec env -u LD_PRELOAD head -c $3 /dev/zero' \
      get_ready="touch '$tmpdir/ready'; while [ ! -e '$tmpdir/go' ]; do sleep 0.05; done" \
      key-file="$tmpdir/w.key" ) >"$out" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 600); do [ -e "$tmpdir/ready" ] && break; sleep 0.05; done
  [ -e "$tmpdir/ready" ] || { echo "$0: FAIL: get_ready never ran:" >&2; cat "$out" >&2; exit 1; }
  eval "$1"
  touch "$tmpdir/go"
  rc=
  for _ in $(seq 300); do
    if ! kill -0 $pid 2>/dev/null; then
      rc=0; wait $pid || rc=$?
      [ $rc != 0 ] || rc=1          # exited by itself: it did not serve
      return
    fi
    # With libasan preloaded nbdkit 1.32 can hang in exit() after an error printed with
    # strerror (see test-filter-badinput.sh): judged on its message then. (Only the
    # filter's errors count: the eval plugin says "no connection in this thread" when the
    # filter's start-up check for a volume header opens it outside a connection.)
    if grep -q 'error: nbdcrypt' "$out"; then
      if [ $((since += 1)) -ge 40 ]; then
        kill -9 $pid; wait $pid || true; rc=1
        return
      fi
    # Serving? (The socket listens before .after_fork; connections are accepted after it.)
    elif [ -S "$tmpdir/w.sock" ] &&
       env -u LD_PRELOAD timeout 10 nbdsh -u "nbd+unix:///?socket=$tmpdir/w.sock" \
         -c "open('$tmpdir/w.read', 'wb').write(h.pread(512, 0))" 2>/dev/null; then
      kill $pid; wait $pid || true; rc=0
      return
    fi
    sleep 0.1
  done
  kill -9 $pid; wait $pid || true
  echo "$0: FAIL: nbdkit neither served nor exited:" >&2; cat "$out" >&2; exit 1
}
# served_with KEYFILE: what window read is XTS-decrypted zeros under KEYFILE (oracle).
served_with () {
  "$PYTHON" - "$1" "$tmpdir/w.read" <<'PY'
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key = open(sys.argv[1], 'rb').read()
got = open(sys.argv[2], 'rb').read()
d = Cipher(algorithms.AES(key), modes.XTS((0).to_bytes(16, 'little'))).decryptor()
want = d.update(bytes(4096))[:512]
sys.exit(0 if got == want else 1)
PY
}
window true
[ $rc = 0 ] || { echo "$0: FAIL: untouched key file: nbdkit did not serve:" >&2; cat "$out" >&2; exit 1; }
served_with "$key" || { echo "$0: FAIL: untouched key file: not served with its key" >&2; exit 1; }
echo "untouched key file: served with its key"
window 'rm "$tmpdir/w.key"'
[ $rc = 0 ] || { echo "$0: FAIL: key file removed after it was read: nbdkit did not serve:" >&2; cat "$out" >&2; exit 1; }
served_with "$key" || { echo "$0: FAIL: key file removed: not served with the key read" >&2; exit 1; }
echo "removed after it was read: served with the key read"
window 'head -c 64 /dev/urandom >"$tmpdir/new.key"; mv "$tmpdir/new.key" "$tmpdir/w.key"'
[ $rc = 0 ] || { echo "$0: FAIL: key file replaced after it was read: nbdkit did not serve:" >&2; cat "$out" >&2; exit 1; }
served_with "$key" || { echo "$0: FAIL: key file replaced: not served with the key read" >&2; exit 1; }
if served_with "$tmpdir/w.key"; then
  echo "$0: FAIL: key file replaced: served with the new key (read twice?)" >&2; exit 1
fi
echo "replaced after it was read: served with the key read"

# 3. A pipe is read once, like a file.
truncate -s 1M "$tmpdir/zero.img"
( sanitizer_env; exec nbdkit -U - --filter="$F" file "$tmpdir/zero.img" key-file=<(cat "$key") \
    --run "env -u LD_PRELOAD nbdsh -u \"\$uri\" \
             -c \"open('$tmpdir/w.read', 'wb').write(h.pread(512, 0))\"" )
served_with "$key" || { echo "$0: FAIL: pipe: not served with the key it carried" >&2; exit 1; }
echo "pipe: served with the key it carried"
echo "$0: OK"
