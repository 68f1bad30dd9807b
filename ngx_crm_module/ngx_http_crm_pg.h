
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_PG_H_INCLUDED_
#define _NGX_HTTP_CRM_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <libpq-fe.h>


/* the schema version (sql/NNN_*.sql) this module needs at least */
#define NGX_HTTP_CRM_SCHEMA_VERSION  14


typedef struct ngx_http_crm_pg_s        ngx_http_crm_pg_t;
typedef struct ngx_http_crm_pg_conn_s   ngx_http_crm_pg_conn_t;
typedef struct ngx_http_crm_pg_query_s  ngx_http_crm_pg_query_t;

/* res is NULL when the query failed, timed out or its connection died */
typedef void (*ngx_http_crm_pg_done_pt)(ngx_http_crm_pg_query_t *q,
    PGresult *res);


struct ngx_http_crm_pg_query_s {
    const char                  *command;
    int                          nparams;
    const char *const           *values;
    const int                   *lengths;
    ngx_msec_t                   timeout;
    ngx_http_crm_pg_done_pt      handler;
    void                        *data;
    /*
     * A request waits for it (an order's decision): it goes before the
     * background queries (the spool, banner fills, periodic checks), and
     * these never take the last connection, so it never waits behind a
     * spool batch.
     */
    unsigned                     urgent:1;

    /* private */
    ngx_http_crm_pg_conn_t      *conn;      /* running it, NULL otherwise */
    ngx_http_crm_pg_t           *pg;        /* waiting for a connection */
    ngx_queue_t                  queue;
    ngx_event_t                  wait;
    ngx_msec_t                   deadline;
};


typedef struct {
    /* gauges and counters shared by the workers, maintained here */
    ngx_atomic_t                *up;
    ngx_atomic_t                *busy;
    ngx_atomic_t                *failures;
    ngx_atomic_t                *errors;
    void                       (*latency)(void *data, ngx_msec_t ms);
    void                        *latency_data;
    void                       (*ready)(void *data);  /* a conn got idle */
    void                        *ready_data;
    /* a NOTIFY that reached a connection (LISTEN in on_connect) */
    void                       (*notify)(void *data, const char *channel,
                                         const char *payload);
    void                        *notify_data;
} ngx_http_crm_pg_hooks_t;


ngx_http_crm_pg_t *ngx_http_crm_pg_create(ngx_cycle_t *cycle,
    ngx_str_t *conninfo, ngx_uint_t connections, ngx_msec_t timeout,
    ngx_http_crm_pg_hooks_t *hooks);
void ngx_http_crm_pg_on_connect(ngx_http_crm_pg_t *pg, const char *command,
    int nparams, const char *const *values);
ngx_int_t ngx_http_crm_pg_send(ngx_http_crm_pg_t *pg,
    ngx_http_crm_pg_query_t *q);
void ngx_http_crm_pg_detach(ngx_http_crm_pg_query_t *q);
ngx_uint_t ngx_http_crm_pg_is_down(ngx_http_crm_pg_t *pg);
void ngx_http_crm_pg_destroy(ngx_http_crm_pg_t *pg);


#endif /* _NGX_HTTP_CRM_PG_H_INCLUDED_ */
