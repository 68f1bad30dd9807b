
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Request bodies: the JSON and form parsing that the capture handlers
 * need, kept free of nginx so that it is unit-tested and fuzzed directly.
 *
 * - ngx_http_crm_json_check() decides whether a body is one JSON value
 *   (RFC 8259) that PostgreSQL's jsonb input, in a UTF8 database, also
 *   accepts: well-formed UTF-8, no \u0000, no unpaired surrogate escape,
 *   numbers within numeric's range.  It is one pass with a bitmap stack
 *   of the open containers: linear time, fixed stack space whatever the
 *   body holds.
 * - ngx_http_crm_json_get() follows an RFC 6901 pointer in a checked
 *   document without building a tree: it skips the values it does not
 *   need.  Of duplicate keys it returns the last, the one jsonb keeps.
 *   ngx_http_crm_json_get_many() gives the same for several pointers in
 *   one pass.
 * - A form body (application/x-www-form-urlencoded) becomes a JSON object
 *   of strings, keys in order of appearance.  A repeated key is emitted
 *   each time, jsonb keeps the last, and ngx_http_crm_form_get() returns
 *   the last too, so a lookup in the raw form and in the stored payload
 *   agree.  A form key is the pointer's path written with dots:
 *   "/customer/email" is the key "customer.email".
 * - The normalizers give the e-mail and the phone a customer is known by.
 *
 * Nothing here allocates: callers provide every output buffer, sized as
 * each function says.  Reasons are static strings.
 */


#include <string.h>

#include "ngx_http_crm_body.h"


/*
 * PostgreSQL's numeric (src/backend/utils/adt/numeric.c): the display
 * scale is 14 bits, the weight an int16 count of base-10000 digits, and
 * the exponent is refused from INT_MAX / 2 on, even for zero.
 */
#define NGX_HTTP_CRM_NUMERIC_DSCALE_MAX  16383
#define NGX_HTTP_CRM_NUMERIC_WEIGHT_MAX  131071        /* 4 * 32768 - 1 */
#define NGX_HTTP_CRM_NUMERIC_EXP_MAX     1073741823    /* INT_MAX / 2 */

#define ngx_http_crm_is_digit(c)  ((c) >= '0' && (c) <= '9')
#define ngx_http_crm_is_ws(c)                                                 \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


/* what the next byte of a UTF-8 sequence may be, and how many remain */
typedef struct {
    unsigned         need;
    unsigned char    lo;
    unsigned char    hi;
} ngx_http_crm_utf8_t;


/* the state of json_get_many()'s walk */
typedef struct {
    const unsigned char         *end;
    const unsigned char *const  *pointers;
    const size_t                *plens;
    ngx_http_crm_json_value_t   *v;
    unsigned char               *found;
    size_t                       n;
    /* where the segment to match at the current depth starts, at its "/" */
    size_t                       cur[NGX_HTTP_CRM_JSON_GET_MAX];
    unsigned long long           index[NGX_HTTP_CRM_JSON_GET_MAX];
} ngx_http_crm_json_many_t;


static int ngx_http_crm_utf8_next(ngx_http_crm_utf8_t *u, unsigned c);
static size_t ngx_http_crm_utf8_encode(unsigned long cp, unsigned char *out);
static int ngx_http_crm_hex(unsigned c);
static long ngx_http_crm_hex4(const unsigned char *p);

static const unsigned char *ngx_http_crm_json_ws(const unsigned char *p,
    const unsigned char *end);
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

static const unsigned char *ngx_http_crm_json_key(const unsigned char *p,
    const unsigned char *end, const unsigned char **key, size_t *klen);
static const unsigned char *ngx_http_crm_json_after(const unsigned char *q,
    const unsigned char *end, unsigned char closer, int *closed);
