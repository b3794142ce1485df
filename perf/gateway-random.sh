#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Random 4 KiB I/O and 1 MiB sequential reads through the userspace iSCSI gateway, with the
# same four stacks as perf/gateway-bench.sh on one tgtd (loopback portal):
#   file      tgtd over a plain file (the baseline)
#   plain     tgtd -> nbdfuse -> nbdkit file plugin
#   crypt4k   the same with --filter=nbdcrypt (key-file=, sector-size=4096)
#   crypt512  the same with sector-size=512
# Each stack's target has two LUNs over the same backing file: LUN 1 with tgt's default
# 512-byte logical blocks, LUN 2 with --blocksize 4096. Workloads, for SECS seconds or a
# fixed count each, stacks interleaved in an order that rotates with the repetition:
#   rr512     iscsi-perf -r -m 16 -b 8 on LUN 1: 4 KiB reads at random 512-byte-aligned LBAs
#             (iscsi-perf draws rand() % blocks), so 7 in 8 straddle two 4 KiB pages
#   rr4k      iscsi-perf -r -m 16 -b 1 on LUN 2: 4 KiB reads at random 4 KiB-aligned offsets
#   rw4k      random 4 KiB-aligned writes, depth up to 16: qemu-io over iscsi:// (libiscsi) fed
#             batches of 16 aio_write then aio_flush (a drain, not a SCSI cache flush);
#             no libiscsi tool writes at random offsets (iscsi-perf only reads)
#   seqread   qemu-img bench -d 16 -s 1M -S 1M -c COUNT_1M on LUN 1, twice per repetition
# and, as the disk and page-cache reference, fio on the backing file of (a) itself:
#   fio-cache 4 KiB random reads, psync, buffered (the file is in the page cache)
#   fio-direct 4 KiB random reads, io_uring, depth 16, O_DIRECT (the disk)
# (both --invalidate=0: fio would otherwise drop the file's pages, which (a) reads from)
# Around every run the CPU time (utime+stime from /proc/PID/stat) of tgtd, nbdfuse, nbdkit
# and of the client is taken and reported per GiB moved. The FUSE files' page cache is dropped
# before every run (reads would otherwise come from the gateway's page cache).
#   perf/gateway-random.sh [BUILD-DIR]
#   env: SIZE_MB (LUN size, 1024), REPS (5), SECS (seconds per random read run, 4),
#        COUNT_W (writes per rw4k run, 8000), COUNT_1M (1 MiB reads per seqread run, 512),
#        WORKLOADS (the runs of one repetition, "rr512 rr4k rw4k seqread seqread"),
#        FIO (0: no fio reference runs)
# Needs root, /dev/fuse, tgt, libiscsi-bin, qemu-block-extra and fio. Prints a Markdown report.
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
export srcdir="$top/tests" top_srcdir="$top"
source "$srcdir/functions.sh"
source "$srcdir/gateway/gateway-functions.sh"

size_mb=${SIZE_MB:-1024}
reps=${REPS:-5}
secs=${SECS:-4}
count_w=${COUNT_W:-8000}
count_1m=${COUNT_1M:-512}
export NBDCRYPT_FILTER="$build/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so"
filter=$NBDCRYPT_FILTER
iqn=iqn.2000-01.perf.nbdcrypt
stacks=(file plain crypt4k crypt512)
read -r -a workloads <<<"${WORKLOADS:-rr512 rr4k rw4k seqread seqread}"
fio_runs=${FIO:-1}

die () { echo "$0: $*" >&2; exit 1; }
[ -f "$filter" ] || die "build the filter first (ninja -C $build)"
[ "$(id -u)" = 0 ] || die "run as root (tgtd's control socket is in /var/run/tgtd)"
[ -c /dev/fuse ] || die "/dev/fuse is missing (nbdfuse needs FUSE)"
for cmd in nbdkit nbdfuse nbdinfo fusermount3 tgtd tgtadm qemu-img qemu-io iscsi-perf \
           iscsi-readcapacity16 fio; do
  command -v "$cmd" >/dev/null || die "'$cmd' is not installed (scripts/install-deps.sh)"
done
qemu_has_iscsi || die "qemu-img has no iscsi:// driver (install qemu-block-extra)"

started=$SECONDS
clk_tck=$(getconf CLK_TCK)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$tmpdir/file.img"
for s in plain crypt4k crypt512; do cp "$tmpdir/file.img" "$tmpdir/$s.img"; done
head -c 64 /dev/urandom >"$tmpdir/key"
start_nbdkit plain file "$tmpdir/plain.img"
start_nbdkit crypt4k --filter="$filter" file "$tmpdir/crypt4k.img" \
  key-file="$tmpdir/key" sector-size=4096
