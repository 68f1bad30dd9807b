
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
#include "ngx_http_crm_json.h"


static void ngx_http_crm_order_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_crm_order_decision(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, u_char *json, size_t len);
static ngx_int_t ngx_http_crm_order_string(ngx_http_request_t *r,
    u_char *json, size_t len, char *pointer, ngx_str_t *value);
static u_char *ngx_http_crm_order_field(u_char *p, char *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_crm_order_log(ngx_http_request_t *r);


static char  ngx_http_crm_decide_sql[] =
    "SELECT crm.decide_order($1::jsonb, $2)";


ngx_int_t
ngx_http_crm_order_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_crm_order_log;

    return NGX_OK;
}


/*
 * Sends the decision query.  Returns NGX_OK when the request is parked
 * (ngx_http_crm_order_done() resumes it), NGX_DECLINED when it goes on at
 * once: the database is known to be down, or the order names nobody.
 */

ngx_int_t
ngx_http_crm_order_decide(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *p, *json;
    size_t                     len, i;
    ngx_http_crm_pg_query_t   *q;
    ngx_http_crm_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (ctx->field[NGX_HTTP_CRM_FIELD_EMAIL].len == 0
        && ctx->field[NGX_HTTP_CRM_FIELD_PHONE].len == 0
        && ctx->customer_id == 0)
    {
        ctx->state = NGX_HTTP_CRM_STATE_NO_CUSTOMER;
        (void) ngx_atomic_fetch_add(&cmcf->stats->no_customer, 1);
        return NGX_DECLINED;
    }

    if (ngx_http_crm_pg_is_down(cmcf->pg)) {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&cmcf->stats->undecided, 1);
        return NGX_DECLINED;
    }

    len = sizeof("{\"event_id\":\"\",\"customer_id\":,"
                 "\"idempotency_key\":\"\"}") + NGX_HTTP_CRM_UUID_LEN
          + NGX_INT64_LEN + 6 * ctx->idempotency_key.len;

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        len += sizeof(",\"birthday\":\"\"") + 6 * ctx->field[i].len;
    }

    json = ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(json, "{\"event_id\":\"%*s\"",
                    (size_t) NGX_HTTP_CRM_UUID_LEN, ctx->event_id);

    if (ctx->customer_id) {
        p = ngx_sprintf(p, ",\"customer_id\":%uL", ctx->customer_id);
    }

    p = ngx_http_crm_order_field(p, "idempotency_key", &ctx->idempotency_key);
    p = ngx_http_crm_order_field(p, "order_id",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_ORDER_ID]);
    p = ngx_http_crm_order_field(p, "email",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_EMAIL]);
    p = ngx_http_crm_order_field(p, "phone",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_PHONE]);
    p = ngx_http_crm_order_field(p, "name",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_NAME]);
    p = ngx_http_crm_order_field(p, "birthday",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_BIRTHDAY]);
    p = ngx_http_crm_order_field(p, "total",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_TOTAL]);
    p = ngx_http_crm_order_field(p, "currency",
                                 &ctx->field[NGX_HTTP_CRM_FIELD_CURRENCY]);
    *p++ = '}';
    *p = '\0';

    q = &ctx->query;

    ctx->values[0] = (char *) json;
    ctx->values[1] = (char *) cmcf->policy_sha256;

    q->command = ngx_http_crm_decide_sql;
    q->nparams = 2;
    q->values = ctx->values;
    q->timeout = (ngx_msec_t) cmcf->policy->database.timeout;
    q->handler = ngx_http_crm_order_done;
    q->data = ctx;

    if (ngx_http_crm_pg_send(cmcf->pg, q) != NGX_OK) {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&cmcf->stats->undecided, 1);
        return NGX_DECLINED;
    }

    /* a request freed while parked: see ngx_http_crm_capture_cleanup() */

    ctx->parked = 1;
    r->main->count++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm order parked: %s", json);

    return NGX_OK;
}


/* the decision arrived, failed or timed out: record and resume */

static void
ngx_http_crm_order_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_ctx_t *ctx = q->data;

    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_crm_main_conf_t  *cmcf;

    r = ctx->request;
    c = r->connection;
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    ctx->parked = 0;

    if (res == NULL
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1
        || PQgetisnull(res, 0, 0))
    {
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_crm_order_decision(r, ctx,
                                         (u_char *) PQgetvalue(res, 0, 0),
                                         PQgetlength(res, 0, 0));
    }

    if (rc == NGX_OK) {
        ctx->decided = 1;
        ctx->state = NGX_HTTP_CRM_STATE_OK;
        (void) ngx_atomic_fetch_add(&cmcf->stats->decided, 1);

    } else if (rc == NGX_DECLINED) {
        ctx->state = NGX_HTTP_CRM_STATE_CONFLICT;
        (void) ngx_atomic_fetch_add(&cmcf->stats->conflicts, 1);
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "crm: order id or Idempotency-Key sent again with "
                      "another identity: no decision");

    } else {
        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&cmcf->stats->undecided, 1);
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "crm: no order decision in time: the order goes on "
                      "without one");
    }

    ngx_http_crm_capture_record(r, ctx);

    ctx->done = 1;
    r->main->count--;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);

    ngx_http_run_posted_requests(c);
}


/*
 * Reads crm.decide_order()'s answer:
 *   {"customer_id":42,"card":"CRM-1"|null,"tier":"gold"|null,
 *    "discount":10,"promises":[3,7],"gift":"tea"|null,"holdout":false,
 *    "created":true}
 * Returns NGX_DECLINED for {"conflict":true,...}: the order id was sent
 * again with another identity, and nothing is decided.
 */

