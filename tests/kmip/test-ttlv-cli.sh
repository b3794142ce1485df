#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Description: `nbdcrypt ttlv` on the KMIP test vectors: JSON that json.loads accepts, with the
# documented tags/types/values; hex and binary input give the same tree; PyKMIP's own decoder
# (kmip.core.messages) reads the same fields from the same bytes, including messages PyKMIP
# itself encodes; garbage input fails with one line on stderr and no crash.
set -euo pipefail
source "$srcdir/functions.sh"
requires_python
requires_py kmip

vectors="$srcdir/kmip/test-ttlv-vectors.json"
export NBDCRYPT vectors tmpdir

"$PYTHON" - <<'PY'
import json, os, random, subprocess, sys

nbdcrypt = os.environ["NBDCRYPT"]
tmp = os.environ["tmpdir"]
d = json.load(open(os.environ["vectors"]))
failures = []

def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)

def run(args, data=None, path=None):
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
        data = None
    return subprocess.run([nbdcrypt, "ttlv"] + args + ([path] if path else ["-"]),
                          input=data, capture_output=True, timeout=30)

def as_json(hexs, name):
    # Hex with whitespace (line breaks every 16 bytes, spaces) from a file.
    spaced = "\n".join(" ".join(hexs[i:i + 8] for i in range(j, min(j + 32, len(hexs)), 8))
                       for j in range(0, len(hexs), 32))
    r = run(["--json"], spaced.encode(), os.path.join(tmp, "in.hex"))
    if r.returncode != 0:
        fail("%s: exit %d: %s" % (name, r.returncode, r.stderr.decode()))
        return None
    # The same bytes in binary on stdin must give the same output.
    rb = run(["--json"], bytes.fromhex(hexs))
    if rb.stdout != r.stdout:
        fail("%s: binary and hex input differ" % name)
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        fail("%s: invalid JSON: %s" % (name, e))
        return None

TYPES = {"Structure", "Integer", "LongInteger", "BigInteger", "Enumeration", "Boolean",
         "TextString", "ByteString", "DateTime", "Interval"}

def check_shape(n, name):
    if set(n) != {"tag", "type", "value"} or n["type"] not in TYPES:
        fail("%s: bad node %r" % (name, n))
        return
    if n["type"] == "Structure":
        for c in n["value"]:
            check_shape(c, name)

def find(n, *path):
    for tag in path:
        n = next((c for c in n["value"] if c["tag"] == tag), None)
        if n is None:
            return None
    return n

def expect(name, node, typ, value):
    if node is None:
        fail("%s: missing node for %r" % (name, value))
    elif node["type"] != typ or node["value"] != value:
        fail("%s: got %s %r, want %s %r" % (name, node["type"], node["value"], typ, value))

trees = {}
for name, hexs in d["messages"].items():
    t = as_json(hexs, name)
    if t is not None:
        check_shape(t, name)
        trees[name] = t
        if t["tag"] not in ("RequestMessage", "ResponseMessage"):
            fail("%s: top tag %s" % (name, t["tag"]))

# Specific tags and values of the Get response (KMIP 1.1 test case 3.1.3.2 b).
g = trees.get("pykmip:TestResponseMessage.get")
if g:
    expect("get major", find(g, "ResponseHeader", "ProtocolVersion", "ProtocolVersionMajor"),
           "Integer", 1)
    expect("get time", find(g, "ResponseHeader", "TimeStamp"), "DateTime",
           "2012-04-27T08:12:23Z")
    expect("get op", find(g, "BatchItem", "Operation"), "Enumeration", "Get")
    expect("get status", find(g, "BatchItem", "ResultStatus"), "Enumeration", "Success")
    p = find(g, "BatchItem", "ResponsePayload")
    expect("get type", find(p, "ObjectType"), "Enumeration", "SymmetricKey")
    expect("get uid", find(p, "UniqueIdentifier"), "TextString",
           "49a1ca88-6bea-4fb2-b450-7e58802c3038")
    kb = find(p, "SymmetricKey", "KeyBlock")
    expect("get format", find(kb, "KeyFormatType"), "Enumeration", "Raw")
    expect("get key", find(kb, "KeyValue", "KeyMaterial"), "ByteString",
           "7367578051012A6D134A855E25C8CD5E4CA131455729D3C8")
    expect("get alg", find(kb, "CryptographicAlgorithm"), "Enumeration", "3DES")
    expect("get len", find(kb, "CryptographicLength"), "Integer", 168)
