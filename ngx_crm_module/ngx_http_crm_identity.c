
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Identity on the nginx side: the keys of identity.secret_file (read at
 * configuration time), the signed cookie read from a captured request and
 * set on the response to a decided order, the Idempotency-Key header, and
 * the removal of X-CRM-* request headers a client sends, so that the shop
 * can trust the ones nginx sets.
 *
 * identity.upstream_header: when the shop's response names a logged-in
 * customer's e-mail, the header is removed and the cookie set.  A header
 * filter cannot wait for PostgreSQL, so the customer's id comes from the
 * shared-memory cache; on a miss crm.identify_customer() is asked in the
 * background (the request does not wait, and may end before the answer)
 * and the cookie is set on the next response that names the customer.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_identity.h"
#include "ngx_http_crm_conf.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_fields.h"
#include "ngx_http_crm_cookie.h"
#include "ngx_http_crm_cache.h"


typedef struct {
    ngx_http_crm_pg_query_t   query;
    ngx_http_crm_cache_ctx_t *cache;
    const char               *values[2];
    size_t                    len;
    u_char                    email[1];
} ngx_http_crm_identify_t;


static void ngx_http_crm_identity_keys_release(void *data);
static ngx_uint_t ngx_http_crm_identity_is_crm(ngx_str_t *key);
static ngx_int_t ngx_http_crm_identity_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_crm_identity_set_cookie(ngx_http_request_t *r,
    uint64_t customer_id, ngx_http_crm_main_conf_t *crmcf);
static ngx_int_t ngx_http_crm_identity_upstream(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_uint_t cookie);
static void ngx_http_crm_identify(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, u_char *email, size_t len);
static void ngx_http_crm_identify_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);


static char  ngx_http_crm_identify_sql[] =
    "SELECT crm.identify_customer($1, $2)";


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* the cookie and the shop's login header: a header filter */

void
ngx_http_crm_identity_filter_init(void)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_crm_identity_header_filter;
}


/* the keys' HMAC states, with the configuration's pool */

static void
ngx_http_crm_identity_keys_release(void *data)
{
    ngx_http_crm_keys_release(data);
}


/*
 * identity.secret_file, relative to the nginx prefix.  A file that is not
 * there leaves the module without cookies, and says so; a file with a bad
 * key fails the configuration.
 */

ngx_int_t
ngx_http_crm_identity_keys(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    char                     err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_int_t                rc;
    ngx_str_t                name, data;
    ngx_http_crm_keys_t     *keys;
    ngx_pool_cleanup_t      *cln;
    ngx_http_crm_policy_t   *policy = crmcf->policy;

    name.len = policy->identity.secret_file.len;
    name.data = policy->identity.secret_file.data;

    if (ngx_conf_full_name(cf->cycle, &name, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_crm_conf_read_file(cf, &name, 64 * 1024, &data);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, cf->log, ngx_errno,
                      "crm: identity.secret_file \"%V\" cannot be opened: "
                      "no customer cookie is set or read", &name);
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "crm: identity.secret_file \"%V\" cannot be read, or "
                      "is not a small file", &name);
        return NGX_ERROR;
    }

    keys = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_keys_t));
    if (keys == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_crm_keys_parse(data.data, data.len, keys, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "crm: %V: %s", &name, err);
        return NGX_ERROR;
    }

    /* each key's pads hashed once, for the cookies of every request */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_crm_keys_prepare(keys) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: %V: the keys' HMAC states cannot be made",
                      &name);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_crm_identity_keys_release;
    cln->data = keys;

    crmcf->keys = keys;

    return NGX_OK;
}


/*
 * The customer of a valid cookie, and the Idempotency-Key, into ctx.
 * Every cookie of the name counts, in every Cookie header and wherever it
 * stands in one: the first valid one names the customer, and each one
 * that is malformed, expired or forged names nobody and is counted, the
 * ones after a valid one included.
 */

