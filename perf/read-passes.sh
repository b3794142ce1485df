#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Per-GiB counters and passes over the data, nbdkit process, plain vs nbdcrypt on
# 1 MiB sequential reads (see perf/read-passes.py --help). Needs perf and a built tree.
set -euo pipefail
export PATH="/usr/bin:/usr/sbin:$PATH"
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/read-passes.py" "$@"
