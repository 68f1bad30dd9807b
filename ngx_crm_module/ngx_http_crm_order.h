
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_ORDER_H_INCLUDED_
#define _NGX_HTTP_CRM_ORDER_H_INCLUDED_


/* the order decision and its result */


#include "ngx_http_crm.h"


ngx_int_t ngx_http_crm_order_decide(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
ngx_int_t ngx_http_crm_order_log(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CRM_ORDER_H_INCLUDED_ */
