
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_BANNER_STATE_H_INCLUDED_
#define _NGX_HTTP_CRM_BANNER_STATE_H_INCLUDED_


/*
 * Each customer's banner state, in a shared zone common to the workers and
 * kept across reloads (policy cache.size and cache.ttl): her name, the
 * banners whose trigger held when PostgreSQL was last asked
 * (crm.banner_rows()), with their placeholders' values, and today's
 * impressions per banner.  A page view reads it and never waits: a miss
 * starts one background lookup for that customer, whichever worker sees
 * it first.  See ngx_http_crm_banner_state.c.
 */


#include "ngx_http_crm.h"


/* the placeholders a banner may hold, in this order */
#define NGX_HTTP_CRM_BANNER_NAME         0
#define NGX_HTTP_CRM_BANNER_VARS         10
#define NGX_HTTP_CRM_BANNER_VAR_NAMES                                         \
    "name", "card", "tier", "discount", "valid_until", "order_id", "eta",     \
    "gift", "ticket", "relative"

/* the most banners one customer's state keeps */
#define NGX_HTTP_CRM_BANNER_CANDS        16




typedef struct {
    ngx_str_t                  id;
    ngx_uint_t                 would_show;   /* holdout: counted, not shown */
    ngx_uint_t                 shown;        /* today, every node's */
    ngx_str_t                  vars[NGX_HTTP_CRM_BANNER_VARS];
} ngx_http_crm_banner_cand_t;


typedef struct {
    ngx_uint_t                 n;
    ngx_http_crm_banner_cand_t cand[NGX_HTTP_CRM_BANNER_CANDS];
} ngx_http_crm_banner_state_t;


ngx_http_crm_banners_t *ngx_http_crm_banners_zone(ngx_conf_t *cf,
    size_t size, ngx_msec_t ttl);
ngx_int_t ngx_http_crm_banners_get(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, uint64_t cid, uint32_t day,
    ngx_http_crm_banner_state_t **state);
ngx_int_t ngx_http_crm_banners_take(ngx_http_crm_banners_t *zone,
    uint64_t cid, ngx_str_t *banner, ngx_uint_t shown, ngx_uint_t max,
    uint32_t day);
void ngx_http_crm_banners_changed(ngx_http_crm_main_conf_t *crmcf,
    uint64_t cid, uint32_t day);
void ngx_http_crm_banners_count(ngx_http_crm_banners_t *zone,
    ngx_str_t *banner, ngx_uint_t would_show);
u_char *ngx_http_crm_banners_tally(ngx_http_crm_banners_t *zone, u_char *p,
    u_char *last);
void ngx_http_crm_banners_untake(ngx_http_crm_banners_t *zone,
    uint64_t cid, ngx_str_t *banner, uint32_t day);
void ngx_http_crm_banners_stats(ngx_http_crm_banners_t *zone,
    ngx_uint_t *entries, ngx_uint_t *hits, ngx_uint_t *misses);


#endif /* _NGX_HTTP_CRM_BANNER_STATE_H_INCLUDED_ */
