
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * PostgreSQL inside the event loop: a per-worker pool of libpq connections
 * in non-blocking mode, driven only by nginx events and timers.
 *
 * This file holds the pool and the life of a query in it: the pool made
 * and destroyed, a query sent on an idle connection or queued until one is
 * idle, detached when its owner goes away, its result read and given to its
 * handler.  Each connection is a state machine of its own, with its states,
 * its connect, the schema check and the one exit for failure, in
 * ngx_http_crm_pg_conn.c; the types the two files share are in
 * ngx_http_crm_pg_int.h.
 *
 * Who frees what: the result of the query in flight is held in pc->res
 * until the query's handler has run, then cleared here; the handler must
 * not keep it.  Queries belong to their callers: the pool only links them,
 * and ngx_http_crm_pg_detach() unlinks one whose owner goes away.  A query
 * that times out takes its connection down with it: cancelling would block
 * (PQcancel), and a connection in an unknown state never goes back to the
 * pool.
 *
 * A query sent while every connection is busy waits in the pool's queue,
 * with a timer: its timeout covers the wait and the query together, so a
 * request never waits longer than database.timeout.  There are two queues:
 * the urgent queries (a request waits for them: an order's decision) go
 * first, and the background ones (spool batches, banner fills, periodic
 * checks) never take the last connection up, so that a decision never
 * waits behind a spool batch.  While the database is known to be down
 * nothing waits: ngx_http_crm_pg_send() declines at once.
 */


#include "ngx_http_crm_pg_int.h"

#include <sys/ioctl.h>


/*
 * a connect (TCP, the SSL and GSS probes, the login) gets 3 s at least: a
 * worker that has just started, or runs under valgrind, can stall for a
 * second before it reads the server's answer
 */
#define NGX_HTTP_CRM_PG_CONNECT_MIN   3000


static void ngx_http_crm_pg_wait_timeout(ngx_event_t *ev);
static void ngx_http_crm_pg_dispatch_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_crm_pg_may_start(ngx_http_crm_pg_t *pg,
    ngx_http_crm_pg_query_t *q);
static ngx_http_crm_pg_query_t *ngx_http_crm_pg_unqueue(
    ngx_queue_t *queue);
static ngx_int_t ngx_http_crm_pg_start(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_query_t *q);


/*
 * Creates the pool from cycle->pool and starts connecting every
 * connection.  Returns NULL on allocation failure only: a database that
 * cannot be reached is retried later.
 */

ngx_http_crm_pg_t *
ngx_http_crm_pg_create(ngx_cycle_t *cycle, ngx_str_t *conninfo,
    ngx_uint_t connections, ngx_msec_t timeout,
    ngx_http_crm_pg_hooks_t *hooks)
{
    ngx_uint_t               i;
    ngx_http_crm_pg_t       *pg;
    ngx_http_crm_pg_conn_t  *pc;

    pg = ngx_pcalloc(cycle->pool, sizeof(ngx_http_crm_pg_t));
    if (pg == NULL) {
        return NULL;
    }

    pg->conns = ngx_pcalloc(cycle->pool,
                            connections * sizeof(ngx_http_crm_pg_conn_t));
    if (pg->conns == NULL) {
        return NULL;
    }

    pg->conninfo = ngx_pnalloc(cycle->pool, conninfo->len + 1);
    if (pg->conninfo == NULL) {
        return NULL;
    }

    ngx_cpystrn((u_char *) pg->conninfo, conninfo->data, conninfo->len + 1);

    ngx_queue_init(&pg->urgent);
    ngx_queue_init(&pg->waiting);

    pg->log = cycle->log;

    pg->dispatch.handler = ngx_http_crm_pg_dispatch_handler;
    pg->dispatch.data = pg;
    pg->dispatch.log = pg->log;

    pg->timeout = timeout;
    pg->connect_timeout = ngx_max(timeout * 4, NGX_HTTP_CRM_PG_CONNECT_MIN);
    pg->nconns = connections;
    pg->hooks = *hooks;

    for (i = 0; i < connections; i++) {
        pc = &pg->conns[i];

        pc->pg = pg;
        pc->index = i;

        /* the cycle's log, and what this connection is doing */
        pc->log = *cycle->log;
        pc->log.handler = ngx_http_crm_pg_log_handler;
        pc->log.data = pc;
        pc->log.action = NULL;
        pc->log.connection = 0;

        pc->retry.handler = ngx_http_crm_pg_retry;
        pc->retry.data = pc;
        pc->retry.log = &pc->log;
        pc->retry.cancelable = 1;

        ngx_http_crm_pg_connect(pc);
    }

    return pg;
}


/*
 * Sends q on an idle connection, or queues it until one is idle.  Returns
 * NGX_OK when it was sent or queued: the handler runs later, exactly once,
 * within q->timeout, unless the query is detached.  Returns NGX_DECLINED
 * when the database is known to be down or its schema is too old.
 */

ngx_int_t
ngx_http_crm_pg_send(ngx_http_crm_pg_t *pg, ngx_http_crm_pg_query_t *q)
{
    ngx_uint_t               i;
    ngx_http_crm_pg_conn_t  *pc;

    if (ngx_http_crm_pg_is_down(pg)) {
        return NGX_DECLINED;
    }

    if (q->timeout == 0) {
        q->timeout = pg->timeout;
    }

    q->deadline = ngx_current_msec + q->timeout;

    /* none of its kind (or, for a background one, of any) waits before it */

    if (ngx_queue_empty(&pg->urgent)
        && (q->urgent || ngx_queue_empty(&pg->waiting))
        && ngx_http_crm_pg_may_start(pg, q))
    {
        for (i = 0; i < pg->nconns; i++) {
            pc = &pg->conns[i];

            if (pc->state == NGX_HTTP_CRM_PG_IDLE
                && ngx_http_crm_pg_start(pc, q) == NGX_OK)
            {
                return NGX_OK;
            }
        }

        if (ngx_http_crm_pg_is_down(pg)) {
            return NGX_DECLINED;
        }
    }

    q->pg = pg;
    q->wait.handler = ngx_http_crm_pg_wait_timeout;
    q->wait.data = q;
    q->wait.log = pg->log;

    ngx_add_timer(&q->wait, q->timeout);
    ngx_queue_insert_tail(q->urgent ? &pg->urgent : &pg->waiting, &q->queue);

    return NGX_OK;
}


/* the query's owner goes away: its handler will not be called */

void
ngx_http_crm_pg_detach(ngx_http_crm_pg_query_t *q)
{
    if (q->conn != NULL) {
        /* the command may go with q: the log lines no longer name it */
        q->conn->command = NULL;
        q->conn->query = NULL;
        q->conn = NULL;
    }

    if (q->pg != NULL) {
        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        ngx_queue_remove(&q->queue);
        q->pg = NULL;
    }
}


/*
 * Registers a query every new connection runs before it joins the pool
 * (the policy, for the functions that need it).  The values must live as
 * long as the pool.
 */

void
ngx_http_crm_pg_on_connect(ngx_http_crm_pg_t *pg, const char *command,
    int nparams, const char *const *values)
{
    pg->on_connect = command;
    pg->on_connect_nparams = nparams;
    pg->on_connect_values = values;
}


static void
ngx_http_crm_pg_wait_timeout(ngx_event_t *ev)
{
    ngx_http_crm_pg_query_t  *q = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "crm pg wait timed out: query %p", q);

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "crm: no PostgreSQL connection was free in time (%M ms)",
                  q->timeout);

    ngx_queue_remove(&q->queue);
    q->pg = NULL;

    q->handler(q, NULL);
}


