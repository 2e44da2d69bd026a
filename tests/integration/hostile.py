"""Origins for the adversarial tests: scripted misbehaviour and lazy 1 GiB bodies.

Both run in threads of the pytest process on loopback, count every request
head they receive (``records``) and stop when used as a context manager.

ScriptedOrigin(reply)   for each request head received, calls
                        reply(sock, req, n) (n: 0 for the first request the
                        origin ever saw); reply writes whatever it wants on
                        the raw socket and returns True to keep serving the
                        connection. A bytes `reply` is sent as is, then the
                        connection is closed after a short pause.
LazyOrigin(size)        GET: a 200 with Content-Length `size` whose body is
                        made as it is sent (pattern(), never held whole);
                        POST/PUT: reads the body at the pace set by
                        `slow_read` (bytes per read, pause) for `slow_for`
                        seconds and then as fast as it comes, and answers
                        JSON {"length", "crc32", "complete"}.
"""

import json
import socket
import threading
import time
import zlib

from origin import ProtocolError, Reader, Request, parse_head

MiB = 1024 * 1024


def pattern_block(i, size=MiB):
    """Block i of the lazy body: a fixed MiB stamped with its index (cheap, position-checkable)."""
    base = _BASE[:size]
    stamp = b"[block %012d]" % i
    return stamp + base[len(stamp):]


_BASE = bytes((j * 131 + 7) & 0xFF for j in range(MiB))


def lazy_crc(size):
    """CRC-32 of the first `size` bytes of the lazy body, computed the same way it is sent."""
    crc, i, left = 0, 0, size
    while left > 0:
        b = pattern_block(i)[:left]
        crc = zlib.crc32(b, crc)
        left -= len(b)
        i += 1
    return crc


class _Server:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.connections = 0
        self.stop_event = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.3)
        self.port = self.listener.getsockname()[1]
        self.threads = []
        self.socks = []
        t = threading.Thread(target=self._accept_loop, daemon=True, name=type(self).__name__)
        t.start()
        self.accept_thread = t

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.socks.append(conn)
            t = threading.Thread(target=self._serve_guarded, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve_guarded(self, conn):
        conn.settimeout(30)
        try:
            self.serve(conn)
        except (OSError, ProtocolError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def heads(self, rd):
        """Yields request heads read from rd (records each); stops on EOF or garbage."""
        while not self.stop_event.is_set():
            raw = rd.read_until(b"\r\n\r\n")
            if raw is None:
                if rd.buf:
                    with self.lock:
                        self.records.append(Request("?", "?", "?", [], rd.buf))
                return
            try:
                req = parse_head(raw)
            except ProtocolError:
                with self.lock:
                    self.records.append(Request("?", "?", "?", [], raw))
                return
            with self.lock:
                n = len(self.records)
                self.records.append(req)
            yield req, n

    def count_connection(self):
        with self.lock:
            self.connections += 1

    def targets(self):
        with self.lock:
            return [r.target for r in self.records]

    def stop(self):
        self.stop_event.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(timeout=2)
        for t in self.threads:
            t.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def read_body(sock, rd, req, sink=None):
    """Reads a request body by its framing (Content-Length or chunked); returns its length."""
    te = req.header("transfer-encoding")
    cl = req.header("content-length")
    total = 0
    if te is not None:
        while True:
            line = rd.read_until(b"\r\n", limit=8192)
            if line is None:
                raise ProtocolError("EOF in chunk size")
            size = int(line[:-2].split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:
                    t = rd.read_until(b"\r\n")
                    if t is None:
                        raise ProtocolError("EOF in trailers")
                    if t == b"\r\n":
                        req.complete = True
                        return total
            data = rd.read_exact(size)
            if sink:
                sink(data)
            total += size
            if rd.read_exact(2) != b"\r\n":
                raise ProtocolError("missing CRLF after chunk")
    if cl is not None:
        n = int(cl)
        rd.read_exact_into(n, sink or (lambda b: None))
        total = n
    req.complete = True
    req.body_length = total
    return total


class ScriptedOrigin(_Server):
    def __init__(self, reply, read_bodies=True):
        self.reply = reply
        self.read_bodies = read_bodies
        super().__init__()

    def serve(self, conn):
        rd = Reader(conn)
        if not rd.fill():
            return
        self.count_connection()
        for req, n in self.heads(rd):
            if self.read_bodies:
                read_body(conn, rd, req)
            if isinstance(self.reply, bytes):
                conn.sendall(self.reply)
                time.sleep(0.2)
                return
            if not self.reply(conn, req, n):
                return


class LazyOrigin(_Server):
    def __init__(self, size, slow_read=(64 * 1024, 0.005), slow_for=0.0):
        self.size = size
        self.slow_read = slow_read
        self.slow_for = slow_for
        self.uploads = []  # (length, crc32, complete) of each body received
        self.sent = 0  # bytes of lazy bodies written to sockets so far
        super().__init__()

    def serve(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = Reader(conn)
        if not rd.fill():
            return
        self.count_connection()
        for req, _ in self.heads(rd):
            if req.method in ("POST", "PUT"):
                self._upload(conn, rd, req)
                return
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size).encode()
            conn.sendall(head)
            left, i = self.size, 0
            while left > 0 and not self.stop_event.is_set():
                b = pattern_block(i)[:left]
                conn.sendall(b)
                with self.lock:
                    self.sent += len(b)
                left -= len(b)
                i += 1
            req.complete = left == 0
            return

    def _upload(self, conn, rd, req):
        n = int(req.header("content-length"))
        crc, got = 0, 0
        if rd.buf:
            take = rd.buf[:n]
            rd.buf = rd.buf[len(take):]
            crc = zlib.crc32(take, crc)
            got += len(take)
        step, pause = self.slow_read
        slow_until = time.monotonic() + self.slow_for
        while got < n and not self.stop_event.is_set():
            slow = time.monotonic() < slow_until
            data = conn.recv(min(step if slow else 1024 * 1024, n - got))
            if not data:
                break
            crc = zlib.crc32(data, crc)
            got += len(data)
            if slow:
                time.sleep(pause)
        complete = got == n
        req.complete = complete
        with self.lock:
            self.uploads.append((got, crc, complete))
        body = json.dumps({"length": got, "crc32": crc, "complete": complete}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
