#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Writes the TTLV fuzz seed corpus (corpus-ttlv/*.ttlv, binary) from the KMIP test vectors:
#   tests/fuzz/make-corpus-ttlv.py tests/kmip/test-ttlv-vectors.json tests/fuzz/corpus-ttlv
# The files are committed; rerun this when the vectors change.
import json, os, re, sys

src, dst = sys.argv[1], sys.argv[2]
d = json.load(open(src))
os.makedirs(dst, exist_ok=True)
items = list(d["messages"].items())
items += [("primitive-%s-%d" % (p["type"], i), p["hex"]) for i, p in enumerate(d["primitives"])]
for name, hexs in items:
    fname = re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".ttlv"
    with open(os.path.join(dst, fname), "wb") as f:
        f.write(bytes.fromhex(hexs))
# One hex-text seed, so the fuzzer also reaches the hex reader of `nbdcrypt ttlv`.
with open(os.path.join(dst, "hex-get-request.txt"), "w") as f:
    h = d["messages"]["pykmip:TestRequestMessage.get"]
    f.write("\n".join(h[i:i + 32] for i in range(0, len(h), 32)) + "\n")
