
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The module's face to nginx: the directive table, the module context and
 * the module definition.  The handlers live in the files named for their
 * concern (ngx_http_crm_conf.c, _status.c, _variables.c, ...).
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner.h"
#include "ngx_http_crm_conf.h"
#include "ngx_http_crm_status.h"
#include "ngx_http_crm_variables.h"
#include "ngx_http_crm_event.h"
#include "ngx_http_crm_feedback.h"


static ngx_int_t ngx_http_crm_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_crm_init_process(ngx_cycle_t *cycle);
static void ngx_http_crm_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_crm_capture_kinds[] = {
    { ngx_string("order"), NGX_HTTP_CRM_CAPTURE_ORDER },
    { ngx_string("payment"), NGX_HTTP_CRM_CAPTURE_PAYMENT },
    { ngx_string("status"), NGX_HTTP_CRM_CAPTURE_STATUS },
    { ngx_string("feedback"), NGX_HTTP_CRM_CAPTURE_FEEDBACK },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_crm_commands[] = {

    { ngx_string("crm_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_crm_policy_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("crm_capture"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_crm_capture_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_crm_loc_conf_t, capture),
      ngx_http_crm_capture_kinds },

    { ngx_string("crm_banner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_crm_banner_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_crm_loc_conf_t, banner),
      NULL },

    { ngx_string("crm_banner_types"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_types_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_crm_loc_conf_t, banner_types_keys),
      &ngx_http_html_default_types[0] },

    { ngx_string("crm_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_crm_status_conf_directive,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_crm_module_ctx = {
    ngx_http_crm_preconfiguration,         /* preconfiguration */
    ngx_http_crm_postconfiguration,        /* postconfiguration */

    ngx_http_crm_create_main_conf,         /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_crm_create_srv_conf,          /* create server configuration */
    ngx_http_crm_merge_srv_conf,           /* merge server configuration */

    ngx_http_crm_create_loc_conf,          /* create location configuration */
    ngx_http_crm_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_crm_module = {
    NGX_MODULE_V1,
    &ngx_http_crm_module_ctx,              /* module context */
    ngx_http_crm_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_crm_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_crm_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_crm_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_crm_add_variables(cf);
}


/*
 * A worker starts its spool writer and its PostgreSQL pool.  A spool file
 * that cannot be opened is logged and leaves the worker serving without
 * capturing until the spool retries it successfully; it never stops the
 * worker.
 */

static ngx_int_t
ngx_http_crm_init_process(ngx_cycle_t *cycle)
{
    ngx_str_t                  conninfo;
    ngx_http_crm_policy_t     *policy;
    ngx_http_crm_pg_hooks_t    hooks;
    ngx_http_crm_main_conf_t  *crmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    crmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_crm_module);

    if (crmcf == NULL || crmcf->policy == NULL || !crmcf->uses_db) {
        return NGX_OK;
    }

    policy = crmcf->policy;

    if (ngx_http_crm_event_init_worker(cycle, crmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    crmcf->spool = ngx_http_crm_spool_create(cycle, crmcf);

    ngx_memzero(&hooks, sizeof(ngx_http_crm_pg_hooks_t));
    hooks.up = &crmcf->stats->conn_up;
    hooks.busy = &crmcf->stats->conn_busy;
    hooks.failures = &crmcf->stats->conn_failures;
    hooks.errors = &crmcf->stats->errors;
    hooks.latency = ngx_http_crm_stats_latency;
    hooks.latency_data = crmcf->stats;
    hooks.ready = ngx_http_crm_spool_ready;
    hooks.ready_data = crmcf->spool;

    conninfo.len = policy->database.conninfo.len;
    conninfo.data = policy->database.conninfo.data;

    crmcf->pg = ngx_http_crm_pg_create(cycle, &conninfo,
                                      policy->database.connections,
                                      (ngx_msec_t) policy->database.timeout,
                                      &hooks);
    if (crmcf->pg == NULL) {
        return NGX_ERROR;
    }

    /* every connection registers the policy the decisions are made with */

    crmcf->on_connect[0] = (char *) crmcf->policy_sha256;
    crmcf->on_connect[1] = (char *) crmcf->policy_json.data;

    ngx_http_crm_pg_on_connect(crmcf->pg,
                               "SELECT crm.register_policy($1, $2::jsonb)",
                               2, crmcf->on_connect);

    if (ngx_http_crm_banner_init_worker(cycle, crmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_crm_breach_init_worker(cycle, crmcf);
}


static void
ngx_http_crm_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_crm_module);

    if (crmcf == NULL) {
        return;
    }

    ngx_http_crm_pg_destroy(crmcf->pg);
    crmcf->pg = NULL;

    if (crmcf->listen_pg != NULL) {
        ngx_http_crm_pg_destroy(crmcf->listen_pg);
        crmcf->listen_pg = NULL;
    }

    ngx_http_crm_spool_destroy(crmcf->spool);
    crmcf->spool = NULL;
}
