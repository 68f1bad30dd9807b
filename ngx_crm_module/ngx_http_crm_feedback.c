
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * crm_capture feedback.  The ticket is decided in the worker, without
 * PostgreSQL: its number (random, or derived from the Idempotency-Key and
 * the customer, so that a retried request gets the same one), its target
 * and due time (feedback.sla, counted in business time by
 * ngx_http_crm_calendar.c, with the zone read at configuration time), and
 * whether it is a conflict.  The event line carries all of it to
 * crm.apply_feedback() through the spool, like every event.
 *
 * In a location with no content handler of its own the module answers:
 * 201 with the ticket as JSON, or as a small HTML page when the client
 * prefers HTML; 400 for a body it cannot read; 422 when nobody can be
 * answered.  Elsewhere $crm_ticket carries the number to the shop.
 *
 * Missed due times are checked by ngx_http_crm_breach.c.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_feedback.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_calendar.h"
#include "ngx_http_crm_template.h"
#include "ngx_http_crm_conf.h"
#include "ngx_http_crm_identity.h"
#include "ngx_http_crm_event.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>


/* the longest {due} written, and the longest zoneinfo file read */
#define NGX_HTTP_CRM_DUE_MAX     1024
#define NGX_HTTP_CRM_TZFILE_MAX  (1024 * 1024)


/*
 * The due time is a pure function of the second a request arrived: the
 * requests of one second share it, and the times written for it, instead
 * of walking the calendar and formatting again for each of them.  Every
 * worker writes its own copy (the configuration's memory after the fork).
 */

struct ngx_http_crm_due_memo_s {
    time_t                     received;     /* 0: nothing yet */
    time_t                     target_at;
    time_t                     due_at;
    size_t                     rlen;
    size_t                     dlen;
    u_char                     rfc[NGX_HTTP_CRM_RFC3339_LEN];
    u_char                     due[NGX_HTTP_CRM_DUE_MAX];
};


static void ngx_http_crm_feedback_ticket_key_free(void *data);
static ngx_int_t ngx_http_crm_feedback_ticket_key(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
static void *ngx_http_crm_feedback_alloc(void *data, size_t size);
static void ngx_http_crm_feedback_due(ngx_http_crm_main_conf_t *crmcf,
    ngx_http_crm_due_memo_t *memo, time_t t);
static void ngx_http_crm_feedback_ticket(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, ngx_str_t *who);
static ngx_int_t ngx_http_crm_feedback_random(u_char *out, size_t n);
static ngx_uint_t ngx_http_crm_feedback_conflict(ngx_http_crm_ctx_t *ctx,
    ngx_http_crm_conflict_t *conflict);
static ngx_int_t ngx_http_crm_feedback_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *detail);
static ngx_int_t ngx_http_crm_feedback_answer(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
static ngx_uint_t ngx_http_crm_feedback_wants_html(ngx_http_request_t *r);
static ngx_int_t ngx_http_crm_feedback_quality(u_char *p, u_char *last,
    ngx_str_t *type, ngx_str_t *subtype);
static ngx_int_t ngx_http_crm_feedback_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t html, u_char *body, size_t len);
static ngx_table_elt_t *ngx_http_crm_feedback_header(ngx_http_request_t *r,
    char *key, char *value);


/*
 * At configuration time: the calendar of feedback.sla, with its zone read
 * from the zoneinfo file; "UTC" needs none.
 */

