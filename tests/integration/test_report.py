"""`socialgate report`: usage summaries from generated usage logs.

A seeded generator writes a few thousand lines in the daemon's format
(request, tunnel, usage, config and quota lines, hostile quoted values,
malformed lines) and keeps its own totals; every run of `socialgate report`
is checked against those totals, computed here independently of the C code.
Needs no daemon: the conftest's after-module check is switched off below.
"""

import csv
import gzip
import html.parser
import io
import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SOCIALGATE_BIN") or (REPO_ROOT / "socialgate")).resolve()
COUNTS = ("active_min", "requests", "up", "down", "denials", "warns")


@pytest.fixture(scope="module", autouse=True)
def still_serves_after_module():
    """Overrides the conftest's check of the shared daemon: these tests start
    none, and should not wait for nginx and a proxy they do not use."""
    yield


# ---------------------------------------------------------------------------------------------
# the log generator and its own totals
# ---------------------------------------------------------------------------------------------

def escape(v):
    """A value as the daemon writes it (proxy/util/escape.c)."""
    if v is None or v == b"":
        return "-"
    plain = all(0x20 < c < 0x7F and c not in (0x22, 0x5C) for c in v)
    if plain and v != b"-":
        return v.decode("ascii")
    out = ['"']
    for c in v:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif c <= 0x20 or c >= 0x7F:  # a space too: no raw space in a value
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    out.append('"')
    return "".join(out)


USERS = [b"alice", b"bob", b"carol", b"dave", b"erin", b"frank",
         # hostile names: each is written quoted and must come back intact
         b'bob "the" builder', b"back\\slash", b"comma, user", b"caf\xc3\xa9",
         b"new\nline", b"=1+2", b"-", b"tab\there", b"x=y z", b"\xe6\x97\xa5\xe6\x9c\xac"]
CLIENTS = ["10.1.2.3", "10.1.2.4", "10.20.0.7", "192.0.2.10", "2001:db8::5"]
ROLE_SETS = [[b"marketing", b"hq"], [b"staff"], [b"night shift", b"staff"], [],
             [b"hq", b"marketing", b"hq"], [b"quote\"role"]]
PLATFORMS = [(b"facebook", b"social"), (b"linkedin", b"social"), (b"youtube", b"video"),
             (b"reddit", b"social"), (b"whatsapp", b"messaging"), (None, None)]
OFFSETS = ["+00:00", "+01:00", "-05:00", "+05:45"]

MALFORMED = [
    "garbage",
    "",
    "2026-11-30T12:00:00.000+00:00",                                   # no fields
    "2026-11-30T12:00:00.000+00:00 result=ok files=1",                 # no ev
    "2026-11-30 12:00:00 ev=usage user=a platform=p active_min=1 requests=1 up=1 down=1",
    "2026-11-30T12:00:00.000+00:00 ev=usage user=a platform=p active_min=x requests=1 up=1 down=1",
    "2026-11-30T12:00:00.000+00:00 ev=usage user=\"open platform=p active_min=1 requests=1 up=1 down=1",
    "2026-11-30T12:00:00.000+00:00 ev=request client=10.0.0.1:1 user=a roles=- stray "
    "platform=p category=c action=deny up=0 down=0",
    "2026-13-30T12:00:00.000+00:00 ev=usage user=a platform=p active_min=1 requests=1 up=1 down=1",
    "2026-11-30T12:00:00.000+00:00 ev=usage user=a platform=p active_min=1 requests=1 up=1",
]


class Rec:
    __slots__ = ("date", "hhmm", "kind", "user", "client", "roles", "platform", "category",
                 "action", "counts", "rule", "host", "second")


def day_hour(rng):
    day = rng.choice(["2026-11-29", "2026-11-30", "2026-12-01"])
    h, m, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return day, "%02d:%02d" % (h, m), "%s:%02d.%03d" % ("%02d:%02d" % (h, m), s, rng.randrange(1000))


HOSTS = ["www.example.com", "www.facebook.com", "static.xx.fbcdn.net"]
RULES = [None, b"marketing-all-day", b"lunch rule"]


