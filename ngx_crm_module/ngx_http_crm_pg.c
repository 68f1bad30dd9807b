
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * PostgreSQL inside the event loop: a per-worker pool of libpq connections
 * in non-blocking mode, driven only by nginx events and timers.
 *
 * Each connection is one state machine; ngx_http_crm_pg_set_state() is the
 * only place that changes its state, logs the change at debug level and
 * sets what its log says the connection was doing (" while ..."):
 *
 *     CLOSED         no libpq connection: before the first connect, or
 *                    for good once the worker is exiting
 *     CONNECT_WRITE  PQconnectPoll() waits for the socket to be writable
 *                    ("connecting to PostgreSQL")
 *     CONNECT_READ   PQconnectPoll() waits for the server's answer
 *                    ("logging in to PostgreSQL")
 *     CHECK_SCHEMA   the schema version query is in flight
 *     ON_CONNECT     the query registered with ngx_http_crm_pg_on_connect()
 *                    is in flight (the policy)
 *     IDLE           in the pool, waiting for a query
 *     BUSY           a query is in flight (being sent or its result read)
 *     BACKOFF        closed after a failure, the reconnect timer armed
 *
 *     CLOSED, BACKOFF --connect--> CONNECT_WRITE <--> CONNECT_READ
 *     CONNECT_* --connected--> CHECK_SCHEMA --version fits--> ON_CONNECT
 *     ON_CONNECT (or CHECK_SCHEMA without an on-connect query) --> IDLE
 *     IDLE <--query, result--> BUSY
 *     any state --error, timeout, lost server, schema too old--> BACKOFF
 *         (one exit: ngx_http_crm_pg_fail(), which closes the connection,
 *         reports the query in flight as failed and arms the reconnect
 *         timer with backoff and jitter)
 *
 * Every state that waits has a timer: the connect timeout covers
 * CONNECT_*, then CHECK_SCHEMA and ON_CONNECT each; the query's deadline
 * covers BUSY; the retry timer BACKOFF.  IDLE waits for nothing.
 *
 * Who frees what: libpq owns the socket: an ngx_connection_t wraps it only
 * to get events, and is freed without closing the fd before PQfinish()
 * closes it.  The result of the query in flight is held in pc->res until
 * the query's handler has run, then cleared here; the handler must not keep
 * it.  Queries belong to their callers: the pool only links them, and
 * ngx_http_crm_pg_detach() unlinks one whose owner goes away.  A query that
 * times out takes its connection down with it: cancelling would block
 * (PQcancel), and a connection in an unknown state never goes back to the
 * pool.
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
/*
 * a connect (TCP, the SSL and GSS probes, the login) gets 3 s at least: a
 * worker that has just started, or runs under valgrind, can stall for a
 * second before it reads the server's answer
 */
#define NGX_HTTP_CRM_PG_CONNECT_MIN   3000


typedef enum {
    NGX_HTTP_CRM_PG_CLOSED = 0,
    NGX_HTTP_CRM_PG_BACKOFF,
    NGX_HTTP_CRM_PG_CONNECT_WRITE,
    NGX_HTTP_CRM_PG_CONNECT_READ,
    NGX_HTTP_CRM_PG_CHECK_SCHEMA,
    NGX_HTTP_CRM_PG_ON_CONNECT,
    NGX_HTTP_CRM_PG_IDLE,
    NGX_HTTP_CRM_PG_BUSY
} ngx_http_crm_pg_state_e;


typedef struct {
    char                        *name;      /* for the debug log */
    char                        *action;    /* for c->log->action */
} ngx_http_crm_pg_state_t;


struct ngx_http_crm_pg_conn_s {
    ngx_http_crm_pg_t           *pg;
    ngx_uint_t                   index;       /* in pg->conns, for the log */
    PGconn                      *conn;
    ngx_connection_t            *c;
    ngx_log_t                    log;         /* c->log, with the action */
    ngx_http_crm_pg_state_e      state;
    ngx_http_crm_pg_query_t     *query;       /* the caller's, in BUSY */
    const char                  *command;     /* in flight, for the log */
    PGresult                    *res;
    ngx_msec_t                   started;
    ngx_event_t                  retry;
    ino_t                        ino;         /* of the socket wrapped */
};


