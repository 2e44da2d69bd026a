"""Negotiate ([auth] negotiate_helper) with a small helper written here.

The helper speaks Squid's negotiate protocol ("YR token" / "KK token" in,
"AF token user" / "TT token" / "NA" / "BH" out) and decides by the token it
is given, so every answer can be asked for: a single-leg sign-in, a
two-leg exchange whose second leg only the child that gave the TT can
finish (the pin), a no, a broken helper, one that hangs. The real Kerberos
helper is exercised in test_kerberos.py.
"""

import base64
import os
import stat
import sys
import time

import pytest

from sgtest import make_htpasswd, token, write_rules

HELPER = r'''#!PYTHON
import os, sys, time
state = None
for line in sys.stdin:
    verb, _, tok = line.strip().partition(" ")
    word = __import__("base64").b64decode(tok).decode(errors="replace")
    if verb == "KK":
        if state is None:
            print("BH KK on a child that never sent TT", flush=True)
        else:
            print("AF ZG9uZQ== %s@EXAMPLE.COM" % state, flush=True)
        state = None
        continue
    state = None
    if word.startswith("user:"):
        print("AF ZG9uZQ== %s" % word[5:], flush=True)
    elif word.startswith("new:"):
        print("OK token=ZG9uZQ== user=%s" % word[4:], flush=True)
    elif word.startswith("legs:"):
        state = word[5:]
        print("TT Y2hhbGxlbmdl", flush=True)
    elif word == "no":
        print("NA denied", flush=True)
    elif word == "err":
        print("ERR", flush=True)
    elif word == "bh":
        print("BH broken", flush=True)
    elif word == "hang":
        time.sleep(30)
    else:
        print("garbage here", flush=True)
'''

RULES = """
[role staff]
users = alice, bob, carol@OTHER.ORG

[rule staff]
roles = staff
action = allow

[rule others]
roles = *
action = deny
message = Sign in first.
"""


def tok(word):
    return base64.b64encode(word.encode()).decode()


@pytest.fixture
def helper(tmp_path):
    p = tmp_path / "fake_negotiate.py"
    p.write_text(HELPER.replace("PYTHON", sys.executable))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def gate(make_sg, helper, tmp_path, extra_auth=None, cmd_tail="-s HTTP/gw.example.com@EXAMPLE.COM"):
    auth = {"negotiate_helper": "%s %s" % (helper, cmd_tail), "helper_children": "3",
            "required": "yes"}
    auth.update(extra_auth or {})
    d = make_sg(overrides={"auth": auth}, start=False)
    write_rules(d, RULES)
    d.start()
    return d


def get(d, url, headers=(), conn=None):
    c = conn or d.conn()
    h = "".join("%s: %s\r\n" % kv for kv in headers)
    c.send(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (url, h)).encode())
    return c, c.read_response()


def wait_count(d, n, timeout=5.0, **fields):
    deadline = time.monotonic() + timeout
    while True:
        got = [e for e in d.entries() if all(e.get(k) == v for k, v in fields.items())]
        if len(got) >= n:
            assert len(got) == n, got
            return got
        assert time.monotonic() < deadline, "%d of %d lines %s" % (len(got), n, fields)
        time.sleep(0.1)


def url_of(env):
    return "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())


def test_offered_before_basic(make_sg, helper, tmp_path, env):
    pw = make_htpasswd(tmp_path / "u.htpasswd", {"alice": "pw"})
    d = gate(make_sg, helper, tmp_path, {"htpasswd": str(pw)})
    c, r = get(d, url_of(env))
    assert r.status == 407
    assert r.header_all("Proxy-Authenticate") == ["Negotiate", 'Basic realm="socialgate"']
    c.close()


def test_negotiate_only_offers_no_basic(make_sg, helper, tmp_path, env):
    d = gate(make_sg, helper, tmp_path)
    c, r = get(d, url_of(env))
    assert r.status == 407 and r.header_all("Proxy-Authenticate") == ["Negotiate"]
    c.close()


def test_identity_sticks_to_the_connection(make_sg, helper, tmp_path, env):
    """AF: the realm of the helper's service principal is left out of the name;
    later requests on the connection carry no token and are alice's."""
    d = gate(make_sg, helper, tmp_path)
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("user:alice@EXAMPLE.COM"))])
    assert r.status == 200, r
    c, r = get(d, url_of(env), conn=c)
    assert r.status == 200, r
    c.close()
    wait_count(d, 2, ev="request", user="alice", status="200")
    # a new connection without a token is not alice's
    c, r = get(d, url_of(env))
    assert r.status == 407
    c.close()


