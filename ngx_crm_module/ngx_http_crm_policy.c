
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The policy loader: YAML text in, a complete ngx_http_crm_policy_t out.
 *
 * The schema is data: each mapping of the policy is a table of key
 * descriptors (name, type, offset in its C struct, range, default written
 * as YAML text, optional check).  One recursive descent walks libyaml's
 * event stream against those tables, so a mapping, a list and a scalar are
 * each parsed and checked in exactly one place, and defaults go through the
 * same converters as the document's own values.
 *
 * The event API (not the document API) is used so that aliases, anchors,
 * tags and a second document are seen where they are written and rejected
 * with their position, and so that the walk stops at the first error.
 *
 * Memory: everything the policy points to, and the policy itself, lives in
 * one arena of malloc()ed chunks that ngx_http_crm_policy_free() releases.
 * On error the arena is released before returning NULL; the libyaml parser
 * and its current event are released on every path by the public function.
 */


#include <yaml.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_crm_policy.h"


#define NGX_HTTP_CRM_MAXKEYS      32       /* in one table: seen is 32 bits */
#define NGX_HTTP_CRM_PATHLEN      256
#define NGX_HTTP_CRM_GOTLEN       48
#define NGX_HTTP_CRM_CHUNK        4096
#define NGX_HTTP_CRM_ALIGN        16

#define NGX_HTTP_CRM_REQUIRED     0x01
#define NGX_HTTP_CRM_BIRTHDAY     0x02

#define NGX_HTTP_CRM_SEC          1000LL
#define NGX_HTTP_CRM_MIN          (60 * NGX_HTTP_CRM_SEC)
#define NGX_HTTP_CRM_HOUR         (60 * NGX_HTTP_CRM_MIN)
#define NGX_HTTP_CRM_DAY          (24 * NGX_HTTP_CRM_HOUR)
#define NGX_HTTP_CRM_MONEY_MAX    100000000000LL   /* cents */

#define NGX_HTTP_CRM_ZONEINFO     "/usr/share/zoneinfo"


typedef enum {
    NGX_HTTP_CRM_T_MAP = 0,
    NGX_HTTP_CRM_T_LIST,
    NGX_HTTP_CRM_T_INT,
    NGX_HTTP_CRM_T_PERCENT,
    NGX_HTTP_CRM_T_MONEY,
    NGX_HTTP_CRM_T_PROB,
    NGX_HTTP_CRM_T_BOOL,
    NGX_HTTP_CRM_T_DURATION,
    NGX_HTTP_CRM_T_SIZE,
    NGX_HTTP_CRM_T_STR,
    NGX_HTTP_CRM_T_WHEN,
    NGX_HTTP_CRM_T_HOURS,
    NGX_HTTP_CRM_T_DATE
} ngx_http_crm_type_e;


/* what a T_STR may hold beyond its length range */

typedef enum {
    NGX_HTTP_CRM_S_TEXT = 0,
    NGX_HTTP_CRM_S_TOKEN,
    NGX_HTTP_CRM_S_POINTER,
    NGX_HTTP_CRM_S_PREFIX,
    NGX_HTTP_CRM_S_ID,
    NGX_HTTP_CRM_S_ZONE,
    NGX_HTTP_CRM_S_TEMPLATE
} ngx_http_crm_kind_e;


typedef struct ngx_http_crm_chunk_s  ngx_http_crm_chunk_t;
typedef struct ngx_http_crm_key_s    ngx_http_crm_key_t;

struct ngx_http_crm_chunk_s {
    ngx_http_crm_chunk_t      *next;
    size_t                     size;
    size_t                     used;
};


typedef struct {
    yaml_parser_t              parser;
    yaml_event_t               event;
    unsigned                   have_event:1;
    unsigned                   failed:1;

    const char                *file;
    const unsigned char       *data;
    size_t                     len;
    char                      *err;
    size_t                     errlen;

    ngx_http_crm_chunk_t      *arena;

    yaml_mark_t                mark;        /* of the scalar converted */
    size_t                     plen;
    char                       path[NGX_HTTP_CRM_PATHLEN];
} ngx_http_crm_yaml_ctx_t;


/* one mapping being parsed: which keys were seen, and where */

typedef struct {
    const ngx_http_crm_key_t  *keys;
    uint32_t                   seen;
    yaml_mark_t                start;
    yaml_mark_t                marks[NGX_HTTP_CRM_MAXKEYS];
} ngx_http_crm_frame_t;


/*
 * A check runs after a T_MAP value is complete (obj: its struct) or after
 * each item of a T_LIST (obj: the struct holding the list, n: the item's
 * index in the array).  f is the frame of the mapping, NULL for a scalar
 * list item.
 */

typedef int (*ngx_http_crm_check_pt)(ngx_http_crm_yaml_ctx_t *ctx, void *obj,
    ngx_http_crm_frame_t *f, size_t n);

/*
 * An init sets a key's default when one YAML scalar cannot say it; base is
 * the struct that holds the key's field.
 */

typedef int (*ngx_http_crm_init_pt)(ngx_http_crm_yaml_ctx_t *ctx, void *base);


struct ngx_http_crm_key_s {
    const char                *name;
    ngx_http_crm_type_e        type;
    ngx_http_crm_kind_e        kind;
    unsigned                   flags;
    size_t                     offset;      /* of the field in its struct */
    size_t                     noffset;     /* T_LIST: of the count */
    size_t                     size;        /* T_LIST: of an item */
    int64_t                    min;         /* T_STR: length */
    int64_t                    max;
    const char                *def;         /* scalar default, YAML text */
    const void                *arg;         /* sub-table, item key, names */
    const char                *expect;      /* overrides the generated */
    ngx_http_crm_check_pt      check;
    ngx_http_crm_init_pt       init;
};


static ngx_http_crm_policy_t *ngx_http_crm_document(
    ngx_http_crm_yaml_ctx_t *ctx);
static int ngx_http_crm_next(ngx_http_crm_yaml_ctx_t *ctx);
static int ngx_http_crm_syntax_error(ngx_http_crm_yaml_ctx_t *ctx);
static int ngx_http_crm_map(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *obj, ngx_http_crm_frame_t *f);
static int ngx_http_crm_list(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base);
static int ngx_http_crm_value(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base);
static int ngx_http_crm_default(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base, yaml_mark_t *mark);
static int ngx_http_crm_scalar(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len,
    int plain, char *field);
