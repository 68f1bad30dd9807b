
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * JSON text: what ngx_http_crm_json_check() accepts and what
 * ngx_http_crm_json_unescape() makes of a string in it.  The pointer
 * lookups over checked text live in ngx_http_crm_json_walk.c.
 *
 * - json_check() decides whether a body is one JSON value (RFC 8259)
 *   that PostgreSQL's jsonb input, in a UTF8 database, also accepts:
 *   well-formed UTF-8, no \u0000, no unpaired surrogate escape, numbers
 *   within numeric's range.  It is one pass with a bitmap stack of the
 *   open containers: linear time, fixed stack space whatever the body.
 *   It is not the walk with zero pointers: the walk skips what no pointer
 *   names by counting brackets, which is what makes json_get_many() fast
 *   and is only exact on checked text, and it recurses as deep as its
 *   pointers.  A walk that validated would either slow every lookup or
 *   give json_check() a recursion as deep as the body, and lose the
 *   single state machine that names the exact reason of a refusal.
 * - The UTF-8 checker and the hex digits are shared with the form
 *   converter (ngx_http_crm_form.c).
 *
 * Nothing here allocates: callers provide every output buffer, sized as
 * each function says.  Reasons are static strings.
 */


#include <string.h>

#include "ngx_http_crm_json.h"


#define ngx_http_crm_is_digit(c)  ((c) >= '0' && (c) <= '9')


/*
 * PostgreSQL's numeric (src/backend/utils/adt/numeric.c): the display
 * scale is 14 bits, the weight an int16 count of base-10000 digits, and
 * the exponent is refused from INT_MAX / 2 on, even for zero.
 */
#define NGX_HTTP_CRM_NUMERIC_DSCALE_MAX  16383
#define NGX_HTTP_CRM_NUMERIC_WEIGHT_MAX  131071        /* 4 * 32768 - 1 */
#define NGX_HTTP_CRM_NUMERIC_EXP_MAX     1073741823    /* INT_MAX / 2 */


static size_t ngx_http_crm_utf8_encode(unsigned long cp, unsigned char *out);
static long ngx_http_crm_hex4(const unsigned char *p);

static int ngx_http_crm_json_string(const unsigned char **pp,
    const unsigned char *end, const char **reason);
static int ngx_http_crm_json_u(const unsigned char *p,
    const unsigned char *end, unsigned long *cp, const char **reason);
static int ngx_http_crm_json_number(const unsigned char **pp,
    const unsigned char *end, const char **reason);
static int ngx_http_crm_json_literal(const unsigned char **pp,
    const unsigned char *end, const char *word, size_t len,
    const char **reason);
static int ngx_http_crm_json_scalar_end(const unsigned char *p,
    const unsigned char *end);


/*
 * Returns 0 when p holds one JSON value, surrounded by whitespace at
 * most, that jsonb accepts; otherwise -1 with *reason set.  A container
 * opened at depth max_depth (top level is 0) is refused: max_depth 64
 * allows 64 nested arrays or objects.
 */

