"""A scriptable HTTP/1.1 origin server for the socialgate integration tests.

It runs in threads inside the pytest process so that tests can look at what it
received (``Origin.records``).  It is written on raw sockets on purpose: it has
to misbehave in ways that http.server cannot (close mid-body, send garbage,
send bytes after a 204, never answer, speak websocket, act as a TCP echo).

Routes (on the first path segment, so /sha/TOKEN is /sha; the query string
is ignored):

    /headers          JSON of the received request line and header fields
    /sha              reads the body (Content-Length or chunked) and answers
                      JSON {"sha256", "length", "chunked", "content_length"}
    /hop-response     a 200 carrying hop-by-hop response headers
    /closemid         announces Content-Length 1000000, sends 1000 bytes, closes
    /garbage          sends no status line at all, then closes
    /1xx              a 103 interim response, then a 200
    /204body          a 204 followed by stray bytes, then keeps serving
    /silent           reads the request and never answers
    /stall            reads only the head: never the body, never answers
    /slowbody         a 200 whose 10000-byte body trickles out over ~1.5 s
    /close-delimited  a 200 without Content-Length, ended by closing
    /chunked-response a chunked 200 with a trailer
    /bighead          a 200 with about 200 KB of header fields
    /resp-cl-te       a 200 with both Content-Length and Transfer-Encoding: chunked
    /resp-bad-cl      a 200 with "Content-Length: abc"
    /ws               websocket upgrade (101), then echoes bytes until EOF
    anything else     200 "path=<target>\\n"

A connection whose first bytes are ``ECHO\\n`` is a raw TCP echo instead: the
server reads until the peer half-closes, then sends back everything it read
followed by ``DONE\\n`` and closes.
"""

import base64
import hashlib
import json
import socket
import threading
import time

MAX_HEAD = 256 * 1024
CONN_TIMEOUT = 30.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ProtocolError(Exception):
    pass


