"""Inspection only where a rule needs it ([tls] inspect = auto).

"LinkedIn for everyone, but nobody may post": a rule with `methods` (or
`path_regex`) on an HTTPS platform can only be decided by reading the
requests inside the tunnel. Such a tunnel is answered 200, TLS is completed
with the client under a certificate minted from [tls] ca_cert, and each
request inside is decided and logged on its own (ev=request ... tls=inspect);
an allowed one goes on to the origin over TLS, verified against the system
trust store (SSL_CERT_FILE here), never downgraded.

A tunnel that no such rule concerns is not decrypted: the origin gets the
client's own TLS, and the client sees the origin's own certificate.

The origin is a Python TLS server with its own test CA, reached through the
hosts file (www.linkedin.com and www.facebook.com are 127.0.0.1); curl
trusts the proxy's CA with --cacert.
"""

import hashlib
import os
import socket
import ssl
import threading

import pytest

from sgtest import BIN, curl, run, write_rules

POLICY = """
[platform linkedin]
category = social
domains = linkedin.com

[platform facebook]
category = social
domains = facebook.com

[rule no-posting]
platforms = linkedin
methods = POST
action = deny
message = Reading LinkedIn is fine; posting is not.

[rule linkedin]
platforms = linkedin
action = allow

[rule facebook]
platforms = facebook
action = allow
"""

# A response long enough to go by splice(2) on plain HTTP (not over TLS).
BIG = bytes(range(256)) * 4096

# The same, but Facebook's groups are looked at too: its tunnels are read.
FACEBOOK_GROUPS = """
[rule facebook-groups]
platforms = facebook
path_regex = ^/groups/
action = deny
"""


def openssl(*args):
    r = run(["openssl"] + [str(a) for a in args], timeout=30)
    assert r.returncode == 0, "openssl %s: %s" % (args, r.stderr.decode())


def make_ca(d, name):
    key, pem = d / (name + ".key"), d / (name + ".pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(key, 0o600)
    return pem, key


def make_leaf(d, ca, name, sans):
    ca_pem, ca_key = ca
    key, csr, pem, ext = (d / (name + s) for s in (".key", ".csr", ".pem", ".ext"))
    ext.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                   "subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + sans[0])
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
            "-out", pem, "-days", "2", "-extfile", ext)
    os.chmod(key, 0o600)
    return pem, key


