
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The $crm_* variables.  Each reads the request's context, which the
 * capture handlers fill; a request the module did not act on has no
 * context and reads as state "off", discount "0", holdout "0", and empty
 * strings for the rest.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner.h"
#include "ngx_http_crm_variables.h"
#include "ngx_http_crm_capture.h"


static ngx_int_t ngx_http_crm_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_crm_variable_discount(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_crm_variable_holdout(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_crm_variable_banner(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_crm_variable_state(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_crm_variable_set(ngx_http_variable_value_t *v,
    u_char *data, size_t len);


static ngx_http_variable_t  ngx_http_crm_vars[] = {

    { ngx_string("crm_customer"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, customer), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_card"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, card), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_tier"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, tier), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_discount"), NULL, ngx_http_crm_variable_discount,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_promise"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, promise), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_gift"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, gift), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_ticket"), NULL, ngx_http_crm_variable_str,
      offsetof(ngx_http_crm_ctx_t, ticket), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_banner"), NULL, ngx_http_crm_variable_banner,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_holdout"), NULL, ngx_http_crm_variable_holdout,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("crm_state"), NULL, ngx_http_crm_variable_state,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_str_t  ngx_http_crm_states[] = {
    ngx_string("off"),
    ngx_string("ok"),
    ngx_string("no_customer"),
    ngx_string("bad_body"),
    ngx_string("db_unavailable"),
    ngx_string("conflict")
};


ngx_int_t
ngx_http_crm_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_crm_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t           *s;
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r->main);

    if (ctx == NULL) {
        ngx_http_crm_variable_set(v, (u_char *) "", 0);
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    ngx_http_crm_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_variable_discount(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r->main);

    if (ctx == NULL || ctx->discount == 0) {
        ngx_http_crm_variable_set(v, (u_char *) "0", 1);
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_crm_variable_set(v, p, ngx_sprintf(p, "%ui", ctx->discount) - p);

    return NGX_OK;
}


/* $crm_banner: banner.c decides when asked before its header filter */

static ngx_int_t
ngx_http_crm_variable_banner(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  id;

    (void) ngx_http_crm_banner_variable(r, &id);

    ngx_http_crm_variable_set(v, id.data, id.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_variable_holdout(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r->main);

    if (ctx != NULL && ctx->holdout) {
        ngx_http_crm_variable_set(v, (u_char *) "1", 1);

    } else {
        ngx_http_crm_variable_set(v, (u_char *) "0", 1);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_variable_state(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t           *s;
    ngx_http_crm_ctx_t  *ctx;

    ctx = ngx_http_crm_get_ctx(r->main);

    s = &ngx_http_crm_states[ctx && ctx->started ? ctx->state
                                                 : NGX_HTTP_CRM_STATE_OFF];

    ngx_http_crm_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static void
ngx_http_crm_variable_set(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = data;
}
