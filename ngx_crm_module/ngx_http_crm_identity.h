
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_IDENTITY_H_INCLUDED_
#define _NGX_HTTP_CRM_IDENTITY_H_INCLUDED_


/* the cookie, the shop's login header, X-CRM-* removal */


#include "ngx_http_crm.h"


ngx_int_t ngx_http_crm_identity_strip(ngx_http_request_t *r);
void ngx_http_crm_identity_filter_init(void);
ngx_int_t ngx_http_crm_identity_keys(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_identity_cookie(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);

/* the next header of a list named name: see ngx_http_crm_identity.c */
ngx_table_elt_t *ngx_http_crm_header_next(ngx_list_part_t **part,
    ngx_uint_t *i, ngx_str_t *name);


#endif /* _NGX_HTTP_CRM_IDENTITY_H_INCLUDED_ */
