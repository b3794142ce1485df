#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Key fetch latency from a loopback pykmip-server (started with tests/kmip-server.sh): a reused
# connection versus one connection per request, at each KMIP version given.
#   perf/kmip-fetch-bench.sh [BUILD-DIR [REQUESTS [VERSIONS...]]]   defaults: build 200 1.4
# A version "auto" negotiates (DiscoverVersions on each new handle) instead of pinning.
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
n=${2:-200}
shift 2 2>/dev/null || shift $#
versions=("${@:-1.4}")
export srcdir="$top/tests" top_srcdir="$top"
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"
bench="$build/perf/kmip-fetch-bench"
[ -x "$bench" ] || { echo "$0: build $bench first (ninja -C $build perf/kmip-fetch-bench)" >&2; exit 1; }

kmip_start_server
echo "pykmip-server $(/usr/bin/python3 -c 'import kmip; print(kmip.__version__)') on 127.0.0.1, TLS 1.2, ECDSA P-256 certificates; $(nproc) CPUs"
for v in "${versions[@]}"; do
  if [ "$v" = auto ]; then
    kmip_write_conf "$tmpdir/kms-$v.conf" max-version=2.0
  else
    kmip_write_conf "$tmpdir/kms-$v.conf" version=$v
  fi
  echo
  "$bench" "$tmpdir/kms-$v.conf" "$n"
done