static int ngx_http_crm_string(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len,
    int plain, ngx_http_crm_str_t *s);
static int ngx_http_crm_syntax(ngx_http_crm_kind_e kind,
    const unsigned char *v, size_t len);
static int ngx_http_crm_template(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len);
static int ngx_http_crm_zone(const unsigned char *v, size_t len);
static int ngx_http_crm_hours(const unsigned char *v, size_t len,
    ngx_http_crm_hours_t *h);
static int ngx_http_crm_date(const unsigned char *v, size_t len,
    uint32_t *date);
static const unsigned char *ngx_http_crm_digits(const unsigned char *p,
    const unsigned char *last, int64_t *v);
static int ngx_http_crm_null(const unsigned char *v, size_t len, int plain);
static int ngx_http_crm_bad(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len,
    int plain);
static int ngx_http_crm_bad_event(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k);
static void ngx_http_crm_expect(const ngx_http_crm_key_t *k, char *buf,
    size_t size);
static void ngx_http_crm_got(const unsigned char *v, size_t len, int plain,
    char *buf, size_t size);
static void ngx_http_crm_names(const char *const *names, const char *open,
    const char *close, char *buf, size_t size);
static void ngx_http_crm_duration_text(int64_t ms, char *buf, size_t size);
static void ngx_http_crm_size_text(int64_t n, char *buf, size_t size);
static int ngx_http_crm_fail(ngx_http_crm_yaml_ctx_t *ctx, yaml_mark_t *mark,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static size_t ngx_http_crm_push(ngx_http_crm_yaml_ctx_t *ctx, const char *fmt,
    const char *name, size_t n);
static const char *ngx_http_crm_path(ngx_http_crm_yaml_ctx_t *ctx);
static const char *ngx_http_crm_where(ngx_http_crm_yaml_ctx_t *ctx, char *buf,
    size_t size);
static int ngx_http_crm_frame_mark(ngx_http_crm_frame_t *f,
    const char *name, yaml_mark_t *mark);
static void *ngx_http_crm_alloc(ngx_http_crm_yaml_ctx_t *ctx, size_t size);
static void ngx_http_crm_arena_free(ngx_http_crm_chunk_t *c);

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
    "gift", "ticket", NULL
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
                           "we will answer by {due}. {faq}{ask_phone}"),
      .arg = ngx_http_crm_ack_placeholders },
    { ngx_http_crm_str_key("faq_url", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_acknowledge_t, faq_url, 0, 4096, "") },
    { ngx_http_crm_str_key("ask_phone", NGX_HTTP_CRM_S_TEXT,
                           ngx_http_crm_acknowledge_t, ask_phone, 0, 4096,
                           "Leave a phone number and we will call you "
                           "back.") },
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
                                NGX_HTTP_CRM_MIN, 365 * NGX_HTTP_CRM_DAY,
                                "4h") },
    { ngx_http_crm_duration_key("limit", ngx_http_crm_sla_t, limit,
                                NGX_HTTP_CRM_MIN, 365 * NGX_HTTP_CRM_DAY,
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


static const ngx_http_crm_key_t  ngx_http_crm_policy_root = {
    .name = "", .type = NGX_HTTP_CRM_T_MAP, .arg = ngx_http_crm_policy_keys
};


ngx_http_crm_policy_t *
ngx_http_crm_policy_parse(const char *file, const unsigned char *data,
    size_t len, char *err, size_t errlen)
{
    ngx_http_crm_yaml_ctx_t      ctx;
    ngx_http_crm_policy_t  *policy;

    memset(&ctx, 0, sizeof(ngx_http_crm_yaml_ctx_t));

    ctx.file = file ? file : "policy";
    ctx.data = data ? data : (const unsigned char *) "";
    ctx.len = data ? len : 0;
    ctx.err = err;
    ctx.errlen = errlen;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (!yaml_parser_initialize(&ctx.parser)) {
        (void) ngx_http_crm_fail(&ctx, &ctx.mark, "out of memory");
        return NULL;
    }

    yaml_parser_set_input_string(&ctx.parser, ctx.data, ctx.len);

    policy = ngx_http_crm_document(&ctx);

    if (ctx.have_event) {
        yaml_event_delete(&ctx.event);
    }

    yaml_parser_delete(&ctx.parser);

    if (policy == NULL) {
        ngx_http_crm_arena_free(ctx.arena);
        return NULL;
    }

    policy->arena = ctx.arena;

    return policy;
}


void
ngx_http_crm_policy_free(ngx_http_crm_policy_t *policy)
{
    if (policy != NULL) {
        /* the policy lives in its own arena: read the head first */
        ngx_http_crm_arena_free(policy->arena);
    }
}


/*
 * The stream must hold exactly one document whose root is a mapping.
 * Returns the policy, or NULL after ngx_http_crm_fail().
 */

static ngx_http_crm_policy_t *
ngx_http_crm_document(ngx_http_crm_yaml_ctx_t *ctx)
{
    char                    got[NGX_HTTP_CRM_GOTLEN];
    yaml_event_t           *ev;
    ngx_http_crm_frame_t    f;
    ngx_http_crm_policy_t  *policy;

    ev = &ctx->event;

    if (ngx_http_crm_next(ctx) != 0) {      /* STREAM-START */
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {
        return NULL;
    }

    if (ev->type == YAML_STREAM_END_EVENT) {
        goto empty;
    }

    if (ngx_http_crm_next(ctx) != 0) {      /* the root node */
        return NULL;
    }

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        goto empty;
    }

    if (ev->type != YAML_MAPPING_START_EVENT) {
        if (ev->type == YAML_SCALAR_EVENT) {
            ngx_http_crm_got(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE,
                             got, sizeof(got));
        } else {
            snprintf(got, sizeof(got), "a list");
        }

        (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "the policy is %s; expected a mapping of "
                                 "sections such as \"version\" and "
                                 "\"database\"", got);
        return NULL;
    }

    policy = ngx_http_crm_alloc(ctx, sizeof(ngx_http_crm_policy_t));
    if (policy == NULL) {
        return NULL;
    }

    if (ngx_http_crm_map(ctx, &ngx_http_crm_policy_root, (char *) policy, &f)
        != 0)
    {
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {      /* DOCUMENT-END */
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {
        return NULL;
    }

    if (ev->type != YAML_STREAM_END_EVENT) {
        (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "a second YAML document; expected exactly "
                                 "one policy document");
        return NULL;
    }

    return policy;

empty:

    (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                             "the policy is empty; expected a mapping with "
                             "at least \"version\" and \"database\"");
    return NULL;
}


/*
 * Replaces the current event with the next one.  Aliases, anchors and tags
 * are refused here, once for every node.  Returns 0, or -1 after an error.
 */

static int
ngx_http_crm_next(ngx_http_crm_yaml_ctx_t *ctx)
{
    char           got[NGX_HTTP_CRM_GOTLEN];
    yaml_char_t   *anchor, *tag;
    yaml_event_t  *ev;

    ev = &ctx->event;

    if (ctx->have_event) {
        yaml_event_delete(ev);
        ctx->have_event = 0;
    }

    if (!yaml_parser_parse(&ctx->parser, ev)) {
        return ngx_http_crm_syntax_error(ctx);
    }

    ctx->have_event = 1;

    switch (ev->type) {

    case YAML_ALIAS_EVENT:
        anchor = ev->data.alias.anchor;
        ngx_http_crm_got(anchor, anchor ? strlen((char *) anchor) : 0, 1,
                         got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "alias *%s: aliases are not supported; "
                                 "expected the value written out", got);

    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;

    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;

    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;

    default:
        return 0;
    }

    if (anchor != NULL) {
        ngx_http_crm_got(anchor, strlen((char *) anchor), 1, got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "anchor &%s: anchors and aliases are not "
                                 "supported; expected plain values", got);
    }

    if (tag != NULL) {
        ngx_http_crm_got(tag, strlen((char *) tag), 1, got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "tag %s: tags are not supported; "
                                 "expected an untagged value", got);
    }

    return 0;
}


static int
ngx_http_crm_syntax_error(ngx_http_crm_yaml_ctx_t *ctx)
{
    size_t          i, end;
    yaml_mark_t     mark;
    const char     *problem;
    yaml_parser_t  *parser;

    parser = &ctx->parser;
    problem = parser->problem ? parser->problem : "unknown problem";

    switch (parser->error) {

    case YAML_MEMORY_ERROR:
        return ngx_http_crm_fail(ctx, &parser->mark, "out of memory");

    case YAML_READER_ERROR:

        /* the reader knows a byte offset only: count lines up to it */

        memset(&mark, 0, sizeof(yaml_mark_t));
        end = parser->problem_offset < ctx->len ? parser->problem_offset
                                                : ctx->len;

        for (i = 0; i < end; i++) {
            if (ctx->data[i] == '\n') {
                mark.line++;
                mark.column = 0;

            } else if ((ctx->data[i] & 0xc0) != 0x80) {
                mark.column++;
            }
        }

        return ngx_http_crm_fail(ctx, &mark, "YAML syntax error: %s",
                                 problem);

    default:
        return ngx_http_crm_fail(ctx, &parser->problem_mark,
                                 "YAML syntax error: %s", problem);
    }
}


/*
 * Parses a mapping (the current event is its start, or a null scalar that
 * stands for an empty mapping) against the table k->arg into obj, then
 * sets the defaults of the keys it did not name.
 */

static int
ngx_http_crm_map(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *obj, ngx_http_crm_frame_t *f)
{
    char                       where[NGX_HTTP_CRM_PATHLEN + 16];
    char                       names[NGX_HTTP_CRM_PATHLEN * 2];
    char                       got[NGX_HTTP_CRM_GOTLEN];
    size_t                     i, n, plen;
    yaml_event_t              *ev;
    const char                *list[NGX_HTTP_CRM_MAXKEYS + 1];
    const ngx_http_crm_key_t  *keys;

    ev = &ctx->event;
    keys = k->arg;

    memset(f, 0, sizeof(ngx_http_crm_frame_t));
    f->keys = keys;
    f->start = ev->start_mark;

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        goto defaults;
    }

    if (ev->type != YAML_MAPPING_START_EVENT) {
        return ngx_http_crm_bad_event(ctx, k);
    }

    for ( ;; ) {
        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        if (ev->type == YAML_MAPPING_END_EVENT) {
            break;
        }

        if (ev->type != YAML_SCALAR_EVENT) {
            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "a %s as a key %s; expected a key name",
                                     ev->type == YAML_MAPPING_START_EVENT
                                     ? "mapping" : "list",
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        n = ev->data.scalar.length;

        for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++) {
            if (strlen(keys[i].name) == n
                && memcmp(keys[i].name, ev->data.scalar.value, n) == 0)
            {
                break;
            }
        }

        ngx_http_crm_got(ev->data.scalar.value, n, 1, got, sizeof(got));

        if (keys[i].name == NULL || i == NGX_HTTP_CRM_MAXKEYS) {
            for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++)
            {
                list[i] = keys[i].name;
            }

            list[i] = NULL;
            ngx_http_crm_names(list, "", "", names, sizeof(names));

            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "unknown key \"%s\" %s; expected one "
                                     "of: %s", got,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)),
                                     names);
        }

        if (f->seen & (1u << i)) {
            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "duplicate key \"%s\" %s; expected each "
                                     "key once", got,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        f->seen |= 1u << i;

        plen = ngx_http_crm_push(ctx, ".%s", keys[i].name, 0);

        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        f->marks[i] = ev->start_mark;

        if (ngx_http_crm_value(ctx, &keys[i], obj) != 0) {
            return -1;
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
    }

defaults:

    for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++) {
        if (f->seen & (1u << i)) {
            continue;
        }

        if (keys[i].flags & NGX_HTTP_CRM_REQUIRED) {
            return ngx_http_crm_fail(ctx, &f->start,
                                     "missing required key \"%s\" %s",
                                     keys[i].name,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        if (ngx_http_crm_default(ctx, &keys[i], obj, &f->start) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Parses a list (or a null scalar: an empty list) into an array grown in
 * the arena; base is the struct holding the pointer and the count.
 */

static int
ngx_http_crm_list(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base)
{
    char                      *elts, *item, *p;
    size_t                     i, n, cap, plen, *count;
    yaml_event_t              *ev;
    ngx_http_crm_frame_t       f, *fp;
    const ngx_http_crm_key_t  *ik;

    ev = &ctx->event;
    ik = k->arg;
    count = (size_t *) (base + k->noffset);

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        return 0;
    }

    if (ev->type != YAML_SEQUENCE_START_EVENT) {
        return ngx_http_crm_bad_event(ctx, k);
    }

    elts = NULL;
    cap = 0;

    for (i = 0; /* void */; i++) {
        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        if (ev->type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }

        n = *count;

        if (n == cap) {
            cap = cap ? cap * 2 : 4;

            p = ngx_http_crm_alloc(ctx, cap * k->size);
            if (p == NULL) {
                return -1;
            }

            if (n) {
                memcpy(p, elts, n * k->size);
            }

            elts = p;
            memcpy(base + k->offset, &p, sizeof(void *));
        }

        item = elts + n * k->size;

        plen = ngx_http_crm_push(ctx, "[%zu]", NULL, i);

        if (ik->type == NGX_HTTP_CRM_T_MAP) {
            if (ngx_http_crm_map(ctx, ik, item, &f) != 0) {
                return -1;
            }

            fp = &f;

        } else {
            if (ngx_http_crm_value(ctx, ik, item) != 0) {
                return -1;
            }

            fp = NULL;
        }

        *count = n + 1;

        if (k->check != NULL && k->check(ctx, base, fp, n) != 0) {
            return -1;
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
    }
}


/* the current event is the value of key k whose struct is base */

static int
ngx_http_crm_value(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base)
{
    yaml_event_t          *ev;
    ngx_http_crm_frame_t   f;

    ev = &ctx->event;

    switch (k->type) {

    case NGX_HTTP_CRM_T_MAP:
        if (ngx_http_crm_map(ctx, k, base + k->offset, &f) != 0) {
            return -1;
        }

        if (k->check != NULL) {
            return k->check(ctx, base + k->offset, &f, 0);
        }

        return 0;

    case NGX_HTTP_CRM_T_LIST:
        return ngx_http_crm_list(ctx, k, base);

    default:
        if (ev->type != YAML_SCALAR_EVENT) {
            return ngx_http_crm_bad_event(ctx, k);
        }

        ctx->mark = ev->start_mark;

        return ngx_http_crm_scalar(ctx, k, ev->data.scalar.value,
                                   ev->data.scalar.length,
                                   ev->data.scalar.style
                                   == YAML_PLAIN_SCALAR_STYLE,
                                   base + k->offset);
    }
}


/* sets the default of key k, through the same converters as the YAML */

static int
ngx_http_crm_default(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base, yaml_mark_t *mark)
{
    size_t                     plen;
    const ngx_http_crm_key_t  *sub;

    if (k->init != NULL) {
        return k->init(ctx, base);
    }

    switch (k->type) {

    case NGX_HTTP_CRM_T_MAP:
        plen = ngx_http_crm_push(ctx, ".%s", k->name, 0);

        for (sub = k->arg; sub->name != NULL; sub++) {
            if (ngx_http_crm_default(ctx, sub, base + k->offset, mark) != 0) {
                return -1;
            }
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
        return 0;

    case NGX_HTTP_CRM_T_LIST:
        return 0;                           /* empty: the arena is zeroed */

    default:
        if (k->def == NULL) {
            return 0;
        }

        ctx->mark = *mark;
        return ngx_http_crm_scalar(ctx, k, (const unsigned char *) k->def,
                                   strlen(k->def), 1, base + k->offset);
    }
}


/*
 * Converts one scalar for key k into field.  plain: the scalar was written
 * without quotes; numbers and booleans must be.
 */

static int
ngx_http_crm_scalar(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    const unsigned char *v, size_t len, int plain, char *field)
{
    size_t                 i;
    int64_t                n, frac, unit;
    uint64_t               num, den;
    const char            *name;
    const unsigned char   *p, *last;

    p = v;
    last = v + len;

    switch (k->type) {

    case NGX_HTTP_CRM_T_INT:
    case NGX_HTTP_CRM_T_PERCENT:
        if (!plain) {
            break;
        }

        if (p < last && *p == '-') {
            p++;
            p = ngx_http_crm_digits(p, last, &n);
            n = -n;

        } else {
            p = ngx_http_crm_digits(p, last, &n);
        }

        if (p == NULL || p != last || n < k->min || n > k->max) {
            break;
        }

        *(unsigned *) field = (unsigned) n;
        return 0;

    case NGX_HTTP_CRM_T_MONEY:
        if (!plain) {
            break;
        }

        p = ngx_http_crm_digits(p, last, &n);
        if (p == NULL || n > k->max / 100) {
            break;
        }

        frac = 0;

        if (p < last && *p == '.') {
            p++;

            if (p == last || last - p > 2 || *p < '0' || *p > '9') {
                break;
            }

            frac = (*p++ - '0') * 10;

            if (p < last) {
                if (*p < '0' || *p > '9') {
                    break;
                }

                frac += *p++ - '0';
            }
        }

        n = n * 100 + frac;

        if (p != last || n < k->min || n > k->max) {
            break;
        }

        *(int64_t *) field = n;
        return 0;

    case NGX_HTTP_CRM_T_PROB:
        if (!plain) {
            break;
        }

        p = ngx_http_crm_digits(p, last, &n);
        if (p == NULL || n > 1) {
            break;
        }

        num = 0;
        den = 1;

        if (p < last && *p == '.') {
            if (++p == last) {
                break;
            }

            for ( /* void */ ; p < last && *p >= '0' && *p <= '9'; p++) {
                if (den < 1000000000000000000ULL) {
                    num = num * 10 + (*p - '0');
                    den *= 10;

                } else if (*p != '0' && n == 1) {
                    num = 1;                /* beyond 1, however little */
                }
            }
        }

        if (p != last || (n == 1 && num != 0)) {
            break;
        }

        *(double *) field = (double) n + (double) num / (double) den;
        return 0;

    case NGX_HTTP_CRM_T_BOOL:
        if (!plain) {
            break;
        }

        if ((len == 4 && strncasecmp((char *) v, "true", 4) == 0)
            || (len == 3 && strncasecmp((char *) v, "yes", 3) == 0))
        {
            *(unsigned *) field = 1;
            return 0;
        }

        if ((len == 5 && strncasecmp((char *) v, "false", 5) == 0)
            || (len == 2 && strncasecmp((char *) v, "no", 2) == 0))
        {
            *(unsigned *) field = 0;
            return 0;
        }

        break;

    case NGX_HTTP_CRM_T_DURATION:
        p = ngx_http_crm_digits(p, last, &n);
        if (p == NULL) {
            break;
        }

        switch (last - p) {
        case 1:
            unit = (*p == 's') ? NGX_HTTP_CRM_SEC
                 : (*p == 'm') ? NGX_HTTP_CRM_MIN
                 : (*p == 'h') ? NGX_HTTP_CRM_HOUR
                 : (*p == 'd') ? NGX_HTTP_CRM_DAY : 0;
            break;
        case 2:
            unit = (p[0] == 'm' && p[1] == 's') ? 1 : 0;
            break;
        default:
            unit = 0;
        }

        if (unit == 0 || n > k->max / unit || n * unit < k->min) {
            break;
        }

        *(int64_t *) field = n * unit;
        return 0;

    case NGX_HTTP_CRM_T_SIZE:
        p = ngx_http_crm_digits(p, last, &n);
        if (p == NULL) {
            break;
        }

        unit = 1;

        if (last - p == 1) {
            unit = (*p == 'k' || *p == 'K') ? 1024
                 : (*p == 'm' || *p == 'M') ? 1024 * 1024
                 : (*p == 'g' || *p == 'G') ? 1024 * 1024 * 1024 : 0;

        } else if (p != last) {
            unit = 0;
        }

        if (unit == 0 || n > k->max / unit || n * unit < k->min) {
            break;
        }

        *(size_t *) field = (size_t) (n * unit);
        return 0;

    case NGX_HTTP_CRM_T_STR:
        return ngx_http_crm_string(ctx, k, v, len, plain,
                                   (ngx_http_crm_str_t *) field);

    case NGX_HTTP_CRM_T_WHEN:
        for (i = 0; (name = ngx_http_crm_when_names[i]) != NULL; i++) {
            if (strlen(name) == len && memcmp(name, v, len) == 0) {
                *(ngx_http_crm_when_e *) field = (ngx_http_crm_when_e) i;
                return 0;
            }
        }

        break;

    case NGX_HTTP_CRM_T_HOURS:
        if (ngx_http_crm_hours(v, len, (ngx_http_crm_hours_t *) field) == 0) {
            return 0;
        }

        break;

    case NGX_HTTP_CRM_T_DATE:
        if (ngx_http_crm_date(v, len, (uint32_t *) field) == 0) {
            return 0;
        }

        break;

    default:
        break;
    }

    return ngx_http_crm_bad(ctx, k, v, len, plain);
}


/* a string: length, the syntax of its kind, then a copy in the arena */

static int
ngx_http_crm_string(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    const unsigned char *v, size_t len, int plain, ngx_http_crm_str_t *s)
{
    unsigned char  *data;

    if (ngx_http_crm_null(v, len, plain)) {
        len = 0;
    }

    if (memchr(v, '\0', len) != NULL
        || (int64_t) len < k->min || (int64_t) len > k->max)
    {
        return ngx_http_crm_bad(ctx, k, v, len, plain);
    }

    if (ngx_http_crm_syntax(k->kind, v, len) != 0) {
        return ngx_http_crm_bad(ctx, k, v, len, plain);
    }

    if (k->kind == NGX_HTTP_CRM_S_TEMPLATE
        && ngx_http_crm_template(ctx, k, v, len) != 0)
    {
        return -1;
    }

    data = ngx_http_crm_alloc(ctx, len + 1);
    if (data == NULL) {
        return -1;
    }

    if (len) {
        memcpy(data, v, len);
    }

    data[len] = '\0';

    s->len = len;
    s->data = data;

    return 0;
}


/* the characters a string of this kind may hold; 0 if it is well-formed */

static int
ngx_http_crm_syntax(ngx_http_crm_kind_e kind, const unsigned char *v,
    size_t len)
{
    size_t         i;
    unsigned char  c;

    if (kind == NGX_HTTP_CRM_S_ZONE) {
        return ngx_http_crm_zone(v, len);
    }

    for (i = 0; i < len; i++) {
        c = v[i];

        switch (kind) {

        case NGX_HTTP_CRM_S_TOKEN:

            /* RFC 9110 tchar: cookie and header names */

            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9')
                || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL))
            {
                continue;
            }

            return -1;

        case NGX_HTTP_CRM_S_POINTER:
            if ((i == 0 && c != '/')
                || (c == '~' && (i + 1 == len
                                 || (v[i + 1] != '0' && v[i + 1] != '1'))))
            {
                return -1;
            }

            continue;

        case NGX_HTTP_CRM_S_PREFIX:
            if (c > 0x20 && c < 0x7f) {
                continue;
            }

            return -1;

        case NGX_HTTP_CRM_S_ID:
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '_' || c == '-')
            {
                continue;
            }

            return -1;

        default:
            return 0;                       /* any text */
        }
    }

    return 0;
}


/*
 * "{word}" is a placeholder and must be one of k->arg; any other "{" is
 * literal text, so CSS such as "a{color:red}" in a banner stays as it is.
 */

static int
ngx_http_crm_template(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    const unsigned char *v, size_t len)
{
    char                  names[NGX_HTTP_CRM_PATHLEN];
    char                  got[NGX_HTTP_CRM_GOTLEN];
    size_t                n;
    const char           *const *name;
    const unsigned char  *p, *q, *last;

    last = v + len;

    for (p = v; p < last; p++) {
        if (*p != '{') {
            continue;
        }

        for (q = p + 1; q < last; q++) {
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')
                  || (*q >= '0' && *q <= '9') || *q == '_'))
            {
                break;
            }
        }

        if (q == p + 1 || q == last || *q != '}') {
            continue;
        }

        n = q - p - 1;

        for (name = k->arg; *name != NULL; name++) {
            if (strlen(*name) == n && memcmp(*name, p + 1, n) == 0) {
                break;
            }
        }

        if (*name == NULL) {
            ngx_http_crm_got(p + 1, n, 1, got, sizeof(got));
            ngx_http_crm_names(k->arg, "{", "}", names, sizeof(names));

            return ngx_http_crm_fail(ctx, &ctx->mark,
                                     "\"%s\" has the unknown placeholder "
                                     "{%s}; expected only %s",
                                     ngx_http_crm_path(ctx), got, names);
        }

        p = q;
    }

    return 0;
}


/*
 * A time zone must name a TZif file of the zoneinfo database ($CRM_ZONEINFO
 * or /usr/share/zoneinfo) and stay inside it: no leading "/", and no path
 * component that starts with "." (so no ".." either).  "UTC" needs no file.
 */

static int
ngx_http_crm_zone(const unsigned char *v, size_t len)
{
    char         path[4096], magic[4];
    size_t       i, n;
    FILE        *f;
    const char  *dir;

    if (len == 3 && memcmp(v, "UTC", 3) == 0) {
        return 0;
    }

    if (len == 0 || v[0] == '/') {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z')
            || (v[i] >= '0' && v[i] <= '9')
            || v[i] == '/' || v[i] == '_' || v[i] == '+' || v[i] == '-')
        {
            continue;
        }

        if (v[i] == '.' && i > 0 && v[i - 1] != '/') {
            continue;
        }

        return -1;
    }

    dir = getenv("CRM_ZONEINFO");
    if (dir == NULL || dir[0] == '\0') {
        dir = NGX_HTTP_CRM_ZONEINFO;
    }

    if ((size_t) snprintf(path, sizeof(path), "%s/%.*s", dir, (int) len,
                          (const char *) v)
        >= sizeof(path))
    {
        return -1;
    }

    f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }

    n = fread(magic, 1, sizeof(magic), f);
    fclose(f);

    return (n == sizeof(magic) && memcmp(magic, "TZif", 4) == 0) ? 0 : -1;
}


