#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What the userspace iSCSI gateway costs: qemu-img bench through iscsi:// (libiscsi) against
# one tgtd on a loopback portal serving four LUNs, one per stack:
#   file      tgtd over a plain file (the baseline)
#   plain     tgtd -> nbdfuse -> nbdkit file plugin
#   crypt4k   the same with --filter=nbdcrypt (key-file=, sector-size=4096)
#   crypt512  the same with sector-size=512
# Workloads: 4 KiB reads and writes at depth 16 at scattered offsets (qemu-img bench has no
# random mode: a stride of 1 MiB + 4 KiB, wrapping around the LUN; perf/gateway-random.sh
# measures random offsets), 1 MiB sequential reads and
# writes at depth 16. Stacks interleaved within each workload, REPS repetitions, medians. Around
# every run the CPU time (utime+stime from /proc/PID/stat) of tgtd, nbdfuse, nbdkit and of
# qemu-img itself is taken, reported per GiB moved. The FUSE files' page cache is dropped before
# every run, so that reads cross the whole stack (see run ()), and a LUN is at least as large as
# what a sequential run reads (1 GiB), so that no run reads a block twice.
#   perf/gateway-bench.sh [BUILD-DIR]
#   env: SIZE_MB (LUN size, 1024), REPS (3), COUNT_4K (4 KiB requests per run, 32000),
#        COUNT_1M (1 MiB requests per run, 1024), READ_AHEAD_KB (the FUSE mounts' readahead;
#        the kernel's default, 128, if unset)
# Needs root, /dev/fuse, tgt, libiscsi-bin and qemu-block-extra. Prints a Markdown report.
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
export srcdir="$top/tests" top_srcdir="$top"
source "$srcdir/functions.sh"
source "$srcdir/gateway/gateway-functions.sh"

size_mb=${SIZE_MB:-1024}
reps=${REPS:-3}
count_4k=${COUNT_4K:-32000}
count_1m=${COUNT_1M:-1024}
export NBDCRYPT_FILTER="$build/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so"
filter=$NBDCRYPT_FILTER
iqn=iqn.2000-01.perf.nbdcrypt
stacks=(file plain crypt4k crypt512)
workloads=(randread randwrite seqread seqwrite)

die () { echo "$0: $*" >&2; exit 1; }
[ -f "$filter" ] || die "build the filter first (ninja -C $build)"
[ "$(id -u)" = 0 ] || die "run as root (tgtd's control socket is in /var/run/tgtd)"
[ -c /dev/fuse ] || die "/dev/fuse is missing (nbdfuse needs FUSE)"
for cmd in nbdkit nbdfuse fusermount3 tgtd tgtadm qemu-img qemu-io; do
  command -v "$cmd" >/dev/null || die "'$cmd' is not installed (scripts/install-deps.sh)"
done
qemu_has_iscsi || die "qemu-img has no iscsi:// driver (install qemu-block-extra)"

started=$SECONDS
clk_tck=$(getconf CLK_TCK)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# The backing files: the same random data in each, so no stack reads holes.
head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$tmpdir/file.img"
for s in plain crypt4k crypt512; do cp "$tmpdir/file.img" "$tmpdir/$s.img"; done
head -c 64 /dev/urandom >"$tmpdir/key"
start_nbdkit plain file "$tmpdir/plain.img"
start_nbdkit crypt4k --filter="$filter" file "$tmpdir/crypt4k.img" \
  key-file="$tmpdir/key" sector-size=4096
start_nbdkit crypt512 --filter="$filter" file "$tmpdir/crypt512.img" \
  key-file="$tmpdir/key" sector-size=512
for s in plain crypt4k crypt512; do
  fuse_mount "$s"
  # READ_AHEAD_KB: the FUSE mount's readahead, which sets the size of the reads nbdfuse
  # receives for sequential reads (the kernel's default of 128 KiB: 128 KiB NBD reads).
  if [ -n "${READ_AHEAD_KB:-}" ]; then
    echo "$READ_AHEAD_KB" >"/sys/class/bdi/$(mountpoint -d "$tmpdir/$s.mnt")/read_ahead_kb"
  fi
