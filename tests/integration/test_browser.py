"""What a person sees: headless Chromium through socialgate.

Chromium (Debian `chromium`, run by `chromium.py`) loads pages through a
private daemon whose rules folder holds the shipped platform catalog and a
policy of the test; the hosts a test asks for are mapped to 127.0.0.1 by the
daemon's hosts file, and Chromium itself resolves no name. Each test asserts
on the text of the page as Chromium built it (`--dump-dom`) and saves a
1024x768 screenshot of it under the test's tmp_path (the paths are printed:
`pytest -s` shows them).

Plain HTTP: the deny page, the warn page and its Continue link (followed by a
second Chromium run in the same profile, which then shows the origin's own
page), and the page of a used-up quota. vk.com is the plain-HTTP site:
Chromium upgrades facebook.com, reddit.com, youtube.com and the other big
platforms to HTTPS by itself (they are on its HSTS preload list).

HTTPS with `[tls] ca_cert, ca_key` (a company CA made by
contrib/ca/make-ca.sh and trusted in Chromium's NSS database): the deny, warn
and quota pages of https://www.facebook.com/, and after Continue the
origin's own page over a spliced tunnel (nginx, with a certificate of the
separate test origin CA, also trusted). A Chromium without the company CA
gets its certificate error and the line says reason=tls-untrusted; an
`exempt` platform gets no page, only Chromium's own error. These
tests are skipped only when the binary does not know the [tls] section.
"""

import datetime
import html
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from chromium import Browser, text_of
from sgtest import BIN, CLEAN_ENV, REPO_ROOT, curl, render_config, run, token

SHIPPED_CATALOG = REPO_ROOT / "rules" / "00-platforms.ini"
MAKE_CA = REPO_ROOT / "contrib" / "ca" / "make-ca.sh"
HOSTS = ["vk.com", "www.facebook.com", "socialgate.local"]

DENY_MESSAGE = "Social media is open 12:00-13:30 and after 17:30."
WARN_MESSAGE = "Social media is for work use during office hours."


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hosts(env):
    p = env.tmp / "browser-hosts"
    p.write_text("".join("127.0.0.1 %s\n" % h for h in HOSTS if h != "socialgate.local"))
    return p


@pytest.fixture(scope="module")
def origin_page(env):
    """A page of the origin (nginx, HTTP and HTTPS): (file name, the heading a person reads)."""
    marker = "Origin page " + token()
    name = "browser-%s.html" % token()
    (env.tmp / "www" / name).write_text(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Origin</title></head>"
        "<body><h1>%s</h1><p>Served by the origin itself.</p></body></html>\n" % marker)
    return name, marker


