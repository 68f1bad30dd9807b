
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_EVENT_H_INCLUDED_
#define _NGX_HTTP_CRM_EVENT_H_INCLUDED_


#include "ngx_http_crm.h"


/* how an order_result line starts: it is no interaction, and not counted */
#define NGX_HTTP_CRM_RESULT_LINE  "{\"kind\":\"order_result\","


ngx_int_t ngx_http_crm_event_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_event_id(u_char *p, ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_event_record(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
void ngx_http_crm_event_result(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx, ngx_uint_t status);


#endif /* _NGX_HTTP_CRM_EVENT_H_INCLUDED_ */
