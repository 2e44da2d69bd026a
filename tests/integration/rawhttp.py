"""Raw-socket HTTP/1.1 client helpers for tests that curl would normalise."""

import socket
import time


class Response:
    def __init__(self, version, status, reason, headers, body, interim):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.interim = interim  # list of 1xx (status, headers) seen before this one

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        token = token.lower()
        for v in self.header_all(name):
            if token in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.status, self.reason, self.headers, len(self.body))


class Closed(Exception):
    """The peer closed before a complete response arrived."""


class Conn:
    """A client connection with a receive buffer and deadlines on every read."""

    def __init__(self, host, port, timeout=5.0, family=None):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_tolerant(self, data):
        """Send, ignoring a peer that already answered and closed."""
        try:
            self.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_until(self, delim, deadline):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = self.buf[: i + len(delim)]
                self.buf = self.buf[i + len(delim):]
                return out
            if not self._fill(deadline):
                raise Closed("closed while waiting for %r; got %r" % (delim, self.buf[:200]))

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("closed after %d of %d body bytes" % (len(self.buf), n))
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        raw = self._read_until(b"\r\n\r\n", deadline)
        return parse_head(raw)

    def read_response(self, method="GET", timeout=None):
        """Read one final response (skipping and recording 1xx ones)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            raw = self._read_until(b"\r\n\r\n", deadline)
            version, status, reason, headers = parse_head(raw)
            if 100 <= status < 200 and status != 101:
                interim.append((status, headers))
                continue
            break
        resp = Response(version, status, reason, headers, b"", interim)
        if method == "HEAD" or status in (101, 204, 304) or (method == "CONNECT" and 200 <= status < 300):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                line = self._read_until(b"\r\n", deadline)
                size = int(line[:-2].split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_until(b"\r\n", deadline) != b"\r\n":
                        pass
                    break
                body += self._read_exact(size, deadline)
                self._read_exact(2, deadline)
            resp.body = body
        elif cl is not None:
            resp.body = self._read_exact(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def read_all(self, timeout=None):
        """Everything until the peer closes (or the deadline passes)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            pass
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, timeout=2.0):
        """True when the peer closes (FIN or RST) within timeout and sends nothing more."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.eof:
                    return not self.buf
                if self.buf:
                    return False
                self._fill(deadline)
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    first = lines[0]
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not a status line: %r" % first)
    version = parts[0]
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return version, status, reason, headers


def first_status(data):
    """Status code of the first status line in data, or None."""
    if not data.startswith(b"HTTP/"):
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
