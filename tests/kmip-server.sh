# SPDX-License-Identifier: BSD-3-Clause
# Sourced by shell tests (after functions.sh): a throwaway PKI, a real pykmip-server on a free
# loopback port, and nbdcrypt kms.conf files pointing at it.
#
#   source "$srcdir/functions.sh"
#   source "$srcdir/kmip-server.sh"
#   kmip_pki                      # $tmpdir/pki: CAs, server and client certificates (see below)
#   kmip_start_server [NAME]      # NAME defaults to "kms"; sets $kmip_port (and ${NAME}_port)
#   kmip_write_conf FILE [key=value ...]   # a [kms] section for the server(s) started so far
#   kmip_pyclient [IDENTITY]      # prints python code creating a PyKMIP ProxyKmipClient `c`
#   kmip_stop_server [NAME]       # stop early (at exit it is done for you)
#
# PKI in $kmip_pki ($tmpdir/pki):
#   ca.pem / ca.key             the CA that signs everything below and that the server trusts
#   server.pem / server.key     CN=localhost, SAN IP:127.0.0.1 + DNS:localhost, serverAuth
#   client.pem / client.key     CN=nbdcrypt-client, extendedKeyUsage clientAuth (the owner)
#   client2.pem / client2.key   CN=nbdcrypt-other, clientAuth (a second identity)
#   noauth.pem / noauth.key     CN=nbdcrypt-noauth, extendedKeyUsage serverAuth only (no clientAuth)
#   ca2.pem, rogue.pem/.key     a second, unrelated CA and a clientAuth cert it signed
#   expired.pem / expired.key   a server certificate (SAN 127.0.0.1) whose validity ended
#
# pykmip-server quirks (0.10.0, learnt with its own ProxyKmipClient):
#   - it speaks KMIP 1.0-1.4 and 2.0 and answers in the version of the request header;
#   - identity = the client certificate's subject CN; objects are owned by the identity that
#     created them and other identities get "Permission Denied" (Get) or nothing (Locate);
#   - a client certificate without clientAuth is refused in the handshake (OpenSSL purpose
#     check: alert "unsupported certificate"); one from another CA gets alert "unknown ca";
#   - it listens ~1 s after start; idle connections stay open (reused across requests);
#   - SIGTERM makes it wait ~10 s for session threads, so the group is SIGKILLed after 1 s.

: "${tmpdir:?source functions.sh first}"

kmip_pki="$tmpdir/pki"
_kmip_servers=()

_kmip_cert () {
  # _kmip_cert NAME CN CA EXTFILE-BODY [DAYS|expired]
  local name=$1 cn=$2 ca=$3 ext=$4 days=${5:-2}
  local d=$kmip_pki
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/$name.key" -out "$d/$name.csr" -subj "/O=nbdcrypt test/CN=$cn" 2>/dev/null
  printf '%s\n' "$ext" > "$d/$name.ext"
  if [ "$days" = expired ]; then
    # x509 -req cannot backdate; "openssl ca" can, with an explicit start and end.
    mkdir -p "$d/db"; : > "$d/db/index"; echo 1000 > "$d/db/serial"
    cat > "$d/db/ca.cnf" <<EOF
[ca]
default_ca = c
[c]
database = $d/db/index
serial = $d/db/serial
new_certs_dir = $d/db
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
organizationName = optional
EOF
    openssl ca -batch -config "$d/db/ca.cnf" -cert "$d/$ca.pem" -keyfile "$d/$ca.key" \
      -in "$d/$name.csr" -out "$d/$name.pem" -notext \
      -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$d/$name.ext" 2>/dev/null
  else
    openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" \
      -CAcreateserial -days "$days" -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
  fi
  chmod 600 "$d/$name.key"
}

