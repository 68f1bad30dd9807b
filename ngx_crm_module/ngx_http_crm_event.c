
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The lines the module appends to the spool, in one place: an event line
 * for every captured request, a result line for every decided order, and
 * the event ids.  Lines are built in the request's pool (the ctx keeps it
 * for a request being freed) and copied by the spool.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_event.h"

#include <openssl/rand.h>


static ngx_str_t  ngx_http_crm_kinds[] = {
    ngx_null_string,
    ngx_string("order"),
    ngx_string("payment"),
    ngx_string("status"),
    ngx_string("feedback")
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


/*
 * Appends the event line to the spool:
 *   {"event_id","received_at","kind","node","policy","customer_id",
 *    "decided","order_id",<fields>,"payload"|"body","state","reason"}
 * and for a feedback with a ticket "ticket","target_at","due_at" (Unix
 * seconds), "conflict", "compensation" and "breach_compensation"
 * (percents of the policy), which crm.apply_feedback() opens it with.
 * Failures are logged and counted; the request goes on whatever happens.
 */

void
ngx_http_crm_event_record(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                    *p, *q, *line;
    size_t                     len, i;
    ngx_str_t                  b64;
    ngx_http_crm_feedback_t   *fb;
    ngx_http_crm_loc_conf_t   *lcf;
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_crm_module);

    /* an upper bound: each escaped byte takes 6 at most */

    len = sizeof("{\"event_id\":\"\",\"received_at\":.000,\"kind\":\"\","
                 "\"node\":\"\",\"policy\":\"\",\"customer_id\":,"
                 "\"decided\":false,\"payload\":,"
                 "\"body\":\"\",\"state\":\"\",\"reason\":\"\"}\n")
          + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN + NGX_INT64_LEN
          + NGX_HTTP_CRM_SHA256_HEX
          + sizeof("feedback") + sizeof("db_unavailable")
          + crmcf->node.len
          + ctx->json.len
          + ngx_base64_encoded_length(ctx->raw.len)
          + (ctx->reason
             ? ngx_http_crm_escaped_json_len(ngx_strlen(ctx->reason)) : 0)
          + sizeof(",\"ticket\":\"\",\"target_at\":,\"due_at\":,"
                   "\"conflict\":false,\"compensation\":,"
                   "\"breach_compensation\":")
          + ctx->ticket.len + 2 * NGX_INT64_LEN + 2 * NGX_INT_T_LEN;

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (ctx->field[i].len) {
            len += sizeof(",\"\":\"\"") + ngx_http_crm_field_names[i].len
                   + ngx_http_crm_escaped_json_len(ctx->field[i].len);
        }
    }

    /* ctx->pool: r->pool is NULL when the request is being freed */

    line = ngx_pnalloc(ctx->pool, len);
    if (line == NULL) {
        return;
    }

    /* written piece by piece: ngx_sprintf() cost more than the rest */

    p = ngx_http_crm_event_head(line, crmcf, ctx->event_id, &ctx->received,
                                &ngx_http_crm_kinds[lcf->capture]);

    if (ctx->customer_id) {
        p = ngx_http_crm_cpy(p, ",\"customer_id\":");
        p = ngx_http_crm_write_int(p, (int64_t) ctx->customer_id);
    }

    if (lcf->capture == NGX_HTTP_CRM_CAPTURE_ORDER) {
        p = ctx->decided
            ? ngx_http_crm_cpy(p, ",\"decided\":true")
            : ngx_http_crm_cpy(p, ",\"decided\":false");
    }

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (ctx->field[i].len) {
            *p++ = ',';
            *p++ = '"';
            p = ngx_cpymem(p, ngx_http_crm_field_names[i].data,
                           ngx_http_crm_field_names[i].len);
            *p++ = '"';
            *p++ = ':';
            *p++ = '"';
            p = ngx_http_crm_escape_json(p, ctx->field[i].data,
                                         ctx->field[i].len);
            *p++ = '"';
        }
    }

    if (ctx->ticket.len) {
        fb = &crmcf->policy->feedback;

        p = ngx_http_crm_cpy(p, ",\"ticket\":\"");
        p = ngx_cpymem(p, ctx->ticket.data, ctx->ticket.len);
        p = ngx_http_crm_cpy(p, "\",\"target_at\":");
        p = ngx_http_crm_write_int(p, ctx->target_at);
        p = ngx_http_crm_cpy(p, ",\"due_at\":");
        p = ngx_http_crm_write_int(p, ctx->due_at);
        p = ctx->conflict
            ? ngx_http_crm_cpy(p, ",\"conflict\":true")
            : ngx_http_crm_cpy(p, ",\"conflict\":false");
        p = ngx_http_crm_cpy(p, ",\"compensation\":");
        p = ngx_http_crm_write_int(p, (int64_t) (ctx->conflict
                                                 ? fb->conflict.compensation
                                                 : 0));
        p = ngx_http_crm_cpy(p, ",\"breach_compensation\":");
        p = ngx_http_crm_write_int(p, (int64_t) fb->sla.breach_compensation);
    }

    if (ctx->json.len) {
        p = ngx_http_crm_cpy(p, ",\"payload\":");

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
        p = ngx_http_crm_cpy(p, ",\"body\":\"");
        b64.data = p;
        ngx_encode_base64(&b64, &ctx->raw);
        p += b64.len;
        *p++ = '"';
    }

    p = ngx_http_crm_cpy(p, ",\"state\":\"");
    p = ngx_cpymem(p, ngx_http_crm_states[ctx->state].data,
                   ngx_http_crm_states[ctx->state].len);
    *p++ = '"';

    if (ctx->reason != NULL) {
        p = ngx_http_crm_cpy(p, ",\"reason\":\"");
        p = ngx_http_crm_escape_json(p, (u_char *) ctx->reason,
                                     ngx_strlen(ctx->reason));
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '\n';

    if (crmcf->spool == NULL
        || ngx_http_crm_spool_append(crmcf->spool, line, p - line, 1)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: event not recorded: the spool is unusable");
        (void) ngx_atomic_fetch_add(&crmcf->stats->errors, 1);
    }
}


