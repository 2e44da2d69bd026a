"""A pool of gateways ([cluster]): three socialgate processes share quotas, active minutes and
Continues through one redis-server, each started by the test on a loopback port with its own
folder. A client's requests go round the three directly (no load balancer here).

The daemons' clocks are frozen by libfaketime at a time the test writes to a file and moves a
minute at a time, the same for the three, so that "the same minute" on two gateways is exact;
the monotonic clock (heartbeats, timeouts) is left real. An event loop reads the wall clock
again every 5 seconds (libevent's cached time), so each move is followed by a wait of that
length.
"""

import html
import re
import signal
import time

import pytest

from poolkit import Clock, Redis
from sgtest import SocialGate, assert_not_died, curl, free_port, token, write_rules

PLATFORM = """\
[platform testbook]
category = social
domains = facebook.com
"""

QUOTA_RULES = PLATFORM + """
[rule testbook-quota]
platforms = testbook
action = allow
quota = {quota}/day

[rule testbook-after-quota]
platforms = testbook
action = deny
message = Quota used up.
"""

WARN_RULES = PLATFORM + """
[rule testbook-warn]
platforms = testbook
action = warn
message = Think twice.
"""


@pytest.fixture
def pool(env, tmp_path):
    """pool(rules, n=3, redis=Redis, cluster={...}) -> [SocialGate]; all killed at the end."""
    started, servers = [], []
    clock = Clock(tmp_path)

    def _make(rules, redis, n=3, cluster=None, start=True):
        gws = []
        key = None
        for i in range(n):
            c = {"redis": "127.0.0.1:%d" % redis.port, "name": "gw%d" % (i + 1)}
            c.update(cluster or {})
            d = SocialGate(env, name="pool-gw%d" % (i + 1), overrides={"cluster": c},
                           extra_env=clock.env())
            write_rules(d, rules)
            # One Continue key for the pool: a Continue link made by one works on all.
            if key is not None:
                (d.dir / "state" / "continue.key").write_bytes(key)
            started.append(d)
            gws.append(d)
            if start:
                d.start()
                if key is None:
                    key = (d.dir / "state" / "continue.key").read_bytes()
        return gws

    _make.clock = clock
    _make.servers = servers
    yield _make
    for d in started:
        d.kill()
    for s in servers:
        s.kill()
    for d in started:
        report = d.sanitizer_report()
        assert not report, "sanitizer report from %s:\n%s" % (d.name, report)


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.kill()


def _get(d, tok, i=0, url=None):
    """One request to testbook through gateway d; returns the status."""
    url = url or "http://www.facebook.com:%d/u/%s-%d" % (d.env.nginx_http, tok, i)
    r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}", url, timeout=10)
    return int(r.stdout or b"0")


def _wait_up(gws, timeout=8.0):
    for d in gws:
        d.wait_log(lambda e: e.get("state") == "up", ev="cluster", timeout=timeout)


def _cluster_lines(d):
    return [e for e in d.entries() if e.get("ev") == "cluster"]


def test_quota_runs_out_after_its_minutes_across_the_pool(pool, redis):
    """2 minutes a day, the client going round three gateways: a minute served by all three
    counts once, and the third minute is refused by the gateways that served none of the
    second (each counting alone would allow six minutes)."""
    gws = pool(QUOTA_RULES.format(quota="2m"), redis)
    _wait_up(gws)
    tok = token()
    # minute 1 on every gateway: one minute
    assert [_get(d, tok, i) for i, d in enumerate(gws)] == [200, 200, 200]
    redis.wait_count(1)
    pool.clock.set(2)
    assert _get(gws[1], tok, 10) == 200
    redis.wait_count(2)
    q = gws[1].wait_log(ev="quota", pct="100", timeout=5)
    assert (q["used_min"], q["quota_min"]) == ("2", "2"), q.raw
    pool.clock.set(3)  # the other gateways heard of minute 2 well within 2 seconds
    assert [_get(d, tok, 30 + i) for i, d in enumerate(gws)] == [403, 403, 403]
    e = gws[0].wait_log(ev="request", path="/u/%s-30" % tok)
    assert e["rule"] == "testbook-after-quota", e.raw
    assert redis.count() == 2
    # ev=quota pct=100 written once in the pool, by the gateway that counted the minute
    assert sum(1 for d in gws for e in d.entries()
               if e.get("ev") == "quota" and e.get("pct") == "100") == 1
    # gw= names each gateway in its ev=config line
    for i, d in enumerate(gws):
        assert d.wait_log(ev="config", result="ok")["gw"] == "gw%d" % (i + 1)