done
ra_kb=$(cat "/sys/class/bdi/$(mountpoint -d "$tmpdir/plain.mnt")/read_ahead_kb")
tgt_start
on_exit tgt_stop
tid=0
for s in "${stacks[@]}"; do
  tid=$((tid + 1))
  lun="$tmpdir/$s.mnt/lun"
  [ "$s" = file ] && lun="$tmpdir/file.img"
  tgt --op new --mode target --tid "$tid" -T "$iqn:$s"
  tgt --op new --mode logicalunit --tid "$tid" --lun 1 -b "$lun"
  tgt --op bind --mode target --tid "$tid" -I 127.0.0.1
done
url () { echo "iscsi://127.0.0.1:$port/$iqn:$1/1"; }

# Probe: a pattern written through each LUN shows in the backing file of the plain stacks
# and not in the encrypted ones, so the figures are not those of a filter that does nothing.
for s in "${stacks[@]}"; do
  qemu-io -f raw -c "write -P 0x5a 0 1M" "$(url "$s")" >/dev/null
  other=$(head -c 1M "$tmpdir/$s.img" | tr -d Z | wc -c)
  case $s in
    crypt*) [ "$other" -gt 1000000 ] || die "$s: the pattern reached the backing file" ;;
    *) [ "$other" = 0 ] || die "$s: the pattern did not reach the backing file" ;;
  esac
done

# cpu_ticks PID...: utime+stime of each, in clock ticks (fields 14 and 15 of stat, counted
# after the ")" that ends the command name).
cpu_ticks () {
  local pid
  for pid in "$@"; do
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
  done
}

# run STACK WORKLOAD REP: one qemu-img bench; appends a row to $tmpdir/raw.tsv.
run () {
  local s=$1 w=$2 rep=$3 args pids before after secs t
  case $w in
    randread)  args=(-s 4096 -S $((1024 * 1024 + 4096)) -c "$count_4k") ;;
    randwrite) args=(-w -s 4096 -S $((1024 * 1024 + 4096)) -c "$count_4k") ;;
    seqread)   args=(-s 1M -S 1M -c "$count_1m") ;;
    seqwrite)  args=(-w -s 1M -S 1M -c "$count_1m") ;;
  esac
  pids=("$tgtd_pid" 0 0)
  if [ "$s" != file ]; then
    pids=("$tgtd_pid" "$(cat "$tmpdir/$s.fuse.pid")" "$(cat "$tmpdir/$s.pid")")
  fi
  sync
  # The kernel caches the FUSE file's pages (nbdfuse does not ask for direct I/O): without
  # this, every read after the first is served from the gateway's page cache and never
  # reaches nbdfuse or nbdkit. Dropped before every run; the backing files stay cached for
  # all stacks alike.
  [ "$s" = file ] || dd if="$tmpdir/$s.mnt/lun" iflag=nocache count=0 status=none
  before=($(cpu_ticks "${pids[0]}"; [ "$s" = file ] && echo 0 0 || cpu_ticks "${pids[@]:1}"))
  /usr/bin/time -f '%U %S' -o "$tmpdir/time" \
    timeout 60 qemu-img bench -f raw -t none -d 16 "${args[@]}" "$(url "$s")" >"$tmpdir/bench.out"
  after=($(cpu_ticks "${pids[0]}"; [ "$s" = file ] && echo 0 0 || cpu_ticks "${pids[@]:1}"))
  secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$tmpdir/bench.out")
  [ -n "$secs" ] || die "$s $w: qemu-img bench said: $(cat "$tmpdir/bench.out")"
  read -r -a t <"$tmpdir/time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$w" "$rep" "$secs" "${args[*]}" \
    $((after[0] - before[0])) $((after[1] - before[1])) $((after[2] - before[2])) \
    "$(awk "BEGIN { print ${t[0]} + ${t[1]} }")" >>"$tmpdir/raw.tsv"
}

: >"$tmpdir/raw.tsv"
for rep in $(seq "$reps"); do
  for w in "${workloads[@]}"; do
    # Interleaved, in an order that rotates with the repetition.
    for i in 0 1 2 3; do run "${stacks[$(((i + rep) % 4))]}" "$w" "$rep"; done
  done
done
elapsed=$((SECONDS - started))

