"""What cannot be classified is not silently allowed (tunnels).

A CONNECT tunnel is decided again by the first bytes the client sends in it:
each TLS ClientHello, read the way a TLS server reads it, or the Host of a
plain HTTP request. Bytes that say nothing about where the tunnel goes are
the pseudo-category `opaque`, denied unless a rule allows it.

Each hole is shown with a real TLS client (Python's ssl over a raw socket,
openssl s_client, curl) against nginx or a recording origin: the client
names www.facebook.com, which the policy denies, in a way the proxy used to
miss, and the TLS server behind the tunnel would have served. The tests
check that the tunnel is closed before the origin gets those bytes and what
the usage log says.
"""

import socket
import ssl
import subprocess
import threading
import time

import pytest

from sgtest import CLEAN_ENV, BIN, curl, write_rules

POLICY = """
[platform facebook]
category = social
domains = facebook.com

[rule no-facebook]
platforms = facebook
action = deny
"""

ALLOW_OPAQUE = """
[role apps]
networks = 127.0.0.0/8

[rule known-apps]
roles = apps
categories = opaque
action = allow
"""

# RFC 8446 4.1.3: the random of a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
CCS = b"\x14\x03\x03\x00\x01\x01"


# Recording origins listen on ephemeral ports.
PORTS = {"proxy": {"connect_ports": "1024-65535"}}


@pytest.fixture
def gate(make_sg):
    d = make_sg(overrides=PORTS, start=False)
    write_rules(d, POLICY)
    d.start()
    return d


@pytest.fixture
def gate_opaque_ok(make_sg):
    d = make_sg(overrides=PORTS, start=False)
    write_rules(d, POLICY + ALLOW_OPAQUE)
    d.start()
    return d


class RecordingOrigin:
    """A TCP origin that records every byte it receives. `on_data(buf, sock)`
    may answer; `banner` is sent `banner_after` seconds after a connection is accepted."""

    def __init__(self, on_data=None, banner=b"", banner_after=0.0):
        self.on_data = on_data
        self.banner = banner
        self.banner_after = banner_after
        self.received = b""
        self.connections = 0
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                s, _ = self.srv.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        s.settimeout(0.2)
        buf = b""
        try:
            if self.banner:
                time.sleep(self.banner_after)
                s.sendall(self.banner)
            while not self.stop.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                with self.lock:
                    self.received += data
                if self.on_data:
                    self.on_data(buf, s)
        except OSError:
            pass
        finally:
            s.close()

    def close(self):
        self.stop.set()
        self.srv.close()
        self.thread.join(2)


@pytest.fixture
def recording():
    made = []

    def _make(**kw):
        o = RecordingOrigin(**kw)
        made.append(o)
        return o

    yield _make
    for o in made:
        o.close()


