
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_CACHE_H_INCLUDED_
#define _NGX_HTTP_CRM_CACHE_H_INCLUDED_


/*
 * The customer cache: normalized e-mail -> customer id, in a shared zone
 * common to the workers and kept across reloads (policy cache.size and
 * cache.ttl).  The header filter looks an e-mail up here, as it cannot
 * wait for PostgreSQL; see ngx_http_crm_cache.c for the design.
 *
 * ngx_http_crm_cache_t is the policy's cache section (policy.h): this
 * handle is ngx_http_crm_cache_ctx_t, as nginx names the per-cycle half of
 * a shared zone.
 */


#include <ngx_config.h>
#include <ngx_core.h>


/* the longest key kept: an e-mail address (RFC 5321) */
#define NGX_HTTP_CRM_CACHE_KEY_MAX  254


typedef struct ngx_http_crm_cache_ctx_s  ngx_http_crm_cache_ctx_t;


ngx_http_crm_cache_ctx_t *ngx_http_crm_cache_zone(ngx_conf_t *cf, size_t size,
    ngx_msec_t ttl);
ngx_int_t ngx_http_crm_cache_get(ngx_http_crm_cache_ctx_t *cache, u_char *key,
    size_t len, uint64_t *id);
ngx_int_t ngx_http_crm_cache_put(ngx_http_crm_cache_ctx_t *cache, u_char *key,
    size_t len, uint64_t id);
void ngx_http_crm_cache_stats(ngx_http_crm_cache_ctx_t *cache,
    ngx_uint_t *entries, ngx_uint_t *hits, ngx_uint_t *misses);


#endif /* _NGX_HTTP_CRM_CACHE_H_INCLUDED_ */
