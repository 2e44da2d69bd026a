"""The connection core: what one connection sees across a reload and across
a minute boundary.

- A keep-alive connection: every request on it is decided by the snapshot
  current when its head is complete, so a reload that turns a rule from
  allow to deny reaches the next request on an open connection; a reload
  that changes something else does not drop the connection. An open tunnel
  keeps its decision until its first traffic in the next clock minute, then
  is decided again under the new rules (reason=policy-changed when denied).
- A transfer whose quota runs out mid-way is decided again at its first
  traffic in the next clock minute, with the method and path of its
  request: a rule with `methods` or `path_regex` can still allow it. When
  none does, it is closed and logged with the rule that allowed it and
  action=allow, status 200 and reason=quota-exhausted: nothing denied it.

The quota tests need a minute boundary a few seconds after the request
starts: the daemon runs under libfaketime (Debian package faketime), its
wall clock set a few seconds before a minute boundary, its monotonic clock
(timers, timeouts) left alone.
"""

import glob
import os
import signal
import threading
import time

import pytest

from hostile import ScriptedOrigin
from rawhttp import Closed
from sgtest import VALGRIND_LOGS, SocialGate, curl, render_config, token

CATALOG = """\
[platform linkedin]
category = social
domains = linkedin.com

[platform reddit]
category = social
domains = reddit.com

[platform youtube]
category = video
domains = youtube.com

[platform tiktok]
category = video
domains = tiktok.com
"""

HOSTS = ["www.linkedin.com", "www.reddit.com", "www.youtube.com", "www.tiktok.com"]


def get_request(host, port, path, close=False):
    return ("GET http://%s:%d%s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n"
            % (host, port, path, host, port, "Connection: close\r\n" if close else ""))


def start_with_rules(make_sg, hosts_file, policy, **kw):
    d = make_sg(overrides={"dns": {"hosts_file": str(hosts_file)}}, start=False, **kw)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(policy)
    d.start()
    return d


@pytest.fixture(scope="module")
def hosts(env):
    p = env.tmp / "core-hosts"
    p.write_text("".join("127.0.0.1 %s\n" % h for h in HOSTS))
    return p


def reload_and_wait(d):
    """HUP, then wait for the reload's ev=config line (result=ok)."""
    t0 = time.time()
    d.send(signal.SIGHUP)
    d.wait_log(since=t0, ev="config", result="ok", timeout=10)


# --- reload and keep-alive connections ----------------------------------------------------------

OPEN_POLICY = """\
[rule linkedin-open]
platforms = linkedin
action = allow
"""

CLOSED_POLICY = """\
[rule linkedin-closed]
platforms = linkedin
action = deny
message = LinkedIn is closed now.
"""


def test_reload_to_deny_reaches_open_keepalive_connection(make_sg, env, hosts):
    d = start_with_rules(make_sg, hosts, OPEN_POLICY)
    port = env.nginx_http
    with d.conn() as c:
        tok1 = token()
        c.send(get_request("www.linkedin.com", port, "/u/" + tok1))
        r = c.read_response()
        assert r.status == 200 and r.body == env.small_body, r
        assert not r.has_token("connection", "close"), "the proxy did not keep the connection: %r" % r
        e = d.wait_log(ev="request", path="/u/" + tok1)
        assert (e["rule"], e["action"], e["status"]) == ("linkedin-open", "allow", "200"), e.raw

        (d.dir / "rules" / "10-policy.ini").write_text(CLOSED_POLICY)
        reload_and_wait(d)
        # The reload took: a new connection is denied by the new rule.
        tok_new = token()
        r_new = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}",
                     "http://www.linkedin.com:%d/u/%s" % (port, tok_new), timeout=10)
        assert r_new.stdout == b"403", (r_new.stdout, r_new.stderr)
        e = d.wait_log(ev="request", path="/u/" + tok_new)
        assert (e["rule"], e["action"]) == ("linkedin-closed", "deny"), e.raw

        # The next request on the connection opened before the reload.
        tok2 = token()
        c.send(get_request("www.linkedin.com", port, "/u/" + tok2))
        try:
            r2 = c.read_response()
        except Closed as ex:
            pytest.fail("the keep-alive connection was closed instead of answering its second "
                        "request: %s" % ex)
        e2 = d.wait_log(ev="request", path="/u/" + tok2)
        assert r2.status == 403, (
            "the request after the reload on the old keep-alive connection was answered %d, "
            "decided by the rules from before the reload: %s" % (r2.status, e2.raw))
        assert b"LinkedIn is closed now." in r2.body, r2.body[:500]
        assert (e2["rule"], e2["action"], e2["status"]) == ("linkedin-closed", "deny", "403"), e2.raw