/*
 * Gives idle connections to the queries waiting: the urgent ones first,
 * oldest first; a background one only while another connection is left.
 */

void
ngx_http_crm_pg_dispatch(ngx_http_crm_pg_t *pg)
{
    ngx_uint_t                i;
    ngx_queue_t              *queue;
    ngx_http_crm_pg_conn_t   *pc;
    ngx_http_crm_pg_query_t  *q;

    i = 0;

    while (i < pg->nconns) {
        pc = &pg->conns[i];

        if (pc->state != NGX_HTTP_CRM_PG_IDLE) {
            i++;
            continue;
        }

        if (!ngx_queue_empty(&pg->urgent)) {
            queue = &pg->urgent;

        } else if (!ngx_queue_empty(&pg->waiting)
                   && ngx_http_crm_pg_may_start(pg,
                          ngx_queue_data(ngx_queue_head(&pg->waiting),
                                         ngx_http_crm_pg_query_t, queue)))
        {
            queue = &pg->waiting;

        } else {
            return;
        }

        q = ngx_http_crm_pg_unqueue(queue);

        if ((ngx_msec_int_t) (q->deadline - ngx_current_msec) <= 0) {
            /* its timer is due in this very turn: no connection for it */
            q->handler(q, NULL);
            continue;
        }

        if (ngx_http_crm_pg_start(pc, q) != NGX_OK) {
            /* pc failed before taking q: q waits for the next one */
            q->pg = pg;
            ngx_add_timer(&q->wait, q->deadline - ngx_current_msec);
            ngx_queue_insert_head(queue, &q->queue);
        }

        i++;
    }
}


static void
ngx_http_crm_pg_dispatch_handler(ngx_event_t *ev)
{
    ngx_http_crm_pg_dispatch(ev->data);
}


/*
 * May q start now?  An urgent query may; a background one while, with it,
 * at least one of the connections up is left to the urgent ones.  With
 * one connection up (a pool of one, or the others down) the background
 * shares it: held back, the spool would wait for as long as they are.
 */

