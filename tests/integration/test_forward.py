"""Plain HTTP forwarding through socialgate: real clients, framing, headers, upgrades."""

import hashlib
import json
import re
import socket
import subprocess
import time
import urllib.request

import pytest

from sgtest import CLEAN_ENV, MiB, REQUEST_FIELDS, TS_RE, curl, run, token


def split_curl_i(out):
    """Split `curl -i` output into (final status, headers list, body), skipping 1xx heads."""
    while True:
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
        if 100 <= status < 200 and status != 101:
            out = rest
            continue
        return status, headers, rest


def hget(headers, name):
    vals = [v for k, v in headers if k.lower() == name.lower()]
    return vals[0] if vals else None


VIA_RE = re.compile(r"^1\.[01] \S+ \(socialgate\)$")


def via_ok(value):
    """A Via value whose last element was added by socialgate."""
    return value is not None and VIA_RE.match(value.split(",")[-1].strip()) is not None


# ---------------------------------------------------------------------------------------------


def test_get_with_curl_and_log_line(sg, env):
    tok = token()
    url = "http://www.facebook.com:%d/u/%s?q=1" % (env.nginx_http, tok)
    r = curl("-i", "-x", sg.proxy, url, timeout=10)
    assert r.returncode == 0, r.stderr
    status, headers, body = split_curl_i(r.stdout)
    assert status == 200
    assert body == env.small_body
    assert via_ok(hget(headers, "Via")), "response Via header: %r" % hget(headers, "Via")

    e = sg.wait_log(ev="request", path="/u/" + tok)
    assert TS_RE.match(e.ts), "timestamp %r" % e.ts
    assert e.ts.endswith("+00:00"), "timezone = UTC must give +00:00: %r" % e.ts
    assert abs(e.epoch() - time.time()) < 60, "timestamp far from now: %r" % e.ts
    assert e.keys_in_order[: len(REQUEST_FIELDS)] == REQUEST_FIELDS, e.raw
    assert e["client"].startswith("127.0.0.1:"), e.raw
    assert e["user"] == "-"
    assert e["method"] == "GET"
    assert e["host"] == "www.facebook.com"
    assert e["port"] == str(env.nginx_http)
    assert e["path"] == "/u/" + tok, "path must be logged without the query string: " + e.raw
    assert e["sni"] == "-"
    assert e["status"] == "200"
    assert e.int("down") >= len(env.small_body)
    assert e.int("up") > 0
    assert e.int("ms") >= 0


