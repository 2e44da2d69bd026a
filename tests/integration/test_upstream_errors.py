"""Upstream failures: DNS, refused and hanging connects, silent or broken origins, aborts."""

import select
import socket
import struct
import time

import pytest

from rawhttp import first_status
from sgtest import curl, token


def curl_status(sg, url, timeout=15, extra=()):
    """(http status, curl exit code, seconds, body) for a GET through sg."""
    t0 = time.monotonic()
    r = curl("-x", sg.proxy, *extra, "-w", "\n%{http_code}", url, timeout=timeout)
    elapsed = time.monotonic() - t0
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), r.returncode, elapsed, body


def assert_html_error_and_close(sg, url, status):
    with sg.conn(timeout=10) as c:
        c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url)
        resp = c.read_response()
        assert resp.status == status
        assert b"<html" in resp.body.lower(), "error page is not HTML: %r" % resp.body[:200]
        assert c.is_closed(3), "error responses must close the connection"


def test_unresolvable_host_502_quickly(sg, env):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://nonexistent.invalid/x/%s" % tok)
    assert code == 502, (code, rc, body[:200])
    assert elapsed < 2, "took %.2fs" % elapsed
    e = sg.wait_log(ev="request", path="/x/" + tok)
    assert e["status"] == "502" and e["host"] == "nonexistent.invalid"
    assert e["reason"] == "dns-failed", e.raw
    assert b"The name nonexistent.invalid does not exist." in body, body
    assert b"nodename" not in body and b"servname" not in body, body
    assert_html_error_and_close(sg, "http://nonexistent.invalid/y", 502)


def test_refused_port_502_at_once(sg, env):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://127.0.0.1:%d/x/%s" % (env.dead_port, tok))
    assert code == 502, (code, rc, body[:200])
    assert elapsed < 1, "took %.2fs" % elapsed
    e = sg.wait_log(ev="request", path="/x/" + tok)
    assert e["status"] == "502" and e["port"] == str(env.dead_port)
    assert e["reason"] == "connect-failed", e.raw
    assert b"127.0.0.1 refused the connection on port %d." % env.dead_port in body, body
    assert_html_error_and_close(sg, "http://127.0.0.1:%d/y" % env.dead_port, 502)


