#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A filesystem on top: mkfs.ext4 through the filter (exposed as a file by nbdfuse), files
# written with debugfs and, where loop mounts work, by the kernel's ext4; e2fsck clean and
# files equal after restarting nbdkit; the backing file holds no ext4 structure or plaintext.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdfuse
requires fusermount3
requires mkfs.ext4
requires debugfs
requires e2fsck
requires_py nbd
[ -c /dev/fuse ] || skip "no /dev/fuse"

key="$tmpdir/vol.key"
head -c 64 /dev/urandom >"$key"
fuse="$tmpdir/fuse"
mnt="$tmpdir/mnt"
mkdir "$fuse" "$mnt"
img="$fuse/nbd"

# Files to store: random data of odd sizes, an empty file, and a plaintext canary that must
# never show up in the backing file.
src="$tmpdir/src"
mkdir -p "$src/dir/sub"
head -c $((1024 * 1024 + 123)) /dev/urandom >"$src/big.bin"
head -c 4097 /dev/urandom >"$src/dir/odd.bin"
head -c 1 /dev/urandom >"$src/dir/sub/one.bin"
: >"$src/dir/empty"
for i in $(seq 2000); do echo "NBDCRYPT-PLAINTEXT-CANARY line $i"; done >"$src/canary.txt"

fuse_up () {   # fuse_up SERVER-NAME: expose $uri as $img
  rm -f "$tmpdir/nbdfuse.pid"
  nbdfuse -P "$tmpdir/nbdfuse.pid" "$fuse" "$uri" 2>"$tmpdir/nbdfuse.log" &
  for _ in $(seq 300); do [ -s "$tmpdir/nbdfuse.pid" ] && break; sleep 0.1; done
  [ -s "$tmpdir/nbdfuse.pid" ] || { echo "$0: nbdfuse did not start" >&2; cat "$tmpdir/nbdfuse.log" >&2; exit 1; }
}
fuse_down () {
  local pid
  pid=$(cat "$tmpdir/nbdfuse.pid" 2>/dev/null) || return 0
  fusermount3 -u "$fuse" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$tmpdir/nbdfuse.pid"
}
on_exit fuse_down
on_exit 'mountpoint -q "$mnt" && { umount "$mnt" || umount -l "$mnt"; }'

for ss in 4096 512; do
  echo "== sector-size $ss"
  disk="$tmpdir/disk-$ss.img"
  truncate -s 64M "$disk"
  start_nbdkit "ext4-$ss" --filter="$NBDCRYPT_FILTER" file "$disk" key-file="$key" sector-size=$ss
  fuse_up
  mkfs.ext4 -q -F -E nodiscard -L nbdcrypt "$img"

  # Userspace writes (work everywhere).
  cat >"$tmpdir/debugfs.cmds" <<CMDS
mkdir dir
mkdir dir/sub
write $src/big.bin big.bin
write $src/canary.txt canary.txt
write $src/dir/odd.bin dir/odd.bin
write $src/dir/sub/one.bin dir/sub/one.bin
write $src/dir/empty dir/empty
CMDS
  debugfs -w -f "$tmpdir/debugfs.cmds" "$img" >"$tmpdir/debugfs.out" 2>&1

  # Kernel ext4 on a loop device over the FUSE file, when this machine allows loop mounts.
  mounted=no
  # (NBDCRYPT_TEST_NO_MOUNT=1 exercises the debugfs-only path where loop mounts do work.)
  if [ "$(id -u)" = 0 ] && [ -z "${NBDCRYPT_TEST_NO_MOUNT:-}" ] &&
     mount -o loop "$img" "$mnt" 2>"$tmpdir/mount.err"; then
    mounted=yes
    mkdir "$mnt/kernel"
    cp "$src/big.bin" "$mnt/kernel/big.bin"
    for i in $(seq 200); do head -c $((i * 37)) "$src/big.bin" >"$mnt/kernel/f$i"; done
    sync
    umount "$mnt"
  else
    echo "no loop mount here ($(cat "$tmpdir/mount.err" 2>/dev/null)): debugfs only"
  fi
  e2fsck -fn "$img" >"$tmpdir/fsck.out" 2>&1 ||
    { echo "$0: FAIL: e2fsck before restart:" >&2; cat "$tmpdir/fsck.out" >&2; exit 1; }
  # The plaintext superblock as the client sees it, for the check below.
  dd if="$img" of="$tmpdir/sb.plain" bs=1024 skip=1 count=1 status=none
  fuse_down
  stop_nbdkit "ext4-$ss"

  # The backing file: no ext4 magic where the superblock is, no plaintext anywhere.
  "$PYTHON" - "$disk" "$tmpdir/sb.plain" "$src" <<'PY'
