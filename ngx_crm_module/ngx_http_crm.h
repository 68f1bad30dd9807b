
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_H_INCLUDED_
#define _NGX_HTTP_CRM_H_INCLUDED_


/*
 * The types that the module's files share: the main, server and location
 * configuration, and the per-request context the variables read.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_crm_policy.h"
#include "ngx_http_crm_pg.h"
#include "ngx_http_crm_cookie.h"
#include "ngx_http_crm_cache.h"
#include "ngx_http_crm_calendar.h"


#define NGX_HTTP_CRM_VERSION     "0.1.0"

#define NGX_HTTP_CRM_SHA256_HEX  64

#define NGX_HTTP_CRM_LATENCY_N   1024
#define NGX_HTTP_CRM_WORKERS_MAX 128
#define NGX_HTTP_CRM_UUID_LEN    36

/* the parameters of crm.decide_order() */
#define NGX_HTTP_CRM_DECIDE_N    11

typedef enum {
    NGX_HTTP_CRM_CAPTURE_OFF = 0,
    NGX_HTTP_CRM_CAPTURE_ORDER,
    NGX_HTTP_CRM_CAPTURE_PAYMENT,
    NGX_HTTP_CRM_CAPTURE_STATUS,
    NGX_HTTP_CRM_CAPTURE_FEEDBACK
} ngx_http_crm_capture_e;


/* where a captured request is: see ngx_http_crm_capture.c */
typedef enum {
    NGX_HTTP_CRM_PHASE_BODY = 0,
    NGX_HTTP_CRM_PHASE_DECIDING,
    NGX_HTTP_CRM_PHASE_READY,
    NGX_HTTP_CRM_PHASE_DONE
} ngx_http_crm_phase_e;


typedef enum {
    NGX_HTTP_CRM_STATE_OFF = 0,
    NGX_HTTP_CRM_STATE_OK,
    NGX_HTTP_CRM_STATE_NO_CUSTOMER,
    NGX_HTTP_CRM_STATE_BAD_BODY,
    NGX_HTTP_CRM_STATE_DB_UNAVAILABLE,
    NGX_HTTP_CRM_STATE_CONFLICT
} ngx_http_crm_state_e;


/*
 * Counters and gauges in shared memory, common to the workers and kept
 * across reloads.  conn_* gauges are sums of what each worker adds and
 * takes back; spool_bytes has a slot a worker number, which a worker
 * restarted after a crash takes over, so what a dead worker left is not
 * counted twice.
 */

typedef struct {
    ngx_atomic_t             captured;
    ngx_atomic_t             written;
    ngx_atomic_t             spooled;
    ngx_atomic_t             replayed;
    ngx_atomic_t             bad_body;
    ngx_atomic_t             rejected;
    ngx_atomic_t             cookies_rejected;
    ngx_atomic_t             decided;
    ngx_atomic_t             undecided;
    ngx_atomic_t             no_customer;
    ngx_atomic_t             conflicts;
    ngx_atomic_t             banner_impressions;
    ngx_atomic_t             banner_would_show;
    ngx_atomic_t             banner_no_cookie;
    ngx_atomic_t             banner_cache_miss;
    ngx_atomic_t             banner_compressed;
    ngx_atomic_t             banner_no_place;
    ngx_atomic_t             banner_capped;
    ngx_atomic_t             banner_not_html;
    ngx_atomic_t             spool_bytes[NGX_HTTP_CRM_WORKERS_MAX];
    ngx_atomic_t             conn_up;
    ngx_atomic_t             conn_busy;
    ngx_atomic_t             conn_failures;
    ngx_atomic_t             errors;
    ngx_atomic_t             latency_next;
    ngx_atomic_t             latency[NGX_HTTP_CRM_LATENCY_N];  /* ms */
} ngx_http_crm_stats_t;


typedef struct ngx_http_crm_spool_s  ngx_http_crm_spool_t;
typedef struct ngx_http_crm_due_memo_s  ngx_http_crm_due_memo_t;
typedef struct ngx_http_crm_banners_s  ngx_http_crm_banners_t;
typedef struct ngx_http_crm_banner_ctx_s  ngx_http_crm_banner_ctx_t;


