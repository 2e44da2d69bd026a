"""`socialgate report`: usage summaries from generated usage logs.

A seeded generator writes a few thousand lines in the daemon's format
(request, tunnel, usage, config and quota lines, hostile quoted values,
malformed lines) and keeps its own totals; every run of `socialgate report`
is checked against those totals, computed here independently of the C code.
Needs no daemon: the conftest's after-module check is switched off below.
"""

import csv
import gzip
import io
import json
import os
import random
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
                 "action", "counts")


def day_hour(rng):
    day = rng.choice(["2026-11-29", "2026-11-30", "2026-12-01"])
    h, m, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return day, "%02d:%02d" % (h, m), "%s:%02d.%03d" % ("%02d:%02d" % (h, m), s, rng.randrange(1000))


def generate(path, n=4000, seed=1234):
    """Writes n good lines (and the malformed ones between them) to path.
    Returns (records, malformed count)."""
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
        if kind in ("request", "tunnel"):
            r.action = rng.choice(["allow", "allow", "deny", "warn", "monitor", None])
            caddr = ("[%s]" % client if ":" in client else client) + ":%d" % rng.randrange(1024, 65535)
            method = "CONNECT" if kind == "tunnel" else "GET"
            path_v = None if kind == "tunnel" else rng.choice([b"/", b"/a b", b'/q"x', b"/\xff"])
            line = ("%s ev=%s client=%s user=%s roles=%s method=%s host=%s port=%s path=%s sni=%s "
                    "platform=%s category=%s rule=%s action=%s status=%s up=%d down=%d ms=%d" % (
                        ts, kind, caddr, escape(user), roles_raw, method, "www.example.com",
                        rng.choice(["443", "80", "-"]), escape(path_v), "-", escape(platform),
                        escape(category), escape(rng.choice([None, b"marketing-all-day", b"lunch rule"])),
                        escape(r.action and r.action.encode()), rng.choice(["200", "403", "-"]),
                        rng.randrange(10 ** 6), rng.randrange(10 ** 9), rng.randrange(10 ** 5)))
            if rng.random() < 0.1:
                line += " mismatch=sni ech=yes reason=client-closed"
            if rng.random() < 0.05:
                line += ' reason="odd \\"reason\\" \\xe2\\x80\\x94"'
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
    if key == "day":
        return r.date.encode(), r.date
    return ("%s %s" % (r.date, r.hhmm[:2])).encode(), "%s %s" % (r.date, r.hhmm[:2])


def expected(recs, by, since=None, until=None, top=None):
    """Rows as dicts (decoded values), in the report's order."""
    groups = {}
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
    assert sum(int(l.split()[-2]) for l in lines[1:]) == sum(
        1 for r in recs if r.kind in ("request", "tunnel") and r.action == "deny")
    # hostile names appear in their logged form
    out = res.stdout.decode("ascii")
    assert '"bob\\x20\\"the\\"\\x20builder"' in out
    assert '"new\\x0aline"' in out
    assert '"caf\\xc3\\xa9"' in out
    assert '"-"' in out


@pytest.mark.parametrize("by", ["user", "role", "platform", "category", "day", "hour",
                                "user,platform", "role,day", "platform,category,hour",
                                "hour,role,user,category,platform,day"])
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