def generate(path, n=4000, seed=1234):
    """Writes n good lines (and the malformed ones between them) to path;
    some denied lines are followed by the browser's retries (same client
    address, host and second). Returns (records, malformed count)."""
    rng = random.Random(seed)
    recs, lines, bad = [], [], 0
    for i in range(n):
        day, hhmm, hms = day_hour(rng)
        ts = "%sT%s%s" % (day, hms, rng.choice(OFFSETS))
        user = rng.choice(USERS + [None] * 4)
        client = rng.choice(CLIENTS)
        roles = rng.choice(ROLE_SETS)
        platform, category = rng.choice(PLATFORMS)
        roles_raw = escape(b",".join(roles))
        kind = rng.choices(["request", "tunnel", "usage", "config", "quota"], [40, 30, 25, 2, 3])[0]
        r = Rec()
        r.date, r.hhmm, r.kind, r.user, r.client = day, hhmm, kind, user, client
        r.roles, r.platform, r.category, r.action, r.counts = roles, platform, category, None, None
        r.rule, r.host, r.second = None, None, None
        if kind in ("request", "tunnel"):
            r.action = rng.choice(["allow", "allow", "deny", "warn", "monitor", None])
            r.rule = rng.choice(RULES)
            r.host = rng.choice(HOSTS)
            offset = ts[-6:]
            r.second = ts[:19] + offset
            method = "CONNECT" if kind == "tunnel" else "GET"
            path_v = None if kind == "tunnel" else rng.choice([b"/", b"/a b", b'/q"x', b"/\xff"])
            # a denied CONNECT is retried by the browser, up to three times
            retries = rng.choice([0, 0, 1, 3]) if r.action == "deny" else 0
            rq_lines = []
            for k in range(1 + retries):
                caddr = ("[%s]" % client if ":" in client else client) + ":%d" % rng.randrange(1024, 65535)
                rts = ts if k == 0 else "%s.%03d%s" % (ts[:19], rng.randrange(1000), offset)
                line = ("%s ev=%s client=%s user=%s roles=%s method=%s host=%s port=%s path=%s sni=%s "
                        "platform=%s category=%s rule=%s action=%s status=%s up=%d down=%d ms=%d" % (
                            rts, kind, caddr, escape(user), roles_raw, method, r.host,
                            rng.choice(["443", "80", "-"]), escape(path_v), "-", escape(platform),
                            escape(category), escape(r.rule),
                            escape(r.action and r.action.encode()), rng.choice(["200", "403", "-"]),
                            rng.randrange(10 ** 6), rng.randrange(10 ** 9), rng.randrange(10 ** 5)))
                if rng.random() < 0.1:
                    line += " mismatch=sni ech=yes reason=client-closed"
                if rng.random() < 0.05:
                    line += ' reason="odd \\"reason\\" \\xe2\\x80\\x94"'
                rq_lines.append(line)
            line = rq_lines[0]
        elif kind == "usage":
            platform = platform or b"facebook"
            category = category or b"social"
            r.platform, r.category = platform, category
            c = (rng.randrange(6), rng.randrange(500), rng.randrange(10 ** 7), rng.randrange(10 ** 10))
            r.counts = c + (0, 0)
            line = ("%s ev=usage user=%s platform=%s active_min=%d today_min=%d quota_min=%s "
                    "requests=%d up=%d down=%d" % (
                        ts, escape(user), escape(platform), c[0], rng.randrange(600),
                        rng.choice(["-", "30", "60"]), c[1], c[2], c[3]))
            if rng.random() < 0.1:
                # the first format: no client, roles or category
                r.client, r.roles, r.category = None, [], None
            else:
                line += " client=%s roles=%s category=%s" % (client, roles_raw, escape(category))
        elif kind == "config":
            line = "%s ev=config result=ok files=4 rules=12 platforms=31" % ts
        else:
            line = ("%s ev=quota user=%s platform=facebook rule=everyone-at-lunch used_min=24 "
                    "quota_min=30 pct=80 client=%s" % (ts, escape(user), client))
        recs.append(r)
        lines.append(line)
        if kind in ("request", "tunnel"):
            for retry in rq_lines[1:]:
                recs.append(r)
                lines.append(retry)
        if i % 97 == 0:
            lines.append(MALFORMED[bad % len(MALFORMED)])
            bad += 1
    Path(path).write_bytes(("\n".join(lines) + "\n").encode("ascii"))
    return recs, bad


