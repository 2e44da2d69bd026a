"""Headless Chromium through socialgate, for the browser tests.

A `Browser` is one Chromium profile in a temporary HOME: its own NSS
database (where Chromium on Linux looks for locally trusted CAs), made with
`certutil` from libnss3-tools, and its own user-data directory, so that two
runs in a row share cookies and cache like one person's browser.

Every run goes through the proxy given at construction. Nothing leaves
loopback: `--host-resolver-rules` makes every name Chromium itself would
look up fail (with a proxy, Chromium sends the host name in the CONNECT
request or the absolute URL and resolves nothing), `<-loopback>` in the
bypass list sends even 127.0.0.1 through the proxy, and the background
services of a fresh profile (component updates, sync, metrics) are off.

Each run is a `chromium --headless=new` process in its own process group,
bounded by a timeout; the whole group is killed when the run ends. A
Chromium that cannot start fails the test with its standard error.
"""

import os
import shutil
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CERTUTIL = shutil.which("certutil") or "/usr/bin/certutil"

RUN_TIMEOUT = 60  # seconds one Chromium run may take, start to exit
PAGE_TIMEOUT_MS = 30000  # headless --timeout: stop loading after this long
WINDOW = "1024,768"

# Chromium's own features that would change what a test sees or send
# requests nobody asked for: the automatic http -> https upgrade of typed
# URLs, and the background fetches of a fresh profile.
DISABLED_FEATURES = ",".join([
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "OptimizationHints",
    "MediaRouter",
    "Translate",
    "AutofillServerCommunication",
    "InterestFeedContentSuggestions",
])


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Result:
    """One Chromium run: exit code, standard output (the DOM for dump_dom) and standard error."""

    def __init__(self, args, rc, stdout, stderr):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return "Result(rc=%r, stdout=%d bytes)" % (self.rc, len(self.stdout))


class Browser:
    def __init__(self, home, proxy_port):
        self.home = Path(home)
        self.proxy_port = proxy_port
        self.profile = self.home / "profile"
        self.nssdb = self.home / ".pki" / "nssdb"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.nssdb.mkdir(parents=True, exist_ok=True)
        if not Path(CHROMIUM).exists():
            pytest.fail("chromium not found (Debian package chromium; make test-deps installs it)")
        if not Path(CERTUTIL).exists():
            pytest.fail("certutil not found (Debian package libnss3-tools; make test-deps installs it)")
        self._certutil("-N", "--empty-password")
        self.runs = 0

    # -- the NSS database -------------------------------------------------------------------
    def _certutil(self, *args):
        cmd = [CERTUTIL, "-d", "sql:%s" % self.nssdb, *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, timeout=30, env=self.environ(),
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "certutil %s failed (%d): %s" % (
            " ".join(map(str, args)), r.returncode, (r.stdout + r.stderr).decode(errors="replace"))
        return r.stdout.decode(errors="replace")

    def trust_ca(self, pem, nickname):
        """Adds the CA certificate `pem` as trusted to issue server certificates."""
        self._certutil("-A", "-n", nickname, "-t", "C,,", "-i", pem)
        listing = self._certutil("-L")
        assert nickname in listing, listing

    # -- running Chromium -------------------------------------------------------------------
    def environ(self):
        env = {k: v for k, v in os.environ.items()
               if not k.lower().endswith("_proxy") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env.update(HOME=str(self.home), LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC",
                   XDG_CONFIG_HOME=str(self.home / ".config"),
                   XDG_CACHE_HOME=str(self.home / ".cache"))
        return env

    def args(self, *extra):
        return [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--user-data-dir=%s" % self.profile,
            "--proxy-server=http://127.0.0.1:%d" % self.proxy_port,
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--disable-features=%s" % DISABLED_FEATURES,
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-pings",
            "--metrics-recording-only",
            "--password-store=basic",
            "--use-mock-keychain",
            "--lang=en-US",
            "--timeout=%d" % PAGE_TIMEOUT_MS,
            "--window-size=%s" % WINDOW,
            *extra,
        ]

    def run(self, *extra, timeout=RUN_TIMEOUT):
        args = self.args(*extra)
        self.runs += 1
        errlog = self.home / ("chromium-%d.stderr" % self.runs)
        with open(errlog, "wb") as err:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, env=self.environ(), cwd=str(self.home),
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                pytest.fail("chromium did not finish within %d s: %s\nstderr:\n%s"
                            % (timeout, " ".join(args[-1:]), _tail(errlog)))
            finally:
                _kill_group(proc)
        return Result(args, proc.returncode, out.decode("utf-8", errors="replace"),
                      errlog.read_text(errors="replace"))

    def dump_dom(self, url):
        """The DOM of `url` once loaded, as Chromium serialises it (a page, or its own error page)."""
        r = self.run("--dump-dom", url)
        if r.rc != 0 or "<html" not in r.stdout:
            pytest.fail("chromium --dump-dom %s failed (exit %s); stdout:\n%s\nstderr:\n%s"
                        % (url, r.rc, r.stdout[-2000:], r.stderr[-4000:]))
        return r.stdout

    def screenshot(self, url, path):
        """A 1024x768 PNG of `url` at `path`; checked to be a real, non-blank image."""
        path = Path(path)
        r = self.run("--screenshot=%s" % path, url)
        if r.rc != 0 or not path.exists():
            pytest.fail("chromium --screenshot %s failed (exit %s); stderr:\n%s"
                        % (url, r.rc, r.stderr[-4000:]))
        width, height, distinct = png_summary(path)
        assert (width, height) == tuple(int(v) for v in WINDOW.split(",")), (path, width, height)
        # a page of one colour leaves a handful of byte values in the image data
        # (filter types, the colour); text in anti-aliased letters leaves most of them
        assert distinct > 32, "screenshot %s has %d distinct bytes: a blank page?" % (path, distinct)
        print("screenshot: %s" % path)
        return path


def png_summary(path):
    """(width, height, number of distinct byte values in the decompressed image data) of a PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: %s" % path
    i, idat, width, height = 8, [], 0, 0
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        i += 12 + length
    raw = zlib.decompress(b"".join(idat))
    return width, height, len(set(raw))


def _tail(path, n=4000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except FileNotFoundError:
        return ""


def text_of(dom):
    """The text a person reads on the page: the DOM without tags, scripts and styles,
    entities decoded, white space collapsed."""
    import html
    import re
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    dom = re.sub(r"(?s)<[^>]*>", " ", dom)
    return " ".join(html.unescape(dom).split())
