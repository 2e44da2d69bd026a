"""A pool of gateways behind the real HAProxy: three socialgate processes behind
/usr/sbin/haproxy in TCP mode with send-proxy-v2 (its configuration made from
contrib/haproxy/haproxy.cfg), round robin, health checks on /healthz of each admin
endpoint. Requests through HAProxy are logged with the real client address
(127.0.0.2, 127.0.0.3: curl --interface) and roles by network see it; a gateway
killed mid-test is taken out and requests keep succeeding. PROXY protocol v1 and v2
from raw sockets: happy paths, a header from an address not in proxy_protocol, a
balancer without a header, malformed headers. /wpad.dat and PAC failover.

The HTTPS proxy port behind the same HAProxy configuration: the header comes
first in plain bytes, then the client's TLS handshake with the gateway (curl
--proxy https://, and raw sockets with the header and the ClientHello in one
write); a malformed header there is answered 400 in plain text; a header from
an address not in proxy_protocol is fed to TLS, which fails with a log line.
The PAC of a gateway with an HTTPS port lists every HTTPS entry first."""

import re
import signal
import socket
import ssl
import struct
import time

import pytest

from poolkit import start_haproxy, wait_stat
from sgtest import (
    BIN, SocialGate, curl, free_port, http_get, kill_group, make_htpasswd, run,
    token, wait_port, write_rules,
)
from test_tls_port import port_files

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"

RULES = """\
[platform workbook]
category = social
domains = linkedin.com

[role office]
networks = 127.0.0.2/32

[rule office-workbook]
roles = office
platforms = workbook
action = allow

[rule no-social]
categories = social
action = deny
"""


@pytest.fixture(scope="module")
def pool(env, tmp_path_factory):
    if not BIN.exists():
        pytest.fail("socialgate binary not found at %s" % BIN)
    tmp = tmp_path_factory.mktemp("pool")
    gws = []
    hp = None
    try:
        for i in range(3):
            aport = free_port()
            d = SocialGate(env, "pool%d" % (i + 1), overrides={
                "proxy": {"proxy_protocol": "127.0.0.1/32"},
                "admin": {"listen": "127.0.0.1:%d" % aport,
                          "pac_proxy": "gw1.test:3128, gw2.test:3128,\n    gw3.test:3128"}})
            d.admin_port = aport
            write_rules(d, RULES)
            gws.append(d)
            d.start()
            assert wait_port("127.0.0.1", aport, 10, d.proc)
        hp, port, sock = start_haproxy(tmp, [("gw%d" % (i + 1), d.port, d.admin_port)
                                             for i, d in enumerate(gws)])
        yield {"gws": gws, "port": port, "sock": sock, "proc": hp}
    finally:
        kill_group(hp)
        for d in gws:
            d.kill()


def through(pool, source, url):
    """curl from the source address through HAProxy: (status code, body)."""
    r = curl("--interface", source, "-x", "http://127.0.0.1:%d" % pool["port"], "-w", "\n%{http_code}",
             url, timeout=10)
    body, _, code = r.stdout.rpartition(b"\n")
    return code.decode(), body


def raw(d, data, source="127.0.0.1", timeout=5.0):
    """Sends data to gateway d from `source` and reads until it closes."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", d.port))
    s.sendall(data)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            got += b
            head, sep, body = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                break  # the whole answer (the socket may linger open a while)
    except socket.timeout:
        pass
    s.close()
    return got


def v2_inet(src, dst, sport, dport, tlvs=b"", cmd=0x21):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport) + tlvs
    return V2SIG + bytes([cmd, 0x11]) + struct.pack(">H", len(body)) + body


def new_stderr(d, start):
    with open(d.stderr_path, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def ip(e):
    """The client field's address (the log writes address:port)."""
    return e["client"].rsplit(":", 1)[0]


def get_req(env, path):
    """A keep-alive request: its log line is written when its answer is (raw() reads
    the answer and closes)."""
    return ("GET http://www.linkedin.com:%d%s HTTP/1.1\r\nHost: www.linkedin.com:%d\r\n\r\n"
            % (env.nginx_http, path, env.nginx_http)).encode()


