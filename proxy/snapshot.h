/* The loaded configuration as an immutable, reference-counted snapshot.
 * A reload builds a whole new snapshot and swaps it in only when it loaded
 * without errors; each transaction takes the snapshot current when its head is complete
 * (conn_txn_begin), through its worker's reference (worker_snapshot). */
#ifndef SG_SNAPSHOT_H
#define SG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "diag.h"
#include "htpasswd.h"
#include "rules.h"

struct snapshot {
    atomic_int refs;
    uint64_t generation;
    struct config *cfg;   /* owned */
    struct rules *rules;  /* owned */
    struct htpasswd *users;   /* owned, NULL without [auth] htpasswd */
    struct htgroups *groups;  /* owned, NULL without [auth] groups */
    /* This machine's interface addresses (getifaddrs at load), so that a
     * destination that is a listener on every address is seen as a loop
     * (addr_reaches_listener). Empty when they cannot be read. */
    struct cidrset local_addrs;
    /* Signs the Continue links of warn pages (state_dir/continue.key, read
     * at start and reload). Without it, Continue links are refused. */
    uint8_t continue_key[32];
    int has_continue_key;
};

/* Loads proxy.ini and the rules folder it names into a new snapshot with
 * one reference. NULL with every problem in d. */
struct snapshot *snapshot_load(const char *path, struct diag *d);

/* Takes cfg and rules. Returns an owned snapshot with one reference. */
struct snapshot *snapshot_new(struct config *cfg, struct rules *rules);
/* The current snapshot with a new reference; release with snapshot_release. */
struct snapshot *snapshot_acquire(void);
/* The generation of the current snapshot (one atomic load): a holder whose
 * snapshot has another generation is out of date. */
uint64_t snapshot_current_generation(void);
/* One more reference to s (which the caller holds). */
void snapshot_ref(struct snapshot *s);
void snapshot_release(struct snapshot *s);
/* Makes s current (takes its reference) and drops the old one. */
void snapshot_install(struct snapshot *s);
/* Drops the current snapshot (at exit). */
void snapshot_clear(void);

#endif
