"""The whole pool: redis-server started by the test on a loopback port with its own folder,
HAProxy (made from contrib/haproxy/haproxy.cfg, send-proxy-v2, health checks on /healthz) in
front of three socialgate processes sharing their state through it ([cluster]). Clients on
their own loopback addresses (curl --interface) go through HAProxy, whose round robin spreads
their requests over the three gateways (each gateway's log shows its share).

The daemons' wall clock is the one of test_cluster.py (libfaketime, a minute the test sets,
each move costing a wait of 5 seconds): the tests need one move."""

import html
import re
import signal
import time

import pytest

from poolkit import Clock, Redis, start_haproxy, wait_stat
from sgtest import (
    BIN, SocialGate, curl, free_port, http_get, kill_group, run, token, wait_port, write_rules,
)

# Quotas follow the identity: the signed-in user, or else the client's address, which behind
# HAProxy is the one of the PROXY header. 127.0.0.8/29 is the office; 127.0.0.2 is not.
A, B, C = "127.0.0.8", "127.0.0.9", "127.0.0.10"
OUTSIDER = "127.0.0.2"
BALANCER = "127.0.0.1"

RULES = """\
[platform testbook]
category = social
domains = facebook.com

[role office]
networks = 127.0.0.8/29

[rule office-quota]
roles = office
platforms = testbook
action = allow
quota = 2m/day

[rule office-after-quota]
roles = office
platforms = testbook
action = deny
message = Quota used up.

[rule testbook-warn]
platforms = testbook
action = warn
message = Think twice.
"""


@pytest.fixture(scope="module")
def whole(env, tmp_path_factory):
    if not BIN.exists():
        pytest.fail("socialgate binary not found at %s" % BIN)
    tmp = tmp_path_factory.mktemp("poolcluster")
    redis = Redis(tmp).start()
    clock = Clock(tmp)
    gws, hp = [], None
    try:
        key = None
        for i in range(3):
            aport = free_port()
            d = SocialGate(env, "whole-gw%d" % (i + 1), extra_env=clock.env(), overrides={
                "proxy": {"proxy_protocol": BALANCER + "/32"},
                "admin": {"listen": "127.0.0.1:%d" % aport},
                "cluster": {"redis": "127.0.0.1:%d" % redis.port, "name": "gw%d" % (i + 1)}})
            d.admin_port = aport
            write_rules(d, RULES)
            if key is not None:  # one Continue key for the pool
                (d.dir / "state" / "continue.key").write_bytes(key)
            gws.append(d)
            d.start()
            assert wait_port("127.0.0.1", aport, 10, d.proc)
            if key is None:
                key = (d.dir / "state" / "continue.key").read_bytes()
        for d in gws:
            d.wait_log(lambda e: e.get("state") == "up", ev="cluster", timeout=8)
        hp, port, sock = start_haproxy(tmp, [("gw%d" % (i + 1), d.port, d.admin_port)
                                             for i, d in enumerate(gws)])
        yield {"gws": gws, "port": port, "sock": sock, "redis": redis, "clock": clock}
    finally:
        kill_group(hp)
        for d in gws:
            d.kill()
        redis.kill()
    for d in gws:
        report = d.sanitizer_report()
        assert not report, "sanitizer report from %s:\n%s" % (d.name, report)


def through(whole, source, url):
    """curl from the source address through HAProxy: (status code, body)."""
    r = curl("--interface", source, "-x", "http://127.0.0.1:%d" % whole["port"],
             "-w", "\n%{http_code}", url, timeout=10)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or b"0"), body


def page_url(env, tok, i):
    return "http://www.facebook.com:%d/u/%s-%d" % (env.nginx_http, tok, i)


