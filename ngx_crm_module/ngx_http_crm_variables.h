
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_CRM_VARIABLES_H_INCLUDED_


/* the $crm_* variables */


#include "ngx_http_crm.h"


ngx_int_t ngx_http_crm_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_CRM_VARIABLES_H_INCLUDED_ */
