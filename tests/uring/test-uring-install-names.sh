#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The plugin installs as nbdkit-nbdcrypt-uring-plugin.so (nbdkit nbdcrypt-uring), and under its
# earlier name nbdkit-uring-plugin.so as a link to it, so existing command lines keep working.
source "$srcdir/functions.sh"
requires nbdkit
requires meson
: "${builddir:?}"
dest=$tmpdir/dest
meson install -C "$builddir" --no-rebuild --quiet --destdir "$dest" >"$tmpdir/install.log" 2>&1 ||
  { cat "$tmpdir/install.log"; echo "FAIL: meson install"; exit 1; }
plugindir=$dest$(pkg-config --variable=plugindir nbdkit)
new=$plugindir/nbdkit-nbdcrypt-uring-plugin.so
old=$plugindir/nbdkit-uring-plugin.so
[ -f "$new" ] || { echo "FAIL: $new not installed"; ls -R "$dest"; exit 1; }
[ -L "$old" ] && [ "$(readlink "$old")" = nbdkit-nbdcrypt-uring-plugin.so ] ||
  { echo "FAIL: $old is not a link to the new name"; ls -l "$plugindir"; exit 1; }
for so in "$new" "$old"; do
  ( sanitizer_env "$so"; exec nbdkit "$so" --dump-plugin ) | grep -qx 'name=nbdcrypt-uring' ||
    { echo "FAIL: $so does not load as nbdcrypt-uring"; exit 1; }
done
truncate -s 1M "$tmpdir/img"
size=$( sanitizer_env "$old"; exec nbdkit -U - "$old" file="$tmpdir/img" \
           --run 'env -u LD_PRELOAD nbdinfo --size "$uri"' )
[ "$size" = 1048576 ] || { echo "FAIL: served through the old name: size $size"; exit 1; }
echo PASS
