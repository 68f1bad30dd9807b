
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the signed customer cookie:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I ngx_crm_module \
 *       t/unit/fuzz_cookie.c ngx_crm_module/ngx_http_crm_cookie.c \
 *       -lcrypto -o /tmp/fuzz_cookie
 *
 * Every input goes through every function, and what must hold between
 * them is asserted (abort() on a violation):
 *
 * - verify() on the bytes as they are, under fixed keys, returns one of
 *   its four results, and OK only for a value that sign() gives back
 *   byte for byte: one spelling per cookie;
 * - the bytes taken as the signed text and completed with their right
 *   mac verify exactly when an independent, strtoull()-based reading
 *   finds the format's "v1.<id>.<issued_at>" in them: the mac cannot
 *   hide a parser's mistake;
 * - keys_parse() on the bytes: keys inside the buffer, trimmed, at least
 *   32 bytes, at most 16, an error message otherwise; the keys it finds
 *   sign a value that verifies;
 * - find() on the bytes as a Cookie header returns a value inside it
 *   without a ";";
 * - find_next() from offset 0 on returns find()'s value first, then
 *   values inside the header without a ";", each with an offset that
 *   moves forward and stays in the header, and finds as many as an
 *   independent count of the pairs named "crm" (split on ";", name
 *   trimmed of spaces and tabs up to the first "=").
 *
 * Buffers are malloc()ed to their exact size, so ASan sees any overrun.
 */


#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_crm_cookie.h"


#define ensure(cond)  do { if (!(cond)) abort(); } while (0)

#define KEY0  "fuzz-key-0-fuzz-key-0-fuzz-key-0"
#define KEY1  "fuzz-key-1-fuzz-key-1-fuzz-key-1-fuzz"


static void check_verify(const unsigned char *data, size_t size);
static void check_completed(const unsigned char *data, size_t size);
static void check_keys(const unsigned char *data, size_t size);
static void check_find(const unsigned char *data, size_t size);
static void check_find_next(const unsigned char *data, size_t size);
static size_t reference_count(const unsigned char *h, size_t len);
static int reference(const unsigned char *msg, size_t len, uint64_t *id,
    int64_t *at);
static int reference_number(const char *s, size_t len, uint64_t *v);
static int resigned(const unsigned char *value, size_t len, uint64_t id,
    const ngx_http_crm_keys_t *keys);


static ngx_http_crm_keys_t  keys = {
    { (const unsigned char *) KEY0, (const unsigned char *) KEY1 },
    { sizeof(KEY0) - 1, sizeof(KEY1) - 1 },
    2
};


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_verify(data, size);
    check_completed(data, size);
    check_keys(data, size);
    check_find(data, size);
    check_find_next(data, size);

    return 0;
}


static void
check_verify(const unsigned char *data, size_t size)
{
    int                   rc;
    size_t                i;
    uint64_t              id;
    unsigned char        *v;
    static const int64_t  times[][2] = {
        { 1700000000, 86400 }, { INT64_MAX, INT64_MAX },
        { INT64_MIN, 0 }, { 0, -1 }
    };

    v = malloc(size ? size : 1);
    ensure(v);
    memcpy(v, data, size);

    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        id = 0;
        rc = ngx_http_crm_cookie_verify(v, size, &keys, times[i][0],
                                        times[i][1], &id);

        ensure(rc == NGX_HTTP_CRM_COOKIE_OK
               || rc == NGX_HTTP_CRM_COOKIE_MALFORMED
               || rc == NGX_HTTP_CRM_COOKIE_BAD_MAC
               || rc == NGX_HTTP_CRM_COOKIE_EXPIRED);

        if (rc == NGX_HTTP_CRM_COOKIE_OK) {
            ensure(id >= 1 && id <= (uint64_t) INT64_MAX);
            ensure(resigned(v, size, id, &keys));

        } else {
            ensure(id == 0);
        }
    }

    free(v);
}


/* data as the signed text, completed with ".mac" under the second key */

