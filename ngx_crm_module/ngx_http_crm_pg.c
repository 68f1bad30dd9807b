
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * PostgreSQL inside the event loop: a per-worker pool of libpq connections
 * in non-blocking mode, driven only by nginx events and timers.
 *
 * Each connection is a state machine:
 *
 *     DOWN --connect--> CONNECTING --PQconnectPoll OK--> CHECKING
 *     CHECKING --schema version fits, on-connect query done--> IDLE
 *     IDLE <--result--> BUSY
 *     any state --error, timeout, lost server--> DOWN (one exit:
 *         ngx_http_crm_pg_fail(), which reports the query in flight as
 *         failed and arms the reconnect timer with backoff and jitter)
 *
 * libpq owns the socket: an ngx_connection_t wraps it only to get events,
 * and is freed without closing the fd before PQfinish() closes it.  A
 * query that times out takes its connection down with it: cancelling would
 * block (PQcancel), and a connection in an unknown state never goes back to
 * the pool.
 *
 * A query sent while every connection is busy waits in the pool's queue,
 * with a timer: its timeout covers the wait and the query together, so a
 * request never waits longer than database.timeout.  While the database is
 * known to be down nothing waits: ngx_http_crm_pg_send() declines at once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_crm_pg.h"

#include <sys/ioctl.h>


#define NGX_HTTP_CRM_PG_BACKOFF_MIN   100
#define NGX_HTTP_CRM_PG_BACKOFF_MAX   10000
#define NGX_HTTP_CRM_PG_CONNECT_MIN   1000


typedef enum {
    NGX_HTTP_CRM_PG_DOWN = 0,
    NGX_HTTP_CRM_PG_CONNECTING,
    NGX_HTTP_CRM_PG_CHECKING,
    NGX_HTTP_CRM_PG_IDLE,
    NGX_HTTP_CRM_PG_BUSY
} ngx_http_crm_pg_state_e;


struct ngx_http_crm_pg_conn_s {
    ngx_http_crm_pg_t           *pg;
    PGconn                      *conn;
    ngx_connection_t            *c;
    ngx_http_crm_pg_state_e      state;
    ngx_http_crm_pg_query_t     *query;
    PGresult                    *res;
    ngx_msec_t                   started;
    ngx_event_t                  retry;
    ngx_http_crm_pg_query_t      check;
    ngx_uint_t                   step;        /* of the CHECKING queries */
    ino_t                        ino;         /* of the socket wrapped */
};


struct ngx_http_crm_pg_s {
    ngx_log_t                   *log;
    char                        *conninfo;
    ngx_msec_t                   timeout;
    ngx_msec_t                   backoff;
    ngx_uint_t                   nconns;
    ngx_uint_t                   up;
    ngx_uint_t                   down;        /* failed since last up */
    ngx_uint_t                   schema_old;
    ngx_http_crm_pg_conn_t      *conns;
    ngx_http_crm_pg_hooks_t      hooks;
    ngx_queue_t                  waiting;

    /* run on every new connection after the schema check */
    const char                  *on_connect;
    int                          on_connect_nparams;
    const char *const           *on_connect_values;
};