/* "HH:MM-HH:MM" within 00:00..24:00 with start < end, or "closed" */

static int
ngx_http_crm_hours(const unsigned char *v, size_t len, ngx_http_crm_hours_t *h)
{
    size_t    i;
    unsigned  t[2], hh, mm;

    if (len == 6 && memcmp(v, "closed", 6) == 0) {
        h->start = 0;
        h->end = 0;
        return 0;
    }

    if (len != 11 || v[2] != ':' || v[5] != '-' || v[8] != ':') {
        return -1;
    }

    for (i = 0; i < 2; i++, v += 6) {
        if (v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9'
            || v[3] < '0' || v[3] > '9' || v[4] < '0' || v[4] > '9')
        {
            return -1;
        }

        hh = (v[0] - '0') * 10 + (v[1] - '0');
        mm = (v[3] - '0') * 10 + (v[4] - '0');

        if (hh > 24 || mm > 59 || (hh == 24 && mm != 0)) {
            return -1;
        }

        t[i] = hh * 60 + mm;
    }

    if (t[0] >= t[1]) {
        return -1;
    }

    h->start = t[0];
    h->end = t[1];

    return 0;
}


/* "YYYY-MM-DD", a real day of years 1970..9999, as YYYYMMDD */

static int
ngx_http_crm_date(const unsigned char *v, size_t len, uint32_t *date)
{
    size_t    i;
    unsigned  y, m, d, days;

    static const unsigned  mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (len != 10 || v[4] != '-' || v[7] != '-') {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9')) {
            return -1;
        }
    }

    y = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10
        + (v[3] - '0');
    m = (v[5] - '0') * 10 + (v[6] - '0');
    d = (v[8] - '0') * 10 + (v[9] - '0');

    if (y < 1970 || m < 1 || m > 12 || d < 1) {
        return -1;
    }

    days = mdays[m - 1];

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        days = 29;
    }

    if (d > days) {
        return -1;
    }

    *date = y * 10000 + m * 100 + d;

    return 0;
}


