
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The signed customer cookie, kept free of nginx so that it is unit-tested
 * and fuzzed directly.
 *
 * - The value is "v1.<customer_id>.<issued_at>.<mac>": decimal numbers
 *   without sign or leading zeros, the id in 1..2^63-1 (a PostgreSQL
 *   bigint), issued_at in unix seconds, and mac the 43 characters of the
 *   unpadded base64url (RFC 4648, section 5) of HMAC-SHA256 over all that
 *   precedes its dot.  Every character is a cookie-octet (RFC 6265), so
 *   the value needs no quoting.
 * - Parsing is strict: one spelling per (id, issued_at, key), the mac's
 *   unused low bits included, so a value cannot be varied and still pass.
 *   The mac is decoded first and compared, in constant time, with the mac
 *   under every key: the time taken does not say which key, if any,
 *   matched.  Only then is the age checked, so EXPIRED is only said of a
 *   value this shop issued.
 * - Keys come from the secret file, one a line; the first signs and all
 *   verify, so a new key is put first and the old one removed after
 *   max_age.  The key table points into the caller's buffer: whoever owns
 *   the file's contents owns the keys.
 *
 * Nothing here allocates but keys_prepare() and hmac_init(), which hash
 * each key's pads once (see the header); libcrypto is the only call out.
 */


#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_crm_cookie.h"


#define NGX_HTTP_CRM_COOKIE_ID_MAX  ((uint64_t) INT64_MAX)


/*
 * The one hash state every MAC is made in (a process reads one request at
 * a time), made at the first MAC and freed with any prepared key: at a
 * worker's exit the module is unloaded, and this pointer with it.
 */
static EVP_MD_CTX  *ngx_http_crm_hmac_scratch;

#define ngx_http_crm_cookie_is_digit(c)  ((c) >= '0' && (c) <= '9')
#define ngx_http_crm_cookie_is_space(c)  ((c) == ' ' || (c) == '\t')


static const unsigned char *ngx_http_crm_cookie_number(
    const unsigned char *p, const unsigned char *end, uint64_t *value);
static size_t ngx_http_crm_cookie_decimal(unsigned char *out,
    uint64_t value);
static void ngx_http_crm_cookie_encode(unsigned char *out,
    const unsigned char *mac);
static int ngx_http_crm_cookie_decode(const unsigned char *p,
    unsigned char *mac);
static void ngx_http_crm_cookie_error(char *err, size_t errlen,
    const char *msg, size_t line);


static const char  ngx_http_crm_cookie_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


/*
 * Reads the secret file's contents: a key a line, the line's end ("\n"
 * or "\r\n") and the spaces and tabs around it stripped; blank lines and
 * lines starting with "#" (after the spaces) skipped.  A key is the
 * line's bytes as they are, at least NGX_HTTP_CRM_COOKIE_KEY_MIN of them.
 * Returns 0 with keys pointing into data, or -1 with a one-line message
 * in err.  data is not modified.
 */

int
ngx_http_crm_keys_parse(unsigned char *data, size_t len,
    ngx_http_crm_keys_t *keys, char *err, size_t errlen)
{
    size_t          line;
    unsigned char  *p, *end, *start, *last, *nl;

    keys->n = 0;
    memset(keys->hmac, 0, sizeof(keys->hmac));

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    p = data;
    end = data + len;

    for (line = 1; p < end; line++) {

        nl = memchr(p, '\n', end - p);
        last = (nl != NULL) ? nl : end;

        start = p;
        p = (nl != NULL) ? nl + 1 : end;

        while (start < last && ngx_http_crm_cookie_is_space(*start)) {
            start++;
        }

        while (last > start
               && (ngx_http_crm_cookie_is_space(last[-1])
                   || last[-1] == '\r'))
        {
            last--;
        }

        if (start == last || *start == '#') {
            continue;
        }

        if ((size_t) (last - start) < NGX_HTTP_CRM_COOKIE_KEY_MIN) {
            ngx_http_crm_cookie_error(err, errlen,
                                      "is shorter than 32 bytes", line);
            return -1;
        }

        if (keys->n == NGX_HTTP_CRM_COOKIE_KEYS_MAX) {
            ngx_http_crm_cookie_error(err, errlen,
                                      "is one too many (16 at most)", line);
            return -1;
        }

        keys->key[keys->n] = start;
        keys->len[keys->n] = last - start;
        keys->n++;
    }

    if (keys->n == 0) {
        ngx_http_crm_cookie_error(err, errlen, "no key", 0);
        return -1;
    }

    return 0;
}


