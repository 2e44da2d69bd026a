"""Helpers for the socialgate integration tests.

Config rendering, the SocialGate process wrapper, usage-log parsing, curl.
The binary is ./socialgate at the repository root, or $SOCIALGATE_BIN.
"""

import datetime
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import rawhttp  # noqa: E402

REPO_ROOT = HERE.parents[1]
BIN = Path(os.environ.get("SOCIALGATE_BIN") or (REPO_ROOT / "socialgate")).resolve()
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MiB = 1024 * 1024
BIG_SIZE = 200 * MiB
POST_SIZE = 50 * MiB

# curl and urllib honour these even with an explicit proxy (NO_PROXY); keep them out.
for _v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
           "all_proxy", "ALL_PROXY", "ftp_proxy", "FTP_PROXY"):
    os.environ.pop(_v, None)
CLEAN_ENV = dict(os.environ)
CLEAN_ENV["LC_ALL"] = "C"


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(host, port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            # Nothing listening on a port of the ephemeral range can still "answer":
            # the kernel may pick that very port as the source and connect the
            # socket to itself (TCP simultaneous open). That is not the server.
            if s.getsockname() != s.getpeername():
                return True
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
    return False


def kill_group(proc, first=signal.SIGTERM, grace=3.0):
    """Signal the process group of proc, then SIGKILL it if it lingers."""
    if proc is None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if proc.poll() is None and pgid is not None:
        try:
            os.killpg(pgid, first)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def binary_flavour():
    """What SOCIALGATE_BIN is: 'asan', 'tsan', 'wrapper' (a script, e.g. valgrind-wrap.sh)
    or 'plain'."""
    try:
        with open(BIN, "rb") as f:
            head = f.read(4)
            if head[:2] == b"#!":
                return "wrapper"
            data = head + f.read()
    except OSError:
        return "plain"
    if b"__asan_init" in data:
        return "asan"
    if b"__tsan_init" in data:
        return "tsan"
    return "plain"


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=kw.pop("env", CLEAN_ENV), **kw)


def curl(*args, timeout=60):
    """Run curl (silent, errors shown) with a hard timeout; returns CompletedProcess (bytes)."""
    return run(["curl", "-sS", "--max-time", str(timeout), *map(str, args)], timeout=timeout + 10)


def token():
    return uuid.uuid4().hex[:12]


# ---------------------------------------------------------------------------------------------
# usage log parsing
# ---------------------------------------------------------------------------------------------

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d$")
FIELD_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^ ]*)')
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                     "ERROR: ThreadSanitizer")
# make test-valgrind: SOCIALGATE_BIN is tests/integration/valgrind-wrap.sh, which writes
# memcheck's log of each process to $SG_VALGRIND_LOGS/vg.PID.log.
VALGRIND_LOGS = os.environ.get("SG_VALGRIND_LOGS")
VALGRIND_BAD_RE = re.compile(r"ERROR SUMMARY: [1-9]|definitely lost: [1-9]|==\d+== (Invalid (read|write|free)"
                             r"|Conditional jump|Use of uninitialised|Syscall param|Mismatched free"
                             r"|Source and destination overlap)")
# Seconds a stopped daemon gets to exit before SIGKILL (memcheck needs more for its leak check).
KILL_GRACE = float(os.environ.get("SG_KILL_GRACE") or 3)
REQUEST_FIELDS = ["ev", "client", "user", "roles", "method", "host", "port", "path", "sni",
                  "platform", "category", "rule", "action", "status", "up", "down", "ms"]


class LogEntry(dict):
    def __init__(self, raw):
        super().__init__()
        self.raw = raw
        self.ts, _, rest = raw.partition(" ")
        self.keys_in_order = []
        for m in FIELD_RE.finditer(rest):
            k, v = m.group(1), m.group(2)
            if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                v = re.sub(r'\\x([0-9a-fA-F]{2})|\\(.)',
                           lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), v[1:-1])
            self[k] = v
            self.keys_in_order.append(k)

    def int(self, key):
        return int(self[key])

    def epoch(self):
        """The timestamp as seconds since the epoch (None if unparsable)."""
        try:
            return datetime.datetime.fromisoformat(self.ts).timestamp()
        except ValueError:
            return None

    def __repr__(self):
        return "LogEntry(%r)" % self.raw


