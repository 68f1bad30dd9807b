
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_PG_INT_H_INCLUDED_
#define _NGX_HTTP_CRM_PG_INT_H_INCLUDED_


/*
 * Internal to the PostgreSQL pool's two files, and included by nothing
 * else: callers use ngx_http_crm_pg.h.
 *
 *   ngx_http_crm_pg.c       the pool and the life of a query: create,
 *                           send, queue, detach, read the result, hand it
 *                           to the handler, destroy
 *   ngx_http_crm_pg_conn.c  a connection: its states and events, connect,
 *                           the schema check, the one exit for failure,
 *                           its log lines
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_crm_pg.h"


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
    unsigned                     urgent:1;    /* its query, in BUSY */
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
    ngx_queue_t                  urgent;      /* queries waiting, first */
    ngx_queue_t                  waiting;     /* background ones */
    ngx_event_t                  dispatch;    /* posted: idle ones may go */

    /* run on every new connection after the schema check */
    const char                  *on_connect;
    int                          on_connect_nparams;
    const char *const           *on_connect_values;
};


/* ngx_http_crm_pg.c */
void ngx_http_crm_pg_dispatch(ngx_http_crm_pg_t *pg);
void ngx_http_crm_pg_fail_waiting(ngx_http_crm_pg_t *pg);
ngx_int_t ngx_http_crm_pg_read(ngx_http_crm_pg_conn_t *pc, ngx_event_t *ev);
ngx_int_t ngx_http_crm_pg_idle(ngx_http_crm_pg_conn_t *pc, ngx_event_t *ev);
void ngx_http_crm_pg_complete(ngx_http_crm_pg_conn_t *pc);
ngx_int_t ngx_http_crm_pg_send_query(ngx_http_crm_pg_conn_t *pc,
    const char *command, int nparams, const char *const *values,
    const int *lengths, ngx_msec_t deadline);

/* ngx_http_crm_pg_conn.c */
void ngx_http_crm_pg_connect(ngx_http_crm_pg_conn_t *pc);
void ngx_http_crm_pg_set_state(ngx_http_crm_pg_conn_t *pc,
    ngx_http_crm_pg_state_e state);
void ngx_http_crm_pg_fail(ngx_http_crm_pg_conn_t *pc);
void ngx_http_crm_pg_close(ngx_http_crm_pg_conn_t *pc);
void ngx_http_crm_pg_retry(ngx_event_t *ev);
u_char *ngx_http_crm_pg_log_handler(ngx_log_t *log, u_char *buf,
    size_t len);
void ngx_http_crm_pg_log_error(ngx_http_crm_pg_conn_t *pc,
    const char *what);
size_t ngx_http_crm_pg_one_line(u_char *buf, size_t size, const char *msg);


#endif /* _NGX_HTTP_CRM_PG_INT_H_INCLUDED_ */