def identity(r):
    if r.user is not None:
        return r.user, escape(r.user)
    if r.client is None:
        return b"-", "-"
    return r.client.encode(), r.client


def parts(r, key, role):
    """(decoded bytes, raw log form) of one group value."""
    if key == "user":
        return identity(r)
    if key == "role":
        return role, escape(role) if role != b"-" else "-"
    if key == "platform":
        return (r.platform, escape(r.platform)) if r.platform else (b"-", "-")
    if key == "category":
        return (r.category, escape(r.category)) if r.category else (b"-", "-")
    if key == "rule":
        return (r.rule, escape(r.rule)) if r.rule else (b"-", "-")
    if key == "action":
        return (r.action.encode(), r.action) if r.action else (b"-", "-")
    if key == "day":
        return r.date.encode(), r.date
    return ("%s %s" % (r.date, r.hhmm[:2])).encode(), "%s %s" % (r.date, r.hhmm[:2])


def expected(recs, by, since=None, until=None, top=None):
    """Rows as dicts (decoded values), in the report's order."""
    groups, denied = {}, set()
    for r in recs:
        if r.kind == "usage":
            c = r.counts
        elif r.kind in ("request", "tunnel") and r.action in ("deny", "warn"):
            c = (0, 0, 0, 0, int(r.action == "deny"), int(r.action == "warn"))
        else:
            continue
        when = "%s %s" % (r.date, r.hhmm)
        if (since and when < since) or (until and when >= until):
            continue
        if r.action == "deny":
            # once per client address, host and second
            if (r.client, r.host, r.second) in denied:
                continue
            denied.add((r.client, r.host, r.second))
        roles = list(dict.fromkeys(r.roles)) or [b"-"]
        for role in (roles if "role" in by else [None]):
            key = tuple(parts(r, k, role) for k in by)
            raw = tuple(p[1] for p in key)
            g = groups.setdefault(raw, [key, [0] * 6])
            g[1] = [a + b for a, b in zip(g[1], c)]
    rows = sorted(groups.items(), key=lambda kv: (
        -kv[1][1][0], -kv[1][1][1], b"".join(p.encode() + b"\0" for p in kv[0])))
    out = []
    for raw, (key, c) in rows[:top]:
        d = {k: p[0].decode("utf-8") for k, p in zip(by, key)}
        d.update(zip(COUNTS, c))
        d["_raw"] = raw
        out.append(d)
    return out


def report(*args, stdin=None, input=None):
    return subprocess.run([str(BIN), "report", *map(str, args)], stdin=stdin, input=input,
                          capture_output=True, timeout=60)


def as_json(res):
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    return rows


def strip_raw(rows):
    return [{k: v for k, v in r.items() if k != "_raw"} for r in rows]


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    path = d / "access.log"
    recs, bad = generate(path)
    return path, recs, bad


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def test_generated_log_is_as_intended(log):
    path, recs, bad = log
    kinds = {r.kind for r in recs}
    assert kinds == {"request", "tunnel", "usage", "config", "quota"}
    assert bad > 30
    # denied lines repeated by browser retries
    denied = [(r.client, r.host, r.second) for r in recs if r.action == "deny"]
    assert len(denied) - len(set(denied)) > 100
    assert len(path.read_bytes().splitlines()) == len(recs) + bad


