# SPDX-License-Identifier: BSD-3-Clause
# Many in-flight requests (libnbd aio) over several connections on overlapping sectors,
# aligned and unaligned, with schedules whose final content is deterministic or checkable:
#  A. writes/zeroes to DISJOINT byte ranges that SHARE sectors, issued so that neighbours
#     are in flight together on different connections: a lost read-modify-write update
#     leaves old bytes behind. Reads of bytes nobody writes run alongside and must never see
#     anything but the model, even while their sector is being rewritten.
#  B. heavily overlapping writes of one-byte patterns: every byte must end up holding the
#     pattern of some write that covers it (no torn sector, no decrypted garbage).
#  C. per sector, a whole-sector write (or aligned zero) W and a sub-sector write X in flight
#     together on different connections: the sector must end as W, or W with X on top;
#     X's read-modify-write must never resurrect the bytes W replaced.
# Then full verification: read-back on a new connection and, when the backing file is
# given, the backing decrypted by an independent XTS (python3-cryptography).
#
# usage: test-filter-concurrent.py URI SECTOR_SIZE CONNECTIONS IN_FLIGHT [DISK KEYFILE]
#        PHASES=c test-filter-concurrent.py ...     (only the listed phases)
import bisect
import os
import random
import sys
import threading

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtertest import (Oracle, check, compare, connect, fail, read_all,  # noqa: E402
                        read_file, write_all)


def drive(h, ops, in_flight, errors):
    """Run ops (callables returning a cookie) keeping up to in_flight of them outstanding."""
    try:
        pending = set()
        keep = {}                       # buffers must outlive their commands
        i = 0
        while i < len(ops) or pending:
            while i < len(ops) and len(pending) < in_flight:
                cookie, post = ops[i](h)
                pending.add(cookie)
                keep[cookie] = post
                i += 1
            h.poll(-1)
            for c in list(pending):
                if not h.aio_command_completed(c):  # raises if the command failed
                    continue
                pending.discard(c)
                post = keep.pop(c)
                if post:
                    post()
    except Exception as e:      # reported by the main thread
        errors.append(e)