/*
 * One or more decimal digits from p; returns the position after them, or
 * NULL when there is none.  Values too large for any range saturate.
 */

static const unsigned char *
ngx_http_crm_digits(const unsigned char *p, const unsigned char *last,
    int64_t *v)
{
    int64_t               n;
    const unsigned char  *start;

    n = 0;

    for (start = p; p < last && *p >= '0' && *p <= '9'; p++) {
        if (n < INT64_MAX / 100) {
            n = n * 10 + (*p - '0');

        } else {
            n = INT64_MAX / 100;
        }
    }

    *v = n;

    return p == start ? NULL : p;
}


/* a plain empty, "~" or "null" scalar: YAML's null */

static int
ngx_http_crm_null(const unsigned char *v, size_t len, int plain)
{
    return plain
           && (len == 0
               || (len == 1 && v[0] == '~')
               || (len == 4 && (memcmp(v, "null", 4) == 0
                                || memcmp(v, "Null", 4) == 0
                                || memcmp(v, "NULL", 4) == 0)));
}


/* "PATH" is GOT; EXPECTED */

static int
ngx_http_crm_bad(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    const unsigned char *v, size_t len, int plain)
{
    char         got[NGX_HTTP_CRM_GOTLEN];
    char         expect[NGX_HTTP_CRM_PATHLEN * 2];
    const char  *quoted;

    ngx_http_crm_got(v, len, plain, got, sizeof(got));
    ngx_http_crm_expect(k, expect, sizeof(expect));

    quoted = "";

    if (!plain) {
        switch (k->type) {
        case NGX_HTTP_CRM_T_INT:
        case NGX_HTTP_CRM_T_PERCENT:
        case NGX_HTTP_CRM_T_MONEY:
        case NGX_HTTP_CRM_T_PROB:
        case NGX_HTTP_CRM_T_BOOL:
            quoted = ", without quotes";
            break;
        default:
            break;
        }
    }

    return ngx_http_crm_fail(ctx, &ctx->mark, "\"%s\" is %s; %s%s",
                             ngx_http_crm_path(ctx), got, expect,
                             quoted);
}


