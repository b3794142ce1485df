# SPDX-License-Identifier: BSD-3-Clause
"""nbdcrypt performance suite: fio (nbd engine) against nbdkit stacks, side by side in one run.

Run through perf/run.sh. Stacks = backend {file, file cache=none, uring, uring direct} x
{plain, nbdcrypt, luks}; workloads and connection counts from fiojobs.py. Each repetition runs
every stack back to back for one workload before moving on, the stacks a target compares next
to each other in alternating order (AB BA ..., see GROUPS), so the noise of this shared machine
falls on both sides of a ratio alike. Before every job the images are written back (no
writeback from one stack's writes lands in another's measurement) and the direct/cache=none
image is dropped from the page cache (stacks.settle_command).
Writes results.json, results.md and results.png to --out.
"""

import argparse
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fiojobs  # noqa: E402
import fsbench  # noqa: E402
import report  # noqa: E402
import stacks as st  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_STACKS = ["file/plain", "file/nbdcrypt", "file/luks",
                  "file-nocache/plain", "file-nocache/nbdcrypt",
                  "uring/plain", "uring/nbdcrypt",
                  "uring-direct/plain", "uring-direct/nbdcrypt", "file-aa/plain"]
QUICK_STACKS = DEFAULT_STACKS
# Stacks that a target compares run next to each other in every repetition, the pair's order
# alternating (A B, then B A, ...) and the groups' order rotating, so slow drifts and bursts of
# background load fall on both sides of a ratio alike.
# The file stack sits between uring and its A/A twin, so both are its neighbours.
GROUPS = [("uring/plain", "file/plain", "file-aa/plain"),
          ("uring/nbdcrypt", "file/nbdcrypt", "file-aa/nbdcrypt"), ("file/luks",),
          ("file-nocache/plain", "uring-direct/plain"),
          ("file-nocache/nbdcrypt", "uring-direct/nbdcrypt")]
FS_STACKS = ["file/plain", "file/nbdcrypt", "file/luks", "uring-direct/nbdcrypt"]
QUICK_FS_STACKS = ["file/plain", "file/nbdcrypt"]

SYSCALLS = ["read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg", "pread64", "pwrite64",
            "preadv", "pwritev", "preadv2", "pwritev2", "futex", "io_uring_enter", "fdatasync", "fsync", "fadvise64",
            "poll", "ppoll"]


def log(msg):
    print(msg, flush=True)


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad size %r (e.g. 1G, 512M)" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="perf/run.sh", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repetition, 0.75 s jobs, 256 MiB image (2-3 minutes)")
    p.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    p.add_argument("--runtime", type=float, help="seconds per fio job (default 1.5, quick 0.75)")
    p.add_argument("--ramp", type=float, help="fio ramp seconds (default 0.3)")
    p.add_argument("--size", type=parse_size, help="test image size (default 1G, quick 256M)")
    p.add_argument("--uncached-size", type=parse_size,
                   help="image size of the direct and cache=none stacks: more than a job "
                        "reads, so no job reads anything twice (default 8G, quick 2G)")
    p.add_argument("--out", default=os.path.join(TOP, "perf", "results"),
                   help="output directory (default perf/results)")
    p.add_argument("--work", help="scratch directory for images (default OUT/tmp)")
    p.add_argument("--build", default=os.path.join(TOP, "build"),
                   help="meson build directory (default build/)")
    p.add_argument("--no-build", action="store_true", help="do not run meson/ninja")
    p.add_argument("--stacks", help="comma list, e.g. file/plain,file/nbdcrypt (default: all)")
    p.add_argument("--workloads", help="comma list of " + ",".join(fiojobs.WORKLOADS))
    p.add_argument("--conns", default="1,4", help="NBD connections per job (default 1,4)")
    p.add_argument("--no-fs", action="store_true", help="skip the ext4 filesystem workload")
    p.add_argument("--no-profile", action="store_true",
                   help="skip perf stat/record of stacks that miss a target")
    p.add_argument("--profile-pairs", metavar="A:B,...",
                   help="profile every cell of these stack pairs (e.g. uring/plain:file/plain) "
                        "instead of the cells of missed targets")
    p.add_argument("--no-micro", action="store_true",
                   help="skip the micro-benchmarks (perf/engine-bench, perf/kmip-codec-bench)")
    p.add_argument("--note", default="", help="a line of context for results.md")
    p.add_argument("--report-only", action="store_true",
                   help="re-render results.md/png from OUT/results.json")
    a = p.parse_args(argv)
    q = a.quick
    a.reps = a.reps or (1 if q else 3)
    a.runtime = a.runtime or (0.75 if q else 1.5)
    a.ramp = a.ramp if a.ramp is not None else 0.3
    a.size = a.size or ((256 if q else 1024) << 20)
    a.uncached_size = a.uncached_size or ((2048 if q else 8192) << 20)
    a.stacks = a.stacks.split(",") if a.stacks else (QUICK_STACKS if q else DEFAULT_STACKS)
    a.workloads = a.workloads.split(",") if a.workloads else list(fiojobs.WORKLOADS)
    a.conns = [int(c) for c in a.conns.split(",")]
    a.profile_pairs = [tuple(x.split(":")) for x in a.profile_pairs.split(",")] \
        if a.profile_pairs else []
    for pair in a.profile_pairs:
        if len(pair) != 2 or any(x not in a.stacks for x in pair):
            p.error("--profile-pairs: %r is not two of --stacks joined by ':'" % ":".join(pair))
    for w in a.workloads:
        if w not in fiojobs.WORKLOADS:
            p.error("unknown workload %r" % w)
    a.out = os.path.abspath(a.out)
    a.work = os.path.abspath(a.work or os.path.join(a.out, "tmp"))
    a.build = os.path.abspath(a.build)
    return a


