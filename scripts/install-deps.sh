#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian 12 packages nbdcrypt builds and tests with. Idempotent: apt-get is only
# called when something is missing, so a second run costs nothing.
set -eu

PKGS="build-essential pkg-config meson ninja-build
      nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
      libssl-dev openssl liburing-dev
      fio qemu-utils cryptsetup-bin e2fsprogs fuse3
      tgt libiscsi-bin qemu-block-extra
      python3-pykmip python3-cryptography python3-cryptography-vectors
      clang libclang-rt-14-dev valgrind strace gnuplot-nox"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "nbdcrypt: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
