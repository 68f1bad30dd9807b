
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * crm_capture: in the precontent phase, reads the request body without
 * blocking (the mirror module's way: the body is preserved for the proxy),
 * turns it into one event line and appends it to the worker's spool, then
 * lets the request go on.  The request never waits on PostgreSQL here: the
 * spool writer sends the line later.
 *
 * A body that is not JSON or a form, or that did not fit
 * client_body_buffer_size, goes on to the shop untouched; its event keeps
 * the raw bytes (base64) or, when too large, only the reason.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_json.h"
#include "ngx_http_crm_form.h"
#include "ngx_http_crm_fields.h"

#include <openssl/rand.h>


/* the longest order id or Idempotency-Key kept; a longer one is dropped */
#define NGX_HTTP_CRM_ID_MAX    128


static ngx_int_t ngx_http_crm_capture_handler(ngx_http_request_t *r);
static void ngx_http_crm_capture_body_handler(ngx_http_request_t *r);
static void ngx_http_crm_capture_parse(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
static ngx_int_t ngx_http_crm_capture_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_uint_t ngx_http_crm_capture_is_form(ngx_http_request_t *r);
static void ngx_http_crm_capture_fields(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, ngx_http_crm_policy_t *policy);
static void ngx_http_crm_capture_value(ngx_http_request_t *r,
    ngx_http_crm_json_value_t *v, ngx_str_t *value);
static void ngx_http_crm_capture_bound(ngx_http_crm_ctx_t *ctx);
static u_char *ngx_http_crm_capture_uuid(u_char *p,
    ngx_http_crm_main_conf_t *cmcf);
static void ngx_http_crm_capture_cleanup(void *data);


static ngx_str_t  ngx_http_crm_kinds[] = {
    ngx_null_string,
    ngx_string("order"),
    ngx_string("payment"),
    ngx_string("status"),
    ngx_string("feedback")
};


/* the fields each kind of event reads, as bits of ngx_http_crm_field_e */

#define ngx_http_crm_bit(f)  (1 << NGX_HTTP_CRM_FIELD_ ## f)

static ngx_uint_t  ngx_http_crm_kind_fields[] = {
    0,
    ngx_http_crm_bit(ORDER_ID) | ngx_http_crm_bit(EMAIL)
    | ngx_http_crm_bit(PHONE) | ngx_http_crm_bit(NAME)
    | ngx_http_crm_bit(BIRTHDAY) | ngx_http_crm_bit(TOTAL)
    | ngx_http_crm_bit(CURRENCY),                       /* order */
    ngx_http_crm_bit(ORDER_ID) | ngx_http_crm_bit(EMAIL)
    | ngx_http_crm_bit(PHONE) | ngx_http_crm_bit(TOTAL)
    | ngx_http_crm_bit(CURRENCY),                       /* payment */
    ngx_http_crm_bit(ORDER_ID) | ngx_http_crm_bit(STATUS)
    | ngx_http_crm_bit(ETA),                            /* status */
    ngx_http_crm_bit(ORDER_ID) | ngx_http_crm_bit(EMAIL)
    | ngx_http_crm_bit(PHONE) | ngx_http_crm_bit(NAME)
    | ngx_http_crm_bit(RATING) | ngx_http_crm_bit(CATEGORY)
    | ngx_http_crm_bit(MESSAGE)                         /* feedback */
};


/* the fields an event line carries, by their policy name */

static ngx_str_t  ngx_http_crm_field_names[] = {
    ngx_string("order_id"),
    ngx_string("email"),
    ngx_string("phone"),
    ngx_string("name"),
    ngx_string("birthday"),
    ngx_string("total"),
    ngx_string("currency"),
    ngx_string("status"),
    ngx_string("eta"),
    ngx_string("rating"),
    ngx_string("category"),
    ngx_string("message")
};


ngx_int_t
ngx_http_crm_capture_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_crm_capture_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_capture_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_pool_cleanup_t       *cln;
    ngx_http_crm_ctx_t       *ctx;
    ngx_http_crm_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_OFF || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx != NULL) {
        return ctx->done ? NGX_DECLINED : NGX_DONE;
    }

    /* the cleanup finds the ctx again after an internal redirect */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_crm_ctx_t));

    if (cln == NULL || ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_crm_module);

    cln->handler = ngx_http_crm_capture_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->pool = r->pool;
    ctx->received = *ngx_timeofday();

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_crm_capture_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


