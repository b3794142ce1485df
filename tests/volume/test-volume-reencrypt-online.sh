#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt reencrypt --online` replaces the data key of a volume that nbdkit
# serves (file plugin, reencrypt-poll-interval=1, reencrypt-zone-size=1M, reencrypt-rate=16M:
# a 64 MiB volume takes some seconds), for 4096- and 512-byte sectors. In runs 1-3 and 5 a
# client keeps writing (aligned and unaligned writes, write-zeroes) and reading (checked
# against its shadow copy) through the export. Five runs per sector size:
#   1. the waiting tool: exits 0 once the server has finished, last line "re-encrypted TARGET
#      online"; the run honours the rate limit; the client's requests go on during it; the old
#      data key, found in nbdkit's memory (/proc/PID/mem) before the run, is not after it;
#   2. --no-wait: returns at once with the run handed over; `dump --json` shows it online with
#      its progress (never backwards) until "reencrypt" is null; the offline command refuses
#      the online run (naming --online and --take-over) and the run goes on undisturbed;
#   3. nbdkit killed (SIGKILL) in the middle, the waiting tool left waiting: after a restart the
#      acknowledged writes read back, the run resumes and completes, and the tool exits 0;
#   4. nbdkit stopped (SIGTERM) in the middle: offline reencrypt refuses the run, still online;
#      `--take-over` finishes it, and the filter then serves the same data;
#   5. handed over while no server serves the volume: the tool waits, the run starts when
#      nbdkit does (a client writing), and the tool then returns.
# After each run: the export read back equals the client's shadow; with nbdkit stopped, every
# data sector decrypts under the NEW data key (python3-cryptography's XTS, the key unwrapped
# independently from the header) to the shadow, under the OLD key none does, the old wrapped
# key (and the old key) is nowhere in the first MiB, both header copies authenticate under the
# new key, and the journal area is zero again.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires nbdcopy
requires_py nbd
requires_py cryptography

rate=16M                      # bytes/s: 64 MiB take 4 s at least
min_run_secs=3

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
io () { "$PYTHON" "$srcdir/volume/online-io.py" "$@"; }

