"""The HTTPS proxy port ([proxy] listen_tls, tls_cert, tls_key).

The same proxy behind TLS: the client does a TLS handshake with socialgate
and then speaks ordinary proxy HTTP inside it (requests, CONNECT, Basic
credentials that never cross the network in clear). The clients are curl
with `--proxy https://` and `--proxy-cacert`, and raw sockets for what curl
would not do (plain text on the TLS port). The port's certificate is the
session's test server certificate (localhost, 127.0.0.1), signed by the
session's test CA.
"""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import time

import pytest

from sgtest import BIN, curl, free_port, http_get, make_htpasswd, run, token, write_rules
from test_inspect import FACEBOOK_GROUPS, POLICY, make_ca, make_leaf, origin, pki  # noqa: F401


def port_files(env, d, name="gw"):
    """The test server certificate and key, copied next to the daemon's config (key 0600)."""
    cert, key = d / (name + ".pem"), d / (name + ".key")
    shutil.copy(env.cert, cert)
    shutil.copy(env.key, key)
    os.chmod(key, 0o600)
    return cert, key


def tls_gate(make_sg, env, tmp_path, auth=None, extra=None, start=True, **kw):
    cert_dir = tmp_path / ("port-" + token())
    cert_dir.mkdir()
    cert, key = port_files(env, cert_dir)
    tport = free_port()
    over = {"proxy": {"listen_tls": "127.0.0.1:%d" % tport, "tls_cert": str(cert),
                      "tls_key": str(key)}}
    if auth:
        over["auth"] = auth
    for section, kv in (extra or {}).items():
        over.setdefault(section, {}).update(kv)
    d = make_sg(overrides=over, start=False, **kw)
    d.tls_port = tport
    d.tls_proxy = "https://127.0.0.1:%d" % tport
    d.cert, d.key = cert, key
    if start:
        d.start()
    return d


def via_tls(d, env, *args, cacert=True):
    extra = ["--proxy-cacert", str(env.ca)] if cacert else []
    return curl("-sS", "--max-time", "10", "--proxy", d.tls_proxy, *extra, "-w", "\n%{http_code}",
                *args, timeout=20)


def split(r):
    out = r.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    return body, code


@pytest.fixture
def htpasswd(tmp_path):
    return make_htpasswd(tmp_path / "users.htpasswd", {"alice": "wonderland"})


def test_basic_auth_inside_tls(make_sg, env, tmp_path, htpasswd):
    """Basic credentials sent to the HTTPS proxy port: checked, logged, answered."""
    d = tls_gate(make_sg, env, tmp_path, auth={"htpasswd": str(htpasswd), "required": "yes"})
    url = "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())
    r = via_tls(d, env, "--proxy-user", "alice:wonderland", url)
    body, code = split(r)
    assert code == "200", r.stderr
    assert body.encode() == env.small_body
    e = d.wait_log(ev="request", method="GET", user="alice")
    assert e["status"] == "200" and e["host"] == "127.0.0.1"

    r = via_tls(d, env, "--proxy-user", "alice:wrong", url)
    assert split(r)[1] == "407", r.stderr
    r = via_tls(d, env, url)
    assert split(r)[1] == "407", r.stderr


def test_plain_http_and_big_body(make_sg, env, tmp_path):
    """Plain HTTP through the TLS port, and a 200 MiB body (copied, never spliced
    past the TLS layer) arrives whole."""
    d = tls_gate(make_sg, env, tmp_path)
    r = via_tls(d, env, "http://127.0.0.1:%d/small.txt" % env.nginx_http)
    assert split(r) == (env.small_body.decode(), "200"), r.stderr
    r = curl("-sS", "--max-time", "60", "--proxy", d.tls_proxy, "--proxy-cacert", str(env.ca),
             "http://127.0.0.1:%d/big.bin" % env.nginx_http, timeout=90)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == env.big_size
    assert hashlib.sha256(r.stdout).hexdigest() == env.big_sha
    e = d.wait_log(ev="request", path="/big.bin")
    assert e["status"] == "200" and e.int("down") > env.big_size


