#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Turns test-ttlv-vectors.json (KMIP 1.1 test-case messages and the spec's primitive examples)
# into a C header for test-ttlv-vectors.c: message hex, and each primitive's expected value
# computed here from the JSON "value" (not from its hex), so the C test has an independent oracle.
import datetime, json, sys

src, dst = sys.argv[1], sys.argv[2]
d = json.load(open(src))

def cstr(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'

out = ["/* Generated from %s by test-ttlv-vectors-gen.py; do not edit. */" % src.split('/')[-1],
       "struct ttlv_message { const char *name; const char *hex; };",
       "static const struct ttlv_message ttlv_messages[] = {"]
for name, hexs in d["messages"].items():
    out.append("  { %s, %s }," % (cstr(name), cstr(hexs)))
out.append("};")
out.append("struct ttlv_primitive { const char *type; const char *hex; long long ival;"
           " const char *sval; const char *bigint_hex; };")
out.append("static const struct ttlv_primitive ttlv_primitives[] = {")
for p in d["primitives"]:
    t, v = p["type"], p["value"]
    ival, sval, big = 0, "NULL", "NULL"
    if t in ("Integer", "LongInteger", "Enumeration", "Interval"):
        ival = v
    elif t == "Boolean":
        ival = 1 if v else 0
    elif t == "BigInteger":
        # Minimal two's-complement big-endian bytes of the value: the encoder must
        # sign-extend them to the spec's 8-byte multiple.
        n = (v.bit_length() + 8) // 8
        big = cstr(v.to_bytes(n, "big", signed=True).hex().upper())
    elif t == "DateTime":
        ival = int(datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=datetime.timezone.utc).timestamp())
    elif t in ("TextString", "ByteString"):
        sval = cstr(v)
    out.append("  { %s, %s, %dLL, %s, %s }," % (cstr(t), cstr(p["hex"]), ival, sval, big))
out.append("};")
open(dst, "w").write("\n".join(out) + "\n")
