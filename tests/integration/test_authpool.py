"""The password-check pool (proxy/authpool.c): SIGINT while bcrypt checks run and wait,
under memcheck too, and the bounded queue (503, reason=auth-busy, once AUTHPOOL_MAX_QUEUE
checks wait). Every client is a raw socket sending a wrong password, so each request costs
one bcrypt in the pool's two threads."""

import base64
import re
import select
import shutil
import signal
import time

import pytest

import sgtest
from sgtest import REPO_ROOT, binary_flavour, free_port, http_get, make_htpasswd, token

FLAVOUR = binary_flavour()
VALGRIND_WRAP = REPO_ROOT / "tests" / "integration" / "valgrind-wrap.sh"


def max_queue():
    """AUTHPOOL_MAX_QUEUE, read from proxy/authpool.h."""
    text = (REPO_ROOT / "proxy" / "authpool.h").read_text()
    m = re.search(r"^#define AUTHPOOL_MAX_QUEUE (\d+)$", text, re.M)
    assert m, "AUTHPOOL_MAX_QUEUE not found in proxy/authpool.h"
    return int(m.group(1))


def auth_daemon(make_sg, tmp_path, cost, overrides=None):
    """A private daemon whose htpasswd holds alice with a bcrypt hash of this cost."""
    hp = make_htpasswd(tmp_path / "users.htpasswd", {"alice": "alice-pw"}, fmt=("-B", "-C", str(cost)))
    cfg = {"auth": {"htpasswd": str(hp)}}
    for section, kv in (overrides or {}).items():
        cfg.setdefault(section, {}).update(kv)
    return make_sg(cfg)


def request(env, password, tok):
    cred = base64.b64encode(b"alice:" + password.encode()).decode()
    return ("GET http://127.0.0.1:%d/u/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Proxy-Authorization: Basic %s\r\n\r\n" % (env.nginx_http, tok, env.nginx_http, cred))


def flood(d, env, n, tok):
    """n connections, each sending one request with a wrong password; returns them open."""
    conns = []
    try:
        for i in range(n):
            c = d.conn(timeout=10)
            conns.append(c)
            c.send(request(env, "wrong-%d" % i, "%s-%d" % (tok, i)))
    except BaseException:
        close_all(conns)
        raise
    return conns


def close_all(conns):
    for c in conns:
        c.close()


def first_answer(conns, timeout):
    """Waits until one of conns has bytes to read; returns its status line."""
    ready, _, _ = select.select([c.sock for c in conns], [], [], timeout)
    assert ready, "no password check was answered within %ss" % timeout
    c = next(c for c in conns if c.sock is ready[0])
    return c.read_head(timeout=5)[1]


def sigint_with_checks_in_flight(d, env, n, stop_timeout):
    """n wrong-password requests; SIGINT once the first is answered (the two threads are
    busy with the next ones, the rest wait in the queue). Returns (exit code, seconds)."""
    conns = flood(d, env, n, token())
    try:
        status = first_answer(conns, timeout=30)
        assert status == 407, "a wrong password got %s" % status
        rc, secs = d.stop(signal.SIGINT, timeout=stop_timeout)
    finally:
        close_all(conns)
    return rc, secs


def assert_checks_were_waiting(d):
    """Requests still waiting for their check at SIGINT ended unanswered, reason=shutdown."""
    shut = [e for e in d.entries() if e.get("ev") == "request" and e.get("reason") == "shutdown"]
    assert shut, "no request was still waiting for its password check at SIGINT; log:\n%s" % (
        "\n".join(e.raw for e in d.entries()[-8:]))


@pytest.mark.slow_under_valgrind
def test_sigint_with_checks_in_flight_exits_within_a_second(make_sg, env, tmp_path):
    # cost 11: a check takes 0.1-0.2 s; the 40 requests queue 2-4 s of checks, which SIGINT
    # must drop, waiting at most for the two in progress
    d = auth_daemon(make_sg, tmp_path, cost=11)
    rc, secs = sigint_with_checks_in_flight(d, env, 40, stop_timeout=30)
    assert rc is not None, "socialgate did not exit within 30 s of SIGINT"
    assert rc == 0, "socialgate exited %s after SIGINT; stderr:\n%s" % (rc, d.stderr_tail())
    assert secs < 1.0, ("SIGINT with password checks queued took %.2f s to exit (at most the "
                        "bcrypt in progress in each thread may be waited for)" % secs)
    assert_checks_were_waiting(d)