def served(whole, paths, timeout=5.0):
    """{path: (gateway index, log entry)} once every path is in some gateway's log (the log
    line is written after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {}
        for i, d in enumerate(whole["gws"]):
            for e in d.entries():
                if e.get("ev") == "request" and e.get("path") in paths:
                    got[e["path"]] = (i, e)
        if len(got) == len(paths) or time.monotonic() > deadline:
            assert len(got) == len(paths), "not logged: %s" % (set(paths) - set(got))
            return got


def ip(e):
    return e["client"].rsplit(":", 1)[0]


def test_continue_through_one_gateway_holds_on_the_others(whole, env):
    """A client outside the office is warned; it follows the Continue link through HAProxy,
    which takes it to the next gateway; its next requests, one on each gateway, pass. The
    Continue is the client's own (its address from the PROXY header), not the balancer's."""
    tok = token()
    code, page = through(whole, OUTSIDER, page_url(env, tok, 0))
    assert code == 403, (code, page[:300])
    m = re.search(r'<a href="(http://socialgate\.local/continue\?[^"]+)"', page.decode())
    assert m, page
    code, _ = through(whole, OUTSIDER, html.unescape(m.group(1)))
    assert code in (302, 303, 307), code
    redis = whole["redis"]
    deadline = time.monotonic() + 2.0
    while redis.cli("EXISTS", "sg:{%s}:w:testbook" % OUTSIDER) != "1":
        assert time.monotonic() < deadline, "the Continue did not reach Redis"
        time.sleep(0.05)
    time.sleep(0.5)  # and from Redis to the other gateways (published after it is stored)
    assert [through(whole, OUTSIDER, page_url(env, tok, i))[0] for i in (1, 2, 3)] == [200] * 3
    got = served(whole, ["/u/%s-%d" % (tok, i) for i in range(4)])
    warned, after = got["/u/%s-0" % tok], [got["/u/%s-%d" % (tok, i)] for i in (1, 2, 3)]
    assert sorted(g for g, _ in after) == [0, 1, 2], "round robin: %s" % [g for g, _ in after]
    assert after[0][0] == (warned[0] + 2) % 3  # the Continue itself went to the gateway between
    for _, e in [warned] + after:
        assert ip(e) == OUTSIDER and e.get("roles", "-") == "-", e.raw
        assert e["rule"] == "testbook-warn", e.raw
    assert redis.cli("KEYS", "sg:{%s}:*" % BALANCER) == ""


def test_quota_runs_out_after_its_minutes_and_a_killed_gateway_loses_none(whole, env):
    """2 minutes a day for each office client (each gateway counting alone would give 6).
    Minute 1: A's requests, one on each gateway, count one minute in Redis, not three; B's
    single request is served by one gateway, which is then killed: HAProxy's check takes it
    out. Minute 2: A and B each get their second minute from one of the two gateways left,
    then both are refused by both, though neither gateway has counted two minutes of theirs
    itself: B's minute on the dead gateway is not lost. C, another office address, still has
    its own minutes: the quota is the real client's, not the balancer's."""
    redis, gws, clock = whole["redis"], whole["gws"], whole["clock"]
    tok = token()

    def get(who, i):
        return through(whole, who, page_url(env, tok, i))[0]

    assert [get(A, i) for i in range(3)] == [200] * 3
    got = served(whole, ["/u/%s-%d" % (tok, i) for i in range(3)])
    assert sorted(g for g, _ in got.values()) == [0, 1, 2], \
        "round robin: %s" % [g for g, _ in got.values()]
    for _, e in got.values():
        assert (ip(e), e["roles"], e["rule"]) == (A, "office", "office-quota"), e.raw
    redis.wait_count(1, rule="office-quota", identity=A)

    assert get(B, 10) == 200
    gi, e = served(whole, ["/u/%s-10" % tok])["/u/%s-10" % tok]
    dead = gws[gi]
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait(timeout=5)
    dead.expected_exit = True
    alive = [d for d in gws if d is not dead]
    redis.wait_count(1, rule="office-quota", identity=B)
    wait_stat(whole["sock"], {"gw%d" % (i + 1): ("DOWN" if d is dead else "UP")
                              for i, d in enumerate(gws)}, timeout=5)

    clock.set(2)
    assert [get(B, 20), get(A, 21)] == [200, 200]  # one on each gateway left
    redis.wait_count(2, rule="office-quota", identity=B)
    redis.wait_count(2, rule="office-quota", identity=A)
    time.sleep(2.0)  # a minute counted by one gateway is seen by the others within 2 seconds
    assert [get(B, 22), get(B, 23), get(A, 24), get(A, 25)] == [403] * 4
    assert [get(C, 30), get(C, 31)] == [200, 200]
    paths = ["/u/%s-%d" % (tok, i) for i in (20, 21, 22, 23, 24, 25, 30, 31)]
    got = served(whole, paths)
    on = [gws[got[p][0]] for p in paths]
    assert dead not in on and all(on.count(d) == 4 for d in alive), \
        "round robin over the two left: %s" % [d.name for d in on]
    assert on[2] != on[3] and on[4] != on[5]  # refused by both
    for p in paths[2:6]:
        assert got[p][1]["rule"] == "office-after-quota", got[p][1].raw
    for p in paths[6:]:
        assert (ip(got[p][1]), got[p][1]["rule"]) == (C, "office-quota"), got[p][1].raw
    redis.wait_count(1, rule="office-quota", identity=C)
    assert redis.count(rule="office-quota", identity=A) == 2
    assert redis.count(rule="office-quota", identity=B) == 2
    assert redis.cli("KEYS", "sg:{%s}:*" % BALANCER) == ""
    # each gateway left names itself in its ev=config line and its /metrics
    for d in alive:
        name = d.cfg["cluster"]["name"]
        assert d.wait_log(ev="config", result="ok")["gw"] == name
        st, _, body = http_get("http://127.0.0.1:%d/metrics" % d.admin_port)
        assert st == 200 and ('socialgate_cluster_up{gateway="%s"} 1' % name) in body.decode()


def test_report_counts_a_minute_once_across_the_pool(whole):
    """Last (it stops the gateways, which write their ev=usage lines as they go): C's
    requests of minute 2 went one to each gateway left; `socialgate report` over the three
    logs counts that one active minute once, as the quota did, not once per gateway."""
    for d in whole["gws"]:
        if d.proc is not None and d.proc.poll() is None:
            assert d.stop()[0] == 0, d.stderr_tail()
    r = run([str(BIN), "report", "--format", "csv"] + [str(d.log) for d in whole["gws"]])
    assert r.returncode == 0, r.stderr
    rows = {tuple(ln.split(",")[:2]): ln.split(",") for ln in r.stdout.decode().splitlines()}
    assert rows[(C, "testbook")][2] == "1", r.stdout.decode()
    assert rows[(A, "testbook")][2] in ("1", "2"), r.stdout.decode()  # minute 1 may be the dead one's
