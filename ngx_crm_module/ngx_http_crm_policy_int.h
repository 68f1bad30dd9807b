
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_POLICY_INT_H_INCLUDED_
#define _NGX_HTTP_CRM_POLICY_INT_H_INCLUDED_


/*
 * The policy loader's own declarations, shared by its files and by nothing
 * else: callers include ngx_http_crm_policy.h.  Plain C on libyaml, no
 * nginx headers.
 *
 *   ngx_http_crm_policy.c         the public entry, the document, the arena
 *   ngx_http_crm_policy_yaml.c    the walk over libyaml's events
 *   ngx_http_crm_policy_schema.c  the key tables and the section checks
 *   ngx_http_crm_policy_scalar.c  the scalar converters
 *   ngx_http_crm_policy_error.c   the first error: its text and position
 */


#include <yaml.h>

#include <stddef.h>
#include <stdint.h>

#include "ngx_http_crm_policy.h"


#define NGX_HTTP_CRM_MAXKEYS      32       /* in one table: seen is 32 bits */
#define NGX_HTTP_CRM_PATHLEN      256
#define NGX_HTTP_CRM_GOTLEN       48

#define NGX_HTTP_CRM_REQUIRED     0x01
#define NGX_HTTP_CRM_BIRTHDAY     0x02

#define NGX_HTTP_CRM_SEC          1000LL
#define NGX_HTTP_CRM_MIN          (60 * NGX_HTTP_CRM_SEC)
#define NGX_HTTP_CRM_HOUR         (60 * NGX_HTTP_CRM_MIN)
#define NGX_HTTP_CRM_DAY          (24 * NGX_HTTP_CRM_HOUR)



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
    NGX_HTTP_CRM_S_TEMPLATE,
    NGX_HTTP_CRM_S_STRFTIME
} ngx_http_crm_kind_e;


typedef struct ngx_http_crm_chunk_s  ngx_http_crm_chunk_t;
typedef struct ngx_http_crm_key_s    ngx_http_crm_key_t;

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


/* ngx_http_crm_policy.c */

void *ngx_http_crm_alloc(ngx_http_crm_yaml_ctx_t *ctx, size_t size);


/* ngx_http_crm_policy_yaml.c */

int ngx_http_crm_next(ngx_http_crm_yaml_ctx_t *ctx);
int ngx_http_crm_map(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *obj, ngx_http_crm_frame_t *f);
int ngx_http_crm_frame_mark(ngx_http_crm_frame_t *f, const char *name,
    yaml_mark_t *mark);


/* ngx_http_crm_policy_schema.c */

extern const ngx_http_crm_key_t  ngx_http_crm_policy_root;


/* ngx_http_crm_policy_scalar.c */

int ngx_http_crm_scalar(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len,
    int plain, char *field);
int ngx_http_crm_null(const unsigned char *v, size_t len, int plain);


/* ngx_http_crm_policy_error.c */

int ngx_http_crm_fail(ngx_http_crm_yaml_ctx_t *ctx, yaml_mark_t *mark,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int ngx_http_crm_bad(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, const unsigned char *v, size_t len,
    int plain);
int ngx_http_crm_bad_event(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k);
void ngx_http_crm_got(const unsigned char *v, size_t len, int plain,
    char *buf, size_t size);
void ngx_http_crm_names(const char *const *names, const char *open,
    const char *close, char *buf, size_t size);
void ngx_http_crm_duration_text(int64_t ms, char *buf, size_t size);
size_t ngx_http_crm_push(ngx_http_crm_yaml_ctx_t *ctx, const char *fmt,
    const char *name, size_t n);
const char *ngx_http_crm_path(ngx_http_crm_yaml_ctx_t *ctx);
const char *ngx_http_crm_where(ngx_http_crm_yaml_ctx_t *ctx, char *buf,
    size_t size);


#endif /* _NGX_HTTP_CRM_POLICY_INT_H_INCLUDED_ */
