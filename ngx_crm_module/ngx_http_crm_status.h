
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_STATUS_H_INCLUDED_
#define _NGX_HTTP_CRM_STATUS_H_INCLUDED_


/* crm_status and the shared counters */


#include "ngx_http_crm.h"


ngx_int_t ngx_http_crm_stats_zone(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_stats_latency(void *data, ngx_msec_t ms);

char *ngx_http_crm_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_CRM_STATUS_H_INCLUDED_ */
