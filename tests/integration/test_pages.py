"""The pages people read, on plain HTTP: a denial, a warning with Continue,
a used-up quota, a sign-in request and an upstream error ([pages] folder,
contact, show_rule), and sign-in asked only where it can change the outcome.
A page never shows a file path; the rule's name only with show_rule = yes.
"""
import html
import re
import signal
import time

from sgtest import BIN, REPO_ROOT, run, token
from test_policy import (get, header, hosts, make_htpasswd, start_policy,  # noqa: F401 (fixture)
                         today_number)

POLICY = """\
[role marketing]
users = alice

[rule mkt-social]
roles = marketing
categories = social
action = allow

[rule video-warn]
categories = video
action = warn
message = Video sites are for work use.

[rule linkedin-quota]
platforms = linkedin
quota = 5m/day
action = allow

[rule social-otherwise]
categories = social
action = deny
message = Social media is open 12:00-13:30 and after 17:30. Outside those hours it stays closed
  for everyone but marketing; if your work needs it, ask the IT helpdesk for an exception and
  say which site and for how long.

[rule messaging-never]
platforms = whatsapp
action = deny
message = Messaging apps are not allowed on this network.
"""

LONG_MESSAGE = ("Social media is open 12:00-13:30 and after 17:30. Outside those hours it stays "
                "closed for everyone but marketing; if your work needs it, ask the IT helpdesk "
                "for an exception and say which site and for how long.")

USED_UP = b"socialgate-state 1\nq %d %d 5 127.0.0.1\x1flinkedin-quota\n"