/* the current event is a mapping or a list where k wants something else */

static int
ngx_http_crm_bad_event(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k)
{
    char           got[NGX_HTTP_CRM_GOTLEN];
    char           expect[NGX_HTTP_CRM_PATHLEN * 2];
    yaml_event_t  *ev;

    ev = &ctx->event;

    switch (ev->type) {

    case YAML_SCALAR_EVENT:
        ngx_http_crm_got(ev->data.scalar.value, ev->data.scalar.length,
                         ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE,
                         got, sizeof(got));
        break;

    case YAML_MAPPING_START_EVENT:
        snprintf(got, sizeof(got), "a mapping");
        break;

    default:
        snprintf(got, sizeof(got), "a list");
        break;
    }

    ngx_http_crm_expect(k, expect, sizeof(expect));

    return ngx_http_crm_fail(ctx, &ev->start_mark, "\"%s\" is %s; %s",
                             ngx_http_crm_path(ctx), got, expect);
}


static void
ngx_http_crm_expect(const ngx_http_crm_key_t *k, char *buf, size_t size)
{
    char         a[32], b[32], names[NGX_HTTP_CRM_PATHLEN];
    const char  *dir;

    if (k->expect != NULL) {
        snprintf(buf, size, "%s", k->expect);
        return;
    }

    switch (k->type) {

    case NGX_HTTP_CRM_T_MAP:
        snprintf(buf, size, "expected a mapping");
        break;

    case NGX_HTTP_CRM_T_LIST:
        snprintf(buf, size, "expected a list");
        break;

    case NGX_HTTP_CRM_T_INT:
        snprintf(buf, size, "expected an integer from %lld to %lld",
                 (long long) k->min, (long long) k->max);
        break;

    case NGX_HTTP_CRM_T_PERCENT:
        snprintf(buf, size, "expected a percent from 0 to 100");
        break;

    case NGX_HTTP_CRM_T_MONEY:
        snprintf(buf, size, "expected an amount of money from 0 to %lld "
                 "with at most two decimals, such as 9.99",
                 (long long) (k->max / 100));
        break;

    case NGX_HTTP_CRM_T_PROB:
        snprintf(buf, size, "expected a probability from 0 to 1, "
                 "such as 0.05");
        break;

    case NGX_HTTP_CRM_T_BOOL:
        snprintf(buf, size, "expected true or false");
        break;

    case NGX_HTTP_CRM_T_DURATION:
        ngx_http_crm_duration_text(k->min, a, sizeof(a));
        ngx_http_crm_duration_text(k->max, b, sizeof(b));
        snprintf(buf, size, "expected a duration from %s to %s: an integer "
                 "and a unit ms, s, m, h or d, such as 250ms or 15m", a, b);
        break;

    case NGX_HTTP_CRM_T_SIZE:
        ngx_http_crm_size_text(k->min, a, sizeof(a));
        ngx_http_crm_size_text(k->max, b, sizeof(b));
        snprintf(buf, size, "expected a size from %s to %s: an integer with "
                 "an optional k, m or g, such as 64k or 16m", a, b);
        break;

    case NGX_HTTP_CRM_T_WHEN:
        ngx_http_crm_names(k->arg, "", "", names, sizeof(names));
        snprintf(buf, size, "expected one of: %s", names);
        break;

    case NGX_HTTP_CRM_T_HOURS:
        snprintf(buf, size, "expected HH:MM-HH:MM (from 00:00 to 24:00, "
                 "the start before the end) or closed");
        break;

    case NGX_HTTP_CRM_T_DATE:
        snprintf(buf, size, "expected a date YYYY-MM-DD");
        break;

    case NGX_HTTP_CRM_T_STR:

        switch (k->kind) {

        case NGX_HTTP_CRM_S_TOKEN:
            snprintf(buf, size, "expected a name of %s%lld to %lld "
                     "characters from letters, digits and "
                     "!#$%%&'*+-.^_`|~", k->min ? "" : "(or empty for off) ",
                     (long long) (k->min ? k->min : 1), (long long) k->max);
            break;

        case NGX_HTTP_CRM_S_POINTER:
            snprintf(buf, size, "expected a JSON pointer: empty, or starting "
                     "with / and with ~ only in ~0 or ~1");
            break;

        case NGX_HTTP_CRM_S_PREFIX:
            snprintf(buf, size, "expected at most %lld printable ASCII "
                     "characters without spaces", (long long) k->max);
            break;

        case NGX_HTTP_CRM_S_ID:
            snprintf(buf, size, "expected %lld to %lld characters from "
                     "A-Z, a-z, 0-9, _ and -", (long long) k->min,
                     (long long) k->max);
            break;

        case NGX_HTTP_CRM_S_ZONE:
            dir = getenv("CRM_ZONEINFO");
            snprintf(buf, size, "expected a time zone name from %s, such as "
                     "UTC or Europe/Berlin",
                     dir && dir[0] ? dir : NGX_HTTP_CRM_ZONEINFO);
            break;

        default:
            if (k->min > 0) {
                snprintf(buf, size, "expected a non-empty string of at most "
                         "%lld bytes, without NUL", (long long) k->max);

            } else {
                snprintf(buf, size, "expected a string of at most %lld "
                         "bytes, without NUL", (long long) k->max);
            }

            break;
        }

        break;
    }
}