class TlsOrigin:
    """An HTTPS origin answering every request with "origin: METHOD PATH";
    it records the SNI of each handshake and each request it got."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.snis, self.requests, self.alpn = [], [], []
        self.ctx.sni_callback = lambda sock, name, ctx: self.snis.append(name) and None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(s,), daemon=True).start()

    def handle(self, raw):
        raw.settimeout(5)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        self.alpn.append(s.selected_alpn_protocol())
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = dict(l.split(":", 1) for l in lines[1:] if ":" in l)
                fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
                n = int(fields.get("content-length", "0"))
                while len(buf) < n:
                    buf += s.recv(65536)
                body, buf = buf[:n], buf[n:]
                self.requests.append((method, path, fields.get("host"), body))
                out = ("origin: %s %s\n" % (method, path)).encode()
                if path == "/big":
                    out = hashlib.sha256(body).hexdigest().encode() + b"\n" + BIG
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                          % len(out) + out)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            s.close()

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    proxy_ca = make_ca(d, "proxy-ca")
    origin_ca = make_ca(d, "origin-ca")
    leaf = make_leaf(d, origin_ca, "origin", ["www.linkedin.com", "www.facebook.com"])
    only_linkedin = make_leaf(d, origin_ca, "only-linkedin", ["www.linkedin.com"])
    return {"proxy_ca": proxy_ca, "origin_ca": origin_ca, "leaf": leaf,
            "only_linkedin": only_linkedin}


@pytest.fixture
def origin(pki):
    o = TlsOrigin(*pki["leaf"])
    yield o
    o.stop()


def start_gate(make_sg, pki, trust, policy=POLICY, inspect="auto"):
    """socialgate with [tls]; `trust` is the SSL_CERT_FILE it verifies origins with."""
    ca_pem, ca_key = pki["proxy_ca"]
    d = make_sg(overrides={"proxy": {"connect_ports": "1024-65535"},
                           "tls": {"ca_cert": str(ca_pem), "ca_key": str(ca_key),
                                   "inspect": inspect}},
                start=False, extra_env={"SSL_CERT_FILE": str(trust), "SSL_CERT_DIR": "/nonexistent"})
    write_rules(d, policy)
    d.start()
    return d


def through(d, pki, url, *args, cacert=None):
    return curl("-sS", "--max-time", "10", "-x", d.proxy, "--cacert",
                str(cacert or pki["proxy_ca"][0]), "-w", "\n%{http_code}", *args, url, timeout=20)


def body_and_code(r):
    out = r.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    return body.rstrip("\n"), code


def test_post_denied_get_forwarded(make_sg, pki, origin):
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    url = "https://www.linkedin.com:%d/feed/update?x=1" % origin.port

    r = through(d, pki, url, "-d", "status=hello")
    body, code = body_and_code(r)
    assert code == "403", r.stderr
    assert "posting is not" in body
    assert not any(m == "POST" for m, *_ in origin.requests), "the POST reached the origin"
    e = d.wait_log(ev="request", method="POST")
    assert e["host"] == "www.linkedin.com" and e["port"] == str(origin.port)
    assert e["path"] == "/feed/update" and e["rule"] == "no-posting" and e["action"] == "deny"
    assert e["status"] == "403" and e["tls"] == "inspect"

    r = through(d, pki, url)
    body, code = body_and_code(r)
    assert code == "200", r.stderr
    assert body == "origin: GET /feed/update?x=1"
    assert origin.requests[-1][:3] == ("GET", "/feed/update?x=1", "www.linkedin.com:%d" % origin.port)
    assert "www.linkedin.com" in origin.snis and origin.alpn[-1] == "http/1.1"
    e = d.wait_log(ev="request", method="GET")
    assert e["rule"] == "linkedin" and e["action"] == "allow" and e["status"] == "200"
    assert e["port"] == str(origin.port) and e["path"] == "/feed/update"
    # the line ends with tls=inspect
    line = [l for l in d.log.read_text().splitlines() if " method=GET " in l][-1]
    assert line.endswith(" tls=inspect")
    # and the tunnel's own line says it was decrypted
    t = d.wait_log(ev="tunnel", method="CONNECT")
    assert t["tls"] == "inspect" and t["status"] == "200"


def test_keepalive_inside_tunnel(make_sg, pki, origin):
    """Several requests in one decrypted tunnel: each decided and logged."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    base = "https://www.linkedin.com:%d" % origin.port
    r = curl("-sS", "--max-time", "10", "-x", d.proxy, "--cacert", str(pki["proxy_ca"][0]),
             base + "/a", base + "/b", timeout=20)
    assert r.stdout == b"origin: GET /a\norigin: GET /b\n", r.stderr
    d.wait_log(ev="request", path="/b")
    paths = [e["path"] for e in d.entries() if e.get("ev") == "request"]
    assert paths == ["/a", "/b"]
    assert len([e for e in d.entries() if e.get("ev") == "tunnel"]) == 1


def test_untrusted_origin_certificate(make_sg, pki, origin):
    """The trust store does not hold the origin's CA: a 502 page, nothing sent."""
    d = start_gate(make_sg, pki, pki["proxy_ca"][0])
    r = through(d, pki, "https://www.linkedin.com:%d/feed" % origin.port)
    body, code = body_and_code(r)
    assert code == "502", r.stderr
    assert "certificate" in body
    assert origin.requests == []
    e = d.wait_log(ev="request", method="GET")
    assert e["reason"] == "upstream-certificate" and e["tls"] == "inspect"


def test_wrong_origin_name(make_sg, pki, tmp_path):
    """The origin's certificate is trusted but names another host: 502."""
    o = TlsOrigin(*pki["only_linkedin"])
    try:
        d = start_gate(make_sg, pki, pki["origin_ca"][0], FACEBOOK_GROUPS + POLICY)
        r = through(d, pki, "https://www.facebook.com:%d/feed" % o.port)
        body, code = body_and_code(r)
        assert code == "502", r.stderr
        assert o.requests == []
        e = d.wait_log(ev="request", method="GET")
        assert e["reason"] == "upstream-certificate" and e["host"] == "www.facebook.com"
    finally:
        o.stop()


