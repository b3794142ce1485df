# SPDX-License-Identifier: BSD-3-Clause
# Mutation check for the filter's end-to-end tests (a developer tool, not a timed test): build
# copies of plugin/nbdcrypt/nbdcrypt-filter.c with one deliberate bug each, run the tests against every
# copy, and print which tests catch which bug. A bug no test catches is a hole in the tests.
#
# usage: /usr/bin/python3 tests/filter/mutants.py BUILDDIR [TEST...]
#   TEST: unaligned concurrent ext4 errors badinput qemu semantics oracle write-ranges
#         (default: all)
# A mutant whose patch no longer applies to the current filter source is reported "stale".
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

MUTANTS = {
    # The luks-filter bug: partial sectors merged into undecrypted ciphertext.
    "rmw-without-decrypt": [
        ("if ((r = ncr_xts_decrypt (t->xts, first, b, b, sector_size)) < 0)",
         "if ((r = 0) < 0)"),
        ("if ((r = ncr_xts_decrypt (t->xts, last, s, s, sector_size)) < 0)",
         "if ((r = 0) < 0)")],
    # Read-modify-writes not excluding each other.
    "rmw-shared-lock": [
        ("  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, last, rmw);",
         "  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, last, false);")],
    # Whole-sector writes not waiting for a read-modify-write of the same sector.
    "aligned-without-lock": [
        ("  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, last, rmw);",
         "  struct ncr_range_hold dummy_hold;\n"
         "  if (rmw)\n    ncr_rangelock_acquire (&write_lock, &dummy_hold, first, last, true);\n"
         "  __attribute__ ((cleanup (release_if_held))) struct ncr_range_hold *held ="
         " rmw ? &dummy_hold : NULL;"),
        ("static int\nwrite_sectors (",
         "static void release_if_held (struct ncr_range_hold **h)"
         " { if (*h) ncr_rangelock_release (*h); }\n\nstatic int\nwrite_sectors (")],
    # Only the head sector locked: a tail read-modify-write races with other writes.
    "lock-head-sector-only": [
        ("  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, last, rmw);",
         "  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, first, rmw);")],
    "extents-passed-up": [
        ("nbdcrypt_can_extents (nbdkit_next *next UNUSED, void *handle UNUSED)\n{\n  return 0;",
         "nbdcrypt_can_extents (nbdkit_next *next UNUSED, void *handle UNUSED)\n{\n"
         "  return next->can_extents (next);")],
    "trim-without-discard": [
        ("return discard ? next->can_trim (next) : 0;", "return next->can_trim (next);")],
    "size-not-rounded": [
        ("return (size - data_offset) / sector_size * sector_size;",
         "return size - data_offset;")],
    "key-in-debug-output": [
        ("  struct ncr_xts *master;\n  struct ncr_xts_pool *p;\n",
         "  struct ncr_xts *master;\n  struct ncr_xts_pool *p;\n"
         "  { char hx[200]; for (size_t i = 0; i < key_len && i < 99; i++)"
         " sprintf (hx + 2 * i, \"%02x\", key[i]); nbdkit_debug (\"key %s\", hx); }\n")],
    "read-error-swallowed": [
        ("    if (next->pread (next, p, n, data_offset + offset, flags, err) == -1)\n"
         "      return -1;",
         "    if (next->pread (next, p, n, data_offset + offset, flags, err) == -1)\n"
         "      return 0;")],
    "fast-zero-accepted": [
        ("  if (flags & NBDKIT_FLAG_FAST_ZERO) {\n    *err = ENOTSUP;\n    return -1;\n  }", "")],
    "tweak-off-by-one": [
        ("    if ((r = ncr_xts_decrypt (t->xts, offset / sector_size, p, p, n)) < 0)",
         "    if ((r = ncr_xts_decrypt (t->xts, offset / sector_size + 1, p, p, n)) < 0)")],
}
LAYERS = ["crypto", "keys", "volume"]     # lib/ folders, each a static library (+ common/)
TESTS = ["unaligned", "concurrent", "ext4", "errors", "badinput", "qemu", "semantics", "oracle",
         "write-ranges"]


def build(builddir, source, outdir):
    so = os.path.join(outdir, "nbdkit-nbdcrypt-filter.so")
    src = os.path.join(outdir, "nbdcrypt-filter.c")
    with open(src, "w") as f:
        f.write(source)
    cmd = ["cc", "-shared", "-fPIC", "-pthread", "-std=gnu11", "-O2", "-D_GNU_SOURCE",
           "-D_FILE_OFFSET_BITS=64"]
    cmd += ["-I" + os.path.join(TOP, "common")]
    cmd += ["-I" + os.path.join(TOP, "lib", layer) for layer in LAYERS]
    cmd += ["-I" + os.path.join(TOP, "plugin", "nbdcrypt")]
    cmd += ["-I" + os.path.join(TOP, "kmip-client", "include"), "-o", so, src,
            os.path.join(TOP, "plugin", "nbdcrypt", "filter-log.c"), "-Wl,--start-group"]
    cmd += [os.path.join(builddir, "lib", layer, "libnbdcrypt-%s.a" % layer) for layer in LAYERS]
    cmd += [os.path.join(builddir, "common", "libnbdcrypt-common.a")]
    cmd += [os.path.join(builddir, "kmip-client", "libkmip-client.a"), "-lssl", "-lcrypto",
            "-Wl,--end-group"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return None
    return so


def run_test(name, so, builddir):
    env = dict(os.environ, srcdir=os.path.join(TOP, "tests"), top_srcdir=TOP,
               builddir=builddir, NBDCRYPT_FILTER=so,
               PATH="/usr/bin:" + os.environ.get("PATH", ""))
    script = os.path.join(HERE, "test-filter-%s.sh" % name)
    try:
        r = subprocess.run(["bash", script], env=env, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    why = [ln for ln in r.stderr.decode(errors="replace").splitlines() if "FAIL" in ln]
    return {0: "PASS", 77: "skip"}.get(r.returncode, "caught"), (why or [""])[0][:160]


def main():
    builddir = os.path.abspath(sys.argv[1])
    tests = sys.argv[2:] or TESTS
    with open(os.path.join(TOP, "plugin", "nbdcrypt", "nbdcrypt-filter.c")) as f:
        orig = f.read()
    survivors = []
    with tempfile.TemporaryDirectory(prefix="nbdcrypt-mutants.") as tmp:
        os.chmod(tmp, 0o755)     # test-filter-badinput loads the filter as user nobody
        for name, subs in MUTANTS.items():
            source = orig
            if any(a not in source for a, _ in subs):
                print("%-22s stale (the filter source changed; update the patch)" % name)
                continue
            for a, b in subs:
                source = source.replace(a, b)
            outdir = os.path.join(tmp, name)
            os.makedirs(outdir)
            so = build(builddir, source, outdir)
            if not so:
                print("%-22s does not build" % name)
                continue
            res, whys = {}, {}
            for t in tests:
                res[t], whys[t] = run_test(t, so, builddir)
            caught = [t for t, v in res.items() if v == "caught"]
            print("%-22s %s" % (name, " ".join("%s=%s" % kv for kv in res.items())), flush=True)
            for t in caught:
                print("    %s: %s" % (t, whys[t]))
            if not caught:
                survivors.append(name)
    if survivors:
        print("NOT CAUGHT by any test: %s" % ", ".join(survivors))
        sys.exit(1)
    print("every mutant was caught by at least one test")


if __name__ == "__main__":
    main()
