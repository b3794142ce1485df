# SPDX-License-Identifier: BSD-3-Clause
"""fio workloads of the perf suite and how one run is executed and parsed.

fio's nbd engine opens one NBD connection per job, so N connections are N jobs sharing the
queue depth (iodepth = QD / N), reported as one group.
"""

import json
import os
import subprocess

# name: (fio rw, block size, total queue depth, read % for mixed, label)
WORKLOADS = {
    "seqread": ("read", 1 << 20, 16, None, "seq read 1 MiB QD16"),
    "seqwrite": ("write", 1 << 20, 16, None, "seq write 1 MiB QD16"),
    "randread": ("randread", 4096, 32, None, "rand read 4 KiB QD32"),
    "randwrite": ("randwrite", 4096, 32, None, "rand write 4 KiB QD32"),
    "randrw": ("randrw", 4096, 32, 70, "mixed 70/30 4 KiB QD32"),
}


def is_seq(workload):
    return WORKLOADS[workload][1] >= 1 << 20


def fio_argv(workload, conns, uri, size, runtime, ramp, out):
    rw, bs, qd, mix, _ = WORKLOADS[workload]
    argv = ["fio", "--name=" + workload, "--ioengine=nbd", "--uri=" + uri,
            "--rw=" + rw, "--bs=%d" % bs, "--iodepth=%d" % max(1, qd // conns),
            "--numjobs=%d" % conns, "--group_reporting",
            "--time_based", "--runtime=%g" % runtime, "--ramp_time=%g" % ramp,
            "--norandommap", "--randrepeat=0",
            "--output-format=json", "--output=" + out]
    if mix is not None:
        argv.append("--rwmixread=%d" % mix)
    if conns > 1 and rw in ("read", "write"):
        # Each connection streams through its own quarter, as N sequential readers would.
        part = (size // conns) & ~((1 << 20) - 1)
        argv += ["--size=%d" % part, "--offset_increment=%d" % part]
    else:
        argv.append("--size=%d" % size)
    return argv


def run(workload, conns, uri, size, runtime, ramp, out, timeout):
    """Run one fio job; return a dict of numbers, or {'error': ...}."""
    argv = fio_argv(workload, conns, uri, size, runtime, ramp, out)
    if os.path.exists(out):
        os.unlink(out)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "fio timed out after %ds" % timeout}
    if p.returncode != 0:
        return {"error": "fio exit %d: %s" % (p.returncode, (p.stderr or p.stdout)[-300:])}
    try:
        with open(out) as f:
            text = f.read()
        # fio's nbd engine prints "fio: connected to NBD server" lines; skip to the JSON.
        data = json.loads(text[text.index("{"):])
        return parse(data)
    except (OSError, ValueError, KeyError, IndexError) as e:
        return {"error": "cannot parse fio output: %s" % e}


def parse(data):
    j = data["jobs"][0]
    if j.get("error"):
        return {"error": "fio job error %d" % j["error"]}
    r, w = j["read"], j["write"]
    res = {
        "read_bw": r["bw_bytes"], "read_iops": r["iops"],
        "write_bw": w["bw_bytes"], "write_iops": w["iops"],
        "bw": r["bw_bytes"] + w["bw_bytes"], "iops": r["iops"] + w["iops"],
        "fio_usr_cpu": j["usr_cpu"], "fio_sys_cpu": j["sys_cpu"],
    }
    for name, d in (("read", r), ("write", w)):
        clat = d.get("clat_ns", {})
        if d["io_bytes"] and clat.get("percentile"):
            res[name + "_clat_p50_us"] = clat["percentile"].get("50.000000", 0) / 1000.0
            res[name + "_clat_p99_us"] = clat["percentile"].get("99.000000", 0) / 1000.0
    if res["bw"] == 0:
        res["error"] = "no I/O completed"
    return res