/*
 * The body is read: parse it, take the fields and the cookie, and either
 * park the request for the order decision or record the event and go on.
 */

static void
ngx_http_crm_capture_body_handler(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t        *ctx;
    ngx_http_crm_loc_conf_t   *lcf;
    ngx_http_crm_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    r->preserve_body = 1;

    (void) ngx_http_crm_capture_uuid(ctx->event_id, cmcf);

    ctx->state = ngx_http_crm_pg_is_down(cmcf->pg)
                 ? NGX_HTTP_CRM_STATE_DB_UNAVAILABLE : NGX_HTTP_CRM_STATE_OK;

    ngx_http_crm_capture_parse(r, ctx);
    ngx_http_crm_identity_cookie(r, ctx);

    if (ctx->cookie_ok) {
        ctx->cookie_id = ctx->customer_id;
    }

    if (ctx->json.len) {
        ngx_http_crm_capture_fields(r, ctx, cmcf->policy);
    }

    ngx_http_crm_capture_bound(ctx);

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_ORDER
        && ctx->state != NGX_HTTP_CRM_STATE_BAD_BODY
        && ngx_http_crm_order_decide(r, ctx) == NGX_OK)
    {
        /* parked: ngx_http_crm_order_done() records and resumes */
        return;
    }

    ngx_http_crm_capture_record(r, ctx);

    ctx->done = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static void
ngx_http_crm_capture_parse(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *buf;
    ngx_str_t                  body;
    ngx_http_crm_main_conf_t  *cmcf;

    if (ngx_http_crm_capture_body(r, &body) != NGX_OK) {
        ctx->reason = "body larger than client_body_buffer_size";

    } else if (body.len == 0) {
        ctx->reason = "empty body";

    } else if (ngx_http_crm_capture_is_form(r)) {
        ctx->form = 1;

        buf = ngx_pnalloc(r->pool, ngx_http_crm_form_json_size(body.len));
        if (buf == NULL) {
            ctx->reason = "out of memory";
            return;
        }

        if (ngx_http_crm_form_to_json(body.data, body.len, buf,
                                      &ctx->json.len, &ctx->reason)
            == 0)
        {
            ctx->json.data = buf;

        } else {
            ctx->raw = body;
        }

    } else if (ngx_http_crm_json_check(body.data, body.len,
                                       NGX_HTTP_CRM_JSON_DEPTH, &ctx->reason)
               == 0)
    {
        ctx->json = body;

    } else {
        ctx->raw = body;
    }

    if (ctx->reason != NULL) {
        cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

        ctx->state = NGX_HTTP_CRM_STATE_BAD_BODY;
        (void) ngx_atomic_fetch_add(&cmcf->stats->bad_body, 1);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "crm: bad body, passed on untouched: %s", ctx->reason);
    }
}


/*
 * Appends the event line to the spool:
 *   {"event_id","received_at","kind","node","policy","customer_id",
 *    "decided","order_id",<fields>,"payload"|"body","state","reason"}
 * Failures are logged and counted; the request goes on whatever happens.
 */

