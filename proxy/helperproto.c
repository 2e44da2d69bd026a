#include "helperproto.h"

#include <stdlib.h>
#include <string.h>

void
helperproto_reply_free(struct helper_reply *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}
