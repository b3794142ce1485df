#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: nbdcrypt@.service passes systemd-analyze verify, keeps its socket and pidfile
# in the instance's RuntimeDirectory, and the exact command line its ExecStart expands to
# (with a sample /etc/nbdcrypt/volumes/%i.conf) serves an encrypted volume: a kek-file volume
# on a file and a raw key-file volume on memory, each written and read back over NBD.
source "$srcdir/functions.sh"
requires nbdkit
requires nbdsh
requires systemd-analyze

unit="$top_srcdir/systemd/nbdcrypt@.service"

# 1. systemd's own check, on an instance of the template (man pages are checked once they are
# installed, by test-deb.sh).
mkdir "$tmpdir/units"
cp "$unit" "$tmpdir/units/nbdcrypt@vol1.service"
systemd-analyze verify --man=no "$tmpdir/units/nbdcrypt@vol1.service"

# 2. The socket and the pidfile live in the per-instance runtime directory, which systemd
# creates empty at start and removes at stop: a crash cannot leave a stale socket behind
# (nbdkit refuses to bind over one: "Address already in use").
grep -qx 'RuntimeDirectory=nbdcrypt/%i' "$unit"
grep -qx 'PIDFile=%t/nbdcrypt/%i/nbdkit.pid' "$unit"
grep -q '^ExecStart=.* -U %t/nbdcrypt/%i/nbd.sock ' "$unit"
grep -qx 'Type=forking' "$unit"

# expand_execstart INSTANCE CONF: print ExecStart as systemd runs it, one argument per line:
# %t is the runtime root, %i the instance, and a lone $VAR word becomes the words of VAR's
# value from the EnvironmentFile (zero words if empty), as systemd.service(5) specifies.
expand_execstart () {
  local inst=$1 conf=$2 line word
  declare -A env=()
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    env[${line%%=*}]=${line#*=}
  done < "$conf"
  line=$(sed -n 's/^ExecStart=//p' "$unit")
  line=${line//%t/$tmpdir/run}
  line=${line//%i/$inst}
  for word in $line; do
    if [[ $word =~ ^\$([A-Za-z_][A-Za-z0-9_]*)$ ]]; then
      for w in ${env[${BASH_REMATCH[1]}]:-}; do printf '%s\n' "$w"; done
    else
      printf '%s\n' "$word"
    fi
  done
}

# serve INSTANCE: what "systemctl start nbdcrypt@INSTANCE" does: create the runtime directory,
# run ExecStart (nbdkit returns once it listens), read the pidfile.
serve () {
  local inst=$1 args
  rm -rf "$tmpdir/run/nbdcrypt/$inst"
  mkdir -p -m 0750 "$tmpdir/run/nbdcrypt/$inst"
  mapfile -t args < <(expand_execstart "$inst" "$tmpdir/volumes/$inst.conf")
  # Not installed here: the filter by path instead of by name (test-deb.sh runs it by name).
  [ "${args[0]}" = /usr/bin/nbdkit ]
  args=("${args[@]/#--filter=nbdcrypt/--filter=$NBDCRYPT_FILTER}")
  echo "ExecStart: ${args[*]}"
  pidfile="$tmpdir/run/nbdcrypt/$inst/nbdkit.pid"
  _nbdkit_pidfiles+=("$pidfile")
  ( sanitizer_env; exec "${args[@]}" )
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")"
  sock="$tmpdir/run/nbdcrypt/$inst/nbd.sock"
  [ -S "$sock" ]
}

stop () {
  local pid
  pid=$(cat "$tmpdir/run/nbdcrypt/$1/nbdkit.pid")
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# write_read SOCKET: write a pattern through NBD, read it back on a new connection.
write_read () {
  nbdsh -u "nbd+unix:///?socket=$1" -c 'h.pwrite(b"systemd-unit-check" * 100, 8192)'
  nbdsh -u "nbd+unix:///?socket=$1" -c '
assert h.pread(1800, 8192) == b"systemd-unit-check" * 100
print("size", h.get_size())'
}

mkdir "$tmpdir/volumes"

# A volume with a header, KEK in a local file, on a file plugin.
truncate -s 16M "$tmpdir/vol1.img"
"$NBDCRYPT" format "$tmpdir/vol1.img" --kek-file "$tmpdir/host.kek" --create-kek
cat > "$tmpdir/volumes/vol1.conf" <<CONF
# a sample /etc/nbdcrypt/volumes/vol1.conf
PLUGIN=file
PLUGIN_ARGS=$tmpdir/vol1.img
FILTER_ARGS=kek-file=$tmpdir/host.kek key-check-interval=0
NBDKIT_ARGS=
CONF
serve vol1
write_read "$sock"
stop vol1
# The plaintext never reached the file.
! grep -q systemd-unit-check "$tmpdir/vol1.img"

# A headerless raw-key volume on the memory plugin, extra nbdkit options.
head -c 64 /dev/urandom > "$tmpdir/vol2.key"
cat > "$tmpdir/volumes/vol2.conf" <<CONF
PLUGIN=memory
PLUGIN_ARGS=size=64M
FILTER_ARGS=key-file=$tmpdir/vol2.key sector-size=512
NBDKIT_ARGS=--threads 4
CONF
serve vol2
write_read "$sock"
stop vol2

echo "$0: OK"
