"""Process lifecycle: -t, signals (TERM drain, INT, USR1, HUP), listeners, client ACL."""

import re
import shutil
import signal
import socket
import time

import pytest

from rawhttp import Conn
from sgtest import BIN, curl, free_port, render_config, run, token, wait_port


def check(config):
    return run([str(BIN), "-t", "-c", str(config)], timeout=20)


def get(d, url, timeout=10):
    r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}", url, timeout=timeout)
    return r.stdout.decode()


# --- -t --------------------------------------------------------------------------------------

def test_check_good_config(make_sg):
    d = make_sg(start=False)
    r = check(d.config)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    assert len(out.strip().splitlines()) == 1, "expected a one-line summary, got:\n" + out


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


BAD = [
    ("unknown_key", "limits", "frobnicate", "1"),
    ("bad_duration", "limits", "connect_timeout", "soon"),
    ("bad_port", "proxy", "listen", "127.0.0.1:99999"),
    ("bad_cidr", "proxy", "clients", "10.0.0.0/33"),
    ("bad_number", "limits", "max_connections", "lots"),
]


@pytest.mark.parametrize("bad", BAD, ids=[b[0] for b in BAD])
def test_check_bad_config_names_file_and_line(make_sg, bad):
    _, section, key, value = bad
    d = make_sg(start=False)
    d.cfg[section][key] = value
    text = render_config(d.cfg)
    d.config.write_text(text)
    line = _line_of(text, "%s = %s" % (key, value))
    r = check(d.config)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, "exit %d, stderr %r" % (r.returncode, err)
    assert re.search(r"(^|\s|/)%s:%d: \S" % (re.escape(d.config.name), line), err, re.M), \
        "expected %s:%d: message, got:\n%s" % (d.config, line, err)
    if key == "frobnicate":
        assert "frobnicate" in err


def test_check_missing_file(tmp_path):
    r = check(tmp_path / "does-not-exist.ini")
    assert r.returncode == 1
    assert r.stderr.strip(), "no message for a missing file"


# --- paths -----------------------------------------------------------------------------------

def test_relative_paths_are_relative_to_config_dir(make_sg, env, tmp_path):
    d = make_sg(start=False, cwd=tmp_path)
    shutil.copy(env.hosts, d.dir / "hosts")
    d.cfg["proxy"]["rules"] = "rules"
    d.cfg["proxy"]["state_dir"] = "state"
    d.cfg["dns"]["hosts_file"] = "hosts"
    d.cfg["log"]["access"] = "access.log"
    d.config.write_text(render_config(d.cfg))
    d.start()
    tok = token()
    assert get(d, "http://origin.test:%d/u/%s" % (env.nginx_http, tok)) == "200"
    d.wait_log(ev="request", path="/u/" + tok, status="200")
    assert not (tmp_path / "access.log").exists()


# --- signals ---------------------------------------------------------------------------------

def test_sigterm_exits_within_drain_with_all_lines(make_sg, env):
    d = make_sg()
    n = 10
    for i in range(n):
        assert get(d, "http://127.0.0.1:%d/u/term-%d" % (env.nginx_http, i)) == "200"
    rc, secs = d.stop(signal.SIGTERM, timeout=10)
    assert rc is not None, "still running 10 s after SIGTERM (drain = 5s)"
    assert secs < 5 + 1.5, "took %.1fs to exit" % secs
    assert rc == 0, "exit code %s after SIGTERM; stderr:\n%s" % (rc, d.stderr_tail())
    lines = [e for e in d.entries() if e.get("ev") == "request"]
    assert len(lines) == n, "expected %d request lines, found %d" % (n, len(lines))


def test_diagnostics_carry_the_utc_offset(make_sg, env):
    """The daemon's own messages on stderr are stamped like the usage log: milliseconds and the
    UTC offset, so they can be lined up with it across a time zone change."""
    d = make_sg(overrides={"proxy": {"timezone": "Asia/Kolkata"}})
    d.send(signal.SIGUSR1)  # one more message: "usage log reopened"
    deadline = time.monotonic() + 5
    while b"usage log reopened" not in d.stderr_path.read_bytes():
        assert time.monotonic() < deadline, "no message after USR1:\n" + d.stderr_tail()
        time.sleep(0.05)
    lines = [ln for ln in d.stderr_path.read_text(errors="replace").splitlines()
             if " socialgate[" in ln]
    assert any("listening on" in ln for ln in lines), lines
    for ln in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30 socialgate\[\d+\] ", ln), ln


