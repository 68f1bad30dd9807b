
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * For the tests of ngx_http_crm_inject.c (inject.c, fuzz_inject.c): the
 * place found by an independent whole-page search, and a body filter's
 * way of streaming a page through the matcher.
 */


#ifndef _NGX_HTTP_CRM_INJECT_REF_H_INCLUDED_
#define _NGX_HTTP_CRM_INJECT_REF_H_INCLUDED_


#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_crm_inject.h"


#define BANNER  "[B]"


typedef struct {
    char     *out;
    size_t    len;
    uint64_t  sent;
    uint64_t  held_max;
    int       inserted;
    int       bad;        /* safe went back, or past what was fed */
} sink_t;


static long reference(const char *page, size_t len, uint64_t hold_max);
static char *expected(const char *page, size_t len, long at, size_t *olen);
static void stream(const char *page, size_t len, const size_t *cuts,
    size_t ncuts, uint64_t hold_max, sink_t *s);


/*
 * The place without streaming: events (the marker, "</body>" in any case)
 * in the order they start; the next event after a "</body>" counts when
 * it ends at most hold_max + 1 bytes after that "</body>" ends.
 */

static long
reference(const char *page, size_t len, uint64_t hold_max)
{
    size_t   i, end;
    long     cand;

    cand = -1;

    for (i = 0; i < len; i++) {
        if (len - i >= NGX_HTTP_CRM_INJECT_MARKER_LEN
            && memcmp(page + i, NGX_HTTP_CRM_INJECT_MARKER,
                      NGX_HTTP_CRM_INJECT_MARKER_LEN) == 0)
        {
            end = i + NGX_HTTP_CRM_INJECT_MARKER_LEN;

            if (cand >= 0 && end > cand + NGX_HTTP_CRM_INJECT_BODY_LEN
                                   + hold_max + 1)
            {
                return cand;
            }

            return (long) i;
        }

        if (len - i >= NGX_HTTP_CRM_INJECT_BODY_LEN
            && strncasecmp(page + i, NGX_HTTP_CRM_INJECT_BODY,
                           NGX_HTTP_CRM_INJECT_BODY_LEN) == 0)
        {
            end = i + NGX_HTTP_CRM_INJECT_BODY_LEN;

            if (cand >= 0 && end > cand + NGX_HTTP_CRM_INJECT_BODY_LEN
                                   + hold_max + 1)
            {
                return cand;
            }

            cand = (long) i;
        }
    }

    return cand;
}


static char *
expected(const char *page, size_t len, long at, size_t *olen)
{
    char    *out;
    size_t   n;

    out = malloc(len + sizeof(BANNER));
    if (out == NULL) {
        abort();
    }

    if (at < 0) {
        memcpy(out, page, len);
        *olen = len;
        return out;
    }

    n = (size_t) at;
    memcpy(out, page, n);
    memcpy(out + n, BANNER, sizeof(BANNER) - 1);
    memcpy(out + n + sizeof(BANNER) - 1, page + n, len - n);
    *olen = len + sizeof(BANNER) - 1;

    return out;
}


static void
emit(sink_t *s, const char *p, size_t n)
{
    memcpy(s->out + s->len, p, n);
    s->len += n;
}


/*
 * What a body filter does: after each piece it sends the page up to
 * safe(), from its own copy of what it held or from the piece; once the
 * place is found, the rest up to it, the banner, and every later byte as
 * it comes.
 */

static void
stream(const char *page, size_t len, const size_t *cuts, size_t ncuts,
    uint64_t hold_max, sink_t *s)
{
    char                   *piece;
    size_t                  i, from, to;
    uint64_t                safe, fed;
    ngx_http_crm_inject_t   m;

    ngx_http_crm_inject_init(&m, hold_max);

    s->out = malloc(len + sizeof(BANNER));
    s->len = 0;
    s->sent = 0;
    s->held_max = 0;
    s->inserted = 0;
    s->bad = 0;

    fed = 0;

    for (i = 0; i <= ncuts; i++) {
        from = (i == 0) ? 0 : cuts[i - 1];
        to = (i == ncuts) ? len : cuts[i];

        piece = malloc(to - from + 1);
        memcpy(piece, page + from, to - from);

        if (!m.found) {
            (void) ngx_http_crm_inject_feed(&m, (unsigned char *) piece,
                                            to - from);
        }

        fed = to;

        if (m.found && !s->inserted) {
            emit(s, page + s->sent, (size_t) (m.at - s->sent));
            emit(s, BANNER, sizeof(BANNER) - 1);
            s->sent = m.at;
            s->inserted = 1;
        }

        if (s->inserted) {
            emit(s, page + s->sent, (size_t) (fed - s->sent));
            s->sent = fed;
            free(piece);
            continue;
        }

        safe = ngx_http_crm_inject_safe(&m);

        if (safe < s->sent || safe > fed) {
            s->bad = 1;
        }

        if (safe > s->sent) {
            emit(s, page + s->sent, (size_t) (safe - s->sent));
            s->sent = safe;
        }

        if (fed - s->sent > s->held_max) {
            s->held_max = fed - s->sent;
        }

        free(piece);
    }

    if (!s->inserted) {
        ngx_http_crm_inject_end(&m);

        if (m.found) {
            emit(s, page + s->sent, (size_t) (m.at - s->sent));
            emit(s, BANNER, sizeof(BANNER) - 1);
            s->sent = m.at;
            s->inserted = 1;
        }

        emit(s, page + s->sent, (size_t) (len - s->sent));
    }
}


static int
same(sink_t *s, const char *want, size_t wlen, uint64_t hold)
{
    int  ok;

    ok = !s->bad && s->len == wlen && memcmp(s->out, want, wlen) == 0
         && s->held_max <= hold;
    free(s->out);

    return ok;
}


#endif /* _NGX_HTTP_CRM_INJECT_REF_H_INCLUDED_ */