start_nbdkit crypt512 --filter="$filter" file "$tmpdir/crypt512.img" \
  key-file="$tmpdir/key" sector-size=512
for s in plain crypt4k crypt512; do fuse_mount "$s"; done
tgt_start
on_exit tgt_stop
tid=0
for s in "${stacks[@]}"; do
  tid=$((tid + 1))
  lun="$tmpdir/$s.mnt/lun"
  [ "$s" = file ] && lun="$tmpdir/file.img"
  tgt --op new --mode target --tid "$tid" -T "$iqn:$s"
  tgt --op new --mode logicalunit --tid "$tid" --lun 1 -b "$lun"
  tgt --op new --mode logicalunit --tid "$tid" --lun 2 -b "$lun" --blocksize 4096
  tgt --op bind --mode target --tid "$tid" -I 127.0.0.1
done
url () { echo "iscsi://127.0.0.1:$port/$iqn:$1/${2:-1}"; }

# Probe: a pattern written through each LUN shows in the backing file of the plain stacks
# and not in the encrypted ones.
for s in "${stacks[@]}"; do
  qemu-io -f raw -c "write -P 0x5a 0 1M" "$(url "$s")" >/dev/null
  other=$(head -c 1M "$tmpdir/$s.img" | tr -d Z | wc -c)
  case $s in
    crypt*) [ "$other" -gt 1000000 ] || die "$s: the pattern reached the backing file" ;;
    *) [ "$other" = 0 ] || die "$s: the pattern did not reach the backing file" ;;
  esac
done

# What each layer says about block sizes (docs/gateway.md, "Block sizes").
blocks_report () {
  local s
  for s in plain crypt4k crypt512; do
    printf '%s: nbdkit advertises %s; FUSE file st_blksize %s\n' "$s" \
      "$(nbdinfo --json "nbd+unix:///?socket=$tmpdir/$s.sock" | "$PYTHON" -c '
import json, sys
e = json.load(sys.stdin)["exports"][0]
print("minimum %s, preferred %s, maximum %s" % (e.get("block_size_minimum"),
      e.get("block_size_preferred"), e.get("block_size_maximum")))')" \
      "$(stat -c %o "$tmpdir/$s.mnt/lun")"
  done
  printf 'file.img: st_blksize %s\n' "$(stat -c %o "$tmpdir/file.img")"
  for s in file crypt512; do
    for l in 1 2; do
      printf '%s LUN %s: %s\n' "$s" "$l" "$(iscsi-readcapacity16 "$(url "$s" "$l")" |
        grep -E 'BLOCK LENGTH|PER PHYSICAL BLOCK EXPONENT' | tr '\n' ' ')"
    done
  done
  tgt --op show --mode target | grep -E 'Target|LUN: [12]|Block size|Backing store path'
}

# Offsets of the random writes, 4 KiB-aligned, the same for every stack.
"$PYTHON" - "$size_mb" "$count_w" >"$tmpdir/writes.qio" <<'PY'
import random, sys
blocks = int(sys.argv[1]) * 256
rnd = random.Random(42)
for i in range(int(sys.argv[2])):
    print("aio_write -q -P 0x%02x %d 4k" % (i % 251, rnd.randrange(blocks) * 4096))
    if i % 16 == 15:
        print("aio_flush")
print("aio_flush")
PY

cpu_ticks () {
  local pid
  for pid in "$@"; do
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
  done
}

