
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The loader's one error: "FILE:LINE:COLUMN: message" on one line, written
 * into the caller's buffer by the first ngx_http_crm_fail() and never
 * overwritten, so the walk may simply return -1 up to the public entry.
 *
 * A message names the key by its path ("feedback.sla.target",
 * "banners[0].id"), shows the value as written (cut, control characters
 * replaced) and says what was expected, in the policy's own units.
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_policy_int.h"


static void ngx_http_crm_expect(const ngx_http_crm_key_t *k, char *buf,
    size_t size);
static void ngx_http_crm_size_text(int64_t n, char *buf, size_t size);


/* "PATH" is GOT; EXPECTED */

int
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

int
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

        case NGX_HTTP_CRM_S_STRFTIME:
            snprintf(buf, size, "expected a strftime pattern of at most "
                     "%lld bytes with only %%Y %%m %%d %%e %%H %%I %%M %%S "
                     "%%p %%y %%a %%A %%b %%B %%z and %%%%",
                     (long long) k->max);
            break;

        case NGX_HTTP_CRM_S_ZONE:
            snprintf(buf, size, "expected a time zone name from %s, such as "
                     "UTC or Europe/Berlin", ngx_http_crm_zoneinfo());
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

void
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

void
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


void
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

int
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

size_t
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

const char *
ngx_http_crm_path(ngx_http_crm_yaml_ctx_t *ctx)
{
    return ctx->path + (ctx->path[0] == '.');
}


/* "in \"database\"" or "in the policy", for messages about a mapping */

const char *
ngx_http_crm_where(ngx_http_crm_yaml_ctx_t *ctx, char *buf, size_t size)
{
    if (ctx->plen == 0) {
        return "in the policy";
    }

    snprintf(buf, size, "in \"%s\"", ngx_http_crm_path(ctx));

    return buf;
}