# state: "none", or "DONE TOTAL ONLINE" of the run in progress ($vol).
state () { reencrypt_state "$vol"; }
cur_dek () {  # cur_dek OUT: the volume's data key (no run in progress)
  rm -f "$1"
  "$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$1" 2>/dev/null ||
    fail "dump --dump-volume-key failed"
}
# mem_hits KEYFILE: 16-byte slices of the key found in nbdkit's memory (/proc/PID/mem).
mem_hits () { "$PYTHON" "$srcdir/volume/revoke-io.py" scan "$srv" "$1" 2>"$tmpdir/scan.err"; }
serve () {
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek" \
    reencrypt-poll-interval=1 reencrypt-zone-size=1M reencrypt-rate=$rate
  srv=$(cat "$tmpdir/vol.pid")
}
stop_server () {  # SIGTERM; it must be gone before anything touches the file offline
  stop_nbdkit vol
  if kill -0 "$srv" 2>/dev/null; then fail "$what: nbdkit did not exit 10 s after SIGTERM"; fi
  wait "$srv" 2>/dev/null || true
}
kill_server () {
  kill -9 "$srv"
  wait "$srv" 2>/dev/null || true
  cat "$tmpdir/vol.log" >>"$tmpdir/vol.all.log"
}
writer_start () {
  rm -f "$d/stop" "$d/ready" "$d/count"
  io writer "$uri" "$d" "$ss" >"$d/writer.out" 2>&1 &
  wpid=$!
  for _ in $(seq 300); do
    [ -e "$d/ready" ] && return 0
    kill -0 "$wpid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$d/writer.out"; fail "the writer did not start"
}
writer_stop () {  # the writer reads the whole export back and compares it to its shadow
  touch "$d/stop"
  local rc=0
  wait "$wpid" || rc=$?
  cat "$d/writer.out"
  [ "$rc" = 0 ] || fail "$what: the writer failed (rc $rc)"
}
requests () { [ -s "$d/count" ] && cut -d' ' -f1 "$d/count" || echo 0; }
# wait_state PREDICATE SECONDS: poll state every 0.2 s until PREDICATE "$(state)" holds.
wait_state () {
  local s
  for _ in $(seq $(($2 * 5))); do
    s=$(state) || fail "$what: dump --json failed during the run"
    if "$1" $s; then st=$s; return 0; fi
    sleep 0.2
  done
  fail "$what: state still '$s' after $2 s"
}
is_none () { [ "$1" = none ]; }
past_third () { [ "$1" != none ] && [ "$1" -ge $((total / 3)) ]; }
started_early () { [ "$1" != none ] && [ "$1" -gt 0 ] && [ "$1" -lt $((total / 2)) ]; }
# refused_offline: the offline command refuses the online run in progress, naming the options.
refused_offline () {
  if "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" >"$tmpdir/off.out" 2>"$tmpdir/off.err"; then
    fail "$what: offline reencrypt ran on a volume whose run is online"
  fi
  grep -q -- "--online" "$tmpdir/off.err" && grep -q -- "--take-over" "$tmpdir/off.err" ||
    { cat "$tmpdir/off.err"; fail "$what: the refusal does not name --online and --take-over"; }
  echo "$what: offline reencrypt refused: $(head -1 "$tmpdir/off.err")"
}
# tool_ok OUT: the waiting tool's last stdout line.
tool_ok () {
  tail -1 "$1" | grep -q "^re-encrypted $vol online" ||
    { cat "$1"; fail "$what: last stdout line is not 're-encrypted $vol online...'"; }
}
# before_run: remember the key material the run must replace.
before_run () {
  cur_dek "$tmpdir/dek.old"
  old_hex="$(slot_wdeks "$vol") $(od -An -tx1 -v "$tmpdir/dek.old" | tr -d ' \n')"
}
# after_run: nbdkit stopped; the checks of the description.
after_run () {
  [ "$(state)" = none ] || fail "$what: a run is still in progress: $(state)"
  cur_dek "$tmpdir/dek.new"
  cmp -s "$tmpdir/dek.old" "$tmpdir/dek.new" && fail "$what: the data key is unchanged"
  rm -f "$tmpdir/dek.oracle"
  oracle unwrap-dek "$vol" "$kek" "$tmpdir/dek.oracle"
  cmp -s "$tmpdir/dek.oracle" "$tmpdir/dek.new" ||
    fail "$what: the oracle unwraps another key than dump --dump-volume-key gives"
  oracle check-data "$vol" "$tmpdir/dek.new" "$d/shadow" ||
    fail "$what: the data does not decrypt under the new key to what the client wrote"
  local msg
  msg=$(oracle check-data "$vol" "$tmpdir/dek.old" "$d/shadow" 2>&1 | tail -1) || true
  [ "$msg" = "$total of $total sectors differ" ] ||
    fail "$what: under the old key: '$msg', want all $total sectors to differ"
  oracle check-mac "$vol" "$tmpdir/dek.new" >/dev/null || fail "$what: header MAC"
  # shellcheck disable=SC2086
  hex_absent "$vol" $old_hex || fail "$what: old key material left"
  gaps_zero "$vol" || fail "$what"
  echo "$what: new key decrypts all $total sectors to the client's data, the old key none;" \
    "no old key material in the first MiB"
}