def build_tree(build):
    if not os.path.exists(os.path.join(build, "build.ninja")):
        log("perf: meson setup %s" % build)
        subprocess.run(["meson", "setup", build, TOP], check=True, stdout=subprocess.DEVNULL)
    p = subprocess.run(["ninja", "-C", build, "-j2"], capture_output=True, text=True)
    if p.returncode != 0:
        # Someone's half-finished file must not stop the suite: measure what did build.
        log("perf: WARNING: ninja failed; measuring what is built. Last lines:\n  " +
            "\n  ".join(p.stdout.strip().splitlines()[-5:]))
    for so in ("plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so", "plugin/uring/nbdkit-nbdcrypt-uring-plugin.so"):
        path = os.path.join(build, so)
        if os.path.exists(path):
            ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
            if "libasan" in ldd or "libubsan" in ldd:
                log("perf: WARNING: %s is built with sanitizers; numbers are meaningless" % so)


def _cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / (1 << 20)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "cpu_flags_aes": "aes" in open("/proc/cpuinfo").read().split(),
        "mem_gib": round(mem, 1),
        "kernel": platform.release(),
        "os": _cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "fio": _cmd(["fio", "--version"]),
        "nbdkit": _cmd(["nbdkit", "--version"]).replace("nbdkit ", ""),
        "qemu_img": _version(_cmd(["qemu-img", "--version"])),
        "openssl": " ".join(_cmd(["openssl", "version"]).split()[:2]),
        "liburing": _cmd(["pkg-config", "--modversion", "liburing"]),
        "gcc": _cmd(["gcc", "-dumpfullversion"]),
        "git": _cmd(["git", "-C", TOP, "describe", "--always", "--dirty"]),
    }


def _version(text):
    m = re.search(r"version (\S+)", text)
    return m.group(1) if m else "?"


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def stack_order(avail, rep):
    """The order of the stacks in repetition REP (see GROUPS)."""
    byid = {s.id: s for s in avail}
    groups, placed = [], set()
    for g in GROUPS:
        members = [byid[i] for i in g if i in byid]
        if members:
            groups.append(members)
            placed.update(s.id for s in members)
    groups += [[s] for s in avail if s.id not in placed]
    k = rep % len(groups)
    groups = groups[k:] + groups[:k]
    return [s for g in groups for s in (g if rep % 2 == 0 else g[::-1])]