void
ngx_http_crm_capture_record(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *p, *q, *line;
    size_t                     len, i;
    ngx_str_t                  b64;
    ngx_http_crm_loc_conf_t   *lcf;
    ngx_http_crm_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    len = sizeof("{\"event_id\":\"\",\"received_at\":.000,\"kind\":\"\","
                 "\"node\":\"\",\"policy\":\"\",\"customer_id\":,"
                 "\"decided\":false,\"payload\":,"
                 "\"body\":\"\",\"state\":\"\",\"reason\":\"\"}\n")
          + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN + NGX_INT64_LEN
          + NGX_HTTP_CRM_SHA256_HEX
          + sizeof("feedback") + sizeof("db_unavailable")
          + cmcf->node.len
          + ctx->json.len
          + ngx_base64_encoded_length(ctx->raw.len)
          + (ctx->reason ? ngx_strlen(ctx->reason) * 6 : 0);

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (ctx->field[i].len) {
            len += sizeof(",\"\":\"\"") + ngx_http_crm_field_names[i].len
                   + ctx->field[i].len
                   + ngx_escape_json(NULL, ctx->field[i].data,
                                     ctx->field[i].len);
        }
    }

    /* ctx->pool: r->pool is NULL when the request is being freed */

    line = ngx_pnalloc(ctx->pool, len);
    if (line == NULL) {
        return;
    }

    p = ngx_sprintf(line, "{\"event_id\":\"%*s\",\"received_at\":%T.%03M,"
                    "\"kind\":\"%V\",\"node\":\"",
                    (size_t) NGX_HTTP_CRM_UUID_LEN, ctx->event_id,
                    ctx->received.sec, ctx->received.msec,
                    &ngx_http_crm_kinds[lcf->capture]);
    p = ngx_cpymem(p, cmcf->node.data, cmcf->node.len);
    p = ngx_sprintf(p, "\",\"policy\":\"%s\"", cmcf->policy_sha256);

    if (ctx->customer_id) {
        p = ngx_sprintf(p, ",\"customer_id\":%uL", ctx->customer_id);
    }

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_ORDER) {
        p = ngx_sprintf(p, ",\"decided\":%s",
                        ctx->decided ? "true" : "false");
    }

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (ctx->field[i].len) {
            p = ngx_sprintf(p, ",\"%V\":\"", &ngx_http_crm_field_names[i]);
            p = (u_char *) ngx_escape_json(p, ctx->field[i].data,
                                           ctx->field[i].len);
            *p++ = '"';
        }
    }

    if (ctx->json.len) {
        p = ngx_cpymem(p, ",\"payload\":", sizeof(",\"payload\":") - 1);

        /*
         * in valid JSON a raw CR or LF can only be white space (never
         * inside a string), so a space keeps the document and the line
         */

        p = ngx_cpymem(p, ctx->json.data, ctx->json.len);

        for (q = p - ctx->json.len; q < p; q++) {
            if (*q == '\n' || *q == '\r') {
                *q = ' ';
            }
        }
    }

    if (ctx->raw.len) {
        p = ngx_cpymem(p, ",\"body\":\"", sizeof(",\"body\":\"") - 1);
        b64.data = p;
        ngx_encode_base64(&b64, &ctx->raw);
        p += b64.len;
        *p++ = '"';
    }

    p = ngx_sprintf(p, ",\"state\":\"%V\"", &ngx_http_crm_states[ctx->state]);

    if (ctx->reason != NULL) {
        p = ngx_cpymem(p, ",\"reason\":\"", sizeof(",\"reason\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, (u_char *) ctx->reason,
                                       ngx_strlen(ctx->reason));
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '\n';

    if (cmcf->spool == NULL
        || ngx_http_crm_spool_append(cmcf->spool, line, p - line, 1)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: event not recorded: the spool is unusable");
        (void) ngx_atomic_fetch_add(&cmcf->stats->errors, 1);
    }
}


/*
 * Gives the whole body in one piece.  Returns NGX_DECLINED when it did not
 * fit in memory (client_body_buffer_size) and went to a temporary file.
 */

static ngx_int_t
ngx_http_crm_capture_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        return NGX_DECLINED;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            return NGX_DECLINED;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    b = r->request_body->bufs->buf;

    if (r->request_body->bufs->next == NULL) {
        body->data = b->pos;
        body->len = len;
        return NGX_OK;
    }

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    body->len = len;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_crm_capture_is_form(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    static u_char     form[] = "application/x-www-form-urlencoded";

    h = r->headers_in.content_type;

    return h != NULL
           && h->value.len >= sizeof(form) - 1
           && ngx_strncasecmp(h->value.data, form, sizeof(form) - 1) == 0;
}


/*
 * Takes the policy's fields from the JSON: strings unescaped, numbers as
 * their text; e-mail trimmed and lower-cased, phone digits only.  A form
 * was turned into an object whose keys are the dotted paths, so its
 * pointers become one segment.
 */

static void
ngx_http_crm_capture_fields(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx,
    ngx_http_crm_policy_t *policy)
{
    u_char                     *buf, found[NGX_HTTP_CRM_FIELD_N];
    size_t                      i, n, plen[NGX_HTTP_CRM_FIELD_N];
    ngx_str_t                  *f;
    ngx_uint_t                  field[NGX_HTTP_CRM_FIELD_N];
    const u_char               *ptr[NGX_HTTP_CRM_FIELD_N];
    ngx_http_crm_loc_conf_t    *lcf;
    ngx_http_crm_json_value_t   v[NGX_HTTP_CRM_FIELD_N];

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    /* the pointers this kind reads, in one pass over the document */

    n = 0;

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (!(ngx_http_crm_kind_fields[lcf->capture] & (1 << i))
            || policy->fields[i].len == 0)
        {
            continue;
        }

        ptr[n] = policy->fields[i].data;
        plen[n] = policy->fields[i].len;

        if (ctx->form) {
            buf = ngx_pnalloc(r->pool, plen[n]);
            if (buf == NULL
                || ngx_http_crm_form_pointer(ptr[n], plen[n], buf) < 0)
            {
                continue;
            }

            ptr[n] = buf;
        }

        field[n++] = i;
    }

    (void) ngx_http_crm_json_get_many(ctx->json.data, ctx->json.len, ptr,
                                      plen, n, v, found);

    for (i = 0; i < n; i++) {
        if (found[i]) {
            ngx_http_crm_capture_value(r, &v[i], &ctx->field[field[i]]);
        }
    }

    f = &ctx->field[NGX_HTTP_CRM_FIELD_EMAIL];

    if (f->len) {
        f->len = ngx_http_crm_email_normalize(f->data, f->len, f->data);

        if (f->len == 0 && ctx->reason == NULL) {
            ctx->reason = "the e-mail is not one (over 254 octets, no \"@\", "
                          "spaces or control characters): it names nobody";
        }
    }

    f = &ctx->field[NGX_HTTP_CRM_FIELD_PHONE];
    f->len = ngx_http_crm_phone_normalize(f->data, f->len, f->data);
}