static ngx_uint_t
ngx_http_crm_pg_may_start(ngx_http_crm_pg_t *pg, ngx_http_crm_pg_query_t *q)
{
    ngx_uint_t  i, n;

    if (q->urgent || pg->nconns < 2) {
        return 1;
    }

    n = 0;

    for (i = 0; i < pg->nconns; i++) {
        if (pg->conns[i].state == NGX_HTTP_CRM_PG_BUSY
            && !pg->conns[i].urgent)
        {
            n++;
        }
    }

    return n + 1 < ngx_max(pg->up, 2);
}


/* the database is down: nothing waits for it */

void
ngx_http_crm_pg_fail_waiting(ngx_http_crm_pg_t *pg)
{
    ngx_http_crm_pg_query_t  *q;

    while (!ngx_queue_empty(&pg->urgent)) {
        q = ngx_http_crm_pg_unqueue(&pg->urgent);
        q->handler(q, NULL);
    }

    while (!ngx_queue_empty(&pg->waiting)) {
        q = ngx_http_crm_pg_unqueue(&pg->waiting);
        q->handler(q, NULL);
    }
}


/* takes the oldest query out of a queue, with its timer */

static ngx_http_crm_pg_query_t *
ngx_http_crm_pg_unqueue(ngx_queue_t *queue)
{
    ngx_queue_t              *head;
    ngx_http_crm_pg_query_t  *q;

    head = ngx_queue_head(queue);
    q = ngx_queue_data(head, ngx_http_crm_pg_query_t, queue);

    ngx_queue_remove(head);
    q->pg = NULL;

    if (q->wait.timer_set) {
        ngx_del_timer(&q->wait);
    }

    return q;
}


/*
 * Known to be down: no connection is up and the last attempt failed (or
 * the schema is too old).  While the first connections are still being
 * made, the database is not known to be down.
 */

ngx_uint_t
ngx_http_crm_pg_is_down(ngx_http_crm_pg_t *pg)
{
    return pg == NULL || pg->schema_old || (pg->up == 0 && pg->down);
}


/*
 * Worker exit: closes every connection; the queries in flight or waiting
 * are reported failed, so that their owners free what they hold.
 */

void
ngx_http_crm_pg_destroy(ngx_http_crm_pg_t *pg)
{
    ngx_uint_t                i;
    ngx_http_crm_pg_conn_t   *pc;
    ngx_http_crm_pg_query_t  *q;

    if (pg == NULL) {
        return;
    }

    ngx_http_crm_pg_fail_waiting(pg);

    if (pg->dispatch.posted) {
        ngx_delete_posted_event(&pg->dispatch);
    }

    for (i = 0; i < pg->nconns; i++) {
        pc = &pg->conns[i];

        if (pc->retry.timer_set) {
            ngx_del_timer(&pc->retry);
        }

        q = pc->query;
        pc->query = NULL;

        ngx_http_crm_pg_close(pc);

        if (q != NULL) {
            q->conn = NULL;
            q->handler(q, NULL);
        }
    }
}


/*
 * CHECK_SCHEMA, ON_CONNECT, BUSY: moves the query in flight along, sending
 * on a write event, reading on a read event.  Returns NGX_OK once the whole
 * result has arrived (in pc->res, the first one; NULL when there was none),
 * NGX_AGAIN while more is to come, NGX_ERROR (logged) when the connection
 * failed or was left inside a transaction.
 */

ngx_int_t
ngx_http_crm_pg_read(ngx_http_crm_pg_conn_t *pc, ngx_event_t *ev)
{
    int        n;
    PGresult  *res;

    if (ev->write) {
        if (PQflush(pc->conn) == -1) {
            ngx_http_crm_pg_log_error(pc, "PQflush()");
            return NGX_ERROR;
        }

        /* the rest, if any, goes out on the next write event */

        return NGX_AGAIN;
    }

    if (PQconsumeInput(pc->conn) == 0) {
        ngx_http_crm_pg_log_error(pc, "PQconsumeInput()");
        return NGX_ERROR;
    }

    while (!PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            goto done;
        }

        /* one statement a query: keep the first result, drop the rest */

        if (pc->res == NULL) {
            pc->res = res;

        } else {
            PQclear(res);
        }
    }

    /*
     * PQconsumeInput() reads only what fits libpq's buffer; with epoll
     * edge-triggered, what is left in the socket raises no new event
     */

    if (ioctl(pc->c->fd, FIONREAD, &n) == 0 && n > 0) {
        ngx_post_event(pc->c->read, &ngx_posted_events);
    }

    return NGX_AGAIN;

