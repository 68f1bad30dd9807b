
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The banner's place in a page, found as the page streams by.  Both
 * patterns begin with the only '<' they contain, so a mismatch restarts a
 * match at 0, or at 1 on a '<': no failure table is needed, and runs
 * without '<' are skipped with memchr().  The marker is matched exactly,
 * "</body>" in any case.
 *
 * A "</body>" is a candidate until another one, or the marker, or the end
 * of the page comes; the bytes after it are held meanwhile.  When more
 * than hold_max of them have come, no later one is awaited: the page is
 * not one whose "</body>" is near its end, and the candidate is the place.
 */


#include <string.h>

#include "ngx_http_crm_inject.h"


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
    uint64_t              limit;
    unsigned              c;
    const unsigned char  *q;

    if (m->found) {
        return 0;
    }

    for (i = 0; i < len; /* void */ ) {

        /* the last fed byte at which the candidate is still awaited */
        limit = m->have_body
                ? m->body_at + NGX_HTTP_CRM_INJECT_BODY_LEN + m->hold_max
                : UINT64_MAX;

        if (m->marker == 0 && m->body == 0) {
            q = memchr(p + i, '<', len - i);

            if (q == NULL || (uint64_t) (q - (p + i)) > limit - m->pos) {
                /* no '<' before the candidate's wait is over */

                if (m->have_body && len - i > limit - m->pos) {
                    k = (size_t) (limit - m->pos) + 1;
                    m->pos += k;
                    m->found = 1;
                    m->at = m->body_at;
                    return i + k;
                }

                m->pos += len - i;
                return len;
            }

            m->pos += q - (p + i);
            i = q - p;
        }

        c = p[i++];
        m->pos++;

        if (c == ngx_http_crm_inject_marker[m->marker]) {
            m->marker++;

            if (m->marker == NGX_HTTP_CRM_INJECT_MARKER_LEN) {
                m->found = 1;
                m->at_marker = 1;
                m->at = m->pos - NGX_HTTP_CRM_INJECT_MARKER_LEN;
                return i;
            }

        } else {
            m->marker = (c == '<');
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c == ngx_http_crm_inject_body[m->body]) {
            m->body++;

            if (m->body == NGX_HTTP_CRM_INJECT_BODY_LEN) {
                m->body = 0;
                m->have_body = 1;
                m->body_at = m->pos - NGX_HTTP_CRM_INJECT_BODY_LEN;
                continue;
            }

        } else {
            m->body = (c == '<');
        }

        if (m->pos > limit) {
            m->found = 1;
            m->at = m->body_at;
            return i;
        }
    }

    return len;
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
