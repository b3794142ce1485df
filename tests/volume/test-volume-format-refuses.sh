#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt format` refuses targets that hold data — an ext4 filesystem (mkfs.ext4),
# a LUKS header (cryptsetup/qemu-img), an existing nbdcrypt volume, a single non-zero byte in the
# header area — and names what it found; nothing is written. --force formats anyway and clears
# the whole header area (no old LUKS key slot survives).
source "$srcdir/functions.sh"
requires mkfs.ext4

kek=$tmpdir/kek
head -c 32 /dev/urandom > "$kek"

refused () {  # refused IMAGE REGEX
  local img=$1 want=$2 before after
  before=$(sha256sum < "$img")
  if "$NBDCRYPT" format "$img" --kek-file "$kek" > "$tmpdir/out" 2>&1; then
    echo "$0: FAIL: format of $img succeeded"; exit 1
  fi
  grep -Eq "$want" "$tmpdir/out" || { echo "$0: FAIL: message:"; cat "$tmpdir/out"; exit 1; }
  grep -q -- "--force" "$tmpdir/out" || { echo "$0: FAIL: no hint about --force"; exit 1; }
  after=$(sha256sum < "$img")
  [ "$before" = "$after" ] || { echo "$0: FAIL: $img was modified"; exit 1; }
}

truncate -s 32M "$tmpdir/fs.img"
mkfs.ext4 -q -F "$tmpdir/fs.img"
refused "$tmpdir/fs.img" "ext2/3/4 filesystem"

# cryptsetup with a fixed PBKDF iteration count: qemu-img's LUKS creation benchmarks the PBKDF
# and fails now and then on a loaded machine ("Unable to get accurate CPU usage").
if command -v cryptsetup >/dev/null; then
  truncate -s 32M "$tmpdir/luks.img"
  printf pw > "$tmpdir/luks.pw"
  cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
    --cipher aes-xts-plain64 --key-size 512 --key-file "$tmpdir/luks.pw" "$tmpdir/luks.img"
  refused "$tmpdir/luks.img" "LUKS header"
fi

truncate -s 32M "$tmpdir/vol.img"
"$NBDCRYPT" format "$tmpdir/vol.img" --kek-file "$kek" >/dev/null
refused "$tmpdir/vol.img" "nbdcrypt volume header"

truncate -s 32M "$tmpdir/byte.img"
printf '\x01' | dd of="$tmpdir/byte.img" bs=1 seek=777777 conv=notrunc status=none
refused "$tmpdir/byte.img" "non-zero byte at offset 777777"

# Too small for a header and data.
truncate -s 1M "$tmpdir/small.img"
if "$NBDCRYPT" format "$tmpdir/small.img" --kek-file "$kek" 2>"$tmpdir/out"; then
  echo "$0: FAIL: 1 MiB target formatted"; exit 1
fi
grep -q "too small" "$tmpdir/out"

# A blank target formats; a target whose data area (past 1 MiB) holds data is fine too.
truncate -s 32M "$tmpdir/blank.img"
printf 'old data' | dd of="$tmpdir/blank.img" bs=1 seek=$((2 << 20)) conv=notrunc status=none
"$NBDCRYPT" format "$tmpdir/blank.img" --kek-file "$kek" >/dev/null

# --force over the LUKS image: formats, and nothing of the LUKS header area survives
# except our two header copies.
if [ -e "$tmpdir/luks.img" ]; then
  "$NBDCRYPT" format "$tmpdir/luks.img" --kek-file "$kek" --force >/dev/null
  "$NBDCRYPT" verify "$tmpdir/luks.img" --kek-file "$kek" >/dev/null
  "$PYTHON" - "$tmpdir/luks.img" <<'PY'
import sys
b = open(sys.argv[1], "rb").read(1 << 20)
rest = b[4096:512 * 1024] + b[512 * 1024 + 4096:]
assert rest.count(0) == len(rest), "old header bytes survive outside the two copies"
assert b"LUKS" not in b, "LUKS magic survives"
PY
fi
echo "format refused every occupied target"