done:

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    /* only a connection outside any transaction goes on */

    if (PQtransactionStatus(pc->conn) != PQTRANS_IDLE) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "crm: connection left in a transaction, closing it");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* IDLE: the server said something unasked, usually that it is leaving */

ngx_int_t
ngx_http_crm_pg_idle(ngx_http_crm_pg_conn_t *pc, ngx_event_t *ev)
{
    PGnotify  *notify;

    if (ev->write) {
        return NGX_OK;
    }

    if (PQconsumeInput(pc->conn) == 0
        || PQstatus(pc->conn) == CONNECTION_BAD)
    {
        ngx_http_crm_pg_log_error(pc, "idle connection to PostgreSQL");
        return NGX_ERROR;
    }

    while ((notify = PQnotifies(pc->conn)) != NULL) {
        if (pc->pg->hooks.notify) {
            pc->pg->hooks.notify(pc->pg->hooks.notify_data, notify->relname,
                                 notify->extra);
        }

        PQfreemem(notify);
    }

    if (ev->pending_eof) {
        ngx_http_crm_pg_log_error(pc, "idle connection to PostgreSQL");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * BUSY is answered: the connection goes back to the pool before the
 * query's handler runs, so the handler may send the next query.  The
 * handler must not keep res: it is cleared here.
 */

void
ngx_http_crm_pg_complete(ngx_http_crm_pg_conn_t *pc)
{
    size_t                    n;
    u_char                    buf[NGX_MAX_ERROR_STR / 2];
    PGresult                 *res;
    ngx_http_crm_pg_t        *pg;
    ngx_http_crm_pg_query_t  *q;

    pg = pc->pg;

    res = pc->res;
    q = pc->query;

    pc->res = NULL;
    pc->query = NULL;

    if (res != NULL
        && PQresultStatus(res) != PGRES_TUPLES_OK
        && PQresultStatus(res) != PGRES_COMMAND_OK)
    {
        n = ngx_http_crm_pg_one_line(buf, sizeof(buf),
                                     PQresultErrorMessage(res));

        ngx_log_error(NGX_LOG_ERR, &pc->log, 0, "crm: query failed: %*s",
                      n, buf);

        if (pg->hooks.errors) {
            (void) ngx_atomic_fetch_add(pg->hooks.errors, 1);
        }
    }

    if (pg->hooks.latency) {
        pg->hooks.latency(pg->hooks.latency_data,
                          ngx_current_msec - pc->started);
    }

    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_IDLE);

    if (q != NULL) {
        q->conn = NULL;
        q->handler(q, res);
    }

    if (res != NULL) {
        PQclear(res);
    }

    if (pc->state == NGX_HTTP_CRM_PG_IDLE) {
        ngx_http_crm_pg_dispatch(pg);
    }

    if (pc->state == NGX_HTTP_CRM_PG_IDLE && pg->hooks.ready) {
        pg->hooks.ready(pg->hooks.ready_data);
    }
}


/*
 * IDLE to BUSY: sends q on pc.  Returns NGX_OK once pc has taken q (its
 * handler will be called, even if pc fails right away), NGX_ERROR when pc
 * failed before taking it.
 */

static ngx_int_t
ngx_http_crm_pg_start(ngx_http_crm_pg_conn_t *pc, ngx_http_crm_pg_query_t *q)
{
    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_BUSY);

    /* the deadline covers the wait in the queue too */

    if (ngx_http_crm_pg_send_query(pc, q->command, q->nparams, q->values,
                                   q->lengths, q->deadline)
        != NGX_OK)
    {
        ngx_http_crm_pg_fail(pc);
        return NGX_ERROR;
    }

    pc->started = ngx_current_msec;
    pc->query = q;
    pc->urgent = q->urgent;
    q->conn = pc;

    return NGX_OK;
}


/*
 * Sends a query in the state the caller has set, with a timer until the
 * deadline.  Returns NGX_ERROR (logged) when libpq refused it; a failure
 * to send is found by the read event a moment later, so that nothing
 * fails before the caller has seen NGX_OK.
 */

ngx_int_t
ngx_http_crm_pg_send_query(ngx_http_crm_pg_conn_t *pc, const char *command,
    int nparams, const char *const *values, const int *lengths,
    ngx_msec_t deadline)
{
    pc->command = command;

    if (!PQsendQueryParams(pc->conn, command, nparams, NULL, values,
                           lengths, NULL, 0))
    {
        ngx_http_crm_pg_log_error(pc, "PQsendQueryParams()");
        return NGX_ERROR;
    }

    ngx_add_timer(pc->c->read, deadline > ngx_current_msec
                               ? deadline - ngx_current_msec : 1);

    if (PQflush(pc->conn) == -1) {
        ngx_post_event(pc->c->read, &ngx_posted_events);
    }

    /* PQflush() returned 1: the rest goes out on the write event */

    return NGX_OK;
}