def test_roundrobin_real_client_and_roles(pool, env):
    paths = []
    for i in range(6):
        tok = "/u/rr-%s" % token()
        code, _ = through(pool, "127.0.0.2", "http://www.linkedin.com:%d%s" % (env.nginx_http, tok))
        assert code == "200", (i, code)  # the office role by network: allowed
        paths.append(tok)
    deadline = time.monotonic() + 5
    while True:  # the log is written by the worker after the answer
        lines = [[e for e in d.entries() if e.get("path") in paths] for d in pool["gws"]]
        if sum(map(len, lines)) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    seen = [len(x) for x in lines]
    for e in sum(lines, []):
        assert ip(e) == "127.0.0.2", e.raw
        assert e["roles"] == "office" and e["rule"] == "office-workbook", e.raw
    assert seen == [2, 2, 2], "round robin: %s" % seen

    # another client address, no role: denied by the same rules
    tok = "/u/deny-%s" % token()
    code, _ = through(pool, "127.0.0.3", "http://www.linkedin.com:%d%s" % (env.nginx_http, tok))
    assert code == "403"
    e = None
    deadline = time.monotonic() + 5
    while e is None and time.monotonic() < deadline:
        for d in pool["gws"]:
            e = next((x for x in d.entries() if x.get("path") == tok), None) or e
        time.sleep(0.05)
    assert e is not None and ip(e) == "127.0.0.3" and e["rule"] == "no-social", e


def test_v1_and_v2_from_raw_sockets(pool, env):
    d = pool["gws"][0]
    t0 = time.time()
    v1, v2, local = ("/u/%s-%s" % (k, token()) for k in ("v1", "v2", "local"))
    got = raw(d, b"PROXY TCP4 127.0.0.2 127.0.0.1 40001 3128\r\n" + get_req(env, v1))
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    tlvs = b"\x02\x00\x04gw.x" + b"\x04\x00\x03\x00\x00\x00"  # AUTHORITY and NOOP, skipped
    got = raw(d, v2_inet("127.0.0.2", "127.0.0.1", 40002, 3128, tlvs) + get_req(env, v2))
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    # LOCAL (a balancer's own check): the balancer's address stays the client's
    got = raw(d, V2SIG + b"\x20\x00\x00\x00" + get_req(env, local))
    assert got.startswith(b"HTTP/1.1 403"), got[:200]  # 127.0.0.1 has no role: no-social
    # the address from the header is what `clients` checks
    got = raw(d, v2_inet("192.0.2.7", "127.0.0.1", 40003, 3128) + get_req(env, "/u/x"))
    assert got.startswith(b"HTTP/1.1 403"), got[:200]

    e = d.wait_log(path=v1)
    assert (ip(e), e["roles"]) == ("127.0.0.2", "office"), e.raw
    e = d.wait_log(path=v2)
    assert (ip(e), e["roles"]) == ("127.0.0.2", "office"), e.raw
    e = d.wait_log(path=local)
    assert (ip(e), e["rule"]) == ("127.0.0.1", "no-social"), e.raw
    d.wait_log(lambda e: ip(e) == "192.0.2.7", since=t0, reason="client-not-allowed")