commit=$(git -C "$top" rev-parse --short HEAD)
git -C "$top" diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
tools="tgtd $(tgtd --version 2>&1 | head -1), $(nbdkit --version | head -1)"
tools+=", $(nbdfuse --version | head -1), $(qemu-img --version | head -1 | cut -d' ' -f1-3)"
tools+=", libiscsi $(dpkg-query -W -f '${Version}' libiscsi7 2>/dev/null || echo '?')"
cat <<EOF
# The userspace iSCSI gateway: qemu-img bench over iscsi://

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit
- machine: $(nproc) CPUs ($cpu), shared with other work, so the figures are noisy; load
  average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; kernel $(uname -r)
- tools: $tools
- LUNs of $size_mb MiB on one tgtd (loopback portal), backing files prefilled with random
  data (page cache warm), the FUSE files' page cache dropped before every run, their
  readahead $ra_kb KiB
- $reps repetitions, stacks interleaved; $count_4k × 4 KiB or $count_1m × 1 MiB requests per
  run, \`qemu-img bench -f raw -t none -d 16\`; whole run $elapsed s
EOF
"$PYTHON" - "$tmpdir/raw.tsv" "$clk_tck" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
tck = float(sys.argv[2])
stacks = ["file", "plain", "crypt4k", "crypt512"]
names = {"file": "(a) tgtd → file", "plain": "(b) tgtd → nbdfuse → nbdkit file",
         "crypt4k": "(c) (b) + nbdcrypt, 4096-byte sectors",
         "crypt512": "(d) (b) + nbdcrypt, 512-byte sectors"}
wls = [("randread", "4K read IOPS"), ("randwrite", "4K write IOPS"),
       ("seqread", "1M read MiB/s"), ("seqwrite", "1M write MiB/s")]
def req_bytes(args):
    a = args.split()
    size = a[a.index("-s") + 1]
    n = int(a[a.index("-c") + 1])
    return n, (1 << 20) if size == "1M" else int(size)
def rate(r):
    n, b = req_bytes(r[4])
    secs = float(r[3])
    return n / secs if b == 4096 else n * b / secs / (1 << 20)
cell = {}
for s in stacks:
    for w, _ in wls:
        rs = [r for r in rows if r[0] == s and r[1] == w]
        cell[s, w] = rs
def med(s, w):
    return statistics.median(rate(r) for r in cell[s, w])
print()
print("Medians [min–max] and the ratio of medians to (a):")
print()
print("| stack | " + " | ".join(h for _, h in wls) + " |")
print("|---|" + "---|" * len(wls))
for s in stacks:
    out = []
    for w, _ in wls:
        v = [rate(r) for r in cell[s, w]]
        m = med(s, w)
        fmt = "%.0f" if w.startswith("rand") else "%.0f"
        ratio = "" if s == "file" else " (%.2f)" % (m / med("file", w))
        out.append((fmt % m) + " [" + (fmt % min(v)) + "–" + (fmt % max(v)) + "]" + ratio)
    print("| " + names[s] + " | " + " | ".join(out) + " |")
print()
print("Where the time goes: CPU seconds per GiB moved (medians over the repetitions) of each "
      "process; qemu-img is the initiator. tgtd serves only one LUN at a time.")
print()
print("| stack | workload | tgtd | nbdfuse | nbdkit | qemu-img | total |")
print("|---|---|---|---|---|---|---|")
for w, h in wls:
    for s in stacks:
        per = [[], [], [], []]
        for r in cell[s, w]:
            n, b = req_bytes(r[4])
            gib = n * b / (1 << 30)
            per[0].append(int(r[5]) / tck / gib)
            per[1].append(int(r[6]) / tck / gib)
            per[2].append(int(r[7]) / tck / gib)
            per[3].append(float(r[8]) / gib)
        m = [statistics.median(p) for p in per]
        dash = lambda i: "–" if s == "file" and i in (1, 2) else "%.2f" % m[i]
        print("| %s | %s | %s | %s | %s | %s | %.2f |" % (
            s, w, dash(0), dash(1), dash(2), dash(3), sum(m)))
print()
print("Raw runs (stack, workload, repetition, seconds, qemu-img bench arguments, CPU ticks of "
      "tgtd, nbdfuse, nbdkit at %d per second, qemu-img CPU seconds):" % tck)
print()
print("```")
for r in rows:
    print("\t".join(r))
print("```")
PY
