#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Many volumes in one nbdkit: what serving N KMS-keyed volumes from one process costs, against
# one nbdkit process per volume. Prints Markdown tables.
#
#   perf/many-volumes.sh [--volumes N] [--per-process M] [--size SIZE] [--format-jobs J]
#                        [--fio-seconds S] [--fio-reps R] [BUILD-DIR]
#
#   --volumes N       volumes in the directory served (default 1000)
#   --per-process M   volumes served one nbdkit each, for the comparison (default min(N, 100))
#   --size SIZE       size of each sparse volume file (default 16M)
#   --format-jobs J   `nbdcrypt format` runs at once (default 4)
#   --fio-seconds S   length of each fio run (default 5)
#   --fio-reps R      runs of each fio set-up, taking turns; the median is printed (default 3)
#
# What it does, in order (all on this machine, loopback only):
#  1. A throwaway PKI and a real pykmip-server (tests/kmip-server.sh, logging_level=INFO). N
#     sparse files formatted by `nbdcrypt format FILE --kms-config C --create-kek`, J at once:
#     one KEK created per volume, over one TLS connection per format. Timed.
#  2. KMS traffic is counted on the KMS side, from pykmip-server's own log: one "Starting
#     session" line per TLS connection it accepts, one "Received request" line per request
#     message, one "Processing operation" line per operation (batch item) in it. The counts are
#     taken before and after each phase; nothing else talks to the KMS meanwhile. The log is
#     copied as it grows (the server rotates it at 1 MB and keeps only five).
#  3. One nbdkit (`--filter=nbdcrypt file dir=DIR kms-config=C`), both ways:
#     - open at first connection (preload=false): RSS/VmLck/Pss before any connection, then
#       connect + 4 KiB read on every export in turn (time to first byte: median, p99, total),
#       KMS traffic of those first connections, memory after;
#     - preload=true: memory of the same over an empty directory (the base), the filter's
#       "preload: N of M volumes ... opened in X ms" line, KMS traffic of the start, memory
#       after preload, then time to first byte on every export (no KMS expected), memory after.
#     Then 100 connections held at once (a 4 KiB read on each), and 1 MiB reads on 8 exports
#     at once (fio) with the server's VmLck sampled. The preloading server runs as the systemd
#     unit would: without CAP_IPC_LOCK and under the unit's LimitMEMLOCK (setpriv + prlimit;
#     the shell's hard limit if that is lower), so a locked-memory shortfall shows as failure.
#  4. fio's nbd engine against the same preloaded directory served by root with CAP_IPC_LOCK
#     (no limit, as perf/run.sh runs its servers): 8 exports at once (8 jobs, one export each,
#     iodepth 4) vs one export at the same total depth (8 jobs on it, iodepth 4) and vs one
#     connection at depth 32; 4 KiB random read, 4 KiB random write, 1 MiB sequential read;
#     aggregate MB/s, median of R runs taken in turns.
#  5. M nbdkit processes, one per volume (file FILE kms-config=C): RSS/VmLck/Pss each and in
#     total, KMS connections; extrapolated to N (marked so).
# Then the targets next to the figures.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
volumes=1000 per_process="" size=16M format_jobs=4 fio_seconds=5 fio_reps=3 build=""
usage () { sed -n '5,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --volumes) volumes=$2; shift 2 ;;
    --per-process) per_process=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --format-jobs) format_jobs=$2; shift 2 ;;
    --fio-seconds) fio_seconds=$2; shift 2 ;;
    --fio-reps) fio_reps=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) build=$1; shift ;;
  esac
done
[ -n "$per_process" ] || per_process=$((volumes < 100 ? volumes : 100))
[ "$per_process" -le "$volumes" ] || per_process=$volumes
build=$(cd "${build:-$top/build}" && pwd)
export srcdir="$top/tests" top_srcdir="$top"
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
umask 022   # the volume files are read by nbdkit only; the kms.conf below is made 0600