static void
check_completed(const unsigned char *data, size_t size)
{
    int             rc, ref;
    size_t          len, i;
    int64_t         at;
    uint64_t        id, rid;
    unsigned int    mlen;
    unsigned char  *v, md[EVP_MAX_MD_SIZE], b64[64];

    if (size > NGX_HTTP_CRM_COOKIE_LEN_MAX) {
        return;
    }

    ensure(HMAC(EVP_sha256(), KEY1, sizeof(KEY1) - 1, data, size, md, &mlen)
           != NULL);
    EVP_EncodeBlock(b64, md, (int) mlen);

    len = size + 1 + NGX_HTTP_CRM_COOKIE_MAC_LEN;
    v = malloc(len);
    ensure(v);

    memcpy(v, data, size);
    v[size] = '.';

    for (i = 0; i < NGX_HTTP_CRM_COOKIE_MAC_LEN; i++) {
        v[size + 1 + i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }

    id = 0;
    rc = ngx_http_crm_cookie_verify(v, len, &keys, INT64_MAX, INT64_MAX,
                                    &id);

    ref = reference(data, size, &rid, &at);

    if (ref) {
        ensure(rc == NGX_HTTP_CRM_COOKIE_OK && id == rid);
        ensure(resigned(v, len, id, &keys));

    } else {
        ensure(rc == NGX_HTTP_CRM_COOKIE_MALFORMED);
    }

    free(v);
}


static void
check_keys(const unsigned char *data, size_t size)
{
    int                  rc;
    char                 err[64];
    size_t               i, n, j;
    uint64_t             id;
    unsigned char       *d, out[NGX_HTTP_CRM_COOKIE_LEN_MAX];
    ngx_http_crm_keys_t  k;

    d = malloc(size ? size : 1);
    ensure(d);
    memcpy(d, data, size);

    memset(err, 'x', sizeof(err));
    rc = ngx_http_crm_keys_parse(d, size, &k, err, sizeof(err));

    if (rc != 0) {
        ensure(rc == -1 && memchr(err, '\0', sizeof(err)) != NULL
               && err[0] != '\0');
        free(d);
        return;
    }

    ensure(k.n >= 1 && k.n <= NGX_HTTP_CRM_COOKIE_KEYS_MAX);

    for (i = 0; i < k.n; i++) {
        ensure(k.key[i] >= d && k.key[i] + k.len[i] <= d + size);
        ensure(k.len[i] >= NGX_HTTP_CRM_COOKIE_KEY_MIN);
        ensure(memchr(k.key[i], '\n', k.len[i]) == NULL);
        ensure(k.key[i][0] != ' ' && k.key[i][0] != '\t'
               && k.key[i][0] != '#');

        j = k.len[i] - 1;
        ensure(k.key[i][j] != ' ' && k.key[i][j] != '\t'
               && k.key[i][j] != '\r');

        /* keys come in file order */
        ensure(i == 0 || k.key[i] > k.key[i - 1] + k.len[i - 1]);
    }

    n = ngx_http_crm_cookie_sign(out, 42, 1700000000, &k);
    ensure(n > 0 && n <= NGX_HTTP_CRM_COOKIE_LEN_MAX);

    id = 0;
    ensure(ngx_http_crm_cookie_verify(out, n, &k, 1700000000, 0, &id)
           == NGX_HTTP_CRM_COOKIE_OK && id == 42);

    free(d);
}


static void
check_find(const unsigned char *data, size_t size)
{
    size_t                vlen;
    uint64_t              id;
    unsigned char        *h;
    const unsigned char  *v;

    h = malloc(size ? size : 1);
    ensure(h);
    memcpy(h, data, size);

    if (ngx_http_crm_cookie_find(h, size, (const unsigned char *) "crm", 3,
                                 &v, &vlen)
        == 0)
    {
        ensure(v >= h && v + vlen <= h + size);
        ensure(memchr(v, ';', vlen) == NULL);

        id = 0;
        (void) ngx_http_crm_cookie_verify(v, vlen, &keys, 1700000000,
                                          86400, &id);
    }

    free(h);
}


static void
check_find_next(const unsigned char *data, size_t size)
{
    int                   rc;
    size_t                vlen, fvlen, offset, prev, n;
    unsigned char        *h;
    const unsigned char  *v, *fv;

    h = malloc(size ? size : 1);
    ensure(h);
    memcpy(h, data, size);

    rc = ngx_http_crm_cookie_find(h, size, (const unsigned char *) "crm", 3,
                                  &fv, &fvlen);

    offset = 0;
    prev = 0;
    n = 0;

    while (ngx_http_crm_cookie_find_next(h, size, &offset,
                                         (const unsigned char *) "crm", 3,
                                         &v, &vlen)
           == 0)
    {
        ensure(offset > prev && offset <= size);
        ensure(v >= h + prev && v + vlen <= h + offset);
        ensure(memchr(v, ';', vlen) == NULL);

        if (n == 0) {
            ensure(rc == 0 && v == fv && vlen == fvlen);
        }

        prev = offset;
        n++;
    }

    ensure(offset == prev);
    ensure(n > 0 || rc == -1);
    ensure(n == reference_count(h, size));

    free(h);
}


/* pairs whose name, trimmed of spaces and tabs, is "crm" */

static size_t
reference_count(const unsigned char *h, size_t len)
{
    size_t  i, start, eq, a, b, n;

    n = 0;
    start = 0;

    while (start < len) {

        for (i = start; i < len && h[i] != ';'; i++) { /* void */ }

        for (eq = start; eq < i && h[eq] != '='; eq++) { /* void */ }

        if (eq < i) {
            a = start;
            b = eq;

            while (a < b && (h[a] == ' ' || h[a] == '\t')) {
                a++;
            }

            while (b > a && (h[b - 1] == ' ' || h[b - 1] == '\t')) {
                b--;
            }

            if (b - a == 3 && memcmp(h + a, "crm", 3) == 0) {
                n++;
            }
        }

        start = i + 1;
    }

    return n;
}


/*
 * An independent reading of "v1.<id>.<issued_at>": returns 1 when msg is
 * exactly that, with both numbers canonical and in range, id nonzero.
 */

static int
reference(const unsigned char *msg, size_t len, uint64_t *id, int64_t *at)
{
    size_t       rest;
    uint64_t     a;
    const char  *s, *dot;

    if (len < 3 || memcmp(msg, "v1.", 3) != 0) {
        return 0;
    }

    s = (const char *) msg + 3;
    rest = len - 3;

    dot = memchr(s, '.', rest);
    if (dot == NULL) {
        return 0;
    }

    if (!reference_number(s, dot - s, id) || *id == 0) {
        return 0;
    }

    rest -= dot - s + 1;
    s = dot + 1;

    if (memchr(s, '.', rest) != NULL || !reference_number(s, rest, &a)) {
        return 0;
    }

    *at = (int64_t) a;

    return 1;
}


static int
reference_number(const char *s, size_t len, uint64_t *v)
{
    char                buf[32], *end;
    size_t              i;
    unsigned long long  n;

    if (len == 0 || len > 19 || (s[0] == '0' && len > 1)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    errno = 0;
    n = strtoull(buf, &end, 10);

    if (errno || *end != '\0' || n > (unsigned long long) INT64_MAX) {
        return 0;
    }

    *v = n;

    return 1;
}


/* value is what sign() writes for id and its issued_at under some key */

static int
resigned(const unsigned char *value, size_t len, uint64_t id,
    const ngx_http_crm_keys_t *keys)
{
    size_t               i, n;
    int64_t              at;
    uint64_t             rid;
    unsigned char        out[NGX_HTTP_CRM_COOKIE_LEN_MAX];
    ngx_http_crm_keys_t  one;

    ensure(len > NGX_HTTP_CRM_COOKIE_MAC_LEN + 1);
    ensure(reference(value, len - NGX_HTTP_CRM_COOKIE_MAC_LEN - 1, &rid,
                     &at));
    ensure(rid == id);

    memset(&one, 0, sizeof(one));

    for (i = 0; i < keys->n; i++) {
        one.key[0] = keys->key[i];
        one.len[0] = keys->len[i];
        one.n = 1;

        n = ngx_http_crm_cookie_sign(out, id, at, &one);
        ensure(n > 0);

        if (n == len && memcmp(out, value, n) == 0) {
            return 1;
        }
    }

    return 0;
}