# run STACK WORKLOAD REP: appends "stack workload rep ops/s bytes-moved tgtd nbdfuse nbdkit
# client-cpu-s" to $tmpdir/raw.tsv.
run () {
  local s=$1 w=$2 rep=$3 pids before after ops bytes t start
  pids=("$tgtd_pid")
  [ "$s" != file ] && pids+=("$(cat "$tmpdir/$s.fuse.pid")" "$(cat "$tmpdir/$s.pid")")
  sync
  [ "$s" = file ] || dd if="$tmpdir/$s.mnt/lun" iflag=nocache count=0 status=none
  before=($(cpu_ticks "${pids[@]}"))
  start=$(date +%s.%N)
  case $w in
    rr512|rr4k)
      local lun=1 b=8
      [ "$w" = rr4k ] && lun=2 b=1
      # Stopped by SIGINT rather than its -t: under load, when no request completes in the
      # second its run should end, iscsi-perf 1.19 misses the end and runs on for ever. Its
      # once-a-second line has the average since the start: the last one is taken.
      /usr/bin/time -f '%U %S' -o "$tmpdir/time" timeout -s INT -k 10 "$secs" \
        iscsi-perf -r -m 16 -b "$b" "$(url "$s" "$lun")" >"$tmpdir/out" 2>&1 ||
        [ $? = 124 ] || die "$s $w: iscsi-perf failed: $(tr '\r' '\n' <"$tmpdir/out" | tail -3)"
      ops=$(tr '\r' '\n' <"$tmpdir/out" | sed -n 's/.*iops average \([0-9]*\) .*/\1/p' | tail -1)
      [ -n "$ops" ] || die "$s $w: iscsi-perf said: $(tr '\r' '\n' <"$tmpdir/out" | tail -3)"
      bytes=$((ops * secs * 4096)) ;;
    rw4k)
      /usr/bin/time -f '%U %S' -o "$tmpdir/time" timeout 120 \
        qemu-io -f raw -t none "$(url "$s")" <"$tmpdir/writes.qio" >"$tmpdir/out" 2>&1 ||
        die "$s $w: qemu-io said: $(tail -3 "$tmpdir/out")"
      ops=$(awk -v n="$count_w" -v t0="$start" -v t1="$(date +%s.%N)" \
        'BEGIN { printf "%.0f", n / (t1 - t0) }')
      bytes=$((count_w * 4096)) ;;
    seqread)
      /usr/bin/time -f '%U %S' -o "$tmpdir/time" timeout 60 \
        qemu-img bench -f raw -t none -d 16 -s 1M -S 1M -c "$count_1m" "$(url "$s")" \
        >"$tmpdir/out" 2>&1
      t=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$tmpdir/out")
      [ -n "$t" ] || die "$s $w: qemu-img bench said: $(cat "$tmpdir/out")"
      ops=$(awk -v n="$count_1m" -v t="$t" 'BEGIN { printf "%.1f", n / t }')
      bytes=$((count_1m * 1048576)) ;;
  esac
  after=($(cpu_ticks "${pids[@]}"))
  # The last line: /usr/bin/time starts with "Command exited with non-zero status" when
  # timeout had to stop iscsi-perf.
  read -r -a t < <(tail -n 1 "$tmpdir/time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$w" "$rep" "$ops" "$bytes" \
    $((after[0] - before[0])) $((${after[1]:-0} - ${before[1]:-0})) \
    $((${after[2]:-0} - ${before[2]:-0})) "$(awk "BEGIN { print ${t[0]} + ${t[1]} }")" \
    >>"$tmpdir/raw.tsv"
}

# fio_ref NAME REP: the reference runs on the backing file of (a).
fio_ref () {
  local args
  case $1 in
    fio-cache) args=(--ioengine=psync --iodepth=1) ;;
    fio-direct) args=(--ioengine=io_uring --iodepth=16 --direct=1) ;;
  esac
  fio --name=ref --filename="$tmpdir/file.img" --rw=randread --bs=4k --time_based \
    --runtime="$secs" --invalidate=0 --output-format=json "${args[@]}" >"$tmpdir/fio.json" ||
    die "fio $1 failed"
  "$PYTHON" - "$tmpdir/fio.json" "$1" "$2" >>"$tmpdir/raw.tsv" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
r = j["read"]
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["elapsed"]
print("file\t%s\t%s\t%.0f\t%d\t0\t0\t0\t%.2f" % (sys.argv[2], sys.argv[3], r["iops"],
      r["io_bytes"], cpu))
PY
}

blocks=$(blocks_report)
: >"$tmpdir/raw.tsv"
for rep in $(seq "$reps"); do
  if [ "$fio_runs" != 0 ]; then
    fio_ref fio-cache "$rep"
    fio_ref fio-direct "$rep"
  fi
  for w in "${workloads[@]}"; do
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
tools+=", $(fio --version)"
cat <<EOF
# The userspace iSCSI gateway: random 4 KiB I/O, 1 MiB sequential reads

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit
- machine: $(nproc) CPUs ($cpu), shared with other work, so the figures are noisy; load
  average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; kernel $(uname -r)
- tools: $tools
- LUNs of $size_mb MiB on one tgtd (loopback portal), backing files prefilled with random
  data (page cache warm), the FUSE files' page cache dropped before every run
- $reps repetitions of: ${workloads[*]} (fio: $([ "$fio_runs" = 0 ] && echo no || echo yes)),
  stacks interleaved; random reads $secs s per run (iscsi-perf -r -m 16), random writes
  $count_w per run, 1 MiB reads $count_1m per run; whole run $elapsed s

