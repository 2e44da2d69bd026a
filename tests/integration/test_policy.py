"""Policy end to end: roles, schedules, rules, quotas, warn pages, proxy
authentication, socialgate.local, reload, -t, explain and SNI mismatches.

Each test writes its own rules folder (a small platform catalog and a
policy) for a private daemon; the hosts it asks for are mapped to 127.0.0.1
by a hosts file of this module. Time windows are built around the current
UTC time (the daemons run with timezone = UTC).
"""

import base64
import datetime
import html
import re
import shutil
import signal
import socket
import threading
import time

import pytest

from rawhttp import Conn
from sgtest import BIN, REPO_ROOT, REQUEST_FIELDS, curl, run, token

CATALOG = """\
[platform facebook]
category = social
domains = facebook.com

[platform linkedin]
category = social
domains = linkedin.com

[platform reddit]
category = social
domains = reddit.com

[platform youtube]
category = video
domains = youtube.com

[platform whatsapp]
category = messaging
domains = whatsapp.com
"""

HOSTS = ["www.facebook.com", "www.linkedin.com", "www.reddit.com", "www.youtube.com",
         "web.whatsapp.com", "intranet.example.test"]

HELLO_FACEBOOK = REPO_ROOT / "tests" / "unit" / "data" / "clienthello" / "curl-facebook-h2.bin"


# --- helpers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hosts(env):
    p = env.tmp / "policy-hosts"
    p.write_text("".join("127.0.0.1 %s\n" % h for h in HOSTS))
    return p


def _hm(minutes):
    minutes %= 24 * 60
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def windows():
    """(a `when` that holds now and for the next half hour, one that does not hold now)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    m = now.hour * 60 + now.minute
    closed = "%s-%s" % (_hm(m + 120), _hm(m + 180))
    if 40 <= m <= 24 * 60 - 40:
        day = now.strftime("%a").lower()
        return "%s %s-%s" % (day, _hm(m - 30), _hm(m + 30)), closed
    # close to midnight: whole dates around today instead of clock times
    d = now.date()
    one = datetime.timedelta(days=1)
    return "%s..%s" % (d - one, d + one), "2020-01-01"


def today_number():
    """Days since 1970-01-01 of today's UTC date (the quota period of a daily rule)."""
    return (datetime.datetime.now(datetime.timezone.utc).date() - datetime.date(1970, 1, 1)).days


def start_policy(make_sg, hosts, policy, auth=None, files=None, state=None, start=True):
    """A private daemon with CATALOG and `policy` as its rules folder.

    auth: the [auth] section; files: {name: bytes-or-text} written next to proxy.ini before
    the start (htpasswd and group files); state: the content of state_dir/state."""
    ov = {"dns": {"hosts_file": str(hosts)}}
    if auth:
        ov["auth"] = auth
    d = make_sg(overrides=ov, start=False)
    (d.dir / "rules" / "00-platforms.ini").write_text(CATALOG)
    (d.dir / "rules" / "10-policy.ini").write_text(policy)
    for name, data in (files or {}).items():
        p = d.dir / name
        if isinstance(data, str):
            p.write_text(data)
        else:
            p.write_bytes(data)
    if state is not None:
        (d.dir / "state" / "state").write_bytes(state)
    if start:
        d.start()
    return d


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in the text" % needle)


def get(d, url, *extra, timeout=15):
    """(status, headers text, body bytes) of a GET through the proxy."""
    r = curl("-x", d.proxy, "-i", *extra, url, timeout=timeout)
    assert r.returncode == 0, "curl %s failed (%d): %s" % (url, r.returncode, r.stderr.decode())
    return split_response(r.stdout)


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    return status, "\r\n".join(lines[1:]), body


def header(headers, name):
    for line in headers.split("\r\n"):
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def connect_status(d, target, *extra):
    """The proxy's answer to curl's CONNECT for an https URL (curl's %{http_connect})."""
    r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_connect}", *extra, target, timeout=15)
    return int(r.stdout.decode() or 0), r.returncode


def raw_connect(d, host, port, timeout=5.0):
    """A raw CONNECT; returns (Conn, status)."""
    c = Conn("127.0.0.1", d.port, timeout=timeout)
    c.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port, host.encode(), port))
    _, status, _, _ = c.read_head()
    return c, status


def htpasswd_tool():
    exe = shutil.which("htpasswd")
    if exe is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    return exe


def make_htpasswd(path):
    """alice (bcrypt), bob (apr1), carol (SHA-1), as Apache's own tool writes them."""
    exe = htpasswd_tool()
    for args in (["-c", "-B", "-C", "5", "-b", str(path), "alice", "alice-pw"],
                 ["-m", "-b", str(path), "bob", "bob pw:with colon"],
                 ["-s", "-b", str(path), "carol", "carol-pw"]):
        r = run([exe, *args], timeout=30)
        assert r.returncode == 0, r.stderr.decode()
    text = path.read_text()
    assert text.startswith("alice:$2y$05$"), text
    assert "\nbob:$apr1$" in text and "\ncarol:{SHA}" in text, text
    return path


def tunnel_closed_without_reply(c, timeout=5.0):
    """True when the peer closes (FIN or RST) and no byte came back."""
    deadline = time.monotonic() + timeout
    c.sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
        return data == b""
    return False


# --- allow, deny, log fields ----------------------------------------------------------------

def test_allow_deny_by_time_window_and_log_fields(make_sg, env, hosts, origin):
    open_w, closed_w = windows()
    policy = ("[schedule open-now]\nwhen = %s\n\n"
              "[schedule closed-now]\nwhen = %s\n\n"
              "[rule linkedin-open]\nplatforms = linkedin\nwhen = open-now\naction = allow\n\n"
              "[rule reddit-closed]\nplatforms = reddit\nwhen = closed-now\naction = allow\n\n"
              "[rule social-deny]\ncategories = social\naction = deny\n"
              "message = Social media is closed now.\n") % (open_w, closed_w)
    d = start_policy(make_sg, hosts, policy)
    t0 = time.time()

    tok = token()
    status, _, body = get(d, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, tok))
    assert status == 200 and body == env.small_body
    e = d.wait_log(since=t0, host="www.linkedin.com", path="/u/" + tok)
    assert e.keys_in_order[:len(REQUEST_FIELDS)] == REQUEST_FIELDS, e.raw
    assert (e["ev"], e["method"], e["rule"], e["action"], e["status"], e["platform"], e["category"]) == \
        ("request", "GET", "linkedin-open", "allow", "200", "linkedin", "social"), e.raw
    assert e["user"] == "-" and e["roles"] == "-", e.raw

    # denied: 403 page with the rule's message, naming the site; never a file
    # path, and not the rule's name without [pages] show_rule; nothing upstream
    tok = token()
    status, headers, body = get(d, "http://www.reddit.com:%d/d/%s" % (env.py_port, tok))
    assert status == 403
    assert header(headers, "Content-Type").startswith("text/html")
    page = html.unescape(body.decode())
    assert "<p>Social media is closed now.</p>" in page, page
    assert "www.reddit.com (reddit)" in page, page
    assert "10-policy.ini" not in page and "social-deny" not in page, page
    e = d.wait_log(since=t0, host="www.reddit.com", path="/d/" + tok)
    assert (e["rule"], e["action"], e["status"], e["platform"], e["category"]) == \
        ("social-deny", "deny", "403", "reddit", "social"), e.raw
    assert e.keys_in_order[:len(REQUEST_FIELDS)] == REQUEST_FIELDS, e.raw
    time.sleep(0.2)
    assert origin.find(lambda r: tok in r.target) == [], "a denied request reached the origin"

    # no rule matches unclassified traffic: allowed, rule=-
    tok = token()
    status, _, body = get(d, "http://intranet.example.test:%d/u/%s" % (env.nginx_http, tok))
    assert status == 200 and body == env.small_body
    e = d.wait_log(since=t0, host="intranet.example.test", path="/u/" + tok)
    assert (e["rule"], e["platform"], e["category"], e["status"]) == ("-", "-", "-", "200"), e.raw
    assert e["action"] in ("-", "allow"), e.raw

    # the auditor's grep
    lines = [x.raw for x in d.entries() if "platform=reddit" in x.raw and "action=deny" in x.raw]
    assert len(lines) == 1, lines