ngx_int_t
ngx_http_crm_feedback_conf(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    size_t                       i;
    const char                  *dir;
    ngx_int_t                    rc;
    ngx_str_t                    name, data;
    const char                  *err;
    ngx_http_crm_tz_t           *tz;
    ngx_http_crm_sla_t          *sla;
    ngx_http_crm_calendar_t     *cal;
    ngx_http_crm_acknowledge_t  *ack;

    if (ngx_http_crm_feedback_ticket_key(cf, crmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    crmcf->due_memo = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_due_memo_t));
    if (crmcf->due_memo == NULL) {
        return NGX_ERROR;
    }

    /* each "{" may be a placeholder: what bounds a rendered message */

    ack = &crmcf->policy->feedback.acknowledge;

    for (i = 0; i < ack->template.len; i++) {
        crmcf->ack_braces += (ack->template.data[i] == '{');
    }

    sla = &crmcf->policy->feedback.sla;
    cal = &crmcf->calendar;

    ngx_memcpy(cal->hours, sla->hours, sizeof(cal->hours));

    cal->holidays = sla->holidays;
    cal->nholidays = sla->nholidays;

    if (sla->timezone.len == 3
        && ngx_strncmp(sla->timezone.data, "UTC", 3) == 0)
    {
        cal->tz = ngx_http_crm_tz_utc();
        return NGX_OK;
    }

    dir = ngx_http_crm_zoneinfo();

    name.len = ngx_strlen(dir) + 1 + sla->timezone.len;
    name.data = ngx_pnalloc(cf->pool, name.len + 1);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(name.data, "%s/%*s%Z", dir, sla->timezone.len,
                       sla->timezone.data);

    rc = ngx_http_crm_conf_read_file(cf, &name, NGX_HTTP_CRM_TZFILE_MAX,
                                     &data);
    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "crm: feedback.sla.timezone: \"%V\" cannot be read",
                      &name);
        return NGX_ERROR;
    }

    tz = ngx_http_crm_tz_parse(data.data, data.len,
                               ngx_http_crm_feedback_alloc, cf->pool, &err);
    if (tz == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: feedback.sla.timezone: \"%V\" is no time zone "
                      "file: %s", &name, err);
        return NGX_ERROR;
    }

    cal->tz = tz;

    return NGX_OK;
}


/*
 * The key of idempotent ticket numbers.  With identity.secret_file it is
 * derived from its first key (a key of its own, never the cookie key
 * itself), so that nobody who lacks the file can tell a retried request's
 * ticket in advance; without one it is a fixed key, the same on every
 * node, and the number is only as hard to foresee as the Idempotency-Key.
 */

static ngx_int_t
ngx_http_crm_feedback_ticket_key(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf)
{
    unsigned int          mdlen;
    const u_char         *key;
    size_t                len;
    ngx_pool_cleanup_t   *cln;
    ngx_http_crm_keys_t  *keys;

    static u_char         label[] = "ngx_crm ticket\n";

    keys = crmcf->keys;

    if (keys != NULL && keys->n) {
        key = keys->key[0];
        len = keys->len[0];

    } else {
        key = label;
        len = sizeof(label) - 1;
    }

    if (HMAC(EVP_sha256(), key, (int) len, label, sizeof(label) - 1,
             crmcf->ticket_key, &mdlen)
        == NULL
        || mdlen != sizeof(crmcf->ticket_key))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: HMAC() failed: no key for ticket numbers");
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_crm_hmac_init(&crmcf->ticket_hmac, crmcf->ticket_key,
                               sizeof(crmcf->ticket_key))
        != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: the HMAC state of ticket numbers cannot be made");
        return NGX_ERROR;
    }

    cln->handler = ngx_http_crm_feedback_ticket_key_free;
    cln->data = &crmcf->ticket_hmac;

    return NGX_OK;
}


static void
ngx_http_crm_feedback_ticket_key_free(void *data)
{
    ngx_http_crm_hmac_free(data);
}


static void *
ngx_http_crm_feedback_alloc(void *data, size_t size)
{
    return ngx_palloc(data, size);
}


/*
 * After the body is read: the ticket, its target and due time and whether
 * it is a conflict, for the event line, $crm_ticket and the answer.  A
 * body that cannot be read, or one naming nobody (no e-mail, phone or
 * valid cookie), gets no ticket.
 */

