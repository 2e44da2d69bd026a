#!/usr/bin/env python3
"""Draft socialgate's platform catalog (rules/00-platforms.ini) from
v2fly/domain-list-community.

Usage:
    contrib/catalog/gen-platforms.py [--data DIR] [--show-dropped] > draft.ini
    diff -u rules/00-platforms.ini draft.ini

--data is the domain-list-community `data/` folder (one file per service).
By default it is <repo>/../shared/data/domain-list-community/data; the MIT
LICENSE is read from the folder above it (override with --license).

The PLATFORMS table below says, for every platform, which upstream files to
read, which entries to pick, keep or drop, and which domains are hand-added
because upstream has no list for them. The script resolves `include:`
recursively (with `@attr` / `@-attr` filters), leaves out `@ads` rules,
`keyword:` and `regexp:` rules, treats `full:` hosts as plain domains,
removes hosts on shared CDN/cloud infrastructure, validates and de-duplicates
the domains (also dropping a domain already covered by a parent domain of the
same platform) and prints the INI, wrapped below libinih's line limit, to
stdout. Warnings (stale curation entries, upstream files that vanished,
domains claimed twice) go to stderr; --strict turns them into a failure.

When refreshing: point --data at a newer checkout, update SOURCE_COMMIT and
SOURCE_DATE (or pass --commit/--date), run with --show-dropped to review what
upstream added, adjust the table, and copy the result over the shipped file,
keeping any later hand edits. Python 3 standard library only.
"""

import argparse
import re
import sys
from pathlib import Path

SOURCE_REPO = "https://github.com/v2fly/domain-list-community"
SOURCE_COMMIT = "c975ccef"
SOURCE_DATE = "2026-08-19"

MAX_LINE = 190          # libinih is built with a 200-byte line buffer
DEFAULT_WIDTH = 120     # wrap domain lists at this many bytes
CATEGORIES = ("social", "video", "messaging", "dating")

# Domains that must never be claimed by a platform: classifying them would
# sweep in far more than one platform (all of Google, any Branch.io link...).
GENERIC_DOMAINS = {
    "google.com", "googleapis.com", "gstatic.com", "googleusercontent.com",
    "ggpht.com", "app.link", "akamai.net", "akamaiedge.net", "cloudfront.net",
    "amazonaws.com", "azureedge.net", "fastly.net", "cloudflare.com",
}

# Shared CDN / cloud / SaaS infrastructure: nothing at or below these is
# claimed. Upstream lists some hosts here (CNAME targets such as
# twitter.map.fastly.net, or per-customer CloudFront/S3/Akamai hostnames);
# a forward proxy either never sees them or they rotate without notice.
INFRA_SUFFIXES = (
    "akamai.net", "akamaiedge.net", "akamaihd.net", "akamaized.net",
    "edgekey.net", "edgesuite.net", "cloudfront.net", "amazonaws.com",
    "azureedge.net", "fastly.net", "cloudflare.com", "cloudflare.net",
    "msedge.net", "dc-msedge.net", "l-msedge.net", "l.google.com", "storage.googleapis.com",
    "appsflyersdk.com", "omtrdc.net", "zendesk.com", "cdn20.com",
)

