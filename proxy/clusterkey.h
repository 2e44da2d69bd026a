/* Names in the shared store of a pool of gateways ([cluster]), and the
 * messages the gateways publish to each other (pure: no libevent, no
 * clock). Every key starts with CLUSTERKEY_PREFIX and carries the identity
 * as a hash tag ({identity}), so that all of one identity's keys would sit
 * in one slot of a Redis Cluster and one script may touch them together:
 *   sg:{ID}:m:PLATFORM:DAY   bitmap, a bit per active minute of a UTC day
 *   sg:{ID}:r:RULE:DAY       bitmap, a bit per minute counted for a quota rule
 *   sg:{ID}:q:RULE:PERIOD    minutes used in a quota period (day or week number)
 *   sg:{ID}:w:PLATFORM       a warn Continue: its expiry, Unix seconds
 * Bitmaps live two days, counters two days (daily) or eight (weekly),
 * Continues until they expire: nothing needs cleaning up. */
#ifndef SG_CLUSTERKEY_H
#define SG_CLUSTERKEY_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTERKEY_PREFIX "sg:"
#define CLUSTERKEY_CHANNEL "sg:ev"
#define CLUSTERKEY_MAX 640
#define CLUSTERKEY_BITMAP_TTL (2 * 86400)

enum clusterkey_kind {
    CLUSTERKEY_MINUTES,
    CLUSTERKEY_RULE_MINUTES,
    CLUSTERKEY_QUOTA,
    CLUSTERKEY_CONTINUE
};

/* Writes the key of `kind` into buf: `name` is a platform (MINUTES,
 * CONTINUE) or a rule (RULE_MINUTES, QUOTA); `n` is the Unix minute
 * (MINUTES, RULE_MINUTES: its UTC day is in the key) or the quota period
 * (QUOTA); unused for CONTINUE. Returns the length, or -1 when it does not
 * fit or identity or name hold a byte the keys and messages cannot carry
 * (a control character, '{' or '}'). */
int clusterkey_make(char *buf, size_t size, enum clusterkey_kind kind, const char *identity,
                    const char *name, int64_t n);
/* The bit of `minute` in its day's bitmap. */
unsigned clusterkey_bit(int64_t minute);
/* Seconds a quota counter lives: its period and a day more. */
unsigned clusterkey_quota_ttl(int weekly);

/* A message on CLUSTERKEY_CHANNEL, fields separated by 0x1f:
 *   q ID RULE PERIOD MINUTES    a quota count went up
 *   w ID PLATFORM UNTIL         a Continue */
struct clusterkey_msg {
    char kind; /* 'q' or 'w' */
    char identity[256], name[256];
    int64_t period;   /* q */
    uint64_t minutes; /* q */
    int64_t until;    /* w */
};
/* The fixed start of a 'q' message ("q" ID RULE PERIOD, no count): the
 * script appends the count. -1 when it does not fit. */
int clusterkey_msg_quota_prefix(char *buf, size_t size, const char *identity, const char *rule,
                                int32_t period);
int clusterkey_msg_continue(char *buf, size_t size, const char *identity, const char *platform,
                            int64_t until);
/* 0, or -1 when p is no such message (ignored by the caller). */
int clusterkey_msg_parse(const char *p, size_t len, struct clusterkey_msg *out);

#endif