struct ngx_http_crm_pg_s {
    ngx_log_t                   *log;
    char                        *conninfo;
    ngx_msec_t                   timeout;
    ngx_msec_t                   connect_timeout;
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
static void ngx_http_crm_pg_event(ngx_event_t *ev);
static ngx_int_t ngx_http_crm_pg_connect_poll(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_check_schema(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_schema_checked(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_on_connect_done(
    ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_read(ngx_http_crm_pg_conn_t *pc,
    ngx_event_t *ev);
static ngx_int_t ngx_http_crm_pg_idle(ngx_http_crm_pg_conn_t *pc,
    ngx_event_t *ev);
static void ngx_http_crm_pg_complete(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_start(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_query_t *q);
static ngx_int_t ngx_http_crm_pg_send_query(ngx_http_crm_pg_conn_t *pc,
    const char *command, int nparams, const char *const *values,
    const int *lengths, ngx_msec_t deadline);
static void ngx_http_crm_pg_set_state(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_state_e state);
static void ngx_http_crm_pg_set_idle(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_fail(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_close(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_retry(ngx_event_t *ev);
static u_char *ngx_http_crm_pg_log_handler(ngx_log_t *log, u_char *buf,
    size_t len);
static void ngx_http_crm_pg_log_error(ngx_http_crm_pg_conn_t *pc,
    const char *what);
static size_t ngx_http_crm_pg_one_line(u_char *buf, size_t size,
    const char *msg);
static void ngx_http_crm_pg_wait_timeout(ngx_event_t *ev);
static void ngx_http_crm_pg_dispatch(ngx_http_crm_pg_t *pg);
static void ngx_http_crm_pg_fail_waiting(ngx_http_crm_pg_t *pg);
static ngx_http_crm_pg_query_t *ngx_http_crm_pg_unqueue(
    ngx_http_crm_pg_t *pg);


static char  ngx_http_crm_pg_check_sql[] =
    "SELECT coalesce(max(version), 0) FROM crm.schema_version";


/* indexed by ngx_http_crm_pg_state_e */

static ngx_http_crm_pg_state_t  ngx_http_crm_pg_states[] = {
    { "closed", NULL },
    { "backoff", "waiting to reconnect to PostgreSQL" },
    { "connect write", "connecting to PostgreSQL" },
    { "connect read", "logging in to PostgreSQL" },
    { "check schema", "checking the crm schema version" },
    { "on connect", "running the on-connect query" },
    { "idle", "waiting for a query" },
    { "busy", "running a query" }
};


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

    ngx_queue_init(&pg->waiting);

    pg->log = cycle->log;
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

        if (q != NULL) {
            q->conn = NULL;
            q->handler(q, NULL);
        }
    }
}


/*
 * Starts a connection: CLOSED or BACKOFF to CONNECT_WRITE.  Called at
 * worker start and by the retry timer; a failure goes to BACKOFF.
 */

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &pc->log, 0,
                   "crm pg connect: conn %ui %p", pc->index, pc);

    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_CONNECT_WRITE);

    pc->conn = PQconnectStartParams(keys, values, 1);

    if (pc->conn == NULL) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "crm: PQconnectStartParams() failed: out of memory");
        goto failed;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_http_crm_pg_log_error(pc, "PQconnectStartParams()");
        goto failed;
    }

    if (PQsetnonblocking(pc->conn, 1) == -1) {
        ngx_http_crm_pg_log_error(pc, "PQsetnonblocking()");
        goto failed;
    }

    if (ngx_http_crm_pg_wrap(pc) != NGX_OK) {
        goto failed;
    }

    ngx_add_timer(pc->c->read, pg->connect_timeout);

    /* libpq has started the TCP connect: poll it at once */

    ngx_http_crm_pg_event(pc->c->write);

    return;

failed:

    ngx_http_crm_pg_fail(pc);
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
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "crm: PQsocket() returned no socket");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, &pc->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    if (fstat(fd, &st) == 0) {
        pc->ino = st.st_ino;
    }

    /* a number for "*N" in the log lines, as nginx's own connections */
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    pc->log.connection = c->number;

    c->data = pc;
    c->log = &pc->log;
    c->read->handler = ngx_http_crm_pg_event;
    c->write->handler = ngx_http_crm_pg_event;
    c->read->log = &pc->log;
    c->write->log = &pc->log;

    pc->c = c;

    if (ngx_add_conn == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &pc->log, 0,
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



/*
 * The connection's event handler: one switch over its state, one exit for
 * failure.  Each step logs its own error and returns NGX_ERROR; NGX_AGAIN
 * and NGX_OK both wait for the next event.
 */

static void
ngx_http_crm_pg_event(ngx_event_t *ev)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_crm_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "crm pg event: conn %ui %s, %s%s", pc->index,
                   ngx_http_crm_pg_states[pc->state].name,
                   ev->write ? "write" : "read",
                   ev->timedout ? ", timed out" : "");

    if (ev->timedout) {
        ev->timedout = 0;

        if (pc->state == NGX_HTTP_CRM_PG_CONNECT_WRITE
            || pc->state == NGX_HTTP_CRM_PG_CONNECT_READ)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "crm: connecting to PostgreSQL timed out");

        } else {
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "crm: PostgreSQL query timed out");
        }

        goto failed;
    }

    /* c and ev may be gone after a step: libpq may change sockets */

    switch (pc->state) {

    case NGX_HTTP_CRM_PG_CONNECT_WRITE:
    case NGX_HTTP_CRM_PG_CONNECT_READ:
        rc = ngx_http_crm_pg_connect_poll(pc);

        if (rc == NGX_OK) {
            rc = ngx_http_crm_pg_check_schema(pc);
        }

        break;

    case NGX_HTTP_CRM_PG_CHECK_SCHEMA:
        rc = ngx_http_crm_pg_read(pc, ev);

        if (rc == NGX_OK) {
            rc = ngx_http_crm_pg_schema_checked(pc);
        }

        break;

    case NGX_HTTP_CRM_PG_ON_CONNECT:
        rc = ngx_http_crm_pg_read(pc, ev);

        if (rc == NGX_OK) {
            rc = ngx_http_crm_pg_on_connect_done(pc);
        }

        break;

    case NGX_HTTP_CRM_PG_BUSY:
        rc = ngx_http_crm_pg_read(pc, ev);

        if (rc == NGX_OK) {
            ngx_http_crm_pg_complete(pc);
        }

        break;

    case NGX_HTTP_CRM_PG_IDLE:
        rc = ngx_http_crm_pg_idle(pc, ev);
        break;

    default: /* CLOSED, BACKOFF: no socket, so no event */
        return;
    }

    if (rc != NGX_ERROR) {
        return;
    }

