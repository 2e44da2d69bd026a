"""Checks on the shipped platform catalog, rules/00-platforms.ini, and on its
generator, contrib/catalog/gen-platforms.py.

Run with:  python3 -m pytest -q tests/catalog
The generator test needs the upstream data at
<repo>/../shared/data/domain-list-community/data and is skipped without it.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "rules" / "00-platforms.ini"
GENERATOR = REPO / "contrib" / "catalog" / "gen-platforms.py"
DATA = REPO.parent / "shared" / "data" / "domain-list-community" / "data"

MAX_LINE = 190
CATEGORIES = {"social", "video", "messaging", "dating"}
KEYS = {"category", "domains", "host_regex"}
REQUIRED = {
    "facebook", "instagram", "threads", "messenger", "whatsapp", "x", "linkedin",
    "tiktok", "youtube", "reddit", "pinterest", "snapchat", "telegram", "discord",
    "twitch", "vk", "bluesky", "tumblr", "mastodon", "quora", "tinder",
}
# Never claimed by any platform: each would classify far more than one service.
FORBIDDEN = {
    "google.com", "googleapis.com", "gstatic.com", "akamai.net", "akamaiedge.net",
    "cloudfront.net", "amazonaws.com", "azureedge.net", "fastly.net", "cloudflare.com",
}
# Shared CDN/cloud providers: no host at or below these either (CNAME targets
# and per-customer hostnames are not what a forward proxy should key on).
INFRA_SUFFIXES = (
    "google.com", "akamai.net", "akamaiedge.net", "akamaihd.net", "akamaized.net",
    "edgekey.net", "edgesuite.net", "cloudfront.net", "amazonaws.com",
    "azureedge.net", "fastly.net", "cloudflare.com", "cloudflare.net",
)
NAME_RE = re.compile(r"^[a-z0-9-]+$")
LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
INLINE_COMMENT_RE = re.compile(r"\s;")


def parse_ini(text):
    """A small reader following libinih's rules (as configured for socialgate):
    full-line comments start with ';' or '#', an inline comment starts at a ';'
    preceded by whitespace, an indented line continues the previous key's value
    (joined with a newline), '=' or ':' separates key and value.
    Returns [(section, [(key, value, lineno)], lineno)]."""
    sections, current, prev_key = [], None, None
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        start = line.lstrip()
        if not start or start[0] in ";#":
            continue
        if prev_key is not None and line[0] in " \t":
            value = INLINE_COMMENT_RE.split(start, 1)[0].rstrip()
            key, old, kl = current[1][-1]
            current[1][-1] = (key, old + "\n" + value, kl)
            continue
        if start.startswith("["):
            assert start.endswith("]"), "line %d: bad section header %r" % (lineno, raw)
            current = (start[1:-1].strip(), [], lineno)
            sections.append(current)
            prev_key = None
            continue
        m = re.match(r"^([^=:]+?)\s*[=:]\s*(.*)$", start)
        assert m, "line %d: not a key/value line: %r" % (lineno, raw)
        assert current is not None, "line %d: key outside a section" % lineno
        value = INLINE_COMMENT_RE.split(m.group(2), 1)[0].rstrip()
        current[1].append((m.group(1), value, lineno))
        prev_key = m.group(1)
    return sections


def valid_domain(d):
    return (0 < len(d) <= 253 and "." in d
            and all(LABEL_RE.match(label) and len(label) <= 63 for label in d.split(".")))


def load_platforms(text):
    """Parse and check structure; returns {name: {key: value}}."""
    platforms = {}
    for section, items, lineno in parse_ini(text):
        kind, _, name = section.partition(" ")
        assert kind == "platform" and NAME_RE.match(name), \
            "line %d: bad section [%s]" % (lineno, section)
        assert name not in platforms, "platform %s defined twice" % name
        keys = [k for k, _, _ in items]
        assert len(keys) == len(set(keys)), "platform %s repeats a key" % name
        assert set(keys) <= KEYS, "platform %s: unknown keys %s" % (name, set(keys) - KEYS)
        assert {"category", "domains"} <= set(keys), "platform %s lacks category/domains" % name
        platforms[name] = {k: v for k, v, _ in items}
    return platforms


def split_domains(value):
    items = [d.strip() for d in value.replace("\n", " ").split(",")]
    assert all(items), "empty item in domain list %r" % value[:80]
    return items


def check_catalog(text):
    """All content checks shared by the shipped file and the generated draft."""
    for n, line in enumerate(text.split("\n"), 1):
        assert len(line.encode("utf-8")) <= MAX_LINE, "line %d is longer than %d bytes" % (n, MAX_LINE)
        assert "\r" not in line and "\t" not in line, "line %d has CR or TAB" % n
    platforms = load_platforms(text)
    owner = {}
    for name, keys in platforms.items():
        assert keys["category"] in CATEGORIES, "%s: category %r" % (name, keys["category"])
        domains = split_domains(keys["domains"])
        own = set(domains)
        assert len(own) == len(domains), "%s lists a domain twice" % name
        for d in domains:
            assert valid_domain(d), "%s: invalid domain %r" % (name, d)
            assert d not in FORBIDDEN, "%s: generic domain %s" % (name, d)
            assert not any(d == s or d.endswith("." + s) for s in INFRA_SUFFIXES), \
                "%s: %s is on shared CDN/cloud infrastructure" % (name, d)
            assert d not in owner, "%s claimed by both %s and %s" % (d, owner.get(d), name)
            owner[d] = name
            labels = d.split(".")
            parents = {".".join(labels[i:]) for i in range(1, len(labels))}
            assert not parents & own, "%s: %s is already covered by %s" % (name, d, parents & own)
        if "host_regex" in keys:
            rx = keys["host_regex"]
            assert rx and "\n" not in rx and " ;" not in rx, "%s: bad host_regex" % name
            re.compile(rx)
    return platforms


@pytest.fixture(scope="module")
def catalog_text():
    return CATALOG.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def platforms(catalog_text):
    return check_catalog(catalog_text)


def test_catalog_is_valid(platforms):
    assert len(platforms) >= 30


def test_required_platforms_present(platforms):
    missing = REQUIRED - set(platforms)
    assert not missing, "missing platforms: %s" % sorted(missing)


def test_shared_cdn_placement(platforms):
    def domains(name):
        return set(split_domains(platforms[name]["domains"]))
    assert "fbcdn.net" in domains("facebook")
    assert "twimg.com" in domains("x")
    assert "googlevideo.com" in domains("youtube")
    assert {"mastodon.social", "mastodon.online", "mstdn.social", "mas.to",
            "fosstodon.org", "joinmastodon.org"} <= domains("mastodon")


def test_header_names_source_and_license(catalog_text):
    head = catalog_text.split("\n[", 1)[0]
    for needle in ("v2fly/domain-list-community", "c975ccef", "2026-08-19",
                   "contrib/catalog/gen-platforms.py", "curated by hand",
                   "; MIT License", "; Copyright (c) 2018-2019 V2Ray",
                   "; Permission is hereby granted, free of charge",
                   '; THE SOFTWARE IS PROVIDED "AS IS"'):
        assert needle in head, "header lacks %r" % needle
    license_file = DATA.parent / "LICENSE"
    if license_file.is_file():
        lines = set(head.split("\n"))
        for line in license_file.read_text(encoding="utf-8").rstrip().splitlines():
            assert ("; " + line).rstrip() in lines, "license line missing: %r" % line


def test_parser_follows_libinih_rules():
    text = ("; comment\n# comment\n[platform demo]\ncategory = social ; inline\n"
            "domains = a.example, b.example,\n    c.example ; tail\n"
            "host_regex = ^x;y\\.example$\n")
    (section, items, _), = parse_ini(text)
    assert section == "platform demo"
    assert items[0][:2] == ("category", "social")
    assert split_domains(items[1][1]) == ["a.example", "b.example", "c.example"]
    assert items[2][1] == "^x;y\\.example$"


def test_generator_produces_valid_draft():
    if not DATA.is_dir():
        pytest.skip("upstream data not found at %s" % DATA)
    run = subprocess.run([sys.executable, str(GENERATOR), "--data", str(DATA)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    draft = check_catalog(run.stdout)
    assert len(draft) >= 30
    assert REQUIRED <= set(draft)
