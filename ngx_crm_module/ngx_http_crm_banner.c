
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * crm_banner on: one personal banner in the shop's HTML pages.
 *
 * Before the content handler, a request that carries a valid customer
 * cookie is kept from revalidating a page that may hold yesterday's banner
 * (r->disable_not_modified; its If-None-Match and If-Modified-Since never
 * reach the shop).  The header filter decides: a 200 for the main request,
 * not HEAD, not compressed, of crm_banner_types, for a customer whose
 * banner state is in shared memory (ngx_http_crm_banner_state.c; a miss
 * goes out without a banner and fills it in the background); the first
 * banner of that state whose banner is still in the policy and whose
 * max_per_day is not used up today.  The body filter then puts it at its
 * place (ngx_http_crm_inject.c) as the page streams by, passing every
 * other byte untouched: the buffers it sends point into the shop's, or
 * into a copy of the few bytes it had to hold.  The log handler records
 * the impression once the banner's bytes were sent.
 *
 * For a holdout customer the banner that would have been shown is not
 * shown: the page is scanned for its place only, and a would_show
 * exposure recorded.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner.h"
#include "ngx_http_crm_banner_state.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_calendar.h"
#include "ngx_http_crm_event.h"
#include "ngx_http_crm_identity.h"
#include "ngx_http_crm_inject.h"
#include "ngx_http_crm_template.h"


/* what may follow the last </body> of a page: </html> and white space */
#define NGX_HTTP_CRM_BANNER_TAIL      4096



struct ngx_http_crm_banner_ctx_s {
    ngx_http_crm_inject_t      m;
    ngx_str_t                  html;
    ngx_str_t                  id;
    uint64_t                   cid;
    uint64_t                   fed;          /* bytes of the page scanned */
    uint64_t                   sent;         /* ... passed on */
    ngx_buf_t                 *hold;         /* [sent, fed) when held */
    ngx_chain_t               *out;
    ngx_chain_t              **last_out;
    ngx_chain_t               *busy;
    ngx_chain_t               *busy_last;
    ngx_chain_t               *free;         /* holds' memory */
    ngx_chain_t               *spare;        /* links with buffers */
    off_t                      sent0;        /* c->sent before the header */
    uint64_t                   at;           /* the place, once found */
    unsigned                   checked:1;    /* the cookie was read */
    unsigned                   decided:1;
    unsigned                   chosen:1;
    unsigned                   dry:1;        /* would_show */
    unsigned                   placed:1;
    unsigned                   ended:1;
    unsigned                   ended_out:1;  /* last_buf went on */
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_http_crm_banner_ctx_t *ngx_http_crm_banner_ctx(
    ngx_http_request_t *r, ngx_http_crm_ctx_t **pctx);
static uint64_t ngx_http_crm_banner_customer(ngx_http_request_t *r);
static ngx_uint_t ngx_http_crm_banner_page_request(ngx_http_request_t *r);
static void ngx_http_crm_banner_no_revalidation(ngx_http_request_t *r);
static ngx_http_crm_banner_ctx_t *ngx_http_crm_banner_decide(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_crm_banner_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_crm_banner_choose(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_http_crm_banner_ctx_t *bn);
static ngx_int_t ngx_http_crm_banner_headers(ngx_http_request_t *r);
static ngx_int_t ngx_http_crm_banner_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_crm_banner_scan(ngx_http_crm_banner_ctx_t *bn,
    ngx_buf_t *b);
static ngx_int_t ngx_http_crm_banner_buf(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn, ngx_buf_t *b);
static ngx_buf_t *ngx_http_crm_banner_hold(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn);
static ngx_chain_t *ngx_http_crm_banner_link(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn);
static ngx_int_t ngx_http_crm_banner_emit(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn, u_char *p, size_t len, ngx_uint_t own);
static ngx_int_t ngx_http_crm_banner_output(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn);
static uint32_t ngx_http_crm_banner_day(ngx_http_crm_main_conf_t *crmcf);
static void ngx_http_crm_banner_record(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_http_crm_banner_ctx_t *bn);
static void ngx_http_crm_banner_notified(void *data, const char *channel,
    const char *payload);


void
ngx_http_crm_banner_filter_init(void)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_crm_banner_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_crm_banner_body_filter;
}


/* the banner half of the module's request context, made on first use */

static ngx_http_crm_banner_ctx_t *
ngx_http_crm_banner_ctx(ngx_http_request_t *r, ngx_http_crm_ctx_t **pctx)
{
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_crm_ctx_new(r);
        if (ctx == NULL) {
            return NULL;
        }
    }

    if (ctx->bn == NULL) {
        ctx->bn = ngx_pcalloc(r->pool, sizeof(ngx_http_crm_banner_ctx_t));
        if (ctx->bn == NULL) {
            return NULL;
        }
    }

