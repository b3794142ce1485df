#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Client side of test-volume-many.sh: many exports of one nbdkit (nbdcrypt filter over a
# plugin's dir=), each with a shadow copy of what it must hold, kept in DIR/NAME.plain.
#   fill SOCK DIR SEED NAME...       every byte written (aligned), then unaligned writes and
#                                    write-zeroes; read back and compared; shadow saved
#   concurrent SOCK DIR WRITES NAME...   per export two connections at once, each writing its
#                                    own interleaved unaligned stripes (sectors shared with the
#                                    other), WRITES random writes each; then read back
#   keep SOCK DIR STOP NAME...       unaligned writes and reads on every export, checked, until
#                                    the file STOP exists; READY (DIR/keep.ready) once started
#   hold SOCK NAME DIR               one connection: reads until they fail (after DIR/ready);
#                                    prints the failure's time and errno, then a write's
#   list SOCK                        the export list (names, descriptions) as JSON, no NBD_OPT_GO
#   oracle VOLDIR DEKDIR PLAINDIR KEK|- NAME...   volume-oracle.py in one process: each
#                                    volume's data area decrypts under DEKDIR/NAME to its
#                                    shadow; with a KEK file, the oracle also unwraps the DEK
#                                    from the header and it must equal DEKDIR/NAME
import contextlib, errno, importlib.util, io, json, os, random, sys, threading, time
import nbd

MAX_REQ = 1 << 20


def connect(sock, name):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sock)
    return h


def read_all(h, size):
    out = bytearray()
    for off in range(0, size, MAX_REQ):
        out += h.pread(min(MAX_REQ, size - off), off)
    return out


def check_all(h, shadow, what):
    back = read_all(h, len(shadow))
    if back != shadow:
        bad = next(i for i in range(len(shadow)) if back[i] != shadow[i])
        raise SystemExit(f"{what}: read back differs from the shadow first at byte {bad}")


def save(d, name, shadow):
    with open(os.path.join(d, name + ".plain"), "wb") as f:
        f.write(shadow)


def load(d, name):
    with open(os.path.join(d, name + ".plain"), "rb") as f:
        return bytearray(f.read())


def unaligned_write(h, shadow, rng, lo=0, hi=None):
    """One write at a random offset and length in [lo, hi), rarely sector-aligned."""
    hi = len(shadow) if hi is None else hi
    n = rng.choice([1, rng.randint(2, 511), rng.randint(513, 4095), rng.randint(4097, 20000)])
    n = min(n, hi - lo)
    off = rng.randint(lo, hi - n)
    data = rng.randbytes(n)
    h.pwrite(data, off)
    shadow[off:off + n] = data


def fill(sock, d, seed, names):
    for name in names:
        rng = random.Random(f"{seed}:{name}")
        h = connect(sock, name)
        size = h.get_size()
        shadow = bytearray(rng.randbytes(size))
        for off in range(0, size, 256 << 10):           # aligned, whole sectors
            h.pwrite(shadow[off:off + (256 << 10)], off)
        for _ in range(60):
            unaligned_write(h, shadow, rng)
        for _ in range(4):                              # unaligned write-zeroes
            n = rng.randint(1, 9000)
            off = rng.randint(0, size - n)
            h.zero(n, off)
            shadow[off:off + n] = bytes(n)
        h.flush()
        check_all(h, shadow, name)
        h.shutdown()
        save(d, name, shadow)
    print(f"filled {len(names)} exports")


STRIPE = 700            # bytes; stripe k belongs to writer k % 2 (stripes share sectors)
HOT = 24                # stripes: most writes land there, so that writers meet in sectors


def stripe_writer(sock, name, shadow, who, writes, seed, errors, start):
    try:
        rng = random.Random(f"{seed}:{name}:{who}")
        h = connect(sock, name)
        start.wait(30)                      # every writer connected: all write at once
        stripes = len(shadow) // STRIPE
        for i in range(writes):
            k = rng.randrange(who, HOT if rng.random() < 0.7 else stripes, 2)
            unaligned_write(h, shadow, rng, k * STRIPE, (k + 1) * STRIPE)
            if i % 8 == 0:                  # bytes of its own stripe: stable for this writer
                off = k * STRIPE
                if h.pread(STRIPE, off) != shadow[off:off + STRIPE]:
                    raise RuntimeError(f"stripe {k} reads back wrong while writing")
        h.flush()
        h.shutdown()
    except Exception as e:                  # reported by the main thread
        errors.append(f"{name} writer {who}: {e}")


