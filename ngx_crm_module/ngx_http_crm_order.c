
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The order decision: before an order goes upstream, one round trip to
 * PostgreSQL (crm.decide_order) finds or creates the customer, reserves the
 * open promises, decides tier and gift, and records the attempt.  The
 * request waits for it parked in the precontent phase, at most
 * database.timeout; then the variables carry the decision to the shop.
 * Without an answer in time the order goes on with no decision
 * ($crm_state = db_unavailable) and nothing is invented later.
 *
 * When the request ends (log phase) the upstream's status goes to the
 * spool as an "order_result" line: 2xx keeps the reserved promises,
 * anything else releases them.  A client that goes away while its request
 * is parked takes the query with it: the request pool's cleanup detaches
 * it, and the reservation is released as the order never got a result.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_order.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_event.h"


static void ngx_http_crm_order_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_crm_order_decision(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_crm_order_column(ngx_http_request_t *r,
    PGresult *res, int col, ngx_str_t *value);
static u_char *ngx_http_crm_order_param(u_char *p, ngx_str_t *value,
    const char **param);


/*
 * The parameters and the row's columns, in order; fields absent are NULL.
 * No named statement: it must work behind pgbouncer in transaction mode.
 */

static char  ngx_http_crm_decide_sql[] =
    "SELECT customer_id, card, tier, discount, promises, gift, holdout,"
    " conflict, created"
    " FROM crm.decide_order($1::uuid, $2::text, $3::text, $4::text,"
    " $5::text, $6::bigint, $7::text, $8::text, $9::text, $10::text,"
    " $11::text)";

enum {
    NGX_HTTP_CRM_DECIDE_EVENT_ID = 0,
    NGX_HTTP_CRM_DECIDE_ORDER_ID,
    NGX_HTTP_CRM_DECIDE_KEY,
    NGX_HTTP_CRM_DECIDE_EMAIL,
    NGX_HTTP_CRM_DECIDE_PHONE,
    NGX_HTTP_CRM_DECIDE_COOKIE_ID,
    NGX_HTTP_CRM_DECIDE_NAME,
    NGX_HTTP_CRM_DECIDE_BIRTHDAY,
    NGX_HTTP_CRM_DECIDE_TOTAL,
    NGX_HTTP_CRM_DECIDE_CURRENCY,
    NGX_HTTP_CRM_DECIDE_POLICY
};

enum {
    NGX_HTTP_CRM_ROW_CUSTOMER_ID = 0,
    NGX_HTTP_CRM_ROW_CARD,
    NGX_HTTP_CRM_ROW_TIER,
    NGX_HTTP_CRM_ROW_DISCOUNT,
    NGX_HTTP_CRM_ROW_PROMISES,
    NGX_HTTP_CRM_ROW_GIFT,
    NGX_HTTP_CRM_ROW_HOLDOUT,
    NGX_HTTP_CRM_ROW_CONFLICT,
    NGX_HTTP_CRM_ROW_CREATED,
    NGX_HTTP_CRM_ROW_N
};


/*
 * Sends the decision query.  Returns NGX_OK when the request is parked
 * (ngx_http_crm_order_done() resumes it), NGX_DECLINED when it goes on at
 * once: the database is known to be down, or the order names nobody.
 */

ngx_int_t
ngx_http_crm_order_decide(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *p;
    size_t                     len, i;
    const char               **v;
    ngx_http_crm_pg_query_t   *q;
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (ctx->field[NGX_HTTP_CRM_FIELD_EMAIL].len == 0
        && ctx->field[NGX_HTTP_CRM_FIELD_PHONE].len == 0
        && ctx->customer_id == 0)
    {
        ctx->state = NGX_HTTP_CRM_STATE_NO_CUSTOMER;
        (void) ngx_atomic_fetch_add(&crmcf->stats->no_customer, 1);
        return NGX_DECLINED;
    }

    if (ngx_http_crm_pg_is_down(crmcf->pg)) {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&crmcf->stats->undecided, 1);
        return NGX_DECLINED;
    }

    /* the parameters, NUL-terminated, in one buffer */

    len = NGX_HTTP_CRM_UUID_LEN + 1 + NGX_INT64_LEN + 1
          + ctx->idempotency_key.len + 1;

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        len += ctx->field[i].len + 1;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    v = ctx->values;

    v[NGX_HTTP_CRM_DECIDE_EVENT_ID] = (char *) p;
    p = ngx_cpymem(p, ctx->event_id, NGX_HTTP_CRM_UUID_LEN);
    *p++ = '\0';

    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_ORDER_ID],
                                 &v[NGX_HTTP_CRM_DECIDE_ORDER_ID]);
    p = ngx_http_crm_order_param(p, &ctx->idempotency_key,
                                 &v[NGX_HTTP_CRM_DECIDE_KEY]);
    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_EMAIL],
                                 &v[NGX_HTTP_CRM_DECIDE_EMAIL]);
    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_PHONE],
                                 &v[NGX_HTTP_CRM_DECIDE_PHONE]);

    v[NGX_HTTP_CRM_DECIDE_COOKIE_ID] = NULL;

    if (ctx->cookie_id) {
        v[NGX_HTTP_CRM_DECIDE_COOKIE_ID] = (char *) p;
        p = ngx_sprintf(p, "%uL%Z", ctx->cookie_id);
    }

    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_NAME],
                                 &v[NGX_HTTP_CRM_DECIDE_NAME]);
    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_BIRTHDAY],
                                 &v[NGX_HTTP_CRM_DECIDE_BIRTHDAY]);
    p = ngx_http_crm_order_param(p, &ctx->field[NGX_HTTP_CRM_FIELD_TOTAL],
                                 &v[NGX_HTTP_CRM_DECIDE_TOTAL]);
    (void) ngx_http_crm_order_param(p,
                                 &ctx->field[NGX_HTTP_CRM_FIELD_CURRENCY],
                                 &v[NGX_HTTP_CRM_DECIDE_CURRENCY]);

    v[NGX_HTTP_CRM_DECIDE_POLICY] = (char *) crmcf->policy_sha256;

    q = &ctx->query;

    q->command = ngx_http_crm_decide_sql;
    q->nparams = NGX_HTTP_CRM_DECIDE_N;
    q->values = ctx->values;
    q->timeout = (ngx_msec_t) crmcf->policy->database.timeout;
    q->handler = ngx_http_crm_order_done;
    q->data = ctx;
    q->urgent = 1;                  /* the order waits for it */

    if (ngx_http_crm_pg_send(crmcf->pg, q) != NGX_OK) {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&crmcf->stats->undecided, 1);
        return NGX_DECLINED;
    }

    /* a request freed while parked: see ngx_http_crm_capture_cleanup() */

    ctx->parked = 1;
    r->main->count++;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm order parked: event %s, order \"%s\", email \"%s\"",
                   v[NGX_HTTP_CRM_DECIDE_EVENT_ID],
                   v[NGX_HTTP_CRM_DECIDE_ORDER_ID]
                   ? v[NGX_HTTP_CRM_DECIDE_ORDER_ID] : "",
                   v[NGX_HTTP_CRM_DECIDE_EMAIL]
                   ? v[NGX_HTTP_CRM_DECIDE_EMAIL] : "");

    return NGX_OK;
}