    if (pctx) {
        *pctx = ctx;
    }

    return ctx->bn;
}


/* the customer of the request's valid cookie, 0 for none */

static uint64_t
ngx_http_crm_banner_customer(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t  *ctx, tmp;

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx != NULL && ctx->cookie_ok) {
        return ctx->customer_id;
    }

    ngx_memzero(&tmp, sizeof(ngx_http_crm_ctx_t));
    ngx_http_crm_identity_cookie(r, &tmp);

    return tmp.cookie_ok ? tmp.customer_id : 0;
}


/*
 * The precontent handler: a request that may get a banner gets no 304
 * from nginx, and the shop never sees its conditions, so that a page
 * whose banner changed is always sent again.
 */

ngx_int_t
ngx_http_crm_banner_handler(ngx_http_request_t *r)
{
    uint64_t                    cid;
    ngx_http_crm_loc_conf_t    *lcf;
    ngx_http_crm_banner_ctx_t  *bn;
    ngx_http_crm_main_conf_t   *crmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    if (!lcf->banner || r != r->main) {
        return NGX_DECLINED;
    }

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (crmcf->banners == NULL || r->headers_in.cookies.nelts == 0) {
        return NGX_DECLINED;
    }

    bn = ngx_http_crm_banner_ctx(r, NULL);
    if (bn == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (bn->checked) {
        return NGX_DECLINED;
    }

    cid = ngx_http_crm_banner_customer(r);

    bn->checked = 1;
    bn->cid = cid;

    if (cid && ngx_http_crm_banner_page_request(r)) {
        ngx_http_crm_banner_no_revalidation(r);
    }

    return NGX_DECLINED;
}


/*
 * A request for a page, as a browser makes it for a navigation: Accept
 * names text/html, or Sec-Fetch-Dest says document.  Images, scripts and
 * API calls keep their conditions and their 304s.
 */

static ngx_uint_t
ngx_http_crm_banner_page_request(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    static ngx_str_t  dest = ngx_string("Sec-Fetch-Dest");

    part = &r->headers_in.headers.part;
    i = 0;

    h = ngx_http_crm_header_next(&part, &i, &dest);
    if (h != NULL) {
        return h->value.len == 8
               && ngx_strncasecmp(h->value.data, (u_char *) "document", 8)
                  == 0;
    }

#if (NGX_HTTP_HEADERS)
    h = r->headers_in.accept;
    return h != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               (u_char *) "text/html", 9 - 1)
              != NULL;
#else
    return 0;
#endif
}


/*
 * The conditions of the request are taken away: r->disable_not_modified
 * for nginx's own not-modified filter (it runs before ours and accepts
 * weak ETags), and for an upstream the headers themselves.  nginx's header
 * list has no removal, and proxy_pass sends every header that is not one
 * of its own; so they are renamed to Keep-Alive, a header that proxy_pass
 * always drops (it is hop-by-hop).
 */

static void
ngx_http_crm_banner_no_revalidation(ngx_http_request_t *r)
{
    ngx_uint_t        i, k;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    static ngx_str_t  drop[] = {
        ngx_string("If-None-Match"),
        ngx_string("If-Modified-Since")
    };
    static u_char     keep_alive[] = "Keep-Alive";
    static u_char     keep_alive_lc[] = "keep-alive";

    r->disable_not_modified = 1;
    r->headers_in.if_none_match = NULL;
    r->headers_in.if_modified_since = NULL;

    for (k = 0; k < sizeof(drop) / sizeof(drop[0]); k++) {
        part = &r->headers_in.headers.part;
        i = 0;

        while ((h = ngx_http_crm_header_next(&part, &i, &drop[k])) != NULL) {
            h->key.data = keep_alive;
            h->key.len = sizeof(keep_alive) - 1;
            h->lowcase_key = keep_alive_lc;
            h->hash = ngx_hash_key(keep_alive_lc, sizeof(keep_alive_lc) - 1);
        }
    }
}


/*
 * The decision, once per request: made by the header filter, or earlier
 * by $crm_banner when add_header or expires (whose filter runs before
 * this one) asks for it.  NULL: no banner for this response.
 */

