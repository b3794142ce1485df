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
