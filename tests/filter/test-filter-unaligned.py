# SPDX-License-Identifier: BSD-3-Clause
# Unaligned and overlapping writes, write-zeroes and reads at odd offsets through the filter,
# checked against a model of what the disk must hold, against the backing file decrypted by
# an independent XTS (python3-cryptography), and sector by sector for untouched neighbours.
#
# usage: test-filter-unaligned.py run URI DISK KEYFILE SECTOR_SIZE MODEL_OUT
#        test-filter-unaligned.py verify URI MODEL
#        test-filter-unaligned.py neighbour URI      (1-byte write demo; prints bytes damaged)
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtertest import (Oracle, check, compare, connect, fail, read_all,  # noqa: E402
                        read_file, sectors_of, write_all)


def fixed_cases(S, size):
    """Hand-picked shapes: every combination of unaligned head, aligned body, unaligned tail,
    sector-straddling, first/last sector of the export, and overlaps of earlier writes."""
    w = [
        ("w", 0, 1), ("w", 1, 1), ("w", S - 1, 1), ("w", S - 1, 2),     # 1 byte, straddle
        ("w", S // 2, S),                                                # straddles 2 sectors
        ("w", 3, 2 * S + 5),                                             # head + body + tail
        ("w", S, S),                                                     # aligned
        ("w", S + 7, S - 7),                                             # head up to sector end
        ("w", 2 * S, S + 1),                                             # body + tail
        ("w", 5 * S + 1, S - 2),                                         # inside one sector
        ("w", 10 * S + 13, 64 * 1024 + 77),                              # long body
        ("w", 100, 3000), ("w", 1000, 5000), ("w", 1001, 1),             # overlapping
        ("w", 999, 2), ("w", 2 * S - 1, 1), ("w", 2 * S, 1),
        ("w", size - 1, 1), ("w", size - S - 3, S + 3),                  # end of the export
        ("w", size - 3 * S + 1, 3 * S - 1), ("w", size - S, S),
        ("z", S + 3, 10), ("z", 2 * S - 5, S + 10),                      # write-zeroes
        ("z", 3 * S, 2 * S), ("z", 7, 4 * S), ("z", size - 2, 2),
        ("w", 4, 1), ("z", 5, 1),
    ]
    return w


def random_cases(rng, S, size, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            length = rng.randint(1, 16)
        elif r < 0.7:
            length = rng.randint(1, 2 * S)
        elif r < 0.95:
            length = rng.randint(1, 8 * S)
        else:
            length = rng.randint(1, 64 * 1024)
        off = rng.randrange(0, size)
        length = min(length, size - off)
        out.append(("z" if rng.random() < 0.15 else "w", off, length))
    return out


def run(uri, disk, keyfile, S, model_out):
    key = read_file(keyfile)
    oracle = Oracle(key, S)
    h = connect(uri)
    size = h.get_size()
    disk_size = os.path.getsize(disk)
    check(size == disk_size // S * S,
          "export size %d, want %d (backing %d rounded down to %d)" %
          (size, disk_size // S * S, disk_size, S))
    rng = random.Random(0x5EC70 + S)

    model = bytearray(rng.randbytes(size))
    write_all(h, model)
    snap = read_file(disk)
    tail_beyond_export = snap[size:]
    compare(oracle.decrypt(0, snap[:size]), model, "backing after the initial fill, decrypted")

    ops = fixed_cases(S, size) + random_cases(rng, S, size, 250)
    for n, (kind, off, length) in enumerate(ops):
        what = "op %d: %s off=%d len=%d sector-size=%d" % (n, kind, off, length, S)
        if kind == "w":
            data = rng.randbytes(length)
            h.pwrite(data, off)
            model[off:off + length] = data
        else:
            h.zero(length, off)
            model[off:off + length] = bytes(length)

        after = read_file(disk)
        touched = sectors_of(off, length, S)
        lo, hi = min(touched) * S, (max(touched) + 1) * S
        # Sectors the request does not touch must keep their exact ciphertext.
        if snap[:lo] != after[:lo] or snap[hi:size] != after[hi:size]:
            bad = [s for s in range(size // S)
                   if s not in touched and snap[s * S:(s + 1) * S] != after[s * S:(s + 1) * S]]
            fail("%s: ciphertext of untouched sectors %s changed" % (what, bad[:10]))
        check(after[size:] == tail_beyond_export,
              "%s: bytes of the backing beyond the export changed" % what)
        # Touched sectors, decrypted independently, hold the merge (old bytes kept).
        compare(oracle.decrypt(lo // S, after[lo:hi]), model[lo:hi],
                "%s: touched sectors decrypted by the oracle" % what)
        # And the filter reads back the same, with a margin at odd offsets.
        rlo, rhi = max(0, off - S - 3), min(size, off + length + S + 3)
        compare(h.pread(rhi - rlo, rlo), model[rlo:rhi], "%s: read-back" % what)
        snap = after

    # Reads at odd offsets and lengths.
    reads = [(0, 1), (1, 1), (S - 1, 2), (3, 2 * S + 5), (size - 1, 1), (size - S - 1, S + 1),
             (S + 1, S - 1), (7, S)]
    for _ in range(300):
        off = rng.randrange(0, size)
        reads.append((off, min(size - off, rng.randint(1, 3 * S))))
    for off, length in reads:
        compare(h.pread(length, off), model[off:off + length],
                "read off=%d len=%d sector-size=%d" % (off, length, S))

    compare(read_all(h), model, "full read-back")
    compare(oracle.decrypt(0, read_file(disk)[:size]), model, "full backing decrypted")
    h2 = connect(uri)
    compare(read_all(h2), model, "full read-back on a second connection")
    h.shutdown()
    h2.shutdown()
    with open(model_out, "wb") as f:
        f.write(model)
    print("sector-size %d: %d writes/zeroes and %d reads at odd offsets verified"
          % (S, len(ops), len(reads)))


def verify(uri, model_path):
    model = read_file(model_path)
    h = connect(uri)
    compare(read_all(h), model, "read-back after restarting nbdkit")
    h.shutdown()


def large(uri, model_path, S):
    """Large reads at odd offsets: an unaligned head, a body above the split threshold of
    filter-read.c (256 KiB) and an unaligned tail, checked against the model."""
    model = read_file(model_path)
    rng = random.Random(S)
    h = connect(uri)
    size = h.get_size()
    reads = [(0, size), (1, size - 1), (S - 1, size - S), (3, 256 * 1024 + 2 * S + 5)]
    for _ in range(40):
        length = rng.randint(256 * 1024 + 1, size)
        off = rng.randrange(0, size - length + 1)
        reads.append((off, length))
    for off, length in reads:
        compare(h.pread(length, off), model[off:off + length],
                "large read off=%d len=%d sector-size=%d" % (off, length, S))
    h.shutdown()
    print("sector-size %d: %d large reads verified" % (S, len(reads)))


def neighbour(uri):
    """Write a sector of random data, then 1 byte in its middle; count the bytes of the
    sector other than that byte that came back different."""
    h = connect(uri)
    h.set_strict_mode(0)     # the luks filter advertises 512-byte minimum blocks
    data = os.urandom(4096)
    h.pwrite(data, 0)
    h.pwrite(b"\xa5", 100)
    got = h.pread(4096, 0)
    want = bytearray(data)
    want[100] = 0xa5
    print(sum(1 for a, b in zip(got, want) if a != b))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif mode == "verify":
        verify(sys.argv[2], sys.argv[3])
    elif mode == "large":
        large(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "neighbour":
        neighbour(sys.argv[2])
    else:
        fail("unknown mode " + mode)