export NBDCRYPT_FILTER="$build/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so"
filter=$NBDCRYPT_FILTER
nbdcrypt="$build/tools/nbdcrypt"
helper="$top/perf/many_volumes.py"
die () { echo "$0: $*" >&2; exit 1; }
[ -f "$filter" ] && [ -x "$nbdcrypt" ] || die "build first (ninja -C $build)"
for cmd in nbdkit fio setpriv prlimit; do
  command -v "$cmd" >/dev/null || die "'$cmd' is not installed"
done
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
[ -x /usr/bin/pykmip-server ] || die "pykmip-server is not installed (python3-pykmip)"
"$PYTHON" -c 'import nbd, kmip' 2>/dev/null || die "$PYTHON lacks the nbd or kmip module"

# The unit's LimitMEMLOCK (e.g. 64M), in bytes.
memlock_spec=$(sed -n 's/^LimitMEMLOCK=//p' "$top/systemd/nbdcrypt@.service")
memlock_bytes=$(numfmt --from=iec "$memlock_spec")
# What the preloading server runs under: the unit's limit, or this shell's hard limit if that
# is lower (a container may forbid raising it; a lower limit is the stricter test).
hard=$(ulimit -H -l)
run_limit=$memlock_bytes
[ "$hard" = unlimited ] || [ $((hard * 1024)) -ge "$memlock_bytes" ] || run_limit=$((hard * 1024))