/* a field's value: a string unescaped, a number as its text, else none */

static void
ngx_http_crm_capture_value(ngx_http_request_t *r,
    ngx_http_crm_json_value_t *v, ngx_str_t *value)
{
    ngx_str_null(value);

    if (v->type == NGX_HTTP_CRM_JSON_NUMBER) {
        value->data = ngx_pnalloc(r->pool, v->len);
        if (value->data == NULL) {
            return;
        }

        value->len = v->len;
        ngx_memcpy(value->data, v->start, v->len);
        return;
    }

    if (v->type != NGX_HTTP_CRM_JSON_STRING) {
        return;
    }

    value->data = ngx_pnalloc(r->pool, v->len + 1);
    if (value->data == NULL) {
        return;
    }

    value->len = ngx_http_crm_json_unescape(v->start, v->len, value->data);
}


/*
 * An order id or Idempotency-Key longer than NGX_HTTP_CRM_ID_MAX is no
 * key PostgreSQL can index: it is dropped, and the event says so.
 */

static void
ngx_http_crm_capture_bound(ngx_http_crm_ctx_t *ctx)
{
    ngx_str_t  *id;

    id = &ctx->field[NGX_HTTP_CRM_FIELD_ORDER_ID];

    if (id->len > NGX_HTTP_CRM_ID_MAX) {
        id->len = 0;

        if (ctx->reason == NULL) {
            ctx->reason = "order_id longer than 128 octets: dropped";
        }
    }

    if (ctx->idempotency_key.len > NGX_HTTP_CRM_ID_MAX) {
        ctx->idempotency_key.len = 0;

        if (ctx->reason == NULL) {
            ctx->reason = "Idempotency-Key longer than 128 octets: dropped";
        }
    }
}


