
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * crm_status: a content handler that tells the operator what this worker
 * runs: the module version, the worker pid and the loaded policy (file,
 * sha256 of its bytes, load time).  JSON by default, Prometheus text with
 * ?format=prometheus.  The counters of later subsystems append here.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner_state.h"
#include "ngx_http_crm_status.h"


#define NGX_HTTP_CRM_STATUS_SIZE      16384
#define NGX_HTTP_CRM_STATS_ZONE_SIZE  (64 * 1024)


typedef struct {
    const char               *group;      /* JSON object it goes in */
    const char               *name;       /* its key there */
    const char               *prom;       /* Prometheus name */
    const char               *help;
    size_t                    offset;     /* in ngx_http_crm_stats_t */
    ngx_uint_t                counter;    /* else a gauge */
    ngx_uint_t                slots;      /* a sum of slots, 0: one value */
} ngx_http_crm_metric_t;


#define ngx_http_crm_stat(field)  offsetof(ngx_http_crm_stats_t, field)

static ngx_http_crm_metric_t  ngx_http_crm_metrics[] = {
    { "events", "captured", "crm_events_captured_total",
      "Events captured and spooled.", ngx_http_crm_stat(captured), 1, 0 },
    { "events", "written", "crm_events_written_total",
      "Events written to PostgreSQL.", ngx_http_crm_stat(written), 1, 0 },
    { "events", "spooled", "crm_events_spooled_total",
      "Events captured while PostgreSQL was unavailable.",
      ngx_http_crm_stat(spooled), 1, 0 },
    { "events", "replayed", "crm_events_replayed_total",
      "Events written later from the spool.",
      ngx_http_crm_stat(replayed), 1, 0 },
    { "events", "bad_body", "crm_events_bad_body_total",
      "Bodies that were not valid JSON or form, or too large.",
      ngx_http_crm_stat(bad_body), 1, 0 },
    { "events", "rejected", "crm_events_rejected_total",
      "Events PostgreSQL could not write, kept in crm.spool_reject.",
      ngx_http_crm_stat(rejected), 1, 0 },
    { "events", "cookies_rejected", "crm_cookies_rejected_total",
      "Customer cookies that were malformed, expired or forged.",
      ngx_http_crm_stat(cookies_rejected), 1, 0 },
    { "orders", "decided", "crm_orders_decided_total",
      "Orders that got a decision before going upstream.",
      ngx_http_crm_stat(decided), 1, 0 },
    { "orders", "undecided", "crm_orders_undecided_total",
      "Orders that went on without a decision: database down or slow.",
      ngx_http_crm_stat(undecided), 1, 0 },
    { "orders", "no_customer", "crm_orders_no_customer_total",
      "Orders with no e-mail, phone or valid cookie.",
      ngx_http_crm_stat(no_customer), 1, 0 },
    { "orders", "conflict", "crm_orders_conflict_total",
      "Orders whose order id or Idempotency-Key was sent again with "
      "another identity: no decision.",
      ngx_http_crm_stat(conflicts), 1, 0 },
    { "banners", "impressions", "crm_banner_impressions_total",
      "Banners put into pages and sent.",
      ngx_http_crm_stat(banner_impressions), 1, 0 },
    { "banners", "would_show", "crm_banner_would_show_total",
      "Banners a holdout customer would have been shown (exposures).",
      ngx_http_crm_stat(banner_would_show), 1, 0 },
    { "banners", "no_cookie", "crm_banner_skipped_no_cookie_total",
      "Banner pages with no valid customer cookie.",
      ngx_http_crm_stat(banner_no_cookie), 1, 0 },
    { "banners", "cache_miss", "crm_banner_skipped_cache_miss_total",
      "Banner pages sent without one: the customer's state was not in "
      "shared memory yet.",
      ngx_http_crm_stat(banner_cache_miss), 1, 0 },
    { "banners", "compressed", "crm_banner_skipped_compressed_total",
      "Banner pages the shop sent compressed (Content-Encoding).",
      ngx_http_crm_stat(banner_compressed), 1, 0 },
    { "banners", "no_place", "crm_banner_skipped_no_place_total",
      "Pages with neither <!--crm-banner--> nor </body>.",
      ngx_http_crm_stat(banner_no_place), 1, 0 },
    { "banners", "capped", "crm_banner_skipped_capped_total",
      "Banner pages whose banners had all reached max_per_day.",
      ngx_http_crm_stat(banner_capped), 1, 0 },
    { "banners", "not_html", "crm_banner_skipped_not_html_total",
      "Responses in crm_banner locations not of crm_banner_types.",
      ngx_http_crm_stat(banner_not_html), 1, 0 },
    { "spool", "bytes", "crm_spool_bytes",
      "Bytes in the spool not yet written to PostgreSQL.",
      ngx_http_crm_stat(spool_bytes), 0, NGX_HTTP_CRM_WORKERS_MAX },
    { "connections", "up", "crm_connections_up",
      "PostgreSQL connections open and ready.",
      ngx_http_crm_stat(conn_up), 0, 0 },
    { "connections", "busy", "crm_connections_busy",
      "PostgreSQL connections running a query.",
      ngx_http_crm_stat(conn_busy), 0, 0 },
    { "connections", "failures", "crm_connection_failures_total",
      "PostgreSQL connections that failed or were lost.",
      ngx_http_crm_stat(conn_failures), 1, 0 },
    { NULL, NULL, NULL, NULL, 0, 0, 0 }
};