/* the decision arrived, failed or timed out: keep it and wake the request */

static void
ngx_http_crm_order_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_ctx_t *ctx = q->data;

    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_crm_main_conf_t  *crmcf;

    r = ctx->request;
    c = r->connection;
    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    ctx->parked = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "crm order decision callback, result %p, status %s",
                   res, res ? PQresStatus(PQresultStatus(res)) : "none");

    if (res == NULL
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1
        || PQnfields(res) != NGX_HTTP_CRM_ROW_N)
    {
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_crm_order_decision(r, ctx, res);
    }

    if (rc == NGX_OK) {
        ctx->decided = 1;
        ctx->state = NGX_HTTP_CRM_STATE_OK;
        (void) ngx_atomic_fetch_add(&crmcf->stats->decided, 1);

    } else if (rc == NGX_DECLINED) {
        ctx->state = NGX_HTTP_CRM_STATE_CONFLICT;
        (void) ngx_atomic_fetch_add(&crmcf->stats->conflicts, 1);
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "crm: order id or Idempotency-Key sent again with "
                      "another identity: no decision");

    } else {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&crmcf->stats->undecided, 1);
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "crm: no order decision in time: the order goes on "
                      "without one");
    }

    /* only the result here: the capture handler, run again, records */

    ctx->phase = NGX_HTTP_CRM_PHASE_READY;
    r->main->count--;
    r->read_event_handler = ngx_http_block_reading;

    if (ngx_terminate) {
        /* the worker is dying (pool destroyed): record, send nothing on */
        ngx_http_crm_event_record(r, ctx);
        ctx->phase = NGX_HTTP_CRM_PHASE_DONE;
        return;
    }

    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}


