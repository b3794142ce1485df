# SPDX-License-Identifier: BSD-3-Clause
"""nbdkit stacks for the perf suite: test images, server start/stop, and a sanity probe.

A stack is a backend (nbdkit's file plugin, our uring plugin) plus an optional encryption
layer (nothing, the nbdcrypt filter, nbdkit's luks filter). Each is served on its own Unix
socket. Before a stack is measured, a probe writes a pattern through it and looks at the
backing file, so a scaffold filter that passes data through in clear is never reported as
encryption.
"""

import os
import subprocess
import time

import nbd

PROBE = (b"nbdcrypt perf probe: this must never reach the disk in clear. " * 1100)[:65536]
LUKS_PASSWORD = b"nbdcrypt-perf-luks-password"


class Backend:
    """How to reach the backing file: plugin argv (before filter params). 'uncached' backends
    (direct I/O, cache=none) get their own image, kept out of the page cache between jobs."""

    def __init__(self, name, label, plugin, extra, needs, uncached=False):
        self.name, self.label, self.plugin, self.extra, self.needs = \
            name, label, plugin, extra, needs
        self.uncached = uncached


class Stack:
    def __init__(self, backend, enc):
        self.backend, self.enc = backend, enc
        self.id = backend.name + "/" + enc
        self.label = backend.label + ("" if enc == "plain" else "+" + enc)
        self.proc = None
        self.sock = None
        self.uri = None
        self.available = False
        self.reason = ""
        self.argv = []
        self.log = None

    def cpu_seconds(self):
        """User+system CPU time of the nbdkit process (all threads), in seconds."""
        if not self.proc:
            return 0.0
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0


def backends(build):
    """All backends known to the suite; 'needs' is the .so that must exist in the build."""
    uring = os.path.join(build, "plugin", "uring", "nbdkit-nbdcrypt-uring-plugin.so")
    return {
        "file": Backend("file", "file", "file", [], None),
        # A/A control: a second, identical file-plugin server on the same image. Its ratio to
        # "file" is what the suite measures between two stacks that do exactly the same work.
        "file-aa": Backend("file-aa", "file (A/A twin)", "file", [], None),
        "file-nocache": Backend("file-nocache", "file(cache=none)", "file",
                                ["cache=none"], None, uncached=True),
        "uring": Backend("uring", "uring", uring, ["direct=false"], uring),
        "uring-direct": Backend("uring-direct", "uring(direct)", uring, ["direct=true"], uring,
                                uncached=True),
    }


