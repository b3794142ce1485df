#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: every boolean parameter of the filter (discard=, allow-core-dumps=) takes the
# same words as nbdkit_parse_bool, in any case (on/off, true/false, yes/no, 1/0, ...), and
# refuses anything else with a message naming the parameter and quoting the value.
source "$srcdir/functions.sh"
requires nbdkit

key="$tmpdir/k64.key"; head -c 64 /dev/urandom >"$key"; chmod 600 "$key"
run () { ( sanitizer_env; exec timeout 60 nbdkit -U - --filter="$NBDCRYPT_FILTER" memory 1M \
           key-file="$key" "$@" --run true ) </dev/null; }

for param in discard allow-core-dumps; do
  for v in on off TRUE False yes NO 1 0 On t N; do
    if ! run "$param=$v" >"$tmpdir/out" 2>&1; then
      echo "$0: FAIL: $param=$v refused:" >&2; cat "$tmpdir/out" >&2; exit 1
    fi
  done
  for v in maybe 2 "" "on " enable; do
    if run "$param=$v" >"$tmpdir/out" 2>&1; then
      echo "$0: FAIL: $param='$v' accepted" >&2; exit 1
    fi
    grep -qF "nbdcrypt: $param: '$v' is not a boolean" "$tmpdir/out" ||
      { echo "$0: FAIL: $param='$v': unclear message:" >&2; cat "$tmpdir/out" >&2; exit 1; }
  done
  echo "$param: nbdkit's boolean words accepted in any case, others refused"
done
