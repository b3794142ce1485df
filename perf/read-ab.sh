#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A/B runner for the 1 MiB read/write cells: plain vs nbdcrypt variants, interleaved,
# medians and ratios (see perf/read-ab.py --help). Needs a built tree (build/ by default).
set -euo pipefail
export PATH="/usr/bin:/usr/sbin:$PATH"
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/read-ab.py" "$@"
