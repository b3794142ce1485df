#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Independent oracle for nbdcrypt volumes, written only from docs/format.md and the standards:
# python3-cryptography (RFC 5649 unwrap, AES-CBC, AES-XTS) and PyKMIP's own client.
#   kms-get --port P --pki DIR [--version 1.4] UID OUT   fetch a key's bytes with PyKMIP
#   unwrap-dek IMAGE KEKFILE OUT      parse copy A of the header, unwrap the DEK (aes-kwp or kms)
#                                     from the first keyslot KEKFILE unwraps
#   check-data IMAGE DEKFILE PLAIN    decrypt IMAGE's data area sector by sector, compare to PLAIN
#   check-raw IMAGE KEYFILE SECTOR_SIZE PLAIN   the same for a headerless volume
#   check-mac IMAGE DEKFILE           both copies' key check value / version 2 header MAC
#   make-v1 IMAGE KEKFILE DEKOUT SECTOR_SIZE   write a version 1 header for a new random DEK
#   make-v2 IMAGE KEKFILE DEKOUT SECTOR_SIZE   the same, version 2 (header MAC, one keyslot)
#   encrypt-data IMAGE DEKFILE PLAIN  write PLAIN into the data area, XTS-encrypted
import hashlib, hmac, struct, sys
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding


def parse_header(buf):
    """The documented layout (docs/format.md), big-endian."""
    assert buf[0:8] == b"NBDCRYPT", "magic"
    assert hashlib.sha256(buf[:4064]).digest() == buf[4064:4096], "checksum"
    h = {}
    h["version"], h["copy"] = struct.unpack(">HB", buf[8:11])
    h["sequence"], h["data_offset"], h["sector_size"], h["flags"] = \
        struct.unpack(">QQII", buf[16:40])
    name = lambda b: b.rstrip(b"\0").decode()
    h["cipher"], h["provider"], h["wrap"] = name(buf[40:56]), name(buf[56:72]), name(buf[72:88])
    h["uuid"] = buf[88:104]
    h["kcv"] = buf[112:144]
    # Slot 0 where versions 1 and 2 keep their one KEK; version 3: the count at 108, slots
    # 1..3 as 808-byte records from 912 (names 16+16, lengths 2+2, reserved 4, id, key).
    n = buf[108] if h["version"] >= 3 else 1
    places = [(56, 72, 104, 144, 400)]
    for i in range(1, n):
        b = 912 + (i - 1) * 808
        places.append((b, b + 16, b + 32, b + 40, b + 296))
    h["slots"] = []
    for prov, wrap, lens, kid, wd in places:
        kek_id_len, wdek_len = struct.unpack(">HH", buf[lens:lens + 4])
        h["slots"].append({"provider": name(buf[prov:prov + 16]),
                           "wrap": name(buf[wrap:wrap + 16]),
                           "kek_id": buf[kid:kid + kek_id_len].decode(),
                           "wrapped_dek": buf[wd:wd + wdek_len]})
    h["kek_id"] = h["slots"][0]["kek_id"]
    h["wrapped_dek"] = h["slots"][0]["wrapped_dek"]
    return h