def test_refused_headers(pool, env):
    d = pool["gws"][1]
    t0 = time.time()
    err0 = d.stderr_size()
    want = []  # (client address, reason): the refused connection's log line
    # from an address not in proxy_protocol: refused, whatever the header says
    for hdr in (b"PROXY TCP4 10.9.9.9 127.0.0.1 1 2\r\n", v2_inet("10.9.9.8", "127.0.0.1", 1, 2)):
        got = raw(d, hdr + get_req(env, "/u/x"), source="127.0.0.5")
        assert got.startswith(b"HTTP/1.1 400"), got[:200]
        want.append(("127.0.0.5", "proxy-protocol-not-allowed"))
    # a client behind the balancer sending its own header after the balancer's
    got = raw(d, b"PROXY TCP4 127.0.0.3 127.0.0.1 1 2\r\nPROXY TCP4 10.1.1.1 127.0.0.1 1 2\r\n"
              + get_req(env, "/u/x"))
    assert got.startswith(b"HTTP/1.1 400"), got[:200]
    want.append(("127.0.0.3", "proxy-protocol-not-allowed"))
    # from the balancer: malformed v1, malformed v2, and no header at all
    for bad, reason in ((b"PROXY TCP4 127.0.0.2 127.0.0.1 99999 2\r\n", "proxy-protocol-invalid"),
                        (b"PROXY TCP4 127.0.0.2\n", "proxy-protocol-invalid"),
                        (V2SIG + b"\x21\x11\x00\x04abcd", "proxy-protocol-invalid"),
                        (V2SIG + b"\x31\x11\x00\x0c" + b"\0" * 12, "proxy-protocol-invalid"),
                        (b"", "proxy-protocol-missing")):
        got = raw(d, bad + get_req(env, "/u/x"))
        assert got.startswith(b"HTTP/1.1 400"), (bad, got[:200])
        want.append(("127.0.0.1", reason))
    # one log line each (written once the refused connection has closed)
    deadline = time.monotonic() + 8
    while True:
        lines = [e for e in d.entries() if (e.epoch() or 0) >= t0 - 0.01 and e.get("status") == "400"]
        got_lines = sorted((ip(e), e.get("reason")) for e in lines)
        if got_lines == sorted(want) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got_lines == sorted(want), "\n".join(e.raw for e in lines)
    # and the daemon's log says what was wrong with the balancer's headers
    text = new_stderr(d, err0)
    assert text.count("PROXY protocol: bad header from 127.0.0.1") == 4, text
    assert "PROXY protocol: 127.0.0.1" in text and "sent no header" in text, text


def test_wpad_is_the_pac_with_failover(pool):
    d = pool["gws"][0]
    base = "http://127.0.0.1:%d" % d.admin_port
    st, h1, pac = http_get(base + "/proxy.pac")
    st2, h2, wpad = http_get(base + "/wpad.dat")
    assert st == st2 == 200
    assert wpad == pac and h2["Content-Type"] == h1["Content-Type"] == \
        "application/x-ns-proxy-autoconfig"
    returns = re.findall(r'return "([^"]*)";', pac.decode())
    assert returns == ["PROXY gw1.test:3128; PROXY gw2.test:3128; PROXY gw3.test:3128"], pac


def test_pac_proxy_entries_checked(env, tmp_path):
    d = SocialGate(env, "pacbad", overrides={"admin": {"listen": "127.0.0.1:%d" % free_port(),
                                                       "pac_proxy": "gw1.test:3128, gw2.test"}})
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode == 1
    assert re.search(r"proxy\.ini:\d+: pac_proxy = gw2\.test: expected host:port",
                     r.stderr.decode()), r.stderr.decode()


def test_gateway_killed_is_taken_out(pool, env):
    """Last: it stops one gateway of the module's pool."""
    gw2 = pool["gws"][1]
    gw2.proc.send_signal(signal.SIGKILL)
    gw2.proc.wait(timeout=5)
    gw2.expected_exit = True
    ok = 0
    for i in range(9):  # at once: HAProxy retries a refused connect on the next gateway
        code, _ = through(pool, "127.0.0.2", "http://www.linkedin.com:%d/u/k%d-%s"
                          % (env.nginx_http, i, token()))
        ok += code == "200"
    assert ok == 9
    wait_stat(pool["sock"], {"gw1": "UP", "gw2": "DOWN", "gw3": "UP"}, timeout=5)
    for i in range(6):
        code, _ = through(pool, "127.0.0.2", "http://www.linkedin.com:%d/u/a%d-%s"
                          % (env.nginx_http, i, token()))
        assert code == "200"


def test_max_per_client_counts_the_real_client(env, make_sg):
    """max_per_client counts the address from the header, not the balancer's: two
    connections of 127.0.0.2 through the balancer fill its share, 127.0.0.3 still
    gets in."""
    d = make_sg({"proxy": {"proxy_protocol": "127.0.0.1/32"}, "limits": {"max_per_client": "2"}},
                start=False)
    write_rules(d, RULES)
    d.start()
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"PROXY TCP4 127.0.0.2 127.0.0.1 1 2\r\nGET http://www.linkedin.com/ HTTP/1.1\r\n")
            held.append(s)
        time.sleep(0.2)  # both headers read
        got = raw(d, b"PROXY TCP4 127.0.0.2 127.0.0.1 3 2\r\n" + get_req(env, "/u/x"))
        assert got.startswith(b"HTTP/1.1 429"), got[:200]
        tok = "/u/other-%s" % token()
        got = raw(d, b"PROXY TCP4 127.0.0.3 127.0.0.1 4 2\r\n" + get_req(env, tok))
        assert got.startswith(b"HTTP/1.1 403"), got[:200]  # in, and decided: no role
        assert ip(d.wait_log(path=tok)) == "127.0.0.3"
    finally:
        for s in held:
            s.close()