c = trees.get("libkmip:kmip_1_1_test_suite_3_1_1_0_a")
if c:
    expect("create op", find(c, "BatchItem", "Operation"), "Enumeration", "Create")
    attrs = find(c, "BatchItem", "RequestPayload", "TemplateAttribute")["value"]
    if [a["value"][0]["value"] for a in attrs] != ["Cryptographic Algorithm",
            "Cryptographic Length", "Cryptographic Usage Mask"]:
        fail("create attributes %r" % attrs)
    # AttributeValue's enumeration has no fixed meaning: shown as a number.
    expect("create alg", attrs[0]["value"][1], "Enumeration", 3)
r = trees.get("pykmip:TestResponseMessage.invalid_message_response")
if r:
    item = find(r, "BatchItem")
    expect("invalid status", find(item, "ResultStatus"), "Enumeration", "OperationFailed")
    rr = find(item, "ResultReason")
    if rr is None or rr["type"] != "Enumeration" or not isinstance(rr["value"], str):
        fail("invalid message: ResultReason %r" % rr)

# The spec's primitive examples: every type's JSON value form.
for p in d["primitives"]:
    t = as_json(p["hex"], "primitive " + p["type"])
    if t is None:
        continue
    want = p["value"]
    if p["type"] == "BigInteger":
        want = str(want)                          # decimal string
    elif p["type"] == "ByteString":
        want = want.upper()
    elif p["type"] == "Structure":
        want = [{"tag": "ApplicationSpecificInformation", "type": "Enumeration", "value": 254},
                {"tag": "ArchiveDate", "type": "Integer", "value": 255}]
    # Tag 0x420020 (Compromise Date) is used with every type in the spec's examples.
    expect("primitive " + p["type"], t, p["type"], want)
    if t["tag"] != "CompromiseDate":
        fail("primitive tag %s" % t["tag"])

# Unknown tags print as 0x42XXXX / 0x54XXXX; strings are escaped; enumerations without a name
# are numbers; text mode shows names.
odd = ("42007801000000405400010200000004000000070000000042FFFF0600000008"
       "0000000000000001" "4200940700000005" + '"\\\n\x01'.encode().hex() + "e9" + "000000"
       + "42005C0500000004000000FF00000000")
t = as_json(odd, "odd")
if t:
    want = [{"tag": "0x540001", "type": "Integer", "value": 7},
            {"tag": "0x42FFFF", "type": "Boolean", "value": True},
            {"tag": "UniqueIdentifier", "type": "TextString", "value": '"\\\n\x01\ufffd'},
            {"tag": "Operation", "type": "Enumeration", "value": 255}]
    if t["value"] != want:
        fail("odd: got %r" % t["value"])
txt = run([], bytes.fromhex(d["messages"]["pykmip:TestRequestMessage.get"]))
if txt.returncode != 0 or b"RequestMessage (Structure)" not in txt.stdout or \
        b"Operation (Enumeration): Get" not in txt.stdout:
    fail("text output: %r" % txt.stdout[:200])

# PyKMIP's decoder on the same bytes agrees with ours.
from kmip.core import enums, utils, objects, attributes
from kmip.core.messages import messages, contents, payloads

def pykmip_read(hexs, cls):
    m = cls()
    m.read(utils.BytearrayStream(bytes.fromhex(hexs)))
    return m

m = pykmip_read(d["messages"]["pykmip:TestResponseMessage.get"], messages.ResponseMessage)
bi = m.batch_items[0]
kb = bi.response_payload.secret.key_block
ours = {"op": find(g, "BatchItem", "Operation")["value"],
        "uid": find(g, "BatchItem", "ResponsePayload", "UniqueIdentifier")["value"],
        "key": find(g, "BatchItem", "ResponsePayload", "SymmetricKey", "KeyBlock", "KeyValue",
                    "KeyMaterial")["value"].lower(),
        "len": find(g, "BatchItem", "ResponsePayload", "SymmetricKey", "KeyBlock",
                    "CryptographicLength")["value"]}
theirs = {"op": "Get" if bi.operation.value == enums.Operation.GET else str(bi.operation.value),
          "uid": bi.response_payload.unique_identifier,
          "key": bytes(kb.key_value.key_material.value).hex(),
          "len": kb.cryptographic_length.value}
if ours != theirs:
    fail("PyKMIP disagrees on the Get response: ours %r theirs %r" % (ours, theirs))
m = pykmip_read(d["messages"]["pykmip:TestResponseMessage.locate"], messages.ResponseMessage)
loc = trees["pykmip:TestResponseMessage.locate"]
if m.batch_items[0].response_payload.unique_identifiers != \
        [find(loc, "BatchItem", "ResponsePayload", "UniqueIdentifier")["value"]]:
    fail("PyKMIP disagrees on the Locate response")

