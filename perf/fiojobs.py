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


def job_options(workload, conns, size, runtime, ramp):
    """fio options (name, value) for one workload with N connections."""
    rw, bs, qd, mix, _ = WORKLOADS[workload]
    opts = [("ioengine", "nbd"), ("rw", rw), ("bs", "%d" % bs),
            ("iodepth", "%d" % max(1, qd // conns)), ("numjobs", "%d" % conns),
            ("group_reporting", None), ("time_based", None), ("runtime", "%dms" % round(runtime * 1000)),
            # fio reads "1.5" (seconds) as 1: always give milliseconds.
            ("ramp_time", "%dms" % round(ramp * 1000)), ("norandommap", None), ("randrepeat", "0")]
    if mix is not None:
        opts.append(("rwmixread", "%d" % mix))
    return opts + size_options(workload, conns, size)


def size_options(workload, conns, size):
    """The part of the export each of the N connections works on."""
    if conns > 1 and WORKLOADS[workload][0] in ("read", "write"):
        # Each connection streams through its own part, as N sequential readers would.
        part = (size // conns) & ~((1 << 20) - 1)
        return [("size", "%d" % part), ("offset_increment", "%d" % part)]
    return [("size", "%d" % size)]


def fio_argv(workload, conns, uri, size, runtime, ramp, out):
    argv = ["fio", "--name=" + workload, "--output-format=json", "--output=" + out]
    for k, v in job_options(workload, conns, size, runtime, ramp):
        argv.append("--%s" % k if v is None else "--%s=%s" % (k, v))
    # An engine option is only known once --ioengine has been seen.
    return argv + ["--uri=" + uri]


def _fio(argv, out, timeout, cwd=None):
    if os.path.exists(out):
        os.unlink(out)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None, "fio timed out after %ds" % timeout
    try:
        with open(out) as f:
            text = f.read()
        # fio's nbd engine prints "fio: connected to NBD server" lines; skip to the JSON.
        return json.loads(text[text.index("{"):]), None
    except (OSError, ValueError) as e:
        return None, "fio exit %d, no JSON (%s): %s" % (p.returncode, e,
                                                        (p.stderr or p.stdout)[-300:])


def run(workload, conns, uri, size, runtime, ramp, out, timeout, wrap=()):
    """Run one fio job (under the command WRAP, e.g. perf stat ... --, if given); return a
    dict of numbers, or {'error': ...}."""
    data, err = _fio(list(wrap) + fio_argv(workload, conns, uri, size, runtime, ramp, out),
                     out, timeout)
    if err:
        return {"error": err}
    try:
        return parse(data["jobs"][0])
    except (KeyError, IndexError) as e:
        return {"error": "cannot parse fio output: %s" % e}


def run_sequence(workload, conns, targets, size, runtime, ramp, out, prerun=None,
                 postrun=None):
    """One fio process running the same job against each (name, uri, size) in turn (stonewall):
    the stacks run back to back and fio's start-up cost is paid once. PRERUN, a shell script,
    runs before each job (fio's exec_prerun: before the job's clock starts; with numjobs > 1
    once per clone, so it must be idempotent); POSTRUN likewise after each job. Returns
    name -> dict."""
    lines = ["[global]"]
    for k, v in job_options(workload, conns, size, runtime, ramp):
        lines.append(k if v is None else "%s=%s" % (k, v))
    if prerun:
        lines.append("exec_prerun=/bin/sh " + prerun)
    if postrun:
        lines.append("exec_postrun=/bin/sh " + postrun)
    for name, uri, tsize in targets:
        lines += ["", "[%s]" % name, "uri=" + uri, "stonewall"]
        if tsize != size:
            lines += ["%s=%s" % kv for kv in size_options(workload, conns, tsize)]
    jobfile = out[:-5] + ".fio"
    with open(jobfile, "w") as f:
        f.write("\n".join(lines) + "\n")
    timeout = 120 + 3 * len(targets) * (runtime + ramp)
    # cwd: fio saves the prerun's output as JOBNAME.prerun.txt in its working directory.
    data, err = _fio(["fio", jobfile, "--output-format=json", "--output=" + out], out,
                     timeout, cwd=os.path.dirname(out))
    res = {name: {"error": err or "no result"} for name, _, _ in targets}
    if data:
        for j in data.get("jobs", []):
            if j.get("jobname") in res:
                try:
                    res[j["jobname"]] = parse(j)
                except KeyError as e:
                    res[j["jobname"]] = {"error": "cannot parse fio output: %s" % e}
    return res


def parse(j):
    if j.get("error"):
        return {"error": "fio job error %d" % j["error"]}
    r, w = j["read"], j["write"]
    res = {
        "read_bw": r["bw_bytes"], "read_iops": r["iops"],
        "write_bw": w["bw_bytes"], "write_iops": w["iops"],
        "bw": r["bw_bytes"] + w["bw_bytes"], "iops": r["iops"] + w["iops"],
        "ios": r.get("total_ios", 0) + w.get("total_ios", 0),
        "fio_usr_cpu": j["usr_cpu"], "fio_sys_cpu": j["sys_cpu"],
        # usr/sys are percentages of the jobs' run time (summed over the group's jobs).
        "fio_cpu_s": (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j.get("job_runtime", 0) / 1000.0,
    }
    for name, d in (("read", r), ("write", w)):
        clat = d.get("clat_ns", {})
        if d["io_bytes"] and clat.get("percentile"):
            res[name + "_clat_p50_us"] = clat["percentile"].get("50.000000", 0) / 1000.0
            res[name + "_clat_p99_us"] = clat["percentile"].get("99.000000", 0) / 1000.0
    if res["bw"] == 0:
        res["error"] = "no I/O completed"
    return res