def test_connect_denied_before_the_tunnel(make_sg, env, hosts):
    policy = ("[rule facebook-ok]\nplatforms = facebook\naction = allow\n\n"
              "[rule social-deny]\ncategories = social\naction = deny\nmessage = No.\n")
    d = start_policy(make_sg, hosts, policy)
    t0 = time.time()

    code, rc = connect_status(d, "https://www.reddit.com:%d/u/x" % env.nginx_https, "--cacert", env.ca)
    assert code == 403 and rc != 0
    e = d.wait_log(since=t0, ev="tunnel", host="www.reddit.com")
    assert (e["method"], e["rule"], e["action"], e["status"], e["platform"], e["sni"]) == \
        ("CONNECT", "social-deny", "deny", "403", "reddit", "-"), e.raw
    assert e.keys_in_order[:len(REQUEST_FIELDS)] == REQUEST_FIELDS, e.raw

    # raw: the 403 page comes instead of "200 Connection established", then the close
    c = Conn("127.0.0.1", d.port, timeout=5)
    c.send(b"CONNECT www.reddit.com:%d HTTP/1.1\r\nHost: www.reddit.com:%d\r\n\r\n"
           % (env.nginx_https, env.nginx_https))
    resp = c.read_response("CONNECT")
    assert resp.status == 403
    assert b"<p>No.</p>" in resp.body and b"social-deny" not in resp.body
    assert c.is_closed(3)
    c.close()

    # the allowed platform tunnels and TLS works end to end
    r = curl("-x", d.proxy, "--cacert", env.ca, "-o", "/dev/null", "-w", "%{http_code}",
             "https://www.facebook.com:%d/u/y" % env.nginx_https, timeout=15)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(since=t0, ev="tunnel", host="www.facebook.com")
    assert (e["rule"], e["action"], e["status"], e["sni"], e["platform"]) == \
        ("facebook-ok", "allow", "200", "www.facebook.com", "facebook"), e.raw
    assert "mismatch" not in e, e.raw


# --- warn, Continue, monitor ----------------------------------------------------------------

def test_warn_page_continue_then_allowed(make_sg, env, hosts):
    policy = ("[rule video-warn]\ncategories = video\naction = warn\nwarn_for = 1h\n"
              "message = Video sites are for work use.\n\n"
              "[rule messaging-monitor]\ncategories = messaging\naction = monitor\n")
    d = start_policy(make_sg, hosts, policy)
    t0 = time.time()

    tok = token()
    url = "http://www.youtube.com:%d/u/%s?v=1" % (env.nginx_http, tok)
    status, _, body = get(d, url)
    assert status == 403
    page = body.decode()
    assert "Video sites are for work use." in page
    assert "<title>Warning: www.youtube.com</title>" in page, page
    # without show_rule the rule is not named, not even inside the Continue link:
    # the link carries an opaque reference to it, and its token is signed for it
    text = re.sub(r'href="[^"]*"', "", page)
    assert "Forbidden" not in text and "video-warn" not in page, page
    m = re.search(r'<a href="([^"]+)" class="button">Continue to www.youtube.com</a>', page)
    assert m, page
    link = html.unescape(m.group(1))
    assert link.startswith("http://socialgate.local/continue?"), link
    assert re.search(r"[?&]r=k[0-9a-f]{16}&", link), link
    e = d.wait_log(since=t0, host="www.youtube.com", path="/u/" + tok)
    assert (e["rule"], e["action"], e["status"], e["platform"]) == \
        ("video-warn", "warn", "403", "youtube"), e.raw

    # Continue, through the proxy: recorded, then sent back to the page
    status, headers, _ = get(d, link)
    assert status == 302, headers
    assert header(headers, "Location") == "http://www.youtube.com:%d/u/%s?v=1" % (env.nginx_http, tok)
    e = d.wait_log(since=t0, host="socialgate.local")
    assert e["status"] == "302" and e["path"] == "/continue", e.raw

    # now the platform is open to this client, logged action=warn
    tok2 = token()
    status, _, body = get(d, "http://www.youtube.com:%d/u/%s" % (env.nginx_http, tok2))
    assert status == 200 and body == env.small_body
    e = d.wait_log(since=t0, host="www.youtube.com", path="/u/" + tok2)
    assert (e["rule"], e["action"], e["status"]) == ("video-warn", "warn", "200"), e.raw

    # the Continue survives a restart (state_dir)
    rc, _ = d.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, d.stderr_tail()
    assert re.search(rb"^w \d+ 127\.0\.0\.1\x1fyoutube$", (d.dir / "state" / "state").read_bytes(), re.M)
    d.start()
    status, _, _ = get(d, "http://www.youtube.com:%d/u/%s" % (env.nginx_http, token()))
    assert status == 200

    # a bad Continue link is refused
    status, _, _ = get(d, "http://socialgate.local/continue?p=youtube&r=no-such-rule")
    assert status == 400
    status, _, _ = get(d, "http://socialgate.local/continue?p=whatsapp&r=messaging-monitor")
    assert status == 400

    # monitor: allowed and logged
    tok3 = token()
    status, _, body = get(d, "http://web.whatsapp.com:%d/u/%s" % (env.nginx_http, tok3))
    assert status == 200 and body == env.small_body
    e = d.wait_log(since=t0, host="web.whatsapp.com", path="/u/" + tok3)
    assert (e["rule"], e["action"], e["status"], e["platform"], e["category"]) == \
        ("messaging-monitor", "monitor", "200", "whatsapp", "messaging"), e.raw


def test_warn_on_a_tunnel_allows_and_logs_warn(make_sg, env, hosts):
    policy = "[rule video-warn]\ncategories = video\naction = warn\n"
    d = start_policy(make_sg, hosts, policy)
    t0 = time.time()
    c, status = raw_connect(d, "www.youtube.com", env.nginx_https)
    assert status == 200
    c.close()
    e = d.wait_log(since=t0, ev="tunnel", host="www.youtube.com")
    assert (e["rule"], e["action"], e["status"], e["platform"]) == \
        ("video-warn", "warn", "200", "youtube"), e.raw


# --- authentication ---------------------------------------------------------------------------

AUTH_POLICY = """\
[role marketing]
users = alice
groups = marketing

[role office]
networks = 127.0.0.0/8

[rule mkt-social]
roles = marketing
categories = social
action = allow

[rule office-linkedin]
roles = office
platforms = linkedin
action = allow

[rule social-deny]
categories = social
action = deny
message = Only marketing may use social media.
"""


