#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: many volumes in one nbdkit - every file of the plugin's dir= a volume with its
# own header and DEK, one export each.
# 1. 12 volumes under one KEK file, 512- and 4096-byte sectors, over nbdkit's file plugin:
#    each export written (aligned, unaligned, write-zeroes) and read back; the export list
#    (nbdinfo --list) names each volume by the UUID `nbdcrypt dump` shows; no two volumes share
#    a DEK; every file decrypts under its own DEK (python3-cryptography).
# 2. 11 volumes in a real KMIP server (PyKMIP), 10 KEKs (two volumes share one), preload=true,
#    key-check-interval=2: a volume whose two header copies are destroyed is refused alone
#    (its connections fail, its list entry says "refused: ..."); a KEK revoked while serving
#    fails its volume's open connection with EPERM within the interval plus a few seconds and
#    refuses new ones, while every other export keeps reading and writing correctly.
# 3. Two connections at once on each of 4 exports, random unaligned writes to interleaved
#    stripes that share sectors; read back, then decrypted by the oracle.
# 4. As 1 (4 volumes) over the uring plugin's dir=, if it has one.
# 5. key-file= and key-id= with dir= refuse to start: every export would share one key.
source "$srcdir/functions.sh"
source "$srcdir/volume/volume-functions.sh"
source "$srcdir/kmip-server.sh"
requires nbdkit
requires nbdsh
requires nbdinfo
requires_py nbd
requires_py cryptography
: "${NBDCRYPT_URING_PLUGIN:?}"

io () { "$PYTHON" "$srcdir/volume/many-io.py" "$@"; }
fail () { echo "$0: FAIL: $*" >&2; exit 1; }
json_field () {  # json_field FILE FIELD: a field of `nbdcrypt dump --json`
  "$NBDCRYPT" dump --json "$1" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}
sector_of () { echo $(( $1 % 2 ? 512 : 4096 )); }     # sector_of INDEX
t_start=$(date +%s.%N)
elapsed () { awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t_start}"; }

# check_list NAME DIR JSON [REFUSED]: every file of DIR is in the export list JSON (many-io.py
# list, or nbdinfo --list --json) with the description "nbdcrypt volume UUID, cipher, N-byte
# sectors" made of what `nbdcrypt dump` shows; files named in the file REFUSED (one a line)
# instead have a description starting "refused:". No other export.
check_list () {
  local f dumps=$tmpdir/$1.dumps
  rm -rf "$dumps"; mkdir "$dumps"
  for f in "$2"/*; do "$NBDCRYPT" dump --json "$f" >"$dumps/${f##*/}" 2>/dev/null || true; done
  "$PYTHON" -c '
import json, os, sys
got = json.load(open(sys.argv[1]))
got = {e.get("export-name", e.get("name")): e
       for e in (got["exports"] if isinstance(got, dict) else got)}
refused = open(sys.argv[3]).read().split()
if set(got) != set(os.listdir(sys.argv[2])):
    raise SystemExit(f"exports listed {sorted(got)}, files {sorted(os.listdir(sys.argv[2]))}")
for n, e in sorted(got.items()):
    desc = e.get("description", "")
    if n in refused:
        if not desc.startswith("refused: "):
            raise SystemExit(f"export {n}: description {desc!r}, expected refused: ...")
        print(f"export {n}: {desc}")
        continue
    h = json.load(open(os.path.join(sys.argv[2], n)))
    want = "nbdcrypt volume %s, %s, %s-byte sectors" % (h["uuid"], h["cipher"], h["sector_size"])
    if desc != want:
        raise SystemExit(f"export {n}: description {desc!r}, expected {want!r}")
    if "export-size" in e and e["export-size"] != h["data_size"]:
        raise SystemExit("export %s: size %d, header data size %d"
                         % (n, e["export-size"], h["data_size"]))
print(f"export list: {len(got)} exports, {len(got) - len(refused)} named by their volume "
      f"UUID, {len(refused)} refused")' "$3" "$dumps" "${4:-/dev/null}" || fail "$1: export list"
}

# check_deks NAME DEKDIR: no two DEKs equal.
check_deks () {
  local n distinct
  n=$(find "$2" -type f | wc -l)
  distinct=$(find "$2" -type f -exec sha256sum {} + | awk '{print $1}' | sort -u | wc -l)
  [ "$n" = "$distinct" ] || fail "$1: volumes share a DEK ($distinct DEKs for $n volumes)"
  echo "$1: $n volumes, $distinct distinct DEKs"
}

# oracle_all DIR DEKDIR PLAINDIR KEK|- NAME...: each volume decrypts to its shadow (many-io.py).
oracle_all () { io oracle "$@" || fail "oracle"; }