failed:

    ngx_http_crm_pg_fail(pc);
}


/*
 * CONNECT_WRITE, CONNECT_READ: drives PQconnectPoll().  Returns NGX_OK once
 * connected, NGX_AGAIN while libpq waits for the socket, NGX_ERROR (logged)
 * when connecting failed.
 */

static ngx_int_t
ngx_http_crm_pg_connect_poll(ngx_http_crm_pg_conn_t *pc)
{
    ngx_msec_t                 timer;
    PostgresPollingStatusType  st;

    for ( ;; ) {
        st = PQconnectPoll(pc->conn);

        if (st == PGRES_POLLING_FAILED) {
            ngx_http_crm_pg_log_error(pc, "connecting to PostgreSQL");
            return NGX_ERROR;
        }

        /* with several hosts libpq may move on to another socket */

        if (ngx_http_crm_pg_moved(pc)) {
            timer = pc->c->read->timer_set
                    ? pc->c->read->timer.key - ngx_current_msec : 0;

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &pc->log, 0,
                           "crm pg conn %ui: new socket %d",
                           pc->index, PQsocket(pc->conn));

            ngx_http_crm_pg_unwrap(pc);

            if (ngx_http_crm_pg_wrap(pc) != NGX_OK) {
                return NGX_ERROR;
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

        ngx_http_crm_pg_set_state(pc, st == PGRES_POLLING_READING
                                      ? NGX_HTTP_CRM_PG_CONNECT_READ
                                      : NGX_HTTP_CRM_PG_CONNECT_WRITE);
        return NGX_AGAIN;
    }

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, &pc->log, 0,
                   "crm pg conn %ui: connected to %s:%s, server %d",
                   pc->index, PQhost(pc->conn), PQport(pc->conn),
                   PQserverVersion(pc->conn));

    return NGX_OK;
}


/* to CHECK_SCHEMA: sends the schema version query */

static ngx_int_t
ngx_http_crm_pg_check_schema(ngx_http_crm_pg_conn_t *pc)
{
    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_CHECK_SCHEMA);

    return ngx_http_crm_pg_send_query(pc, ngx_http_crm_pg_check_sql, 0,
                                      NULL, NULL, ngx_current_msec
                                                  + pc->pg->connect_timeout);
}