def concurrent(sock, d, writes, names):
    shadows = {n: load(d, n) for n in names}
    errors = []
    start = threading.Barrier(2 * len(names))
    threads = [threading.Thread(target=stripe_writer,
                                args=(sock, n, shadows[n], who, writes, "conc", errors, start))
               for n in names for who in (0, 1)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        raise SystemExit("; ".join(errors))
    for n in names:
        h = connect(sock, n)
        check_all(h, shadows[n], n)
        h.shutdown()
        save(d, n, shadows[n])
    print(f"{len(threads)} writers on {len(names)} exports: {len(threads) * writes} "
          f"unaligned writes in {secs:.1f} s, all read back")


def keep(sock, d, stop, names):
    rng = random.Random("keep")
    hs = {n: connect(sock, n) for n in names}
    shadows = {n: load(d, n) for n in names}
    ops = 0
    open(os.path.join(d, "keep.ready"), "w").close()
    while True:
        last = os.path.exists(stop)
        for n in names:
            h, shadow = hs[n], shadows[n]
            unaligned_write(h, shadow, rng)
            ln = rng.randint(1, 70000)
            off = rng.randint(0, len(shadow) - ln)
            if h.pread(ln, off) != shadow[off:off + ln]:
                raise SystemExit(f"{n}: read at {off} length {ln} differs from the shadow")
            ops += 2
        if last:
            break
        time.sleep(0.02)
    for n in names:
        hs[n].flush()
        check_all(hs[n], shadows[n], n)
        hs[n].shutdown()
        save(d, n, shadows[n])
    print(f"{len(names)} exports kept serving: {ops} requests checked")


def hold(sock, name, d):
    h = connect(sock, name)
    first = h.pread(4096, 0)
    open(os.path.join(d, "ready"), "w").close()
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            if h.pread(4096, 0) != first:
                raise SystemExit(f"{name}: a read returned other data than before")
        except nbd.Error as e:
            t = time.time()
            res = {"time": t, "read": errno.errorcode.get(e.errno, str(e.errno))}
            try:
                h.pwrite(b"x" * 600, 300)
                res["write"] = "served"
            except nbd.Error as e2:
                res["write"] = errno.errorcode.get(e2.errno, str(e2.errno))
            print(json.dumps(res))
            return
        time.sleep(0.1)
    raise SystemExit(f"{name}: reads still served 40 s after the start")


def list_exports(sock):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(sock)
    out = []
    h.opt_list(lambda name, desc: out.append({"name": name, "description": desc}))
    h.opt_abort()
    print(json.dumps(out))


def oracle(voldir, dekdir, plaindir, kek, names):
    spec = importlib.util.spec_from_file_location(
        "volume_oracle", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "volume-oracle.py"))
    vo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vo)
    for n in names:
        vol, dek = os.path.join(voldir, n), os.path.join(dekdir, n)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if kek != "-":
                    out = os.path.join(plaindir, n + ".dek")
                    vo.unwrap_dek(vol, kek, out)
                    with open(out, "rb") as a, open(dek, "rb") as b:
                        same = a.read() == b.read()
                    os.unlink(out)
                    if not same:
                        raise SystemExit("the oracle unwraps another DEK than nbdcrypt dump")
                vo.check_data(vol, dek, os.path.join(plaindir, n + ".plain"))
        except (SystemExit, AssertionError) as e:
            raise SystemExit(f"oracle: {n}: {e}")
    print(f"oracle: {len(names)} volumes decrypt to what was written"
          + (", DEKs unwrapped independently" if kek != "-" else ""))


def main(argv):
    cmd = argv[1]
    if cmd == "fill":
        fill(argv[2], argv[3], argv[4], argv[5:])
    elif cmd == "concurrent":
        concurrent(argv[2], argv[3], int(argv[4]), argv[5:])
    elif cmd == "keep":
        keep(argv[2], argv[3], argv[4], argv[5:])
    elif cmd == "hold":
        hold(argv[2], argv[3], argv[4])
    elif cmd == "list":
        list_exports(argv[2])
    elif cmd == "oracle":
        oracle(argv[2], argv[3], argv[4], argv[5], argv[6:])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
