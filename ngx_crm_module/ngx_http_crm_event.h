
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_EVENT_H_INCLUDED_
#define _NGX_HTTP_CRM_EVENT_H_INCLUDED_


#include "ngx_http_crm.h"


/* copies a string literal */
#define ngx_http_crm_cpy(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)


/* the most ngx_http_crm_escape_json() writes for len bytes */
#define ngx_http_crm_escaped_json_len(len)  (6 * (len))


/* how an order_result line starts: it is no interaction, and not counted */
#define NGX_HTTP_CRM_RESULT_LINE  "{\"kind\":\"order_result\","


ngx_int_t ngx_http_crm_event_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_event_id(u_char *p, ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_event_record(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
u_char *ngx_http_crm_escape_json(u_char *dst, u_char *src, size_t len);
u_char *ngx_http_crm_write_int(u_char *p, int64_t n);
u_char *ngx_http_crm_event_head(u_char *p, ngx_http_crm_main_conf_t *crmcf,
    u_char *event_id, ngx_time_t *received, ngx_str_t *kind);

#define NGX_HTTP_CRM_EVENT_HEAD_LEN(crmcf, kind_len)                          \
    (sizeof("{\"event_id\":\"\",\"received_at\":.000,\"kind\":\"\","          \
            "\"node\":\"\",\"policy\":\"\"") - 1                              \
     + NGX_HTTP_CRM_UUID_LEN + NGX_TIME_T_LEN + (kind_len)                   \
     + (crmcf)->node.len + NGX_HTTP_CRM_SHA256_HEX)
void ngx_http_crm_event_result(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, ngx_uint_t status);


#endif /* _NGX_HTTP_CRM_EVENT_H_INCLUDED_ */