void
ngx_http_crm_feedback_decide(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    ngx_str_t                  who;
    ngx_http_crm_feedback_t   *fb;
    ngx_http_crm_due_memo_t   *memo;
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (ctx->state == NGX_HTTP_CRM_STATE_BAD_BODY) {
        return;
    }

    /* the e-mail decides, then the phone, then the cookie */

    if (ctx->field[NGX_HTTP_CRM_FIELD_EMAIL].len) {
        who = ctx->field[NGX_HTTP_CRM_FIELD_EMAIL];

    } else if (ctx->field[NGX_HTTP_CRM_FIELD_PHONE].len) {
        who = ctx->field[NGX_HTTP_CRM_FIELD_PHONE];

    } else if (ctx->customer_id) {
        who.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
        if (who.data == NULL) {
            return;
        }

        who.len = ngx_sprintf(who.data, "#%uL", ctx->customer_id) - who.data;

    } else {
        ctx->state = NGX_HTTP_CRM_STATE_NO_CUSTOMER;
        (void) ngx_atomic_fetch_add(&crmcf->stats->no_customer, 1);
        return;
    }

    ngx_http_crm_feedback_ticket(r, ctx, &who);

    if (ctx->ticket.len == 0) {
        return;
    }

    memo = crmcf->due_memo;

    if (memo->received != ctx->received.sec) {
        ngx_http_crm_feedback_due(crmcf, memo, ctx->received.sec);
    }

    ctx->target_at = memo->target_at;
    ctx->due_at = memo->due_at;

    fb = &crmcf->policy->feedback;

    ctx->conflict = ngx_http_crm_feedback_conflict(ctx, &fb->conflict);
}


/*
 * The target and due time of a request that arrived at t, and the due time
 * written for the answer: RFC 3339 and feedback.acknowledge.due_format.
 */

static void
ngx_http_crm_feedback_due(ngx_http_crm_main_conf_t *crmcf,
    ngx_http_crm_due_memo_t *memo, time_t t)
{
    time_t                       limit, target;
    int32_t                      offset;
    ngx_http_crm_sla_t          *sla;
    ngx_http_crm_acknowledge_t  *ack;

    sla = &crmcf->policy->feedback.sla;
    ack = &crmcf->policy->feedback.acknowledge;

    /* durations are in ms; a started second counts whole */

    limit = (time_t) ((sla->limit + 999) / 1000);
    target = (time_t) ((sla->target + 999) / 1000);

    /*
     * business time adds up: the due time is counted on from the target,
     * so the days before it are walked once
     */

    memo->target_at = ngx_http_crm_calendar_add(&crmcf->calendar, t, target);

    if (limit >= target && memo->target_at >= 0) {
        memo->due_at = ngx_http_crm_calendar_add(&crmcf->calendar,
                                                 memo->target_at,
                                                 limit - target);

    } else {
        memo->due_at = ngx_http_crm_calendar_add(&crmcf->calendar, t, limit);
    }

    if (memo->due_at < 0 || memo->target_at < 0) {
        /* open too seldom to count (holidays on every open day) */
        memo->due_at = t + limit;
        memo->target_at = t + target;
    }

    offset = ngx_http_crm_tz_offset(crmcf->calendar.tz, memo->due_at);
    memo->rlen = ngx_http_crm_rfc3339(memo->rfc, memo->due_at, offset);
    memo->dlen = ngx_http_crm_calendar_format(memo->due, sizeof(memo->due),
                                              ack->due_format.data,
                                              ack->due_format.len,
                                              memo->due_at, offset);
    memo->received = t;
}


/*
 * The ticket number: 60 bits as 12 characters of an alphabet without 0, O,
 * 1, I and L.  With an Idempotency-Key it is an HMAC of the key and the
 * customer, so a retry gets the same ticket on any worker or node, and
 * another customer with the same key another one; else it is random.
 */

