#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# What the uring plugin advertises and does, as nbdkit's file plugin: flush, FUA, trim (holes
# punched), zero (with and without may-trim: deallocated or still allocated), fast zero,
# extents (SEEK_DATA/SEEK_HOLE), cache, multi-conn, block size; buffered and direct.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"

check () {  # check IMG DIRECT
  "$PYTHON" - "$uri" "$1" "$2" <<'PY'
import os, sys
import nbd
uri, img, direct = sys.argv[1], sys.argv[2], sys.argv[3] == 'true'
M = 1 << 20
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
size = h.get_size()
assert size == os.path.getsize(img)
assert h.can_flush() and h.can_fua() and h.can_trim() and h.can_zero()
assert h.can_fast_zero(), 'fast zero not advertised'
assert h.can_multi_conn(), 'multi-conn not advertised'
assert not h.is_read_only()
assert h.can_cache() == (not direct), 'cache advertised only when buffered'
assert h.get_block_size(nbd.SIZE_MINIMUM) == 1
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096

def blocks():
    return os.stat(img).st_blocks

def extents(off, n):
    out = []
    def cb(meta, offset, entries, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            pos = offset
            for i in range(0, len(entries), 2):
                out.append((pos, entries[i], entries[i + 1]))
                pos += entries[i]
    h.block_status(n, off, cb)
    return out

# The image starts sparse except [1M, 1M+64K) of data written by the test script.
ex = extents(0, 4 * M)
assert ex[0] == (0, M, nbd.STATE_HOLE | nbd.STATE_ZERO), ex
assert ex[1][0] == M and ex[1][2] == 0 and ex[1][1] >= 65536, ex
assert h.pread(65536, M) == bytes(range(256)) * 256

# Writes, with FUA, and flush.
data = os.urandom(3 * M + 123)
h.pwrite(data, 5 * M + 1, nbd.CMD_FLAG_FUA)
h.pwrite(b'x' * 513, 9 * M - 7, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(len(data), 5 * M + 1) == data
with open(img, 'rb') as f:
    f.seek(5 * M + 1)
    assert f.read(len(data)) == data, 'FUA write not in the file'

# Trim punches a hole: fewer blocks, zeros read back (file systems with holes).
b0 = blocks()
h.trim(2 * M, 5 * M, nbd.CMD_FLAG_FUA)
assert blocks() < b0, 'trim did not deallocate'
assert h.pread(2 * M, 5 * M) == bytes(2 * M)
assert extents(5 * M, 2 * M)[0][2] & nbd.STATE_HOLE

# Zero allowing holes: deallocated. Zero with NO_HOLE: zeros, still allocated.
h.pwrite(os.urandom(2 * M), 10 * M)
b0 = blocks()
h.zero(M, 10 * M)
assert h.pread(M, 10 * M) == bytes(M)
assert blocks() < b0, 'zero with may-trim did not deallocate'
b0 = blocks()
before = h.pread(M, 11 * M)
h.zero(M - 1000, 11 * M + 500, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)
assert h.pread(M, 11 * M) == before[:500] + bytes(M - 1000) + before[-500:]
assert blocks() >= b0 - 8, 'zero with NO_HOLE deallocated'
# Fast zero: this file system zeroes without writing, so it must succeed.
h.pwrite(b'y' * 4096, 13 * M)
h.zero(4096, 13 * M, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 13 * M) == bytes(4096)
# Unaligned zero edges.
h.pwrite(b'z' * 3000, 14 * M)
h.zero(1000, 14 * M + 1000)
assert h.pread(3000, 14 * M) == b'z' * 1000 + bytes(1000) + b'z' * 1000

# Cache (prefetch) when offered.
if h.can_cache():
    h.cache(4 * M, 0)
h.shutdown()
print('ok')
PY
}

for direct in false true; do
  echo "direct=$direct"
  img=$tmpdir/img
  rm -f "$img"
  truncate -s 16M "$img"
  "$PYTHON" -c "
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(1 << 20); f.write(bytes(range(256)) * 256)" "$img"
  sync "$img"
  start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" file="$img" direct=$direct
  check "$img" $direct
  stop_nbdkit uring
done
echo PASS
