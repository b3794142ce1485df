#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The userspace iSCSI gateway, end to end: nbdkit + nbdcrypt -> nbdfuse (FUSE file) -> tgtd
# (iSCSI target on a loopback portal) -> libiscsi initiators (qemu-img/qemu-io iscsi://,
# iscsi-readcapacity16, iscsi-test-cu). For a 512-byte raw volume (key-file=) and a 4096-byte
# volume with a header (kek-file=):
#   - a qemu-img convert round trip through iSCSI, compared with the source and with what NBD
#     serves directly;
#   - unaligned qemu-io writes, compared with a model file the test keeps;
#   - READ CAPACITY(16): 512-byte logical blocks, the volume's size, and for 4096-byte
#     encryption sectors a 4096-byte physical block (so initiators align to it); and the
#     block sizes docs/gateway.md steers LUNs to: a second LUN with --blocksize 4096 over the
#     4096-byte volume (4096-byte logical blocks, exponent 0), one with lbppbe=0 over the
#     512-byte volume (512-byte physical blocks);
#   - the backing file holds ciphertext only (a plaintext marker is absent), and for the raw
#     volume every sector equals python3-cryptography's AES-XTS of the model (oracle.py);
#   - libiscsi's conformance tests that move data (READ, WRITE, VERIFY, WRITE SAME, ...);
#   - a clean teardown: tgtd leaves on "tgtadm --op delete --mode system" (it ignores
#     SIGTERM), the FUSE mount goes with fusermount3 -u, then nbdkit exits on SIGTERM.
# Every process and mount is removed at exit on the failure paths too.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdinfo
requires nbdfuse
requires fusermount3
requires qemu-img
requires qemu-io
requires_py cryptography
[ -c /dev/fuse ] || skip "/dev/fuse is missing (nbdfuse needs FUSE)"
# tgtd keeps its control socket in /var/run/tgtd, writable by root only.
[ "$(id -u)" = 0 ] || skip "tgtd needs root (control socket in /var/run/tgtd)"

source "$srcdir/gateway/gateway-functions.sh"
if ! gateway_tools; then
  timeout 600 "$top_srcdir/scripts/install-deps.sh" </dev/null >&2 || true
  gateway_tools || skip "tgt, libiscsi-bin or qemu-block-extra cannot be installed"
fi

size=$((8 * 1024 * 1024))   # small LUNs: libiscsi's WRITE SAME tests cover them whole
marker="NBDCRYPT-GATEWAY-PLAINTEXT-MARKER."
iqn=iqn.2000-01.test.nbdcrypt
ini_tests=(ALL.Read10 ALL.Read16 ALL.Write10 ALL.Write16 ALL.WriteVerify10 ALL.Verify10
           ALL.Verify16 ALL.WriteSame10 ALL.WriteSame16 ALL.ReadCapacity16 ALL.Inquiry)

# The two volumes: NAME SECTOR-SIZE. The backing files are $tmpdir/NAME.img.
head -c 64 /dev/urandom >"$tmpdir/raw512.key"
truncate -s "$size" "$tmpdir/raw512.img"
start_nbdkit raw512 --filter="$NBDCRYPT_FILTER" file "$tmpdir/raw512.img" \
  key-file="$tmpdir/raw512.key" sector-size=512
truncate -s $((size + 1024 * 1024)) "$tmpdir/kek4k.img"
"$NBDCRYPT" format "$tmpdir/kek4k.img" --kek-file "$tmpdir/host.kek" --create-kek \
  --sector-size 4096 >/dev/null
start_nbdkit kek4k --filter="$NBDCRYPT_FILTER" file "$tmpdir/kek4k.img" \
  kek-file="$tmpdir/host.kek"

fuse_mount raw512
fuse_mount kek4k
tgt_start
on_exit tgt_stop
tid=0
for name in raw512 kek4k; do
  tid=$((tid + 1))
  tgt --op new --mode target --tid "$tid" -T "$iqn:$name"
  tgt --op new --mode logicalunit --tid "$tid" --lun 1 -b "$tmpdir/$name.mnt/lun"
  tgt --op bind --mode target --tid "$tid" -I 127.0.0.1
done