def test_continue_through_one_gateway_holds_on_the_others(pool, redis):
    gws = pool(WARN_RULES, redis)
    _wait_up(gws)
    tok = token()
    url = "http://www.facebook.com:%d/u/%s-w" % (gws[0].env.nginx_http, tok)
    r = curl("-x", gws[0].proxy, url, timeout=10)
    page = r.stdout.decode(errors="replace")
    m = re.search(r'<a href="(http://socialgate\.local/continue\?[^"]+)"', page)
    assert m, page
    for d in gws[1:]:
        assert _get(d, tok, url=url) == 403, "warned before any Continue"
    assert _get(gws[0], tok, url=html.unescape(m.group(1))) in (302, 303, 307)
    deadline = time.monotonic() + 2.0
    while redis.cli("EXISTS", "sg:{127.0.0.1}:w:testbook") != "1":
        assert time.monotonic() < deadline, "the Continue did not reach Redis"
        time.sleep(0.05)
    time.sleep(0.2)
    for d in gws:
        assert _get(d, tok, url=url) == 200, d.name
    ttl = int(redis.cli("TTL", "sg:{127.0.0.1}:w:testbook"))
    assert 3500 < ttl <= 3610, ttl  # the Continue lasts an hour (warn_for) in Redis too


def test_redis_killed_and_restarted(pool, redis):
    """Redis goes away for two minutes: no request fails, each gateway logs
    ev=cluster state=down once and state=up when it is back, the minutes counted meanwhile are
    merged into the restarted (empty) Redis, and the quota is not overshot beyond the minutes
    of the outage."""
    gws = pool(QUOTA_RULES.format(quota="3m"), redis)
    _wait_up(gws)
    tok = token()
    assert _get(gws[0], tok, 0) == 200
    redis.wait_count(1)
    time.sleep(0.2)
    redis.kill()
    for d in gws:
        d.wait_log(lambda e: e.get("state") == "down", ev="cluster", timeout=5)
    pool.clock.set(2)
    # minute 2 on two gateways, each counting it alone
    assert _get(gws[1], tok, 10) == 200
    assert _get(gws[2], tok, 20) == 200
    redis.start()  # same port, empty
    deadline = time.monotonic() + 10
    for d in gws:
        while sum(1 for e in _cluster_lines(d) if e.get("state") == "up") < 2:
            assert time.monotonic() < deadline, [e.raw for e in _cluster_lines(d)]
            time.sleep(0.1)
    # minute 1 (known to all before the outage) and minute 2 counted meanwhile, once
    redis.wait_count(2, timeout=10)
    for d in gws:
        states = [e["state"] for e in _cluster_lines(d)]
        assert states == ["up", "down", "up"], (d.name, states)
        down = [e for e in _cluster_lines(d) if e["state"] == "down"][0]
        assert down["gw"] == d.cfg["cluster"]["name"] and down.get("reason"), down.raw
    ups = [[e for e in _cluster_lines(d) if e["state"] == "up"][-1] for d in gws]
    assert [e["merged"] for e in ups] == ["0", "1", "1"], [e.raw for e in ups]
    # the rest of the quota: minute 3 on the gateway that served neither minute 2, then
    # refused everywhere: no minute more than the quota
    pool.clock.set(3)
    assert _get(gws[0], tok, 30) == 200
    redis.wait_count(3)
    pool.clock.set(4)
    assert [_get(d, tok, 40 + i) for i, d in enumerate(gws)] == [403, 403, 403]
    allowed = sum(1 for d in gws for e in d.entries()
                  if e.get("ev") == "request" and e.get("path", "").startswith("/u/" + tok) and
                  e.get("status") == "200")
    assert allowed == 4  # three minutes, one of them served by two gateways
    for d in gws:
        assert_not_died(d, "Redis went away and came back")


