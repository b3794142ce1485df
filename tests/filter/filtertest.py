# SPDX-License-Identifier: BSD-3-Clause
# Shared helpers for the filter's end-to-end tests: an independent AES-XTS oracle
# (python3-cryptography, dm-crypt aes-xts-plain64 tweak), NBD connections and comparisons.
import os
import sys

import nbd
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class Oracle:
    """dm-crypt aes-xts-plain64: sector n uses tweak n as a 128-bit little-endian integer."""

    def __init__(self, key, sector_size):
        assert len(key) in (32, 64)
        self.key = key
        self.ss = sector_size

    def _cipher(self, sector):
        return Cipher(algorithms.AES(self.key), modes.XTS(sector.to_bytes(16, "little")))

    def encrypt(self, first_sector, data):
        assert len(data) % self.ss == 0
        out = bytearray()
        for i in range(len(data) // self.ss):
            e = self._cipher(first_sector + i).encryptor()
            out += e.update(data[i * self.ss:(i + 1) * self.ss]) + e.finalize()
        return bytes(out)

    def decrypt(self, first_sector, data):
        assert len(data) % self.ss == 0
        out = bytearray()
        for i in range(len(data) // self.ss):
            d = self._cipher(first_sector + i).decryptor()
            out += d.update(data[i * self.ss:(i + 1) * self.ss]) + d.finalize()
        return bytes(out)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def connect(uri, meta=False):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    return h


def read_all(h, chunk=1 << 20):
    size = h.get_size()
    out = bytearray()
    off = 0
    while off < size:
        n = min(chunk, size - off)
        out += h.pread(n, off)
        off += n
    return out


def write_all(h, data, chunk=1 << 20):
    off = 0
    while off < len(data):
        n = min(chunk, len(data) - off)
        h.pwrite(bytes(data[off:off + n]), off)
        off += n


def first_diff(a, b):
    """Index of the first differing byte, or -1 (lengths must match)."""
    if a == b:
        return -1
    n = min(len(a), len(b))
    # Binary search on slices is faster than a Python loop over MiBs.
    lo, hi = 0, n
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    for i in range(lo, n):
        if a[i] != b[i]:
            return i
    return n


def compare(got, want, what):
    i = first_diff(got, want)
    if i >= 0:
        fail("%s: first difference at byte %d (got %s, want %s)" %
             (what, i, bytes(got[i:i + 8]).hex(), bytes(want[i:i + 8]).hex()))


def changed_sectors(before, after, ss):
    """Sector numbers whose bytes differ between two snapshots of the backing store."""
    out = []
    for s in range(len(before) // ss):
        if before[s * ss:(s + 1) * ss] != after[s * ss:(s + 1) * ss]:
            out.append(s)
    return out


def sectors_of(off, length, ss):
    """Set of sector numbers a request [off, off+length) touches."""
    if length == 0:
        return set()
    return set(range(off // ss, (off + length - 1) // ss + 1))


def read_file(path, size=None):
    with open(path, "rb") as f:
        return f.read() if size is None else f.read(size)


def env_int(name, default):
    return int(os.environ.get(name, default))
