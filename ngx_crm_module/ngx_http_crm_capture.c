
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * crm_capture: in the precontent phase, reads the request body without
 * blocking (the mirror module's way: the body is preserved for the proxy),
 * takes the policy's fields, the cookie and the Idempotency-Key; a feedback
 * gets its ticket at once (ngx_http_crm_feedback.c), and an order waits for
 * its decision (ngx_http_crm_order.c) the auth_request module's way: the
 * decision's callback only stores it and wakes the request, and this
 * handler, run again, records the event (ngx_http_crm_event.c) and
 * declines.  The spool writer sends the event
 * line later: no request waits on PostgreSQL for it.
 *
 * The ctx goes through NGX_HTTP_CRM_PHASE_BODY (the body is being read),
 * _DECIDING (parked for the order decision), _READY (to be recorded) and
 * _DONE.  It is found again after an internal redirect through its pool
 * cleanup, which also records a request freed while it was parked.
 *
 * A body that is not JSON or a form, or that did not fit
 * client_body_buffer_size, goes on to the shop untouched; its event keeps
 * the raw bytes (base64) or, when too large, only the reason.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_order.h"
#include "ngx_http_crm_identity.h"
#include "ngx_http_crm_json.h"
#include "ngx_http_crm_form.h"
#include "ngx_http_crm_fields.h"
#include "ngx_http_crm_event.h"
#include "ngx_http_crm_feedback.h"


/* the longest order id or Idempotency-Key kept; a longer one is dropped */
#define NGX_HTTP_CRM_ID_MAX    128


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
static void ngx_http_crm_capture_cleanup(void *data);


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


ngx_int_t
ngx_http_crm_capture_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_crm_ctx_t       *ctx;
    ngx_http_crm_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_OFF || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_crm_get_ctx(r);

    if (ctx != NULL && ctx->started) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "crm capture handler again, phase %ui", ctx->phase);

        switch (ctx->phase) {

        case NGX_HTTP_CRM_PHASE_BODY:
        case NGX_HTTP_CRM_PHASE_DECIDING:
            return NGX_AGAIN;

        case NGX_HTTP_CRM_PHASE_READY:
            ngx_http_crm_event_record(r, ctx);
            ctx->phase = NGX_HTTP_CRM_PHASE_DONE;
            return NGX_DECLINED;

        default: /* NGX_HTTP_CRM_PHASE_DONE */
            return NGX_DECLINED;
        }
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm capture handler");

    /* crm_banner may have made the ctx already */

    if (ctx == NULL) {
        ctx = ngx_http_crm_ctx_new(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->started = 1;
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
 * park the request for the order decision or run the phases again, which
 * records the event.
 */

static void
ngx_http_crm_capture_body_handler(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t        *ctx;
    ngx_http_crm_loc_conf_t   *lcf;
    ngx_http_crm_main_conf_t  *crmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);
    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "crm capture body read");

    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_crm_event_id(ctx->event_id, crmcf);

    ctx->state = ngx_http_crm_pg_is_down(crmcf->pg)
                 ? NGX_HTTP_CRM_STATE_DB_UNAVAILABLE : NGX_HTTP_CRM_STATE_OK;

    ngx_http_crm_capture_parse(r, ctx);
    ngx_http_crm_identity_cookie(r, ctx);

    if (ctx->cookie_ok) {
        ctx->cookie_id = ctx->customer_id;
    }

    if (ctx->json.len) {
        ngx_http_crm_capture_fields(r, ctx, crmcf->policy);
    }

    ngx_http_crm_capture_bound(ctx);

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_FEEDBACK) {
        ngx_http_crm_feedback_decide(r, ctx);
    }

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_ORDER
        && ctx->state != NGX_HTTP_CRM_STATE_BAD_BODY
        && ngx_http_crm_order_decide(r, ctx) == NGX_OK)
    {
        /*
         * parked: the decision's callback wakes the request; a client
         * that leaves meanwhile ends it (499), as in the content phase
         */
        ctx->phase = NGX_HTTP_CRM_PHASE_DECIDING;
        r->read_event_handler = ngx_http_test_reading;
        return;
    }

    ctx->phase = NGX_HTTP_CRM_PHASE_READY;

    ngx_http_core_run_phases(r);
}


static void
ngx_http_crm_capture_parse(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *buf;
    ngx_str_t                  body;
    ngx_http_crm_main_conf_t  *crmcf;

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
        crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

        ctx->state = NGX_HTTP_CRM_STATE_BAD_BODY;
        (void) ngx_atomic_fetch_add(&crmcf->stats->bad_body, 1);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "crm: bad body, passed on untouched: %s", ctx->reason);
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

/*
 * The module's request context, found again after an internal redirect
 * through its pool cleanup (nginx clears module contexts then).
 */

ngx_http_crm_ctx_t *
ngx_http_crm_ctx_new(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_crm_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_crm_ctx_t));

    if (cln == NULL || ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_crm_module);

    cln->handler = ngx_http_crm_capture_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->pool = r->pool;

    return ctx;
}


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

            /*
             * redirected while its body was read: the read failed (413,
             * 400 from error_page), and no body handler will come
             */

            if (ctx->phase == NGX_HTTP_CRM_PHASE_BODY) {
                ctx->phase = NGX_HTTP_CRM_PHASE_DONE;
            }

            return ctx;
        }
    }

    return NULL;
}


/*
 * The request is freed before its event was recorded: the client left
 * while it was parked for its order decision (ngx_http_test_reading()
 * finalized it with 499), or between the decision and the handler's next
 * run.  A query still running is detached (its answer, if any, is
 * dropped) and the event is recorded undecided, so that PostgreSQL gives
 * back whatever the late decision reserves.
 */

static void
ngx_http_crm_capture_cleanup(void *data)
{
    ngx_http_crm_ctx_t  *ctx = data;

    ngx_http_crm_main_conf_t  *crmcf;

    if (ctx->phase != NGX_HTTP_CRM_PHASE_DECIDING
        && ctx->phase != NGX_HTTP_CRM_PHASE_READY)
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "crm capture cleanup, phase %ui", ctx->phase);

    if (ctx->parked) {
        ngx_http_crm_pg_detach(&ctx->query);
        ctx->parked = 0;

        crmcf = ngx_http_get_module_main_conf(ctx->request,
                                              ngx_http_crm_module);

        ctx->state = NGX_HTTP_CRM_STATE_DB_UNAVAILABLE;
        (void) ngx_atomic_fetch_add(&crmcf->stats->undecided, 1);

        if (ctx->reason == NULL) {
            ctx->reason = "the client left while the decision was awaited";
        }
    }

    ngx_http_crm_event_record(ctx->request, ctx);
    ctx->phase = NGX_HTTP_CRM_PHASE_DONE;
}