/*
 * CHECK_SCHEMA is answered: the database must be at the module's version or
 * newer.  Then the on-connect query, or straight into the pool.  Returns
 * NGX_ERROR (logged) when the schema is missing or too old: the connection
 * stays out of the pool and looks again after the backoff.
 */

static ngx_int_t
ngx_http_crm_pg_schema_checked(ngx_http_crm_pg_conn_t *pc)
{
    long                version;
    char               *msg;
    PGresult           *res;
    ngx_http_crm_pg_t  *pg;

    pg = pc->pg;
    res = pc->res;
    pc->res = NULL;

    if (res == NULL
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "crm: the database has no crm schema (%s); apply "
                      "sql/ with \"./config.sh db\"; events are spooled "
                      "meanwhile", msg ? msg : "no result");
        version = 0;

    } else {
        version = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                           PQgetlength(res, 0, 0));
    }

    if (version < NGX_HTTP_CRM_SCHEMA_VERSION) {
        if (version > 0
            || (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK))
        {
            ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                          "crm: the database schema is version %l, the "
                          "module needs %d; apply sql/ with \"./config.sh "
                          "db\"; events are spooled meanwhile",
                          version, NGX_HTTP_CRM_SCHEMA_VERSION);
        }

        if (res != NULL) {
            PQclear(res);
        }

        pg->schema_old = 1;
        return NGX_ERROR;
    }

    PQclear(res);

    pg->schema_old = 0;
    pg->backoff = 0;

    if (pg->on_connect == NULL) {
        ngx_http_crm_pg_set_idle(pc);
        return NGX_OK;
    }

    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_ON_CONNECT);

    return ngx_http_crm_pg_send_query(pc, pg->on_connect,
                                      pg->on_connect_nparams,
                                      pg->on_connect_values, NULL,
                                      ngx_current_msec + pg->connect_timeout);
}


/* ON_CONNECT is answered: the connection joins the pool, or fails */

static ngx_int_t
ngx_http_crm_pg_on_connect_done(ngx_http_crm_pg_conn_t *pc)
{
    size_t     n;
    u_char     buf[NGX_MAX_ERROR_STR / 2];
    PGresult  *res;

    res = pc->res;
    pc->res = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        n = ngx_http_crm_pg_one_line(buf, sizeof(buf),
                                     res ? PQresultErrorMessage(res)
                                         : "no result");

        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "crm: the on-connect query failed: %*s", n, buf);

        if (res != NULL) {
            PQclear(res);
        }

        return NGX_ERROR;
    }

    PQclear(res);

    ngx_http_crm_pg_set_idle(pc);

    return NGX_OK;
}


/*
 * CHECK_SCHEMA, ON_CONNECT, BUSY: moves the query in flight along, sending
 * on a write event, reading on a read event.  Returns NGX_OK once the whole
 * result has arrived (in pc->res, the first one; NULL when there was none),
 * NGX_AGAIN while more is to come, NGX_ERROR (logged) when the connection
 * failed or was left inside a transaction.
 */

static ngx_int_t
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

static ngx_int_t
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

static void
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
    q->conn = pc;

    return NGX_OK;
}


/*
 * Sends a query in the state the caller has set, with a timer until the
 * deadline.  Returns NGX_ERROR (logged) when libpq refused it; a failure
 * to send is found by the read event a moment later, so that nothing
 * fails before the caller has seen NGX_OK.
 */

static ngx_int_t
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


/*
 * The one place a connection changes state: logs the change at debug
 * level, sets the action its error lines name, and keeps the pool's
 * gauges (up: IDLE or BUSY; busy: BUSY).
 */

static void
ngx_http_crm_pg_set_state(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_state_e state)
{
    ngx_uint_t          was_up, is_up;
    ngx_http_crm_pg_t  *pg = pc->pg;

    if (pc->state == state) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &pc->log, 0,
                   "crm pg conn %ui: %s -> %s", pc->index,
                   ngx_http_crm_pg_states[pc->state].name,
                   ngx_http_crm_pg_states[state].name);

    was_up = (pc->state == NGX_HTTP_CRM_PG_IDLE
              || pc->state == NGX_HTTP_CRM_PG_BUSY);
    is_up = (state == NGX_HTTP_CRM_PG_IDLE || state == NGX_HTTP_CRM_PG_BUSY);

    if (pc->state == NGX_HTTP_CRM_PG_BUSY && pg->hooks.busy) {
        (void) ngx_atomic_fetch_add(pg->hooks.busy, -1);
    }

    if (state == NGX_HTTP_CRM_PG_BUSY && pg->hooks.busy) {
        (void) ngx_atomic_fetch_add(pg->hooks.busy, 1);
    }

    if (was_up && !is_up) {
        pg->up--;

        if (pg->hooks.up) {
            (void) ngx_atomic_fetch_add(pg->hooks.up, -1);
        }
    }

    if (!was_up && is_up) {
        pg->up++;
        pg->down = 0;

        if (pg->hooks.up) {
            (void) ngx_atomic_fetch_add(pg->hooks.up, 1);
        }
    }

    if (state != NGX_HTTP_CRM_PG_CHECK_SCHEMA
        && state != NGX_HTTP_CRM_PG_ON_CONNECT
        && state != NGX_HTTP_CRM_PG_BUSY)
    {
        pc->command = NULL;
    }

    pc->state = state;
    pc->log.action = ngx_http_crm_pg_states[state].action;
}