/*
 * Writes the value for customer_id issued at issued_at, signed with the
 * first key, into out (NGX_HTTP_CRM_COOKIE_LEN_MAX bytes at least, no
 * NUL appended).  Returns its length, or 0 when HMAC() fails or the
 * arguments cannot be verified later: id 0 or above 2^63-1, issued_at
 * negative, no key.
 */

size_t
ngx_http_crm_cookie_sign(unsigned char *out, uint64_t customer_id,
    int64_t issued_at, const ngx_http_crm_keys_t *keys)
{
    size_t         n;
    unsigned char  mac[NGX_HTTP_CRM_COOKIE_MAC_SIZE];

    if (customer_id == 0 || customer_id > NGX_HTTP_CRM_COOKIE_ID_MAX
        || issued_at < 0 || keys->n == 0)
    {
        return 0;
    }

    memcpy(out, "v1.", 3);
    n = 3;

    n += ngx_http_crm_cookie_decimal(out + n, customer_id);
    out[n++] = '.';
    n += ngx_http_crm_cookie_decimal(out + n, (uint64_t) issued_at);

    if (ngx_http_crm_hmac(&keys->hmac[0], keys->key[0], keys->len[0], out,
                          n, mac)
        != 0)
    {
        return 0;
    }

    out[n++] = '.';
    ngx_http_crm_cookie_encode(out + n, mac);

    return n + NGX_HTTP_CRM_COOKIE_MAC_LEN;
}


/*
 * Checks len bytes of value (not NUL-terminated) against the keys.
 * Returns NGX_HTTP_CRM_COOKIE_OK with *customer_id set when the value is
 * well-formed, its mac matches one of the keys, issued_at lies no more
 * than NGX_HTTP_CRM_COOKIE_SKEW seconds after now and now - issued_at
 * is at most max_age (a negative max_age expires everything).
 * Otherwise returns, in this order of checks, _MALFORMED, _BAD_MAC or
 * _EXPIRED, and leaves *customer_id alone.
 */

int
ngx_http_crm_cookie_verify(const unsigned char *value, size_t len,
    const ngx_http_crm_keys_t *keys, int64_t now, int64_t max_age,
    uint64_t *customer_id)
{
    size_t                i, signed_len;
    uint64_t              id, at;
    unsigned int          match;
    unsigned char         mac[NGX_HTTP_CRM_COOKIE_MAC_SIZE];
    unsigned char         expect[NGX_HTTP_CRM_COOKIE_MAC_SIZE];
    const unsigned char  *p, *end;

    if (len < 3 || len > NGX_HTTP_CRM_COOKIE_LEN_MAX
        || memcmp(value, "v1.", 3) != 0)
    {
        return NGX_HTTP_CRM_COOKIE_MALFORMED;
    }

    end = value + len;

    p = ngx_http_crm_cookie_number(value + 3, end, &id);
    if (p == NULL || id == 0 || p == end || *p != '.') {
        return NGX_HTTP_CRM_COOKIE_MALFORMED;
    }

    p = ngx_http_crm_cookie_number(p + 1, end, &at);
    if (p == NULL || p == end || *p != '.') {
        return NGX_HTTP_CRM_COOKIE_MALFORMED;
    }

    signed_len = p - value;
    p++;

    if ((size_t) (end - p) != NGX_HTTP_CRM_COOKIE_MAC_LEN
        || ngx_http_crm_cookie_decode(p, mac) != 0)
    {
        return NGX_HTTP_CRM_COOKIE_MALFORMED;
    }

    /* every key is tried, whichever matches */

    match = 0;

    for (i = 0; i < keys->n && i < NGX_HTTP_CRM_COOKIE_KEYS_MAX; i++) {
        if (ngx_http_crm_hmac(&keys->hmac[i], keys->key[i], keys->len[i],
                              value, signed_len, expect)
            != 0)
        {
            continue;
        }

        match |= (CRYPTO_memcmp(mac, expect, sizeof(mac)) == 0);
    }

    OPENSSL_cleanse(expect, sizeof(expect));

    if (!match) {
        return NGX_HTTP_CRM_COOKIE_BAD_MAC;
    }

    /*
     * at is in 0..2^63-1 and now any int64_t: the distance between them,
     * either way, fits in uint64_t, computed modulo 2^64.
     */

    if (max_age < 0) {
        return NGX_HTTP_CRM_COOKIE_EXPIRED;
    }

    if (now >= 0 && at <= (uint64_t) now) {
        if ((uint64_t) now - at > (uint64_t) max_age) {
            return NGX_HTTP_CRM_COOKIE_EXPIRED;
        }

    } else if (at - (uint64_t) now > NGX_HTTP_CRM_COOKIE_SKEW) {
        return NGX_HTTP_CRM_COOKIE_EXPIRED;
    }

    *customer_id = id;

    return NGX_HTTP_CRM_COOKIE_OK;
}


