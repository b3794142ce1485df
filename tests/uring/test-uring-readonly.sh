#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Read-only serving: with nbdkit -r the file is opened O_RDONLY and the export is read-only;
# an immutable file (chattr +i, which even root cannot open for writing) is served read-only
# without -r instead of failing.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"

img=$tmpdir/img
"$PYTHON" -c "import sys; open(sys.argv[1], 'wb').write(bytes(range(256)) * 4096)" "$img"

# check_ro PIDFILE: connected, the export is read-only, reads work, writes are refused, and
# every descriptor nbdkit holds on the image is O_RDONLY.
check_ro () {
  "$PYTHON" - "$uri" "$img" "$(cat "$1")" <<'PY'
import os, sys
import nbd
uri, img, pid = sys.argv[1], sys.argv[2], sys.argv[3]
h = nbd.NBD()
h.connect_uri(uri)
assert h.is_read_only(), 'export is not read-only'
assert h.pread(256, 4096 * 256 - 256) == bytes(range(256))
try:
    h.pwrite(b'x', 0)
    sys.exit('FAIL: write to a read-only export succeeded')
except nbd.Error:
    pass
fds = [fd for fd in os.listdir(f'/proc/{pid}/fd')
       if os.path.realpath(f'/proc/{pid}/fd/{fd}') == os.path.realpath(img)]
assert fds, 'nbdkit does not hold the image open'
for fd in fds:
    flags = next(int(l.split()[1], 8) for l in open(f'/proc/{pid}/fdinfo/{fd}')
                 if l.startswith('flags:'))
    assert flags & os.O_ACCMODE == os.O_RDONLY, f'fd {fd} flags {oct(flags)}'
h.shutdown()
print('ok')
PY
}

for direct in false true; do
  start_nbdkit ro -r "$NBDCRYPT_URING_PLUGIN" file="$img" direct=$direct
  check_ro "$tmpdir/ro.pid"
  stop_nbdkit ro
done

if chattr +i "$img" 2>/dev/null; then
  on_exit chattr -i "$img"
  start_nbdkit immutable "$NBDCRYPT_URING_PLUGIN" file="$img"
  check_ro "$tmpdir/immutable.pid"
  stop_nbdkit immutable
  chattr -i "$img"
else
  echo "chattr +i not supported here: immutable-file case not run"
fi
cmp "$img" <("$PYTHON" -c "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)")
echo PASS