/* a new connection joins the pool: the queries waiting get it */

static void
ngx_http_crm_pg_set_idle(ngx_http_crm_pg_conn_t *pc)
{
    ngx_http_crm_pg_t  *pg = pc->pg;

    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_IDLE);

    ngx_http_crm_pg_dispatch(pg);

    if (pc->state == NGX_HTTP_CRM_PG_IDLE && pg->hooks.ready) {
        pg->hooks.ready(pg->hooks.ready_data);
    }
}


/*
 * The one exit for every failure, to BACKOFF: closes the connection,
 * reports the query in flight as failed, and arms the reconnect timer with
 * exponential backoff and jitter.  The caller has logged why.
 */

static void
ngx_http_crm_pg_fail(ngx_http_crm_pg_conn_t *pc)
{
    ngx_msec_t                delay;
    ngx_http_crm_pg_t        *pg = pc->pg;
    ngx_http_crm_pg_query_t  *q;

    q = pc->query;
    pc->query = NULL;

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &pc->log, 0,
                   "crm pg conn %ui: reconnect in %M ms",
                   pc->index, delay);

    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_BACKOFF);

    if (!pc->retry.timer_set) {
        ngx_add_timer(&pc->retry, delay);
    }
}


/* to CLOSED: frees the result held, the wrapper, then libpq's connection */

static void
ngx_http_crm_pg_close(ngx_http_crm_pg_conn_t *pc)
{
    ngx_http_crm_pg_set_state(pc, NGX_HTTP_CRM_PG_CLOSED);

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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "crm pg retry: conn %ui", pc->index);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_crm_pg_connect(pc);
}


/*
 * What the connection's error lines end with: " while <action>", the
 * server libpq is talking to, and the query in flight.  Like nginx's own
 * handlers it is not called for debug lines.
 */

static u_char *
ngx_http_crm_pg_log_handler(ngx_log_t *log, u_char *buf, size_t len)
{
    char                    *host, *port;
    u_char                  *p;
    ngx_http_crm_pg_conn_t  *pc;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(buf, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    pc = log->data;

    if (pc->conn != NULL) {
        host = PQhost(pc->conn);
        port = PQport(pc->conn);

        if (host != NULL && host[0] != '\0') {
            p = ngx_snprintf(buf, len, ", PostgreSQL server: %s:%s",
                             host, port ? port : "");
            len -= p - buf;
            buf = p;
        }
    }

    if (pc->command != NULL) {
        p = ngx_snprintf(buf, len, ", query: \"%s\"", pc->command);
    }

    return p;
}


/* logs what libpq says about the connection, after what failed */

static void
ngx_http_crm_pg_log_error(ngx_http_crm_pg_conn_t *pc, const char *what)
{
    size_t  n;
    u_char  buf[NGX_MAX_ERROR_STR / 2];

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* a worker on its way out: the database is not its business */
        return;
    }

    n = ngx_http_crm_pg_one_line(buf, sizeof(buf),
                                 pc->conn ? PQerrorMessage(pc->conn) : "");

    ngx_log_error(NGX_LOG_ERR, &pc->log, 0, "crm: %s failed: %*s",
                  what, n, buf);
}


/*
 * Copies libpq's message into buf as one line: its messages span lines,
 * the error log wants one.  Returns the length copied.
 */

static size_t
ngx_http_crm_pg_one_line(u_char *buf, size_t size, const char *msg)
{
    u_char        *p;
    const u_char  *q, *last;

    q = (const u_char *) msg;
    last = q + ngx_strlen(msg);

    for (p = buf; q < last && p < buf + size; q++) {

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

    return p - buf;
}