int
ngx_http_crm_json_check(const unsigned char *p, size_t len,
    unsigned max_depth, const char **reason)
{
    int                   rc;
    unsigned              depth, object;
    unsigned char         stack[NGX_HTTP_CRM_JSON_DEPTH_MAX / 8];
    const unsigned char  *end;
    enum {
        sw_value = 0,
        sw_key,
        sw_after
    } state;

    if (max_depth > NGX_HTTP_CRM_JSON_DEPTH_MAX) {
        max_depth = NGX_HTTP_CRM_JSON_DEPTH_MAX;
    }

    if (len == 0) {
        *reason = "empty body";
        return -1;
    }

    end = p + len;
    p = ngx_http_crm_json_ws(p, end);

    if (p == end) {
        *reason = "empty body";
        return -1;
    }

    depth = 0;
    object = 0;
    state = sw_value;

    for ( ;; ) {

        switch (state) {

        case sw_value:

            if (p == end) {
                goto truncated;
            }

            if (*p == '{' || *p == '[') {

                if (depth == max_depth) {
                    *reason = (max_depth == NGX_HTTP_CRM_JSON_DEPTH)
                              ? "nesting deeper than 64"
                              : "nesting too deep";
                    return -1;
                }

                object = (*p == '{');

                if (object) {
                    stack[depth / 8] |= (unsigned char) (1u << depth % 8);

                } else {
                    stack[depth / 8] &= (unsigned char) ~(1u << depth % 8);
                }

                depth++;

                p = ngx_http_crm_json_ws(p + 1, end);

                if (p == end) {
                    goto truncated;
                }

                if (*p == '}' || *p == ']') {
                    state = sw_after;

                } else {
                    state = object ? sw_key : sw_value;
                }

                break;
            }

            switch (*p) {

            case '"':
                rc = ngx_http_crm_json_string(&p, end, reason);
                break;

            case 't':
                rc = ngx_http_crm_json_literal(&p, end, "true", 4, reason);
                break;

            case 'f':
                rc = ngx_http_crm_json_literal(&p, end, "false", 5, reason);
                break;

            case 'n':
                rc = ngx_http_crm_json_literal(&p, end, "null", 4, reason);
                break;

            default:
                if (*p != '-' && !ngx_http_crm_is_digit(*p)) {
                    goto invalid;
                }

                rc = ngx_http_crm_json_number(&p, end, reason);
                break;
            }

            if (rc != 0) {
                return -1;
            }

            state = sw_after;
            break;

        case sw_key:

            if (p == end) {
                goto truncated;
            }

            if (*p != '"') {
                goto invalid;
            }

            if (ngx_http_crm_json_string(&p, end, reason) != 0) {
                return -1;
            }

            p = ngx_http_crm_json_ws(p, end);

            if (p == end) {
                goto truncated;
            }

            if (*p != ':') {
                goto invalid;
            }

            p = ngx_http_crm_json_ws(p + 1, end);
            state = sw_value;
            break;

        case sw_after:

            p = ngx_http_crm_json_ws(p, end);

            if (depth == 0) {
                if (p != end) {
                    *reason = "trailing bytes after JSON";
                    return -1;
                }

                return 0;
            }

            if (p == end) {
                goto truncated;
            }

            if (*p == ',') {
                p = ngx_http_crm_json_ws(p + 1, end);
                state = object ? sw_key : sw_value;
                break;
            }

            if (*p != (object ? '}' : ']')) {
                goto invalid;
            }

            p++;
            depth--;
            object = depth ? (stack[(depth - 1) / 8] >> (depth - 1) % 8) & 1
                           : 0;
            break;
        }
    }

truncated:

    *reason = "truncated JSON";
    return -1;

invalid:

    *reason = "invalid JSON";
    return -1;
}


/*
 * *pp is at the opening quote; on success it is moved past the closing
 * one and 0 is returned.
 */

static int
ngx_http_crm_json_string(const unsigned char **pp, const unsigned char *end,
    const char **reason)
{
    unsigned              c;
    unsigned long         cp, lo;
    const unsigned char  *p;
    ngx_http_crm_utf8_t   u;

    u.need = 0;

    for (p = *pp + 1; p < end; /* void */ ) {

        /* the common case first: a run of printable ASCII */

        if (u.need == 0) {
            while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"'
                   && *p != '\\')
            {
                p++;
            }

            if (p == end) {
                break;
            }
        }

        c = *p;

        if (u.need || c >= 0x80) {
            if (ngx_http_crm_utf8_next(&u, c) != 0) {
                *reason = "invalid UTF-8";
                return -1;
            }

            p++;
            continue;
        }

        if (c == '"') {
            *pp = p + 1;
            return 0;
        }

        if (c < 0x20) {
            *reason = "control character in string";
            return -1;
        }

        if (c != '\\') {
            p++;
            continue;
        }

        if (end - p < 2) {
            break;
        }

        switch (p[1]) {

        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;

        case 'u':
            break;

        default:
            *reason = "invalid escape";
            return -1;
        }

        if (ngx_http_crm_json_u(p, end, &cp, reason) != 0) {
            return -1;
        }

        p += 6;

        if (cp == 0) {
            *reason = "\\u0000 is not allowed";
            return -1;
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            goto unpaired;
        }

        if (cp < 0xd800 || cp > 0xdbff) {
            continue;
        }

        /* a high surrogate: the low one must follow at once */

        if (p == end || (p[0] == '\\' && end - p == 1)) {
            break;
        }

        if (p[0] != '\\' || p[1] != 'u') {
            goto unpaired;
        }

        if (ngx_http_crm_json_u(p, end, &lo, reason) != 0) {
            return -1;
        }

        if (lo < 0xdc00 || lo > 0xdfff) {
            goto unpaired;
        }

        p += 6;
    }

    *reason = "truncated JSON";
    return -1;

unpaired:

    *reason = "unpaired surrogate escape";
    return -1;
}


/* p is at "\u": reads the four hex digits that must follow */