def test_sigterm_lets_inflight_request_finish(make_sg, env):
    d = make_sg()
    tok = token()
    c = d.conn(timeout=10)
    c.send("GET http://127.0.0.1:%d/slowbody/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (env.py_port, tok))
    head = c.read_head()
    assert head[1] == 200
    d.send(signal.SIGTERM)
    d.expected_exit = True
    time.sleep(0.3)
    # no new connection is served once draining
    try:
        with Conn("127.0.0.1", d.port, timeout=2) as n:
            n.send_tolerant("GET http://127.0.0.1:%d/u/x HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
            assert b" 200 " not in n.read_all(timeout=2)[:20], "a new request was served while draining"
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    # the in-flight body completes
    deadline = time.monotonic() + 5
    while len(c.buf) < 10000:
        if time.monotonic() > deadline:
            break
        data = c.sock.recv(65536)
        if not data:
            break
        c.buf += data
    assert len(c.buf) == 10000, "in-flight response cut to %d of 10000 bytes by SIGTERM" % len(c.buf)
    c.close()
    rc, secs = d.stop(signal.SIGTERM, timeout=8)
    assert rc is not None, "did not exit after draining"
    e = [e for e in d.entries() if e.get("path") == "/slowbody/" + tok]
    assert e and e[0]["status"] == "200", "no usage-log line for the drained request"


def test_sigterm_with_idle_keepalive_connection(make_sg, env):
    d = make_sg()
    c = d.conn()
    c.send("GET http://127.0.0.1:%d/u/idle HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
    assert c.read_response().status == 200
    try:
        rc, secs = d.stop(signal.SIGTERM, timeout=10)
        assert rc is not None and secs < 5 + 1.5, "an idle keep-alive connection held the exit (%s)" % secs
        c.read_all(timeout=1)
        assert c.eof, "the idle client connection was not closed at exit"
    finally:
        c.close()
    assert any(e.get("path") == "/u/idle" for e in d.entries())


def test_sigint_exits_at_once(make_sg, env):
    d = make_sg()
    c = d.conn()
    c.send("GET http://127.0.0.1:%d/bigu/int HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
    assert c.read_head()[1] == 200
    try:
        rc, secs = d.stop(signal.SIGINT, timeout=5)
        assert rc is not None and secs < 1.5, "SIGINT took %s s" % secs
    finally:
        c.close()


def test_sigusr1_reopens_log(make_sg, env):
    d = make_sg()
    assert get(d, "http://127.0.0.1:%d/u/before-rotate" % env.nginx_http) == "200"
    d.wait_log(path="/u/before-rotate")
    rotated = d.log.with_name("access.log.1")
    d.log.rename(rotated)
    d.send(signal.SIGUSR1)
    time.sleep(0.5)
    assert get(d, "http://127.0.0.1:%d/u/after-rotate" % env.nginx_http) == "200"
    d.wait_log(path="/u/after-rotate")
    assert "after-rotate" not in rotated.read_text()


def test_sighup_reload(make_sg, env):
    d = make_sg()
    target = "127.0.0.1:%d" % env.nginx_http

    def connect_status():
        with d.conn() as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
            return c.read_head()[1]

    assert connect_status() == 200
    good = dict(d.cfg)
    # a bad file keeps the old configuration running
    bad = render_config(d.cfg) + "\n[limits]\nfrobnicate = 1\n"
    d.config.write_text(bad)
    d.send(signal.SIGHUP)
    time.sleep(1)
    assert d.alive(), "a bad config on HUP killed the daemon"
    assert connect_status() == 200
    # a good file takes effect for new connections
    good["proxy"] = dict(good["proxy"])
    good["proxy"]["connect_ports"] = "443"
    d.config.write_text(render_config(good))
    d.send(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while connect_status() != 403 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connect_status() == 403, "connect_ports change not applied by HUP"


# --- listeners and ACL ------------------------------------------------------------------------

def _have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no ::1 on this machine")
def test_ipv6_listener(make_sg, env):
    p4 = free_port()
    p6 = free_port(socket.AF_INET6, "::1")
    d = make_sg({"proxy": {"listen": "127.0.0.1:%d, [::1]:%d" % (p4, p6)}}, port=p4)
    assert wait_port("::1", p6, 5), "not listening on [::1]:%d" % p6
    tok = token()
    r = curl("-x", "http://[::1]:%d" % p6, "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok), timeout=10)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(ev="request", path="/u/" + tok)
    assert "::1" in e["client"], e.raw
    assert get(d, "http://127.0.0.1:%d/u/v4" % env.nginx_http) == "200"


def test_clients_not_allowed_get_403(make_sg, env, origin):
    d = make_sg({"proxy": {"clients": "10.0.0.0/8"}})
    tok = token()
    before = origin.snapshot()
    r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d/p/%s" % (env.py_port, tok), timeout=10)
    assert r.stdout == b"403", (r.stdout, r.stderr)
    e = d.wait_log(status="403")
    assert e["client"].startswith("127.0.0.1:")
    time.sleep(0.2)
    assert origin.snapshot()[:2] == before[:2], "the origin was contacted for a refused client"


def test_max_per_client(make_sg, env):
    d = make_sg({"limits": {"max_per_client": "4"}})
    held = [d.conn() for _ in range(4)]
    try:
        time.sleep(0.2)
        got = b""
        try:
            with d.conn(timeout=3) as extra:
                extra.send_tolerant("GET http://127.0.0.1:%d/u/over HTTP/1.1\r\nHost: x\r\n\r\n"
                                    % env.nginx_http)
                got = extra.read_all(timeout=3)
        except (ConnectionResetError, ConnectionRefusedError):
            pass
        assert not got.startswith(b"HTTP/1.1 200"), "a 5th connection from one client was served"
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    assert get(d, "http://127.0.0.1:%d/u/under" % env.nginx_http) == "200"