/*
 * Finds the cookie called name (compared byte for byte) in one Cookie
 * header's value: pairs split on ";", spaces and tabs around names and
 * values ignored, pairs without "=" skipped, a value in double quotes
 * returned without them (RFC 6265, sections 4.2.1 and 5.4).  Returns 0
 * with the first such cookie's value (pointing into header, possibly
 * empty), or -1 when there is none.
 */

int
ngx_http_crm_cookie_find(const unsigned char *header, size_t len,
    const unsigned char *name, size_t nlen, const unsigned char **value,
    size_t *vlen)
{
    size_t  offset;

    offset = 0;

    return ngx_http_crm_cookie_find_next(header, len, &offset, name, nlen,
                                         value, vlen);
}


/*
 * As find(), from *offset on: 0 for the header's first pair, then what
 * the last call left there, which is the offset just past the pair found
 * (past its ";", or len).  So a client that sends the name twice in one
 * header is read to the end:
 *
 *     offset = 0;
 *     while (find_next(header, len, &offset, name, nlen, &v, &vl) == 0) {
 *         ...
 *     }
 *
 * Returns 0 with the value and *offset advanced (always by at least 1),
 * or -1, leaving *offset alone, when no such cookie is left; an *offset
 * at or past len finds nothing.
 */

int
ngx_http_crm_cookie_find_next(const unsigned char *header, size_t len,
    size_t *offset, const unsigned char *name, size_t nlen,
    const unsigned char **value, size_t *vlen)
{
    const unsigned char  *p, *end, *last, *semi, *eq, *n, *v;

    if (nlen == 0 || *offset >= len) {
        return -1;
    }

    p = header + *offset;
    end = header + len;

    while (p < end) {

        semi = memchr(p, ';', end - p);
        last = (semi != NULL) ? semi : end;

        eq = memchr(p, '=', last - p);

        if (eq != NULL) {
            n = p;

            while (n < eq && ngx_http_crm_cookie_is_space(*n)) {
                n++;
            }

            if ((size_t) (eq - n) >= nlen
                && memcmp(n, name, nlen) == 0)
            {
                /* the name, then nothing but spaces up to "=" */

                for (n += nlen; n < eq; n++) {
                    if (!ngx_http_crm_cookie_is_space(*n)) {
                        break;
                    }
                }

                if (n == eq) {
                    *offset = (semi != NULL) ? (size_t) (semi + 1 - header)
                                             : len;

                    v = eq + 1;

                    while (v < last && ngx_http_crm_cookie_is_space(*v)) {
                        v++;
                    }

                    while (last > v
                           && ngx_http_crm_cookie_is_space(last[-1]))
                    {
                        last--;
                    }

                    if (last - v >= 2 && v[0] == '"' && last[-1] == '"') {
                        v++;
                        last--;
                    }

                    *value = v;
                    *vlen = last - v;

                    return 0;
                }
            }
        }

        if (semi == NULL) {
            break;
        }

        p = semi + 1;
    }

    return -1;
}