def _auth_sg(make_sg, hosts, tmp_path, required):
    pw = make_htpasswd(tmp_path / "users.htpasswd")
    return start_policy(
        make_sg, hosts, AUTH_POLICY,
        auth={"htpasswd": "users.htpasswd", "groups": "users.groups", "required": required,
              "realm": "Test gateway"},
        files={"users.htpasswd": pw.read_bytes(), "users.groups": "marketing: bob\nsales: carol\n"})


def test_auth_required(make_sg, env, hosts, tmp_path):
    d = _auth_sg(make_sg, hosts, tmp_path, "yes")
    t0 = time.time()
    url = "http://www.linkedin.com:%d/u/%s"

    tok = token()
    status, headers, _ = get(d, url % (env.nginx_http, tok))
    assert status == 407
    assert header(headers, "Proxy-Authenticate") == 'Basic realm="Test gateway"'
    e = d.wait_log(since=t0, host="www.linkedin.com", path="/u/" + tok)
    assert (e["status"], e["user"]) == ("407", "-"), e.raw

    # unclassified traffic too: every request needs credentials
    status, _, _ = get(d, "http://intranet.example.test:%d/u/x" % env.nginx_http)
    assert status == 407
    code, _ = connect_status(d, "https://www.facebook.com:%d/u/x" % env.nginx_https, "--cacert", env.ca)
    assert code == 407

    # each hash format made by htpasswd works: bcrypt, apr1, SHA-1
    for user, pw, roles in (("alice", "alice-pw", "marketing,office"),
                            ("bob", "bob pw:with colon", "marketing,office"),
                            ("carol", "carol-pw", "office")):
        tok = token()
        status, _, body = get(d, url % (env.nginx_http, tok), "--proxy-user", "%s:%s" % (user, pw))
        assert status == 200 and body == env.small_body, (user, status)
        e = d.wait_log(since=t0, host="www.linkedin.com", path="/u/" + tok)
        assert (e["user"], e["roles"], e["status"]) == (user, roles, "200"), e.raw
        assert "auth" not in e, e.raw

    # a tunnel with credentials
    r = curl("-x", d.proxy, "--proxy-user", "bob:bob pw:with colon", "--cacert", env.ca,
             "-o", "/dev/null", "-w", "%{http_code}", "https://www.facebook.com:%d/u/t" % env.nginx_https)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(since=t0, ev="tunnel", host="www.facebook.com", status="200")
    assert (e["user"], e["rule"], e["roles"]) == ("bob", "mkt-social", "marketing,office"), e.raw

    # wrong password: 407, logged with the name tried
    tok = token()
    status, headers, _ = get(d, url % (env.nginx_http, tok), "--proxy-user", "alice:wrong")
    assert status == 407
    assert header(headers, "Proxy-Authenticate") == 'Basic realm="Test gateway"'
    e = d.wait_log(since=t0, host="www.linkedin.com", path="/u/" + tok)
    assert (e["status"], e["user"], e.get("auth")) == ("407", "alice", "fail"), e.raw