# ---- 5. key-file= / key-id= with dir=: refused at start -------------------------------
mkdir -p "$tmpdir/refdir"
truncate -s 3M "$tmpdir/refdir/a"
head -c 64 /dev/urandom >"$tmpdir/raw.key"
volume_fails "serves every file of dir=.* as an export, but key-file= keys one headerless \
volume: every export would share one key" \
  --filter="$NBDCRYPT_FILTER" file dir="$tmpdir/refdir" key-file="$tmpdir/raw.key"
echo "5: key-file= with dir= refused at start (exit status non-zero): $(elapsed) s"

# ---- 1. 12 volumes under one KEK file ----------------------------------------------------
# dir_case NAME PLUGIN N: N volumes in $tmpdir/NAME/vols, served by PLUGIN dir= kek-file=;
# each export filled and read back, the list checked, then the files by the oracle.
dir_case () {
  local name=$1 plugin=$2 n=$3 d=$tmpdir/$1 i v names=() create
  mkdir -p "$d/vols" "$d/dek" "$d/plain"
  for ((i = 0; i < n; i++)); do
    v=$(printf 'vol%02d' "$i")
    names+=("$v")
    truncate -s $((3 + i % 3))M "$d/vols/$v"
    create=(); [ "$i" = 0 ] && create=(--create-kek)
    "$NBDCRYPT" format "$d/vols/$v" --kek-file "$d/kek" "${create[@]}" \
      --sector-size "$(sector_of "$i")" >"$d/format.out" 2>&1 ||
      fail "$name: format $v:$(echo; cat "$d/format.out")"
  done
  start_nbdkit "$name" --filter="$NBDCRYPT_FILTER" "$plugin" dir="$d/vols" kek-file="$d/kek"
  io fill "$sock" "$d/plain" "$name" "${names[@]}"
  nbdinfo --list --json "$uri" >"$d/list.json"
  check_list "$name" "$d/vols" "$d/list.json"
  stop_nbdkit "$name"
  for v in "${names[@]}"; do
    "$NBDCRYPT" dump "$d/vols/$v" --kek-file "$d/kek" --dump-volume-key "$d/dek/$v" \
      2>/dev/null
  done
  check_deks "$name" "$d/dek"
  oracle_all "$d/vols" "$d/dek" "$d/plain" "$d/kek" "${names[@]}"
}
dir_case many file 12
echo "1: 12 volumes under one KEK file over the file plugin: $(elapsed) s"

# ---- 3. concurrent writers on 4 exports ------------------------------------------------
d=$tmpdir/many
start_nbdkit many --filter="$NBDCRYPT_FILTER" file dir="$d/vols" kek-file="$d/kek"
io concurrent "$sock" "$d/plain" 1000 vol00 vol01 vol02 vol03
stop_nbdkit many
oracle_all "$d/vols" "$d/dek" "$d/plain" - vol00 vol01 vol02 vol03
echo "3: concurrent writers on 4 exports: $(elapsed) s"

# ---- 4. the uring plugin's dir= ----------------------------------------------------------
# (Under ASan the plugin loads only with the sanitizer runtimes preloaded.)
if ( sanitizer_env "$NBDCRYPT_URING_PLUGIN"; exec nbdkit "$NBDCRYPT_URING_PLUGIN" --help ) \
     2>/dev/null | grep -q '^dir='; then
  dir_case uring "$NBDCRYPT_URING_PLUGIN" 4
  echo "4: 4 volumes over the uring plugin's dir=: $(elapsed) s"
else
  echo "4: NOTE: not run: the uring plugin has no dir= parameter in this tree"
fi

# ---- 2. KMS: preload, a corrupt volume, a KEK revoked while serving ---------------------
kmip_start_server
conf=$tmpdir/kms.conf
kmip_write_conf "$conf" version=1.4
d=$tmpdir/kms
mkdir -p "$d/vols" "$d/dek" "$d/plain" "$d/hold"
names=()
for i in $(seq 0 10); do
  v=$(printf 'vol%02d' "$i")
  truncate -s 3M "$d/vols/$v"
  if [ "$i" = 10 ]; then      # shares vol00's KEK
    key=(--kek-id "$(json_field "$d/vols/vol00" kek_id)")
  else
    key=(--create-kek --name "many-$v")
  fi
  "$NBDCRYPT" format "$d/vols/$v" --kms-config "$conf" "${key[@]}" \
    --sector-size "$(sector_of "$i")" >"$d/format.out" 2>&1 ||
    fail "kms: format $v:$(echo; cat "$d/format.out")"
  "$NBDCRYPT" dump "$d/vols/$v" --kms-config "$conf" --dump-volume-key "$d/dek/$v" 2>/dev/null
  [ "$v" = vol03 ] || names+=("$v")