started=$SECONDS
say () { echo "many-volumes: $(date -u +%T) $*" >&2; }
# serve NAME [nbdkit args...]: start_nbdkit (tests/functions.sh) with room for a long preload:
# the server listens only once every volume is open (about 50 ms each against pykmip-server).
serve () {
  local name=$1; shift
  sock="$tmpdir/$name.sock"
  local pidfile="$tmpdir/$name.pid" log="$tmpdir/$name.log" wait_s=$((60 + volumes / 5))
  rm -f "$sock" "$pidfile"
  _nbdkit_pidfiles+=("$pidfile")
  ( sanitizer_env; exec nbdkit -U "$sock" -P "$pidfile" -f "$@" ) >"$log" 2>&1 &
  for _ in $(seq $((wait_s * 10))); do
    [ -s "$pidfile" ] && [ -S "$sock" ] && return 0
    kill -0 $! 2>/dev/null || die "nbdkit $* failed to start: $(cat "$log")"
    sleep 0.1
  done
  die "nbdkit $* did not listen in $wait_s s: $(tail -5 "$log")"
}
ms () { date +%s%3N; }
# The KMS log as a whole: pykmip-server rotates its own at 1 MB and keeps 5, too few here.
kms_log=$tmpdir/kms-all.log
kms_count () { sleep 0.3; "$PYTHON" "$helper" kms "$kms_log"; }   # the copy catches up
# kms_delta BEFORE AFTER: "sessions requests operations" between two kms_count outputs.
# kms_ops BEFORE: the operations logged since BEFORE (a kms_count output), by name.
kms_ops () { "$PYTHON" "$helper" kms-ops "$kms_log" "$(awk '{print $4}' <<<"$1")"; }
kms_delta () {
  local a b; read -ra a <<<"$1"; read -ra b <<<"$2"
  echo "$((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2]))"
}
mem_of () { "$PYTHON" "$helper" mem "$(cat "$tmpdir/$1.pid")"; }
# kib_per N A B: (B - A) / N in KiB, one decimal.
kib_per () { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", (b - a) / n }'; }
ratio () { awk -v a="$1" -v b="$2" 'BEGIN {
  if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"
  else printf "%.3f", a / b }'; }
verdict () { awk -v ok="$1" 'BEGIN { print (ok ? "meets" : "MISSES") }'; }

# 1. KMS and volumes --------------------------------------------------------------------------
say "KMS and $volumes volumes"
kmip_start_server
"$PYTHON" "$helper" follow "$tmpdir/kms/server.log" "$kms_log" &
follower=$!
on_exit "kill $follower"
conf=$tmpdir/kms.conf
( umask 077; kmip_write_conf "$conf" )
vdir=$tmpdir/vols
edir=$tmpdir/empty
mkdir -p "$vdir" "$edir"
names=$tmpdir/names
for i in $(seq -f '%05g' 1 "$volumes"); do echo "v$i"; done >"$names"
k0=$(kms_count)
t0=$(ms)
export nbdcrypt conf vdir size
xargs -P "$format_jobs" -I{} sh -c '
  truncate -s "$size" "$vdir/{}" &&
  "$nbdcrypt" format "$vdir/{}" --kms-config "$conf" --create-kek --name "kek-{}" \
    >/dev/null 2>"$vdir/.{}.err" || { cat "$vdir/.{}.err" >&2; exit 255; }
  rm -f "$vdir/.{}.err"' <"$names"
format_ms=$(( $(ms) - t0 ))
read -r f_sess f_req f_ops <<<"$(kms_delta "$k0" "$(kms_count)")"
f_byop=$(kms_ops "$k0")

# 3a. One nbdkit, each volume opened at its first connection ----------------------------------
say "one nbdkit, open at first connection"
serve lazy --filter="$filter" file dir="$vdir" kms-config="$conf"
lazy_sock=$sock
read -r lz_rss0 lz_lck0 lz_pss0 <<<"$(mem_of lazy)"
k0=$(kms_count)
read -r _ lz_fail lz_med lz_p99 lz_total <<<"$("$PYTHON" "$helper" ttfb "$lazy_sock" "$names")"
read -r lz_sess lz_req lz_ops <<<"$(kms_delta "$k0" "$(kms_count)")"
lz_byop=$(kms_ops "$k0")
read -r lz_rss1 lz_lck1 lz_pss1 <<<"$(mem_of lazy)"
stop_nbdkit lazy

# 3b. One nbdkit, preload=true, as the unit runs it (no CAP_IPC_LOCK, LimitMEMLOCK) -----------
say "one nbdkit, preload=true"
# serve runs `nbdkit ARGS`: setpriv and prlimit go in front through a shim on PATH.
shim=$tmpdir/shim
mkdir -p "$shim"
real_nbdkit=$(command -v nbdkit)
cat >"$shim/nbdkit" <<EOF
#!/bin/sh
exec setpriv --bounding-set=-ipc_lock prlimit --memlock=$run_limit $real_nbdkit "\$@"
EOF
chmod +x "$shim/nbdkit"
PATH="$shim:$PATH" serve base --filter="$filter" file dir="$edir" kms-config="$conf" \
  preload=true
read -r b_rss b_lck b_pss <<<"$(mem_of base)"
b_caps=$(grep CapEff "/proc/$(cat "$tmpdir/base.pid")/status" | awk '{print $2}')
b_limit=$(awk '/^Max locked memory/ {print $4}' "/proc/$(cat "$tmpdir/base.pid")/limits")
stop_nbdkit base

k0=$(kms_count)
t0=$(ms)
PATH="$shim:$PATH" serve preload --filter="$filter" file dir="$vdir" \
  kms-config="$conf" preload=true
pl_start_ms=$(( $(ms) - t0 ))
pre_sock=$sock
read -r pl_sess pl_req pl_ops <<<"$(kms_delta "$k0" "$(kms_count)")"
pl_byop=$(kms_ops "$k0")
pl_line=$(grep -o 'preload: [0-9]* of [0-9]* volumes .* opened in [0-9]* ms' \
  "$tmpdir/preload.log" | head -1)
pl_opened=$(sed -n 's/^preload: \([0-9]*\) of.*/\1/p' <<<"$pl_line")
pl_ms=$(sed -n 's/.* opened in \([0-9]*\) ms/\1/p' <<<"$pl_line")
[ -n "$pl_ms" ] || die "no preload line in the nbdkit log: $(head -5 "$tmpdir/preload.log")"
read -r pl_rss1 pl_lck1 pl_pss1 <<<"$(mem_of preload)"
k0=$(kms_count)
read -r _ pl_fail pl_med pl_p99 pl_total <<<"$("$PYTHON" "$helper" ttfb "$pre_sock" "$names")"
read -r plt_sess plt_req plt_ops <<<"$(kms_delta "$k0" "$(kms_count)")"
plt_byop=$(kms_ops "$k0")
read -r pl_rss2 pl_lck2 pl_pss2 <<<"$(mem_of preload)"
# Connected clients: K connections held at once, one 4 KiB read on each.
held=$((volumes < 100 ? volumes : 100))
read -r h_rss h_lck h_pss <<<"$("$PYTHON" "$helper" hold "$pre_sock" "$names" "$held" \
  "$(cat "$tmpdir/preload.pid")")"
sleep 1   # the connections' threads exit
read -r pl_rss3 pl_lck3 pl_pss3 <<<"$(mem_of preload)"

# fio through its nbd engine -------------------------------------------------------------------
nexp=8
[ "$volumes" -ge "$nexp" ] || nexp=$volumes
qd=4
# fio_job NAME RW BS DEPTH URI...: one job per URI against server $fio_server; prints MB/s or
# "failed"; the server's VmLck peak goes to $tmpdir/$fio_server.lck-peak.
fio_job () {
  local name=$1 rw=$2 bs=$3 depth=$4; shift 4
  local f=$tmpdir/$name.fio j=0
  printf '[global]\nioengine=nbd\nrw=%s\nbs=%s\niodepth=%s\ntime_based=1\nruntime=%s\n' \
    "$rw" "$bs" "$depth" "$fio_seconds" >"$f"
  printf 'group_reporting=1\nrandrepeat=0\n' >>"$f"
  for u in "$@"; do
    j=$((j + 1))
    printf '[j%s]\nuri=%s\n' "$j" "$u" >>"$f"
  done
  # The server's locked memory while fio runs: the largest VmLck seen, every 0.2 s.
  local pid lck_max=0 l sampler
  pid=$(cat "$tmpdir/$fio_server.pid")
  ( while :; do
      l=$(awk '/^VmLck:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
      [ "${l:-0}" -gt "$lck_max" ] && lck_max=$l && echo "$lck_max" >"$tmpdir/$name.lck"
      sleep 0.2
    done ) &
  sampler=$!
  if fio --output-format=json --output="$tmpdir/$name.json" "$f" >/dev/null \
      2>"$tmpdir/$name.err"; then
    "$PYTHON" "$helper" fio "$tmpdir/$name.json"
  else
    # Not fatal: an error is a finding (e.g. locked memory running out), printed as such.
    echo "failed"
    { echo "fio $name failed:"; head -3 "$tmpdir/$name.err"; } >>"$tmpdir/fio-errors"
  fi
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  l=$(cat "$tmpdir/$name.lck" 2>/dev/null || echo 0)
  [ "$l" -gt "$(cat "$tmpdir/$fio_server.lck-peak" 2>/dev/null || echo 0)" ] &&
    echo "$l" >"$tmpdir/$fio_server.lck-peak"
  return 0
}
median () { tr ' ' '\n' | sort -g | awk '/failed/ { f++; next } { v[++n] = $1 } END {
  if (f) printf "failed (%d of %d)", f, f + n
  else printf "%.1f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }

# 1 MiB reads on 8 exports at once, under the limit: does the locked memory of busy threads
# still fit next to N volumes?
mapfile -t first < <(head -n "$nexp" "$names")
lim_uris=()
for e in "${first[@]}"; do lim_uris+=("nbd+unix:///$e?socket=$pre_sock"); done
fio_server=preload
read -r _ lim_lck0 _ <<<"$(mem_of preload)"
lim_mb=$(fio_job limit-read read 1M "$qd" "${lim_uris[@]}")
lim_peak=$(cat "$tmpdir/preload.lck-peak" 2>/dev/null || echo 0)
stop_nbdkit preload

# 4. fio: 8 exports at once vs one export ------------------------------------------------------
# Throughput is compared on the same preloaded server run as root with CAP_IPC_LOCK (no
# locked-memory limit), as perf/run.sh runs its servers; the limit is the check above.
say "fio"
serve fast --filter="$filter" file dir="$vdir" kms-config="$conf" preload=true
pre_sock=$sock
fio_server=fast

declare -A fio_mb fio_all
read -r _ fio_lck0 _ <<<"$(mem_of fast)"
many=() one=()
for e in "${first[@]}"; do
  many+=("nbd+unix:///$e?socket=$pre_sock")
  one+=("nbd+unix:///${first[0]}?socket=$pre_sock")
done
# The three set-ups take turns, fio_reps times, so that a change in the machine's load falls
# on all of them; the median of the runs is reported.
for wl in "randread 4k" "randwrite 4k" "read 1M"; do
  read -r rw bs <<<"$wl"
  for rep in $(seq "$fio_reps"); do
    fio_all[$rw,many]+=" $(fio_job "$rw-many" "$rw" "$bs" "$qd" "${many[@]}")"
    fio_all[$rw,one]+=" $(fio_job "$rw-one" "$rw" "$bs" "$qd" "${one[@]}")"
    fio_all[$rw,single]+=" $(fio_job "$rw-single" "$rw" "$bs" $((qd * nexp)) "${one[0]}")"
  done
  for k in many one single; do
    fio_mb[$rw,$k]=$(echo ${fio_all[$rw,$k]} | median)
  done
done
stop_nbdkit fast

# 5. One nbdkit process per volume --------------------------------------------------------------
say "$per_process nbdkit processes"
k0=$(kms_count)
t0=$(ms)
mapfile -t pp < <(head -n "$per_process" "$names")
for e in "${pp[@]}"; do
  serve "pp-$e" --filter="$filter" file "$vdir/$e" kms-config="$conf"
done
pp_start_ms=$(( $(ms) - t0 ))
read -r pp_sess pp_req pp_ops <<<"$(kms_delta "$k0" "$(kms_count)")"
pp_byop=$(kms_ops "$k0")
pp_rss=0 pp_lck=0 pp_pss=0
for e in "${pp[@]}"; do
  read -r r l p <<<"$(mem_of "pp-$e")"
  pp_rss=$((pp_rss + r)) pp_lck=$((pp_lck + l)) pp_pss=$((pp_pss + p))
done
for e in "${pp[@]}"; do stop_nbdkit "pp-$e"; done

# Report ---------------------------------------------------------------------------------------
say "report"
n=$volumes m=$per_process
per () { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a / n }'; }
mib () { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "# Many volumes in one nbdkit: N=$n volumes of $size, per-process comparison M=$m"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "nbdkit $(nbdkit --version | awk '{print $2}'), fio $(fio --version | sed 's/^fio-//')," \
  "pykmip-server on loopback; $(cd "$top" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "## Formatting (nbdcrypt format --create-kek, $format_jobs at once)"
echo
echo "| volumes | wall s | ms per volume | KMS connections | KMS messages | KMS operations |"
echo "|---|---|---|---|---|---|"
echo "| $n | $(awk -v t="$format_ms" 'BEGIN { printf "%.1f", t / 1000 }') |" \
  "$(per "$format_ms" "$n") | $f_sess | $f_req | $f_ops |"
echo
echo "## One nbdkit, N exports: time to first byte (connect + 4 KiB read, exports in turn)"
echo
echo "| mode | exports | failed | median ms | p99 ms | total s |" \
  "KMS connections | KMS messages | KMS operations |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| open at first connection | $n | $lz_fail | $lz_med | $lz_p99 | $lz_total |" \
  "$lz_sess | $lz_req | $lz_ops |"
echo "| after preload | $n | $pl_fail | $pl_med | $pl_p99 | $pl_total |" \
  "$plt_sess | $plt_req | $plt_ops |"
echo
echo "## Preload (preload=true)"
echo
echo "| volumes opened | preload ms (filter's log) | ms per volume | start to listening ms |" \
  "KMS connections | KMS messages | KMS operations | messages per volume |"
echo "|---|---|---|---|---|---|---|---|"
echo "| $pl_opened of $n | $pl_ms | $(per "$pl_ms" "$n") | $pl_start_ms | $pl_sess | $pl_req |" \
  "$pl_ops | $(per "$pl_req" "$n") |"
echo
echo "## Memory of the one process (KiB; per volume = (after - before) / N)"
echo
echo "| mode | before: RSS | VmLck | Pss | after: RSS | VmLck | Pss |" \
  "per volume: RSS | VmLck | Pss |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "| open at first connection (before: no connection yet; after: all $n exports read) |" \
  "$lz_rss0 | $lz_lck0 | $lz_pss0 | $lz_rss1 | $lz_lck1 | $lz_pss1 |" \
  "$(kib_per "$n" "$lz_rss0" "$lz_rss1") | $(kib_per "$n" "$lz_lck0" "$lz_lck1") |" \
  "$(kib_per "$n" "$lz_pss0" "$lz_pss1") |"
echo "| preload (before: empty dir; after: preloaded) |" \
  "$b_rss | $b_lck | $b_pss | $pl_rss1 | $pl_lck1 | $pl_pss1 |" \
  "$(kib_per "$n" "$b_rss" "$pl_rss1") | $(kib_per "$n" "$b_lck" "$pl_lck1") |" \
  "$(kib_per "$n" "$b_pss" "$pl_pss1") |"
echo "| preload, after all $n exports read |" \
  "$b_rss | $b_lck | $b_pss | $pl_rss2 | $pl_lck2 | $pl_pss2 |" \
  "$(kib_per "$n" "$b_rss" "$pl_rss2") | $(kib_per "$n" "$b_lck" "$pl_lck2") |" \
  "$(kib_per "$n" "$b_pss" "$pl_pss2") |"
echo "| preload, $held connections held at once (a 4 KiB read on each;" \
  "per volume: per connection) |" \
  "$pl_rss2 | $pl_lck2 | $pl_pss2 | $h_rss | $h_lck | $h_pss |" \
  "$(kib_per "$held" "$pl_rss2" "$h_rss") | $(kib_per "$held" "$pl_lck2" "$h_lck") |" \
  "$(kib_per "$held" "$pl_pss2" "$h_pss") |"
echo "| preload, after those connections closed |" \
  "$b_rss | $b_lck | $b_pss | $pl_rss3 | $pl_lck3 | $pl_pss3 |" \
  "$(kib_per "$n" "$b_rss" "$pl_rss3") | $(kib_per "$n" "$b_lck" "$pl_lck3") |" \
  "$(kib_per "$n" "$b_pss" "$pl_pss3") |"
echo
echo "The preloading server ran without CAP_IPC_LOCK (CapEff $b_caps) under" \
  "RLIMIT_MEMLOCK $b_limit bytes (systemd/nbdcrypt@.service LimitMEMLOCK=$memlock_spec)."
echo
echo "## One nbdkit per volume (M=$m processes, file FILE kms-config=C)"
echo
echo "| | RSS KiB | VmLck KiB | Pss KiB | KMS connections | KMS messages | start s |"
echo "|---|---|---|---|---|---|---|"
echo "| per process (mean of $m) | $(per "$pp_rss" "$m") | $(per "$pp_lck" "$m") |" \
  "$(per "$pp_pss" "$m") | $(per "$pp_sess" "$m") | $(per "$pp_req" "$m") |" \
  "$(awk -v t="$pp_start_ms" -v m="$m" 'BEGIN { printf "%.2f", t / 1000 / m }') |"
echo "| total, $m processes (measured) | $pp_rss | $pp_lck | $pp_pss | $pp_sess | $pp_req |" \
  "$(awk -v t="$pp_start_ms" 'BEGIN { printf "%.1f", t / 1000 }') |"
ex_rss=$(awk -v a="$pp_rss" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", a / m * n }')
ex_lck=$(awk -v a="$pp_lck" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", a / m * n }')
ex_pss=$(awk -v a="$pp_pss" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", a / m * n }')
[ "$m" -lt "$n" ] &&
echo "| total, $n processes (EXTRAPOLATED: mean x $n) | $ex_rss | $ex_lck | $ex_pss |" \
  "$(awk -v a="$pp_sess" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", a / m * n }') |" \
  "$(awk -v a="$pp_req" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", a / m * n }') |" \
  "$(awk -v t="$pp_start_ms" -v m="$m" -v n="$n" 'BEGIN { printf "%.0f", t / 1000 / m * n }') |"
echo "| one process, $n volumes preloaded (measured) | $pl_rss1 | $pl_lck1 | $pl_pss1 |" \
  "$pl_sess | $pl_req | $(awk -v t="$pl_start_ms" 'BEGIN { printf "%.1f", t / 1000 }') |"
echo
echo "RSS counts shared library pages in every process; Pss divides them among the processes" \
  "sharing them, so the Pss total is the fairer sum."
echo
echo "## fio, nbd engine, ${fio_seconds} s each, the $n volumes preloaded" \
  "(aggregate MB/s, median of $fio_reps)"
echo
echo "| workload | $nexp exports, $nexp jobs x depth $qd | 1 export, $nexp jobs x depth $qd |" \
  "1 export, 1 job x depth $((qd * nexp)) | $nexp exports / 1 export ($nexp jobs) |"
echo "|---|---|---|---|---|"
for rw in randread randwrite read; do
  label=$rw
  [ "$rw" = read ] && label="read (1 MiB sequential)"
  [ "$rw" != read ] && label="$rw (4 KiB)"
  echo "| $label | ${fio_mb[$rw,many]} | ${fio_mb[$rw,one]} | ${fio_mb[$rw,single]} |" \
    "$(ratio "${fio_mb[$rw,many]}" "${fio_mb[$rw,one]}") |"
done
echo
fio_lck1=$(cat "$tmpdir/fast.lck-peak" 2>/dev/null || echo 0)
echo "This server ran with CAP_IPC_LOCK (no locked-memory limit). Its VmLck: $fio_lck0 KiB" \
  "before fio, $fio_lck1 KiB at most during the runs (sampled every 0.2 s; up to $nexp" \
  "connections of nbdkit's 16 threads each, every thread with its own locked XTS context" \
  "for the volume it serves)."
echo
echo "Under the limit (the preloading server above, RLIMIT_MEMLOCK $b_limit bytes): 1 MiB" \
  "sequential reads on $nexp exports at once (depth $qd each): $lim_mb MB/s; VmLck" \
  "$lim_lck0 KiB before, $lim_peak KiB at most."
if [ -s "$tmpdir/fio-errors" ]; then
  echo
  echo "fio errors:"
  echo
  sed 's/^/    /' "$tmpdir/fio-errors"
fi
echo
echo "## KMS operations by phase (pykmip-server's log)"
echo
echo "| phase | operations |"
echo "|---|---|"
echo "| formatting $n volumes | $f_byop |"
echo "| first connection to each of $n exports (preload=false) | $lz_byop |"
echo "| preload of $n volumes (start of nbdkit) | $pl_byop |"
echo "| first byte on each of $n exports after preload | $plt_byop |"
echo "| start of $m nbdkit processes, one volume each | $pp_byop |"
echo
echo "## Against the targets"
echo
pv_rss=$(kib_per "$n" "$b_rss" "$pl_rss1")
pv_lck=$(kib_per "$n" "$b_lck" "$pl_lck1")
# Locked memory for the limit: the larger per-volume figure, after every export was read once
# (engines keyed and used, not only opened).
pv_lck2=$(kib_per "$n" "$b_lck" "$pl_lck2")
pv_lim=$(awk -v a="$pv_lck" -v b="$pv_lck2" 'BEGIN { print (a > b ? a : b) }')
fit=$(awk -v lim="$memlock_bytes" -v b="$b_lck" -v p="$pv_lim" \
  'BEGIN { if (p <= 0) print "unbounded"; else printf "%d", (lim / 1024 - b) / p }')
need=$(awk -v b="$b_lck" -v p="$pv_lim" -v n="$n" 'BEGIN { printf "%.0f", b + p * n }')
how_pp=measured
[ "$m" -ge "$n" ] || how_pp="extrapolated from $m"
mem_x=$(awk -v e="$ex_rss" -v o="$pl_rss1" 'BEGIN { printf "%.1f", e / o }')
mem_xp=$(awk -v e="$ex_pss" -v o="$pl_pss1" 'BEGIN { printf "%.1f", e / o }')
echo "| what | target | measured | |"
echo "|---|---|---|---|"
echo "| KMS messages at preload | <= 1 per 32 volumes ($(awk -v n="$n" \
  'BEGIN { printf "%d", (n + 31) / 32 }') for $n) | $pl_req ($(per "$pl_req" "$n") per volume)," \
  "$pl_sess connections | $(verdict "$((pl_req * 32 <= n + 31))") |"
echo "| RSS per opened volume beyond the base | <= 64 KiB | $pv_rss KiB |" \
  "$(verdict "$(awk -v x="$pv_rss" 'BEGIN { print (x <= 64) }')") |"
echo "| VmLck per opened volume beyond the base | <= 8 KiB | $pv_lck KiB |" \
  "$(verdict "$(awk -v x="$pv_lck" 'BEGIN { print (x <= 8) }')") |"
echo "| VmLck per volume, after every export was read once | <= 8 KiB | $pv_lck2 KiB |" \
  "$(verdict "$(awk -v x="$pv_lck2" 'BEGIN { print (x <= 8) }')") |"
echo "| all N under LimitMEMLOCK=$memlock_spec |" \
  "base + N x per-volume <= $((memlock_bytes / 1024)) KiB |" \
  "$b_lck + $n x $pv_lim = $need KiB (fits $fit volumes) |" \
  "$(verdict "$(awk -v x="$need" -v l="$memlock_bytes" 'BEGIN { print (x <= l / 1024) }')") |"
echo "| busy threads under the limit: 1 MiB reads, $nexp exports | no error |" \
  "$lim_mb MB/s, VmLck at most $lim_peak KiB of $((b_limit / 1024)) |" \
  "$(verdict "$([ "$lim_mb" != failed ] && echo 1 || echo 0)") |"
pc_lck=$(kib_per "$held" "$pl_lck2" "$h_lck")
need_c=$(awk -v b="$need" -v c="$pc_lck" -v n="$n" 'BEGIN { printf "%.0f", b + c * n }')
echo "| the same with a client connected to every volume | base + N x (per-volume +" \
  "per-connection) <= $((memlock_bytes / 1024)) KiB | $need + $n x $pc_lck = $need_c KiB |" \
  "$(verdict "$(awk -v x="$need_c" -v l="$memlock_bytes" 'BEGIN { print (x <= l / 1024) }')") |"
# A busy connection: what one of the 1 MiB read connections above added at its peak.
pb_lck=$(kib_per "$nexp" "$lim_lck0" "$lim_peak")
need_b=$(awk -v b="$need" -v c="$pb_lck" -v n="$n" 'BEGIN { printf "%.0f", b + c * n }')
echo "| the same with every volume's client busy (1 MiB reads, depth $qd) | base + N x" \
  "(per-volume + per-busy-connection) <= $((memlock_bytes / 1024)) KiB |" \
  "$need + $n x $pb_lck = $need_b KiB |" \
  "$(verdict "$(awk -v x="$need_b" -v l="$memlock_bytes" 'BEGIN { print (x <= l / 1024) }')") |"
echo "| one process vs one per volume, memory | >= 10x less | RSS ${mem_x}x," \
  "Pss ${mem_xp}x ($how_pp) |" \
  "$(verdict "$(awk -v x="$mem_xp" 'BEGIN { print (x >= 10) }')") |"
for rw in randread randwrite read; do
  r=$(ratio "${fio_mb[$rw,many]}" "${fio_mb[$rw,one]}")
  echo "| fio $rw: $nexp exports vs 1 export | within 10% (ratio >= 0.90) | $r |" \
    "$(verdict "$(awk -v x="$r" 'BEGIN { print (x ~ /^[0-9.]+$/ && x >= 0.9) }')") |"
done
echo
echo "Whole run: $((SECONDS - started)) s."