import os, sys
disk, sb, src = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3]
data = open(disk, "rb").read()
assert sb[0x38:0x3a] == b"\x53\xef", "the client did not see an ext4 superblock"
if data[1024 + 0x38:1024 + 0x3a] == b"\x53\xef" or data[1024:2048] == sb:
    sys.exit("FAIL: the backing file holds the plaintext ext4 superblock")
for needle, what in [(b"NBDCRYPT-PLAINTEXT-CANARY", "canary text"), (b"lost+found", "a directory name"),
                     (sb[:64], "superblock bytes"),
                     (open(os.path.join(src, "big.bin"), "rb").read()[4096:4160], "file data"),
                     (open(os.path.join(src, "dir/odd.bin"), "rb").read()[:64], "file data")]:
    if data.find(needle) >= 0:
        sys.exit("FAIL: the backing file contains plaintext (%s)" % what)
print("backing file: no ext4 superblock, no plaintext")
PY

  # Restart nbdkit: the filesystem is clean and every file reads back equal.
  start_nbdkit "ext4-$ss-again" --filter="$NBDCRYPT_FILTER" file "$disk" key-file="$key" \
    sector-size=$ss
  fuse_up
  e2fsck -fn "$img" >"$tmpdir/fsck.out" 2>&1 ||
    { echo "$0: FAIL: e2fsck after restart:" >&2; cat "$tmpdir/fsck.out" >&2; exit 1; }
  for f in big.bin canary.txt dir/odd.bin dir/sub/one.bin dir/empty; do
    rm -f "$tmpdir/out"
    debugfs -R "dump $f $tmpdir/out" "$img" >/dev/null 2>&1
    cmp "$src/$f" "$tmpdir/out" || { echo "$0: FAIL: $f differs after restart" >&2; exit 1; }
  done
  if [ $mounted = yes ]; then
    mount -o ro,loop "$img" "$mnt"
    cmp "$src/big.bin" "$mnt/kernel/big.bin"
    for i in $(seq 200); do
      head -c $((i * 37)) "$src/big.bin" | cmp - "$mnt/kernel/f$i"
    done
    cmp "$src/canary.txt" "$mnt/canary.txt"
    umount "$mnt"
    echo "kernel ext4: 201 files read back equal after restart"
  fi
  echo "e2fsck clean after restart, debugfs files equal"
  fuse_down
  stop_nbdkit "ext4-$ss-again"

  # Control: with another key the same disk is noise, so e2fsck must not find a filesystem.
  head -c 64 /dev/urandom >"$tmpdir/other.key"
  start_nbdkit "ext4-$ss-wrongkey" --filter="$NBDCRYPT_FILTER" file "$disk" \
    key-file="$tmpdir/other.key" sector-size=$ss
  fuse_up
  if e2fsck -fn "$img" >/dev/null 2>&1; then
    echo "$0: FAIL: e2fsck found a clean filesystem with the wrong key" >&2; exit 1
  fi
  fuse_down
  stop_nbdkit "ext4-$ss-wrongkey"
done
echo "$0: OK"
