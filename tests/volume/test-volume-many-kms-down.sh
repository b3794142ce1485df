#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Many volumes, the KMS down while serving: volumes held already take new connections without
# the KMS (reading and writing), a volume never opened before is refused alone (one KMS
# attempt, the reason in the log and in the export list), and once the KMS is back that same
# volume opens at its next connection.
set -euo pipefail
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdsh
requires_py nbd

fail () { echo "$0: FAIL: $*" >&2; exit 1; }

kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4
vols=$tmpdir/vols
mkdir "$vols"
for v in held1 held2 late; do
  truncate -s 8M "$vols/$v"
  "$NBDCRYPT" format "$vols/$v" --kms-config "$conf" --create-kek --name "kek-$v" \
    >/dev/null 2>&1 || fail "format $v"
done

# io EXPORT write|read BYTE: 8 KiB of BYTE at offset 4096, or check that they read back.
io () {
  env -u LD_PRELOAD "$PYTHON" - "nbd+unix:///$1?socket=$sock" "$2" "$3" <<'PY'
import nbd, sys
uri, what, byte = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
if what == "write":
    h.pwrite(bytes([byte]) * 8192, 4096)
    h.flush()
elif h.pread(8192, 4096) != bytes([byte]) * 8192:
    raise SystemExit(f"{uri}: data differ")
h.shutdown()
PY
}

# Two volumes opened while the KMS answers; "late" stays closed (no preload).
start_nbdkit many --filter="$NBDCRYPT_FILTER" file dir="$vols" kms-config="$conf" \
  key-check-interval=0
io held1 write 17 || fail "first connection to held1"
io held2 write 34 || fail "first connection to held2"

kmip_stop_server
# Held volumes: new connections, reads and writes, no KMS.
io held1 read 17 || fail "held1, KMS down: a new connection was not served"
io held2 write 51 || fail "held2, KMS down: a write on a new connection failed"
io held2 read 51 || fail "held2, KMS down: the write did not read back"
# Never opened: refused alone, at once (one attempt), with the reason logged and listed.
t0=$(date +%s)
if io late read 0 2>/dev/null; then
  fail "late, KMS down: served without its key"
fi
[ $(( $(date +%s) - t0 )) -le 20 ] || fail "late, KMS down: the refusal took over 20 s"
grep -q "export 'late': .*KMS\|export 'late': .*connect" "$tmpdir/many.log" ||
  fail "late: no refusal logged:$(echo; cat "$tmpdir/many.log")"
env -u LD_PRELOAD "$PYTHON" - "$sock" <<'PY' || fail "late: the export list does not say why"
import nbd, sys
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(sys.argv[1])
desc = {}
h.opt_list(lambda name, d: desc.__setitem__(name, d) or 0)
print("export list:", desc)
if not desc.get("late", "").startswith("refused: "):
    raise SystemExit(1)
if not desc.get("held1", "").startswith("nbdcrypt volume "):
    raise SystemExit(1)
PY
io held1 read 17 || fail "held1 after the refusal of late"

# The KMS back: the refused volume opens at its next connection.
kmip_restart_server
io late write 68 || fail "late, KMS back: not opened at the next connection"
io late read 68 || fail "late, KMS back: data"
kill -0 "$(cat "$tmpdir/many.pid")" || fail "nbdkit exited"
stop_nbdkit many
echo "held volumes served with the KMS down; the unopened one refused alone, then opened"
