"""The admin endpoint ([admin]): /metrics checked by the real promtool, /healthz and
/readyz (also while draining), /proxy.pac, the allow list, `-t` on a listen address
beyond loopback, and the reload counters after HUP."""

import json
import re
import shutil
import signal
import subprocess
import time

import pytest

from rawhttp import Conn
from sgtest import (
    ALLOW_OPAQUE, BIN, CLEAN_ENV, free_port, http_get, make_htpasswd, render_config, run, token,
    wait_port, write_rules,
)

PROM_CT = "text/plain; version=0.0.4"
PAC_CT = "application/x-ns-proxy-autoconfig"

RULES = """\
[platform testbook]
category = social
domains = facebook.com

[platform workbook]
category = social
domains = linkedin.com

[rule testbook-ok]
platforms = testbook
action = allow

[rule no-workbook]
platforms = workbook
action = deny
"""


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail("missing tool(s): %s (Debian packages in the Makefile's TEST_DEPS; "
                    "run make test-deps)" % ", ".join(missing))


def with_admin(make_sg, admin=None, start=True, rules=RULES, **over):
    aport = free_port()
    cfg = {"admin": {"listen": "127.0.0.1:%d" % aport}}
    cfg["admin"].update(admin or {})
    for section, kv in over.items():
        cfg.setdefault(section, {}).update(kv)
    d = make_sg(cfg, start=False)
    if rules:
        write_rules(d, rules)
    d.admin = "http://127.0.0.1:%d" % aport
    d.admin_port = aport
    if start:
        d.start()
        assert wait_port("127.0.0.1", aport, 10, d.proc), "admin endpoint not listening"
    return d


