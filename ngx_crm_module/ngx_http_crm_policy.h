
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_POLICY_H_INCLUDED_
#define _NGX_HTTP_CRM_POLICY_H_INCLUDED_


/*
 * The YAML policy, version 1, as plain C: no nginx types, so the loader is
 * unit-tested and fuzzed without a running nginx.
 *
 * ngx_http_crm_policy_parse() reads a whole document from memory and returns
 * a policy that owns all its memory (one arena), or NULL with one line
 * "FILE:LINE:COLUMN: message" in err.  ngx_http_crm_policy_free() releases
 * it; the nginx glue calls it from a cf->pool cleanup.
 *
 * A parsed policy is complete: every key the document leaves out holds its
 * default (see examples/crm.yaml), every value is in range, and the policy
 * is read-only from then on.  Units are fixed:
 *
 *   durations    int64_t milliseconds
 *   sizes        size_t bytes
 *   money        int64_t cents (the YAML has at most two fraction digits)
 *   percents     unsigned, 0..100
 *   probability  double, 0..1
 *   strings      ngx_http_crm_str_t: same layout as ngx_str_t, data is
 *                never NULL and is NUL-terminated, no NUL inside
 *   lists        a pointer and a count (the pointer is NULL when empty)
 */


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_crm_calendar.h"


#define NGX_HTTP_CRM_POLICY_ERRLEN  512


typedef struct {
    size_t                          len;
    unsigned char                  *data;
} ngx_http_crm_str_t;


/* fields: index of policy->fields[], in the YAML order */

typedef enum {
    NGX_HTTP_CRM_FIELD_ORDER_ID = 0,
    NGX_HTTP_CRM_FIELD_EMAIL,
    NGX_HTTP_CRM_FIELD_PHONE,
    NGX_HTTP_CRM_FIELD_NAME,
    NGX_HTTP_CRM_FIELD_BIRTHDAY,
    NGX_HTTP_CRM_FIELD_TOTAL,
    NGX_HTTP_CRM_FIELD_CURRENCY,
    NGX_HTTP_CRM_FIELD_STATUS,
    NGX_HTTP_CRM_FIELD_ETA,
    NGX_HTTP_CRM_FIELD_RATING,
    NGX_HTTP_CRM_FIELD_CATEGORY,
    NGX_HTTP_CRM_FIELD_MESSAGE,
    NGX_HTTP_CRM_FIELD_N
} ngx_http_crm_field_e;


/* banners[].when */

typedef enum {
    NGX_HTTP_CRM_WHEN_CONFLICT = 0,
    NGX_HTTP_CRM_WHEN_ORDER_DELAYED,
    NGX_HTTP_CRM_WHEN_BIRTHDAY,
    NGX_HTTP_CRM_WHEN_NEW_CARD,
    NGX_HTTP_CRM_WHEN_DISCOUNT_READY,
    NGX_HTTP_CRM_WHEN_SURPRISE_SENT,
    NGX_HTTP_CRM_WHEN_N
} ngx_http_crm_when_e;


typedef struct {
    ngx_http_crm_str_t              conninfo;       /* libpq, never empty */
    ngx_http_crm_str_t              listen_conninfo; /* len 0: conninfo */
    unsigned                        connections;    /* per worker, 1..256 */
    int64_t                         timeout;        /* ms, 1..60000 */
    ngx_http_crm_str_t              spool;          /* relative: to prefix */
} ngx_http_crm_database_t;


typedef struct {
    size_t                          size;           /* bytes */
    int64_t                         ttl;            /* ms, 0: no caching */
} ngx_http_crm_cache_t;


typedef struct {
    ngx_http_crm_str_t              cookie;         /* token, 1..64 */
    ngx_http_crm_str_t              secret_file;
    int64_t                         max_age;        /* ms */
    ngx_http_crm_str_t              upstream_header; /* len 0: off */
} ngx_http_crm_identity_t;


typedef struct {
    ngx_http_crm_str_t              name;           /* unique */
    unsigned                        paid_orders;
    int64_t                         spent;          /* cents, 0: any */
    unsigned                        discount;       /* percent */
} ngx_http_crm_tier_t;


typedef struct {
    unsigned                        after_paid_orders;
    ngx_http_crm_str_t              prefix;
} ngx_http_crm_card_t;


typedef struct {
    int64_t                         valid_for;      /* ms */
    unsigned                        max_discount;   /* percent */
} ngx_http_crm_promise_t;


