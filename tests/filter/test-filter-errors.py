# SPDX-License-Identifier: BSD-3-Clause
# Fault injection: nbdkit's error filter sits under ours and fails reads, writes and zeroes
# below us (each kind switched on by creating its error file). Errors must reach the client
# as errors, nothing outside a failed request may change (read-modify-write included), data
# read successfully is never wrong, and the server keeps serving.
#
# usage: test-filter-errors.py URI DISK KEYFILE SECTOR_SIZE ERRDIR MODE
#   MODE fixed:  every request of a kind fails while its file exists (error-*-rate=1)
#   MODE random: with error-file present, reads fail ~20% and writes/zeroes ~30% of the time
import errno
import os
import random
import sys

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtertest import (Oracle, check, compare, connect, fail, read_all,  # noqa: E402
                        read_file, sectors_of, write_all)


class Errors:
    def __init__(self, errdir):
        self.errdir = errdir

    def on(self, kind):
        open(os.path.join(self.errdir, kind), "w").close()

    def off(self, kind):
        try:
            os.unlink(os.path.join(self.errdir, kind))
        except FileNotFoundError:
            pass


def expect_error(what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        check(e.errnum == errno.EIO, "%s: error %r, want EIO" % (what, e))
        return
    fail("%s succeeded while the plugin below failed" % what)


def fixed(h, disk, S, size, model, err, rng):
    before = read_file(disk)

    def unchanged(what):
        compare(read_file(disk), before, "%s: backing file changed" % what)

    # Reads below fail.
    err.on("pread")
    expect_error("aligned pread", h.pread, 2 * S, S)
    expect_error("unaligned pread", h.pread, 10, S + 3)
    expect_error("unaligned pwrite (read-modify-write)", h.pwrite, b"x" * 10, S + 3)
    unchanged("failed read-modify-write")
    expect_error("unaligned pwrite head+body+tail", h.pwrite, b"y" * (3 * S), S // 2)
    unchanged("failed head+body+tail write")
    expect_error("unaligned write-zeroes", h.zero, 5, 2 * S + 1)
    unchanged("failed unaligned write-zeroes")
    # Whole sectors need no read below: they still work.
    data = rng.randbytes(2 * S)
    h.pwrite(data, 4 * S)
    model[4 * S:6 * S] = data
    err.off("pread")
    compare(read_all(h), model, "read-back after read errors")
    before = read_file(disk)

    # Writes and zeroes below fail.
    err.on("pwrite")
    err.on("zero")
    expect_error("aligned pwrite", h.pwrite, b"a" * S, 7 * S)
    unchanged("failed aligned pwrite")
    expect_error("unaligned pwrite", h.pwrite, b"b" * 3, 8 * S + 1)
    unchanged("failed unaligned pwrite")
    expect_error("head+body+tail pwrite", h.pwrite, b"c" * (4 * S), 9 * S + 100)
    unchanged("failed head+body+tail pwrite")
    expect_error("aligned write-zeroes", h.zero, 2 * S, 12 * S)
    unchanged("failed aligned write-zeroes")
    expect_error("unaligned write-zeroes", h.zero, 7, 15 * S + 3)
    unchanged("failed unaligned write-zeroes")
    expect_error("pwrite with FUA", h.pwrite, b"d" * S, 16 * S, nbd.CMD_FLAG_FUA)
    unchanged("failed FUA pwrite")
    # Reads are unaffected meanwhile.
    compare(read_all(h), model, "reads while writes fail")
    err.off("pwrite")
    err.off("zero")

    # Everything works again, on this connection and on a new one.
    data = rng.randbytes(3 * S + 5)
    h.pwrite(data, 7 * S + 9)
    model[7 * S + 9:7 * S + 9 + len(data)] = data
    h.zero(S + 2, 20 * S - 1)
    model[20 * S - 1:21 * S + 1] = bytes(S + 2)
    h.flush()
    compare(read_all(h), model, "read-back after errors stopped")
    print("sector-size %d: fixed errors reported as EIO, backing unchanged" % S)


def random_faults(h, disk, S, size, model, err, rng, oracle):
    err.on("all")
    counts = {"ok": 0, "failed": 0}
    snap = read_file(disk)
    for n in range(300):
        r = rng.random()
        off = rng.randrange(0, size)
        length = min(size - off, rng.choice([rng.randint(1, 32), rng.randint(1, 3 * S),
                                             rng.randint(1, 12) * S]))
        if rng.random() < 0.4:
            off -= off % S
            length = max(S, length - length % S) if off + S <= size else size - off
        what = "random op %d off=%d len=%d" % (n, off, length)
        if r < 0.3:
            try:
                got = h.pread(length, off)
            except nbd.Error as e:
                check(e.errnum == errno.EIO, "%s: read error %r, want EIO" % (what, e))
                counts["failed"] += 1
                continue
            compare(got, model[off:off + length], what + ": read returned wrong data")
            counts["ok"] += 1
            continue
        zero = r > 0.85
        data = bytes(length) if zero else rng.randbytes(length)
        try:
            if zero:
                h.zero(length, off)
            else:
                h.pwrite(data, off)
            model[off:off + length] = data
            counts["ok"] += 1
            failed = False
        except nbd.Error as e:
            check(e.errnum == errno.EIO, "%s: write error %r, want EIO" % (what, e))
            counts["failed"] += 1
            failed = True
        after = read_file(disk)
        touched = sectors_of(off, length, S)
        lo, hi = min(touched) * S, (max(touched) + 1) * S
        if snap[:lo] != after[:lo] or snap[hi:] != after[hi:]:
            fail("%s (%s): sectors outside the request changed"
                 % (what, "failed" if failed else "ok"))
        plain = oracle.decrypt(lo // S, after[lo:hi])
        if failed:
            # The request's own bytes are undefined after an error; the rest of its
            # sectors are not.
            model[off:off + length] = plain[off - lo:off - lo + length]
        compare(plain, model[lo:hi], "%s (%s): bytes of the request's sectors outside it"
                % (what, "failed" if failed else "ok"))
        snap = after
    err.off("all")
    check(counts["failed"] >= 10 and counts["ok"] >= 10,
          "too few injected failures or successes to mean anything: %r" % counts)
    compare(read_all(h), model, "read-back after random faults")
    compare(oracle.decrypt(0, read_file(disk, size)), model,
            "backing decrypted after random faults")
    print("sector-size %d: random faults: %d requests ok, %d failed; all else intact"
          % (S, counts["ok"], counts["failed"]))


def main():
    uri, disk, keyfile, S, errdir, mode = sys.argv[1:7]
    S = int(S)
    err = Errors(errdir)
    rng = random.Random(0xE770 + S + len(mode))
    h = connect(uri)
    size = h.get_size()
    model = bytearray(rng.randbytes(size))
    write_all(h, model)
    if mode == "fixed":
        fixed(h, disk, S, size, model, err, rng)
    else:
        random_faults(h, disk, S, size, model, err, rng, Oracle(read_file(keyfile), S))
    h.shutdown()
    # The server still serves new connections, with the right data.
    h2 = connect(uri)
    compare(read_all(h2), model, "new connection after the faults")
    h2.shutdown()


if __name__ == "__main__":
    main()
