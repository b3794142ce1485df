#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# conn-holder.py URI DIR: open one NBD connection and write a pattern, touch DIR/ready, wait
# for DIR/go (up to 120 s), then write and read back on the SAME connection: proves that an
# open connection keeps working through a KMS outage and a KEK revocation.
import os, sys, time
import nbd

uri, d = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.connect_uri(uri)
a = os.urandom(65536)
h.pwrite(a, 0)
h.flush()
open(os.path.join(d, "ready"), "w").close()
for _ in range(1200):
    if os.path.exists(os.path.join(d, "go")):
        break
    time.sleep(0.1)
else:
    sys.exit("conn-holder: never told to go")
b = os.urandom(65536)
h.pwrite(b, 1 << 20)
h.flush()
assert h.pread(65536, 0) == a, "first write lost"
assert h.pread(65536, 1 << 20) == b, "second write lost"
h.shutdown()
print("conn-holder: the open connection kept working")