static ngx_http_crm_banner_ctx_t *
ngx_http_crm_banner_decide(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t         *ctx;
    ngx_http_crm_loc_conf_t    *lcf;
    ngx_http_crm_banner_ctx_t  *bn;
    ngx_http_crm_main_conf_t   *crmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);
    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    /*
     * a Range request becomes a 206 further down the chain (the range
     * filter comes after this one): its bytes are the shop's
     */

    if (!lcf->banner || r != r->main || crmcf->banners == NULL
        || r->headers_out.status != NGX_HTTP_OK
        || (r->method & NGX_HTTP_HEAD) || r->header_only
        || r->headers_in.range != NULL)
    {
        return NULL;
    }

    bn = ngx_http_crm_banner_ctx(r, &ctx);
    if (bn == NULL) {
        return NULL;
    }

    if (bn->decided) {
        return bn->chosen ? bn : NULL;
    }

    bn->decided = 1;

    if (ngx_http_test_content_type(r, &lcf->banner_types) == NULL) {
        (void) ngx_atomic_fetch_add(&crmcf->stats->banner_not_html, 1);
        return NULL;
    }

    if (r->headers_out.content_encoding
        && r->headers_out.content_encoding->value.len)
    {
        (void) ngx_atomic_fetch_add(&crmcf->stats->banner_compressed, 1);
        return NULL;
    }

    if (!bn->checked) {
        /* a response made before the precontent phase (return, error) */
        bn->cid = ngx_http_crm_banner_customer(r);
        bn->checked = 1;
    }

    if (bn->cid == 0) {
        (void) ngx_atomic_fetch_add(&crmcf->stats->banner_no_cookie, 1);
        return NULL;
    }

    if (ngx_http_crm_banner_choose(r, crmcf, bn) != NGX_OK) {
        return NULL;
    }

    ngx_http_crm_inject_init(&bn->m, NGX_HTTP_CRM_BANNER_TAIL);
    bn->last_out = &bn->out;
    bn->chosen = 1;

    if (!bn->dry) {
        ctx->banner = bn->id;
    }

    return bn;
}


/* $crm_banner: the id, deciding now if the response is there to decide on */