def run_matrix(args, stacks, images):
    avail = [s for s in stacks if s.available]
    cells = [(wl, c) for wl in args.workloads for c in args.conns]
    total = len(cells) * len(avail) * args.reps
    log("perf: %d stacks x %d workloads x %s conns x %d reps = %d fio jobs of %g+%g s "
        "(about %.0f s)" % (len(avail), len(args.workloads), args.conns, args.reps, total,
                            args.runtime, args.ramp,
                            total * (args.runtime + args.ramp + 0.15) +
                            len(cells) * args.reps * 0.4))
    fiodir = os.path.join(args.work, "fio")
    os.makedirs(fiodir, exist_ok=True)
    settle = os.path.join(fiodir, "settle.sh")
    post = devlog = None
    # How much of what the client read came from the disk, not the page cache: the disk's
    # sectors-read counter before and after every job.
    stat = st.device_stat(images.raw)
    with open(settle, "w") as f:
        f.write("# run by fio before every job (exec_prerun)\n" + st.settle_command(images) +
                "\n")
        if stat:
            devlog = os.path.join(fiodir, "device.log")
            f.write(st.device_mark_command(stat, "pre", devlog) + "\n")
    if stat:
        post = os.path.join(fiodir, "post.sh")
        with open(post, "w") as f:
            f.write("# run by fio after every job (exec_postrun)\n" +
                    st.device_mark_command(stat, "post", devlog) + "\n")
    log("perf: before every job: " + st.settle_command(images))
    images.warm()
    runs = []
    n = 0
    t0 = time.time()
    for rep in range(args.reps):
        order = stack_order(avail, rep)
        for wl, conns in cells:
            # One fio process runs the stacks back to back (A B C ...) on this cell.
            out = os.path.join(fiodir, "%s-%d-%d.json" % (wl, conns, rep))
            l1 = load1()
            cpu0 = {s.id: s.cpu_seconds() for s in order}
            busy0, kids0, w0 = busy_seconds(), children_cpu(), time.monotonic()
            if devlog and os.path.exists(devlog):
                os.unlink(devlog)
            got = fiojobs.run_sequence(wl, conns, [(s.id.replace("/", "_"), s.uri,
                                                    images.size_for(s)) for s in order],
                                       images.size, args.runtime, args.ramp, out,
                                       prerun=settle, postrun=post)
            dev = st.device_reads(devlog) if devlog else []
            wall = time.monotonic() - w0
            fio_cpu = children_cpu() - kids0
            # An idle nbdkit costs nothing, so each server's CPU over the whole sequence is
            # its own job's.
            nbdkit_cpu = {s.id: s.cpu_seconds() - cpu0[s.id] for s in order}
            # What the rest of the machine (the other jobs on it) used meanwhile.
            foreign = max(0.0, busy_seconds() - busy0 - sum(nbdkit_cpu.values()) - fio_cpu)
            for i, s in enumerate(order):
                n += 1
                r = got[s.id.replace("/", "_")]
                if len(dev) == len(order) and dev[i] is not None:
                    r["dev_read_bw"] = dev[i]
                r.update({"stack": s.id, "workload": wl, "conns": conns, "rep": rep,
                          "load1": l1, "seconds": args.runtime,
                          "foreign_cpu_frac": foreign / (wall * os.cpu_count()),
                          # nbdkit CPU includes the ramp: charge it to the bytes pro rata.
                          "nbdkit_cpu_s": nbdkit_cpu[s.id] * args.runtime / (args.runtime +
                                                                             args.ramp)})
                runs.append(r)
                if "error" in r:
                    log("perf: [%d/%d] %-24s %-9s %d conn: ERROR %s" %
                        (n, total, s.id, wl, conns, r["error"]))
                else:
                    log("perf: [%d/%d] %-24s %-9s %d conn: %8.1f MiB/s %9.0f IOPS  "
                        "(others %2.0f%% CPU, %.0fs)" % (
                            n, total, s.id, wl, conns, r["bw"] / 2**20, r["iops"],
                            100 * r["foreign_cpu_frac"], time.time() - t0))
            for s in order:
                if s.proc and s.proc.poll() is not None:
                    log("perf: %s died (see %s); restarting" % (s.id, s.log))
                    st.stop(s)
                    st.start(s, images, args.build, os.path.dirname(s.sock))
    return runs


def profile_cells(args, stacks, res):
    """(stack, workload, conns) to profile: every cell of --profile-pairs, or else the two
    stacks of the worst missed targets."""
    byid = {s.id: s for s in stacks if s.available}
    cells = []
    if args.profile_pairs:
        for wl in args.workloads:
            for conns in args.conns:
                for pair in args.profile_pairs:
                    cells += [(sid, wl, conns) for sid in pair
                              if sid in byid and (sid, wl, conns) not in cells]
        return cells
    missed = sorted((t for t in res["targets"] if t["met"] is False),
                    key=lambda t: t["ratio"] / t["want"])
    for t in missed:
        for sid in (t["a"], t["b"]):
            c = (sid, t["workload"], t["conns"])
            if c not in cells and sid in byid:
                cells.append(c)
        if len(cells) >= (2 if args.quick else 6):
            break
    return cells[:2 if args.quick else 6]


