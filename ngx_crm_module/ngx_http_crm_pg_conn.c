
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * One connection of the PostgreSQL pool (ngx_http_crm_pg.c): its libpq
 * connection in non-blocking mode, the socket wrapped to get nginx events,
 * and its state machine, with the connect, the schema check, the
 * on-connect query, the one exit for failure and its log lines.
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
 * closes it.  The result of the query in flight and the queries themselves
 * are the pool's (ngx_http_crm_pg.c).
 */


#include "ngx_http_crm_pg_int.h"


#define NGX_HTTP_CRM_PG_BACKOFF_MIN   100
#define NGX_HTTP_CRM_PG_BACKOFF_MAX   10000


static ngx_int_t ngx_http_crm_pg_wrap(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_unwrap(ngx_http_crm_pg_conn_t *pc);
static ngx_uint_t ngx_http_crm_pg_moved(ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_event(ngx_event_t *ev);
static ngx_int_t ngx_http_crm_pg_connect_poll(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_check_schema(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_schema_checked(ngx_http_crm_pg_conn_t *pc);
static ngx_int_t ngx_http_crm_pg_on_connect_done(
    ngx_http_crm_pg_conn_t *pc);
static void ngx_http_crm_pg_set_idle(ngx_http_crm_pg_conn_t *pc);


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
 * Starts a connection: CLOSED or BACKOFF to CONNECT_WRITE.  Called at
 * worker start and by the retry timer; a failure goes to BACKOFF.
 */

void
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

    /* a SELECT gives tuples, a LISTEN none */

    if (res == NULL || (PQresultStatus(res) != PGRES_TUPLES_OK
                        && PQresultStatus(res) != PGRES_COMMAND_OK))
    {
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
 * The one place a connection changes state: logs the change at debug
 * level, sets the action its error lines name, and keeps the pool's
 * gauges (up: IDLE or BUSY; busy: BUSY).
 */

void
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

void
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

    /*
     * a background query held back for this connection's sake may go on
     * one that is idle: looked at once this turn is over (a failure can
     * come from inside the dispatch itself)
     */

    if (!pg->dispatch.posted
        && (!ngx_queue_empty(&pg->urgent) || !ngx_queue_empty(&pg->waiting)))
    {
        ngx_post_event(&pg->dispatch, &ngx_posted_events);
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

void
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


void
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

u_char *
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

void
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

size_t
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