# A message PyKMIP encodes itself (fresh bytes, not a vector): a Get request for a random
# identifier asking for a Raw key, and a Create request; our decoder must read the same fields.
uid = "%08x-%04x-4%03x-8%03x-%012x" % tuple(random.getrandbits(b) for b in (32, 16, 12, 12, 48))
hdr = messages.RequestHeader(
    protocol_version=contents.ProtocolVersion(1, 2),
    batch_count=contents.BatchCount(2))
get = messages.RequestBatchItem(
    operation=contents.Operation(enums.Operation.GET),
    request_payload=payloads.GetRequestPayload(
        unique_identifier=uid, key_format_type=enums.KeyFormatType.RAW))
from kmip.core.factories.attributes import AttributeFactory
af = AttributeFactory()
create = messages.RequestBatchItem(
    operation=contents.Operation(enums.Operation.CREATE),
    request_payload=payloads.CreateRequestPayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY,
        template_attribute=objects.TemplateAttribute(attributes=[
            af.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM,
                                enums.CryptographicAlgorithm.AES),
            af.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
            af.create_attribute(enums.AttributeType.NAME, attributes.Name.create(
                "vol-\"1\\x", enums.NameType.UNINTERPRETED_TEXT_STRING)),
        ])))
msg = messages.RequestMessage(request_header=hdr, batch_items=[get, create])
stream = utils.BytearrayStream()
msg.write(stream)
t = as_json(bytes(stream.buffer).hex(), "pykmip-encoded request")
if t:
    items = [c for c in t["value"] if c["tag"] == "BatchItem"]
    expect("pykmip minor", find(t, "RequestHeader", "ProtocolVersion", "ProtocolVersionMinor"),
           "Integer", 2)
    expect("pykmip count", find(t, "RequestHeader", "BatchCount"), "Integer", 2)
    if len(items) != 2:
        fail("pykmip-encoded: %d batch items" % len(items))
    else:
        expect("pykmip get op", find(items[0], "Operation"), "Enumeration", "Get")
        expect("pykmip get uid", find(items[0], "RequestPayload", "UniqueIdentifier"),
               "TextString", uid)
        expect("pykmip get fmt", find(items[0], "RequestPayload", "KeyFormatType"),
               "Enumeration", "Raw")
        expect("pykmip create op", find(items[1], "Operation"), "Enumeration", "Create")
        attrs = find(items[1], "RequestPayload", "TemplateAttribute")["value"]
        got = [(a["value"][0]["value"], a["value"][1]["value"]) for a in attrs]
        want = [("Cryptographic Algorithm", 3), ("Cryptographic Length", 256),
                ("Name", [{"tag": "NameValue", "type": "TextString", "value": 'vol-"1\\x'},
                          {"tag": "NameType", "type": "Enumeration",
                           "value": "UninterpretedTextString"}])]
        if got != want:
            fail("pykmip-encoded create attributes: %r" % got)

# Garbage: non-zero exit, exactly one line on stderr naming the command, no crash, no output.
rnd = random.Random(1234)
garbage = {
    "empty": b"",
    "whitespace": b" \n\t",
    "odd hex": b"420078010",
    "text": b"hello, world\n",
    "random": bytes(rnd.getrandbits(8) for _ in range(300)),
    "truncated": bytes.fromhex(d["messages"]["pykmip:TestResponseMessage.get"])[:-9],
    "bad length": bytes.fromhex("42007801FFFFFFF0") + bytes(16),
    "deep": b"".join(bytes.fromhex("4200080100000000")[:4] +
                     (8 * (99 - i)).to_bytes(4, "big") for i in range(100)),
    "bad boolean": bytes.fromhex("42002006000000080000000000000002"),
    "unpadded text": bytes.fromhex("420020070000000B48656C6C6F20576F726C64"),
    "oversized": bytes.fromhex("4200780100100000") + bytes(1024 * 1024),
}
for what, data in garbage.items():
    r = run(["--json"], data, os.path.join(tmp, "garbage"))
    lines = r.stderr.decode(errors="replace").splitlines()
    if r.returncode in (0, ) or r.returncode >= 128 or r.returncode < 0:
        fail("garbage %s: exit %d" % (what, r.returncode))
    if len(lines) != 1 or not lines[0].startswith("nbdcrypt ttlv: ") or r.stdout:
        fail("garbage %s: stderr %r stdout %r" % (what, lines, r.stdout[:80]))
    else:
        print("garbage %-14s -> %s" % (what, lines[0]))
r = subprocess.run([nbdcrypt, "ttlv", "/nonexistent/file"], capture_output=True, timeout=30)
if r.returncode == 0 or b"nbdcrypt ttlv: /nonexistent/file:" not in r.stderr:
    fail("missing file: %r" % r.stderr)

print("%d messages and %d primitives checked" % (len(trees), len(d["primitives"])))
sys.exit(1 if failures else 0)
PY
