#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# NBD semantics through the filter: export size rounded down to whole sectors; write-zeroes
# reads back as zeros over encrypted zeros below; fast zero fails fast; trim only with
# discard=on; extents never claim holes/zeros; flush, FUA (once per request), cache;
# multi-conn as the plugin below says. nbdkit's log filter under ours shows the calls below.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdinfo
requires_py nbd
requires_py cryptography

here="$srcdir/filter"
key="$tmpdir/vol.key"
head -c 64 /dev/urandom >"$key"
# nbdkit with the sanitizer runtimes preloaded when the filter was built with them; clients
# run by --run must not inherit the preload.
nbdkit_san () { ( sanitizer_env; exec nbdkit "$@" ); }
sem () { "$PYTHON" "$here/test-filter-semantics.py" "$@"; }

# Export size: the plugin's size rounded down to a whole sector.
for ss in 512 4096; do
  for sz in 1048576 1049088 1049576 1052671 1052672 4095 511 0; do
    want=$((sz / ss * ss))
    got=$(nbdkit_san -U - --filter="$NBDCRYPT_FILTER" memory $sz key-file="$key" \
            sector-size=$ss --run 'env -u LD_PRELOAD nbdinfo --size "$uri"')
    [ "$got" = "$want" ] ||
      { echo "$0: FAIL: sector-size $ss, plugin size $sz: export size $got, want $want" >&2; exit 1; }
  done
done
echo "export size rounded down to whole sectors (8 plugin sizes x 2 sector sizes)"

# The filter keeps nbdkit's parallel thread model (requests are not serialised).
tm=$(nbdkit_san --filter="$NBDCRYPT_FILTER" memory 1M key-file="$key" --dump-plugin |
       grep '^thread_model=')
[ "$tm" = thread_model=parallel ] ||
  { echo "$0: FAIL: thread model through the filter: $tm" >&2; exit 1; }
echo "$tm"

for ss in 512 4096; do
  echo "== sector-size $ss"
  disk="$tmpdir/disk-$ss.img"
  truncate -s $((4 * 1024 * 1024 + 100)) "$disk"
  # The point of the extents check: the plugin below does report holes here.
  holes=$(nbdkit -U - file "$disk" --run "$PYTHON $here/test-filter-semantics.py holes \"\$uri\"")
  [ "$holes" != "holes=0" ] || { echo "$0: FAIL: the file plugin reports no holes" >&2; exit 1; }
  log="$tmpdir/below-$ss.log"
  start_nbdkit "sem-$ss" --filter="$NBDCRYPT_FILTER" --filter=log \
    file "$disk" logfile="$log" key-file="$key" sector-size=$ss
  sem main "$uri" "$disk" "$key" $ss "$log"
  stop_nbdkit "sem-$ss"

  disk="$tmpdir/discard-$ss.img"
  truncate -s $((1024 * 1024)) "$disk"
  log="$tmpdir/discard-$ss.log"
  start_nbdkit "discard-$ss" --filter="$NBDCRYPT_FILTER" --filter=log \
    file "$disk" logfile="$log" key-file="$key" sector-size=$ss discard=on
  sem discard "$uri" "$disk" $ss "$log"
  stop_nbdkit "discard-$ss"
done

# Multi-conn: whatever the plugin below says (the multi-conn filter sets it either way).
seen=""
for mode in emulate disable; do
  theirs=$(nbdkit -U - --filter=multi-conn memory 1M multi-conn-mode=$mode \
             --run "$PYTHON $here/test-filter-semantics.py flags \"\$uri\"")
  ours=$(nbdkit_san -U - --filter="$NBDCRYPT_FILTER" --filter=multi-conn memory 1M \
           multi-conn-mode=$mode key-file="$key" \
           --run "env -u LD_PRELOAD $PYTHON $here/test-filter-semantics.py flags \"\$uri\"")
  [ "$ours" = "$theirs" ] ||
    { echo "$0: FAIL: multi-conn-mode=$mode: plugin says $theirs, filter says $ours" >&2; exit 1; }
  echo "multi-conn-mode=$mode below: $ours through the filter too"
  seen="$seen $ours"
done
[ "$seen" = " multi_conn=1 multi_conn=0" ] ||
  { echo "$0: FAIL: multi-conn: the two modes below did not give 1 then 0:$seen" >&2; exit 1; }
echo "$0: OK"