def open_tunnel(d, target):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "closed before the CONNECT answer: %r" % head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def recv_all(s, timeout=5.0):
    """Everything until EOF or reset; (bytes, closed)."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return out, True
            out += data
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True


def client_hello(sni, alpn=None):
    """A real ClientHello (OpenSSL through Python's ssl) and its TLS object."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read(), (obj, inc, out)


def https_get(s, sni, before=b"", alpn=None, timeout=5.0):
    """A TLS handshake over tunnel s, `before` sent ahead of the ClientHello,
    then GET /small.txt. Returns the response bytes, or None when the tunnel
    closed before the handshake completed."""
    hello, (obj, inc, out) = client_hello(sni, alpn)
    s.sendall(before + hello)
    s.settimeout(timeout)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        pending = out.read()
        if pending:
            s.sendall(pending)
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not data:
            return None
        inc.write(data)
    s.sendall(out.read())
    obj.write(b"GET /small.txt HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
    s.sendall(out.read())
    raw, _ = recv_all(s, timeout)
    inc.write(raw)
    inc.write_eof()
    body = b""
    try:
        while True:
            chunk = obj.read(65536)
            if not chunk:
                break
            body += chunk
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ssl.SSLWantReadError):
        pass
    return body


def port_of(s):
    return s.getsockname()[1]


def tunnel_line(d, s, t0):
    return d.wait_log(ev="tunnel", client="127.0.0.1:%d" % port_of(s), since=t0)


def assert_denied_facebook(d, s, t0):
    e = tunnel_line(d, s, t0)
    assert e["platform"] == "facebook" and e["action"] == "deny", e.raw
    assert e["reason"] == "sni-denied" and e["rule"] == "no-facebook", e.raw
    return e


def assert_opaque_denied(d, s, t0):
    e = tunnel_line(d, s, t0)
    assert e["category"] == "opaque" and e["platform"] == "-", e.raw
    assert e["action"] == "deny" and e["reason"] == "opaque" and e["rule"] == "-", e.raw
    return e


# --- 1. records a TLS server reads past, and names it reads as a host ---------


def test_control_allowed_hello_completes(gate, env):
    """The path the other tests use works for a name the policy allows."""
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    body = https_get(s, "origin.test")
    assert body is not None and body.endswith(env.small_body), body
    s.close()


@pytest.mark.parametrize("before", [
    b"\x16\x03\x01\x00\x00",                     # an empty handshake record
    b"\x16\x03\x01\x00\x00" * 3,                 # three of them
    b"\x14\x03\x01\x00\x01\x01",                 # ChangeCipherSpec
    b"\x15\x03\x01\x00\x02\x01\x5a",             # a warning alert (user_canceled)
], ids=["empty-record", "three-empty-records", "change-cipher-spec", "warning-alert"])
def test_records_before_hello_do_not_hide_it(gate, env, before):
    t0 = time.time()
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    assert https_get(s, "www.facebook.com", before=before) is None, "the facebook session completed"
    e = assert_denied_facebook(gate, s, t0)
    assert e["sni"] == "www.facebook.com" and e.get("mismatch") == "sni", e.raw
    s.close()


def test_sni_with_port_is_read_as_host(gate, env):
    t0 = time.time()
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    assert https_get(s, "www.facebook.com:443") is None
    e = assert_denied_facebook(gate, s, t0)
    assert e["sni"] == "www.facebook.com:443", e.raw
    s.close()


def test_non_ascii_sni_is_normalised(gate, env):
    """Full-width 'www' (UTF-8 bytes in the SNI, as openssl s_client sends them),
    which IDNA maps to www.facebook.com."""
    t0 = time.time()
    name = "\uff57\uff57\uff57.facebook.com"
    p = subprocess.run(["openssl", "s_client", "-proxy", "127.0.0.1:%d" % gate.port,
                        "-connect", "origin.test:%d" % env.nginx_https, "-servername", name,
                        "-ign_eof"],
                       input=b"GET /small.txt HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, env=CLEAN_ENV)
    assert env.small_body not in p.stdout, "the session completed"
    e = gate.wait_log(ev="tunnel", host="origin.test", since=t0)
    assert e["platform"] == "facebook" and e["action"] == "deny", e.raw
    assert e["reason"] == "sni-denied", e.raw


def test_hello_over_64k_is_read(gate, env):
    """A ClientHello over 64 KiB (OpenSSL servers take up to 128 KiB)."""
    alpn = ["http/1.1"] + ["p%03d" % i + "x" * 250 for i in range(256)]
    t0 = time.time()
    hello, _ = client_hello("www.facebook.com", alpn)
    assert len(hello) > 65536 + 5
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    assert https_get(s, "www.facebook.com", alpn=alpn) is None
    assert_denied_facebook(gate, s, t0)
    s.close()
    # the same size of hello for an allowed name goes through
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    body = https_get(s, "origin.test", alpn=alpn)
    assert body is not None and body.endswith(env.small_body)
    s.close()


def test_hello_byte_by_byte(gate, env, recording):
    """A hello sent one byte per write is decided once whole (and read once)."""
    origin = recording()
    t0 = time.time()
    hello, _ = client_hello("www.facebook.com")
    s = open_tunnel(gate, "127.0.0.1:%d" % origin.port)
    for i in range(len(hello)):
        try:
            s.send(hello[i:i + 1])
        except OSError:
            break
        time.sleep(0.001)
    recv_all(s, 3)
    assert_denied_facebook(gate, s, t0)
    assert origin.received == b""
    s.close()


def test_half_close_mid_hello_relays_nothing(gate, env, recording):
    origin = recording()
    t0 = time.time()
    hello, _ = client_hello("www.facebook.com")
    s = open_tunnel(gate, "127.0.0.1:%d" % origin.port)
    s.sendall(hello[: len(hello) // 2])
    s.shutdown(socket.SHUT_WR)
    recv_all(s, 3)
    time.sleep(0.3)
    assert origin.received == b"", "undecided bytes were relayed: %r" % origin.received[:40]
    assert_opaque_denied(gate, s, t0)
    s.close()


def test_unreadable_hello_is_opaque(gate, env, recording):
    """A hello with two server_name entries: a server might read the second."""
    origin = recording()
    t0 = time.time()
    name1, name2 = b"origin.test", b"www.facebook.com"
    lst = b"\x00" + len(name1).to_bytes(2, "big") + name1 + b"\x00" + len(name2).to_bytes(2, "big") + name2
    ext = b"\x00\x00" + (len(lst) + 2).to_bytes(2, "big") + len(lst).to_bytes(2, "big") + lst
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + len(ext).to_bytes(2, "big") + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    s = open_tunnel(gate, "127.0.0.1:%d" % origin.port)
    s.sendall(b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)
    recv_all(s, 3)
    assert origin.received == b""
    assert_opaque_denied(gate, s, t0)
    s.close()


# --- 2. every ClientHello: the one after a HelloRetryRequest ---------------------


def hrr_record():
    exts = b"\x00\x2b\x00\x02\x03\x04" + b"\x00\x33\x00\x02\x00\x17"
    body = (b"\x03\x03" + HRR_RANDOM + b"\x00" + b"\x13\x01" + b"\x00"
            + len(exts).to_bytes(2, "big") + exts)
    msg = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(msg).to_bytes(2, "big") + msg


def test_second_hello_after_hrr_is_decided(gate, env, recording):
    answered = []

    def on_data(buf, sock):
        # answer the first whole ClientHello record with a HelloRetryRequest
        if not answered and len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
            answered.append(1)
            sock.sendall(hrr_record() + CCS)

    origin = recording(on_data=on_data)
    t0 = time.time()
    first, _ = client_hello("origin.test")
    second, _ = client_hello("www.facebook.com")
    s = open_tunnel(gate, "origin.test:%d" % origin.port)
    s.sendall(first)
    s.settimeout(5)
    got = b""
    while len(got) < len(hrr_record()):
        data = s.recv(4096)
        assert data, "closed before the HelloRetryRequest"
        got += data
    assert got.startswith(hrr_record())
    s.sendall(CCS + second)
    recv_all(s, 3)
    assert b"www.facebook.com" not in origin.received, "the second hello reached the origin"
    assert origin.received.startswith(first)
    e = assert_denied_facebook(gate, s, t0)
    assert e["sni"] == "www.facebook.com", e.raw
    s.close()


# --- 3. opaque tunnels ---------------------------------------------------------------


def test_ip_literal_without_sni_is_opaque(gate, env):
    """curl to https://IP/ sends no SNI; Host: www.facebook.com reaches nginx."""
    t0 = time.time()
    r = curl("-x", gate.proxy, "-k", "-H", "Host: www.facebook.com", "-w", "\n%{local_port}",
             "https://127.0.0.1:%d/small.txt" % env.nginx_https, timeout=10)
    assert r.returncode != 0, r.stdout
    port = r.stdout.rpartition(b"\n")[2].decode()
    e = gate.wait_log(ev="tunnel", client="127.0.0.1:%s" % port, since=t0)
    assert e["category"] == "opaque" and e["action"] == "deny" and e["reason"] == "opaque", e.raw
    assert e["sni"] == "-" and e["host"] == "127.0.0.1", e.raw


def test_ip_literal_without_sni_allowed_by_rule(gate_opaque_ok, env):
    d = gate_opaque_ok
    t0 = time.time()
    r = curl("-x", d.proxy, "-k", "-w", "\n%{local_port}",
             "https://127.0.0.1:%d/small.txt" % env.nginx_https, timeout=10)
    assert r.returncode == 0, r.stderr
    body, _, port = r.stdout.rpartition(b"\n")
    assert body == env.small_body
    e = d.wait_log(ev="tunnel", client="127.0.0.1:%s" % port.decode(), since=t0)
    assert e["category"] == "opaque" and e["action"] == "allow" and e["rule"] == "known-apps", e.raw


def test_host_name_without_sni_is_decided_by_connect_host(gate, env):
    """Not opaque: the CONNECT host names the server."""
    t0 = time.time()
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_https)
    body = https_get(s, None)
    assert body is not None and body.endswith(env.small_body)
    s.close()
    e = gate.wait_log(ev="tunnel", host="origin.test", since=t0)
    assert e["category"] == "-" and "reason" not in e, e.raw


def test_plain_http_inside_tunnel_is_decided_by_host(gate, env):
    t0 = time.time()
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_http)
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: www.facebook.com\r\nConnection: close\r\n\r\n")
    got, closed = recv_all(s, 3)
    assert got == b"" and closed, got[:200]
    e = assert_denied_facebook(gate, s, t0)
    assert e["sni"] == "www.facebook.com", e.raw
    s.close()
    # the same with an allowed Host is served
    s = open_tunnel(gate, "origin.test:%d" % env.nginx_http)
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
    got, _ = recv_all(s, 5)
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(env.small_body)
    s.close()


def test_neither_tls_nor_http_is_opaque(gate, env):
    t0 = time.time()
    s = open_tunnel(gate, "127.0.0.1:%d" % env.py_port)
    s.sendall(b"ECHO\nhello")
    got, closed = recv_all(s, 3)
    assert got == b"" and closed, got
    assert_opaque_denied(gate, s, t0)
    s.close()


def test_neither_tls_nor_http_allowed_by_rule(gate_opaque_ok, env):
    d = gate_opaque_ok
    t0 = time.time()
    s = open_tunnel(d, "127.0.0.1:%d" % env.py_port)
    s.sendall(b"ECHO\nhello")
    s.shutdown(socket.SHUT_WR)
    got, closed = recv_all(s, 5)
    assert got.startswith(b"hello"), got
    e = tunnel_line(d, s, t0)
    # allowed, and still marked: grep ' reason=opaque ' finds every opaque tunnel
    assert (e["category"], e["action"], e["reason"]) == ("opaque", "allow", "opaque"), e.raw
    s.close()


def test_origin_speaking_first_is_opaque(gate, env, recording):
    """No TLS or HTTP server speaks first: its banner does not reach the client."""
    origin = recording(banner=b"SSH-2.0-OpenSSH_9.2\r\n")
    t0 = time.time()
    s = open_tunnel(gate, "127.0.0.1:%d" % origin.port)
    got, closed = recv_all(s, 3)
    assert got == b"" and closed, got
    assert_opaque_denied(gate, s, t0)
    s.close()


def test_origin_speaking_first_into_an_idle_tunnel_is_opaque(gate, env, recording):
    """The same banner a while after the tunnel opened, while its client says nothing (a
    tunnel waiting for its first bytes holds only its sockets): still decided, still
    withheld, and a client that then speaks reaches nobody."""
    origin = recording(banner=b"220 mail.example ESMTP\r\n", banner_after=0.8)
    t0 = time.time()
    s = open_tunnel(gate, "127.0.0.1:%d" % origin.port)
    got, closed = recv_all(s, 4)
    assert got == b"" and closed, got
    assert_opaque_denied(gate, s, t0)
    try:
        s.sendall(b"EHLO client\r\n")
    except OSError:
        pass
    s.close()
    time.sleep(0.3)
    assert origin.received == b"", origin.received


def test_client_speaking_after_a_long_silence_is_decided(gate_opaque_ok, env, recording):
    """A tunnel left idle before its first bytes (as browsers open spare ones) is decided
    when they come, and relays both ways."""
    def answer(buf, sock):
        if buf.endswith(b"\n"):
            sock.sendall(b"pong " + buf)
    origin = recording(on_data=answer)
    t0 = time.time()
    s = open_tunnel(gate_opaque_ok, "127.0.0.1:%d" % origin.port)
    time.sleep(1.0)
    s.sendall(b"ping\n")
    s.settimeout(5)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, got
        got += chunk
    assert got == b"pong ping\n"
    port = port_of(s)
    s.close()
    e = gate_opaque_ok.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=t0)
    assert e["category"] == "opaque" and e["action"] == "allow", e.raw
    target = "127.0.0.1:%d" % origin.port
    asked = len("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    answered = len(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert e.int("up") == asked + 5 and e.int("down") == answered + len(got), e.raw


# --- rules, -t and explain know opaque ------------------------------------------------


def run_sg(*args):
    return subprocess.run([str(BIN)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=20, env=CLEAN_ENV)


def test_check_and_explain_know_opaque(make_sg):
    d = make_sg(start=False)
    write_rules(d, POLICY)
    r = run_sg("explain", "-c", str(d.config), "--ip", "127.0.0.1", "https://127.0.0.1/")
    assert r.returncode == 1, r.stdout + r.stderr
    assert b"opaque" in r.stdout and b"reason=opaque" in r.stdout, r.stdout
    r = run_sg("explain", "-c", str(d.config), "--opaque", "origin.test")
    assert r.returncode == 1 and b"opaque" in r.stdout, r.stdout + r.stderr
    r = run_sg("explain", "-c", str(d.config), "https://origin.test/")
    assert r.returncode == 0 and b"opaque" not in r.stdout, r.stdout

    write_rules(d, POLICY + ALLOW_OPAQUE)
    r = run_sg("-t", "-c", str(d.config))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_sg("explain", "-c", str(d.config), "--ip", "127.0.0.1", "https://127.0.0.1/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"known-apps" in r.stdout and b"yes -> allow" in r.stdout, r.stdout
    r = run_sg("explain", "-c", str(d.config), "--ip", "10.9.9.9", "https://127.0.0.1/")
    assert r.returncode == 1, r.stdout

    write_rules(d, POLICY + "\n[rule x]\nplatforms = opaque\naction = allow\n")
    r = run_sg("-t", "-c", str(d.config))
    assert r.returncode == 1 and b"categories = opaque" in r.stdout + r.stderr, r.stdout + r.stderr
    write_rules(d, POLICY + "\n[platform odd]\ncategory = opaque\ndomains = odd.example\n")
    r = run_sg("-t", "-c", str(d.config))
    assert r.returncode == 1 and b"reserved" in r.stdout + r.stderr, r.stdout + r.stderr