@pytest.fixture
def hanging_listener():
    """A listener whose accept queue is full, so that new connects never complete."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(16):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
            _, w, _ = select.select([], [s], [], 0.3)
            if not w:
                break
        else:
            pytest.skip("could not fill the accept queue on this kernel")
        yield port
    finally:
        for s in fillers:
            s.close()
        lst.close()


def test_connect_timeout_504(sg, env, hanging_listener):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://127.0.0.1:%d/x/%s" % (hanging_listener, tok))
    assert code == 504, (code, rc, body[:200])
    assert 1.5 <= elapsed < 5, "connect_timeout = 2s, took %.2fs" % elapsed
    e = sg.wait_log(ev="request", path="/x/" + tok)
    assert e["status"] == "504"
    assert e["reason"] == "connect-timeout", e.raw
    assert b"127.0.0.1 did not answer in 2 s." in body, body


def test_silent_origin_504_after_idle_timeout(make_sg, env):
    d = make_sg({"limits": {"idle_timeout": "2s"}})
    tok = token()
    code, rc, elapsed, body = curl_status(d, "http://127.0.0.1:%d/silent/%s" % (env.py_port, tok))
    assert code == 504, (code, rc, body[:200])
    assert 1.5 <= elapsed < 6, "idle_timeout = 2s, took %.2fs" % elapsed
    assert b"<html" in body.lower()
    e = d.wait_log(ev="request", path="/silent/" + tok)
    assert e["status"] == "504"
    assert e.int("ms") >= 1500, "ms=%s for a 2 s timeout" % e["ms"]


def test_origin_without_status_line_502(sg, env):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://127.0.0.1:%d/garbage/%s" % (env.py_port, tok))
    assert code == 502, (code, rc, body[:200])
    assert b"not an HTTP response" not in body, "origin garbage leaked to the client"
    e = sg.wait_log(ev="request", path="/garbage/" + tok)
    assert e["status"] == "502"


def test_origin_closes_mid_body(sg, env):
    tok = token()
    r = curl("-x", sg.proxy, "-o", "-", "http://127.0.0.1:%d/closemid/%s" % (env.py_port, tok), timeout=15)
    assert r.returncode == 18, "curl exit %d (18 = partial file); stderr %r" % (r.returncode, r.stderr)
    assert len(r.stdout) == 1000
    e = sg.wait_log(ev="request", path="/closemid/" + tok)
    assert e["status"] == "200"
    assert e.int("down") < 1000000
    code, _, _, _ = curl_status(sg, "http://127.0.0.1:%d/u/after-closemid" % env.nginx_http)
    assert code == 200


def test_204_with_stray_body_bytes(sg, env):
    """Bytes after a 204 belong to no message: never forwarded, never taken as the next response."""
    tok = token()
    with sg.conn(timeout=5) as c:
        c.send("GET http://127.0.0.1:%d/204body/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        r1 = c.read_response()
        assert r1.status == 204
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.body == ("path=/p/%s\n" % tok).encode()
        assert b"EXTRA" not in c.buf
    e = sg.wait_log(ev="request", path="/204body/" + tok)
    assert e["status"] == "204"


def test_client_aborts_mid_download(sg, env):
    tok = token()
    c = sg.conn(timeout=5)
    c.send("GET http://127.0.0.1:%d/bigu/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.nginx_http, tok))
    head = c.read_head()
    assert head[1] == 200
    n = len(c.buf)
    while n < 4 * 1024 * 1024:
        data = c.sock.recv(256 * 1024)
        assert data
        n += len(data)
    # abortive close (RST)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    e = sg.wait_log(ev="request", path="/bigu/" + tok, timeout=8)
    assert e["status"] == "200"
    assert e.int("down") < env.big_size
    code, _, _, _ = curl_status(sg, "http://127.0.0.1:%d/u/after-abort" % env.nginx_http)
    assert code == 200


def test_many_concurrent_errors_do_not_hurt(sg, env):
    """A burst of refused upstream connects, interleaved with good requests."""
    conns = []
    try:
        for i in range(50):
            c = sg.conn(timeout=5)
            c.send("GET http://127.0.0.1:%d/burst/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (env.dead_port, i))
            conns.append(c)
        for c in conns:
            assert first_status(c.read_all(timeout=5)) == 502
    finally:
        for c in conns:
            c.close()
    code, _, _, _ = curl_status(sg, "http://127.0.0.1:%d/u/after-burst" % env.nginx_http)
    assert code == 200


def test_nameservers_setting_is_used(sg, env):
    tok = token()
    name = "nohost-%s.example.test" % tok
    code, rc, elapsed, body = curl_status(sg, "http://%s/x" % name)
    assert code == 502
    assert elapsed < 2
    assert any(q and q.lower() == name for q in env.dns.queries), \
        "the DNS stub given in [dns] nameservers was never asked for %s" % name


def test_origin_response_head_too_large_502(sg, env):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://127.0.0.1:%d/bighead/%s" % (env.py_port, tok))
    assert code == 502, (code, rc, body[:200])
    e = sg.wait_log(ev="request", path="/bighead/" + tok)
    assert e["status"] == "502"


def test_origin_bad_content_length_502(sg, env):
    tok = token()
    code, rc, elapsed, body = curl_status(sg, "http://127.0.0.1:%d/resp-bad-cl/%s" % (env.py_port, tok))
    assert code == 502, (code, rc, body[:200])
    sg.wait_log(ev="request", path="/resp-bad-cl/" + tok, status="502")


def test_origin_response_with_cl_and_te_does_not_desync(sg, env):
    """A response with both framings: 502, or the chunked body; never a desynchronised connection."""
    tok = token()
    with sg.conn(timeout=5) as c:
        c.send("GET http://127.0.0.1:%d/resp-cl-te/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        r1 = c.read_response()
        assert (r1.status, r1.body) in ((200, b"hello"), (502, r1.body)), r1
        if r1.status == 502 or c.is_closed(0.3):
            return
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        try:
            r2 = c.read_response()
        except Exception as ex:  # closed by the proxy: acceptable
            assert c.eof, ex
            return
        assert r2.status == 200 and r2.body == ("path=/p/%s\n" % tok).encode(), r2


def test_idle_tunnel_closed_after_idle_timeout(make_sg, env):
    d = make_sg({"limits": {"idle_timeout": "2s"}})
    t0 = time.time()
    with d.conn(timeout=10) as c:
        port = c.local_port
        c.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % env.py_port)
        assert c.read_head()[1] == 200
        t1 = time.monotonic()
        c.read_all(timeout=8)
        waited = time.monotonic() - t1
        assert c.eof, "idle tunnel still open after 8 s (idle_timeout = 2s)"
        assert 1.5 <= waited < 5, "closed after %.1fs" % waited
    e = d.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=t0)
    assert e["status"] == "200"


def test_idle_keepalive_client_closed_after_idle_timeout(make_sg, env):
    d = make_sg({"limits": {"idle_timeout": "2s"}})
    with d.conn(timeout=10) as c:
        c.send("GET http://127.0.0.1:%d/u/idle HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
        assert c.read_response().status == 200
        t1 = time.monotonic()
        c.read_all(timeout=8)
        assert c.eof, "idle keep-alive connection still open after 8 s (idle_timeout = 2s)"
        assert time.monotonic() - t1 < 5