def parse_log(path):
    try:
        data = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [LogEntry(line) for line in data.splitlines() if line.strip()]


def match(entry, **fields):
    for k, v in fields.items():
        if entry.get(k) != str(v):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# session environment: CA, nginx, python origin, dns stub, files
# ---------------------------------------------------------------------------------------------

class Env:
    pass


def _make_ca(d):
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = d / "ca.key", d / "ca.pem"
    srv_key, srv_csr, srv_pem = d / "server.key", d / "server.csr", d / "server.pem"
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,DNS:www.facebook.com,DNS:origin.test,IP:127.0.0.1\n"
    )
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "3", "-subj", "/CN=socialgate test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", srv_key, "-out", srv_csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", srv_csr, "-CA", ca_pem, "-CAkey", ca_key,
         "-CAcreateserial", "-out", srv_pem, "-days", "3", "-extfile", ext],
    ]
    for cmd in steps:
        r = run([str(c) for c in cmd], timeout=30)
        assert r.returncode == 0, "openssl failed: %s\n%s" % (cmd, r.stderr.decode())
    return ca_pem, srv_pem, srv_key


def _make_file(path, size, salt):
    """A random-ish file: one random MiB repeated, each block stamped with its index."""
    base = os.urandom(MiB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // MiB):
            block = salt + i.to_bytes(8, "big") + base[len(salt) + 8:]
            h.update(block)
            f.write(block)
    return h.hexdigest()


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/plain txt; application/octet-stream bin; text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl;
        server_name _;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
        location /u/ {{ rewrite ^ /small.txt break; }}
        location /bigu/ {{ rewrite ^ /big.bin break; }}
    }}
}}
"""

SMALL_BODY = b"socialgate small file\n" * 20


# ---------------------------------------------------------------------------------------------
# socialgate daemons
# ---------------------------------------------------------------------------------------------

def default_config(e, d, port):
    ports = ["443", "8443", str(e.nginx_https), str(e.py_port), str(e.nginx_http), str(e.dead_port)]
    return {
        "proxy": {
            "listen": "127.0.0.1:%d" % port,
            "clients": "127.0.0.0/8, ::1",
            "connect_ports": ", ".join(ports),
            "rules": str(d / "rules"),
            "timezone": "UTC",
            "workers": "2",
            "state_dir": str(d / "state"),
        },
        "dns": {
            "nameservers": "127.0.0.1:%d" % e.dns_port,
            "hosts_file": str(e.hosts),
        },
        "limits": {
            "max_connections": "2000",
            "max_per_client": "512",
            "max_header_bytes": "65536",
            "connect_timeout": "2s",
            "header_timeout": "3s",
            "idle_timeout": "10s",
            "drain": "5s",
            "block_destinations": "none",
        },
        "log": {
            "access": str(d / "access.log"),
        },
    }


def render_config(cfg):
    out = []
    for section, kv in cfg.items():
        out.append("[%s]" % section)
        for k, v in kv.items():
            if v is not None:
                out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class SocialGate:
    _counter = 0

    def __init__(self, e, name=None, overrides=None, port=None, cwd=None, config_text=None,
                 extra_env=None):
        SocialGate._counter += 1
        self.env = e
        self.name = name or "sg%d" % SocialGate._counter
        self.dir = e.tmp / ("daemon-%s-%d" % (self.name, SocialGate._counter))
        self.dir.mkdir()
        (self.dir / "rules").mkdir()
        (self.dir / "state").mkdir()
        self.port = port or free_port()
        cfg = default_config(e, self.dir, self.port)
        for section, kv in (overrides or {}).items():
            cfg.setdefault(section, {})
            for k, v in kv.items():
                cfg[section][k] = v
        self.cfg = cfg
        self.config = self.dir / "proxy.ini"
        self.config.write_text(config_text if config_text is not None else render_config(cfg))
        self.log = Path(cfg["log"]["access"])
        if not self.log.is_absolute():
            self.log = self.dir / self.log
        self.stderr_path = self.dir / "stderr.log"
        self.cwd = cwd or e.tmp
        self.proc = None
        self.expected_exit = False
        self.listen_host = "127.0.0.1"
        self.extra_env = dict(extra_env or {})  # added to the daemon's environment (LD_PRELOAD, ...)

    # -- process --------------------------------------------------------------------------
    def start(self, wait=True, host=None, port=None):
        if not BIN.exists():
            pytest.fail("socialgate binary not found at %s (build with make, or set SOCIALGATE_BIN)" % BIN)
        self.stderr_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([str(BIN), "-c", str(self.config)], cwd=str(self.cwd),
                                     stdin=subprocess.DEVNULL, stdout=self.stderr_file,
                                     stderr=self.stderr_file, start_new_session=True,
                                     env=dict(CLEAN_ENV, **self.extra_env))
        self.expected_exit = False
        if wait:
            h = host or self.listen_host
            if not wait_port(h, port or self.port, 15, self.proc):
                rc = self.proc.poll()
                kill_group(self.proc, signal.SIGKILL)
                pytest.fail("socialgate did not start listening on %s:%s (exit=%s)\nstderr:\n%s"
                            % (h, port or self.port, rc, self.stderr_tail()))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig and wait; returns (exit code or None, seconds)."""
        self.expected_exit = True
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def kill(self):
        self.expected_exit = True
        if self.proc is not None:
            kill_group(self.proc, signal.SIGINT, grace=KILL_GRACE)
        f = getattr(self, "stderr_file", None)
        if f:
            f.close()

    def stderr_size(self):
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def sanitizer_report(self, start=0):
        """A memory-error report from a sanitizer build in stderr since byte `start`, or "".

        Leak reports are left out here: the SIGTERM test checks the exit code for those."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200): i + 4000]
        if VALGRIND_LOGS and self.proc is not None:
            try:
                vg = (Path(VALGRIND_LOGS) / ("vg.%d.log" % self.proc.pid)).read_text(errors="replace")
            except FileNotFoundError:
                return ""
            m = VALGRIND_BAD_RE.search(vg)
            if m and not getattr(self, "vg_reported", False):
                self.vg_reported = True  # once: the log only grows, later tests are not to blame
                return vg[max(0, m.start() - 200): m.start() + 6000]
        return ""

    def stderr_tail(self, n=4000):
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    # -- client side ------------------------------------------------------------------------
    @property
    def proxy(self):
        return "http://127.0.0.1:%d" % self.port

    def conn(self, timeout=5.0):
        return rawhttp.Conn("127.0.0.1", self.port, timeout=timeout)

    # -- usage log ----------------------------------------------------------------------------
    def entries(self):
        return parse_log(self.log)

    def wait_log(self, predicate=None, timeout=5.0, since=None, **fields):
        """Wait for a usage-log line matching predicate and/or field=value pairs.

        since: a time.time() value; older lines are ignored (client ports get reused, so
        a match on client= alone needs it)."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.entries():
                if since is not None and (entry.epoch() or 0) < since - 0.01:
                    continue
                if match(entry, **fields) and (predicate is None or predicate(entry)):
                    return entry
            if time.monotonic() >= deadline:
                tail = "\n".join(e.raw for e in self.entries()[-8:])
                raise AssertionError("no usage-log line matching %s%s within %.1fs in %s; last lines:\n%s"
                                     % (fields, " + predicate" if predicate else "", timeout, self.log, tail))
            time.sleep(0.1)


