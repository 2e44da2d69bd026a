"""HTTPS pages ([tls] ca_cert, ca_key, pages, exempt).

A tunnel that the policy denies, warns about or stops for a used-up quota is
answered 200; socialgate completes TLS with the client using a certificate
minted for the name from the company CA and answers the first request with
the page. Nothing reaches the origin. The warn page's Continue link is
answered inside TLS on the same host; the next tunnel is allowed and
spliced to the origin untouched.

The clients are curl with --cacert (the interception CA made here with the
openssl command, plus the test CA of nginx for the tunnels that reach it)
and Python's ssl module. www.facebook.com and origin.test resolve to
127.0.0.1 (the session's hosts file); nginx serves both over TLS.
"""

import os
import re
import socket
import ssl
import threading
import time

import pytest

from sgtest import BIN, curl, free_port, run, write_rules

BASE = """
[platform facebook]
category = social
domains = facebook.com

[platform videos]
category = video
domains = origin.test

[platform bank]
category = banking
domains = linkedin.com
"""


def make_ica(d, key_mode=0o600):
    """An interception CA made with the openssl command: (cert, key)."""
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "ica.pem", d / "ica.key"
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", "/CN=socialgate interception test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    os.chmod(key, key_mode)
    return cert, key


@pytest.fixture
def ica(tmp_path, env):
    cert, key = make_ica(tmp_path / "ica")
    bundle = tmp_path / "ica" / "bundle.pem"
    bundle.write_bytes(cert.read_bytes() + env.ca.read_bytes())
    return {"cert": cert, "key": key, "bundle": bundle}


def tls_gate(make_sg, ica, rules, tls=None, admin_port=None, pages=None):
    o = {"ca_cert": str(ica["cert"]), "ca_key": str(ica["key"])}
    o.update(tls or {})
    over = {"tls": o, "proxy": {"connect_ports": "443, 1024-65535"}}
    if pages:
        over["pages"] = pages
    if admin_port:
        over["admin"] = {"listen": "127.0.0.1:%d" % admin_port}
    d = make_sg(overrides=over, start=False)
    write_rules(d, BASE + rules)
    d.start()
    return d


def get(d, ica, url, *extra, cacert=None):
    """curl through d: (exit code, status, headers+body text)."""
    r = curl("-x", d.proxy, "--cacert", str(cacert or ica["bundle"]), "-i", *extra, url,
             timeout=10)
    text = r.stdout.decode(errors="replace")
    # -i shows the CONNECT answer first; the last status line is the page's.
    statuses = re.findall(r"^HTTP/[\d.]+ (\d+)", text, re.M)
    return r.returncode, int(statuses[-1]) if statuses else 0, text, r.stderr.decode()


class CountingOrigin:
    """A TCP listener that counts connections and bytes (it never answers)."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.connections = 0
        self.received = b""
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                s, _ = self.srv.accept()
            except OSError:
                continue
            self.connections += 1
            s.settimeout(0.5)
            try:
                self.received += s.recv(65536)
            except OSError:
                pass
            s.close()

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.srv.close()


def test_deny_page_over_https_and_nothing_reaches_the_origin(make_sg, ica):
    d = tls_gate(make_sg, ica, """
[rule no-facebook]
platforms = facebook
action = deny
message = Facebook is closed during work hours.
""")
    o = CountingOrigin()
    try:
        rc, status, text, err = get(d, ica, "https://www.facebook.com:%d/some/page?x=1" % o.port)
        assert rc == 0, err
        assert status == 403
        assert "Facebook is closed during work hours." in text
        time.sleep(0.3)
        assert o.connections == 0 and o.received == b""
    finally:
        o.close()
    e = d.wait_log(ev="tunnel", host="www.facebook.com", action="deny")
    assert e["status"] == "403" and e["tls"] == "page" and e["sni"] == "www.facebook.com"
    assert e["rule"] == "no-facebook" and e["platform"] == "facebook"
    assert e.keys_in_order[-1] == "tls"


def page_over_python_ssl(d, ica, method="GET"):
    """A CONNECT and a GET inside TLS with Python's ssl module, which verifies the minted
    leaf against the CA and the name; returns (alpn, certificate, answer)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(ica["cert"]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    t = ctx.wrap_socket(s, server_hostname="www.facebook.com")
    alpn, cert = t.selected_alpn_protocol(), t.getpeercert()
    t.sendall(method.encode() + b" / HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n")
    got = b""
    while True:
        b = t.recv(65536)
        if not b:
            break
        got += b
    t.close()
    return alpn, cert, got


def metric(d, name):
    r = curl(d.admin + "/metrics", timeout=5)
    m = re.search(r"^%s (\d+)$" % name, r.stdout.decode(), re.M)
    assert m, r.stdout.decode()
    return int(m.group(1))


def test_page_certificate_is_minted_for_the_sni(make_sg, ica):
    """The leaf verifies against the CA for the SNI; ALPN is http/1.1 only; a second
    connection reuses the worker's certificate (/metrics counts both)."""
    aport = free_port()
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n",
                 tls={"exempt": "video"}, admin_port=aport)
    d.admin = "http://127.0.0.1:%d" % aport
    alpn, cert, got = page_over_python_ssl(d, ica)
    assert alpn == "http/1.1"
    assert ("DNS", "www.facebook.com") in cert["subjectAltName"]
    assert got.startswith(b"HTTP/1.1 403")
    for _ in range(3):
        assert page_over_python_ssl(d, ica)[2].startswith(b"HTTP/1.1 403")
    assert metric(d, "socialgate_tls_certificates_minted_total") in (1, 2)  # one per worker
    assert metric(d, "socialgate_tls_certificate_cache_hits_total") >= 2


