
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The schema of policy version 1: one table of key descriptors per
 * mapping, rooted at ngx_http_crm_policy_root, and the checks and inits
 * that a row can name.  The tables say everything a key may hold and its
 * default; the walk (ngx_http_crm_policy_yaml.c) reads nothing else.
 *
 * A check sees a section or a list item once it is parsed, and rules on
 * what one key cannot say alone (unique names, ascending tiers, target <=
 * limit); it reports at the key's own position, read from the frame.  An
 * init sets a default that one YAML scalar cannot write (a list, a week).
 */


#include <string.h>

#include "ngx_http_crm_policy_int.h"
#include "ngx_http_crm_template.h"


#define NGX_HTTP_CRM_MONEY_MAX    100000000000LL   /* cents */


static int ngx_http_crm_check_tier(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_check_sla(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_check_hours(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_check_holiday(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_check_surprises(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_check_fills(ngx_http_crm_yaml_ctx_t *ctx,
    ngx_http_crm_frame_t *f, ngx_http_crm_banner_t *b);
static int ngx_http_crm_check_banner(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);
static int ngx_http_crm_init_tiers(ngx_http_crm_yaml_ctx_t *ctx, void *base);
static int ngx_http_crm_init_hours(ngx_http_crm_yaml_ctx_t *ctx, void *base);


/*
 * The schema, one table per mapping.  The row helpers expand to designated
 * initializers without braces, so a row may add .flags, .arg, .check or
 * .init after one.
 */

#define ngx_http_crm_scalar_key(n, t, st, f, lo, hi, d)                       \
    .name = n, .type = t, .offset = offsetof(st, f), .min = lo, .max = hi,    \
    .def = d

#define ngx_http_crm_int_key(n, st, f, lo, hi, d)                             \
    ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_INT, st, f, lo, hi, d)

#define ngx_http_crm_percent_key(n, st, f, d)                                 \
    ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_PERCENT, st, f, 0, 100, d)

#define ngx_http_crm_money_key(n, st, f, d)                                   \
    ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_MONEY, st, f, 0,                \
                            NGX_HTTP_CRM_MONEY_MAX, d)

#define ngx_http_crm_duration_key(n, st, f, lo, hi, d)                        \
    ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_DURATION, st, f, lo, hi, d)

#define ngx_http_crm_str_key(n, k, st, f, lo, hi, d)                          \
    ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_STR, st, f, lo, hi, d),         \
    .kind = k

#define ngx_http_crm_map_key(n, st, f, keys)                                  \
    .name = n, .type = NGX_HTTP_CRM_T_MAP, .offset = offsetof(st, f),         \
    .arg = keys

#define ngx_http_crm_list_key(n, st, f, nf, it, item)                         \
    .name = n, .type = NGX_HTTP_CRM_T_LIST, .offset = offsetof(st, f),        \
    .noffset = offsetof(st, nf), .size = sizeof(it), .arg = item

#define ngx_http_crm_required  .flags = NGX_HTTP_CRM_REQUIRED

#define ngx_http_crm_end_key  { .name = NULL }


static const char *const  ngx_http_crm_ack_placeholders[] = {
    "name", "ticket", "due", "faq", "ask_phone", NULL
};

static const char *const  ngx_http_crm_banner_placeholders[] = {
    "name", "card", "tier", "discount", "valid_until", "order_id", "eta",
    "gift", "ticket", "relative", NULL
};

/* what each trigger can fill, besides {name}: by ngx_http_crm_when_e */
static const char *const  ngx_http_crm_banner_fills[][5] = {
    { "name", "ticket", "discount", NULL },             /* conflict */
    { "name", "order_id", "eta", NULL },                /* order_delayed */
    { "name", "relative", "discount", "valid_until", NULL }, /* birthday */
    { "name", "card", "tier", NULL },                   /* new_card */
    { "name", "discount", "valid_until", NULL },        /* discount_ready */
    { "name", "gift", "order_id", NULL }                /* surprise_sent */
};

/* in the order of ngx_http_crm_when_e */

static const char *const  ngx_http_crm_when_names[] = {
    "conflict", "order_delayed", "birthday", "new_card", "discount_ready",
    "surprise_sent", NULL
};


