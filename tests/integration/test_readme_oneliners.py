"""The one-liners of README.md's "Reading the logs" section, run for real.

Every line of a shell code block in that section that starts with `grep`, `awk` or
`socialgate report` is run by /bin/sh against a generated access.log of known content
(realistic lines, quoted values included), and its output is compared with what a
Python computation over the same generated records gives. A one-liner without an
expectation here, or an expectation whose one-liner left the README, fails the test.

Needs no daemon: the log is generated in the documented format (README, "The usage log").
"""

import collections
import datetime
import random
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sgtest import BIN, CLEAN_ENV, REPO_ROOT

README = REPO_ROOT / "README.md"
SECTION = "Reading the logs"
REQUEST_KEYS = ["ev", "client", "user", "roles", "method", "host", "port", "path", "sni", "platform",
                "category", "rule", "action", "status", "up", "down", "ms"]


# ---------------------------------------------------------------------------------------------
# the README section
# ---------------------------------------------------------------------------------------------

def readme_oneliners():
    text = README.read_text()
    m = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(SECTION), text, re.M | re.S)
    assert m, "README.md has no section '## %s'" % SECTION
    cmds = []
    for block in re.findall(r"^```(?:sh|bash|shell)?\n(.*?)^```", m.group(1), re.M | re.S):
        for line in block.splitlines():
            line = line.strip()
            if re.match(r"^(grep|awk|socialgate report)\b", line):
                cmds.append(line)
    return cmds


# ---------------------------------------------------------------------------------------------
# the generated log
# ---------------------------------------------------------------------------------------------

def esc(v):
    """A value as the usage log writes it (README: quoted when it has spaces, quotes,
    backslashes, control or non-ASCII bytes, a space as \\x20; "-" when empty)."""
    if v is None or v == "":
        return "-"
    if isinstance(v, int):
        return str(v)
    b = v.encode("latin-1") if isinstance(v, str) else v
    if v != "-" and all(0x20 < c < 0x7f and c not in b"\"\\'" for c in b):
        return b.decode()
    out = '"'
    for c in b:
        if c in b'"\\':
            out += "\\" + chr(c)
        elif c <= 0x20 or c >= 0x7f:
            out += "\\x%02x" % c
        else:
            out += chr(c)
    return out + '"'


class Rec(dict):
    """One generated line: its fields, then .line as written."""

    def tok(self, key):
        return "%s=%s" % (key, esc(self.get(key)))

    def render(self, keys):
        self.line = self["ts"] + " " + " ".join(self.tok(k) for k in keys if k in self or k in REQUEST_KEYS)
        return self


USERS = ["alice", "bob", "carol", 'dev"ops', "o'brien"]          # users who signed in
CLIENTS = ["10.1.2.3", "10.1.2.9", "2001:db8::5"]                # anonymous clients
PLATFORMS = {  # name: (category, hosts)
    "facebook": ("social", ["www.facebook.com", "static.xx.fbcdn.net"]),
    "linkedin": ("social", ["www.linkedin.com"]),
    "youtube": ("video", ["www.youtube.com", "i.ytimg.com"]),
    "x": ("social", ["x.com"]),
    None: (None, ["intranet.example.com", "docs.example.org", "127.0.0.1"]),
}
BAD_LOGINS = ["john doe", 'ev"il', "alice", "caf\xe9", "x y z"]
RULES = {"allow": "marketing-all-day", "monitor": "messaging", "warn": "video-with-warning",
         "deny": "social-otherwise"}


