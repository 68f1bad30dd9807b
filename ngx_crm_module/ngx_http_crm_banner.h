
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_BANNER_H_INCLUDED_
#define _NGX_HTTP_CRM_BANNER_H_INCLUDED_


#include "ngx_http_crm.h"


void ngx_http_crm_banner_filter_init(void);
ngx_int_t ngx_http_crm_banner_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_crm_banner_log(ngx_http_request_t *r);
ngx_int_t ngx_http_crm_banner_variable(ngx_http_request_t *r,
    ngx_str_t *value);
ngx_int_t ngx_http_crm_banner_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf);
ngx_int_t ngx_http_crm_banner_conf(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);


#endif /* _NGX_HTTP_CRM_BANNER_H_INCLUDED_ */
