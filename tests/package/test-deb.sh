#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: the Debian package. Builds it with dpkg-buildpackage from a copy of the source
# tree (the checkout is not touched), runs lintian (no errors allowed), installs it with dpkg,
# uses the filter and the uring plugin by name (nbdkit --filter=nbdcrypt, nbdkit
# nbdcrypt-uring), finds every man page with man -w, verifies the installed unit with
# systemd-analyze, then purges the package and checks that none of its files remain.
# Needs root (it installs packages): installs debhelper, dpkg-dev, lintian, man-db itself.
source "$srcdir/functions.sh"

if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "$0: SKIP: installing a package needs root (or passwordless sudo)"; exit 77
  fi
else
  SUDO=
fi
requires dpkg
requires apt-get
requires nbdkit
requires nbdinfo

# Tools, and the build dependencies from debian/control, installed only when missing.
need=""
for p in debhelper dpkg-dev lintian man-db fakeroot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    need="$need $p"
done
if [ -n "$need" ]; then
  echo "installing:$need"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $need >/dev/null
fi
if ! (cd "$top_srcdir" && dpkg-checkbuilddeps) 2>"$tmpdir/builddeps"; then
  missing=$(sed -n 's/.*Unmet build dependencies: //p' "$tmpdir/builddeps" |
            sed 's/([^)]*)//g; s/|[^ ]*//g')
  echo "installing build dependencies: $missing"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $missing >/dev/null
fi

if dpkg-query -W -f='${Status}' nbdcrypt 2>/dev/null | grep -q "install ok installed"; then
  echo "$0: FAIL: an nbdcrypt package is already installed here; this test installs and" \
       "removes its own. Remove it first: dpkg --purge nbdcrypt" >&2
  exit 1
fi

# 1. Build from a copy: the files git knows about plus new ones it does not ignore (the tree
# as it is being tested), or everything but build directories outside a git checkout.
src="$tmpdir/src/nbdcrypt"
mkdir -p "$src"
if git -C "$top_srcdir" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$top_srcdir" && git ls-files -co --exclude-standard -z |
     tar --null -T - -cf -) | tar -xf - -C "$src"
else
  tar -C "$top_srcdir" --exclude='./build*' --exclude=./demo -cf - . | tar -xf - -C "$src"
fi
start=$(date +%s)
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -b -us -uc) \
     >"$tmpdir/build.log" 2>&1; then
  tail -50 "$tmpdir/build.log" >&2
  echo "$0: FAIL: dpkg-buildpackage failed" >&2
  exit 1
fi
echo "dpkg-buildpackage -b: $(( $(date +%s) - start )) s"
deb=$(ls "$tmpdir"/src/nbdcrypt_*.deb)
dpkg-deb -c "$deb"

# 2. lintian: warnings are reported, errors fail.
lintian --fail-on error "$deb" | tee "$tmpdir/lintian.txt"
echo "lintian: $(grep -c '^E:' "$tmpdir/lintian.txt") errors, $(grep -c '^W:' "$tmpdir/lintian.txt") warnings"

# 3. Install, and purge at the end whatever happens.
on_exit "$SUDO dpkg --purge nbdcrypt >/dev/null 2>&1"
$SUDO dpkg -i "$deb"
dpkg-query -L nbdcrypt > "$tmpdir/files"
filterdir=$(pkg-config --variable=filterdir nbdkit 2>/dev/null ||
            nbdkit --dump-config | sed -n 's/^filterdir=//p')
plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
[ -f "$filterdir/nbdkit-nbdcrypt-filter.so" ]
[ -f "$plugindir/nbdkit-nbdcrypt-uring-plugin.so" ]
[ -L "$plugindir/nbdkit-uring-plugin.so" ]
[ -f /etc/nbdcrypt/kms.conf.example ]

# The command, its version the package's.
version=$(dpkg-query -W -f='${Version}' nbdcrypt)
[ "$(nbdcrypt --version)" = "nbdcrypt ${version%%-*}" ]

# The filter by name, over the memory plugin, with a raw key file.
head -c 64 /dev/urandom > "$tmpdir/vol.key"
cd "$tmpdir"
out=$(nbdkit -U - --filter=nbdcrypt memory 64M key-file="$tmpdir/vol.key" \
        --run 'nbdsh -u "$uri" -c "h.pwrite(b\"by-name\" * 512, 4096); assert h.pread(3584, 4096) == b\"by-name\" * 512" && nbdinfo "$uri"')
echo "$out"
grep -q 'export-size: 67108864' <<<"$out"

# The uring plugin by name, under the filter, over a volume formatted by the installed
# command with a local KEK; the old plugin name still works.
truncate -s 32M "$tmpdir/vol.img"
nbdcrypt format "$tmpdir/vol.img" --kek-file "$tmpdir/host.kek" --create-kek
out=$(nbdkit -U - --filter=nbdcrypt nbdcrypt-uring file="$tmpdir/vol.img" \
        kek-file="$tmpdir/host.kek" --run 'nbdinfo "$uri"')
grep -q 'export-size: 32505856' <<<"$out"
nbdkit -U - uring file="$tmpdir/vol.img" --run 'nbdinfo --size "$uri"' | grep -qx 33554432

# Every man page, and the unit as installed (its Documentation= pages included).
for page in nbdkit-nbdcrypt-filter.1 nbdkit-nbdcrypt-uring-plugin.1 nbdcrypt.8 \
            nbdcrypt-kms.conf.5; do
  man -w "${page##*.}" "${page%.*}"
done
if command -v systemd-analyze >/dev/null; then
  unit=$(grep '/nbdcrypt@.service$' "$tmpdir/files")
  mkdir "$tmpdir/units"
  cp "$unit" "$tmpdir/units/nbdcrypt@vol1.service"
  systemd-analyze verify "$tmpdir/units/nbdcrypt@vol1.service"
fi

# 4. Purge: nothing of the package remains (directories shared with others may).
$SUDO dpkg --purge nbdcrypt
left=0
while read -r f; do
  # Directories (and /lib, a link to a directory) may be shared with other packages.
  if { [ -e "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ]; then
    echo "left behind: $f" >&2; left=1
  fi
done < "$tmpdir/files"
[ ! -e /etc/nbdcrypt ] || { echo "left behind: /etc/nbdcrypt" >&2; left=1; }
[ $left = 0 ]
if nbdkit --filter=nbdcrypt null --help >/dev/null 2>&1; then
  echo "$0: FAIL: the filter still loads by name after purge" >&2; exit 1
fi
echo "$0: OK"
