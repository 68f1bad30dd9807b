
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_CONNINFO_H_INCLUDED_
#define _NGX_HTTP_CRM_CONNINFO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * At configuration time: *conninfo (len bytes) with a hostaddr for every
 * host name, allocated from cf->pool, or left alone when nothing needs
 * looking up; what names the key for the messages ("conninfo").
 */
ngx_int_t ngx_http_crm_conninfo_resolve(ngx_conf_t *cf, const char *what,
    u_char **conninfo, size_t *len);


#endif /* _NGX_HTTP_CRM_CONNINFO_H_INCLUDED_ */
