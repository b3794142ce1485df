#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: online re-encryption (`nbdcrypt reencrypt --online`, run by the serving filter:
# reencrypt-poll-interval=1, reencrypt-zone-size=1M, reencrypt-rate=16M, a 24 MiB volume of
# 4096-byte sectors) under SIGKILLs at random instants, at least 30 of them: most of nbdkit
# (anywhere from its start-up through the pick-up of a handed-over run, zones, and the end's
# header writes), some of the waiting tool (half of those within 100 ms of its start, in the
# handover). A client writes all along (aligned and unaligned writes, write-zeroes, reads
# checked against its shadow), counting a write only once it is acknowledged. After each kill
# of nbdkit, it is started again: every acknowledged write reads back (the one write in flight
# may have landed or not, sector by sector), and the run resumes by itself. A waiting tool
# keeps waiting across the restarts and exits 0 when its run ends; a tool killed before the
# handover leaves the key unchanged; a valid header always remains. Every fourth kill is the
# tool's, and before it the run in progress is let finish: then the export equals the client's
# shadow, and with nbdkit stopped every sector decrypts under the new key (python3-cryptography)
# to the shadow and under the run's old key none does, and no old key material is left in the
# first MiB. At the end, all data is checked under the final key, and none under the first.
# Before the random kills, the handover itself is killed before each of its writes in turn
# (strace injects the SIGKILL before the tool's Nth pwrite64): each must leave either no run
# and the same key, or a run that the server finishes by itself (checked as above).
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
requires nbdkit
requires_py nbd
requires_py cryptography

ss=4096
iterations=36
total=$(( (24 << 20) / ss ))
vol=$tmpdir/vol.img kek=$tmpdir/kek d=$tmpdir/io
seed=${ONLINE_KILL_SEED:-$(( $(date +%s%N) % 32768 ))}
RANDOM=$seed
echo "seed $seed (ONLINE_KILL_SEED=$seed repeats the kill instants)"

