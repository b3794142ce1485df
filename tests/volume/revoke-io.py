#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Clients and checks for test-volume-revoke.sh (what happens to a served volume whose KEK is
# revoked), with libnbd's Python binding and python3-cryptography as the oracle:
#   hold URI DIR          one connection: write and read back, touch DIR/ready, wait for DIR/go,
#                         then read, write and write-zeroes on the SAME connection: each must
#                         fail (never data); prints one line per request
#   hammer URI DIR N      N connections, each rewriting its own 4 KiB blocks in a loop (block
#                         contents: sequence number + a fill derived from it) until a request
#                         fails; DIR/acked holds each block's last acknowledged sequence
#   reader URI DIR        write a block, touch DIR/ready, then read it back in a loop until a
#                         read fails: every read that succeeds must return the block (a read
#                         in the plugin below while the keys are wiped must not decrypt with
#                         a wiped schedule)
#   check IMAGE DEK OFFSET DIR   decrypt those blocks with the DEK (aes-xts-plain64, 4096-byte
#                         sectors): each must hold a well-formed block at least as new as its
#                         last acknowledged write - no garbage, no lost write
#   scan PID KEYFILE      count where 16-byte slices of the key occur in the process's memory
#                         (/proc/PID/maps + /proc/PID/mem; needs root or ptrace rights)
import hashlib, json, os, struct, sys, threading, time
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 4096
BLOCKS_PER_CONN = 8


def block(n, seq):
    head = struct.pack("<QQ", n, seq)
    fill = hashlib.sha256(head).digest() * (BLOCK // 32)
    return head + fill[len(head):]


def wait_for(path, seconds):
    for _ in range(int(seconds * 10)):
        if os.path.exists(path):
            return
        time.sleep(0.1)
    sys.exit("revoke-io: %s never appeared" % path)


def hold(uri, d):
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    base = 4 << 20                  # clear of hammer's blocks
    a = os.urandom(65536)
    h.pwrite(a, base)
    h.flush()
    assert h.pread(65536, base) == a, "read back before the revocation"
    open(os.path.join(d, "ready"), "w").close()
    wait_for(os.path.join(d, "go"), 120)
    served = 0
    for name, op in [("read", lambda: h.pread(65536, base)),
                     ("unaligned read", lambda: h.pread(100, base + 4000)),
                     ("write", lambda: h.pwrite(os.urandom(65536), base + (1 << 20))),
                     ("unaligned write", lambda: h.pwrite(b"x" * 100, base + 4000)),
                     ("write-zeroes", lambda: h.zero(65536, base + (2 << 20)))]:
        try:
            got = op()
            served += 1
            print("hold: %s after the revocation SUCCEEDED (%s)" %
                  (name, "data returned" if got else "written"))
        except nbd.Error as e:
            print("hold: %s after the revocation failed: %s (%s)" % (name, e.errno, e.string))
    sys.exit(1 if served else 0)


def hammer(uri, d, nconn):
    import nbd
    acked = {}
    lock = threading.Lock()
    started = threading.Barrier(nconn + 1)

    def run(c):
        h = nbd.NBD()
        h.connect_uri(uri)
        blocks = [c * BLOCKS_PER_CONN + i for i in range(BLOCKS_PER_CONN)]
        for n in blocks:            # a known start, before the revocation
            h.pwrite(block(n, 0), n * BLOCK)
            with lock:
                acked[n] = 0
        started.wait()
        seq = 1
        try:
            while True:
                for n in blocks:
                    h.pwrite(block(n, seq), n * BLOCK)
                    with lock:
                        acked[n] = seq
                seq += 1
        except nbd.Error:
            pass

    ts = [threading.Thread(target=run, args=(c,)) for c in range(nconn)]
    for t in ts:
        t.start()
    started.wait()
    open(os.path.join(d, "ready"), "w").close()
    for t in ts:
        t.join(120)
    with open(os.path.join(d, "acked"), "w") as f:
        json.dump(acked, f)
    print("hammer: %d blocks, %d writes acknowledged before the first refusal" %
          (len(acked), sum(acked.values())))


def reader(uri, d):
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    want = block(99, 1)
    h.pwrite(want, 0)
    open(os.path.join(d, "ready"), "w").close()
    good = 0
    try:
        while True:
            if h.pread(BLOCK, 0) != want:
                sys.exit("reader: a read returned wrong data after %d good ones" % good)
            good += 1
    except nbd.Error as e:
        print("reader: %d reads returned the block, then %s" % (good, e.errno))
        sys.exit(0 if e.errno == "EPERM" else 1)


def check(image, dekfile, offset, d):
    dek = open(dekfile, "rb").read()
    acked = {int(k): v for k, v in json.load(open(os.path.join(d, "acked"))).items()}
    bad = 0
    with open(image, "rb") as f:
        for n, seq in sorted(acked.items()):
            f.seek(offset + n * BLOCK)
            ct = f.read(BLOCK)
            dec = Cipher(algorithms.AES(dek), modes.XTS(n.to_bytes(16, "little"))).decryptor()
            pt = dec.update(ct) + dec.finalize()
            bn, bseq = struct.unpack("<QQ", pt[:16])
            if bn != n or pt != block(n, bseq):
                print("check: block %d on disk is garbage" % n)
                bad += 1
            elif bseq < seq:
                print("check: block %d holds write %d, older than acknowledged %d" % (n, bseq, seq))
                bad += 1
    print("check: %d blocks decrypt to well-formed writes, none older than acknowledged" %
          (len(acked) - bad))
    sys.exit(1 if bad else 0)


def scan(pid, keyfile):
    key = open(keyfile, "rb").read()
    needles = [key[i:i + 16] for i in range(0, len(key), 16)]
    hits = 0
    skipped = 0
    with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if "r" not in fields[1] or name in ("[vvar]", "[vsyscall]"):
                continue
            if hi - lo > (1 << 30):     # sanitizer shadow: reserved, not memory
                skipped += 1
                continue
            try:
                mem.seek(lo)
                buf = mem.read(hi - lo)
            except OSError:
                continue
            for nd in needles:
                i = buf.find(nd)
                while i >= 0:
                    hits += 1
                    print("scan: key bytes at %#x (%s %s)" % (lo + i, fields[1], name),
                          file=sys.stderr)
                    i = buf.find(nd, i + 1)
    print(hits)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "hold":
        hold(*args)
    elif cmd == "hammer":
        hammer(args[0], args[1], int(args[2]))
    elif cmd == "reader":
        reader(*args)
    elif cmd == "check":
        check(args[0], args[1], int(args[2]), args[3])
    elif cmd == "scan":
        scan(*args)
    else:
        sys.exit("revoke-io: unknown command " + cmd)
