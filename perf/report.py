# SPDX-License-Identifier: BSD-3-Clause
"""Turns the raw runs of the perf suite into medians, target checks, results.md and a chart."""

import os
import statistics
import subprocess
import tempfile

from fiojobs import WORKLOADS, is_seq

MIB = 1 << 20


def _key(r):
    return (r["stack"], r["workload"], r["conns"])


def summarize(runs):
    """(stack, workload, conns) -> median/min/max of MiB/s and IOPS over the repetitions."""
    groups = {}
    for r in runs:
        groups.setdefault(_key(r), []).append(r)
    out = {}
    for k, rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        s = {"n": len(ok), "errors": [r["error"] for r in rs if "error" in r]}
        if ok:
            for name, f in (("mib_s", lambda r: r["bw"] / MIB), ("iops", lambda r: r["iops"]),
                            ("cpu_s_per_gib", _cpu_per_gib),
                            ("fio_cpu_s_per_gib", _fio_cpu_per_gib)):
                s[name] = _spread([f(r) for r in ok])
            dev = [r["dev_read_bw"] / r["read_bw"] for r in ok
                   if "dev_read_bw" in r and r.get("read_bw")]
            if dev:
                s["dev_read_frac"] = _spread(dev)
        out[k] = s
    return out


def _spread(vals):
    vals = sorted(vals)
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1]}


def _cpu_per_gib(r):
    moved = r["bw"] * r.get("seconds", 0)
    return r.get("nbdkit_cpu_s", 0) / (moved / (1 << 30)) if moved else 0.0


def _fio_cpu_per_gib(r):
    moved = r["bw"] * r.get("seconds", 0)
    return r.get("fio_cpu_s", 0) / (moved / (1 << 30)) if moved else 0.0


def metric(workload):
    return "mib_s" if is_seq(workload) else "iops"


def _paired(runs, a, b, workload, conns):
    """Per-repetition ratios a/b: the stacks ran back to back, so this cancels slow drifts."""
    by_rep = {}
    m = "bw"
    for r in runs:
        if r["workload"] == workload and r["conns"] == conns and "error" not in r:
            by_rep.setdefault(r["rep"], {})[r["stack"]] = r[m]
    ratios = [d[a] / d[b] for d in by_rep.values() if a in d and b in d and d[b]]
    return sorted(ratios)


def ratio(summary, runs, a, b, workload, conns):
    sa, sb = summary.get((a, workload, conns)), summary.get((b, workload, conns))
    # Throughput ratio = IOPS ratio (same block size); fio's bytes count is the more exact
    # of its two counters at the ramp boundary, so ratios always use it.
    m = "mib_s"
    if not sa or not sb or m not in sa or m not in sb or not sb[m]["median"]:
        return None
    p = _paired(runs, a, b, workload, conns)
    return {"ratio": sa[m]["median"] / sb[m]["median"],
            "paired_min": p[0] if p else None, "paired_max": p[-1] if p else None}


def targets(summary, runs, conns_list):
    """Every target of issues 2 and 5 that the measured stacks allow to check."""
    t = []

    def add(issue, what, a, b, wl, conns, want):
        r = ratio(summary, runs, a, b, wl, conns)
        t.append({"issue": issue, "what": what, "a": a, "b": b, "workload": wl,
                  "conns": conns, "want": want,
                  "ratio": r["ratio"] if r else None,
                  "paired_min": r["paired_min"] if r else None,
                  "paired_max": r["paired_max"] if r else None,
                  "met": (r["ratio"] >= want) if r else None})

    # Issue 2: the file plugin, one connection, as the issue's benchmark describes.
    for wl in ("seqread", "seqwrite"):
        add(2, "nbdcrypt / plain", "file/nbdcrypt", "file/plain", wl, 1, 0.85)
        add(2, "nbdcrypt / luks", "file/nbdcrypt", "file/luks", wl, 1,
            2.5 if wl == "seqread" else 3.0)
    for wl in ("randread", "randwrite"):
        add(2, "nbdcrypt / plain", "file/nbdcrypt", "file/plain", wl, 1, 0.95)
    # Issue 5: uring against the file plugin, buffered and direct; nbdcrypt over each.
    for conns in conns_list:
        for wl in WORKLOADS:
            add(5, "uring / file", "uring/plain", "file/plain", wl, conns, 1.0)
            add(5, "uring direct / file cache=none", "uring-direct/plain",
                "file-nocache/plain", wl, conns, 1.2 if wl == "randread" else 1.0)
            add(5, "nbdcrypt: uring / file", "uring/nbdcrypt", "file/nbdcrypt", wl, conns, 1.0)
            add(5, "nbdcrypt: uring direct / file cache=none", "uring-direct/nbdcrypt",
                "file-nocache/nbdcrypt", wl, conns, 1.0)
    return t


