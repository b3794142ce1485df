#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# dir=: every regular file directly in a directory is an export named by its file name.
# The listing shows them all, sorted, with their sizes; writes to several exports at once land
# in the right files (checked on disk); connections to one file, through one name or two (a
# hard link), share its read-modify-write lock; names that are not files directly in the directory (traversal,
# '/', hidden, symbolic links out of it or inside it, subdirectories, FIFOs, missing files,
# the default export '') are refused while the server keeps serving the others. Buffered and
# direct. A block device (a loop device, two nodes) as an export. file= with dir= is a
# startup error.
source "$srcdir/functions.sh"
source "$srcdir/uring/uring-functions.sh"
requires nbdinfo

exp="$tmpdir/exports"
ref="$tmpdir/ref"
mkdir "$exp" "$ref"
# Sizes with and without a partial last block (direct=true buffers that tail).
sizes=(65536 100000 1048576 1048577 2000000 4096 511 3145728 12345 4194304 777777 1500000)
names=()
for i in "${!sizes[@]}"; do
  n=$(printf 'vol%02d' $((11 - i)))   # created in reverse order: the listing must sort
  head -c "${sizes[i]}" /dev/urandom >"$exp/$n"
  names+=("$n")
done
ln "$exp/vol09" "$exp/hardlink"    # an export too: the same file as vol09
# Entries that are not exports.
mkdir "$exp/subdir"
echo secret >"$tmpdir/outside"
ln -s "$tmpdir/outside" "$exp/outside-link"
ln -s vol00 "$exp/inside-link"
: >"$exp/.hidden"
mkfifo "$exp/fifo"

# refused NAME URI-NAME REGEX: the export cannot be opened; the server log says why.
refused () {
  local name=$1 uname=$2 want=$3
  if timeout 20 env -u LD_PRELOAD nbdinfo --size "nbd+unix:///$uname?socket=$sock" \
       >"$tmpdir/out" 2>&1; then
    echo "$0: FAIL: export '$name' was served" >&2; exit 1
  fi
  grep -q "server has no export named" "$tmpdir/out" || {
    echo "$0: FAIL: export '$name': unexpected client error:" >&2; cat "$tmpdir/out" >&2; exit 1; }
  grep -Eq -- "$want" "$tmpdir/uring.log" || {
    echo "$0: FAIL: export '$name': log lacks /$want/:" >&2; cat "$tmpdir/uring.log" >&2; exit 1; }
}

# served NAME: the export is served, with its file's size.
served () {
  local got want
  got=$(env -u LD_PRELOAD nbdinfo --size "nbd+unix:///$1?socket=$sock")
  want=$(stat -c %s "$exp/$1")
  [ "$got" = "$want" ] || { echo "$0: FAIL: export $1: size $got, want $want" >&2; exit 1; }
}

for direct in true false; do
  echo "direct=$direct"
  start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" dir="$exp" direct=$direct

  # The listing: exactly the twelve files and the hard link, sorted, each with its size.
  env -u LD_PRELOAD nbdinfo --list --json "$uri" >"$tmpdir/list.json"
  "$PYTHON" - "$tmpdir/list.json" "$exp" <<'PY'
import json, os, sys
exports = json.load(open(sys.argv[1]))['exports']
got = [(e['export-name'], e['export-size']) for e in exports]
want = sorted((n, os.path.getsize(os.path.join(sys.argv[2], n)))
              for n in os.listdir(sys.argv[2]) if n.startswith('vol') or n == 'hardlink')
