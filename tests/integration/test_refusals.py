"""What a gateway refuses or answers itself: plain HTTP to ports outside
http_ports (SMTP, SSH, ...), OPTIONS and TRACE whose Max-Forwards ran out,
upgrades other than WebSocket; and what it forwards as it should: an empty
path with a query, htpasswd user names with spaces.
"""

import json
import socket
import time

from rawhttp import Conn
from sgtest import BIN, curl, make_htpasswd, run, token, write_rules

CATALOG = """\
[platform facebook]
category = social
domains = facebook.com
"""


def _send(d, data, method="GET"):
    """One request on a new connection to daemon d: the parsed response."""
    with Conn("127.0.0.1", d.port, timeout=6.0) as c:
        c.send(data)
        return c.read_response(method=method)


def _origin_json(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)


class _Listener:
    """A plain TCP listener that counts the connections it accepts."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        return self

    def accepted(self):
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return n
            c.close()
            n += 1

    def __exit__(self, *a):
        self.sock.close()


# --- plain HTTP to ports outside http_ports ---------------------------------------------------

def test_plain_http_to_smtp_is_refused_before_any_connect(sg):
    """GET http://host:25/ is a 403 (reason=http-port-denied), not a 502 from a failed connect."""
    t0 = time.time()
    tok = token()
    resp = _send(sg, ("GET http://127.0.0.1:25/%s HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n"
                      % tok).encode())
    assert resp.status == 403, resp
    assert b"configured ports" in resp.body
    e = sg.wait_log(since=t0, ev="request", path="/" + tok)
    assert (e["method"], e["host"], e["port"], e["status"], e["reason"]) == \
        ("GET", "127.0.0.1", "25", "403", "http-port-denied"), e.raw


def test_http_ports_replaces_the_default(make_sg, env):
    """A port left out of http_ports is refused with no connection made; a listed one works."""
    with _Listener() as lst:
        d = make_sg({"proxy": {"http_ports": "80, %d" % env.py_port}})
        t0 = time.time()
        tok = token()
        resp = _send(d, ("POST http://127.0.0.1:%d/%s HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 15\r\n\r\nMAIL FROM:<a@b>" % (lst.port, tok)).encode())
        assert resp.status == 403, resp
        e = d.wait_log(since=t0, path="/" + tok)
        assert (e["status"], e["reason"], e["port"]) == ("403", "http-port-denied", str(lst.port)), e.raw
        assert lst.accepted() == 0, "socialgate connected to a port outside http_ports"
    r = curl("-s", "-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d/p/%s" % (env.py_port, token()))
    assert r.stdout == b"200", r


