
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Configuration: the main, server and location confs, and the directives
 * that load the policy and switch the module on in a location.
 *
 * A server "acts" when one of crm_capture, crm_status or crm_banner on
 * stands in it or in one of its locations, or crm_banner on stands at
 * http level and the server does not say crm_banner off itself.  Only
 * there are client X-CRM-* headers removed: a shop served by a server of
 * the same nginx that uses no crm directive gets the headers the front
 * set.
 *
 * The policy is read and parsed once, at configuration time, by the master
 * (nginx -t, start, reload).  It lives as long as the cycle: a cleanup on
 * cf->pool frees it, so a reload that fails leaves the old cycle and its
 * policy untouched, and one that succeeds frees the old policy with the old
 * cycle.  Nothing is global.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner.h"
#include "ngx_http_crm_conf.h"
#include "ngx_http_crm_capture.h"
#include "ngx_http_crm_feedback.h"
#include "ngx_http_crm_order.h"
#include "ngx_http_crm_identity.h"
#include "ngx_http_crm_status.h"
#include "ngx_http_crm_conninfo.h"

#include <openssl/evp.h>


#define NGX_HTTP_CRM_POLICY_MAX_SIZE  (1024 * 1024)


static ngx_int_t ngx_http_crm_read_policy(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *text);
static void ngx_http_crm_policy_cleanup(void *data);
static ngx_int_t ngx_http_crm_spool_path(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
static ngx_int_t ngx_http_crm_phase_handlers(ngx_http_core_main_conf_t *cmcf,
    ngx_http_handler_pt precontent, ngx_http_handler_pt log);
static ngx_int_t ngx_http_crm_policy_json(ngx_conf_t *cf,
    ngx_http_crm_main_conf_t *crmcf);
static u_char *ngx_http_crm_json_str(u_char *p, ngx_http_crm_str_t *s);
static u_char *ngx_http_crm_json_money(u_char *p, int64_t cents);
static void ngx_http_crm_needs_policy(ngx_conf_t *cf, ngx_command_t *cmd);
static void ngx_http_crm_server_acts(ngx_conf_t *cf);


void *
ngx_http_crm_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_main_conf_t));
    if (crmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     crmcf->policy = NULL;
     *     crmcf->policy_file = { 0, NULL };
     *     crmcf->needs_policy = { 0, NULL };
     */

    return crmcf;
}


void *
ngx_http_crm_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_crm_srv_conf_t  *cscf;

    cscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_srv_conf_t));
    if (cscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cscf->banner_off = 0;
     */

    cscf->acts = NGX_CONF_UNSET;

    return cscf;
}


char *
ngx_http_crm_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_crm_srv_conf_t *prev = parent;
    ngx_http_crm_srv_conf_t *conf = child;

    /* acts: as at http level (crm_banner on there), unless crm_banner off */

    if (conf->acts == NGX_CONF_UNSET && conf->banner_off) {
        conf->acts = 0;
    }

    ngx_conf_merge_value(conf->acts, prev->acts, 0);

    return NGX_CONF_OK;
}


void *
ngx_http_crm_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_crm_loc_conf_t  *clcf;

    clcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     clcf->banner_types = { NULL };
     *     clcf->banner_types_keys = NULL;
     */

    clcf->capture = NGX_CONF_UNSET_UINT;
    clcf->banner = NGX_CONF_UNSET;

    return clcf;
}


