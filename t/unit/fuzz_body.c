
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the request-body core:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I ngx_crm_module \
 *       t/unit/fuzz_body.c ngx_crm_module/ngx_http_crm_body.c \
 *       -o /tmp/fuzz_body
 *
 * The first byte (mod 32) is the length of a JSON pointer taken from the
 * bytes after it; the rest is the body.  Every function runs on the body,
 * and what must hold between them is asserted (abort() on a violation):
 *
 * - form_to_json() writes at most form_json_size() bytes, and its output
 *   passes json_check();
 * - form_get() in the raw form and json_get() + json_unescape() in the
 *   converted JSON, with form_pointer(), find the same value;
 * - a value json_get() finds in a checked document lies inside it, is
 *   valid JSON itself (a string once quoted), and unescapes to valid
 *   UTF-8 without NUL and no longer than its escaped form;
 * - json_get() never reads outside a document that failed the check;
 * - json_get_many() with the pointer, its prefixes and a fixed list
 *   finds in a checked document what json_get() finds one by one, and
 *   never reads outside any other;
 * - the normalizers give what they document.
 *
 * Buffers are malloc()ed to their exact size, so ASan sees any overrun.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_body.h"


#define ensure(cond)  do { if (!(cond)) abort(); } while (0)


static int utf8_valid(const unsigned char *p, size_t len);
static void check_value(const unsigned char *doc, size_t len,
    const ngx_http_crm_json_value_t *v);
static void check_many(const unsigned char *doc, size_t len, int checked,
    const unsigned char *ptr, size_t plen);
static void check_form(const unsigned char *body, size_t len,
    const unsigned char *ptr, size_t plen);
static void check_normalize(const unsigned char *p, size_t len);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                         rc;
    size_t                      plen, len, n;
    const char                 *reason;
    unsigned char              *ptr, *body, *out;
    ngx_http_crm_json_value_t   v;

    if (size == 0) {
        return 0;
    }

    plen = data[0] % 32;
    if (plen > size - 1) {
        plen = size - 1;
    }

    len = size - 1 - plen;

    ptr = malloc(plen ? plen : 1);
    body = malloc(len ? len : 1);
    out = malloc(len ? len : 1);
    ensure(ptr && body && out);

    memcpy(ptr, data + 1, plen);
    memcpy(body, data + 1 + plen, len);

    /* JSON */

    reason = NULL;
    rc = ngx_http_crm_json_check(body, len, NGX_HTTP_CRM_JSON_DEPTH, &reason);
    ensure(rc == 0 || (rc == -1 && reason != NULL));

    if (ngx_http_crm_json_get(body, len, ptr, plen, &v) == 0) {
        ensure(v.start >= body && v.start + v.len <= body + len);

        if (rc == 0) {
            check_value(body, len, &v);
        }
    }

    check_many(body, len, rc == 0, ptr, plen);

    if (rc == 0) {
        /* the whole document is found under the empty pointer */
        ensure(ngx_http_crm_json_get(body, len, ptr, 0, &v) == 0);
        check_value(body, len, &v);
    }

    /* unescape and normalizers take any bytes */

    n = ngx_http_crm_json_unescape(body, len, out);
    ensure(n <= len);

    check_normalize(body, len);

    /* form */

    check_form(body, len, ptr, plen);

    free(ptr);
    free(body);
    free(out);

    return 0;
}


/* a value found in a checked document */

static void
check_value(const unsigned char *doc, size_t len,
    const ngx_http_crm_json_value_t *v)
{
    size_t          n;
    const char     *reason;
    unsigned char  *copy, *out;

    ensure(v->start >= doc && v->start + v->len <= doc + len);

    copy = malloc(v->len + 2);
    ensure(copy);

    if (v->type == NGX_HTTP_CRM_JSON_STRING) {
        copy[0] = '"';
        memcpy(copy + 1, v->start, v->len);
        copy[v->len + 1] = '"';

        ensure(ngx_http_crm_json_check(copy, v->len + 2, 0, &reason) == 0);

        out = malloc(v->len ? v->len : 1);
        ensure(out);

        n = ngx_http_crm_json_unescape(v->start, v->len, out);
        ensure(n <= v->len);
        ensure(memchr(out, '\0', n) == NULL);
        ensure(utf8_valid(out, n));

        check_normalize(out, n);
        free(out);

    } else {
        ensure(v->type >= NGX_HTTP_CRM_JSON_NUMBER
               && v->type <= NGX_HTTP_CRM_JSON_ARRAY);

        memcpy(copy, v->start, v->len);
        ensure(ngx_http_crm_json_check(copy, v->len,
                                       NGX_HTTP_CRM_JSON_DEPTH, &reason)
               == 0);

        switch (v->type) {
        case NGX_HTTP_CRM_JSON_OBJECT:
            ensure(copy[0] == '{');
            break;
        case NGX_HTTP_CRM_JSON_ARRAY:
            ensure(copy[0] == '[');
            break;
        case NGX_HTTP_CRM_JSON_TRUE:
            ensure(v->len == 4 && memcmp(copy, "true", 4) == 0);
            break;
        case NGX_HTTP_CRM_JSON_FALSE:
            ensure(v->len == 5 && memcmp(copy, "false", 5) == 0);
            break;
        case NGX_HTTP_CRM_JSON_NULL:
            ensure(v->len == 4 && memcmp(copy, "null", 4) == 0);
            break;
        default:
            ensure(copy[0] == '-' || (copy[0] >= '0' && copy[0] <= '9'));
            check_normalize(copy, v->len);
            break;
        }
    }

    free(copy);
}


