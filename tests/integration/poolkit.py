"""What the tests of a pool of gateways share: a redis-server of their own, the daemons'
clock frozen by libfaketime and moved by the test, and HAProxy configured from
contrib/haproxy/haproxy.cfg with its stats socket read."""

import glob
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from sgtest import REPO_ROOT, free_port, kill_group, token, wait_port

REDIS = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
HAPROXY = "/usr/sbin/haproxy"
CONTRIB = REPO_ROOT / "contrib" / "haproxy" / "haproxy.cfg"
DAY = 20787  # 2026-11-30, a Monday
BASE = "2026-11-30 10:%02d:00"
LOOP_CLOCK_RESYNC = 5.3  # libevent's CLOCK_SYNC_INTERVAL, and a little


def need(*paths):
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.fail("missing %s: install the Debian package redis-server (make test-deps)"
                    % ", ".join(missing))


def faketime_lib():
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not libs:
        pytest.fail("libfaketime is missing: install the Debian package faketime (make test-deps)")
    return libs[0]


class Redis:
    """redis-server on 127.0.0.1, no config from /etc, nothing saved."""

    def __init__(self, tmp, password=None):
        need(REDIS, REDIS_CLI)
        self.port = free_port()
        self.dir = tmp / ("redis-%d" % self.port)
        self.dir.mkdir()
        self.password = password
        self.proc = None

    def start(self):
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
               "--save", "", "--appendonly", "no", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        assert wait_port("127.0.0.1", self.port, 10, self.proc), "redis-server did not start"
        return self

    def kill(self):
        if self.proc is not None:
            kill_group(self.proc, signal.SIGKILL)
            self.proc = None

    def cli(self, *args):
        env = dict(os.environ, REDISCLI_AUTH=self.password) if self.password else None
        r = subprocess.run([REDIS_CLI, "-p", str(self.port), "--raw", *args], capture_output=True,
                           timeout=10, env=env)
        return r.stdout.decode().strip()

    def count(self, rule="testbook-quota", identity="127.0.0.1"):
        """The minutes of the rule's daily quota the identity has used, as Redis counts them."""
        v = self.cli("GET", "sg:{%s}:q:%s:%d" % (identity, rule, DAY))
        return int(v) if v else 0

    def wait_count(self, n, timeout=5.0, **kw):
        deadline = time.monotonic() + timeout
        while self.count(**kw) != n:
            assert time.monotonic() < deadline, \
                "Redis counts %d minutes, not %d" % (self.count(**kw), n)
            time.sleep(0.05)


class Clock:
    """The wall clock of the daemons started with env(): BASE at a minute the test sets. The
    monotonic clock (heartbeats, timeouts) is left real. An event loop reads the wall clock
    again every 5 seconds (libevent's cached time), so each move is followed by a wait of that
    length."""

    def __init__(self, tmp):
        self.path = tmp / ("clock-%s" % token())
        self.set(1, settle=False)

    def set(self, minute, settle=True):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(BASE % minute + "\n")
        os.replace(tmp, self.path)
        if settle:
            time.sleep(LOOP_CLOCK_RESYNC)

    def env(self):
        return {
            "LD_PRELOAD": faketime_lib(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                             ":verify_asan_link_order=0").lstrip(":"),
        }


def contrib_lines(tls=False):
    """contrib/haproxy/haproxy.cfg; tls: its global and defaults sections, then its
    commented frontend and backend for the HTTPS proxy port, uncommented."""
    lines = CONTRIB.read_text().splitlines()
    if not tls:
        return lines
    start = lines.index("#frontend proxy_tls")
    head = lines[:lines.index("frontend proxy")]
    return head + [ln[1:] for ln in lines[start:] if ln.startswith("#")]


def haproxy_config(port, servers, sock, tls=False):
    """contrib/haproxy/haproxy.cfg with a test's addresses: its bind and server lines
    replaced, the syslog target dropped, a smaller maxconn, a stats socket and fast checks."""
    out = []
    for ln in contrib_lines(tls):
        s = ln.strip()
        if s.startswith("log /dev/log") or s == "log global" or s == "option tcplog":
            continue
        if s.startswith("bind "):
            ln = "    bind 127.0.0.1:%d" % port
        elif s.startswith("server "):
            continue
        elif s.startswith("default-server "):
            assert "send-proxy-v2" in s and "check" in s, s
            ln = re.sub(r"port \d+ inter \S+ fall \d+ rise \d+", "inter 200ms fall 1 rise 1", ln)
        elif s.startswith("maxconn "):
            ln = "    maxconn 256"  # within an unprivileged process's file limit
        elif s == "global":
            ln += "\n    stats socket %s level user" % sock
        out.append(ln)
    body = "\n".join(out) + "\n"
    for name, gw_port, admin_port in servers:
        body += "    server %s 127.0.0.1:%d check port %d\n" % (name, gw_port, admin_port)
    return body


def start_haproxy(tmp, servers, tls=False):
    """HAProxy in front of servers (as for haproxy_config), checked with -c, all servers UP:
    (process, frontend port, stats socket). The caller kills the process (kill_group).
    A port taken between free_port() and HAProxy's bind ends HAProxy at once; that is
    retried on a new port, twice at most."""
    for attempt in range(3):
        port = free_port()
        sock = tmp / "haproxy.sock"
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(haproxy_config(port, servers, sock, tls))
        r = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, timeout=20)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
        with open(tmp / "haproxy.out", "wb") as out:
            hp = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            up = wait_port("127.0.0.1", port, 10, hp)
            if not up and hp.poll() is not None and attempt < 2:
                continue
            assert up, (tmp / "haproxy.out").read_text()
            wait_stat(sock, {name: "UP" for name, _, _ in servers},
                      backend="gateways_tls" if tls else "gateways", proc=hp)
        except BaseException:
            kill_group(hp)
            raise
        return hp, port, sock
    raise AssertionError("unreachable")


def haproxy_stat(sock, backend="gateways"):
    """{server: status} from HAProxy's stats socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(str(sock))
    s.sendall(b"show stat\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    out = {}
    for ln in data.decode().splitlines():
        f = ln.split(",")
        if len(f) > 17 and f[0] == backend and f[1] not in ("BACKEND", "FRONTEND"):
            out[f[1]] = f[17]
    return out


def wait_stat(sock, want, timeout=10.0, backend="gateways", proc=None):
    """Wait until HAProxy's stats socket shows want ({server: status prefix}). The socket
    may appear a moment after the frontend port listens; proc, when given, must stay up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = haproxy_stat(sock, backend)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if proc is not None and proc.poll() is not None:
                raise AssertionError("HAProxy exited (%s) before its stats socket answered"
                                     % proc.returncode)
            st = {"stats socket": str(e)}
        if all(st.get(k, "").startswith(v) for k, v in want.items()):
            return st
        if time.monotonic() > deadline:
            raise AssertionError("HAProxy servers %s, expected %s" % (st, want))
        time.sleep(0.1)