static int
ngx_http_crm_json_u(const unsigned char *p, const unsigned char *end,
    unsigned long *cp, const char **reason)
{
    int       h;
    size_t    i;

    *cp = 0;

    for (i = 2; i < 6; i++) {

        if (p + i == end) {
            *reason = "truncated JSON";
            return -1;
        }

        h = ngx_http_crm_hex(p[i]);

        if (h < 0) {
            *reason = "invalid escape";
            return -1;
        }

        *cp = *cp << 4 | (unsigned long) h;
    }

    return 0;
}


/*
 * *pp is at '-' or a digit.  Besides the grammar, the value must fit
 * numeric as PostgreSQL parses it: the exponent below INT_MAX / 2 in
 * magnitude, at most 16383 digits after the point once the exponent is
 * applied, and, unless the value is zero, its leading digit below
 * 10^131072.
 */

static int
ngx_http_crm_json_number(const unsigned char **pp, const unsigned char *end,
    const char **reason)
{
    int                   neg, zero;
    size_t                nint, nfrac, lead;
    long long             exp, dscale, weight;
    const unsigned char  *p;

    p = *pp;

    if (*p == '-') {
        p++;

        if (p == end) {
            goto truncated;
        }
    }

    nint = 0;

    if (*p == '0') {
        p++;

    } else if (ngx_http_crm_is_digit(*p)) {
        while (p < end && ngx_http_crm_is_digit(*p)) {
            nint++;
            p++;
        }

    } else {
        goto invalid;
    }

    /* nint is the count of integer digits, 0 when the integer part is 0 */

    zero = (nint == 0);
    nfrac = 0;
    lead = 0;

    if (p < end && *p == '.') {
        p++;

        if (p == end) {
            goto truncated;
        }

        if (!ngx_http_crm_is_digit(*p)) {
            goto invalid;
        }

        while (p < end && ngx_http_crm_is_digit(*p)) {
            if (zero && *p != '0') {
                zero = 0;
                lead = nfrac;
            }

            nfrac++;
            p++;
        }
    }

    exp = 0;

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        neg = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            neg = (*p == '-');
            p++;
        }

        if (p == end) {
            goto truncated;
        }

        if (!ngx_http_crm_is_digit(*p)) {
            goto invalid;
        }

        while (p < end && ngx_http_crm_is_digit(*p)) {
            if (exp < NGX_HTTP_CRM_NUMERIC_EXP_MAX) {
                exp = exp * 10 + (*p - '0');
            }

            p++;
        }

        if (neg) {
            exp = -exp;
        }
    }

    if (ngx_http_crm_json_scalar_end(p, end) != 0) {
        goto invalid;
    }

    if (exp >= NGX_HTTP_CRM_NUMERIC_EXP_MAX
        || exp <= -NGX_HTTP_CRM_NUMERIC_EXP_MAX)
    {
        goto range;
    }

    dscale = (long long) nfrac - exp;

    if (dscale > NGX_HTTP_CRM_NUMERIC_DSCALE_MAX) {
        goto range;
    }

    if (!zero) {
        weight = (nint ? (long long) nint - 1 : -(long long) lead - 1) + exp;

        if (weight > NGX_HTTP_CRM_NUMERIC_WEIGHT_MAX) {
            goto range;
        }
    }

    *pp = p;
    return 0;

truncated:

    *reason = "truncated JSON";
    return -1;

invalid:

    *reason = "invalid JSON";
    return -1;

range:

    *reason = "number out of range";
    return -1;
}


static int
ngx_http_crm_json_literal(const unsigned char **pp, const unsigned char *end,
    const char *word, size_t len, const char **reason)
{
    size_t                i;
    const unsigned char  *p;

    p = *pp;

    for (i = 0; i < len; i++) {

        if (p + i == end) {
            *reason = "truncated JSON";
            return -1;
        }

        if (p[i] != (unsigned char) word[i]) {
            *reason = "invalid JSON";
            return -1;
        }
    }

    if (ngx_http_crm_json_scalar_end(p + len, end) != 0) {
        *reason = "invalid JSON";
        return -1;
    }

    *pp = p + len;
    return 0;
}


/* -1 when a number or literal runs on into letters, digits or signs */

static int
ngx_http_crm_json_scalar_end(const unsigned char *p, const unsigned char *end)
{
    unsigned  c;

    if (p == end) {
        return 0;
    }

    c = *p | 0x20;

    if ((c >= 'a' && c <= 'z') || ngx_http_crm_is_digit(*p)
        || *p == '.' || *p == '+' || *p == '-')
    {
        return -1;
    }

    return 0;
}


