#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Buffered reads through the file's shared mapping (mmap=true, the default with direct=false):
# - reads see what NBD writes, zeroes and trims did and what another process wrote to the
#   file behind nbdkit's back;
# - a second connection shares the mapping and sees the same bytes;
# - the file truncated under a running server: reads of the cut part fail with an error
#   (SIGBUS caught, the range read again with pread), reads elsewhere go on, the server
#   lives; the file grown back: the part reads as zeros, never as the old bytes;
# - mmap=false does the same through pread; mmap=true with direct=true is refused.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"

img=$tmpdir/img
size=$((8 << 20))
head -c $size /dev/urandom > "$img"

check () {
  "$PYTHON" - "$uri" "$img" "$size" "$(cat "$tmpdir/$1.pid")" <<'PY'
import os, sys
import nbd
uri, img, size, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MiB = 1 << 20

def disk(off, n):
    with open(img, 'rb') as f:
        f.seek(off)
        return f.read(n)

h = nbd.NBD(); h.connect_uri(uri)
h2 = nbd.NBD(); h2.connect_uri(uri)
assert h.pread(size, 0) == disk(0, size), 'initial contents differ'
# Odd offsets and lengths, across page boundaries.
for off, n in ((1, 4095), (4095, 2), (MiB - 7, 3 * 4096 + 11), (size - 513, 513)):
    assert h.pread(n, off) == disk(off, n), (off, n)

# NBD writes, zeroes, trims: read back through both connections.
h.pwrite(b'\xa5' * 12345, 3 * MiB + 100)
assert h.pread(12345, 3 * MiB + 100) == b'\xa5' * 12345
assert h2.pread(12345, 3 * MiB + 100) == b'\xa5' * 12345
h.zero(64 * 1024, 2 * MiB)
assert h2.pread(64 * 1024, 2 * MiB) == bytes(64 * 1024)
h.pwrite(b'\x5a' * 65536, 5 * MiB)
assert h.can_trim(), 'a regular file should be trimmable'
h.trim(65536, 5 * MiB)
assert h2.pread(65536, 5 * MiB) == disk(5 * MiB, 65536) == bytes(65536), 'trim not seen'
h.flush()
assert h.pread(size, 0) == disk(0, size), 'export and file differ after writes'

# Another process writes the file directly: the mapping shows it at once.
fd = os.open(img, os.O_WRONLY)
os.pwrite(fd, b'outside' * 1000, 6 * MiB + 3)
os.close(fd)
assert h2.pread(7000, 6 * MiB + 3) == b'outside' * 1000

# Truncated under the server: the cut part fails, the rest is served, nbdkit lives.
keep = disk(0, 4 * MiB)
os.truncate(img, 4 * MiB)
for off in (4 * MiB, 6 * MiB + 1, size - 4096):
    try:
        h.pread(4096, off)
        sys.exit('FAIL: read at %d beyond the truncated end succeeded' % off)
    except nbd.Error as e:
        assert e.errno is not None, e
try:
    h.pread(2 * MiB, 3 * MiB)       # straddles the new end
    sys.exit('FAIL: read across the truncated end succeeded')
except nbd.Error:
    pass
assert h.pread(MiB, 2 * MiB) == keep[2 * MiB:3 * MiB]
os.kill(pid, 0)
# Grown back: the cut part is a hole now and reads as zeros.
os.truncate(img, size)
assert h.pread(4 * MiB, 4 * MiB) == bytes(4 * MiB), 'old bytes came back after truncation'
assert h2.pread(4 * MiB, 0) == keep, 'the kept part changed'
h.shutdown(); h2.shutdown()
print('ok')
PY
}

for mmap in true false; do
  head -c $size /dev/urandom > "$img"
  start_nbdkit m$mmap -t 4 "$NBDCRYPT_URING_PLUGIN" file="$img" mmap=$mmap
  check m$mmap
  stop_nbdkit m$mmap
  grep -q "uring: buffered reads use pread" "$tmpdir/m$mmap.log" && {
    echo "FAIL: mmap was refused:"; cat "$tmpdir/m$mmap.log"; exit 1; }
done

# Is the mapping really used? With mmap=true nbdkit maps the image; with false it does not.
start_nbdkit maps "$NBDCRYPT_URING_PLUGIN" file="$img"
grep -q " $(realpath "$img")\$" "/proc/$(cat "$tmpdir/maps.pid")/maps" || {
  echo "FAIL: nbdkit has no mapping of the image with the default mmap=true"; exit 1; }
stop_nbdkit maps
start_nbdkit nomaps "$NBDCRYPT_URING_PLUGIN" file="$img" mmap=false
if grep -q " $(realpath "$img")\$" "/proc/$(cat "$tmpdir/nomaps.pid")/maps"; then
  echo "FAIL: nbdkit maps the image with mmap=false"; exit 1
fi
stop_nbdkit nomaps

nbdkit_fails "mmap=true .*needs direct=false" "$NBDCRYPT_URING_PLUGIN" file="$img" \
  direct=true mmap=true
nbdkit_fails "mmap=maybe: expected true or false" "$NBDCRYPT_URING_PLUGIN" file="$img" \
  mmap=maybe
echo PASS
