"""Raw-socket requests that curl would never send: framing errors, smuggling, slowloris.

Every malformed request must get its error status, the connection must be
closed after it, and the origin must not have received the request.
"""

import socket
import time

import pytest

from rawhttp import first_status
from sgtest import exchange, origin_quiet_since, token


def _req(env, head_lines, body=b"", method="POST", target=None, version="HTTP/1.1", eol="\r\n"):
    target = target or "http://127.0.0.1:%d/m/%s" % (env.py_port, token())
    lines = ["%s %s %s" % (method, target, version), "Host: 127.0.0.1:%d" % env.py_port] + head_lines
    return (eol.join(lines) + eol + eol).encode("latin-1") + body


# (id, builder(env) -> bytes, accepted statuses, level)
# level "head": the origin must receive no bytes at all;
# level "body": the head may have been forwarded, but no complete request may reach the origin.
CASES = [
    ("cl_and_te", lambda e: _req(e, ["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n"),
     {400}, "head"),
    ("two_different_cl", lambda e: _req(e, ["Content-Length: 5", "Content-Length: 6"], b"hello!"),
     {400}, "head"),
    ("cl_plus_sign", lambda e: _req(e, ["Content-Length: +5"], b"hello"), {400}, "head"),
    ("cl_negative", lambda e: _req(e, ["Content-Length: -1"], b"hello"), {400}, "head"),
    ("cl_hex", lambda e: _req(e, ["Content-Length: 0x5"], b"hello"), {400}, "head"),
    ("cl_overflow", lambda e: _req(e, ["Content-Length: 99999999999999999999999"], b"hello"),
     {400, 413}, "head"),
    ("te_xchunked", lambda e: _req(e, ["Transfer-Encoding: xchunked"], b"0\r\n\r\n"), {400, 501}, "head"),
    ("te_chunked_identity", lambda e: _req(e, ["Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"),
     {400}, "head"),
    ("bad_chunk_size", lambda e: _req(e, ["Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"),
     {400}, "body"),
    ("chunk_size_overflow",
     lambda e: _req(e, ["Transfer-Encoding: chunked"], b"fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
     {400}, "body"),
    ("obs_fold", lambda e: _req(e, ["X-A: 1", " continued"], method="GET"), {400}, "head"),
    ("bare_cr_in_header", lambda e: _req(e, ["X-A: a\rb"], method="GET"), {400}, "head"),
    ("nul_in_header", lambda e: _req(e, ["X-A: a\x00b"], method="GET"), {400}, "head"),
    ("header_without_colon", lambda e: _req(e, ["X-NoColon"], method="GET"), {400}, "head"),
    ("space_before_colon", lambda e: _req(e, ["X-A : 1"], method="GET"), {400}, "head"),
    ("two_spaces_in_request_line",
     lambda e: ("GET  http://127.0.0.1:%d/m/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (e.py_port, token())).encode(),
     {400}, "head"),
    ("lf_only_line_endings", lambda e: _req(e, [], method="GET", eol="\n"), {400}, "head"),
    ("request_line_too_long",
     lambda e: _req(e, [], method="GET", target="http://127.0.0.1:%d/%s" % (e.py_port, "a" * 9000)),
     {414}, "head"),
    ("headers_too_large",
     lambda e: _req(e, ["X-Pad-%03d: %s" % (i, "p" * 700) for i in range(100)], method="GET"),
     {431}, "head"),
    ("http_2_0_version", lambda e: _req(e, [], method="GET", version="HTTP/2.0"), {505}, "head"),
    ("ftp_scheme", lambda e: _req(e, [], method="GET", target="ftp://127.0.0.1:%d/x" % e.py_port),
     {400}, "head"),
    ("https_absolute_in_get",
     lambda e: _req(e, [], method="GET", target="https://127.0.0.1:%d/" % e.py_port), {400}, "head"),
    ("userinfo_in_url",
     lambda e: _req(e, [], method="GET", target="http://a@127.0.0.1:%d/m" % e.py_port), {400}, "head"),
    ("two_host_headers", lambda e: _req(e, ["Host: other.example"], method="GET"), {400}, "head"),
    ("space_in_target",
     lambda e: ("GET http://127.0.0.1:%d/a b HTTP/1.1\r\nHost: x\r\n\r\n" % e.py_port).encode(), {400}, "head"),
    ("bad_method_chars",
     lambda e: ("GE(T http://127.0.0.1:%d/m HTTP/1.1\r\nHost: x\r\n\r\n" % e.py_port).encode(), {400}, "head"),
    ("bad_header_name_chars", lambda e: _req(e, ["X(A: 1"], method="GET"), {400}, "head"),
    ("origin_form_without_host", lambda e: b"GET / HTTP/1.1\r\n\r\n", {400}, "head"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_request(sg, env, origin, case):
    name, build, statuses, level = case
    data = build(env)
    before = origin.snapshot()
    got, closed, _ = exchange(sg, data)
    status = first_status(got)
    assert status in statuses, "%s: expected %s, got %r" % (name, sorted(statuses), got[:300])
    assert closed, "%s: connection left open after %s" % (name, status)
    if level == "head":
        if not origin_quiet_since(origin, before):
            last = origin.find(lambda r: True)
            pytest.fail("%s: the origin received bytes: %r" % (name, last[-1].raw_head[:300] if last else b""))
    else:
        time.sleep(0.3)
        assert origin.snapshot()[2] == before[2], "%s: a complete request reached the origin" % name


@pytest.mark.parametrize("name", ["two_different_cl", "http_2_0_version", "request_line_too_long",
                                  "ftp_scheme"])
def test_malformed_request_is_logged(sg, env, name):
    build, statuses = {c[0]: (c[1], c[2]) for c in CASES}[name]
    t0 = time.time()
    got, _, port = exchange(sg, build(env))
    status = first_status(got)
    assert status in statuses
    e = sg.wait_log(client="127.0.0.1:%d" % port, since=t0)
    assert e["ev"] == "request"
    assert e["status"] == str(status)


SMUGGLE_SECOND = [
    ("cl_and_te", "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two_cl", "Content-Length: 0\r\nContent-Length: 44\r\n\r\n"),
    ("te_obfuscated", "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("second", SMUGGLE_SECOND, ids=[s[0] for s in SMUGGLE_SECOND])
def test_smuggling_via_pipelining(sg, env, origin, second):
    tok = token()
    py = env.py_port
    data = ("POST http://127.0.0.1:%d/s1/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n"
            "POST http://127.0.0.1:%d/s2/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
            "GET http://127.0.0.1:%d/s3/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
            % (py, tok, py, py, tok, py, second[1], py, tok, py)).encode()
    with sg.conn(timeout=6) as c:
        c.send_tolerant(data)
        r1 = c.read_response()
        assert r1.status == 200
        assert r1.body == ("path=/s1/%s\n" % tok).encode()
        rest = c.read_all(timeout=6)
        assert first_status(rest) == 400, "second request: expected 400, got %r" % rest[:300]
        assert c.eof, "connection left open after the 400"
    time.sleep(0.3)
    seen = origin.find(lambda r: tok in r.target)
    assert [r.target for r in seen] == ["/s1/%s" % tok], "origin saw %r" % [r.target for r in seen]


def test_slowloris_head_is_cut_by_header_timeout(sg, env, origin):
    """header_timeout = 3s bounds the whole head, not the gap between bytes."""
    tok = token()
    c = sg.conn(timeout=1)
    t0 = time.monotonic()
    closed_at = None
    got = b""
    try:
        c.send("GET http://127.0.0.1:%d/slow/%s HTTP/1.1\r\nHost: x\r\nX-Slow: " % (env.py_port, tok))
        c.sock.settimeout(0.4)
        while time.monotonic() - t0 < 12:
            try:
                c.sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            try:
                data = c.sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            got += data
            if not data:
                closed_at = time.monotonic() - t0
                break
        # collect anything still in flight
    finally:
        c.close()
    assert closed_at is not None, "connection still open after 12 s of a byte every 0.4 s"
    assert closed_at <= 3 + 2, "closed only after %.1fs (header_timeout = 3s)" % closed_at
    if got:
        assert first_status(got) == 408, got[:200]
    assert not origin.find(lambda r: tok in r.target)
