
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_INJECT_H_INCLUDED_
#define _NGX_HTTP_CRM_INJECT_H_INCLUDED_


/*
 * Where the banner goes into a page that arrives in pieces: at the first
 * "<!--crm-banner-->", else right before the last "</body>" (in any case).
 * Plain C, no nginx headers, no allocation; see ngx_http_crm_inject.c.
 *
 * The caller feeds the page piece by piece and may send every byte before
 * ngx_http_crm_inject_safe(); the bytes from there to what was fed are
 * held (a partial match, or a "</body>" and what followed it).  What
 * follows a "</body>" is held up to hold_max bytes: past that, that
 * "</body>" is the place, so memory stays bounded whatever the page.
 */


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_CRM_INJECT_MARKER      "<!--crm-banner-->"
#define NGX_HTTP_CRM_INJECT_MARKER_LEN  (sizeof(NGX_HTTP_CRM_INJECT_MARKER) - 1)
#define NGX_HTTP_CRM_INJECT_BODY        "</body>"
#define NGX_HTTP_CRM_INJECT_BODY_LEN    (sizeof(NGX_HTTP_CRM_INJECT_BODY) - 1)

/* the most a caller holds: the tail after "</body>" and a partial match */
#define ngx_http_crm_inject_hold(m)                                           \
    ((m)->hold_max + NGX_HTTP_CRM_INJECT_MARKER_LEN)


typedef struct {
    uint64_t     hold_max;       /* bytes after a "</body>" to wait for */

    uint64_t     pos;            /* bytes fed */
    uint64_t     body_at;        /* the last "</body>" seen, if have_body */
    uint64_t     at;             /* the place, once found */
    unsigned     marker;         /* bytes of the marker matched at pos */
    unsigned     body;           /* bytes of "</body>" matched at pos */
    unsigned     have_body:1;
    unsigned     found:1;        /* at is the place: nothing more to scan */
    unsigned     at_marker:1;    /* ... and it is the marker's */
} ngx_http_crm_inject_t;


/* hold_max: what may follow the last "</body>" (for example 4096) */
void ngx_http_crm_inject_init(ngx_http_crm_inject_t *m, uint64_t hold_max);

/*
 * Scans the next len bytes of the page; returns how many of them it read:
 * all of them, or fewer once the place is found (m->found, at m->at).
 */
size_t ngx_http_crm_inject_feed(ngx_http_crm_inject_t *m,
    const unsigned char *p, size_t len);

/* the end of the page: the last "</body>" is the place, if there was one */
void ngx_http_crm_inject_end(ngx_http_crm_inject_t *m);

/* the bytes of the page before this offset may be sent */
uint64_t ngx_http_crm_inject_safe(const ngx_http_crm_inject_t *m);


#endif /* _NGX_HTTP_CRM_INJECT_H_INCLUDED_ */
