# SPDX-License-Identifier: BSD-3-Clause
"""A real filesystem on each stack: ext4 made through nbdfuse + a loop device.

nbdfuse exposes the NBD export as a file; a loop device (direct I/O, so the page cache sits
only at the top, in ext4) turns it into a block device the kernel can mount. Workloads:
mkfs.ext4, untar of a source tree + sync, cold read-back of every file after a remount, and
a fio file-based mixed 4 KiB job; e2fsck -fn at the end checks the result is a sound fs.
"""

import json
import os
import subprocess
import time

import stacks as st


def make_tarball(work, quick):
    """A 'kernel-like' tree: Debian's /usr/include (≈8,000 headers, ≈130 MB) or a subset."""
    name = "include-quick.tar" if quick else "include.tar"
    path = os.path.join(work, name)
    if not os.path.exists(path):
        members = ["include/linux", "include/asm-generic"] if quick else ["include"]
        subprocess.run(["tar", "-cf", path + ".tmp", "-C", "/usr"] + members, check=True)
        os.rename(path + ".tmp", path)
    return path


def _run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


class Mounted:
    """nbdfuse -> loop -> ext4 on mnt, torn down in reverse order whatever happens."""

    def __init__(self, stack, base):
        self.stack, self.base = stack, base
        self.fusedir = os.path.join(base, "fuse")
        self.mnt = os.path.join(base, "mnt")
        self.fuse = None
        self.loop = None
        self.mounted = False

    def attach(self):
        os.makedirs(self.fusedir, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        disk = os.path.join(self.fusedir, "disk")
        self.fuse = subprocess.Popen(["nbdfuse", disk, "--unix", self.stack.sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(disk):
            if self.fuse.poll() is not None or time.time() > deadline:
                raise RuntimeError("nbdfuse did not start: %s" %
                                   (self.fuse.stderr.read().decode()[-300:]
                                    if self.fuse.poll() is not None else "timeout"))
            time.sleep(0.05)
        self.loop = _run(["losetup", "-f", "--show", "--direct-io=on", disk]).stdout.strip()

    def mount(self):
        _run(["mount", "-t", "ext4", self.loop, self.mnt])
        self.mounted = True

    def umount(self):
        if self.mounted:
            subprocess.run(["umount", self.mnt], check=False)
            self.mounted = False

    def detach(self):
        self.umount()
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], check=False)
            self.loop = None
        if self.fuse:
            subprocess.run(["fusermount3", "-u", self.fusedir], check=False,
                           capture_output=True)
            try:
                self.fuse.wait(10)
            except subprocess.TimeoutExpired:
                self.fuse.kill()
                self.fuse.wait()
            self.fuse = None


def _timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def _read_all(root):
    total = 0
    files = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb", buffering=0) as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    total += len(b)
            files += 1
    return total, files


def one_stack(stack, base, tarball, copies, fio_runtime):
    m = Mounted(stack, base)
    res = {"stack": stack.id, "label": stack.label}
    try:
        m.attach()
        res["mkfs_s"] = _timed(lambda: _run(
            ["mkfs.ext4", "-q", "-F", "-b", "4096",
             # nodiscard: a discard would punch holes in the backing file of plain stacks.
             "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", m.loop]))
        m.mount()
        tar_bytes = os.path.getsize(tarball) * copies

        def untar():
            for i in range(copies):
                d = os.path.join(m.mnt, "tree%d" % i)
                os.mkdir(d)
                _run(["tar", "-xf", tarball, "-C", d])
            _run(["sync", "-f", m.mnt])
        res["untar_s"] = _timed(untar)
        res["untar_mib_s"] = tar_bytes / res["untar_s"] / (1 << 20)
        # Remount so that nothing above nbdkit holds the data: ext4 caches go with the fs and
        # the loop device does direct I/O on the nbdfuse file.
        m.umount()
        m.mount()
        t = time.monotonic()
        nbytes, nfiles = _read_all(m.mnt)
        res["readback_s"] = time.monotonic() - t
        res["readback_mib_s"] = nbytes / res["readback_s"] / (1 << 20)
        res["files"] = nfiles
        res["tree_bytes"] = nbytes
        out = os.path.join(base, "fio-fs.json")
        argv = ["fio", "--name=fs-randrw", "--directory=" + m.mnt, "--rw=randrw",
                "--rwmixread=70", "--bs=4k", "--size=64M", "--numjobs=2", "--iodepth=16",
                "--ioengine=libaio", "--direct=1", "--time_based",
                "--runtime=%g" % fio_runtime, "--group_reporting", "--randrepeat=0",
                "--output-format=json", "--output=" + out]
        _run(argv, timeout=120 + fio_runtime)
        with open(out) as f:
            text = f.read()
        j = json.loads(text[text.index("{"):])["jobs"][0]
        res["fio_read_iops"] = j["read"]["iops"]
        res["fio_write_iops"] = j["write"]["iops"]
        res["fio_iops"] = j["read"]["iops"] + j["write"]["iops"]
        m.umount()
        fsck = subprocess.run(["e2fsck", "-fn", m.loop], capture_output=True, text=True)
        res["e2fsck_clean"] = fsck.returncode == 0
        if fsck.returncode != 0:
            res["e2fsck_output"] = (fsck.stdout + fsck.stderr)[-600:]
    except (subprocess.CalledProcessError, RuntimeError, OSError, ValueError,
            subprocess.TimeoutExpired) as e:
        detail = getattr(e, "stderr", "") or ""
        res["error"] = ("%s %s" % (e, detail))[-500:]
    finally:
        m.detach()
    return res


def run(stack_ids, all_backends, images, build, work, quick, copies, fio_runtime, log):
    base = os.path.join(work, "fs")
    os.makedirs(base, exist_ok=True)
    tarball = make_tarball(work, quick)
    results = []
    for sid in stack_ids:
        bname, enc = sid.split("/")
        stack = st.Stack(all_backends[bname], enc)
        if not st.start(stack, images, build, base):
            log("perf: fs: %s unavailable: %s" % (sid, stack.reason))
            results.append({"stack": sid, "label": stack.label, "skipped": stack.reason})
            continue
        try:
            log("perf: fs: ext4 on %s ..." % stack.label)
            r = one_stack(stack, base, tarball, copies, fio_runtime)
        finally:
            st.stop(stack)
        if "error" in r:
            log("perf: fs: %s FAILED: %s" % (sid, r["error"]))
        else:
            log("perf: fs: %-26s mkfs %.1fs untar %.1fs (%.0f MiB/s) read %.1fs "
                "(%.0f MiB/s) fio %.0f IOPS fsck %s" %
                (stack.label, r["mkfs_s"], r["untar_s"], r["untar_mib_s"], r["readback_s"],
                 r["readback_mib_s"], r["fio_iops"], "clean" if r["e2fsck_clean"] else "ERR"))
        results.append(r)
    return {"tarball_bytes": os.path.getsize(tarball), "tarball": os.path.basename(tarball),
            "copies": copies,
            "fio_runtime": fio_runtime, "image_size": images.size, "results": results}