def _poll_status(d, url, creds, want, timeout=5.0):
    """The status of GETs through d with creds, repeated until it is want or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, _ = get(d, url, "--proxy-user", creds)
        if status == want or time.monotonic() >= deadline:
            return status
        time.sleep(0.2)


def test_auth_files_changed_on_disk_are_picked_up(make_sg, env, hosts, tmp_path):
    """The [auth] htpasswd and groups files are watched: a change is in use within a few
    seconds without a HUP, logged as ev=config with its cause; a broken file keeps the
    running configuration (logged once, not every second) until it is fixed."""
    d = _auth_sg(make_sg, hosts, tmp_path, "yes")
    t0 = time.time()
    url = "http://www.facebook.com:%d/u/x" % env.nginx_http
    htfile, groups = d.dir / "users.htpasswd", d.dir / "users.groups"
    assert get(d, url, "--proxy-user", "alice:alice-pw")[0] == 200
    assert get(d, url, "--proxy-user", "dave:dave-pw")[0] == 407

    # a user added by Apache's htpasswd, which rewrites the file in place
    r = run([htpasswd_tool(), "-b", "-B", "-C", "5", str(htfile), "dave", "dave-pw"], timeout=30)
    assert r.returncode == 0, r.stderr
    # dave holds no role that allows Facebook: signed in, he is denied (403), no longer 407
    assert _poll_status(d, url, "dave:dave-pw", 403) == 403
    e = d.wait_log(since=t0, ev="config", result="ok", cause="htpasswd")
    assert e["rules"] == "3" and e["platforms"], e.raw
    assert get(d, url, "--proxy-user", "alice:alice-pw")[0] == 200

    # the groups file: dave joins marketing
    groups.write_text("marketing: bob dave\nsales: carol\n")
    assert _poll_status(d, url, "dave:dave-pw", 200) == 200
    d.wait_log(since=t0, ev="config", result="ok", cause="groups")
    e = d.wait_log(since=t0, host="www.facebook.com", user="dave", status="200")
    assert e["roles"] == "marketing,office", e.raw

    # a broken htpasswd file: the running configuration stays, and says why, once
    t1 = time.time()
    good = htfile.read_bytes()
    htfile.write_bytes(good + b"eve-without-a-hash\n")
    e = d.wait_log(since=t1, ev="config", result="error", cause="htpasswd")
    assert e["file"] == str(htfile) and e["line"] == str(good.count(b"\n") + 1), e.raw
    time.sleep(2.5)
    assert get(d, url, "--proxy-user", "dave:dave-pw")[0] == 200
    errors = [x for x in d.entries() if x.get("ev") == "config" and (x.epoch() or 0) >= t1 - 0.01]
    assert [x["result"] for x in errors] == ["error"], [x.raw for x in errors]

    # fixed by replacing the file (a rename, as editors do): dave's password changed
    tmp = d.dir / "users.htpasswd.new"
    tmp.write_bytes(good)
    r = run([htpasswd_tool(), "-b", "-B", "-C", "5", str(tmp), "dave", "new-pw"], timeout=30)
    assert r.returncode == 0, r.stderr
    tmp.replace(htfile)
    assert _poll_status(d, url, "dave:new-pw", 200) == 200
    assert get(d, url, "--proxy-user", "dave:dave-pw")[0] == 407
    assert d.alive()


def _big_head(env, tok, creds=None, pad_fields=5, pad_bytes=4000):
    """A GET whose head is about pad_fields * pad_bytes long (each line under nginx's 8 KiB)."""
    lines = ["GET http://www.linkedin.com:%d/u/%s HTTP/1.1" % (env.nginx_http, tok),
             "Host: www.linkedin.com:%d" % env.nginx_http]
    if creds:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(creds.encode()).decode())
    lines += ["X-Pad-%d: %s" % (i, "p" * pad_bytes) for i in range(pad_fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_head_limits_before_authentication(make_sg, env, hosts, tmp_path):
    """With required = yes, a head without a known user's credentials is held to 16 KiB and
    64 fields: it gets 407 and the connection closes, before the rest is read. A signed-in
    user may send heads up to max_header_bytes."""
    d = _auth_sg(make_sg, hosts, tmp_path, "yes")
    t0 = time.time()

    # anonymous, 20 KiB: 407, closed, logged with its reason
    tok = token()
    with d.conn(timeout=8) as c:
        c.send(_big_head(env, tok))
        r = c.read_response()
        assert r.status == 407
        assert r.header("proxy-authenticate") == 'Basic realm="Test gateway"'
        c.read_all(timeout=3)
        assert c.eof
    e = d.wait_log(since=t0, status="407", reason="head-too-large-before-auth")
    assert (e["method"], e["user"]) == ("GET", "-"), e.raw

    # anonymous, 70 small fields (under 16 KiB): the same
    with d.conn(timeout=8) as c:
        c.send(_big_head(env, token(), pad_fields=70, pad_bytes=10))
        assert c.read_response().status == 407

    # anonymous head still arriving: refused once 16 KiB are in, not at header_timeout
    with d.conn(timeout=8) as c:
        t1 = time.monotonic()
        c.send(_big_head(env, token(), pad_fields=5)[:17000])
        r = c.read_response()
        assert r.status == 407 and time.monotonic() - t1 < 2.0

    # an unknown user is anonymous here
    with d.conn(timeout=8) as c:
        c.send(_big_head(env, token(), creds="mallory:x"))
        assert c.read_response().status == 407

    # a known user with the right password: the same 20 KiB head and 70 fields pass
    for fields, size in ((5, 4000), (70, 10)):
        tok = token()
        with d.conn(timeout=8) as c:
            c.send(_big_head(env, tok, creds="alice:alice-pw", pad_fields=fields, pad_bytes=size))
            r = c.read_response()
            assert r.status == 200 and r.body == env.small_body, (fields, r.status)
        e = d.wait_log(since=t0, path="/u/" + tok)
        assert (e["user"], e["status"]) == ("alice", "200"), e.raw

    # a small anonymous head gets the usual 407 (reason auth-required)
    tok = token()
    with d.conn(timeout=8) as c:
        c.send(_big_head(env, tok, pad_fields=1, pad_bytes=10))
        assert c.read_response().status == 407
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert e["reason"] == "auth-required", e.raw


def test_no_preauth_head_limit_when_auth_is_optional(make_sg, env, hosts, tmp_path):
    """required = no: anonymous users are legitimate, max_header_bytes applies to them."""
    d = _auth_sg(make_sg, hosts, tmp_path, "no")
    with d.conn(timeout=8) as c:
        c.send(_big_head(env, token()))
        r = c.read_response()
        assert r.status == 200 and r.body == env.small_body


def test_auth_optional(make_sg, env, hosts, tmp_path):
    d = _auth_sg(make_sg, hosts, tmp_path, "no")
    t0 = time.time()

    def req(host, tok, *creds):
        return get(d, "http://%s:%d/u/%s" % (host, env.nginx_http, tok), *creds)

    # anonymous, allowed by policy: passes without credentials
    tok = token()
    status, _, body = req("www.linkedin.com", tok)
    assert status == 200 and body == env.small_body
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert (e["user"], e["roles"], e["rule"]) == ("-", "office", "office-linkedin"), e.raw

    # anonymous, denied by policy: asked to sign in instead
    tok = token()
    status, headers, _ = req("www.facebook.com", tok)
    assert status == 407
    assert header(headers, "Proxy-Authenticate") == 'Basic realm="Test gateway"'
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert (e["status"], e["user"]) == ("407", "-"), e.raw

    # signed in and allowed (user, then group)
    for user, pw in (("alice", "alice-pw"), ("bob", "bob pw:with colon")):
        tok = token()
        status, _, body = req("www.facebook.com", tok, "--proxy-user", "%s:%s" % (user, pw))
        assert status == 200 and body == env.small_body
        e = d.wait_log(since=t0, path="/u/" + tok)
        assert (e["user"], e["roles"], e["rule"], e["action"]) == \
            (user, "marketing,office", "mkt-social", "allow"), e.raw

    # signed in and still denied: the 403 page
    tok = token()
    status, _, body = req("www.facebook.com", tok, "--proxy-user", "carol:carol-pw")
    assert status == 403
    assert b"Only marketing may use social media." in body
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert (e["user"], e["roles"], e["rule"], e["action"], e["status"]) == \
        ("carol", "office", "social-deny", "deny", "403"), e.raw

    # wrong credentials are 407 even where anonymous would pass
    for creds, name in (("alice:nope", "alice"), ("mallory:x", "mallory")):
        tok = token()
        status, _, _ = req("www.linkedin.com", tok, "--proxy-user", creds)
        assert status == 407
        e = d.wait_log(since=t0, path="/u/" + tok)
        assert (e["user"], e.get("auth"), e["status"]) == (name, "fail", "407"), e.raw

    # unclassified, anonymous: allowed with rule=-
    tok = token()
    status, _, _ = req("intranet.example.test", tok)
    assert status == 200
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert (e["rule"], e["roles"]) == ("-", "office"), e.raw


# --- quotas and socialgate.local/quota ----------------------------------------------------------

QUOTA_POLICY = """\
[rule social-quota]
categories = social
quota = %s
action = allow

[rule social-deny]
categories = social
action = deny
message = Quota used up.
"""


def quota_page(d):
    status, _, body = get(d, "http://socialgate.local/quota")
    assert status == 200
    return body.decode()


def test_quota_page_and_state_saved_at_shutdown(make_sg, env, hosts):
    now = datetime.datetime.now(datetime.timezone.utc)
    if now.hour == 23 and now.minute >= 58:
        pytest.skip("too close to midnight UTC: the daily quota would reset during the test")
    d = start_policy(make_sg, hosts, QUOTA_POLICY % "30m/day")
    page = quota_page(d)
    assert "Quota for 127.0.0.1" in page, page
    assert "social platforms: 0 of 30 minutes a day used, 30 left" in page, page

    t0 = time.time()
    status, _, _ = get(d, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, token()))
    assert status == 200
    d.wait_log(since=t0, host="www.linkedin.com", rule="social-quota")
    page = quota_page(d)
    assert re.search(r"social platforms: 1 of 30 minutes a day used, 29 left", page), page

    rc, _ = d.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, d.stderr_tail()
    state = (d.dir / "state" / "state").read_bytes()
    assert state.startswith(b"socialgate-state 1\n"), state
    m = re.search(rb"^q (\d+) (\d+) (\d+) 127\.0\.0\.1\x1fsocial-quota$", state, re.M)
    assert m, state
    assert int(m.group(1)) == today_number() and int(m.group(3)) == 1, state
    assert abs(int(m.group(2)) - int(time.time() // 60)) <= 2, state

    # restored at the next start
    d.start()
    page = quota_page(d)
    assert "social platforms: 1 of 30 minutes a day used, 29 left" in page, page


def test_quota_used_up_in_saved_state_falls_through(make_sg, env, hosts):
    now = datetime.datetime.now(datetime.timezone.utc)
    if now.hour == 23 and now.minute >= 58:
        pytest.skip("too close to midnight UTC")
    state = b"socialgate-state 1\nq %d %d 5 127.0.0.1\x1fsocial-quota\n" % (
        today_number(), int(time.time() // 60) - 1)
    d = start_policy(make_sg, hosts, QUOTA_POLICY % "5m/day", state=state)
    t0 = time.time()
    tok = token()
    status, _, body = get(d, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, tok))
    assert status == 403
    # the quota page, not the catch-all rule's message
    assert b"You have used 5 of your 5 minutes on linkedin. They come back at 00:00." in body, body
    assert b"Quota used up." not in body, body
    e = d.wait_log(since=t0, path="/u/" + tok)
    assert (e["rule"], e["action"], e["status"]) == ("social-deny", "deny", "403"), e.raw
    page = quota_page(d)
    assert "social platforms: 5 of 5 minutes a day used, 0 left" in page, page

    # yesterday's minutes do not count today
    state = b"socialgate-state 1\nq %d %d 5 127.0.0.1\x1fsocial-quota\n" % (
        today_number() - 1, int(time.time() // 60) - 1440)
    d2 = start_policy(make_sg, hosts, QUOTA_POLICY % "5m/day", state=state)
    status, _, _ = get(d2, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, token()))
    assert status == 200


def test_corrupt_state_is_set_aside(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, QUOTA_POLICY % "5m/day", state=b"garbage\n")
    status, _, _ = get(d, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, token()))
    assert status == 200
    assert (d.dir / "state" / "state.corrupt").read_bytes() == b"garbage\n"
    assert "corrupt state file set aside" in d.stderr_tail()


# --- reload -------------------------------------------------------------------------------------

RELOAD_OK = """\
[rule linkedin-ok]
platforms = linkedin
action = allow

[rule social-deny]
categories = social
action = deny
"""

RELOAD_BROKEN = """\
[rule linkedin-ok]
platforms = linkedin
action = allow

[rule reddit-ok]
platforms = reddit, myspace
action = allow
"""

RELOAD_FIXED = """\
[rule linkedin-ok]
platforms = linkedin, reddit
action = allow

[rule social-deny]
categories = social
action = deny
"""


def test_reload_under_load_keeps_policy_on_error(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, RELOAD_OK)
    url = "http://www.linkedin.com:%d/u/load" % env.nginx_http
    results = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            r = curl("-x", d.proxy, "-o", "/dev/null", "-w", "%{http_code}", url, timeout=10)
            results.append(r.stdout.decode())

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        time.sleep(0.5)
        t0 = time.time()
        policy_file = d.dir / "rules" / "10-policy.ini"
        policy_file.write_text(RELOAD_BROKEN)
        d.send(signal.SIGHUP)
        e = d.wait_log(since=t0, ev="config", result="error", timeout=10)
        assert e["file"] == str(policy_file), e.raw
        assert e["line"] == str(line_of(RELOAD_BROKEN, "platforms = reddit, myspace")), e.raw
        assert "unknown platform 'myspace'" in e["msg"], e.raw
        time.sleep(0.5)
        assert d.alive()
        # the old policy still runs
        status, _, _ = get(d, "http://www.reddit.com:%d/u/x" % env.nginx_http)
        assert status == 403

        t1 = time.time()
        policy_file.write_text(RELOAD_FIXED)
        d.send(signal.SIGHUP)
        e = d.wait_log(since=t1, ev="config", result="ok", timeout=10)
        assert e["rules"] == "2", e.raw
        status, _, _ = get(d, "http://www.reddit.com:%d/u/x" % env.nginx_http)
        assert status == 200
        time.sleep(0.5)
    finally:
        stop.set()
        th.join(timeout=20)
    assert len(results) >= 5, results
    assert set(results) == {"200"}, results


# --- socialgate -t --------------------------------------------------------------------------------

BROKEN = [
    ("unknown_platform", "[rule r]\nplatforms = facebook, myspace\naction = deny\n",
     "platforms = facebook", "rule 'r': unknown platform 'myspace'"),
    ("unknown_role", "[rule r]\nroles = managers\naction = allow\n",
     "roles = managers", "rule 'r': unknown role 'managers'"),
    ("unknown_schedule", "[rule r]\nwhen = lunch\naction = allow\n",
     "when = lunch", "rule 'r': when = lunch: 'lunch': unknown schedule"),
    ("bad_window", "[schedule s]\nwhen = mon-fri 09:00-25:00\n",
     "when = mon-fri", "schedule 's': when = mon-fri 09:00-25:00: "),
    ("bad_regex", "[rule r]\nplatforms = facebook\npath_regex = ^/(groups\naction = deny\n",
     "path_regex", "path_regex: bad regex at offset"),
    ("unknown_category", "[rule r]\ncategories = socail\naction = deny\n",
     "categories = socail", "rule 'r': no platform has category 'socail'"),
    ("bad_action", "[rule r]\naction = block\n", "action = block", "action = block: expected"),
    ("unknown_key", "[rule r]\naction = allow\nplatform = facebook\n", "platform = facebook",
     "unknown key 'platform' in a rule"),
    ("empty_platforms", "[rule r]\nplatforms =\naction = deny\n", "platforms =",
     "platforms: empty value"),
    ("no_action", "[rule r]\nplatforms = facebook\n", "[rule r]", "rule 'r' has no action"),
    ("quota_on_deny", "[rule r]\nplatforms = facebook\nquota = 30m/day\naction = deny\n", "[rule r]",
     "rule 'r': a quota only makes sense on allow, warn or monitor"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_check_reports_rule_errors(make_sg, hosts, case):
    _, policy, needle, msg = case
    d = start_policy(make_sg, hosts, policy, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, err
    want = "%s:%d: %s" % (d.dir / "rules" / "10-policy.ini", line_of(policy, needle), msg)
    assert want in err, "want %r in:\n%s" % (want, err)


def test_check_warns_about_unreachable_rules(make_sg, hosts):
    policy = ("[rule all-social]\ncategories = social\naction = allow\n\n"
              "[rule no-facebook]\nplatforms = facebook\naction = deny\n\n"
              "[rule lunch-only]\ncategories = video\nwhen = mon-fri 12:00-13:00\naction = allow\n\n"
              "[rule video-deny]\nplatforms = youtube\naction = deny\n")
    d = start_policy(make_sg, hosts, policy, start=False)
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    f = d.dir / "rules" / "10-policy.ini"
    want = ("%s:%d: warning: rule 'no-facebook' can never match: rule 'all-social' at %s:%d "
            "always decides first" % (f, line_of(policy, "[rule no-facebook]"), f,
                                      line_of(policy, "[rule all-social]")))
    assert want in err, err
    # a rule behind a rule with a time window is reachable
    assert "video-deny" not in err, err


def check(d):
    """(exit code, stderr) of socialgate -t on daemon d's configuration."""
    r = run([str(BIN), "-t", "-c", str(d.config)], timeout=20)
    return r.returncode, r.stderr.decode(errors="replace")


def test_check_reports_every_problem_once(make_sg, hosts):
    policy = ("[rule a]\nplatforms = facebook\nbogus = 1\naction = allow\n\n"
              "[schedule lunch]\nwhen = mon-fri 25:00-26:00\n\n"
              "[rule b]\nroles = nobody\naction = deny\n\n"
              "[rule c]\nwhen = lunch\naction = allow\n\n"
              "[rule d]\nwhen = lunch, sat\naction = deny\n\n"
              "[frob x]\na = 1\nb = 2\nc = 3\n")
    d = start_policy(make_sg, hosts, policy, start=False)
    rc, err = check(d)
    assert rc == 1, err
    f = d.dir / "rules" / "10-policy.ini"
    for needle, msg in (("bogus = 1", "unknown key 'bogus' in a rule"),
                        ("when = mon-fri 25:00", "schedule 'lunch': when = mon-fri 25:00-26:00:"),
                        ("roles = nobody", "rule 'b': unknown role 'nobody'"),
                        ("[frob x]", "unknown section [frob x]")):
        want = "%s:%d: %s" % (f, line_of(policy, needle), msg)
        assert want in err, "want %r in:\n%s" % (want, err)
    # one root cause, one message: nothing for the rules that use the broken schedule, and
    # the unknown section once, not once per line
    assert "unknown schedule" not in err, err
    assert err.count("unknown section") == 1, err
    assert "socialgate: %s: 4 errors" % d.config in err, err


AUTH_ROLE_POLICY = """\
[role mkt]
users = alice, dave
groups = marketing, sales

[rule mkt-social]
roles = mkt
categories = social
action = allow
"""


def test_check_roles_against_auth_files(make_sg, hosts, tmp_path):
    pw = make_htpasswd(tmp_path / "users.htpasswd")
    d = start_policy(make_sg, hosts, AUTH_ROLE_POLICY,
                     auth={"htpasswd": "users.htpasswd", "groups": "users.groups"},
                     files={"users.htpasswd": pw.read_bytes(), "users.groups": "marketing: bob\n"},
                     start=False)
    rc, err = check(d)
    f = d.dir / "rules" / "10-policy.ini"
    # names the files lack are warnings (they may be added later), naming the file read
    assert rc == 0, err
    want = ("%s:%d: warning: role 'mkt': user 'dave' is not in %s" %
            (f, line_of(AUTH_ROLE_POLICY, "users ="), d.dir / "users.htpasswd"))
    assert want in err, err
    want = ("%s:%d: warning: role 'mkt': group 'sales' is not in the groups file %s" %
            (f, line_of(AUTH_ROLE_POLICY, "groups ="), d.dir / "users.groups"))
    assert want in err, err
    assert "'alice'" not in err and "'marketing'" not in err, err


def test_check_roles_without_auth_files_warned(make_sg, hosts):
    """Names with no [auth] file to find them in: a warning (a role may
    still match by network), and the daemon starts."""
    d = start_policy(make_sg, hosts, AUTH_ROLE_POLICY, start=False)
    rc, err = check(d)
    f = d.dir / "rules" / "10-policy.ini"
    assert rc == 0, err
    want = ("%s:%d: warning: role 'mkt': users = alice, dave, but %s sets no [auth] htpasswd, "
            "basic_helper or negotiate_helper: no one signs in, so the role can never match by user" %
            (f, line_of(AUTH_ROLE_POLICY, "users ="), d.config))
    assert want in err, err
    want = ("%s:%d: warning: role 'mkt': groups = marketing, sales, but %s sets no [auth] groups "
            "file or group_helper: the role can never match by group" %
            (f, line_of(AUTH_ROLE_POLICY, "groups ="), d.config))
    assert want in err, err
    d.start()
    assert "can never match by group" in d.stderr_tail()


def config_line(d, needle):
    return line_of(d.config.read_text(), needle)


def test_check_warns_about_an_open_proxy(make_sg):
    for clients in ("0.0.0.0/0", "::/0", "10.0.0.0/8, ::ffff:0:0/96"):
        d = make_sg(overrides={"proxy": {"clients": clients}}, start=False)
        rc, err = check(d)
        assert rc == 0, err
        item = clients.split(", ")[-1]
        want = ("%s:%d: warning: clients = %s makes this an open proxy: anyone who reaches the "
                "listen address can use it" % (d.config, config_line(d, "clients ="), item))
        assert want in err, err
    d = make_sg(overrides={"proxy": {"clients": "10.0.0.0/8, ::1"}}, start=False)
    rc, err = check(d)
    assert rc == 0 and "open proxy" not in err, err


@pytest.mark.parametrize("listen", ["127.0.0.1", "*", "0.0.0.0"])
def test_check_refuses_admin_on_the_proxy_address(make_sg, listen):
    d = make_sg(start=False)
    text = d.config.read_text().replace("listen = 127.0.0.1:%d" % d.port,
                                        "listen = %s:%d" % (listen, d.port))
    d.config.write_text(text + "\n[admin]\nlisten = 127.0.0.1:%d\n" % d.port)
    rc, err = check(d)
    assert rc == 1, err
    admin_line = len(d.config.read_text().splitlines())  # the last line
    want = ("%s:%d: [admin] listen = 127.0.0.1:%d takes the address of the proxy's listen = "
            "%s:%d (line %d): give the admin endpoint a port of its own" %
            (d.config, admin_line, d.port, listen, d.port,
             config_line(d, "listen = %s:%d" % (listen, d.port))))
    assert want in err, err
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.expected_exit = True


def test_check_reports_an_unknown_section_once(make_sg):
    d = make_sg(start=False)
    text = d.config.read_text() + "\n[limts]\nmax_connections = 10\ndrain = 1s\nidle_timeout = 5s\n"
    d.config.write_text(text)
    rc, err = check(d)
    assert rc == 1, err
    assert err.count("unknown section") == 1, err
    assert "%s:%d: unknown section [limts]" % (d.config, line_of(text, "[limts]")) in err, err


def test_check_shipped_policy_without_auth_only_warns(shipped):
    rc, err = check(shipped)
    assert rc == 0, err
    problems = [l for l in err.splitlines() if ": warning: " not in l and l.startswith("/")]
    assert problems == [], err


# --- explain ------------------------------------------------------------------------------------

SHIPPED_POLICY = REPO_ROOT / "rules" / "10-policy.ini"


@pytest.fixture
def shipped(make_sg):
    d = make_sg(overrides={"proxy": {"rules": str(REPO_ROOT / "rules")}}, start=False)
    return d


def explain(d, *args):
    r = run([str(BIN), "explain", "-c", str(d.config), *args], timeout=20)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def shipped_line(rule):
    return line_of(SHIPPED_POLICY.read_text(), "[rule %s]" % rule)


EXPLAIN = [
    ("alice_linkedin", ["--user", "alice", "--at", "2026-11-30 10:00", "www.linkedin.com"], 0,
     "allow", "marketing-all-day"),
    ("staff_reddit_morning", ["--ip", "10.1.2.3", "--at", "2026-11-30 10:00", "www.reddit.com"], 1,
     "deny", "social-otherwise"),
    ("staff_reddit_lunch", ["--ip", "10.1.2.3", "--at", "2026-11-30 12:10", "www.reddit.com"], 0,
     "allow", "everyone-at-lunch"),
    ("staff_reddit_saturday", ["--ip", "10.1.2.3", "--at", "2026-12-05 10:00",
                               "https://www.reddit.com/r/x"], 0, "allow", "everyone-at-lunch"),
    ("youtube_warn", ["--ip", "10.1.2.3", "--at", "2026-11-30 10:00", "http://www.youtube.com/watch"],
     0, "warn", "video-with-warning"),
    ("whatsapp_monitor", ["--at", "2026-11-30 10:00", "web.whatsapp.com"], 0, "monitor", "messaging"),
    ("marketing_network", ["--ip", "10.20.1.1", "--at", "2026-11-30 10:00", "www.instagram.com"], 0,
     "allow", "marketing-all-day"),
]


@pytest.mark.parametrize("case", EXPLAIN, ids=[c[0] for c in EXPLAIN])
def test_explain_shipped_policy(shipped, case):
    _, args, rc, action, rule = case
    code, out, err = explain(shipped, *args)
    assert code == rc, out + err
    want = "decision:  %s by rule %s (%s:%d)" % (action, rule, REPO_ROOT / "rules" / "10-policy.ini",
                                                 shipped_line(rule))
    assert want in out, "want %r in:\n%s" % (want, out)


def test_explain_details(shipped):
    code, out, _ = explain(shipped, "--user", "alice", "--at", "2026-11-30 10:00", "www.linkedin.com")
    assert code == 0
    assert "platform:  linkedin" in out and "category:  social" in out, out
    assert "roles:     marketing (user alice)" in out, out
    assert "time:      Mon 2026-11-30 10:00 (UTC)" in out, out

    code, out, _ = explain(shipped, "--ip", "10.1.2.3", "--at", "2026-11-30 10:00", "www.reddit.com")
    assert code == 1
    assert "roles:     staff (network 10.0.0.0/8)" in out, out
    assert "message:   Social media is open 12:00-13:30 and after 17:30." in out, out
    assert re.search(r"everyone-at-lunch +no: outside its time windows", out), out

    code, out, _ = explain(shipped, "--ip", "10.1.2.3", "--at", "2026-11-30 12:10", "www.reddit.com")
    assert code == 0
    assert "quota:     0 of 30 minutes used this day, 30 left" in out, out

    # quota used so far comes from state_dir
    (shipped.dir / "state" / "state").write_bytes(
        b"socialgate-state 1\nq 20787 29433000 12 10.1.2.3\x1feveryone-at-lunch\n"
        b"q 20787 29433000 30 10.9.9.9\x1feveryone-at-lunch\n")
    code, out, _ = explain(shipped, "--ip", "10.1.2.3", "--at", "2026-11-30 12:10", "www.reddit.com")
    assert code == 0
    assert "quota:     12 of 30 minutes used this day, 18 left" in out, out
    code, out, _ = explain(shipped, "--ip", "10.9.9.9", "--at", "2026-11-30 12:10", "www.reddit.com")
    assert code == 1 and "deny by rule social-otherwise" in out, out
    assert re.search(r"everyone-at-lunch +no: quota used up", out), out
    # explain only reads the state
    assert (shipped.dir / "state" / "state").exists()

    # unclassified: no rule matches
    code, out, _ = explain(shipped, "--at", "2026-11-30 10:00", "http://intranet.example.test/x")
    assert code == 0
    assert "platform:  unclassified" in out and "decision:  allow (no rule matched: rule=-)" in out, out

    # usage errors
    for args in (["--at", "2026-02-30 10:00", "www.reddit.com"], ["--at", "tomorrow", "www.reddit.com"],
                 ["--ip", "not-an-ip", "www.reddit.com"], []):
        code, out, err = explain(shipped, *args)
        assert code == 2, (args, out, err)


def test_explain_methods_and_tunnels(make_sg, hosts):
    policy = ("[rule fb-post]\nplatforms = facebook\nmethods = POST\naction = deny\n\n"
              "[rule fb-groups]\nplatforms = facebook\npath_regex = ^/groups/\naction = deny\n\n"
              "[rule fb]\nplatforms = facebook\naction = allow\n")
    d = start_policy(make_sg, hosts, policy, start=False)
    assert explain(d, "http://www.facebook.com/")[0] == 0
    code, out, _ = explain(d, "--method", "POST", "http://www.facebook.com/")
    assert code == 1 and "deny by rule fb-post" in out, out
    code, out, _ = explain(d, "http://www.facebook.com/groups/1")
    assert code == 1 and "deny by rule fb-groups" in out, out
    # a tunnel shows neither method nor path
    for args in (["https://www.facebook.com/groups/1"], ["--method", "CONNECT", "www.facebook.com"]):
        code, out, _ = explain(d, *args)
        assert code == 0 and "allow by rule fb " in out, (args, out)


def test_explain_host_port_is_a_connect(make_sg, hosts):
    """`host:443` is what a CONNECT names: a port of connect_ports without a scheme makes it
    a tunnel (methods and path_regex cannot match); `host`, `host:80` and `http://host:443/`
    stay plain GETs, and an explicit --method wins."""
    policy = ("[rule fb-get]\nplatforms = facebook\nmethods = GET\naction = deny\n\n"
              "[rule fb]\nplatforms = facebook\naction = allow\n")
    d = start_policy(make_sg, hosts, policy, start=False)
    for target in ("www.facebook.com:443", "www.facebook.com:8443"):
        code, out, err = explain(d, target)
        assert code == 0 and "allow by rule fb " in out, (target, out, err)
        assert "request:   CONNECT %s, a tunnel" % target in out, out
    for args in (["www.facebook.com"], ["www.facebook.com:80"], ["www.facebook.com:444"],
                 ["http://www.facebook.com:443/"], ["--method", "GET", "www.facebook.com:443"]):
        code, out, err = explain(d, *args)
        assert code == 1 and "deny by rule fb-get" in out and "request:   GET /" in out, (args, out, err)
    # an address and a TLS port: TLS to an address carries no SNI, the tunnel is opaque
    for target in ("[2001:db8::1]:443", "192.0.2.7:8443"):
        code, out, _ = explain(d, target)
        assert code == 1 and "TLS without SNI to an IP address" in out, out
    code, out, _ = explain(d, "192.0.2.7:80")
    assert code == 0 and "request:   GET /" in out, out


def test_explain_at_relative_times(shipped):
    """--at takes HH:MM (today), tomorrow HH:MM and day names (the next such day, today when
    today is that day), all in [proxy] timezone (UTC here)."""
    def time_line(args):
        before = datetime.datetime.now(datetime.timezone.utc).date()
        code, out, err = explain(shipped, "--ip", "10.1.2.3", *args, "www.reddit.com")
        after = datetime.datetime.now(datetime.timezone.utc).date()
        m = re.search(r"^time: +(\w{3}) (\d{4}-\d\d-\d\d) (\d\d:\d\d) \(UTC\)$", out, re.M)
        assert m, (args, out, err)
        return code, out, m.group(1), datetime.date.fromisoformat(m.group(2)), m.group(3), before, after

    code, _, wd, day, hm, before, after = time_line(["--at", "12:10"])
    assert day in (before, after) and hm == "12:10" and wd == day.strftime("%a")
    code, _, wd, day, hm, before, after = time_line(["--at", "tomorrow 09:00"])
    assert day in (before + datetime.timedelta(days=1), after + datetime.timedelta(days=1))
    assert hm == "09:00" and wd == day.strftime("%a")
    for word, weekday in (("mon", 0), ("Saturday", 5), ("SUN", 6), ("wed", 2)):
        code, out, wd, day, hm, before, after = time_line(["--at", "%s 10:00" % word])
        assert day.weekday() == weekday and hm == "10:00", (word, out)
        assert before <= day <= after + datetime.timedelta(days=6), (word, day)
        # the shipped policy: social media all day at weekends, not on weekday mornings
        if weekday >= 5:
            assert code == 0 and "allow by rule everyone-at-lunch" in out, (word, out)
        else:
            assert code == 1 and "deny by rule social-otherwise" in out, (word, out)
    code, out, *_ = time_line(["--at", "mon 12:10"])
    assert code == 0 and "allow by rule everyone-at-lunch" in out, out

    for bad in ("tomorrow", "mon", "24:00", "next mon 10:00", "someday 10:00", "2026-11-31 10:00"):
        code, out, err = explain(shipped, "--at", bad, "www.reddit.com")
        assert code == 2 and out == "", (bad, out)
        assert err.startswith("socialgate explain: --at %s: " % bad), err


def test_explain_exit_status(shipped):
    """explain: 0 allowed, 1 denied, 2 for a usage or a configuration error, so that a
    script can tell a denial from a broken configuration; -t says 1 for the latter."""
    assert explain(shipped, "--user", "alice", "--at", "2026-11-30 10:00", "www.linkedin.com")[0] == 0
    assert explain(shipped, "--ip", "10.1.2.3", "--at", "2026-11-30 10:00", "www.reddit.com")[0] == 1
    code, out, err = explain(shipped, "--bogus", "www.reddit.com")
    assert code == 2 and "usage:" in err, err
    bad = shipped.dir / "bad.ini"
    bad.write_text(shipped.config.read_text().replace("[proxy]", "[proxy]\nno_such_key = 1", 1))
    r = run([str(BIN), "explain", "-c", str(bad), "www.reddit.com"], timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2 and "%s:2: " % bad in err and r.stdout == b"", err
    r = run([str(BIN), "-t", "-c", str(bad)], timeout=20)
    assert r.returncode == 1, r.stderr
    r = run([str(BIN), "explain", "-c", str(shipped.dir / "missing.ini"), "www.reddit.com"], timeout=20)
    assert r.returncode == 2, r.stderr


# --- TLS: SNI and CONNECT host disagree -----------------------------------------------------------

SNI_POLICY = """\
[rule linkedin-ok]
platforms = linkedin
action = allow

[rule youtube-monitor]
platforms = youtube
action = monitor

[rule social-deny]
categories = social
action = deny
"""


def test_sni_mismatch_deny_closes_tunnel(make_sg, env, hosts):
    hello = HELLO_FACEBOOK.read_bytes()
    d = start_policy(make_sg, hosts, SNI_POLICY)
    t0 = time.time()

    c, status = raw_connect(d, "www.linkedin.com", env.nginx_https)
    assert status == 200
    c.send(hello)
    assert tunnel_closed_without_reply(c), "the tunnel was not closed after a denied SNI"
    c.close()
    e = d.wait_log(since=t0, ev="tunnel", host="www.linkedin.com")
    assert (e["sni"], e["platform"], e["category"], e["rule"], e["action"], e["status"]) == \
        ("www.facebook.com", "facebook", "social", "social-deny", "deny", "200"), e.raw
    assert e.get("mismatch") == "sni", e.raw
    assert e.keys_in_order[:len(REQUEST_FIELDS)] == REQUEST_FIELDS, e.raw

    # the same with curl: CONNECT www.linkedin.com, SNI www.facebook.com
    t1 = time.time()
    r = curl("-x", d.proxy, "--cacert", env.ca, "--connect-to",
             "www.facebook.com:%d:www.linkedin.com:%d" % (env.nginx_https, env.nginx_https),
             "-o", "/dev/null", "https://www.facebook.com:%d/u/x" % env.nginx_https, timeout=15)
    assert r.returncode != 0, "the TLS handshake succeeded through a denied SNI"
    e = d.wait_log(since=t1, ev="tunnel", sni="www.facebook.com")
    assert (e["host"], e["action"], e.get("mismatch")) == ("www.linkedin.com", "deny", "sni"), e.raw

    # a CONNECT to an address says nothing: the SNI decides
    t2 = time.time()
    c, status = raw_connect(d, "127.0.0.1", env.nginx_https)
    assert status == 200
    c.send(hello)
    assert tunnel_closed_without_reply(c), "the tunnel to an address was not closed"
    c.close()
    e = d.wait_log(since=t2, ev="tunnel", host="127.0.0.1")
    assert (e["sni"], e["platform"], e["action"], e.get("mismatch")) == \
        ("www.facebook.com", "facebook", "deny", "sni"), e.raw

    # the same SNI with a matching CONNECT host is denied before the tunnel
    c, status = raw_connect(d, "www.facebook.com", env.nginx_https)
    assert status == 403
    c.close()


def test_sni_mismatch_stricter_decision_wins(make_sg, env, hosts):
    d = start_policy(make_sg, hosts, SNI_POLICY)
    t0 = time.time()
    # CONNECT allowed (linkedin), SNI monitored (youtube): the tunnel works, logged as monitor
    r = curl("-x", d.proxy, "-k", "--connect-to",
             "www.youtube.com:%d:www.linkedin.com:%d" % (env.nginx_https, env.nginx_https),
             "-o", "/dev/null", "-w", "%{http_code}", "https://www.youtube.com:%d/u/x" % env.nginx_https,
             timeout=15)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(since=t0, ev="tunnel", sni="www.youtube.com")
    assert (e["host"], e["platform"], e["rule"], e["action"], e.get("mismatch")) == \
        ("www.linkedin.com", "youtube", "youtube-monitor", "monitor", "sni"), e.raw

    # CONNECT monitored (youtube), SNI allowed (linkedin): monitor stays
    t1 = time.time()
    r = curl("-x", d.proxy, "-k", "--connect-to",
             "www.linkedin.com:%d:www.youtube.com:%d" % (env.nginx_https, env.nginx_https),
             "-o", "/dev/null", "-w", "%{http_code}", "https://www.linkedin.com:%d/u/y" % env.nginx_https,
             timeout=15)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(since=t1, ev="tunnel", sni="www.linkedin.com")
    assert (e["host"], e["platform"], e["rule"], e["action"], e.get("mismatch")) == \
        ("www.youtube.com", "youtube", "youtube-monitor", "monitor", "sni"), e.raw


def test_state_saved_every_30s(make_sg, env, hosts):
    now = datetime.datetime.now(datetime.timezone.utc)
    if now.hour == 23 and now.minute >= 58:
        pytest.skip("too close to midnight UTC")
    d = start_policy(make_sg, hosts, QUOTA_POLICY % "30m/day")
    status, _, _ = get(d, "http://www.linkedin.com:%d/u/%s" % (env.nginx_http, token()))
    assert status == 200
    state = d.dir / "state" / "state"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if state.exists() and b"127.0.0.1\x1fsocial-quota" in state.read_bytes():
            break
        time.sleep(0.5)
    else:
        pytest.fail("no state file with the quota minute within 40 s (it is saved every 30 s)")
    assert d.alive()


def test_sni_stricter_wins_over_unclassified_connect_host(make_sg, env, hosts):
    policy = ("[rule facebook-ok]\nplatforms = facebook\naction = allow\n\n"
              "[rule unclassified-monitor]\nplatforms = unclassified\naction = monitor\n")
    d = start_policy(make_sg, hosts, policy)
    t0 = time.time()
    c, status = raw_connect(d, "intranet.example.test", env.nginx_https)
    assert status == 200
    c.send(HELLO_FACEBOOK.read_bytes())
    time.sleep(0.3)
    c.close()
    e = d.wait_log(since=t0, ev="tunnel", host="intranet.example.test")
    assert e.get("mismatch") == "sni", e.raw
    assert e["action"] == "monitor", e.raw