# name -> settings. Keys:
#   category       one of CATEGORIES
#   files          upstream files read whole (includes resolved)
#   skip_includes  included upstream files not to pull in
#   pick           {file: [domains]} take only these entries of a file
#   keep           if set, only these upstream domains are kept
#   drop           upstream domains left out
#   extra          hand-added domains (not in upstream)
#   note           comment printed in the section
PLATFORMS = {
    # ---------------------------------------------------------------- social
    "facebook": dict(
        category="social",
        files=["facebook"],
        keep=["facebook.com", "facebook.net", "fb.com", "fb.me", "fb.watch",
              "fb.gg", "fbwat.ch", "fbcdn.net", "fbcdn.com", "fbsbx.com",
              "fbsbx.net", "facebookmail.com", "thefacebook.com"],
        note="Upstream also lists hundreds of typo-squat/defensive registrations, "
             "Workplace, Free Basics and defunct services: only Facebook's own "
             "working domains are kept. fbcdn.net/fbcdn.com are Meta's shared CDN: "
             "they also carry Instagram, Threads and Messenger media, and are "
             "listed here only. facebook.net also serves the Facebook SDK and "
             "Like buttons embedded in third-party sites.",
    ),
    "instagram": dict(
        category="social",
        files=["instagram"],
        keep=["instagram.com", "cdninstagram.com", "ig.me", "igcdn.com",
              "igsonar.com", "igtv.com"],
        note="Upstream's typo-squats and follower-selling sites are dropped. "
             "Some Instagram media comes from fbcdn.net (see facebook).",
    ),
    "threads": dict(
        category="social",
        files=["threads"],
        note="Threads media is served from cdninstagram.com (instagram) and "
             "fbcdn.net (facebook).",
    ),
    "x": dict(
        category="social",
        files=["twitter"],
        drop=["tellapart.com"],
        note="X / Twitter. Built from upstream 'twitter', not 'x', which also "
             "pulls in xAI (grok.com, x.ai). twimg.com is X's own CDN; pscp.tv "
             "and periscope.tv carry X live video.",
    ),
    "linkedin": dict(
        category="social",
        files=["linkedin"],
        drop=["bizographics.com"],
        note="LinkedIn Learning also lives under linkedin.com. Upstream's Microsoft "
             "and Akamai edge hostnames and the LinkedIn ad-targeting domain "
             "bizographics.com are left out.",
    ),
    "tiktok": dict(
        category="social",
        files=["tiktok"],
        drop=["bytedapm.com"],
        note="bytedapm.com (ByteDance app monitoring, shared with CapCut and "
             "other ByteDance apps) and upstream's Akamai CNAME targets and "
             "AppsFlyer hosts are left out. Douyin is a separate platform.",
    ),
    "douyin": dict(
        category="social",
        files=["douyin"],
        drop=["hypercachenode.com", "supercachenet.com", "supercachenode.com",
              "ultracachenode.com", "qishui.cn", "qishui.com", "qishui.com.cn",
              "qishuimusic.cn", "qishuimusic.com.cn", "ulpay.com", "lifexue.com"],
        note="Chinese counterpart of TikTok. ByteDance-wide cache domains "
             "(*cachenode.com, supercachenet.com), the Qishui music app and "
             "payment/local-services brands are left out.",
    ),
    "reddit": dict(
        category="social",
        files=["reddit"],
        note="redd.it carries images and video (i.redd.it, v.redd.it); "
             "redditmedia.com and redditstatic.com are Reddit's own CDNs. "
             "reddit.app.link is Reddit's own Branch.io link host.",
    ),
    "pinterest": dict(
        category="social",
        files=["pinterest"],
        note="pinimg.com is Pinterest's own image CDN.",
    ),
    "snapchat": dict(
        category="social",
        files=["snap"],
        note="From upstream 'snap'. sc-cdn.net and sc-static.net are Snap's own "
             "CDNs; an S3 bucket host is left out.",
    ),
    "vk": dict(
        category="social",
        files=["vk"],
        drop=["vkpay.app", "vkpay.com", "vkpay.io", "vkpay.ru",
              "vkcloud-static.ru", "vktech-static.ru"],
        note="VKontakte, with VK Messenger (vk.me). userapi.com and the vkuser* "
             "domains are VK's own content CDNs. VK Pay and VK Cloud are left "
             "out; Odnoklassniki is a separate platform.",
    ),
    "odnoklassniki": dict(
        category="social",
        files=["ok"],
        note="From upstream 'ok'. st-ok*.cdn-vk.ru sit under vk's cdn-vk.ru; "
             "the longer match classifies them as odnoklassniki.",
    ),
    "bluesky": dict(
        category="social",
        files=["bluesky"],
        note="Only Bluesky's own hosts; self-hosted PDSes and third-party "
             "AppViews are not covered.",
    ),
    "tumblr": dict(
        category="social",
        files=["tumblr"],
        note="Blogs on custom domains are not covered.",
    ),
    "mastodon": dict(
        category="social",
        pick={"category-social-media-!cn": ["joinmastodon.org", "mastodon.social",
                                            "mastodon.online", "pawoo.net"]},
        extra=["mstdn.social", "mas.to", "fosstodon.org", "mastodon.world",
               "mastodon.cloud", "infosec.exchange", "hachyderm.io", "mstdn.jp",
               "mastodon.art", "techhub.social", "universeodon.com",
               "mastodonapp.uk", "mstdn.party", "masto.ai"],
        note="Mastodon is federated across thousands of independently run "
             "instances: only joinmastodon.org and the largest general-purpose "
             "instances are listed. Add others in a local rules file.",
    ),
    "quora": dict(
        category="social",
        files=["quora"],
        skip_includes=["poe"],
        note="Upstream includes Poe (Quora's AI chat product); it is left out so "
             "that blocking Quora does not block Poe.",
    ),
    "weibo": dict(
        category="social",
        pick={"sina": ["weibo.com", "weibo.cn", "weibo.com.cn", "weibocdn.com",
                       "wbimg.cn", "wbimg.com", "t.cn"]},
        note="Picked from upstream 'sina'. Sina's shared hosts (sinaimg.cn "
             "serves Weibo pictures and Sina News alike; sina.com.cn) are not "
             "listed. t.cn is Weibo's link shortener.",
    ),
    "xiaohongshu": dict(
        category="social",
        files=["xiaohongshu"],
        skip_includes=["askdiandian"],
        note="Xiaohongshu / RedNote. The included Diandian AI app is left out.",
    ),
    "flickr": dict(
        category="social",
        files=["flickr"],
        note="staticflickr.com is Flickr's own image CDN.",
    ),
    "xing": dict(
        category="social",
        extra=["xing.com", "xingassets.com"],
        note="xingassets.com is XING's static and image host.",
    ),
    "nextdoor": dict(
        category="social",
        extra=["nextdoor.com", "nextdoor.co.uk"],
    ),
    "truthsocial": dict(
        category="social",
        pick={"category-social-media-!cn": ["truthsocial.com"]},
    ),
    "gab": dict(
        category="social",
        pick={"category-forums": ["gab.com"]},
    ),
    # ----------------------------------------------------------------- video
    "youtube": dict(
        category="video",
        files=["youtube"],
        drop=["ggpht.cn"],
        extra=["blog.youtube", "yt3.ggpht.com"],
        note="googlevideo.com carries YouTube's video streams but also video "
             "playback in Google Drive/Photos and Google video ads: it is listed "
             "here because YouTube does not play without it, so blocking youtube "
             "can break those videos. ggpht.com (Google-wide user content) is not "
             "listed; only the YouTube avatar host yt3.ggpht.com is. The "
             "*.googleapis.com and yt3.googleusercontent.com hosts are "
             "YouTube-only. The .youtube TLD cannot be listed (no dot): only "
             "blog.youtube is.",
    ),
    "twitch": dict(
        category="video",
        files=["twitch"],
        drop=["live-video.net"],
        note="live-video.net is Amazon IVS playback, shared by Twitch and other "
             "IVS customers (Kick among them), so it is left out; Twitch's video "
             "edges are under ttvnw.net. Upstream's CloudFront hosts are dropped.",
    ),
    "kick": dict(
        category="video",
        files=["kick"],
        note="Streams play from Amazon IVS (live-video.net, shared, not listed); "
             "blocking kick.com blocks the site and its player.",
    ),
    "rumble": dict(
        category="video",
        files=["rumble"],
    ),
    "vimeo": dict(
        category="video",
        files=["vimeo"],
        drop=["vhxqa1.com", "vhxqa2.com", "vhxqa3.com", "vhxqa4.com",
              "vhxqa6.com", "vimeo-staging.com", "vimeo-staging2.com"],
        note="Many companies host training and marketing videos on Vimeo "
             "(player.vimeo.com embeds): blocking vimeo breaks them. "
             "vimeocdn.com is Vimeo's own CDN; test/staging domains are dropped.",
    ),
    "dailymotion": dict(
        category="video",
        files=["dailymotion"],
        extra=["dai.ly"],
        note="dai.ly (Dailymotion's link shortener) is hand-added.",
    ),
    "bilibili": dict(
        category="video",
        files=["bilibili"],
        skip_includes=["bilibili-game"],
        drop=["maoer.com", "missevan.com", "maoercdn.com", "bilicomic.com",
              "bilicomics.com"],
        note="Includes upstream 'bilibili-cdn' (hdslb.com, bilivideo.*). "
             "Bilibili's game, comics and Maoer FM audio brands are left out.",
    ),
    # ------------------------------------------------------------- messaging
    "messenger": dict(
        category="messaging",
        files=["messenger"],
        drop=["nbabot.net"],
        note="Chat inside facebook.com (and its edge-chat hosts) is classified as "
             "facebook; only messenger.com and Messenger's own domains are here. "
             "Media comes from fbcdn.net (facebook).",
    ),
    "whatsapp": dict(
        category="messaging",
        files=["whatsapp"],
        drop=["whatsapp-plus.info", "whatsapp-plus.me", "whatsapp-plus.net"],
        note="whatsapp-plus.* are third-party 'WhatsApp Plus' mod sites, not "
             "WhatsApp, and are dropped. whatsapp.net carries chat and media.",
    ),
    "telegram": dict(
        category="messaging",
        files=["telegram"],
        drop=["ton.org", "toncenter.com", "fragment.com", "telega.one"],
        note="The TON blockchain sites, the Fragment marketplace and a "
             "third-party client are left out. Telegram apps mostly talk to "
             "Telegram's IP addresses directly; the web client and t.me links "
             "are what a proxy sees.",
    ),
    "discord": dict(
        category="messaging",
        files=["discord"],
        drop=["airhorn.solutions", "airhornbot.com", "bigbeans.solutions",
              "watchanimeattheoffice.com"],
        note="discordapp.com/discordapp.net carry the CDN and media proxy. "
             "Upstream's bot showcase sites, a Google Cloud Storage bucket and a "
             "Zendesk host are left out.",
    ),
    "signal": dict(
        category="messaging",
        files=["signal"],
    ),
    "viber": dict(
        category="messaging",
        files=["viber"],
        drop=["s-bid.rmp.rakuten.com"],
        note="vbcdn.com/vbcdn.net are Viber's own CDNs; a Rakuten ad-bidding "
             "host is dropped.",
    ),
    "wechat": dict(
        category="messaging",
        pick={"tencent": ["wechat.com", "weixin.com", "servicewechat.com"]},
        extra=["weixin.qq.com", "wx.qq.com", "wx2.qq.com", "mmbiz.qpic.cn",
               "wx.qlogo.cn"],
        note="Picked from upstream 'tencent'. qq.com, gtimg.com, qpic.cn and "
             "qlogo.cn serve all of Tencent (QQ, news, video) and are not "
             "listed; the WeChat-only hosts under them are hand-added.",
    ),
    "line": dict(
        category="messaging",
        files=["line"],
        drop=["linefriends.com", "linefriends.com.tw", "linegame.jp",
              "linemobile.com", "linemyshop.com", "lineshoppingseller.com",
              "linetv.tw", "nhncorp.jp"],
        note="LINE's merchandise, games, MVNO, shopping and TV brands are left "
             "out.",
    ),
    "kakaotalk": dict(
        category="messaging",
        pick={"kakao": ["kakao.com", "kakao.co.kr", "kakaocdn.net", "kakaotalk.jp"]},
        note="Picked from upstream 'kakao'. kakao.com also hosts Kakao accounts "
             "and other Kakao services; the Daum portal, KakaoBank, Melon and "
             "Kakao's other businesses are not listed.",
    ),
    # ---------------------------------------------------------------- dating
    "tinder": dict(
        category="dating",
        extra=["tinder.com", "gotinder.com"],
        note="gotinder.com is the app API and image host.",
    ),
    "bumble": dict(
        category="dating",
        extra=["bumble.com", "bumbcdn.com"],
        note="bumbcdn.com is Bumble Inc.'s CDN and also "
             "serves Badoo images; it is listed here only.",
    ),
    "badoo": dict(
        category="dating",
        extra=["badoo.com", "badoocdn.com"],
        note="Some Badoo images come from bumbcdn.com (bumble).",
    ),
    "hinge": dict(
        category="dating",
        extra=["hinge.co", "hingeaws.net"],
        note="hingeaws.net is the app API.",
    ),
    "okcupid": dict(
        category="dating",
        extra=["okcupid.com", "okccdn.com"],
        note="okccdn.com is OkCupid's image and static CDN.",
    ),
    "match": dict(
        category="dating",
        extra=["match.com"],
        note="Match.com only, not the whole Match Group.",
    ),
    "grindr": dict(
        category="dating",
        extra=["grindr.com", "grindr.mobi"],
        note="grindr.mobi is the app API.",
    ),
}

LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KNOWN_KEYS = {"category", "files", "skip_includes", "pick", "keep", "drop",
              "extra", "note"}

warnings = []


def warn(msg):
    warnings.append(msg)
    print("gen-platforms: warning: " + msg, file=sys.stderr)


class Rule:
    __slots__ = ("kind", "value", "attrs", "origin")

    def __init__(self, kind, value, attrs, origin):
        self.kind, self.value, self.attrs, self.origin = kind, value, attrs, origin


class Source:
    """Reads upstream files and resolves include: lines."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        self.cache = {}

    def read(self, name, skip=(), stack=()):
        if name in stack:
            raise SystemExit("gen-platforms: include loop: " + " -> ".join(stack + (name,)))
        path = self.data_dir / name
        if not path.is_file():
            raise SystemExit("gen-platforms: upstream file not found: %s" % path)
        rules = []
        for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            rule, extra = tokens[0], tokens[1:]
            if ":" in rule:
                kind, value = rule.split(":", 1)
            else:
                kind, value = "domain", rule
            kind = kind.lower()
            attrs = [t[1:].lower() for t in extra if t.startswith("@")]
            origin = "%s:%d" % (name, lineno)
            if kind == "include":
                if value in skip:
                    continue
                must = [a for a in attrs if not a.startswith("-")]
                must_not = [a[1:] for a in attrs if a.startswith("-")]
                for sub in self.read(value, skip, stack + (name,)):
                    if all(a in sub.attrs for a in must) and \
                            not any(a in sub.attrs for a in must_not):
                        rules.append(sub)
            elif kind in ("domain", "full", "keyword", "regexp"):
                rules.append(Rule(kind, value, attrs, origin))
            else:
                warn("%s: unknown rule type %r, ignored" % (origin, kind))
        return rules


def normalize(value):
    d = value.strip().lower().rstrip(".")
    if not d.isascii():
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return d


def valid_domain(d):
    if not d or len(d) > 253 or "." not in d:
        return False
    return all(LABEL_RE.match(label) for label in d.split("."))


def is_infra(d):
    if d in GENERIC_DOMAINS:
        return True
    return any(d == s or d.endswith("." + s) for s in INFRA_SUFFIXES)


def covered_by(d, domains):
    """True if a proper parent domain of d is in domains."""
    labels = d.split(".")
    return any(".".join(labels[i:]) in domains for i in range(1, len(labels) - 1))


def build(name, spec, src):
    """Returns (domains, dropped[(domain, reason)], hand_added, sources)."""
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise SystemExit("gen-platforms: %s: unknown keys %s" % (name, sorted(unknown)))
    if not NAME_RE.match(name):
        raise SystemExit("gen-platforms: bad platform name %r" % name)
    if spec.get("category") not in CATEGORIES:
        raise SystemExit("gen-platforms: %s: bad category %r" % (name, spec.get("category")))

    skip = tuple(spec.get("skip_includes", ()))
    rules, sources = [], []
    for f in spec.get("files", ()):
        rules += src.read(f, skip)
        sources.append(f + (" (without %s)" % ", ".join(skip) if skip else ""))
    for f, wanted in spec.get("pick", {}).items():
        wanted = set(wanted)
        got = [r for r in src.read(f, skip) if r.kind in ("domain", "full")
               and normalize(r.value) in wanted]
        missing = wanted - {normalize(r.value) for r in got}
        if missing:
            warn("%s: picked entries no longer in upstream %s: %s"
                 % (name, f, ", ".join(sorted(missing))))
        rules += got
        sources.append(f + " (picked)")

    keep = set(spec["keep"]) if "keep" in spec else None
    drop = set(spec.get("drop", ()))
    seen, dropped, candidates = set(), [], []
    for r in rules:
        d = normalize(r.value) if r.kind in ("domain", "full") else None
        shown = d or "%s:%s" % (r.kind, r.value)
        if d:
            seen.add(d)
        if "ads" in r.attrs:
            dropped.append((shown, "ads"))
        elif r.kind in ("keyword", "regexp"):
            dropped.append((shown, r.kind))
        elif not valid_domain(d):
            dropped.append((shown, "invalid"))
        elif is_infra(d):
            dropped.append((d, "shared infrastructure"))
        elif d in drop or (keep is not None and d not in keep):
            dropped.append((d, "curation"))
        else:
            candidates.append(d)
    for d in sorted((keep or set()) | drop):
        if d not in seen:
            warn("%s: keep/drop entry %s is not in upstream any more" % (name, d))

    hand_added = []
    for value in spec.get("extra", ()):
        d = normalize(value)
        if not valid_domain(d) or is_infra(d):
            raise SystemExit("gen-platforms: %s: bad hand-added domain %r" % (name, value))
        if d in seen:
            warn("%s: hand-added %s is now in upstream" % (name, d))
        candidates.append(d)
        hand_added.append(d)

    unique = set(candidates)
    domains = sorted(d for d in unique if not covered_by(d, unique))
    for d in sorted(unique - set(domains)):
        dropped.append((d, "covered by a parent domain"))
    return domains, dropped, hand_added, sources


def wrap_list(key, items, width):
    """key = a, b, c,\\n    d, e  -- every line within width (and MAX_LINE)."""
    lines, cur = [], key + " = "
    indent = "    "
    for i, item in enumerate(items):
        tok = item + ("," if i < len(items) - 1 else "")
        fresh = cur in (key + " = ", indent)
        cand = cur + ("" if fresh else " ") + tok
        if fresh or len(cand.encode()) <= width:
            cur = cand
        else:
            lines.append(cur)
            cur = indent + tok
    lines.append(cur)
    for line in lines:
        if len(line.encode()) > MAX_LINE:
            raise SystemExit("gen-platforms: line too long for libinih: " + line)
    return lines


def comment_block(text, width, prefix="; "):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len((prefix + cur + " " + w).encode()) > width:
            lines.append(prefix + cur)
            cur = w
        else:
            cur = (cur + " " + w).strip()
    if cur:
        lines.append(prefix + cur)
    return lines


def header(license_text, commit, date, width):
    out = [
        "; socialgate platform catalog",
        ";",
    ]
    out += comment_block(
        "Each [platform NAME] section classifies a platform: `category` is one of "
        + ", ".join(CATEGORIES) + "; `domains` lists domains that match themselves "
        "and all their subdomains (the longest matching domain wins); an optional "
        "`host_regex` (PCRE2) matches further host names.", width)
    out.append(";")
    out += comment_block(
        "Derived from v2fly/domain-list-community (%s), data/ folder at commit %s "
        "(%s). Regenerated by contrib/catalog/gen-platforms.py, then curated by hand."
        % (SOURCE_REPO, commit, date), width)
    out.append(";")
    out += comment_block(
        "Curation: ads/tracking rules (@ads), keyword: and regexp: rules, "
        "typo-squats, unrelated brands of the same company, and hosts on shared "
        "CDN/cloud infrastructure (Akamai, CloudFront, Fastly, Cloudflare, S3, "
        "Azure, generic Google domains) are left out. Domains marked as "
        "hand-added are not from upstream. A domain shared by several platforms "
        "is listed once, under one of them, with a note.", width)
    out.append(";")
    out.append("; The upstream data is distributed under this license:")
    out.append(";")
    for line in license_text.rstrip().splitlines():
        out.append(("; " + line).rstrip())
    return out


def render(results, license_text, commit, date, width, show_dropped):
    out = header(license_text, commit, date, width)
    last_cat = None
    for name, spec, domains, dropped, hand_added, sources in results:
        if spec["category"] != last_cat:
            last_cat = spec["category"]
            out += ["", ";; ---------------- %s ----------------" % last_cat]
        out += ["", "[platform %s]" % name]
        if spec.get("note"):
            out += comment_block(spec["note"], width)
        if sources:
            out += comment_block("upstream: " + "; ".join(sources), width)
        if hand_added:
            out += comment_block("hand-added: " + ", ".join(hand_added), width)
        if show_dropped and dropped:
            for reason in sorted({r for _, r in dropped}):
                items = [d for d, r in dropped if r == reason]
                out += comment_block("dropped (%s): %s" % (reason, ", ".join(items)), width)
        out.append("category = " + spec["category"])
        out += wrap_list("domains", domains, width)
    return "\n".join(out) + "\n"


def main(argv=None):
    repo = Path(__file__).resolve().parents[2]
    default_data = repo.parent / "shared" / "data" / "domain-list-community" / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data),
                    help="domain-list-community data/ folder (default: %(default)s)")
    ap.add_argument("--license", help="upstream LICENSE file (default: DATA/../LICENSE)")
    ap.add_argument("--commit", default=SOURCE_COMMIT, help="upstream commit (for the header)")
    ap.add_argument("--date", default=SOURCE_DATE, help="upstream commit date (for the header)")
    ap.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                    help="wrap lines at this many bytes (max %d)" % MAX_LINE)
    ap.add_argument("--show-dropped", action="store_true",
                    help="list every upstream entry left out, as comments")
    ap.add_argument("--strict", action="store_true", help="fail on warnings")
    args = ap.parse_args(argv)

    if not 40 <= args.width <= MAX_LINE:
        ap.error("--width must be between 40 and %d" % MAX_LINE)
    data = Path(args.data)
    if not data.is_dir():
        ap.error("data folder not found: %s" % data)
    lic = Path(args.license) if args.license else data.parent / "LICENSE"
    if not lic.is_file():
        ap.error("upstream LICENSE not found: %s (the MIT notice must be shipped)" % lic)

    src = Source(data)
    results, owner = [], {}
    order = {c: i for i, c in enumerate(CATEGORIES)}
    for name in sorted(PLATFORMS, key=lambda n: order.get(PLATFORMS[n].get("category"), 99)):
        spec = PLATFORMS[name]
        domains, dropped, hand_added, sources = build(name, spec, src)
        kept = []
        for d in domains:
            if d in owner:
                warn("%s is claimed by %s and %s; kept under %s" % (d, owner[d], name, owner[d]))
                dropped.append((d, "claimed by " + owner[d]))
            else:
                owner[d] = name
                kept.append(d)
        if not kept:
            raise SystemExit("gen-platforms: %s ends up with no domains" % name)
        results.append((name, spec, kept, dropped, hand_added, sources))

    sys.stdout.write(render(results, lic.read_text(encoding="utf-8"),
                            args.commit, args.date, args.width, args.show_dropped))
    if args.strict and warnings:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