def test_connect_tunnel_inside_tls(make_sg, env, tmp_path, htpasswd):
    """A CONNECT tunnel through the TLS port, authenticated: TLS inside TLS, copied."""
    d = tls_gate(make_sg, env, tmp_path, auth={"htpasswd": str(htpasswd)})
    url = "https://origin.test:%d/small.txt" % env.nginx_https
    r = via_tls(d, env, "--proxy-user", "alice:wonderland", "--cacert", str(env.ca), url)
    assert split(r) == (env.small_body.decode(), "200"), r.stderr
    e = d.wait_log(ev="tunnel", host="origin.test")
    assert e["user"] == "alice" and e["status"] == "200" and e["sni"] == "origin.test"
    assert e.int("down") > len(env.small_body)


def test_untrusted_client_fails_cleanly(make_sg, env, tmp_path):
    """A client that does not trust the port's certificate gives up; the gateway logs
    it and goes on serving."""
    d = tls_gate(make_sg, env, tmp_path)
    before = time.time()
    r = via_tls(d, env, "http://127.0.0.1:%d/small.txt" % env.nginx_http, cacert=False)
    assert r.returncode in (35, 60), (r.returncode, r.stderr)
    e = d.wait_log(since=before, reason="tls-handshake-failed")
    assert e["ev"] == "request" and e["status"] == "-" and e["user"] == "-"
    assert "TLS handshake on the HTTPS proxy port" in d.stderr_tail()
    r = via_tls(d, env, "http://127.0.0.1:%d/small.txt" % env.nginx_http)
    assert split(r)[1] == "200", r.stderr


def test_plain_text_on_tls_port_is_closed(make_sg, env, tmp_path):
    """Plain proxy HTTP sent to the TLS port gets no HTTP answer: closed, with a log line."""
    d = tls_gate(make_sg, env, tmp_path)
    before = time.time()
    # a TCP probe (connect, close) is no failure: not logged, as on the plain port
    socket.create_connection(("127.0.0.1", d.tls_port), timeout=5).close()
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=5)
    s.sendall(b"GET http://127.0.0.1:%d/small.txt HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    assert b"HTTP/1." not in got and b"small" not in got
    e = d.wait_log(since=before, reason="tls-handshake-failed")
    assert e["status"] == "-"
    assert "http request" in d.stderr_tail().lower()
    assert [x for x in d.entries() if x["ev"] == "request"] == [e]


def test_handshake_timeout(make_sg, env, tmp_path):
    """A client that connects and says nothing is closed after header_timeout."""
    d = tls_gate(make_sg, env, tmp_path, extra={"limits": {"header_timeout": "1s"}})
    before = time.time()
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=5)
    t0 = time.monotonic()
    assert s.recv(10) == b""
    assert time.monotonic() - t0 < 4
    s.close()
    d.wait_log(since=before, reason="tls-handshake-timeout")


def test_refused_client_answered_inside_tls(make_sg, env, tmp_path):
    """A client not in `clients` gets its 403 inside TLS, not as plain text."""
    d = tls_gate(make_sg, env, tmp_path, extra={"proxy": {"clients": "10.9.9.0/24"}})
    r = via_tls(d, env, "http://127.0.0.1:%d/small.txt" % env.nginx_http)
    body, code = split(r)
    assert code == "403", r.stderr
    d.wait_log(reason="client-not-allowed")