void
ngx_http_crm_identity_cookie(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    size_t                     vlen, offset;
    uint64_t                   id;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    const u_char              *value;
    ngx_list_part_t           *part;
    ngx_table_elt_t          **cookies, *h;
    ngx_http_crm_policy_t     *policy;
    ngx_http_crm_main_conf_t  *crmcf;

    static ngx_str_t  idem = ngx_string("Idempotency-Key");

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);
    policy = crmcf->policy;

    part = &r->headers_in.headers.part;
    i = 0;

    h = ngx_http_crm_header_next(&part, &i, &idem);
    if (h != NULL) {
        ctx->idempotency_key = h->value;
    }

    if (crmcf->keys == NULL) {
        return;
    }

    cookies = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {

        offset = 0;

        while (ngx_http_crm_cookie_find_next(cookies[i]->value.data,
                                             cookies[i]->value.len, &offset,
                                             policy->identity.cookie.data,
                                             policy->identity.cookie.len,
                                             &value, &vlen)
               == 0)
        {
            id = 0;
            rc = ngx_http_crm_cookie_verify(value, vlen, crmcf->keys,
                                            ngx_time(),
                                            policy->identity.max_age / 1000,
                                            &id);

            if (rc != NGX_HTTP_CRM_COOKIE_OK) {
                (void) ngx_atomic_fetch_add(&crmcf->stats->cookies_rejected,
                                            1);

                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "crm: customer cookie %s, ignored",
                              rc == NGX_HTTP_CRM_COOKIE_EXPIRED ? "expired"
                              : rc == NGX_HTTP_CRM_COOKIE_BAD_MAC ? "forged"
                              : "malformed");
                continue;
            }

            if (ctx->cookie_ok) {
                ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "crm: customer cookie for %uL after one for "
                               "%uL, ignored", id, ctx->customer_id);
                continue;
            }

            ctx->customer_id = id;
            ctx->cookie_ok = 1;

            ctx->customer.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
            if (ctx->customer.data != NULL) {
                ctx->customer.len = ngx_sprintf(ctx->customer.data, "%uL", id)
                                    - ctx->customer.data;
            }
        }
    }
}


/*
 * X-CRM-*, in any case, and X_CRM_* too: with underscores_in_headers on,
 * a FastCGI or CGI shop reads both as HTTP_X_CRM_*.
 */

static ngx_uint_t
ngx_http_crm_identity_is_crm(ngx_str_t *key)
{
    u_char  *k = key->data;

    return key->len > 6
           && (k[0] | 0x20) == 'x'
           && (k[1] == '-' || k[1] == '_')
           && ngx_strncasecmp(k + 2, (u_char *) "crm", 3) == 0
           && (k[5] == '-' || k[5] == '_');
}


/*
 * Post-read phase: X-CRM-* request headers from the client are removed, so
 * that the shop can trust the ones nginx adds; only in a server where the
 * module acts (ngx_http_crm_srv_conf_t), so that a second server of the
 * same nginx, proxied to by a front that set them, passes them on.  The
 * list is rebuilt only when there is one.
 */

