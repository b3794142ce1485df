# SPDX-License-Identifier: BSD-3-Clause
"""Focused A/B runner for the large-request cells: plain vs nbdcrypt variants, interleaved.

Each stack is its own nbdkit server (same backend, same image). Every repetition runs each
workload on every stack back to back, in an order rotated by one each repetition, so noise
from the other users of the machine hits the stacks alike. Reported: median (min-max) of
MiB/s per cell, the ratio of medians to the plain stack with the range of the paired
per-repetition ratios, and the nbdkit process's CPU seconds per GiB (from /proc).

nbdcrypt variants differ in NBDCRYPT_READ_PIECE (the read piece size, filter-read.h) and
NBDCRYPT_XTS_IMPL (the XTS engine): 'nbdcrypt' is the built-in default, 'nbdcrypt@0' the
old single pass, 'nbdcrypt@131072' a 128 KiB piece, 'nbdcrypt@0+openssl-xts' the single pass
on OpenSSL's XTS (the code before the large-read work, on a CPU without AVX-512).

  perf/read-ab.sh [--backend file|uring-direct] [--stacks plain,nbdcrypt@0,nbdcrypt]
                  [--workloads seqread,seqwrite,randread] [--reps 5] [--runtime 3]
                  [--io-size 512M] [--raw-disk] [--out DIR]

--backend uring-direct serves an image through the uring plugin with direct=true; with
--io-size each job stops after that many bytes (direct I/O to this disk is rate-limited
after ~15 GB, so keep those runs small) and --raw-disk adds fio on the image itself
(O_DIRECT, libaio, same block size and depth) as the disk's own ceiling, in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)

# name: (fio rw, block size, iodepth)
WORKLOADS = {
    "seqread": ("read", 1 << 20, 16),
    "seqwrite": ("write", 1 << 20, 16),
    "randread": ("randread", 4096, 32),
    "randwrite": ("randwrite", 4096, 32),
}


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def fill(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size and \
            os.path.exists(path + ".filled"):
        return
    print("read-ab: writing %d MiB of random data to %s" % (size >> 20, path), flush=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
        os.fsync(f.fileno())
    open(path + ".filled", "w").close()


class Server:
    def __init__(self, name, args, work):
        self.name, self.args, self.work = name, args, work
        self.sock = os.path.join(work, name.replace("@", "-").replace("+", "-") + ".sock")
        base, _, self.impl = name.partition("+")
        self.enc, _, self.piece = base.partition("@")
        self.proc = None

    def argv(self):
        a = self.args
        argv = ["nbdkit", "-U", self.sock, "-f", "--exit-with-parent", "-t", "16"]
        enc = self.enc
        if enc == "nbdcrypt":
            argv.append("--filter=" + os.path.join(a.build, "plugin", "nbdcrypt",
                                                   "nbdkit-nbdcrypt-filter.so"))
        if a.backend == "file":
            argv += ["file", "file=" + a.image]
        else:
            argv += [os.path.join(a.build, "plugin", "uring", "nbdkit-nbdcrypt-uring-plugin.so"),
                     "file=" + a.image, "direct=true"]
        if enc == "nbdcrypt":
            argv += ["key-file=" + a.key, "cipher=aes-256-xts", "sector-size=4096"]
        return argv

    def start(self):
        env = dict(os.environ)
        env.pop("NBDCRYPT_READ_PIECE", None)
        env.pop("NBDCRYPT_XTS_IMPL", None)
        if self.piece:
            env["NBDCRYPT_READ_PIECE"] = self.piece
        if self.impl:
            env["NBDCRYPT_XTS_IMPL"] = self.impl
        log = open(os.path.join(self.work, self.name + ".log"), "w")
        if os.path.exists(self.sock):
            os.unlink(self.sock)            # left by a run that was killed
        self.proc = subprocess.Popen(nice(self.args) + self.argv(), env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(self.sock):
                return
            if self.proc.poll() is not None:
                sys.exit("read-ab: %s did not start: see %s.log" % (self.name, self.name))
            time.sleep(0.05)
        sys.exit("read-ab: %s: no socket" % self.name)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nice(args):
    """A prefix that runs a command at args.nice (0: as is)."""
    return ["nice", "-n", str(args.nice)] if getattr(args, "nice", 0) else []


def fio(args, workload, target, out):
    rw, bs, qd = WORKLOADS[workload]
    argv = nice(args) + ["fio", "--name=" + workload, "--output-format=json", "--output=" + out,
            "--rw=" + rw, "--bs=%d" % bs, "--iodepth=%d" % qd, "--norandommap",
            "--randrepeat=0", "--size=%d" % args.size_bytes]
    if args.io_size:
        argv += ["--io_size=%d" % parse_size(args.io_size)]
    else:
        argv += ["--time_based", "--runtime=%dms" % round(args.runtime * 1000)]
        if args.ramp > 0:
            argv += ["--ramp_time=%dms" % round(args.ramp * 1000)]
    if target == "raw-disk":
        argv += ["--ioengine=libaio", "--direct=1", "--filename=" + args.image]
    else:
        argv += ["--ioengine=nbd", "--uri=nbd+unix:///?socket=" + target]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=args.runtime * 10 + 120)
    if p.returncode != 0:
        sys.exit("read-ab: fio failed on %s: %s" % (target, (p.stderr or p.stdout)[-500:]))
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    side = job["read"] if job["read"]["io_bytes"] else job["write"]
    fio.cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1000
    return side["bw_bytes"] / (1 << 20), side["io_bytes"]


def default_work(backend):
    if backend == "file" and os.path.isdir("/dev/shm"):
        return "/dev/shm/nbdcrypt-read-ab"
    return os.path.join(tempfile.gettempdir(), "nbdcrypt-read-ab")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["file", "uring-direct"], default="file")
    ap.add_argument("--stacks", default="plain,nbdcrypt@0,nbdcrypt")
    ap.add_argument("--workloads", default="seqread,seqwrite")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--runtime", type=float, default=3.0)
    ap.add_argument("--ramp", type=float, default=0.3)
    ap.add_argument("--size", default="1G", help="image size (default 1G)")
    ap.add_argument("--io-size", help="bytes per job instead of --runtime (direct runs)")
    ap.add_argument("--raw-disk", action="store_true")
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--work", default=None,
                    help="images and sockets (default: /dev/shm/nbdcrypt-read-ab for the file "
                    "backend - page cache that is never written back, so write jobs do not "
                    "queue behind the disk - and /tmp/nbdcrypt-read-ab for uring-direct)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run nbdkit and fio at this niceness (e.g. -5 on a shared machine)")
    ap.add_argument("--out", default=None, help="write results.json and results.md here")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    args.size_bytes = parse_size(args.size)
    args.work = args.work or default_work(args.backend)
    os.makedirs(args.work, exist_ok=True)
    args.image = os.path.join(args.work, "%s-%d.img" % (args.backend, args.size_bytes))
    args.key = os.path.join(args.work, "volume.key")
    if not os.path.exists(args.key):
        with open(args.key, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(os.urandom(64))
    fill(args.image, args.size_bytes)
    if args.backend == "file":
        # Page-cached: read it once so that every job reads memory.
        subprocess.run(["cat", args.image], stdout=subprocess.DEVNULL, check=True)

    names = args.stacks.split(",")
    servers = [Server(n, args, args.work) for n in names]
    targets = [(s.name, s.sock, s) for s in servers]
    if args.raw_disk:
        targets.append(("raw-disk", "raw-disk", None))
    workloads = args.workloads.split(",")
    bw = {(w, t[0]): [] for w in workloads for t in targets}
    cpu = {(w, t[0]): [] for w in workloads for t in targets}
    total = {(w, t[0]): [] for w in workloads for t in targets}
    for s in servers:
        s.start()
    try:
        for rep in range(args.reps):
            for w in workloads:
                order = targets[rep % len(targets):] + targets[:rep % len(targets)]
                for name, target, srv in order:
                    if args.backend == "uring-direct" or WORKLOADS[w][0] != "read":
                        os.sync()
                    c0 = srv.cpu() if srv else 0
                    mib, nbytes = fio(args, w, target, os.path.join(args.work, "fio.json"))
                    c1 = srv.cpu() if srv else 0
                    bw[(w, name)].append(mib)
                    if nbytes:
                        cpu[(w, name)].append((c1 - c0) / (nbytes / (1 << 30)))
                        total[(w, name)].append((c1 - c0 + fio.cpu) / (nbytes / (1 << 30)))
                    print("rep %d %-9s %-18s %8.0f MiB/s" % (rep + 1, w, name, mib), flush=True)
    finally:
        for s in servers:
            s.stop()

    base = names[0]
    # On a saturated shared machine throughput follows 1 / CPU cost, and the cost of a GiB
    # barely depends on the others' load: its ratio is the steadier estimate.
    lines = ["| workload | stack | MiB/s median (min-max) | / %s [paired range] | "
             "nbdkit CPU s/GiB | nbdkit+fio CPU s/GiB | est. / %s from CPU |" % (base, base),
             "|---|---|---|---|---|---|---|"]
    result = {"args": {k: v for k, v in vars(args).items()}, "cells": []}
    for w in workloads:
        for name, _, _ in targets:
            v = bw[(w, name)]
            med = statistics.median(v)
            bmed = statistics.median(bw[(w, base)])
            paired = [a / b for a, b in zip(v, bw[(w, base)])]
            c = statistics.median(cpu[(w, name)]) if cpu[(w, name)] else float("nan")
            tc = statistics.median(total[(w, name)]) if total[(w, name)] else float("nan")
            bt = statistics.median(total[(w, base)]) if total[(w, base)] else float("nan")
            own = name != "raw-disk"
            lines.append("| %s | %s | %.0f (%.0f-%.0f) | %.3f [%.2f-%.2f] | %s | %s | %s |" % (
                w, name, med, min(v), max(v), med / bmed, min(paired), max(paired),
                "%.3f" % c if own else "-", "%.3f" % tc if own else "-",
                "%.3f" % (bt / tc) if own else "-"))
            result["cells"].append({"workload": w, "stack": name, "mib_s": v,
                                    "median": med, "ratio": med / bmed,
                                    "cpu_s_per_gib": cpu[(w, name)],
                                    "total_cpu_s_per_gib": total[(w, name)]})
    head = ("backend %s (image %s), %d reps x %s, stacks interleaved (rotated each rep), "
            "nice %d. %s" % (args.backend, args.image, args.reps,
                             args.io_size or ("%g s" % args.runtime), args.nice, args.note))
    print(head)
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(head + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