def test_check_cert_and_key(make_sg, env, tmp_path):
    """-t checks the pair: a key readable by others, a key of another certificate,
    listen_tls without tls_cert; each as FILE:LINE."""
    d = tls_gate(make_sg, env, tmp_path, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode == 0, r.stderr

    os.chmod(d.key, 0o644)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 1 and "tls_key = %s: refused: readable by others" % d.key in err, err
    assert err.startswith(str(d.config) + ":"), err
    os.chmod(d.key, 0o600)

    other = tmp_path / "other"
    other.mkdir()
    _, other_key = make_ca(other, "other")
    shutil.copy(other_key, d.key)
    os.chmod(d.key, 0o600)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 1 and "does not match tls_cert" in err, err

    text = d.config.read_text()
    d.config.write_text("\n".join(l for l in text.splitlines() if not l.startswith("tls_cert")))
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 1 and "listen_tls needs tls_cert" in err, err


def peer_cert(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def test_reload_picks_up_new_certificate(make_sg, env, tmp_path):
    d = tls_gate(make_sg, env, tmp_path)
    first = peer_cert(d.tls_port)
    assert first == ssl.PEM_cert_to_DER_cert(env.cert.read_text())
    pk = tmp_path / "pk2"
    pk.mkdir()
    ca_pem, ca_key = make_ca(pk, "second-ca")
    leaf_pem, leaf_key = make_leaf(pk, (ca_pem, ca_key), "gw2", ["localhost"])
    shutil.copy(leaf_pem, d.cert)
    shutil.copy(leaf_key, d.key)
    os.chmod(d.key, 0o600)
    d.send(signal.SIGHUP)
    want = ssl.PEM_cert_to_DER_cert(leaf_pem.read_text())
    deadline = time.monotonic() + 5
    while peer_cert(d.tls_port) != want:
        assert time.monotonic() < deadline, "the new certificate was not served after HUP"
        time.sleep(0.1)


def test_pac_offers_tls_port_first(make_sg, env, tmp_path):
    aport = free_port()
    d = tls_gate(make_sg, env, tmp_path,
                 extra={"admin": {"listen": "127.0.0.1:%d" % aport,
                                  "pac_proxy": "gw.example.com:3128"}})
    st, _, body = http_get("http://127.0.0.1:%d/proxy.pac" % aport)
    assert st == 200
    assert ('return "HTTPS gw.example.com:%d; PROXY gw.example.com:3128";' % d.tls_port
            in body.decode()), body


def test_https_page_and_inspection_inside_tls_port(make_sg, env, tmp_path, pki, origin):
    """[tls] inside a CONNECT over the TLS port: the tunnel's TLS is a second layer
    (a page for a denied path, the origin's answer for the rest)."""
    ca_pem, ca_key = pki["proxy_ca"]
    d = tls_gate(make_sg, env, tmp_path, start=False,
                 extra={"proxy": {"connect_ports": "1024-65535"},
                        "tls": {"ca_cert": str(ca_pem), "ca_key": str(ca_key)}},
                 extra_env={"SSL_CERT_FILE": str(pki["origin_ca"][0]),
                            "SSL_CERT_DIR": "/nonexistent"})
    write_rules(d, POLICY.replace("[rule facebook]", FACEBOOK_GROUPS + "\n[rule facebook]"))
    d.start()
    base = "https://www.facebook.com:%d" % origin.port
    r = via_tls(d, env, "--cacert", str(ca_pem), base + "/groups/x")
    body, code = split(r)
    assert code == "403", r.stderr
    r = via_tls(d, env, "--cacert", str(ca_pem), base + "/feed")
    body, code = split(r)
    assert (body.rstrip("\n"), code) == ("origin: GET /feed", "200"), r.stderr
    e = d.wait_log(ev="request", path="/feed")
    assert e["tls"] == "inspect" and e["status"] == "200"


def tls_client(d, env):
    ctx = ssl.create_default_context(cafile=str(env.ca))
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)  # a bare FIN is an error
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost", suppress_ragged_eofs=False)


def read_to_close_notify(t):
    """Everything until the end; an end without TLS close_notify raises SSLEOFError."""
    got = b""
    while True:
        chunk = t.recv(65536)
        if not chunk:
            return got
        got += chunk


def test_ends_are_tls_ends(make_sg, env, tmp_path):
    """A tunnel's end and an answer that closes the connection end with a TLS
    close_notify, not a bare TCP FIN the client must take for a truncation."""
    import threading
    d = tls_gate(make_sg, env, tmp_path, extra={"proxy": {"connect_ports": "1024-65535"}})
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def serve():
        c, _ = lsock.accept()
        c.settimeout(5)
        c.recv(1000)
        c.sendall(b"hello from the origin")
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = tls_client(d, env)
    t.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += t.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    t.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # plain HTTP: classified by its Host
    got = head + read_to_close_notify(t)
    t.close()
    th.join(5)
    lsock.close()
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello from the origin"), got

    t = tls_client(d, env)
    t.sendall(b"GET http://127.0.0.1:%d/small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              % env.nginx_http)
    got = read_to_close_notify(t)
    t.close()
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(env.small_body)

    t = tls_client(d, env)  # an answer of socialgate's own, then closed
    t.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n")
    got = read_to_close_notify(t)
    t.close()
    assert got.startswith(b"HTTP/1.1 403"), got