# --- metrics ---------------------------------------------------------------------------------

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of the Prometheus text format."""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = SAMPLE_RE.match(ln)
        assert m, "not a sample line: %r" % ln
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def get_metrics(d):
    st, headers, body = http_get(d.admin + "/metrics")
    assert st == 200, (st, body)
    assert headers["Content-Type"].startswith(PROM_CT), headers["Content-Type"]
    return body.decode()


def promtool_check(text):
    need("promtool")
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60, env=CLEAN_ENV)
    assert r.returncode == 0, "promtool check metrics (exit %d):\n%s%s\n--- metrics:\n%s" % (
        r.returncode, r.stdout.decode(), r.stderr.decode(), text)


def curl_code(d, url, *extra):
    r = run(["curl", "-sS", "--max-time", "15", "-x", d.proxy, *extra, "-o", "/dev/null",
             "-w", "%{http_code}", url], timeout=25)
    return int(r.stdout.decode()[-3:] or 0)


def test_metrics_valid_and_counters_move(make_sg, env):
    d = with_admin(make_sg)
    before_text = get_metrics(d)
    promtool_check(before_text)
    before = parse_metrics(before_text)
    assert metric(before, "socialgate_up") == 1
    for name in ("socialgate_requests_total", "socialgate_tunnels_total", "socialgate_bytes_total",
                 "socialgate_config_reloads_total", "socialgate_connections_open",
                 "socialgate_quota_exhaustions_total", "socialgate_upstream_errors_total",
                 "socialgate_dns_failures_total", "socialgate_auth_failures_total"):
        assert re.search(r"^# TYPE %s (counter|gauge)$" % name, before_text, re.M), name

    tok = token()
    nx = env.nginx_http
    codes = [curl_code(d, "http://www.facebook.com:%d/u/%s-%d" % (nx, tok, i)) for i in range(3)]
    codes += [curl_code(d, "http://www.linkedin.com:%d/u/%s-d%d" % (nx, tok, i)) for i in range(2)]
    codes += [curl_code(d, "http://127.0.0.1:%d/u/%s-n%d" % (nx, tok, i)) for i in range(4)]
    codes += [curl_code(d, "http://127.0.0.1:%d/x/%s-dead" % (env.dead_port, tok))]
    codes += [curl_code(d, "http://nohost-%s.invalid/x" % tok)]
    codes += [curl_code(d, "https://www.facebook.com:%d/u/%s-t" % (env.nginx_https, tok),
                        "--cacert", str(env.ca))]
    assert codes == [200] * 3 + [403] * 2 + [200] * 4 + [502, 502, 200], codes

    # every transaction has its line, then the counters agree with the lines
    deadline = time.monotonic() + 5
    while True:
        lines = [e for e in d.entries() if e.get("ev") in ("request", "tunnel")]
        if len(lines) >= len(codes) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == len(codes), [e.raw for e in lines]
    after_text = get_metrics(d)
    promtool_check(after_text)
    after = parse_metrics(after_text)

    want = {}
    for e in lines:
        kind = "socialgate_tunnels_total" if e["ev"] == "tunnel" else "socialgate_requests_total"
        platform = "unclassified" if e["platform"] == "-" else e["platform"]
        action = "none" if e["action"] == "-" else e["action"]
        for key, inc in (((kind, (("action", action), ("platform", platform))), 1),
                         (("socialgate_bytes_total", (("direction", "up"), ("platform", platform))), e.int("up")),
                         (("socialgate_bytes_total", (("direction", "down"), ("platform", platform))), e.int("down"))):
            want[key] = want.get(key, 0) + inc
    for (name, labels), inc in want.items():
        delta = metric(after, name, **dict(labels)) - metric(before, name, **dict(labels))
        assert delta == inc, "%s%s moved by %s, the usage log says %s\n%s" % (
            name, dict(labels), delta, inc, after_text)
    # the figures the scenario fixes, whatever the log says
    assert metric(after, "socialgate_requests_total", action="allow", platform="testbook") - \
        metric(before, "socialgate_requests_total", action="allow", platform="testbook") == 3
    assert metric(after, "socialgate_requests_total", action="deny", platform="workbook") - \
        metric(before, "socialgate_requests_total", action="deny", platform="workbook") == 2
    assert metric(after, "socialgate_tunnels_total", action="allow", platform="testbook") - \
        metric(before, "socialgate_tunnels_total", action="allow", platform="testbook") == 1
    assert metric(after, "socialgate_dns_failures_total") - metric(before, "socialgate_dns_failures_total") == 1
    assert metric(after, "socialgate_upstream_errors_total") - \
        metric(before, "socialgate_upstream_errors_total") >= 1
    assert metric(after, "socialgate_bytes_total", direction="down", platform="testbook") > 0
    assert metric(after, "socialgate_active_users") >= 1


def test_metrics_auth_failures_and_quota(make_sg, env, tmp_path):
    hp = make_htpasswd(tmp_path / "users.htpasswd", {"alice": "alice-pw"})
    rules = RULES.replace("action = allow\n", "action = allow\nquota = 1m/day\n", 1)
    d = with_admin(make_sg, rules=rules, auth={"htpasswd": str(hp)})
    before = parse_metrics(get_metrics(d))
    tok = token()
    assert curl_code(d, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok),
                     "--proxy-user", "alice:wrong") == 407
    assert curl_code(d, "http://www.facebook.com:%d/u/%s" % (env.nginx_http, tok),
                     "--proxy-user", "alice:alice-pw") == 200
    d.wait_log(ev="quota", timeout=5)
    text = get_metrics(d)
    promtool_check(text)
    after = parse_metrics(text)
    assert metric(after, "socialgate_auth_failures_total") - metric(before, "socialgate_auth_failures_total") == 1
    assert metric(after, "socialgate_quota_exhaustions_total") - \
        metric(before, "socialgate_quota_exhaustions_total") == 1


# --- health ----------------------------------------------------------------------------------

def test_healthz_readyz_and_drain(make_sg, env):
    # the tunnel carries ECHO bytes, neither TLS nor HTTP: opaque, allowed here
    d = with_admin(make_sg, limits={"drain": "5s"}, rules=RULES + ALLOW_OPAQUE)
    for path, body in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        st, headers, got = http_get(d.admin + path)
        assert (st, got) == (200, body), (path, st, got)
        assert "no-store" in headers.get("Cache-Control", ""), headers
    # a tunnel stays open, so the drain lasts
    c = Conn("127.0.0.1", d.port, timeout=10)
    try:
        c.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % env.py_port)
        assert c.read_head()[1] == 200
        t0 = time.monotonic()
        d.send(signal.SIGTERM)
        d.expected_exit = True
        seen = {}
        while time.monotonic() - t0 < 4 and d.alive():
            st_h = http_get(d.admin + "/healthz", timeout=2)[0]
            st_r = http_get(d.admin + "/readyz", timeout=2)[0]
            if st_h == 503 and st_r == 503:
                seen["draining"] = (st_h, st_r)
                seen["metrics"] = parse_metrics(get_metrics(d))
                break
            time.sleep(0.05)
        assert "draining" in seen, "/healthz and /readyz never answered 503 during the drain"
        assert metric(seen["metrics"], "socialgate_up") == 0
        # the tunnel still works while draining
        c.send("ECHO\nhello")
        c.sock.shutdown(1)
        assert c.read_all(timeout=5).endswith(b"hello" + b"DONE\n")
    finally:
        c.close()
    rc, _ = d.stop(signal.SIGTERM, timeout=10)
    assert rc == 0


def test_unknown_path_and_methods(make_sg):
    d = with_admin(make_sg, rules=None)
    assert http_get(d.admin + "/nope")[0] == 404
    assert http_get(d.admin + "/metrics", method="POST")[0] == 405
    st, headers, body = http_get(d.admin + "/healthz", method="HEAD")
    assert st == 200 and body == b""


# --- proxy.pac -------------------------------------------------------------------------------

def test_proxy_pac(make_sg):
    d = with_admin(make_sg, rules=None, admin={
        "pac_proxy": "gateway.example.com:3128",
        "pac_direct": "*.example.com, intranet.example.test, 10.0.0.0/8, 192.168.1.0/24"})
    st, headers, body = http_get(d.admin + "/proxy.pac")
    assert st == 200
    assert headers["Content-Type"] == PAC_CT, headers["Content-Type"]
    pac = body.decode()
    assert "function FindProxyForURL(url, host)" in pac, pac
    returns = re.findall(r'return "([^"]*)";', pac)
    assert returns[-1] == "PROXY gateway.example.com:3128", pac
    assert returns[:-1] == ["DIRECT"] * 4, pac
    assert not re.search(r"PROXY [^\"]*;\s*DIRECT", pac), "a DIRECT fallback after PROXY:\n" + pac
    assert re.search(r'dnsDomainIs\(host, "\.example\.com"\)', pac), pac
    assert re.search(r'host == "intranet\.example\.test"', pac), pac
    assert 'isInNet(host, "10.0.0.0", "255.0.0.0")' in pac, pac
    assert 'isInNet(host, "192.168.1.0", "255.255.255.0")' in pac, pac

    node = shutil.which("node") or shutil.which("nodejs")
    if node:  # run the PAC file itself with the standard PAC helpers
        prelude = """
        function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }
        function isInNet(h, net, mask) {
          var ip = function (s) { var p = s.split('.'); if (p.length != 4) return null;
            return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0; };
          var a = ip(h); if (a === null) return false;
          return ((a & ip(mask)) >>> 0) == ((ip(net) & ip(mask)) >>> 0); }
        """
        cases = {"www.example.com": "DIRECT", "example.com": "DIRECT", "intranet.example.test": "DIRECT",
                 "10.1.2.3": "DIRECT", "192.168.1.7": "DIRECT", "192.168.2.7": "PROXY gateway.example.com:3128",
                 "www.facebook.com": "PROXY gateway.example.com:3128",
                 "notexample.com": "PROXY gateway.example.com:3128"}
        script = prelude + pac + "\nconsole.log(JSON.stringify(%s.map(function (h) {"\
            " return FindProxyForURL('http://' + h + '/', h); })));" % json.dumps(list(cases))
        r = subprocess.run([node, "-e", script], capture_output=True, timeout=30, env=CLEAN_ENV)
        assert r.returncode == 0, r.stderr.decode()
        assert dict(zip(cases, json.loads(r.stdout))) == cases


def test_proxy_pac_without_direct(make_sg):
    d = with_admin(make_sg, rules=None, admin={"pac_proxy": "proxy.corp.test:8080"})
    st, headers, body = http_get(d.admin + "/proxy.pac")
    assert st == 200 and headers["Content-Type"] == PAC_CT
    returns = re.findall(r'return "([^"]*)";', body.decode())
    assert returns == ["PROXY proxy.corp.test:8080"], body.decode()


# --- who may reach it -----------------------------------------------------------------------

def test_admin_allow_excluding_loopback_gives_403(make_sg):
    d = with_admin(make_sg, rules=None, admin={"allow": "10.0.0.0/8, 192.168.0.0/16"})
    for path in ("/metrics", "/healthz", "/readyz", "/proxy.pac"):
        st, _, body = http_get(d.admin + path)
        assert st == 403, (path, st, body)
        assert b"socialgate_" not in body and b"FindProxyForURL" not in body


@pytest.mark.parametrize("listen", ["0.0.0.0:%d", "[::]:%d"])
def test_non_loopback_admin_listen_needs_allow(make_sg, listen):
    d = with_admin(make_sg, rules=None, start=False)
    d.cfg["admin"]["listen"] = listen % free_port()
    d.config.write_text(render_config(d.cfg))
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err, r.stdout)
    assert str(d.config.name) in err and "[admin]" in err and "allow" in err, err
    assert "not loopback" in err, err
    d.cfg["admin"]["allow"] = "127.0.0.0/8, 10.0.0.0/8"
    d.config.write_text(render_config(d.cfg))
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


# --- reload counters -------------------------------------------------------------------------

def _wait_metric(d, name, value, timeout=5, **labels):
    deadline = time.monotonic() + timeout
    while True:
        m = parse_metrics(get_metrics(d))
        if metric(m, name, **labels) == value or time.monotonic() > deadline:
            return m
        time.sleep(0.1)


def test_reload_counters_after_hup(make_sg):
    d = with_admin(make_sg)
    m0 = parse_metrics(get_metrics(d))
    assert metric(m0, "socialgate_config_reloads_total", result="ok") == 0
    assert metric(m0, "socialgate_config_reloads_total", result="error") == 0
    t0 = metric(m0, "socialgate_config_timestamp_seconds")
    assert abs(t0 - time.time()) < 60, t0
    time.sleep(1.1)

    d.send(signal.SIGHUP)
    m1 = _wait_metric(d, "socialgate_config_reloads_total", 1, result="ok")
    assert metric(m1, "socialgate_config_reloads_total", result="ok") == 1
    assert metric(m1, "socialgate_config_reloads_total", result="error") == 0
    assert metric(m1, "socialgate_config_timestamp_seconds") > t0

    good = d.config.read_text()
    d.config.write_text(good + "\n[limits]\nfrobnicate = 1\n")
    d.send(signal.SIGHUP)
    m2 = _wait_metric(d, "socialgate_config_reloads_total", 1, result="error")
    assert metric(m2, "socialgate_config_reloads_total", result="error") == 1
    assert metric(m2, "socialgate_config_reloads_total", result="ok") == 1
    assert metric(m2, "socialgate_config_timestamp_seconds") == metric(m1, "socialgate_config_timestamp_seconds")
    e = d.wait_log(ev="config", result="error")
    assert e["file"].endswith("proxy.ini") and e.int("line") > 0, e.raw

    # a bad rules file counts as an error too; fixing it counts as ok
    write_rules(d, "[rule broken]\nplatforms = nosuchplatform\naction = allow\n", name="90-bad.ini")
    d.config.write_text(good)
    d.send(signal.SIGHUP)
    m3 = _wait_metric(d, "socialgate_config_reloads_total", 2, result="error")
    assert metric(m3, "socialgate_config_reloads_total", result="error") == 2
    (d.dir / "rules" / "90-bad.ini").unlink()
    d.send(signal.SIGHUP)
    m4 = _wait_metric(d, "socialgate_config_reloads_total", 2, result="ok")
    assert metric(m4, "socialgate_config_reloads_total", result="ok") == 2
    promtool_check(get_metrics(d))