static void
ngx_http_crm_feedback_ticket(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx,
    ngx_str_t *who)
{
    u_char                    *p, *msg, md[EVP_MAX_MD_SIZE];
    size_t                     len;
    uint64_t                   v;
    ngx_uint_t                 i;
    ngx_http_crm_main_conf_t  *crmcf;

    static u_char              alphabet[] = NGX_HTTP_CRM_TICKET_ALPHABET;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (ctx->idempotency_key.len) {
        len = ctx->idempotency_key.len + 1 + who->len;

        msg = ngx_pnalloc(r->pool, len);
        if (msg == NULL) {
            return;
        }

        p = ngx_cpymem(msg, ctx->idempotency_key.data,
                       ctx->idempotency_key.len);
        *p++ = '\n';
        ngx_memcpy(p, who->data, who->len);

        if (ngx_http_crm_hmac(&crmcf->ticket_hmac, crmcf->ticket_key,
                              sizeof(crmcf->ticket_key), msg, len, md)
            != 0)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "crm: the ticket's HMAC failed: no ticket");
            return;
        }

    } else if (ngx_http_crm_feedback_random(md, 8) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "crm: RAND_bytes() failed: no ticket");
        return;
    }

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | md[i];
    }

    for (i = 0; i < NGX_HTTP_CRM_TICKET_LEN; i++) {
        ctx->ticket_data[i] = alphabet[v & 31];
        v >>= 5;
    }

    ctx->ticket.data = ctx->ticket_data;
    ctx->ticket.len = NGX_HTTP_CRM_TICKET_LEN;
}


/*
 * Random bytes for ticket numbers, taken from RAND_bytes() a few hundred
 * tickets at a time: one call per ticket cost more than the rest of the
 * ticket.  The bytes belong to the process that drew them (ngx_pid), so a
 * forked worker never hands out its parent's; each is given out once and
 * then cleared.
 */

static ngx_int_t
ngx_http_crm_feedback_random(u_char *out, size_t n)
{
    static u_char      pool[4096];
    static size_t      left;
    static ngx_pid_t   owner;

    if (owner != ngx_pid) {
        ngx_explicit_memzero(pool, sizeof(pool));
        left = 0;
        owner = ngx_pid;
    }

    if (left < n) {
        if (RAND_bytes(pool, (int) sizeof(pool)) != 1) {
            left = 0;
            return NGX_ERROR;
        }

        left = sizeof(pool);
    }

    left -= n;
    ngx_memcpy(out, pool + left, n);
    ngx_explicit_memzero(pool + left, n);

    return NGX_OK;
}


/*
 * A conflict: a rating (a whole number 1 to 5) at or under
 * conflict.max_rating, or a category of conflict.categories (in any case).
 */