/*
 * Parses a decimal in 0..2^63-1 without sign or leading zero ("0"
 * itself is fine).  Returns the byte after it, or NULL.
 */

static const unsigned char *
ngx_http_crm_cookie_number(const unsigned char *p, const unsigned char *end,
    uint64_t *value)
{
    uint64_t              v, d;
    const unsigned char  *start;

    start = p;
    v = 0;

    while (p < end && ngx_http_crm_cookie_is_digit(*p)) {
        d = *p - '0';

        if (v > (NGX_HTTP_CRM_COOKIE_ID_MAX - d) / 10) {
            return NULL;
        }

        v = v * 10 + d;
        p++;
    }

    if (p == start || (*start == '0' && p - start > 1)) {
        return NULL;
    }

    *value = v;

    return p;
}


static size_t
ngx_http_crm_cookie_decimal(unsigned char *out, uint64_t value)
{
    size_t         n, i;
    unsigned char  tmp[20];

    n = 0;

    do {
        tmp[n++] = (unsigned char) ('0' + value % 10);
        value /= 10;
    } while (value);

    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }

    return n;
}


/* the hash states of every key's pads; 0, or -1 with none prepared */

int
ngx_http_crm_keys_prepare(ngx_http_crm_keys_t *keys)
{
    size_t  i;

    for (i = 0; i < keys->n && i < NGX_HTTP_CRM_COOKIE_KEYS_MAX; i++) {
        if (ngx_http_crm_hmac_init(&keys->hmac[i], keys->key[i],
                                   keys->len[i])
            != 0)
        {
            ngx_http_crm_keys_release(keys);
            return -1;
        }
    }

    return 0;
}


void
ngx_http_crm_keys_release(ngx_http_crm_keys_t *keys)
{
    size_t  i;

    for (i = 0; i < NGX_HTTP_CRM_COOKIE_KEYS_MAX; i++) {
        ngx_http_crm_hmac_free(&keys->hmac[i]);
    }
}


/*
 * RFC 2104: a key longer than the block is hashed first; the inner state
 * has hashed key ^ ipad, the outer key ^ opad.
 */