/* json_get_many() against json_get() */

static void
check_many(const unsigned char *doc, size_t len, int checked,
    const unsigned char *ptr, size_t plen)
{
    size_t                      i, n, count, exp, plens[20];
    unsigned char               found[20];
    const unsigned char        *ps[20];
    ngx_http_crm_json_value_t   v[20], w;

    static const char *const    fixed[] = {
        "", "/a", "/a/0", "/a/b", "/a/0/b", "/0", "/0/a", "/email",
        "/customer/email", "/b~1c", "/"
    };

    n = 0;

    /* the pointer, then its prefixes that end before a "/" */

    ps[n] = ptr;
    plens[n++] = plen;

    for (i = plen; i > 0 && n < 6; i--) {
        if (ptr[i - 1] == '/' && i - 1 > 0) {
            ps[n] = ptr;
            plens[n++] = i - 1;
        }
    }

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        ps[n] = (const unsigned char *) fixed[i];
        plens[n++] = strlen(fixed[i]);
    }

    /* the pointer again, past NGX_HTTP_CRM_JSON_GET_MAX when n is big */

    while (n < 18) {
        ps[n] = ptr;
        plens[n++] = plen;
    }

    memset(found, 2, sizeof(found));

    count = ngx_http_crm_json_get_many(doc, len, ps, plens, n, v, found);
    ensure(count <= n);

    exp = 0;

    for (i = 0; i < n; i++) {
        ensure(found[i] == 0 || found[i] == 1);

        if (found[i]) {
            ensure(v[i].start >= doc && v[i].start + v[i].len <= doc + len);
        }

        if (!checked) {
            continue;
        }

        if (ngx_http_crm_json_get(doc, len, ps[i], plens[i], &w) == 0) {
            exp++;
            ensure(found[i] == 1);
            ensure(v[i].type == w.type && v[i].start == w.start
                   && v[i].len == w.len);

        } else {
            ensure(found[i] == 0);
        }
    }

    ensure(!checked || count == exp);
}


static void
check_form(const unsigned char *body, size_t len, const unsigned char *ptr,
    size_t plen)
{
    int                         rc, frc, jrc;
    size_t                      size, outlen, vlen, n;
    const char                 *reason;
    unsigned char              *json, *fout, *jout, *fptr;
    ngx_http_crm_json_value_t   v;

    size = ngx_http_crm_form_json_size(len);

    json = malloc(size);
    fout = malloc(len ? len : 1);
    fptr = malloc(plen ? plen : 1);
    ensure(json && fout && fptr);

    reason = NULL;
    outlen = 0;
    rc = ngx_http_crm_form_to_json(body, len, json, &outlen, &reason);

    frc = ngx_http_crm_form_get(body, len, ptr, plen, fout, &vlen);

    if (rc != 0) {
        ensure(reason != NULL);
        /* form_get() refuses whatever form_to_json() refuses */
        ensure(frc == -1);
        goto done;
    }

    ensure(outlen <= size);
    ensure(ngx_http_crm_json_check(json, outlen, NGX_HTTP_CRM_JSON_DEPTH,
                                   &reason) == 0);

    if (frc == 0) {
        ensure(vlen <= len);
    }

    if (ngx_http_crm_form_pointer(ptr, plen, fptr) != 0) {
        ensure(frc == -1);
        goto done;
    }

    jrc = ngx_http_crm_json_get(json, outlen, fptr, plen, &v);

    ensure(frc == jrc);

    if (jrc == 0) {
        ensure(v.type == NGX_HTTP_CRM_JSON_STRING);

        jout = malloc(v.len ? v.len : 1);
        ensure(jout);

        n = ngx_http_crm_json_unescape(v.start, v.len, jout);
        ensure(n == vlen && memcmp(jout, fout, n) == 0);

        free(jout);
    }

done:

    free(json);
    free(fout);
    free(fptr);
}


static void
check_normalize(const unsigned char *p, size_t len)
{
    size_t          n, i, at;
    unsigned char  *out;

    out = malloc(len ? len : 1);
    ensure(out);

    n = ngx_http_crm_email_normalize(p, len, out);
    ensure(n <= len);

    if (n) {
        at = 0;

        for (i = 0; i < n; i++) {
            ensure(!(out[i] >= 'A' && out[i] <= 'Z'));

            if (out[i] == '@') {
                at = i + 1;
            }
        }

        ensure(at >= 2 && at < n);
        ensure(out[0] != ' ' && out[n - 1] != ' ');
    }

    n = ngx_http_crm_phone_normalize(p, len, out);
    ensure(n <= len);

    if (n) {
        ensure(n >= 5 && n <= 15);
        ensure(!(n == 11 && out[0] == '8'));

        for (i = 0; i < n; i++) {
            ensure(out[i] >= '0' && out[i] <= '9');
        }
    }

    free(out);
}


/* an independent, table-free UTF-8 check (RFC 3629) */

static int
utf8_valid(const unsigned char *p, size_t len)
{
    size_t         i, k, need;
    unsigned long  cp, min;

    for (i = 0; i < len; /* void */ ) {

        if (p[i] < 0x80) {
            i++;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            need = 1;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            need = 2;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            need = 3;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (len - i <= need) {
            return 0;
        }

        for (k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = cp << 6 | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }

        i += need + 1;
    }

    return 1;
}
