# SPDX-License-Identifier: BSD-3-Clause
# NBD semantics through the filter, watched from both sides: the client (libnbd) and the
# plugin below (nbdkit's log filter stacked under ours, and the backing file).
#
# usage: test-filter-semantics.py main URI DISK KEYFILE SECTOR_SIZE LOGFILE
#        test-filter-semantics.py discard URI DISK SECTOR_SIZE LOGFILE
#        test-filter-semantics.py flags URI          (prints can_* as seen by a client)
#        test-filter-semantics.py holes URI          (extents of the plain file plugin)
import errno
import os
import random
import re
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtertest import (Oracle, check, compare, connect, fail, read_all,  # noqa: E402
                        read_file, write_all)


class Below:
    """The requests our filter made to the plugin below, from nbdkit's log filter."""

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def since(self):
        # The log filter writes each line as the call returns; give it a moment.
        time.sleep(0.05)
        with open(self.path) as f:
            f.seek(self.pos)
            text = f.read()
            self.pos = f.tell()
        calls = []
        for line in text.splitlines():
            # Request lines: "connection=N Write id=N offset=0x0 count=0x1000 fua=1 ..."
            m = re.search(r"connection=\d+ (\w+) id=\d+(.*) \.\.\.$", line.rstrip())
            if m:
                args = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
                calls.append((m.group(1), args))
        return calls


def extents(h, size):
    out = []
    off = 0
    while off < size:
        got = []

        def cb(meta, offset, ents, err):
            if meta == nbd.CONTEXT_BASE_ALLOCATION:
                got.extend(ents)
            return 0
        h.block_status(size - off, off, cb)
        check(got, "block_status returned no extents")
        for i in range(0, len(got), 2):
            length, flags = got[i], got[i + 1]
            length = min(length, size - off)
            out.append((off, length, flags))
            off += length
            if off >= size:
                break
    return out


