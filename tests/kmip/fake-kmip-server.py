#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# A misbehaving KMIP server for negative tests: listens on 127.0.0.1 (free port, printed on
# stdout), and answers every connection according to MODE:
#   silent-tcp   accept TCP, never speak (the TLS handshake must time out)
#   silent-tls   complete TLS, read the request, never answer (the response must time out)
#   not-tls      answer the TLS ClientHello with an HTTP error line
#   truncated    send the first 16 bytes of a response that announces 200, then close
#   oversized    announce a 2 GiB response, send 8 bytes of it, keep the connection open
#   garbage      send 256 random bytes, then close
#   bad-shape    a well-formed TTLV Structure that is not a ResponseMessage
#   close        complete TLS, then close without answering
#   kmip12       a KMIP 1.2 server that refuses newer request headers (Invalid Message, answered
#                in 1.2), lists 1.2 1.1 1.0 in DiscoverVersions, and answers anything else with
#                "Item Not Found" naming the request's version
#   transparent  answer every request with a Get response holding the key 00 01 .. 1f in
#                TransparentSymmetricKey format (Key Material is a structure with a Key)
#   wrapped      the same key in Raw format but with Key Wrapping Data (must be refused)
#   kmip10       a KMIP 1.0 server: DiscoverVersions is "Operation Not Supported"; every
#                other request gets "Item Not Found" with a message naming the request's
#                protocol version (so a test can see which version the client fell back to)
#   placeholder  a KMIP 1.4 server that honours the ID placeholder in every operation: it
#                answers each batch item of Create (UID "ph-N"), Activate and Get (the key
#                00 01 .. 1f) naming the last created object when the item names none; logs
#                "request: OP OP..." (hex operation codes) on stderr for each message
#   stale-placeholder  the same, but Get answers for another object ("someone-else"), as a
#                server whose placeholder leaked from an earlier message would
#   batch-stop   a KMIP 1.4 server that ignores Batch Error Continuation Option "Continue": it
#                answers a batch of Get items in order and stops after the first that fails
#                (an identifier starting with "missing": Item Not Found); a request of more
#                than 16 items gets one failed item naming none (Response Too Large). Each
#                other Get answers for its identifier with the key 00 01 .. 1f. Logs
#                "request: N items [continue]" on stderr for each message
#   hostile      a KMIP 1.4 server whose text is an attack on the client's terminal and logs,
#                by the Unique Identifier the request names:
#                  "other" / "nul"  Get, GetAttributes, Activate, Encrypt answer success for
#                                   another object, "999" / "1\0evil" (NUL inside)
#                  "names"          GetAttributes: a Name and a custom x-note holding ESC, BEL,
#                                   CR, LF; GetAttributeList: one name with them
#                  anything else    Operation Failed, Item Not Found, and a Result Message with
#                                   ESC, BEL, CR, LF and a forged "nbdkit: info:" log line
#                Query answers with such a vendor; Locate with an identifier holding LF.
# usage: fake-kmip-server.py MODE CERT KEY CA
import os
import socket
import ssl
import struct
import sys
import threading
import time

mode, cert, key, ca = sys.argv[1:5]


def ttlv(tag, typ, value):
    pad = (8 - len(value) % 8) % 8
    return struct.pack(">I", tag)[1:] + bytes([typ]) + struct.pack(">I", len(value)) \
        + value + b"\0" * pad


def integer(tag, v):
    return ttlv(tag, 0x02, struct.pack(">i", v))


def enum(tag, v):
    return ttlv(tag, 0x05, struct.pack(">I", v))


def pv(major, minor):
    return ttlv(0x420069, 0x01, integer(0x42006A, major) + integer(0x42006B, minor))


def answer(minor, op, reason=None, msg="", payload=b""):
    header = ttlv(0x42007A, 0x01, pv(1, minor) +
                  ttlv(0x420092, 0x09, struct.pack(">q", int(time.time()))) +
                  integer(0x42000D, 1))
    if reason is None:
        result = enum(0x42007F, 0) + ttlv(0x42007C, 0x01, payload)
    else:
        result = enum(0x42007F, 1) + enum(0x42007E, reason) + ttlv(0x42007D, 0x07, msg.encode())
    return ttlv(0x42007B, 0x01, header + ttlv(0x42000F, 0x01, enum(0x42005C, op) + result))