class Images:
    """The backing files, kept in the work dir and reused between runs when the size fits.

    With uncached_size, the direct-I/O and cache=none stacks use their own image of that
    size (raw-direct-SIZE.img): the buffered stacks keep theirs in the page cache, and the
    suite drops the uncached image's pages before every job (settle()), so a cache=none read
    is never a hit left behind by a buffered stack. It is larger than a job reads, because
    the file plugin's cache=none keeps most of what it reads sequentially (its DONTNEED after
    each read leaves the pages on Linux 6.x): on an image that a job reads more than once,
    its second pass would read memory."""

    def __init__(self, work, size, log=print, uncached_size=None):
        self.work, self.size, self.log = work, size, log
        self.raw = os.path.join(work, "raw-%d.img" % size)
        self.uncached_size = uncached_size or size
        self.raw_uncached = os.path.join(work, "raw-direct-%d.img" % uncached_size) \
            if uncached_size else self.raw
        self.luks = os.path.join(work, "luks-%d.img" % size)
        self.key = os.path.join(work, "volume.key")
        self.pw = os.path.join(work, "luks.pw")
        self.luks_payload = None

    def prepare(self):
        os.makedirs(self.work, exist_ok=True)
        if not os.path.exists(self.key):
            with open(self.key, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(os.urandom(64))
        with open(self.pw, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(LUKS_PASSWORD)
        # Real data everywhere: reading an unwritten extent costs the kernel nothing, which
        # would flatter direct I/O reads.
        if not _filled(self.raw, self.size, 0):
            self.log("perf: writing %d MiB of random data to %s" % (self.size >> 20, self.raw))
            _fill(self.raw, 0, self.size)
            _mark_filled(self.raw, self.size, 0)
        if self.raw_uncached != self.raw and not _filled(self.raw_uncached,
                                                         self.uncached_size, 0):
            self.log("perf: writing %d MiB of random data to %s" % (self.uncached_size >> 20,
                                                                    self.raw_uncached))
            _fill(self.raw_uncached, 0, self.uncached_size)
            _mark_filled(self.raw_uncached, self.uncached_size, 0)
        if not os.path.exists(self.luks) or not _filled(self.luks, self.size, None):
            self.log("perf: creating LUKS image %s (qemu-img, aes-256-xts-plain64)" % self.luks)
            if os.path.exists(self.luks):
                os.unlink(self.luks)
            make_luks(self.luks, self.pw, self.size)
            payload = luks_payload_offset(self.luks)
            _fill(self.luks, payload, self.size)
            _mark_filled(self.luks, self.size, payload)
        self.luks_payload = luks_payload_offset(self.luks)

    def cached(self):
        return [self.raw, self.luks]

    def uncached(self):
        return [self.raw_uncached] if self.raw_uncached != self.raw else []

    def backing(self, stack):
        """The file a stack serves: the LUKS image under nbdkit's luks filter, else the
        uncached or the cached raw image."""
        if stack.enc == "luks":
            return self.luks
        return self.raw_uncached if stack.backend.uncached else self.raw

    def size_for(self, stack):
        """Bytes of the export a stack serves (the fio job's size)."""
        return self.uncached_size if self.backing(stack) == self.raw_uncached else self.size

    def warm(self):
        """Read the buffered stacks' images into the page cache (their steady state)."""
        for path in self.cached():
            with open(path, "rb", buffering=0) as f:
                while f.read(8 << 20):
                    pass


def settle_command(images):
    """Shell command run by fio before every job (exec_prerun): write back what earlier jobs
    left dirty, so that writeback never lands in another stack's measurement, and drop the
    uncached image's pages, so cache=none and direct I/O both start from the device."""
    sync = "sync " + " ".join(images.cached() + images.uncached())
    drops = ["dd if=%s iflag=nocache count=0 status=none" % p for p in images.uncached()]
    return "; ".join([sync] + drops)


def device_stat(path):
    """sysfs statistics file of the block device (or partition) holding PATH, or None (tmpfs,
    overlay without a device...). Field 3 is sectors read, in 512-byte units."""
    st = os.stat(path)
    f = "/sys/dev/block/%d:%d/stat" % (os.major(st.st_dev), os.minor(st.st_dev))
    return f if os.path.exists(f) else None


def device_mark_command(stat, tag, log):
    """Shell command appending 'TAG seconds sectors-read' for the device to LOG."""
    return ("echo %s $(date +%%s.%%N) $(awk '{print $3}' %s) >> %s" % (tag, stat, log))


def device_reads(log):
    """Parse the marks of one fio sequence: the jobs ran in order, each clone of a job wrote a
    'pre' line before it started and a 'post' line after it ended. Returns, per job in order,
    the device's read bandwidth in bytes/s over the job (ramp included), or None."""
    jobs, cur = [], None
    try:
        with open(log) as f:
            lines = f.read().split("\n")
    except OSError:
        return []
    for line in lines:
        f = line.split()
        if len(f) != 3:
            continue
        tag, t, sect = f[0], float(f[1]), int(f[2])
        if tag == "pre":
            if cur is None or cur["post"]:
                cur = {"pre": [], "post": []}
                jobs.append(cur)
            cur["pre"].append((t, sect))
        elif tag == "post" and cur is not None:
            cur["post"].append((t, sect))
    out = []
    for j in jobs:
        if not j["pre"] or not j["post"]:
            out.append(None)
            continue
        t0, s0 = min(j["pre"])
        t1, s1 = max(j["post"])
        out.append((s1 - s0) * 512 / (t1 - t0) if t1 > t0 else None)
    return out


def make_luks(path, pwfile, size):
    # iter-time=100 ms: nbdkit's luks filter runs PBKDF2 on every new connection; the default
    # 2 s would be charged to every 4-connection job. qemu-img times PBKDF2 with CPU-time
    # samples and sometimes gives up ("Unable to get accurate CPU usage") on a busy machine:
    # retry.
    argv = ["qemu-img", "create", "-q", "-f", "luks",
            "--object", "secret,id=sec0,file=" + pwfile,
            "-o", "key-secret=sec0,cipher-alg=aes-256,cipher-mode=xts,"
                  "ivgen-alg=plain64,hash-alg=sha256,iter-time=100",
            path, str(size)]
    for attempt in range(5):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("qemu-img create -f luks failed: " + p.stderr.strip())


def luks_payload_offset(path):
    import json
    out = subprocess.run(["qemu-img", "info", "--output=json", path], check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out)["format-specific"]["data"]["payload-offset"])


def _fill(path, start, length):
    chunk = 8 << 20
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.seek(start)
        left = length
        while left > 0:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _marker(path):
    return path + ".filled"


def _filled(path, size, _payload):
    try:
        with open(_marker(path)) as f:
            return int(f.read().split()[0]) == size and os.path.exists(path)
    except (OSError, ValueError, IndexError):
        return False


def _mark_filled(path, size, payload):
    with open(_marker(path), "w") as f:
        f.write("%d %d\n" % (size, payload))


def nbdkit_argv(stack, images, build, sock, threads):
    """The nbdkit command line for a stack. Filters take their params before the plugin's."""
    b = stack.backend
    argv = ["nbdkit", "-U", sock, "-f", "--exit-with-parent", "-t", str(threads)]
    params = []
    backing = images.backing(stack)
    if stack.enc == "nbdcrypt":
        argv.append("--filter=" + os.path.join(build, "plugin", "nbdcrypt", "nbdkit-nbdcrypt-filter.so"))
        params += ["key-file=" + images.key, "cipher=aes-256-xts", "sector-size=4096"]
    elif stack.enc == "luks":
        argv.append("--filter=luks")
        params += ["passphrase=+" + images.pw]
    argv.append(b.plugin)
    argv.append("file=" + backing)
    argv += b.extra + params
    return argv, backing


def start(stack, images, build, rundir, threads=16):
    """Start the server of a stack and probe it. Sets stack.available/.reason."""
    b = stack.backend
    if b.needs and not os.path.exists(b.needs):
        stack.reason = "%s not built" % os.path.relpath(b.needs)
        return False
    if stack.enc == "nbdcrypt":
        so = os.path.join(build, "plugin", "nbdcrypt", "nbdkit-nbdcrypt-filter.so")
        if not os.path.exists(so):
            stack.reason = "nbdcrypt filter not built"
            return False
    stack.sock = os.path.join(rundir, stack.id.replace("/", "_") + ".sock")
    if os.path.exists(stack.sock):
        os.unlink(stack.sock)
    stack.argv, backing = nbdkit_argv(stack, images, build, stack.sock, threads)
    stack.log = stack.sock[:-5] + ".log"
    logf = open(stack.log, "w")
    stack.proc = subprocess.Popen(stack.argv, stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    logf.close()
    deadline = time.time() + 30
    while not os.path.exists(stack.sock):
        if stack.proc.poll() is not None or time.time() > deadline:
            stack.reason = "nbdkit refused to start: " + _tail(stack.log)
            stop(stack)
            return False
        time.sleep(0.05)
    stack.uri = "nbd+unix:///?socket=" + stack.sock
    try:
        _probe(stack, images, backing)
    except Exception as e:  # noqa: BLE001 - any failure makes the stack unusable
        stack.reason = "probe failed: %s" % e
        stop(stack)
        return False
    stack.available = True
    return True


def _probe(stack, images, backing):
    """Write a pattern through the stack; it must read back, and reach the disk encrypted
    (or in clear for plain stacks, which checks the probe itself)."""
    h = nbd.NBD()
    # nbdkit binds the socket before it listens: under load a connect can land in between.
    for attempt in range(50):
        try:
            h.connect_uri(stack.uri)
            break
        except nbd.Error as e:
            if attempt == 49 or "refused" not in str(e).lower():
                raise
            h = nbd.NBD()       # a handle that failed to connect cannot be reused
            time.sleep(0.1)
    try:
        if h.get_size() < 64 << 20:
            raise RuntimeError("export is only %d bytes" % h.get_size())
        h.pwrite(PROBE, 0)
        h.flush()
        if h.pread(len(PROBE), 0) != PROBE:
            raise RuntimeError("read-back differs from what was written")
    finally:
        h.shutdown()
    start = images.luks_payload if stack.enc == "luks" else 0
    with open(backing, "rb") as f:
        f.seek(start)
        disk = f.read(len(PROBE))
    if stack.enc == "plain":
        if disk != PROBE:
            raise RuntimeError("plain stack: backing file does not hold the data written")
    else:
        # Any 512-byte run of the plaintext on disk means the layer is not encrypting.
        for off in range(0, len(PROBE), 512):
            if PROBE[off:off + 512] in disk:
                raise RuntimeError("backing file holds plaintext: '%s' is not encrypting "
                                   "(scaffold?)" % stack.enc)


def stop(stack):
    p = stack.proc
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    stack.proc = None


def _tail(path, n=3):
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if l.strip()]
        return " | ".join(lines[-n:])[:400]
    except OSError:
        return "(no log)"