ngx_int_t
ngx_http_crm_banner_variable(ngx_http_request_t *r, ngx_str_t *value)
{
    ngx_http_crm_ctx_t  *ctx;

    ngx_str_null(value);

    if (r->main->headers_out.status && !r->main->header_sent) {
        (void) ngx_http_crm_banner_decide(r->main);
    }

    ctx = ngx_http_crm_get_ctx(r->main);

    if (ctx != NULL) {
        *value = ctx->banner;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_banner_header_filter(ngx_http_request_t *r)
{
    ngx_http_crm_banner_ctx_t  *bn;

    bn = ngx_http_crm_banner_decide(r);

    if (bn == NULL) {
        return ngx_http_next_header_filter(r);
    }

    bn->sent0 = r->connection->sent;
    r->filter_need_in_memory = 1;

    if (!bn->dry && ngx_http_crm_banner_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * The first banner of the customer's state that the policy still has and
 * whose cap allows one more today, rendered.  NGX_DECLINED: none.
 */

static ngx_int_t
ngx_http_crm_banner_choose(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_http_crm_banner_ctx_t *bn)
{
    size_t                        i, j, len;
    uint32_t                      day;
    ngx_uint_t                    capped;
    ngx_http_crm_tvar_t           vars[NGX_HTTP_CRM_BANNER_VARS];
    ngx_http_crm_banner_t        *b;
    ngx_http_crm_policy_t        *policy;
    ngx_http_crm_banner_cand_t   *c;
    ngx_http_crm_banner_state_t  *st;

    static const char            *names[] = { NGX_HTTP_CRM_BANNER_VAR_NAMES };

    policy = crmcf->policy;
    day = ngx_http_crm_banner_day(crmcf);

    if (ngx_http_crm_banners_get(r, crmcf, bn->cid, day, &st) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&crmcf->stats->banner_cache_miss, 1);
        return NGX_DECLINED;
    }

    capped = 0;

    for (i = 0; i < st->n; i++) {
        c = &st->cand[i];
        b = NULL;

        for (j = 0; j < policy->nbanners; j++) {
            if (policy->banners[j].id.len == c->id.len
                && ngx_memcmp(policy->banners[j].id.data, c->id.data,
                              c->id.len) == 0)
            {
                b = &policy->banners[j];
                break;
            }
        }

        if (b == NULL) {
            continue;
        }

        if (ngx_http_crm_banners_take(crmcf->banners, bn->cid, &c->id,
                                      c->shown, b->max_per_day, day)
            != NGX_OK)
        {
            capped = 1;
            continue;
        }

        for (j = 0; j < NGX_HTTP_CRM_BANNER_VARS; j++) {
            vars[j].name = names[j];
            vars[j].data = c->vars[j].data;
            vars[j].len = c->vars[j].len;
        }

        len = ngx_http_crm_template_render(NULL, b->template.data,
                                           b->template.len, vars,
                                           NGX_HTTP_CRM_BANNER_VARS, 1);

        bn->html.data = ngx_pnalloc(r->pool, len + 1);
        if (bn->html.data == NULL) {
            return NGX_ERROR;
        }

        bn->html.len = ngx_http_crm_template_render(bn->html.data,
                                                    b->template.data,
                                                    b->template.len, vars,
                                                    NGX_HTTP_CRM_BANNER_VARS,
                                                    1);
        bn->id = c->id;
        bn->dry = c->would_show ? 1 : 0;

        return NGX_OK;
    }

    if (capped) {
        (void) ngx_atomic_fetch_add(&crmcf->stats->banner_capped, 1);
    }

    return NGX_DECLINED;
}


/*
 * A page with a personal banner: no Content-Length (it grows), a weak
 * ETag, no Last-Modified, no ranges; private to the browser (public and
 * s-maxage dropped from the shop's Cache-Control), and varying by cookie.
 */

static ngx_int_t
ngx_http_crm_banner_headers(ngx_http_request_t *r)
{
    u_char            *p, *q, *last, *start;
    size_t             len, tlen;
    ngx_uint_t         i, k, private;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h, **cc;

    static ngx_str_t   cdn[] = {
        ngx_string("CDN-Cache-Control"),
        ngx_string("Surrogate-Control"),
        ngx_string("Cloudflare-CDN-Cache-Control")
    };

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_weak_etag(r);

    /* Cache-Control: the shop's directives, merged */

    /*
     * each directive kept is written with ", " before it, and takes at
     * least one byte and a separator of the value: twice the value bounds
     * what is written
     */

    len = sizeof("private, ") - 1;
    cc = r->headers_out.cache_control.elts;

    for (i = 0; i < r->headers_out.cache_control.nelts; i++) {
        len += 2 * cc[i]->value.len + 2;
    }

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;
    private = 0;

    for (i = 0; i < r->headers_out.cache_control.nelts; i++) {
        if (cc[i]->hash == 0) {
            /* removed already (expires keeps only its own) */
            continue;
        }

        q = cc[i]->value.data;
        last = q + cc[i]->value.len;
        cc[i]->hash = 0;

        while (q < last) {
            while (q < last && (*q == ' ' || *q == '\t' || *q == ',')) {
                q++;
            }

            for (tlen = 0; q + tlen < last && q[tlen] != ','; tlen++) {
                if (q[tlen] == '"') {
                    /* a quoted value may hold commas */
                    for (tlen++; q + tlen < last && q[tlen] != '"'; tlen++) {
                        /* void */
                    }
                }
            }

            if (q + tlen > last) {
                tlen = last - q;
            }

            while (tlen && (q[tlen - 1] == ' ' || q[tlen - 1] == '\t')) {
                tlen--;
            }

            if (tlen == 0) {
                q++;
                continue;
            }

            if ((tlen == 6 && ngx_strncasecmp(q, (u_char *) "public", 6) == 0)
                || (tlen >= 8
                    && ngx_strncasecmp(q, (u_char *) "s-maxage", 8) == 0
                    && (tlen == 8 || q[8] == '=' || q[8] == ' ')))
            {
                q += tlen;
                continue;
            }

            if (tlen >= 7 && ngx_strncasecmp(q, (u_char *) "private", 7) == 0
                && (tlen == 7 || q[7] == '=' || q[7] == ' '))
            {
                if (tlen == 7) {
                    private = 1;

                } else {
                    /* private="field": the whole response is private */
                    q += tlen;
                    continue;
                }
            }

            if ((size_t) (start + len - p) < tlen + 2
                                              + sizeof("private, ") - 1)
            {
                /* cannot happen (see len); cut rather than overflow */
                break;
            }

            if (p != start) {
                *p++ = ',';
                *p++ = ' ';
            }

            p = ngx_cpymem(p, q, tlen);
            q += tlen;
        }
    }

    if (!private) {
        if (p != start) {
            ngx_memmove(start + sizeof("private, ") - 1, start, p - start);
            p += sizeof("private, ") - 1;
            ngx_memcpy(start, "private, ", sizeof("private, ") - 1);

        } else {
            p = ngx_cpymem(p, "private", sizeof("private") - 1);
        }
    }

    if (r->headers_out.cache_control.elts == NULL
        && ngx_array_init(&r->headers_out.cache_control, r->pool, 1,
                          sizeof(ngx_table_elt_t *))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.cache_control.nelts = 0;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    cc = ngx_array_push(&r->headers_out.cache_control);
    if (cc == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    h->value.data = start;
    h->value.len = p - start;
    *cc = h;

    /* the CDNs' own caching headers would still let them keep the page */

    for (i = 0; i < sizeof(cdn) / sizeof(cdn[0]); i++) {
        part = &r->headers_out.headers.part;
        k = 0;

        while ((h = ngx_http_crm_header_next(&part, &k, &cdn[i])) != NULL) {
            h->hash = 0;
        }
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Vary");
    ngx_str_set(&h->value, "Cookie");

    return NGX_OK;
}


/*
 * Every buffer of the page is scanned once; the bytes before the safe
 * offset go on at once (slices of the shop's buffer), the few after it
 * are copied into bn->hold until the next buffer tells.  Once the place is
 * found: what was held before it, the banner, the rest, and every later
 * buffer untouched.  A holdout's page (dry) is only scanned.
 */

static ngx_int_t
ngx_http_crm_banner_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                *cl;
    ngx_http_crm_ctx_t         *ctx;
    ngx_http_crm_banner_ctx_t  *bn;

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);

    if (ctx == NULL || ctx->bn == NULL || !ctx->bn->chosen || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    bn = ctx->bn;

    if (bn->dry) {
        for (cl = in; cl; cl = cl->next) {
            ngx_http_crm_banner_scan(bn, cl->buf);

            /* an exposure counts for a page seen to its end */
            if (cl->buf->last_buf && bn->m.found) {
                bn->placed = 1;
                bn->at = bn->m.at;
            }
        }

        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (ngx_http_crm_banner_buf(r, bn, cl->buf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_crm_banner_output(r, bn);
}


/*
 * Scans one buffer of the page for the place, and at its end settles it:
 * the last </body>, or none (bn->ended).
 */

static void
ngx_http_crm_banner_scan(ngx_http_crm_banner_ctx_t *bn, ngx_buf_t *b)
{
    if (bn->m.found) {
        return;
    }

    if (ngx_buf_in_memory(b) && b->last > b->pos) {
        (void) ngx_http_crm_inject_feed(&bn->m, b->pos, b->last - b->pos);
    }

    if (!bn->m.found && b->last_buf) {
        ngx_http_crm_inject_end(&bn->m);

        if (!bn->m.found) {
            bn->ended = 1;
        }
    }
}


/* one buffer of the page, as above */

static ngx_int_t
ngx_http_crm_banner_buf(ngx_http_request_t *r, ngx_http_crm_banner_ctx_t *bn,
    ngx_buf_t *b)
{
    u_char       *p;
    size_t        n, hlen, k, from;
    uint64_t      base, safe, at;
    ngx_buf_t    *out;
    ngx_chain_t  *cl;

    n = ngx_buf_in_memory(b) ? (size_t) (b->last - b->pos) : 0;
    base = bn->fed;
    bn->fed += n;

    if (!bn->placed) {
        ngx_http_crm_banner_scan(bn, b);
    }

    hlen = bn->hold ? (size_t) (bn->hold->last - bn->hold->pos) : 0;

    if (!bn->placed && bn->m.found) {
        /* the place: held bytes before it, the banner, the held rest */

        at = bn->m.at;
        bn->placed = 1;
        bn->at = at;

        if (hlen) {
            p = bn->hold->pos;

            if (at < base) {
                if (ngx_http_crm_banner_emit(r, bn, p, at - bn->sent, 0)
                    != NGX_OK
                    || ngx_http_crm_banner_emit(r, bn, bn->html.data,
                                                bn->html.len, 0)
                       != NGX_OK
                    || ngx_http_crm_banner_emit(r, bn, p + (at - bn->sent),
                                                hlen - (at - bn->sent), 1)
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }

            } else if (ngx_http_crm_banner_emit(r, bn, p, hlen, 1) != NGX_OK) {
                return NGX_ERROR;
            }

            bn->hold = NULL;
        }

        if (at >= base) {
            if (ngx_http_crm_banner_emit(r, bn, b->pos, at - base, 0)
                != NGX_OK
                || ngx_http_crm_banner_emit(r, bn, bn->html.data,
                                            bn->html.len, 0)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            safe = at;

        } else {
            safe = base;
        }

        bn->sent = bn->fed;

        if (ngx_http_crm_banner_emit(r, bn, b->pos + (safe - base),
                                     bn->fed - safe, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        goto shadow;
    }

    if (bn->placed || bn->ended) {
        /* past the place, or a page without one: as it is */

        if (hlen) {
            if (ngx_http_crm_banner_emit(r, bn, bn->hold->pos, hlen, 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            bn->hold = NULL;
        }

        if (ngx_http_crm_banner_emit(r, bn, b->pos, n, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        bn->sent = bn->fed;

        goto shadow;
    }

    /*
     * not yet: up to the safe offset goes, [safe, fed) is held; a hold
     * that went out in part is copied on into a fresh one (the part out
     * still points into it), one that did not grows where it is
     */

    safe = ngx_http_crm_inject_safe(&bn->m);
    k = 0;

    if (safe > bn->sent && hlen) {
        k = (size_t) ngx_min(safe - bn->sent, (uint64_t) hlen);

        if (ngx_http_crm_banner_emit(r, bn, bn->hold->pos, k, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        bn->sent += k;
    }

    if (safe > base) {
        if (ngx_http_crm_banner_emit(r, bn, b->pos, safe - base, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        bn->sent = safe;
    }

    if (bn->fed == bn->sent) {
        bn->hold = NULL;
        goto shadow;
    }

    if (bn->hold == NULL || k) {
        out = ngx_http_crm_banner_hold(r, bn);
        if (out == NULL) {
            return NGX_ERROR;
        }

        if (hlen > k) {
            out->last = ngx_cpymem(out->last, bn->hold->pos + k, hlen - k);
        }

        bn->hold = out;
    }

    from = (size_t) (ngx_max(bn->sent, base) - base);
    bn->hold->last = ngx_cpymem(bn->hold->last, b->pos + from, n - from);

shadow:

    /* the shop's buffer is done with once what points into it is sent */

    cl = ngx_http_crm_banner_link(r, bn);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    out = cl->buf;
    out->sync = 1;
    out->shadow = b;
    out->recycled = b->recycled;
    out->flush = b->flush;
    out->last_buf = b->last_buf;
    out->last_in_chain = b->last_in_chain;

    if (b->last_buf) {
        bn->ended_out = 1;
    }

    *bn->last_out = cl;
    bn->last_out = &cl->next;

    return NGX_OK;
}


/* a chain link with a cleared buffer: one that came back, or new */

static ngx_chain_t *
ngx_http_crm_banner_link(ngx_http_request_t *r, ngx_http_crm_banner_ctx_t *bn)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (bn->spare) {
        cl = bn->spare;
        bn->spare = cl->next;
        ngx_memzero(cl->buf, sizeof(ngx_buf_t));

    } else {
        b = ngx_calloc_buf(r->pool);
        cl = ngx_alloc_chain_link(r->pool);

        if (b == NULL || cl == NULL) {
            return NULL;
        }

        cl->buf = b;
    }

    cl->next = NULL;

    return cl;
}


/* an empty hold: memory that came back from the output, or new */

static ngx_buf_t *
ngx_http_crm_banner_hold(ngx_http_request_t *r, ngx_http_crm_banner_ctx_t *bn)
{
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = ngx_http_crm_inject_hold(&bn->m);

    if (bn->free) {
        cl = bn->free;
        bn->free = cl->next;
        b = cl->buf;
        ngx_free_chain(r->pool, cl);

        b->pos = b->start;
        b->last = b->start;

        return b;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    b->tag = (ngx_buf_tag_t) &ngx_http_crm_banner_filter_init;

    return b;
}


/*
 * Adds len bytes at p to the output: own (a hold, given back to bn->free
 * once sent) or pointing into the shop's buffer or the banner.
 */

static ngx_int_t
ngx_http_crm_banner_emit(ngx_http_request_t *r, ngx_http_crm_banner_ctx_t *bn,
    u_char *p, size_t len, ngx_uint_t own)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (len == 0) {
        return NGX_OK;
    }

    cl = ngx_http_crm_banner_link(r, bn);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;
    b->memory = 1;
    b->pos = p;
    b->last = p + len;

    if (own) {
        /* the hold's memory, recognised when it comes back */
        b->start = bn->hold->start;
        b->end = bn->hold->end;
        b->tag = (ngx_buf_tag_t) &ngx_http_crm_banner_filter_init;
    }

    *bn->last_out = cl;
    bn->last_out = &cl->next;

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_banner_output(ngx_http_request_t *r,
    ngx_http_crm_banner_ctx_t *bn)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    rc = ngx_http_next_body_filter(r, bn->out);

    if (bn->out != NULL) {
        if (bn->busy == NULL) {
            bn->busy = bn->out;

        } else {
            bn->busy_last->next = bn->out;
        }

        for (cl = bn->out; cl->next; cl = cl->next) { /* void */ }
        bn->busy_last = cl;
    }

    bn->out = NULL;
    bn->last_out = &bn->out;

    while (bn->busy) {
        cl = bn->busy;
        b = cl->buf;

        if (ngx_buf_size(b) != 0) {
            break;
        }

        if (b->shadow) {
            b->shadow->pos = b->shadow->last;
        }

        bn->busy = cl->next;

        if (b->tag == (ngx_buf_tag_t) &ngx_http_crm_banner_filter_init
            && b->start != NULL)
        {
            /* a hold's memory: its own buffer header for the next one */
            b->pos = b->start;
            b->last = b->start;
            b->temporary = 1;
            b->memory = 0;
            cl->next = bn->free;
            bn->free = cl;
            continue;
        }

        /*
         * only a buffer with data can be taken again: a sync one (the
         * shadow's) may still wait downstream, in the write filter's queue
         */

        if (ngx_buf_in_memory(b)) {
            cl->next = bn->spare;
            bn->spare = cl;

        } else {
            ngx_free_chain(r->pool, cl);
        }
    }

    return rc;
}


/* today's number, in the shop's time zone (feedback.sla.timezone) */

static uint32_t
ngx_http_crm_banner_day(ngx_http_crm_main_conf_t *crmcf)
{
    int64_t  t;

    t = (int64_t) ngx_time();

    if (crmcf->calendar.tz != NULL) {
        t += ngx_http_crm_tz_offset(crmcf->calendar.tz, t);
    }

    return (uint32_t) ngx_http_crm_day_of(t);
}


/*
 * The log handler: the impression, once the banner's bytes were sent, or
 * the holdout's exposure, once its page had a place for one.
 */

ngx_int_t
ngx_http_crm_banner_log(ngx_http_request_t *r)
{
    off_t                       sent;
    ngx_http_crm_ctx_t         *ctx;
    ngx_http_crm_banner_ctx_t  *bn;
    ngx_http_crm_main_conf_t   *crmcf;

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx == NULL || ctx->bn == NULL || !ctx->bn->chosen) {
        return NGX_OK;
    }

    bn = ctx->bn;
    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (!bn->placed) {
        ngx_str_null(&ctx->banner);

        if (bn->ended) {
            (void) ngx_atomic_fetch_add(&crmcf->stats->banner_no_place, 1);
        }

        /* not shown: the day's count is given back */
        ngx_http_crm_banners_untake(crmcf->banners, bn->cid, &bn->id,
                                    ngx_http_crm_banner_day(crmcf));
        return NGX_OK;
    }

    /*
     * the banner's bytes were sent: past its end on the wire, or, when
     * gzip (after this filter) changed the sizes, the whole response with
     * no error on the connection
     */

    sent = r->connection->sent - bn->sent0;

    if (!bn->dry
        && (uint64_t) sent < r->header_size + bn->at + bn->html.len
        && (r->connection->error || r->connection->buffered
            || !bn->ended_out))
    {
        ngx_http_crm_banners_untake(crmcf->banners, bn->cid, &bn->id,
                                    ngx_http_crm_banner_day(crmcf));
        ngx_str_null(&ctx->banner);
        return NGX_OK;
    }

    ngx_http_crm_banner_record(r, crmcf, bn);

    return NGX_OK;
}


/*
 * The banner event: {"event_id","received_at","kind":"banner","node",
 * "policy","customer_id","payload":{"banner","path","would_show"},
 * "state":"ok"}
 */

static void
ngx_http_crm_banner_record(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_http_crm_banner_ctx_t *bn)
{
    u_char      *p, *line, id[NGX_HTTP_CRM_UUID_LEN];
    size_t       len;

    static ngx_str_t  kind = ngx_string("banner");

    len = NGX_HTTP_CRM_EVENT_HEAD_LEN(crmcf, kind.len)
          + sizeof(",\"customer_id\":,\"payload\":{\"banner\":\"\","
                   "\"path\":\"\",\"would_show\":false},\"state\":\"ok\"}\n")
          + NGX_INT64_LEN
          + ngx_http_crm_escaped_json_len(bn->id.len)
          + ngx_http_crm_escaped_json_len(r->uri.len);

    line = ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return;
    }

    ngx_http_crm_event_id(id, crmcf);

    p = ngx_http_crm_event_head(line, crmcf, id, ngx_timeofday(), &kind);
    p = ngx_http_crm_cpy(p, ",\"customer_id\":");
    p = ngx_http_crm_write_int(p, (int64_t) bn->cid);
    p = ngx_http_crm_cpy(p, ",\"payload\":{\"banner\":\"");
    p = ngx_http_crm_escape_json(p, bn->id.data, bn->id.len);
    p = ngx_http_crm_cpy(p, "\",\"path\":\"");
    p = ngx_http_crm_escape_json(p, r->uri.data, r->uri.len);
    p = bn->dry ? ngx_http_crm_cpy(p, "\",\"would_show\":true}")
                : ngx_http_crm_cpy(p, "\",\"would_show\":false}");
    p = ngx_http_crm_cpy(p, ",\"state\":\"ok\"}\n");

    if (crmcf->spool == NULL
        || ngx_http_crm_spool_append(crmcf->spool, line, p - line, 1)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: banner impression not recorded: the spool is "
                      "unusable");
        (void) ngx_atomic_fetch_add(&crmcf->stats->errors, 1);
        return;
    }

    (void) ngx_atomic_fetch_add(bn->dry ? &crmcf->stats->banner_would_show
                                        : &crmcf->stats->banner_impressions,
                                1);

    ngx_http_crm_banners_count(crmcf->banners, &bn->id, bn->dry);
}


/*
 * At configuration time: the banner state zone (next to the customer
 * cache, cache.size and cache.ttl) and the policy's banners as
 * crm.banner_state() reads them.
 */

ngx_int_t
ngx_http_crm_banner_conf(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    u_char                 *p;
    size_t                  len, i;
    ngx_http_crm_banner_t  *b;
    ngx_http_crm_policy_t  *policy;

    static const char      *when[] = {
        "conflict", "order_delayed", "birthday", "new_card",
        "discount_ready", "surprise_sent"
    };

    policy = crmcf->policy;

    crmcf->banners = ngx_http_crm_banners_zone(cf, policy->cache.size,
                                               (ngx_msec_t) policy->cache.ttl);
    if (crmcf->banners == NULL) {
        return NGX_ERROR;
    }

    len = sizeof("[]");

    for (i = 0; i < policy->nbanners; i++) {
        len += sizeof("{\"id\":\"\",\"when\":\"surprise_sent\","
                      "\"days_before\":,\"days_after\":,\"gift\":,"
                      "\"relatives\":false},")
               + 6 * policy->banners[i].id.len + 3 * NGX_INT_T_LEN;
    }

    crmcf->banner_spec = ngx_pnalloc(cf->pool, len);
    if (crmcf->banner_spec == NULL) {
        return NGX_ERROR;
    }

    p = crmcf->banner_spec;
    *p++ = '[';

    for (i = 0; i < policy->nbanners; i++) {
        b = &policy->banners[i];

        if (i) {
            *p++ = ',';
        }

        p = ngx_http_crm_cpy(p, "{\"id\":\"");
        p = ngx_http_crm_escape_json(p, b->id.data, b->id.len);
        p = ngx_sprintf(p, "\",\"when\":\"%s\",\"days_before\":%ui,"
                        "\"days_after\":%ui,\"gift\":%ui,\"relatives\":%s}",
                        when[b->when < NGX_HTTP_CRM_WHEN_N ? b->when : 0],
                        (ngx_uint_t) b->days_before,
                        (ngx_uint_t) b->days_after, (ngx_uint_t) b->gift,
                        b->relatives ? "true" : "false");
    }

    *p++ = ']';
    *p = '\0';

    return NGX_OK;
}


/*
 * One worker of the node (the first) holds a connection that LISTENs on
 * crm_banner: the functions that change what a customer's banners would
 * be NOTIFY her id there (sql/fn_banners.sql), and her entry is looked up
 * again at once, so that a change made through any node shows on this one
 * within a lookup.  It is a pool of one connection like the others:
 * non-blocking, reconnected after a failure; cache.ttl is the backstop for
 * what is missed while it is down.
 */

ngx_int_t
ngx_http_crm_banner_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf)
{
    ngx_str_t                 conninfo;
    ngx_http_crm_pg_hooks_t   hooks;

    if (!crmcf->banner_used || crmcf->banners == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    ngx_memzero(&hooks, sizeof(ngx_http_crm_pg_hooks_t));
    hooks.errors = &crmcf->stats->errors;
    hooks.notify = ngx_http_crm_banner_notified;
    hooks.notify_data = crmcf;

    /*
     * LISTEN needs a session of its own: behind a pool in transaction
     * mode (pgbouncer) it goes straight to PostgreSQL, or to a pool in
     * session mode, by database.listen_conninfo
     */

    if (crmcf->policy->database.listen_conninfo.len) {
        conninfo.len = crmcf->policy->database.listen_conninfo.len;
        conninfo.data = crmcf->policy->database.listen_conninfo.data;

    } else {
        conninfo.len = crmcf->policy->database.conninfo.len;
        conninfo.data = crmcf->policy->database.conninfo.data;
    }

    crmcf->listen_pg = ngx_http_crm_pg_create(cycle, &conninfo, 1,
                           (ngx_msec_t) crmcf->policy->database.timeout,
                           &hooks);
    if (crmcf->listen_pg == NULL) {
        return NGX_ERROR;
    }

    ngx_http_crm_pg_on_connect(crmcf->listen_pg, "LISTEN crm_banner", 0,
                               NULL);

    return NGX_OK;
}


static void
ngx_http_crm_banner_notified(void *data, const char *channel,
    const char *payload)
{
    ngx_http_crm_main_conf_t *crmcf = data;

    ngx_int_t  cid;

    if (ngx_strcmp(channel, "crm_banner") != 0) {
        return;
    }

    cid = ngx_atoi((u_char *) payload, ngx_strlen(payload));

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "crm banner: customer %s changed", payload);

    if (cid > 0) {
        ngx_http_crm_banners_changed(crmcf, (uint64_t) cid,
                                     ngx_http_crm_banner_day(crmcf));
    }
}
