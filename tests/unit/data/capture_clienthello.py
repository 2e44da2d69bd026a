#!/usr/bin/env python3
"""Capture one TLS ClientHello as raw bytes (test data for test_sni.c).

Listens on a loopback TCP port, accepts one connection, reads until the
bytes hold a complete ClientHello (handshake records, type 22, until the
handshake length in the first 4 handshake bytes is satisfied) or 2 s pass,
writes exactly the records that hold the hello to OUT, and closes without
answering: the client then fails, which is expected.

    capture_clienthello.py OUT [--port N] [--ready FILE]

With --port 0 (the default) the kernel picks a free port; the port is
printed on stdout ("port N") and, with --ready, written to FILE once the
socket listens, so a shell can start the client after that.

    capture_clienthello.py --split IN OUT SIZE

Re-frames the handshake of a capture into records of at most SIZE bytes
(a hello that spans several records, as large post-quantum hellos do).
"""

import argparse
import socket
import struct
import sys
import time


def hello_end(buf):
    """Bytes of records needed for the whole hello, or None if not there."""
    hs = b""
    pos = 0
    want = None
    while True:
        if len(buf) - pos < 5:
            return None
        ctype, _ver, rlen = struct.unpack("!BHH", buf[pos:pos + 5])
        if ctype != 22:
            raise ValueError("record type %d is not a handshake" % ctype)
        if len(buf) - pos - 5 < rlen:
            return None
        hs += buf[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
        if want is None and len(hs) >= 4:
            want = 4 + int.from_bytes(hs[1:4], "big")
        if want is not None and len(hs) >= want:
            return pos


def handshake_bytes(buf):
    hs = b""
    pos = 0
    while pos + 5 <= len(buf):
        _ctype, _ver, rlen = struct.unpack("!BHH", buf[pos:pos + 5])
        hs += buf[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
    return hs


def split(src, dst, size):
    with open(src, "rb") as f:
        buf = f.read()
    version = buf[1:3]
    hs = handshake_bytes(buf)
    out = b""
    for i in range(0, len(hs), size):
        chunk = hs[i:i + size]
        out += b"\x16" + version + struct.pack("!H", len(chunk)) + chunk
    with open(dst, "wb") as f:
        f.write(out)
    print("%s: %d bytes in %d records" % (dst, len(out), (len(hs) + size - 1) // size))


def capture(out, port, ready, timeout):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    port = srv.getsockname()[1]
    print("port %d" % port, flush=True)
    if ready:
        with open(ready, "w") as f:
            f.write("%d\n" % port)
    srv.settimeout(30)
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        print("no client connected within 30 s", file=sys.stderr)
        return 1
    srv.close()
    buf = b""
    end = None
    deadline = time.monotonic() + timeout
    while end is None:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            data = conn.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
        end = hello_end(buf)
    conn.close()
    if end is None:
        print("incomplete ClientHello (%d bytes)" % len(buf), file=sys.stderr)
        return 1
    with open(out, "wb") as f:
        f.write(buf[:end])
    print("%s: %d bytes" % (out, end))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", action="store_true", help="re-frame IN into OUT")
    ap.add_argument("args", nargs="+")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready")
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    if a.split:
        if len(a.args) != 3:
            ap.error("--split IN OUT SIZE")
        split(a.args[0], a.args[1], int(a.args[2]))
        return 0
    if len(a.args) != 1:
        ap.error("one OUT file")
    return capture(a.args[0], a.port, a.ready, a.timeout)


if __name__ == "__main__":
    sys.exit(main())