def test_unrelated_reload_keeps_keepalive_connection(make_sg, env, hosts):
    d = start_with_rules(make_sg, hosts, OPEN_POLICY)
    port = env.nginx_http
    with d.conn() as c:
        tok1 = token()
        c.send(get_request("www.linkedin.com", port, "/u/" + tok1))
        r = c.read_response()
        assert r.status == 200 and r.body == env.small_body, r
        assert not r.has_token("connection", "close"), r

        d.cfg["limits"]["max_per_client"] = "500"
        d.config.write_text(render_config(d.cfg))
        reload_and_wait(d)

        tok2 = token()
        c.send(get_request("www.linkedin.com", port, "/u/" + tok2))
        try:
            r2 = c.read_response()
        except Closed as ex:
            pytest.fail("a reload of an unrelated key closed the open keep-alive connection: %s" % ex)
        assert r2.status == 200 and r2.body == env.small_body, r2
        e = d.wait_log(ev="request", path="/u/" + tok2)
        assert (e["rule"], e["action"], e["status"]) == ("linkedin-open", "allow", "200"), e.raw
        assert e.get("reason") is None, e.raw


# --- the quota re-decision of an open transfer -------------------------------------------------

# Three platforms, one scenario each, all in one daemon and across one minute
# boundary. Each rule with a quota allows one active minute a day: the
# minute the transfer starts in uses it up, so the first traffic of the next
# minute decides again.
#   linkedin: a later rule allows its path (path_regex): the transfer goes on.
#   reddit:   a later rule allows its method (methods): the transfer goes on.
#   youtube:  only a deny follows: the transfer is closed, quota-exhausted.
#   tiktok:   the same for a CONNECT tunnel with requests inside.
QUOTA_POLICY = """\
[rule linkedin-quota]
platforms = linkedin
quota = 1m/day
action = allow

[rule linkedin-downloads]
platforms = linkedin
path_regex = ^/downloads/
action = allow

[rule linkedin-deny]
platforms = linkedin
action = deny

[rule reddit-quota]
platforms = reddit
quota = 1m/day
action = allow

[rule reddit-get]
platforms = reddit
methods = GET
action = allow

[rule reddit-deny]
platforms = reddit
action = deny

[rule youtube-quota]
platforms = youtube
quota = 1m/day
action = allow

[rule youtube-deny]
platforms = youtube
action = deny

[rule tiktok-quota]
platforms = tiktok
quota = 1m/day
action = allow

[rule tiktok-deny]
platforms = tiktok
action = deny
"""

# Under 64 KiB, so that the body is relayed by the event loop, never by splice(2).
QUOTA_BODY = bytes((i * 7 + 3) & 0xFF for i in range(48 * 1024))
TRICKLE = (256, 0.25)  # bytes, pause: about 1 KB a second
AFTER_BOUNDARY = 2.5  # seconds of trickle after the minute boundary
# The daemon's wall clock starts this many seconds before a minute boundary.
LEAD = 15.0 if VALGRIND_LOGS else 7.0
# A Monday, far from midnight: a daily quota does not reset during the test.
FAKE_BOUNDARY = 1796032860  # 2026-11-30T10:01:00Z


def faketime_lib():
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not libs:
        pytest.fail("libfaketime is missing: install the Debian package faketime (make test-deps)")
    return libs[0]


class SlowOrigin:
    """Answers every GET with QUOTA_BODY (Content-Length), sending TRICKLE-sized pieces until
    the real time `until` (time.monotonic()) has passed, then the rest at once."""

    def __init__(self):
        self.until = None
        self.origin = ScriptedOrigin(self.reply)
        self.port = self.origin.port

    def reply(self, sock, req, n):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(QUOTA_BODY))
        step, pause = TRICKLE
        sent = 0
        while sent < len(QUOTA_BODY) - step and time.monotonic() < self.until:
            sock.sendall(QUOTA_BODY[sent:sent + step])
            sent += step
            time.sleep(pause)
        sock.sendall(QUOTA_BODY[sent:])
        return True

    def stop(self):
        self.origin.stop()


