#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# On a file system without fallocate or holes (ramfs): fast zero fails with ENOTSUP instead of
# writing, ordinary zero falls back to writing zeros, trim stays advisory (no error).
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"
mnt=$tmpdir/ramfs
mkdir "$mnt"
mount -t ramfs ramfs "$mnt" 2>/dev/null || skip "cannot mount ramfs"
# Lazily: the server still has its file open when the cleanup runs (it is stopped after).
on_exit umount -l "$mnt"
"$PYTHON" -c "import sys; open(sys.argv[1], 'wb').write(b'\xaa' * (8 << 20))" "$mnt/img"

start_nbdkit ramfs "$NBDCRYPT_URING_PLUGIN" file="$mnt/img"
"$PYTHON" - "$uri" <<'PY'
import errno, sys
import nbd
M = 1 << 20
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.can_fast_zero()
for flags in [nbd.CMD_FLAG_FAST_ZERO, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE]:
    try:
        h.zero(M, M, flags)
        sys.exit('FAIL: fast zero succeeded where only writing zeros works')
    except nbd.Error as e:
        assert e.errnum == errno.ENOTSUP, e
assert h.pread(M, M) == b'\xaa' * M, 'a failed fast zero changed data'
h.zero(3 * M + 17, M + 5)
assert h.pread(5 * M, 0) == b'\xaa' * (M + 5) + bytes(3 * M + 17) + b'\xaa' * (M - 22)
h.trim(M, 0)
h.flush()
h.shutdown()
print('ok')
PY
echo PASS