def test_redis_that_hangs(pool, redis):
    """A Redis that stops answering without closing its connections (SIGSTOP): within a few
    seconds the gateway logs state=down and decides on its own counts again, instead of
    waiting for an answer before each request; state=up when it answers again."""
    gws = pool(QUOTA_RULES.format(quota="5m"), redis, n=1)
    _wait_up(gws)
    d = gws[0]
    tok = token()
    assert _get(d, tok, 0) == 200
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        e = d.wait_log(lambda x: x.get("state") == "down", ev="cluster", timeout=10)
        assert "answer" in e.raw, e.raw  # reason="no answer from Redis for 5 seconds"
        t0 = time.monotonic()
        assert _get(d, tok, 1) == 200
        assert time.monotonic() - t0 < 0.9, "a request waited for a Redis known to hang"
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while sum(1 for x in _cluster_lines(d) if x.get("state") == "up") < 2:
        assert time.monotonic() < deadline, [x.raw for x in _cluster_lines(d)]
        time.sleep(0.1)


def test_metrics_count_the_outage(pool, redis):
    adm = free_port()
    gws = pool(QUOTA_RULES.format(quota="5m"), redis, n=1, start=False)
    d = gws[0]
    cfg = d.config.read_text() + "\n[admin]\nlisten = 127.0.0.1:%d\n" % adm
    d.config.write_text(cfg)
    d.start()
    _wait_up(gws)
    redis.kill()
    d.wait_log(lambda e: e.get("state") == "down", ev="cluster", timeout=5)
    r = curl("http://127.0.0.1:%d/readyz" % adm)
    assert r.stdout == b"ready\n", r  # degraded, not down
    text = curl("http://127.0.0.1:%d/metrics" % adm).stdout.decode()
    assert 'socialgate_cluster_up{gateway="gw1"} 0' in text, text
    assert 'socialgate_cluster_outages_total{gateway="gw1"} 1' in text, text
    assert 'socialgate_up{gateway="gw1"} 1' in text, text


def test_password_right_and_wrong(pool, tmp_path):
    r = Redis(tmp_path, password="s3cret-" + token()).start()
    try:
        good = tmp_path / "good.pass"
        good.write_text(r.password + "\n")
        good.chmod(0o600)
        bad = tmp_path / "bad.pass"
        bad.write_text("wrong\n")
        bad.chmod(0o600)
        ok = pool(QUOTA_RULES.format(quota="5m"), r, n=1, cluster={"password_file": str(good)})
        _wait_up(ok)
        tok = token()
        assert _get(ok[0], tok) == 200
        r.wait_count(1)
        wrong = pool(QUOTA_RULES.format(quota="5m"), r, n=1, cluster={"password_file": str(bad)})
        e = wrong[0].wait_log(lambda x: x.get("state") == "down", ev="cluster", timeout=5)
        assert "WRONGPASS" in e["reason"] and "password_file" in e["reason"], e.raw
        assert "refused the password of password_file" in wrong[0].stderr_tail()
        # still serving, counting locally
        assert _get(wrong[0], tok, 1) == 200
        assert len(_cluster_lines(wrong[0])) == 1  # logged once, not at every retry
    finally:
        r.kill()


def test_check_address_and_password_file(env, tmp_path):
    """-t checks the address syntax and the secret file; start does not wait for Redis."""
    from sgtest import BIN, run
    loose = tmp_path / "loose.pass"
    loose.write_text("x\n")
    loose.chmod(0o644)
    cases = [
        ("redis = localhost:6379", "expected an IP address"),
        ("redis = 127.0.0.1", "expected host:port"),
        ("redis = [::1]:0", "expected host:port"),
        ("redis = [127.0.0.1]:6379", "not an IPv6 address"),
        ("name = gw 1", "only letters"),
        ("redis = 127.0.0.1:6379\npassword_file = %s" % loose, "readable by others"),
    ]
    for line, want in cases:
        d = SocialGate(env, name="cluster-t")
        write_rules(d, PLATFORM)
        d.config.write_text(d.config.read_text() + "\n[cluster]\n" + line + "\n")
        p = run([str(BIN), "-t", "-c", str(d.config)])
        out = (p.stdout + p.stderr).decode()
        assert p.returncode != 0 and want in out and "proxy.ini:" in out, (line, out)
    for line in ("redis = [::1]:6379", "redis = /run/redis/redis.sock",
                 "redis = 127.0.0.1:%d\nname = gw-1.site_a" % free_port()):
        d = SocialGate(env, name="cluster-t")
        write_rules(d, PLATFORM)
        d.config.write_text(d.config.read_text() + "\n[cluster]\n" + line + "\n")
        p = run([str(BIN), "-t", "-c", str(d.config)])
        assert p.returncode == 0, (line, p.stdout + p.stderr)
