/* The loaded configuration as an immutable, reference-counted snapshot.
 * A reload builds a whole new snapshot and swaps it in only when it loaded
 * without errors; each transaction takes the snapshot current when its head is complete
 * (conn_txn_begin), through its worker's reference (worker_snapshot). */
#ifndef SG_SNAPSHOT_H
#define SG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "diag.h"
#include "htpasswd.h"
#include "pages.h"
#include "rules.h"

/* What tells one version of a file on disk from another: a file replaced
 * (new inode), rewritten in place (size, modification time) or removed. */
struct file_sig {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct snapshot {
    atomic_int refs;
    uint64_t generation;
    struct config *cfg;   /* owned */
    struct rules *rules;  /* owned */
    struct htpasswd *users;   /* owned, NULL without [auth] htpasswd */
    struct htgroups *groups;  /* owned, NULL without [auth] groups */
    /* The [auth] files as they were just before they were read: a later
     * difference means they changed on disk (snapshot_reload_auth). */
    struct file_sig htpasswd_sig, groups_sig;
    /* Set when cfg and rules belong to another snapshot (one rebuilt by
     * snapshot_reload_auth): a reference to that one, which owns them. */
    struct snapshot *base;
    /* This machine's interface addresses (getifaddrs at load), so that a
     * destination that is a listener on every address is seen as a loop
     * (addr_reaches_listener). Empty when they cannot be read. */
    struct cidrset local_addrs;
    /* Signs the Continue links of warn pages (state_dir/continue.key, read
     * at start and reload). Without it, Continue links are refused. */
    uint8_t continue_key[32];
    int has_continue_key;
    /* [pages]: contact, show_rule and the templates of its folder, read at
     * start and on reload (a snapshot sharing cfg with a base shares its
     * pages too). NULL: the built-in pages, no contact. */
    struct pages *pages;
};

/* Loads proxy.ini and the rules folder it names into a new snapshot with
 * one reference. NULL with every problem in d. */
struct snapshot *snapshot_load(const char *path, struct diag *d);

/* A new snapshot with the configuration and rules of cur (shared, not
 * read again) and its [auth] htpasswd and groups files read afresh: what a
 * change of those files on disk needs. The Continue key is cur's. Returns
 * an owned snapshot with one reference, or NULL with every problem in d
 * (cur stays as it is). */
struct snapshot *snapshot_reload_auth(struct snapshot *cur, struct diag *d);

/* The signature of the file at path now ({0}, exists 0, when it cannot be
 * read with stat). */
void snapshot_file_sig(const char *path, struct file_sig *out);
/* 1 when a and b are the same version of a file. */
int snapshot_file_sig_equal(const struct file_sig *a, const struct file_sig *b);

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
