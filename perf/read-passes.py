# SPDX-License-Identifier: BSD-3-Clause
"""Where the nbdkit process spends its time on 1 MiB sequential reads, per GiB read.

For each stack (plain, nbdcrypt variants as in read-ab.py), one fio job (nbd engine, 1 MiB,
QD16) runs while `perf stat` (software counters) and `perf record -g` (cpu-clock samples
with call chains) watch the nbdkit process. Every sample is put in one pass over the data by
its call chain:

  pread copy     the plugin's read: page cache -> request buffer (pread, or io_uring read)
  decrypt        the XTS engine (samples in the filter's code or in OpenSSL's libcrypto)
  socket send    the reply: request buffer -> socket buffers (sendmsg/write on the socket)
  socket recv    reading requests from the socket
  page faults    first touch of freshly mapped request buffers
  mm             mmap/munmap/madvise (large buffers given back and taken again)
  sched/futex    thread hand-offs
  other          everything else (nbdkit's own bookkeeping, syscall entry, ...)

Hardware counters (cycles, instructions, cache misses) are used when `perf stat -e
instructions true` works; on a VM without a PMU only software counters exist, and the
cache effect shows as time in the passes that touch the data (pread copy, decrypt, send).

  perf/read-passes.sh [--backend file|uring-direct] [--stacks plain,nbdcrypt@0,nbdcrypt]
                      [--runtime 3] [--out FILE.md]
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib  # noqa: E402

ab = importlib.import_module("read-ab")

PASSES = [
    ("page faults", ("asm_exc_page_fault", "exc_page_fault", "do_user_addr_fault")),
    ("pread copy", ("filemap_read", "generic_file_read_iter", "ext4_file_read_iter",
                    "shmem_file_read_iter",
                    "__x64_sys_pread64", "ksys_pread64", "io_read", "iomap_dio_rw",
                    "io_issue_sqe", "io_uring_enter")),
    ("socket send", ("unix_stream_sendmsg", "sock_sendmsg", "__sys_sendto",
                     "sock_write_iter", "__sys_sendmsg")),
    ("socket recv", ("unix_stream_recvmsg", "sock_recvmsg", "sock_read_iter",
                     "__sys_recvfrom", "__sys_recvmsg")),
    ("mm", ("__x64_sys_munmap", "__x64_sys_mmap", "__x64_sys_madvise", "__x64_sys_mremap",
            "__x64_sys_brk")),
    ("sched/futex", ("__x64_sys_futex", "schedule", "__x64_sys_poll", "__x64_sys_ppoll")),
]


def classify(frames):
    """frames: (symbol, dso) leaf first."""
    leaf_sym, leaf_dso = frames[0] if frames else ("", "")
    # The engine: our code in the filter, or OpenSSL's XTS assembly (libcrypto), which is
    # what the filter calls when the CPU has no AVX-512 for the VAES engine.
    if any(d in leaf_dso for d in ("nbdcrypt-filter", "libcrypto")) or \
            "xts" in leaf_sym or "aes" in leaf_sym.lower():
        return "decrypt"
    syms = [f[0] for f in frames]
    for name, marks in PASSES:
        if any(s.split("+")[0] in marks for s in syms):
            return name
    return "other"


def parse_script(text):
    """Yield (period, frames) from `perf script` output with call chains."""
    period, frames = None, []
    for line in text.splitlines():
        if not line.strip():
            if period is not None:
                yield period, frames
            period, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            # "nbdkit  1234 [001] 12.345678:     500000 cpu-clock:"
            parts = line.split()
            for i, p in enumerate(parts):
                if p.startswith("cpu-clock"):
                    period = int(parts[i - 1])
                    break
            else:
                period = 0
            frames = []
            continue
        f = line.strip().split(None, 1)
        if len(f) == 2:
            rest = f[1]
            dso = rest[rest.rfind("(") + 1:-1] if rest.endswith(")") else ""
            sym = rest[:rest.rfind("(")].strip() if "(" in rest else rest
            frames.append((sym, dso))
    if period is not None:
        yield period, frames


def hw_counters():
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                           capture_output=True, text=True)
        return "<not supported>" not in p.stderr and p.returncode == 0
    except OSError:
        return False


def profile(args, srv, hw):
    work = args.work
    data = os.path.join(work, srv.name + ".perf.data")
    stat_out = os.path.join(work, srv.name + ".stat")
    events = "task-clock,context-switches,cpu-migrations,page-faults"
    if hw:
        events += ",cycles,instructions,cache-misses,LLC-loads,LLC-load-misses"
    pid = str(srv.proc.pid)
    rec = subprocess.Popen(ab.nice(args) + ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g",
                            "-p", pid, "-o", data], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    stat = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", pid, "-o", stat_out])
    time.sleep(0.3)
    mib, nbytes = ab.fio(args, "seqread", srv.sock, os.path.join(work, "fio.json"))
    for p in (rec, stat):
        p.send_signal(2)
        p.wait()
    gib = nbytes / (1 << 30)
    counters = {}
    with open(stat_out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 3 and parts[0] and parts[0][0].isdigit():
                counters[parts[2]] = float(parts[0])
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True,
                            text=True).stdout
    passes = collections.Counter()
    for period, frames in parse_script(script):
        passes[classify(frames)] += period
    return mib, gib, counters, passes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["file", "uring-direct"], default="file")
    ap.add_argument("--stacks", default="plain,nbdcrypt@0,nbdcrypt")
    ap.add_argument("--runtime", type=float, default=3.0)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--io-size", default=None)
    ap.add_argument("--build", default=os.path.join(ab.SRC, "build"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args()
    args.ramp = 0.0
    args.size_bytes = ab.parse_size(args.size)
    args.work = args.work or ab.default_work(args.backend)
    os.makedirs(args.work, exist_ok=True)
    args.image = os.path.join(args.work, "%s-%d.img" % (args.backend, args.size_bytes))
    args.key = os.path.join(args.work, "volume.key")
    if not os.path.exists(args.key):
        with open(args.key, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(os.urandom(64))
    ab.fill(args.image, args.size_bytes)
    if args.backend == "file":
        subprocess.run(["cat", args.image], stdout=subprocess.DEVNULL, check=True)
    hw = hw_counters()
    servers = [ab.Server(n, args, args.work) for n in args.stacks.split(",")]
    rows = []
    for s in servers:
        s.start()
    try:
        for s in servers:
            rows.append((s.name,) + profile(args, s, hw))
    finally:
        for s in servers:
            s.stop()

    names = ["pread copy", "decrypt", "socket send", "socket recv", "page faults", "mm",
             "sched/futex", "other"]
    head = ["stack", "MiB/s", "task-clock ms/GiB", "ctx-sw/GiB", "migrations/GiB",
            "page-faults/GiB"]
    if hw:
        head += ["cycles/GiB", "instructions/GiB", "cache-misses/GiB", "LLC-loads/GiB",
                 "LLC-load-misses/GiB"]
    head += ["%s ms/GiB" % n for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    result = []
    for name, mib, gib, c, passes in rows:
        cells = [name, "%.0f" % mib, "%.0f" % (c.get("task-clock", 0) / gib),
                 "%.0f" % (c.get("context-switches", 0) / gib),
                 "%.0f" % (c.get("cpu-migrations", 0) / gib),
                 "%.0f" % (c.get("page-faults", 0) / gib)]
        if hw:
            for e in ("cycles", "instructions", "cache-misses", "LLC-loads", "LLC-load-misses"):
                cells.append("%.3g" % (c.get(e, 0) / gib))
        cells += ["%.1f" % (passes[n] / 1e6 / gib) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
        result.append({"stack": name, "mib_s": mib, "gib": gib, "counters": c,
                       "passes_ns": dict(passes)})
    note = ("%s backend, fio nbd seqread 1 MiB QD16, %s per stack; nbdkit process only "
            "(perf stat -p / perf record -e cpu-clock -g -p); hardware counters: %s" % (
                args.backend, args.io_size or "%g s" % args.runtime,
                "yes" if hw else "not available (no PMU in this VM)"))
    print(note)
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            f.write(note + "\n\n" + "\n".join(lines) + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
