"""Directory identity through Squid's helpers ([auth] basic_helper, group_helper): a real
OpenLDAP slapd on loopback, started from a generated slapd.conf in a temporary folder,
with Squid's own basic_ldap_auth and ext_ldap_group_acl as helpers; and small fake helpers
that crash, hang, answer garbage or BH, none of which may ever turn into an allow."""

import base64
import os
import shutil
import signal
import subprocess
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
    # /metrics counts the helpers' questions.
    m = sgtest.http_get("http://127.0.0.1:%d/metrics" % d.admin_port)[2].decode() \
        if getattr(d, "admin_port", None) else ""
    if m:
        assert 'socialgate_helper_requests_total{helper="basic"}' in m


@need_ldap
def test_group_change_seen_after_ttl(make_sg, env, slapd):
    d = ldap_daemon(make_sg, slapd, ttl="1s")
    assert get(d, env, basic("bob", "bob-pw"))[0] == 403
    slapd.ldif("ldapmodify", "dn: cn=marketing,ou=groups,%s\nchangetype: modify\n"
               "add: memberUid\nmemberUid: bob\n" % SUFFIX)
    try:
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status = get(d, env, basic("bob", "bob-pw"))[0]
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, "bob's new group was not seen"
    finally:
        slapd.ldif("ldapmodify", "dn: cn=marketing,ou=groups,%s\nchangetype: modify\n"
                   "delete: memberUid\nmemberUid: bob\n" % SUFFIX)


@need_ldap
def test_explain_asks_the_group_helper(make_sg, env, slapd):
    d = ldap_daemon(make_sg, slapd)
    r = run([str(sgtest.BIN), "explain", "-c", str(d.config), "--user", "alice",
             "http://www.facebook.com/"], timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "marketing (member)" in out and "sales (not a member)" in out
    assert "allow by rule marketing-only" in out


@need_ldap
def test_slapd_down_then_back(make_sg, env, slapd):
    d = ldap_daemon(make_sg, slapd, ttl="1s")
    slapd.stop()
    try:
        # Not cached (a new password): the helper cannot reach the directory.
        status, body = get(d, env, basic("alice", "alice-pw-" + token()))
        assert status in (407, 503)
        # Group lookups that fail never grant a role.
        status, _ = get(d, env, basic("bob", "bob-pw"))
        assert status != 200
    finally:
        slapd.start()
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        status = get(d, env, basic("alice", "alice-pw"))[0]
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200


# --- faults, with fake helpers ----------------------------------------------------------

FAKE = """\
#!/usr/bin/python3 -u
import os, sys, time
mode = {mode!r}
marker = {marker!r}
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
    p.write_text(FAKE.format(mode=mode, marker=str(d / ("marker-" + mode))))
    p.chmod(0o755)
    return p


def fake_daemon(make_sg, tmp_path, mode, children=2, limits=None):
    h = fake_helper(tmp_path, mode)
    cfg = {"auth": {"basic_helper": str(h), "helper_children": str(children), "helper_ttl": "1m",
                    "required": "yes"}}
    if limits:
        cfg["limits"] = limits
    return make_sg(cfg)


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
    d = fake_daemon(make_sg, tmp_path, "hang", limits={"connect_timeout": "1s"})
    t0 = time.monotonic()
    status, _ = get(d, env, basic("someone", "x"))
    assert status == 503
    assert time.monotonic() - t0 < 8
    # The hung child was restarted: others are served.
    assert get(d, env, basic("good", "pw"))[0] == 200


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