# --- the HTTPS proxy port behind HAProxy ------------------------------------


@pytest.fixture(scope="module")
def tls_pool(env, tmp_path_factory):
    """One gateway with an HTTPS proxy port, HAProxy in front of that port (the commented
    HTTPS section of contrib/haproxy/haproxy.cfg: TCP mode, send-proxy-v2)."""
    if not BIN.exists():
        pytest.fail("socialgate binary not found at %s" % BIN)
    tmp = tmp_path_factory.mktemp("tlspool")
    cert, key = port_files(env, tmp)
    users = make_htpasswd(tmp / "users.htpasswd", {"alice": "wonderland"})
    hp = d = None
    try:
        aport, tport = free_port(), free_port()
        d = SocialGate(env, "pooltls", overrides={
            "proxy": {"proxy_protocol": "127.0.0.1/32", "listen_tls": "127.0.0.1:%d" % tport,
                      "tls_cert": str(cert), "tls_key": str(key)},
            "auth": {"htpasswd": str(users)},
            "limits": {"header_timeout": "2s"},
            "admin": {"listen": "127.0.0.1:%d" % aport,
                      "pac_proxy": "gw1.test:3128, gw2.test:3128"}})
        d.admin_port, d.tls_port = aport, tport
        d.start()
        assert wait_port("127.0.0.1", aport, 10, d.proc)
        hp, port, _ = start_haproxy(tmp, [("gw1", tport, aport)], tls=True)
        assert "backend gateways_tls" in (tmp / "haproxy.cfg").read_text()
        yield {"gw": d, "port": port}
    finally:
        kill_group(hp)
        if d:
            d.kill()


def tls_exchange(env, port, first, request, source="127.0.0.1", timeout=5.0):
    """Connects to port from source, sends `first` and the TLS ClientHello in one write
    (the gateway must leave the hello for OpenSSL), completes the handshake, sends
    request inside TLS and returns the answer read to its end."""
    ctx = ssl.create_default_context(cafile=str(env.ca))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        try:
            t.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s.sendall(first + out.read())
        while True:
            try:
                t.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    s.sendall(out.read())
                b = s.recv(65536)
                if not b:
                    raise ConnectionError("closed during the handshake")
                inc.write(b)
        t.write(request)
        s.sendall(out.read())
        got = b""
        while True:
            try:
                got += t.read(65536)
            except ssl.SSLWantReadError:
                b = s.recv(65536)
                if not b:
                    return got
                inc.write(b)
                continue
            except ssl.SSLZeroReturnError:
                return got
            head, sep, body = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                return got
    finally:
        s.close()


def plain_req(env, path):
    return ("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Proxy-Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n"
            % (env.nginx_http, path, env.nginx_http)).encode()


def test_https_port_behind_haproxy(tls_pool, env):
    """curl --proxy https:// through HAProxy (send-proxy-v2) to the gateway's HTTPS
    port: the handshake is the gateway's, the client address the header's."""
    d = tls_pool["gw"]
    tok = "/u/tls-%s" % token()
    r = curl("-sS", "--max-time", "10", "--interface", "127.0.0.2",
             "--proxy", "https://127.0.0.1:%d" % tls_pool["port"], "--proxy-cacert", str(env.ca),
             "--proxy-user", "alice:wonderland", "-w", "\n%{http_code}",
             "http://127.0.0.1:%d%s" % (env.nginx_http, tok), timeout=20)
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"200", r.stderr
    e = d.wait_log(ev="request", path=tok)
    assert ip(e) == "127.0.0.2" and e["user"] == "alice" and e["status"] == "200", e.raw


