#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: mutual-TLS failures say what to fix: server certificate untrusted (wrong CA),
# hostname and IP mismatch, expired server certificate, no client certificate, a client
# certificate without clientAuth, one from an unknown CA, a key that does not match the
# certificate; and another identity's key is refused by the server (Permission Denied).
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"

kmip_start_server kms
kmip_start_server other othername     # certificate for DNS:kms.example.org only
kmip_start_server old expired         # certificate that expired in 2020
p=$kms_port

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
# fails CONF REGEX: `nbdcrypt kms versions` must fail with one line matching REGEX.
fails () {
  local conf=$1 want=$2
  if "$NBDCRYPT" kms --config "$conf" versions > "$tmpdir/out" 2> "$tmpdir/err"; then
    fail "$conf: succeeded"
  fi
  grep -Eq -- "$want" "$tmpdir/err" || { cat "$conf" "$tmpdir/err" >&2; fail "not /$want/"; }
  [ "$(wc -l < "$tmpdir/err")" -eq 1 ] || { cat "$tmpdir/err" >&2; fail "not one line"; }
}
conf () { local f="$tmpdir/$1.conf"; shift; kmip_write_conf "$f" server=127.0.0.1:$p "$@"; echo "$f"; }

# Sanity: the good configuration works, by IP and by name.
"$NBDCRYPT" kms --config "$(conf good)" versions | grep -q "^using 1.4$" || fail "good config"
"$NBDCRYPT" kms --config "$(conf byname server=localhost:$p)" versions | grep -q "^using" ||
  fail "by name (SNI + DNS SAN)"

# Server side problems.
fails "$(conf wrongca ca=$kmip_pki/ca2.pem)" \
  "127.0.0.1:$p: server certificate is not trusted: it is not signed by a CA in .*ca2.pem"
fails "$(conf sysstore ca=system)" "server certificate is not trusted.*system store"
fails "$(conf ipmismatch server=127.0.0.1:$other_port)" \
  "server certificate does not match '127.0.0.1' \(hostname mismatch\)"
fails "$(conf namemismatch server=localhost:$other_port)" \
  "server certificate does not match 'localhost' \(hostname mismatch\)"
fails "$(conf expired server=127.0.0.1:$old_port)" "server certificate has expired"

# Client side problems: the server's TLS alert is turned into advice.
fails "$(conf nocert client-cert= client-key=)" \
  "the server requires a client certificate .*set client-cert and client-key"
fails "$(conf noauth client-cert=$kmip_pki/noauth.pem client-key=$kmip_pki/noauth.key)" \
  "the server rejected our client certificate \(TLS alert: unsupported certificate\).*clientAuth"
fails "$(conf rogue client-cert=$kmip_pki/rogue.pem client-key=$kmip_pki/rogue.key)" \
  "the server rejected our client certificate \(TLS alert: unknown CA\)"
fails "$(conf keymismatch client-key=$kmip_pki/client2.key)" \
  "client key .*client2.key does not belong to client certificate .*client.pem"
fails "$(conf nofile ca=$tmpdir/missing.pem)" "cannot read CA file .*missing.pem"

# Configuration errors name the file and line.
printf '[kms]\nserver = 127.0.0.1:%s\nmax-version = 3.1\n' $p > "$tmpdir/bad.conf"
fails "$tmpdir/bad.conf" "bad.conf:3: max-version '3.1' is not one of"
printf '[kms]\nserver = 127.0.0.1:%s\nverify = off\n' $p > "$tmpdir/bad2.conf"
fails "$tmpdir/bad2.conf" "bad2.conf:3: unknown setting 'verify'"

# Ownership: a key created by one identity is not readable by another.
uid=$("$NBDCRYPT" kms --config "$(conf good)" create --activate)
conf2=$(conf id2 client-cert=$kmip_pki/client2.pem client-key=$kmip_pki/client2.key)
if "$NBDCRYPT" kms --config "$conf2" get "$uid" --out "$tmpdir/stolen" 2> "$tmpdir/err"; then
  fail "identity nbdcrypt-other read nbdcrypt-client's key"
fi
grep -q "Get failed: Permission Denied" "$tmpdir/err" || { cat "$tmpdir/err"; fail "not Permission Denied"; }
[ ! -e "$tmpdir/stolen" ] || fail "output file created"
"$NBDCRYPT" kms --config "$conf2" locate | grep -qx "$uid" && fail "other identity can locate it"
grep -q "Session client identity: nbdcrypt-other" "$tmpdir/kms/server.log" ||
  fail "server did not see identity nbdcrypt-other"
echo "$0: OK"