class Reader:
    """Buffered reader over a socket with a bounded head size."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        data = self.sock.recv(256 * 1024)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, limit=MAX_HEAD):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = self.buf[: i + len(delim)]
                self.buf = self.buf[i + len(delim):]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("line too long")
            if not self.fill():
                return None

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise ProtocolError("EOF in body")
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def read_exact_into(self, n, sink):
        """Read n bytes, handing them to sink() piecewise (no big buffers)."""
        left = n
        while left > 0:
            if not self.buf and not self.fill():
                raise ProtocolError("EOF in body")
            take = self.buf[:left]
            self.buf = self.buf[len(take):]
            left -= len(take)
            sink(take)

    def read_all(self):
        while self.fill():
            pass
        out = self.buf
        self.buf = b""
        return out


class Request:
    def __init__(self, method, target, version, headers, raw_head):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as received
        self.raw_head = raw_head
        self.complete = False  # the whole body was received and parsed
        self.body_length = 0

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def as_dict(self):
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "complete": self.complete,
        }


def parse_head(raw):
    try:
        text = raw.decode("latin-1")
    except Exception as e:  # pragma: no cover - latin-1 decodes everything
        raise ProtocolError(str(e))
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ProtocolError("bad request line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if line == "":
            continue
        if ":" not in line:
            raise ProtocolError("bad header line %r" % line)
        k, v = line.split(":", 1)
        headers.append((k, v.strip(" \t")))
    return Request(parts[0], parts[1], parts[2], headers, raw)


class Origin:
    def __init__(self, host="127.0.0.1"):
        self.lock = threading.Lock()
        self.records = []  # Request objects, in arrival order
        self.connections = 0  # accepted connections that sent at least one byte
        self.stop_event = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(128)
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, name="origin-accept", daemon=True)
        self.thread.start()

    # ---- inspection helpers for tests -------------------------------------------------------
    def snapshot(self):
        """(connections with data, request heads, complete requests) so far."""
        with self.lock:
            return (self.connections, len(self.records), sum(1 for r in self.records if r.complete))

    def find(self, predicate):
        with self.lock:
            return [r for r in self.records if predicate(r)]

    def stop(self):
        self.stop_event.set()
        try:
            self.listener.close()
        except OSError:
            pass
        self.thread.join(timeout=2)

    # ---- server ------------------------------------------------------------------------------
    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True)
            t.start()

    def _serve_conn(self, conn):
        conn.settimeout(CONN_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = Reader(conn)
        counted = False
        try:
            while not self.stop_event.is_set():
                if not rd.buf and not rd.fill():
                    return
                if not counted:
                    counted = True
                    with self.lock:
                        self.connections += 1
                if rd.buf.startswith(b"ECHO\n") or (len(rd.buf) < 5 and b"ECHO\n".startswith(rd.buf)):
                    while len(rd.buf) < 5 and rd.fill():
                        pass
                    if rd.buf.startswith(b"ECHO\n"):
                        self._echo(conn, rd)
                        return
                raw = rd.read_until(b"\r\n\r\n")
                if raw is None:
                    # partial head then EOF: still record that something arrived
                    with self.lock:
                        self.records.append(Request("?", "?", "?", [], rd.buf))
                    return
                try:
                    req = parse_head(raw)
                except ProtocolError:
                    with self.lock:
                        self.records.append(Request("?", "?", "?", [], raw))
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                with self.lock:
                    self.records.append(req)
                keep = self._handle(conn, rd, req)
                if not keep:
                    return
        except (OSError, ProtocolError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _echo(self, conn, rd):
        rd.buf = rd.buf[5:]
        data = rd.read_all()
        conn.sendall(data + b"DONE\n")
        conn.shutdown(socket.SHUT_WR)
        # wait (bounded) for the peer to close so that the FIN is seen first
        conn.settimeout(5)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def _read_body(self, conn, rd, req, sink):
        """Read the request body according to its framing. Returns (length, chunked)."""
        te = req.header("transfer-encoding")
        cl = req.header_all("content-length")
        expect = req.header("expect")
        if expect and expect.lower() == "100-continue" and (te or (cl and cl[0] != "0")):
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise ProtocolError("unsupported transfer-encoding %r" % te)
            total = 0
            while True:
                line = rd.read_until(b"\r\n", limit=4096)
                if line is None:
                    raise ProtocolError("EOF in chunk size")
                size_txt = line[:-2].split(b";", 1)[0].strip()
                if not size_txt or len(size_txt) > 15:
                    raise ProtocolError("bad chunk size %r" % size_txt)
                try:
                    size = int(size_txt, 16)
                except ValueError:
                    raise ProtocolError("bad chunk size %r" % size_txt)
                if size == 0:
                    while True:  # trailers
                        t = rd.read_until(b"\r\n", limit=MAX_HEAD)
                        if t is None:
                            raise ProtocolError("EOF in trailers")
                        if t == b"\r\n":
                            return total, True
                rd.read_exact_into(size, sink)
                total += size
                if rd.read_exact(2) != b"\r\n":
                    raise ProtocolError("missing CRLF after chunk")
        if cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ProtocolError("bad content-length %r" % cl)
            n = int(cl[0])
            rd.read_exact_into(n, sink)
            return n, False
        return 0, False

    def _respond(self, conn, req, status, body=b"", headers=(), reason=None):
        reasons = {200: "OK", 101: "Switching Protocols", 204: "No Content", 400: "Bad Request"}
        head = "HTTP/1.1 %d %s\r\n" % (status, reason or reasons.get(status, "Status"))
        hdrs = list(headers)
        if not any(k.lower() == "content-length" for k, _ in hdrs):
            hdrs.append(("Content-Length", str(len(body))))
        for k, v in hdrs:
            head += "%s: %s\r\n" % (k, v)
        head += "\r\n"
        out = head.encode("latin-1")
        if req.method != "HEAD":
            out += body
        conn.sendall(out)

    def _wants_close(self, req):
        c = (req.header("connection") or "").lower()
        if "close" in c:
            return True
        if req.version == "HTTP/1.0" and "keep-alive" not in c:
            return True
        return False

    def _handle(self, conn, rd, req):
        """Serve one request. Returns True to keep the connection for another request."""
        # route on the first path segment, so that /sha/<token> is /sha
        path = "/" + req.path.lstrip("/").split("/", 1)[0] if req.path.startswith("/") else req.path
        h = hashlib.sha256()
        if path == "/silent":
            # read the request, then never answer; bounded by the test session
            deadline = time.monotonic() + 60
            conn.settimeout(0.5)
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                try:
                    if not conn.recv(65536):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            return False
        if path == "/stall":
            # never read the body, never answer (bounded), so that the sender backs up
            self.stop_event.wait(20)
            return False
        if path == "/ws":
            return self._websocket(conn, rd, req)
        length, chunked = self._read_body(conn, rd, req, h.update)
        req.body_length = length
        req.complete = True
        close = self._wants_close(req)
        conn_hdr = [("Connection", "close")] if close else []

        if path == "/headers":
            body = json.dumps(req.as_dict()).encode()
            self._respond(conn, req, 200, body, [("Content-Type", "application/json")] + conn_hdr)
        elif path == "/sha":
            body = json.dumps(
                {
                    "sha256": h.hexdigest(),
                    "length": length,
                    "chunked": chunked,
                    "content_length": req.header("content-length"),
                    "method": req.method,
                }
            ).encode()
            self._respond(conn, req, 200, body, [("Content-Type", "application/json")] + conn_hdr)
        elif path == "/hop-response":
            self._respond(
                conn,
                req,
                200,
                b"hop\n",
                [
                    ("Connection", "X-Resp-Hop"),
                    ("X-Resp-Hop", "1"),
                    ("Keep-Alive", "timeout=5, max=100"),
                    ("X-End-To-End", "kept"),
                ],
            )
        elif path == "/closemid":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000
            )
            time.sleep(0.2)
            return False
        elif path == "/garbage":
            conn.sendall(b"this is not an HTTP response at all\r\n\r\n")
            time.sleep(0.2)
            return False
        elif path == "/1xx":
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            self._respond(conn, req, 200, b"final after 1xx\n", conn_hdr)
        elif path == "/204body":
            conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Test: 204\r\n\r\nEXTRA-BYTES-AFTER-204")
        elif path == "/slowbody":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
            for _ in range(10):
                time.sleep(0.15)
                conn.sendall(b"s" * 1000)
        elif path == "/close-delimited":
            if req.method != "HEAD":
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"c" * 50000 + b"END\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            return False
        elif path == "/bighead":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Big-%04d: %s\r\n" % (i, b"b" * 1000)
                                                       for i in range(200)) + b"Content-Length: 2\r\n\r\nok")
        elif path == "/resp-cl-te":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n")
        elif path == "/resp-bad-cl":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello")
            time.sleep(0.2)
            return False
        elif path == "/chunked-response":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n"
                b"5\r\nhello\r\n"
                b"1;ext=1\r\n \r\n"
                b"6\r\nworld\n\r\n"
                b"0\r\nX-Trailer: t\r\n\r\n"
            )
        else:
            self._respond(conn, req, 200, ("path=%s\n" % req.target).encode("latin-1"),
                          [("Content-Type", "text/plain")] + conn_hdr)
        return not close

    def _websocket(self, conn, rd, req):
        up = (req.header("upgrade") or "").lower()
        co = (req.header("connection") or "").lower()
        key = req.header("sec-websocket-key")
        if up != "websocket" or "upgrade" not in co or not key:
            self._respond(conn, req, 400, b"not a websocket upgrade\n", [("Connection", "close")])
            return False
        req.complete = True
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Accept: %s\r\n\r\n" % accept
            ).encode()
        )
        if rd.buf:
            conn.sendall(rd.buf)
            rd.buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return False
            conn.sendall(data)


class DnsStub:
    """A UDP DNS server that answers NXDOMAIN (rcode 3) to every query."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.3)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dns-stub", daemon=True)
        self.thread.start()

    @staticmethod
    def _qname(pkt):
        labels, i = [], 12
        while i < len(pkt):
            n = pkt[i]
            if n == 0:
                return ".".join(labels), i + 5
            if n & 0xC0:
                return None, None
            labels.append(pkt[i + 1: i + 1 + n].decode("latin-1"))
            i += 1 + n
        return None, None

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                pkt, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(pkt) < 12:
                continue
            name, qend = self._qname(pkt)
            self.queries.append(name)
            flags = 0x8000 | (int.from_bytes(pkt[2:4], "big") & 0x0100) | 0x0080 | 3
            if name is not None and qend <= len(pkt):
                resp = pkt[0:2] + flags.to_bytes(2, "big") + b"\x00\x01\x00\x00\x00\x00\x00\x00" + pkt[12:qend]
            else:
                resp = pkt[0:2] + flags.to_bytes(2, "big") + b"\x00" * 8
            try:
                self.sock.sendto(resp, addr)
            except OSError:
                pass

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=2)
        self.sock.close()
