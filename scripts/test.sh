#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, builds, and runs
#   1. every suite in a normal build (build/),
#   2. the unit tests under valgrind,
#   3. every suite but 'package' (the Debian package, man pages, unit) and 'gateway' (the
#      iSCSI stack: nbdfuse and tgtd, which ASan does not instrument, and time-bounded) with
#      ASan+UBSan (build-asan/),
#   4. the libFuzzer targets for a bounded time (build-fuzz/, clang), FUZZ_SECONDS each (60).
# Ends with one line "tests: N passed, N failed, N skipped"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
export PATH="/usr/bin:$PATH"

./scripts/install-deps.sh || { echo "test.sh: installing dependencies failed" >&2; exit 1; }

fuzz_seconds=${FUZZ_SECONDS:-60}
jobs=$(nproc)
failures=0
logs=()

setup () {  # setup DIR [meson options...]
  local dir=$1; shift
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

step () {  # step NAME COMMAND...: run, remember failure, keep going
  local name=$1; shift
  echo "=== $name"
  if ! "$@"; then
    echo "=== $name: FAILED" >&2
    failures=$((failures + 1))
  fi
}

run_suite () {  # run_suite BUILDDIR LOGNAME [meson test options...]
  local dir=$1 name=$2; shift 2
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs" --logbase "$name" "$@"
  local rc=$?
  logs+=("$dir/meson-logs/$name.json")
  return $rc
}

# 1. normal build
step "build" bash -c "$(declare -f setup); setup build && ninja -C build"
step "tests" run_suite build testlog

# 2. unit tests under valgrind
step "valgrind (unit)" run_suite build testlog-valgrind --setup valgrind --suite unit

# 3. sanitizers
step "build (asan+ubsan)" bash -c "$(declare -f setup); setup build-asan -Db_sanitize=address,undefined -Db_lundef=false && ninja -C build-asan"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  step "tests (asan+ubsan)" run_suite build-asan testlog-asan --no-suite package --no-suite gateway

# 4. fuzzing (clang libFuzzer), bounded time
if command -v clang >/dev/null; then
  step "build (fuzz)" bash -c "$(declare -f setup); CC=clang setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false && ninja -C build-fuzz"
  FUZZ_SECONDS=$fuzz_seconds step "fuzz" run_suite build-fuzz testlog-fuzz --suite fuzz
fi

# One closing line over every run above.
/usr/bin/python3 - "$failures" "${logs[@]}" <<'PY'
import json, sys, os
steps_failed = int(sys.argv[1])
passed = failed = skipped = 0
bad = []
for path in sys.argv[2:]:
    if not os.path.exists(path):
        continue
    for line in open(path):
        t = json.loads(line)
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
            bad.append((os.path.dirname(os.path.dirname(path)), t))
# Repeat each failure's name and the end of its output here, where a log that keeps only
# its tail still shows them.
for build, t in bad:
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    tail = out.rstrip().splitlines()[-25:]
    print(f"--- FAILED {build}: {t.get('name')} ({t.get('result')}, "
          f"{t.get('duration', 0):.1f}s); its last lines:")
    for l in tail:
        print(f"    {l}")
if steps_failed and failed == 0:
    failed = steps_failed   # a build step failed: count it, never report green
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