def test_http_ports_error_names_the_line(make_sg):
    d = make_sg({"proxy": {"http_ports": "80, smtp"}}, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode != 0
    assert b"http_ports = smtp: expected a port 1-65535 or a range LOW-HIGH" in r.stdout + r.stderr


# --- Max-Forwards: 0 (RFC 9110 7.6.2) -------------------------------------------------------

def test_options_with_max_forwards_0_is_answered_by_the_proxy(sg, env, origin):
    t0 = time.time()
    tok = token()
    before = origin.snapshot()
    resp = _send(sg, ("OPTIONS http://127.0.0.1:%d/o/%s HTTP/1.1\r\nHost: x\r\n"
                      "Max-Forwards: 0\r\n\r\n" % (env.py_port, tok)).encode(), method="OPTIONS")
    assert resp.status == 200, resp
    allow = [m.strip() for m in resp.header("Allow").split(",")]
    assert {"GET", "POST", "OPTIONS", "TRACE", "CONNECT"} <= set(allow), allow
    assert resp.body == b""
    e = sg.wait_log(since=t0, ev="request", path="/o/" + tok)
    assert (e["method"], e["status"], e["action"]) == ("OPTIONS", "200", "allow"), e.raw
    time.sleep(0.3)
    assert origin.snapshot()[1] == before[1], "the OPTIONS reached the origin"


def test_trace_with_max_forwards_0_echoes_without_credentials(sg, env, origin):
    tok = token()
    before = origin.snapshot()
    head = ("TRACE http://127.0.0.1:%d/t/%s HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n"
            "Cookie: session=SECRET1\r\nAuthorization: Basic U0VDUkVUMjp4\r\n"
            "Proxy-Authorization: Basic U0VDUkVUMzp4\r\nX-Trace-Me: %s\r\n\r\n" % (env.py_port, tok, tok))
    resp = _send(sg, head.encode(), method="TRACE")
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "message/http"
    assert resp.body.startswith(("TRACE http://127.0.0.1:%d/t/%s HTTP/1.1\r\n" % (env.py_port, tok)).encode())
    assert ("X-Trace-Me: %s\r\n" % tok).encode() in resp.body
    assert resp.body.endswith(b"\r\n\r\n")
    for secret in (b"SECRET1", b"U0VDUkVUMjp4", b"U0VDUkVUMzp4", b"Cookie", b"Authorization"):
        assert secret not in resp.body, resp.body
    time.sleep(0.3)
    assert origin.snapshot()[1] == before[1], "the TRACE reached the origin"


def test_max_forwards_decremented_on_the_way(sg, env):
    resp = _send(sg, ("TRACE http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\n"
                      "Max-Forwards: 3\r\n\r\n" % env.py_port).encode(), method="TRACE")
    got = _origin_json(resp)
    assert got["method"] == "TRACE"
    assert [v for k, v in got["headers"] if k.lower() == "max-forwards"] == ["2"], got


def test_max_forwards_0_to_a_denied_host_gets_the_deny_page(make_sg, env, origin):
    """Answered here only once the decision allows: a denied host is denied as always."""
    d = make_sg(start=False)
    write_rules(d, CATALOG + "\n[rule no-social]\ncategories = social\naction = deny\n"
                "message = Not here.\n")
    d.start()
    t0 = time.time()
    tok = token()
    resp = _send(d, ("OPTIONS http://www.facebook.com:%d/f/%s HTTP/1.1\r\nHost: x\r\n"
                     "Max-Forwards: 0\r\n\r\n" % (env.py_port, tok)).encode(), method="OPTIONS")
    assert resp.status == 403 and b"Not here." in resp.body, resp
    e = d.wait_log(since=t0, path="/f/" + tok)
    assert (e["method"], e["rule"], e["action"], e["status"]) == \
        ("OPTIONS", "no-social", "deny", "403"), e.raw


# --- upgrades -------------------------------------------------------------------------------

def test_h2c_upgrade_is_not_forwarded(sg, env):
    resp = _send(sg, ("GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\n"
                      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n" % env.py_port).encode())
    got = _origin_json(resp)
    names = [k.lower() for k, v in got["headers"]]
    assert "upgrade" not in names and "http2-settings" not in names, got
    assert not any("upgrade" in v.lower() for k, v in got["headers"] if k.lower() == "connection"), got


def test_websocket_upgrade_still_passes(sg, env):
    with Conn("127.0.0.1", sg.port, timeout=6.0) as c:
        c.send(("GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % env.py_port).encode())
        resp = c.read_response()
        assert resp.status == 101, resp
        assert resp.header("Upgrade").lower() == "websocket"


# --- the target sent upstream ---------------------------------------------------------------

def test_empty_path_with_a_query_goes_as_slash_query(sg, env):
    tok = token()
    resp = _send(sg, ("GET http://127.0.0.1:%d?x=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % (env.py_port, tok)).encode())
    assert resp.status == 200, resp
    assert resp.body == ("path=/?x=%s\n" % tok).encode()


# --- htpasswd user names with spaces --------------------------------------------------------

def test_htpasswd_user_with_a_space_signs_in(make_sg, env):
    d = make_sg(start=False)
    pw = d.dir / "users.htpasswd"
    make_htpasswd(pw, {"jane doe": "s3cret", "bob": "pw"})
    groups = d.dir / "users.groups"
    groups.write_text("staff: bob jane doe\n")
    d.cfg.setdefault("auth", {}).update({"htpasswd": str(pw), "groups": str(groups), "required": "yes"})
    from sgtest import render_config
    d.config.write_text(render_config(d.cfg))
    # -t: fine, with a warning where the group file tries to list her
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    assert "%s:1: warning: group 'staff': the user 'jane doe' cannot be listed in a group file" % groups \
        in out, out
    d.start()
    t0 = time.time()
    tok = token()
    r = curl("-s", "-x", d.proxy, "--proxy-user", "jane doe:s3cret", "-o", "/dev/null",
             "-w", "%{http_code}", "http://127.0.0.1:%d/j/%s" % (env.py_port, tok))
    assert r.stdout == b"200", r
    raw = d.wait_log(since=t0, path="/j/" + tok).raw
    assert ' user="jane\\x20doe" ' in raw, raw