/*
 * The head every event line starts with:
 *   {"event_id","received_at" (seconds.milliseconds),"kind","node","policy"
 * at most NGX_HTTP_CRM_EVENT_HEAD_LEN(crmcf, kind length) bytes.
 */

u_char *
ngx_http_crm_event_head(u_char *p, ngx_http_crm_main_conf_t *crmcf,
    u_char *event_id, ngx_time_t *received, ngx_str_t *kind)
{
    p = ngx_http_crm_cpy(p, "{\"event_id\":\"");
    p = ngx_cpymem(p, event_id, NGX_HTTP_CRM_UUID_LEN);
    p = ngx_http_crm_cpy(p, "\",\"received_at\":");
    p = ngx_http_crm_write_int(p, received->sec);
    *p++ = '.';
    *p++ = (u_char) ('0' + received->msec / 100 % 10);
    *p++ = (u_char) ('0' + received->msec / 10 % 10);
    *p++ = (u_char) ('0' + received->msec % 10);
    p = ngx_http_crm_cpy(p, ",\"kind\":\"");
    p = ngx_cpymem(p, kind->data, kind->len);
    p = ngx_http_crm_cpy(p, "\",\"node\":\"");
    p = ngx_cpymem(p, crmcf->node.data, crmcf->node.len);
    p = ngx_http_crm_cpy(p, "\",\"policy\":\"");
    p = ngx_cpymem(p, crmcf->policy_sha256, ngx_strlen(crmcf->policy_sha256));
    *p++ = '"';

    return p;
}


/*
 * Appends the order's result line: the status the shop answered (499: the
 * client went away first), to keep or release what the decision reserved:
 *   {"kind":"order_result","event_id","received_at","order_id","status",
 *    "policy"}
 */