def test_path_rule_inside(make_sg, pki, origin):
    """path_regex needs the path: /groups/ denied, the rest forwarded."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0], FACEBOOK_GROUPS + POLICY)
    r = through(d, pki, "https://www.facebook.com:%d/groups/42" % origin.port)
    assert body_and_code(r)[1] == "403", r.stderr
    r = through(d, pki, "https://www.facebook.com:%d/home" % origin.port)
    assert body_and_code(r) == ("origin: GET /home", "200"), r.stderr
    assert [p for _, p, *_ in origin.requests] == ["/home"]
    e = d.wait_log(ev="request", path="/groups/42")
    assert e["rule"] == "facebook-groups" and e["tls"] == "inspect"


def test_not_decrypted_without_such_rule(make_sg, pki, origin):
    """Facebook has no rule with methods or path_regex: its tunnel is spliced
    untouched. curl, trusting only the origin's CA, accepts the origin's own
    certificate, and the origin got curl's own ClientHello (its SNI)."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    r = through(d, pki, "https://www.facebook.com:%d/home" % origin.port,
                cacert=pki["origin_ca"][0])
    assert body_and_code(r) == ("origin: GET /home", "200"), r.stderr
    assert origin.snis == ["www.facebook.com"]
    e = d.wait_log(ev="tunnel", host="www.facebook.com")
    assert "tls" not in e and e["rule"] == "facebook"
    assert not any(x.get("ev") == "request" for x in d.entries())


def test_inspect_no(make_sg, pki, origin):
    """inspect = no: never decrypted, the rule with methods never decides."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0], inspect="no")
    r = through(d, pki, "https://www.linkedin.com:%d/feed" % origin.port, "-d", "x=1",
                cacert=pki["origin_ca"][0])
    assert body_and_code(r) == ("origin: POST /feed", "200"), r.stderr
    e = d.wait_log(ev="tunnel", host="www.linkedin.com")
    assert "tls" not in e


def test_client_not_trusting_the_ca(make_sg, pki, origin):
    """A client that does not trust the proxy's CA: reason=tls-untrusted."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    r = through(d, pki, "https://www.linkedin.com:%d/feed" % origin.port,
                cacert=pki["origin_ca"][0])
    assert r.returncode != 0
    e = d.wait_log(ev="tunnel", host="www.linkedin.com")
    assert e["reason"] == "tls-untrusted" and e["tls"] == "inspect"
    assert origin.requests == []


def test_certificate_for_the_sni(make_sg, pki, origin):
    """The client's TLS names www.linkedin.com in a tunnel to linkedin.com:
    the certificate is minted for the SNI (curl checks it), and the requests
    inside go to that name."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    r = through(d, pki, "https://www.linkedin.com:%d/in/someone" % origin.port,
                "--connect-to", "www.linkedin.com:%d:linkedin.com:%d" % (origin.port, origin.port))
    assert body_and_code(r) == ("origin: GET /in/someone", "200"), r.stderr
    t = d.wait_log(ev="tunnel", host="linkedin.com")
    assert t["sni"] == "www.linkedin.com" and t["tls"] == "inspect"
    e = d.wait_log(ev="request", path="/in/someone")
    assert e["host"] == "www.linkedin.com" and e["tls"] == "inspect"


def test_explain_says_decrypted(make_sg, pki):
    """explain names the rule a tunnel is decrypted for, and only then."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0])
    r = run([str(BIN), "explain", "-c", str(d.config), "--ip", "127.0.0.1",
             "https://www.linkedin.com/"], timeout=20)
    out = r.stdout.decode()
    assert "[tls] inspect: rule no-posting" in out and "tls=inspect" in out, out
    r = run([str(BIN), "explain", "-c", str(d.config), "--ip", "127.0.0.1",
             "https://www.facebook.com/"], timeout=20)
    assert "inspect" not in r.stdout.decode(), r.stdout.decode()


def test_long_bodies_inside(make_sg, pki, origin, tmp_path):
    """A 1 MiB upload and a 1 MiB answer through a decrypted tunnel, whole."""
    d = start_gate(make_sg, pki, pki["origin_ca"][0], FACEBOOK_GROUPS + POLICY)
    up = tmp_path / "up.bin"
    up.write_bytes(os.urandom(1 << 20))
    out = tmp_path / "down.bin"
    r = curl("-sS", "--max-time", "20", "-x", d.proxy, "--cacert", str(pki["proxy_ca"][0]),
             "--data-binary", "@" + str(up), "-o", str(out),
             "https://www.facebook.com:%d/big" % origin.port, timeout=30)
    assert r.returncode == 0, r.stderr
    got = out.read_bytes()
    assert got == hashlib.sha256(up.read_bytes()).hexdigest().encode() + b"\n" + BIG
    e = d.wait_log(ev="request", path="/big")
    assert e["status"] == "200" and e["tls"] == "inspect"
    assert int(e["down"]) > len(BIG) and int(e["up"]) > (1 << 20)