def test_default_table(log):
    path, recs, bad = log
    res = report(path)
    assert res.returncode == 0, res.stderr
    assert ("socialgate report: %d malformed lines skipped" % bad).encode() in res.stderr
    lines = res.stdout.decode("ascii").splitlines()
    assert lines[0].split() == ["user", "platform", *COUNTS]
    # Aligned: the figures are right-aligned in the last columns, so every
    # line is as wide as the header and the columns start where it says.
    assert {len(l) for l in lines} == {len(lines[0])}
    want = expected(recs, ("user", "platform"))
    assert len(lines) == 1 + len(want)
    plat_col = lines[0].index("platform")
    for line, w in zip(lines[1:], want):
        # the table shows values as the log writes them
        assert line[:plat_col].rstrip() == w["_raw"][0]
        assert line[plat_col:].split()[0] == w["_raw"][1]
        assert [int(x) for x in line.split()[-6:]] == [w[k] for k in COUNTS]
    # totals
    usage = [r for r in recs if r.kind == "usage"]
    assert sum(int(l.split()[-6]) for l in lines[1:]) == sum(r.counts[0] for r in usage)
    assert sum(int(l.split()[-3]) for l in lines[1:]) == sum(r.counts[3] for r in usage)
    # a denial once per client address, host and second: retries are not counted
    assert sum(int(l.split()[-2]) for l in lines[1:]) == len(
        {(r.client, r.host, r.second) for r in recs if r.action == "deny"})
    # hostile names appear in their logged form
    out = res.stdout.decode("ascii")
    assert '"bob\\x20\\"the\\"\\x20builder"' in out
    assert '"new\\x0aline"' in out
    assert '"caf\\xc3\\xa9"' in out
    assert '"-"' in out


@pytest.mark.parametrize("by", ["user", "role", "platform", "category", "day", "hour", "rule",
                                "action", "user,platform", "role,day", "platform,category,hour",
                                "rule,action", "user,rule,day", "action,platform",
                                "hour,role,user,category,platform,day,rule,action"])
def test_json_by(log, by):
    path, recs, _ = log
    rows = as_json(report("--by", by, "--format", "json", path))
    assert rows == strip_raw(expected(recs, tuple(by.split(","))))


@pytest.mark.parametrize("by", ["user,platform", "role", "hour,user"])
def test_csv_by(log, by):
    path, recs, _ = log
    res = report("--format", "csv", "--by", by, path)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout.decode("utf-8"), newline="")))
    keys = by.split(",")
    assert rows[0] == keys + list(COUNTS)
    want = expected(recs, tuple(keys))
    got = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert got == [{k: str(v) for k, v in w.items()} for w in strip_raw(want)]
    # decoded hostile values survive the round trip through csv
    if "user" in keys:
        users = {r["user"] for r in got}
        assert {'bob "the" builder', "new\nline", "comma, user", "café", "=1+2", "tab\there"} <= users


@pytest.mark.parametrize("since,until", [
    ("2026-11-30", None),
    (None, "2026-11-30"),
    ("2026-11-30", "2026-12-01"),
    ("2026-11-30 12:30", "2026-11-30 18:00"),
    ("2026-11-29T23:59", "2026-11-30T00:01"),
    ("2026-12-02", None),
])
def test_since_until(log, since, until):
    path, recs, _ = log
    args = ["--by", "user,day", "--format", "json"]
    if since:
        args += ["--since", since]
    if until:
        args += ["--until", until]
    rows = as_json(report(*args, path))
    norm = lambda s: s and s.replace("T", " ") + (" 00:00" if len(s) == 10 else "")  # noqa: E731
    assert rows == strip_raw(expected(recs, ("user", "day"), norm(since), norm(until)))


def test_top(log):
    path, recs, _ = log
    rows = as_json(report("--top", 5, "--format=json", "--by=role,platform", path))
    assert rows == strip_raw(expected(recs, ("role", "platform"), top=5))
    res = report("--top", "3", path)
    assert len(res.stdout.splitlines()) == 4