void
ngx_http_crm_event_result(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx,
    ngx_uint_t status)
{
    u_char                    *p, *line;
    size_t                     len;
    ngx_str_t                 *order_id;
    ngx_time_t                *tp;
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    order_id = &ctx->field[NGX_HTTP_CRM_FIELD_ORDER_ID];

    len = sizeof(NGX_HTTP_CRM_RESULT_LINE "\"event_id\":\"\","
                 "\"received_at\":.000,\"order_id\":\"\",\"status\":,"
                 "\"policy\":\"\"}\n")
          + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN + NGX_INT_T_LEN
          + NGX_HTTP_CRM_SHA256_HEX + 6 * order_id->len;

    line = ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return;
    }

    tp = ngx_timeofday();

    p = ngx_sprintf(line, NGX_HTTP_CRM_RESULT_LINE "\"event_id\":\"%*s\","
                    "\"received_at\":%T.%03M,\"order_id\":\"",
                    (size_t) NGX_HTTP_CRM_UUID_LEN, ctx->event_id,
                    tp->sec, tp->msec);
    p = (u_char *) ngx_escape_json(p, order_id->data, order_id->len);
    p = ngx_sprintf(p, "\",\"status\":%ui,\"policy\":\"%s\"}\n",
                    status, crmcf->policy_sha256);

    if (crmcf->spool == NULL
        || ngx_http_crm_spool_append(crmcf->spool, line, p - line, 0)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: order result not recorded: the spool is "
                      "unusable");
        (void) ngx_atomic_fetch_add(&crmcf->stats->errors, 1);
    }
}


/*
 * A UUID (version 7 layout): 48 bits of Unix time in ms, then the worker's
 * random 32 bits and a 40-bit sequence, so ids are unique across workers,
 * restarts and nodes, and sort by time.  Writes NGX_HTTP_CRM_UUID_LEN bytes.
 */

void
ngx_http_crm_event_id(u_char *p, ngx_http_crm_main_conf_t *crmcf)
{
    u_char       b[16];
    uint64_t     ms, seq;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;
    seq = crmcf->event_seq++;

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
    b[11] = (u_char) (((seq & 0x3f) << 2) | (crmcf->event_rand >> 30));
    b[12] = (u_char) (crmcf->event_rand >> 22);
    b[13] = (u_char) (crmcf->event_rand >> 14);
    b[14] = (u_char) (crmcf->event_rand >> 6);
    b[15] = (u_char) (crmcf->event_rand << 2);

    p = ngx_hex_dump(p, b, 4);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 4, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 6, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 8, 2);
    *p++ = '-';
    (void) ngx_hex_dump(p, b + 10, 6);
}


/* a random start for this worker's event ids */

ngx_int_t
ngx_http_crm_event_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf)
{
    u_char  r[8];

    if (RAND_bytes(r, sizeof(r)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "crm: RAND_bytes() failed");
        return NGX_ERROR;
    }

    crmcf->event_rand = ((uint32_t) r[0] << 24) | (r[1] << 16) | (r[2] << 8)
                       | r[3];

    /* the node name, JSON-escaped once for every event line */

    crmcf->node.data = ngx_pnalloc(cycle->pool,
                                  cycle->hostname.len
                                  + ngx_escape_json(NULL,
                                                    cycle->hostname.data,
                                                    cycle->hostname.len));
    if (crmcf->node.data == NULL) {
        return NGX_ERROR;
    }

    crmcf->node.len = (u_char *) ngx_escape_json(crmcf->node.data,
                                                cycle->hostname.data,
                                                cycle->hostname.len)
                     - crmcf->node.data;
    crmcf->event_seq = ((uint64_t) r[4] << 24) | (r[5] << 16) | (r[6] << 8)
                      | r[7];

    return NGX_OK;
}


/*
 * JSON string escaping as ngx_escape_json() does it, with the runs that
 * need none copied whole.  Writes ngx_http_crm_escaped_json_len(len)
 * bytes at most; returns the end.
 */

u_char *
ngx_http_crm_escape_json(u_char *dst, u_char *src, size_t len)
{
    u_char  *last, *run;

    last = src + len;

    while (src < last) {
        run = src;

        while (src < last && *src > 0x1f && *src != '"' && *src != '\\') {
            src++;
        }

        dst = ngx_cpymem(dst, run, src - run);

        if (src < last) {
            dst = (u_char *) ngx_escape_json(dst, src, 1);
            src++;
        }
    }

    return dst;
}


/* a signed decimal, as "%L" writes it */

u_char *
ngx_http_crm_write_int(u_char *p, int64_t n)
{
    u_char    buf[NGX_INT64_LEN];
    u_char   *q;
    uint64_t  u;

    if (n < 0) {
        *p++ = '-';
        u = (uint64_t) 0 - (uint64_t) n;

    } else {
        u = (uint64_t) n;
    }

    q = buf + sizeof(buf);

    do {
        *--q = (u_char) ('0' + u % 10);
        u /= 10;
    } while (u);

    return ngx_cpymem(p, q, buf + sizeof(buf) - q);
}