def old_server_answer(req, top):
    major = struct.unpack(">i", req[32:36])[0]
    minor = struct.unpack(">i", req[48:52])[0]
    i = req.find(bytes.fromhex("42005c0500000004"))
    op = struct.unpack(">I", req[i + 8:i + 12])[0] if i >= 0 else 0
    if (major, minor) > (1, top):
        return answer(top, op, 0x04, "protocol version %d.%d not supported" % (major, minor))
    if op == 0x1E and top == 0:
        return answer(top, op, 0x05, "DiscoverVersions is not a KMIP 1.0 operation")
    if op == 0x1E:
        return answer(top, op, payload=b"".join(pv(1, m) for m in range(top, -1, -1)))
    return answer(top, op, 0x01, "request version %d.%d" % (major, minor))


def get_answer(req, transparent):
    key = bytes(range(32))
    if transparent:
        material = ttlv(0x420043, 0x01, ttlv(0x42003F, 0x08, key))
        wrapping = b""
    else:
        material = ttlv(0x420043, 0x08, key)
        wrapping = ttlv(0x420046, 0x01, enum(0x42009E, 1))   # Key Wrapping Data
    block = ttlv(0x420040, 0x01,
                 enum(0x420042, 7 if transparent else 1) +
                 ttlv(0x420045, 0x01, material) +
                 enum(0x420028, 3) + integer(0x42002A, 256) + wrapping)
    payload = ttlv(0x42007C, 0x01, enum(0x420057, 2) + ttlv(0x420094, 0x07, b"k1") +
                   ttlv(0x42008F, 0x01, block))
    header = ttlv(0x42007A, 0x01,
                  ttlv(0x420069, 0x01, integer(0x42006A, 1) + integer(0x42006B, 4)) +
                  ttlv(0x420092, 0x09, struct.pack(">q", int(time.time()))) +
                  integer(0x42000D, 1))
    item = ttlv(0x42000F, 0x01, enum(0x42005C, 0x0A) + enum(0x42007F, 0) + payload)
    return ttlv(0x42007B, 0x01, header + item)


def placeholder_answer(req, state, stale):
    """Answer every batch item of req in order (Create, Activate, Get, DiscoverVersions)."""
    items = b""
    count = 0
    pos = 0
    ops = []
    while True:
        i = req.find(bytes.fromhex("42005c0500000004"), pos)
        if i < 0:
            break
        pos = i + 16
        op = struct.unpack(">I", req[i + 8:i + 12])[0]
        ops.append(op)
        j = req.find(bytes.fromhex("42009308"), i)      # Unique Batch Item ID, if any
        bid = req[j:j + 16] if 0 <= j < req.find(bytes.fromhex("420079"), i) else b""
        if op == 0x01:
            state["n"] += 1
            state["uid"] = b"ph-%d" % state["n"]
        uid = b"someone-else" if stale and op == 0x0A else state["uid"]
        if op == 0x1E:
            payload = pv(1, 4)
        elif op == 0x01:
            payload = enum(0x420057, 2) + ttlv(0x420094, 0x07, uid)
        elif op == 0x0A:
            block = ttlv(0x420040, 0x01, enum(0x420042, 1) +
                         ttlv(0x420045, 0x01, ttlv(0x420043, 0x08, bytes(range(32)))) +
                         enum(0x420028, 3) + integer(0x42002A, 256))
            payload = enum(0x420057, 2) + ttlv(0x420094, 0x07, uid) + ttlv(0x42008F, 0x01, block)
        else:
            payload = ttlv(0x420094, 0x07, uid)
        items += ttlv(0x42000F, 0x01, enum(0x42005C, op) + bid + enum(0x42007F, 0) +
                      ttlv(0x42007C, 0x01, payload))
        count += 1
    header = ttlv(0x42007A, 0x01, pv(1, 4) +
                  ttlv(0x420092, 0x09, struct.pack(">q", int(time.time()))) +
                  integer(0x42000D, count))
    state["log"].append(ops)
    print("request: " + " ".join("0x%02x" % op for op in ops), file=sys.stderr, flush=True)
    return ttlv(0x42007B, 0x01, header + items)


