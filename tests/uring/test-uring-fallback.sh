#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Without io_uring (io_uring_setup failing with ENOSYS, as on an old kernel, or EPERM, as with
# kernel.io_uring_disabled), the plugin says so and serves the same data through
# pread/pwrite, buffered and direct.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}" "${NO_IO_URING:?}"
io="$PYTHON $srcdir/uring/uring_io.py"

for err in ENOSYS EPERM; do
  for direct in false true; do
    rm -f "$tmpdir/img" "$tmpdir/ref"
    truncate -s 24M "$tmpdir/img"
    truncate -s 24M "$tmpdir/ref"
    ( sanitizer_env "$NBDCRYPT_URING_PLUGIN"
      exec "$NO_IO_URING" $err nbdkit -U - -v "$NBDCRYPT_URING_PLUGIN" file="$tmpdir/img" \
        direct=$direct --run "$io write \"\$uri\" $tmpdir/ref 7 20 &&
                              $io verify \"\$uri\" $tmpdir/ref 8 20" ) \
      >"$tmpdir/log" 2>&1 || { cat "$tmpdir/log"; exit 1; }
    want='warning: .*(no io_uring|io_uring is disabled).*falling back to pread/pwrite'
    grep -Eq "$want" "$tmpdir/log" || { echo "FAIL: no fallback warning ($err)"; cat "$tmpdir/log"; exit 1; }
    # The requests really went through the sync engine.
    grep -q 'uring: sync: ' "$tmpdir/log" || { echo "FAIL: sync engine not used"; exit 1; }
    cmp "$tmpdir/img" "$tmpdir/ref"
    echo "$err direct=$direct: ok"
  done
done
echo PASS