@pytest.fixture(scope="module")
def quota_run(env, hosts):
    """One daemon whose clock crosses a minute boundary during three downloads (linkedin,
    reddit, youtube of QUOTA_POLICY) and a tunnel (tiktok), all started in the minute before.
    Yields {"results": {platform: [status, body bytes, error or None, usage-log entry]},
    "tunnel": [status of the request before the boundary, closed after it, error or None,
    usage-log entry], "quota_lines": the ev=quota pct=100 entries}."""
    lib = faketime_lib()
    origin = SlowOrigin()
    offset = FAKE_BOUNDARY - LEAD - time.time()
    fake_env = {
        "LD_PRELOAD": lib,
        "FAKETIME": "%+.3f" % offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # make asan: gcc links the ASan runtime dynamically, and it refuses to
        # start when another library is loaded before it. Ignored by other builds.
        "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                         ":verify_asan_link_order=0").lstrip(":"),
    }
    d = SocialGate(env, name="quota-clock", overrides={"dns": {"hosts_file": str(hosts)}},
                   extra_env=fake_env)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(QUOTA_POLICY)
    results = {}
    try:
        d.start()
        boundary_real = time.monotonic() + (FAKE_BOUNDARY - (time.time() + offset))
        if boundary_real - time.monotonic() < 3.0:
            pytest.fail("socialgate took too long to start: its clock is already within 3 s of "
                        "the minute boundary")
        origin.until = boundary_real + AFTER_BOUNDARY
        paths = {p: "/downloads/%s-%s.bin" % (p, token()) for p in ("linkedin", "reddit", "youtube")}

        def download(platform):
            host = "www.%s.com" % platform
            wait = LEAD + AFTER_BOUNDARY + 20
            c = d.conn(timeout=wait)
            status, body, err = None, b"", None
            try:
                c.send(get_request(host, origin.port, paths[platform], close=True))
                status = c.read_head()[1]
                body = c.read_all(timeout=wait)  # the proxy closes after it (Connection: close)
                if not c.eof:
                    err = "no end within %.0f s" % wait
            except (Closed, OSError) as ex:
                err = str(ex)
            finally:
                c.close()
            results[platform] = [status, body, err]

        tunnel_result = [None, False, None]

        def tunnel():
            port = env.nginx_http
            inner = "GET /u/%s HTTP/1.1\r\nHost: www.tiktok.com:%d\r\n\r\n"
            c = d.conn(timeout=LEAD + 10)
            try:
                c.send("CONNECT www.tiktok.com:%d HTTP/1.1\r\nHost: www.tiktok.com:%d\r\n\r\n"
                       % (port, port))
                if c.read_head()[1] != 200:
                    tunnel_result[2] = "CONNECT not answered 200"
                    return
                c.send(inner % (token(), port))  # uses up the quota's one minute
                tunnel_result[0] = c.read_response().status
                time.sleep(max(0.0, boundary_real - time.monotonic()) + 0.5)
                try:
                    c.send(inner % (token(), port))
                    c.read_response(timeout=5)
                except (Closed, OSError):
                    tunnel_result[1] = True
                tunnel_result[1] = tunnel_result[1] or c.is_closed(5)
            except (Closed, OSError) as ex:
                tunnel_result[2] = str(ex)
            finally:
                c.close()

        threads = [threading.Thread(target=download, args=(p,)) for p in paths]
        threads.append(threading.Thread(target=tunnel))
        for t in threads:
            t.start()
        for t in threads:
            t.join(LEAD + AFTER_BOUNDARY + 30)
        for p, path in paths.items():
            results[p].append(d.wait_log(ev="request", path=path, timeout=10))
        tunnel_result.append(d.wait_log(ev="tunnel", host="www.tiktok.com", timeout=10))
        quota_lines = [e for e in d.entries() if e.get("ev") == "quota" and e.get("pct") == "100"]
        yield {"results": results, "tunnel": tunnel_result, "quota_lines": quota_lines}
    finally:
        died = d.proc is not None and d.proc.poll() is not None and not d.expected_exit
        d.kill()
        origin.stop()
        report = d.sanitizer_report()
        if report:
            pytest.fail("sanitizer report from socialgate %s:\n%s" % (d.name, report))
        if died:
            pytest.fail("socialgate %s died during the quota run (exit %s):\n%s"
                        % (d.name, d.proc.returncode, d.stderr_tail()))


