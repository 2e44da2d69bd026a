"""CONNECT tunnels: HTTPS with real clients, port policy, plain bytes, half-close."""

import hashlib
import socket
import struct
import subprocess
import time

import pytest

from sgtest import ALLOW_OPAQUE, CLEAN_ENV, REPO_ROOT, MiB, curl, run, token, write_rules


def connect(sg, target, timeout=5.0, extra=b""):
    t0 = time.time()
    c = sg.conn(timeout=timeout)
    c.t0 = t0
    c.send(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode() + extra)
    return c


def test_https_through_connect_with_curl(sg, env):
    t0 = time.time()
    r = curl("-x", sg.proxy, "--cacert", env.ca, "-w", "\n%{local_port}",
             "https://www.facebook.com:%d/small.txt" % env.nginx_https, timeout=10)
    assert r.returncode == 0, r.stderr
    body, _, port = r.stdout.rpartition(b"\n")
    assert body == env.small_body
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%s" % port.decode(), since=t0)
    assert e["method"] == "CONNECT"
    assert e["host"] == "www.facebook.com"
    assert e["port"] == str(env.nginx_https)
    assert e["status"] == "200"
    assert e["path"] == "-"
    assert e.int("up") > 0 and e.int("down") > len(env.small_body)


def test_tunnel_logs_sni_from_client_hello(sg, env):
    t0 = time.time()
    r = curl("-x", sg.proxy, "--cacert", env.ca, "-w", "\n%{local_port}",
             "https://www.facebook.com:%d/small.txt" % env.nginx_https, timeout=10)
    assert r.returncode == 0, r.stderr
    port = r.stdout.rpartition(b"\n")[2].decode()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%s" % port, since=t0)
    assert e["sni"] == "www.facebook.com", "SNI from the ClientHello must be logged: " + e.raw


def tls13_hello(sni, ech):
    """A TLS 1.3 ClientHello naming sni; with ech, an encrypted_client_hello extension
    (0xfe0d) holding an outer ECHClientHello, as real ECH and Chromium's GREASE one both do."""
    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body
    name = sni.encode()
    exts = ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    exts += ext(43, b"\x02\x03\x04")  # supported_versions: TLS 1.3
    if ech:
        enc, payload = bytes(range(32)), bytes(144)
        exts += ext(0xFE0D, b"\x00" + struct.pack("!HHB", 1, 1, 0x2A)
                    + struct.pack("!H", len(enc)) + enc + struct.pack("!H", len(payload)) + payload)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


ECH_CASES = [
    # (outer SNI, ECH extension, ech= in the log)
    ("cloudflare-ech.com", True, "yes"),
    ("edge.cloudflare-ech.com", True, "yes"),  # a subdomain of a listed name
    ("www.facebook.com", True, None),  # GREASE: Chromium sends one on every connection
    ("notcloudflare-ech.com", True, None),
    ("cloudflare-ech.com", False, None),  # no ECH extension, nothing encrypted
]


@pytest.mark.parametrize("sni,ech,want", ECH_CASES,
                         ids=["listed", "listed-subdomain", "grease", "lookalike", "no-extension"])
def test_ech_logged_only_for_client_facing_names(make_sg, env, sni, ech, want):
    """ech=yes only where it can be known: an ECH extension whose outer name is a client-facing
    name of [ech] (the shipped rules/05-ech.ini's is copied here)."""
    d = make_sg(start=False)
    shipped = (REPO_ROOT / "rules" / "05-ech.ini").read_text()
    write_rules(d, shipped, name="05-ech.ini")
    d.start()
    t0 = time.time()
    c = connect(d, "www.facebook.com:%d" % env.nginx_https)
    port = c.local_port
    try:
        assert c.read_head()[1] == 200
        c.send(tls13_hello(sni, ech))
        c.is_closed(1.0)  # the origin answers (an alert) and closes
    finally:
        c.close()
    e = d.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=t0)
    assert e["sni"] == sni, e.raw
    assert e.get("ech") == want, e.raw
    assert e["action"] == "allow" and e["status"] == "200", e.raw


def test_https_ip_literal_has_no_sni(sg, env):
    """TLS without SNI to an address: nothing names the server, the tunnel is
    opaque and denied (no rule allows it here; test_failclosed_tls.py allows it)."""
    t0 = time.time()
    r = curl("-x", sg.proxy, "--cacert", env.ca, "-w", "\n%{local_port}",
             "https://127.0.0.1:%d/small.txt" % env.nginx_https, timeout=10)
    assert r.returncode != 0, r.stdout
    body, _, port = r.stdout.rpartition(b"\n")
    assert body == b""
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%s" % port.decode(), since=t0)
    assert e["status"] == "200" and e["host"] == "127.0.0.1"
    assert e["sni"] == "-", e.raw
    assert e["category"] == "opaque" and e["action"] == "deny" and e["reason"] == "opaque", e.raw