def _perf_stat_counts(path):
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 3 or line.startswith("#"):
                    continue
                try:
                    counts[parts[2].replace("syscalls:sys_enter_", "")] = float(parts[0])
                except ValueError:
                    continue
    except OSError:
        pass
    return counts


def _perf_report(data, sort, limit):
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--percent-limit", str(limit), "--sort", sort, "-g", "none"],
                         capture_output=True, text=True)
    return [re.sub(r"\s+", " ", re.sub(r"(\s+-)+\s*$", "", l.strip()))
            for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]


def profile(args, stacks, images, res):
    """Re-run cells with nbdkit under perf stat (CPU, context switches, syscalls) and perf
    record. fio runs without ramp inside perf stat's window, so every count divides by the
    I/Os fio completed."""
    if not _cmd(["sh", "-c", "command -v perf"]):
        log("perf: 'perf' (linux-perf) not installed: no profiles")
        return []
    byid = {s.id: s for s in stacks if s.available}
    out = []
    pdir = os.path.join(args.work, "profile")
    os.makedirs(pdir, exist_ok=True)
    events = ["task-clock", "context-switches", "raw_syscalls:sys_enter"] + \
        ["syscalls:sys_enter_" + c for c in SYSCALLS]
    for sid, wl, conns in profile_cells(args, stacks, res):
        s = byid[sid]
        data = os.path.join(pdir, "%s-%s-%d.data" % (sid.replace("/", "_"), wl, conns))
        stat_out = data + ".stat"
        pid = str(s.proc.pid)
        wrap = ["perf", "record", "-q", "-F", "499", "-g", "-o", data, "-p", pid, "--",
                "perf", "stat", "-x", ",", "-e", ",".join(events), "-p", pid, "-o", stat_out,
                "--"]
        subprocess.run(["/bin/sh", "-c", st.settle_command(images)])
        r = fiojobs.run(wl, conns, s.uri, images.size_for(s), args.runtime, 0,
                        os.path.join(pdir, "fio.json"), timeout=120, wrap=wrap)
        if "error" in r:
            log("perf: profile of %s %s: fio failed: %s" % (sid, wl, r["error"]))
            continue
        counts = _perf_stat_counts(stat_out)
        by_dso = _perf_report(data, "dso", 1)
        top = _perf_report(data, "dso,symbol", 2)
        ios = r.get("ios") or 1
        lines = ["fio under profiling: %.1f MiB/s, %.0f IOPS, %d I/Os" %
                 (r["bw"] / 2**20, r["iops"], ios)]
        for name, val in counts.items():
            if val:
                lines.append("  %-28s %12.0f%s" % (
                    name, val, " ms" if name == "task-clock" else " = %.2f per I/O" %
                    (val / ios)))
        lines.append("perf record -F 499 -g on nbdkit, self time by object: " +
                     "; ".join(by_dso[:6]))
        lines.append("by symbol (>= 2%):")
        lines += ["  " + l for l in top[:18]]
        out.append({"stack": sid, "workload": wl, "conns": conns, "mib_s": r["bw"] / 2**20,
                    "iops": r["iops"], "ios": ios, "counts": counts, "by_dso": by_dso[:6],
                    "top": top[:18], "text": "\n".join(lines)})
        log("perf: profiled %s %s %d conn: %.0f us CPU, %.2f syscalls per I/O" % (
            sid, wl, conns, counts.get("task-clock", 0) * 1000 / ios,
            counts.get("raw_syscalls:sys_enter", 0) / ios))
    return out


