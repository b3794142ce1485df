# SPDX-License-Identifier: BSD-3-Clause
# Memory an idle nbdkit keeps after large unaligned writes: CONNS connections each keep
# IN_FLIGHT unaligned writes of SIZE MiB in flight (all to the same region, so the memory
# plugin's own data stays one region's worth), then go idle; nbdkit's VmRSS is read from
# /proc while they are still connected. With and without the nbdcrypt filter.
#
# usage: /usr/bin/python3 perf/idle-rss.py [BUILDDIR [CONNS [IN_FLIGHT [SIZE_MIB [ROUNDS]]]]]
#        defaults: build 4 8 32 2
import os
import shutil
import subprocess
import sys
import tempfile
import time

import nbd

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vmrss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def run(build, tmp, with_filter, conns, in_flight, size, rounds):
    sock = os.path.join(tmp, "rss.sock")
    pidfile = os.path.join(tmp, "rss.pid")
    for p in (sock, pidfile):
        if os.path.exists(p):
            os.unlink(p)
    args = ["nbdkit", "-U", sock, "-P", pidfile, "-f", "--exit-with-parent"]
    if with_filter:
        key = os.path.join(tmp, "vol.key")
        with open(key, "wb") as f:
            f.write(os.urandom(64))
        args += ["--filter=" + os.path.join(build, "plugin", "nbdcrypt",
                                            "nbdkit-nbdcrypt-filter.so")]
    args += ["memory", str(4 * size << 20)]
    if with_filter:
        args.append("key-file=" + key)
    proc = subprocess.Popen(args)
    try:
        for _ in range(300):
            if os.path.exists(sock) and os.path.exists(pidfile) and os.path.getsize(pidfile):
                break
            time.sleep(0.05)
        pid = int(open(pidfile).read())
        uri = "nbd+unix:///?socket=" + sock
        hs = []
        for _ in range(conns):
            h = nbd.NBD()
            h.connect_uri(uri)
            hs.append(h)
        rss0 = vmrss_mib(pid)
        buf = nbd.Buffer.from_bytearray(bytearray(os.urandom(size << 20)))
        for r in range(rounds):
            cookies = [(h, h.aio_pwrite(buf, 1 + i * 4096)) for h in hs for i in range(in_flight)]
            for h, c in cookies:
                while not h.aio_command_completed(c):
                    h.poll(-1)
        peak = vmrss_mib(pid)
        time.sleep(1)
        idle = vmrss_mib(pid)
        for h in hs:
            h.shutdown()
        return rss0, peak, idle
    finally:
        proc.terminate()
        proc.wait()


def main():
    a = sys.argv[1:]
    build = os.path.abspath(a[0] if a else os.path.join(TOP, "build"))
    conns, in_flight, size, rounds = [int(x) for x in (a[1:] + ["4", "8", "32", "2"][len(a[1:]):])][:4]
    if not shutil.which("nbdkit"):
        sys.exit("nbdkit is not installed")
    print("%d connections x %d unaligned %d MiB writes in flight, %d rounds; nbdkit VmRSS "
          "(memory plugin, %d MiB export)" % (conns, in_flight, size, rounds, 4 * size))
    print("%-10s %10s %10s %14s" % ("stack", "connected", "after I/O", "idle 1 s later"))
    tmp = tempfile.mkdtemp(prefix="idle-rss.")
    try:
        for with_filter in (False, True):
            r = run(build, tmp, with_filter, conns, in_flight, size, rounds)
            print("%-10s %6.0f MiB %6.0f MiB %10.0f MiB" %
                  (("nbdcrypt" if with_filter else "plain",) + r))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