ngx_int_t
ngx_http_crm_identity_strip(ngx_http_request_t *r)
{
    ngx_uint_t                i, found;
    ngx_list_t                headers;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h, *copy;
    ngx_http_crm_srv_conf_t  *cscf;

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_crm_module);

    if (!cscf->acts) {
        return NGX_DECLINED;
    }

    found = 0;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm identity strip handler");

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_crm_identity_is_crm(&h[i].key)) {
                found++;
            }
        }
    }

    if (found == 0) {
        return NGX_DECLINED;
    }

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_crm_identity_is_crm(&h[i].key)) {
                ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "crm: client header \"%V: %V\" removed",
                               &h[i].key, &h[i].value);
                continue;
            }

            copy = ngx_list_push(&headers);
            if (copy == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *copy = h[i];
        }
    }

    r->headers_in.headers = headers;

    /* the copy's last part may be its first, which lived on this stack */

    if (headers.last == &headers.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_crm_identity_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                 set;
    ngx_http_crm_ctx_t        *ctx;
    ngx_http_crm_main_conf_t  *crmcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_crm_get_ctx(r);
    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm identity header filter, status %ui, decided %d",
                   r->headers_out.status, ctx ? (int) ctx->decided : -1);

    /*
     * a cookie names a customer only for a browser that showed it is her:
     * the order created her, or it carried her valid cookie already
     */

    set = (ctx != NULL
           && ctx->decided
           && (ctx->created || ctx->cookie_id == ctx->customer_id)
           && crmcf->keys != NULL
           && r->headers_out.status >= 200
           && r->headers_out.status < 300);

    if (set
        && ngx_http_crm_identity_set_cookie(r, ctx->customer_id, crmcf)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the header naming the customer never reaches the client */

    if (crmcf->policy->identity.upstream_header.len
        && ngx_http_crm_identity_upstream(r, crmcf, !set) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * Set-Cookie: NAME=v1...; Max-Age=N; Path=/; HttpOnly; SameSite=Lax, and
 * Secure when the request came over TLS.
 */

static ngx_int_t
ngx_http_crm_identity_set_cookie(ngx_http_request_t *r, uint64_t customer_id,
    ngx_http_crm_main_conf_t *crmcf)
{
    u_char                 *p;
    size_t                  len, n;
    ngx_table_elt_t        *set;
    ngx_http_crm_policy_t  *policy = crmcf->policy;

    u_char                  value[NGX_HTTP_CRM_COOKIE_LEN_MAX];

    n = ngx_http_crm_cookie_sign(value, customer_id, ngx_time(), crmcf->keys);
    if (n == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: signing the customer cookie failed");
        return NGX_OK;
    }

    len = policy->identity.cookie.len + 1 + n
          + sizeof("; Max-Age=; Path=/; HttpOnly; SameSite=Lax; Secure") - 1
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    set = ngx_list_push(&r->headers_out.headers);
    if (set == NULL) {
        return NGX_ERROR;
    }

    set->hash = 1;
    ngx_str_set(&set->key, "Set-Cookie");
    set->value.data = p;

    p = ngx_sprintf(p, "%s=%*s; Max-Age=%L; Path=/; HttpOnly; SameSite=Lax",
                    policy->identity.cookie.data, n, value,
                    policy->identity.max_age / 1000);

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }
#endif

    set->value.len = p - set->value.data;

    return NGX_OK;
}


/*
 * The shop named a logged-in customer: the header never reaches the
 * client; unless a cookie is set already (cookie 0), it is set when the
 * cache knows the customer, else the customer is asked for in the
 * background.
 */

static ngx_int_t
ngx_http_crm_identity_upstream(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, ngx_uint_t cookie)
{
    u_char           *email;
    size_t            len;
    uint64_t          id;
    ngx_str_t        *name;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    name = (ngx_str_t *) &crmcf->policy->identity.upstream_header;
    found = NULL;

    part = &r->headers_out.headers.part;
    i = 0;

    while ((h = ngx_http_crm_header_next(&part, &i, name)) != NULL) {
        h->hash = 0;            /* not sent */
        found = h;
    }

    if (found == NULL || !cookie || crmcf->keys == NULL
        || crmcf->cache == NULL)
    {
        return NGX_OK;
    }

    email = ngx_pnalloc(r->pool, found->value.len);
    if (email == NULL) {
        return NGX_ERROR;
    }

    len = ngx_http_crm_email_normalize(found->value.data, found->value.len,
                                       email);
    if (len == 0) {
        return NGX_OK;
    }

    if (ngx_http_crm_cache_get(crmcf->cache, email, len, &id) == NGX_OK) {
        return ngx_http_crm_identity_set_cookie(r, id, crmcf);
    }

    ngx_http_crm_identify(r, crmcf, email, len);

    return NGX_OK;
}


/* a background query, owned by nobody but itself: freed when answered */

static void
ngx_http_crm_identify(ngx_http_request_t *r, ngx_http_crm_main_conf_t *crmcf,
    u_char *email, size_t len)
{
    ngx_http_crm_identify_t  *id;

    id = ngx_calloc(sizeof(ngx_http_crm_identify_t) + len, r->connection->log);
    if (id == NULL) {
        return;
    }

    ngx_memcpy(id->email, email, len);
    id->email[len] = '\0';
    id->len = len;
    id->cache = crmcf->cache;

    id->values[0] = (char *) id->email;
    id->values[1] = (char *) crmcf->policy_sha256;

    id->query.command = ngx_http_crm_identify_sql;
    id->query.nparams = 2;
    id->query.values = id->values;
    id->query.timeout = (ngx_msec_t) crmcf->policy->database.timeout;
    id->query.handler = ngx_http_crm_identify_done;
    id->query.data = id;

    if (ngx_http_crm_pg_send(crmcf->pg, &id->query) != NGX_OK) {
        ngx_free(id);
    }
}


static void
ngx_http_crm_identify_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_identify_t *id = q->data;

    ngx_int_t  n;

    if (res != NULL
        && PQresultStatus(res) == PGRES_TUPLES_OK
        && PQntuples(res) == 1
        && !PQgetisnull(res, 0, 0))
    {
        n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                     PQgetlength(res, 0, 0));

        if (n > 0) {
            (void) ngx_http_crm_cache_put(id->cache, id->email, id->len,
                                          (uint64_t) n);
        }
    }

    ngx_free(id);
}


/*
 * The next header named name (case-insensitive) at or after element *i of
 * *part, skipping removed ones (hash 0); the walk goes on from where the
 * last call stopped.  NULL when there is none.
 */

ngx_table_elt_t *
ngx_http_crm_header_next(ngx_list_part_t **part, ngx_uint_t *i,
    ngx_str_t *name)
{
    ngx_table_elt_t  *h;

    for ( ;; ) {

        if (*i >= (*part)->nelts) {
            if ((*part)->next == NULL) {
                return NULL;
            }

            *part = (*part)->next;
            *i = 0;
            continue;
        }

        h = (ngx_table_elt_t *) (*part)->elts + (*i)++;

        if (h->hash != 0
            && h->key.len == name->len
            && ngx_strncasecmp(h->key.data, name->data, name->len) == 0)
        {
            return h;
        }
    }
}