/*
 * Decodes a JSON string's escapes into UTF-8 and returns the length.
 *
 * out needs at most len bytes: each step below reads k bytes and writes
 * at most k: a plain byte 1 for 1, "\n" and the like 1 for 2, "\uXXXX"
 * at most 3 for 6, a surrogate pair "\uD83D\uDE00" 4 for 12, and a
 * backslash that starts no escape is copied, 1 for 1.
 *
 * Meant for strings of a checked document, where every escape is well
 * formed; elsewhere a \u0000 or a lone surrogate becomes U+FFFD and a
 * broken escape is copied as it is, so the output never holds a NUL
 * that an escape produced.
 */

size_t
ngx_http_crm_json_unescape(const unsigned char *s, size_t len,
    unsigned char *out)
{
    unsigned char        *o;
    const unsigned char  *end;

    if (len == 0) {
        return 0;
    }

    o = out;
    end = s + len;

    while (s < end) {

        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }

        o += ngx_http_crm_json_escape(&s, end, o);
    }

    return o - out;
}


/* *pp is at a backslash: writes what the escape stands for, returns its size */

size_t
ngx_http_crm_json_escape(const unsigned char **pp, const unsigned char *end,
    unsigned char *out)
{
    long                  cp, lo;
    const unsigned char  *p;

    p = *pp;

    if (end - p >= 2) {

        switch (p[1]) {

        case '"':
        case '\\':
        case '/':
            out[0] = p[1];
            *pp = p + 2;
            return 1;

        case 'b':
            out[0] = '\b';
            *pp = p + 2;
            return 1;

        case 'f':
            out[0] = '\f';
            *pp = p + 2;
            return 1;

        case 'n':
            out[0] = '\n';
            *pp = p + 2;
            return 1;

        case 'r':
            out[0] = '\r';
            *pp = p + 2;
            return 1;

        case 't':
            out[0] = '\t';
            *pp = p + 2;
            return 1;

        case 'u':
            if (end - p < 6) {
                break;
            }

            cp = ngx_http_crm_hex4(p + 2);

            if (cp < 0) {
                break;
            }

            p += 6;

            if (cp >= 0xd800 && cp <= 0xdbff
                && end - p >= 6 && p[0] == '\\' && p[1] == 'u')
            {
                lo = ngx_http_crm_hex4(p + 2);

                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }

            if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
                cp = 0xfffd;
            }

            *pp = p;
            return ngx_http_crm_utf8_encode((unsigned long) cp, out);
        }
    }

    out[0] = '\\';
    *pp = p + 1;
    return 1;
}


/*
 * Feeds one byte to the UTF-8 checker: 0 when it may come here, -1 when
 * not (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF; the same bytes PostgreSQL refuses).  The sequence is complete
 * when u->need is 0.
 */

int
ngx_http_crm_utf8_next(ngx_http_crm_utf8_t *u, unsigned c)
{
    if (u->need) {
        if (c < u->lo || c > u->hi) {
            return -1;
        }

        u->need--;
        u->lo = 0x80;
        u->hi = 0xbf;

        return 0;
    }

    if (c < 0x80) {
        return 0;
    }

    u->lo = 0x80;
    u->hi = 0xbf;

    if (c < 0xc2) {
        return -1;
    }

    if (c < 0xe0) {
        u->need = 1;
        return 0;
    }

    if (c < 0xf0) {
        u->need = 2;

        if (c == 0xe0) {
            u->lo = 0xa0;

        } else if (c == 0xed) {
            u->hi = 0x9f;
        }

        return 0;
    }

    if (c < 0xf5) {
        u->need = 3;

        if (c == 0xf0) {
            u->lo = 0x90;

        } else if (c == 0xf4) {
            u->hi = 0x8f;
        }

        return 0;
    }

    return -1;
}


static size_t
ngx_http_crm_utf8_encode(unsigned long cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | cp >> 6);
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | cp >> 12);
        out[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (unsigned char) (0xf0 | cp >> 18);
    out[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


int
ngx_http_crm_hex(unsigned c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* the value of four hex digits, -1 when one is not */

static long
ngx_http_crm_hex4(const unsigned char *p)
{
    int     h;
    long    cp;
    size_t  i;

    cp = 0;

    for (i = 0; i < 4; i++) {
        h = ngx_http_crm_hex(p[i]);

        if (h < 0) {
            return -1;
        }

        cp = cp << 4 | h;
    }

    return cp;
}