def test_https_big_download_through_tunnel(sg, env):
    p = subprocess.Popen(["curl", "-sS", "--max-time", "90", "-x", sg.proxy, "--cacert", str(env.ca),
                          "https://www.facebook.com:%d/big.bin" % env.nginx_https],
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
    assert n == env.big_size and h.hexdigest() == env.big_sha
    e = sg.wait_log(lambda e: e.int("down") >= env.big_size, ev="tunnel", host="www.facebook.com",
                    port=str(env.nginx_https))
    assert e["status"] == "200"


def tcp_send_queue(local_port, remote_port):
    """Bytes queued for sending (unsent and unacknowledged) on the IPv4 loopback socket
    local_port -> remote_port, from /proc/net/tcp; None when there is none."""
    want = "0100007F:%04X 0100007F:%04X" % (local_port, remote_port)
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if " ".join(fields[1:3]) == want:
                return int(fields[4].split(":")[0], 16)
    return None


def test_tunnel_to_a_stalled_reader_queues_little_in_the_kernel(sg, env):
    """A client that stops reading a download through a tunnel: what the origin sends on
    waits in the proxy's own bounded buffer, not in its socket towards the client, whose
    send queue autotuning would grow to MiBs per tunnel (and whose unsent bytes the kernel
    sends from the CPU that takes the client's ACKs, not from the proxy's)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the client's window stays small
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", sg.port))
        s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % env.nginx_http).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            assert chunk, "the proxy closed before answering the CONNECT"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        port = s.getsockname()[1]
        # the download fills the client's window, then everything after it waits
        most, deadline = 0, time.time() + 2.0
        while time.time() < deadline:
            q = tcp_send_queue(sg.port, port)
            assert q is not None, "the proxy's socket towards the client is gone"
            most = max(most, q)
            time.sleep(0.05)
        assert most <= 256 * 1024, "%d bytes queued towards a client that does not read" % most
        # and nothing was lost: the client reads on and gets the response's start in order
        s.settimeout(10)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            assert chunk, "the tunnel ended before the response head"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        body = got.split(b"\r\n\r\n", 1)[1]
        while len(body) < 4 * MiB:
            chunk = s.recv(MiB)
            assert chunk, "the tunnel ended early"
            body += chunk
        with open(env.big_path, "rb") as f:
            assert body[:4 * MiB] == f.read(4 * MiB)
    finally:
        s.close()


def test_wget_https_through_proxy(sg, env, tmp_path):
    out = tmp_path / "out"
    r = run(["wget", "-q", "-O", str(out), "-T", "10", "-t", "1", "-e", "use_proxy=yes",
             "-e", "https_proxy=http://127.0.0.1:%d" % sg.port, "--ca-certificate=%s" % env.ca,
             "https://origin.test:%d/small.txt" % env.nginx_https], timeout=20)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == env.small_body
    sg.wait_log(ev="tunnel", host="origin.test", status="200")


def test_connect_to_port_25_forbidden(sg, env):
    c = connect(sg, "127.0.0.1:25")
    resp = c.read_response()
    assert resp.status == 403
    assert c.is_closed(3)
    port = c.local_port
    c.close()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=c.t0)
    assert e["status"] == "403" and e["method"] == "CONNECT" and e["port"] == "25"


def test_plain_http_inside_tunnel(sg, env):
    tok = token()
    c = connect(sg, "127.0.0.1:%d" % env.nginx_http)
    head = c.read_head()
    assert head[1] == 200, head
    for i in range(2):
        c.send("GET /u/%s-%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (tok, i))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == env.small_body
    port = c.local_port
    c.close()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=c.t0)
    assert e["status"] == "200" and e["host"] == "127.0.0.1" and e["port"] == str(env.nginx_http)
    assert e.int("down") >= 2 * len(env.small_body)


def test_data_sent_with_connect_head_is_relayed(sg, env):
    """A client that sends its first bytes in the same write as the CONNECT head."""
    tok = token()
    c = connect(sg, "127.0.0.1:%d" % env.nginx_http,
                extra=("GET /u/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % tok).encode())
    head = c.read_head()
    assert head[1] == 200
    resp = c.read_response()
    assert resp.status == 200 and resp.body == env.small_body
    c.close()


def test_tunnel_half_close(make_sg, env):
    # raw bytes, neither TLS nor HTTP: an opaque tunnel, which a rule allows here
    sg = make_sg(start=False)
    write_rules(sg, ALLOW_OPAQUE)
    sg.start()
    payload = bytes(range(256)) * 1024  # 256 KiB
    c = connect(sg, "127.0.0.1:%d" % env.py_port, timeout=10)
    head = c.read_head()
    assert head[1] == 200
    c.send(b"ECHO\n" + payload)
    c.sock.shutdown(socket.SHUT_WR)
    got = c.read_all(timeout=10)
    assert c.eof, "the tunnel was not closed after the echo server closed"
    assert got == payload + b"DONE\n", "got %d bytes back of %d" % (len(got), len(payload) + 5)
    port = c.local_port
    c.close()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=c.t0)
    assert e["status"] == "200"
    assert e.int("up") >= len(payload) and e.int("down") >= len(payload)


def test_connect_refused_port_502(sg, env):
    t0 = time.monotonic()
    c = connect(sg, "127.0.0.1:%d" % env.dead_port)
    resp = c.read_response()
    assert time.monotonic() - t0 < 1.5
    assert resp.status == 502
    assert c.is_closed(3)
    port = c.local_port
    c.close()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=c.t0)
    assert e["status"] == "502"


def test_connect_unresolvable_502(sg, env):
    t0 = time.monotonic()
    c = connect(sg, "nonexistent.invalid:443")
    resp = c.read_response()
    assert time.monotonic() - t0 < 2
    assert resp.status == 502
    port = c.local_port
    c.close()
    e = sg.wait_log(ev="tunnel", client="127.0.0.1:%d" % port, since=c.t0)
    assert e["status"] == "502" and e["host"] == "nonexistent.invalid"
