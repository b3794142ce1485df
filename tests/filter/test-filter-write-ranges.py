# SPDX-License-Identifier: BSD-3-Clause
# Writes wait only for writes that share a sector. The plugin below (slow-sector-plugin.sh)
# returns its read of sector 12 seconds after taking it, so that client A's unaligned write to
# [10 S + 100, 12 S + 100) - a read-modify-write of sectors 10 and 12 - holds stale copies of
# both for seconds. While it runs:
#  - client B's aligned writes to other sectors must complete (a lock over the whole volume
#    made them wait for A);
#  - client C's aligned write to A's last sector and client Z's write-zeroes of A's first
#    sector must not land inside A's read-modify-write: each sector must end as one serial
#    order of the two (C then A, or A then C), never with A's stale copy of the bytes C or Z
#    replaced.
# Checked on the backing file, decrypted by an independent XTS (python3-cryptography). No
# timing threshold: a slow machine can only make B look late if it stalls B for the whole
# read-modify-write (seconds), and the content checks hold whatever the timing.
#
# usage: test-filter-write-ranges.py URI DISK KEYFILE SECTOR_SIZE
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtertest import Oracle, check, compare, connect, read_file  # noqa: E402


def main():
    uri, disk, keyfile, S = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ha, hb, hc, hz = (connect(uri) for _ in range(4))
    size = hb.get_size()
    oracle = Oracle(read_file(keyfile), S)
    before = oracle.decrypt(0, read_file(disk, size))

    k = 10                                  # A: [k*S + 100, (k+2)*S + 100)
    a_off, a_data = k * S + 100, os.urandom(2 * S)
    c_data = os.urandom(S)                  # C: sector k+2, A's last (partial) sector
    b_first, b_count = size // S - 8, 8     # B: far from A
    b_data = [os.urandom(S) for _ in range(b_count)]
    done = {}

    def run(name, fn):
        fn()
        done[name] = time.monotonic()

    threads = [threading.Thread(target=run, args=("A", lambda: ha.pwrite(a_data, a_off)))]
    threads[0].start()
    time.sleep(0.5)                         # A now holds copies of sectors 10 and 12
    threads += [threading.Thread(target=run, args=("C", lambda: hc.pwrite(c_data, (k + 2) * S))),
                threading.Thread(target=run, args=("Z", lambda: hz.zero(S, k * S)))]
    for t in threads[1:]:
        t.start()
    for i in range(b_count):
        hb.pwrite(b_data[i], (b_first + i) * S)
    a_running = "A" not in done
    for t in threads:
        t.join()
    print("B's %d aligned writes %s A's read-modify-write" %
          (b_count, "finished during" if a_running else "waited for"))
    check(a_running, "client B's aligned writes to sectors %d..%d waited for client A's "
          "read-modify-write of sectors %d..%d" % (b_first, b_first + b_count - 1, k, k + 2))

    got = oracle.decrypt(0, read_file(disk, size))
    sector = lambda d, s: bytes(d[s * S:(s + 1) * S])  # noqa: E731
    zero_then_a = bytes(100) + a_data[:S - 100]
    check(sector(got, k) in (bytes(S), zero_then_a),
          "sector %d (A's first, zeroed by Z meanwhile) is neither Z after A nor A after Z: "
          "A wrote back a stale copy" % k)
    compare(sector(got, k + 1), a_data[S - 100:2 * S - 100], "sector %d (A only)" % (k + 1))
    c_then_a = a_data[2 * S - 100:] + c_data[100:]
    check(sector(got, k + 2) in (c_data, c_then_a),
          "sector %d (A's last, written whole by C meanwhile) is neither C after A nor A "
          "after C: A wrote back a stale copy" % (k + 2))
    for i in range(b_count):
        compare(sector(got, b_first + i), b_data[i], "sector %d (B)" % (b_first + i))
    untouched = set(range(size // S)) - {k, k + 1, k + 2} - set(range(b_first, size // S))
    for s in sorted(untouched):
        compare(sector(got, s), sector(before, s), "sector %d (nobody wrote it)" % s)
    print("sector size %d: every sector holds one serial order of its writes" % S)
    for h in (ha, hb, hc, hz):
        h.shutdown()


if __name__ == "__main__":
    main()
