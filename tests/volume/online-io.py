#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Client side of the online re-encryption tests (test-volume-reencrypt-online*.sh): one NBD
# connection through the nbdcrypt filter, with a shadow copy of what the export must hold in
# DIR/shadow (the whole export, plaintext).
#   writer URI DIR SECTOR   random requests until the file DIR/stop exists: aligned writes
#                           (whole sectors), unaligned writes, write-zeroes, and reads checked
#                           against the shadow. A write enters the shadow only once it is
#                           acknowledged. Touches DIR/ready once connected; every 0.2 s puts
#                           "REQUESTS WRITES READS MAX_LATENCY_MS" into DIR/count. On DIR/stop:
#                           flush, read the whole export back, compare to the shadow, save it,
#                           exit 0. If the server goes away (connection dead: a killed nbdkit),
#                           saves the shadow of the acknowledged writes and the write in flight
#                           (DIR/pending.json, DIR/pending.data) and exits 3. Any other error
#                           (a request the server fails, a read that differs: which
#                           sectors, and whether reading again helps) exits 1, the shadow
#                           saved for a post-mortem of the raw file.
#   reconcile URI DIR SECTOR   after the server was killed and started again: the whole export
#                           must equal the shadow, except that each sector the write in flight
#                           covered may hold either its old or its new contents (the write was
#                           never acknowledged; a sector is written whole). Saves what it read
#                           as the new shadow.
import json, os, random, sys, time
import nbd

MAX_REQ = 1 << 20


def save_shadow(d, shadow):
    tmp = os.path.join(d, "shadow.tmp")
    with open(tmp, "wb") as f:
        f.write(shadow)
    os.rename(tmp, os.path.join(d, "shadow"))


def read_all(h, size):
    out = bytearray()
    for off in range(0, size, MAX_REQ):
        out += h.pread(min(MAX_REQ, size - off), off)
    return out


def first_diff(a, b):
    return next(i for i in range(min(len(a), len(b))) if a[i] != b[i])


