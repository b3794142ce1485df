#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdcrypt performance suite: builds if needed, then runs fio (nbd engine) against nbdkit
# stacks side by side and writes perf/results/results.{json,md,png}.
#   perf/run.sh [--quick] [--reps N] [--out DIR] [--build DIR] [--help for the rest]
# Needs root for the filesystem workload (loop device + mount); --no-fs skips it.
set -euo pipefail
export PATH="/usr/bin:/usr/sbin:$PATH"
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/bench.py" "$@"
