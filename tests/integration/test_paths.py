"""What a rule sees of a request: the normalised path, the host, the method.

- `path_regex` is matched against the path normalised as RFC 3986 6.2.2 and
  nginx do it (unreserved characters percent-decoded, dot segments removed,
  slashes merged): each spelling of /invite below is denied by a rule on
  `^/invite(/|$)`, on a raw socket (curl would clean some of them up itself)
  and with curl --path-as-is; the usage log keeps the path as sent, and the
  origin never sees the request. `explain` decides on the same path.
- A host name the catalog cannot read (an empty label, over 253 bytes) is a
  400 with reason=bad-host, for requests and CONNECT, before any decision.
- `-t` warns when a rule lists a method in lower case.
"""

import time

import pytest

from rawhttp import Conn
from sgtest import BIN, curl, origin_quiet_since, run

CATALOG = """\
[platform facebook]
category = social
domains = facebook.com
"""

POLICY = """\
[rule no-invite]
platforms = facebook
path_regex = ^/invite(/|$)
action = deny

[rule fb]
platforms = facebook
action = allow
"""


@pytest.fixture(scope="module")
def hosts(env):
    p = env.tmp / "paths-hosts"
    p.write_text("127.0.0.1 www.facebook.com\n")
    return p


def start(make_sg, hosts, policy=POLICY, start=True):
    d = make_sg(overrides={"dns": {"hosts_file": str(hosts)}}, start=False)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(policy)
    if start:
        d.start()
    return d


def raw_get(d, target, host):
    """(status, body) of one request with this exact request-target."""
    c = Conn("127.0.0.1", d.port, timeout=10)
    try:
        c.send(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (target.encode(), host.encode()))
        r = c.read_response()
        return r.status, r.body
    finally:
        c.close()


# --- path_regex sees the normalised path -------------------------------------------------------

DENIED = [
    ("plain", "/invite/x"),
    ("percent_encoded_letter", "/%69nvite/x"),
    ("percent_encoded_letters", "/%69%6E%76ite/x"),
    ("dot_segment", "/./invite/x"),
    ("dot_dot_segment", "/x/../invite/x"),
    ("double_slash", "//invite/x"),
    ("encoded_dot_dot", "/%2e%2e/invite"),
    ("encoded_dot_dot_upper", "/a/%2E%2E/invite/"),
    ("above_the_root", "/../../invite"),
    ("mixed", "/a//b/.%2e/../%69nvite"),
    ("query_ignored", "/x/../invite?next=/ok"),
]


@pytest.mark.parametrize("case", DENIED, ids=[c[0] for c in DENIED])
def test_path_regex_sees_normalised_path(make_sg, env, hosts, origin, case):
    _, path = case
    d = start(make_sg, hosts)
    before = origin.snapshot()
    t0 = time.time()
    status, body = raw_get(d, "http://www.facebook.com:%d%s" % (env.py_port, path),
                           "www.facebook.com:%d" % env.py_port)
    assert status == 403, (path, status, body[:300])
    sent = path.split("?")[0]
    e = d.wait_log(since=t0, ev="request", host="www.facebook.com")
    assert (e["rule"], e["action"], e["status"]) == ("no-invite", "deny", "403"), e.raw
    assert e["path"] == sent, "the log keeps the path as sent: %s" % e.raw
    assert origin_quiet_since(origin, before), "the origin received the denied request"


ALLOWED = [
    ("longer_name", "/invitee"),
    ("deeper", "/x/invite"),
    ("encoded_slash_stays", "/a%2F..%2Finvite"),
    ("double_encoded", "/%2569nvite"),
    ("dot_dot_inside_a_name", "/..invite"),
]


@pytest.mark.parametrize("case", ALLOWED, ids=[c[0] for c in ALLOWED])
def test_other_paths_pass(make_sg, env, hosts, origin, case):
    _, path = case
    d = start(make_sg, hosts)
    t0 = time.time()
    status, body = raw_get(d, "http://www.facebook.com:%d%s" % (env.py_port, path),
                           "www.facebook.com:%d" % env.py_port)
    assert status == 200, (path, status, body[:300])
    # the origin gets the path as sent, not the normalised one
    assert body == b"path=%s\n" % path.encode(), body
    e = d.wait_log(since=t0, ev="request", host="www.facebook.com")
    assert (e["rule"], e["action"], e["path"]) == ("fb", "allow", path), e.raw


def test_curl_path_as_is(make_sg, env, hosts, origin):
    d = start(make_sg, hosts)
    for path in ("/x/../invite/x", "/./invite", "//invite", "/%69nvite"):
        t0 = time.time()
        r = curl("-x", d.proxy, "--path-as-is", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "http://www.facebook.com:%d%s" % (env.py_port, path), timeout=15)
        assert r.stdout == b"403", (path, r.stdout, r.stderr)
        e = d.wait_log(since=t0, ev="request", path=path)
        assert (e["rule"], e["action"]) == ("no-invite", "deny"), e.raw
    r = curl("-x", d.proxy, "--path-as-is", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             "http://www.facebook.com:%d/ok/../fine" % env.py_port, timeout=15)
    assert r.stdout == b"200", r.stdout


