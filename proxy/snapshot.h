/* The loaded configuration as an immutable, reference-counted snapshot.
 * A reload builds a whole new snapshot and swaps it in only when it loaded
 * without errors; connections keep the snapshot they started with. */
#ifndef SG_SNAPSHOT_H
#define SG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

struct snapshot {
    atomic_int refs;
    uint64_t generation;
    struct config *cfg; /* owned */
};

/* Takes cfg. Returns an owned snapshot with one reference. */
struct snapshot *snapshot_new(struct config *cfg);
/* The current snapshot with a new reference; release with snapshot_release. */
struct snapshot *snapshot_acquire(void);
void snapshot_release(struct snapshot *s);
/* Makes s current (takes its reference) and drops the old one. */
void snapshot_install(struct snapshot *s);

#endif