def test_warn_page_then_continue_then_spliced(make_sg, ica, env):
    d = tls_gate(make_sg, ica, """
[rule facebook-warn]
platforms = facebook
action = warn
message = Think twice.
""")
    url = "https://www.facebook.com:%d/small.txt" % env.nginx_https
    rc, status, text, err = get(d, ica, url)
    assert rc == 0, err
    assert status == 403 and "Think twice." in text
    m = re.search(r'href="(https://www\.facebook\.com:%d/\.socialgate/continue\?[^"]+)"'
                  % env.nginx_https, text)
    assert m, text
    link = m.group(1).replace("&amp;", "&")
    e = d.wait_log(ev="tunnel", action="warn", status="403")
    assert e["tls"] == "page"
    # The link is on the warned host: the browser's tunnel to it gets the same phase,
    # which records the Continue and redirects to the page asked for.
    rc, status, text, err = get(d, ica, link)
    assert rc == 0, err
    assert status == 302
    assert re.search(r"^Location: %s\r?$" % re.escape(url), text, re.M), text
    d.wait_log(ev="tunnel", action="warn", status="302", tls="page")
    # The next tunnel is allowed and reaches nginx (its own certificate, not a minted one).
    rc, status, text, err = get(d, ica, url, cacert=env.ca)
    assert rc == 0, err
    assert status == 200 and text.endswith(env.small_body.decode())
    e = d.wait_log(lambda e: "tls" not in e, ev="tunnel", action="warn", status="200")
    assert int(e["down"]) > len(env.small_body)


def test_bad_continue_token_records_nothing(make_sg, ica, env):
    d = tls_gate(make_sg, ica, "[rule w]\nplatforms = facebook\naction = warn\n")
    link = ("https://www.facebook.com:%d/.socialgate/continue?p=facebook&r=w&e=9999999999&t=%s"
            % (env.nginx_https, "0" * 64))
    rc, status, text, err = get(d, ica, link)
    assert rc == 0 and status == 403, (text, err)
    d.wait_log(ev="tunnel", tls="page", reason="bad-continue-token")
    rc, status, text, err = get(d, ica, "https://www.facebook.com:%d/small.txt" % env.nginx_https)
    assert status == 403 and "Continue" in text


def test_quota_page_over_https(make_sg, ica, env):
    d = tls_gate(make_sg, ica, """
[rule videos-a-minute]
platforms = videos
action = allow
quota = 1m/day

[rule videos-otherwise]
platforms = videos
action = deny
message = Videos are done for today.
""")
    url = "https://origin.test:%d/small.txt" % env.nginx_https
    rc, status, text, err = get(d, ica, url, cacert=env.ca)
    assert rc == 0 and status == 200, err
    d.wait_log(ev="tunnel", rule="videos-a-minute", status="200")
    rc, status, text, err = get(d, ica, url)
    assert rc == 0, err
    # the quota page, as over plain HTTP: not the catch-all rule's message
    assert status == 403 and "is used up</h1>" in text, text
    assert re.search(r"You have used \d+ of your 1 minutes on \w+\. They come back at 00:00\.",
                     text), text
    assert "Videos are done for today." not in text and ".ini" not in text, text
    e = d.wait_log(ev="tunnel", rule="videos-otherwise", tls="page")
    assert e["status"] == "403" and e["action"] == "deny"