static void ngx_http_crm_pg_connect(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_wrap(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_unwrap(ngx_http_crm_pg_conn_t *pc);
static ngx_uint_t ngx_http_crm_pg_moved(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_connect_poll(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_event(ngx_event_t *ev);
static void ngx_http_crm_pg_result(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_complete(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_start(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_query_t *q);
static void ngx_http_crm_pg_check_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static void ngx_http_crm_pg_on_connect_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static void ngx_http_crm_pg_fail(ngx_http_crm_pg_conn_t *pc,
    const char *what);
static void ngx_http_crm_pg_close(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_retry(ngx_event_t *ev);
static void ngx_http_crm_pg_set_up(ngx_http_crm_pg_conn_t *pc,
    ngx_uint_t up);
static void ngx_http_crm_pg_log_error(ngx_http_crm_pg_conn_t *pc,
    const char *what);
static void ngx_http_crm_pg_wait_timeout(ngx_event_t *ev);
static void ngx_http_crm_pg_dispatch(ngx_http_crm_pg_t *pg);
static void ngx_http_crm_pg_fail_waiting(ngx_http_crm_pg_t *pg);
static ngx_http_crm_pg_query_t *ngx_http_crm_pg_unqueue(
    ngx_http_crm_pg_t *pg);


static char  ngx_http_crm_pg_check_sql[] =
    "SELECT coalesce(max(version), 0) FROM crm.schema_version";


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
    ngx_uint_t          i;
    ngx_http_crm_pg_t  *pg;

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

    ngx_queue_init(&pg->waiting);

    pg->log = cycle->log;
    pg->timeout = timeout;
    pg->nconns = connections;
    pg->hooks = *hooks;

    for (i = 0; i < connections; i++) {
        pg->conns[i].pg = pg;
        pg->conns[i].retry.handler = ngx_http_crm_pg_retry;
        pg->conns[i].retry.data = &pg->conns[i];
        pg->conns[i].retry.log = cycle->log;
        pg->conns[i].retry.cancelable = 1;

        ngx_http_crm_pg_connect(&pg->conns[i]);
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

    if (ngx_queue_empty(&pg->waiting)) {
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
    ngx_queue_insert_tail(&pg->waiting, &q->queue);

    return NGX_OK;
}


/* the query's owner goes away: its handler will not be called */

void
ngx_http_crm_pg_detach(ngx_http_crm_pg_query_t *q)
{
    if (q->conn != NULL) {
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

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "crm: no PostgreSQL connection was free in time (%M ms)",
                  q->timeout);

    ngx_queue_remove(&q->queue);
    q->pg = NULL;

    q->handler(q, NULL);
}


/* gives idle connections to the queries waiting, oldest first */

static void
ngx_http_crm_pg_dispatch(ngx_http_crm_pg_t *pg)
{
    ngx_uint_t                i;
    ngx_http_crm_pg_conn_t   *pc;
    ngx_http_crm_pg_query_t  *q;

    i = 0;

    while (i < pg->nconns && !ngx_queue_empty(&pg->waiting)) {
        pc = &pg->conns[i];

        if (pc->state != NGX_HTTP_CRM_PG_IDLE) {
            i++;
            continue;
        }

        q = ngx_http_crm_pg_unqueue(pg);

        if ((ngx_msec_int_t) (q->deadline - ngx_current_msec) <= 0) {
            /* its timer is due in this very turn: no connection for it */
            q->handler(q, NULL);
            continue;
        }

        if (ngx_http_crm_pg_start(pc, q) != NGX_OK) {
            /* pc failed before taking q: q waits for the next one */
            q->pg = pg;
            ngx_add_timer(&q->wait, q->deadline - ngx_current_msec);
            ngx_queue_insert_head(&pg->waiting, &q->queue);
        }

        i++;
    }
}


/* the database is down: nothing waits for it */

static void
ngx_http_crm_pg_fail_waiting(ngx_http_crm_pg_t *pg)
{
    ngx_http_crm_pg_query_t  *q;

    while (!ngx_queue_empty(&pg->waiting)) {
        q = ngx_http_crm_pg_unqueue(pg);
        q->handler(q, NULL);
    }
}


/* takes the oldest query out of the queue, with its timer */

static ngx_http_crm_pg_query_t *
ngx_http_crm_pg_unqueue(ngx_http_crm_pg_t *pg)
{
    ngx_queue_t              *head;
    ngx_http_crm_pg_query_t  *q;

    head = ngx_queue_head(&pg->waiting);
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

    for (i = 0; i < pg->nconns; i++) {
        pc = &pg->conns[i];

        if (pc->retry.timer_set) {
            ngx_del_timer(&pc->retry);
        }

        q = pc->query;
        pc->query = NULL;

        ngx_http_crm_pg_close(pc);

        if (q != NULL && q != &pc->check) {
            q->conn = NULL;
            q->handler(q, NULL);
        }
    }
}


static void
ngx_http_crm_pg_connect(ngx_http_crm_pg_conn_t *pc)
{
    const char         *values[4];
    ngx_http_crm_pg_t  *pg = pc->pg;

    /*
     * database.conninfo as the user wrote it, then what the module needs:
     * payloads are UTF-8, whatever the environment says
     */

    static const char  *keys[] = {
        "dbname", "client_encoding", "fallback_application_name", NULL
    };

    values[0] = pg->conninfo;
    values[1] = "UTF8";
    values[2] = "ngx_crm";
    values[3] = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "crm pg connect %p", pc);

    pc->conn = PQconnectStartParams(keys, values, 1);

    if (pc->conn == NULL) {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "crm: PQconnectStartParams() failed: out of memory");
        ngx_http_crm_pg_fail(pc, NULL);
        return;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_http_crm_pg_fail(pc, "PQconnectStartParams()");
        return;
    }

    if (PQsetnonblocking(pc->conn, 1) == -1) {
        ngx_http_crm_pg_fail(pc, "PQsetnonblocking()");
        return;
    }

    if (ngx_http_crm_pg_wrap(pc) != NGX_OK) {
        ngx_http_crm_pg_fail(pc, NULL);
        return;
    }

    pc->state = NGX_HTTP_CRM_PG_CONNECTING;

    ngx_add_timer(pc->c->read,
                  ngx_max(pg->timeout * 4, NGX_HTTP_CRM_PG_CONNECT_MIN));

    ngx_http_crm_pg_connect_poll(pc);
}


/* registers libpq's current socket with the event loop */

static ngx_int_t
ngx_http_crm_pg_wrap(ngx_http_crm_pg_conn_t *pc)
{
    int                fd;
    struct stat        st;
    ngx_connection_t  *c;

    fd = PQsocket(pc->conn);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, pc->pg->log, 0,
                      "crm: PQsocket() returned no socket");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, pc->pg->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    if (fstat(fd, &st) == 0) {
        pc->ino = st.st_ino;
    }

    c->data = pc;
    c->read->handler = ngx_http_crm_pg_event;
    c->write->handler = ngx_http_crm_pg_event;
    c->read->log = pc->pg->log;
    c->write->log = pc->pg->log;

    pc->c = c;

    if (ngx_add_conn == NULL) {
        ngx_log_error(NGX_LOG_ALERT, pc->pg->log, 0,
                      "crm: the event method cannot watch whole "
                      "connections; use epoll");
        ngx_http_crm_pg_unwrap(pc);
        return NGX_ERROR;
    }

    if (ngx_add_conn(c) == NGX_ERROR) {
        ngx_http_crm_pg_unwrap(pc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Frees the ngx_connection_t without closing the fd, which libpq owns.
 * Timers move with the caller: a pending one is deleted.
 */

static void
ngx_http_crm_pg_unwrap(ngx_http_crm_pg_conn_t *pc)
{
    ngx_connection_t  *c = pc->c;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /*
     * the fd is closed by libpq (or already was, when it moved to another
     * host), and epoll forgets a closed fd by itself
     */

    if ((c->read->active || c->write->active) && ngx_del_conn) {
        (void) ngx_del_conn(c, NGX_CLOSE_EVENT);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    pc->c = NULL;
}


/*
 * Whether libpq moved on to another socket (the next host or address of a
 * multi-host conninfo).  The fd number alone does not tell: the old socket
 * is closed first, so the new one often gets the same number; epoll forgot
 * the old one, so the new one must be added.
 */

static ngx_uint_t
ngx_http_crm_pg_moved(ngx_http_crm_pg_conn_t *pc)
{
    struct stat  st;

    if (PQsocket(pc->conn) != pc->c->fd) {
        return 1;
    }

    return fstat(pc->c->fd, &st) == 0 && st.st_ino != pc->ino;
}


static void
ngx_http_crm_pg_connect_poll(ngx_http_crm_pg_conn_t *pc)
{
    ngx_msec_t                 timer;
    PostgresPollingStatusType  st;

    for ( ;; ) {
        st = PQconnectPoll(pc->conn);

        if (st == PGRES_POLLING_FAILED) {
            ngx_http_crm_pg_fail(pc, "connecting to PostgreSQL");
            return;
        }

        /* with several hosts libpq may move on to another socket */

        if (ngx_http_crm_pg_moved(pc)) {
            timer = pc->c->read->timer_set
                    ? pc->c->read->timer.key - ngx_current_msec : 0;

            ngx_http_crm_pg_unwrap(pc);

            if (ngx_http_crm_pg_wrap(pc) != NGX_OK) {
                ngx_http_crm_pg_fail(pc, NULL);
                return;
            }

            ngx_add_timer(pc->c->read, timer ? timer : 1);
        }

        if (st == PGRES_POLLING_OK) {
            break;
        }

        /*
         * epoll is edge-triggered: once the TCP connect completes the
         * socket is already writable and no new event will say so.
         */

        if (st == PGRES_POLLING_WRITING
            && PQstatus(pc->conn) == CONNECTION_MADE)
        {
            continue;
        }

        return;
    }

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pg->log, 0,
                   "crm pg connected %p", pc);

    pc->state = NGX_HTTP_CRM_PG_CHECKING;

    ngx_memzero(&pc->check, sizeof(ngx_http_crm_pg_query_t));
    pc->step = 0;
    pc->check.command = ngx_http_crm_pg_check_sql;
    pc->check.timeout = ngx_max(pc->pg->timeout * 4,
                                NGX_HTTP_CRM_PG_CONNECT_MIN);
    pc->check.handler = ngx_http_crm_pg_check_done;
    pc->check.data = pc;
    pc->check.deadline = ngx_current_msec + pc->check.timeout;

    if (ngx_http_crm_pg_start(pc, &pc->check) != NGX_OK) {
        return;
    }
}


/* the schema check: the database must be at the module's version or newer */

static void
ngx_http_crm_pg_check_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_pg_conn_t *pc = q->data;

    long                version;
    ngx_http_crm_pg_t  *pg;

    pg = pc->pg;

    if (res == NULL || pc->state != NGX_HTTP_CRM_PG_CHECKING) {
        /* the connection is already down */
        return;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "crm: the database has no crm schema (%s); apply "
                      "sql/ with \"./config.sh db\"; events are spooled "
                      "meanwhile", PQresultErrorMessage(res));
        version = 0;

    } else {
        version = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                           PQgetlength(res, 0, 0));
    }

    if (version < NGX_HTTP_CRM_SCHEMA_VERSION) {
        if (version > 0 || PQresultStatus(res) == PGRES_TUPLES_OK) {
            ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                          "crm: the database schema is version %l, the "
                          "module needs %d; apply sql/ with \"./config.sh "
                          "db\"; events are spooled meanwhile",
                          version, NGX_HTTP_CRM_SCHEMA_VERSION);
        }

        /* keep the connection out of the pool and look again later */
        pg->schema_old = 1;
        ngx_http_crm_pg_fail(pc, NULL);
        return;
    }

    pg->schema_old = 0;
    pg->backoff = 0;

    if (pg->on_connect != NULL) {
        pc->step = 1;
        pc->check.command = pg->on_connect;
        pc->check.nparams = pg->on_connect_nparams;
        pc->check.values = pg->on_connect_values;
        pc->check.handler = ngx_http_crm_pg_on_connect_done;
        pc->check.deadline = ngx_current_msec + pc->check.timeout;

        (void) ngx_http_crm_pg_start(pc, &pc->check);
        return;
    }

    ngx_http_crm_pg_set_up(pc, 1);
}


static void
ngx_http_crm_pg_on_connect_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_pg_conn_t *pc = q->data;

    if (res == NULL || pc->state != NGX_HTTP_CRM_PG_CHECKING) {
        return;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, pc->pg->log, 0,
                      "crm: %s failed: %s", q->command,
                      PQresultErrorMessage(res));
        ngx_http_crm_pg_fail(pc, NULL);
        return;
    }

    ngx_http_crm_pg_set_up(pc, 1);
}


static void
ngx_http_crm_pg_event(ngx_event_t *ev)
{
    ngx_connection_t        *c = ev->data;
    ngx_http_crm_pg_conn_t  *pc = c->data;

    int        rc;
    PGnotify  *notify;

    if (ev->timedout) {
        ev->timedout = 0;

        if (pc->state == NGX_HTTP_CRM_PG_CONNECTING) {
            ngx_log_error(NGX_LOG_ERR, pc->pg->log, NGX_ETIMEDOUT,
                          "crm: connecting to PostgreSQL timed out");

        } else {
            ngx_log_error(NGX_LOG_ERR, pc->pg->log, NGX_ETIMEDOUT,
                          "crm: PostgreSQL query timed out");
        }

        ngx_http_crm_pg_fail(pc, NULL);
        return;
    }

    switch (pc->state) {

    case NGX_HTTP_CRM_PG_CONNECTING:
        ngx_http_crm_pg_connect_poll(pc);
        return;

    case NGX_HTTP_CRM_PG_CHECKING:
    case NGX_HTTP_CRM_PG_BUSY:

        if (ev->write) {
            rc = PQflush(pc->conn);

            if (rc == -1) {
                ngx_http_crm_pg_fail(pc, "PQflush()");
            }

            return;
        }

        ngx_http_crm_pg_result(pc);
        return;

    case NGX_HTTP_CRM_PG_IDLE:

        if (ev->write) {
            return;
        }

        /* the server said something unasked: usually that it is leaving */

        if (PQconsumeInput(pc->conn) == 0
            || PQstatus(pc->conn) == CONNECTION_BAD)
        {
            ngx_http_crm_pg_fail(pc, "idle connection to PostgreSQL");
            return;
        }

        while ((notify = PQnotifies(pc->conn)) != NULL) {
            PQfreemem(notify);
        }

        if (ev->pending_eof) {
            ngx_http_crm_pg_fail(pc, "idle connection to PostgreSQL");
        }

        return;

    default:
        return;
    }
}


/* reads what has arrived; completes the query once libpq has it all */

static void
ngx_http_crm_pg_result(ngx_http_crm_pg_conn_t *pc)
{
    int        n;
    PGresult  *res;

    if (PQconsumeInput(pc->conn) == 0) {
        ngx_http_crm_pg_fail(pc, "PQconsumeInput()");
        return;
    }

    while (!PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            ngx_http_crm_pg_complete(pc);
            return;
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
}


/*
 * The query's last result has arrived.  A BUSY connection goes back to the
 * pool before the handler runs, so the handler may send the next query; a
 * CHECKING one is decided by ngx_http_crm_pg_check_done().  The handler
 * must not keep res: it is cleared here.
 */

static void
ngx_http_crm_pg_complete(ngx_http_crm_pg_conn_t *pc)
{
    PGresult                 *res;
    ngx_http_crm_pg_t        *pg;
    ngx_http_crm_pg_query_t  *q;

    pg = pc->pg;

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    res = pc->res;
    q = pc->query;

    pc->res = NULL;
    pc->query = NULL;

    if (pc->state == NGX_HTTP_CRM_PG_BUSY) {
        pc->state = NGX_HTTP_CRM_PG_IDLE;

        if (pg->hooks.busy) {
            (void) ngx_atomic_fetch_add(pg->hooks.busy, -1);
        }

        if (pg->hooks.latency) {
            pg->hooks.latency(pg->hooks.latency_data,
                              ngx_current_msec - pc->started);
        }
    }

    if (res != NULL
        && PQresultStatus(res) != PGRES_TUPLES_OK
        && PQresultStatus(res) != PGRES_COMMAND_OK
        && q != &pc->check)
    {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0, "crm: query failed: %s",
                      PQresultErrorMessage(res));

        if (pg->hooks.errors) {
            (void) ngx_atomic_fetch_add(pg->hooks.errors, 1);
        }
    }

    /* only a connection outside any transaction goes back to the pool */

    if (PQtransactionStatus(pc->conn) != PQTRANS_IDLE) {
        ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                      "crm: connection left in a transaction, closing it");
        ngx_http_crm_pg_fail(pc, NULL);
    }

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
 * Sends q on pc.  Returns NGX_OK once pc has taken q (its handler will be
 * called, even if pc fails right away), NGX_ERROR when pc failed before
 * taking it.
 */

static ngx_int_t
ngx_http_crm_pg_start(ngx_http_crm_pg_conn_t *pc, ngx_http_crm_pg_query_t *q)
{
    int                 rc;
    ngx_http_crm_pg_t  *pg = pc->pg;

    if (!PQsendQueryParams(pc->conn, q->command, q->nparams, NULL,
                           q->values, q->lengths, NULL, 0))
    {
        ngx_http_crm_pg_fail(pc, "PQsendQueryParams()");
        return NGX_ERROR;
    }

    if (q != &pc->check) {
        pc->state = NGX_HTTP_CRM_PG_BUSY;
        pc->started = ngx_current_msec;

        if (pg->hooks.busy) {
            (void) ngx_atomic_fetch_add(pg->hooks.busy, 1);
        }
    }

    pc->query = q;
    q->conn = pc;

    /* the deadline covers the wait in the queue too */

    ngx_add_timer(pc->c->read, q->deadline > ngx_current_msec
                               ? q->deadline - ngx_current_msec : 1);

    rc = PQflush(pc->conn);

    if (rc == -1) {
        /*
         * q is taken; its handler must not run before the caller has
         * seen NGX_OK: the read event finds the failure a moment later
         */
        ngx_post_event(pc->c->read, &ngx_posted_events);
        return NGX_OK;
    }

    /* rc == 1: the rest goes out on the write event */

    return NGX_OK;
}


/*
 * The one exit for every failure: reports the query in flight as failed,
 * closes the connection, and arms the reconnect timer with exponential
 * backoff and jitter.  what names the failing call for the error log, or is
 * NULL when the caller logged already.
 */

static void
ngx_http_crm_pg_fail(ngx_http_crm_pg_conn_t *pc, const char *what)
{
    ngx_msec_t                delay;
    ngx_http_crm_pg_t        *pg = pc->pg;
    ngx_http_crm_pg_query_t  *q;

    if (what != NULL) {
        ngx_http_crm_pg_log_error(pc, what);
    }

    q = pc->query;
    pc->query = NULL;

    if (pc->state == NGX_HTTP_CRM_PG_BUSY && pg->hooks.busy) {
        (void) ngx_atomic_fetch_add(pg->hooks.busy, -1);
    }

    ngx_http_crm_pg_close(pc);

    if (pg->hooks.failures) {
        (void) ngx_atomic_fetch_add(pg->hooks.failures, 1);
    }

    pg->down = 1;

    if (pg->up == 0) {
        ngx_http_crm_pg_fail_waiting(pg);
    }

    if (q != NULL) {
        q->conn = NULL;
        q->handler(q, NULL);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    pg->backoff = pg->backoff ? ngx_min(pg->backoff * 2,
                                        NGX_HTTP_CRM_PG_BACKOFF_MAX)
                              : NGX_HTTP_CRM_PG_BACKOFF_MIN;

    delay = pg->backoff + (ngx_msec_t) ngx_random() % (pg->backoff / 2 + 1);

    if (!pc->retry.timer_set) {
        ngx_add_timer(&pc->retry, delay);
    }
}


static void
ngx_http_crm_pg_close(ngx_http_crm_pg_conn_t *pc)
{
    if (pc->state == NGX_HTTP_CRM_PG_IDLE
        || pc->state == NGX_HTTP_CRM_PG_BUSY)
    {
        ngx_http_crm_pg_set_up(pc, 0);
    }

    pc->state = NGX_HTTP_CRM_PG_DOWN;

    if (pc->res != NULL) {
        PQclear(pc->res);
        pc->res = NULL;
    }

    if (pc->c != NULL) {
        ngx_http_crm_pg_unwrap(pc);
    }

    if (pc->conn != NULL) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }
}


static void
ngx_http_crm_pg_retry(ngx_event_t *ev)
{
    ngx_http_crm_pg_conn_t  *pc = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_crm_pg_connect(pc);
}


static void
ngx_http_crm_pg_set_up(ngx_http_crm_pg_conn_t *pc, ngx_uint_t up)
{
    ngx_http_crm_pg_t  *pg = pc->pg;

    if (up) {
        pc->state = NGX_HTTP_CRM_PG_IDLE;
        pg->up++;
        pg->down = 0;

        if (pg->hooks.up) {
            (void) ngx_atomic_fetch_add(pg->hooks.up, 1);
        }

        ngx_http_crm_pg_dispatch(pg);

        if (pc->state == NGX_HTTP_CRM_PG_IDLE && pg->hooks.ready) {
            pg->hooks.ready(pg->hooks.ready_data);
        }

        return;
    }

    pg->up--;

    if (pg->hooks.up) {
        (void) ngx_atomic_fetch_add(pg->hooks.up, -1);
    }
}


static void
ngx_http_crm_pg_log_error(ngx_http_crm_pg_conn_t *pc, const char *what)
{
    u_char  *msg, *last, *p, *q;
    u_char   buf[NGX_MAX_ERROR_STR / 2];

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* a worker on its way out: the database is not its business */
        return;
    }

    msg = (u_char *) (pc->conn ? PQerrorMessage(pc->conn) : "");
    last = msg + ngx_strlen(msg);

    /* libpq's messages span lines; the error log wants one */

    for (p = buf, q = msg; q < last && p < buf + sizeof(buf); q++) {

        if (*q == '\n' || *q == '\t' || *q == '\r') {
            if (p > buf && p[-1] != ' ') {
                *p++ = ' ';
            }

            continue;
        }

        *p++ = *q;
    }

    while (p > buf && p[-1] == ' ') {
        p--;
    }

    ngx_log_error(NGX_LOG_ERR, pc->pg->log, 0, "crm: %s failed: %*s",
                  what, (size_t) (p - buf), buf);
}