def test_squid34_form_and_other_realm(make_sg, helper, tmp_path, env):
    """OK token= user=: read too. A user of a realm the command line does not name
    keeps the realm (carol@OTHER.ORG is a role member by that name)."""
    d = gate(make_sg, helper, tmp_path)
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("new:bob@EXAMPLE.COM"))])
    assert r.status == 200
    c.close()
    d.wait_log(ev="request", user="bob")
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("user:carol@OTHER.ORG"))])
    assert r.status == 200
    c.close()
    d.wait_log(ev="request", user="carol@OTHER.ORG")


def test_two_realms_keep_the_realm(make_sg, helper, tmp_path, env):
    d = gate(make_sg, helper, tmp_path,
             cmd_tail="-s HTTP/gw.example.com@EXAMPLE.COM -x HTTP/gw.other.org@OTHER.ORG")
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("user:alice@EXAMPLE.COM"))])
    assert r.status == 403  # "alice@EXAMPLE.COM" is not the role's "alice"
    c.close()
    d.wait_log(ev="request", user="alice@EXAMPLE.COM")


def test_two_legs_stay_on_one_child(make_sg, helper, tmp_path, env):
    """TT: the 407 carries the helper's token and keeps the connection open; the
    client's KK reaches the child that sent the TT (the others would say BH)."""
    d = gate(make_sg, helper, tmp_path)
    for i in range(4):
        c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("legs:bob"))])
        assert r.status == 407 and r.header_all("Proxy-Authenticate") == ["Negotiate Y2hhbGxlbmdl"]
        assert (r.header("Connection") or "").lower() != "close"
        c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("second"))], conn=c)
        assert r.status == 200, (i, r)
        c.close()
    wait_count(d, 4, ev="request", user="bob", status="200")


def test_connect_carries_the_identity(make_sg, helper, tmp_path, env):
    d = gate(make_sg, helper, tmp_path)
    c = d.conn()
    c.send(("CONNECT origin.test:%d HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: "
            "Negotiate %s\r\n\r\n" % (env.nginx_https, tok("user:alice@EXAMPLE.COM"))).encode())
    r = c.read_response(method="CONNECT")
    assert r.status == 200
    c.close()
    e = d.wait_log(ev="tunnel", host="origin.test")
    assert e["user"] == "alice"


@pytest.mark.parametrize("word", ["no", "err"])
def test_no_asks_again(make_sg, helper, tmp_path, env, word):
    d = gate(make_sg, helper, tmp_path)
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok(word))])
    assert r.status == 407 and r.header_all("Proxy-Authenticate") == ["Negotiate"]
    c.close()
    e = d.wait_log(ev="request", status="407")
    assert e["user"] == "-" and e["auth"] == "fail"


@pytest.mark.parametrize("word", ["bh", "garbage"])
def test_broken_helper_is_unavailable(make_sg, helper, tmp_path, env, word):
    d = gate(make_sg, helper, tmp_path)
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok(word))])
    assert r.status == 503
    c.close()
    e = d.wait_log(ev="request", status="503")
    assert e["reason"] == "auth-unavailable" and e["user"] == "-"


def test_hanging_helper_times_out(make_sg, helper, tmp_path, env):
    d = gate(make_sg, helper, tmp_path)
    t0 = time.monotonic()
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("hang"))])
    assert r.status == 503 and time.monotonic() - t0 < 4.5
    c.close()
    assert d.wait_log(ev="request", status="503")["reason"] == "auth-unavailable"
    # the others are still served
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("user:alice@EXAMPLE.COM"))])
    assert r.status == 200
    c.close()


def test_reload_without_negotiate_ends_the_sign_in(make_sg, helper, tmp_path, env):
    """A connection signed in with Negotiate keeps its user across requests only
    while negotiate_helper is set: after a reload that removes it, the next
    request on the same connection is asked to sign in again."""
    pw = make_htpasswd(tmp_path / "u.htpasswd", {"alice": "pw"})
    d = gate(make_sg, helper, tmp_path, {"htpasswd": str(pw)})
    c, r = get(d, url_of(env), [("Proxy-Authorization", "Negotiate " + tok("user:alice@EXAMPLE.COM"))])
    assert r.status == 200
    text = d.config.read_text()
    d.config.write_text("\n".join(l for l in text.splitlines()
                                  if not l.startswith(("negotiate_helper", "helper_children"))))
    before = time.time()
    import signal
    d.send(signal.SIGHUP)
    d.wait_log(ev="config", result="ok", since=before)
    c, r = get(d, url_of(env), conn=c)
    assert r.status == 407 and r.header_all("Proxy-Authenticate") == ['Basic realm="socialgate"']
    c.close()
