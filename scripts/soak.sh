#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Soak: the suite's adversarial tests, repeated, and the fuzzers for longer. The kinds of runs
# an outside attack makes - concurrent writers sharing blocks and sectors (with zeroes and
# trims), EIO and delay injected below the filter, kill -9 during rewraps, hostile KMIP server
# answers, malformed NBD requests, mutated headers and TTLV - each run ROUNDS times with fresh
# random seeds, so that a race that loses one write in a thousand shows up. Not part of
# ./scripts/test.sh (it takes an hour with the defaults); run it before a release:
#   ./scripts/soak.sh [ROUNDS [FUZZ_SECONDS]]     (defaults 20 and 600)
# Builds into build/ (and build-fuzz/ with clang) like test.sh; ends with one line
# "soak: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/bin:$PATH"
rounds=${1:-20}
fuzz_seconds=${2:-600}

./scripts/install-deps.sh || { echo "soak: installing dependencies failed" >&2; exit 1; }
[ -f build/build.ninja ] || meson setup build >/dev/null || exit 1
ninja -C build >/dev/null || { echo "soak: the build failed" >&2; exit 1; }

# Each: a test name of the suite (meson test NAME) that draws new random input every run.
tests=(
  uring-zero-race           # write-zeroes / trim / unaligned writes to one block in flight
  uring-multiconn           # four connections' read-modify-writes sharing blocks
  uring-readahead           # reads racing writes, zeroes and trims ahead of them
  filter-concurrent         # concurrent unaligned writers through the filter
  filter-write-ranges       # a stuck read-modify-write against writes elsewhere and beside it
  filter-errors             # EIO injected below the filter (nbdkit's error filter)
  filter-badinput           # malformed and out-of-range NBD requests
  test-volume-rewrap-kill   # kill -9 at random instants of a rewrap
  test-volume-rewrap-retry-kill  # a killed rewrap retried to a third KEK, killed again
  test-volume-header-splice # header copies from another volume
  kmip-hostile-text         # a KMIP server answering with control characters, other objects
)
passed=0 failed=0
known=$(meson test -C build --no-rebuild --list 2>/dev/null | sed -n 's/.* \/ //p')
printf '%-32s %8s %8s\n' test rounds failed
for t in "${tests[@]}"; do
  if ! grep -qx -- "$t" <<<"$known"; then    # a renamed test must not pass by vanishing
    printf '%-32s %8s %8s\n' "$t" - "missing"; failed=$((failed + 1)); continue
  fi
  f=0
  for _ in $(seq "$rounds"); do
    meson test -C build --no-rebuild --logbase "soak-$t" "$t" >/dev/null 2>&1 || f=$((f + 1))
  done
  printf '%-32s %8d %8d\n' "$t" "$rounds" "$f"
  passed=$((passed + rounds - f)); failed=$((failed + f))
done

if command -v clang >/dev/null; then
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
      -Db_lundef=false >/dev/null || exit 1
  fi
  ninja -C build-fuzz >/dev/null || { echo "soak: the fuzz build failed" >&2; exit 1; }
  for t in $(meson test -C build-fuzz --no-rebuild --list --suite fuzz 2>/dev/null | sed -n 's/.* \/ //p'); do
    if FUZZ_SECONDS=$fuzz_seconds meson test -C build-fuzz --no-rebuild --timeout-multiplier 0 \
         --logbase "soak-$t" "$t" >/dev/null 2>&1; then
      passed=$((passed + 1)); printf '%-32s %7ss %8d\n' "$t" "$fuzz_seconds" 0
    else
      failed=$((failed + 1)); printf '%-32s %7ss %8d\n' "$t" "$fuzz_seconds" 1
    fi
  done
fi
echo "soak: $passed passed, $failed failed"
[ "$failed" = 0 ]
