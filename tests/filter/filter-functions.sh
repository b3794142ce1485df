# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the filter tests that check through python clients and the python3-cryptography
# oracle, after functions.sh: what they need, $here, and a fresh 64-byte key in $key.
requires nbdkit
requires_py nbd
requires_py cryptography

here="$srcdir/filter"
key="$tmpdir/vol.key"
head -c 64 /dev/urandom >"$key"