def header_mac(dek, h):
    """Version 2: HMAC-SHA256 under HKDF-SHA256(DEK, no salt, info "nbdcrypt header mac v2")
    over version u16 | flags u32 | sector size u32 | data offset u64 | cipher (16, NUL padded)
    | UUID, all big-endian."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"nbdcrypt header mac v2").derive(dek)
    msg = struct.pack(">HIIQ", h["version"], h["flags"], h["sector_size"], h["data_offset"])
    msg += h["cipher"].encode().ljust(16, b"\0") + h["uuid"]
    return hmac.new(key, msg, hashlib.sha256).digest()


def key_check(dek, h):
    """The 32 bytes at offset 112: version 1 key check value
    HMAC-SHA256(DEK, "nbdcrypt key check v1" || uuid), version 2 header MAC."""
    if h["version"] == 1:
        return hmac.new(dek, b"nbdcrypt key check v1" + h["uuid"], hashlib.sha256).digest()
    assert h["version"] in (2, 3), "version"
    return header_mac(dek, h)


def kms_get(args):
    import logging
    logging.disable(logging.CRITICAL)
    from kmip.pie.client import ProxyKmipClient
    from kmip.core import enums
    opts = {}
    i = 0
    while args[i].startswith("--"):
        opts[args[i][2:]] = args[i + 1]
        i += 2
    uid, out = args[i], args[i + 1]
    kw = {}
    if "version" in opts:
        kw["kmip_version"] = getattr(enums.KMIPVersion, "KMIP_" + opts["version"].replace(".", "_"))
    pki = opts["pki"]
    c = ProxyKmipClient(hostname="127.0.0.1", port=int(opts["port"]), cert=pki + "/client.pem",
                        key=pki + "/client.key", ca=pki + "/ca.pem",
                        ssl_version="PROTOCOL_TLSv1_2", config_file="/dev/null", **kw)
    c.open()
    key = c.get(uid)
    c.close()
    with open(out, "wb") as f:
        f.write(key.value)


def unwrap_slot(kek, slot):
    w = slot["wrapped_dek"]
    if slot["wrap"] == "aes-kwp":
        return aes_key_unwrap_with_padding(kek, w)
    if slot["wrap"] == "kms":
        # mode byte (1 = CBC), IV length, IV, then the KMS's AES-CBC/PKCS#7 ciphertext.
        assert w[0] == 1 and w[1] == 16, "kms wrap layout"
        iv, ct = w[2:18], w[18:]
        d = Cipher(algorithms.AES(kek), modes.CBC(iv)).decryptor()
        p = d.update(ct) + d.finalize()
        u = padding.PKCS7(128).unpadder()
        return u.update(p) + u.finalize()
    raise SystemExit("unknown wrap " + slot["wrap"])


def unwrap_dek(image, kekfile, out):
    with open(image, "rb") as f:
        h = parse_header(f.read(4096))
    kek = open(kekfile, "rb").read()
    dek = None
    for slot in h["slots"]:
        try:
            dek = unwrap_slot(kek, slot)
            break
        except Exception:
            continue
    assert dek is not None, "no keyslot unwraps under " + kekfile
    assert hmac.compare_digest(key_check(dek, h), h["kcv"]), "key check value / header MAC"
    with open(out, "wb") as f:
        f.write(dek)


def check_data(image, dekfile, plain):
    dek = open(dekfile, "rb").read()
    with open(image, "rb") as f:
        h = parse_header(f.read(4096))
        ss, off = h["sector_size"], h["data_offset"]
        f.seek(off)
        ct = f.read()
    pt = open(plain, "rb").read()
    n = min(len(pt), len(ct)) // ss
    assert n > 0, "nothing to compare"
    bad = 0
    for s in range(n):
        d = Cipher(algorithms.AES(dek), modes.XTS(s.to_bytes(16, "little"))).decryptor()
        if d.update(ct[s * ss:(s + 1) * ss]) + d.finalize() != pt[s * ss:(s + 1) * ss]:
            bad += 1
            if bad <= 3:
                print(f"sector {s} differs", file=sys.stderr)
    if bad:
        raise SystemExit(f"{bad} of {n} sectors differ")
    print(f"{n} sectors of {ss} bytes decrypt to the written data")


def check_raw(image, keyfile, sector_size, plain):
    """Headerless volume: XTS sectors from offset 0."""
    key = open(keyfile, "rb").read()
    ss = int(sector_size)
    ct = open(image, "rb").read()
    pt = open(plain, "rb").read()
    n = min(len(pt), len(ct)) // ss
    assert n > 0, "nothing to compare"
    for s in range(n):
        d = Cipher(algorithms.AES(key), modes.XTS(s.to_bytes(16, "little"))).decryptor()
        if d.update(ct[s * ss:(s + 1) * ss]) + d.finalize() != pt[s * ss:(s + 1) * ss]:
            raise SystemExit(f"sector {s} differs")
    print(f"{n} sectors of {ss} bytes decrypt to the written data")


def check_mac(image, dekfile):
    """Both copies' key check value / header MAC, recomputed from the documented fields."""
    dek = open(dekfile, "rb").read()
    with open(image, "rb") as f:
        for off in (0, 512 * 1024):
            f.seek(off)
            h = parse_header(f.read(4096))
            assert hmac.compare_digest(key_check(dek, h), h["kcv"]), f"copy at {off}"
            print(f"copy at {off}: version {h['version']}, key check matches")