def test_big_download_sha256(sg, env):
    tok = token()
    url = "http://127.0.0.1:%d/bigu/%s" % (env.nginx_http, tok)
    p = subprocess.Popen(["curl", "-sS", "--max-time", "90", "-x", sg.proxy, url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLEAN_ENV)
    h = hashlib.sha256()
    n = 0
    try:
        while True:
            chunk = p.stdout.read(MiB)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0, p.stderr.read()
    assert n == env.big_size
    assert h.hexdigest() == env.big_sha
    e = sg.wait_log(ev="request", path="/bigu/" + tok)
    assert e["status"] == "200"
    assert e.int("down") >= env.big_size


@pytest.mark.parametrize("mode", ["content-length", "chunked", "put"])
def test_big_upload_sha256(sg, env, mode):
    tok = token()
    url = "http://origin.test:%d/sha/%s" % (env.py_port, tok)
    args = ["-x", sg.proxy, "-H", "Content-Type: application/octet-stream"]
    if mode == "put":
        args += ["-T", env.post_path]
    else:
        args += ["--data-binary", "@%s" % env.post_path]
    if mode == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = curl(*args, url, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["length"] == env.post_size
    assert got["sha256"] == env.post_sha
    assert got["method"] == ("PUT" if mode == "put" else "POST")
    e = sg.wait_log(ev="request", path="/sha/" + tok)
    assert e["status"] == "200"
    assert e["method"] == got["method"]
    assert e["host"] == "origin.test"
    assert e.int("up") >= env.post_size


def test_keepalive_reuse_with_curl(sg, env):
    t1, t2 = token(), token()
    base = "http://127.0.0.1:%d/u/" % env.nginx_http
    r = curl("-v", "-x", sg.proxy, base + t1, base + t2, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == env.small_body * 2
    assert b"Re-using existing connection" in r.stderr, r.stderr.decode(errors="replace")
    e1 = sg.wait_log(ev="request", path="/u/" + t1)
    e2 = sg.wait_log(ev="request", path="/u/" + t2)
    assert e1["client"] == e2["client"], "both requests should come from the same client connection"


def test_keepalive_two_sequential_requests_raw(sg, env):
    tok = token()
    with sg.conn() as c:
        for i in range(2):
            c.send("GET http://127.0.0.1:%d/u/%s-%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % (env.nginx_http, tok, i, env.nginx_http))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == env.small_body
        port = c.local_port
    for i in range(2):
        e = sg.wait_log(ev="request", path="/u/%s-%d" % (tok, i))
        assert e["client"] == "127.0.0.1:%d" % port


def test_pipelining_three_requests_in_one_write(sg, env):
    tok = token()
    reqs = "".join("GET http://127.0.0.1:%d/p/%s-%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % (env.py_port, tok, i, env.py_port) for i in range(3))
    with sg.conn() as c:
        c.send(reqs)
        for i in range(3):
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == ("path=/p/%s-%d\n" % (tok, i)).encode()
    for i in range(3):
        sg.wait_log(ev="request", path="/p/%s-%d" % (tok, i), status="200")


def test_pipelining_get_head_get(sg, env):
    tok = token()
    h = env.nginx_http
    reqs = ("GET http://127.0.0.1:%d/u/%s-a HTTP/1.1\r\nHost: x\r\n\r\n"
            "HEAD http://127.0.0.1:%d/u/%s-b HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET http://127.0.0.1:%d/u/%s-c HTTP/1.1\r\nHost: x\r\n\r\n") % (h, tok, h, tok, h, tok)
    with sg.conn() as c:
        c.send(reqs)
        r1 = c.read_response("GET")
        r2 = c.read_response("HEAD")
        r3 = c.read_response("GET")
    assert (r1.status, r2.status, r3.status) == (200, 200, 200)
    assert r1.body == env.small_body and r3.body == env.small_body
    assert r2.header("Content-Length") == str(len(env.small_body))
    sg.wait_log(ev="request", method="HEAD", path="/u/%s-b" % tok, status="200")


def test_http10_client_curl(sg, env):
    tok = token()
    r = curl("-0", "-i", "-x", sg.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok), timeout=10)
    assert r.returncode == 0, r.stderr
    status, headers, body = split_curl_i(r.stdout)
    assert status == 200
    assert body == env.small_body
    sg.wait_log(ev="request", path="/u/" + tok, status="200", method="GET")


def test_http10_raw_without_host_closes_after_response(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.0\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == ("path=/p/%s\n" % tok).encode()
        assert c.is_closed(3), "an HTTP/1.0 request without keep-alive must end with a close"
    sg.wait_log(ev="request", path="/p/" + tok, status="200")


def test_head_with_curl(sg, env):
    tok = token()
    r = curl("-I", "-x", sg.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok), timeout=10)
    assert r.returncode == 0, r.stderr
    status, headers, body = split_curl_i(r.stdout)
    assert status == 200
    assert hget(headers, "Content-Length") == str(len(env.small_body))
    assert body == b""
    sg.wait_log(ev="request", method="HEAD", path="/u/" + tok, status="200")


def test_expect_100_continue(sg, env, tmp_path):
    tok = token()
    body = bytes(range(256)) * 8  # 2 KiB
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    t0 = time.monotonic()
    r = curl("-v", "-x", sg.proxy, "-H", "Expect: 100-continue", "--expect100-timeout", "5",
             "--data-binary", "@%s" % f, "http://127.0.0.1:%d/sha/%s" % (env.py_port, tok), timeout=15)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == hashlib.sha256(body).hexdigest()
    assert b"HTTP/1.1 100 Continue" in r.stderr, "the client never got a 100 Continue"
    assert elapsed < 3, "curl waited for its expect timeout (%.1fs): no 100 Continue relayed" % elapsed
    sg.wait_log(ev="request", method="POST", path="/sha/" + tok, status="200")


def test_wget(sg, env, tmp_path):
    tok = token()
    out = tmp_path / "out"
    r = run(["wget", "-q", "-O", str(out), "-T", "10", "-t", "1", "-e", "use_proxy=yes",
             "-e", "http_proxy=127.0.0.1:%d" % sg.port,
             "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, tok)], timeout=20)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == env.small_body
    e = sg.wait_log(ev="request", path="/u/" + tok)
    assert e["host"] == "www.linkedin.com" and e["status"] == "200"


def test_python_urllib(sg, env):
    tok = token()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sg.proxy}))
    with opener.open("http://intranet.example.test:%d/u/%s" % (env.nginx_http, tok), timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == env.small_body
    e = sg.wait_log(ev="request", path="/u/" + tok)
    assert e["host"] == "intranet.example.test" and e["status"] == "200"


def test_hop_by_hop_request_headers_removed(sg, env):
    tok = token()
    req = ("GET http://127.0.0.1:%d/headers/%s HTTP/1.1\r\n"
           "Host: 127.0.0.1:%d\r\n"
           "Connection: X-Foo, keep-alive\r\n"
           "X-Foo: 1\r\n"
           "Keep-Alive: 5\r\n"
           "Proxy-Connection: keep-alive\r\n"
           "Proxy-Authorization: Basic eA==\r\n"
           "TE: trailers\r\n"
           "Trailer: X-Checksum\r\n"
           "Upgrade: h2c\r\n"
           "X-End-To-End: kept\r\n"
           "\r\n") % (env.py_port, tok, env.py_port)
    with sg.conn() as c:
        c.send(req)
        resp = c.read_response()
    assert resp.status == 200
    got = json.loads(resp.body)
    names = [k.lower() for k, _ in got["headers"]]
    for banned in ("x-foo", "keep-alive", "proxy-connection", "proxy-authorization", "te",
                   "trailer", "upgrade"):
        assert banned not in names, "origin received hop-by-hop header %s: %r" % (banned, got["headers"])
    for k, v in got["headers"]:
        if k.lower() == "connection":
            toks = [t.strip().lower() for t in v.split(",")]
            assert "x-foo" not in toks and "upgrade" not in toks, "Connection forwarded as %r" % v
    assert ["X-End-To-End", "kept"] in got["headers"]
    vias = [v for k, v in got["headers"] if k.lower() == "via"]
    assert len(vias) == 1 and via_ok(vias[0]), "request Via: %r" % vias
    sg.wait_log(ev="request", path="/headers/" + tok, status="200")


def test_hop_by_hop_response_headers_removed(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/hop-response/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"hop\n"
    assert resp.header("X-Resp-Hop") is None, resp.headers
    assert resp.header("Keep-Alive") is None, resp.headers
    assert not resp.has_token("Connection", "x-resp-hop"), resp.headers
    assert resp.header("X-End-To-End") == "kept"
    assert via_ok(resp.header("Via")), resp.headers


def test_absolute_form_rewritten_to_origin_form(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://origin.test:%d/headers/%s?a=1&b=2 HTTP/1.1\r\n"
               "Host: wrong.example\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
    assert resp.status == 200
    got = json.loads(resp.body)
    assert got["target"] == "/headers/%s?a=1&b=2" % tok
    hosts = [v for k, v in got["headers"] if k.lower() == "host"]
    assert hosts == ["origin.test:%d" % env.py_port], "origin saw Host %r" % hosts
    e = sg.wait_log(ev="request", path="/headers/" + tok)
    assert e["host"] == "origin.test" and e["port"] == str(env.py_port)


def test_interim_1xx_then_200(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/1xx/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"final after 1xx\n"
        # the connection stays usable
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        assert c.read_response().status == 200
    sg.wait_log(ev="request", path="/1xx/" + tok, status="200")


def test_close_delimited_response(sg, env):
    tok = token()
    r = curl("-x", sg.proxy, "http://127.0.0.1:%d/close-delimited/%s" % (env.py_port, tok), timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"c" * 50000 + b"END\n"
    sg.wait_log(ev="request", path="/close-delimited/" + tok, status="200")


def test_chunked_response_with_trailer(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/chunked-response/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"hello world\n"
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        assert c.read_response().body == ("path=/p/%s\n" % tok).encode()
    sg.wait_log(ev="request", path="/chunked-response/" + tok, status="200")


def test_websocket_upgrade_echo(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/ws/%s HTTP/1.1\r\n"
               "Host: 127.0.0.1:%d\r\n"
               "Connection: Upgrade\r\n"
               "Upgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (env.py_port, tok, env.py_port))
        resp = c.read_response()
        assert resp.status == 101, resp
        assert resp.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert (resp.header("Upgrade") or "").lower() == "websocket"
        for msg in (b"\x81\x05hello", b"x" * 100000):
            c.send(msg)
            got = b""
            deadline = time.monotonic() + 5
            while len(got) < len(msg) and time.monotonic() < deadline:
                got += c.sock.recv(65536)
            assert got == msg
    # logged as a request or as a tunnel: either is a fair reading of the contract
    e = sg.wait_log(path="/ws/" + tok, status="101")
    assert e["method"] == "GET" and e["ev"] in ("request", "tunnel")


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_slow_reader_memory_stays_bounded(sg, env):
    """A client that stops reading must not make the daemon buffer the whole 200 MiB."""
    tok = token()
    before = _rss_kib(sg.proc.pid)
    with sg.conn() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send("GET http://127.0.0.1:%d/bigu/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.nginx_http, tok))
        head = c.read_head()
        assert head[1] == 200
        time.sleep(3)
        grown = _rss_kib(sg.proc.pid) - before
        assert grown < 64 * 1024, "daemon RSS grew by %d KiB while the client did not read" % grown
    sg.wait_log(ev="request", path="/bigu/" + tok)


def test_scheme_is_case_insensitive(sg, env):
    tok = token()
    with sg.conn() as c:
        c.send("GET HTTP://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == ("path=/p/%s\n" % tok).encode()


def test_chunked_request_with_extensions_trailers_and_case(sg, env):
    """'Transfer-Encoding: Chunked' (any case), chunk extensions and a trailer section."""
    tok = token()
    body = b"hello, " + b"w" * 5000 + b"!"
    chunks = (b"7;name=value\r\n" + body[:7] + b"\r\n"
              + b"%x\r\n" % (len(body) - 7) + body[7:] + b"\r\n"
              + b"0\r\nX-Checksum: abc\r\n\r\n")
    with sg.conn() as c:
        c.send(("POST http://127.0.0.1:%d/sha/%s HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: Chunked\r\n\r\n" % (env.py_port, tok)).encode() + chunks)
        resp = c.read_response()
        assert resp.status == 200, resp
        got = json.loads(resp.body)
        assert got["length"] == len(body)
        assert got["sha256"] == hashlib.sha256(body).hexdigest()
        # the connection is still in sync afterwards
        c.send("GET http://127.0.0.1:%d/p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
        assert c.read_response().body == ("path=/p/%s\n" % tok).encode()
    sg.wait_log(ev="request", method="POST", path="/sha/" + tok, status="200")


def test_concurrent_clients(sg, env):
    """100 clients at once, each with two keep-alive requests to nginx and the python origin."""
    from concurrent.futures import ThreadPoolExecutor

    tok = token()

    def one(i):
        with sg.conn(timeout=15) as c:
            c.send("GET http://127.0.0.1:%d/u/%s-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (env.nginx_http, tok, i))
            r1 = c.read_response()
            c.send("GET http://127.0.0.1:%d/p/%s-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok, i))
            r2 = c.read_response()
            return (r1.status, r1.body == env.small_body, r2.status, r2.body == ("path=/p/%s-%d\n" % (tok, i)).encode())

    with ThreadPoolExecutor(max_workers=100) as ex:
        results = list(ex.map(one, range(100)))
    bad = [(i, r) for i, r in enumerate(results) if r != (200, True, 200, True)]
    assert not bad, bad[:5]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        n = sum(1 for e in sg.entries() if tok in e.get("path", ""))
        if n == 200:
            break
        time.sleep(0.2)
    assert n == 200, "expected 200 usage-log lines, found %d" % n


def test_obs_text_header_value_is_forwarded(sg, env):
    """Bytes 0x80-0xFF are allowed in field values (obs-text) and must pass through."""
    tok = token()
    with sg.conn() as c:
        c.send(b"GET http://127.0.0.1:%d/headers/%s HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9 cr\xe8me\r\n\r\n"
               % (env.py_port, tok.encode()))
        resp = c.read_response()
    assert resp.status == 200
    got = json.loads(resp.body)
    assert ["X-Latin", "caf\u00e9 cr\u00e8me"] in got["headers"]


def test_large_head_under_the_limit_is_accepted(sg, env):
    """40 KB of request header fields is under max_header_bytes = 65536."""
    tok = token()
    pad = "".join("X-Pad-%02d: %s\r\n" % (i, "q" * 1000) for i in range(40))
    with sg.conn() as c:
        c.send("GET http://127.0.0.1:%d/headers/%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (env.py_port, tok, pad))
        resp = c.read_response()
    assert resp.status == 200
    got = json.loads(resp.body)
    assert sum(1 for k, _ in got["headers"] if k.startswith("X-Pad-")) == 40


def test_fifty_pipelined_requests(sg, env):
    tok = token()
    reqs = "".join("GET http://127.0.0.1:%d/u/%s-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (env.nginx_http, tok, i)
                   for i in range(50))
    with sg.conn(timeout=10) as c:
        c.send(reqs)
        for i in range(50):
            resp = c.read_response()
            assert resp.status == 200 and resp.body == env.small_body, (i, resp)
    sg.wait_log(ev="request", path="/u/%s-49" % tok, status="200")


def test_host_name_case_insensitive(sg, env):
    tok = token()
    r = curl("-x", sg.proxy, "http://WWW.Facebook.COM:%d/u/%s" % (env.nginx_http, tok), timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == env.small_body


def test_upload_to_stalled_origin_memory_stays_bounded(sg, env):
    """An origin that does not read the body must make the daemon stop reading the client."""
    tok = token()
    before = _rss_kib(sg.proc.pid)
    with sg.conn() as c:
        c.send("POST http://127.0.0.1:%d/stall/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % (env.py_port, tok, 400 * MiB))
        c.sock.setblocking(False)
        block = b"u" * (256 * 1024)
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < 400 * MiB:
            try:
                sent += c.sock.send(block)
            except BlockingIOError:
                time.sleep(0.01)
        grown = _rss_kib(sg.proc.pid) - before
        assert sent < 200 * MiB, "the daemon accepted %d MiB for an origin that reads nothing" % (sent // MiB)
        assert grown < 64 * 1024, "daemon RSS grew by %d KiB (%d MiB sent)" % (grown, sent // MiB)
