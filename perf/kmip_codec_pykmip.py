#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# PyKMIP's side of perf/kmip-codec-bench: encode a Get request and decode a Get response with
# PyKMIP's own message classes, on the same messages as the C benchmark, and print rates.
#   kmip_codec_pykmip.py UID REQUEST_HEX RESPONSE_HEX SECONDS
# Output (one line each, parsed by kmip-codec-bench): "encode RATE", "decode RATE", "pair RATE"
# in messages per second. Exits non-zero if PyKMIP's encoding differs from REQUEST_HEX or its
# decoding of RESPONSE_HEX does not yield the key, so both sides provably do the same work.
import sys
import time

from kmip.core import enums, utils
from kmip.core.messages import contents, messages, payloads


def encode_get(uid):
    req = messages.RequestMessage(
        request_header=messages.RequestHeader(
            protocol_version=contents.ProtocolVersion(1, 1),
            batch_count=contents.BatchCount(1)),
        batch_items=[messages.RequestBatchItem(
            operation=contents.Operation(enums.Operation.GET),
            request_payload=payloads.GetRequestPayload(unique_identifier=uid))])
    s = utils.BytearrayStream()
    req.write(s)
    return bytes(s.buffer)


def decode_get(data):
    m = messages.ResponseMessage()
    m.read(utils.BytearrayStream(data))
    item = m.batch_items[0]
    if item.result_status.value != enums.ResultStatus.SUCCESS:
        raise ValueError("not a success")
    return bytes(item.response_payload.secret.key_block.key_value.key_material.value)


def rate(fn, seconds):
    # CPU time of this process, like the C side: load from other processes does not count.
    n, start = 0, time.process_time()
    while True:
        for _ in range(50):
            fn()
        n += 50
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return n / elapsed


def main():
    uid, req_hex, resp_hex, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    resp = bytes.fromhex(resp_hex)
    if encode_get(uid).hex().upper() != req_hex.upper():
        sys.exit("PyKMIP encodes the Get request differently from nbdcrypt")
    if len(decode_get(resp)) == 0:
        sys.exit("PyKMIP found no key in the Get response")
    print("encode %.1f" % rate(lambda: encode_get(uid), seconds))
    print("decode %.1f" % rate(lambda: decode_get(resp), seconds))
    print("pair %.1f" % rate(lambda: (encode_get(uid), decode_get(resp)), seconds))


if __name__ == "__main__":
    main()
