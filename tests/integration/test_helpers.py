"""Directory identity through Squid's helpers ([auth] basic_helper, group_helper): a real
OpenLDAP slapd on loopback, started from a generated slapd.conf in a temporary folder,
with Squid's own basic_ldap_auth and ext_ldap_group_acl as helpers; and small fake helpers
that crash, hang, answer garbage or BH, none of which may ever turn into an allow."""

import base64
import os
import shutil
import signal
import subprocess
import re
import textwrap
import time

import pytest

import sgtest
from sgtest import free_port, kill_group, run, token, wait_port, write_rules

SLAPD = "/usr/sbin/slapd"
SQUID_LIB = "/usr/lib/squid"
BASIC_LDAP = SQUID_LIB + "/basic_ldap_auth"
GROUP_LDAP = SQUID_LIB + "/ext_ldap_group_acl"
SUFFIX = "dc=example,dc=com"
ROOTDN = "cn=admin," + SUFFIX
ROOTPW = "admin-secret"

need_ldap = pytest.mark.skipif(
    not (os.access(SLAPD, os.X_OK) and os.access(BASIC_LDAP, os.X_OK)
         and os.access(GROUP_LDAP, os.X_OK) and shutil.which("ldapadd")
         and shutil.which("slappasswd")),
    reason="needs slapd, ldap-utils and squid (make test-deps)")

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {d}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
"""


class Slapd:
    """slapd on a free loopback port, its data in d (kept across stop/start)."""

    def __init__(self, d):
        self.d = d
        (d / "db").mkdir(parents=True)
        (d / "slapd.conf").write_text(SLAPD_CONF.format(d=d, suffix=SUFFIX, rootdn=ROOTDN,
                                                        rootpw=ROOTPW))
        self.port = free_port()
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.proc = None

    def start(self):
        self.log = open(self.d / "slapd.log", "ab")
        # -d 0: in the foreground (the test owns the process), logging nothing.
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-f", str(self.d / "slapd.conf"),
                                     "-h", self.url + "/"], stdout=self.log, stderr=self.log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        assert wait_port("127.0.0.1", self.port, 15, self.proc), \
            "slapd did not start:\n" + (self.d / "slapd.log").read_text(errors="replace")[-2000:]

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM, grace=5)
            self.proc = None
            self.log.close()

    def ldif(self, tool, text):
        r = run([tool, "-x", "-H", self.url, "-D", ROOTDN, "-w", ROOTPW],
                input=text.encode(), timeout=15)
        assert r.returncode == 0, "%s failed: %s" % (tool, r.stderr.decode(errors="replace"))


def hashed(password):
    r = run(["slappasswd", "-h", "{SSHA}", "-s", password], timeout=10)
    assert r.returncode == 0
    return r.stdout.decode().strip()


USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol pw%"}


def directory_ldif():
    out = ["dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n" % SUFFIX,
           "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n" % SUFFIX,
           "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n" % SUFFIX]
    for i, (user, pw) in enumerate(sorted(USERS.items())):
        out.append(textwrap.dedent("""\
            dn: uid={u},ou=people,{s}
            objectClass: inetOrgPerson
            objectClass: posixAccount
            uid: {u}
            cn: {u}
            sn: {u}
            uidNumber: {n}
            gidNumber: 1000
            homeDirectory: /home/{u}
            userPassword: {h}
            """).format(u=user, s=SUFFIX, n=2000 + i, h=hashed(pw)))
    out.append("dn: cn=marketing,ou=groups,%s\nobjectClass: posixGroup\ncn: marketing\n"
               "gidNumber: 3001\nmemberUid: alice\n" % SUFFIX)
    out.append("dn: cn=sales,ou=groups,%s\nobjectClass: posixGroup\ncn: sales\n"
               "gidNumber: 3002\nmemberUid: bob\n" % SUFFIX)
    return "\n".join(out)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    s = Slapd(tmp_path_factory.mktemp("slapd"))
    s.start()
    try:
        s.ldif("ldapadd", directory_ldif())
        yield s
    finally:
        s.stop()


CATALOG = """\
[platform facebook]
category = social
domains = facebook.com

"""

RULES = """\
[role marketing]
groups = marketing

[role sales]
groups = sales

[rule marketing-only]
platforms = facebook
roles = marketing
action = allow