def make_v1(image, kekfile, dekfile, sector_size, version=1):
    """Write a version 1 header (both copies, as nbdcrypt 1 wrote them) for a new random DEK
    under the 32-byte KEK file: the compatibility fixture for reading old volumes. Version 2:
    the same with the header MAC at 112 (one KEK, as nbdcrypt wrote before keyslots)."""
    import os
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
    kek = open(kekfile, "rb").read()
    dek = os.urandom(64)
    uuid = bytearray(os.urandom(16))
    uuid[6] = (uuid[6] & 0x0F) | 0x40
    uuid[8] = (uuid[8] & 0x3F) | 0x80
    fp = "sha256:" + hashlib.sha256(b"nbdcrypt kek fingerprint v1" + kek).digest()[:16].hex()
    wdek = aes_key_wrap_with_padding(kek, dek)
    kcv = hmac.new(dek, b"nbdcrypt key check v1" + bytes(uuid), hashlib.sha256).digest()
    if version == 2:
        kcv = header_mac(dek, {"version": 2, "flags": 0, "sector_size": int(sector_size),
                               "data_offset": 1 << 20, "cipher": "aes-256-xts",
                               "uuid": bytes(uuid)})
    with open(image, "r+b") as f:
        for copy, off in ((0, 0), (1, 512 * 1024)):
            b = bytearray(4096)
            b[0:8] = b"NBDCRYPT"
            b[8:16] = struct.pack(">HBBI", version, copy, 0, 4096)
            b[16:36] = struct.pack(">QQI", 1, 1 << 20, int(sector_size))
            b[40:51] = b"aes-256-xts"
            b[56:60] = b"file"
            b[72:79] = b"aes-kwp"
            b[88:104] = uuid
            b[104:108] = struct.pack(">HH", len(fp), len(wdek))
            b[112:144] = kcv
            b[144:144 + len(fp)] = fp.encode()
            b[400:400 + len(wdek)] = wdek
            b[4064:4096] = hashlib.sha256(bytes(b[:4064])).digest()
            f.seek(off)
            f.write(b)
    with open(dekfile, "wb") as f:
        f.write(dek)


def encrypt_data(image, dekfile, plain):
    """Write PLAIN into IMAGE's data area, XTS-encrypted with the DEK, per the header."""
    dek = open(dekfile, "rb").read()
    pt = open(plain, "rb").read()
    with open(image, "r+b") as f:
        h = parse_header(f.read(4096))
        ss = h["sector_size"]
        f.seek(h["data_offset"])
        for s in range(len(pt) // ss):
            e = Cipher(algorithms.AES(dek), modes.XTS(s.to_bytes(16, "little"))).encryptor()
            f.write(e.update(pt[s * ss:(s + 1) * ss]) + e.finalize())


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"kms-get": lambda: kms_get(args),
     "unwrap-dek": lambda: unwrap_dek(*args),
     "check-data": lambda: check_data(*args),
     "check-raw": lambda: check_raw(*args),
     "check-mac": lambda: check_mac(*args),
     "make-v1": lambda: make_v1(*args),
     "make-v2": lambda: make_v1(*args, version=2),
     "encrypt-data": lambda: encrypt_data(*args)}[cmd]()
