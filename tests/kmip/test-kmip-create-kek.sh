#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt format --create-kek` with local wrap (aes-kwp) creates, activates and
# fetches the KEK through the ID placeholder: messages counted on the servers' side. Against
# pykmip-server (which refuses an identifier-less Activate): DiscoverVersions, the refused
# Create+Activate+Get, Create+Get, Activate = 4 messages (6 before: Create+Activate refused,
# Create, Activate, GetAttributes, Get); the volume opens with the KEK PyKMIP's own client
# reads. Against a server that takes the placeholder in Activate (fake): 1 message. With wrap
# kms the KEK is never fetched.
source "$srcdir/functions.sh"
source "$srcdir/kmip-server.sh"

fail () { echo "$0: FAIL: $*" >&2; exit 1; }
kmip_start_server
kmip_write_conf "$tmpdir/kms.conf"
log="$tmpdir/kms/server.log"

# messages_during CMD...: run CMD; print the number of request messages the server received
# (it logs the client identity for each message it parses, and a warning for one it cannot).
count_messages () {
  grep -Ec "Session client identity|Failure parsing request message" "$log" || true
}
messages_during () {
  local before
  before=$(count_messages)
  "$@" > "$tmpdir/out"
  sleep 0.3                     # the log line of the last message may lag behind the answer
  echo $(( $(count_messages) - before ))
}

truncate -s 8M "$tmpdir/a.img"
n=$(messages_during "$NBDCRYPT" format "$tmpdir/a.img" --kms-config "$tmpdir/kms.conf" \
      --create-kek --name kek-a)
grep -q "KEK: kmip .* (wrap aes-kwp)" "$tmpdir/out" || fail "format output: $(cat "$tmpdir/out")"
[ "$n" -eq 4 ] || fail "format --create-kek sent $n messages, expected 4"
tail -n 40 "$log" | grep -q "Processing operation: Get" || fail "no Get in the batch"
uid=$("$NBDCRYPT" dump --json "$tmpdir/a.img" |
      "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["kek_id"])')
"$NBDCRYPT" verify "$tmpdir/a.img" --kms-config "$tmpdir/kms.conf" |
  grep -q "KEK $uid (kmip): active" || fail "verify: KEK not active"
"$NBDCRYPT" verify "$tmpdir/a.img" --kms-config "$tmpdir/kms.conf" |
  grep -q "key check value OK" || fail "verify: the volume key does not unwrap"
# The header's wrapped DEK unwraps (RFC 5649, python3-cryptography) under the KEK as
# PyKMIP's own client reads it, to the volume key nbdcrypt dump gives.
if "$PYTHON" -c "import cryptography" 2>/dev/null; then
  "$NBDCRYPT" dump "$tmpdir/a.img" --kms-config "$tmpdir/kms.conf" \
    --dump-volume-key "$tmpdir/dek" 2>/dev/null
  "$NBDCRYPT" dump --json "$tmpdir/a.img" > "$tmpdir/hdr.json"
  "$PYTHON" - "$tmpdir/hdr.json" "$tmpdir/dek" <<PY || fail "DEK does not unwrap under PyKMIP's view of the KEK"
$(kmip_pyclient client)
import json, sys
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
kek = c.get("$uid").value
wrapped = bytes.fromhex(json.load(open(sys.argv[1]))["wrapped_dek"])
assert aes_key_unwrap_with_padding(kek, wrapped) == open(sys.argv[2], "rb").read()
PY
fi
echo "pykmip-server: format --create-kek in $n messages"

# wrap kms: the KEK stays in the KMS (no Get at all).
truncate -s 8M "$tmpdir/b.img"
before=$(grep -c "Processing operation: Get$" "$log" || true)
"$NBDCRYPT" format "$tmpdir/b.img" --kms-config "$tmpdir/kms.conf" --create-kek --wrap kms \
  > /dev/null
[ "$(grep -c "Processing operation: Get$" "$log")" -eq "$before" ] ||
  fail "format --create-kek --wrap kms fetched the KEK"

# A server that honours the placeholder in Activate: one message for the whole format.
kmip_start_fake placeholder
kmip_write_conf "$tmpdir/ph.conf" server="127.0.0.1:$fake_placeholder_port" version=1.4
truncate -s 8M "$tmpdir/c.img"
"$NBDCRYPT" format "$tmpdir/c.img" --kms-config "$tmpdir/ph.conf" --create-kek > "$tmpdir/out"
grep -q "KEK: kmip ph-1 (wrap aes-kwp)" "$tmpdir/out" || fail "fake: $(cat "$tmpdir/out")"
grep "^request:" "$tmpdir/fake_placeholder/stderr.log" > "$tmpdir/reqs"
[ "$(cat "$tmpdir/reqs")" = "request: 0x01 0x12 0x0a" ] ||
  fail "fake server saw: $(cat "$tmpdir/reqs")"
echo "placeholder server: format --create-kek in 1 message (Create, Activate, Get)"
echo "$0: OK"