/*
 * The request's ctx, also after an internal redirect (which clears the
 * module ctx): found again through the pool cleanup that the capture
 * handler registered, as the realip module does.
 */

ngx_http_crm_ctx_t *
ngx_http_crm_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_crm_capture_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_crm_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * The request is freed.  If it is still parked for its order decision,
 * the query is detached (its answer, if any, is dropped) and the event is
 * recorded undecided, so that PostgreSQL gives back whatever the late
 * decision reserves.
 */

static void
ngx_http_crm_capture_cleanup(void *data)
{
    ngx_http_crm_ctx_t  *ctx = data;

    ngx_http_crm_main_conf_t  *cmcf;

    if (!ctx->parked) {
        return;
    }

    ngx_http_crm_pg_detach(&ctx->query);
    ctx->parked = 0;

    cmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_crm_module);

    ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
    (void) ngx_atomic_fetch_add(&cmcf->stats->undecided, 1);

    if (ctx->reason == NULL) {
        ctx->reason = "the request ended while its decision was awaited";
    }

    ngx_http_crm_capture_record(ctx->request, ctx);
}


/*
 * A UUID (version 7 layout): 48 bits of Unix time in ms, then the worker's
 * random 32 bits and a 40-bit sequence, so ids are unique across workers,
 * restarts and nodes, and sort by time.
 */

static u_char *
ngx_http_crm_capture_uuid(u_char *p, ngx_http_crm_main_conf_t *cmcf)
{
    u_char       b[16];
    uint64_t     ms, seq;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;
    seq = cmcf->event_seq++;

    b[0] = (u_char) (ms >> 40);
    b[1] = (u_char) (ms >> 32);
    b[2] = (u_char) (ms >> 24);
    b[3] = (u_char) (ms >> 16);
    b[4] = (u_char) (ms >> 8);
    b[5] = (u_char) ms;
    b[6] = (u_char) (0x70 | ((seq >> 36) & 0x0f));
    b[7] = (u_char) (seq >> 28);
    b[8] = (u_char) (0x80 | ((seq >> 22) & 0x3f));
    b[9] = (u_char) (seq >> 14);
    b[10] = (u_char) (seq >> 6);
    b[11] = (u_char) (((seq & 0x3f) << 2) | (cmcf->event_rand >> 30));
    b[12] = (u_char) (cmcf->event_rand >> 22);
    b[13] = (u_char) (cmcf->event_rand >> 14);
    b[14] = (u_char) (cmcf->event_rand >> 6);
    b[15] = (u_char) (cmcf->event_rand << 2);

    p = ngx_hex_dump(p, b, 4);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 4, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 6, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 8, 2);
    *p++ = '-';
    return ngx_hex_dump(p, b + 10, 6);
}


/* a random start for this worker's event ids */

ngx_int_t
ngx_http_crm_capture_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *cmcf)
{
    u_char  r[8];

    if (RAND_bytes(r, sizeof(r)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "crm: RAND_bytes() failed");
        return NGX_ERROR;
    }

    cmcf->event_rand = ((uint32_t) r[0] << 24) | (r[1] << 16) | (r[2] << 8)
                       | r[3];

    /* the node name, JSON-escaped once for every event line */

    cmcf->node.data = ngx_pnalloc(cycle->pool,
                                  cycle->hostname.len
                                  + ngx_escape_json(NULL,
                                                    cycle->hostname.data,
                                                    cycle->hostname.len));
    if (cmcf->node.data == NULL) {
        return NGX_ERROR;
    }

    cmcf->node.len = (u_char *) ngx_escape_json(cmcf->node.data,
                                                cycle->hostname.data,
                                                cycle->hostname.len)
                     - cmcf->node.data;
    cmcf->event_seq = ((uint64_t) r[4] << 24) | (r[5] << 16) | (r[6] << 8)
                      | r[7];

    return NGX_OK;
}
