#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Offline re-encryption throughput against a plain sequential copy of the same target: on a
# file of SIZE_MB MiB of data (plus the 1 MiB header area), in the page cache,
#   copy        dd if=T of=T2 bs=1M conv=fsync (reads and writes every byte once, one fsync)
#   reencrypt   nbdcrypt reencrypt T --kek-file K [--zone-size ZONE] (reads, hashes, decrypts,
#               encrypts and writes every data sector, a journal record and two fdatasyncs per
#               zone)
# alternating, REPS runs each, medians in MB/s (10^6 bytes of data per second).
#   perf/reencrypt-bench.sh [BUILD-DIR]
#   env: SIZE_MB (1024), REPS (3), SECTOR (4096), ZONE (the command's default, 64M),
#        DIR (where the files go: a directory on the disk to measure; default $TMPDIR or /tmp)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
nbdcrypt=$build/tools/nbdcrypt
size_mb=${SIZE_MB:-1024}
reps=${REPS:-3}
sector=${SECTOR:-4096}
zone=${ZONE:-64M}
dir=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/reencrypt-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT

t=$dir/vol.img
truncate -s $(( (size_mb + 1) << 20 )) "$t"
"$nbdcrypt" format "$t" --kek-file "$dir/kek" --create-kek --sector-size "$sector" >/dev/null
# Ciphertext of random data is random: fill the data area once, read it once (page cache).
dd if=/dev/urandom of="$t" bs=1M seek=1 count="$size_mb" conv=notrunc,fsync status=none
cat "$t" >/dev/null

median () { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mbps () { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f\n", b / (ns / 1e9) / 1e6 }'; }
bytes=$(( size_mb << 20 ))
copy=() reenc=()
for i in $(seq "$reps"); do
  rm -f "$dir/copy.img"
  t0=$(date +%s%N)
  dd if="$t" of="$dir/copy.img" bs=1M conv=fsync status=none
  copy+=("$(mbps $(( bytes + (1 << 20) )) $(( $(date +%s%N) - t0 )))")
  rm -f "$dir/copy.img"
  t0=$(date +%s%N)
  "$nbdcrypt" reencrypt "$t" --kek-file "$dir/kek" --zone-size "$zone" >/dev/null 2>&1
  reenc+=("$(mbps "$bytes" $(( $(date +%s%N) - t0 )))")
done
c=$(printf '%s\n' "${copy[@]}" | median)
r=$(printf '%s\n' "${reenc[@]}" | median)
echo "target: $size_mb MiB of data, $sector-byte sectors, zone $zone, $(nproc) CPUs," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "copy (dd bs=1M conv=fsync) MB/s:      ${copy[*]}  median $c"
echo "reencrypt (whole command) MB/s:      ${reenc[*]}  median $r"
awk -v r="$r" -v c="$c" 'BEGIN { printf "ratio reencrypt/copy: %.2f\n", r / c }'