def generate(seed=20261130):
    rnd = random.Random(seed)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    today = now.date()
    start = datetime.datetime.combine(today - datetime.timedelta(days=1), datetime.time(8, 0),
                                      tzinfo=datetime.timezone.utc)
    # the last event is an hour ago at most, so "today" always has lines
    end = max(now - datetime.timedelta(minutes=5), datetime.datetime.combine(
        today, datetime.time(0, 30), tzinfo=datetime.timezone.utc))
    span = (end - start).total_seconds()
    times = sorted(start + datetime.timedelta(seconds=rnd.uniform(0, span)) for _ in range(420))
    ms_used = set()
    recs = []

    def ts(t):
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (t.microsecond // 1000) + "+00:00"

    def client_of(ip):
        return ("[%s]:%d" if ":" in ip else "%s:%d") % (ip, rnd.randrange(1024, 65536))

    def unique_ms(lo, hi):
        while True:
            v = rnd.randrange(lo, hi)
            if v not in ms_used:
                ms_used.add(v)
                return v

    recs.append(Rec(ts=ts(start - datetime.timedelta(minutes=1)), ev="config", result="ok", files=3,
                    rules=5, platforms=46).render(["ev", "result", "files", "rules", "platforms"]))
    usage = collections.defaultdict(lambda: [0, 0, 0, set()])  # (ident, platform) -> req, up, down, minutes
    last_flush = start
    for i, t in enumerate(times):
        kind = rnd.choices(["ok", "deny", "407", "challenge", "err", "tunnel", "gone", "config"],
                           [50, 12, 6, 6, 6, 14, 3, 1])[0]
        if i == len(times) // 2:
            kind = "config"  # at least one, whatever the time of day does to the draws
        if kind == "config":
            r = Rec(ts=ts(t), ev="config", result="error", file="/etc/socialgate/rules/10-policy.ini",
                    line=rnd.randrange(1, 90), msg="unknown platform 'myspace'")
            recs.append(r.render(["ev", "result", "file", "line", "msg"]))
            continue
        signed_in = rnd.random() < 0.7
        user = rnd.choice(USERS) if signed_in else None
        ip = rnd.choice(CLIENTS[:2]) if signed_in else rnd.choice(CLIENTS)
        platform = rnd.choice(list(PLATFORMS))
        category, hosts = PLATFORMS[platform]
        host = rnd.choice(hosts)
        r = Rec(ts=ts(t), client=client_of(ip), user=user, roles="marketing,hq" if user else "staff",
                method="GET", host=host, port=80, path=None, sni=None, platform=platform,
                category=category, rule=None, action=None, status=200, up=rnd.randrange(100, 900),
                down=rnd.randrange(300, 90000), ms=unique_ms(1, 100000))
        r["path"] = rnd.choice(["/", "/r/c", "/watch", '/search/a"b', "/p/it's", "/feed/%20x", "/a=b"])
        if platform:
            action = rnd.choice(["allow", "allow", "monitor", "warn"])
            r.update(rule=RULES[action], action=action)
        else:
            r.update(action="allow")
        if kind == "deny":
            if not platform:
                platform = "facebook"
                r.update(platform="facebook", category="social", host="www.facebook.com")
            r.update(action="deny", rule=rnd.choice(["social-otherwise", "no-video", "after-quota"]),
                     status=403, up=rnd.randrange(100, 400), down=512)
        elif kind == "407":
            r.update(user=rnd.choice(BAD_LOGINS), roles=None, rule=None, action=None, status=407,
                     down=434, auth="fail")
        elif kind == "challenge":
            # a client without credentials asked to sign in: a 407, but no failed login
            r.update(user=None, roles="staff", rule=None, action=None, status=407, down=434,
                     reason="auth-required")
        elif kind == "err":
            st, reason = rnd.choice([(502, "dns-failed"), (502, "connect-refused"),
                                     (504, "connect-timeout"), (504, "upstream-timeout")])
            r.update(status=st, reason=reason, down=rnd.randrange(300, 400),
                     host=rnd.choice(["nonexistent.example", "slow.example.net", host]))
        elif kind == "gone":
            r.update(status=None, down=0, reason="client-closed")
        if kind == "tunnel":
            r.update(ev="tunnel", method="CONNECT", port=443, path=None, sni=host, status=200)
            if rnd.random() < 0.3:
                # domain fronting: the SNI names another platform; the stricter decision wins
                r.update(host="cdn.example.net", mismatch="sni", sni="www.facebook.com",
                         platform="facebook", category="social", rule="social-otherwise",
                         action="deny")
            if rnd.random() < 0.2:
                r["ech"] = "yes"
        else:
            r["ev"] = "request"
        extra = [k for k in ("mismatch", "ech", "auth", "reason") if k in r]
        recs.append(r.render(REQUEST_KEYS + extra))
        if r.get("platform") and r["action"] not in (None, "deny"):
            ident = r["user"] or ip
            u = usage[(ident, r["platform"], r["user"] is None, ip, r["category"], r["roles"])]
            u[0] += 1
            u[1] += r["up"]
            u[2] += r["down"]
            u[3].add(t.replace(second=0))
        # every 5 minutes of log time, the summaries of the interval
        if (t - last_flush).total_seconds() >= 300 and usage:
            last_flush = t
            for (ident, platform, anon, ip_, category, roles), (n, up, down, mins) in sorted(usage.items()):
                r = Rec(ts=ts(t), ev="usage", user=None if anon else ident, platform=platform,
                        active_min=len(mins), today_min=len(mins) + rnd.randrange(0, 40),
                        quota_min=rnd.choice([None, 30]), requests=n, up=up, down=down, client=ip_,
                        roles=roles, category=category)
                recs.append(r.render(["ev", "user", "platform", "active_min", "today_min", "quota_min",
                                      "requests", "up", "down", "client", "roles", "category"]))
                if r["quota_min"] and rnd.random() < 0.25:
                    pct = rnd.choice([80, 100])
                    q = Rec(ts=r["ts"], ev="quota", user=r["user"], platform=platform,
                            rule="everyone-at-lunch", used_min=pct * 30 // 100, quota_min=30, pct=pct,
                            client=ip_)
                    recs.append(q.render(["ev", "user", "platform", "rule", "used_min", "quota_min",
                                          "pct", "client"]))
            usage.clear()
    # "today" in the README is the date of the log's last line
    return recs, datetime.date.fromisoformat(recs[-1]["ts"][:10])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    recs, today = generate()
    d = tmp_path_factory.mktemp("readme")
    (d / "access.log").write_bytes(("\n".join(r.line for r in recs) + "\n").encode("latin-1"))
    return d, recs, today


# ---------------------------------------------------------------------------------------------
# what each one-liner must print, computed from the records
# ---------------------------------------------------------------------------------------------

def txns(recs):
    return [r for r in recs if r["ev"] in ("request", "tunnel")]


def ident_tok(r):
    """user=NAME, or client=IP for anonymous use (ev=usage and ev=quota lines)."""
    return r.tok("user") if r.get("user") else "client=%s" % r["client"]


def counted(pairs):
    """uniq -c | sort -rn output as a Counter (order checked separately)."""
    return collections.Counter(pairs)


def exp_who_used_facebook_today(recs, today):
    return ("sorted", sorted({ident_tok(r) for r in recs if r["ev"] == "usage" and r["platform"] == "facebook"
                              and r["ts"].startswith(today.isoformat() + "T")}))


def exp_top_users(recs, today):
    m = collections.Counter()
    for r in recs:
        if r["ev"] == "usage":
            m[ident_tok(r)] += r["active_min"]
    top = sorted(m.items(), key=lambda kv: -kv[1])
    return ("ranked", top[:10], top)


def exp_minutes_per_platform_today(recs, today):
    m = collections.Counter()
    for r in recs:
        if r["ev"] == "usage" and r["ts"].startswith(today.isoformat() + "T"):
            m[r.tok("platform")] += r["active_min"]
    return ("ranked", sorted(m.items(), key=lambda kv: -kv[1]), None)


def exp_denials_by_rule(recs, today):
    return ("counts", counted(r.tok("rule") for r in txns(recs) if r["action"] == "deny"))


def exp_alice_denied(recs, today):
    return ("counts", counted(r.tok("platform") for r in txns(recs)
                              if r["action"] == "deny" and r["user"] == "alice" and not r.get("auth")))


def exp_alice_linkedin(recs, today):
    # failed sign-ins under her name (auth=fail) are printed too, as the README says
    return ("lines", [r.line for r in recs if r.get("user") == "alice" and r.get("platform") == "linkedin"])


def exp_quotas_used_up(recs, today):
    return ("lines", ["%s %s %s" % (r["ts"][:10], ident_tok(r), r.tok("rule")) for r in recs
                      if r["ev"] == "quota" and r["pct"] == 100])


def exp_mismatch(recs, today):
    return ("lines", [" ".join([r["ts"]] + [r.tok(k) for k in ("client", "user", "host", "sni", "platform",
                                                                "action")])
                      for r in recs if r["ev"] == "tunnel" and r.get("mismatch") == "sni"])


def exp_bytes_per_platform(recs, today):
    b = collections.Counter()
    for r in txns(recs):
        b[r.tok("platform")] += r["up"] + r["down"]
    return ("ranked", sorted(b.items(), key=lambda kv: -kv[1]), None)


def exp_failed_logins_per_user(recs, today):
    return ("counts", counted(r.tok("user") for r in txns(recs) if r.get("auth") == "fail"))


def exp_50x_by_host(recs, today):
    return ("counts", counted("%s %s" % (r.tok("status"), r.tok("host")) for r in txns(recs)
                              if r["status"] in (502, 504)))


def exp_reasons(recs, today):
    return ("counts", counted(r.tok("reason") for r in recs if r.get("reason")))


def exp_youtube_per_hour(recs, today):
    groups = []
    for r in txns(recs):
        if r["platform"] == "youtube":
            hour = r["ts"][:13]
            if groups and groups[-1][1] == hour:
                groups[-1][0] += 1
            else:
                groups.append([1, hour])
    return ("uniq", [tuple(g) for g in groups])


def exp_slowest(recs, today):
    rows = sorted(((r["ms"], r.tok("host"), r.tok("path")) for r in txns(recs)
                   if r["ev"] == "request"), reverse=True)[:5]
    return ("lines", ["%d %s %s" % row for row in rows])


def exp_config_errors(recs, today):
    return ("lines", [r.line for r in recs if r["ev"] == "config" and r["result"] == "error"])


EXPECT = {
    """grep "^$(tail -n1 access.log | cut -c1-10)T" access.log | grep ' ev=usage ' | grep ' platform=facebook ' | awk '{ print ($3 != "user=-") ? $3 : $11 }' | sort -u""":
        exp_who_used_facebook_today,
    """grep ' ev=usage ' access.log | awk '{ split($5, a, "="); m[($3 != "user=-") ? $3 : $11] += a[2] } END { for (u in m) print m[u], u }' | sort -rn | head""":
        exp_top_users,
    """grep "^$(tail -n1 access.log | cut -c1-10)T" access.log | grep ' ev=usage ' | awk '{ split($5, a, "="); m[$4] += a[2] } END { for (p in m) print m[p], p }' | sort -rn""":
        exp_minutes_per_platform_today,
    """grep ' action=deny ' access.log | awk '{ print $13 }' | sort | uniq -c | sort -rn""":
        exp_denials_by_rule,
    """grep ' user=alice ' access.log | grep ' action=deny ' | awk '{ print $11 }' | sort | uniq -c | sort -rn""":
        exp_alice_denied,
    """grep ' user=alice ' access.log | grep ' platform=linkedin '""":
        exp_alice_linkedin,
    """grep ' ev=quota ' access.log | grep ' pct=100 ' | awk '{ print substr($1, 1, 10), ($3 != "user=-") ? $3 : $9, $5 }'""":
        exp_quotas_used_up,
    """grep ' ev=tunnel ' access.log | grep ' mismatch=sni' | awk '{ print $1, $3, $4, $7, $10, $11, $14 }'""":
        exp_mismatch,
    """grep -E ' ev=(request|tunnel) ' access.log | awk '{ split($16, u, "="); split($17, d, "="); b[$11] += u[2] + d[2] } END { for (p in b) print b[p], p }' | sort -rn""":
        exp_bytes_per_platform,
    """grep ' auth=fail' access.log | awk '{ print $4 }' | sort | uniq -c | sort -rn""":
        exp_failed_logins_per_user,
    """grep -E ' status=50[24] ' access.log | awk '{ print $15, $7 }' | sort | uniq -c | sort -rn""":
        exp_50x_by_host,
    """awk 'match($0, / reason=[^ ]*/) { print substr($0, RSTART + 1, RLENGTH - 1) }' access.log | sort | uniq -c | sort -rn""":
        exp_reasons,
    """grep -E ' ev=(request|tunnel) ' access.log | grep ' platform=youtube ' | awk '{ print substr($1, 1, 13) }' | uniq -c""":
        exp_youtube_per_hour,
    """grep ' ev=request ' access.log | awk '{ split($18, t, "="); print t[2], $7, $9 }' | sort -rn | head -5""":
        exp_slowest,
    """grep ' ev=config result=error ' access.log""":
        exp_config_errors,
}


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------

def test_section_has_oneliners_and_each_has_an_expectation():
    cmds = readme_oneliners()
    assert len(cmds) >= 10, "only %d one-liners in '%s'" % (len(cmds), SECTION)
    unknown = [c for c in cmds if c not in EXPECT]
    assert not unknown, "README one-liners with no expectation in %s (add one):\n%s" % (
        Path(__file__).name, "\n".join(unknown))
    gone = [c for c in EXPECT if c not in cmds]
    assert not gone, "expectations for one-liners no longer in the README:\n%s" % "\n".join(gone)
    for c in cmds:
        lex = shlex.shlex(c, posix=True, punctuation_chars=True)
        toks = list(lex)
        tools = [toks[0]] + [toks[i + 1] for i, t in enumerate(toks[:-1]) if t == "|"]
        assert set(tools) <= {"grep", "awk", "sort", "uniq", "head", "socialgate"}, (c, tools)
        # the date of "today" comes from the log (in [proxy] timezone), not the shell's clock
        assert "date " not in c, c
        assert "|" not in toks[-1:] and not any(t in (";", "&&", "||", ">", ">>", "<") for t in toks), c


def test_generated_log_is_well_formed(logdir):
    """The generated log is one the real parser accepts: `socialgate report` reads it
    without a complaint (guards the generator against drifting from the format)."""
    d, recs, _ = logdir
    if not BIN.exists():
        pytest.skip("no socialgate binary")
    r = subprocess.run([str(BIN), "report", "--format", "csv", str(d / "access.log")],
                       capture_output=True, timeout=60, env=CLEAN_ENV)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert not re.search(r"malformed|skipped|invalid", err, re.I), err
    assert any(r.get("user") and " " in r["user"] for r in recs), "no quoted user with spaces generated"
    assert any('\\"' in r.line for r in recs), "no escaped quote generated"


def _uniq_c(out):
    rows = []
    for ln in out:
        m = re.match(r"^\s*(\d+) (.*)$", ln)
        assert m, "not a uniq -c line: %r" % ln
        rows.append((int(m.group(1)), m.group(2)))
    return rows


def _ranked(out):
    rows = []
    for ln in out:
        n, _, key = ln.partition(" ")
        rows.append((key, int(n)))
    return rows


@pytest.mark.parametrize("cmd", readme_oneliners() if README.exists() else [],
                         ids=lambda c: re.sub(r"\W+", "_", c)[:60])
def test_oneliner(cmd, logdir):
    if cmd not in EXPECT:
        pytest.fail("no expectation for this README one-liner: %s" % cmd)
    for tool in ("grep", "awk", "sort", "uniq", "head", "tail", "cut"):
        if tool in cmd and shutil.which(tool) is None:
            pytest.fail("%s is not installed" % tool)
    d, recs, today = logdir
    # The log is written in UTC ([proxy] timezone); the shell runs in a zone whose date is
    # another one right now, as an administrator's may: "today" must come from the log.
    far = "Etc/GMT-14" if datetime.datetime.now(datetime.timezone.utc).hour >= 12 else "Etc/GMT+12"
    env = dict(CLEAN_ENV, LC_ALL="C", TZ=far, PATH="%s:%s" % (BIN.parent, CLEAN_ENV.get("PATH", "")))
    r = subprocess.run(["/bin/sh", "-c", cmd], cwd=str(d), capture_output=True, timeout=60, env=env)
    assert r.returncode in (0, 1), "exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace"))
    assert not r.stderr, r.stderr.decode(errors="replace")
    out = [ln for ln in r.stdout.decode("latin-1").split("\n") if ln]
    exp = EXPECT[cmd](recs, today)
    what = exp[0]
    assert out, "the one-liner printed nothing (the generated log should give it something)"
    if what == "lines":
        assert out == exp[1]
    elif what == "sorted":
        assert out == exp[1]
    elif what == "counts":
        rows = _uniq_c(out)
        assert collections.Counter({k: n for n, k in rows}) == exp[1]
        assert [n for n, _ in rows] == sorted((n for n, _ in rows), reverse=True), "not sorted by count"
    elif what == "uniq":
        assert [tuple(x) for x in _uniq_c(out)] == exp[1]
    elif what == "ranked":
        rows = _ranked(out)
        want, full = exp[1], exp[2]
        assert [n for _, n in rows] == [n for _, n in want], "the figures, in order"
        if full is None or len(full) == len(want) or full[len(want) - 1][1] != full[len(want)][1]:
            assert sorted(rows) == sorted(want)
        else:  # a tie at the cut: any of the tied keys may be the last shown
            assert set(rows) <= set(full)
    else:
        raise AssertionError(what)
