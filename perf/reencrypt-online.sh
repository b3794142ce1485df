#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Client throughput during an online re-encryption, against the same client with no run: one
# nbdkit (file plugin + nbdcrypt filter, KEK file) serving a SIZE_MB MiB volume in the page
# cache, and fio (nbd engine) for SECS seconds per cell,
#   idle     no run
#   during   right after 'nbdcrypt reencrypt --online --no-wait' (the run lasts longer than
#            the cell: checked, a cell that outlives its run is reported and not counted)
# alternating, REPS pairs per workload, medians; the ratio is during / idle. Each run is then
# waited for, so that the next pair starts from a volume at rest. The run's own rate (MB/s of
# data while fio ran) is shown too.
#   perf/reencrypt-online.sh [BUILD-DIR]
#   env: SIZE_MB (1024), SECS (4), REPS (3), SECTOR (4096), RATE (reencrypt-rate=, default 0),
#        ZONE (reencrypt-zone-size=, default the filter's 8M)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
nbdcrypt=$build/tools/nbdcrypt
filter=$build/plugin/nbdcrypt/nbdkit-nbdcrypt-filter.so
size_mb=${SIZE_MB:-1024}
secs=${SECS:-4}
reps=${REPS:-3}
sector=${SECTOR:-4096}
export PATH=/usr/bin:$PATH
dir=$(mktemp -d "${TMPDIR:-/tmp}/reencrypt-online.XXXXXX")
pid=
cleanup () { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

t=$dir/vol.img
truncate -s $(( (size_mb + 1) << 20 )) "$t"
"$nbdcrypt" format "$t" --kek-file "$dir/kek" --create-kek --sector-size "$sector" >/dev/null
dd if=/dev/urandom of="$t" bs=1M seek=1 count="$size_mb" conv=notrunc status=none
cat "$t" >/dev/null
params=(kek-file="$dir/kek" reencrypt-poll-interval=1 reencrypt-rate="${RATE:-0}")
[ -n "${ZONE:-}" ] && params+=(reencrypt-zone-size="$ZONE")
nbdkit -f -U "$dir/sock" --filter="$filter" file "$t" "${params[@]}" 2>"$dir/nbdkit.log" &
pid=$!
for _ in $(seq 50); do [ -S "$dir/sock" ] && break; sleep 0.1; done

# fio on the export: prints the total bandwidth in MB/s.
fio_run () {
  local rw=$1 bs=$2 qd=$3
  fio --name=c --ioengine=nbd --uri="nbd+unix:///?socket=$dir/sock" --rw="$rw" --bs="$bs" \
      --iodepth="$qd" --rwmixread=70 --size=$(( size_mb / 2 ))M --time_based \
      --runtime="$secs" --output-format=json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index("{"):])["jobs"][0]
print("%.1f" % ((j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6))'
}
done_sectors () {
  "$nbdcrypt" dump --json "$t" | /usr/bin/python3 -c 'import json,sys
r=json.load(sys.stdin)["reencrypt"]; print(-1 if r is None else r["done_sectors"])'
}
median () { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-22s %8s %8s %8s %6s  %s\n' workload idle during ratio runs 'run MB/s while measured'
for w in "randrw 4k 16" "write 1M 8" "read 1M 8"; do
  set -- $w
  idle=() during=() runrate=()
  for i in $(seq "$reps"); do
    idle+=("$(fio_run "$1" "$2" "$3")")
    "$nbdcrypt" reencrypt "$t" --kek-file "$dir/kek" --online --no-wait >/dev/null
    # The server starts within a poll interval: wait for its first zone.
    for _ in $(seq 100); do [ "$(done_sectors)" -gt 0 ] && break; sleep 0.05; done
    s0=$(done_sectors)
    bw=$(fio_run "$1" "$2" "$3")
    s1=$(done_sectors)
    if [ "$s1" -lt 0 ]; then
      echo "  (the run ended before fio did: a cell not counted; raise SIZE_MB)" >&2
    else
      during+=("$bw")
      runrate+=("$(awk -v s=$((s1 - s0)) -v ss="$sector" -v t="$secs" 'BEGIN { printf "%.0f", s * ss / t / 1e6 }')")
    fi
    while [ "$(done_sectors)" -ge 0 ]; do sleep 0.5; done
  done
  mi=$(printf '%s\n' "${idle[@]}" | median)
  md=$( [ ${#during[@]} -gt 0 ] && printf '%s\n' "${during[@]}" | median || echo 0)
  printf '%-22s %8s %8s %8s %6s  %s\n' "$1 $2 QD$3" "$mi" "$md" \
    "$(awk -v a="$md" -v b="$mi" 'BEGIN { printf "%.2f", a / b }')" "${#during[@]}/$reps" \
    "$(printf '%s\n' "${runrate[@]:-0}" | median)"
done
grep -c "re-encryption finished" "$dir/nbdkit.log" | sed 's/^/runs finished by the server: /'