def exchange(d, data, timeout=6.0):
    """Sends data on a new connection to daemon d and reads until it closes (a refused,
    malformed or smuggling request). Returns (bytes, closed?, client port)."""
    c = d.conn(timeout=timeout)
    port = c.local_port
    try:
        c.send_tolerant(data)
        got = c.read_all(timeout=timeout)
        return got, c.eof, port
    finally:
        c.close()


def assert_not_died(d, what, stderr_start=0):
    report = d.sanitizer_report(stderr_start)
    if report:
        pytest.fail("sanitizer report from socialgate (%s) during the test:\n%s" % (what, report))
    if d.proc is not None and d.proc.poll() is not None and not d.expected_exit:
        rc = d.proc.returncode
        d.expected_exit = True
        pytest.fail("socialgate (%s) died during the test (exit %s); stderr tail:\n%s"
                    % (what, rc, d.stderr_tail()))


def origin_quiet_since(o, before, settle=0.3):
    """True when the origin received no bytes at all since snapshot `before`."""
    time.sleep(settle)
    return o.snapshot()[:2] == before[:2]


# ---------------------------------------------------------------------------------------------
# helpers for the usage-log, admin and README tests
# ---------------------------------------------------------------------------------------------

# The strict timestamp of the usage log: RFC 3339 with milliseconds and the offset.
LOG_TS_STRICT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def unescape_log_value(raw):
    """A value as written in the usage log (plain, or "..." with \\" \\\\ \\xHH) -> bytes."""
    if raw == "-":
        return None
    if not (len(raw) >= 2 and raw.startswith('"') and raw.endswith('"')):
        return raw.encode("ascii")
    out, s, i = bytearray(), raw[1:-1], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if s[i + 1] == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += s[i + 1].encode("ascii")
            i += 2
            continue
        out += c.encode("ascii")
        i += 1
    return bytes(out)