def run_parallel(handles, per_handle_ops, in_flight):
    errors = []
    threads = [threading.Thread(target=drive, args=(h, ops, in_flight, errors))
               for h, ops in zip(handles, per_handle_ops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail("aio command failed: %r" % errors[0])


def chunking(rng, S, start, end):
    """Cut [start, end) into consecutive chunks, most smaller than a sector."""
    out = []
    off = start
    while off < end:
        r = rng.random()
        length = rng.randint(1, 64) if r < 0.4 else \
            rng.randint(1, S) if r < 0.7 else rng.randint(1, 3 * S)
        length = min(length, end - off)
        out.append((off, length))
        off += length
    return out


def issue_order(rng, chunks, window=24):
    """Near offset order with local shuffling: chunks sharing a sector go out together."""
    chunks = list(chunks)
    for w in range(0, len(chunks), window):
        part = chunks[w:w + window]
        rng.shuffle(part)
        chunks[w:w + window] = part
    if rng.random() < 0.5:
        chunks.reverse()
    return chunks


def phase_a(handles, rng, S, size, model, in_flight, rounds, with_reads):
    nconn = len(handles)
    for rnd in range(rounds):
        chunks = chunking(rng, S, 0, size)
        kinds = {}
        for c in chunks:
            r = rng.random()
            kinds[c] = "r" if (with_reads and r < 0.25) else "z" if r < 0.4 else "w"
        per = [[] for _ in range(nconn)]
        read_bad = []
        for n, (off, length) in enumerate(issue_order(rng, chunks)):
            kind = kinds[(off, length)]
            if kind == "w":
                data = rng.randbytes(length)
                model[off:off + length] = data
                buf = nbd.Buffer.from_bytearray(bytearray(data))

                def op(h, buf=buf, off=off):
                    return h.aio_pwrite(buf, off), None
            elif kind == "z":
                model[off:off + length] = bytes(length)

                def op(h, off=off, length=length):
                    return h.aio_zero(length, off), None
            else:
                want = bytes(model[off:off + length])   # nobody writes these bytes
                buf = nbd.Buffer(length)

                def op(h, buf=buf, off=off, want=want):
                    def post():
                        if buf.to_bytearray() != want:
                            read_bad.append(off)
                    return h.aio_pread(buf, off), post
            per[n % nconn].append(op)
        run_parallel(handles, per, in_flight)
        check(not read_bad, "phase A round %d: concurrent reads of untouched bytes at %s "
              "returned wrong data" % (rnd, read_bad[:10]))
        got = read_all(handles[0])
        compare(got, model, "phase A round %d (%d chunks, sector-size %d): lost update"
                % (rnd, len(chunks), S))
        print("phase A round %d: %d requests, %d sectors, verified" %
              (rnd, len(chunks), size // S))


def phase_b(handles, rng, S, size, model, in_flight, nwrites):
    nconn = len(handles)
    base = S * 4
    region = min(size - base, 48 * S)
    fill = bytes(region)                 # 0 is never a write's pattern
    handles[0].pwrite(fill, base)
    writes = []
    for i in range(nwrites):
        tag = i % 255 + 1
        if rng.random() < 0.3:           # aligned whole sectors
            s = rng.randrange(0, region // S)
            off, length = base + s * S, min(rng.randint(1, 3), region // S - s) * S
        else:
            off = base + rng.randrange(0, region)
            length = min(rng.randint(1, 3 * S), base + region - off)
        writes.append((off, length, tag))
    per = [[] for _ in range(nconn)]
    for n, (off, length, tag) in enumerate(writes):
        buf = nbd.Buffer.from_bytearray(bytearray([tag]) * length)

        def op(h, buf=buf, off=off):
            return h.aio_pwrite(buf, off), None
        per[n % nconn].append(op)
    run_parallel(handles, per, in_flight)

    got = handles[0].pread(region, base)
    # Per pattern, the merged byte intervals its writes covered.
    cover = {}
    for off, length, tag in writes:
        cover.setdefault(tag, []).append((off - base, off - base + length))
    merged = {}
    for tag, ivs in cover.items():
        ivs.sort()
        m = []
        for a, b in ivs:
            if m and a <= m[-1][1]:
                m[-1][1] = max(m[-1][1], b)
            else:
                m.append([a, b])
        merged[tag] = m
    starts = {t: [a for a, _ in m] for t, m in merged.items()}
    any_cover = sorted(iv for m in merged.values() for iv in m)
    i = 0
    while i < region:
        v = got[i]
        j = i
        while j < region and got[j] == v:
            j += 1
        if v == 0:
            # Never-written bytes keep the fill; written ones must not go back to it.
            for a, b in any_cover:
                if a < j and b > i:
                    fail("phase B: bytes %d..%d written but read back as the old fill"
                         % (base + max(a, i), base + min(b, j)))
        else:
            m = merged.get(v)
            k = bisect.bisect_right(starts[v], i) - 1 if m else -1
            if k < 0 or m[k][1] < j:
                fail("phase B: bytes %d..%d hold 0x%02x, which no write there wrote "
                     "(torn sector or garbage)" % (base + i, base + j, v))
        i = j
    model[base:base + region] = got
    print("phase B: %d overlapping writes on %d sectors, every byte from a covering write"
          % (nwrites, region // S))


def phase_c(handles, rng, S, size, model, in_flight, rounds):
    nconn = len(handles)
    nsect = size // S
    for rnd in range(rounds):
        w_data, x_ops, per = {}, {}, [[] for _ in range(nconn)]
        n = 0
        for s in range(nsect):
            if rng.random() < 0.2:
                wd = bytes(S)

                def w(h, s=s):
                    return h.aio_zero(S, s * S), None
            else:
                wd = rng.randbytes(S)
                buf = nbd.Buffer.from_bytearray(bytearray(wd))

                def w(h, buf=buf, s=s):
                    return h.aio_pwrite(buf, s * S), None
            xo = rng.randrange(0, S - 1)
            xl = rng.randint(1, S - 1 - xo)
            xd = rng.randbytes(xl)
            xbuf = nbd.Buffer.from_bytearray(bytearray(xd))

            def x(h, xbuf=xbuf, off=s * S + xo):
                return h.aio_pwrite(xbuf, off), None
            w_data[s] = wd
            x_ops[s] = (xo, xd)
            pair = [w, x] if rng.random() < 0.5 else [x, w]
            for op in pair:             # adjacent in time, on different connections
                per[n % nconn].append(op)
                n += 1
        run_parallel(handles, per, in_flight)
        got = read_all(handles[0])
        lost = []
        for s in range(nsect):
            cur = got[s * S:(s + 1) * S]
            xo, xd = x_ops[s]
            both = bytearray(w_data[s])
            both[xo:xo + len(xd)] = xd
            if cur != w_data[s] and cur != both:
                lost.append(s)
        check(not lost, "phase C round %d: sectors %s hold neither W nor W+X (an update was "
              "lost or the sector torn)" % (rnd, lost[:10]))
        model[:] = got
        print("phase C round %d: %d sectors, each W || X concurrently, all serialisable"
              % (rnd, nsect))


def main():
    uri, S, nconn, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    disk = sys.argv[5] if len(sys.argv) > 5 else None
    keyfile = sys.argv[6] if len(sys.argv) > 6 else None
    rng = random.Random(0xC0C0 + S + nconn)
    handles = [connect(uri) for _ in range(nconn)]
    size = handles[0].get_size()
    check(size % S == 0, "export size %d is not a whole number of sectors" % size)
    model = bytearray(rng.randbytes(size))
    write_all(handles[0], model)

    phases = os.environ.get("PHASES", "abc")
    if "a" in phases:
        phase_a(handles, rng, S, size, model, in_flight, rounds=2, with_reads=disk is None)
    if "b" in phases:
        phase_b(handles, rng, S, size, model, in_flight, nwrites=1500)
    if "c" in phases:
        phase_c(handles, rng, S, size, model, in_flight, rounds=2)

    for h in handles:
        h.flush()
    fresh = connect(uri)
    compare(read_all(fresh), model, "final read-back on a new connection")
    if disk:
        oracle = Oracle(read_file(keyfile), S)
        compare(oracle.decrypt(0, read_file(disk, size)), model,
                "backing file decrypted by the oracle")
        print("backing file decrypts (python3-cryptography) to the model")
    for h in handles + [fresh]:
        h.shutdown()


if __name__ == "__main__":
    main()