static ngx_uint_t
ngx_http_crm_feedback_conflict(ngx_http_crm_ctx_t *ctx,
    ngx_http_crm_conflict_t *conflict)
{
    size_t      i;
    ngx_int_t   rating;
    ngx_str_t  *v;

    v = &ctx->field[NGX_HTTP_CRM_FIELD_RATING];

    if (v->len == 1 && conflict->max_rating) {
        rating = ngx_atoi(v->data, 1);

        if (rating >= 1 && rating <= 5
            && (ngx_uint_t) rating <= conflict->max_rating)
        {
            return 1;
        }
    }

    v = &ctx->field[NGX_HTTP_CRM_FIELD_CATEGORY];

    if (v->len == 0) {
        return 0;
    }

    for (i = 0; i < conflict->ncategories; i++) {
        if (conflict->categories[i].len == v->len
            && ngx_strncasecmp(conflict->categories[i].data, v->data, v->len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The content handler of a feedback location that has none of its own:
 * the precontent handler has read the body, decided the ticket and
 * recorded the event; this answers the customer.
 */

ngx_int_t
ngx_http_crm_feedback_handler(ngx_http_request_t *r)
{
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r);

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (!(r->method & NGX_HTTP_POST)) {
        if (ngx_http_crm_feedback_header(r, "Allow", "POST") == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ctx == NULL || !ctx->started) {
        return ngx_http_crm_feedback_error(r, NGX_HTTP_BAD_REQUEST,
                                           "no feedback was read", NULL);
    }

    if (ctx->state == NGX_HTTP_CRM_STATE_BAD_BODY) {
        return ngx_http_crm_feedback_error(r, NGX_HTTP_BAD_REQUEST,
                                           "the body cannot be read",
                                           ctx->reason);
    }

    if (ctx->ticket.len == 0) {
        return ngx_http_crm_feedback_error(r, 422,
                                           "an e-mail address or a phone "
                                           "number is needed to answer you",
                                           ctx->reason);
    }

    return ngx_http_crm_feedback_answer(r, ctx);
}


/* {"error":"error: detail"} */

static ngx_int_t
ngx_http_crm_feedback_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *detail)
{
    u_char  *p, *body;
    size_t   len, elen, dlen;

    elen = ngx_strlen(error);
    dlen = detail ? ngx_strlen(detail) : 0;

    len = sizeof("{\"error\":\": \"}\n") + 6 * (elen + dlen);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_crm_cpy(body, "{\"error\":\"");
    p = (u_char *) ngx_escape_json(p, (u_char *) error, elen);

    if (dlen) {
        *p++ = ':';
        *p++ = ' ';
        p = (u_char *) ngx_escape_json(p, (u_char *) detail, dlen);
    }

    p = ngx_cpymem(p, "\"}\n", 3);

    return ngx_http_crm_feedback_send(r, status, 0, body, p - body);
}


/*
 * 201: {"ticket","due","message","faq"}, or the same message as an HTML
 * page, every value escaped.  due is RFC 3339 at the zone's offset then;
 * {due} in the message is feedback.acknowledge.due_format.
 */

static ngx_int_t
ngx_http_crm_feedback_answer(ngx_http_request_t *r, ngx_http_crm_ctx_t *ctx)
{
    u_char                       *p, *body, *msg, *due, *rfc;
    size_t                        len, mlen, dlen, rlen, vmax, i;
    ngx_uint_t                    html;
    ngx_http_crm_due_memo_t      *memo;
    ngx_http_crm_tvar_t           vars[5];
    ngx_http_crm_acknowledge_t   *ack;
    ngx_http_crm_main_conf_t     *crmcf;

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);
    ack = &crmcf->policy->feedback.acknowledge;

    memo = crmcf->due_memo;

    if (memo->received == 0 || memo->due_at != ctx->due_at) {
        /* decided in an earlier second than the last request's */
        ngx_http_crm_feedback_due(crmcf, memo, ctx->received.sec);
    }

    rfc = memo->rfc;
    rlen = memo->rlen;
    due = memo->due;
    dlen = memo->dlen;

    vars[0].name = "name";
    vars[0].data = ctx->field[NGX_HTTP_CRM_FIELD_NAME].data;
    vars[0].len = ctx->field[NGX_HTTP_CRM_FIELD_NAME].len;
    vars[1].name = "ticket";
    vars[1].data = ctx->ticket.data;
    vars[1].len = ctx->ticket.len;
    vars[2].name = "due";
    vars[2].data = due;
    vars[2].len = dlen;
    vars[3].name = "faq";
    vars[3].data = ack->faq_url.data;
    vars[3].len = ack->faq_url.len;
    vars[4].name = "ask_phone";
    vars[4].data = ack->ask_phone.data;
    vars[4].len = ctx->field[NGX_HTTP_CRM_FIELD_PHONE].len
                  ? 0 : ack->ask_phone.len;

    /* one pass: a placeholder renders as the longest value at most */

    vmax = 0;

    for (i = 0; i < 5; i++) {
        vmax = ngx_max(vmax, vars[i].len);
    }

    msg = ngx_pnalloc(r->pool, ack->template.len + crmcf->ack_braces * vmax
                               + 1);
    if (msg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mlen = ngx_http_crm_template_render(msg, ack->template.data,
                                        ack->template.len, vars, 5, 0);

    html = ngx_http_crm_feedback_wants_html(r);

    if (html) {
        len = sizeof("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width,"
                     " initial-scale=1\">\n<title></title></head>\n<body>"
                     "<main>\n<p id=\"crm-message\"></p>\n<p><time "
                     "id=\"crm-due\" datetime=\"\"></time></p>\n"
                     "<p><a id=\"crm-faq\" href=\"\"></a></p>\n"
                     "</main></body></html>\n")
              + NGX_HTTP_CRM_TICKET_LEN + rlen
              + ngx_http_crm_html_escape(NULL, msg, mlen)
              + ngx_http_crm_html_escape(NULL, due, dlen)
              + 2 * ngx_http_crm_html_escape(NULL, ack->faq_url.data,
                                             ack->faq_url.len);

    } else {
        len = sizeof("{\"ticket\":\"\",\"due\":\"\",\"message\":\"\","
                     "\"faq\":\"\"}\n")
              + NGX_HTTP_CRM_TICKET_LEN + rlen
              + ngx_http_crm_escaped_json_len(mlen)
              + ngx_http_crm_escaped_json_len(ack->faq_url.len);
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (html) {
        p = ngx_sprintf(body, "<!DOCTYPE html>\n<html><head>"
                        "<meta charset=\"utf-8\"><meta name=\"viewport\" "
                        "content=\"width=device-width, initial-scale=1\">\n"
                        "<title>%V</title></head>\n<body><main>\n"
                        "<p id=\"crm-message\">", &ctx->ticket);
        p += ngx_http_crm_html_escape(p, msg, mlen);
        p = ngx_sprintf(p, "</p>\n<p><time id=\"crm-due\" datetime=\"%*s\">",
                        rlen, rfc);
        p += ngx_http_crm_html_escape(p, due, dlen);
        p = ngx_http_crm_cpy(p, "</time></p>\n");

        if (ack->faq_url.len) {
            p = ngx_http_crm_cpy(p, "<p><a id=\"crm-faq\" href=\"");
            p += ngx_http_crm_html_escape(p, ack->faq_url.data,
                                          ack->faq_url.len);
            *p++ = '"';
            *p++ = '>';
            p += ngx_http_crm_html_escape(p, ack->faq_url.data,
                                          ack->faq_url.len);
            p = ngx_http_crm_cpy(p, "</a></p>\n");
        }

        p = ngx_http_crm_cpy(p, "</main></body></html>\n");

    } else {
        p = ngx_http_crm_cpy(body, "{\"ticket\":\"");
        p = ngx_cpymem(p, ctx->ticket.data, ctx->ticket.len);
        p = ngx_http_crm_cpy(p, "\",\"due\":\"");
        p = ngx_cpymem(p, rfc, rlen);
        p = ngx_http_crm_cpy(p, "\",\"message\":\"");
        p = ngx_http_crm_escape_json(p, msg, mlen);
        p = ngx_http_crm_cpy(p, "\",\"faq\":\"");
        p = ngx_http_crm_escape_json(p, ack->faq_url.data, ack->faq_url.len);
        p = ngx_cpymem(p, "\"}\n", 3);
    }

    return ngx_http_crm_feedback_send(r, NGX_HTTP_CREATED, html, body,
                                      p - body);
}


/*
 * Whether the client prefers HTML: Accept ranks text/html above
 * application/json (RFC 9110, section 12.5.1: the most specific range
 * that matches gives the quality), as a browser's form post does.  No
 * Accept, or a tie, gets JSON.
 */

static ngx_uint_t
ngx_http_crm_feedback_wants_html(ngx_http_request_t *r)
{
    ngx_int_t         html, json, q;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    static ngx_str_t  accept = ngx_string("Accept");
    static ngx_str_t  text = ngx_string("text");
    static ngx_str_t  htm = ngx_string("html");
    static ngx_str_t  app = ngx_string("application");
    static ngx_str_t  js = ngx_string("json");

    html = -1;
    json = -1;

    part = &r->headers_in.headers.part;
    i = 0;

    while ((h = ngx_http_crm_header_next(&part, &i, &accept)) != NULL) {
        q = ngx_http_crm_feedback_quality(h->value.data,
                                          h->value.data + h->value.len,
                                          &text, &htm);
        html = ngx_max(html, q);

        q = ngx_http_crm_feedback_quality(h->value.data,
                                          h->value.data + h->value.len,
                                          &app, &js);
        json = ngx_max(json, q);
    }

    /* a type no range names is not acceptable; none at all: JSON */

    return html > 0 && html > json;
}


/*
 * The quality (0..1000) the Accept value gives type/subtype: that of its
 * most specific matching range; -1 when none matches.
 */

static ngx_int_t
ngx_http_crm_feedback_quality(u_char *p, u_char *last, ngx_str_t *type,
    ngx_str_t *subtype)
{
    u_char     *t, *s, *e, *end;
    ngx_int_t   q, best, spec, bspec, i, scale;

    best = -1;
    bspec = 0;

    while (p < last) {

        /* one range: type "/" subtype *( ";" parameter ) */

        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        t = p;
        s = ngx_strlchr(p, end, '/');

        if (s == NULL) {
            p = end + 1;
            continue;
        }

        e = s + 1;

        while (e < end && *e != ';' && *e != ' ' && *e != '\t') {
            e++;
        }

        if (s - t == 1 && *t == '*') {
            spec = (e - s - 1 == 1 && s[1] == '*') ? 1 : 0;

        } else if ((size_t) (s - t) == type->len
                   && ngx_strncasecmp(t, type->data, type->len) == 0)
        {
            if (e - s - 1 == 1 && s[1] == '*') {
                spec = 2;

            } else if ((size_t) (e - s - 1) == subtype->len
                       && ngx_strncasecmp(s + 1, subtype->data, subtype->len)
                          == 0)
            {
                spec = 3;

            } else {
                spec = 0;
            }

        } else {
            spec = 0;
        }

        /* ";q=0.5": three decimals at most */

        q = 1000;

        for (p = e; p + 2 < end; p++) {
            if (*p != ';') {
                continue;
            }

            p++;

            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }

            if (end - p < 3 || (*p != 'q' && *p != 'Q') || p[1] != '=') {
                continue;
            }

            p += 2;
            q = 0;

            if (p < end && *p == '1') {
                q = 1000;

            } else if (p < end && *p == '0') {
                p++;

                if (p < end && *p == '.') {
                    scale = 100;

                    for (i = 0, p++; i < 3 && p < end && *p >= '0'
                                     && *p <= '9'; i++, p++)
                    {
                        q += (*p - '0') * scale;
                        scale /= 10;
                    }
                }
            }

            break;
        }

        if (spec > bspec) {
            bspec = spec;
            best = q;
        }

        p = end + 1;
    }

    return best;
}


static ngx_int_t
ngx_http_crm_feedback_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t html, u_char *body, size_t len)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_chain_t        out;
    ngx_table_elt_t  **cc;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == 422 && r->err_status == 0) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }

    if (html) {
        ngx_str_set(&r->headers_out.content_type, "text/html");
        ngx_str_set(&r->headers_out.charset, "utf-8");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    /*
     * Cache-Control is also kept where the expires directive looks for it;
     * the answer is JSON or HTML by the Accept header
     */

    if (r->headers_out.cache_control.elts == NULL
        && ngx_array_init(&r->headers_out.cache_control, r->pool, 1,
                          sizeof(ngx_table_elt_t *))
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cc = ngx_array_push(&r->headers_out.cache_control);
    if (cc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *cc = ngx_http_crm_feedback_header(r, "Cache-Control", "no-store");

    if (*cc == NULL
        || ngx_http_crm_feedback_header(r, "Vary", "Accept") == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the page runs nothing and loads nothing */

    if (html
        && (ngx_http_crm_feedback_header(r, "Content-Security-Policy",
                                         "default-src 'none'")
            == NULL
            || ngx_http_crm_feedback_header(r, "X-Content-Type-Options",
                                            "nosniff")
               == NULL))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_table_elt_t *
ngx_http_crm_feedback_header(ngx_http_request_t *r, char *key, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value.len = ngx_strlen(value);
    h->value.data = (u_char *) value;

    return h;
}
