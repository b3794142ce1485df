#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: secret files readable by group or others are warned about (as ssh and
# cryptsetup do), and private ones are not: the nbdcrypt command prints "warning: KEK file ...
# readable by ..." on stderr for a KEK file, a kms.conf and a KMS client key; the filter logs
# "nbdcrypt: warning: ..." for kek-file= and key-file=. The warning never stops anything.
source "$srcdir/functions.sh"
requires nbdkit
requires openssl

vol=$tmpdir/vol.img
kek=$tmpdir/kek
truncate -s 8M "$vol"
head -c 32 /dev/urandom > "$kek"

# warns PATTERN FILE: FILE has a line matching PATTERN; quiet PATTERN FILE: none.
warns () {
  grep -Eq -- "$1" "$2" || { echo "$0: FAIL: no /$1/ in:" >&2; cat "$2" >&2; exit 1; }
  grep -E -- "$1" "$2" | head -1
}
quiet () {
  if grep -Eq -- "$1" "$2"; then echo "$0: FAIL: unexpected /$1/ in:" >&2; cat "$2" >&2; exit 1; fi
}

# The command: KEK file.
chmod 644 "$kek"
"$NBDCRYPT" format "$vol" --kek-file "$kek" >/dev/null 2>"$tmpdir/format.err"
warns "nbdcrypt format: warning: KEK file $kek is readable by its group and others \(mode 0644\).*chmod go-rwx" "$tmpdir/format.err"
chmod 640 "$kek"
"$NBDCRYPT" verify "$vol" --kek-file "$kek" >/dev/null 2>"$tmpdir/verify.err"
warns "nbdcrypt verify: warning: KEK file $kek is readable by its group \(mode 0640\)" "$tmpdir/verify.err"
chmod 600 "$kek"
"$NBDCRYPT" verify "$vol" --kek-file "$kek" >/dev/null 2>"$tmpdir/verify.err"
quiet "readable" "$tmpdir/verify.err"

# The command: kms.conf and the client key (the KMS is not reached: the files are checked
# when the configuration is opened, before any connection).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=t \
  -keyout "$tmpdir/client.key" -out "$tmpdir/client.pem" 2>/dev/null
printf '[kms]\nserver = 127.0.0.1:1\nca = %s\nclient-cert = %s\nclient-key = %s\ntimeout = 1\n' \
  "$tmpdir/client.pem" "$tmpdir/client.pem" "$tmpdir/client.key" > "$tmpdir/kms.conf"
truncate -s 8M "$tmpdir/vol2.img"
chmod 604 "$tmpdir/kms.conf"; chmod 644 "$tmpdir/client.key"
"$NBDCRYPT" format "$tmpdir/vol2.img" --kms-config "$tmpdir/kms.conf" --kek-id 1 \
  >/dev/null 2>"$tmpdir/kms.err" && { echo "$0: FAIL: format reached a KMS on port 1" >&2; exit 1; }
warns "warning: KMS configuration $tmpdir/kms.conf is readable by others \(mode 0604\)" "$tmpdir/kms.err"
warns "KMS client key $tmpdir/client.key is readable by its group and others" "$tmpdir/kms.err"
chmod 600 "$tmpdir/kms.conf" "$tmpdir/client.key"
"$NBDCRYPT" format "$tmpdir/vol2.img" --kms-config "$tmpdir/kms.conf" --kek-id 1 \
  >/dev/null 2>"$tmpdir/kms.err" || true
quiet "readable" "$tmpdir/kms.err"

# The filter: kek-file= (logged once the volume is open), then quiet when private.
chmod 644 "$kek"
start_nbdkit vol --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
nbdinfo --size "$uri" >/dev/null
warns "nbdcrypt: warning: KEK file $kek is readable by its group and others" "$tmpdir/vol.log"
kill "$(cat "$tmpdir/vol.pid")"; sleep 0.5
chmod 600 "$kek"
start_nbdkit vol2 --filter="$NBDCRYPT_FILTER" file "$vol" kek-file="$kek"
nbdinfo --size "$uri" >/dev/null
quiet "readable" "$tmpdir/vol2.log"

# The filter: key-file= (a raw volume key), warned at start-up.
head -c 64 /dev/urandom > "$tmpdir/raw.key"
chmod 640 "$tmpdir/raw.key"
truncate -s 1M "$tmpdir/raw.img"
start_nbdkit raw --filter="$NBDCRYPT_FILTER" file "$tmpdir/raw.img" key-file="$tmpdir/raw.key"
warns "nbdcrypt: warning: key file $tmpdir/raw.key is readable by its group \(mode 0640\)" "$tmpdir/raw.log"
echo "secret file modes: warned and quiet as expected"
