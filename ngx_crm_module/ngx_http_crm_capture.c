
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
#include "ngx_http_crm_body.h"

#include <openssl/rand.h>


#define NGX_HTTP_CRM_UUID_LEN  36


static ngx_int_t ngx_http_crm_capture_handler(ngx_http_request_t *r);
static void ngx_http_crm_capture_body_handler(ngx_http_request_t *r);
static void ngx_http_crm_capture_event(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
static ngx_int_t ngx_http_crm_capture_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_uint_t ngx_http_crm_capture_is_form(ngx_http_request_t *r);
static void ngx_http_crm_capture_field(ngx_str_t *json,
    ngx_http_crm_str_t *pointer, ngx_uint_t form, u_char *buf,
    ngx_str_t *value);
static u_char *ngx_http_crm_capture_uuid(u_char *p,
    ngx_http_crm_main_conf_t *cmcf);


static ngx_str_t  ngx_http_crm_kinds[] = {
    ngx_null_string,
    ngx_string("order"),
    ngx_string("payment"),
    ngx_string("status"),
    ngx_string("feedback")
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
    ngx_http_crm_ctx_t       *ctx;
    ngx_http_crm_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_OFF || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);

    if (ctx != NULL) {
        return ctx->done ? NGX_DECLINED : NGX_DONE;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_crm_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_crm_module);

    ctx->received = *ngx_timeofday();

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_crm_capture_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


static void
ngx_http_crm_capture_body_handler(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_crm_module);

    ngx_http_crm_capture_event(r, ctx);

    ctx->done = 1;

    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * Builds the event line:
 *   {"event_id":..,"received_at":..,"kind":..,"node":..,"order_id":..,
 *    "payload":<JSON>|"body":"<base64>","state":..,"reason":..}
 * and appends it to the spool.  Failures are logged and counted; the
 * request goes on whatever happens here.
 */

static void
ngx_http_crm_capture_event(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *p, *line, *json_buf, *field_buf;
    size_t                     len;
    ngx_str_t                  body, json, raw, order_id;
    ngx_uint_t                 form;
    const char                *reason;
    ngx_http_crm_loc_conf_t   *lcf;
    ngx_http_crm_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    ctx->state = ngx_http_crm_pg_is_down(cmcf->pg)
                 ? NGX_HTTP_CRM_STATE_DB_UNAVAILABLE : NGX_HTTP_CRM_STATE_OK;

    ngx_str_null(&json);
    ngx_str_null(&raw);
    ngx_str_null(&order_id);
    reason = NULL;
    form = 0;

    if (ngx_http_crm_capture_body(r, &body) != NGX_OK) {
        reason = "body larger than client_body_buffer_size";

    } else if (body.len == 0) {
        reason = "empty body";

    } else if (ngx_http_crm_capture_is_form(r)) {
        form = 1;

        json_buf = ngx_pnalloc(r->pool, ngx_http_crm_form_json_size(body.len));
        if (json_buf == NULL) {
            return;
        }

        if (ngx_http_crm_form_to_json(body.data, body.len, json_buf,
                                      &json.len, &reason)
            == 0)
        {
            json.data = json_buf;

        } else {
            raw = body;
        }

    } else if (ngx_http_crm_json_check(body.data, body.len,
                                       NGX_HTTP_CRM_JSON_DEPTH, &reason)
               == 0)
    {
        json = body;

    } else {
        raw = body;
    }

    if (reason != NULL) {
        ctx->state = NGX_HTTP_CRM_STATE_BAD_BODY;
        (void) ngx_atomic_fetch_add(&cmcf->stats->bad_body, 1);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "crm: bad body, passed on untouched: %s", reason);
    }

    if (json.len) {
        field_buf = ngx_pnalloc(r->pool, json.len + 2);
        if (field_buf == NULL) {
            return;
        }

        ngx_http_crm_capture_field(&json,
                                   &cmcf->policy->fields
                                       [NGX_HTTP_CRM_FIELD_ORDER_ID],
                                   form, field_buf, &order_id);
    }

    len = sizeof("{\"event_id\":\"\",\"received_at\":.000,\"kind\":\"\","
                 "\"node\":\"\",\"order_id\":\"\",\"payload\":,"
                 "\"body\":\"\",\"state\":\"\",\"reason\":\"\"}\n")
          + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN
          + sizeof("feedback") + sizeof("db_unavailable")
          + ngx_cycle->hostname.len
          + ngx_escape_json(NULL, ngx_cycle->hostname.data,
                            ngx_cycle->hostname.len)
          + order_id.len + json.len
          + ngx_base64_encoded_length(raw.len)
          + (reason ? ngx_strlen(reason) * 6 : 0);

    line = ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return;
    }

    p = ngx_cpymem(line, "{\"event_id\":\"", sizeof("{\"event_id\":\"") - 1);
    p = ngx_http_crm_capture_uuid(p, cmcf);
    p = ngx_sprintf(p, "\",\"received_at\":%T.%03M,\"kind\":\"%V\","
                    "\"node\":\"", ctx->received.sec, ctx->received.msec,
                    &ngx_http_crm_kinds[lcf->capture]);
    p = (u_char *) ngx_escape_json(p, ngx_cycle->hostname.data,
                                   ngx_cycle->hostname.len);
    *p++ = '"';

    if (order_id.len) {
        p = ngx_sprintf(p, ",\"order_id\":\"%V\"", &order_id);
    }

    if (json.len) {
        p = ngx_cpymem(p, ",\"payload\":", sizeof(",\"payload\":") - 1);

        /*
         * in valid JSON a raw CR or LF can only be white space (never
         * inside a string), so a space keeps the document and the line
         */

        for (len = 0; len < json.len; len++) {
            *p++ = (json.data[len] == '\n' || json.data[len] == '\r')
                   ? ' ' : json.data[len];
        }
    }

    if (raw.len) {
        p = ngx_cpymem(p, ",\"body\":\"", sizeof(",\"body\":\"") - 1);
        body.data = p;
        ngx_encode_base64(&body, &raw);
        p += body.len;
        *p++ = '"';
    }

    p = ngx_sprintf(p, ",\"state\":\"%s\"",
                    ctx->state == NGX_HTTP_CRM_STATE_BAD_BODY
                    ? "bad_body" : "ok");

    if (reason != NULL) {
        p = ngx_cpymem(p, ",\"reason\":\"", sizeof(",\"reason\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, (u_char *) reason,
                                       ngx_strlen(reason));
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '\n';

    if (cmcf->spool == NULL
        || ngx_http_crm_spool_append(cmcf->spool, line, p - line) != NGX_OK)
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
 * The value of one policy field, JSON-escaped as it stands in the document
 * (a number is taken as its text).  A form body was turned into an object
 * whose keys are the dotted paths, so its pointer is one segment.
 */

static void
ngx_http_crm_capture_field(ngx_str_t *json, ngx_http_crm_str_t *pointer,
    ngx_uint_t form, u_char *buf, ngx_str_t *value)
{
    int                         rc;
    const u_char               *ptr;
    size_t                      plen;
    ngx_http_crm_json_value_t   v;

    ngx_str_null(value);

    if (pointer->len == 0) {
        return;
    }

    ptr = pointer->data;
    plen = pointer->len;

    if (form) {
        if (ngx_http_crm_form_pointer(pointer->data, pointer->len, buf) < 0) {
            return;
        }

        ptr = buf;
    }

    rc = ngx_http_crm_json_get(json->data, json->len, ptr, plen, &v);

    if (rc != 0
        || (v.type != NGX_HTTP_CRM_JSON_STRING
            && v.type != NGX_HTTP_CRM_JSON_NUMBER))
    {
        return;
    }

    value->data = (u_char *) v.start;
    value->len = v.len;
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
    cmcf->event_seq = ((uint64_t) r[4] << 24) | (r[5] << 16) | (r[6] << 8)
                      | r[7];

    return NGX_OK;
}
