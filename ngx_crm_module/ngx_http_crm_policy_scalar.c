
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The scalar converters: one YAML scalar, as bytes and whether it was
 * written plain (without quotes), into the C field its key describes.
 * Numbers and booleans must be plain; durations, sizes, hours and dates
 * have a fixed syntax; strings are checked by kind (token, JSON pointer,
 * card prefix, id, time zone, template) and copied into the arena.
 *
 * Each converter either stores a value and returns 0, or returns -1 after
 * ngx_http_crm_bad() has said what was expected, at ctx->mark.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_crm_policy_int.h"
#include "ngx_http_crm_template.h"


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


/*
 * Converts one scalar for key k into field.  plain: the scalar was written
 * without quotes; numbers and booleans must be.
 */

int
ngx_http_crm_scalar(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    const unsigned char *v, size_t len, int plain, char *field)
{
    size_t                 i;
    int64_t                n, frac, unit;
    uint64_t               num, den;
    const char            *name;
    const char            *const *names;
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
        names = k->arg;

        for (i = 0; (name = names[i]) != NULL; i++) {
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

        case NGX_HTTP_CRM_S_STRFTIME:
            if (c != '%') {
                continue;
            }

            if (i + 1 < len && v[i + 1] != '\0'
                && strchr(NGX_HTTP_CRM_STRFTIME, v[i + 1]) != NULL)
            {
                i++;
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
    const unsigned char  *p, *last;

    last = v + len;

    for (p = v; p < last; p++) {
        if (*p != '{' || (n = ngx_http_crm_template_word(p, last)) == 0) {
            continue;
        }

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

        p += n + 1;
    }

    return 0;
}


/* where zones are read from: $CRM_ZONEINFO, else NGX_HTTP_CRM_ZONEINFO */

const char *
ngx_http_crm_zoneinfo(void)
{
    const char  *dir;

    dir = getenv("CRM_ZONEINFO");

    return (dir != NULL && dir[0] != '\0') ? dir : NGX_HTTP_CRM_ZONEINFO;
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

    dir = ngx_http_crm_zoneinfo();

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

int
ngx_http_crm_null(const unsigned char *v, size_t len, int plain)
{
    return plain
           && (len == 0
               || (len == 1 && v[0] == '~')
               || (len == 4 && (memcmp(v, "null", 4) == 0
                                || memcmp(v, "Null", 4) == 0
                                || memcmp(v, "NULL", 4) == 0)));
}
