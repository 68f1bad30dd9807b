
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_FORM_H_INCLUDED_
#define _NGX_HTTP_CRM_FORM_H_INCLUDED_


/* form bodies as JSON objects of strings: see ngx_http_crm_form.c */


#include <stddef.h>


/*
 * The output size form_to_json() needs for a form body of len bytes:
 * every input byte becomes at most 6 bytes ("\u00XX"), each pair adds
 * at most 6 bytes of quotes, colon and comma, plus the braces.
 */
#define ngx_http_crm_form_json_size(len)  (6 * (size_t) (len) + 8)


int ngx_http_crm_form_to_json(const unsigned char *p, size_t len,
    unsigned char *out, size_t *outlen, const char **reason);
int ngx_http_crm_form_pointer(const unsigned char *pointer, size_t plen,
    unsigned char *out);


#endif /* _NGX_HTTP_CRM_FORM_H_INCLUDED_ */