static ngx_int_t
ngx_http_crm_order_decision(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx,
    u_char *json, size_t len)
{
    u_char                     *p;
    size_t                      i;
    ngx_int_t                   n;
    ngx_http_crm_json_value_t   v;

    if (ngx_http_crm_json_get(json, len, (u_char *) "/conflict", 9, &v) == 0
        && v.type == NGX_HTTP_CRM_JSON_TRUE)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_crm_json_get(json, len, (u_char *) "/customer_id", 12, &v)
        != 0
        || v.type != NGX_HTTP_CRM_JSON_NUMBER)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: crm.decide_order() answered without a "
                      "customer: %*s", len, json);
        return NGX_ERROR;
    }

    n = ngx_atoi((u_char *) v.start, v.len);
    if (n <= 0) {
        return NGX_ERROR;
    }

    ctx->customer_id = (uint64_t) n;

    ctx->customer.data = ngx_pnalloc(r->pool, v.len);
    if (ctx->customer.data == NULL) {
        return NGX_ERROR;
    }

    ctx->customer.len = v.len;
    ngx_memcpy(ctx->customer.data, v.start, v.len);

    if (ngx_http_crm_json_get(json, len, (u_char *) "/discount", 9, &v) == 0
        && v.type == NGX_HTTP_CRM_JSON_NUMBER)
    {
        n = ngx_atoi((u_char *) v.start, v.len);
        ctx->discount = (n > 0) ? (ngx_uint_t) n : 0;
    }

    if (ngx_http_crm_json_get(json, len, (u_char *) "/holdout", 8, &v) == 0)
    {
        ctx->holdout = (v.type == NGX_HTTP_CRM_JSON_TRUE);
    }

    if (ngx_http_crm_json_get(json, len, (u_char *) "/created", 8, &v) == 0)
    {
        ctx->created = (v.type == NGX_HTTP_CRM_JSON_TRUE);
    }

    /* promise ids: [3, 7] -> 3,7 */

    if (ngx_http_crm_json_get(json, len, (u_char *) "/promises", 9, &v) == 0
        && v.type == NGX_HTTP_CRM_JSON_ARRAY)
    {
        p = ngx_pnalloc(r->pool, v.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->promise.data = p;

        for (i = 0; i < v.len; i++) {
            if (v.start[i] >= '0' && v.start[i] <= '9') {
                *p++ = v.start[i];

            } else if (v.start[i] == ',') {
                *p++ = ',';
            }
        }

        ctx->promise.len = p - ctx->promise.data;
    }

    if (ngx_http_crm_order_string(r, json, len, "/card", &ctx->card)
        != NGX_OK
        || ngx_http_crm_order_string(r, json, len, "/tier", &ctx->tier)
           != NGX_OK
        || ngx_http_crm_order_string(r, json, len, "/gift", &ctx->gift)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a string of the answer, unescaped, into value; null or absent: empty */

static ngx_int_t
ngx_http_crm_order_string(ngx_http_request_t *r, u_char *json, size_t len,
    char *pointer, ngx_str_t *value)
{
    ngx_http_crm_json_value_t  v;

    ngx_str_null(value);

    if (ngx_http_crm_json_get(json, len, (u_char *) pointer,
                              ngx_strlen(pointer), &v)
        != 0
        || v.type != NGX_HTTP_CRM_JSON_STRING)
    {
        return NGX_OK;
    }

    value->data = ngx_pnalloc(r->pool, v.len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = ngx_http_crm_json_unescape(v.start, v.len, value->data);

    return NGX_OK;
}


static u_char *
ngx_http_crm_order_field(u_char *p, char *name, ngx_str_t *value)
{
    if (value->len == 0) {
        return p;
    }

    p = ngx_sprintf(p, ",\"%s\":\"", name);
    p = (u_char *) ngx_escape_json(p, value->data, value->len);
    *p++ = '"';

    return p;
}


/*
 * The log phase of a decided order: the upstream's status goes to the
 * spool, to keep or release what the decision reserved.  499 when the
 * client went away before an answer.
 */

static ngx_int_t
ngx_http_crm_order_log(ngx_http_request_t *r)
{
    u_char                    *p, *line;
    size_t                     len;
    ngx_uint_t                 status;
    ngx_time_t                *tp;
    ngx_str_t                 *order_id;
    ngx_http_crm_ctx_t        *ctx;
    ngx_http_crm_main_conf_t  *cmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx == NULL || !ctx->decided) {
        return NGX_OK;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    status = r->headers_out.status;

    if (status == 0) {
        status = 499;
    }

    order_id = &ctx->field[NGX_HTTP_CRM_FIELD_ORDER_ID];

    len = sizeof(NGX_HTTP_CRM_RESULT_LINE "\"event_id\":\"\","
                 "\"received_at\":.000,\"order_id\":\"\",\"status\":,"
                 "\"policy\":\"\"}\n")
          + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN + NGX_INT_T_LEN
          + NGX_HTTP_CRM_SHA256_HEX + 6 * order_id->len;

    line = ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    p = ngx_sprintf(line, NGX_HTTP_CRM_RESULT_LINE "\"event_id\":\"%*s\","
                    "\"received_at\":%T.%03M,\"order_id\":\"",
                    (size_t) NGX_HTTP_CRM_UUID_LEN, ctx->event_id,
                    tp->sec, tp->msec);
    p = (u_char *) ngx_escape_json(p, order_id->data, order_id->len);
    p = ngx_sprintf(p, "\",\"status\":%ui,\"policy\":\"%s\"}\n",
                    status, cmcf->policy_sha256);

    if (cmcf->spool == NULL
        || ngx_http_crm_spool_append(cmcf->spool, line, p - line, 0)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: order result not recorded: the spool is "
                      "unusable");
        (void) ngx_atomic_fetch_add(&cmcf->stats->errors, 1);
    }

    return NGX_OK;
}
