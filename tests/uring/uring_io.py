# SPDX-License-Identifier: BSD-3-Clause
# NBD client side of the uring tests (libnbd's python module): random writes with odd offsets
# and lengths recorded in a reference file, read-back checks, concurrent multi-connection
# writes that share blocks, concurrent writes to several exports of one server (dir=).
# Usage: uring_io.py COMMAND URI [args...]
import os
import random
import sys
import threading

import nbd

# Lengths that exercise every direct-I/O path: sub-block, block-crossing, exact blocks,
# several pieces (256 KiB each) and more than 64 pieces (bigger pieces).
LENGTHS = [1, 7, 511, 512, 513, 4095, 4096, 4097, 65536 + 3, 262144, 1048576 + 511,
           3 * 1048576, 9 * 1048576 + 4097, 20 * 1048576]


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def pick(rng, size, big):
    n = rng.choice([x for x in LENGTHS if x <= size and (big or x <= 4 * 1048576)])
    if rng.random() < 0.3:
        n = rng.randrange(1, min(size, 300000))
    off = rng.randrange(0, size - n + 1)
    if rng.random() < 0.2:
        off = size - n           # the end of the export (a partial last block, maybe)
    return off, n


def write_random(uri, ref_path, seed, count, big=True):
    """Random writes through URI; the expected image goes to ref_path (which must already
    hold the image's current contents)."""
    rng = random.Random(seed)
    h = connect(uri)
    size = h.get_size()
    with open(ref_path, 'r+b') as ref:
        for i in range(count):
            off, n = pick(rng, size, big)
            data = rng.randbytes(n)
            flags = nbd.CMD_FLAG_FUA if i % 7 == 3 else 0
            h.pwrite(data, off, flags)
            ref.seek(off)
            ref.write(data)
    h.flush()
    h.shutdown()


def verify(uri, ref_path, seed, count):
    """The whole export equals ref_path, read in odd pieces, then whole."""
    rng = random.Random(seed)
    h = connect(uri)
    size = h.get_size()
    with open(ref_path, 'rb') as f:
        ref = f.read()
    assert len(ref) == size, f'export is {size} bytes, reference {len(ref)}'
    for _ in range(count):
        off, n = pick(rng, size, True)
        got = h.pread(n, off)
        if got != ref[off:off + n]:
            bad = next(i for i in range(n) if got[i] != ref[off + i])
            sys.exit(f'FAIL: pread({n}, {off}) differs first at byte {off + bad}')
    pos = 0
    while pos < size:
        n = min(size - pos, 32 * 1048576)
        if h.pread(n, pos) != ref[pos:pos + n]:
            sys.exit(f'FAIL: whole-image read differs in [{pos}, {pos + n})')
        pos += n
    h.shutdown()


def multiconn(uri, ref_path, nconn, rounds):
    """nconn connections write interleaved 100-byte records at once: neighbours share
    512-byte blocks, so an unlocked read-modify-write would lose some of them. URI may be
    several, separated by spaces (names of one file): connection k uses the k-th, in turn."""
    uris = uri.split()
    h0 = connect(uris[0])
    assert h0.can_multi_conn(), 'multi-conn not advertised'
    size = h0.get_size()
    h0.shutdown()
    rec = 100
    nrec = min(size // rec, 4000)
    errors = []

    def worker(k):
        try:
            h = connect(uris[k % len(uris)])
            for r in range(rounds):
                for j in range(k, nrec, nconn):
                    h.pwrite(bytes([(j + r) % 251 + 1]) * rec, j * rec)
            h.flush()
            h.shutdown()
        except Exception as e:              # reported below, the test fails
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f'FAIL: {errors[0]}')
    with open(ref_path, 'r+b') as ref:
        for j in range(nrec):
            ref.seek(j * rec)
            ref.write(bytes([(j + rounds - 1) % 251 + 1]) * rec)


def exports(sock, ref_dir, seed, count, names):
    """One connection per export NAME (dir=) on the server at SOCK, all writing at once, each
    its own random data (seed + its index); the expected image of NAME is ref_dir/NAME."""
    errors = []

    def worker(i, name):
        try:
            uri = f'nbd+unix:///{name}?socket={sock}'
            write_random(uri, os.path.join(ref_dir, name), seed + i, count, big=False)
        except Exception as e:              # reported below, the test fails
            errors.append(f'{name}: {e}')

    threads = [threading.Thread(target=worker, args=(i, name)) for i, name in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f'FAIL: {errors[0]}')


