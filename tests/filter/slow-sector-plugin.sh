#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdkit sh plugin: a file whose reads at one offset are slow AFTER the data is taken, so the
# reader holds a copy that grows stale for that long (what a read-modify-write must guard
# against). Everything else is immediate. Environment: SLOW_DISK (the file), SLOW_OFFSET,
# SLOW_SECONDS.
# The filter under test may be an ASan build preloaded into nbdkit: not into dd and stat.
unset LD_PRELOAD
case "$1" in
  thread_model) echo parallel ;;
  get_size) stat -L -c %s "$SLOW_DISK" ;;
  can_write|can_flush) exit 0 ;;
  can_trim|can_zero|can_extents) exit 3 ;;
  flush) ;;
  pread)
    dd if="$SLOW_DISK" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none || exit 1
    if [ "$4" = "$SLOW_OFFSET" ]; then sleep "$SLOW_SECONDS"; fi ;;
  pwrite)
    dd of="$SLOW_DISK" seek="$4" oflag=seek_bytes conv=notrunc status=none || exit 1 ;;
  *) exit 2 ;;
esac