def batch_stop_answer(req):
    """Answer the Get items of req in order, stopping after the first failure."""
    items = []
    pos = 0
    while True:
        i = req.find(bytes.fromhex("42005c0500000004"), pos)
        if i < 0:
            break
        pos = i + 16
        nxt = req.find(bytes.fromhex("42005c0500000004"), pos)
        end = nxt if nxt >= 0 else len(req)
        j = req.find(bytes.fromhex("42009308"), i, end)       # Unique Batch Item ID
        bid = req[j:j + 16] if j >= 0 else b""
        k = req.find(bytes.fromhex("42009407"), i, end)       # Unique Identifier
        n = struct.unpack(">I", req[k + 4:k + 8])[0]
        items.append((bid, req[k + 8:k + 8 + n]))
    cont = req.find(bytes.fromhex("42000e05000000040000000100000000")) >= 0
    print("request: %d items%s" % (len(items), " continue" if cont else ""), file=sys.stderr,
          flush=True)
    out = []
    if len(items) > 16:
        out.append(ttlv(0x42000F, 0x01, enum(0x42007F, 1) + enum(0x42007E, 0x02) +
                        ttlv(0x42007D, 0x07, b"Response Too Large")))
    for bid, uid in items if len(items) <= 16 else []:
        if uid.startswith(b"missing"):
            out.append(ttlv(0x42000F, 0x01, enum(0x42005C, 0x0A) + bid + enum(0x42007F, 1) +
                            enum(0x42007E, 0x01) + ttlv(0x42007D, 0x07, b"no " + uid)))
            break
        block = ttlv(0x420040, 0x01, enum(0x420042, 1) +
                     ttlv(0x420045, 0x01, ttlv(0x420043, 0x08, bytes(range(32)))) +
                     enum(0x420028, 3) + integer(0x42002A, 256))
        payload = enum(0x420057, 2) + ttlv(0x420094, 0x07, uid) + ttlv(0x42008F, 0x01, block)
        out.append(ttlv(0x42000F, 0x01, enum(0x42005C, 0x0A) + bid + enum(0x42007F, 0) +
                        ttlv(0x42007C, 0x01, payload)))
    header = ttlv(0x42007A, 0x01, pv(1, 4) +
                  ttlv(0x420092, 0x09, struct.pack(">q", int(time.time()))) +
                  integer(0x42000D, len(out)))
    return ttlv(0x42007B, 0x01, header + b"".join(out))


HOSTILE_TEXT = b"\x1b[2J\x1b]0;owned\x07bell\rover\nnbdkit: info: KMS check OK \\ done"


def text(tag, s):
    return ttlv(tag, 0x07, s)


def request_uid(req):
    i = req.find(bytes.fromhex("42009407"))
    if i < 0:
        return b""
    n = struct.unpack(">I", req[i + 4:i + 8])[0]
    return req[i + 8:i + 8 + n]


