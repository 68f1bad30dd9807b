
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Missed due times: one worker (number 0) of each node calls
 * crm.check_breaches() every NGX_HTTP_CRM_BREACH_INTERVAL through the
 * pool, one call at a time; the function marks each overdue unanswered
 * ticket breached once, across nodes, under an advisory lock, at most
 * NGX_HTTP_CRM_BREACH_BATCH a call, so that a backlog (PostgreSQL was
 * down for a day) is worked off in short transactions, one after another.
 * The state lives in the cycle's pool, made again on each reload.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_feedback.h"


typedef struct {
    ngx_event_t                 timer;
    ngx_http_crm_pg_query_t     query;
    ngx_http_crm_main_conf_t   *crmcf;
    ngx_uint_t                  busy;
} ngx_http_crm_breach_t;


static void ngx_http_crm_breach_check(ngx_event_t *ev);
static void ngx_http_crm_breach_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);


/*
 * Worker 0 of a node whose locations take feedback checks for missed due
 * times; the advisory lock in crm.check_breaches() keeps other nodes out.
 */

ngx_int_t
ngx_http_crm_breach_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf)
{
    ngx_http_crm_breach_t  *b;

    if (!crmcf->feedback_used || crmcf->pg == NULL
        || (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0))
    {
        return NGX_OK;
    }

    b = ngx_pcalloc(cycle->pool, sizeof(ngx_http_crm_breach_t));
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->crmcf = crmcf;
    b->timer.handler = ngx_http_crm_breach_check;
    b->timer.data = b;
    b->timer.log = cycle->log;
    b->timer.cancelable = 1;

    ngx_add_timer(&b->timer, NGX_HTTP_CRM_BREACH_INTERVAL);

    return NGX_OK;
}


static void
ngx_http_crm_breach_check(ngx_event_t *ev)
{
    ngx_http_crm_breach_t     *b;
    ngx_http_crm_pg_query_t   *q;
    ngx_http_crm_main_conf_t  *crmcf;

    b = ev->data;
    crmcf = b->crmcf;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (!b->busy && !ngx_http_crm_pg_is_down(crmcf->pg)) {
        q = &b->query;
        ngx_memzero(q, sizeof(ngx_http_crm_pg_query_t));

        q->command = "SELECT crm.check_breaches("
                     ngx_value(NGX_HTTP_CRM_BREACH_BATCH) ")";
        q->timeout = (ngx_msec_t) crmcf->policy->database.timeout;
        q->handler = ngx_http_crm_breach_done;
        q->data = b;

        if (ngx_http_crm_pg_send(crmcf->pg, q) == NGX_OK) {
            b->busy = 1;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_CRM_BREACH_INTERVAL);
}


static void
ngx_http_crm_breach_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_int_t               n;
    ngx_http_crm_breach_t  *b;

    b = q->data;
    b->busy = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        return;
    }

    n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                 PQgetlength(res, 0, 0));

    if (n > 0) {
        ngx_log_error(NGX_LOG_NOTICE, b->timer.log, 0,
                      "crm: %i ticket(s) passed their due time unanswered: "
                      "breached", n);
    }

    /* a full batch: there may be more, checked at once */

    if (n == NGX_HTTP_CRM_BREACH_BATCH && !ngx_exiting) {
        if (b->timer.timer_set) {
            ngx_del_timer(&b->timer);
        }

        ngx_add_timer(&b->timer, 1);
    }
}
