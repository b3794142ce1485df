#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbdcrypt filter stacked on the uring plugin (buffered and direct, 512- and 4096-byte
# sectors): plaintext written reads back through the same stack and through the filter over
# nbdkit's file plugin, and the image on disk is AES-XTS ciphertext that python-cryptography
# decrypts (tweak = sector number, little-endian: aes-xts-plain64) to the same plaintext.
source "$srcdir/functions.sh"
requires nbdkit
requires_py nbd
requires_py cryptography
: "${NBDCRYPT_URING_PLUGIN:?}" "${NBDCRYPT_FILTER:?}"
io="$PYTHON $srcdir/uring/uring_io.py"
key=$tmpdir/vol.key
head -c 64 /dev/urandom >"$key"

for combo in "true 4096" "true 512" "false 4096"; do
  read -r direct ss <<<"$combo"
  echo "direct=$direct sector-size=$ss"
  rm -f "$tmpdir/img" "$tmpdir/ref"
  truncate -s 8M "$tmpdir/img"
  "$PYTHON" - "$key" "$tmpdir/img" "$tmpdir/ref" $ss <<'PY'
# The reference starts as what the filter shows for an all-zero image: zeros decrypted.
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key, img, ref, ss = open(sys.argv[1], 'rb').read(), sys.argv[2], sys.argv[3], int(sys.argv[4])
raw = open(img, 'rb').read()
out = bytearray()
for n in range(len(raw) // ss):
    d = Cipher(algorithms.AES(key), modes.XTS(n.to_bytes(16, 'little'))).decryptor()
    out += d.update(raw[n * ss:(n + 1) * ss]) + d.finalize()
open(ref, 'wb').write(out)
PY
  start_nbdkit crypt --filter="$NBDCRYPT_FILTER" "$NBDCRYPT_URING_PLUGIN" \
    file="$tmpdir/img" direct=$direct key-file="$key" sector-size=$ss
  $io write-small "$uri" "$tmpdir/ref" $RANDOM 40
  $io verify "$uri" "$tmpdir/ref" $RANDOM 20
  stop_nbdkit crypt

  start_nbdkit crypt-file --filter="$NBDCRYPT_FILTER" file file="$tmpdir/img" \
    key-file="$key" sector-size=$ss
  $io verify "$uri" "$tmpdir/ref" $RANDOM 20
  stop_nbdkit crypt-file

  "$PYTHON" - "$key" "$tmpdir/img" "$tmpdir/ref" $ss <<'PY'
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key, img, ref, ss = open(sys.argv[1], 'rb').read(), sys.argv[2], sys.argv[3], int(sys.argv[4])
raw, plain = open(img, 'rb').read(), open(ref, 'rb').read()
assert raw != plain, 'the image holds plaintext'
for n in range(len(raw) // ss):
    d = Cipher(algorithms.AES(key), modes.XTS(n.to_bytes(16, 'little'))).decryptor()
    got = d.update(raw[n * ss:(n + 1) * ss]) + d.finalize()
    if got != plain[n * ss:(n + 1) * ss]:
        sys.exit(f'FAIL: sector {n} does not decrypt to the plaintext written')
print('ciphertext checked with python-cryptography')
PY
done
echo PASS