def test_stdin_gzip_and_several_files(log, tmp_path):
    path, recs, bad = log
    gz = tmp_path / "access.log.1.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    gunzip = subprocess.Popen(["gzip", "-dc", str(gz)], stdout=subprocess.PIPE)
    res = report("--format", "json", "-", stdin=gunzip.stdout)
    gunzip.stdout.close()
    assert gunzip.wait() == 0
    assert as_json(res) == strip_raw(expected(recs, ("user", "platform")))
    assert ("%d malformed lines skipped" % bad).encode() in res.stderr

    # The log cut in two files, the middle part on stdin: the same totals.
    data = path.read_bytes().split(b"\n")
    third = len(data) // 3
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"\n".join(data[:third]) + b"\n")
    b.write_bytes(b"\n".join(data[2 * third:]))  # the last line may lack its newline
    mid = b"\n".join(data[third:2 * third]) + b"\n"
    res = report("--format", "json", a, "-", b, input=mid)
    assert as_json(res) == strip_raw(expected(recs, ("user", "platform")))
    assert ("%d malformed lines skipped" % bad).encode() in res.stderr


def test_table_same_from_stdin(log):
    path, _, _ = log
    with open(path, "rb") as f:
        a = report("--by", "role,user", "-", stdin=f)
    b = report("--by", "role,user", path)
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout


def test_denied_connect_retries_count_once(tmp_path):
    """Chromium retries a refused CONNECT up to three times: one page view,
    four denied lines, one denial. Another host, second or client is
    another denial."""
    p = tmp_path / "retries.log"
    line = ("2026-11-30T12:31:%s+00:00 ev=tunnel client=%s user=alice roles=marketing "
            "method=CONNECT host=%s port=443 path=- sni=- platform=facebook category=social "
            "rule=social-otherwise action=deny status=403 up=0 down=0 ms=1")
    lines = [line % ("05.101", "10.1.2.3:50001", "www.facebook.com"),
             line % ("05.140", "10.1.2.3:50002", "www.facebook.com"),
             line % ("05.180", "10.1.2.3:50003", "www.facebook.com"),
             line % ("05.220", "10.1.2.3:50004", "www.facebook.com"),
             line % ("05.300", "10.1.2.3:50005", "static.xx.fbcdn.net"),
             line % ("06.001", "10.1.2.3:50006", "www.facebook.com"),
             line % ("06.002", "[2001:db8::7]:50007", "www.facebook.com"),
             line % ("06.003", "[2001:db8::7]:50008", "www.facebook.com")]
    p.write_text("\n".join(lines) + "\n")
    res = report("--by", "user,rule", p)
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode().splitlines()
    assert out[0].split() == ["user", "rule", *COUNTS]
    assert out[1].split() == ["alice", "social-otherwise", "0", "0", "0", "0", "4", "0"]
    assert len(out) == 2
    rows = as_json(report("--by", "action", "--format", "json", p))
    assert rows == [{"action": "deny", "active_min": 0, "requests": 0, "up": 0, "down": 0,
                     "denials": 4, "warns": 0}]


def test_edge_lines(tmp_path):
    p = tmp_path / "edge.log"
    usage = ("2026-11-30T12:35:00.000+00:00 ev=usage user=alice platform=facebook active_min=4 "
             "today_min=47 quota_min=- requests=312 up=120034 down=9834211 client=10.1.2.3 "
             "roles=marketing category=social")
    huge = "2026-11-30T12:35:00.000+00:00 ev=usage user=" + "x" * (5 << 20)
    # CRLF line ends, a line longer than the read buffer, no final newline
    p.write_bytes((usage + "\r\n" + huge + "\n" + usage + "\n" + huge + "\r\n" + usage).encode())
    res = report("--format", "json", p)
    rows = as_json(res)
    assert rows == [{"user": "alice", "platform": "facebook", "active_min": 12, "requests": 936,
                     "up": 360102, "down": 29502633, "denials": 0, "warns": 0}]
    assert b"2 malformed lines skipped (first: " in res.stderr
    assert str(p).encode() + b":2)" in res.stderr