# check_volume NAME SECTOR-SIZE
check_volume () {
  local name=$1 ss=$2 url="iscsi://127.0.0.1:$port/$iqn:$1/1" nbd="nbd+unix:///?socket=$tmpdir/$1.sock"
  local vsize model="$tmpdir/$1.model" cap
  echo "== $name ($ss-byte sectors): $url"
  vsize=$(nbdinfo --size "$nbd")

  # READ CAPACITY(16): 512-byte logical blocks over the whole volume.
  cap=$(iscsi-readcapacity16 "$url")
  echo "$cap" | grep -E 'LOGICAL BLOCK LENGTH|EXPONENT|Total size'
  echo "$cap" | grep -q "^LOGICAL BLOCK LENGTH IN BYTES:512$" ||
    { echo "$0: FAIL: $name: logical block is not 512 bytes" >&2; return 1; }
  echo "$cap" | grep -q "^Total size:$vsize$" ||
    { echo "$0: FAIL: $name: capacity is not the volume's $vsize bytes" >&2; return 1; }
  # tgt's default LUN is fully provisioned: no UNMAP, and no promise that unmapped blocks
  # read as zeros (through the filter they would not: a trimmed sector decrypts to noise).
  echo "$cap" | grep -q "^LBPME:0 LBPRZ:0$" ||
    { echo "$0: FAIL: $name: the LUN advertises thin provisioning" >&2; return 1; }
  if [ "$ss" = 4096 ]; then
    echo "$cap" | grep -q "LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:3$" ||
      { echo "$0: FAIL: $name: physical block is not 4096 bytes" >&2; return 1; }
  fi

  # Round trip: random data with plaintext markers in, through iSCSI, back out.
  "$PYTHON" - "$model" "$vsize" "$marker" <<'PY'
import os, sys
path, size, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
data = bytearray(os.urandom(size))
for off in range(4096 - 7, size, 256 * 1024):       # markers straddling sector boundaries
    data[off:off + 64 * len(marker)] = marker * 64
open(path, "wb").write(data)
PY
  qemu-img convert -n -f raw -O raw "$model" "$url"
  qemu-img convert -f raw -O raw "$url" "$tmpdir/$name.back"
  cmp "$model" "$tmpdir/$name.back"
  nbdcopy "$nbd" "$tmpdir/$name.nbd"
  cmp "$model" "$tmpdir/$name.nbd"

  # Unaligned writes (to 512 and to 4096 bytes), mirrored in the model.
  local w off len pat cmds=()
  for w in 1:1:11 511:2:12 1000:3000:13 4095:513:14 3584:1024:15 12287:8193:16 \
           $((vsize - 1)):1:17 $((vsize - 4097)):4096:18 65536:512:19; do
    IFS=: read -r off len pat <<<"$w"
    cmds+=(-c "write -P $pat $off $len")
    "$PYTHON" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2]));
f.write(bytes([int(sys.argv[4])]) * int(sys.argv[3]))' "$model" "$off" "$len" "$pat"
  done
  qemu-io -f raw "${cmds[@]}" "$url" >/dev/null
  qemu-img convert -f raw -O raw "$url" "$tmpdir/$name.back"
  cmp "$model" "$tmpdir/$name.back"

  # Only ciphertext below the filter.
  grep -qaF "$marker" "$tmpdir/$name.back" ||
    { echo "$0: FAIL: $name: marker missing from the plaintext" >&2; return 1; }
  if grep -qaF "$marker" "$tmpdir/$name.img"; then
    echo "$0: FAIL: $name: plaintext reached the backing file" >&2; return 1
  fi
  if [ "$name" = raw512 ]; then
    "$PYTHON" "$srcdir/filter/oracle.py" check "$tmpdir/raw512.key" aes-256-xts 512 \
      "$tmpdir/raw512.img" "$model"
  fi

  # libiscsi's conformance tests that move data; -d allows the destructive ones. Its exit
  # status does not count failed tests: the run summary's "tests" row does (Failed column).
  local t out="$tmpdir/$name.cu.log" failed=0
  for t in "${ini_tests[@]}"; do
    iscsi-test-cu -d -s -t "$t" "$url" >"$out" 2>&1 || true
    if ! awk '$1 == "tests" { found = 1; if ($3 < 1 || $5 != 0) bad = 1 }
              END { exit !(found && !bad) }' "$out"; then
      echo "$0: FAIL: $name: iscsi-test-cu $t:" >&2; cat "$out" >&2; failed=1
    fi
  done
  [ $failed = 0 ]
}

# The LUNs of docs/gateway.md, "Block sizes": matched to the volume's sector size by hand.
# check_lun NAME LUN LOGICAL-BLOCK EXPONENT
check_lun () {
  local cap
  cap=$(iscsi-readcapacity16 "iscsi://127.0.0.1:$port/$iqn:$1/$2")
  echo "== $1 LUN $2: $(echo "$cap" | grep -E 'BLOCK LENGTH|PHYSICAL BLOCK EXPONENT' | tr '\n' ' ')"
  echo "$cap" | grep -q "^LOGICAL BLOCK LENGTH IN BYTES:$3$" &&
    echo "$cap" | grep -q "LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:$4$" ||
    { echo "$0: FAIL: $1 LUN $2: not $3-byte logical blocks with exponent $4" >&2; return 1; }
}
tgt --op new --mode logicalunit --tid 2 --lun 2 -b "$tmpdir/kek4k.mnt/lun" --blocksize 4096
tgt --op new --mode logicalunit --tid 1 --lun 2 -b "$tmpdir/raw512.mnt/lun"
tgt --op update --mode logicalunit --tid 1 --lun 2 --params lbppbe=0
check_lun kek4k 2 4096 0
check_lun raw512 2 512 0

check_volume raw512 512
check_volume kek4k 4096

# Clean teardown, in order, each step checked.
tgt_stop strict
for name in raw512 kek4k; do
  fusermount3 -u "$tmpdir/$name.mnt"
  pid=$(cat "$tmpdir/$name.fuse.pid")
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "$0: FAIL: nbdfuse $name still running" >&2; exit 1; fi
  rm -f "$tmpdir/$name.fuse.pid"
  if grep -qF " $tmpdir/$name.mnt " /proc/mounts; then echo "$0: FAIL: $name still mounted" >&2; exit 1; fi
  pid=$(cat "$tmpdir/$name.pid")
  stop_nbdkit "$name"
  if kill -0 "$pid" 2>/dev/null; then echo "$0: FAIL: nbdkit $name still running" >&2; exit 1; fi
done
echo "teardown clean"
