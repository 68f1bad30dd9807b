
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_JSON_H_INCLUDED_
#define _NGX_HTTP_CRM_JSON_H_INCLUDED_


/*
 * JSON text, plain C, no nginx headers, no allocation: the check
 * (ngx_http_crm_json.c) and the pointer lookups and unescaping
 * (ngx_http_crm_json_walk.c).  Callers pass pointers and lengths and
 * provide every output buffer.
 */


#include <stddef.h>


/* the nesting limit the module uses for event bodies */
#define NGX_HTTP_CRM_JSON_DEPTH      64

/* max_depth above this is treated as this (the checker's stack is a bitmap) */
#define NGX_HTTP_CRM_JSON_DEPTH_MAX  1024

/* json_get_many() follows this many pointers a pass */
#define NGX_HTTP_CRM_JSON_GET_MAX    16

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


/* what the next byte of a UTF-8 sequence may be, and how many remain */
typedef struct {
    unsigned         need;
    unsigned char    lo;
    unsigned char    hi;
} ngx_http_crm_utf8_t;


#define ngx_http_crm_json_is_ws(c)                                            \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


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

/* shared by the check, the walk and the form converter */
size_t ngx_http_crm_json_escape(const unsigned char **pp,
    const unsigned char *end, unsigned char *out);
int ngx_http_crm_utf8_next(ngx_http_crm_utf8_t *u, unsigned c);
int ngx_http_crm_hex(unsigned c);


/* skips JSON whitespace */

static inline const unsigned char *
ngx_http_crm_json_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && ngx_http_crm_json_is_ws(*p)) {
        p++;
    }

    return p;
}


#endif /* _NGX_HTTP_CRM_JSON_H_INCLUDED_ */