done
check_deks kms "$d/dek"
echo "2: 11 KMS volumes formatted: $(elapsed) s"
[ "$(json_field "$d/vols/vol10" kek_id)" = "$(json_field "$d/vols/vol00" kek_id)" ]
revoked_kek=$(json_field "$d/vols/vol05" kek_id)
# vol03: both header copies destroyed.
for off in 0 128; do
  dd if=/dev/urandom of="$d/vols/vol03" bs=4096 seek=$off count=1 conv=notrunc 2>/dev/null
done
echo vol03 >"$d/refused"

start_nbdkit kms --filter="$NBDCRYPT_FILTER" file dir="$d/vols" kms-config="$conf" \
  preload=true key-check-interval=2
grep -q "preload: 10 of 11 volumes in .* opened" "$tmpdir/kms.log" ||
  fail "kms: preload did not open 10 of 11 volumes:$(echo; cat "$tmpdir/kms.log")"
grep -q "preload: export 'vol03' refused" "$tmpdir/kms.log" || fail "kms: vol03 not refused"
# Preloaded: the list describes every volume before any connection.
io list "$sock" >"$d/list.json"
check_list kms "$d/vols" "$d/list.json" "$d/refused"
if nbdsh -u "nbd+unix:///vol03?socket=$sock" -c 'h.pread(512, 0)' >"$d/vol03.out" 2>&1; then
  fail "kms: the corrupt volume vol03 was served"
fi
io fill "$sock" "$d/plain" kms "${names[@]}"

# One connection held open on vol05, whose KEK is revoked below; the 9 others in use all along.
io hold "$sock" vol05 "$d/hold" >"$d/hold.out" 2>&1 &
holder=$!
on_exit "kill $holder 2>/dev/null || true"
others=()
for v in "${names[@]}"; do [ "$v" = vol05 ] || others+=("$v"); done
io keep "$sock" "$d/plain" "$d/stop" "${others[@]}" >"$d/keep.out" 2>&1 &
keeper=$!
on_exit "kill $keeper 2>/dev/null || true"
for _ in $(seq 300); do
  [ -e "$d/hold/ready" ] && [ -e "$d/plain/keep.ready" ] && break
  kill -0 "$holder" 2>/dev/null && kill -0 "$keeper" 2>/dev/null ||
    fail "kms: a client ended early:$(echo; cat "$d/hold.out" "$d/keep.out")"
  sleep 0.1
done
[ -e "$d/hold/ready" ] && [ -e "$d/plain/keep.ready" ] || fail "kms: clients not ready in 30 s"
t_revoke=$(date +%s.%N)
"$NBDCRYPT" kms --config "$conf" revoke "$revoked_kek" --reason compromised >/dev/null
wait "$holder" || fail "kms: the open connection to vol05:$(echo; cat "$d/hold.out")"
"$PYTHON" -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
secs = r["time"] - float(sys.argv[2])
print(f"vol05: open connection refused {secs:.1f} s after the revocation: read %s, write %s"
      % (r["read"], r["write"]))
if r["read"] != "EPERM" or r["write"] != "EPERM":
    raise SystemExit("expected EPERM for the read and the write")
if secs > 2 + 5:
    raise SystemExit("later than the key-check interval (2 s) plus 5 s")' \
  "$d/hold.out" "$t_revoke" || fail "kms: vol05 after the revocation:$(echo; cat "$d/hold.out")"
if nbdsh -u "nbd+unix:///vol05?socket=$sock" -c 'h.pread(512, 0)' >"$d/vol05.out" 2>&1; then
  fail "kms: a new connection to the revoked vol05 was served"
fi
grep -q "export 'vol05': connection refused: .*compromised" "$tmpdir/kms.log" ||
  fail "kms: no refusal of vol05 logged:$(echo; cat "$tmpdir/kms.log")"
sleep 1                       # the other exports go on after the revocation
touch "$d/stop"
wait "$keeper" || fail "kms: the other exports:$(echo; cat "$d/keep.out")"
cat "$d/keep.out"
io list "$sock" >"$d/list.json"
echo vol05 >>"$d/refused"
check_list kms-after "$d/vols" "$d/list.json" "$d/refused"
kill -0 "$(cat "$tmpdir/kms.pid")" || fail "kms: nbdkit exited"
stop_nbdkit kms
# vol05 holds what was written before the revocation; every other volume what kept being
# written after it.
oracle_all "$d/vols" "$d/dek" "$d/plain" - "${names[@]}"
echo "2: KMS volumes, one corrupt, one revoked: $(elapsed) s"

# key-id= with dir=: refused at start too.
volume_fails "serves every file of dir=.* as an export, but key-id= keys one headerless \
volume" --filter="$NBDCRYPT_FILTER" file dir="$tmpdir/refdir" kms-config="$conf" key-id=1
echo "5: key-id= with dir= refused at start: $(elapsed) s"
