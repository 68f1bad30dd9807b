
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_FEEDBACK_H_INCLUDED_
#define _NGX_HTTP_CRM_FEEDBACK_H_INCLUDED_


/* crm_capture feedback: tickets, their due time, the module's answer */


#include "ngx_http_crm.h"


/* a ticket number: 12 characters of NGX_HTTP_CRM_TICKET_ALPHABET */
#define NGX_HTTP_CRM_TICKET_LEN       12
#define NGX_HTTP_CRM_TICKET_ALPHABET  "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

/* milliseconds between two checks for missed due times */
#define NGX_HTTP_CRM_BREACH_INTERVAL  2000

/* the most tickets one check marks; a full batch is followed by another */
#define NGX_HTTP_CRM_BREACH_BATCH     1000


ngx_int_t ngx_http_crm_feedback_conf(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
void ngx_http_crm_feedback_decide(ngx_http_request_t *r,
    ngx_http_crm_ctx_t *ctx);
ngx_int_t ngx_http_crm_feedback_handler(ngx_http_request_t *r);

/* ngx_http_crm_breach.c */
ngx_int_t ngx_http_crm_breach_init_worker(ngx_cycle_t *cycle,
    ngx_http_crm_main_conf_t *crmcf);


#endif /* _NGX_HTTP_CRM_FEEDBACK_H_INCLUDED_ */