/* a scalar as shown in a message: cut, control characters replaced */

static void
ngx_http_crm_got(const unsigned char *v, size_t len, int plain, char *buf,
    size_t size)
{
    size_t   i, n, max;
    char    *p;

    p = buf;

    if (len == 0 && plain) {
        snprintf(buf, size, "empty");
        return;
    }

    max = size - 6;                         /* quotes, "...", NUL */

    if (!plain) {
        *p++ = '"';
    }

    n = len < max ? len : max;

    /* do not cut a UTF-8 sequence */

    if (n < len) {
        while (n > 0 && (v[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    for (i = 0; i < n; i++) {
        *p++ = (v[i] < 0x20 || v[i] == 0x7f) ? '?' : (char) v[i];
    }

    if (n < len) {
        *p++ = '.';
        *p++ = '.';
        *p++ = '.';
    }

    if (!plain) {
        *p++ = '"';
    }

    *p = '\0';
}


/* "a, b, c" or "{a}, {b}, {c}" */

static void
ngx_http_crm_names(const char *const *names, const char *open,
    const char *close, char *buf, size_t size)
{
    size_t  n;
    int     rc;

    buf[0] = '\0';

    for (n = 0; *names != NULL && n < size; names++) {
        rc = snprintf(buf + n, size - n, "%s%s%s%s", n ? ", " : "", open,
                      *names, close);
        if (rc < 0) {
            break;
        }

        n += rc;
    }
}


static void
ngx_http_crm_duration_text(int64_t ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "0s");

    } else if (ms % NGX_HTTP_CRM_DAY == 0) {
        snprintf(buf, size, "%lldd", (long long) (ms / NGX_HTTP_CRM_DAY));

    } else if (ms % NGX_HTTP_CRM_HOUR == 0) {
        snprintf(buf, size, "%lldh", (long long) (ms / NGX_HTTP_CRM_HOUR));

    } else if (ms % NGX_HTTP_CRM_MIN == 0) {
        snprintf(buf, size, "%lldm", (long long) (ms / NGX_HTTP_CRM_MIN));

    } else if (ms % NGX_HTTP_CRM_SEC == 0) {
        snprintf(buf, size, "%llds", (long long) (ms / NGX_HTTP_CRM_SEC));

    } else {
        snprintf(buf, size, "%lldms", (long long) ms);
    }
}


static void
ngx_http_crm_size_text(int64_t n, char *buf, size_t size)
{
    if (n != 0 && n % (1024 * 1024 * 1024) == 0) {
        snprintf(buf, size, "%lldg", (long long) (n / (1024 * 1024 * 1024)));

    } else if (n != 0 && n % (1024 * 1024) == 0) {
        snprintf(buf, size, "%lldm", (long long) (n / (1024 * 1024)));

    } else if (n != 0 && n % 1024 == 0) {
        snprintf(buf, size, "%lldk", (long long) (n / 1024));

    } else {
        snprintf(buf, size, "%lld", (long long) n);
    }
}


/*
 * Writes the first error only: "FILE:LINE:COLUMN: message", one line.
 * Always returns -1, for "return ngx_http_crm_fail(...)".
 */

static int
ngx_http_crm_fail(ngx_http_crm_yaml_ctx_t *ctx, yaml_mark_t *mark,
    const char *fmt, ...)
{
    int      n;
    char    *p;
    va_list  args;

    if (ctx->failed) {
        return -1;
    }

    ctx->failed = 1;

    if (ctx->err == NULL || ctx->errlen == 0) {
        return -1;
    }

    n = snprintf(ctx->err, ctx->errlen, "%s:%zu:%zu: ", ctx->file,
                 mark->line + 1, mark->column + 1);

    if (n >= 0 && (size_t) n < ctx->errlen) {
        va_start(args, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - n, fmt, args);
        va_end(args);
    }

    for (p = ctx->err; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }

    return -1;
}


/*
 * Appends ".name" or "[n]" to the path shown in messages; returns the
 * old length for the caller to restore.  A path too long is cut.
 */

static size_t
ngx_http_crm_push(ngx_http_crm_yaml_ctx_t *ctx, const char *fmt,
    const char *name, size_t n)
{
    int     rc;
    size_t  plen, room;

    plen = ctx->plen;
    room = sizeof(ctx->path) - plen;

    if (name != NULL) {
        rc = snprintf(ctx->path + plen, room, fmt, name);

    } else {
        rc = snprintf(ctx->path + plen, room, fmt, n);
    }

    if (rc > 0) {
        ctx->plen += ((size_t) rc < room) ? (size_t) rc : room - 1;
    }

    return plen;
}


/* "feedback.sla.target", "banners[0].id": the key being parsed */

static const char *
ngx_http_crm_path(ngx_http_crm_yaml_ctx_t *ctx)
{
    return ctx->path + (ctx->path[0] == '.');
}


/* "in \"database\"" or "in the policy", for messages about a mapping */

static const char *
ngx_http_crm_where(ngx_http_crm_yaml_ctx_t *ctx, char *buf, size_t size)
{
    if (ctx->plen == 0) {
        return "in the policy";
    }

    snprintf(buf, size, "in \"%s\"", ngx_http_crm_path(ctx));

    return buf;
}


static int
ngx_http_crm_frame_mark(ngx_http_crm_frame_t *f, const char *name,
    yaml_mark_t *mark)
{
    size_t  i;

    for (i = 0; f->keys[i].name != NULL; i++) {
        if (strcmp(f->keys[i].name, name) == 0) {
            if (f->seen & (1u << i)) {
                *mark = f->marks[i];
                return 1;
            }

            *mark = f->start;
            return 0;
        }
    }

    *mark = f->start;
    return 0;
}


/* the arena: zeroed memory, aligned for any field, freed all at once */

static void *
ngx_http_crm_alloc(ngx_http_crm_yaml_ctx_t *ctx, size_t size)
{
    char                  *p;
    size_t                 hdr, chunk;
    ngx_http_crm_chunk_t  *c;

    hdr = (sizeof(ngx_http_crm_chunk_t) + NGX_HTTP_CRM_ALIGN - 1)
          & ~((size_t) NGX_HTTP_CRM_ALIGN - 1);

    if (size > SIZE_MAX / 2) {
        (void) ngx_http_crm_fail(ctx, &ctx->parser.mark, "out of memory");
        return NULL;
    }

    size = (size + NGX_HTTP_CRM_ALIGN - 1) & ~((size_t) NGX_HTTP_CRM_ALIGN - 1);

    c = ctx->arena;

    if (c == NULL || c->size - c->used < size) {
        chunk = size > NGX_HTTP_CRM_CHUNK ? size : NGX_HTTP_CRM_CHUNK;

        c = malloc(hdr + chunk);
        if (c == NULL) {
            (void) ngx_http_crm_fail(ctx, &ctx->parser.mark, "out of memory");
            return NULL;
        }

        c->size = chunk;
        c->used = 0;

        if (ctx->arena != NULL && chunk > NGX_HTTP_CRM_CHUNK) {

            /* a large block: keep the room left in the current chunk */

            c->next = ctx->arena->next;
            ctx->arena->next = c;

        } else {
            c->next = ctx->arena;
            ctx->arena = c;
        }
    }

    p = (char *) c + hdr + c->used;
    c->used += size;

    memset(p, 0, size);

    return p;
}


static void
ngx_http_crm_arena_free(ngx_http_crm_chunk_t *c)
{
    ngx_http_crm_chunk_t  *next;

    for ( /* void */ ; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
}


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
