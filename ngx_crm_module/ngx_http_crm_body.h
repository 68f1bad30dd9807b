
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_BODY_H_INCLUDED_
#define _NGX_HTTP_CRM_BODY_H_INCLUDED_


/*
 * The request-body core: plain C, no nginx headers, no allocation.
 * Callers pass pointers and lengths and provide every output buffer;
 * see ngx_http_crm_body.c for the rules each function follows.
 */


#include <stddef.h>


/* the nesting limit the module uses for event bodies */
#define NGX_HTTP_CRM_JSON_DEPTH      64

/* max_depth above this is treated as this (the checker's stack is a bitmap) */
#define NGX_HTTP_CRM_JSON_DEPTH_MAX  1024

/* json_get_many() walks for this many pointers, more go to json_get() */
#define NGX_HTTP_CRM_JSON_GET_MAX    16

/*
 * The output size form_to_json() needs for a form body of len bytes:
 * every input byte becomes at most 6 bytes ("\u00XX"), each pair adds
 * at most 6 bytes of quotes, colon and comma, plus the braces.
 */
#define ngx_http_crm_form_json_size(len)  (6 * (size_t) (len) + 8)


typedef enum {
    NGX_HTTP_CRM_JSON_STRING = 1,
    NGX_HTTP_CRM_JSON_NUMBER,
    NGX_HTTP_CRM_JSON_TRUE,
    NGX_HTTP_CRM_JSON_FALSE,
    NGX_HTTP_CRM_JSON_NULL,
    NGX_HTTP_CRM_JSON_OBJECT,
    NGX_HTTP_CRM_JSON_ARRAY
} ngx_http_crm_json_type_e;


typedef struct {
    ngx_http_crm_json_type_e   type;
    /* raw bytes in the document; a string without quotes, still escaped */
    const unsigned char       *start;
    size_t                     len;
} ngx_http_crm_json_value_t;


int ngx_http_crm_json_check(const unsigned char *p, size_t len,
    unsigned max_depth, const char **reason);
int ngx_http_crm_json_get(const unsigned char *json, size_t len,
    const unsigned char *pointer, size_t plen, ngx_http_crm_json_value_t *v);
size_t ngx_http_crm_json_get_many(const unsigned char *json, size_t len,
    const unsigned char *const *pointers, const size_t *plens, size_t n,
    ngx_http_crm_json_value_t *v, unsigned char *found);
size_t ngx_http_crm_json_unescape(const unsigned char *s, size_t len,
    unsigned char *out);
int ngx_http_crm_json_pointer_valid(const unsigned char *p, size_t len);

int ngx_http_crm_form_to_json(const unsigned char *p, size_t len,
    unsigned char *out, size_t *outlen, const char **reason);
int ngx_http_crm_form_get(const unsigned char *p, size_t len,
    const unsigned char *pointer, size_t plen, unsigned char *out,
    size_t *outlen);
int ngx_http_crm_form_pointer(const unsigned char *pointer, size_t plen,
    unsigned char *out);

size_t ngx_http_crm_email_normalize(const unsigned char *in, size_t len,
    unsigned char *out);
size_t ngx_http_crm_phone_normalize(const unsigned char *in, size_t len,
    unsigned char *out);


#endif /* _NGX_HTTP_CRM_BODY_H_INCLUDED_ */
