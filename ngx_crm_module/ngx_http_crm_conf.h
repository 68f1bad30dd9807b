
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_CONF_H_INCLUDED_
#define _NGX_HTTP_CRM_CONF_H_INCLUDED_


/* configuration: the directives, create and merge, the one postconfiguration */


#include "ngx_http_crm.h"


void *ngx_http_crm_create_main_conf(ngx_conf_t *cf);
void *ngx_http_crm_create_srv_conf(ngx_conf_t *cf);
char *ngx_http_crm_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
void *ngx_http_crm_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_crm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
ngx_int_t ngx_http_crm_postconfiguration(ngx_conf_t *cf);
ngx_int_t ngx_http_crm_conf_read_file(ngx_conf_t *cf, ngx_str_t *name,
    size_t max, ngx_str_t *data);
char *ngx_http_crm_policy_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_crm_capture_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_crm_banner_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_crm_status_conf_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_CRM_CONF_H_INCLUDED_ */