def test_json_always_parses(tmp_path):
    p = tmp_path / "bytes.log"
    lines = []
    for i in range(256):
        v = escape(bytes([i, 0xFF, 0xC3]) + b"\xe2\x82")
        lines.append("2026-11-30T12:35:00Z ev=usage user=%s platform=p active_min=1 requests=%d "
                     "up=1 down=1" % (v, i))
    p.write_text("\n".join(lines) + "\n")
    res = report("--format", "json", "--by", "user", p)
    rows = as_json(res)
    assert len(rows) == 256
    assert res.stderr == b""
    res = report("--format", "csv", "--by", "user", p)
    assert res.returncode == 0
    assert len(list(csv.reader(io.StringIO(res.stdout.decode("latin-1"), newline="")))) == 257


def test_empty_input():
    res = report("-", input=b"")
    assert res.returncode == 0 and res.stderr == b""
    assert res.stdout.split() == [b"user", b"platform", *(c.encode() for c in COUNTS)]
    assert as_json(report("--format", "json", "-", input=b"")) == []
    res = report("--format", "csv", "--by", "day", "-", input=b"")
    assert res.stdout == b"day,active_min,requests,up,down,denials,warns\n"


def test_unreadable_file(log, tmp_path):
    path, recs, _ = log
    missing = tmp_path / "nope.log"
    res = report("--format", "json", missing, path, tmp_path)
    assert res.returncode == 1
    assert b"nope.log: No such file or directory" in res.stderr
    assert b"Is a directory" in res.stderr
    # the readable file is still reported
    assert json.loads(res.stdout) == strip_raw(expected(recs, ("user", "platform")))


@pytest.mark.parametrize("args", [
    [],
    ["--by", "host", "-"],
    ["--by", "user,user", "-"],
    ["--by", "", "-"],
    ["--since", "2026-02-30", "-"],
    ["--until", "30/11/2026", "-"],
    ["--since", "2026-11-30 25:00", "-"],
    ["--top", "0", "-"],
    ["--top", "ten", "-"],
    ["--format", "xml", "-"],
    ["--by", "rule,host", "-"],
    ["--format", "html", "--by", "user", "-"],
    ["--by=platform", "--format=html", "-"],
    ["--frobnicate", "-"],
    ["-x", "-"],
    ["-"] + ["--by"],
])
def test_usage_errors(args):
    res = report(*args, input=b"")
    assert res.returncode == 2, res
    assert res.stderr.startswith(b"socialgate report: ")
    assert b"usage: socialgate report" in res.stderr
    assert res.stdout == b""


def test_help_and_double_dash(tmp_path):
    res = report("--help")
    assert res.returncode == 0 and b"--by" in res.stdout
    p = tmp_path / "--by"
    p.write_text("2026-11-30T12:35:00Z ev=usage user=u platform=p active_min=1 requests=2 up=3 "
                 "down=4\n")
    res = report("--format", "csv", "--", p)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1] == b"u,p,1,2,3,4,0,0"


# ---------------------------------------------------------------------------------------------
# --format html
# ---------------------------------------------------------------------------------------------

VOID = {"meta", "br", "img", "hr", "input", "link", "rect"}


