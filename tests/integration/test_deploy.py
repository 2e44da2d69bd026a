"""Deployment: make install/uninstall, manual pages, the systemd unit, contrib
examples, privilege drop, -d with a pidfile, sd_notify, reload and shutdown
under load."""

import ctypes
import email.utils
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rawhttp import Conn
from sgtest import (
    ALLOW_OPAQUE, BIN, CLEAN_ENV, REPO_ROOT, curl, default_config, free_port, kill_group, parse_log,
    render_config, run, token, wait_port, write_rules,
)

MAN_PAGES = [REPO_ROOT / "contrib/man/socialgate.8", REPO_ROOT / "contrib/man/socialgate.ini.5"]
UNIT = REPO_ROOT / "contrib/systemd/socialgate.service"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def make(*args, timeout=120):
    """make in the repository, installing the binary under test without rebuilding it.

    -o marks the binary as up to date (other work in proxy/ must not be
    compiled here); BUILD keeps the generated files out of the work tree."""
    build = Path(tempfile.mkdtemp(prefix="sg-make-"))
    try:
        return run(["make", "-s", "-C", str(REPO_ROOT), "-o", str(BIN), "BIN=%s" % BIN,
                    "BUILD=%s" % build, *args], timeout=timeout)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file() or p.is_symlink())


def shipped_proxy_ini():
    """proxy.ini.example with the production paths `make install` puts in."""
    text = (REPO_ROOT / "proxy.ini.example").read_text()
    text = re.sub(r"(?m)^state_dir = state$", "state_dir = /var/lib/socialgate", text)
    return re.sub(r"(?m)^access = -$", "access = /var/log/socialgate/access.log", text)


def unit_values(text, key):
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.split("=", 1)[0].strip() == key]


class Daemon:
    """socialgate from a config in a folder of our choosing (world-traversable when asked),
    for the tests that need what SocialGate does not do: root, -d, NOTIFY_SOCKET."""

    def __init__(self, env, overrides=None, public=False):
        self.dir = Path(tempfile.mkdtemp(prefix="sg-deploy-"))
        if public:
            os.chmod(self.dir, 0o755)
        for sub in ("rules", "state", "log"):
            (self.dir / sub).mkdir(mode=0o755)
            os.chmod(self.dir / sub, 0o755)
        shutil.copy(env.hosts, self.dir / "hosts")
        os.chmod(self.dir / "hosts", 0o644)
        self.port = free_port()
        self.cfg = default_config(env, self.dir, self.port)
        self.cfg["dns"]["hosts_file"] = str(self.dir / "hosts")
        self.cfg["log"]["access"] = str(self.dir / "log" / "access.log")
        for section, kv in (overrides or {}).items():
            self.cfg.setdefault(section, {}).update(kv)
        self.config = self.dir / "proxy.ini"
        self.config.write_text(render_config(self.cfg))
        os.chmod(self.config, 0o644)
        self.log = Path(self.cfg["log"]["access"])
        self.proc = None
        self.stderr = open(self.dir / "stderr.log", "wb")

    @property
    def proxy(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, *args, env=None, wait=True):
        self.proc = subprocess.Popen([str(BIN), *args, "-c", str(self.config)], cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True, env=env or CLEAN_ENV)
        if wait and not wait_port("127.0.0.1", self.port, 15, self.proc):
            pytest.fail("socialgate did not start (exit %s):\n%s" % (self.proc.poll(), self.stderr_text()))
        return self

    def stderr_text(self):
        self.stderr.flush()
        return (self.dir / "stderr.log").read_text(errors="replace")[-4000:]

    def entries(self, **fields):
        return [e for e in parse_log(self.log) if all(e.get(k) == str(v) for k, v in fields.items())]

    def wait_entries(self, n, timeout=10, **fields):
        deadline = time.monotonic() + timeout
        while True:
            found = self.entries(**fields)
            if len(found) >= n or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def close(self):
        if self.proc is not None:
            kill_group(self.proc, signal.SIGINT, grace=3)
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemons():
    made = []

    def _make(env, overrides=None, public=False):
        d = Daemon(env, overrides, public)
        made.append(d)
        return d

    yield _make
    for d in made:
        d.close()


def get_status(proxy, url, timeout=10):
    r = curl("-x", proxy, "-o", "/dev/null", "-w", "%{http_code}", url, timeout=timeout)
    return r.stdout.decode()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