def used_up_state():
    return USED_UP % (today_number(), int(time.time() // 60) - 1)


def page_of(d, url, *extra):
    status, headers, body = get(d, url, *extra)
    return status, headers, body.decode()


def assert_no_path(d, page):
    """No file path, no rules file, on a page."""
    assert str(d.dir) not in page and ".ini" not in page, page


def text_of(page):
    """The page without its stylesheet and link targets: what a person reads."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r'href="[^"]*"', "", page))


def test_a_page_for_each_reason(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, POLICY, state=used_up_state())
    t0 = time.time()

    # deny: the message continued over indented lines, whole; no rule, no path
    tok = token()
    status, headers, page = page_of(d, "http://www.reddit.com:%d/d/%s" % (env.nginx_http, tok))
    assert status == 403
    assert header(headers, "Content-Type") == "text/html; charset=utf-8"
    assert header(headers, "Cache-Control") == "no-store"
    text = text_of(page)
    assert LONG_MESSAGE in text, page
    assert "<title>Blocked: www.reddit.com</title>" in page, page
    assert "social-otherwise" not in text and "Forbidden" not in text, page
    assert "<script" not in page and "src=" not in page and "<link" not in page, page
    assert_no_path(d, page)
    e = d.wait_log(since=t0, path="/d/" + tok)
    assert (e["rule"], e["action"], e["status"]) == ("social-otherwise", "deny", "403"), e.raw

    # warn: titled as a warning, with its Continue link
    status, _, page = page_of(d, "http://www.youtube.com:%d/w/%s" % (env.nginx_http, token()))
    assert status == 403
    assert "<title>Warning: www.youtube.com</title>" in page, page
    assert "<h1>Warning: youtube</h1>" in page, page
    assert "Video sites are for work use." in page, page
    assert re.search(r'<a href="http://socialgate\.local/continue\?[^"]+" class="button">'
                     r'Continue to www\.youtube\.com</a>', page), page
    assert "Forbidden" not in text_of(page) and "video-warn" not in text_of(page), page
    assert_no_path(d, page)

    # a used-up quota: the quota page, not the catch-all rule's message
    tok = token()
    status, _, page = page_of(d, "http://www.linkedin.com:%d/q/%s" % (env.nginx_http, tok))
    assert status == 403
    text = text_of(page)
    assert "Your time on linkedin is used up" in text, page
    assert "You have used 5 of your 5 minutes on linkedin. They come back at 00:00." in text, page
    assert "Social media is open" not in text, page
    assert_no_path(d, page)
    e = d.wait_log(since=t0, path="/q/" + tok)
    assert (e["rule"], e["action"], e["status"]) == ("social-otherwise", "deny", "403"), e.raw

    # /quota names the platforms and the rule's minutes, not the rule
    status, _, body = get(d, "http://socialgate.local/quota")
    quota = body.decode()
    assert status == 200
    assert "linkedin: 5 of 5 minutes a day used, 0 left; they come back at 00:00" in quota, quota
    assert "linkedin-quota" not in quota, quota

    # upstream errors: the plain words, on the error page
    status, _, page = page_of(d, "http://127.0.0.1:%d/e" % env.dead_port)
    assert status == 502
    assert "<h1>This site cannot be reached</h1>" in page, page
    assert "127.0.0.1 refused the connection on port %d." % env.dead_port in page, page
    status, _, page = page_of(d, "http://nonexistent.invalid/e")
    assert status == 502
    assert "The name nonexistent.invalid does not exist." in page, page


def test_sign_in_page_and_sign_in_only_where_it_helps(make_sg, env, hosts, tmp_path):
    pw = make_htpasswd(tmp_path / "users.htpasswd")
    d = start_policy(make_sg, hosts, POLICY, auth={"htpasswd": "users.htpasswd", "required": "no",
                                                  "realm": "Test gateway"},
                     files={"users.htpasswd": pw.read_bytes()}, state=used_up_state())
    t0 = time.time()

    # social media: marketing (alice) may, so an anonymous client is asked who it is
    tok = token()
    status, headers, page = page_of(d, "http://www.facebook.com:%d/s/%s" % (env.nginx_http, tok))
    assert status == 407
    assert header(headers, "Proxy-Authenticate") == 'Basic realm="Test gateway"'
    assert "<title>Sign in</title>" in page and "Please sign in" in page, page
    e = d.wait_log(since=t0, path="/s/" + tok)
    assert (e["rule"], e["action"], e["reason"]) == ("-", "-", "auth-required"), e.raw

    # messaging: denied to everyone; no sign-in helps, so the page and its rule
    tok = token()
    status, _, page = page_of(d, "http://web.whatsapp.com:%d/m/%s" % (env.nginx_http, tok))
    assert status == 403
    assert "Messaging apps are not allowed on this network." in page, page
    e = d.wait_log(since=t0, path="/m/" + tok)
    assert (e["rule"], e["action"], e["status"]) == ("messaging-never", "deny", "403"), e.raw
    assert "reason" not in e, e.raw

    # a used-up quota on a platform marketing's rule would open: signing in helps
    status, _, _ = page_of(d, "http://www.linkedin.com:%d/q/%s" % (env.nginx_http, token()))
    assert status == 407

    # explain says the same
    r = run([str(BIN), "explain", "-c", str(d.config), "http://web.whatsapp.com/"], timeout=20)
    out = r.stdout.decode()
    assert "verdict:   deny-page" in out, out
    assert "no sign-in would change this" in out, out
    r = run([str(BIN), "explain", "-c", str(d.config), "http://www.facebook.com/"], timeout=20)
    out = r.stdout.decode()
    assert "verdict:   ask-auth" in out, out
    assert "a role it could get by signing in allows it" in out, out


def test_show_rule_and_contact(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, POLICY, start=False)
    with open(d.config, "a") as f:
        f.write("\n[pages]\ncontact = IT helpdesk <helpdesk@example.com>,\n  extension 4357\n"
                "show_rule = yes\n")
    d.start()
    status, _, page = page_of(d, "http://www.reddit.com:%d/d" % env.nginx_http)
    assert status == 403
    assert '<p class="rule">social-otherwise</p>' in page, page
    assert "IT helpdesk &lt;helpdesk@example.com&gt;, extension 4357" in page, page
    assert_no_path(d, page)
    status, _, page = page_of(d, "http://www.youtube.com:%d/w" % env.nginx_http)
    assert '<p class="rule">video-warn</p>' in page and "extension 4357" in page, page
    # with show_rule the Continue link names the rule too, and still works
    m = re.search(r'<a href="([^"]+)" class="button">', page)
    link = html.unescape(m.group(1))
    assert "&r=video-warn&" in link, link
    status, _, _ = get(d, link)
    assert status == 302, link
    status, _, body = get(d, "http://socialgate.local/quota")
    assert "(rule linkedin-quota)" in body.decode(), body


def test_templates_from_the_folder(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, POLICY, start=False)
    pages = d.dir / "pages"
    pages.mkdir()
    (pages / "deny.html").write_text(
        "<!DOCTYPE html><title>ACME: {host}</title><p>{message}</p><p>{platform} {category} "
        "{user} [{rule}] {contact} {colour}</p>\n")
    with open(d.config, "a") as f:
        f.write("\n[pages]\nfolder = pages\ncontact = Desk & Co\n")
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode() + r.stdout.decode()
    assert r.returncode == 0, err
    assert "%s:1: warning: {colour} is not a placeholder" % (pages / "deny.html") in err, err
    d.start()

    status, _, page = page_of(d, "http://web.whatsapp.com:%d/m" % env.nginx_http)
    assert status == 403
    assert page == ("<!DOCTYPE html><title>ACME: web.whatsapp.com</title><p>Messaging apps are "
                    "not allowed on this network.</p><p>whatsapp messaging 127.0.0.1 [] "
                    "Desk &amp; Co {colour}</p>\n"), page
    # warn.html is missing: the built-in page
    status, _, page = page_of(d, "http://www.youtube.com:%d/w" % env.nginx_http)
    assert "<title>Warning: www.youtube.com</title>" in page, page

    # a reload reads the templates again
    (pages / "deny.html").write_text("<p>New page: {message}</p>\n")
    t0 = time.time()
    d.send(signal.SIGHUP)
    d.wait_log(since=t0, ev="config")
    status, _, page = page_of(d, "http://web.whatsapp.com:%d/m" % env.nginx_http)
    assert page == "<p>New page: Messaging apps are not allowed on this network.</p>\n", page

    # a template too large is an error; the running pages stay
    (pages / "warn.html").write_text("x" * (64 * 1024 + 1))
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode() + r.stdout.decode()
    assert r.returncode != 0
    assert "%s: page template larger than 64 KiB" % (pages / "warn.html") in err, err
    t0 = time.time()
    d.send(signal.SIGHUP)
    d.wait_log(since=t0, ev="config")
    status, _, page = page_of(d, "http://web.whatsapp.com:%d/m" % env.nginx_http)
    assert page.startswith("<p>New page:"), page
    assert d.alive()


def test_shipped_templates_are_the_built_in_pages(make_sg, env, hosts):
    """contrib/pages/ as the folder gives the same pages as none."""
    d = start_policy(make_sg, hosts, POLICY, start=False)
    with open(d.config, "a") as f:
        f.write("\n[pages]\nfolder = %s\n" % (REPO_ROOT / "contrib" / "pages"))
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    assert r.returncode == 0 and b"contrib/pages" not in r.stderr, r.stderr
    d.start()
    plain = start_policy(make_sg, hosts, POLICY)
    for url in ("http://www.reddit.com:%d/d" % env.nginx_http,
                "http://web.whatsapp.com:%d/m" % env.nginx_http):
        assert get(d, url) == get(plain, url)


def test_head_gets_the_page_head_without_its_body(make_sg, env, hosts):
    """A HEAD that gets a page gets the page's head alone (RFC 9110 9.3.2),
    with the Content-Length a GET would get, and nothing after it."""
    import socket
    d = start_policy(make_sg, hosts, POLICY)
    url = "http://www.reddit.com:%d/h/%s" % (env.nginx_http, token())
    status, headers, body = get(d, url)
    assert status == 403 and len(body) > 0
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(("HEAD %s HTTP/1.1\r\nHost: www.reddit.com\r\n\r\n" % url).encode())
    raw = b""
    while True:  # the page closes the connection: read to the end
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    s.close()
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and rest == b"", raw
    assert head.startswith(b"HTTP/1.1 403 "), raw
    assert b"\r\nContent-Length: %d" % len(body) in head, raw
    e = d.wait_log(since=t0, method="HEAD")
    assert (e["rule"], e["status"]) == ("social-otherwise", "403"), e.raw