@pytest.mark.parametrize("show_rule", ["no", "yes"])
def test_https_pages_use_the_pages_section(make_sg, ica, env, tmp_path, show_rule):
    """The deny and warn pages inside TLS come from [pages]: the folder's
    templates, its contact, the rule's name only with show_rule; no file."""
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "deny.html").write_text(
        "<p>HOUSE DENY {platform} at {host}</p><p>{message}</p><p>rule=[{rule}]</p>"
        "<p>ask {contact}</p>\n")
    (folder / "warn.html").write_text(
        "<p>HOUSE WARN {platform}</p><a href=\"{continue_url}\">go on</a><p>ask {contact}</p>\n")
    d = tls_gate(make_sg, ica, """
[rule no-facebook]
platforms = facebook
action = deny
message = Not during work hours.

[rule videos-warn]
platforms = videos
action = warn
""", pages={"folder": str(folder), "contact": "Desk & Co, ext. 4357", "show_rule": show_rule})
    rc, status, text, err = get(d, ica, "https://www.facebook.com:%d/feed" % env.nginx_https)
    assert rc == 0 and status == 403, (text, err)
    assert "<p>HOUSE DENY facebook at www.facebook.com</p>" in text, text
    assert "<p>Not during work hours.</p>" in text, text
    assert "<p>ask Desk &amp; Co, ext. 4357</p>" in text, text
    want = "rule=[no-facebook]" if show_rule == "yes" else "rule=[]"
    assert want in text, text
    assert str(d.dir) not in text and ".ini" not in text, text
    d.wait_log(ev="tunnel", host="www.facebook.com", tls="page", status="403")

    rc, status, text, err = get(d, ica, "https://origin.test:%d/watch" % env.nginx_https)
    assert rc == 0 and status == 403, (text, err)
    assert "HOUSE WARN" in text and "<p>ask Desk &amp; Co, ext. 4357</p>" in text, text
    assert re.search(r'<a href="https://origin\.test:%d/\.socialgate/continue\?[^"]+">go on</a>'
                     % env.nginx_https, text), text
    assert str(d.dir) not in text and ".ini" not in text, text


def test_exempt_category_is_not_intercepted(make_sg, ica, env):
    d = tls_gate(make_sg, ica, """
[rule no-bank]
platforms = bank
action = deny
""", tls={"exempt": "banking"})
    rc, status, text, err = get(d, ica, "https://www.linkedin.com:%d/small.txt" % env.nginx_https)
    assert rc != 0  # today's behaviour: the CONNECT itself is refused
    assert "403" in err or status == 403
    e = d.wait_log(ev="tunnel", host="www.linkedin.com", action="deny")
    assert "tls" not in e


def test_untrusted_client_is_logged_and_nothing_hangs(make_sg, ica, env):
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n")
    t0 = time.monotonic()
    rc, status, text, err = get(d, ica, "https://www.facebook.com/", cacert=env.ca)
    assert rc == 60, err  # curl: the peer's certificate cannot be verified
    assert time.monotonic() - t0 < 5
    e = d.wait_log(ev="tunnel", host="www.facebook.com", reason="tls-untrusted")
    assert e["tls"] == "page"


def test_silent_client_times_out(make_sg, ica):
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n")
    t0 = time.monotonic()
    got = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    assert got.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - t0 < 6  # header_timeout = 3s
    d.wait_log(ev="tunnel", reason="tls-handshake-timeout", tls="page")


def test_denied_by_sni_only_gets_the_page(make_sg, ica, env):
    """Domain fronting: the CONNECT names an allowed host, the ClientHello a denied one.
    The upstream is dropped and the page is shown for the SNI's name."""
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n")
    rc, status, text, err = get(
        d, ica, "https://www.facebook.com/",
        "--connect-to", "www.facebook.com:443:origin.test:%d" % env.nginx_https)
    assert rc == 0, err
    assert status == 403
    e = d.wait_log(ev="tunnel", host="origin.test", tls="page")
    assert e["mismatch"] == "sni" and e["platform"] == "facebook" and e["status"] == "403"


