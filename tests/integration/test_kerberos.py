"""Kerberos single sign-on with the real thing: an MIT KDC, Squid's
negotiate_kerberos_auth as [auth] negotiate_helper, curl --proxy-negotiate.

The realm EXAMPLE.TEST is made in a temporary folder (kdb5_util, kadmin.local)
and served by krb5kdc on a free loopback port; every Kerberos program here
reads only the files of that folder (KRB5_CONFIG, KRB5_KDC_PROFILE,
KRB5CCNAME; no replay cache), never /etc/krb5.conf. The proxy's service
principal is HTTP/localhost (curl asks for HTTP@proxyhost), its key in a
keytab; alice has a ticket from kinit, a second ticket cache stays empty.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from sgtest import CLEAN_ENV, free_port, kill_group, make_htpasswd, token, write_rules

REALM = "EXAMPLE.TEST"
TOOLS = ["/usr/sbin/krb5kdc", "/usr/sbin/kdb5_util", "/usr/sbin/kadmin.local", "kinit",
         "/usr/lib/squid/negotiate_kerberos_auth"]

RULES = """
[role staff]
users = alice, bob

[rule staff]
roles = staff
action = allow

[rule others]
roles = *
action = deny
"""


def _missing():
    return [t for t in TOOLS if shutil.which(t) is None]


pytestmark = pytest.mark.skipif(bool(_missing()), reason="Kerberos tools missing: %s" % _missing())


class Realm:
    pass


def _run(cmd, env, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=20)
    assert r.returncode == 0, "%s: %s" % (cmd, r.stderr.decode(errors="replace"))
    return r


def _wait_kdc(port, proc, timeout=10.0):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    d = tmp_path_factory.mktemp("krb")
    k = Realm()
    k.dir = d
    k.port = free_port()
    (d / "krb5.conf").write_text(
        "[libdefaults]\n"
        "    default_realm = %(r)s\n"
        "    dns_lookup_kdc = false\n"
        "    dns_lookup_realm = false\n"
        "    dns_canonicalize_hostname = false\n"
        "    rdns = false\n"
        "    udp_preference_limit = 1\n"
        "[realms]\n"
        "    %(r)s = {\n        kdc = 127.0.0.1:%(p)d\n    }\n"
        "[domain_realm]\n"
        "    localhost = %(r)s\n" % {"r": REALM, "p": k.port})
    (d / "kdc.conf").write_text(
        "[kdcdefaults]\n"
        "    kdc_ports = %(p)d\n    kdc_tcp_ports = %(p)d\n"
        "[realms]\n"
        "    %(r)s = {\n"
        "        database_name = %(d)s/principal\n"
        "        key_stash_file = %(d)s/stash\n"
        "        acl_file = %(d)s/kadm5.acl\n"
        "        kdc_ports = %(p)d\n        kdc_tcp_ports = %(p)d\n"
        "    }\n"
        "[logging]\n"
        "    kdc = FILE:%(d)s/kdc.log\n" % {"r": REALM, "p": k.port, "d": d})
    (d / "kadm5.acl").write_text("")
    k.keytab = d / "http.keytab"
    # Kerberos reads nothing of the machine: its files here, no replay cache.
    k.env = dict(CLEAN_ENV, KRB5_CONFIG=str(d / "krb5.conf"), KRB5_KDC_PROFILE=str(d / "kdc.conf"),
                 KRB5CCNAME="FILE:%s" % (d / "alice.cc"), KRB5RCACHETYPE="none",
                 KRB5_KTNAME="FILE:%s" % k.keytab)
    _run(["/usr/sbin/kdb5_util", "create", "-s", "-r", REALM, "-P", "master-" + token()], k.env)
    for q in ("addprinc -pw alice-pw alice", "addprinc -randkey HTTP/localhost",
              "ktadd -k %s HTTP/localhost" % k.keytab):
        _run(["/usr/sbin/kadmin.local", "-r", REALM, "-q", q], k.env)
    out = open(d / "kdc.out", "wb")
    k.kdc = subprocess.Popen(["/usr/sbin/krb5kdc", "-n", "-r", REALM], env=k.env, stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        assert _wait_kdc(k.port, k.kdc), "krb5kdc did not start: %s" % (d / "kdc.out").read_text()
        _run(["kinit", "alice"], k.env, stdin=b"alice-pw\n")
        # a client without a ticket: an empty cache of its own
        k.noticket_env = dict(k.env, KRB5CCNAME="FILE:%s" % (d / "nobody.cc"))
        yield k
    finally:
        kill_group(k.kdc)
        out.close()


@pytest.fixture
def gate(make_sg, realm, tmp_path, env):
    pw = make_htpasswd(tmp_path / "users.htpasswd", {"bob": "bob-pw"})
    d = make_sg(overrides={
        "auth": {"negotiate_helper": "/usr/lib/squid/negotiate_kerberos_auth -k %s -s HTTP/localhost@%s"
                 % (realm.keytab, REALM),
                 "htpasswd": str(pw), "required": "yes", "helper_children": "2"},
    }, start=False, extra_env={k: realm.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHETYPE")})
    write_rules(d, RULES)
    d.start()
    return d


def curl_k(realm_env, d, *args):
    cmd = ["curl", "-sS", "--max-time", "10", "-x", "http://localhost:%d" % d.port, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, env=realm_env, timeout=20)


def test_signed_in_without_a_prompt(gate, realm, env):
    """The log shows the Kerberos user without the realm; the connection's second
    request needs no new token."""
    d = gate
    url = "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())
    r = curl_k(realm.env, d, "--proxy-negotiate", "-U", ":", "-o", "/dev/null", "-o", "/dev/null",
               "-w", "%{http_code} ", url, url)
    assert r.stdout == b"200 200 ", r.stderr
    deadline = time.monotonic() + 5
    while True:
        got = [e for e in d.entries() if e["ev"] == "request" and e["status"] == "200"]
        if len(got) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e["user"] for e in got] == ["alice", "alice"], got
    # one connection: the 407, then the two requests
    assert len({e["client"] for e in got}) == 1, got


def test_connect_tunnel_is_authenticated(gate, realm, env):
    d = gate
    r = curl_k(realm.env, d, "--proxy-negotiate", "-U", ":", "--cacert", env.ca, "-o", "/dev/null",
               "-w", "%{http_code}", "https://origin.test:%d/small.txt" % env.nginx_https)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(ev="tunnel", host="origin.test")
    assert e["user"] == "alice" and e["status"] == "200"


def test_no_ticket_falls_back_to_basic(gate, realm, env):
    """A client without a ticket cannot answer Negotiate; the 407 offers Basic
    after it, and bob's password signs him in. (curl's --proxy-anyauth would
    pick Negotiate and not fall back; a browser does: here the client is told
    to use Basic, as a browser's second try.)"""
    d = gate
    url = "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())
    r = curl_k(realm.noticket_env, d, "--proxy-negotiate", "-U", ":", "-D", "-", "-o", "/dev/null",
               url)
    head = r.stdout.decode(errors="replace")
    assert head.startswith("HTTP/1.1 407"), (head, r.stderr)
    offers = [l.split(":", 1)[1].strip() for l in head.splitlines()
              if l.lower().startswith("proxy-authenticate:")]
    assert offers == ["Negotiate", 'Basic realm="socialgate"'], head
    r = curl_k(realm.noticket_env, d, "-U", "bob:bob-pw", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(ev="request", status="200")
    assert e["user"] == "bob"


def test_wrong_service_key_is_not_an_allow(make_sg, realm, tmp_path, env):
    """A keytab without the service's key: the helper cannot accept the token
    (BH): 503 auth-unavailable, never a pass."""
    empty = tmp_path / "other.keytab"
    e2 = dict(realm.env)
    subprocess.run(["/usr/sbin/kadmin.local", "-r", REALM, "-q",
                    "addprinc -randkey HTTP/elsewhere"], capture_output=True, env=e2, timeout=20)
    _run(["/usr/sbin/kadmin.local", "-r", REALM, "-q", "ktadd -k %s HTTP/elsewhere" % empty], e2)
    d = make_sg(overrides={
        "auth": {"negotiate_helper": "/usr/lib/squid/negotiate_kerberos_auth -k %s -s HTTP/localhost@%s"
                 % (empty, REALM), "required": "yes", "helper_children": "1"},
    }, start=False, extra_env={k: realm.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHETYPE")})
    write_rules(d, RULES)
    d.start()
    url = "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())
    r = curl_k(realm.env, d, "--proxy-negotiate", "-U", ":", "-o", "/dev/null", "-w", "%{http_code}",
               url)
    assert r.stdout == b"503", r
    assert not [e for e in d.entries() if e.get("status") == "200"]


def test_negotiate_over_the_https_proxy_port(make_sg, realm, tmp_path, env):
    """Single sign-on inside TLS: curl --proxy https://localhost:PORT --proxy-negotiate."""
    cert, key = tmp_path / "gw.pem", tmp_path / "gw.key"
    shutil.copy(env.cert, cert)
    shutil.copy(env.key, key)
    os.chmod(key, 0o600)
    tport = free_port()
    d = make_sg(overrides={
        "proxy": {"listen_tls": "127.0.0.1:%d" % tport, "tls_cert": str(cert), "tls_key": str(key)},
        "auth": {"negotiate_helper": "/usr/lib/squid/negotiate_kerberos_auth -k %s -s HTTP/localhost@%s"
                 % (realm.keytab, REALM), "required": "yes", "helper_children": "1"},
    }, start=False, extra_env={k: realm.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHETYPE")})
    write_rules(d, RULES)
    d.start()
    url = "http://127.0.0.1:%d/small.txt?%s" % (env.nginx_http, token())
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", "https://localhost:%d" % tport,
                        "--proxy-cacert", str(env.ca), "--proxy-negotiate", "-U", ":", "-o",
                        "/dev/null", "-w", "%{http_code}", url],
                       capture_output=True, env=realm.env, timeout=20)
    assert r.stdout == b"200", r.stderr
    e = d.wait_log(ev="request", status="200")
    assert e["user"] == "alice"
