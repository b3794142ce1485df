#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Block devices: a loop device with 512-byte and with 4096-byte logical blocks (BLKSSZGET),
# buffered and direct, odd offsets and lengths (bounce buffers, read-modify-write of whole
# 4 KiB blocks), trim (BLKDISCARD), zero and fast zero; checked against the backing file.
source "$srcdir/functions.sh"
requires nbdkit
requires losetup
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"
io="$PYTHON $srcdir/uring/uring_io.py"
[ -w /dev/loop-control ] || skip "cannot create loop devices"

for ss in 512 4096; do
  backing=$tmpdir/backing
  rm -f "$backing" "$tmpdir/ref"
  truncate -s 24M "$backing"
  truncate -s 24M "$tmpdir/ref"
  dev=$(losetup --find --show --sector-size $ss "$backing" 2>/dev/null) ||
    skip "losetup failed"
  on_exit losetup -d "$dev"
  for direct in false true; do
    echo "$dev sector-size=$ss direct=$direct"
    start_nbdkit bdev "$NBDCRYPT_URING_PLUGIN" file="$dev" direct=$direct
    $io write-small "$uri" "$tmpdir/ref" $RANDOM 60
    $io verify "$uri" "$tmpdir/ref" $RANDOM 20
    "$PYTHON" - "$uri" "$tmpdir/ref" $ss <<'PY'
import sys
import nbd
uri, ref_path, ss = sys.argv[1], sys.argv[2], int(sys.argv[3])
M = 1 << 20
h = nbd.NBD()
h.connect_uri(uri)
assert h.get_size() == 24 * M
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
ref = bytearray(open(ref_path, 'rb').read())
# zero: aligned, unaligned edges, may-trim or not, FUA
for off, n, flags in [(2 * M, M, 0), (3 * M + 100, 70000, nbd.CMD_FLAG_NO_HOLE),
                      (5 * M - 1, 3, nbd.CMD_FLAG_FUA)]:
    h.zero(n, off, flags)
    ref[off:off + n] = bytes(n)
    assert h.pread(n + 2 * ss, off - ss) == ref[off - ss:off + n + ss]
# fast zero either works (the loop device offloads write-zeroes) or fails with ENOTSUP
try:
    h.zero(M, 6 * M, nbd.CMD_FLAG_FAST_ZERO)
    ref[6 * M:7 * M] = bytes(M)
except nbd.Error as e:
    assert e.errnum == 95, e   # ENOTSUP
assert h.pread(2 * M, 6 * M) == ref[6 * M:8 * M]
# trim is advisory: must not fail, and untrimmed neighbours keep their data
h.trim(M + 1000, 8 * M + 10, nbd.CMD_FLAG_FUA)
assert h.pread(990, 8 * M + 10 + M + 1000) == ref[9 * M + 1010:9 * M + 2000]
h.flush()
# keep the reference in step for the trimmed range: read what the device now says
ref[8 * M + 10:9 * M + 1010] = h.pread(M + 1000, 8 * M + 10)
open(ref_path, 'wb').write(ref)
h.shutdown()
print('ok')
PY
    stop_nbdkit bdev
    cmp "$backing" "$tmpdir/ref"
  done
done
echo PASS
