#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# conn-time.py URI N: open N NBD connections one after another (connect, handshake, read one
# sector, close); print the median and max setup time in ms. Fails if any connection fails.
import statistics, sys, time
import nbd

uri, n = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(n):
    t0 = time.perf_counter()
    h = nbd.NBD()
    h.connect_uri(uri)
    h.pread(4096, 0)
    times.append((time.perf_counter() - t0) * 1000)
    h.shutdown()
    del h
print(f"{n} connections: median {statistics.median(times):.2f} ms, max {max(times):.2f} ms")