# ---------------------------------------------------------------------------------------------
# manual pages
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_groff_no_warnings(page):
    if shutil.which("groff") is None:
        pytest.skip("groff not installed (groff-base)")
    r = run(["groff", "-ww", "-man", "-z", str(page)], timeout=30)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode(errors="replace")


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_man_no_warnings(page):
    if shutil.which("man") is None:
        pytest.skip("man not installed (man-db)")
    env = dict(CLEAN_ENV, MANWIDTH="80")
    r = run(["man", "--warnings", "-l", str(page)], timeout=30, env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stderr == b"", r.stderr.decode(errors="replace")
    text = plain(r.stdout)
    assert "NAME" in text and "SEE ALSO" in text


def plain(out):
    """man's output without overstrike bold and underline."""
    return re.sub(r".\x08", "", out.decode(errors="replace"))


def _man_text(page):
    env = dict(CLEAN_ENV, MANWIDTH="200")
    r = run(["man", "-l", str(page)], timeout=30, env=env)
    assert r.returncode == 0
    return plain(r.stdout).replace("\u2010", "-")


def _sections(text):
    """{"[proxy]": body, ...} of the rendered socialgate.ini(5): subsection titles alone on a line."""
    parts = re.split(r"(?m)^ {0,4}(\[[a-z]+(?: NAME)?\])[ \t]*$", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_man_ini_documents_every_proxy_ini_key():
    if shutil.which("man") is None:
        pytest.skip("man not installed (man-db)")
    src = (REPO_ROOT / "proxy/config.c").read_text()
    keys = re.findall(r'\{"(\w+)", "(\w+)", K_\w+,', src)
    assert len(keys) >= 25, "could not read the key table of proxy/config.c"
    sections = _sections(_man_text(MAN_PAGES[1]))
    missing = []
    for section, key in keys:
        body = sections.get("[%s]" % section, "")
        if not re.search(r"(?m)^ +%s( +\(|$)" % re.escape(key), body):
            missing.append("[%s] %s" % (section, key))
    assert not missing, "socialgate.ini(5) does not document: %s" % ", ".join(missing)


def test_man_ini_documents_every_rules_key():
    if shutil.which("man") is None:
        pytest.skip("man not installed (man-db)")
    rules_src = (REPO_ROOT / "proxy/rules.c").read_text()
    policy_src = (REPO_ROOT / "proxy/policy.c").read_text()

    def table(src, name):
        m = re.search(r"%s\[\] = \{([^}]*)\}" % name, src)
        assert m, "no %s in the sources" % name
        return re.findall(r'"(\w+)"', m.group(1))

    wanted = {
        "[platform NAME]": table(rules_src, "platform_keys"),
        "[role NAME]": table(policy_src, "role_keys"),
        "[schedule NAME]": table(policy_src, "sched_keys"),
        "[rule NAME]": table(policy_src, "rule_keys"),
        "[ech]": table(rules_src, "ech_keys"),
    }
    sections = _sections(_man_text(MAN_PAGES[1]))
    missing = []
    for section, keys in wanted.items():
        body = sections.get(section)
        if body is None:
            missing.append(section)
            continue
        for key in keys:
            if not re.search(r"(?m)^ +%s( +\(| *$| +[A-Z])" % re.escape(key), body):
                missing.append("%s %s" % (section, key))
    assert not missing, "socialgate.ini(5) does not document: %s" % ", ".join(missing)


def test_man_8_documents_options_commands_signals():
    if shutil.which("man") is None:
        pytest.skip("man not installed (man-db)")
    text = _man_text(MAN_PAGES[0])
    main_src = (REPO_ROOT / "proxy/main.c").read_text()
    m = re.search(r'getopt\(argc, argv, "([^"]+)"\)', main_src)
    assert m, "no getopt string in proxy/main.c"
    for opt in m.group(1).replace(":", ""):
        assert re.search(r"(?m)^ +-%s\b" % opt, text), "option -%s not documented" % opt
    explain_src = (REPO_ROOT / "proxy/explain.c").read_text()
    for longopt in re.findall(r'\{"(\w+)", (?:required|no)_argument', explain_src):
        if longopt != "help":
            assert "--" + longopt in text, "explain --%s not documented" % longopt
    report_src = (REPO_ROOT / "proxy/report.c").read_text()
    for longopt in re.findall(r'"(--\w+)"', report_src):
        assert longopt in text or longopt == "--help", "report %s not documented" % longopt
    for word in ("SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT", "EXIT STATUS", "FILES", "explain",
                 "report", "pidfile", "READY=1", "RELOADING=1", "STOPPING=1"):
        assert word in text, "%s not in socialgate(8)" % word


def test_readme_deploying_section():
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme.startswith("# socialgate\n\n```sh\nmake run "), "README's first lines changed"
    assert "## Deploying" in readme
    deploying = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    for needle in ("](contrib/man/socialgate.8)", "](contrib/man/socialgate.ini.5)", "make install",
                   "socialgate -t", "socialgate explain", "proxy.pac", "WPAD", "QUIC",
                   "contrib/nftables/socialgate.nft", "access.log"):
        assert needle in deploying, "README's Deploying section lacks %r" % needle


# ---------------------------------------------------------------------------------------------
# make install / uninstall
# ---------------------------------------------------------------------------------------------

def test_install_keeps_edits_and_uninstall_removes(tmp_path):
    dest = tmp_path / "dest"
    r = make("install", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    root = dest / "usr/local"
    installed = files_under(dest)
    for f in ("sbin/socialgate", "etc/socialgate/proxy.ini", "etc/socialgate/rules/00-platforms.ini",
              "share/man/man8/socialgate.8", "share/man/man5/socialgate.ini.5",
              "lib/systemd/system/socialgate.service", "share/socialgate/systemd/socialgate.service",
              "share/socialgate/pac/proxy.pac", "share/socialgate/nftables/socialgate.nft"):
        assert "usr/local/" + f in installed, "make install did not install %s: %s" % (f, installed)
    for f in (REPO_ROOT / "rules").glob("*.ini"):
        assert (root / "etc/socialgate/rules" / f.name).read_bytes() == f.read_bytes()
    for f in (REPO_ROOT / "contrib").rglob("*"):
        rel = f.relative_to(REPO_ROOT / "contrib")
        if f.is_file() and rel.parts[0] != "man" and "__pycache__" not in rel.parts and f.suffix != ".pyc":
            assert (root / "share/socialgate" / rel).is_file(), "contrib/%s not installed" % rel
    assert os.access(root / "sbin/socialgate", os.X_OK)
    assert (root / "sbin/socialgate").read_bytes() == BIN.read_bytes()
    assert (root / "share/man/man8/socialgate.8").read_bytes() == MAN_PAGES[0].read_bytes()
    assert not any(p.endswith(".dist") for p in installed), installed
    ini = root / "etc/socialgate/proxy.ini"
    assert ini.read_text() == shipped_proxy_ini()
    assert re.search(r"(?m)^state_dir = /var/lib/socialgate$", ini.read_text())
    assert re.search(r"(?m)^access = /var/log/socialgate/access.log$", ini.read_text())

    # the admin edits proxy.ini; a rules file is an older shipped version, unedited
    edited = ini.read_text().replace("timezone = UTC", "timezone = Europe/London")
    assert edited != ini.read_text()
    ini.write_text(edited)
    old_policy = "; an older shipped version\n[rule x]\naction = allow\n"
    (root / "etc/socialgate/rules/10-policy.ini").write_text(old_policy)
    (root / "share/socialgate/defaults/rules/10-policy.ini").write_text(old_policy)
    r = make("install", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    assert ini.read_text() == edited, "the second make install overwrote an edited proxy.ini"
    assert (root / "etc/socialgate/proxy.ini.dist").read_text() == shipped_proxy_ini()
    assert (root / "etc/socialgate/rules/10-policy.ini").read_bytes() == \
        (REPO_ROOT / "rules/10-policy.ini").read_bytes(), "an unedited older file was not updated"
    dists = [p for p in files_under(dest) if p.endswith(".dist")]
    assert dists == ["usr/local/etc/socialgate/proxy.ini.dist"], dists

    r = make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    assert files_under(dest) == ["usr/local/etc/socialgate/proxy.ini"], \
        "after make uninstall: %s" % files_under(dest)
    assert ini.read_text() == edited

    # an unedited installation goes entirely
    dest2 = tmp_path / "dest2"
    assert make("install", "DESTDIR=%s" % dest2).returncode == 0
    r = make("uninstall", "DESTDIR=%s" % dest2)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    assert files_under(dest2) == [], "after make uninstall: %s" % files_under(dest2)
    assert not (dest2 / "usr/local/etc/socialgate").exists()
    assert not (dest2 / "usr/local/share/socialgate").exists()


def test_install_makes_log_and_state_folders(tmp_path):
    """make install creates the usage log's folder and state_dir of the installed proxy.ini
    (under DESTDIR), so `socialgate -t` on the installed configuration passes right away;
    they go to the run user when it exists, and an existing folder is left as it is."""
    dest = tmp_path / "dest"
    r = make("install", "DESTDIR=%s" % dest, "RUN_USER=no-such-user-sg")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    for sub in ("var/log/socialgate", "var/lib/socialgate"):
        st = (dest / sub).stat()
        assert (dest / sub).is_dir() and st.st_mode & 0o777 == 0o750, sub
        assert st.st_uid == os.geteuid(), "given to a user that does not exist: %s" % sub

    # the run user, when it exists and make runs as root
    if os.geteuid() == 0:
        dest2 = tmp_path / "dest2"
        nobody = pwd.getpwnam("nobody")
        r = make("install", "DESTDIR=%s" % dest2, "RUN_USER=nobody")
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
        for sub in ("var/log/socialgate", "var/lib/socialgate"):
            st = (dest2 / sub).stat()
            assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), sub
        # installing again leaves existing folders (and what the administrator made of them)
        os.chown(dest2 / "var/log/socialgate", 0, 0)
        os.chmod(dest2 / "var/log/socialgate", 0o700)
        assert make("install", "DESTDIR=%s" % dest2, "RUN_USER=nobody").returncode == 0
        st = (dest2 / "var/log/socialgate").stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)

    # the installed configuration passes -t as installed: the installation is tried out
    # under a temporary root through PREFIX, LOGDIR and STATEDIR (the paths it writes in)
    root = tmp_path / "root"
    r = make("install", "PREFIX=%s/usr/local" % root, "LOGDIR=%s/var/log/socialgate" % root,
             "STATEDIR=%s/var/lib/socialgate" % root)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    ini = root / "usr/local/etc/socialgate/proxy.ini"
    text = ini.read_text()
    assert "state_dir = %s/var/lib/socialgate\n" % root in text, text
    assert "access = %s/var/log/socialgate/access.log\n" % root in text, text
    r = run([str(root / "usr/local/sbin/socialgate"), "-t", "-c", str(ini)], timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert b"configuration ok" in r.stdout

    # uninstall removes them only when empty: logs and quota state stay
    (root / "var/lib/socialgate/state").write_text("kept")
    r = make("uninstall", "PREFIX=%s/usr/local" % root, "LOGDIR=%s/var/log/socialgate" % root,
             "STATEDIR=%s/var/lib/socialgate" % root)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    assert not (root / "var/log/socialgate").exists()
    assert (root / "var/lib/socialgate/state").read_text() == "kept"


def test_installed_unit_paths_match_install(tmp_path):
    dest = tmp_path / "dest"
    for prefix, sysconf in (("/usr/local", None), ("/usr", "/etc"), ("/opt/sg", None)):
        args = ["install", "DESTDIR=%s" % dest, "PREFIX=%s" % prefix]
        if sysconf:
            args.append("SYSCONFDIR=%s" % sysconf)
        r = make(*args)
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
        unit = (dest / prefix.lstrip("/") / "lib/systemd/system/socialgate.service").read_text()
        assert (dest / prefix.lstrip("/") / "share/socialgate/systemd/socialgate.service").read_text() == unit
        execs = unit_values(unit, "ExecStartPre") + unit_values(unit, "ExecStart") + \
            [v for v in unit_values(unit, "ExecReload") if "socialgate" in v]
        assert len(execs) == 3, unit
        conf = "%s/socialgate/proxy.ini" % (sysconf or prefix + "/etc")
        for line in execs:
            argv = line.split()
            assert argv[0] == prefix + "/sbin/socialgate", line
            assert (dest / argv[0].lstrip("/")).is_file(), "%s is not what make install installed" % argv[0]
            assert argv[argv.index("-c") + 1] == conf, line
            assert (dest / conf.lstrip("/")).is_file(), conf
        shutil.rmtree(dest)


# ---------------------------------------------------------------------------------------------
# the systemd unit
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed_prefix(tmp_path_factory):
    """make install into a real PREFIX (no DESTDIR), so the unit's paths exist on this machine."""
    prefix = tmp_path_factory.mktemp("prefix") / "usr/local"
    r = make("install", "PREFIX=%s" % prefix)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    return prefix


def test_unit_contents():
    text = UNIT.read_text()
    assert unit_values(text, "Type") == ["notify"]
    pre = unit_values(text, "ExecStartPre")
    assert len(pre) == 1 and " -t " in pre[0] + " ", pre
    reload_ = unit_values(text, "ExecReload")
    assert len(reload_) == 2 and " -t " in reload_[0] + " " and "-HUP $MAINPID" in reload_[1], reload_
    user = unit_values(text, "User")
    assert user and user[0] not in ("root", "0"), user
    assert unit_values(text, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values(text, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values(text, "NoNewPrivileges") == ["yes"]
    assert unit_values(text, "ProtectSystem") == ["strict"]
    # the installed configuration writes where the unit lets it
    rw = " ".join(unit_values(text, "ReadWritePaths"))
    ini = shipped_proxy_ini()
    state = re.search(r"(?m)^state_dir = (\S+)$", ini).group(1)
    log_dir = os.path.dirname(re.search(r"(?m)^access = (\S+)$", ini).group(1))
    assert state in rw and log_dir in rw, (rw, state, log_dir)
    assert unit_values(text, "StateDirectory") == [os.path.basename(state)]
    assert unit_values(text, "LogsDirectory") == [os.path.basename(log_dir)]


def test_unit_systemd_analyze_verify(installed_prefix):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (systemd)")
    unit = installed_prefix / "lib/systemd/system/socialgate.service"
    assert str(installed_prefix / "sbin/socialgate") in unit.read_text()
    env = dict(CLEAN_ENV, MANPATH=str(installed_prefix / "share/man"), SYSTEMD_LOG_COLOR="0")
    r = run(["systemd-analyze", "verify", str(unit)], timeout=60, env=env)
    assert r.stderr == b"", "systemd-analyze verify:\n" + r.stderr.decode(errors="replace")
    assert r.returncode == 0


def test_unit_systemd_analyze_security(installed_prefix):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (systemd)")
    unit = installed_prefix / "lib/systemd/system/socialgate.service"
    env = dict(CLEAN_ENV, MANPATH=str(installed_prefix / "share/man"), SYSTEMD_COLORS="0")
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)], timeout=60, env=env)
    out = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(r"Overall exposure level for socialgate\.service: (\d+\.\d+)", out)
    assert m, "no exposure level in:\n" + out[-3000:]
    assert float(m.group(1)) <= 2.0, "exposure %s > 2.0:\n%s" % (m.group(1), out[-3000:])


# ---------------------------------------------------------------------------------------------
# contrib examples
# ---------------------------------------------------------------------------------------------

PAC_HARNESS = r"""
const fs = require('fs');
function ip4(s) { const p = s.split('.').map(Number); return ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3]; }
function isIp(s) { return /^\d+\.\d+\.\d+\.\d+$/.test(s); }
globalThis.isPlainHostName = h => h.indexOf('.') < 0;
globalThis.dnsDomainIs = (h, d) => h.length >= d.length && h.substring(h.length - d.length) === d;
globalThis.isInNet = (h, net, mask) => isIp(h) && ((ip4(h) & ip4(mask)) >>> 0) === ((ip4(net) & ip4(mask)) >>> 0);
globalThis.shExpMatch = (s, p) => new RegExp('^' + p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$').test(s);
globalThis.dnsResolve = h => isIp(h) ? h : null;
globalThis.myIpAddress = () => '10.1.2.3';
const out = {};
const hosts = JSON.parse(process.argv[3]);
(0, eval)(fs.readFileSync(process.argv[2], 'utf8'));
for (const h of hosts) out[h] = FindProxyForURL('http://' + h + '/', h);
console.log(JSON.stringify(out));
"""


def eval_pac(path, hosts, tmp_path):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node not installed: cannot evaluate PAC files")
    harness = tmp_path / "pac-harness.js"
    harness.write_text(PAC_HARNESS)
    r = run([node, str(harness), str(path), json.dumps(hosts)], timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout)


def test_pac_example(tmp_path):
    pac = REPO_ROOT / "contrib/pac/proxy.pac"
    text = pac.read_text()
    assert "function FindProxyForURL(url, host)" in text
    got = eval_pac(pac, ["www.facebook.com", "WWW.LinkedIn.com", "intranet.example.com", "example.com",
                         "notexample.com", "printer", "10.1.2.3", "192.168.7.7", "8.8.8.8",
                         "example.com.evil.test"], tmp_path)
    proxied = "PROXY gateway.example.com:3128"
    assert got["www.facebook.com"] == proxied
    assert got["WWW.LinkedIn.com"] == proxied
    assert got["notexample.com"] == proxied
    assert got["example.com.evil.test"] == proxied
    assert got["8.8.8.8"] == proxied
    for h in ("intranet.example.com", "example.com", "printer", "10.1.2.3", "192.168.7.7"):
        assert got[h] == "DIRECT", (h, got[h])
    assert all("DIRECT" not in v for v in got.values() if v != "DIRECT"), "a DIRECT fallback: %s" % got


def test_pac_example_agrees_with_served_pac(make_sg, tmp_path):
    """socialgate's own /proxy.pac, set up like the example, decides the same."""
    admin = free_port()
    make_sg({"admin": {"listen": "127.0.0.1:%d" % admin, "pac_proxy": "gateway.example.com:3128",
                       "pac_direct": "*.example.com, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"}})
    assert wait_port("127.0.0.1", admin, 5)
    r = curl("-o", str(tmp_path / "served.pac"), "-w", "%{http_code}", "http://127.0.0.1:%d/proxy.pac" % admin,
             timeout=10)
    assert r.stdout == b"200", r.stderr
    hosts = ["www.facebook.com", "intranet.example.com", "example.com", "notexample.com", "10.1.2.3",
             "172.20.0.1", "192.168.7.7", "8.8.8.8"]
    served = eval_pac(tmp_path / "served.pac", hosts, tmp_path)
    example = eval_pac(REPO_ROOT / "contrib/pac/proxy.pac", hosts, tmp_path)
    assert served == example, "served %s\nexample %s" % (served, example)


def test_nftables_example():
    path = REPO_ROOT / "contrib/nftables/socialgate.nft"
    text = path.read_text()
    rules = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    ports = re.search(r"set web_ports \{[^}]*elements = \{([^}]*)\}", text, re.S)
    assert ports and {p.strip() for p in ports.group(1).split(",")} >= {"80", "443"}
    assert any("udp dport @web_ports" in r and "reject" in r and "saddr @clients_v4" in r for r in rules)
    assert any("udp dport @web_ports" in r and "reject" in r and "saddr @clients_v6" in r for r in rules)
    assert any("tcp dport @web_ports" in r and "reject" in r and "saddr @clients_v4" in r for r in rules)
    assert any("tcp dport @web_ports" in r and "reject" in r and "saddr @clients_v6" in r for r in rules)
    assert "hook forward" in text
    assert sum(1 for line in text.splitlines() if line.strip().startswith("#")) >= 20, "comment it"
    nft = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
    if nft is None:
        pytest.skip("nft not installed (nftables): syntax not checked")
    r = run([nft, "-c", "-f", str(path)], timeout=30)
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0 and ("Operation not permitted" in err or "Permission denied" in err):
        pytest.skip("nft -c needs CAP_NET_ADMIN here: %s" % err.strip())
    assert r.returncode == 0, err


def test_make_ca_script(tmp_path):
    """contrib/ca/make-ca.sh makes the company CA of the README: an ECDSA P-256 key only its
    owner can read, a CA:TRUE certificate that may sign, and never overwrites a CA."""
    script = REPO_ROOT / "contrib/ca/make-ca.sh"
    assert os.access(script, os.X_OK)
    owner = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    d = tmp_path / "ca"
    r = run([str(script), "-n", "Example Corp gateway CA", "-d", "730", "-u", owner, str(d)], timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    key, pem = d / "ca.key", d / "ca.pem"
    st = key.stat()
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert st.st_uid == pwd.getpwnam(owner).pw_uid
    assert pem.stat().st_mode & 0o777 == 0o644

    r = run(["openssl", "x509", "-in", str(pem), "-noout", "-text"], timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:TRUE", text), text
    assert re.search(r"X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign", text), text
    assert "NIST CURVE: P-256" in text or "prime256v1" in text, text
    assert "Subject: CN = Example Corp gateway CA" in text, text
    r = run(["openssl", "x509", "-in", str(pem), "-noout", "-checkend", str(729 * 86400)], timeout=30)
    assert r.returncode == 0, "valid for less than the 730 days asked for"
    r = run(["openssl", "x509", "-in", str(pem), "-noout", "-checkend", str(731 * 86400)], timeout=30)
    assert r.returncode != 0, "valid for more than the 730 days asked for"

    # the key is the certificate's, and the CA signs a server certificate that verifies
    pub_cert = run(["openssl", "x509", "-in", str(pem), "-noout", "-pubkey"], timeout=30).stdout
    pub_key = run(["openssl", "pkey", "-in", str(key), "-pubout"], timeout=30).stdout
    assert pub_cert and pub_cert == pub_key
    leaf = tmp_path / "leaf.pem"
    r = run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(tmp_path / "leaf.key"), "-subj", "/CN=www.facebook.com",
             "-addext", "subjectAltName=DNS:www.facebook.com", "-CA", str(pem), "-CAkey", str(key),
             "-days", "1", "-out", str(leaf)], timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    r = run(["openssl", "verify", "-CAfile", str(pem), str(leaf)], timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()

    # a second run refuses: the CA in every browser must not change under it
    before = (key.read_bytes(), pem.read_bytes())
    r = run([str(script), str(d)], timeout=60)
    assert r.returncode != 0
    assert b"ca.key exists" in r.stderr, r.stderr
    assert (key.read_bytes(), pem.read_bytes()) == before
    r = run([str(script), "-d", "soon", str(tmp_path / "other")], timeout=60)
    assert r.returncode == 2 and b"-d wants a number of days" in r.stderr, r.stderr
    assert not (tmp_path / "other" / "ca.key").exists()


def _ca_profile(pem):
    """What two CAs made the same way share: key type, signature, extensions, validity."""
    text = run(["openssl", "x509", "-in", str(pem), "-noout", "-text"], timeout=30).stdout.decode()
    keep = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        t = line.strip()
        if t.startswith(("Signature Algorithm", "Public Key Algorithm", "Public-Key", "NIST CURVE",
                         "Subject:", "X509v3 ")):
            keep.append(t)
            if t.startswith("X509v3 ") and "Key Identifier" not in t:
                keep.append(lines[i + 1].strip())
    start = run(["openssl", "x509", "-in", str(pem), "-noout", "-startdate", "-enddate"], timeout=30)
    dates = [email.utils.parsedate_to_datetime(v.split("=", 1)[1].replace("GMT", "+0000"))
             for v in start.stdout.decode().split("\n") if "=" in v]
    keep.append("days=%d" % round((dates[1] - dates[0]).total_seconds() / 86400))
    return keep


def test_readme_ca_commands_match_make_ca_script(tmp_path):
    """The README's "Make the CA" commands, run as written, make the same CA as make-ca.sh."""
    readme = (REPO_ROOT / "README.md").read_text()
    sec = readme.split("## HTTPS pages: the company CA", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\*\*Make the CA\*\*.*?```sh\n(.*?)```", sec, re.S)
    assert block, "README lacks the Make the CA commands"
    cmds = block.group(1)
    folder = "/usr/local/etc/socialgate/tls"
    assert folder in cmds and "chown socialgate ca.key" in cmds and "chmod 600 ca.key" in cmds, cmds
    owner = pwd.getpwuid(os.geteuid()).pw_name
    d = tmp_path / "readme"
    cmds = cmds.replace(folder, str(d)).replace("chown socialgate ", "chown %s " % owner)
    r = run(["sh", "-euc", cmds], timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert (d / "ca.key").stat().st_mode & 0o777 == 0o600

    r = run([str(REPO_ROOT / "contrib/ca/make-ca.sh"), "-n", "Example Corp gateway CA", "-u", owner,
             str(tmp_path / "script")], timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert _ca_profile(d / "ca.pem") == _ca_profile(tmp_path / "script" / "ca.pem")
    assert "days=1825" in _ca_profile(d / "ca.pem")


# ---------------------------------------------------------------------------------------------
# privileges, -d and pidfile, sd_notify
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def system_user():
    """A system user and group 'sgtest' (made if absent, and then removed at the end of the
    module, after the daemons running as it are gone)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd not installed")
    name = "sgtest"
    created = False
    try:
        pwd.getpwnam(name)
    except KeyError:
        r = run(["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name], timeout=30)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        created = True
    try:
        yield pwd.getpwnam(name)
    finally:
        if created:
            for _ in range(20):
                r = run(["userdel", name], timeout=30)
                if r.returncode == 0:
                    break
                time.sleep(0.25)  # a daemon of a test still exiting
            run(["groupdel", name], timeout=30)  # when userdel left the group
            assert r.returncode == 0, "userdel %s: %s" % (name, r.stderr.decode(errors="replace"))


def test_root_drops_to_user(system_user, daemons, env):
    u = system_user
    d = daemons(env, {"proxy": {"user": u.pw_name}}, public=True)
    for f in (REPO_ROOT / "rules").glob("*.ini"):
        shutil.copy(f, d.dir / "rules" / f.name)
        os.chmod(d.dir / "rules" / f.name, 0o644)
    # the log folder is the user's, so that USR1 and HUP work after the drop
    os.chown(d.dir / "log", u.pw_uid, u.pw_gid)
    d.start()
    # the port accepts from listen() on, a moment before the drop (longer under valgrind)
    st = proc_status(d.proc.pid)
    deadline = time.monotonic() + 10
    while st["Uid"] != [str(u.pw_uid)] * 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        st = proc_status(d.proc.pid)
    assert st["Uid"] == [str(u.pw_uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(u.pw_gid)] * 4, st["Gid"]
    assert st["Groups"] == [str(u.pw_gid)], st["Groups"]
    for task in Path("/proc/%d/task" % d.proc.pid).iterdir():
        t = proc_status(int(task.name))
        assert t["Uid"] == st["Uid"] and t["Gid"] == st["Gid"] and t["Groups"] == st["Groups"], \
            "thread %s: %s %s %s" % (task.name, t["Uid"], t["Gid"], t["Groups"])
    assert st["CapEff"] == ["0000000000000000"], st["CapEff"]
    assert os.stat(d.dir / "state").st_uid == u.pw_uid, "state_dir not given to the user"
    key = os.stat(d.dir / "state" / "continue.key")
    assert key.st_uid == u.pw_uid and key.st_mode & 0o777 == 0o600, "continue.key not the user's alone"
    tok = token()
    assert get_status(d.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok)) == "200"
    assert d.wait_entries(1, ev="request", path="/u/" + tok, status="200"), d.stderr_text()
    # a reload as the user reads the same files
    d.proc.send_signal(signal.SIGHUP)
    assert len(d.wait_entries(2, ev="config", result="ok")) == 2, \
        "reload after dropping privileges failed:\n%s" % d.stderr_text()
    assert get_status(d.proxy, "http://127.0.0.1:%d/u/after-hup" % env.nginx_http) == "200"
    assert "continue.key" not in d.stderr_text(), d.stderr_text()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0, d.stderr_text()


def _root_owned_log_daemon(daemons, env, user):
    """Started as root with user = ...; the log folder is root's, as an admin's mkdir makes it."""
    d = daemons(env, {"proxy": {"user": user.pw_name}}, public=True)
    d.start()
    tok = token()
    assert get_status(d.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok)) == "200"
    assert d.wait_entries(1, ev="request", path="/u/" + tok), d.stderr_text()
    return d


def test_root_drop_reload_with_root_owned_log_folder(system_user, daemons, env):
    d = _root_owned_log_daemon(daemons, env, system_user)
    d.proc.send_signal(signal.SIGHUP)
    found = d.wait_entries(2, timeout=5, ev="config")
    assert [e.get("result") for e in found] == ["ok", "ok"], [e.raw for e in found]


def test_root_drop_reopens_log_after_rotation(system_user, daemons, env):
    d = _root_owned_log_daemon(daemons, env, system_user)
    # what logrotate does with "create 0640": rename, then a new file with the old owner
    st = d.log.stat()
    d.log.rename(d.log.with_name("access.log.1"))
    fd = os.open(d.log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.fchown(fd, st.st_uid, st.st_gid)
    os.close(fd)
    d.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    tok = token()
    assert get_status(d.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok)) == "200"
    assert d.wait_entries(1, timeout=5, path="/u/" + tok), \
        "the request after USR1 is not in the new log:\n%s" % d.stderr_text()


PR_SET_CHILD_SUBREAPER = 36


def _subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0


def _reap_zombie_children(comm="socialgate"):
    """waitpid the zombie children of this process named comm (the -d intermediate process)."""
    me = os.getpid()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == comm and fields[0] == "Z" and int(fields[1]) == me:
            try:
                os.waitpid(int(p.name), os.WNOHANG)
            except ChildProcessError:
                pass


def test_daemonize_with_pidfile(daemons, env):
    d = daemons(env)
    pidfile = d.dir / "socialgate.pid"
    d.cfg["proxy"]["pidfile"] = str(pidfile)
    d.config.write_text(render_config(d.cfg))
    # the daemon ends up our child (we are a subreaper), so its exit status can be read
    reaper = _subreaper(True)
    pid = None
    try:
        d.start("-d", wait=False)
        assert d.proc.wait(timeout=10) == 0, "the foreground process of -d exited %s:\n%s" % (
            d.proc.returncode, d.stderr_text())
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pidfile.exists(), "no pidfile"
        pid = int(pidfile.read_text())
        assert pid != d.proc.pid, "the pidfile names the process that exited"
        with open(BIN, "rb") as f:
            wrapped = f.read(2) == b"#!"  # a wrapper script (make test-valgrind) runs it under valgrind
        if wrapped:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                assert b"socialgate" in f.read(), "pid %d is not socialgate" % pid
        else:
            assert os.readlink("/proc/%d/exe" % pid).startswith(str(BIN)), "pid %d is not socialgate" % pid
        st = proc_status(pid)
        assert st["State"][0] in "SR", st["State"]
        # a session of its own (and, double-forked, not its leader: no terminal can come back)
        assert os.getsid(pid) not in (os.getsid(0), pid), "not detached: session %d" % os.getsid(pid)
        assert wait_port("127.0.0.1", d.port, 10)
        tok = token()
        assert get_status(d.proxy, "http://127.0.0.1:%d/u/%s" % (env.nginx_http, tok)) == "200"
        assert d.wait_entries(1, ev="request", path="/u/" + tok)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            if reaper:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
            else:
                try:
                    if proc_status(pid)["State"][0] == "Z":
                        break
                except FileNotFoundError:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("socialgate -d still running 10 s after SIGTERM")
        if reaper:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "exit status %#x" % status
        pid = None
        assert not pidfile.exists(), "the pidfile was left behind after a clean stop"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                if reaper:
                    os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if reaper:
            _reap_zombie_children()
            _subreaper(False)


def test_sd_notify(daemons, env):
    d = daemons(env)
    sock_path = d.dir / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(10)
    try:
        d.start(env=dict(CLEAN_ENV, NOTIFY_SOCKET=str(sock_path)))

        def expect(msg):
            got = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                data = s.recv(4096).decode()
                got.append(data)
                if msg in data.split("\n"):
                    return
            pytest.fail("no %s from socialgate (got %s)" % (msg, got))

        expect("READY=1")
        d.proc.send_signal(signal.SIGHUP)
        expect("RELOADING=1")
        expect("READY=1")
        d.proc.send_signal(signal.SIGTERM)
        expect("STOPPING=1")
        assert d.proc.wait(timeout=10) == 0
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# reload under load
# ---------------------------------------------------------------------------------------------

DOWNLOAD = 2 * 1024 * 1024


class Load:
    """50 clients: keep-alive requests, ranged downloads, TLS and echo CONNECT tunnels."""

    def __init__(self, env, d, n=50):
        self.env, self.d, self.n = env, d, n
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0  # transactions completed: each one is one ev=request or ev=tunnel line
        self.errors = []
        with open(env.big_path, "rb") as f:
            self.download_sha = hashlib.sha256(f.read(DOWNLOAD)).hexdigest()
        self.ctx = ssl.create_default_context(cafile=str(env.ca))
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(n)]

    def count(self):
        with self.lock:
            self.done += 1

    def client(self, i):
        kind = ("keepalive", "download", "tls", "echo")[i % 4]
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                getattr(self, kind)(i, n)
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            with self.lock:
                self.errors.append("client %d (%s) op %d: %r" % (i, kind, n, e))

    def keepalive(self, i, n):
        with Conn("127.0.0.1", self.d.port, timeout=15) as c:
            for k in range(20):
                path = "/u/ka-%d-%d-%d" % (i, n, k)
                c.send("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: x\r\n\r\n" % (self.env.nginx_http, path))
                r = c.read_response()
                assert r.status == 200 and r.body == self.env.small_body, r
                self.count()
                if self.stop.is_set():
                    break

    def download(self, i, n):
        with Conn("127.0.0.1", self.d.port, timeout=30) as c:
            c.send("GET http://127.0.0.1:%d/bigu/dl-%d-%d HTTP/1.1\r\nHost: x\r\nRange: bytes=0-%d\r\n\r\n"
                   % (self.env.nginx_http, i, n, DOWNLOAD - 1))
            r = c.read_response()
            assert r.status == 206 and len(r.body) == DOWNLOAD, r
            assert hashlib.sha256(r.body).hexdigest() == self.download_sha
            self.count()

    def tls(self, i, n):
        target = "127.0.0.1:%d" % self.env.nginx_https
        raw = socket.create_connection(("127.0.0.1", self.d.port), timeout=15)
        try:
            raw.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = raw.recv(1)
                assert data, "closed before the CONNECT answer"
                head += data
            assert head.startswith(b"HTTP/1.1 200"), head
            with self.ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(b"GET /u/tls-%d-%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % (i, n))
                body = b""
                while True:
                    data = t.recv(65536)
                    if not data:
                        break
                    body += data
                assert body.startswith(b"HTTP/1.1 200") and body.endswith(self.env.small_body), body[:200]
            self.count()
        finally:
            raw.close()

    def echo(self, i, n):
        target = "127.0.0.1:%d" % self.env.py_port
        payload = os.urandom(64 * 1024)
        with Conn("127.0.0.1", self.d.port, timeout=15) as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
            assert c.read_head()[1] == 200
            c.send(b"ECHO\n" + payload)
            c.sock.shutdown(socket.SHUT_WR)
            got = c.read_all(timeout=15)
            assert got == payload + b"DONE\n", "echo came back with %d bytes" % len(got)
        self.count()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, "%d clients did not finish within 60 s" % len(alive)


def test_reload_under_load(make_sg, env):
    d = make_sg({"limits": {"idle_timeout": "30s"}}, start=False)
    rules = d.dir / "rules"
    for f in (REPO_ROOT / "rules").glob("*.ini"):
        shutil.copy(f, rules / f.name)
    write_rules(d, ALLOW_OPAQUE, name="20-opaque.ini")  # the echo clients' bytes are opaque
    d.start()
    good = (rules / "10-policy.ini").read_text()
    broken = good + "\n[rule broken]\nfrobnicate = yes\n"

    def wait_config(n):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = [e for e in d.entries() if e.get("ev") == "config"]
            if len(found) >= n:
                return found
            time.sleep(0.05)
        pytest.fail("no ev=config line %d after HUP; stderr:\n%s" % (n, d.stderr_tail()))

    assert wait_config(1)[0].get("result") == "ok"
    with Load(env, d) as load:
        time.sleep(1.5)
        for i in range(20):
            if i % 2:
                tmp = rules / ".10-policy.ini.new"
                tmp.write_text(broken)
                tmp.rename(rules / "10-policy.ini")
            d.send(signal.SIGHUP)
            wait_config(2 + i)
            if i % 2:
                tmp = rules / ".10-policy.ini.new"
                tmp.write_text(good)
                tmp.rename(rules / "10-policy.ini")
            time.sleep(0.3)
            assert not load.errors, "\n".join(load.errors[:10])
        time.sleep(1)
    assert not load.errors, "%d client errors:\n%s" % (len(load.errors), "\n".join(load.errors[:10]))
    assert d.alive(), "socialgate died under reloads; stderr:\n%s" % d.stderr_tail()
    rc, _ = d.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, "exit %s; stderr:\n%s" % (rc, d.stderr_tail())
    entries = d.entries()
    configs = [e.get("result") for e in entries if e.get("ev") == "config"]
    assert configs.count("ok") == 11 and configs.count("error") == 10, configs
    lines = [e for e in entries if e.get("ev") in ("request", "tunnel")]
    assert load.done > 500, "only %d transactions under load" % load.done
    bad = [e.raw for e in lines if e.get("status") not in ("200", "206")]
    assert not bad, "failed transactions in the log:\n%s" % "\n".join(bad[:10])
    assert len(lines) == load.done, "%d transactions made, %d logged" % (load.done, len(lines))
    kinds = {k: sum(1 for e in lines if e.get("ev") == k) for k in ("request", "tunnel")}
    print("reload under load: %d transactions (%s) through 20 HUPs" % (load.done, kinds))


# ---------------------------------------------------------------------------------------------
# shutdown under load
# ---------------------------------------------------------------------------------------------

class Trickle:
    """An origin that sends GET /trickle/BYTES/SECONDS evenly over SECONDS (Content-Length set)."""

    def __init__(self):
        self.lst = socket.socket()
        self.lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(64)
        self.lst.settimeout(0.2)
        self.port = self.lst.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lst.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            c.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                data = c.recv(4096)
                if not data:
                    return
                head += data
            _, total, secs = head.split(b" ", 2)[1].decode().strip("/").split("/")[:3]
            total, secs = int(total), float(secs)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n"
                      % total)
            steps = max(1, int(secs / 0.1))
            chunk = total // steps
            sent = 0
            t0 = time.monotonic()
            for k in range(steps):
                if self.stop.is_set():
                    return
                n = total - sent if k == steps - 1 else chunk
                c.sendall(b"x" * n)
                sent += n
                delay = t0 + (k + 1) * secs / steps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.lst.close()
        self.thread.join(timeout=5)


class Reader(threading.Thread):
    """Reads a response (or tunnel) to its end, recording how many body bytes came and when it ended."""

    def __init__(self, conn):
        super().__init__(daemon=True)
        self.conn = conn
        self.body = 0
        self.ended = None
        self.error = None

    def run(self):
        try:
            while True:
                data = self.conn.sock.recv(65536)
                if not data:
                    break
                self.body += len(data)
        except OSError as e:
            self.error = e
        self.ended = time.monotonic()


def test_term_drains_then_cuts_under_load(make_sg, env):
    drain = 5
    trickle = Trickle()
    d = make_sg({"limits": {"drain": "%ds" % drain, "idle_timeout": "60s"}})
    conns = []
    try:
        def slow(total, secs, name):
            c = Conn("127.0.0.1", d.port, timeout=30)
            conns.append(c)
            c.send("GET http://127.0.0.1:%d/trickle/%d/%g/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                   % (trickle.port, total, secs, name))
            head = c._read_until(b"\r\n\r\n", time.monotonic() + 10)
            assert b" 200 " in head.split(b"\r\n")[0], head
            r = Reader(c)
            r.body = len(c.buf)
            c.buf = b""
            return r

        # Fast enough to finish within drain; too slow to; an idle tunnel; an idle keep-alive.
        short = [slow(20000, 2.0, "short-%d" % i) for i in range(5)]
        long_ = [slow(200000, 20.0, "long-%d" % i) for i in range(5)]
        tunnel = Conn("127.0.0.1", d.port, timeout=30)
        conns.append(tunnel)
        target = "127.0.0.1:%d" % env.py_port
        tunnel.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
        assert tunnel.read_head()[1] == 200
        tunnel.send(b"ECHO\nsome bytes")
        idle = Conn("127.0.0.1", d.port, timeout=30)
        conns.append(idle)
        idle.send("GET http://127.0.0.1:%d/u/idle-ka HTTP/1.1\r\nHost: x\r\n\r\n" % env.nginx_http)
        assert idle.read_response().status == 200
        readers = short + long_ + [Reader(tunnel), Reader(idle)]
        for r in readers:
            if not r.is_alive() and r.ended is None:
                r.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        rc, secs = d.stop(signal.SIGTERM, timeout=drain + 10)
        exited = time.monotonic()
        assert rc == 0, "exit %s after SIGTERM; stderr:\n%s" % (rc, d.stderr_tail())
        assert drain - 0.5 <= exited - t0 <= drain + 1.5, "exited %.1fs after SIGTERM (drain %ds)" % (
            exited - t0, drain)
        for r in readers:
            r.join(timeout=5)
        for r in short:
            assert r.body == 20000, "a 2 s download was cut at %d of 20000 bytes" % r.body
            assert r.ended - t0 < drain - 1, "a 2 s download ended %.1fs after SIGTERM" % (r.ended - t0)
        for r in long_:
            assert r.ended is not None and 0 < r.body < 200000, "long download: %d bytes" % r.body
            assert drain - 0.5 <= r.ended - t0 <= drain + 1.5, "cut %.1fs after SIGTERM" % (r.ended - t0)
        entries = d.entries()
        for i in range(5):
            e = [x for x in entries if x.get("path") == "/trickle/20000/2/short-%d" % i]
            assert e and e[0]["status"] == "200" and int(e[0]["down"]) > 20000, e
            e = [x for x in entries if x.get("path") == "/trickle/200000/20/long-%d" % i]
            assert e, "no log line for a transfer cut at drain: %s" % [x.raw for x in entries[-12:]]
            assert 0 < int(e[0]["down"]) < 200000 + 200, e[0].raw
        t = [x for x in entries if x.get("ev") == "tunnel" and x.get("port") == str(env.py_port)]
        assert t, "no log line for the tunnel closed at drain"
        assert any(x.get("path") == "/u/idle-ka" for x in entries)
    finally:
        for c in conns:
            c.close()
        trickle.close()
