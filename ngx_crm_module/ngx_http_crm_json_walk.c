
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * RFC 6901 pointers over JSON text that passed json_check(), without
 * building a tree: one walker, ngx_http_crm_json_walk(), follows up to
 * NGX_HTTP_CRM_JSON_GET_MAX pointers in one pass and skips every value
 * none of them names; json_get() is its one-pointer case.  Of duplicate
 * keys the last wins, the one jsonb keeps.  The walk's state is one
 * ngx_http_crm_json_many_t on the caller's stack: for each pointer the
 * offset of the segment it matches at the current depth.
 *
 * On other bytes the walk never reads outside [json, json + len) and
 * finds nothing or something inside; callers check first.
 */


#include <string.h>

#include "ngx_http_crm_json.h"


#define ngx_http_crm_is_digit(c)  ((c) >= '0' && (c) <= '9')


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


static const unsigned char *ngx_http_crm_json_walk(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static const unsigned char *ngx_http_crm_json_walk_object(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static const unsigned char *ngx_http_crm_json_walk_array(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned mask);
static const unsigned char *ngx_http_crm_json_descend(
    ngx_http_crm_json_many_t *ctx, const unsigned char *p, unsigned sub);
static size_t ngx_http_crm_json_seg_back(ngx_http_crm_json_many_t *ctx,
    size_t i);
static int ngx_http_crm_json_value(const unsigned char *p,
    const unsigned char *q, ngx_http_crm_json_value_t *v);
static const unsigned char *ngx_http_crm_json_key(const unsigned char *p,
    const unsigned char *end, const unsigned char **key, size_t *klen);
static const unsigned char *ngx_http_crm_json_after(const unsigned char *q,
    const unsigned char *end, unsigned char closer, int *closed);
static const unsigned char *ngx_http_crm_json_skip(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *ngx_http_crm_json_skip_string(
    const unsigned char *p, const unsigned char *end);
static int ngx_http_crm_json_index(const unsigned char *seg, size_t slen,
    unsigned long long *index);
static size_t ngx_http_crm_json_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *seg, const unsigned char *send);
static int ngx_http_crm_pointer_byte(const unsigned char **pp,
    const unsigned char *end);


/*
 * Follows an RFC 6901 pointer in a document that passed json_check():
 * the one-pointer case of json_get_many().  Returns 0 and fills *v when
 * the value exists, -1 when it does not or the pointer is malformed ("~"
 * not followed by 0 or 1, or a non-empty pointer not starting with "/").
 * An array index is decimal without leading zeros; "-" never exists.  Of
 * duplicate keys the last wins.  Any bytes are safe to pass: a broken
 * document gives -1 or a value somewhere inside it, never a read outside.
 */

int
ngx_http_crm_json_get(const unsigned char *json, size_t len,
    const unsigned char *pointer, size_t plen, ngx_http_crm_json_value_t *v)
{
    unsigned char  found;

    return ngx_http_crm_json_get_many(json, len, &pointer, &plen, 1, v,
                                      &found)
           ? 0 : -1;
}


/*
 * Looks up n pointers in one pass over a document that passed
 * json_check() (one pass for each NGX_HTTP_CRM_JSON_GET_MAX of them):
 * found[i] is 1 and v[i] the value where pointers[i] names one, else 0
 * and v[i] undefined.  Returns the number found.
 *
 * The walk keeps, for each pointer, the segment it matches at the
 * current depth; it descends into a value only for the pointers whose
 * path leads there and skips the others with skip().  A key matching
 * again resets what its earlier value gave, so the last duplicate wins
 * at every level, as jsonb keeps it.  The recursion is as deep as the
 * pointers are long; a pointer of more than NGX_HTTP_CRM_JSON_DEPTH_MAX
 * segments, deeper than any checked document, finds nothing.  Bytes that
 * are not JSON end the pass with nothing found.
 */

size_t
ngx_http_crm_json_get_many(const unsigned char *json, size_t len,
    const unsigned char *const *pointers, const size_t *plens, size_t n,
    ngx_http_crm_json_value_t *v, unsigned char *found)
{
    size_t                     i, j, base, segs, count;
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

    p = ngx_http_crm_json_ws(json, ctx.end);

    if (p == ctx.end) {
        return 0;
    }

    count = 0;

    for (base = 0; base < n; base += NGX_HTTP_CRM_JSON_GET_MAX) {

        ctx.pointers = pointers + base;
        ctx.plens = plens + base;
        ctx.v = v + base;
        ctx.found = found + base;
        ctx.n = n - base;

        if (ctx.n > NGX_HTTP_CRM_JSON_GET_MAX) {
            ctx.n = NGX_HTTP_CRM_JSON_GET_MAX;
        }

        mask = 0;

        for (i = 0; i < ctx.n; i++) {

            if (ngx_http_crm_json_pointer_valid(ctx.pointers[i], ctx.plens[i])
                != 0)
            {
                continue;
            }

            segs = 0;

            for (j = 0; j < ctx.plens[i]; j++) {
                segs += (ctx.pointers[i][j] == '/');
            }

            if (segs > NGX_HTTP_CRM_JSON_DEPTH_MAX) {
                continue;
            }

            ctx.cur[i] = 0;
            mask |= 1u << i;
        }

        if (mask == 0) {
            continue;
        }

        if (ngx_http_crm_json_walk(&ctx, p, mask) == NULL) {

            for (i = 0; i < ctx.n; i++) {
                ctx.found[i] = 0;
            }

            continue;
        }

        for (i = 0; i < ctx.n; i++) {
            count += ctx.found[i];
        }
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


/*
 * p is at '{', mask is not empty.  A pointer whose segment names the key
 * moves ctx->cur[i] to its next "/" for the member's value and back to
 * the "/" before afterwards (a segment holds no "/"), so that the frame
 * keeps no copy of it: the recursion stays small.
 */

static const unsigned char *
ngx_http_crm_json_walk_object(ngx_http_crm_json_many_t *ctx,
    const unsigned char *p, unsigned mask)
{
    int                   closed;
    size_t                i, klen, e;
    unsigned              sub;
    const unsigned char  *q, *key, *end, *ptr;

    end = ctx->end;

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

            if ((mask & (1u << i)) == 0) {
                continue;
            }

            ptr = ctx->pointers[i];
            e = ngx_http_crm_json_key_eq(key, klen, ptr + ctx->cur[i] + 1,
                                         ptr + ctx->plens[i]);

            if (e) {
                /* a later duplicate replaces what an earlier one gave */
                ctx->found[i] = 0;
                ctx->cur[i] += e;
                sub |= 1u << i;
            }
        }

        if (sub) {
            q = ngx_http_crm_json_descend(ctx, p, sub);

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
 * most: its index is read on entry, and it leaves the mask once that
 * element is walked, so a nested array may reuse ctx->index[i].
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
        }
    }

    if (mask == 0) {
        return ngx_http_crm_json_skip(p, end);
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

            for (i = 0; i < ctx->n; i++) {
                if (sub & (1u << i)) {
                    ptr = ctx->pointers[i];

                    for (e = ctx->cur[i] + 1; e < ctx->plens[i]; e++) {
                        if (ptr[e] == '/') {
                            break;
                        }
                    }

                    ctx->cur[i] = e;
                }
            }

            q = ngx_http_crm_json_descend(ctx, p, sub);

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
 * Walks the value at p for the pointers in sub, whose current segment it
 * matched, and puts their segments back one level after.  Returns the end
 * of the value, or NULL.
 */

static const unsigned char *
ngx_http_crm_json_descend(ngx_http_crm_json_many_t *ctx,
    const unsigned char *p, unsigned sub)
{
    size_t                i;
    const unsigned char  *q;

    q = ngx_http_crm_json_walk(ctx, p, sub);

    for (i = 0; i < ctx->n; i++) {
        if (sub & (1u << i)) {
            ctx->cur[i] = ngx_http_crm_json_seg_back(ctx, i);
        }
    }

    return q;
}


/* the "/" that starts the segment ending at ctx->cur[i] */

static size_t
ngx_http_crm_json_seg_back(ngx_http_crm_json_many_t *ctx, size_t i)
{
    size_t  c;

    c = ctx->cur[i];

    while (ctx->pointers[i][--c] != '/') {
        /* void */
    }

    return c;
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

    while (p < end && !ngx_http_crm_json_is_ws(*p)
           && *p != ',' && *p != ']' && *p != '}' && *p != ':')
    {
        p++;
    }

    return p == start ? NULL : p;
}


/*
 * p is at a string's opening quote: returns just past its closing one.
 * A quote closes the string when an even number of backslashes, since
 * the opening quote, stands before it.
 */

static const unsigned char *
ngx_http_crm_json_skip_string(const unsigned char *p,
    const unsigned char *end)
{
    const unsigned char  *start, *q, *b;

    start = p + 1;

    for (q = start; q < end; q++) {

        q = memchr(q, '"', end - q);

        if (q == NULL) {
            return NULL;
        }

        for (b = q; b > start && b[-1] == '\\'; b--) {
            /* void */
        }

        if (((q - b) & 1) == 0) {
            return q + 1;
        }
    }

    return NULL;
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


/*
 * Compares a JSON key, still escaped, with the pointer segment at seg,
 * still escaped, which ends at the next "/" or at send.  Returns 0 when
 * they differ, else one more than the segment's length: the distance
 * from the segment's "/" to the next one.
 */

static size_t
ngx_http_crm_json_key_eq(const unsigned char *key, size_t klen,
    const unsigned char *seg, const unsigned char *send)
{
    int                   c;
    size_t                i, n;
    unsigned char         buf[4];
    const unsigned char  *end, *start;

    end = key + klen;
    start = seg;

    /*
     * the common case, byte for byte: a key with no escape against a
     * segment up to its first "~"
     */

    for (i = 0; i < klen; i++) {
        if (seg + i == send || seg[i] == '/') {
            return 0;
        }

        if (seg[i] == '~' || key[i] == '\\') {
            break;
        }

        if (seg[i] != key[i]) {
            return 0;
        }
    }

    if (i == klen) {
        return (seg + i == send || seg[i] == '/') ? i + 1 : 0;
    }

    /* the rest, each side unescaped */

    key += i;
    seg += i;
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

        c = (seg < send && *seg != '/')
            ? ngx_http_crm_pointer_byte(&seg, send) : -1;

        if (c != buf[i]) {
            return 0;
        }

        i++;
    }

    return (seg == send || *seg == '/') ? (size_t) (seg - start) + 1 : 0;
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


/* the next unescaped byte of a valid pointer, seg < end */

static int
ngx_http_crm_pointer_byte(const unsigned char **pp, const unsigned char *end)
{
    int                   c;
    const unsigned char  *p;

    p = *pp;
    c = *p++;

    if (c == '~' && p < end) {
        c = (*p == '1') ? '/' : '~';
        p++;
    }

    *pp = p;

    return c;
}