@pytest.fixture(scope="module")
def company_ca(tmp_path_factory):
    """The company CA of the README, made by contrib/ca/make-ca.sh: (ca.pem, ca.key)."""
    d = tmp_path_factory.mktemp("company-ca")
    r = run(["sh", str(MAKE_CA), "-n", "Example Corp gateway CA", "-u", "root", str(d / "ca")], timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return d / "ca" / "ca.pem", d / "ca" / "ca.key"


def start(make_sg, hosts, policy, state=None, tls=None):
    """A private daemon: the shipped catalog, `policy`, optionally a saved state and [tls]."""
    ov = {"dns": {"hosts_file": str(hosts)}}
    if tls:
        ov["tls"] = tls
    d = make_sg(overrides=ov, start=False)
    shutil.copy(SHIPPED_CATALOG, d.dir / "rules" / "00-platforms.ini")
    (d.dir / "rules" / "10-policy.ini").write_text(policy)
    if state is not None:
        (d.dir / "state" / "state").write_bytes(state)
    return d.start()


def browser(tmp_path, d, *cas):
    """A fresh Chromium profile using daemon d as its proxy, trusting the CA files `cas`."""
    b = Browser(tmp_path / "chromium-home", d.port)
    for i, pem in enumerate(cas):
        b.trust_ca(pem, "socialgate-test-%d" % i)
    return b


def assert_readable(text):
    """A page from socialgate, not Chromium's own error page ("This site can't be reached")."""
    assert "ERR_" not in text and "can’t be reached" not in text and "can't be reached" not in text, text


def assert_no_config_path(text, d):
    """Pages never show a file path of the configuration."""
    assert str(d.dir) not in text and "10-policy.ini" not in text, text


def continue_link(dom, page_url):
    """The absolute URL of the Continue link of a warn page."""
    for m in re.finditer(r'<a\b[^>]*\bhref="([^"]+)"[^>]*>(.*?)</a>', dom, re.S | re.I):
        href, label = html.unescape(m.group(1)), text_of(m.group(2))
        if label.lower().startswith("continue") or "/continue" in href:
            return urllib.parse.urljoin(page_url, href)
    raise AssertionError("no Continue link in the warn page:\n%s" % dom)


def today_number():
    return (datetime.datetime.now(datetime.timezone.utc).date() - datetime.date(1970, 1, 1)).days


def used_up_state(rule, minutes):
    """A saved state in which 127.0.0.1 has used all `minutes` of `rule` today."""
    return b"socialgate-state 1\nq %d %d %d 127.0.0.1\x1f%s\n" % (
        today_number(), int(time.time() // 60) - 1, minutes, rule.encode())


def skip_near_midnight():
    now = datetime.datetime.now(datetime.timezone.utc)
    if now.hour == 23 and now.minute >= 58:
        pytest.skip("too close to midnight UTC: the daily quota would reset during the test")


# --- plain HTTP --------------------------------------------------------------------------------

DENY_POLICY = """\
[rule social-otherwise]
categories = social
action = deny
message = %s
""" % DENY_MESSAGE

WARN_POLICY = """\
[rule social-with-warning]
categories = social
action = warn
warn_for = 1h
message = %s
""" % WARN_MESSAGE

QUOTA_POLICY = """\
[rule social-quota]
categories = social
quota = 5m/day
action = allow

[rule social-otherwise]
categories = social
action = deny
message = %s
""" % DENY_MESSAGE


def test_http_deny_page(make_sg, hosts, tmp_path):
    d = start(make_sg, hosts, DENY_POLICY)
    b = browser(tmp_path, d)
    t0 = time.time()
    url = "http://vk.com/"
    text = text_of(b.dump_dom(url))
    assert_readable(text)
    assert DENY_MESSAGE in text, text
    assert "blocked" in text.lower(), text
    e = d.wait_log(since=t0, host="vk.com", path="/")
    assert (e["platform"], e["rule"], e["action"], e["status"]) == (
        "vk", "social-otherwise", "deny", "403"), e.raw
    b.screenshot(url, tmp_path / "http-deny.png")


def test_http_warn_page_then_continue(make_sg, env, hosts, origin_page, tmp_path):
    name, marker = origin_page
    d = start(make_sg, hosts, WARN_POLICY)
    b = browser(tmp_path, d)
    url = "http://vk.com:%d/%s" % (env.nginx_http, name)
    t0 = time.time()
    dom = b.dump_dom(url)
    text = text_of(dom)
    assert_readable(text)
    assert WARN_MESSAGE in text, text
    assert marker not in text, text
    e = d.wait_log(since=t0, host="vk.com", path="/" + name)
    assert (e["rule"], e["action"], e["status"]) == ("social-with-warning", "warn", "403"), e.raw
    b.screenshot(url, tmp_path / "http-warn.png")

    # Continue: the link is followed by the same profile; it lands on the page asked for
    link = continue_link(dom, url)
    text = text_of(b.dump_dom(link))
    assert marker in text, text
    assert WARN_MESSAGE not in text, text
    e = d.wait_log(since=t0, host="vk.com", path="/" + name, status="200")
    assert (e["rule"], e["action"]) == ("social-with-warning", "warn"), e.raw
    b.screenshot(url, tmp_path / "http-after-continue.png")


def test_http_quota_used_up(make_sg, hosts, tmp_path):
    skip_near_midnight()
    d = start(make_sg, hosts, QUOTA_POLICY, state=used_up_state("social-quota", 5))
    b = browser(tmp_path, d)
    t0 = time.time()
    url = "http://vk.com/"
    text = text_of(b.dump_dom(url))
    assert_readable(text)
    assert "blocked" in text.lower() or "used up" in text.lower(), text
    e = d.wait_log(since=t0, host="vk.com", path="/")
    assert (e["action"], e["status"]) == ("deny", "403"), e.raw
    b.screenshot(url, tmp_path / "http-quota.png")

    # the person can see where the minutes went
    text = text_of(b.dump_dom("http://socialgate.local/quota"))
    assert re.search(r"\b5 of 5 minutes\b", text), text
    b.screenshot("http://socialgate.local/quota", tmp_path / "http-quota-status.png")


# --- HTTPS: pages inside TLS, signed by the company CA ------------------------------------------

_TLS_KNOWN = {}


def require_tls(company_ca, tmp_path):
    """Skips the test when this socialgate has no [tls] section at all (HTTPS pages not built)."""
    if "known" not in _TLS_KNOWN:
        pem, key = company_ca
        cfg = tmp_path / "tls-probe.ini"
        cfg.write_text(render_config({
            "proxy": {"listen": "127.0.0.1:1", "rules": str(tmp_path / "no-rules"),
                      "state_dir": str(tmp_path)},
            "tls": {"ca_cert": str(pem), "ca_key": str(key)},
        }))
        (tmp_path / "no-rules").mkdir(exist_ok=True)
        r = subprocess.run([str(BIN), "-t", "-c", str(cfg)], capture_output=True, timeout=30,
                           env=CLEAN_ENV)
        out = (r.stdout + r.stderr).decode(errors="replace")
        _TLS_KNOWN["known"] = "unknown section [tls]" not in out
    if not _TLS_KNOWN["known"]:
        pytest.skip("this socialgate does not know the [tls] section (HTTPS pages are not built in)")


def tls_section(company_ca):
    pem, key = company_ca
    return {"ca_cert": str(pem), "ca_key": str(key)}


def assert_page_over_tls(d, since, host, **fields):
    """The usage-log line of an intercepted tunnel that got a page: tls=page, and `fields`."""
    return d.wait_log(since=since, host=host, tls="page", **fields)


def test_https_deny_page(make_sg, hosts, company_ca, tmp_path):
    require_tls(company_ca, tmp_path)
    d = start(make_sg, hosts, DENY_POLICY, tls=tls_section(company_ca))
    b = browser(tmp_path, d, company_ca[0])
    t0 = time.time()
    url = "https://www.facebook.com/"
    text = text_of(b.dump_dom(url))
    assert_readable(text)
    assert DENY_MESSAGE in text, text
    e = assert_page_over_tls(d, t0, "www.facebook.com")
    assert (e["platform"], e["rule"], e["action"]) == ("facebook", "social-otherwise", "deny"), e.raw
    b.screenshot(url, tmp_path / "https-deny.png")


def test_https_warn_page_then_continue_over_a_spliced_tunnel(make_sg, env, hosts, origin_page,
                                                             company_ca, tmp_path):
    require_tls(company_ca, tmp_path)
    name, marker = origin_page
    d = start(make_sg, hosts, WARN_POLICY, tls=tls_section(company_ca))
    # the company CA for the pages, the origin's own CA for the origin (nginx)
    b = browser(tmp_path, d, company_ca[0], env.ca)
    url = "https://www.facebook.com:%d/%s" % (env.nginx_https, name)
    t0 = time.time()
    dom = b.dump_dom(url)
    text = text_of(dom)
    assert_readable(text)
    assert WARN_MESSAGE in text, text
    assert marker not in text, text
    e = assert_page_over_tls(d, t0, "www.facebook.com")
    assert (e["rule"], e["action"]) == ("social-with-warning", "warn"), e.raw
    b.screenshot(url, tmp_path / "https-warn.png")

    # Continue, in the same profile: answered inside TLS, then the page asked for
    # comes from the origin itself through a tunnel socialgate does not decrypt
    link = continue_link(dom, url)
    t1 = time.time()
    text = text_of(b.dump_dom(link))
    assert marker in text, text
    assert WARN_MESSAGE not in text, text
    e = d.wait_log(since=t1, host="www.facebook.com", port=str(env.nginx_https), status="200",
                   predicate=lambda e: "tls" not in e and e.int("down") > 0, timeout=15)
    assert (e["ev"], e["rule"], e["action"]) == ("tunnel", "social-with-warning", "warn"), e.raw
    b.screenshot(url, tmp_path / "https-after-continue.png")


def _spare_tunnel(d, host, port, cafile):
    """What a browser keeps ready: a tunnel through d with TLS done and no request yet."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port, host.encode(), port))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        assert b, head
        head += b
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=str(cafile))
    return ctx.wrap_socket(s, server_hostname=host)


def test_https_spare_tunnel_after_continue_redirects(make_sg, env, hosts, origin_page, company_ca,
                                                     tmp_path):
    """A tunnel opened (and given TLS) before the Continue was recorded sends the browser to
    a new tunnel for its request, instead of the warning again."""
    require_tls(company_ca, tmp_path)
    name, marker = origin_page
    d = start(make_sg, hosts, WARN_POLICY, tls=tls_section(company_ca))
    url = "https://www.facebook.com:%d/%s" % (env.nginx_https, name)
    spare = _spare_tunnel(d, "www.facebook.com", env.nginx_https, company_ca[0])
    try:
        bundle = tmp_path / "cas.pem"
        bundle.write_bytes(company_ca[0].read_bytes() + env.ca.read_bytes())
        r = curl("-x", d.proxy, "--cacert", bundle, url, timeout=15)
        assert r.returncode == 0 and WARN_MESSAGE in r.stdout.decode(), r.stderr
        link = continue_link(r.stdout.decode(), url)
        r = curl("-x", d.proxy, "--cacert", bundle, "-o", "/dev/null", "-w", "%{http_code}", link,
                 timeout=15)
        assert r.stdout == b"302", r.stderr

        spare.sendall(b"GET /%s HTTP/1.1\r\nHost: www.facebook.com:%d\r\n\r\n"
                      % (name.encode(), env.nginx_https))
        got = b""
        while True:
            b = spare.recv(65536)
            if not b:
                break
            got += b
    finally:
        spare.close()
    head = got.decode("latin-1")
    assert head.startswith("HTTP/1.1 307 "), head
    assert re.search(r"(?mi)^Location: %s\r$" % re.escape(url), head), head
    assert WARN_MESSAGE not in head, head
    e = d.wait_log(host="www.facebook.com", status="307", tls="page")
    assert (e["rule"], e["action"]) == ("social-with-warning", "warn"), e.raw
    # and the new tunnel reaches the origin
    r = curl("-x", d.proxy, "--cacert", bundle, url, timeout=15)
    assert r.returncode == 0 and marker in r.stdout.decode(), r.stderr


def test_https_quota_used_up(make_sg, hosts, company_ca, tmp_path):
    require_tls(company_ca, tmp_path)
    skip_near_midnight()
    d = start(make_sg, hosts, QUOTA_POLICY, state=used_up_state("social-quota", 5),
              tls=tls_section(company_ca))
    b = browser(tmp_path, d, company_ca[0])
    t0 = time.time()
    url = "https://www.facebook.com/"
    text = text_of(b.dump_dom(url))
    assert_readable(text)
    assert "blocked" in text.lower() or "used up" in text.lower(), text
    e = assert_page_over_tls(d, t0, "www.facebook.com")
    assert (e["platform"], e["action"]) == ("facebook", "deny"), e.raw
    b.screenshot(url, tmp_path / "https-quota.png")


def test_https_page_to_a_browser_without_the_company_ca(make_sg, hosts, company_ca, tmp_path):
    require_tls(company_ca, tmp_path)
    d = start(make_sg, hosts, DENY_POLICY, tls=tls_section(company_ca))
    b = browser(tmp_path, d)  # trusts nothing of ours
    t0 = time.time()
    r = b.run("--dump-dom", "https://www.facebook.com/")
    assert DENY_MESSAGE not in r.stdout
    assert "ERR_CERT_AUTHORITY_INVALID" in r.stderr, r.stderr[-4000:]
    e = d.wait_log(since=t0, host="www.facebook.com", reason="tls-untrusted", timeout=10)
    assert e["rule"] == "social-otherwise", e.raw



def test_https_exempt_platform_is_not_intercepted(make_sg, hosts, company_ca, tmp_path):
    """[tls] exempt: no page, not even for a denial; the browser shows its own error."""
    require_tls(company_ca, tmp_path)
    tls = dict(tls_section(company_ca), exempt="facebook")
    d = start(make_sg, hosts, DENY_POLICY, tls=tls)
    b = browser(tmp_path, d, company_ca[0])
    t0 = time.time()
    r = b.run("--dump-dom", "https://www.facebook.com/")
    assert DENY_MESSAGE not in r.stdout
    assert "ERR_TUNNEL_CONNECTION_FAILED" in r.stderr, r.stderr[-4000:]
    e = d.wait_log(since=t0, host="www.facebook.com", status="403")
    assert (e["rule"], e["action"]) == ("social-otherwise", "deny"), e.raw
    assert "tls" not in e, e.raw

# --- what the pages say (the [pages] renderer) ---------------------------------------------------

def page_text(make_sg, hosts, company_ca, tmp_path, scheme, policy, state=None):
    tls = None
    if scheme == "https":
        require_tls(company_ca, tmp_path)
        tls = tls_section(company_ca)
    d = start(make_sg, hosts, policy, state=state, tls=tls)
    b = browser(tmp_path, d, company_ca[0])
    host = "www.facebook.com" if scheme == "https" else "vk.com"
    text = text_of(b.dump_dom("%s://%s/" % (scheme, host)))
    assert_readable(text)
    return d, text


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_deny_page_shows_no_file_path_and_no_rule(make_sg, hosts, company_ca, tmp_path, scheme):
    d, text = page_text(make_sg, hosts, company_ca, tmp_path, scheme, DENY_POLICY)
    assert DENY_MESSAGE in text, text
    assert_no_config_path(text, d)
    assert "social-otherwise" not in text, text  # show_rule = no by default


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_quota_page_names_the_platform_and_the_minutes(make_sg, hosts, company_ca, tmp_path, scheme):
    skip_near_midnight()
    d, text = page_text(make_sg, hosts, company_ca, tmp_path, scheme, QUOTA_POLICY,
                        state=used_up_state("social-quota", 5))
    assert_no_config_path(text, d)
    platform = "Facebook" if scheme == "https" else "VK"
    assert platform.lower() in text.lower(), text
    assert re.search(r"\b5\b[^.]*\bminutes?\b", text), text
    assert DENY_MESSAGE not in text, text  # not the next rule's page