for ss in 4096 512; do
  vol=$tmpdir/vol-$ss.img kek=$tmpdir/kek-$ss d=$tmpdir/io-$ss
  total=$(( (64 << 20) / ss ))
  mkdir -p "$d"
  truncate -s 65M "$vol"
  "$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --sector-size "$ss" >/dev/null
  head -c $((64 << 20)) /dev/urandom > "$d/shadow"
  if [ "$ss" = 4096 ]; then
    cur_dek "$tmpdir/dek.fmt"
    oracle encrypt-data "$vol" "$tmpdir/dek.fmt" "$d/shadow"
  else
    start_nbdkit fill --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
    env -u LD_PRELOAD nbdcopy "$d/shadow" "$uri"
    stop_nbdkit fill
  fi

  # 1. The waiting tool, a client writing and reading all along.
  what="$ss/wait"
  before_run
  serve
  writer_start
  hits0=$(mem_hits "$tmpdir/dek.old")
  [ "$hits0" -gt 0 ] || { cat "$tmpdir/scan.err"; fail "$what: the scan finds no key bytes while serving"; }
  r0=$(requests)
  t0=$(date +%s%N)
  timeout 300 "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online \
    >"$tmpdir/tool.out" 2>"$tmpdir/tool.err" ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err" "$tmpdir/vol.log"; fail "$what: reencrypt --online failed"; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  r1=$(requests)
  tail -3 "$tmpdir/tool.err"
  tool_ok "$tmpdir/tool.out"
  # The old data key is wiped from the server at the end (it was there before the run).
  hits=$(mem_hits "$tmpdir/dek.old")
  [ "$hits" = 0 ] || fail "$what: the old data key is still in nbdkit's memory ($hits hits)"
  echo "$what: the old data key: $hits0 hits in nbdkit's memory before the run, none after"
  [ "$(state)" = none ] || fail "$what: the tool returned with the run in progress: $(state)"
  [ "$ms" -ge $((min_run_secs * 1000)) ] ||
    fail "$what: 64 MiB re-encrypted in $ms ms: reencrypt-rate=$rate not honoured"
  [ $((r1 - r0)) -ge 20 ] ||
    fail "$what: the client completed only $((r1 - r0)) requests during the $ms ms run"
  echo "$what: the tool waited $ms ms; the client completed $((r1 - r0)) requests meanwhile"
  writer_stop
  stop_server
  after_run

  # 2. --no-wait, progress in dump --json, the offline command refused while served.
  what="$ss/no-wait"
  before_run
  serve
  writer_start
  t0=$(date +%s%N)
  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online --no-wait \
    >"$tmpdir/tool.out" 2>"$tmpdir/tool.err" ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err"; fail "$what: reencrypt --online --no-wait failed"; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  s=$(state)
  # shellcheck disable=SC2086
  set -- $s
  [ "$s" != none ] && [ "$2" = "$total" ] && [ "$3" = True ] ||
    fail "$what: after --no-wait ($ms ms) dump --json shows '$s', want a run of $total sectors online"
  prev=0 samples=0 mid=0 refused=0 r0=0 r1=0
  for _ in $(seq 600); do
    s=$(state) || fail "$what: dump --json failed during the run"
    [ "$s" = none ] && break
    # shellcheck disable=SC2086
    set -- $s
    [ "$2" = "$total" ] && [ "$3" = True ] || fail "$what: dump --json shows '$s' during the run"
    [ "$1" -ge "$prev" ] && [ "$1" -le "$total" ] ||
      fail "$what: progress went from $prev to $1 (of $total)"
    prev=$1 samples=$((samples + 1))
    if [ "$1" -gt 0 ] && [ "$1" -lt "$total" ]; then
      # The client's requests while the run is under way (not before the pick-up).
      [ "$mid" = 0 ] && r0=$(requests)
      r1=$(requests)
      mid=$((mid + 1))
      if [ "$refused" = 0 ]; then refused_offline; refused=1; fi
    fi
    sleep 0.2
  done
  [ "$s" = none ] || fail "$what: the run did not end within 120 s: $s"
  [ "$mid" -ge 2 ] || fail "$what: dump --json showed the run between start and end only $mid times"
  [ $((r1 - r0)) -ge 20 ] ||
    fail "$what: the client completed only $((r1 - r0)) requests while the run was under way"
  echo "$what: returned in $ms ms; $samples samples of the progress, $mid in the middle;" \
    "$((r1 - r0)) client requests completed between the first and the last of those"
  writer_stop
  stop_server
  after_run

  # 3. nbdkit killed in the middle (the tool waiting), started again: the run resumes.
  what="$ss/kill"
  before_run
  serve
  writer_start
  timeout 300 "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online \
    >"$tmpdir/tool.out" 2>"$tmpdir/tool.err" &
  tool=$!
  wait_state past_third 60
  [ "$(echo $st | cut -d' ' -f1)" -lt "$total" ] || fail "$what: the run ended before the kill"
  kill_server
  rc=0; wait "$wpid" || rc=$?
  cat "$d/writer.out"
  [ "$rc" = 3 ] || fail "$what: the writer did not see the server go (rc $rc)"
  s=$(state)
  # shellcheck disable=SC2086
  set -- $s
  [ "$s" != none ] && [ "$1" -gt 0 ] && [ "$3" = True ] ||
    fail "$what: after the kill dump --json shows '$s', want the online run in progress"
  echo "$what: nbdkit killed at sector $1 of $total"
  sleep 1.5
  kill -0 "$tool" 2>/dev/null ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err"; fail "$what: the waiting tool exited when nbdkit went"; }
  serve
  io reconcile "$uri" "$d" "$ss" || fail "$what: acknowledged writes lost across the kill"
  writer_start
  rc=0; wait "$tool" || rc=$?
  [ "$rc" = 0 ] ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err" "$tmpdir/vol.log"; fail "$what: the waiting tool failed (rc $rc)"; }
  tool_ok "$tmpdir/tool.out"
  [ "$(state)" = none ] || fail "$what: the tool returned with the run in progress: $(state)"
  writer_stop
  stop_server
  after_run

  # 4. nbdkit stopped in the middle: refused offline, then --take-over.
  what="$ss/take-over"
  before_run
  serve
  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online --no-wait >/dev/null 2>"$tmpdir/tool.err" ||
    { cat "$tmpdir/tool.err"; fail "$what: reencrypt --online --no-wait failed"; }
  wait_state started_early 60
  stop_server
  s=$(state)
  # shellcheck disable=SC2086
  set -- $s
  [ "$s" != none ] && [ "$1" -lt "$total" ] && [ "$3" = True ] ||
    fail "$what: with nbdkit stopped dump --json shows '$s', want the online run in progress"
  echo "$what: nbdkit stopped at sector $1 of $total"
  refused_offline
  "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --take-over >"$tmpdir/tool.out" 2>"$tmpdir/tool.err" ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err"; fail "$what: reencrypt --take-over failed"; }
  after_run
  # And the filter serves the same data again.
  start_nbdkit plain --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
  env -u LD_PRELOAD nbdcopy "$uri" "$tmpdir/back"
  stop_nbdkit plain
  cmp -s "$d/shadow" "$tmpdir/back" || fail "$what: the filter serves other data after the take-over"
  rm -f "$tmpdir/back"

  # 5. Handed over while no server serves the volume: the tool waits; the run starts when
  # nbdkit does, under a client, and the tool then returns.
  what="$ss/no-server"
  before_run
  timeout 300 "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online \
    >"$tmpdir/tool.out" 2>"$tmpdir/tool.err" &
  tool=$!
  sleep 2
  kill -0 "$tool" 2>/dev/null ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err"; fail "$what: the tool did not wait for a server"; }
  s=$(state)
  [ "$s" = "0 $total True" ] ||
    fail "$what: with no server dump --json shows '$s', want '0 $total True'"
  serve
  writer_start
  rc=0; wait "$tool" || rc=$?
  [ "$rc" = 0 ] ||
    { cat "$tmpdir/tool.out" "$tmpdir/tool.err" "$tmpdir/vol.log"; fail "$what: the waiting tool failed (rc $rc)"; }
  tool_ok "$tmpdir/tool.out"
  writer_stop
  stop_server
  after_run
done
