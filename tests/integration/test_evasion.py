"""Ways around the gateway's controls, each closed (issue 18, items 5 to 7).

- A loop through the proxy itself: CONNECT or GET to one of its own listeners
  under another spelling (an IPv4-mapped IPv6 address, any local address when
  it listens on 0.0.0.0 or *) would make the inner request come from the
  proxy's own address, with a fresh per-address quota and other network
  roles. It must get 508 forwarding-loop.
- A forged usage-log field: the user name of a failed login that spells
  ` user=alice platform=facebook action=allow status=200 ` must stay one
  value that `grep ' user=alice '` does not find.
- A forged Continue link: /continue without a token made by the warn page
  for this identity must be refused (403, reason=bad-continue-token), and the
  warning still shown afterwards.

Real clients (curl, raw sockets) against private daemons on loopback.
"""

import html
import re
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


# --- 7. the warn page's Continue link carries a token ------------------------------------------

CATALOG = """\
[platform youtube]
category = video
domains = youtube.com
"""

POLICY = """\
[rule video-warn]
categories = video
action = warn
warn_for = 1h
message = Video sites are for work use.
"""


@pytest.fixture(scope="module")
def yt_hosts(env):
    p = env.tmp / "evasion-hosts"
    p.write_text("127.0.0.1 www.youtube.com\n")
    return p


def _warn_daemon(make_sg, hosts, key=None):
    d = make_sg({"dns": {"hosts_file": str(hosts)}}, start=False)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(POLICY)
    if key is not None:
        (d.dir / "state" / "continue.key").write_bytes(key)
    return d.start()


def _get(d, url, *extra):
    r = curl("-x", d.proxy, "-i", *extra, url, timeout=15)
    assert r.returncode == 0, r.stderr.decode()
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    loc = [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("location:")]
    return int(lines[0].split()[1]), (loc[0] if loc else None), body


def _warn_link(d, env, *extra):
    """The Continue link of a fresh warn page for this client."""
    st, _, body = _get(d, "http://www.youtube.com:%d/u/%s" % (env.nginx_http, token()), *extra)
    assert st == 403
    m = re.search(r'<a href="([^"]+)" class="button">Continue to ', body.decode())
    assert m, body
    return html.unescape(m.group(1))


def _still_warned(d, env, *extra):
    st, _, body = _get(d, "http://www.youtube.com:%d/u/%s" % (env.nginx_http, token()), *extra)
    return st == 403 and b"Video sites are for work use." in body


def test_continue_without_a_token_is_refused(make_sg, env, yt_hosts):
    d = _warn_daemon(make_sg, yt_hosts)
    t0 = time.time()
    assert _still_warned(d, env)
    for q in ("p=youtube&r=video-warn",                                       # the link
              "p=youtube&r=video-warn&e=4102444800&t=" + "0" * 64,             # a forged token
              "p=youtube&r=video-warn&e=4102444800&t=" + "a" * 63,
              "p=youtube&r=video-warn&to=http%3A%2F%2Fwww.youtube.com%2F"):
        st, loc, body = _get(d, "http://socialgate.local/continue?" + q)
        assert st == 403 and loc is None, (q, st, body[:300])
        # and the warning is still there: nothing was recorded
        assert _still_warned(d, env), q
    e = d.wait_log(since=t0, host="socialgate.local", status="403")
    assert (e["path"], e.get("reason")) == ("/continue", "bad-continue-token"), e.raw


def test_continue_link_is_for_its_identity_and_platform(make_sg, env, yt_hosts):
    d = _warn_daemon(make_sg, yt_hosts)
    link = _warn_link(d, env, "--interface", "127.0.0.2")
    assert re.search(r"&e=\d+&t=[0-9a-f]{64}(&|$)", link), link
    # another client address cannot use it
    st, _, _ = _get(d, link)
    assert st == 403
    assert _still_warned(d, env)
    # nor with its expiry moved
    e = int(re.search(r"&e=(\d+)", link).group(1))
    assert time.time() + 500 < e <= time.time() + 601, link
    st, _, _ = _get(d, link.replace("&e=%d" % e, "&e=%d" % (e + 86400)), "--interface", "127.0.0.2")
    assert st == 403
    assert _still_warned(d, env, "--interface", "127.0.0.2")
    # its own client: recorded, sent back, then allowed
    st, loc, _ = _get(d, link, "--interface", "127.0.0.2")
    assert st == 302 and loc.startswith("http://www.youtube.com:%d/u/" % env.nginx_http), (st, loc)
    st, _, body = _get(d, "http://www.youtube.com:%d/small.txt" % env.nginx_http, "--interface", "127.0.0.2")
    assert st == 200 and body == env.small_body
    assert _still_warned(d, env)  # 127.0.0.1 still sees the page


def test_continue_key_in_state_dir_shared_by_a_pool(make_sg, env, yt_hosts):
    d1 = _warn_daemon(make_sg, yt_hosts)
    keyfile = d1.dir / "state" / "continue.key"
    assert keyfile.stat().st_size == 32 and keyfile.stat().st_mode & 0o777 == 0o600
    key = keyfile.read_bytes()
    link = _warn_link(d1, env)
    # a second gateway with the same key takes the first one's link
    d2 = _warn_daemon(make_sg, yt_hosts, key=key)
    st, loc, _ = _get(d2, link)
    assert st == 302, st
    st, _, _ = _get(d2, "http://www.youtube.com:%d/small.txt" % env.nginx_http)
    assert st == 200
    # a third with a key of its own does not
    d3 = _warn_daemon(make_sg, yt_hosts)
    assert (d3.dir / "state" / "continue.key").read_bytes() != key
    st, _, _ = _get(d3, link)
    assert st == 403
    assert _still_warned(d3, env)