def test_world_readable_key_is_a_check_error(tmp_path, make_sg):
    cert, key = make_ica(tmp_path / "open", key_mode=0o644)
    d = make_sg(overrides={"tls": {"ca_cert": str(cert), "ca_key": str(key)}}, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "ca_key = %s: refused: readable by others; chmod 600" % key in err, err
    assert re.search(r"proxy\.ini:\d+: ca_key", err), err


def test_unknown_exempt_name_is_a_check_error(ica, make_sg):
    d = make_sg(overrides={"tls": {"ca_cert": str(ica["cert"]), "ca_key": str(ica["key"]),
                                   "exempt": "banking, nosuch"}}, start=False)
    write_rules(d, BASE)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert re.search(r"proxy\.ini:\d+: exempt = nosuch: no such category or platform", err), err
    assert "banking" not in err


def test_not_a_ca_is_a_check_error(tmp_path, env, make_sg):
    """nginx's server certificate (CA:FALSE) cannot sign leaves."""
    key = tmp_path / "server.key"
    key.write_bytes(env.key.read_bytes())
    os.chmod(key, 0o600)
    d = make_sg(overrides={"tls": {"ca_cert": str(env.cert), "ca_key": str(key)}}, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode != 0
    assert "not a CA certificate (needs basicConstraints CA:TRUE)" in r.stderr.decode()


def test_malformed_request_inside_tls(make_sg, ica):
    """The request inside TLS goes through the same HTTP/1.1 parser: a bad one gets its
    error status there, and the line says why."""
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n")
    for req, status, reason in [(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, None),
                                (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", None, None)]:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        ctx = ssl.create_default_context(cafile=str(ica["cert"]))
        t = ctx.wrap_socket(s, server_hostname="www.facebook.com")
        t.sendall(req)
        got = b""
        try:
            while True:
                b = t.recv(65536)
                if not b:
                    break
                got += b
        except (ssl.SSLError, OSError):
            pass
        t.close()
        m = re.match(rb"HTTP/1\.1 (\d+) ", got)
        assert m and int(m.group(1)) >= 400 and int(m.group(1)) != 403, got[:200]
        if status:
            assert int(m.group(1)) == status
        d.wait_log(ev="tunnel", tls="page", status=m.group(1).decode())


def test_reload_takes_a_new_ca(make_sg, ica, tmp_path):
    """The CA is read at start and on HUP: after a new CA replaces the old files, pages
    are signed by the new one (no certificate of the old CA stays cached), and a key
    made world-readable keeps the running configuration."""
    import signal
    d = tls_gate(make_sg, ica, "[rule no-facebook]\nplatforms = facebook\naction = deny\n")
    for _ in range(2):  # both workers cache the name
        assert get(d, ica, "https://www.facebook.com/")[1] == 403
    new_cert, new_key = make_ica(tmp_path / "new")
    ica["cert"].write_bytes(new_cert.read_bytes())
    ica["key"].write_bytes(new_key.read_bytes())
    t0 = time.time()
    d.send(signal.SIGHUP)
    d.wait_log(since=t0, ev="config", result="ok", timeout=10)
    for _ in range(2):
        rc, status, text, err = get(d, ica, "https://www.facebook.com/", cacert=new_cert)
        assert rc == 0 and status == 403, err
    os.chmod(ica["key"], 0o644)
    t0 = time.time()
    d.send(signal.SIGHUP)
    e = d.wait_log(since=t0, ev="config", result="error", timeout=10)
    assert "readable by others" in e["msg"]
    rc, status, text, err = get(d, ica, "https://www.facebook.com/", cacert=new_cert)
    assert rc == 0 and status == 403, err


def test_warned_by_sni_only_gets_the_warn_page(make_sg, ica, env):
    """An allowed CONNECT host whose ClientHello names a warned platform: the warn page
    inside TLS; after its Continue the same fronted tunnel reaches nginx."""
    d = tls_gate(make_sg, ica, "[rule facebook-warn]\nplatforms = facebook\naction = warn\n")
    front = ("--connect-to", "www.facebook.com:443:origin.test:%d" % env.nginx_https)
    rc, status, text, err = get(d, ica, "https://www.facebook.com/small.txt", *front)
    assert rc == 0 and status == 403, err
    m = re.search(r'href="(https://www\.facebook\.com/\.socialgate/continue\?[^"]+)"', text)
    assert m, text
    d.wait_log(ev="tunnel", host="origin.test", action="warn", tls="page", mismatch="sni")
    rc, status, text, err = get(d, ica, m.group(1).replace("&amp;", "&"), *front)
    assert rc == 0 and status == 302, err
    rc, status, text, err = get(d, ica, "https://www.facebook.com/small.txt", *front,
                                cacert=env.ca)
    assert rc == 0 and status == 200 and text.endswith(env.small_body.decode()), err


def test_head_inside_tls_gets_the_page_head_alone(make_sg, ica):
    """A HEAD inside the intercepted tunnel gets the page's head, with the length a GET
    would get, and no body (RFC 9110 9.3.2)."""
    d = tls_gate(make_sg, ica, """
[rule no-facebook]
platforms = facebook
action = deny
""")
    _, _, got = page_over_python_ssl(d, ica)
    _, _, body = got.partition(b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 403") and len(body) > 0, got
    _, _, head_answer = page_over_python_ssl(d, ica, method="HEAD")
    head, sep, rest = head_answer.partition(b"\r\n\r\n")
    assert sep and rest == b"", head_answer
    assert head.startswith(b"HTTP/1.1 403") and b"Content-Length: %d" % len(body) in head, head
