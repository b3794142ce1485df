#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad parameters are refused at startup with a message that says what is wrong.
source "$srcdir/functions.sh"
requires nbdkit
: "${NBDCRYPT_URING_PLUGIN:?}"
p=$NBDCRYPT_URING_PLUGIN

# fails REGEX nbdkit-args...: nbdkit must refuse to start with a matching message. Bounded in
# time: with libasan preloaded, nbdkit 1.32 hangs in exit() after an error printed with
# strerror (p11-kit destructor vs glibc's locale lock); the message is out by then.
fails () {
  local want=$1 rc=0 out=$tmpdir/fail.out; shift
  ( sanitizer_env "$p"; exec timeout -s KILL 10 nbdkit -U - "$@" --run true ) >"$out" 2>&1 \
    </dev/null || rc=$?
  [ $rc != 0 ] || { echo "$0: FAIL: nbdkit $* started but should have failed" >&2; exit 1; }
  grep -Eq -- "$want" "$out" ||
    { echo "$0: FAIL: nbdkit $* error did not match /$want/:" >&2; cat "$out" >&2; exit 1; }
}
img=$tmpdir/img
truncate -s 1M "$img"

fails 'you must supply the file=' "$p"
fails 'open .*/missing.img: No such file or directory' "$p" file="$tmpdir/missing.img"
fails 'is not a regular file or a block device' "$p" file="$tmpdir"
fails 'is not a regular file or a block device' "$p" file=/dev/null
fails 'queue-depth=0: must be between 1 and 4096' "$p" file="$img" queue-depth=0
fails 'queue-depth=5000: must be between 1 and 4096' "$p" file="$img" queue-depth=5000
fails 'queue-depth=lots: must be between 1 and 4096' "$p" file="$img" queue-depth=lots
fails 'direct=maybe: expected true or false' "$p" file="$img" direct=maybe
fails 'ring=bogus: expected per-thread, shared or none' "$p" file="$img" ring=bogus
fails "unknown parameter 'colour'" "$p" file="$img" colour=blue

# direct=true on a file system without O_DIRECT (ramfs), when this machine lets us mount one.
mnt=$tmpdir/ramfs
mkdir "$mnt"
if mount -t ramfs ramfs "$mnt" 2>/dev/null; then
  on_exit umount -l "$mnt"    # lazily: a server may still hold a file there
  truncate -s 1M "$mnt/img"
  fails 'does not support (O_DIRECT|direct I/O); use direct=false' \
    "$p" file="$mnt/img" direct=true
  # ... while buffered it starts.
  ( sanitizer_env "$p"; exec nbdkit -U - "$p" file="$mnt/img" --run 'true' )
else
  echo "cannot mount ramfs here: O_DIRECT refusal not tested"
fi

# Good parameters start.
( sanitizer_env "$p"; exec nbdkit -U - "$p" file="$img" direct=true queue-depth=1 ring=shared \
    --run 'true' )
( sanitizer_env "$p"; exec nbdkit -U - "$p" file="$img" queue-depth=4096 ring=none --run true )
echo PASS