fail () {
  echo "$0: FAIL: $*" >&2
  echo "--- nbdkit logs (earlier instances, then the last):" >&2
  cat "$tmpdir/vol.all.log" "$tmpdir/vol.log" >&2 2>/dev/null || true
  exit 1
}
io () { "$PYTHON" "$srcdir/volume/online-io.py" "$@"; }
state () { reencrypt_state "$vol"; }
cur_dek () {
  rm -f "$1"
  "$NBDCRYPT" dump "$vol" --kek-file "$kek" --dump-volume-key "$1" 2>/dev/null ||
    fail "dump --dump-volume-key failed"
}
serve () {
  start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek" \
    reencrypt-poll-interval=1 reencrypt-zone-size=1M reencrypt-rate=16M
  srv=$(cat "$tmpdir/vol.pid")
}
stop_server () {
  stop_nbdkit vol
  if kill -0 "$srv" 2>/dev/null; then fail "nbdkit did not exit 10 s after SIGTERM"; fi
  wait "$srv" 2>/dev/null || true
  cat "$tmpdir/vol.log" >>"$tmpdir/vol.all.log"
}
writer_start () {
  rm -f "$d/stop" "$d/ready"
  io writer "$uri" "$d" "$ss" >"$d/writer.out" 2>&1 &
  wpid=$!
  for _ in $(seq 300); do
    [ -e "$d/ready" ] && return 0
    kill -0 "$wpid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$d/writer.out"; fail "the writer did not start"
}
writer_stop () {
  touch "$d/stop"
  local rc=0
  wait "$wpid" || rc=$?
  [ "$rc" = 0 ] || { cat "$d/writer.out"; fail "$what: the writer failed (rc $rc)"; }
  requests=$((requests + $(cut -d' ' -f1 "$d/count")))
}
msleep () { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
rnd () { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }

# start_run MODE (wait or no-wait): remember the key material the run must replace and start
# it; with wait, $tool is the waiting tool.
start_run () {
  cur_dek "$tmpdir/dek.old"
  old_hex="$(slot_wdeks "$vol") $(od -An -tx1 -v "$tmpdir/dek.old" | tr -d ' \n')"
  runs=$((runs + 1)) tool_killed=''
  if [ "$1" = wait ]; then
    "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online \
      >"$tmpdir/tool.$runs.out" 2>"$tmpdir/tool.$runs.err" &
    tool=$! tool_run=$runs
  else
    "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online --no-wait \
      >/dev/null 2>"$tmpdir/tool.$runs.err" ||
      { cat "$tmpdir/tool.$runs.err"; fail "$what: reencrypt --online --no-wait failed"; }
  fi
  run_active=1
}
# tool_done: the waiting tool has exited by itself: it must have succeeded.
tool_done () {
  local rc=0
  wait "$tool" || rc=$?
  [ "$rc" = 0 ] || { cat "$tmpdir/tool.$tool_run.out" "$tmpdir/tool.$tool_run.err"
                     fail "$what: the waiting tool of run $tool_run failed (rc $rc)"; }
  tail -1 "$tmpdir/tool.$tool_run.out" | grep -q "^re-encrypted $vol online" ||
    { cat "$tmpdir/tool.$tool_run.out"; fail "$what: run $tool_run: no 're-encrypted $vol online'"; }
  tool=
}
# finish_run: let the run in progress end (its waiting tool too), then check it.
finish_run () {
  local s
  if [ -n "$tool" ]; then
    for _ in $(seq 600); do kill -0 "$tool" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$tool" 2>/dev/null && fail "$what: the waiting tool of run $tool_run still waits after 120 s: $(state)"
    tool_done
  fi
  for _ in $(seq 600); do
    s=$(state) || fail "$what: dump --json failed"
    [ "$s" = none ] && break
    # The server has done the data but has no final header to end the run with.
    if grep -q "no final header is staged" "$tmpdir/vol.log"; then
      fail "$what: run $runs cannot end ($s): no final header staged${tool_killed:+; its tool was killed $tool_killed, once the run showed in the header}"
    fi
    sleep 0.2
  done
  [ "$s" = none ] || fail "$what: run $runs did not end within 120 s: $s"
  writer_stop
  stop_server
  cur_dek "$tmpdir/dek.new"
  cmp -s "$tmpdir/dek.old" "$tmpdir/dek.new" && fail "$what: run $runs left the data key unchanged"
  oracle check-data "$vol" "$tmpdir/dek.new" "$d/shadow" >/dev/null ||
    fail "$what: after run $runs the data does not decrypt under the new key to the shadow"
  local msg
  msg=$(oracle check-data "$vol" "$tmpdir/dek.old" "$d/shadow" 2>&1 | tail -1) || true
  [ "$msg" = "$total of $total sectors differ" ] ||
    fail "$what: after run $runs under its old key: '$msg', want all $total sectors to differ"
  # shellcheck disable=SC2086
  hex_absent "$vol" $old_hex || fail "$what: run $runs left old key material"
  gaps_zero "$vol" || fail "$what: run $runs"
  finished=$((finished + 1)) run_active=0
  echo "$what: run $runs finished: data intact under the new key, none under the old"
  serve
  writer_start
}

mkdir -p "$d"
truncate -s 25M "$vol"
"$NBDCRYPT" format "$vol" --kek-file "$kek" --create-kek --sector-size $ss >/dev/null
cur_dek "$tmpdir/dek.first"
head -c $((24 << 20)) /dev/urandom > "$d/shadow"
oracle encrypt-data "$vol" "$tmpdir/dek.first" "$d/shadow"
serve
writer_start

kills=0 server_kills=0 tool_kills=0 flagged=0 finished=0 runs=0 run_active=0 requests=0
tool='' tool_run=0

# The handover, SIGKILL at each of its writes in turn (strace injects it before the Nth
# pwrite64 of the tool): each leaves either no run and the same key, or a run that the server
# finishes by itself. The last N is the first at which the tool completes.
sweep=0
if command -v strace >/dev/null && strace -f -o /dev/null -e trace=pwrite64 \
     -e inject=pwrite64:signal=KILL:when=1 true 2>/dev/null; then
  for n in $(seq 30); do
    what="handover killed before its write $n"
    cur_dek "$tmpdir/dek.old"
    old_hex="$(slot_wdeks "$vol") $(od -An -tx1 -v "$tmpdir/dek.old" | tr -d ' \n')"
    runs=$((runs + 1)) tool_killed="before its write $n"
    rc=0
    # (a subshell: its "Killed" goes to the file, not to the test's output; LeakSanitizer
    # cannot run under ptrace, so an ASan build's leak check is off for this one command)
    ( export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
      strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:signal=KILL:when=$n \
        "$NBDCRYPT" reencrypt "$vol" --kek-file "$kek" --online --no-wait >/dev/null
      r=$?; exit $r
    ) 2>"$tmpdir/sweep.err" || rc=$?
    s=$(state) || { "$NBDCRYPT" dump "$vol"; fail "$what: no valid header left"; }
    echo "$what: $([ "$rc" = 0 ] && echo "not killed (it makes $((n - 1)) writes)" || echo "rc $rc"): $s"
    if [ "$rc" = 0 ]; then run_active=1; finish_run; break; fi
    [ "$rc" = 137 ] || { cat "$tmpdir/sweep.err"; fail "$what: the tool exited with $rc"; }
    sweep=$((sweep + 1))
    if [ "$s" = none ]; then
      cur_dek "$tmpdir/dek.now"
      cmp -s "$tmpdir/dek.old" "$tmpdir/dek.now" || fail "$what: no run, but another data key"
    else
      run_active=1
      finish_run
    fi
  done
  [ "$rc" = 0 ] || fail "the tool still killed at its 30th write"
else
  echo "strace cannot inject signals here: the handover's writes are not killed one by one"
fi

for iter in $(seq "$iterations"); do
  what="iteration $iter"
  # A waiting tool that exited by itself (its run ended) must have succeeded.
  if [ -n "$tool" ] && ! kill -0 "$tool" 2>/dev/null; then tool_done; fi
  if [ $((iter % 4)) = 0 ]; then
    # The tool's turn: the run in progress finishes first, then a new one whose tool dies.
    [ "$run_active" = 1 ] && finish_run
    [ -z "$tool" ] || fail "$what: a tool still waits with no run in progress"
    start_run wait
    if [ $((RANDOM % 2)) = 0 ]; then delay=$(rnd 100); else delay=$((100 + $(rnd 1100))); fi
    msleep "$delay"
    kill -9 "$tool" 2>/dev/null || fail "$what: the waiting tool was gone before its kill"
    wait "$tool" 2>/dev/null || true
    tool=
    kills=$((kills + 1)) tool_kills=$((tool_kills + 1))
    s=$(state) || { "$NBDCRYPT" dump "$vol"; fail "$what: no valid header after the tool's kill"; }
    if [ "$s" = none ]; then
      # Killed before the handover: nothing started, the key is the same.
      cur_dek "$tmpdir/dek.now"
      cmp -s "$tmpdir/dek.old" "$tmpdir/dek.now" ||
        fail "$what: a tool killed before the handover changed the data key"
      run_active=0
    else
      flagged=$((flagged + 1)) tool_killed="$delay ms after its start"
    fi
    kill -0 "$wpid" 2>/dev/null || { cat "$d/writer.out"; fail "$what: the writer stopped"; }
    echo "$what: tool killed after $delay ms: $s"
    continue
  fi
  # nbdkit's turn.
  if [ "$run_active" = 0 ]; then
    if [ $((RANDOM % 3)) = 0 ]; then start_run no-wait; else start_run wait; fi
  fi
  delay=$(rnd 2200)
  msleep "$delay"
  before=$(state) || fail "$what: dump --json failed during the run"
  kill -9 "$srv"
  wait "$srv" 2>/dev/null || true
  cat "$tmpdir/vol.log" >>"$tmpdir/vol.all.log"
  kills=$((kills + 1)) server_kills=$((server_kills + 1))
  rc=0; wait "$wpid" || rc=$?
  [ "$rc" = 3 ] || { cat "$d/writer.out"; fail "$what: the writer did not see nbdkit go (rc $rc)"; }
  requests=$((requests + $(cut -d' ' -f1 "$d/count")))
  s=$(state) || { "$NBDCRYPT" dump "$vol"; fail "$what: no valid header after nbdkit's kill"; }
  [ "$s" = none ] || flagged=$((flagged + 1))
  echo "$what: nbdkit killed after $delay ms ($before): $s; $(sed -n 's/.*; then .*(errno [A-Z]*); //p' "$d/writer.out")"
  serve
  if [ $((RANDOM % 5)) = 0 ]; then
    # Again while it starts up and opens the volume (resuming the run), no client yet.
    delay=$(rnd 500)
    msleep "$delay"
    kill -9 "$srv"
    wait "$srv" 2>/dev/null || true
    cat "$tmpdir/vol.log" >>"$tmpdir/vol.all.log"
    kills=$((kills + 1)) server_kills=$((server_kills + 1))
    s=$(state) || { "$NBDCRYPT" dump "$vol"; fail "$what: no valid header after nbdkit's kill"; }
    [ "$s" = none ] || flagged=$((flagged + 1))
    echo "$what: nbdkit killed again $delay ms after its restart: $s"
    serve
  fi
  io reconcile "$uri" "$d" "$ss" >"$d/reconcile.out" 2>&1 ||
    { cat "$d/reconcile.out"; fail "$what: acknowledged writes lost across nbdkit's kill"; }
  writer_start
  if [ "$s" = none ] && [ "$run_active" = 1 ] && [ -z "$tool" ]; then
    finish_run   # it ended before the kill (or never started): checked now
  fi
done
what="the end"
[ "$run_active" = 1 ] && finish_run
writer_stop
stop_server
cur_dek "$tmpdir/dek.final"
oracle check-data "$vol" "$tmpdir/dek.final" "$d/shadow" || fail "the end: data not intact"
msg=$(oracle check-data "$vol" "$tmpdir/dek.first" "$d/shadow" 2>&1 | tail -1) || true
[ "$msg" = "$total of $total sectors differ" ] || fail "the end: under the first key: $msg"
echo "$kills kills ($server_kills of nbdkit, $tool_kills of the waiting tool), $flagged left" \
  "a run in progress; $sweep kills of the handover at each of its writes;" \
  "$runs runs started, $finished finished and checked;" \
  "$requests client requests, every acknowledged write read back after each kill"
if [ "$kills" -lt 30 ] || [ "$tool_kills" -lt 5 ] || [ "$flagged" -lt 15 ] || [ "$finished" -lt 5 ]; then
  fail "too few kills ($kills, $tool_kills of the tool), kills inside a run ($flagged)" \
    "or finished runs ($finished)"
fi
