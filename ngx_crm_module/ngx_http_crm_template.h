
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_TEMPLATE_H_INCLUDED_
#define _NGX_HTTP_CRM_TEMPLATE_H_INCLUDED_


/*
 * Templates of the policy ("Thank you, {name}. ..."), rendered with their
 * values, and HTML escaping: pure C, see ngx_http_crm_template.c.
 */


#include <stddef.h>


typedef struct {
    const char           *name;       /* "name", "ticket", ...: NUL-ended */
    const unsigned char  *data;
    size_t                len;
} ngx_http_crm_tvar_t;


/*
 * Renders template tpl with vars into out and returns the length written;
 * out NULL: only returns the length it would write.  html: values are
 * HTML-escaped (a banner's template is HTML); otherwise copied as they are.
 */
size_t ngx_http_crm_template_render(unsigned char *out,
    const unsigned char *tpl, size_t len, const ngx_http_crm_tvar_t *vars,
    size_t nvars, int html);

/* the length of word when p is at "{word}", else 0 */
size_t ngx_http_crm_template_word(const unsigned char *p,
    const unsigned char *last);

/* escapes & < > " ' of in into out; out NULL: only returns the length */
size_t ngx_http_crm_html_escape(unsigned char *out, const unsigned char *in,
    size_t len);


#endif /* _NGX_HTTP_CRM_TEMPLATE_H_INCLUDED_ */