def hostile_answer(req):
    i = req.find(bytes.fromhex("42005c0500000004"))
    op = struct.unpack(">I", req[i + 8:i + 12])[0] if i >= 0 else 0
    uid = request_uid(req)
    answer_uid = {b"other": b"999", b"nul": b"1\0evil"}.get(uid)
    key = bytes(range(32))
    if op == 0x1E:                                          # DiscoverVersions
        return answer(4, op, payload=pv(1, 4))
    if op == 0x18:                                          # Query
        return answer(4, op, payload=enum(0x42005C, 0x0A) + text(0x42009D, HOSTILE_TEXT))
    if op == 0x08:                                          # Locate
        return answer(4, op, payload=text(0x420094, b"1\nforged-uid"))
    if answer_uid is not None and op == 0x0A:               # Get
        block = ttlv(0x420040, 0x01, enum(0x420042, 1) +
                     ttlv(0x420045, 0x01, ttlv(0x420043, 0x08, key)) +
                     enum(0x420028, 3) + integer(0x42002A, 256))
        return answer(4, op, payload=enum(0x420057, 2) + text(0x420094, answer_uid) +
                      ttlv(0x42008F, 0x01, block))
    if answer_uid is not None and op == 0x0B:               # GetAttributes
        state = ttlv(0x420008, 0x01, text(0x42000A, b"State") + enum(0x42000B, 2))
        return answer(4, op, payload=text(0x420094, answer_uid) + state)
    if answer_uid is not None and op in (0x12, 0x1F):       # Activate, Encrypt
        return answer(4, op, payload=text(0x420094, answer_uid) + ttlv(0x4200C2, 0x08, key))
    if uid == b"names" and op == 0x0B:
        name = ttlv(0x42000B, 0x01, text(0x420055, HOSTILE_TEXT) + enum(0x420054, 1))
        attrs = ttlv(0x420008, 0x01, text(0x42000A, b"Name") + name) + \
            ttlv(0x420008, 0x01, text(0x42000A, b"x-note") + text(0x42000B, HOSTILE_TEXT))
        return answer(4, op, payload=text(0x420094, uid) + attrs)
    if uid == b"names" and op == 0x0C:                      # GetAttributeList
        return answer(4, op, payload=text(0x420094, uid) + text(0x42000A, HOSTILE_TEXT))
    return answer(4, op, 0x01, HOSTILE_TEXT.decode())


def read_request(conn):
    hdr = b""
    while len(hdr) < 8:
        chunk = conn.recv(8 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    n = struct.unpack(">I", hdr[4:])[0]
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return hdr + body


def handle(raw, ctx):
    try:
        if mode == "silent-tcp":
            time.sleep(3600)
        if mode == "not-tls":
            raw.recv(4096)
            raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            raw.close()
            return
        conn = ctx.wrap_socket(raw, server_side=True)
        if mode == "close":
            conn.close()
            return
        if mode in ("kmip10", "kmip12", "transparent", "wrapped", "placeholder",
                    "stale-placeholder", "hostile", "batch-stop"):
            state = {"n": 0, "uid": b"", "log": []}
            while True:
                req = read_request(conn)
                if req is None:
                    return
                if mode == "hostile":
                    conn.sendall(hostile_answer(req))
                elif mode == "batch-stop":
                    conn.sendall(batch_stop_answer(req))
                elif mode.endswith("placeholder"):
                    conn.sendall(placeholder_answer(req, state, mode.startswith("stale")))
                elif mode.startswith("kmip1"):
                    conn.sendall(old_server_answer(req, int(mode[5:]) % 10))
                else:
                    conn.sendall(get_answer(req, mode == "transparent"))
        if read_request(conn) is None:
            return
        if mode == "silent-tls":
            time.sleep(3600)
        elif mode == "truncated":
            conn.sendall(bytes.fromhex("42007b01000000c8") + b"\x42\x00\x7a\x01\x00\x00\x00")
            conn.close()
        elif mode == "oversized":
            conn.sendall(bytes.fromhex("42007b0180000000") + b"\0" * 8)
            time.sleep(3600)
        elif mode == "garbage":
            conn.sendall(os.urandom(256))
            conn.close()
        elif mode == "bad-shape":
            inner = ttlv(0x420094, 0x07, b"hello")           # a UniqueIdentifier
            conn.sendall(ttlv(0x420078, 0x01, inner))          # inside a RequestMessage
            time.sleep(3600)
    except (OSError, ssl.SSLError):
        pass


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    print(lsock.getsockname()[1], flush=True)
    while True:
        raw, _ = lsock.accept()
        threading.Thread(target=handle, args=(raw, ctx), daemon=True).start()


main()
