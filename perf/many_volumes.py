# SPDX-License-Identifier: BSD-3-Clause
# Helpers of perf/many-volumes.sh (run with /usr/bin/python3, which has libnbd's module):
#   ttfb SOCKET NAMES-FILE      connect + one 4 KiB read at offset 0, every export in turn;
#                               prints "count failed median_ms p99_ms total_s"
#   hold SOCKET NAMES-FILE K PID   connections to the first K exports at once, a 4 KiB read
#                               on each, held while PID's memory is read (as mem below)
#   follow LOG OUT              copy LOG to OUT as it grows, across rotations (until killed)
#   mem PID...                  per process: "rss_kib vmlck_kib pss_kib" (/proc/PID/status
#                               VmRSS, VmLck; smaps_rollup Pss)
#   kms LOG                     what pykmip-server's log (logging_level=INFO) has counted so
#                               far: "sessions requests operations lines"
#   kms-ops LOG SKIP            the operations logged after line SKIP, by name: "Get 100, ..."
#   fio JSON                    aggregate MB/s (10^6 bytes) of a fio --output-format=json run
import json
import statistics
import sys
import time


def ttfb(sock, names_file):
    import nbd
    names = [n for n in open(names_file).read().split("\n") if n]
    times, failed = [], 0
    t_all = time.perf_counter()
    for name in names:
        h = nbd.NBD()
        h.set_export_name(name)
        t0 = time.perf_counter()
        try:
            h.connect_unix(sock)
            h.pread(4096, 0)
            times.append(time.perf_counter() - t0)
        except nbd.Error as e:
            failed += 1
            print(f"many_volumes: export {name}: {e}", file=sys.stderr)
            continue
        finally:
            try:
                h.shutdown()
            except nbd.Error:
                pass
            del h
    total = time.perf_counter() - t_all
    if not times:
        print(f"{len(names)} {failed} nan nan {total:.2f}")
        return
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    print(f"{len(names)} {failed} {statistics.median(times) * 1e3:.2f} {p99 * 1e3:.2f} "
          f"{total:.2f}")


def hold(sock, names_file, count, pid):
    """Connections to the first `count` exports at once, one 4 KiB read on each, all held
    open while the server's memory is read: what connected clients cost beyond the volumes."""
    import nbd
    names = [n for n in open(names_file).read().split("\n") if n][:int(count)]
    handles = []
    for name in names:
        h = nbd.NBD()
        h.set_export_name(name)
        h.connect_unix(sock)
        h.pread(4096, 0)
        handles.append(h)
    time.sleep(0.5)
    mem([pid])
    for h in handles:
        h.shutdown()


def follow(log, out):
    """Copy pykmip-server's log to `out` as it grows, across its rotations (the server's
    RotatingFileHandler keeps 6 MB, less than 1000 volumes log): the renamed file is read to
    its end before the new one is opened. Runs until killed."""
    import os
    dst = open(out, "ab", buffering=0)
    f = None
    while True:
        if f is None:
            try:
                f = open(log, "rb")
                ino = os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                time.sleep(0.05)
                continue
        data = f.read()
        if data:
            dst.write(data)
            continue
        try:
            if os.stat(log).st_ino != ino:
                dst.write(f.read())
                f.close()
                f = None
                continue
        except FileNotFoundError:
            pass
        time.sleep(0.05)


def mem(pids):
    for pid in pids:
        st = {}
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            st[k] = v.split()
        pss = 0
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
        print(f"{st['VmRSS'][0]} {st['VmLck'][0]} {pss}")


def kms(log):
    sessions = requests = operations = lines = 0
    with open(log, errors="replace") as f:
        for line in f:
            lines += 1
            if " - INFO - Starting session: " in line:
                sessions += 1
            elif " - INFO - Received request at time" in line:
                requests += 1
            elif " - INFO - Processing operation: " in line:
                operations += 1
    print(f"{sessions} {requests} {operations} {lines}")


def kms_ops(log, skip):
    counts = {}
    with open(log, errors="replace") as f:
        for i, line in enumerate(f):
            if i >= int(skip) and " - INFO - Processing operation: " in line:
                op = line.rsplit(":", 1)[1].strip()
                counts[op] = counts.get(op, 0) + 1
    print(", ".join(f"{op} {n}" for op, n in sorted(counts.items())) or "none")


def fio(path):
    # fio may print notes before the JSON document.
    text = open(path).read()
    doc = json.loads(text[text.index("{"):])
    total = 0
    for job in doc["jobs"]:
        for d in ("read", "write"):
            total += job[d]["bw_bytes"]
    print(f"{total / 1e6:.1f}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ttfb":
        ttfb(*args)
    elif cmd == "follow":
        follow(*args)
    elif cmd == "hold":
        hold(*args)
    elif cmd == "mem":
        mem(args)
    elif cmd == "kms":
        kms(*args)
    elif cmd == "kms-ops":
        kms_ops(*args)
    elif cmd == "fio":
        fio(*args)
    else:
        sys.exit(f"many_volumes.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
