# SPDX-License-Identifier: BSD-3-Clause
# Write-ordering contention: does one client's unaligned writes slow another client's
# aligned writes to other sectors? Two clients on one nbdkit (memory plugin, 1 ms read and
# write delay below, as a disk would have): A keeps 16 one-byte writes in flight in the first
# half of the export (each a read-modify-write of its sector), B writes aligned 4 KiB blocks
# one at a time in the second half. Prints B's median and p99 latency alone and while A runs,
# with and without the nbdcrypt filter. Bounded in time: SECONDS per measurement, 4 of them
# (A stops at its own deadline, so a starved B ends too).
#
# usage: /usr/bin/python3 perf/lock-contention.py [BUILDDIR [SECONDS]]    (defaults: build 3)
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import nbd

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 256 * 1024 * 1024
HALF = SIZE // 2
A_IN_FLIGHT = 16


def start(tmp, name, with_filter, key):
    sock = os.path.join(tmp, name + ".sock")
    args = ["nbdkit", "-U", sock, "-f", "--exit-with-parent"]
    if with_filter:
        args += ["--filter=" + os.path.join(BUILD, "plugin", "nbdcrypt",
                                            "nbdkit-nbdcrypt-filter.so")]
    args += ["--filter=delay", "memory", str(SIZE), "delay-read=1ms", "delay-write=1ms"]
    if with_filter:
        args.append("key-file=" + key)
    proc = subprocess.Popen(args)
    for _ in range(300):
        if os.path.exists(sock):
            break
        if proc.poll() is not None:
            sys.exit("nbdkit failed to start: %s" % " ".join(args))
        time.sleep(0.05)
    return proc, "nbd+unix:///?socket=" + sock


def client_a(uri, until, counter):
    """One-byte writes at random offsets of the first half, A_IN_FLIGHT at a time, until the
    deadline (its own: if B is starved, A's stop is what ends the measurement)."""
    h = nbd.NBD()
    h.connect_uri(uri)
    rng = random.Random(1)
    buf = nbd.Buffer.from_bytearray(bytearray(b"x"))
    pending = 0
    while time.monotonic() < until or pending:
        while time.monotonic() < until and pending < A_IN_FLIGHT:
            h.aio_pwrite(buf, rng.randrange(HALF),
                         completion=lambda err: counter.append(1) or 1)
            pending += 1
        h.poll(-1)
        pending = h.aio_in_flight()
    h.shutdown()


def client_b(uri, seconds):
    """Aligned 4 KiB writes at random blocks of the second half; latency of each, in ms."""
    h = nbd.NBD()
    h.connect_uri(uri)
    rng = random.Random(2)
    data = os.urandom(4096)
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        off = HALF + rng.randrange(HALF // 4096) * 4096
        t0 = time.perf_counter()
        h.pwrite(data, off)
        lat.append((time.perf_counter() - t0) * 1000)
    h.shutdown()
    return lat


def measure(uri, seconds, with_a):
    counter, a = [], None
    if with_a:
        warmup = 0.3                    # A at full depth before B starts
        a = threading.Thread(target=client_a,
                             args=(uri, time.monotonic() + warmup + seconds, counter))
        a.start()
        time.sleep(warmup)
    lat = client_b(uri, seconds)
    if a:
        a.join()
    lat.sort()
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat), \
        len(counter)


def main():
    global BUILD
    BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "build"))
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    if not shutil.which("nbdkit"):
        sys.exit("nbdkit is not installed")
    tmp = tempfile.mkdtemp(prefix="lock-contention.")
    key = os.path.join(tmp, "vol.key")
    with open(key, "wb") as f:
        f.write(os.urandom(64))
    print("B: aligned 4 KiB writes, one at a time, second half of a %d MiB memory export; "
          "A: %d one-byte writes in flight, first half; delay filter 1 ms read/write below; "
          "%.0f s each; %d CPUs" % (SIZE >> 20, A_IN_FLIGHT, seconds, os.cpu_count()))
    print("%-10s %-9s %10s %10s %8s %9s" % ("stack", "A", "B median", "B p99", "B ops",
                                          "A ops"))
    try:
        for with_filter in (False, True):
            name = "nbdcrypt" if with_filter else "plain"
            proc, uri = start(tmp, name, with_filter, key)
            try:
                for with_a in (False, True):
                    med, p99, n, na = measure(uri, seconds, with_a)
                    print("%-10s %-9s %8.2f ms %7.2f ms %8d %9s" %
                          (name, "running" if with_a else "idle", med, p99, n,
                           na if with_a else "-"))
            finally:
                proc.terminate()
                proc.wait()
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