[rule others]
platforms = facebook
action = deny
"""


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def get(d, env, auth=None, host="www.facebook.com", timeout=15):
    """One plain HTTP request through d; returns (status, body). www.facebook.com
    resolves to the local origin (the session's DNS stub)."""
    c = d.conn(timeout=timeout)
    try:
        hdr = "Proxy-Authorization: %s\r\n" % auth if auth else ""
        c.send("GET http://%s:%d/u/%s HTTP/1.1\r\nHost: %s:%d\r\n%sConnection: close\r\n\r\n"
               % (host, env.nginx_http, token(), host, env.nginx_http, hdr))
        r = c.read_response(timeout=timeout)
        return r.status, r.body
    finally:
        c.close()


def ldap_daemon(make_sg, slapd, ttl="2s", extra=None):
    auth = {
        "basic_helper": "%s -v 3 -b ou=people,%s -f uid=%%s -H %s" % (BASIC_LDAP, SUFFIX, slapd.url),
        "group_helper": "%s -v 3 -b ou=groups,%s -f (&(cn=%%g)(memberUid=%%u)) -H %s"
                        % (GROUP_LDAP, SUFFIX, slapd.url),
        "helper_children": "2",
        "helper_ttl": ttl,
    }
    auth.update(extra or {})
    d = make_sg({"auth": auth}, start=False)
    write_rules(d, CATALOG + RULES)
    d.start()
    return d


@need_ldap
def test_ldap_passwords_and_groups(make_sg, env, slapd):
    d = ldap_daemon(make_sg, slapd)
    # Anonymous: asked to sign in (a role could allow it).
    assert get(d, env)[0] == 407
    # Right password, member of marketing: allowed, logged as alice with her role.
    status, _ = get(d, env, basic("alice", "alice-pw"))
    assert status == 200
    e = d.wait_log(user="alice", action="allow")
    assert e.get("roles") == "marketing"
    # A password with a space and a percent sign crosses the helper protocol escaped.
    assert get(d, env, basic("carol", "carol pw%"))[0] == 403
    d.wait_log(user="carol", action="deny")
    # Wrong password: 407 again; bob (sales) is denied by the rule.
    assert get(d, env, basic("alice", "nope"))[0] == 407
    assert get(d, env, basic("nobody", "x"))[0] == 407
    assert get(d, env, basic("bob", "bob-pw"))[0] == 403
    e = d.wait_log(user="bob", action="deny")
    assert e.get("roles") == "sales"


@need_ldap
def test_group_helper_answers_when_a_groups_file_is_set_too(make_sg, env, slapd, tmp_path):
    """groups are asked of the groups file or, when set, of the group helper: with both, the
    directory decides (bob is in sales there, in marketing only in the file) and -t warns."""
    gf = tmp_path / "groups"
    gf.write_text("marketing: bob\n")
    gf.chmod(0o644)
    d = ldap_daemon(make_sg, slapd, extra={"groups": str(gf)})
    assert get(d, env, basic("bob", "bob-pw"))[0] == 403
    e = d.wait_log(user="bob", action="deny")
    assert e.get("roles") == "sales", e.raw
    assert get(d, env, basic("alice", "alice-pw"))[0] == 200
    r = run([str(sgtest.BIN), "-t", "-c", str(d.config)], timeout=15)
    out = r.stderr.decode() + r.stdout.decode()
    assert r.returncode == 0, out
    assert "warning: [auth] groups = %s is not used: group_helper answers" % gf in out, out


def modify(slapd, group, op, user):
    slapd.ldif("ldapmodify", "dn: cn=%s,ou=groups,%s\nchangetype: modify\n%s: memberUid\n"
               "memberUid: %s\n" % (group, SUFFIX, op, user))


def poll_status(d, env, auth, want, timeout=10):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = get(d, env, auth)[0]
        if status == want:
            break
        time.sleep(0.3)
    return status


@need_ldap
def test_group_change_seen_after_ttl(make_sg, env, slapd):
    # A short helper_ttl: yes and no answers are both trusted for 1 s.
    d = ldap_daemon(make_sg, slapd, ttl="1s")
    assert get(d, env, basic("bob", "bob-pw"))[0] == 403
    assert get(d, env, basic("alice", "alice-pw"))[0] == 200
    modify(slapd, "marketing", "add", "bob")
    modify(slapd, "marketing", "delete", "alice")
    try:
        assert poll_status(d, env, basic("bob", "bob-pw"), 200) == 200, \
            "bob's new group was not seen"
        assert poll_status(d, env, basic("alice", "alice-pw"), 403) == 403, \
            "alice's old group was still trusted"
    finally:
        modify(slapd, "marketing", "delete", "bob")
        modify(slapd, "marketing", "add", "alice")


@need_ldap
def test_explain_asks_the_group_helper(make_sg, env, slapd):
    d = ldap_daemon(make_sg, slapd)
    r = run([str(sgtest.BIN), "explain", "-c", str(d.config), "--user", "alice",
             "http://www.facebook.com/"], timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "marketing (member)" in out and "sales (not a member)" in out
    assert "allow by rule marketing-only" in out


PW_HELPER = """\
#!/bin/sh
# Any user whose password is "pw" (the LDAP groups decide the rest).
while read -r user pw; do
    if [ "$pw" = pw ]; then echo OK; else echo ERR; fi
done
"""


@need_ldap
def test_slapd_down_then_back(make_sg, env, slapd, tmp_path):
    # Groups from LDAP, passwords from a local helper: the group questions fail while
    # slapd is down (503 auth-unavailable, never a role) and work again once it is back.
    pw = tmp_path / "pw-helper.sh"
    pw.write_text(PW_HELPER)
    pw.chmod(0o755)
    d = ldap_daemon(make_sg, slapd, ttl="1s", extra={"basic_helper": str(pw)})
    ldap = ldap_daemon(make_sg, slapd, ttl="1s")
    assert get(d, env, basic("alice", "pw"))[0] == 200
    time.sleep(1.1)  # past helper_ttl: the next answers are asked again
    slapd.stop()
    try:
        t0 = time.time()
        assert get(d, env, basic("alice", "pw"))[0] == 503
        e = d.wait_log(since=t0, user="alice")
        assert e.get("reason") == "auth-unavailable"
        assert get(d, env, basic("bob", "pw"))[0] == 503
        # basic_ldap_auth says "BH Success" when it cannot search: a 407, never an allow.
        assert get(ldap, env, basic("alice", "alice-pw"))[0] == 407
        # The proxy serves what needs no directory.
        assert get(d, env, host="127.0.0.1")[0] == 200
    finally:
        slapd.start()
    assert poll_status(d, env, basic("alice", "pw"), 200, timeout=15) == 200
    # Nothing from the outage was remembered.
    assert get(ldap, env, basic("alice", "alice-pw"))[0] == 200


# --- faults, with fake helpers ----------------------------------------------------------

FAKE = """\
#!/usr/bin/python3 -u
import os, sys, time
mode = {mode!r}
marker = {marker!r}
with open({pids!r}, "a") as f:
    f.write("%d\\n" % os.getpid())
for line in sys.stdin:
    user, _, pw = line.strip().partition(" ")
    if user == "good":
        print("OK" if pw == "pw" else "ERR message=Wrong%20password%20%3Cb%3Efor%3C/b%3E%20good")
    elif mode == "crash":
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
        print("OK")
    elif mode == "hang":
        time.sleep(60)
    elif mode == "garbage":
        print("YES please")
    elif mode == "bh":
        print("BH message=backend%20down")
    elif mode == "dies":
        os._exit(1)
    sys.stdout.flush()
"""


def fake_helper(d, mode):
    p = d / ("helper-%s.py" % mode)
    p.write_text(FAKE.format(mode=mode, marker=str(d / ("marker-" + mode)),
                             pids=str(d / ("pids-" + mode))))
    p.chmod(0o755)
    return p


def fake_daemon(make_sg, tmp_path, mode, children=2, limits=None, admin=False):
    h = fake_helper(tmp_path, mode)
    cfg = {"auth": {"basic_helper": str(h), "helper_children": str(children), "helper_ttl": "1m",
                    "required": "yes"}}
    if limits:
        cfg["limits"] = limits
    if admin:
        cfg["admin"] = {"listen": "127.0.0.1:%d" % free_port()}
    d = make_sg(cfg)
    if admin:
        d.admin = "http://" + cfg["admin"]["listen"]
        assert wait_port("127.0.0.1", int(cfg["admin"]["listen"].rsplit(":", 1)[1]), 10, d.proc)
    return d


def pids_of(tmp_path, mode, n, timeout=10):
    """The pids the fake helper wrote, once there are at least n."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pids = [int(x) for x in (tmp_path / ("pids-" + mode)).read_text().split()]
        except FileNotFoundError:
            pids = []
        if len(pids) >= n or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def gone(pid):
    """Neither running nor a zombie left unreaped (either keeps /proc/PID)."""
    return not os.path.exists("/proc/%d" % pid)


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def metric_value(text, name, helper):
    m = re.search(r'^%s\{helper="%s"\} (\d+)$' % (re.escape(name), helper), text, re.M)
    assert m, "%s{helper=%s} not in /metrics:\n%s" % (name, helper, text)
    return int(m.group(1))


def test_wrong_password_message_escaped(make_sg, env, tmp_path):
    d = fake_daemon(make_sg, tmp_path, "bh")
    status, body = get(d, env, basic("good", "bad"))
    assert status == 407
    assert b"Wrong password &lt;b&gt;for&lt;/b&gt; good" in body
    assert get(d, env, basic("good", "pw"))[0] == 200


@pytest.mark.parametrize("mode", ["bh", "garbage", "dies"])
def test_helper_that_cannot_say_never_allows(make_sg, env, tmp_path, mode):
    d = fake_daemon(make_sg, tmp_path, mode)
    status, _ = get(d, env, basic("someone", "x"))
    assert status == 503
    e = d.wait_log(user="someone")
    assert e.get("reason") == "auth-unavailable"
    # The proxy keeps serving others, through the same helper.
    assert get(d, env, basic("good", "pw"))[0] == 200


def test_helper_crash_is_retried_once(make_sg, env, tmp_path):
    # The first child to see "someone" dies; the request is retried on a restarted or
    # other child, which answers OK.
    d = fake_daemon(make_sg, tmp_path, "crash")
    assert get(d, env, basic("someone", "x"))[0] == 200
    assert get(d, env, basic("good", "pw"))[0] == 200


def test_hanging_helper_times_out(make_sg, env, tmp_path):
    d = fake_daemon(make_sg, tmp_path, "hang", limits={"connect_timeout": "1s"}, admin=True)
    t0 = time.monotonic()
    status, _ = get(d, env, basic("someone", "x"))
    assert status == 503
    assert time.monotonic() - t0 < 8
    # The hung child was restarted: others are served, the second time from the cache.
    assert get(d, env, basic("good", "pw"))[0] == 200
    assert get(d, env, basic("good", "pw"))[0] == 200
    text = sgtest.http_get(d.admin + "/metrics")[2].decode()
    assert metric_value(text, "socialgate_helper_timeouts_total", "basic") == 1
    assert metric_value(text, "socialgate_helper_restarts_total", "basic") >= 1
    assert metric_value(text, "socialgate_helper_requests_total", "basic") == 2
    assert metric_value(text, "socialgate_helper_cache_hits_total", "basic") == 1
    assert 'helper="group"' not in text  # not configured: not shown


def test_reload_restarts_helpers_only_when_changed(make_sg, env, tmp_path):
    d = fake_daemon(make_sg, tmp_path, "bh", children=2)
    first = pids_of(tmp_path, "bh", 2)
    assert len(first) == 2
    d.send(signal.SIGHUP)
    time.sleep(1.0)
    assert get(d, env, basic("good", "pw"))[0] == 200
    assert pids_of(tmp_path, "bh", 3, timeout=0.5) == first, "an unchanged helper was restarted"
    # Three children now: a new pool, the old children stopped and reaped.
    text = d.config.read_text().replace("helper_children = 2", "helper_children = 3")
    d.config.write_text(text)
    d.send(signal.SIGHUP)
    assert len(pids_of(tmp_path, "bh", 5)) == 5
    assert wait_gone(first), "the old children were not stopped"
    assert get(d, env, basic("good", "pw"))[0] == 200
    # A reload with htpasswd and basic_helper both set fails: the old config is kept.
    hp = tmp_path / "users"
    hp.write_text("x:{SHA}x\n")
    d.config.write_text(text.replace("[auth]\n", "[auth]\nhtpasswd = %s\n" % hp))
    d.send(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "alternatives" not in d.stderr_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "htpasswd and basic_helper are alternatives" in d.stderr_tail()
    assert get(d, env, basic("good", "pw"))[0] == 200
    # Stopped: every child is gone and reaped.
    every = pids_of(tmp_path, "bh", 5)
    rc, _ = d.stop()
    assert rc == 0
    assert wait_gone(every), "helper processes outlived the daemon"


def test_config_errors(make_sg, tmp_path):
    hp = tmp_path / "users"
    hp.write_text("alice:{SHA}x\n")
    hp.chmod(0o644)
    bad = [
        ({"htpasswd": str(hp), "basic_helper": "/bin/true"},
         "htpasswd and basic_helper are alternatives"),
        ({"basic_helper": str(tmp_path / "missing-helper")}, "basic_helper"),
        ({"group_helper": str(hp), "htpasswd": str(hp)}, "not executable"),
        ({"basic_helper": "concurrency=x /bin/true"}, "concurrency="),
    ]
    for auth, want in bad:
        d = make_sg({"auth": auth}, start=False)
        r = run([str(sgtest.BIN), "-t", "-c", str(d.config)], timeout=15)
        err = r.stderr.decode() + r.stdout.decode()
        assert r.returncode != 0, auth
        assert want in err, err
        assert "proxy.ini:" in err, err
