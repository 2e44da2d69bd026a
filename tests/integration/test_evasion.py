"""Ways around the gateway's controls, each closed (issue 18, items 5 and 6).

- A loop through the proxy itself: CONNECT or GET to one of its own listeners
  under another spelling (an IPv4-mapped IPv6 address, any local address when
  it listens on 0.0.0.0 or *) would make the inner request come from the
  proxy's own address, with a fresh per-address quota and other network
  roles. It must get 508 forwarding-loop.
- A forged usage-log field: the user name of a failed login that spells
  ` user=alice platform=facebook action=allow status=200 ` must stay one
  value that `grep ' user=alice '` does not find.

Real clients (curl, raw sockets) against private daemons on loopback.
"""

import socket
import subprocess
import time

import pytest

from rawhttp import first_status
from sgtest import CLEAN_ENV, curl, exchange, free_port, make_htpasswd, token


# --- 5. loops through the proxy's own addresses -----------------------------------------------

def _loop_daemon(make_sg, listen_host, port=None):
    port = port or free_port()
    return make_sg({"proxy": {"listen": "%s:%d" % (listen_host, port),
                              "connect_ports": "443, %d" % port}}, port=port)


def _connect_508(d, target):
    got, closed, _ = exchange(d, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                              % (target.encode(), target.encode()))
    return first_status(got), closed, got


def test_connect_to_ipv4_mapped_self_is_a_loop(make_sg, env):
    d = _loop_daemon(make_sg, "127.0.0.1")
    t0 = time.time()
    # the plain spelling always was a loop
    st, closed, got = _connect_508(d, "127.0.0.1:%d" % d.port)
    assert st == 508 and closed, got[:200]
    # the IPv4-mapped one is the same address
    st, closed, got = _connect_508(d, "[::ffff:127.0.0.1]:%d" % d.port)
    assert st == 508 and closed, "CONNECT [::ffff:127.0.0.1] got %r" % got[:200]
    e = d.wait_log(since=t0, ev="tunnel", host="::ffff:127.0.0.1")
    assert (e["status"], e.get("reason")) == ("508", "forwarding-loop"), e.raw


def test_get_to_ipv4_mapped_self_is_a_loop(make_sg, env):
    d = _loop_daemon(make_sg, "127.0.0.1")
    t0 = time.time()
    tok = token()
    got, closed, _ = exchange(d, b"GET http://[::ffff:127.0.0.1]:%d/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                              % (d.port, tok.encode()))
    assert first_status(got) == 508 and closed, got[:200]
    # answered by the outer request itself: no inner request reached the proxy
    e = d.wait_log(since=t0, ev="request", path="/" + tok)
    assert (e["status"], e.get("reason")) == ("508", "forwarding-loop"), e.raw
    time.sleep(0.3)
    lines = [x for x in d.entries() if x.get("path") == "/" + tok]
    assert len(lines) == 1, "\n".join(x.raw for x in lines)


def _local_non_loopback_ipv4():
    """An address of this machine's interfaces other than loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent: only the route is looked up
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_wildcard_listener_is_every_local_address(make_sg, env):
    d = _loop_daemon(make_sg, "0.0.0.0")
    targets = ["127.0.0.1", "127.0.0.2", "127.1.2.3", "[::ffff:127.0.0.2]", "0.0.0.0"]
    ip = _local_non_loopback_ipv4()
    if ip:
        targets.append(ip)
    for t in targets:
        st, closed, got = _connect_508(d, "%s:%d" % (t, d.port))
        assert st == 508 and closed, "CONNECT %s:%d to a proxy on 0.0.0.0: %r" % (t, d.port, got[:200])
    # another port of the same addresses is not the proxy
    st, _, got = _connect_508(d, "127.0.0.2:%d" % env.dead_port)
    assert st != 508, got[:200]


def test_dual_stack_wildcard_listener_is_every_local_address(make_sg, env):
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        pytest.skip("no IPv6")
    d = _loop_daemon(make_sg, "*")
    for t in ("127.0.0.2", "[::ffff:127.0.0.3]", "[::1]"):
        st, closed, got = _connect_508(d, "%s:%d" % (t, d.port))
        assert st == 508 and closed, "CONNECT %s:%d to a proxy on *: %r" % (t, d.port, got[:200])


def test_other_loopback_address_is_not_the_proxy(make_sg, env):
    """A proxy on 127.0.0.1 only: 127.0.0.2 on its port is another socket (none here)."""
    d = _loop_daemon(make_sg, "127.0.0.1")
    st, _, got = _connect_508(d, "127.0.0.2:%d" % d.port)
    assert st == 502, got[:200]


# --- 6. a failed login cannot forge usage-log fields -------------------------------------------

FORGED_USER = "x user=alice platform=facebook action=allow status=200 y"


def test_failed_login_name_cannot_forge_fields(make_sg, env):
    d = make_sg({"auth": {"htpasswd": "users"}}, start=False)
    make_htpasswd(d.dir / "users", {"alice": "alice-pw"})
    d.start()
    t0 = time.time()
    url = "http://www.facebook.com:%d/small.txt" % env.nginx_http
    r = curl("-x", d.proxy, "--proxy-user", FORGED_USER + ":pw", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == b"407", r.stderr
    r = curl("-x", d.proxy, "--proxy-user", "alice:alice-pw", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == b"200", r.stderr
    forged = d.wait_log(since=t0, ev="request", status="407")
    d.wait_log(since=t0, ev="request", status="200", user="alice")
    assert forged["user"] == FORGED_USER and forged["auth"] == "fail", forged.raw
    raw = forged.raw
    assert " user=alice " not in raw and " action=allow " not in raw, raw
    assert ' user="x\\x20user=alice\\x20platform=facebook\\x20action=allow\\x20status=200\\x20y" ' in raw, raw

    # the auditor's tools: grep finds Alice's own request only, awk's columns hold
    time.sleep(1.2)  # the log is flushed every second
    g = subprocess.run(["grep", " user=alice ", str(d.log)], capture_output=True, env=CLEAN_ENV, timeout=10)
    hits = [ln for ln in g.stdout.decode("latin-1").splitlines() if " ev=request " in ln]
    assert len(hits) == 1 and " status=200 " in hits[0], hits
    a = subprocess.run(["awk", "/ ev=request / { print NF, $4, $15 }", str(d.log)], capture_output=True,
                       env=CLEAN_ENV, timeout=10)
    rows = a.stdout.decode("latin-1").splitlines()
    assert sorted(rows) == sorted([
        "19 user=\"x\\x20user=alice\\x20platform=facebook\\x20action=allow\\x20status=200\\x20y\" status=407",
        "18 user=alice status=200"]), rows
