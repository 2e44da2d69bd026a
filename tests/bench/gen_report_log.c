/* Writes a realistic usage log of about N MiB to stdout for `make
 * bench-report`: request and tunnel lines of thousands of users and clients
 * over the shipped platforms, ev=usage summaries, a few config and quota
 * lines, some quoted values, one malformed line in a hundred thousand.
 * Deterministic (fixed seed), so runs compare.
 *
 * usage: gen_report_log [MiB]   (default 1024) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* xorshift64*: fast and good enough to vary the lines. */
static uint32_t
rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

static const struct {
    const char *name, *category, *host;
} platforms[] = {
    {"facebook", "social", "www.facebook.com"},
    {"instagram", "social", "www.instagram.com"},
    {"linkedin", "social", "www.linkedin.com"},
    {"x", "social", "x.com"},
    {"reddit", "social", "www.reddit.com"},
    {"tiktok", "video", "www.tiktok.com"},
    {"youtube", "video", "www.youtube.com"},
    {"twitch", "video", "www.twitch.tv"},
    {"whatsapp", "messaging", "web.whatsapp.com"},
    {"telegram", "messaging", "web.telegram.org"},
    {"pinterest", "social", "www.pinterest.com"},
    {"snapchat", "social", "web.snapchat.com"},
    {"-", "-", "intranet.example.com"},
    {"-", "-", "docs.example.org"},
    {"-", "-", "cdn.example.net"},
};
#define NPLAT (sizeof(platforms) / sizeof(platforms[0]))

static const char *const role_sets[] = {"staff",   "marketing,hq", "staff,night", "-",
                                        "support", "hr,staff",     "engineering", "marketing"};
static const char *const rules[] = {"marketing-all-day", "everyone-at-lunch", "social-otherwise",
                                    "-", "video-warn"};
static const char *const paths[] = {"/",
                                    "/watch",
                                    "/feed/",
                                    "/r/all",
                                    "/api/v2/items",
                                    "\"/search term\"",
                                    "/static/app.js",
                                    "\"/caf\\xc3\\xa9\""};
static const char *const reasons[] = {"client-closed", "dns-failed", "connect-timeout",
                                      "idle-timeout"};

int
main(int argc, char **argv)
{
    uint64_t target = (argc > 1 ? strtoull(argv[1], NULL, 10) : 1024) << 20;
    uint64_t written = 0, n = 0;
    time_t t = 1793491200; /* 2026-11-01T00:00:00Z */
    time_t shown = 0;
    char ts[32], line[1024];
    static char obuf[1 << 20];

    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    while (written < target) {
        int ms = (int)rnd(1000);
        t += rnd(3) == 0; /* about 3 lines a second: a month is a few GiB */
        if (t != shown) {
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
            shown = t;
        }
        uint32_t u = rnd(5000), pl = rnd(NPLAT), kind = rnd(100);
        char user[32];
        if (u < 600) /* unauthenticated: the address stands for the user */
            strcpy(user, "-");
        else if (u < 620)
            snprintf(user, sizeof(user), "\"user %u\"", u); /* quoted */
        else
            snprintf(user, sizeof(user), "user%04u", u);
        const char *roles = role_sets[u % (sizeof(role_sets) / sizeof(role_sets[0]))];
        unsigned a = 10 + u % 200, b = u % 250 + 1;
        int len;
        if (kind < 70) {
            int tunnel = rnd(10) < 7;
            uint32_t act = rnd(100);
            const char *action = act < 80 ? "allow" : act < 90 ? "deny" : act < 95 ? "warn" : "-";
            int reason = rnd(20) == 0;
            len = snprintf(
                line, sizeof(line),
                "%s.%03d+00:00 ev=%s client=10.%u.%u.%u:%u user=%s roles=%s method=%s host=%s "
                "port=%s path=%s sni=%s platform=%s category=%s rule=%s action=%s status=%s "
                "up=%u down=%u ms=%u%s%s\n",
                ts, ms, tunnel ? "tunnel" : "request", a, b, u % 7, 1024 + rnd(60000), user, roles,
                tunnel ? "CONNECT" : "GET", platforms[pl].host, tunnel ? "443" : "80",
                tunnel ? "-" : paths[rnd(sizeof(paths) / sizeof(paths[0]))],
                tunnel ? platforms[pl].host : "-", platforms[pl].name, platforms[pl].category,
                rules[rnd(sizeof(rules) / sizeof(rules[0]))], action,
                act < 80   ? "200"
                : act < 95 ? "403"
                           : "-",
                rnd(20000), rnd(2000000), rnd(120000), reason ? " reason=" : "",
                reason ? reasons[rnd(sizeof(reasons) / sizeof(reasons[0]))] : "");
        } else if (kind < 97) {
            if (pl >= NPLAT - 3)
                pl = rnd(NPLAT - 3);
            len = snprintf(line, sizeof(line),
                           "%s.000+00:00 ev=usage user=%s platform=%s active_min=%u today_min=%u "
                           "quota_min=%s requests=%u up=%u down=%u client=10.%u.%u.%u roles=%s "
                           "category=%s\n",
                           ts, user, platforms[pl].name, rnd(6), rnd(300), rnd(3) ? "-" : "30",
                           rnd(400), rnd(200000), rnd(50000000), a, b, u % 7, roles,
                           platforms[pl].category);
        } else if (kind < 99) {
            len = snprintf(line, sizeof(line),
                           "%s.%03d+00:00 ev=quota user=%s platform=facebook "
                           "rule=everyone-at-lunch used_min=%u quota_min=30 pct=%u "
                           "client=10.%u.%u.%u\n",
                           ts, ms, user, rnd(31), rnd(101), a, b, u % 7);
        } else {
            len = snprintf(line, sizeof(line),
                           "%s.%03d+00:00 ev=config result=ok files=4 rules=12 platforms=46\n", ts,
                           ms);
        }
        if (rnd(100000) == 0)
            len = snprintf(line, sizeof(line), "%s.%03d+00:00 ev=usage user=\"cut\n", ts, ms);
        fwrite(line, 1, (size_t)len, stdout);
        written += (uint64_t)len;
        n++;
    }
    if (fflush(stdout) != 0) {
        perror("gen_report_log");
        return 1;
    }
    fprintf(stderr, "gen_report_log: %llu lines, %llu bytes\n", (unsigned long long)n,
            (unsigned long long)written);
    return 0;
}
