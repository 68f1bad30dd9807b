
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_CAPTURE_H_INCLUDED_
#define _NGX_HTTP_CRM_CAPTURE_H_INCLUDED_


/* crm_capture: the body, the fields, the ctx */


#include "ngx_http_crm.h"


ngx_int_t ngx_http_crm_capture_handler(ngx_http_request_t *r);
ngx_http_crm_ctx_t *ngx_http_crm_ctx_new(ngx_http_request_t *r);
ngx_http_crm_ctx_t *ngx_http_crm_get_ctx(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CRM_CAPTURE_H_INCLUDED_ */