static const unsigned char *ngx_http_crm_json_skip(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *ngx_http_crm_json_skip_string(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_crm_json_member(const unsigned char *p,
    const unsigned char *end, const unsigned char *seg, size_t slen);
static const unsigned char *ngx_http_crm_json_element(
    const unsigned char *p, const unsigned char *end,
    const unsigned char *seg, size_t slen);
static int ngx_http_crm_json_index(const unsigned char *seg, size_t slen,
    unsigned long long *index);
static int ngx_http_crm_json_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *seg, size_t slen);
static int ngx_http_crm_json_value(const unsigned char *p,
    const unsigned char *q, ngx_http_crm_json_value_t *v);
static const unsigned char *ngx_http_crm_json_walk(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static const unsigned char *ngx_http_crm_json_walk_object(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static const unsigned char *ngx_http_crm_json_walk_array(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static size_t ngx_http_crm_json_escape(const unsigned char **pp,
    const unsigned char *end, unsigned char *out);

static int ngx_http_crm_pointer_byte(const unsigned char **pp,
    const unsigned char *end, int dots);

static int ngx_http_crm_form_next(const unsigned char **pp,
    const unsigned char *end, const unsigned char **key, size_t *klen,
    const unsigned char **val, size_t *vlen);
static int ngx_http_crm_form_byte(const unsigned char **pp,
    const unsigned char *end);
static int ngx_http_crm_form_decode(const unsigned char *p, size_t len,
    unsigned char *out, int json, size_t *n, const char **reason);
static int ngx_http_crm_form_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *pointer, size_t plen);


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


static const unsigned char *
ngx_http_crm_json_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && ngx_http_crm_is_ws(*p)) {
        p++;
    }

    return p;
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
 * Follows an RFC 6901 pointer in a document that passed json_check().
 * Returns 0 and fills *v when the value exists, -1 when it does not or
 * the pointer is malformed ("~" not followed by 0 or 1, or a non-empty
 * pointer not starting with "/").  An array index is decimal without
 * leading zeros; "-" never exists.  Of duplicate keys the last wins.
 * Any bytes are safe to pass: a broken document gives -1 or a value
 * somewhere inside it, never a read outside.
 */

int
ngx_http_crm_json_get(const unsigned char *json, size_t len,
    const unsigned char *pointer, size_t plen, ngx_http_crm_json_value_t *v)
{
    size_t                i, seg;
    const unsigned char  *p, *q, *end;

    if (len == 0 || ngx_http_crm_json_pointer_valid(pointer, plen) != 0) {
        return -1;
    }

    end = json + len;
    p = ngx_http_crm_json_ws(json, end);

    if (p == end) {
        return -1;
    }

    for (i = 0; i < plen; /* void */ ) {

        seg = ++i;

        while (i < plen && pointer[i] != '/') {
            i++;
        }

        if (*p == '{') {
            p = ngx_http_crm_json_member(p, end, pointer + seg, i - seg);

        } else if (*p == '[') {
            p = ngx_http_crm_json_element(p, end, pointer + seg, i - seg);

        } else {
            return -1;
        }

        if (p == NULL) {
            return -1;
        }
    }

    q = ngx_http_crm_json_skip(p, end);

    if (q == NULL) {
        return -1;
    }

    return ngx_http_crm_json_value(p, q, v);
}


/* fills *v with the value in [p, q), a value skip() delimited */

static int
ngx_http_crm_json_value(const unsigned char *p, const unsigned char *q,
    ngx_http_crm_json_value_t *v)
{
    v->start = p;
    v->len = q - p;

    switch (*p) {

    case '"':
        v->type = NGX_HTTP_CRM_JSON_STRING;
        v->start = p + 1;
        v->len = q - p - 2;
        break;

    case '{':
        v->type = NGX_HTTP_CRM_JSON_OBJECT;
        break;

    case '[':
        v->type = NGX_HTTP_CRM_JSON_ARRAY;
        break;

    case 't':
        v->type = NGX_HTTP_CRM_JSON_TRUE;
        break;

    case 'f':
        v->type = NGX_HTTP_CRM_JSON_FALSE;
        break;

    case 'n':
        v->type = NGX_HTTP_CRM_JSON_NULL;
        break;

    default:
        if (*p != '-' && !ngx_http_crm_is_digit(*p)) {
            return -1;
        }

        v->type = NGX_HTTP_CRM_JSON_NUMBER;
        break;
    }

    return 0;
}


/*
 * Looks up n pointers in one pass over a document that passed
 * json_check(): v[i] and found[i] are what json_get() with pointers[i]
 * gives, found[i] 1 where it returns 0, else 0 and v[i] undefined.
 * Returns the number found.
 *
 * The walk keeps, for each pointer, the segment it matches at the
 * current depth; it descends into a value only for the pointers whose
 * path leads there and skips the others with skip().  A key matching
 * again resets what its earlier value gave, so the last duplicate wins
 * at every level, as in json_get().  A pointer past the first
 * NGX_HTTP_CRM_JSON_GET_MAX, or with more than NGX_HTTP_CRM_JSON_DEPTH
 * segments (which bounds the recursion), is left to json_get(), and so
 * is every pointer when the walk meets bytes that are not JSON.
 */

size_t
ngx_http_crm_json_get_many(const unsigned char *json, size_t len,
    const unsigned char *const *pointers, const size_t *plens, size_t n,
    ngx_http_crm_json_value_t *v, unsigned char *found)
{
    size_t                     i, j, segs, count;
    unsigned                   mask;
    const unsigned char       *p;
    ngx_http_crm_json_many_t   ctx;

    for (i = 0; i < n; i++) {
        found[i] = 0;
    }

    if (len == 0) {
        return 0;
    }

    ctx.end = json + len;
    ctx.pointers = pointers;
    ctx.plens = plens;
    ctx.v = v;
    ctx.found = found;
    ctx.n = n < NGX_HTTP_CRM_JSON_GET_MAX ? n : NGX_HTTP_CRM_JSON_GET_MAX;

    mask = 0;

    for (i = 0; i < ctx.n; i++) {

        if (ngx_http_crm_json_pointer_valid(pointers[i], plens[i]) != 0) {
            continue;
        }

        segs = 0;

        for (j = 0; j < plens[i]; j++) {
            if (pointers[i][j] == '/') {
                segs++;
            }
        }

        if (segs > NGX_HTTP_CRM_JSON_DEPTH) {
            continue;
        }

        ctx.cur[i] = 0;
        mask |= 1u << i;
    }

    if (mask) {
        p = ngx_http_crm_json_ws(json, ctx.end);

        if (p == ctx.end) {
            return 0;
        }

        if (ngx_http_crm_json_walk(&ctx, p, mask) == NULL) {
            mask = 0;
        }
    }

    count = 0;

    for (i = 0; i < n; i++) {

        if (i >= ctx.n || (mask & (1u << i)) == 0) {
            found[i] = ngx_http_crm_json_get(json, len, pointers[i],
                                             plens[i], &v[i])
                       == 0;
        }

        count += found[i];
    }

    return count;
}


/*
 * p < end is at a value where the pointers in mask have matched every
 * segment before ctx->cur[i]: fills those that end here, follows the
 * others, returns the end of the value or NULL when it is not JSON.
 */

static const unsigned char *
ngx_http_crm_json_walk(ngx_http_crm_json_many_t *ctx, const unsigned char *p,
    unsigned mask)
{
    size_t                i;
    unsigned              targets;
    const unsigned char  *q;

    targets = 0;

    for (i = 0; i < ctx->n; i++) {
        if ((mask & (1u << i)) && ctx->cur[i] == ctx->plens[i]) {
            targets |= 1u << i;
        }
    }

    mask &= ~targets;

    if (mask && *p == '{') {
        q = ngx_http_crm_json_walk_object(ctx, p, mask);

    } else if (mask && *p == '[') {
        q = ngx_http_crm_json_walk_array(ctx, p, mask);

    } else {
        /* a pointer into a scalar finds nothing */
        q = ngx_http_crm_json_skip(p, ctx->end);
    }

    if (q == NULL) {
        return NULL;
    }

    for (i = 0; i < ctx->n; i++) {
        if ((targets & (1u << i))
            && ngx_http_crm_json_value(p, q, &ctx->v[i]) == 0)
        {
            ctx->found[i] = 1;
        }
    }

    return q;
}


/* p is at '{', mask is not empty */

static const unsigned char *
ngx_http_crm_json_walk_object(ngx_http_crm_json_many_t *ctx,
    const unsigned char *p, unsigned mask)
{
    int                   closed;
    size_t                i, klen, s[NGX_HTTP_CRM_JSON_GET_MAX];
    size_t                e[NGX_HTTP_CRM_JSON_GET_MAX];
    unsigned              sub;
    const unsigned char  *q, *key, *end, *ptr;

    end = ctx->end;

    /* the segment of each pointer: from after s[i], its "/", to e[i] */

    for (i = 0; i < ctx->n; i++) {

        if ((mask & (1u << i)) == 0) {
            continue;
        }

        ptr = ctx->pointers[i];
        s[i] = ctx->cur[i];

        for (e[i] = s[i] + 1; e[i] < ctx->plens[i]; e[i]++) {
            if (ptr[e[i]] == '/') {
                break;
            }
        }
    }

    p = ngx_http_crm_json_ws(p + 1, end);

    if (p == end) {
        return NULL;
    }

    if (*p == '}') {
        return p + 1;
    }

    for ( ;; ) {

        p = ngx_http_crm_json_key(p, end, &key, &klen);

        if (p == NULL) {
            return NULL;
        }

        sub = 0;

        for (i = 0; i < ctx->n; i++) {

            if ((mask & (1u << i))
                && ngx_http_crm_json_key_eq(key, klen,
                                            ctx->pointers[i] + s[i] + 1,
                                            e[i] - s[i] - 1))
            {
                /* a later duplicate replaces what an earlier one gave */
                ctx->found[i] = 0;
                ctx->cur[i] = e[i];
                sub |= 1u << i;
            }
        }

        if (sub) {
            q = ngx_http_crm_json_walk(ctx, p, sub);

            for (i = 0; i < ctx->n; i++) {
                if (sub & (1u << i)) {
                    ctx->cur[i] = s[i];
                }
            }

        } else {
            q = ngx_http_crm_json_skip(p, end);
        }

        p = ngx_http_crm_json_after(q, end, '}', &closed);

        if (p == NULL || closed) {
            return p;
        }
    }
}


/*
 * p is at '[', mask is not empty.  A pointer matches one element at
 * most, so its ctx->cur[i] moves past the index at once; the object the
 * array is in restores it.
 */

static const unsigned char *
ngx_http_crm_json_walk_array(ngx_http_crm_json_many_t *ctx,
    const unsigned char *p, unsigned mask)
{
    int                   closed;
    size_t                i, e;
    unsigned              sub;
    unsigned long long    k;
    const unsigned char  *q, *end, *ptr;

    end = ctx->end;

    for (i = 0; i < ctx->n; i++) {

        if ((mask & (1u << i)) == 0) {
            continue;
        }

        ptr = ctx->pointers[i];

        for (e = ctx->cur[i] + 1; e < ctx->plens[i]; e++) {
            if (ptr[e] == '/') {
                break;
            }
        }

        if (ngx_http_crm_json_index(ptr + ctx->cur[i] + 1,
                                    e - ctx->cur[i] - 1, &ctx->index[i])
            != 0)
        {
            mask &= ~(1u << i);
            continue;
        }

        ctx->cur[i] = e;
    }

    p = ngx_http_crm_json_ws(p + 1, end);

    if (p == end) {
        return NULL;
    }

    if (*p == ']') {
        return p + 1;
    }

    for (k = 0; /* void */ ; k++) {

        sub = 0;

        for (i = 0; i < ctx->n; i++) {
            if ((mask & (1u << i)) && ctx->index[i] == k) {
                ctx->found[i] = 0;
                sub |= 1u << i;
            }
        }

        if (sub) {
            mask &= ~sub;
            q = ngx_http_crm_json_walk(ctx, p, sub);

        } else {
            q = ngx_http_crm_json_skip(p, end);
        }

        p = ngx_http_crm_json_after(q, end, ']', &closed);

        if (p == NULL || closed) {
            return p;
        }
    }
}


/*
 * At a member's opening quote: returns where its value starts, with the
 * key, still escaped, in *key and *klen; NULL on bytes that are not JSON.
 */

static const unsigned char *
ngx_http_crm_json_key(const unsigned char *p, const unsigned char *end,
    const unsigned char **key, size_t *klen)
{
    const unsigned char  *q;

    if (*p != '"') {
        return NULL;
    }

    q = ngx_http_crm_json_skip_string(p, end);

    if (q == NULL) {
        return NULL;
    }

    *key = p + 1;
    *klen = q - 1 - *key;

    p = ngx_http_crm_json_ws(q, end);

    if (p == end || *p != ':') {
        return NULL;
    }

    p = ngx_http_crm_json_ws(p + 1, end);

    return (p == end) ? NULL : p;
}


/*
 * After a member or an element, at q (NULL passes through): returns where
 * the next one starts, or, with *closed set, just past the closer; NULL
 * on bytes that are not JSON.
 */

static const unsigned char *
ngx_http_crm_json_after(const unsigned char *q, const unsigned char *end,
    unsigned char closer, int *closed)
{
    *closed = 0;

    if (q == NULL) {
        return NULL;
    }

    q = ngx_http_crm_json_ws(q, end);

    if (q == end) {
        return NULL;
    }

    if (*q == closer) {
        *closed = 1;
        return q + 1;
    }

    if (*q != ',') {
        return NULL;
    }

    q = ngx_http_crm_json_ws(q + 1, end);

    return (q == end) ? NULL : q;
}


/*
 * Returns the end of the value at p, NULL when it has none.  Containers
 * are skipped by counting brackets outside strings, which is exact for a
 * checked document and stays inside [p, end) for any bytes.
 */

static const unsigned char *
ngx_http_crm_json_skip(const unsigned char *p, const unsigned char *end)
{
    size_t                depth;
    const unsigned char  *start;

    if (p >= end) {
        return NULL;
    }

    if (*p == '"') {
        return ngx_http_crm_json_skip_string(p, end);
    }

    if (*p == '{' || *p == '[') {
        depth = 0;

        while (p < end) {

            switch (*p) {

            case '"':
                p = ngx_http_crm_json_skip_string(p, end);

                if (p == NULL) {
                    return NULL;
                }

                continue;

            case '{':
            case '[':
                depth++;
                break;

            case '}':
            case ']':
                if (--depth == 0) {
                    return p + 1;
                }

                break;
            }

            p++;
        }

        return NULL;
    }

    start = p;

    while (p < end && !ngx_http_crm_is_ws(*p)
           && *p != ',' && *p != ']' && *p != '}' && *p != ':')
    {
        p++;
    }

    return p == start ? NULL : p;
}


static const unsigned char *
ngx_http_crm_json_skip_string(const unsigned char *p,
    const unsigned char *end)
{
    for (p++; p < end; p++) {

        if (*p == '\\') {
            if (++p == end) {
                return NULL;
            }

            continue;
        }

        if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}


/*
 * p is at '{': returns where the value of the last member named by the
 * pointer segment starts, NULL when there is none.
 */

static const unsigned char *
ngx_http_crm_json_member(const unsigned char *p, const unsigned char *end,
    const unsigned char *seg, size_t slen)
{
    int                   closed;
    size_t                klen;
    const unsigned char  *key, *found;

    found = NULL;

    p = ngx_http_crm_json_ws(p + 1, end);

    if (p == end || *p == '}') {
        return NULL;
    }

    for ( ;; ) {

        p = ngx_http_crm_json_key(p, end, &key, &klen);

        if (p == NULL) {
            return NULL;
        }

        if (ngx_http_crm_json_key_eq(key, klen, seg, slen)) {
            found = p;
        }

        p = ngx_http_crm_json_after(ngx_http_crm_json_skip(p, end), end, '}',
                                    &closed);

        if (p == NULL) {
            return NULL;
        }

        if (closed) {
            return found;
        }
    }
}


/*
 * p is at '[': returns where the element the pointer segment indexes
 * starts, NULL when the segment is not an index or is past the end.
 */

static const unsigned char *
ngx_http_crm_json_element(const unsigned char *p, const unsigned char *end,
    const unsigned char *seg, size_t slen)
{
    unsigned long long  index, n;

    if (ngx_http_crm_json_index(seg, slen, &index) != 0) {
        return NULL;
    }

    p = ngx_http_crm_json_ws(p + 1, end);

    if (p == end || *p == ']') {
        return NULL;
    }

    for (n = 0; n < index; n++) {

        p = ngx_http_crm_json_skip(p, end);

        if (p == NULL) {
            return NULL;
        }

        p = ngx_http_crm_json_ws(p, end);

        if (p == end || *p != ',') {
            return NULL;
        }

        p = ngx_http_crm_json_ws(p + 1, end);

        if (p == end) {
            return NULL;
        }
    }

    return p;
}


/* an array index: decimal without leading zeros, 19 digits at most */

static int
ngx_http_crm_json_index(const unsigned char *seg, size_t slen,
    unsigned long long *index)
{
    size_t              i;
    unsigned long long  n;

    /* 19 digits always fit an unsigned long long */

    if (slen == 0 || slen > 19 || (seg[0] == '0' && slen > 1)) {
        return -1;
    }

    n = 0;

    for (i = 0; i < slen; i++) {
        if (!ngx_http_crm_is_digit(seg[i])) {
            return -1;
        }

        n = n * 10 + (seg[i] - '0');
    }

    *index = n;

    return 0;
}


/* compares a JSON key, still escaped, with a pointer segment, still escaped */

static int
ngx_http_crm_json_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *seg, size_t slen)
{
    int                   c;
    size_t                i, n;
    unsigned char         buf[4];
    const unsigned char  *end, *send;

    end = key + klen;
    send = seg + slen;
    i = 0;
    n = 0;

    for ( ;; ) {

        if (i == n) {
            if (key == end) {
                break;
            }

            if (*key == '\\') {
                n = ngx_http_crm_json_escape(&key, end, buf);

            } else {
                buf[0] = *key++;
                n = 1;
            }

            i = 0;
        }

        c = ngx_http_crm_pointer_byte(&seg, send, 0);

        if (c != buf[i]) {
            return 0;
        }

        i++;
    }

    return seg == send;
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

static size_t
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
 * Converts a form body to a JSON object of strings, into out of
 * ngx_http_crm_form_json_size(len) bytes.  "+" is a space, "%XX" a byte;
 * pairs are split at "&" and at the first "=" (a pair without "=" has an
 * empty value), empty pairs are skipped, a repeated key is emitted again.
 * Returns 0 with *outlen set, or -1 with *reason: "empty body",
 * "malformed percent-escape", "NUL byte in form" or "invalid UTF-8" (of
 * a decoded key or value).  The output always passes json_check().
 */

int
ngx_http_crm_form_to_json(const unsigned char *p, size_t len,
    unsigned char *out, size_t *outlen, const char **reason)
{
    size_t                klen, vlen, n;
    unsigned char        *o;
    const unsigned char  *end, *key, *val;

    if (len == 0) {
        *reason = "empty body";
        return -1;
    }

    end = p + len;
    o = out;

    *o++ = '{';

    while (ngx_http_crm_form_next(&p, end, &key, &klen, &val, &vlen)) {

        if (o != out + 1) {
            *o++ = ',';
        }

        *o++ = '"';

        if (ngx_http_crm_form_decode(key, klen, o, 1, &n, reason) != 0) {
            return -1;
        }

        o += n;
        *o++ = '"';
        *o++ = ':';
        *o++ = '"';

        if (ngx_http_crm_form_decode(val, vlen, o, 1, &n, reason) != 0) {
            return -1;
        }

        o += n;
        *o++ = '"';
    }

    *o++ = '}';
    *outlen = o - out;

    return 0;
}


/*
 * Finds the form key that the pointer names ("/customer/email" is
 * "customer.email", "~1" is "/" and "~0" is "~") and writes the decoded
 * value of its last pair into out (len bytes are enough: decoding never
 * grows).  Returns 0 with *outlen set; -1 when the key is absent, the
 * pointer is empty or malformed, or any pair of the body is malformed,
 * as form_to_json() would refuse the body.
 */

int
ngx_http_crm_form_get(const unsigned char *p, size_t len,
    const unsigned char *pointer, size_t plen, unsigned char *out,
    size_t *outlen)
{
    size_t                klen, vlen, flen, n;
    const char           *reason;
    const unsigned char  *end, *key, *val, *found;

    if (len == 0 || plen == 0
        || ngx_http_crm_json_pointer_valid(pointer, plen) != 0)
    {
        return -1;
    }

    end = p + len;
    found = NULL;
    flen = 0;

    while (ngx_http_crm_form_next(&p, end, &key, &klen, &val, &vlen)) {

        if (ngx_http_crm_form_decode(key, klen, NULL, 0, &n, &reason) != 0
            || ngx_http_crm_form_decode(val, vlen, NULL, 0, &n, &reason) != 0)
        {
            return -1;
        }

        if (ngx_http_crm_form_key_eq(key, klen, pointer + 1, plen - 1)) {
            found = val;
            flen = vlen;
        }
    }

    if (found == NULL) {
        return -1;
    }

    return ngx_http_crm_form_decode(found, flen, out, 0, outlen, &reason);
}


/*
 * Writes into out (plen bytes) the one-segment pointer under which a
 * form's converted JSON holds the field: "/customer/email" becomes
 * "/customer.email", escapes kept.  json_get() with it on the output of
 * form_to_json() finds what form_get() finds in the raw body.  Returns 0,
 * or -1 for an empty or malformed pointer.
 */

int
ngx_http_crm_form_pointer(const unsigned char *pointer, size_t plen,
    unsigned char *out)
{
    size_t  i;

    if (plen == 0 || ngx_http_crm_json_pointer_valid(pointer, plen) != 0) {
        return -1;
    }

    out[0] = '/';

    for (i = 1; i < plen; i++) {
        out[i] = (pointer[i] == '/') ? '.' : pointer[i];
    }

    return 0;
}


/*
 * Returns 0 for a valid RFC 6901 pointer: empty, or starting with "/"
 * with every "~" followed by 0 or 1; -1 otherwise.  For the policy
 * loader, to refuse a bad `fields` entry at configuration time.
 */

int
ngx_http_crm_json_pointer_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0) {
        return 0;
    }

    if (p[0] != '/') {
        return -1;
    }

    for (i = 1; i < len; i++) {
        if (p[i] == '~') {
            if (i + 1 == len || (p[i + 1] != '0' && p[i + 1] != '1')) {
                return -1;
            }

            i++;
        }
    }

    return 0;
}


/*
 * The next unescaped byte of a valid pointer, -1 at end; with dots a
 * "/" reads as ".", the separator of form keys.
 */

static int
ngx_http_crm_pointer_byte(const unsigned char **pp, const unsigned char *end,
    int dots)
{
    int                   c;
    const unsigned char  *p;

    p = *pp;

    if (p == end) {
        return -1;
    }

    c = *p++;

    if (c == '~' && p < end) {
        c = (*p == '1') ? '/' : '~';
        p++;

    } else if (c == '/' && dots) {
        c = '.';
    }

    *pp = p;

    return c;
}


/* finds the next non-empty pair; returns 0 at the end of the body */

static int
ngx_http_crm_form_next(const unsigned char **pp, const unsigned char *end,
    const unsigned char **key, size_t *klen, const unsigned char **val,
    size_t *vlen)
{
    const unsigned char  *p, *eq, *start;

    p = *pp;

    while (p < end && *p == '&') {
        p++;
    }

    if (p == end) {
        *pp = p;
        return 0;
    }

    start = p;

    while (p < end && *p != '&') {
        p++;
    }

    *pp = p;

    eq = memchr(start, '=', p - start);

    *key = start;

    if (eq == NULL) {
        *klen = p - start;
        *val = p;
        *vlen = 0;

    } else {
        *klen = eq - start;
        *val = eq + 1;
        *vlen = p - eq - 1;
    }

    return 1;
}


/* the next decoded byte of a form component, -1 for a bad escape */

static int
ngx_http_crm_form_byte(const unsigned char **pp, const unsigned char *end)
{
    int                   hi, lo;
    const unsigned char  *p;

    p = *pp;

    if (*p == '+') {
        *pp = p + 1;
        return ' ';
    }

    if (*p != '%') {
        *pp = p + 1;
        return *p;
    }

    if (end - p < 3) {
        return -1;
    }

    hi = ngx_http_crm_hex(p[1]);
    lo = ngx_http_crm_hex(p[2]);

    if (hi < 0 || lo < 0) {
        return -1;
    }

    *pp = p + 3;

    return hi << 4 | lo;
}


/*
 * Decodes a form key or value, checking it; with out it is written
 * there, JSON-escaped when json is set (quote and backslash with a
 * backslash, control characters as \u00XX).  Returns 0 with *n set to
 * the bytes written, or -1 with *reason.
 */

static int
ngx_http_crm_form_decode(const unsigned char *p, size_t len,
    unsigned char *out, int json, size_t *n, const char **reason)
{
    int                   c;
    size_t                o;
    const unsigned char  *end;
    ngx_http_crm_utf8_t   u;

    static const unsigned char  hex[] = "0123456789abcdef";

    end = p + len;
    o = 0;
    u.need = 0;

    while (p < end) {

        c = ngx_http_crm_form_byte(&p, end);

        if (c < 0) {
            *reason = "malformed percent-escape";
            return -1;
        }

        if (c == 0) {
            *reason = "NUL byte in form";
            return -1;
        }

        if (ngx_http_crm_utf8_next(&u, (unsigned) c) != 0) {
            *reason = "invalid UTF-8";
            return -1;
        }

        if (out == NULL) {
            continue;
        }

        if (json && (c == '"' || c == '\\')) {
            out[o++] = '\\';
            out[o++] = (unsigned char) c;

        } else if (json && c < 0x20) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];

        } else {
            out[o++] = (unsigned char) c;
        }
    }

    if (u.need) {
        *reason = "invalid UTF-8";
        return -1;
    }

    *n = o;

    return 0;
}