def readahead(uri, ref_path, seed, passes):
    """Sequential 1 MiB reads (the uring plugin prefetches ahead of them with direct=true)
    while writes, zeroes and trims land just ahead of the reader, from another connection
    and from the reader's own: every read issued after a write has returned must see it,
    never a chunk prefetched before. Then a reader with 8 requests in flight races a writer
    thread; afterwards every byte must match. ref_path holds the image's contents."""
    rng = random.Random(seed)
    reader, writer = connect(uri), connect(uri)
    size = reader.get_size()
    ref = bytearray(open(ref_path, 'rb').read())
    assert len(ref) == size
    mib = 1048576

    def change(h, lo, hi):
        hi = min(hi, size)
        if hi - lo < 2:
            return
        off = rng.randrange(lo, hi - 1)
        n = min(rng.choice([1, 100, 511, 512, 4096, 4097, 65536, mib + 7]), size - off)
        kind = rng.random()
        if kind < 0.6:
            data = rng.randbytes(n)
            h.pwrite(data, off, nbd.CMD_FLAG_FUA if rng.random() < 0.2 else 0)
            ref[off:off + n] = data
        elif kind < 0.8:
            h.zero(n, off)
            ref[off:off + n] = bytes(n)
        else:
            h.trim(n, off)        # advisory: only reads tell what it did
            ref[off:off + n] = h.pread(n, off)

    for p in range(passes):
        pos = 0
        while pos < size:
            n = min(mib, size - pos)
            got = reader.pread(n, pos)
            if got != ref[pos:pos + n]:
                bad = next(i for i in range(n) if got[i] != ref[pos + i])
                sys.exit(f'FAIL: pass {p}: pread({n}, {pos}) differs at byte {pos + bad}: '
                         'stale prefetched data?')
            pos += n
            # Ahead of the reader, inside the readahead window (16 MiB by default).
            if rng.random() < 0.5:
                change(writer if rng.random() < 0.7 else reader, pos, pos + 16 * mib)

    # Races: reads in flight while another thread writes; check the end state.
    stop = []
    errors = []

    def write_loop():
        try:
            h = connect(uri)
            while not stop:
                change(h, 0, size)
            h.flush()
            h.shutdown()
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=write_loop)
    t.start()
    try:
        for p in range(passes):
            pos, inflight = 0, []
            while pos < size or inflight:
                while pos < size and len(inflight) < 8:
                    buf = nbd.Buffer(min(mib, size - pos))
                    inflight.append(reader.aio_pread(buf, pos))
                    pos += mib
                reader.poll(-1)
                inflight = [c for c in inflight if not reader.aio_command_completed(c)]
    finally:
        stop.append(1)
        t.join()
    if errors:
        sys.exit(f'FAIL: writer: {errors[0]}')
    got = bytearray()
    for pos in range(0, size, mib):
        got += reader.pread(min(mib, size - pos), pos)
    if got != ref:
        bad = next(i for i in range(size) if got[i] != ref[i])
        sys.exit(f'FAIL: after the race the export differs at byte {bad}')
    reader.shutdown()
    writer.shutdown()
    with open(ref_path, 'wb') as f:
        f.write(ref)


def mixrace(uri, ref_path, seed, blocks):
    """Per 4 KiB block, two changes to different bytes of the block in flight together: an
    unaligned write and a write-zeroes, trim or another unaligned write (either submitted
    first). Block-aligned direct I/O makes the write a read-modify-write of the whole block;
    any other change to the block that does not wait for it is overwritten by its stale copy.
    Trims are advisory: the trimmed bytes must read back as before or as zeros, and the
    write beside them must stay. ref_path holds the image's contents; it is updated."""
    rng = random.Random(seed)
    h = connect(uri)
    size = h.get_size()
    ref = bytearray(open(ref_path, 'rb').read())
    assert len(ref) == size
    nblk = min(blocks, size // 4096)
    trims = []
    for b in rng.sample(range(size // 4096), nblk):
        blk = b * 4096
        base = rng.randbytes(4096)
        h.pwrite(base, blk)
        ref[blk:blk + 4096] = base
        wdata = rng.randbytes(100)
        kind = rng.choice(['zero', 'zero', 'trim', 'write'])
        first_write = rng.random() < 0.5
        cmds = []
        if first_write:
            cmds.append(h.aio_pwrite(wdata, blk + 100))
        if kind == 'zero':
            cmds.append(h.aio_zero(100, blk + 300))
        elif kind == 'trim':
            cmds.append(h.aio_trim(100, blk + 300))
        else:
            other = rng.randbytes(100)
            cmds.append(h.aio_pwrite(other, blk + 300))
        if not first_write:
            cmds.append(h.aio_pwrite(wdata, blk + 100))
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cmds:
            h.aio_command_completed(c)      # raises if the command failed
        ref[blk + 100:blk + 200] = wdata
        if kind == 'zero':
            ref[blk + 300:blk + 400] = bytes(100)
        elif kind == 'write':
            ref[blk + 300:blk + 400] = other
        else:
            trims.append((blk + 300, bytes(ref[blk + 300:blk + 400])))
        got = h.pread(4096, blk)
        if kind == 'trim' and got[300:400] == bytes(100):
            ref[blk + 300:blk + 400] = bytes(100)
        if got != ref[blk:blk + 4096]:
            bad = next(i for i in range(4096) if got[i] != ref[blk + i])
            sys.exit(f'FAIL: block {blk}: {kind} and an unaligned write in flight together, '
                     f'{"write" if first_write else kind} first: byte {bad} of the block '
                     f'is {got[bad]}, want {ref[blk + bad]} (a lost {kind}?)')
    h.flush()
    h.shutdown()
    with open(ref_path, 'wb') as f:
        f.write(ref)


def main():
    cmd, uri = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if cmd == 'write':
        write_random(uri, args[0], int(args[1]), int(args[2]))
    elif cmd == 'write-small':
        write_random(uri, args[0], int(args[1]), int(args[2]), big=False)
    elif cmd == 'verify':
        verify(uri, args[0], int(args[1]), int(args[2]))
    elif cmd == 'readahead':
        readahead(uri, args[0], int(args[1]), int(args[2]))
    elif cmd == 'mixrace':
        mixrace(uri, args[0], int(args[1]), int(args[2]))
    elif cmd == 'multiconn':
        multiconn(uri, args[0], int(args[1]), int(args[2]))
    elif cmd == 'exports':          # URI is the server's socket here
        exports(uri, args[0], int(args[1]), int(args[2]), args[3:])
    else:
        sys.exit(f'unknown command {cmd}')


if __name__ == '__main__':
    main()
