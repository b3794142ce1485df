#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Writes the seed corpus of the kmip-response fuzz target: real ResponseMessages from
# pykmip-server, recorded while PyKMIP's own client runs a key lifecycle at several versions.
#   usage (inside a shell that sourced tests/kmip-server.sh and started a server):
#   make-corpus-kmip-response.py PORT PKI-DIR OUT-DIR
# The files are committed; rerun by hand when needed (see tests/fuzz/meson.build).
import logging
import os
import sys

from kmip.core import enums
from kmip.pie import objects
from kmip.pie.client import ProxyKmipClient
from kmip.services import kmip_protocol

port, pki, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
logging.disable(logging.CRITICAL)
label = ["start"]
real_read = kmip_protocol.KMIPProtocol.read


def recording_read(self):
    data = real_read(self)
    with open(os.path.join(out, label[0] + ".ttlv"), "wb") as f:
        f.write(bytes(data.buffer))
    return data


kmip_protocol.KMIPProtocol.read = recording_read

for v in ("1_0", "1_2", "1_4", "2_0"):
    c = ProxyKmipClient(hostname="127.0.0.1", port=port, cert=pki + "/client.pem",
                        key=pki + "/client.key", ca=pki + "/ca.pem",
                        ssl_version="PROTOCOL_TLSv1_2", config_file="/dev/null",
                        kmip_version=getattr(enums.KMIPVersion, "KMIP_" + v))
    c.open()

    def step(name, fn, *args):
        label[0] = "v%s-%s" % (v, name)
        try:
            return fn(*args)
        except Exception:
            return None

    uid = step("create", lambda: c.create(enums.CryptographicAlgorithm.AES, 256, name="seed-" + v))
    step("activate", c.activate, uid)
    step("get", c.get, uid)
    step("get-attributes", c.get_attributes, uid)
    step("get-attribute-list", c.get_attribute_list, uid)
    step("locate", c.locate)
    step("encrypt", c.encrypt, b"0123456789abcdef", uid,
         {"block_cipher_mode": enums.BlockCipherMode.CBC,
          "padding_method": enums.PaddingMethod.PKCS5,
          "cryptographic_algorithm": enums.CryptographicAlgorithm.AES}, bytes(16))
    sd = objects.SecretData(b"a secret seed", enums.SecretDataType.SEED)
    sid = step("register-secret", c.register, sd)
    step("get-secret", c.get, sid)
    step("revoke", c.revoke, enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    step("destroy", c.destroy, uid)
    step("get-missing", c.get, uid)
    if v != "1_0":
        step("discover-versions", c.proxy.discover_versions)
    step("query", c.proxy.query, None,
         [enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS])
    c.close()