def test_sigint_with_checks_in_flight_valgrind_clean(make_sg, env, tmp_path, monkeypatch):
    if FLAVOUR != "plain":
        under = {"asan": "AddressSanitizer", "tsan": "ThreadSanitizer",
                 "wrapper": "a wrapper script (make test-valgrind)"}[FLAVOUR]
        pytest.skip("SOCIALGATE_BIN already runs socialgate under %s; memcheck needs the plain "
                    "build" % under)
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is missing (Debian package in the Makefile's TEST_DEPS; run make test-deps)")
    logs = tmp_path / "vg"
    # the suite's own wrapper: the same memcheck flags as make test-valgrind
    monkeypatch.setitem(sgtest.CLEAN_ENV, "SG_VALGRIND_TARGET", str(sgtest.BIN))
    monkeypatch.setitem(sgtest.CLEAN_ENV, "SG_VALGRIND_LOGS", str(logs))
    monkeypatch.setattr(sgtest, "BIN", VALGRIND_WRAP)
    # cost 11 and a longer connect_timeout: under memcheck a check is several times slower,
    # and the waiting ones must still be waiting at SIGINT. Memcheck runs one thread at a
    # time: the wrapper's --fair-sched=yes lets the main thread take SIGINT while the two
    # checking threads spin (without it they could drain the whole queue first), and 48
    # requests queue far more checks than the time SIGINT takes to arrive.
    d = auth_daemon(make_sg, tmp_path, cost=11, overrides={"limits": {"connect_timeout": "30s"}})
    rc, secs = sigint_with_checks_in_flight(d, env, 48, stop_timeout=60)
    vg_path = logs / ("vg.%d.log" % d.proc.pid)
    vg = vg_path.read_text(errors="replace") if vg_path.exists() else "(no log at %s)" % vg_path
    assert rc is not None, "socialgate under memcheck did not exit within 60 s of SIGINT"
    assert rc != 99, "memcheck found errors or definite leaks:\n%s" % vg[-12000:]
    assert rc == 0, "socialgate under memcheck exited %s; stderr:\n%s\nmemcheck:\n%s" % (
        rc, d.stderr_tail(), vg[-6000:])
    assert "ERROR SUMMARY: 0 errors" in vg, "memcheck:\n%s" % vg[-12000:]
    assert secs < 20, "SIGINT under memcheck took %.1f s to exit" % secs
    assert_checks_were_waiting(d)


def test_full_auth_queue_answers_503(make_sg, env, tmp_path):
    bound = max_queue()
    admin_port = free_port()
    # cost 12 (about 0.2 s a check): while the requests arrive the two threads finish only
    # a few, so the queue fills; `extra` requests beyond threads + bound leave room for them
    d = auth_daemon(make_sg, tmp_path, cost=12,
                    overrides={"admin": {"listen": "127.0.0.1:%d" % admin_port}})
    extra = 64
    n = 2 + bound + extra
    tok = token()
    start = time.time()
    conns = flood(d, env, n, tok)
    try:
        busy = d.wait_log(ev="request", reason="auth-busy", since=start, timeout=20)
        assert busy.get("status") == "503", busy.raw
        # the client whose line that is got a 503 (the log names its port)
        port = int(busy["client"].rsplit(":", 1)[1])
        c = next((c for c in conns if c.local_port == port), None)
        assert c is not None, "no client of this test has port %d: %s" % (port, busy.raw)
        resp = c.read_response(timeout=5)
        assert resp.status == 503, resp
        st, _, body = http_get("http://127.0.0.1:%d/metrics" % admin_port)
        assert st == 200
        m = re.search(rb"^socialgate_auth_busy_total (\d+)$", body, re.M)
        assert m, "no socialgate_auth_busy_total in /metrics"
        refused = [e for e in d.entries() if e.get("reason") == "auth-busy"]
        assert int(m.group(1)) >= len(refused) >= 1, (m.group(0), len(refused))
        assert all(e.get("status") == "503" for e in refused), [e.raw for e in refused]
    finally:
        close_all(conns)
    # Every client went away and its transaction ended (a line each, at most connect_timeout
    # later): the checks not started are dropped, not run (about 25 s of bcrypt otherwise),
    # so a right password is checked at once, well within connect_timeout (2 s here; a check
    # still waiting then gets 503 auth-timeout).
    deadline = time.monotonic() + 15
    while True:
        ended = [e for e in d.entries() if (e.get("path") or "").startswith("/u/%s-" % tok)]
        if len(ended) >= n:
            break
        assert time.monotonic() < deadline, "%d of %d flood requests logged after 15 s" % (len(ended), n)
        time.sleep(0.1)
    c = d.conn(timeout=10)
    try:
        c.send(request(env, "alice-pw", token()))
        resp = c.read_response(timeout=10)
    finally:
        c.close()
    assert resp.status == 200, "the right password after the flood got %s %r" % (resp.status, resp.body[:200])