class Page(html.parser.HTMLParser):
    """Collects the data- attributes of the page's elements, checks that
    every element is closed in order, and notes what could fetch or run
    anything."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.data, self.tags, self.urls = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if any(k.startswith("data-") for k in a):
            self.data.append((tag, a))
        for k, v in attrs:
            if k in ("src", "href", "action", "xlink:href", "srcset", "poster") or k.startswith("on"):
                self.urls.append((tag, k, v))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def parse_page(res):
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode("utf-8")  # strict: the page is UTF-8
    assert text.startswith("<!DOCTYPE html>\n")
    assert '<meta charset="utf-8">' in text
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == []
    # self-contained: no script, no external resource, no link at all
    assert "script" not in page.tags and "iframe" not in page.tags and "link" not in page.tags
    assert page.urls == []
    assert not re.search(r"url\(|@import", text)
    return text, page


def rows_of(page, tag, attr):
    return [a for t, a in page.data if t == tag and attr in a]


def log_decode(raw):
    """A value as the table shows it (the log's form), as the page shows
    it: decoded, control characters as U+FFFD."""
    b = raw.encode("ascii")
    if len(b) >= 2 and b[:1] == b'"':
        b = re.sub(rb'\\(x[0-9a-fA-F]{2}|.)',
                   lambda m: bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x"
                   else m.group(1), b[1:-1])
    t = b.decode("utf-8", errors="replace")
    return "".join("\ufffd" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in t)


def table_rows(res, nkeys):
    """(keys decoded as the page shows them, six counts) per table row."""
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode("ascii").splitlines()
    assert lines[0].split()[nkeys:] == list(COUNTS)
    out = []
    for line in lines[1:]:
        f = line.split()
        keys = f[:-6]
        if nkeys == 1 and len(keys) == 2:  # --by hour: "YYYY-MM-DD HH"
            keys = [" ".join(keys)]
        assert len(keys) == nkeys
        out.append((tuple(log_decode(k) for k in keys), [int(x) for x in f[-6:]]))
    return out


def test_html_same_numbers_as_table(log):
    """One log, both formats: every figure on the page is the one the table
    format gives for the same grouping."""
    path, recs, _ = log
    text, page = parse_page(report("--format", "html", path))
    A, RQ, DN = COUNTS.index("active_min"), COUNTS.index("requests"), COUNTS.index("denials")

    # totals: the sums of the table by user
    users = table_rows(report("--by", "user", path), 1)
    for i, name in enumerate(COUNTS):
        (cell,) = [a for t, a in page.data if a.get("data-total") == name]
        m = re.search(r'data-total="%s">(\d+)<' % name, text)
        assert int(m.group(1)) == sum(c[i] for _, c in users), name
    assert sum(c[DN] for _, c in users) == len(
        {(r.client, r.host, r.second) for r in recs if r.action == "deny"})

    # active minutes per platform and day
    got = sorted((a["data-day"], a["data-platform"], int(a["data-active-min"]))
                 for a in rows_of(page, "tr", "data-platform"))
    want = sorted((k[0], k[1], c[A]) for k, c in table_rows(
        report("--by", "day,platform", path), 2) if c[A] > 0)
    assert got == want and len(got) > 10
    # grouped by day, in order
    days = [a["data-day"] for a in rows_of(page, "tbody", "data-day")]
    assert days == sorted(set(d for d, _, _ in got))

    # the top users, in the table's order
    got = [(a["data-user"], int(a["data-active-min"]), int(a["data-requests"]),
            int(a["data-denials"])) for a in rows_of(page, "tr", "data-user")]
    want = [(k[0], c[A], c[RQ], c[DN]) for k, c in table_rows(
        report("--by", "user", "--top", "10", path), 1)]
    assert got == want and len(got) == 10

    # denials by rule
    got = sorted((a["data-rule"], int(a["data-denials"])) for a in rows_of(page, "tr", "data-rule"))
    want = sorted((k[0], c[DN]) for k, c in table_rows(report("--by", "rule", path), 1) if c[DN])
    assert got == want
    assert {r for r, _ in got} == {"-", "marketing-all-day", "lunch rule"}

    # the hours of the day, all days together
    got = {a["data-hour"]: int(a["data-active-min"]) for a in rows_of(page, "g", "data-hour")}
    want = {"%02d" % h: 0 for h in range(24)}
    for k, c in table_rows(report("--by", "hour", path), 1):
        want[k[0][11:13]] += c[A]
    assert got == want

    # --top sets how many users; --since and --until apply as everywhere
    _, page = parse_page(report("--format", "html", "--top", "3", "--since", "2026-11-30",
                                "--until", "2026-12-01", path))
    got = [(a["data-user"], int(a["data-active-min"])) for a in rows_of(page, "tr", "data-user")]
    want = [(k[0], c[A]) for k, c in table_rows(report(
        "--by", "user", "--top", "3", "--since", "2026-11-30", "--until", "2026-12-01", path), 1)]
    assert got == want and len(got) == 3
    assert {a["data-day"] for a in rows_of(page, "tr", "data-platform")} == {"2026-11-30"}


def test_html_escapes_log_values(tmp_path):
    """User and rule names can hold anything: on the page they are text,
    never markup."""
    p = tmp_path / "hostile.log"
    evil_user = escape(b'<script>alert("u")</script>')
    evil_rule = escape(b'"><img src=https://evil.example/x onerror=alert(1)>')
    evil_platform = escape(b"<svg onload=alert(2)>")
    p.write_text(
        "2026-11-30T12:35:00.000+00:00 ev=usage user=%s platform=%s active_min=4 today_min=4 "
        "quota_min=- requests=3 up=2 down=1 client=10.1.2.3 roles=- category=social\n"
        "2026-11-30T12:36:00.000+00:00 ev=request client=10.1.2.3:5 user=%s roles=- method=GET "
        "host=h port=80 path=- sni=- platform=p category=c rule=%s action=deny status=403 up=0 "
        "down=0 ms=1\n" % (evil_user, evil_platform, evil_user, evil_rule))
    text, page = parse_page(report("--format", "html", p))
    assert "<script" not in text.lower() and "<img" not in text and "<svg onload" not in text
    assert "&lt;script&gt;alert(&quot;u&quot;)&lt;/script&gt;" in text
    (u,) = rows_of(page, "tr", "data-user")
    assert u["data-user"] == '<script>alert("u")</script>'
    assert u["data-active-min"] == "4" and u["data-denials"] == "1"
    (r,) = rows_of(page, "tr", "data-rule")
    assert r["data-rule"] == '"><img src=https://evil.example/x onerror=alert(1)>'
    (pl,) = rows_of(page, "tr", "data-platform")
    assert pl["data-platform"] == "<svg onload=alert(2)>"


def test_html_empty_log():
    text, page = parse_page(report("--format", "html", "-", input=b""))
    assert "Nothing was counted." in text
    assert [int(a["data-active-min"]) for a in rows_of(page, "g", "data-hour")] == [0] * 24


def test_gateways_logs_merged_in_time_order(tmp_path):
    """The logs of a pool of gateways given together: a browser's retry of a
    denied CONNECT lands on another gateway (HAProxy balances each connection)
    in the same second. The files are merged in time order, so the retry is
    recognised next to its first line even when the first gateway logged many
    other denials afterwards; every other line of both files is counted."""
    line = ("2026-11-30T%s+00:00 ev=tunnel client=%s user=%s roles=- method=CONNECT "
            "host=www.facebook.com port=443 path=- sni=- platform=facebook category=social "
            "rule=r action=deny status=403 up=0 down=0 ms=1")
    usage = ("2026-11-30T%s+00:00 ev=usage user=%s platform=facebook category=social "
             "rule=- action=- active_min=%d requests=%d up=10 down=20")
    many = 135000  # more than the denials a repeat is looked for among when read one file after another
    gw1 = [line % ("12:31:05.101", "10.1.2.3:50001", "alice")]
    gw1 += [line % ("13:%02d:%02d.000" % (i // 3600 % 60, i // 60 % 60), "10.9.%d.%d:1" % (i // 250, i % 250),
                    "bob") for i in range(many)]
    gw1.append(usage % ("14:00:00.000", "alice", 3, 7))
    gw2 = [line % ("12:31:05.140", "10.1.2.3:50002", "alice"),
           usage % ("12:59:00.000", "alice", 2, 5)]
    a, b = tmp_path / "gw1.log", tmp_path / "gw2.log"
    a.write_text("\n".join(gw1) + "\n")
    b.write_text("\n".join(gw2) + "\n")
    for args in ((a, b), (b, a)):
        rows = as_json(report("--by", "user", "--format", "json", *args))
        assert rows == [{"user": "alice", "active_min": 5, "requests": 12, "up": 20, "down": 40,
                         "denials": 1, "warns": 0},
                        {"user": "bob", "active_min": 0, "requests": 0, "up": 0, "down": 0,
                         "denials": many, "warns": 0}], args