static ngx_int_t ngx_http_crm_status_handler(ngx_http_request_t *r);
static ngx_buf_t *ngx_http_crm_status_json(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf);
static ngx_buf_t *ngx_http_crm_status_prometheus(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf);
static void ngx_http_crm_status_latency(ngx_http_crm_stats_t *st,
    ngx_msec_t *p50, ngx_msec_t *p99, ngx_msec_t *n);
static void ngx_http_crm_status_cache(ngx_http_crm_main_conf_t *crmcf,
    ngx_uint_t *entries, ngx_uint_t *hits, ngx_uint_t *misses);
static int ngx_libc_cdecl ngx_http_crm_cmp_msec(const void *one,
    const void *two);
static ngx_atomic_uint_t ngx_http_crm_metric(ngx_http_crm_stats_t *st,
    ngx_http_crm_metric_t *m);
static ngx_int_t ngx_http_crm_stats_init(ngx_shm_zone_t *zone, void *data);
static u_char *ngx_http_crm_iso8601(u_char *p, time_t t);
static uintptr_t ngx_http_crm_escape_label(u_char *dst, ngx_str_t *src);


char *
ngx_http_crm_status_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_crm_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_crm_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_str_t                  format;
    ngx_chain_t                out;
    ngx_http_crm_main_conf_t  *crmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    crmcf = ngx_http_get_module_main_conf(r, ngx_http_crm_module);

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 10
        && ngx_strncmp(format.data, "prometheus", 10) == 0)
    {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        b = ngx_http_crm_status_prometheus(r, crmcf);

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
        b = ngx_http_crm_status_json(r, crmcf);
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * JSON: {"version","pid","policy":{...}|null,"events":{...},"spool":{...},
 * "connections":{...},"latency_ms":{...},"errors"}.
 */

static ngx_buf_t *
ngx_http_crm_status_json(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf)
{
    u_char                 *last;
    size_t                  len;
    ngx_buf_t              *b;
    ngx_uint_t              i, entries, hits, misses;
    ngx_msec_t              p50, p99, n;
    const char             *group;
    ngx_http_crm_stats_t   *st;
    ngx_http_crm_metric_t  *m;

    len = NGX_HTTP_CRM_STATUS_SIZE;

    if (crmcf->policy != NULL) {
        len += crmcf->policy_file.len
               + ngx_escape_json(NULL, crmcf->policy_file.data,
                                 crmcf->policy_file.len);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    last = b->end;

    b->last = ngx_slprintf(b->last, last,
                           "{\"version\":\"" NGX_HTTP_CRM_VERSION "\","
                           "\"pid\":%P,\"policy\":", ngx_pid);

    if (crmcf->policy == NULL) {
        b->last = ngx_slprintf(b->last, last, "null");

    } else {
        b->last = ngx_slprintf(b->last, last, "{\"file\":\"");
        b->last = (u_char *) ngx_escape_json(b->last, crmcf->policy_file.data,
                                             crmcf->policy_file.len);
        b->last = ngx_slprintf(b->last, last,
                               "\",\"sha256\":\"%*s\",\"loaded_at\":\"",
                               (size_t) NGX_HTTP_CRM_SHA256_HEX,
                               crmcf->policy_sha256);
        b->last = ngx_http_crm_iso8601(b->last, crmcf->policy_loaded_at);
        b->last = ngx_slprintf(b->last, last, "\"}");
    }

    st = crmcf->stats;

    if (st != NULL) {
        group = NULL;

        for (i = 0; ngx_http_crm_metrics[i].group; i++) {
            m = &ngx_http_crm_metrics[i];

            if (group == NULL || ngx_strcmp(group, m->group) != 0) {
                b->last = ngx_slprintf(b->last, last, "%s,\"%s\":{",
                                       group ? "}" : "", m->group);
                group = m->group;

            } else {
                *b->last++ = ',';
            }

            b->last = ngx_slprintf(b->last, last, "\"%s\":%A", m->name,
                                   ngx_http_crm_metric(st, m));
        }

        ngx_http_crm_status_latency(st, &p50, &p99, &n);
        ngx_http_crm_status_cache(crmcf, &entries, &hits, &misses);

        b->last = ngx_slprintf(b->last, last,
                               "},\"latency_ms\":{\"p50\":%M,\"p99\":%M,"
                               "\"samples\":%M},\"cache\":{\"entries\":%ui,"
                               "\"hits\":%ui,\"misses\":%ui},\"errors\":%A",
                               p50, p99, n, entries, hits, misses,
                               st->errors);

        if (crmcf->banners != NULL) {
            b->last = ngx_slprintf(b->last, last, ",\"banner_ids\":");
            b->last = ngx_http_crm_banners_tally(crmcf->banners, b->last,
                                                 last - 8);
        }
    }

    b->last = ngx_slprintf(b->last, last, "}\n");

    return b;
}


static ngx_buf_t *
ngx_http_crm_status_prometheus(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf)
{
    u_char                 *last;
    size_t                  len;
    ngx_buf_t              *b;
    ngx_uint_t              i, entries, hits, misses;
    ngx_msec_t              p50, p99, n;
    ngx_http_crm_stats_t   *st;
    ngx_http_crm_metric_t  *m;

    len = NGX_HTTP_CRM_STATUS_SIZE;

    if (crmcf->policy != NULL) {
        len += crmcf->policy_file.len
               + ngx_http_crm_escape_label(NULL, &crmcf->policy_file);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    last = b->end;

    b->last = ngx_slprintf(b->last, last,
                   "# HELP crm_info ngx_crm module version and worker pid.\n"
                   "# TYPE crm_info gauge\n"
                   "crm_info{version=\"" NGX_HTTP_CRM_VERSION "\","
                   "pid=\"%P\"} 1\n", ngx_pid);

    if (crmcf->policy != NULL) {
        b->last = ngx_slprintf(b->last, last,
                   "# HELP crm_policy_info The loaded policy file and its "
                   "sha256.\n"
                   "# TYPE crm_policy_info gauge\n"
                   "crm_policy_info{file=\"");
        b->last = (u_char *) ngx_http_crm_escape_label(b->last,
                                                       &crmcf->policy_file);
        b->last = ngx_slprintf(b->last, last,
                   "\",sha256=\"%*s\"} 1\n"
                   "# HELP crm_policy_loaded_timestamp_seconds When the "
                   "policy was loaded.\n"
                   "# TYPE crm_policy_loaded_timestamp_seconds gauge\n"
                   "crm_policy_loaded_timestamp_seconds %T\n",
                   (size_t) NGX_HTTP_CRM_SHA256_HEX, crmcf->policy_sha256,
                   crmcf->policy_loaded_at);
    }

    st = crmcf->stats;

    if (st == NULL) {
        return b;
    }

    for (i = 0; ngx_http_crm_metrics[i].group; i++) {
        m = &ngx_http_crm_metrics[i];

        b->last = ngx_slprintf(b->last, last,
                               "# HELP %s %s\n# TYPE %s %s\n%s %A\n",
                               m->prom, m->help, m->prom,
                               m->counter ? "counter" : "gauge", m->prom,
                               ngx_http_crm_metric(st, m));
    }

    ngx_http_crm_status_latency(st, &p50, &p99, &n);
    ngx_http_crm_status_cache(crmcf, &entries, &hits, &misses);

    b->last = ngx_slprintf(b->last, last,
                   "# HELP crm_cache_entries Customers in the shared-memory "
                   "cache.\n"
                   "# TYPE crm_cache_entries gauge\n"
                   "crm_cache_entries %ui\n"
                   "# HELP crm_cache_hits_total Cache lookups that found "
                   "the customer.\n"
                   "# TYPE crm_cache_hits_total counter\n"
                   "crm_cache_hits_total %ui\n"
                   "# HELP crm_cache_misses_total Cache lookups that did "
                   "not.\n"
                   "# TYPE crm_cache_misses_total counter\n"
                   "crm_cache_misses_total %ui\n",
                   entries, hits, misses);

    b->last = ngx_slprintf(b->last, last,
                   "# HELP crm_query_latency_ms PostgreSQL query latency "
                   "over the last %d queries.\n"
                   "# TYPE crm_query_latency_ms summary\n"
                   "crm_query_latency_ms{quantile=\"0.5\"} %M\n"
                   "crm_query_latency_ms{quantile=\"0.99\"} %M\n"
                   "crm_query_latency_ms_count %M\n"
                   "# HELP crm_errors_total Errors: failed queries, events "
                   "that could not be spooled.\n"
                   "# TYPE crm_errors_total counter\n"
                   "crm_errors_total %A\n",
                   NGX_HTTP_CRM_LATENCY_N, p50, p99, n, st->errors);

    return b;
}


/* the customer cache's figures, all 0 without one */

static void
ngx_http_crm_status_cache(ngx_http_crm_main_conf_t *crmcf,
    ngx_uint_t *entries, ngx_uint_t *hits, ngx_uint_t *misses)
{
    if (crmcf->cache == NULL) {
        *entries = 0;
        *hits = 0;
        *misses = 0;
        return;
    }

    ngx_http_crm_cache_stats(crmcf->cache, entries, hits, misses);
}


/* p50 and p99 of the recent query latencies; n: how many there are */

static void
ngx_http_crm_status_latency(ngx_http_crm_stats_t *st, ngx_msec_t *p50,
    ngx_msec_t *p99, ngx_msec_t *n)
{
    ngx_uint_t  i, count;
    ngx_msec_t  sorted[NGX_HTTP_CRM_LATENCY_N];

    count = ngx_min(st->latency_next, NGX_HTTP_CRM_LATENCY_N);

    for (i = 0; i < count; i++) {
        sorted[i] = st->latency[i];
    }

    ngx_qsort(sorted, count, sizeof(ngx_msec_t), ngx_http_crm_cmp_msec);

    *n = count;
    *p50 = count ? sorted[(count - 1) / 2] : 0;
    *p99 = count ? sorted[(count - 1) * 99 / 100] : 0;
}


static int ngx_libc_cdecl
ngx_http_crm_cmp_msec(const void *one, const void *two)
{
    ngx_msec_t  a = *(ngx_msec_t *) one;
    ngx_msec_t  b = *(ngx_msec_t *) two;

    return (a > b) - (a < b);
}


static ngx_atomic_uint_t
ngx_http_crm_metric(ngx_http_crm_stats_t *st, ngx_http_crm_metric_t *m)
{
    ngx_uint_t          i;
    ngx_atomic_t       *v;
    ngx_atomic_uint_t   sum;

    v = (ngx_atomic_t *) ((u_char *) st + m->offset);

    if (m->slots == 0) {
        return *v;
    }

    sum = 0;

    for (i = 0; i < m->slots; i++) {
        sum += v[i];
    }

    return sum;
}


/* pg hook: one more query latency, into the shared ring */

void
ngx_http_crm_stats_latency(void *data, ngx_msec_t ms)
{
    ngx_http_crm_stats_t  *st = data;

    ngx_atomic_uint_t  i;

    i = ngx_atomic_fetch_add(&st->latency_next, 1);

    st->latency[i % NGX_HTTP_CRM_LATENCY_N] = ms;
}


/*
 * The shared zone of the counters.  Its name and size never change, so a
 * reload finds the old zone and the counters go on counting.
 */

ngx_int_t
ngx_http_crm_stats_zone(ngx_conf_t *cf, ngx_http_crm_main_conf_t *crmcf)
{
    ngx_shm_zone_t  *zone;

    static ngx_str_t  name = ngx_string("ngx_http_crm_stats");

    zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_CRM_STATS_ZONE_SIZE,
                                 &ngx_http_crm_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_crm_stats_init;
    zone->data = crmcf;
    zone->noreuse = 0;

    crmcf->shm_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_crm_stats_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_crm_main_conf_t *crmcf = zone->data;

    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (data != NULL) {
        /* a reload: the old cycle's zone, with its counters */
        crmcf->stats = ((ngx_http_crm_main_conf_t *) data)->stats;
        return NGX_OK;
    }

    if (zone->shm.exists) {
        crmcf->stats = shpool->data;
        return NGX_OK;
    }

    crmcf->stats = ngx_slab_calloc(shpool, sizeof(ngx_http_crm_stats_t));
    if (crmcf->stats == NULL) {
        return NGX_ERROR;
    }

    shpool->data = crmcf->stats;

    return NGX_OK;
}


static u_char *
ngx_http_crm_iso8601(u_char *p, time_t t)
{
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    return ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


/*
 * Escapes a Prometheus label value (backslash, double quote, newline).
 * With dst NULL returns how many bytes the escaping adds; otherwise
 * returns the end of what it wrote.
 */

static uintptr_t
ngx_http_crm_escape_label(u_char *dst, ngx_str_t *src)
{
    u_char      c;
    size_t      i;
    uintptr_t   n;

    if (dst == NULL) {
        n = 0;

        for (i = 0; i < src->len; i++) {
            c = src->data[i];
            n += (c == '\\' || c == '"' || c == '\n');
        }

        return n;
    }

    for (i = 0; i < src->len; i++) {
        c = src->data[i];

        if (c == '\\' || c == '"' || c == '\n') {
            *dst++ = '\\';
            c = (c == '\n') ? 'n' : c;
        }

        *dst++ = c;
    }

    return (uintptr_t) dst;
}