assert len(want) == 13, want
assert got == want, f'listing {got}\n   want {want}'
PY

  # Concurrent writes to seven exports, then each file read back from disk.
  busy=(vol00 vol01 vol03 vol04 vol06 vol08 vol11)
  for n in "${busy[@]}"; do cp "$exp/$n" "$ref/$n"; done
  env -u LD_PRELOAD $io exports "$sock" "$ref" 100 25 "${busy[@]}"
  for n in "${busy[@]}"; do cmp "$exp/$n" "$ref/$n"; done

  # One file, four connections writing records that share blocks, through two names (a hard
  # link): the read-modify-write lock is the file's, whichever connection or name writes.
  cp "$exp/vol09" "$ref/vol09"
  env -u LD_PRELOAD $io multiconn \
    "nbd+unix:///vol09?socket=$sock nbd+unix:///hardlink?socket=$sock" "$ref/vol09" 4 3
  cmp "$exp/vol09" "$ref/vol09"

  refused '../x' '../x' "export '\.\./x'.*not '', names with '/'"
  refused 'a/b' 'a%2Fb' "export 'a/b'.*names with '/'"
  refused '.hidden' '.hidden' "export '\.hidden'.*hidden files"
  refused 'outside-link' 'outside-link' "outside-link is a symbolic link"
  refused 'inside-link' 'inside-link' "inside-link is a symbolic link"
  refused 'missing' 'missing' "export 'missing' in dir=.*No such file.*nbdinfo --list"
  refused 'subdir' 'subdir' "export 'subdir' in dir=.*(Is a directory|not a regular file)"
  refused 'fifo' 'fifo' "fifo is not a regular file or a block device"
  refused '' '' "has no default export"
  # ... and the others are still served.
  served vol07
  env -u LD_PRELOAD $io verify "nbd+unix:///vol03?socket=$sock" "$ref/vol03" 7 10
  stop_nbdkit uring
  for n in "${busy[@]}" vol09; do cmp "$exp/$n" "$ref/$n"; done
  cmp "$tmpdir/outside" - <<<secret
done

# Read-only: a FIFO opened for reading alone must not hang the connection.
start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" -r dir="$exp"
refused 'fifo' 'fifo' "fifo is not a regular file or a block device"
served vol06
stop_nbdkit uring

# A block device in the directory is an export too; two device nodes of one device are one
# file for the read-modify-write lock (found by device number). Needs a loop device.
if command -v losetup >/dev/null && [ -w /dev/loop-control ] &&
   truncate -s 4M "$tmpdir/backing" &&
   dev=$(losetup --find --show "$tmpdir/backing" 2>/dev/null); then
  on_exit losetup -d "$dev"
  mkdir "$tmpdir/devs"
  major=$((0x$(stat -c %t "$dev"))) minor=$((0x$(stat -c %T "$dev")))
  mknod "$tmpdir/devs/disk" b $major $minor
  mknod "$tmpdir/devs/disk-again" b $major $minor
  cp "$tmpdir/backing" "$ref/backing"
  start_nbdkit uring "$NBDCRYPT_URING_PLUGIN" dir="$tmpdir/devs" direct=true
  env -u LD_PRELOAD nbdinfo --list --json "$uri" >"$tmpdir/list.json"
  "$PYTHON" -c 'import json, sys
got = [(e["export-name"], e["export-size"]) for e in json.load(open(sys.argv[1]))["exports"]]
assert got == [("disk", 4194304), ("disk-again", 4194304)], got' "$tmpdir/list.json"
  env -u LD_PRELOAD $io multiconn \
    "nbd+unix:///disk?socket=$sock nbd+unix:///disk-again?socket=$sock" "$ref/backing" 4 3
  stop_nbdkit uring
  cmp "$tmpdir/backing" "$ref/backing"
else
  echo "no loop device: block devices in dir= not tested"
fi

nbdkit_fails "file= and dir= cannot be used together" \
  "$NBDCRYPT_URING_PLUGIN" file="$exp/vol00" dir="$exp"
nbdkit_fails "file= and dir= cannot be used together" \
  "$NBDCRYPT_URING_PLUGIN" dir="$exp" "$exp/vol00"
nbdkit_fails "dir=.*(No such file|Not a directory)" "$NBDCRYPT_URING_PLUGIN" dir="$exp/vol00"
nbdkit_fails "file=<FILE>.*or dir=<DIR>" "$NBDCRYPT_URING_PLUGIN" direct=true
echo PASS