typedef struct {
    ngx_http_crm_card_t             card;
    ngx_http_crm_tier_t            *tiers;          /* ascending paid_orders */
    size_t                          ntiers;
    ngx_http_crm_promise_t          promise;
} ngx_http_crm_loyalty_t;


typedef struct {
    ngx_http_crm_str_t              template;       /* placeholders checked */
    ngx_http_crm_str_t              faq_url;
    ngx_http_crm_str_t              ask_phone;
    ngx_http_crm_str_t              due_format;     /* NGX_HTTP_CRM_STRFTIME */
} ngx_http_crm_acknowledge_t;


/* where time zones are read from, unless $CRM_ZONEINFO says */
#define NGX_HTTP_CRM_ZONEINFO     "/usr/share/zoneinfo"

/* the conversions a due_format may use: the C locale's, no time zone name */
#define NGX_HTTP_CRM_STRFTIME  "YmdeHIMSpyaAbBz%"



/*
 * Business hours of one weekday, in minutes since local midnight:
 * start < end <= 1440 when open; start == end == 0 when closed.  The
 * calendar's own type, so that feedback.sla.hours is its hours as they are.
 */

typedef ngx_http_crm_cal_hours_t  ngx_http_crm_hours_t;


typedef struct {
    int64_t                         target;         /* ms, <= limit */
    int64_t                         limit;          /* ms */
    ngx_http_crm_str_t              timezone;       /* zoneinfo name */
    ngx_http_crm_hours_t            hours[7];       /* by tm_wday: 0 is Sun */
    uint32_t                       *holidays;       /* YYYYMMDD, ascending, */
    size_t                          nholidays;      /*   unique */
    unsigned                        breach_compensation; /* percent */
} ngx_http_crm_sla_t;


typedef struct {
    unsigned                        max_rating;     /* 0..5 */
    ngx_http_crm_str_t             *categories;     /* non-empty strings */
    size_t                          ncategories;
    unsigned                        compensation;   /* percent */
} ngx_http_crm_conflict_t;


typedef struct {
    ngx_http_crm_acknowledge_t      acknowledge;
    ngx_http_crm_sla_t              sla;            /* at least one day open */
    ngx_http_crm_conflict_t         conflict;
} ngx_http_crm_feedback_t;


typedef struct {
    ngx_http_crm_str_t              name;
    int64_t                         cost;           /* cents */
} ngx_http_crm_gift_t;


typedef struct {
    double                          probability;    /* 0..1 */
    unsigned                        min_paid_orders;
    int64_t                         cooldown;       /* ms */
    int64_t                         daily_budget;   /* cents, 0: no limit */
    ngx_http_crm_gift_t            *gifts;          /* at least one when */
    size_t                          ngifts;         /*   probability > 0 */
} ngx_http_crm_surprises_t;


typedef struct {
    ngx_http_crm_str_t              id;             /* unique */
    ngx_http_crm_when_e             when;
    ngx_http_crm_str_t              template;       /* placeholders checked */
    unsigned                        max_per_day;    /* 0: no limit */

    /* birthday banners only; 0 for the others */
    unsigned                        days_before;
    unsigned                        days_after;
    unsigned                        gift;           /* percent */
    unsigned                        relatives;      /* 0 or 1 */
} ngx_http_crm_banner_t;


typedef struct {
    unsigned                        percent;
} ngx_http_crm_holdout_t;


struct ngx_http_crm_policy_s {
    unsigned                        version;        /* 1 */
    ngx_http_crm_database_t         database;
    ngx_http_crm_cache_t            cache;
    ngx_http_crm_identity_t         identity;
    ngx_http_crm_str_t              fields[NGX_HTTP_CRM_FIELD_N];
    ngx_http_crm_loyalty_t          loyalty;
    ngx_http_crm_feedback_t         feedback;
    ngx_http_crm_surprises_t        surprises;
    ngx_http_crm_banner_t          *banners;        /* in policy order */
    size_t                          nbanners;
    ngx_http_crm_holdout_t          holdout;

    void                           *arena;          /* private */
};


typedef struct ngx_http_crm_policy_s  ngx_http_crm_policy_t;


ngx_http_crm_policy_t *ngx_http_crm_policy_parse(const char *file,
    const unsigned char *data, size_t len, char *err, size_t errlen);
void ngx_http_crm_policy_free(ngx_http_crm_policy_t *policy);
const char *ngx_http_crm_zoneinfo(void);


#endif /* _NGX_HTTP_CRM_POLICY_H_INCLUDED_ */