char *
ngx_http_crm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_crm_loc_conf_t *prev = parent;
    ngx_http_crm_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    /* crm_capture: off */
    ngx_conf_merge_uint_value(conf->capture, prev->capture,
                              NGX_HTTP_CRM_CAPTURE_OFF);

    /*
     * feedback where nothing else answers (no proxy_pass, fastcgi_pass,
     * ...; the location's handler is known once all of it was read): the
     * module answers
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* not an "if" block: it keeps its location's handler */

    if (conf->capture == NGX_HTTP_CRM_CAPTURE_FEEDBACK
        && clcf->handler == NULL && clcf->name.len
        && (!clcf->noname || clcf->lmt_excpt))
    {
        clcf->handler = ngx_http_crm_feedback_handler;
    }

    /* crm_banner: off */
    ngx_conf_merge_value(conf->banner, prev->banner, 0);

    /* crm_banner_types: text/html */
    if (ngx_http_merge_types(cf, &conf->banner_types_keys,
                             &conf->banner_types,
                             &prev->banner_types_keys, &prev->banner_types,
                             ngx_http_html_default_types)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Runs once the whole http{} block is read, so crm_policy may stand after
 * the servers that use it.  Returns NGX_ERROR when a location switched the
 * module on and no policy was loaded.
 */

/*
 * The one place where the module joins the request's path, behind what the
 * directives asked for: nothing without crm_policy; then the removal of
 * client X-CRM-* headers (post-read) and the cookie filter; and, where some
 * location captures, the capture handler (precontent) and the orders'
 * result line (log).
 */

ngx_int_t
ngx_http_crm_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_crm_database_t    *db;
    ngx_http_crm_main_conf_t   *crmcf;
    ngx_http_core_main_conf_t  *cmcf;

    crmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_crm_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (crmcf->needs_policy.len && crmcf->policy == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%V\" in %V:%ui needs \"crm_policy\" in the http "
                      "block", &crmcf->needs_policy,
                      &crmcf->needs_policy_file, crmcf->needs_policy_line);
        return NGX_ERROR;
    }

    if (crmcf->policy == NULL) {
        return NGX_OK;
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_crm_identity_strip;

    ngx_http_crm_identity_filter_init();

    crmcf->uses_db = crmcf->capture_used || crmcf->banner_used
                     || crmcf->policy->identity.upstream_header.len;

    if (crmcf->uses_db && ngx_http_crm_identity_keys(cf, crmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* host names looked up now: a worker never waits on the resolver */

    if (crmcf->uses_db) {
        db = &crmcf->policy->database;

        if (ngx_http_crm_conninfo_resolve(cf, "conninfo", &db->conninfo.data,
                                          &db->conninfo.len)
            != NGX_OK
            || (db->listen_conninfo.len
                && ngx_http_crm_conninfo_resolve(cf, "listen_conninfo",
                                                 &db->listen_conninfo.data,
                                                 &db->listen_conninfo.len)
                   != NGX_OK))
        {
            return NGX_ERROR;
        }
    }

    /* the calendar's zone is also the banners' day */

    if ((crmcf->feedback_used || crmcf->banner_used)
        && ngx_http_crm_feedback_conf(cf, crmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (crmcf->banner_used) {
        if (ngx_http_crm_banner_conf(cf, crmcf) != NGX_OK
            || ngx_http_crm_phase_handlers(cmcf, ngx_http_crm_banner_handler,
                                           ngx_http_crm_banner_log)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_crm_banner_filter_init();
    }

    /* a server without crm_capture pays nothing more for the module */

    if (!crmcf->capture_used) {
        return NGX_OK;
    }

    return ngx_http_crm_phase_handlers(cmcf, ngx_http_crm_capture_handler,
                                       ngx_http_crm_order_log);
}


/* a precontent and a log phase handler */

static ngx_int_t
ngx_http_crm_phase_handlers(ngx_http_core_main_conf_t *cmcf,
    ngx_http_handler_pt precontent, ngx_http_handler_pt log)
{
    ngx_http_handler_pt  *h;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = precontent;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = log;

    return NGX_OK;
}


char *
ngx_http_crm_policy_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_crm_main_conf_t *crmcf = conf;

    u_char                 md[EVP_MAX_MD_SIZE];
    char                   err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_str_t             *value, file, text;
    unsigned int           mdlen;
    ngx_pool_cleanup_t    *cln;
    ngx_http_crm_policy_t *policy;

    if (crmcf->policy_file.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_crm_read_policy(cf, &file, &text) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (EVP_Digest(text.data, text.len, md, &mdlen, EVP_sha256(), NULL)
        != 1)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "EVP_Digest() failed");
        return NGX_CONF_ERROR;
    }

    ngx_hex_dump(crmcf->policy_sha256, md, mdlen);
    crmcf->policy_sha256[NGX_HTTP_CRM_SHA256_HEX] = '\0';

    /* the cleanup first: it must exist before the parser allocates */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_crm_policy_cleanup;
    cln->data = NULL;

    policy = ngx_http_crm_policy_parse((char *) file.data, text.data,
                                       text.len, err, sizeof(err));
    if (policy == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    cln->data = policy;

    crmcf->policy = policy;
    crmcf->policy_file = file;
    crmcf->policy_loaded_at = ngx_time();

    if (ngx_http_crm_spool_path(cf, crmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_crm_stats_zone(cf, crmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_crm_policy_json(cf, crmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    crmcf->cache = ngx_http_crm_cache_zone(cf, policy->cache.size,
                                          (ngx_msec_t) policy->cache.ttl);
    if (crmcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Reads the whole policy file into text, NUL-terminated, from
 * cf->temp_pool.  Configuration time only: the read blocks.
 */

static ngx_int_t
ngx_http_crm_read_policy(ngx_conf_t *cf, ngx_str_t *file, ngx_str_t *text)
{
    off_t             size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_int_t         rc;
    ngx_file_info_t   fi;

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", file);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", file);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_CRM_POLICY_MAX_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "policy \"%V\" is larger than %d bytes",
                           file, NGX_HTTP_CRM_POLICY_MAX_SIZE);
        goto done;
    }

    text->data = ngx_pnalloc(cf->temp_pool, (size_t) size + 1);
    if (text->data == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, text->data, (size_t) size);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", file);
        goto done;
    }

    if (n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           ngx_read_fd_n " \"%V\" returned only %z bytes "
                           "instead of %O", file, n, size);
        goto done;
    }

    text->len = (size_t) n;
    text->data[n] = '\0';

    rc = NGX_OK;

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", file);
    }

    return rc;
}


/*
 * database.spool, relative to the nginx prefix, is made at start with the
 * worker user as its owner, as nginx does for its temp paths.
 */

static ngx_int_t
ngx_http_crm_spool_path(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    ngx_path_t  *path;

    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_ERROR;
    }

    path->name.len = crmcf->policy->database.spool.len;
    path->name.data = ngx_pnalloc(cf->pool, path->name.len + 1);
    if (path->name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(path->name.data, crmcf->policy->database.spool.data,
               path->name.len);

    while (path->name.len > 1 && path->name.data[path->name.len - 1] == '/')
    {
        path->name.len--;
    }

    path->name.data[path->name.len] = '\0';

    if (ngx_conf_full_name(cf->cycle, &path->name, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    if (ngx_add_path(cf, &path) != NGX_OK) {
        return NGX_ERROR;
    }

    crmcf->spool_path = path;

    return NGX_OK;
}


/*
 * The part of the policy that PostgreSQL's functions decide with, as JSON:
 * registered on every connection under the policy's sha256
 * (crm.register_policy), so that events name it and nodes with different
 * policies can share one database.
 */

static ngx_int_t
ngx_http_crm_policy_json(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    u_char                    *p;
    size_t                     len, i;
    ngx_http_crm_policy_t     *pl = crmcf->policy;
    ngx_http_crm_loyalty_t    *lo = &pl->loyalty;
    ngx_http_crm_surprises_t  *su = &pl->surprises;
    ngx_http_crm_sla_t        *sla = &pl->feedback.sla;

    /* every string at most 6 times its length once escaped */

    len = 1024 + 12 * sla->timezone.len + 7 * 24 + 16 * sla->nholidays
          + 6 * lo->card.prefix.len;

    for (i = 0; i < lo->ntiers; i++) {
        len += 128 + 6 * lo->tiers[i].name.len;
    }

    for (i = 0; i < su->ngifts; i++) {
        len += 64 + 6 * su->gifts[i].name.len;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    crmcf->policy_json.data = p;

    p = ngx_sprintf(p, "{\"loyalty\":{\"card\":{\"after_paid_orders\":%ud,"
                    "\"prefix\":", lo->card.after_paid_orders);
    p = ngx_http_crm_json_str(p, &lo->card.prefix);
    p = ngx_sprintf(p, "},\"tiers\":[");

    for (i = 0; i < lo->ntiers; i++) {
        p = ngx_sprintf(p, "%s{\"name\":", i ? "," : "");
        p = ngx_http_crm_json_str(p, &lo->tiers[i].name);
        p = ngx_sprintf(p, ",\"paid_orders\":%ud,\"spent\":",
                        lo->tiers[i].paid_orders);
        p = ngx_http_crm_json_money(p, lo->tiers[i].spent);
        p = ngx_sprintf(p, ",\"discount\":%ud}", lo->tiers[i].discount);
    }

    p = ngx_sprintf(p, "],\"promise\":{\"valid_for_s\":%L,"
                    "\"max_discount\":%ud}},",
                    lo->promise.valid_for / 1000, lo->promise.max_discount);

    /* the probability with 6 decimals: "%.6f" without libc */

    p = ngx_sprintf(p, "\"surprises\":{\"probability\":%ui.%06ui,"
                    "\"min_paid_orders\":%ud,\"cooldown_s\":%L,"
                    "\"daily_budget\":",
                    (ngx_uint_t) su->probability,
                    (ngx_uint_t) ((su->probability
                                   - (ngx_uint_t) su->probability)
                                  * 1000000 + 0.5),
                    su->min_paid_orders, su->cooldown / 1000);
    p = ngx_http_crm_json_money(p, su->daily_budget);
    p = ngx_sprintf(p, ",\"gifts\":[");

    for (i = 0; i < su->ngifts; i++) {
        p = ngx_sprintf(p, "%s{\"name\":", i ? "," : "");
        p = ngx_http_crm_json_str(p, &su->gifts[i].name);
        p = ngx_sprintf(p, ",\"cost\":");
        p = ngx_http_crm_json_money(p, su->gifts[i].cost);
        *p++ = '}';
    }

    p = ngx_sprintf(p, "]},\"holdout\":{\"percent\":%ud},\"timezone\":",
                    pl->holdout.percent);
    p = ngx_http_crm_json_str(p, &sla->timezone);

    /* the calendar crm.business_time() counts with, for the staff views */

    p = ngx_sprintf(p, ",\"feedback\":{\"sla\":{\"timezone\":");
    p = ngx_http_crm_json_str(p, &sla->timezone);
    p = ngx_sprintf(p, ",\"target_s\":%L,\"limit_s\":%L,\"hours\":[",
                    sla->target / 1000, sla->limit / 1000);

    for (i = 0; i < 7; i++) {
        p = ngx_sprintf(p, "%s[%ud,%ud]", i ? "," : "",
                        sla->hours[i].start, sla->hours[i].end);
    }

    p = ngx_sprintf(p, "],\"holidays\":[");

    for (i = 0; i < sla->nholidays; i++) {
        p = ngx_sprintf(p, "%s\"%04uD-%02uD-%02uD\"", i ? "," : "",
                        sla->holidays[i] / 10000,
                        sla->holidays[i] / 100 % 100,
                        sla->holidays[i] % 100);
    }

    p = ngx_sprintf(p, "]}}}");
    *p = '\0';

    crmcf->policy_json.len = p - crmcf->policy_json.data;

    return NGX_OK;
}


static u_char *
ngx_http_crm_json_str(u_char *p, ngx_http_crm_str_t *s)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, s->data, s->len);
    *p++ = '"';

    return p;
}


static u_char *
ngx_http_crm_json_money(u_char *p, int64_t cents)
{
    return ngx_sprintf(p, "%L.%02L", cents / 100, cents % 100);
}


static void
ngx_http_crm_policy_cleanup(void *data)
{
    ngx_http_crm_policy_t  *policy = data;

    ngx_http_crm_policy_free(policy);
}


/*
 * Reads a file of at most max bytes into the configuration's pool, with a
 * NUL after it.  NGX_DECLINED: it cannot be opened; NGX_ERROR: it cannot
 * be read, is no regular file (a FIFO or a directory), or is larger.
 */

ngx_int_t
ngx_http_crm_conf_read_file(ngx_conf_t *cf, ngx_str_t *name, size_t max,
    ngx_str_t *data)
{
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_file_info_t   fi;

    /* not blocking: a FIFO in its place must not hang nginx -t */

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        return NGX_DECLINED;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        goto failed;
    }

    if (!ngx_is_file(&fi) || ngx_file_size(&fi) > (off_t) max) {
        ngx_set_errno(0);
        goto failed;
    }

    data->len = (size_t) ngx_file_size(&fi);
    data->data = ngx_pnalloc(cf->pool, data->len + 1);

    if (data->data == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, data->data, data->len);

    if (n != (ssize_t) data->len) {
        if (n >= 0) {
            ngx_set_errno(0);
        }

        goto failed;
    }

    (void) ngx_close_file(fd);

    data->data[data->len] = '\0';

    return NGX_OK;

failed:

    /* the caller logs ngx_errno: the close must not change it */

    err = ngx_errno;
    (void) ngx_close_file(fd);
    ngx_set_errno(err);

    return NGX_ERROR;
}


char *
ngx_http_crm_capture_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                      *rv;
    ngx_http_crm_main_conf_t  *crmcf;

    /* the kinds are cmd->post; "is duplicate" and "invalid value" too */

    rv = ngx_conf_set_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    ngx_http_crm_needs_policy(cf, cmd);
    ngx_http_crm_server_acts(cf);

    crmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_crm_module);
    crmcf->capture_used = 1;

    if (((ngx_http_crm_loc_conf_t *) conf)->capture
        == NGX_HTTP_CRM_CAPTURE_FEEDBACK)
    {
        crmcf->feedback_used = 1;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_crm_banner_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                      *rv;
    ngx_http_crm_srv_conf_t   *cscf;
    ngx_http_crm_main_conf_t  *crmcf;
    ngx_http_crm_loc_conf_t   *clcf = conf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (clcf->banner) {
        ngx_http_crm_needs_policy(cf, cmd);
        ngx_http_crm_server_acts(cf);

        crmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_crm_module);
        crmcf->banner_used = 1;

    } else if (cf->cmd_type == NGX_HTTP_SRV_CONF) {
        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_crm_module);
        cscf->banner_off = 1;
    }

    return NGX_CONF_OK;
}


/* crm_status: the server acts; status.c's handler does the rest */

char *
ngx_http_crm_status_conf_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_crm_server_acts(cf);

    return ngx_http_crm_status_directive(cf, cmd, conf);
}


/*
 * The module acts in the server of the directive: from a location the
 * server's conf is the enclosing server's, from the http block it is the
 * one every server merges from.
 */

static void
ngx_http_crm_server_acts(ngx_conf_t *cf)
{
    ngx_http_crm_srv_conf_t  *cscf;

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_crm_module);
    cscf->acts = 1;
}


/* remembers the first directive that cannot work without a policy */

static void
ngx_http_crm_needs_policy(ngx_conf_t *cf, ngx_command_t *cmd)
{
    ngx_http_crm_main_conf_t  *crmcf;

    crmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_crm_module);

    if (crmcf->needs_policy.len) {
        return;
    }

    crmcf->needs_policy = cmd->name;
    crmcf->needs_policy_file = cf->conf_file->file.name;
    crmcf->needs_policy_line = cf->conf_file->line;
}