/*
 * Reads crm.decide_order()'s row: customer_id, card, tier, discount,
 * promises ("{3,7}"), gift, holdout, conflict, created.  Returns
 * NGX_DECLINED for a conflict (the order id was sent again with another
 * identity: nothing is decided), NGX_ERROR for a row without a customer.
 */

static ngx_int_t
ngx_http_crm_order_decision(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx,
    PGresult *res)
{
    u_char     *p, *s;
    size_t      i, len;
    ngx_int_t   n;

    if (*PQgetvalue(res, 0, NGX_HTTP_CRM_ROW_CONFLICT) == 't') {
        return NGX_DECLINED;
    }

    s = (u_char *) PQgetvalue(res, 0, NGX_HTTP_CRM_ROW_CUSTOMER_ID);
    len = PQgetlength(res, 0, NGX_HTTP_CRM_ROW_CUSTOMER_ID);
    n = ngx_atoi(s, len);

    if (n <= 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: crm.decide_order() answered without a "
                      "customer");
        return NGX_ERROR;
    }

    ctx->customer_id = (uint64_t) n;

    s = (u_char *) PQgetvalue(res, 0, NGX_HTTP_CRM_ROW_DISCOUNT);
    n = ngx_atoi(s, PQgetlength(res, 0, NGX_HTTP_CRM_ROW_DISCOUNT));
    ctx->discount = (n > 0) ? (ngx_uint_t) n : 0;

    ctx->holdout = (*PQgetvalue(res, 0, NGX_HTTP_CRM_ROW_HOLDOUT) == 't');
    ctx->created = (*PQgetvalue(res, 0, NGX_HTTP_CRM_ROW_CREATED) == 't');

    if (ngx_http_crm_order_column(r, res, NGX_HTTP_CRM_ROW_CUSTOMER_ID,
                                  &ctx->customer)
        != NGX_OK
        || ngx_http_crm_order_column(r, res, NGX_HTTP_CRM_ROW_CARD,
                                     &ctx->card)
           != NGX_OK
        || ngx_http_crm_order_column(r, res, NGX_HTTP_CRM_ROW_TIER,
                                     &ctx->tier)
           != NGX_OK
        || ngx_http_crm_order_column(r, res, NGX_HTTP_CRM_ROW_GIFT,
                                     &ctx->gift)
           != NGX_OK
        || ngx_http_crm_order_column(r, res, NGX_HTTP_CRM_ROW_PROMISES,
                                     &ctx->promise)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* promise ids: {3,7} -> 3,7 */

    p = ctx->promise.data;

    for (i = 0; i < ctx->promise.len; i++) {
        if (ctx->promise.data[i] != '{' && ctx->promise.data[i] != '}') {
            *p++ = ctx->promise.data[i];
        }
    }

    ctx->promise.len = p - ctx->promise.data;

    return NGX_OK;
}


/* a column of the row, copied into the pool; NULL: empty */

static ngx_int_t
ngx_http_crm_order_column(ngx_http_request_t *r, PGresult *res, int col,
    ngx_str_t *value)
{
    ngx_str_null(value);

    if (PQgetisnull(res, 0, col)) {
        return NGX_OK;
    }

    value->len = PQgetlength(res, 0, col);
    value->data = ngx_pnalloc(r->pool, value->len);

    if (value->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, PQgetvalue(res, 0, col), value->len);

    return NGX_OK;
}


/* a field as a parameter: copied NUL-terminated at p, or NULL if empty */

static u_char *
ngx_http_crm_order_param(u_char *p, ngx_str_t *value, const char **param)
{
    if (value->len == 0) {
        *param = NULL;
        return p;
    }

    *param = (char *) p;
    p = ngx_cpymem(p, value->data, value->len);
    *p++ = '\0';

    return p;
}


/*
 * The log phase of a decided order: the upstream's status goes to the
 * spool, to keep or release what the decision reserved.  499 when the
 * client went away before an answer.
 */

ngx_int_t
ngx_http_crm_order_log(ngx_http_request_t *r)
{
    ngx_uint_t           status;
    ngx_http_crm_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx == NULL) {
        return NGX_OK;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm order log handler: decided %d, status %ui, state %V",
                   (int) ctx->decided, r->headers_out.status,
                   &ngx_http_crm_states[ctx->state]);

    if (!ctx->decided) {
        return NGX_OK;
    }

    status = r->headers_out.status;

    if (status == 0) {
        status = 499;
    }

    ngx_http_crm_event_result(r, ctx, status);

    return NGX_OK;
}