def test_explain_decides_on_the_normalised_path(make_sg, hosts):
    d = start(make_sg, hosts, start=False)
    r = run([str(BIN), "explain", "-c", str(d.config), "http://www.facebook.com/x/../%69nvite/y"],
            timeout=20)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 1, out
    assert "request:   GET /x/../%69nvite/y (path_regex sees /invite/y)" in out, out
    assert "deny by rule no-invite" in out, out
    r = run([str(BIN), "explain", "-c", str(d.config), "http://www.facebook.com/ok?x=/invite"],
            timeout=20)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "request:   GET /ok\n" in out, out


# --- a host the catalog cannot read is refused -------------------------------------------------

LONG_HOST = ".".join(["a" * 63] * 3 + ["b" * 62])  # 254 bytes
assert len(LONG_HOST) == 254

BAD_HOSTS = [
    ("empty_label", b"GET http://www..facebook.com/ HTTP/1.1\r\nHost: www..facebook.com\r\n\r\n",
     "request", "www..facebook.com"),
    ("leading_dot", b"GET http://.facebook.com/ HTTP/1.1\r\nHost: .facebook.com\r\n\r\n",
     "request", ".facebook.com"),
    ("only_dots", b"GET http://../ HTTP/1.1\r\nHost: ..\r\n\r\n", "request", ".."),
    ("over_253_bytes", b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n"
     % (LONG_HOST.encode(), LONG_HOST.encode()), "request", LONG_HOST),
    ("connect_empty_label", b"CONNECT www..facebook.com:443 HTTP/1.1\r\n"
     b"Host: www..facebook.com:443\r\n\r\n", "tunnel", "www..facebook.com"),
    ("connect_over_253_bytes", b"CONNECT %s:443 HTTP/1.1\r\n\r\n" % LONG_HOST.encode(),
     "tunnel", LONG_HOST),
]

# Unclassified traffic is allowed by default; this policy denies it, so an
# unreadable name that passed as unclassified would show as a 403 instead.
DENY_UNCLASSIFIED = POLICY + """
[rule nothing-else]
platforms = unclassified
action = deny
"""


@pytest.mark.parametrize("case", BAD_HOSTS, ids=[c[0] for c in BAD_HOSTS])
def test_unreadable_host_is_400(make_sg, hosts, case):
    _, raw, ev, host = case
    for policy in (POLICY, DENY_UNCLASSIFIED):
        d = start(make_sg, hosts, policy=policy)
        t0 = time.time()
        c = Conn("127.0.0.1", d.port, timeout=10)
        try:
            c.send(raw)
            r = c.read_response(method="CONNECT" if ev == "tunnel" else "GET")
            assert r.status == 400, (r.status, r.body[:300])
            assert c.is_closed(), "the connection stays open after a 400"
        finally:
            c.close()
        e = d.wait_log(since=t0, ev=ev)
        assert (e["status"], e.get("reason"), e["host"]) == ("400", "bad-host", host), e.raw
        assert (e["rule"], e["platform"]) == ("-", "-"), "decided before the refusal: %s" % e.raw
        d.kill()


def test_readable_hosts_are_decided(make_sg, env, hosts):
    """A trailing dot and an IP literal are names the catalog reads: decided, not refused."""
    d = start(make_sg, hosts)
    t0 = time.time()
    status, _ = raw_get(d, "http://127.0.0.1:%d/x" % env.py_port, "127.0.0.1")
    assert status == 200, status
    e = d.wait_log(since=t0, ev="request", host="127.0.0.1")
    assert (e["platform"], e.get("reason")) == ("-", None), e.raw
    t0 = time.time()
    raw_get(d, "http://www.facebook.com.:%d/invite" % env.py_port, "www.facebook.com.")
    e = d.wait_log(since=t0, ev="request", host="www.facebook.com.")
    assert (e["platform"], e["rule"], e["status"]) == ("facebook", "no-invite", "403"), e.raw


# --- -t: methods are case-sensitive ------------------------------------------------------------

def test_check_warns_about_lower_case_methods(make_sg, hosts):
    policy = ("[rule fb-post]\nplatforms = facebook\nmethods = post, PUT\naction = deny\n\n"
              "[rule fb]\nplatforms = facebook\naction = allow\n")
    d = start(make_sg, hosts, policy=policy, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    want = ("%s:3: warning: rule 'fb-post': methods = post: read as POST; request methods are "
            "case-sensitive (RFC 9110 9.1) and a request that says 'post' does not match"
            % (d.dir / "rules" / "10-policy.ini"))
    assert want in err, err
    assert "methods = PUT" not in err, err


def test_lower_case_method_in_a_rule_denies_post(make_sg, env, hosts, origin):
    """`post` in a rule is POST, what clients send; a request that says `post` is another
    method (RFC 9110 9.1) and the rule does not match it."""
    policy = ("[rule fb-post]\nplatforms = facebook\nmethods = post\naction = deny\n\n"
              "[rule fb]\nplatforms = facebook\naction = allow\n")
    d = start(make_sg, hosts, policy=policy)
    url = "http://www.facebook.com:%d/u" % env.py_port
    r = curl("-x", d.proxy, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "x=1", url,
             timeout=15)
    assert r.stdout == b"403", r.stdout
    t0 = time.time()
    c = Conn("127.0.0.1", d.port, timeout=10)
    try:
        c.send(b"post %s HTTP/1.1\r\nHost: www.facebook.com\r\nContent-Length: 0\r\n"
               b"Connection: close\r\n\r\n" % url.encode())
        c.read_response()
    finally:
        c.close()
    e = d.wait_log(since=t0, ev="request", method="post")
    assert e["rule"] == "fb", e.raw