def put_count(d, text):
    tmp = os.path.join(d, "count.tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, os.path.join(d, "count"))


def describe_bad_read(h, shadow, got, off, ss):
    """Which sectors of a read differ from the shadow, and does reading them again help."""
    n = len(got)
    want = shadow[off:off + n]
    bad = [s for s in range(off // ss, (off + n - 1) // ss + 1)
           if got[max(s * ss, off) - off:min((s + 1) * ss, off + n) - off] !=
           want[max(s * ss, off) - off:min((s + 1) * ss, off + n) - off]]
    again = h.pread(n, off)
    return (f"read of {n} bytes at {off} (sectors {off // ss}..{(off + n - 1) // ss}) differs "
            f"from the acknowledged writes in {len(bad)} sectors: {bad[:8]}"
            f"{'...' if len(bad) > 8 else ''}; read again: " +
            ("now right" if again == want else
             "the same wrong data" if again == got else "other wrong data"))


def writer(uri, d, ss):
    seed = int.from_bytes(os.urandom(8), "little")
    rng = random.Random(seed)
    with open(os.path.join(d, "shadow"), "rb") as f:
        shadow = bytearray(f.read())
    size = len(shadow)
    for name in ("pending.json", "pending.data"):
        if os.path.exists(os.path.join(d, name)):
            sys.exit("writer: a pending write from the last run was not reconciled")
    stop = os.path.join(d, "stop")
    h = nbd.NBD()
    pending = None
    requests = writes = reads = 0
    max_lat = 0.0
    try:
        h.connect_uri(uri)
        if h.get_size() != size:
            sys.exit(f"writer: export size {h.get_size()}, shadow {size}")
        open(os.path.join(d, "ready"), "w").close()
        last_count = 0.0
        while not os.path.exists(stop):
            r = rng.random()
            t0 = time.monotonic()
            if r < 0.6:
                if r < 0.3:                     # aligned: whole sectors
                    n = rng.choice([ss, ss * rng.randint(2, 16), 4096 * rng.randint(1, 64)])
                    off = ss * rng.randrange((size - n) // ss + 1)
                elif r < 0.55:                  # unaligned
                    n = rng.choice([1, rng.randint(2, 511), rng.randint(513, 4095),
                                    rng.randint(4097, 20000)])
                    off = rng.randint(0, size - n)
                else:                           # write-zeroes, any alignment
                    n = rng.randint(1, 70000)
                    off = rng.randint(0, size - n)
                if r < 0.55:
                    data = rng.randbytes(n)
                    pending = (off, data, "write")
                    h.pwrite(data, off)
                else:
                    data = bytes(n)
                    pending = (off, data, "zero")
                    h.zero(n, off)
                shadow[off:off + n] = data
                pending = None
                writes += 1
            else:
                n = rng.randint(1, 140000)
                off = rng.randint(0, size - n)
                got = h.pread(n, off)
                if got != shadow[off:off + n]:
                    save_shadow(d, shadow)      # for a post-mortem of the raw file
                    sys.exit(f"writer: after {requests} requests: " +
                             describe_bad_read(h, shadow, got, off, ss) + f" (seed {seed})")
                reads += 1
            requests += 1
            max_lat = max(max_lat, time.monotonic() - t0)
            if t0 - last_count >= 0.2:
                put_count(d, f"{requests} {writes} {reads} {max_lat * 1000:.0f}")
                last_count = t0
        h.flush()
        back = read_all(h, size)
        if back != shadow:
            i = first_diff(back, shadow)
            sys.exit(f"writer: at the end the export differs from the acknowledged writes at "
                     f"byte {i} (sector {i // ss}; seed {seed})")
        h.shutdown()
    except nbd.Error as e:
        dead = h.aio_is_dead() or h.aio_is_closed()
        save_shadow(d, shadow)
        put_count(d, f"{requests} {writes} {reads} {max_lat * 1000:.0f}")
        if pending:
            off, data, kind = pending
            with open(os.path.join(d, "pending.data"), "wb") as f:
                f.write(data)
            with open(os.path.join(d, "pending.json"), "w") as f:
                json.dump({"offset": off, "length": len(data), "kind": kind}, f)
        print(f"writer: {requests} requests ({writes} writes, {reads} reads checked), "
              f"longest {max_lat * 1000:.0f} ms; then {e.string} (errno {e.errno}); "
              f"{'a ' + pending[2] + ' in flight' if pending else 'nothing in flight'}"
              f"{'' if dead else ' - THE CONNECTION IS ALIVE: the server failed a request'}")
        sys.exit(3 if dead else 1)
    save_shadow(d, shadow)
    put_count(d, f"{requests} {writes} {reads} {max_lat * 1000:.0f}")
    print(f"writer: {requests} requests ({writes} writes, {reads} reads checked), longest "
          f"{max_lat * 1000:.0f} ms; the export equals the acknowledged writes")


def reconcile(uri, d, ss):
    with open(os.path.join(d, "shadow"), "rb") as f:
        shadow = bytearray(f.read())
    size = len(shadow)
    pj, pdata = os.path.join(d, "pending.json"), os.path.join(d, "pending.data")
    pend = None
    if os.path.exists(pj):
        with open(pj) as f:
            pend = json.load(f)
        with open(pdata, "rb") as f:
            new = bytearray(shadow)
            new[pend["offset"]:pend["offset"] + pend["length"]] = f.read()
    h = nbd.NBD()
    h.connect_uri(uri)
    got = read_all(h, size)
    h.shutdown()
    bad = []
    landed = kept = 0
    if got != shadow:
        for c in range(0, size, MAX_REQ):
            if got[c:c + MAX_REQ] == shadow[c:c + MAX_REQ]:
                continue
            for s in range(c // ss, min(c + MAX_REQ, size) // ss):
                a, b = s * ss, (s + 1) * ss
                if got[a:b] == shadow[a:b]:
                    continue
                if pend and a < pend["offset"] + pend["length"] and b > pend["offset"] and \
                        got[a:b] == new[a:b]:
                    landed += 1
                    continue
                bad.append(s)
    if pend:
        lo, hi = pend["offset"] // ss, (pend["offset"] + pend["length"] - 1) // ss
        kept = sum(1 for s in range(lo, hi + 1) if s not in bad) - landed
    if bad:
        s = bad[0]
        where = ""
        if pend:
            where = (f"; the write in flight: {pend['kind']} of {pend['length']} bytes at "
                     f"{pend['offset']} (sectors {pend['offset'] // ss}.."
                     f"{(pend['offset'] + pend['length'] - 1) // ss})")
        zero = " (reads as zeroes)" if not any(got[s * ss:(s + 1) * ss]) else ""
        sys.exit(f"reconcile: {len(bad)} sectors hold neither the acknowledged data nor the "
                 f"write in flight: first sector {s}{zero}, others {bad[1:6]}{where}")
    save_shadow(d, got)
    for p in (pj, pdata):
        if os.path.exists(p):
            os.unlink(p)
    print("reconcile: every acknowledged write reads back" +
          (f"; the write in flight ({pend['kind']}, {pend['length']} bytes): {landed} sectors "
           f"landed, {kept} kept their old data" if pend else ""))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "writer":
        writer(args[0], args[1], int(args[2]))
    elif cmd == "reconcile":
        reconcile(args[0], args[1], int(args[2]))
    else:
        sys.exit("online-io: unknown command " + cmd)