int
ngx_http_crm_hmac_init(ngx_http_crm_hmac_t *h, const unsigned char *key,
    size_t len)
{
    size_t         i;
    unsigned int   n;
    unsigned char  k[64], pad[64];

    h->inner = NULL;
    h->outer = NULL;

    memset(k, 0, sizeof(k));

    if (len > sizeof(k)) {
        if (EVP_Digest(key, len, k, &n, EVP_sha256(), NULL) != 1) {
            return -1;
        }

    } else {
        memcpy(k, key, len);
    }

    h->inner = EVP_MD_CTX_new();
    h->outer = EVP_MD_CTX_new();

    if (h->inner == NULL || h->outer == NULL) {
        goto failed;
    }

    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x36;
    }

    if (EVP_DigestInit_ex(h->inner, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(h->inner, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x5c;
    }

    if (EVP_DigestInit_ex(h->outer, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(h->outer, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    return 0;

failed:

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    ngx_http_crm_hmac_free(h);

    return -1;
}


void
ngx_http_crm_hmac_free(ngx_http_crm_hmac_t *h)
{
    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);

    h->inner = NULL;
    h->outer = NULL;

    EVP_MD_CTX_free(ngx_http_crm_hmac_scratch);
    ngx_http_crm_hmac_scratch = NULL;
}


/*
 * mac (32 bytes) of msg under h, or under key by HMAC() when h is not
 * prepared; 0, or -1 when libcrypto fails.
 */

int
ngx_http_crm_hmac(const ngx_http_crm_hmac_t *h, const unsigned char *key,
    size_t klen, const unsigned char *msg, size_t len, unsigned char *mac)
{
    unsigned int   n, m;
    EVP_MD_CTX    *scratch;
    unsigned char  inner[NGX_HTTP_CRM_COOKIE_MAC_SIZE];

    if (h == NULL || h->inner == NULL) {
        if (klen > INT_MAX) {
            return -1;
        }

        n = 0;

        if (HMAC(EVP_sha256(), key, (int) klen, msg, len, mac, &n) == NULL
            || n != NGX_HTTP_CRM_COOKIE_MAC_SIZE)
        {
            return -1;
        }

        return 0;
    }

    if (ngx_http_crm_hmac_scratch == NULL) {
        ngx_http_crm_hmac_scratch = EVP_MD_CTX_new();
        if (ngx_http_crm_hmac_scratch == NULL) {
            return -1;
        }
    }

    scratch = ngx_http_crm_hmac_scratch;

    n = 0;
    m = 0;

    if (EVP_MD_CTX_copy_ex(scratch, h->inner) != 1
        || EVP_DigestUpdate(scratch, msg, len) != 1
        || EVP_DigestFinal_ex(scratch, inner, &n) != 1
        || n != sizeof(inner)
        || EVP_MD_CTX_copy_ex(scratch, h->outer) != 1
        || EVP_DigestUpdate(scratch, inner, sizeof(inner)) != 1
        || EVP_DigestFinal_ex(scratch, mac, &m) != 1
        || m != NGX_HTTP_CRM_COOKIE_MAC_SIZE)
    {
        OPENSSL_cleanse(inner, sizeof(inner));
        return -1;
    }

    OPENSSL_cleanse(inner, sizeof(inner));

    return 0;
}


/* 32 bytes to 43 characters: ten groups of three bytes, then two */

static void
ngx_http_crm_cookie_encode(unsigned char *out, const unsigned char *mac)
{
    size_t    i;
    uint32_t  b;

    for (i = 0; i < 30; i += 3) {
        b = (uint32_t) mac[i] << 16 | (uint32_t) mac[i + 1] << 8 | mac[i + 2];

        *out++ = ngx_http_crm_cookie_b64[b >> 18];
        *out++ = ngx_http_crm_cookie_b64[(b >> 12) & 0x3f];
        *out++ = ngx_http_crm_cookie_b64[(b >> 6) & 0x3f];
        *out++ = ngx_http_crm_cookie_b64[b & 0x3f];
    }

    b = (uint32_t) mac[30] << 8 | mac[31];

    *out++ = ngx_http_crm_cookie_b64[b >> 10];
    *out++ = ngx_http_crm_cookie_b64[(b >> 4) & 0x3f];
    *out = ngx_http_crm_cookie_b64[(b << 2) & 0x3f];
}


/*
 * 43 characters back to 32 bytes.  Returns -1 on a character outside the
 * base64url alphabet, or on nonzero low bits in the last one, which
 * encode() never sets.
 */

static int
ngx_http_crm_cookie_decode(const unsigned char *p, unsigned char *mac)
{
    size_t    i, k;
    uint32_t  b;
    unsigned  c, d;

    b = 0;
    k = 0;

    for (i = 0; i < NGX_HTTP_CRM_COOKIE_MAC_LEN; i++) {
        c = p[i];

        if (c >= 'A' && c <= 'Z') {
            d = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            d = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            d = c - '0' + 52;

        } else if (c == '-') {
            d = 62;

        } else if (c == '_') {
            d = 63;

        } else {
            return -1;
        }

        b = b << 6 | d;

        if (i % 4 == 3) {
            mac[k++] = (unsigned char) (b >> 16);
            mac[k++] = (unsigned char) (b >> 8);
            mac[k++] = (unsigned char) b;
            b = 0;
        }
    }

    /* the last three characters: 18 bits, of which 16 are the mac's */

    if (b & 0x3) {
        return -1;
    }

    mac[k++] = (unsigned char) (b >> 10);
    mac[k] = (unsigned char) (b >> 2);

    return 0;
}


/* "key on line N <msg>", or msg alone when line is 0 */

static void
ngx_http_crm_cookie_error(char *err, size_t errlen, const char *msg,
    size_t line)
{
    if (err == NULL || errlen == 0) {
        return;
    }

    if (line) {
        snprintf(err, errlen, "key on line %zu %s", line, msg);

    } else {
        snprintf(err, errlen, "%s", msg);
    }
}