/* compares a form key, still encoded, with a pointer without its "/" */

static int
ngx_http_crm_form_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *pointer, size_t plen)
{
    int                   a, b;
    const unsigned char  *kend, *pend;

    kend = key + klen;
    pend = pointer + plen;

    for ( ;; ) {
        a = (key < kend) ? ngx_http_crm_form_byte(&key, kend) : 256;
        b = (pointer < pend) ? ngx_http_crm_pointer_byte(&pointer, pend, 1)
                             : 256;

        if (a < 0 || a != b) {
            return 0;
        }

        if (a == 256) {
            return 1;
        }
    }
}


/*
 * Feeds one byte to the UTF-8 checker: 0 when it may come here, -1 when
 * not (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF; the same bytes PostgreSQL refuses).  The sequence is complete
 * when u->need is 0.
 */

static int
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


static int
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


/*
 * Trims ASCII whitespace and lower-cases ASCII letters; other bytes are
 * kept as they are (an internationalized domain or local part is not
 * folded).  Returns the length written to out (len bytes are enough; out
 * may be in), or 0 when the result is no e-mail: over 254 octets (RFC
 * 5321's path limit), a space or control character inside, or a last "@"
 * without something on both sides.
 */

size_t
ngx_http_crm_email_normalize(const unsigned char *in, size_t len,
    unsigned char *out)
{
    size_t         i, at;
    unsigned char  c;

    while (len && (ngx_http_crm_is_ws(in[0]) || in[0] == '\f'
                   || in[0] == '\v'))
    {
        in++;
        len--;
    }

    while (len && (ngx_http_crm_is_ws(in[len - 1]) || in[len - 1] == '\f'
                   || in[len - 1] == '\v'))
    {
        len--;
    }

    if (len > 254) {
        return 0;
    }

    at = 0;

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c <= ' ' || c == 0x7f) {
            return 0;
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;

        } else if (c == '@') {
            at = i + 1;
        }

        out[i] = c;
    }

    /* at is one past the last "@": it needs a byte before and after */

    if (at < 2 || at == len) {
        return 0;
    }

    return len;
}


/*
 * Keeps the digits; an 11-digit number starting with 8 is the Russian
 * trunk prefix for +7 and becomes 7 and the rest.  Returns the length
 * written to out (len bytes are enough; out may be in), or 0 when the
 * digits cannot be a phone: fewer than 5, or more than the 15 of E.164.
 */

size_t
ngx_http_crm_phone_normalize(const unsigned char *in, size_t len,
    unsigned char *out)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (ngx_http_crm_is_digit(in[i])) {
            out[n++] = in[i];
        }
    }

    if (n < 5 || n > 15) {
        return 0;
    }

    if (n == 11 && out[0] == '8') {
        out[0] = '7';
    }

    return n;
}