# kmip_pki: generate the PKI described above (idempotent; ~1 s).
kmip_pki () {
  [ -s "$kmip_pki/client.pem" ] && return 0
  requires openssl
  mkdir -p "$kmip_pki"
  local d=$kmip_pki ca
  for ca in ca ca2; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -keyout "$d/$ca.key" -out "$d/$ca.pem" -subj "/O=nbdcrypt test/CN=nbdcrypt test $ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
  done
  local srv="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  local cli="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  _kmip_cert server  localhost        ca  "$srv"
  _kmip_cert client  nbdcrypt-client  ca  "$cli"
  _kmip_cert client2 nbdcrypt-other   ca  "$cli"
  _kmip_cert noauth  nbdcrypt-noauth  ca  "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
  _kmip_cert rogue   nbdcrypt-client  ca2 "$cli"
  _kmip_cert expired localhost        ca  "$srv" expired
  # A server certificate valid only for another name: the hostname-mismatch test.
  _kmip_cert othername kms.example.org ca "basicConstraints=CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=DNS:kms.example.org"
  rm -f "$d"/*.csr "$d"/*.ext
}

# requires_kmip_server: PyKMIP's server and client can run here (skip if not).
requires_kmip_server () {
  requires_py kmip
  [ -x /usr/bin/pykmip-server ] || skip "pykmip-server is not installed"
}

# kmip_free_port: a TCP port free on 127.0.0.1 right now.
kmip_free_port () {
  "$PYTHON" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kmip_start_server [NAME [CERT [DB-OF]]]: start pykmip-server (CERT: server certificate
# basename in the PKI, default "server"; DB-OF: the name of a server whose database to share,
# which makes a replicated pair for failover tests) and wait until it accepts TLS. Sets
# ${NAME}_port and $kmip_port.
kmip_start_server () {
  local name=${1:-kms} cert=${2:-server} db=${3:-${1:-kms}}
  requires_kmip_server
  kmip_pki
  local dir="$tmpdir/$name" port
  mkdir -p "$dir"
  port=$(kmip_free_port)
  cat > "$dir/server.conf" <<EOF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$kmip_pki/$cert.pem
key_path=$kmip_pki/$cert.key
ca_path=$kmip_pki/ca.pem
auth_suite=TLS1.2
enable_tls_client_auth=True
database_path=$tmpdir/$db/pykmip.db
logging_level=INFO
EOF
  _kmip_servers+=("$name")
  on_exit "kmip_stop_server $name"
  _kmip_launch "$name" || return 1
  printf -v "${name//-/_}_port" '%s' "$port"
  kmip_port=$port
}

# Start (or restart) the server whose config is in $tmpdir/NAME and wait until it serves.
_kmip_launch () {
  local name=$1 dir="$tmpdir/$1" port i
  port=$(grep '^port=' "$dir/server.conf" | cut -d= -f2)
  : > "$dir/server.log"
  # Its own session (setsid) so that the whole group can be killed at exit.
  setsid "$PYTHON" /usr/bin/pykmip-server -f "$dir/server.conf" -l "$dir/server.log" \
    >"$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  disown $!   # no "Killed" job report from the shell when it is stopped
  for i in $(seq 300); do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "$0: pykmip-server failed to start:" >&2
      cat "$dir/stdout.log" "$dir/server.log" >&2 2>/dev/null
      return 1
    fi
    # Listening is not enough: the socket is bound before serve() calls listen().
    if grep -q "Starting connection service" "$dir/server.log" 2>/dev/null &&
       "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" \
         2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$0: pykmip-server did not start in 30 s:" >&2
  cat "$dir/server.log" >&2
  return 1
}

# kmip_restart_server [NAME]: stop the server and start it again on the same port and
# database (clients holding a connection see it closed).
kmip_restart_server () {
  local name=${1:-kms}
  kmip_stop_server "$name"
  _kmip_launch "$name"
}

# kmip_start_fake MODE [NAME]: start tests/kmip/fake-kmip-server.py in MODE (see that file)
# with the harness server certificate; sets ${NAME}_port (NAME defaults to fake_MODE).
kmip_start_fake () {
  local mode=$1 name=${2:-fake_${1//-/_}} dir
  kmip_pki
  dir="$tmpdir/$name"
  mkdir -p "$dir"
  setsid "$PYTHON" "$srcdir/kmip/fake-kmip-server.py" "$mode" "$kmip_pki/server.pem" \
    "$kmip_pki/server.key" "$kmip_pki/ca.pem" > "$dir/port" 2> "$dir/stderr.log" < /dev/null &
  echo $! > "$dir/pid"
  disown $!
  on_exit "kmip_stop_server $name"
  for _ in $(seq 100); do
    [ -s "$dir/port" ] && break
    sleep 0.1
  done
  [ -s "$dir/port" ] || { echo "$0: fake server did not start" >&2; cat "$dir/stderr.log" >&2; return 1; }
  printf -v "${name//-/_}_port" '%s' "$(head -1 "$dir/port")"
}

# kmip_stop_server [NAME]: SIGTERM the server's process group, SIGKILL it after 1 s.
kmip_stop_server () {
  local name=${1:-kms} dir pid
  dir="$tmpdir/$name"
  [ -s "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 10); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/pid"
}

# kmip_write_conf FILE [key=value ...]: an nbdcrypt kms.conf for the servers started so far
# (all of them, in order), the harness PKI and the "nbdcrypt-client" identity. Extra key=value
# pairs override or add settings (e.g. client-cert=... max-version=2.0 timeout=2).
kmip_write_conf () {
  local file=$1; shift
  local servers="" n port
  for n in "${_kmip_servers[@]}"; do
    port=$(grep '^port=' "$tmpdir/$n/server.conf" | cut -d= -f2)
    servers="${servers:+$servers, }127.0.0.1:$port"
  done
  declare -A kv=(
    [server]="$servers"
    [ca]="$kmip_pki/ca.pem"
    [client-cert]="$kmip_pki/client.pem"
    [client-key]="$kmip_pki/client.key"
    [timeout]=10
  )
  local order=(server ca client-cert client-key timeout) a k
  for a in "$@"; do
    k=${a%%=*}
    [ -n "${kv[$k]+x}" ] || order+=("$k")
    kv[$k]=${a#*=}
  done
  {
    echo "# written by tests/kmip-server.sh"
    echo "[kms]"
    for k in "${order[@]}"; do
      [ -n "${kv[$k]}" ] && echo "$k = ${kv[$k]}"
    done
  } > "$file"
}

# kmip_pyclient [IDENTITY [VERSION]]: python source that defines `c`, an open PyKMIP
# ProxyKmipClient for the last started server. IDENTITY: client (default) or client2.
# VERSION e.g. 1.2 or 2.0 (default: PyKMIP's own default, 1.2).
kmip_pyclient () {
  local id=${1:-client} ver=${2:-}
  local kv=""
  [ -n "$ver" ] && kv="kmip_version=enums.KMIPVersion.KMIP_${ver/./_},"
  cat <<EOF
import logging, ssl
logging.disable(logging.CRITICAL)
from kmip.pie.client import ProxyKmipClient
from kmip.core import enums
c = ProxyKmipClient(hostname="127.0.0.1", port=$kmip_port, cert="$kmip_pki/$id.pem",
                    key="$kmip_pki/$id.key", ca="$kmip_pki/ca.pem",
                    ssl_version="PROTOCOL_TLSv1_2", $kv config_file="/dev/null")
c.open()
EOF
}
