#include "helper.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
helpers_start(void)
{
    return 0;
}

int
helpers_configure(const struct helper_spec specs[HELPER_KINDS], char *err, size_t errsize)
{
    (void)specs;
    (void)err;
    (void)errsize;
    return 0;
}

void
helpers_stop(void)
{
}

int
helper_configured(enum helper_kind kind)
{
    (void)kind;
    return 0;
}

int
helper_verdict(const struct helper_answer *a)
{
    if (a->result != HELPER_ANSWER)
        return -1;
    return a->reply.code == HELPER_CODE_OK ? 1 : a->reply.code == HELPER_CODE_ERR ? 0 : -1;
}

int
helper_cached(enum helper_kind kind, const char *line, struct helper_answer *out)
{
    (void)kind;
    (void)line;
    (void)out;
    return 0;
}

void
helper_answer_free(struct helper_answer *a)
{
    helperproto_reply_free(&a->reply);
}

struct helper_req *
helper_submit(struct event_base *base, enum helper_kind kind, const char *line, unsigned flags,
              struct helper_pin *pin, helper_done_fn done, void *arg)
{
    (void)base;
    (void)kind;
    (void)line;
    (void)flags;
    (void)pin;
    (void)done;
    (void)arg;
    errno = ESRCH;
    return NULL;
}

void
helper_cancel(struct helper_req *req)
{
    (void)req;
}

struct helper_pin *
helper_pin_new(enum helper_kind kind)
{
    (void)kind;
    return NULL;
}

void
helper_pin_free(struct helper_pin *pin)
{
    (void)pin;
}

void
helper_stats(enum helper_kind kind, struct helper_stats *out)
{
    (void)kind;
    memset(out, 0, sizeof(*out));
}

const char *
helper_kind_name(enum helper_kind kind)
{
    static const char *const names[] = {"basic", "negotiate", "group"};
    return (unsigned)kind < HELPER_KINDS ? names[kind] : "?";
}