def _fake_minute(entry):
    return int(entry.epoch() // 60)


def test_quota_used_up_before_the_boundary(quota_run):
    """The premise of the quota tests: each download started in the minute before the
    boundary and used up its rule's quota there (ev=quota pct=100)."""
    rules = {e["rule"]: e for e in quota_run["quota_lines"]}
    for rule in ("linkedin-quota", "reddit-quota", "youtube-quota", "tiktok-quota"):
        assert rule in rules, "no ev=quota pct=100 line for %s: %s" % (
            rule, [e.raw for e in quota_run["quota_lines"]])
        assert _fake_minute(rules[rule]) == FAKE_BOUNDARY // 60 - 1, rules[rule].raw


def _assert_completed(quota_run, platform, rule):
    status, body, err, e = quota_run["results"][platform]
    assert err is None and status == 200 and body == QUOTA_BODY, (
        "the %s download was cut at the minute boundary (%s, %d of %d bytes); log: %s"
        % (platform, err or status, len(body), len(QUOTA_BODY), e.raw))
    assert _fake_minute(e) >= FAKE_BOUNDARY // 60, "the download ended before the boundary: " + e.raw
    assert (e["status"], e["action"], e["rule"]) == ("200", "allow", rule), e.raw
    assert e.get("reason") is None, e.raw


def test_quota_redecision_keeps_path(quota_run):
    _assert_completed(quota_run, "linkedin", "linkedin-downloads")


def test_quota_redecision_keeps_method(quota_run):
    _assert_completed(quota_run, "reddit", "reddit-get")


def test_quota_exhausted_transfer_closed_without_other_rule(quota_run):
    status, body, err, e = quota_run["results"]["youtube"]
    assert status is None or len(body) < len(QUOTA_BODY), (
        "the youtube download completed after its quota ran out: %s" % e.raw)
    # Nothing denied it: the line keeps the rule that allowed it, so that counting
    # action=deny by rule counts denials.
    assert (e["reason"], e["action"], e["rule"], e["status"]) == (
        "quota-exhausted", "allow", "youtube-quota", "200"), e.raw
    assert _fake_minute(e) == FAKE_BOUNDARY // 60, e.raw


def test_quota_exhausted_tunnel_closed_and_logged_allow(quota_run):
    first, closed, err, e = quota_run["tunnel"]
    assert err is None and first == 200, (err, first, e.raw)
    assert closed, "the tunnel still relays after its quota ran out: " + e.raw
    assert (e["reason"], e["action"], e["rule"], e["status"]) == (
        "quota-exhausted", "allow", "tiktok-quota", "200"), e.raw
    assert _fake_minute(e) == FAKE_BOUNDARY // 60, e.raw


# --- a reload reaches an open tunnel at its next minute ------------------------------------------


def test_reload_to_deny_closes_open_tunnel_at_next_minute(env, hosts):
    """An open tunnel keeps its decision across a reload until its first traffic in the next
    clock minute; then it is decided again under the new rules and closed when they deny
    (reason=policy-changed)."""
    lead = 15.0 if VALGRIND_LOGS else 6.0
    offset = FAKE_BOUNDARY - lead - time.time()
    fake_env = {
        "LD_PRELOAD": faketime_lib(),
        "FAKETIME": "%+.3f" % offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                         ":verify_asan_link_order=0").lstrip(":"),
    }
    d = SocialGate(env, name="tunnel-clock", overrides={"dns": {"hosts_file": str(hosts)}},
                   extra_env=fake_env)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(OPEN_POLICY)
    port = env.nginx_http
    try:
        d.start()
        boundary_real = time.monotonic() + (FAKE_BOUNDARY - (time.time() + offset))
        if boundary_real - time.monotonic() < 3.0:
            pytest.fail("socialgate took too long to start: its clock is already within 3 s of "
                        "the minute boundary")
        c = d.conn(timeout=10)
        try:
            c.send("CONNECT www.linkedin.com:%d HTTP/1.1\r\nHost: www.linkedin.com:%d\r\n\r\n"
                   % (port, port))
            assert c.read_head()[1] == 200
            inner = "GET /u/%s HTTP/1.1\r\nHost: www.linkedin.com:%d\r\n\r\n"
            c.send(inner % (token(), port))
            r = c.read_response()
            assert r.status == 200, r

            (d.dir / "rules" / "10-policy.ini").write_text(CLOSED_POLICY)
            # The log's clock is the daemon's (fake): count the ev=config lines instead.
            before = sum(1 for e in d.entries() if e.get("ev") == "config")
            d.send(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while sum(1 for e in d.entries() if e.get("ev") == "config") == before:
                assert time.monotonic() < deadline, "the reload was not logged"
                time.sleep(0.05)
            # Still the minute the tunnel was decided in: it keeps its decision.
            assert time.monotonic() < boundary_real - 0.5, "the reload took too long"
            c.send(inner % (token(), port))
            r = c.read_response()
            assert r.status == 200, "the tunnel was cut before its next minute: %r" % r

            time.sleep(max(0.0, boundary_real - time.monotonic()) + 0.5)
            closed = False
            try:
                c.send(inner % (token(), port))
                c.read_response(timeout=5)
            except (Closed, OSError):
                closed = True
            assert closed or c.is_closed(5), "the tunnel still relays after the minute boundary"
        finally:
            c.close()
        e = d.wait_log(ev="tunnel", host="www.linkedin.com", timeout=10)
        assert (e["rule"], e["action"], e["reason"]) == (
            "linkedin-closed", "deny", "policy-changed"), e.raw
        assert _fake_minute(e) == FAKE_BOUNDARY // 60, e.raw
    finally:
        died = d.proc is not None and d.proc.poll() is not None and not d.expected_exit
        d.kill()
        report = d.sanitizer_report()
        if report:
            pytest.fail("sanitizer report from socialgate %s:\n%s" % (d.name, report))
        if died:
            pytest.fail("socialgate %s died (exit %s):\n%s"
                        % (d.name, d.proc.returncode, d.stderr_tail()))