def _fmt(x, digits=0):
    if x is None:
        return "–"
    return ("%%.%df" % digits) % x


def _cell(s, m):
    if not s or m not in s:
        return "n/a"
    v = s[m]
    d = 0 if m == "iops" or v["median"] >= 100 else 1
    return "%s (%s–%s)" % (_fmt(v["median"], d), _fmt(v["min"], d), _fmt(v["max"], d))


def markdown(res):
    summary = {tuple(k): v for k, v in res["summary"]}
    runs = res["runs"]
    mi = res["machine"]
    cfg = res["config"]
    stacks = [s for s in res["stacks"] if s["available"]]
    L = []
    L.append("# nbdcrypt performance suite — results\n")
    L.append("Generated by `perf/run.sh%s` on %s." % (cfg["cmdline"], mi["date"]))
    L.append("")
    if cfg.get("note"):
        L.append(cfg["note"])
        L.append("")
    L.append("**Machine:** %s, %s cores, %s GiB RAM, Linux %s; %s, nbdkit %s, "
             "qemu-img %s, %s; git %s. Everything over Unix sockets on this machine; "
             "fio and nbdkit share the cores." %
             (mi["cpu_model"], mi["nproc"], mi["mem_gib"], mi["kernel"], mi["fio"],
              mi["nbdkit"], mi["qemu_img"], mi["openssl"], mi["git"]))
    L.append("")
    L.append("**Method:** %d repetitions × %g s per job (after %g s ramp), test image %d MiB "
             "(filled with random data); the stacks run back to back per workload in each "
             "repetition, the two stacks of each uring-vs-file comparison next to each other "
             "in alternating order (AB, BA, …; groups rotated each repetition), so background "
             "noise hits them alike. Before every job the images are fsynced (no writeback "
             "from an earlier write job lands in a measurement); the buffered stacks' image "
             "stays in the page cache, the direct/cache=none stacks use an image of their "
             "own (%s), dropped from the page cache before every job (so cache=none reads are "
             "not hits left by another stack); since cache=none keeps most of what it reads "
             "sequentially, that image is meant to be larger than a job reads: 'Read from the "
             "disk' checks it. Values: median (min–max). Ratios: ratio of medians, with the "
             "range of the per-repetition paired ratios in brackets. 1 or 4 NBD connections = "
             "fio numjobs 1 or 4 with the queue depth split between them." %
             (cfg["reps"], cfg["runtime"], cfg["ramp"], cfg["size"] >> 20,
              "%d MiB" % (cfg["uncached_size"] >> 20) if cfg.get("uncached_size")
              else "the same size"))
    L.append("")
    L.append("**Noise:** other processes on this machine used a median %.0f%% (max %.0f%%) of "
             "its %s CPUs during the fio jobs (from /proc/stat, minus fio and nbdkit); load "
             "average median %.1f, max %.1f. Compare ratios, not absolute numbers." %
             (100 * mi.get("foreign_cpu_median", 0), 100 * mi.get("foreign_cpu_max", 0),
              mi["nproc"], mi.get("load_median", 0), mi.get("load_max", 0)))
    L.append("")
    L.append("**Stacks** (nbdkit `-U SOCK -f -t 16` plus):\n")
    for s in stacks:
        L.append("- %s: `%s`" % (s["label"], " ".join(_short(a) for a in s["argv"][7:])))
    L.append("")
    missing = [s for s in res["stacks"] if not s["available"]]
    if missing:
        L.append("**Stacks not measured:** " + "; ".join(
            "`%s`: %s" % (s["id"], s["reason"]) for s in missing))
        L.append("")

    # Issue 2 table.
    L.append("## nbdcrypt vs plain vs luks (file plugin, 1 connection)\n")
    L.append("| workload | plain MiB/s | plain IOPS | nbdcrypt MiB/s | nbdcrypt IOPS | "
             "luks MiB/s | luks IOPS | nbdcrypt/plain | nbdcrypt/luks |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for wl in ("seqread", "seqwrite", "randread", "randwrite", "randrw"):
        if wl not in cfg["workloads"]:
            continue
        row = [WORKLOADS[wl][4]]
        for sid in ("file/plain", "file/nbdcrypt", "file/luks"):
            s = summary.get((sid, wl, 1))
            row += [_cell(s, "mib_s"), _cell(s, "iops")]
        for b in ("file/plain", "file/luks"):
            r = ratio(summary, runs, "file/nbdcrypt", b, wl, 1)
            row.append(_ratio_txt(r))
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    # CPU-cost view: robust to other load when fio and nbdkit are CPU-bound on the cores.
    L.append("CPU seconds per GiB moved (nbdkit + fio, medians) for the same stacks. When fio "
             "and nbdkit saturate the cores, throughput ∝ 1 / this cost, and the cost barely "
             "depends on what else runs on the machine, so its ratio is a steadier estimate of "
             "the throughput ratio than the throughput itself:\n")
    L.append("| workload | plain | nbdcrypt | luks | est. nbdcrypt/plain | est. nbdcrypt/luks |")
    L.append("|---|---|---|---|---|---|")
    for wl in cfg["workloads"]:
        costs = [_cpu_cost(summary.get((sid, wl, 1)))
                 for sid in ("file/plain", "file/nbdcrypt", "file/luks")]
        if costs[1] is None:
            continue
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            WORKLOADS[wl][4], _fmt(costs[0], 2), _fmt(costs[1], 2), _fmt(costs[2], 2),
            _fmt(costs[0] / costs[1], 2) if costs[0] else "–",
            _fmt(costs[2] / costs[1], 2) if costs[2] else "–"))
    L.append("")

    # Targets: issue 2 one row per check; issue 5 one row per check with a column per conns.
    L.append("## Targets\n")
    L.append("Measured = ratio of medians; [paired min–max]; **NO** marks a missed target.\n")
    L.append("| issue 2 check (file plugin, 1 conn) | workload | want | measured | met |")
    L.append("|---|---|---|---|---|")
    for t in res["targets"]:
        if t["issue"] == 2 and t["ratio"] is not None:
            L.append("| %s | %s | ≥ %.2f | %s | %s |" % (
                t["what"], WORKLOADS[t["workload"]][4], t["want"], _target_txt(t),
                "yes" if t["met"] else "**NO**"))
    L.append("")
    conns = cfg["conns"]
    L.append("| issue 5 check | workload | want | " +
             " | ".join("%d conn" % c for c in conns) + " |")
    L.append("|---|---|---|" + "---|" * len(conns))
    rows = {}
    for t in res["targets"]:
        if t["issue"] == 5:
            rows.setdefault((t["what"], t["workload"], t["want"]), {})[t["conns"]] = t
    for (what, wl, want), byc in rows.items():
        if all(byc.get(c, {}).get("ratio") is None for c in conns):
            continue
        cells = []
        for c in conns:
            t = byc.get(c)
            cells.append(_target_txt(t) + ("" if not t or t["met"] is None else
                                           (" ✓" if t["met"] else " **NO**")))
        L.append("| %s | %s | ≥ %.2f | %s |" % (what, WORKLOADS[wl][4], want,
                                               " | ".join(cells)))
    L += _aa_section(summary, runs, cfg, stacks)
    unchecked = sorted({"%s vs %s" % (t["a"], t["b"]) for t in res["targets"]
                        if t["ratio"] is None})
    if unchecked:
        L.append("")
        L.append("Not checkable in this run (stack missing): " + ", ".join(unchecked) + ".")
    L.append("")

    # Encryption cost on every backend.
    bks = [s["id"].split("/")[0] for s in stacks if s["id"].endswith("/nbdcrypt")
           and any(x["id"] == s["id"].split("/")[0] + "/plain" for x in stacks)]
    if bks:
        lab = {s["id"].split("/")[0]: s["label"] for s in stacks if s["id"].endswith("/plain")}
        L.append("## Encryption cost: nbdcrypt / plain on each backend\n")
        L.append("| workload | " + " | ".join("%s %d conn" % (lab[b], c) for b in bks
                                             for c in cfg["conns"]) + " |")
        L.append("|---|" + "---|" * (len(bks) * len(cfg["conns"])))
        for wl in cfg["workloads"]:
            L.append("| %s | " % WORKLOADS[wl][4] + " | ".join(
                _ratio_txt(ratio(summary, runs, b + "/nbdcrypt", b + "/plain", wl, c))
                for b in bks for c in cfg["conns"]) + " |")
        L.append("")

    # Full matrix.
    for m, title in (("mib_s", "MiB/s"), ("iops", "IOPS")):
        L.append("## Matrix: %s, median (min–max)\n" % title)
        L.append("| workload | conns | " + " | ".join(s["label"] for s in stacks) + " |")
        L.append("|---|---|" + "---|" * len(stacks))
        for wl in cfg["workloads"]:
            for c in cfg["conns"]:
                L.append("| %s | %d | " % (WORKLOADS[wl][4], c) + " | ".join(
                    _cell(summary.get((s["id"], wl, c)), m) for s in stacks) + " |")
        L.append("")
    L.append("## nbdkit CPU seconds per GiB moved (median; lower is better)\n")
    L += _median_table(summary, stacks, cfg["workloads"], cfg["conns"], "cpu_s_per_gib")
    reads = [wl for wl in cfg["workloads"] if WORKLOADS[wl][0] not in ("write", "randwrite")]
    if any("dev_read_frac" in v for v in summary.values()) and reads:
        L.append("## Read from the disk (median; disk read MiB/s ÷ client read MiB/s)\n")
        L.append("The disk's sectors-read counter (/sys/dev/block/…/stat) before and after "
                 "every job. 1.00: every byte the client read came from the disk; near 0: "
                 "from the page cache. Above 1: readahead the client did not use (or another "
                 "process reading the same disk).\n")
        L += _median_table(summary, stacks, reads, cfg["conns"], "dev_read_frac")
    errs = [(k, v["errors"]) for k, v in summary.items() if v["errors"]]
    if errs:
        L.append("**Failed runs:** " + "; ".join(
            "%s %s %d conn: %s" % (k[0], k[1], k[2], e[0]) for k, e in errs))
        L.append("")

    fs = res.get("fs")
    if fs:
        L.append("## Filesystem workload (ext4 via nbdfuse + loop device, direct I/O loop)\n")
        L.append("Image %d MiB per stack; tree: %d × %s (%.0f MiB each, Debian's /usr/include), "
                 "untarred then `sync -f`; cold read = every file read after a remount; fio: "
                 "randrw 70/30 4 KiB, libaio direct, 2 jobs × QD16 on 2×64 MiB files, %g s. "
                 "One pass per stack." %
                 (fs["image_size"] >> 20, fs.get("copies", 1), fs["tarball"],
                  fs["tarball_bytes"] / MIB, fs["fio_runtime"]))
        L.append("")
        L.append("| stack | mkfs.ext4 s | untar+sync s | untar MiB/s | cold read s | "
                 "read MiB/s | fio IOPS | e2fsck |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in fs["results"]:
            if "skipped" in r or "error" in r:
                L.append("| %s | %s |||||||" % (r["label"], r.get("skipped") or
                                                 "FAILED: " + r["error"][:120]))
                continue
            L.append("| %s | %.1f | %.1f | %.0f | %.1f | %.0f | %.0f | %s |" % (
                r["label"], r["mkfs_s"], r["untar_s"], r["untar_mib_s"], r["readback_s"],
                r["readback_mib_s"], r["fio_iops"], "clean" if r["e2fsck_clean"] else "ERRORS"))
        L.append("")

    prof = res.get("profile")
    if prof:
        L.append("## Where the time goes (perf stat / perf record on nbdkit)\n")
        L.append("%s re-run once (%g s, no ramp) with `perf stat` and `perf record -F 499 -g` "
                 "attached to nbdkit; counts are divided by the I/Os fio completed in that "
                 "window.\n" % ("Every cell of " + ", ".join(
                     " vs ".join(p) for p in cfg.get("profile_pairs") or []) + " was"
                                 if cfg.get("profile_pairs") else
                                 "The two stacks of each missed target were", cfg["runtime"]))
        L += _profile_table(prof)
        for p in prof:
            L.append("### %s, %s, %d conn\n" % (p["stack"], WORKLOADS[p["workload"]][4],
                                               p["conns"]))
            L.append("```")
            L.append(p["text"].rstrip())
            L.append("```")
            L.append("")

    L.append("## Micro-benchmarks\n")
    micro = res.get("micro") or []
    for m in micro:
        L.append("`%s`%s:\n" % (m["cmd"], "" if m["rc"] == 0 else " (exit %d)" % m["rc"]))
        L.append("```")
        L.append(m["output"].rstrip())
        L.append("```")
        L.append("")
    if not micro:
        L.append("perf/engine-bench and the KMIP benchmarks were not in the build; not run.")
    L.append("")
    L.append("![chart](results.png)")
    L.append("")
    return "\n".join(L)


# Syscalls of nbdkit per I/O, by who makes them (see bench.SYSCALLS).
PLUGIN_IO = ("pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
             "io_uring_enter", "fdatasync", "fsync", "fadvise64")
SOCKET = ("read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg")


def _median_table(summary, stacks, workloads, conns, name):
    """Markdown rows: one per workload and connection count, the median of NAME per stack."""
    L = ["| workload | conns | " + " | ".join(s["label"] for s in stacks) + " |",
         "|---|---|" + "---|" * len(stacks)]
    for wl in workloads:
        for c in conns:
            cells = []
            for s in stacks:
                v = summary.get((s["id"], wl, c), {}).get(name)
                cells.append(_fmt(v["median"], 2) if v else "n/a")
            L.append("| %s | %d | " % (WORKLOADS[wl][4], c) + " | ".join(cells) + " |")
    return L + [""]


def _profile_table(prof):
    L = ["| workload | conns | stack | MiB/s | nbdkit CPU µs/I/O | context sw./I/O | "
         "syscalls/I/O: plugin I/O | socket | futex | all | top symbols (self) |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in prof:
        c, n = p.get("counts"), p.get("ios")
        if not c or not n:
            continue
        top = []
        for line in p.get("top", [])[:3]:
            parts = line.split()
            if parts and parts[0].endswith("%"):
                top.append("%s %s" % (parts[0], parts[-1]))
        L.append("| %s | %d | %s | %.0f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |" % (
            WORKLOADS[p["workload"]][4], p["conns"], p["stack"], p["mib_s"],
            c.get("task-clock", 0) * 1000 / n, c.get("context-switches", 0) / n,
            sum(c.get(k, 0) for k in PLUGIN_IO) / n, sum(c.get(k, 0) for k in SOCKET) / n,
            c.get("futex", 0) / n, c.get("raw_syscalls:sys_enter", 0) / n,
            "; ".join(top)))
    L.append("")
    return L


def _aa_section(summary, runs, cfg, stacks):
    """The A/A control: file-aa (a second, identical file-plugin server) against file, next
    to uring against file, per cell and pooled over all cells."""
    ids = {s["id"] for s in stacks}
    encs = [e for e in ("plain", "nbdcrypt") if {"file-aa/" + e, "file/" + e} <= ids]
    if not encs:
        return []
    L = ["", "**A/A control.** `file (A/A twin)` is a second file-plugin server, identical to "
         "`file`, on the same image, run next to it like uring is. Its ratio to `file` is "
         "what this machine's noise alone makes of two stacks that do the same work.", "",
         "| workload | conns | " + " | ".join(
             "%sfile twin / file | %suring / file" % ((e + ": ",) * 2 if e != "plain"
                                                   else ("", "")) for e in encs) + " |",
         "|---|---|" + "---|---|" * len(encs)]
    pooled = {}
    for wl in cfg["workloads"]:
        for c in cfg["conns"]:
            cells = []
            for e in encs:
                for a in ("file-aa/" + e, "uring/" + e):
                    cells.append(_ratio_txt(ratio(summary, runs, a, "file/" + e, wl, c)))
                    pooled.setdefault((e, a.split("/")[0]), []).extend(
                        _paired(runs, a, "file/" + e, wl, c))
            L.append("| %s | %d | %s |" % (WORKLOADS[wl][4], c, " | ".join(cells)))
    L.append("")
    for (e, b), v in sorted(pooled.items()):
        if v:
            v = sorted(v)
            L.append("- %s, %s / file, all %d paired ratios: median %.3f, middle half "
                     "%.2f–%.2f, range %.2f–%.2f, %d of %d below 1." % (
                         e, "file twin" if b == "file-aa" else b, len(v),
                         statistics.median(v), v[len(v) // 4], v[(3 * len(v)) // 4],
                         v[0], v[-1], sum(1 for x in v if x < 1), len(v)))
    L.append("")
    return L


def _short(arg):
    """Command-line argument with the scratch and build paths cut to their last part."""
    k, sep, v = arg.partition("=") if "=" in arg else ("", "", arg)
    plus = v.startswith("+")
    if v.lstrip("+").startswith("/"):
        parts = v.lstrip("+").split("/")
        v = "/".join(parts[-2:]) if parts[-2] in ("plugin", "nbdcrypt", "uring", "perf") else parts[-1]
        return k + sep + ("+" if plus else "") + v
    return arg


def _cpu_cost(s):
    if not s or "cpu_s_per_gib" not in s or "fio_cpu_s_per_gib" not in s:
        return None
    return s["cpu_s_per_gib"]["median"] + s["fio_cpu_s_per_gib"]["median"]


def _target_txt(t):
    if not t or t["ratio"] is None:
        return "–"
    if t["paired_min"] is None:
        return "%.2f" % t["ratio"]
    return "%.2f [%.2f–%.2f]" % (t["ratio"], t["paired_min"], t["paired_max"])


def _ratio_txt(r):
    if not r:
        return "–"
    if r["paired_min"] is None:
        return "%.2f" % r["ratio"]
    return "%.2f [%.2f–%.2f]" % (r["ratio"], r["paired_min"], r["paired_max"])


def chart(res, outdir):
    """One panel per workload: bars per stack for 1 and 4 connections, min–max error bars;
    a last panel shows the encryption cost per backend (nbdcrypt / plain, 1 connection)."""
    summary = {tuple(k): v for k, v in res["summary"]}
    cfg = res["config"]
    stacks = [s for s in res["stacks"] if s["available"]]
    if not stacks:
        return None
    # Data files and script in a throwaway directory: --out may be anywhere, even in git.
    with tempfile.TemporaryDirectory(prefix="nbdcrypt-chart.") as tmp:
        return _chart(res, outdir, summary, cfg, stacks, tmp)


def _chart(res, outdir, summary, cfg, stacks, tmp):
    conns = cfg["conns"]
    panels = []
    for wl in cfg["workloads"]:
        m = metric(wl)
        scale = 1.0 if m == "mib_s" else 1e-3
        path = os.path.join(tmp, wl + ".dat")
        with open(path, "w") as f:
            for s in stacks:
                cols = ['"%s"' % s["label"]]
                for c in conns:
                    v = summary.get((s["id"], wl, c), {}).get(m)
                    cols += (["%g" % (v[k] * scale) for k in ("median", "min", "max")]
                             if v else ["0", "0", "0"])
                f.write(" ".join(cols) + "\n")
        top = max([summary.get((s["id"], wl, c), {}).get(m, {}).get("max", 0) * scale
                   for s in stacks for c in conns] + [1])
        panels.append((wl, path, "MiB/s" if m == "mib_s" else "kIOPS", top))
    # Encryption-cost panel: only backends measured both plain and with nbdcrypt.
    bks = []
    for s in stacks:
        b = s["id"].split("/")[0]
        if b not in bks and all(any(x["id"] == b + e for x in stacks)
                                for e in ("/plain", "/nbdcrypt")):
            bks.append(b)
    labels = {s["id"].split("/")[0]: s["label"] for s in stacks if s["id"].endswith("/plain")}
    rpath = os.path.join(tmp, "ratio.dat")
    have_ratio = bool(bks)
    rmax = 1.0
    with open(rpath, "w") as f:
        f.write("wl " + " ".join('"%s"' % labels.get(b, b) for b in bks) + "\n")
        for wl in cfg["workloads"]:
            vals = []
            for b in bks:
                r = ratio(summary, res["runs"], b + "/nbdcrypt", b + "/plain", wl, 1)
                vals.append("%g" % r["ratio"] if r else "0")
                rmax = max(rmax, r["ratio"] if r else 0)
            f.write('"%s" %s\n' % (wl, " ".join(vals)))
    png = os.path.join(outdir, "results.png")
    g = ['set terminal pngcairo size 1800,1300 font "sans,10"',
         'set output "%s"' % png,
         'set multiplot layout 2,3 title "nbdcrypt perf suite — %s, %s cores, %s; '
         'median of %d reps, bars = min..max" font ",13"' %
         (res["machine"]["cpu_model"], res["machine"]["nproc"], res["machine"]["date"][:16],
          cfg["reps"]),
         'set style data histogram', 'set style histogram errorbars gap 1 lw 1',
         'set style fill solid 0.8 border -1', 'set boxwidth 0.9',
         'set xtics rotate by -40 left nomirror', 'set grid ytics', 'set yrange [0:*]',
         'set key top right', 'set bmargin 10']
    colors = ["#1f77b4", "#ff7f0e"]
    for wl, path, unit, top in panels:
        g.append('set title "%s"' % WORKLOADS[wl][4])
        g.append('set yrange [0:%g]' % (top * 1.2))  # headroom for the key
        g.append('set ylabel "%s"' % unit)
        parts = []
        for i, c in enumerate(conns):
            base = 2 + 3 * i
            using = "%d:%d:%d" % (base, base + 1, base + 2)
            parts.append("'%s' using %s%s title '%d conn' lc rgb '%s'" % (
                path, using, ":xtic(1)" if i == 0 else "", c, colors[i % 2]))
        g.append("plot " + ", ".join(parts))
    if not have_ratio:
        g.append("unset multiplot")
    else:
        _ratio_panel(g, rpath, bks, rmax * 1.4)
    script = os.path.join(tmp, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(g) + "\n")
    p = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("gnuplot failed: " + p.stderr[-500:])
    return png


def _ratio_panel(g, rpath, bks, ymax):
    g.append('set title "encryption cost: nbdcrypt / plain, 1 conn '
             '(1.0 = free; dashed = 0.85 seq target)"')
    g.append('set ylabel "ratio"')
    g.append('set style histogram clustered gap 1')
    g.append('set yrange [0:%g]' % ymax)
    g.append('set arrow 1 from graph 0, first 0.85 to graph 1, first 0.85 nohead dt 2 lc "red"')
    g.append('set key top left horizontal maxcols 2')
    g.append("plot " + ", ".join(
        "'%s' using %d:xtic(1) title columnheader(%d)" % (rpath, i + 2, i + 2)
        for i in range(len(bks))))
    g.append("unset multiplot")