typedef struct {
    ngx_http_crm_policy_t   *policy;
    ngx_str_t                policy_file;
    u_char                   policy_sha256[NGX_HTTP_CRM_SHA256_HEX + 1];
    ngx_str_t                policy_json;     /* NUL-terminated */
    time_t                   policy_loaded_at;

    ngx_path_t              *spool_path;
    ngx_shm_zone_t          *shm_zone;
    ngx_http_crm_stats_t    *stats;

    /* the worker's own, made in init_process */
    ngx_http_crm_pg_t       *pg;
    ngx_http_crm_pg_t       *listen_pg;       /* LISTEN crm_banner, or NULL */
    ngx_http_crm_spool_t    *spool;
    ngx_http_crm_keys_t     *keys;            /* NULL: no cookies */
    const char              *on_connect[2];
    ngx_str_t                node;            /* hostname, JSON-escaped */
    uint32_t                 event_rand;
    uint64_t                 event_seq;

    ngx_uint_t               capture_used;
    ngx_uint_t               feedback_used;
    ngx_http_crm_calendar_t  calendar;        /* of feedback.sla */
    u_char                   ticket_key[32];  /* of idempotent tickets */
    ngx_http_crm_hmac_t      ticket_hmac;     /* ticket_key's, prepared */
    size_t                   ack_braces;      /* "{" in the template */
    ngx_http_crm_due_memo_t *due_memo;        /* the worker's own */
    ngx_uint_t               uses_db;       /* capture or upstream_header */
    ngx_http_crm_cache_ctx_t *cache;
    ngx_uint_t               banner_used;
    ngx_http_crm_banners_t  *banners;         /* NULL: no banners */
    u_char                  *banner_spec;     /* JSON, NUL-terminated */

    /* the directive and its line, for "needs crm_policy" errors */
    ngx_str_t                needs_policy;
    ngx_str_t                needs_policy_file;
    ngx_uint_t               needs_policy_line;
} ngx_http_crm_main_conf_t;


/*
 * acts: the module acts on this server's requests (crm_capture,
 * crm_status or crm_banner on in the server or one of its locations, or
 * crm_banner on at http level), so client X-CRM-* headers are removed.
 * banner_off: crm_banner off at server level, which keeps an http-level
 * crm_banner on from making the server act.
 */

typedef struct {
    ngx_flag_t               acts;
    ngx_flag_t               banner_off;
} ngx_http_crm_srv_conf_t;


typedef struct {
    ngx_uint_t               capture;     /* ngx_http_crm_capture_e */
    ngx_flag_t               banner;

    ngx_hash_t               banner_types;
    ngx_array_t             *banner_types_keys;
} ngx_http_crm_loc_conf_t;


typedef struct {
    ngx_http_crm_phase_e     phase;
    ngx_http_crm_state_e     state;
    ngx_time_t               received;
    u_char                   event_id[NGX_HTTP_CRM_UUID_LEN];

    /* the body: JSON (a form turned into JSON), or raw bytes and why */
    ngx_str_t                json;
    ngx_str_t                raw;
    const char              *reason;
    ngx_uint_t               form;

    /* the policy's fields, unescaped; email and phone normalized */
    ngx_str_t                field[NGX_HTTP_CRM_FIELD_N];
    ngx_str_t                idempotency_key;
    uint64_t                 customer_id;      /* 0: not known */
    uint64_t                 cookie_id;        /* the valid cookie's */

    /* the decision, for the variables */
    ngx_str_t                customer;
    ngx_str_t                card;
    ngx_str_t                tier;
    ngx_uint_t               discount;
    ngx_str_t                promise;
    ngx_str_t                gift;
    ngx_str_t                ticket;
    ngx_str_t                banner;

    /* a feedback's ticket: see ngx_http_crm_feedback.c */
    u_char                   ticket_data[12];
    int64_t                  target_at;
    int64_t                  due_at;

    ngx_http_request_t      *request;
    ngx_pool_t              *pool;             /* r->pool, kept for the
                                                  cleanup */
    ngx_http_crm_pg_query_t  query;
    const char              *values[NGX_HTTP_CRM_DECIDE_N];

    ngx_http_crm_banner_ctx_t *bn;           /* crm_banner's, or NULL */

    unsigned                 started:1;        /* crm_capture's began */
    unsigned                 holdout:1;
    unsigned                 decided:1;
    unsigned                 parked:1;
    unsigned                 cookie_ok:1;
    unsigned                 created:1;        /* the order made her */
    unsigned                 conflict:1;       /* the feedback's */
} ngx_http_crm_ctx_t;


extern ngx_module_t  ngx_http_crm_module;


/*
 * Milliseconds of the wall clock (ngx_timeofday()), which every worker
 * reads alike, for what the shared zones keep; ngx_current_msec is each
 * process's own.
 */

static ngx_inline uint64_t
ngx_http_crm_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
extern ngx_str_t     ngx_http_crm_states[];


/* ngx_http_crm_spool.c */
ngx_http_crm_spool_t *ngx_http_crm_spool_create(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_spool_ready(void *data);
void ngx_http_crm_spool_destroy(ngx_http_crm_spool_t *spool);

/* ngx_http_crm_spool_file.c */
ngx_int_t ngx_http_crm_spool_append(ngx_http_crm_spool_t *spool,
    u_char *line, size_t len, ngx_uint_t event);


#endif /* _NGX_HTTP_CRM_H_INCLUDED_ */
