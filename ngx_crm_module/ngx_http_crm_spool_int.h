
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_SPOOL_INT_H_INCLUDED_
#define _NGX_HTTP_CRM_SPOOL_INT_H_INCLUDED_


/*
 * The spool's own declarations, shared by its two files and by nothing
 * else: callers use the prototypes in ngx_http_crm.h.
 *
 *   ngx_http_crm_spool.c       the writer: its states, the batches sent to
 *                              PostgreSQL and their results, the scan
 *   ngx_http_crm_spool_file.c  the files on disk: the lines appended, the
 *                              own file made and started again, the files
 *                              of gone workers taken over and removed
 */


#include "ngx_http_crm.h"


#define NGX_HTTP_CRM_SPOOL_OUT        (64 * 1024)


typedef enum {
    NGX_HTTP_CRM_SPOOL_NO_FILE = 0,
    NGX_HTTP_CRM_SPOOL_IDLE,
    NGX_HTTP_CRM_SPOOL_PENDING,
    NGX_HTTP_CRM_SPOOL_IN_FLIGHT,
    NGX_HTTP_CRM_SPOOL_SLOW,
    NGX_HTTP_CRM_SPOOL_PAUSED
} ngx_http_crm_spool_state_e;


typedef struct {
    ngx_fd_t                  fd;
    off_t                     size;        /* end of what is in the file */
    off_t                     sent;        /* written to PostgreSQL */
    off_t                     refused;     /* up to here: line by line */
    u_char                    name[NGX_MAX_PATH];
} ngx_http_crm_spool_file_t;


struct ngx_http_crm_spool_s {
    ngx_log_t                *log;
    ngx_http_crm_main_conf_t *crmcf;
    ngx_http_crm_stats_t     *stats;
    ngx_str_t                 dir;

    ngx_http_crm_spool_state_e state;

    ngx_http_crm_spool_file_t own;
    ngx_http_crm_spool_file_t orphan;      /* fd -1 when none */

    /* the batch out, in flight or slow */
    ngx_http_crm_spool_file_t *file;
    off_t                     end;
    ngx_uint_t                lines;

    /* lines appended while PostgreSQL was down, not yet written */
    ngx_uint_t                backlog;

    u_char                   *buf;         /* buf_size + 1 for a NUL */
    size_t                    buf_size;

    /* lines not yet written to the file */
    u_char                   *out;
    size_t                    out_len;
    ngx_uint_t                out_lines;
    ngx_event_t               write;

    ngx_event_t               flush;
    ngx_event_t               scan;

    ngx_http_crm_pg_query_t   query;
    const char               *values[1];
    int                       lengths[1];
};


#if (NGX_DEBUG)
extern const char  *ngx_http_crm_spool_states[];
#endif


/* ngx_http_crm_spool.c */
void ngx_http_crm_spool_set_state(ngx_http_crm_spool_t *spool,
    ngx_http_crm_spool_state_e state);
void ngx_http_crm_spool_schedule(ngx_http_crm_spool_t *spool);

/* ngx_http_crm_spool_file.c */
ngx_int_t ngx_http_crm_spool_open(ngx_http_crm_spool_t *spool,
    ngx_uint_t level);
void ngx_http_crm_spool_write_handler(ngx_event_t *ev);
ngx_int_t ngx_http_crm_spool_truncate(ngx_http_crm_spool_t *spool);
void ngx_http_crm_spool_adopt(ngx_http_crm_spool_t *spool);
void ngx_http_crm_spool_drop_orphan(ngx_http_crm_spool_t *spool);
void ngx_http_crm_spool_gauge(ngx_http_crm_spool_t *spool);
void ngx_http_crm_spool_close(ngx_http_crm_spool_t *spool);


#endif /* _NGX_HTTP_CRM_SPOOL_INT_H_INCLUDED_ */
