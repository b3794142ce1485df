#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# run-fuzzer.sh FUZZER CORPUS_DIR: run a libFuzzer binary for FUZZ_SECONDS (read now, at run
# time; default 60) over a scratch copy of the seed corpus, so the committed corpus never
# changes. Crashes are written to the scratch directory and shown; the exit status is the
# fuzzer's.
set -euo pipefail
fuzzer=$1 corpus=$2
seconds=${FUZZ_SECONDS:-60}
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
if [ -d "$corpus" ]; then
  cp -r "$corpus"/. "$work/corpus/"
fi
# -rss_limit_mb: a decoder that allocates in proportion to a hostile length field fails here.
rc=0
timeout $((seconds + 120)) "$fuzzer" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" || rc=$?
if [ $rc -ne 0 ]; then
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "$0: crashing input $(basename "$f") (hex):" >&2
    od -An -tx1 -v "$f" | head -64 >&2
  done
fi
exit $rc