def micro_benches(args):
    """Other helpers' micro-benchmarks, if built: the XTS engine against `openssl speed`, the
    KMIP TTLV codec against PyKMIP, KMIP key fetch latency. Output goes into the report as is."""
    q = args.quick
    # Short timings: the default engine-bench (0.5 s x 3 per row) alone takes ~2 minutes here.
    wanted = [("engine-bench", ["-t", "0.1", "-r", "1"] if q else ["-t", "0.2", "-r", "3"]),
              ("kmip-codec-bench", ["--seconds", "0.3" if q else "1"]),
              # Key fetch latency against a loopback pykmip-server (its script starts one).
              ("kmip-fetch-bench", None)]
    out = []
    for name, extra in wanted:
        exe = os.path.join(args.build, "perf", name)
        if not os.path.exists(exe):
            continue
        argv = [exe] + extra if extra is not None else \
            [os.path.join(TOP, "perf", name + ".sh"), args.build, "30" if q else "100"]
        cmd = " ".join(shlex.quote(os.path.relpath(a, TOP) if a.startswith("/") else a)
                       for a in argv)
        log("perf: running " + cmd)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=TOP)
            out.append({"name": name, "cmd": cmd, "rc": p.returncode,
                        "output": p.stdout + p.stderr})
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append({"name": name, "cmd": cmd, "rc": -1, "output": str(e)})
    return out


def write_outputs(res, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(report.markdown(res))
    png = report.chart(res, out)
    log("perf: wrote %s/results.{json,md}%s" % (out, ", results.png" if png else ""))


def main(argv):
    args = parse_args(argv)
    if args.report_only:
        with open(os.path.join(args.out, "results.json")) as f:
            write_outputs(json.load(f), args.out)
        return 0
    t0 = time.time()
    if not args.no_build:
        build_tree(args.build)
    machine = machine_info()
    images = st.Images(args.work, args.size, log, uncached_size=args.uncached_size)
    images.prepare()
    bks = st.backends(args.build)
    rundir = os.path.join(args.work, "run")
    os.makedirs(rundir, exist_ok=True)
    stacks = []
    for sid in args.stacks:
        b, enc = sid.split("/")
        if b not in bks or enc not in ("plain", "nbdcrypt", "luks"):
            log("perf: unknown stack %s" % sid)
            return 2
        stacks.append(st.Stack(bks[b], enc))
    try:
        for s in stacks:
            if st.start(s, images, args.build, rundir):
                log("perf: stack %-24s ready: %s" % (s.id, " ".join(s.argv[6:])))
            else:
                log("perf: stack %-24s UNAVAILABLE: %s" % (s.id, s.reason))
        runs = run_matrix(args, stacks, images)
        res = {"config": {"reps": args.reps, "runtime": args.runtime, "ramp": args.ramp,
                          "size": args.size, "uncached_size": args.uncached_size,
                          "workloads": args.workloads,
                          "conns": args.conns, "profile_pairs": args.profile_pairs,
                          "quick": args.quick, "note": args.note,
                          "cmdline": "".join(" " + shlex.quote(a) for a in argv)},
               "machine": machine,
               "stacks": [{"id": s.id, "label": s.label, "available": s.available,
                           "reason": s.reason, "argv": s.argv} for s in stacks],
               "runs": runs}
        summ = report.summarize(runs)
        res["summary"] = [[list(k), v] for k, v in summ.items()]
        res["targets"] = report.targets(summ, runs, args.conns)
        if not args.no_profile:
            res["profile"] = profile(args, stacks, images, res)
    finally:
        for s in stacks:
            st.stop(s)
    if not args.no_fs:
        fs_ids = [i for i in (QUICK_FS_STACKS if args.quick else FS_STACKS)]
        fs_images = st.Images(args.work, (256 if args.quick else 768) << 20, log)
        fs_images.prepare()
        res["fs"] = fsbench.run(fs_ids, bks, fs_images, args.build, args.work, args.quick,
                                1 if args.quick else 2, 2 if args.quick else 4, log)
    if not args.no_micro:
        res["micro"] = micro_benches(args)
    loads = [r["load1"] for r in runs]
    if loads:
        machine["load_median"] = statistics.median(loads)
        machine["load_max"] = max(loads)
        foreign = sorted(r["foreign_cpu_frac"] for r in runs)
        machine["foreign_cpu_median"] = statistics.median(foreign)
        machine["foreign_cpu_max"] = foreign[-1]
    machine["suite_seconds"] = round(time.time() - t0)
    write_outputs(res, args.out)
    log("perf: done in %d s" % machine["suite_seconds"])
    for t in res["targets"]:
        if t["ratio"] is not None:
            log("perf: target issue %d %-40s %-9s %d conn: %.2f (want >= %.2f) %s" % (
                t["issue"], t["what"], t["workload"], t["conns"], t["ratio"], t["want"],
                "met" if t["met"] else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