def test_https_port_headers_from_raw_sockets(tls_pool, env):
    """v2 and v1 headers then TLS, the ClientHello in the same write as the header;
    LOCAL keeps the balancer's address."""
    d = tls_pool["gw"]
    p1, p2, p3 = ("/u/%s-%s" % (k, token()) for k in ("v2", "v1", "local"))
    got = tls_exchange(env, d.tls_port, v2_inet("127.0.0.3", "127.0.0.1", 40005, 443),
                       plain_req(env, p1))
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    got = tls_exchange(env, d.tls_port, b"PROXY TCP4 127.0.0.4 127.0.0.1 40006 443\r\n",
                       plain_req(env, p2))
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    got = tls_exchange(env, d.tls_port, V2SIG + b"\x20\x00\x00\x00", plain_req(env, p3))
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    for path, addr in ((p1, "127.0.0.3"), (p2, "127.0.0.4"), (p3, "127.0.0.1")):
        e = d.wait_log(ev="request", path=path)
        assert ip(e) == addr and e["user"] == "alice", e.raw
    # the header's address is what `clients` checks; the refusal comes inside TLS
    t0 = time.time()
    got = tls_exchange(env, d.tls_port, v2_inet("192.0.2.44", "127.0.0.1", 40007, 443),
                       plain_req(env, "/u/x"))
    assert got.startswith(b"HTTP/1.1 403"), got[:200]
    d.wait_log(lambda e: ip(e) == "192.0.2.44", since=t0, reason="client-not-allowed")


def read_all(s):
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return got
        if not b:
            return got
        got += b


def test_https_port_bad_headers(tls_pool, env):
    """A malformed header (or none) from the balancer on the HTTPS port: TLS has not
    started, so the 400 is plain text, and logged. A header from an address not in
    proxy_protocol goes to OpenSSL as the client's first bytes: the handshake fails
    cleanly, logged."""
    d = tls_pool["gw"]
    t0 = time.time()
    err0 = d.stderr_size()
    for bad, reason in ((V2SIG + b"\x31\x11\x00\x0c" + b"\0" * 12, "proxy-protocol-invalid"),
                        (b"PROXY TCP4 127.0.0.2 127.0.0.1 99999 2\r\n", "proxy-protocol-invalid"),
                        (b"\x16\x03\x01\x00\x05hello", "proxy-protocol-missing")):
        s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=5)
        s.sendall(bad)
        got = read_all(s)
        s.close()
        assert got.startswith(b"HTTP/1.1 400"), (bad, got[:200])
        d.wait_log(lambda e: ip(e) == "127.0.0.1", since=t0, reason=reason, status="400")
    text = new_stderr(d, err0)
    assert text.count("PROXY protocol: bad header from 127.0.0.1") == 2, text
    assert re.search(r"PROXY protocol: 127\.0\.0\.1:\d+ sent no header", text), text

    # not a balancer: the header is the handshake's first bytes
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_exchange(env, d.tls_port, v2_inet("10.9.9.9", "127.0.0.1", 1, 2),
                     plain_req(env, "/small.txt"), source="127.0.0.5")
    e = d.wait_log(lambda e: ip(e) == "127.0.0.5", since=t0, reason="tls-handshake-failed")
    assert e["status"] == "-", e.raw
    assert "client 127.0.0.5:" in new_stderr(d, err0) and \
        "TLS handshake on the HTTPS proxy port" in new_stderr(d, err0)


def test_https_port_header_timeout(tls_pool, env):
    """A balancer's connection that stops amid its header: 408 in plain text after
    header_timeout; one that sends nothing is closed quietly."""
    d = tls_pool["gw"]
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=8)
    s.sendall(V2SIG[:8])
    start = time.monotonic()
    got = read_all(s)
    s.close()
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert time.monotonic() - start < 6
    d.wait_log(lambda e: ip(e) == "127.0.0.1", since=t0, reason="header-timeout")


def test_pac_lists_every_https_entry_first(tls_pool):
    d = tls_pool["gw"]
    st, _, pac = http_get("http://127.0.0.1:%d/proxy.pac" % d.admin_port)
    assert st == 200
    returns = re.findall(r'return "([^"]*)";', pac.decode())
    assert returns == ["HTTPS gw1.test:%d; HTTPS gw2.test:%d; PROXY gw1.test:3128; PROXY gw2.test:3128"
                       % (d.tls_port, d.tls_port)], pac