static const ngx_http_crm_key_t  ngx_http_crm_database_keys[] = {
    { ngx_http_crm_str_key("conninfo", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_database_t, conninfo, 1, 8192, NULL),
      ngx_http_crm_required,
      .expect = "expected a non-empty libpq connection string such as "
                "\"host=127.0.0.1 dbname=crm\"" },
    { ngx_http_crm_str_key("listen_conninfo", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_database_t, listen_conninfo, 1, 8192,
                           NULL),
      .expect = "expected a non-empty libpq connection string for the "
                "LISTEN connection (default: conninfo)" },
    { ngx_http_crm_int_key("connections", ngx_http_crm_database_t,
                           connections, 1, 256, "2") },
    { ngx_http_crm_duration_key("timeout", ngx_http_crm_database_t, timeout,
                                1, 60 * NGX_HTTP_CRM_SEC, "250ms") },
    { ngx_http_crm_str_key("spool", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_database_t, spool, 1, 4095,
                           "crm-spool") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_cache_keys[] = {
    { ngx_http_crm_scalar_key("size", NGX_HTTP_CRM_T_SIZE,
                              ngx_http_crm_cache_t, size, 64 * 1024,
                              1024 * 1024 * 1024, "16m") },
    { ngx_http_crm_duration_key("ttl", ngx_http_crm_cache_t, ttl,
                                0, NGX_HTTP_CRM_DAY, "30s") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_identity_keys[] = {
    { ngx_http_crm_str_key("cookie", NGX_HTTP_CRM_S_TOKEN,
                           ngx_http_crm_identity_t, cookie, 1, 64, "crm") },
    { ngx_http_crm_str_key("secret_file", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_identity_t, secret_file, 1, 4095,
                           "crm.secret") },
    { ngx_http_crm_duration_key("max_age", ngx_http_crm_identity_t, max_age,
                                NGX_HTTP_CRM_SEC, 3650 * NGX_HTTP_CRM_DAY,
                                "365d") },
    { ngx_http_crm_str_key("upstream_header", NGX_HTTP_CRM_S_TOKEN,
                           ngx_http_crm_identity_t, upstream_header, 0, 256,
                           "") },
    ngx_http_crm_end_key
};


/* the rows of fields carry their offsets in the policy: fields[i] */

#define ngx_http_crm_field_key(n, i)                                          \
    { ngx_http_crm_str_key(#n, NGX_HTTP_CRM_S_POINTER, ngx_http_crm_policy_t, \
                           fields[i], 0, 1024, "/" #n) }

static const ngx_http_crm_key_t  ngx_http_crm_fields_keys[] = {
    ngx_http_crm_field_key(order_id, NGX_HTTP_CRM_FIELD_ORDER_ID),
    ngx_http_crm_field_key(email, NGX_HTTP_CRM_FIELD_EMAIL),
    ngx_http_crm_field_key(phone, NGX_HTTP_CRM_FIELD_PHONE),
    ngx_http_crm_field_key(name, NGX_HTTP_CRM_FIELD_NAME),
    ngx_http_crm_field_key(birthday, NGX_HTTP_CRM_FIELD_BIRTHDAY),
    ngx_http_crm_field_key(total, NGX_HTTP_CRM_FIELD_TOTAL),
    ngx_http_crm_field_key(currency, NGX_HTTP_CRM_FIELD_CURRENCY),
    ngx_http_crm_field_key(status, NGX_HTTP_CRM_FIELD_STATUS),
    ngx_http_crm_field_key(eta, NGX_HTTP_CRM_FIELD_ETA),
    ngx_http_crm_field_key(rating, NGX_HTTP_CRM_FIELD_RATING),
    ngx_http_crm_field_key(category, NGX_HTTP_CRM_FIELD_CATEGORY),
    ngx_http_crm_field_key(message, NGX_HTTP_CRM_FIELD_MESSAGE),
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_card_keys[] = {
    { ngx_http_crm_int_key("after_paid_orders", ngx_http_crm_card_t,
                           after_paid_orders, 1, 1000, "1") },
    { ngx_http_crm_str_key("prefix", NGX_HTTP_CRM_S_PREFIX,
                           ngx_http_crm_card_t, prefix, 0, 16, "CRM-") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_tier_keys[] = {
    { ngx_http_crm_str_key("name", NGX_HTTP_CRM_S_TEXT, ngx_http_crm_tier_t,
                           name, 1, 256, NULL),
      ngx_http_crm_required },
    { ngx_http_crm_int_key("paid_orders", ngx_http_crm_tier_t, paid_orders,
                           0, 1000000, NULL),
      ngx_http_crm_required },
    { ngx_http_crm_money_key("spent", ngx_http_crm_tier_t, spent, "0") },
    { ngx_http_crm_percent_key("discount", ngx_http_crm_tier_t, discount,
                               NULL),
      ngx_http_crm_required },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_tier_item = {
    .name = "", .type = NGX_HTTP_CRM_T_MAP, .arg = ngx_http_crm_tier_keys
};


static const ngx_http_crm_key_t  ngx_http_crm_promise_keys[] = {
    { ngx_http_crm_duration_key("valid_for", ngx_http_crm_promise_t,
                                valid_for, NGX_HTTP_CRM_HOUR,
                                3650 * NGX_HTTP_CRM_DAY, "30d") },
    { ngx_http_crm_percent_key("max_discount", ngx_http_crm_promise_t,
                               max_discount, "20") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_loyalty_keys[] = {
    { ngx_http_crm_map_key("card", ngx_http_crm_loyalty_t, card,
                           ngx_http_crm_card_keys) },
    { ngx_http_crm_list_key("tiers", ngx_http_crm_loyalty_t, tiers, ntiers,
                            ngx_http_crm_tier_t, &ngx_http_crm_tier_item),
      .check = ngx_http_crm_check_tier, .init = ngx_http_crm_init_tiers },
    { ngx_http_crm_map_key("promise", ngx_http_crm_loyalty_t, promise,
                           ngx_http_crm_promise_keys) },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_acknowledge_keys[] = {
    { ngx_http_crm_str_key("template", NGX_HTTP_CRM_S_TEMPLATE,
                           ngx_http_crm_acknowledge_t, template, 1, 65536,
                           "Thank you, {name}. Your ticket is {ticket}; "
                           "we will answer by {due}. {ask_phone} {faq}"),
      .arg = ngx_http_crm_ack_placeholders },
    { ngx_http_crm_str_key("faq_url", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_acknowledge_t, faq_url, 0, 4096, "") },
    { ngx_http_crm_str_key("ask_phone", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_acknowledge_t, ask_phone, 0, 4096,
                           "Leave a phone number and we will call you "
                           "back.") },
    { ngx_http_crm_str_key("due_format", NGX_HTTP_CRM_S_STRFTIME,
                           ngx_http_crm_acknowledge_t, due_format, 1, 256,
                           "%Y-%m-%d %H:%M") },
    ngx_http_crm_end_key
};


/* the rows of hours carry their offsets in the sla: hours[tm_wday] */

#define ngx_http_crm_day_key(n, wday)                                         \
    { ngx_http_crm_scalar_key(n, NGX_HTTP_CRM_T_HOURS, ngx_http_crm_sla_t,    \
                              hours[wday], 0, 0, "closed") }

static const ngx_http_crm_key_t  ngx_http_crm_hours_keys[] = {
    ngx_http_crm_day_key("mon", 1),
    ngx_http_crm_day_key("tue", 2),
    ngx_http_crm_day_key("wed", 3),
    ngx_http_crm_day_key("thu", 4),
    ngx_http_crm_day_key("fri", 5),
    ngx_http_crm_day_key("sat", 6),
    ngx_http_crm_day_key("sun", 0),
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_holiday_item = {
    .name = "", .type = NGX_HTTP_CRM_T_DATE
};


static const ngx_http_crm_key_t  ngx_http_crm_sla_keys[] = {
    { ngx_http_crm_duration_key("target", ngx_http_crm_sla_t, target,
                                NGX_HTTP_CRM_SEC, 365 * NGX_HTTP_CRM_DAY,
                                "4h") },
    { ngx_http_crm_duration_key("limit", ngx_http_crm_sla_t, limit,
                                NGX_HTTP_CRM_SEC, 365 * NGX_HTTP_CRM_DAY,
                                "24h") },
    { ngx_http_crm_str_key("timezone", NGX_HTTP_CRM_S_ZONE,
                           ngx_http_crm_sla_t, timezone, 1, 255, "UTC") },
    { .name = "hours", .type = NGX_HTTP_CRM_T_MAP, .offset = 0,
      .arg = ngx_http_crm_hours_keys, .check = ngx_http_crm_check_hours,
      .init = ngx_http_crm_init_hours },
    { ngx_http_crm_list_key("holidays", ngx_http_crm_sla_t, holidays,
                            nholidays, uint32_t, &ngx_http_crm_holiday_item),
      .check = ngx_http_crm_check_holiday },
    { ngx_http_crm_percent_key("breach_compensation", ngx_http_crm_sla_t,
                               breach_compensation, "10") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_category_item = {
    .name = "", .type = NGX_HTTP_CRM_T_STR, .kind = NGX_HTTP_CRM_S_TEXT,
    .min = 1, .max = 256
};


static const ngx_http_crm_key_t  ngx_http_crm_conflict_keys[] = {
    { ngx_http_crm_int_key("max_rating", ngx_http_crm_conflict_t, max_rating,
                           0, 5, "2") },
    { ngx_http_crm_list_key("categories", ngx_http_crm_conflict_t,
                            categories, ncategories, ngx_http_crm_str_t,
                            &ngx_http_crm_category_item) },
    { ngx_http_crm_percent_key("compensation", ngx_http_crm_conflict_t,
                               compensation, "15") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_feedback_keys[] = {
    { ngx_http_crm_map_key("acknowledge", ngx_http_crm_feedback_t,
                           acknowledge, ngx_http_crm_acknowledge_keys) },
    { ngx_http_crm_map_key("sla", ngx_http_crm_feedback_t, sla,
                           ngx_http_crm_sla_keys),
      .check = ngx_http_crm_check_sla },
    { ngx_http_crm_map_key("conflict", ngx_http_crm_feedback_t, conflict,
                           ngx_http_crm_conflict_keys) },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_gift_keys[] = {
    { ngx_http_crm_str_key("name", NGX_HTTP_CRM_S_TEXT, ngx_http_crm_gift_t,
                           name, 1, 256, NULL),
      ngx_http_crm_required },
    { ngx_http_crm_money_key("cost", ngx_http_crm_gift_t, cost, NULL),
      ngx_http_crm_required },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_gift_item = {
    .name = "", .type = NGX_HTTP_CRM_T_MAP, .arg = ngx_http_crm_gift_keys
};


static const ngx_http_crm_key_t  ngx_http_crm_surprises_keys[] = {
    { ngx_http_crm_scalar_key("probability", NGX_HTTP_CRM_T_PROB,
                              ngx_http_crm_surprises_t, probability, 0, 1,
                              "0") },
    { ngx_http_crm_int_key("min_paid_orders", ngx_http_crm_surprises_t,
                           min_paid_orders, 0, 1000000, "1") },
    { ngx_http_crm_duration_key("cooldown", ngx_http_crm_surprises_t,
                                cooldown, 0, 3650 * NGX_HTTP_CRM_DAY,
                                "30d") },
    { ngx_http_crm_money_key("daily_budget", ngx_http_crm_surprises_t,
                             daily_budget, "0") },
    { ngx_http_crm_list_key("gifts", ngx_http_crm_surprises_t, gifts, ngifts,
                            ngx_http_crm_gift_t, &ngx_http_crm_gift_item) },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_banner_keys[] = {
    { ngx_http_crm_str_key("id", NGX_HTTP_CRM_S_ID, ngx_http_crm_banner_t,
                           id, 1, 64, NULL),
      ngx_http_crm_required },
    { ngx_http_crm_scalar_key("when", NGX_HTTP_CRM_T_WHEN,
                              ngx_http_crm_banner_t, when, 0, 0, NULL),
      ngx_http_crm_required, .arg = ngx_http_crm_when_names },
    { ngx_http_crm_str_key("template", NGX_HTTP_CRM_S_TEMPLATE,
                           ngx_http_crm_banner_t, template, 1, 65536, NULL),
      ngx_http_crm_required, .arg = ngx_http_crm_banner_placeholders },
    { ngx_http_crm_int_key("max_per_day", ngx_http_crm_banner_t,
                           max_per_day, 0, 1000, "1") },
    { ngx_http_crm_int_key("days_before", ngx_http_crm_banner_t,
                           days_before, 0, 60, "3"),
      .flags = NGX_HTTP_CRM_BIRTHDAY },
    { ngx_http_crm_int_key("days_after", ngx_http_crm_banner_t, days_after,
                           0, 60, "3"),
      .flags = NGX_HTTP_CRM_BIRTHDAY },
    { ngx_http_crm_percent_key("gift", ngx_http_crm_banner_t, gift, "0"),
      .flags = NGX_HTTP_CRM_BIRTHDAY },
    { ngx_http_crm_scalar_key("relatives", NGX_HTTP_CRM_T_BOOL,
                              ngx_http_crm_banner_t, relatives, 0, 1,
                              "false"),
      .flags = NGX_HTTP_CRM_BIRTHDAY },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_banner_item = {
    .name = "", .type = NGX_HTTP_CRM_T_MAP, .arg = ngx_http_crm_banner_keys
};


static const ngx_http_crm_key_t  ngx_http_crm_holdout_keys[] = {
    { ngx_http_crm_percent_key("percent", ngx_http_crm_holdout_t, percent,
                               "0") },
    ngx_http_crm_end_key
};


static const ngx_http_crm_key_t  ngx_http_crm_policy_keys[] = {
    { ngx_http_crm_int_key("version", ngx_http_crm_policy_t, version, 1, 1,
                           NULL),
      ngx_http_crm_required,
      .expect = "expected 1, the policy version this module reads" },
    { ngx_http_crm_map_key("database", ngx_http_crm_policy_t, database,
                           ngx_http_crm_database_keys),
      ngx_http_crm_required },
    { ngx_http_crm_map_key("cache", ngx_http_crm_policy_t, cache,
                           ngx_http_crm_cache_keys) },
    { ngx_http_crm_map_key("identity", ngx_http_crm_policy_t, identity,
                           ngx_http_crm_identity_keys) },
    { .name = "fields", .type = NGX_HTTP_CRM_T_MAP, .offset = 0,
      .arg = ngx_http_crm_fields_keys },
    { ngx_http_crm_map_key("loyalty", ngx_http_crm_policy_t, loyalty,
                           ngx_http_crm_loyalty_keys) },
    { ngx_http_crm_map_key("feedback", ngx_http_crm_policy_t, feedback,
                           ngx_http_crm_feedback_keys) },
    { ngx_http_crm_map_key("surprises", ngx_http_crm_policy_t, surprises,
                           ngx_http_crm_surprises_keys),
      .check = ngx_http_crm_check_surprises },
    { ngx_http_crm_list_key("banners", ngx_http_crm_policy_t, banners,
                            nbanners, ngx_http_crm_banner_t,
                            &ngx_http_crm_banner_item),
      .check = ngx_http_crm_check_banner },
    { ngx_http_crm_map_key("holdout", ngx_http_crm_policy_t, holdout,
                           ngx_http_crm_holdout_keys) },
    ngx_http_crm_end_key
};


const ngx_http_crm_key_t  ngx_http_crm_policy_root = {
    .name = "", .type = NGX_HTTP_CRM_T_MAP, .arg = ngx_http_crm_policy_keys
};


/* tiers: unique names, listed in strictly ascending paid_orders */

static int
ngx_http_crm_check_tier(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    char                     got[NGX_HTTP_CRM_GOTLEN];
    size_t                   i;
    yaml_mark_t              mark;
    ngx_http_crm_tier_t     *t;
    ngx_http_crm_loyalty_t  *loyalty;

    loyalty = obj;
    t = loyalty->tiers;

    for (i = 0; i < n; i++) {
        if (t[i].name.len == t[n].name.len
            && memcmp(t[i].name.data, t[n].name.data, t[n].name.len) == 0)
        {
            (void) ngx_http_crm_frame_mark(f, "name", &mark);
            ngx_http_crm_got(t[n].name.data, t[n].name.len, 0, got,
                             sizeof(got));

            return ngx_http_crm_fail(ctx, &mark,
                                     "\"%s.name\" is %s, the name of tier "
                                     "%zu; expected a unique name",
                                     ngx_http_crm_path(ctx), got, i);
        }
    }

    if (n > 0 && t[n].paid_orders <= t[n - 1].paid_orders) {
        (void) ngx_http_crm_frame_mark(f, "paid_orders", &mark);

        return ngx_http_crm_fail(ctx, &mark,
                                 "\"%s.paid_orders\" is %u, not above %u of "
                                 "the tier before; expected tiers in "
                                 "ascending paid_orders",
                                 ngx_http_crm_path(ctx), t[n].paid_orders,
                                 t[n - 1].paid_orders);
    }

    return 0;
}


/* sla: target <= limit, reported at target */

static int
ngx_http_crm_check_sla(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    char                 a[32], b[32];
    yaml_mark_t          mark;
    ngx_http_crm_sla_t  *sla;

    (void) n;

    sla = obj;

    if (sla->target <= sla->limit) {
        return 0;
    }

    if (!ngx_http_crm_frame_mark(f, "target", &mark)) {
        (void) ngx_http_crm_frame_mark(f, "limit", &mark);
    }

    ngx_http_crm_duration_text(sla->target, a, sizeof(a));
    ngx_http_crm_duration_text(sla->limit, b, sizeof(b));

    return ngx_http_crm_fail(ctx, &mark,
                             "\"%s.target\" is %s, more than \"limit\" %s; "
                             "expected target <= limit",
                             ngx_http_crm_path(ctx), a, b);
}


/* hours: a due time must exist, so one day at least is open */

static int
ngx_http_crm_check_hours(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    size_t               i;
    ngx_http_crm_sla_t  *sla;

    (void) n;

    sla = obj;

    for (i = 0; i < 7; i++) {
        if (sla->hours[i].end != 0) {
            return 0;
        }
    }

    return ngx_http_crm_fail(ctx, &f->start,
                             "\"%s\" has no open day; expected HH:MM-HH:MM "
                             "for one weekday at least",
                             ngx_http_crm_path(ctx));
}


/* holidays: kept sorted and unique, by insertion of each new date */

static int
ngx_http_crm_check_holiday(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    size_t               i;
    uint32_t             d, *h;
    ngx_http_crm_sla_t  *sla;

    (void) ctx;
    (void) f;

    sla = obj;
    h = sla->holidays;
    d = h[n];

    for (i = n; i > 0 && h[i - 1] > d; i--) {
        h[i] = h[i - 1];
    }

    if (i > 0 && h[i - 1] == d) {
        memmove(&h[i], &h[i + 1], (n - i) * sizeof(uint32_t));
        sla->nholidays = n;
        return 0;
    }

    h[i] = d;

    return 0;
}


/* surprises: a probability needs something to give */

static int
ngx_http_crm_check_surprises(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    yaml_mark_t                mark;
    ngx_http_crm_surprises_t  *s;

    (void) n;

    s = obj;

    if (s->probability == 0 || s->ngifts > 0) {
        return 0;
    }

    (void) ngx_http_crm_frame_mark(f, "probability", &mark);

    return ngx_http_crm_fail(ctx, &mark,
                             "\"%s.probability\" is above 0 but \"gifts\" "
                             "is empty; probability > 0 needs at least one "
                             "gift", ngx_http_crm_path(ctx));
}


/* a banner's placeholders: only those its trigger fills */

static int
ngx_http_crm_check_fills(ngx_http_crm_yaml_ctx_t *ctx,
    ngx_http_crm_frame_t *f, ngx_http_crm_banner_t *b)
{
    char                  names[NGX_HTTP_CRM_PATHLEN];
    char                  got[NGX_HTTP_CRM_GOTLEN];
    size_t                n;
    yaml_mark_t           mark;
    const char           *const *name;
    const unsigned char  *p, *last;

    if (b->when >= NGX_HTTP_CRM_WHEN_N) {
        return 0;
    }

    last = b->template.data + b->template.len;

    for (p = b->template.data; p < last; p++) {
        if (*p != '{' || (n = ngx_http_crm_template_word(p, last)) == 0) {
            continue;
        }

        for (name = ngx_http_crm_banner_fills[b->when]; *name; name++) {
            if (strlen(*name) == n && memcmp(*name, p + 1, n) == 0) {
                break;
            }
        }

        if (*name == NULL) {
            (void) ngx_http_crm_frame_mark(f, "template", &mark);
            ngx_http_crm_got(p + 1, n, 1, got, sizeof(got));
            ngx_http_crm_names(ngx_http_crm_banner_fills[b->when], "{", "}",
                               names, sizeof(names));

            return ngx_http_crm_fail(ctx, &mark,
                                     "\"%s.template\" has {%s}, which a "
                                     "\"%s\" banner cannot fill; expected "
                                     "only %s", ngx_http_crm_path(ctx), got,
                                     ngx_http_crm_when_names[b->when], names);
        }

        p += n + 1;
    }

    return 0;
}


/* banners: unique ids; the birthday keys only on a birthday banner */

static int
ngx_http_crm_check_banner(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n)
{
    char                       got[NGX_HTTP_CRM_GOTLEN];
    size_t                     i;
    yaml_mark_t                mark;
    ngx_http_crm_banner_t     *b;
    ngx_http_crm_policy_t     *policy;
    const ngx_http_crm_key_t  *keys;

    policy = obj;
    b = policy->banners;

    for (i = 0; i < n; i++) {
        if (b[i].id.len == b[n].id.len
            && memcmp(b[i].id.data, b[n].id.data, b[n].id.len) == 0)
        {
            (void) ngx_http_crm_frame_mark(f, "id", &mark);
            ngx_http_crm_got(b[n].id.data, b[n].id.len, 1, got, sizeof(got));

            return ngx_http_crm_fail(ctx, &mark,
                                     "\"%s.id\" is %s, the id of banner "
                                     "%zu; expected a unique id",
                                     ngx_http_crm_path(ctx), got, i);
        }
    }

    if (ngx_http_crm_check_fills(ctx, f, &b[n]) != 0) {
        return -1;
    }

    if (b[n].when == NGX_HTTP_CRM_WHEN_BIRTHDAY) {
        return 0;
    }

    keys = f->keys;

    for (i = 0; keys[i].name != NULL; i++) {
        if ((keys[i].flags & NGX_HTTP_CRM_BIRTHDAY)
            && (f->seen & (1u << i)))
        {
            return ngx_http_crm_fail(ctx, &f->marks[i],
                                     "\"%s.%s\" is set on a \"%s\" banner; "
                                     "expected it only with \"when: "
                                     "birthday\"", ngx_http_crm_path(ctx),
                                     keys[i].name,
                                     ngx_http_crm_when_names[b[n].when]);
        }
    }

    b[n].days_before = 0;
    b[n].days_after = 0;
    b[n].gift = 0;
    b[n].relatives = 0;

    return 0;
}


/* the default tier list: one tier, member, 5% from the first paid order */

static int
ngx_http_crm_init_tiers(ngx_http_crm_yaml_ctx_t *ctx, void *base)
{
    ngx_http_crm_tier_t     *t;
    ngx_http_crm_loyalty_t  *loyalty;

    static const char  name[] = "member";

    loyalty = base;

    t = ngx_http_crm_alloc(ctx, sizeof(ngx_http_crm_tier_t));
    if (t == NULL) {
        return -1;
    }

    t->name.data = ngx_http_crm_alloc(ctx, sizeof(name));
    if (t->name.data == NULL) {
        return -1;
    }

    memcpy(t->name.data, name, sizeof(name));
    t->name.len = sizeof(name) - 1;
    t->paid_orders = 1;
    t->spent = 0;
    t->discount = 5;

    loyalty->tiers = t;
    loyalty->ntiers = 1;

    return 0;
}


/* the default hours: Monday to Friday, 09:00-18:00 */

static int
ngx_http_crm_init_hours(ngx_http_crm_yaml_ctx_t *ctx, void *base)
{
    size_t               i;
    ngx_http_crm_sla_t  *sla;

    (void) ctx;

    sla = base;

    for (i = 0; i < 7; i++) {
        sla->hours[i].start = (i >= 1 && i <= 5) ? 9 * 60 : 0;
        sla->hours[i].end = (i >= 1 && i <= 5) ? 18 * 60 : 0;
    }

    return 0;
}
