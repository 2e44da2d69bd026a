"""Fixtures for the socialgate integration tests.

Everything runs on loopback: a test CA made with openssl, nginx (HTTP and
HTTPS) serving static files, a Python origin and a DNS stub in threads of this
process, and socialgate daemons started from a per-daemon config directory.
Every process is started in its own process group and the group is killed at
the end. The binary is ./socialgate at the repository root, or $SOCIALGATE_BIN.
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from origin import DnsStub, Origin  # noqa: E402
from sgtest import (  # noqa: E402
    BIG_SIZE, CLEAN_ENV, NGINX, NGINX_CONF, POST_SIZE, SMALL_BODY, Env, SocialGate, _make_ca,
    _make_file, assert_not_died, curl, free_port, kill_group, token, wait_port,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow_under_valgrind: measures speed, time bounds or resources that valgrind "
        "distorts; make test-valgrind deselects it")


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    e = Env()
    e.tmp = tmp_path_factory.mktemp("sg")
    e.ca, e.cert, e.key = _make_ca(e.tmp / "ca")

    # files served by nginx
    www = e.tmp / "www"
    www.mkdir()
    (www / "small.txt").write_bytes(SMALL_BODY)
    e.small_body = SMALL_BODY
    e.big_path = www / "big.bin"
    e.big_size = BIG_SIZE
    e.big_sha = _make_file(e.big_path, BIG_SIZE, b"big")
    e.post_path = e.tmp / "post.bin"
    e.post_size = POST_SIZE
    e.post_sha = _make_file(e.post_path, POST_SIZE, b"post")

    e.hosts = e.tmp / "hosts"
    e.hosts.write_text(
        "127.0.0.1 www.facebook.com\n"
        "127.0.0.1 www.linkedin.com\n"
        "127.0.0.1 intranet.example.test\n"
        "127.0.0.1 origin.test\n"
    )

    procs = []
    e.origin = Origin()
    e.py_port = e.origin.port
    e.dns = DnsStub()
    e.dns_port = e.dns.port
    e.dead_port = free_port()  # nothing listens here

    ngx = e.tmp / "nginx"
    for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ngx / sub).mkdir(parents=True, exist_ok=True)
    e.nginx_http = free_port()
    e.nginx_https = free_port()
    (ngx / "nginx.conf").write_text(NGINX_CONF.format(
        d=ngx, http=e.nginx_http, https=e.nginx_https, cert=e.cert, key=e.key, www=www))
    nginx_out = open(ngx / "stdout.log", "wb")
    p = subprocess.Popen([NGINX, "-e", str(ngx / "error.log"), "-p", str(ngx) + "/",
                          "-c", str(ngx / "nginx.conf")],
                         stdout=nginx_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env=CLEAN_ENV)
    procs.append(p)
    e.nginx_proc = p
    try:
        ok = wait_port("127.0.0.1", e.nginx_http, 10, p) and wait_port("127.0.0.1", e.nginx_https, 10, p)
        if not ok:
            err = (ngx / "error.log").read_text(errors="replace") if (ngx / "error.log").exists() else ""
            pytest.fail("nginx did not start: %s" % err[-2000:])
        yield e
    finally:
        for p in procs:
            kill_group(p)
        nginx_out.close()
        e.origin.stop()
        e.dns.stop()
        for f in (e.big_path, e.post_path):
            try:
                f.unlink()
            except OSError:
                pass




@pytest.fixture(scope="session")
def sg_session(env):
    holder = {"d": SocialGate(env, "main").start()}
    yield holder
    holder["d"].kill()
    report = holder["d"].sanitizer_report()
    if report:
        pytest.fail("sanitizer report from the shared socialgate:\n%s" % report)


@pytest.fixture
def sg(sg_session, env):
    """The shared daemon; restarted if an earlier test killed it. Fails the test that crashes it."""
    d = sg_session["d"]
    if not d.alive():
        d.kill()
        d = sg_session["d"] = SocialGate(env, "main-restarted").start()
    start = d.stderr_size()
    yield d
    assert_not_died(d, "shared daemon", start)


@pytest.fixture
def make_sg(env):
    """Factory: make_sg(overrides={section: {key: value}}) starts a private daemon."""
    started = []

    def _make(overrides=None, start=True, **kw):
        d = SocialGate(env, overrides=overrides, **kw)
        started.append(d)
        if start:
            d.start()
        return d

    yield _make
    died = [d for d in started if d.proc is not None and d.proc.poll() is not None and not d.expected_exit]
    for d in started:
        d.kill()
    for d in started:
        report = d.sanitizer_report()
        if report:
            pytest.fail("sanitizer report from socialgate %s:\n%s" % (d.name, report))
    for d in died:
        pytest.fail("socialgate %s died unexpectedly (exit %s); stderr tail:\n%s"
                    % (d.name, d.proc.returncode, d.stderr_tail()))


@pytest.fixture(scope="module", autouse=True)
def still_serves_after_module(request, env, sg_session):
    """After each module the shared daemon must still answer a normal GET."""
    yield
    d = sg_session["d"]
    if not d.alive():
        pytest.fail("shared socialgate is not running after module %s (exit %s); stderr:\n%s"
                    % (request.module.__name__, d.proc.returncode, d.stderr_tail()))
    path = "/u/health-" + token()
    r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d%s" % (env.nginx_http, path), timeout=10)
    assert r.stdout == b"200", "after module %s: GET via the shared daemon gave %r %r" % (
        request.module.__name__, r.stdout, r.stderr)


@pytest.fixture
def origin(env):
    return env.origin
