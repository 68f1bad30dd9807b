
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The banner's place in a page, found as the page streams by.  Both
 * patterns begin with the only '<' they contain, so a mismatch restarts a
 * match at 0, or at 1 on a '<': no failure table is needed, and runs
 * without a '<' that may begin one are skipped (inject_next()).  Where a
 * whole pattern lies in the buffer it is compared at once; only near a
 * buffer's end are bytes matched one by one, so that a pattern split
 * across buffers is found.  The marker is matched exactly, "</body>" in
 * any case.
 *
 * A "</body>" is a candidate until another one, or the marker, or the end
 * of the page comes; the bytes after it are held meanwhile.  When more
 * than hold_max of them have come, no later one is awaited: the page is
 * not one whose "</body>" is near its end, and the candidate is the place.
 */


#include <string.h>

#if (__SSE2__)
#include <emmintrin.h>
#endif

#include "ngx_http_crm_inject.h"


static const unsigned char *ngx_http_crm_inject_next(const unsigned char *p,
    const unsigned char *end);


static const unsigned char  ngx_http_crm_inject_marker[] =
    NGX_HTTP_CRM_INJECT_MARKER;
static const unsigned char  ngx_http_crm_inject_body[] =
    NGX_HTTP_CRM_INJECT_BODY;


void
ngx_http_crm_inject_init(ngx_http_crm_inject_t *m, uint64_t hold_max)
{
    memset(m, 0, sizeof(ngx_http_crm_inject_t));
    m->hold_max = hold_max;
}


size_t
ngx_http_crm_inject_feed(ngx_http_crm_inject_t *m, const unsigned char *p,
    size_t len)
{
    size_t                i, k;
    uint64_t              pos, limit, base;
    unsigned              c, marker, body;
    const unsigned char  *q;

    if (m->found) {
        return 0;
    }

    /*
     * The state is kept in locals while the bytes are read: written through
     * m, every store would have to land before the next byte is loaded (the
     * bytes may alias m), and the loop would wait on memory.
     */

    pos = m->pos;
    marker = m->marker;
    body = m->body;
    base = pos;

    limit = m->have_body
            ? m->body_at + NGX_HTTP_CRM_INJECT_BODY_LEN + m->hold_max
            : UINT64_MAX;

    for (i = 0; i < len; /* void */ ) {

        if (marker == 0 && body == 0) {
            q = ngx_http_crm_inject_next(p + i, p + len);

            if (q == p + len || (uint64_t) (q - (p + i)) > limit - pos) {
                /* no '<' before the candidate's wait is over */

                if (m->have_body && len - i > limit - pos) {
                    k = (size_t) (limit - pos) + 1;
                    i += k;
                    m->found = 1;
                    m->at = m->body_at;
                    goto done;
                }

                i = len;
                goto done;
            }

            i = q - p;
            pos = base + i;

            /*
             * The whole of either pattern is in this buffer, and the
             * candidate's wait is not over within it: compare directly.
             */

            if (len - i >= NGX_HTTP_CRM_INJECT_MARKER_LEN
                && limit - pos >= NGX_HTTP_CRM_INJECT_MARKER_LEN)
            {
                if (q[1] == '!'
                    && memcmp(q, ngx_http_crm_inject_marker,
                              NGX_HTTP_CRM_INJECT_MARKER_LEN) == 0)
                {
                    i += NGX_HTTP_CRM_INJECT_MARKER_LEN;
                    m->found = 1;
                    m->at_marker = 1;
                    m->at = pos;
                    goto done;
                }

                if (q[1] == '/'
                    && (q[2] | 0x20) == 'b' && (q[3] | 0x20) == 'o'
                    && (q[4] | 0x20) == 'd' && (q[5] | 0x20) == 'y'
                    && q[6] == '>')
                {
                    m->have_body = 1;
                    m->body_at = pos;
                    limit = pos + NGX_HTTP_CRM_INJECT_BODY_LEN + m->hold_max;
                    i += NGX_HTTP_CRM_INJECT_BODY_LEN;
                    pos += NGX_HTTP_CRM_INJECT_BODY_LEN;
                    continue;
                }

                /* neither begins at this '<' */
                i++;
                pos++;
                continue;
            }
        }

        c = p[i++];
        pos++;

        if (c == ngx_http_crm_inject_marker[marker]) {
            marker++;

            if (marker == NGX_HTTP_CRM_INJECT_MARKER_LEN) {
                m->found = 1;
                m->at_marker = 1;
                m->at = pos - NGX_HTTP_CRM_INJECT_MARKER_LEN;
                goto done;
            }

        } else {
            marker = (c == '<');
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c == ngx_http_crm_inject_body[body]) {
            body++;

            if (body == NGX_HTTP_CRM_INJECT_BODY_LEN) {
                body = 0;
                m->have_body = 1;
                m->body_at = pos - NGX_HTTP_CRM_INJECT_BODY_LEN;
                limit = pos + m->hold_max;
                continue;
            }

        } else {
            body = (c == '<');
        }

        if (pos > limit) {
            m->found = 1;
            m->at = m->body_at;
            goto done;
        }
    }

done:

    m->pos = base + i;
    m->marker = marker;
    m->body = body;

    return i;
}


/*
 * The next '<' from p on that may begin either pattern: one followed by
 * "/b" (in any case) or "!-", or one too near the end to tell; end if
 * none.  Sixteen bytes at a time where SSE2 is, the '<' of every closing
 * tag and the like passed over without a look.
 */

static const unsigned char *
ngx_http_crm_inject_next(const unsigned char *p, const unsigned char *end)
{
#if (__SSE2__)
    int      mask;
    __m128i  v0, v1, v2, body, marker;

    while (end - p >= 18) {
        v0 = _mm_loadu_si128((const __m128i *) p);
        v1 = _mm_loadu_si128((const __m128i *) (p + 1));
        v2 = _mm_loadu_si128((const __m128i *) (p + 2));

        body = _mm_and_si128(_mm_cmpeq_epi8(v1, _mm_set1_epi8('/')),
                             _mm_cmpeq_epi8(_mm_or_si128(v2,
                                                     _mm_set1_epi8(0x20)),
                                            _mm_set1_epi8('b')));
        marker = _mm_and_si128(_mm_cmpeq_epi8(v1, _mm_set1_epi8('!')),
                               _mm_cmpeq_epi8(v2, _mm_set1_epi8('-')));

        mask = _mm_movemask_epi8(
                   _mm_and_si128(_mm_cmpeq_epi8(v0, _mm_set1_epi8('<')),
                                 _mm_or_si128(body, marker)));
        if (mask) {
            return p + __builtin_ctz((unsigned) mask);
        }

        p += 16;
    }
#endif

    for ( ;; ) {
        p = memchr(p, '<', end - p);

        if (p == NULL) {
            return end;
        }

        if (end - p < 3
            || (p[1] == '/' && (p[2] | 0x20) == 'b')
            || (p[1] == '!' && p[2] == '-'))
        {
            return p;
        }

        p++;
    }
}


void
ngx_http_crm_inject_end(ngx_http_crm_inject_t *m)
{
    if (!m->found && m->have_body) {
        m->found = 1;
        m->at = m->body_at;
    }
}


uint64_t
ngx_http_crm_inject_safe(const ngx_http_crm_inject_t *m)
{
    uint64_t  safe;

    if (m->found) {
        return m->at;
    }

    safe = m->pos - (m->marker > m->body ? m->marker : m->body);

    if (m->have_body && m->body_at < safe) {
        safe = m->body_at;
    }

    return safe;
}
