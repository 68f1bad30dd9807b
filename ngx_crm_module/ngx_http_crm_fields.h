
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_FIELDS_H_INCLUDED_
#define _NGX_HTTP_CRM_FIELDS_H_INCLUDED_


/* the normalized fields a customer is known by: see ngx_http_crm_fields.c */


#include <stddef.h>


size_t ngx_http_crm_email_normalize(const unsigned char *in, size_t len,
    unsigned char *out);
size_t ngx_http_crm_phone_normalize(const unsigned char *in, size_t len,
    unsigned char *out);


#endif /* _NGX_HTTP_CRM_FIELDS_H_INCLUDED_ */
