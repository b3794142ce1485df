# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the uring tests after functions.sh: the plugin under test and the client side.
requires nbdkit
requires_py nbd
: "${NBDCRYPT_URING_PLUGIN:?}"
io="$PYTHON $srcdir/uring/uring_io.py"