Block sizes as each layer reports them:

\`\`\`
$blocks
\`\`\`
EOF
"$PYTHON" - "$tmpdir/raw.tsv" "$clk_tck" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
tck = float(sys.argv[2])
stacks = ["file", "plain", "crypt4k", "crypt512"]
names = {"file": "(a) tgtd → file", "plain": "(b) tgtd → nbdfuse → nbdkit file",
         "crypt4k": "(c) (b) + nbdcrypt, 4096-byte sectors",
         "crypt512": "(d) (b) + nbdcrypt, 512-byte sectors"}
wls = [("rr512", "4K random read IOPS, 512-aligned"), ("rr4k", "4K random read IOPS, 4K-aligned"),
       ("rw4k", "4K random write IOPS"), ("seqread", "1M read MiB/s")]
def rate(r):
    v = float(r[3])
    return v if r[1] != "seqread" else v  # seqread: 1 MiB requests/s = MiB/s
def cell(s, w):
    return [r for r in rows if r[0] == s and r[1] == w]
def med(s, w):
    return statistics.median(rate(r) for r in cell(s, w))
wls = [(w, h) for w, h in wls if cell("file", w)]
if cell("file", "fio-cache"):
    print()
    print("fio on the backing file of (a), 4 KiB random reads, medians [min–max]: "
          "psync buffered (page cache) %.0f [%.0f–%.0f] IOPS; io_uring depth 16 O_DIRECT "
          "(disk) %.0f [%.0f–%.0f] IOPS." % tuple(
              f([rate(r) for r in cell("file", w)]) for w in ("fio-cache", "fio-direct")
              for f in (statistics.median, min, max)))
print()
print("Medians [min–max] and the ratio of medians to (a):")
print()
print("| stack | " + " | ".join(h for _, h in wls) + " |")
print("|---|" + "---|" * len(wls))
for s in stacks:
    out = []
    for w, _ in wls:
        v = [rate(r) for r in cell(s, w)]
        m = med(s, w)
        ratio = "" if s == "file" else " (%.2f)" % (m / med("file", w))
        out.append("%.0f [%.0f–%.0f]%s" % (m, min(v), max(v), ratio))
    print("| " + names[s] + " | " + " | ".join(out) + " |")
print()
print("Paired with (b): the ratio of each run of (c) or (d) to the run of (b) at the same place "
      "in the same repetition (minutes apart at most, so under a similar load): median "
      "[min–max], and in how many pairs the encrypted stack was slower.")
print()
print("| workload | (c)/(b) | slower | (d)/(b) | slower |")
print("|---|---|---|---|---|")
def runs(s, w):
    out = {}
    for r in cell(s, w):
        k = (r[2], sum(1 for x in out if x[0] == r[2]))
        out[k] = rate(r)
    return out
for w, h in wls:
    b = runs("plain", w)
    line = "| " + h + " |"
    for s in ("crypt4k", "crypt512"):
        c = runs(s, w)
        q = [c[k] / b[k] for k in b if k in c]
        line += " %.2f [%.2f–%.2f] | %d of %d |" % (
            statistics.median(q), min(q), max(q), sum(1 for x in q if x < 1), len(q))
    print(line)
print()
print("Where the time goes: CPU seconds per GiB moved (medians over the runs) of each "
      "process; the client is iscsi-perf, qemu-io or qemu-img. Per 4 KiB request, "
      "1 s/GiB is 3.8 µs.")
print()
print("| stack | workload | tgtd | nbdfuse | nbdkit | client | total |")
print("|---|---|---|---|---|---|---|")
for w, h in wls:
    for s in stacks:
        per = [[], [], [], []]
        for r in cell(s, w):
            gib = int(r[4]) / (1 << 30)
            per[0].append(int(r[5]) / tck / gib)
            per[1].append(int(r[6]) / tck / gib)
            per[2].append(int(r[7]) / tck / gib)
            per[3].append(float(r[8]) / gib)
        m = [statistics.median(p) for p in per]
        dash = lambda i: "–" if s == "file" and i in (1, 2) else "%.2f" % m[i]
        print("| %s | %s | %s | %s | %s | %s | %.2f |" % (
            s, w, dash(0), dash(1), dash(2), dash(3), sum(m)))
print()
print("Raw runs (stack, workload, repetition, IOPS or MiB/s, bytes moved, CPU ticks of tgtd, "
      "nbdfuse, nbdkit at %d per second, client CPU seconds):" % tck)
print()
print("```")
for r in rows:
    print("\t".join(r))
print("```")
PY