def raw_fields(line):
    """[(key, value as written)] of a usage-log line after its timestamp."""
    _, _, rest = line.partition(" ")
    return [(m.group(1), m.group(2)) for m in FIELD_RE.finditer(rest)]


# Tunnels whose bytes cannot be classified (category opaque) are denied
# unless a rule allows them: tests that relay raw bytes through a tunnel
# (the origin's ECHO protocol) to check the relay itself add this rule.
ALLOW_OPAQUE = "[rule test-allows-opaque]\ncategories = opaque\naction = allow\n"


def write_rules(d, text, name="50-test.ini"):
    """Writes a rules file into daemon d's rules folder (before d.start(), or then HUP)."""
    path = d.dir / "rules" / name
    path.write_text(text)
    return path


def make_htpasswd(path, users, fmt=("-B", "-C", "5"), create=True):
    """An htpasswd file made by the real Apache htpasswd; users maps name -> password.

    Names and passwords may be bytes (non-UTF-8 names). create=False adds to the file."""
    def b(v):
        return v if isinstance(v, bytes) else str(v).encode()
    first = create
    for name, password in users.items():
        cmd = [b"htpasswd", *map(b, fmt), b"-b"] + ([b"-c"] if first else []) + \
              [b(path), b(name), b(password)]
        r = run(cmd, timeout=60)
        assert r.returncode == 0, "htpasswd failed for %r: %s" % (name, r.stderr.decode(errors="replace"))
        first = False
    return path


def http_get(url, timeout=5.0, method="GET"):
    """(status, headers, body) of a direct request (no proxy), also for 4xx/5xx answers."""
    import urllib.error
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, e.headers, body


class HangingListener:
    """A listener whose accept queue is full, so that new connects to it never complete.

    Use as a context manager; .port is its port. Skips the test if the kernel
    completes the connects anyway."""

    def __enter__(self):
        import select
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(0)
        self.port = self.lst.getsockname()[1]
        self.fillers = []
        for _ in range(16):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(s)
            _, w, _ = select.select([], [s], [], 0.3)
            if not w:
                return self
        self.__exit__()
        pytest.skip("could not fill the accept queue on this kernel")

    def __exit__(self, *a):
        for s in self.fillers:
            s.close()
        self.lst.close()
