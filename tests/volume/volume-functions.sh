# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the volume tests after functions.sh.

# volume_fails EXPECTED_REGEX [nbdkit args...]: nbdkit must refuse to start and say why.
# Volume keys are loaded in .after_fork, which runs after nbdkit's --run fork, so an error
# there cannot change the exit status of `nbdkit --run` reliably (functions.sh's nbdkit_fails
# uses --run): run it in the foreground (-f), as a service manager would, instead.
volume_fails () {
  local want=$1; shift
  local out="$tmpdir/vfail.out" rc=0
  rm -f "$tmpdir/vfail.sock"
  ( sanitizer_env; exec timeout 90 nbdkit -f -U "$tmpdir/vfail.sock" "$@" ) >"$out" 2>&1 \
    </dev/null || rc=$?
  if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
    echo "$0: FAIL: nbdkit $* did not refuse to start (rc $rc):" >&2; cat "$out" >&2; return 1
  fi
  if ! grep -Eq -- "$want" "$out"; then
    echo "$0: FAIL: nbdkit $* error did not match /$want/:" >&2; cat "$out" >&2; return 1
  fi
}

# oracle ARGS...: volume-oracle.py (python3-cryptography: headers and data checked or written
# independently of nbdcrypt's code).
oracle () { "$PYTHON" "$srcdir/volume/volume-oracle.py" "$@"; }

# kill_test_volume: $vol, an 8 MiB volume under KEK file $tmpdir/kek0, its data key in
# $tmpdir/dek.orig, and two more KEK files $tmpdir/kek1 and kek2 (for rewrap kill tests).
kill_test_volume () {
  vol=$tmpdir/vol.img
  truncate -s 8M "$vol"
  "$NBDCRYPT" format "$vol" --kek-file "$tmpdir/kek0" --create-kek >/dev/null
  "$NBDCRYPT" dump "$vol" --kek-file "$tmpdir/kek0" --dump-volume-key "$tmpdir/dek.orig" \
    2>/dev/null
  for i in 1 2; do head -c 32 /dev/urandom > "$tmpdir/kek$i"; done
}

# hex_absent IMAGE HEX...: none of the byte strings is anywhere in the first 1 MiB.
hex_absent () {
  "$PYTHON" - "$@" <<'EOF'
import sys
area = open(sys.argv[1], "rb").read(1 << 20)
for h in sys.argv[2:]:
    if bytes.fromhex(h) in area:
        raise SystemExit(f"old key material {h[:16]}... still in the first MiB")
EOF
}

# gaps_zero IMAGE: everything below 1 MiB but the two header copies is zero (journal cleared).
gaps_zero () {
  "$PYTHON" - "$1" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read(1 << 20)
if any(a[4096:512 << 10]) or any(a[(512 << 10) + 4096:]):
    raise SystemExit("the journal area is not zero after the re-encryption")
EOF
}

# slot_wdeks IMAGE: the wrapped DEK of every keyslot, in hex.
slot_wdeks () {
  "$NBDCRYPT" dump --json "$1" |
    "$PYTHON" -c 'import json,sys; print(" ".join(s["wrapped_dek"] for s in json.load(sys.stdin)["keyslots"]))'
}

# reencrypt_state IMAGE: "none", or "DONE TOTAL ONLINE" of the re-encryption in progress.
reencrypt_state () {
  "$NBDCRYPT" dump --json "$1" |
    "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["reencrypt"]; print("none" if r is None else "%d %d %s" % (r["done_sectors"], r["total_sectors"], r.get("online")))'
}