def main_checks(uri, disk, keyfile, S, logfile):
    oracle = Oracle(read_file(keyfile), S)
    below = Below(logfile)
    h = connect(uri, meta=True)
    size = h.get_size()
    disk_size = os.path.getsize(disk)
    check(size == disk_size // S * S, "export size %d, want %d" % (size, disk_size // S * S))
    rng = random.Random(0x5E4 + S)
    tail_before = read_file(disk)[size:]

    # Extents on a fresh, sparse backing file: the plugin below reports holes (checked by
    # the caller), which decrypt to noise, so we must never call them zero.
    check(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation not offered")
    noise = h.pread(S, size - S)
    check(noise != bytes(S), "a hole below read back as zeros: it should decrypt to noise")
    for off, length, flags in extents(h, size):
        check(flags & (nbd.STATE_HOLE | nbd.STATE_ZERO) == 0,
              "extent off=%d len=%d has flags %d (hole/zero) over ciphertext" %
              (off, length, flags))
    below.since()
    print("extents: whole export reported as data (the holes below are not passed up)")

    model = bytearray(rng.randbytes(size))
    write_all(h, model)
    for off, length, flags in extents(h, size):
        check(flags & (nbd.STATE_HOLE | nbd.STATE_ZERO) == 0,
              "extent off=%d len=%d flags %d after writing data" % (off, length, flags))
    below.since()

    # One client request, one call below, FUA carried once.
    n = min(size // S, (1024 * 1024) // S) * S
    data = rng.randbytes(n)
    h.pwrite(data, 0, nbd.CMD_FLAG_FUA)
    model[0:n] = data
    calls = below.since()
    writes = [c for c in calls if c[0] == "Write"]
    check(len(writes) == 1 and int(writes[0][1]["count"], 16) == n,
          "aligned %d-byte FUA write became %d writes below: %r" % (n, len(writes), writes[:4]))
    check(writes[0][1].get("fua") == "1", "FUA not passed below: %r" % (writes,))
    check(not [c for c in calls if c[0] == "Read"], "aligned write read below: %r" % calls)
    data = rng.randbytes(5 * S + 7)
    h.pwrite(data, S + 3, nbd.CMD_FLAG_FUA)
    model[S + 3:S + 3 + len(data)] = data
    calls = below.since()
    writes = [c for c in calls if c[0] == "Write"]
    reads = [c for c in calls if c[0] == "Read"]
    fua = [c for c in writes if c[1].get("fua") == "1"]
    flushes = [c for c in calls if c[0] == "Flush"]
    check(len(writes) <= 3 and len(reads) <= 2,
          "unaligned write: %d writes and %d reads below (want <= 3 and <= 2)"
          % (len(writes), len(reads)))
    check(len(fua) + len(flushes) == 1,
          "unaligned FUA write: FUA/flush below %d times, want once: %r" %
          (len(fua) + len(flushes), calls))
    rd = h.pread(8 * S, 0)
    calls = below.since()
    check(len([c for c in calls if c[0] == "Read"]) == 1,
          "aligned read of 8 sectors became %r below" % calls)
    compare(rd, model[0:8 * S], "read-back after FUA writes")
    print("FUA write of %d bytes: 1 write below with fua=1; unaligned: %d writes, %d reads"
          % (n, len(writes), len(reads)))

    # Flush.
    check(h.can_fua(), "FUA not offered over the file plugin")
    check(h.can_flush(), "flush not offered over the file plugin")
    h.flush()
    check([c for c in below.since() if c[0] == "Flush"], "flush did not reach the plugin")

    # Write-zeroes reads back as zeros; below: encrypted zeros, never a hole or plain zeros.
    check(h.can_zero(), "write-zeroes not offered")
    cases = [(2 * S, 4 * S, 0), (7 * S + 5, 2 * S + 95, 0), (12 * S, 3 * S, nbd.CMD_FLAG_NO_HOLE),
             (20 * S - 1, 2, nbd.CMD_FLAG_FUA), (size - 3 * S, 3 * S, 0)]
    for off, length, flags in cases:
        h.zero(length, off, flags)
        model[off:off + length] = bytes(length)
    back = read_file(disk)
    for off, length, flags in cases:
        compare(h.pread(length, off), bytes(length), "zero off=%d len=%d read-back" % (off, length))
        s0, s1 = -(-off // S), (off + length) // S          # whole sectors inside
        for s in range(s0, s1):
            ct = back[s * S:(s + 1) * S]
            check(ct != bytes(S), "zeroed sector %d is plain zeros below" % s)
            check(ct == oracle.encrypt(s, bytes(S)),
                  "zeroed sector %d below is not the XTS encryption of zeros" % s)
    compare(oracle.decrypt(0, back[:size]), model, "backing decrypted after zeroes")
    # A zero bigger than any bounce buffer.
    big = min(size, 3 * 1024 * 1024 + 5 * S)
    h.zero(big - 2 * S - 1, S + 1)
    model[S + 1:big - S] = bytes(big - 2 * S - 1)
    compare(read_all(h), model, "read-back after a large write-zeroes")
    compare(oracle.decrypt(0, read_file(disk, size)), model, "backing after a large zero")
    below.since()
    # A big zero with FUA: durable once at the end, not once per piece.
    h.zero(big - 2 * S, S, nbd.CMD_FLAG_FUA)
    model[S:big - S] = bytes(big - 2 * S)
    calls = below.since()
    fua = [c for c in calls if c[0] == "Write" and c[1].get("fua") == "1"]
    flushes = [c for c in calls if c[0] == "Flush"]
    check(len(fua) + len(flushes) == 1,
          "%d-byte FUA zero: FUA/flush below %d times, want once: %r"
          % (big - 2 * S, len(fua) + len(flushes), calls))
    compare(h.pread(big, 0), model[:big], "read-back after a large FUA zero")
    below.since()
    print("write-zeroes: zeros read back, XTS(0) below (%d cases + %d bytes), FUA once"
          % (len(cases), big))

    # Fast zero: it would cost a full write, so it must fail at once and do nothing.
    if h.can_fast_zero():
        before = read_file(disk)
        t0 = time.monotonic()
        try:
            h.zero(4 * S, 4 * S, nbd.CMD_FLAG_FAST_ZERO)
            fail("fast zero succeeded; it must fail fast (ENOTSUP)")
        except nbd.Error as e:
            check(e.errnum in (errno.ENOTSUP, errno.EOPNOTSUPP),
                  "fast zero failed with %r, want ENOTSUP" % e)
        dt = time.monotonic() - t0
        compare(read_file(disk), before, "backing after a refused fast zero")
        calls = below.since()
        check(not [c for c in calls if c[0] in ("Write", "Zero", "Read")],
              "refused fast zero still did work below: %r" % calls)
        print("fast zero: refused with ENOTSUP in %.1f ms, nothing written" % (dt * 1000))
    else:
        print("fast zero: not advertised, so clients never send it")

    # Trim is not offered by default, and the server refuses it if sent anyway.
    check(not h.can_trim(), "trim advertised without discard=on")
    h.set_strict_mode(0)
    before = read_file(disk)
    try:
        h.trim(4 * S, 8 * S)
        fail("trim accepted without discard=on")
    except nbd.Error:
        pass
    h.set_strict_mode(nbd.STRICT_MASK)
    compare(read_file(disk), before, "backing after a refused trim")
    check(not [c for c in below.since() if c[0] == "Trim"], "trim reached the plugin")
    print("trim: not advertised, refused, nothing trimmed below")

    # Cache passes through (or is emulated) without changing anything.
    if h.can_cache():
        before = read_file(disk)
        h.cache(8 * S, 3)
        compare(read_file(disk), before, "backing after cache")
        print("cache: ok, calls below: %s" % sorted(set(c[0] for c in below.since())))

    # Extents again, now over written, zeroed and untouched areas.
    for off, length, flags in extents(h, size):
        check(flags & (nbd.STATE_HOLE | nbd.STATE_ZERO) == 0,
              "extent off=%d len=%d flags %d" % (off, length, flags))

    check(read_file(disk)[size:] == tail_before, "bytes beyond the export changed")
    compare(read_all(connect(uri)), model, "final read-back on a new connection")
    h.shutdown()


def discard_checks(uri, disk, S, logfile):
    below = Below(logfile)
    h = connect(uri)
    size = h.get_size()
    check(h.can_trim(), "trim not advertised with discard=on")
    rng = random.Random(0xD15C + S)
    model = bytearray(rng.randbytes(size))
    write_all(h, model)
    below.since()

    # Aligned trim: passed down; the rest of the disk untouched.
    before = read_file(disk)
    h.trim(2 * S, 4 * S)
    trims = [c for c in below.since() if c[0] == "Trim"]
    check(len(trims) == 1 and int(trims[0][1]["offset"], 16) == 4 * S
          and int(trims[0][1]["count"], 16) == 2 * S, "aligned trim below: %r" % trims)
    after = read_file(disk)
    check(before[:4 * S] == after[:4 * S] and before[6 * S:] == after[6 * S:],
          "aligned trim changed sectors outside it")
    # Unaligned trim: only whole sectors inside may go; partial sectors keep every byte.
    before = after
    off, length = 10 * S + 3, 5 * S
    h.trim(length, off)
    trims = [c for c in below.since() if c[0] == "Trim"]
    for _, a in trims:
        o, c = int(a["offset"], 16), int(a["count"], 16)
        check(o % S == 0 and c % S == 0 and o >= off and o + c <= off + length,
              "unaligned trim sent %r below: not whole sectors inside the request" % a)
    after = read_file(disk)
    check(before[:10 * S] == after[:10 * S] and before[16 * S:] == after[16 * S:],
          "unaligned trim changed sectors outside it")
    compare(h.pread(3, 10 * S), model[10 * S:10 * S + 3], "bytes before an unaligned trim")
    compare(h.pread(S - 3, 15 * S + 3), model[15 * S + 3:16 * S], "bytes after it")
    compare(h.pread(size - 16 * S, 16 * S), model[16 * S:], "the rest of the disk")
    compare(h.pread(4 * S, 0), model[:4 * S], "the start of the disk")
    print("discard=on: trim advertised, aligned trim passed down, partial sectors kept")
    h.shutdown()


def flags(uri):
    h = connect(uri)
    print("multi_conn=%d" % h.can_multi_conn())
    h.shutdown()


def holes(uri):
    h = connect(uri, meta=True)
    ex = extents(h, h.get_size())
    print("holes=%d" % sum(1 for _, _, f in ex if f & nbd.STATE_HOLE))


if __name__ == "__main__":
    m = sys.argv[1]
    if m == "main":
        main_checks(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif m == "discard":
        discard_checks(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif m == "flags":
        flags(sys.argv[2])
    elif m == "holes":
        holes(sys.argv[2])
    else:
        fail("unknown mode " + m)
