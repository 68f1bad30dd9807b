
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the request-body core:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I ngx_crm_module \
 *       t/unit/fuzz_body.c ngx_crm_module/ngx_http_crm_json.c \
 *       ngx_crm_module/ngx_http_crm_json_walk.c \
 *       ngx_crm_module/ngx_http_crm_form.c \
 *       ngx_crm_module/ngx_http_crm_fields.c -o /tmp/fuzz_body
 *
 * The first byte (mod 32) is the length of a JSON pointer taken from the
 * bytes after it; the rest is the body.  Every function runs on the body,
 * and what must hold between them is asserted (abort() on a violation):
 *
 * - form_to_json() writes at most form_json_size() bytes, and its output
 *   passes json_check();
 * - ref_form_get(), a naive lookup of the last pair in the raw form, and
 *   json_get() + json_unescape() in the converted JSON, with
 *   form_pointer(), find the same value;
 * - a value json_get() finds in a checked document lies inside it, is
 *   valid JSON itself (a string once quoted), and unescapes to valid
 *   UTF-8 without NUL and no longer than its escaped form;
 * - json_get() never reads outside a document that failed the check;
 * - json_get_many() with the pointer, its prefixes and a fixed list, and
 *   json_get() with each, find in a checked document what ref_get(), a
 *   naive recursive lookup written here, finds; neither reads outside
 *   any other document;
 * - the normalizers give what they document.
 *
 * Buffers are malloc()ed to their exact size, so ASan sees any overrun.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_json.h"
#include "ngx_http_crm_form.h"
#include "ngx_http_crm_fields.h"


#define ensure(cond)  do { if (!(cond)) abort(); } while (0)


static int utf8_valid(const unsigned char *p, size_t len);
static void check_value(const unsigned char *doc, size_t len,
    const ngx_http_crm_json_value_t *v);
static void check_many(const unsigned char *doc, size_t len, int checked,
    const unsigned char *ptr, size_t plen);
static void check_form(const unsigned char *body, size_t len,
    const unsigned char *ptr, size_t plen);
static void check_normalize(const unsigned char *p, size_t len);
static int ref_get(const unsigned char *p, const unsigned char *end,
    const unsigned char *ptr, size_t plen, ngx_http_crm_json_value_t *v);
static const unsigned char *ref_skip(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *ref_ws(const unsigned char *p,
    const unsigned char *end);
static size_t ref_segment(const unsigned char *ptr, size_t plen,
    unsigned char *out, size_t *used);
static int ref_form_get(const unsigned char *body, size_t len,
    const unsigned char *ptr, size_t plen, unsigned char *out,
    size_t *outlen);


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


/* json_get_many() and json_get() against ref_get() */

static void
check_many(const unsigned char *doc, size_t len, int checked,
    const unsigned char *ptr, size_t plen)
{
    int                         rc;
    size_t                      i, n, count, exp, plens[20];
    unsigned char               found[20];
    const unsigned char        *ps[20];
    ngx_http_crm_json_value_t   v[20], w, r;

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

        rc = ngx_http_crm_json_get(doc, len, ps[i], plens[i], &w);

        if (ref_get(ref_ws(doc, doc + len), doc + len, ps[i], plens[i], &r)
            == 0)
        {
            ensure(rc == 0 && r.type == w.type && r.start == w.start
                   && r.len == w.len);
            exp++;
            ensure(found[i] == 1);
            ensure(v[i].type == w.type && v[i].start == w.start
                   && v[i].len == w.len);

        } else {
            ensure(rc == -1);
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

    if (rc != 0) {
        ensure(reason != NULL);
        goto done;
    }

    frc = ref_form_get(body, len, ptr, plen, fout, &vlen);

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


/*
 * The reference lookup for checked documents: at the value p, follow the
 * pointer by decoding each segment and each key in full, taking the last
 * member of that name; as plain as it can be, sharing no code with the
 * walk but json_unescape() of keys.
 */

static int
ref_get(const unsigned char *p, const unsigned char *end,
    const unsigned char *ptr, size_t plen, ngx_http_crm_json_value_t *v)
{
    int                   dig;
    size_t                slen, used, klen, i;
    unsigned char         seg[64], *key;
    unsigned long long    index, k;
    const unsigned char  *q, *s, *last;

    if (plen == 0) {
        q = ref_skip(p, end);
        v->start = p;
        v->len = q - p;

        switch (*p) {
        case '"':
            v->type = NGX_HTTP_CRM_JSON_STRING;
            v->start = p + 1;
            v->len -= 2;
            break;
        case '{': v->type = NGX_HTTP_CRM_JSON_OBJECT; break;
        case '[': v->type = NGX_HTTP_CRM_JSON_ARRAY; break;
        case 't': v->type = NGX_HTTP_CRM_JSON_TRUE; break;
        case 'f': v->type = NGX_HTTP_CRM_JSON_FALSE; break;
        case 'n': v->type = NGX_HTTP_CRM_JSON_NULL; break;
        default: v->type = NGX_HTTP_CRM_JSON_NUMBER; break;
        }

        return 0;
    }

    if (ptr[0] != '/') {
        return -1;
    }

    slen = ref_segment(ptr, plen, seg, &used);

    if (slen == (size_t) -1) {
        return -1;
    }

    if (*p == '{') {
        last = NULL;
        p = ref_ws(p + 1, end);

        while (*p != '}') {
            s = p + 1;
            q = ref_skip(p, end);
            klen = (size_t) (q - 1 - s);

            key = malloc(klen ? klen : 1);
            ensure(key);
            i = ngx_http_crm_json_unescape(s, klen, key);
            p = ref_ws(ref_ws(q, end) + 1, end);

            if (i == slen && memcmp(key, seg, slen) == 0) {
                last = p;
            }

            free(key);

            p = ref_ws(ref_skip(p, end), end);

            if (*p == ',') {
                p = ref_ws(p + 1, end);
            }
        }

        return last ? ref_get(last, end, ptr + used, plen - used, v) : -1;
    }

    if (*p != '[') {
        return -1;
    }

    if (slen == 0 || slen > 19 || (seg[0] == '0' && slen > 1)) {
        return -1;
    }

    index = 0;

    for (i = 0; i < slen; i++) {
        dig = seg[i] - '0';

        if (dig < 0 || dig > 9) {
            return -1;
        }

        index = index * 10 + (unsigned) dig;
    }

    p = ref_ws(p + 1, end);

    for (k = 0; *p != ']'; k++) {

        if (k == index) {
            return ref_get(p, end, ptr + used, plen - used, v);
        }

        p = ref_ws(ref_skip(p, end), end);

        if (*p == ',') {
            p = ref_ws(p + 1, end);
        }
    }

    return -1;
}


/* the first segment of ptr, decoded; -1 for a bad "~" or one too long */

static size_t
ref_segment(const unsigned char *ptr, size_t plen, unsigned char *out,
    size_t *used)
{
    size_t  i, n;

    n = 0;

    for (i = 1; i < plen && ptr[i] != '/'; i++) {

        if (n == 64) {
            return (size_t) -1;
        }

        if (ptr[i] == '~') {
            if (i + 1 == plen || (ptr[i + 1] != '0' && ptr[i + 1] != '1')) {
                return (size_t) -1;
            }

            out[n++] = (ptr[++i] == '1') ? '/' : '~';
            continue;
        }

        out[n++] = ptr[i];
    }

    /* a bad "~" further on makes the whole pointer bad */

    for (*used = i; i < plen; i++) {
        if (ptr[i] == '~') {
            if (i + 1 == plen || (ptr[i + 1] != '0' && ptr[i + 1] != '1')) {
                return (size_t) -1;
            }

            i++;
        }
    }

    return n;
}


/* the end of the value at p of a checked document, by recursion */

static const unsigned char *
ref_skip(const unsigned char *p, const unsigned char *end)
{
    unsigned char  close;

    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\\') {
                p++;
            }
        }

        return p + 1;
    }

    if (*p == '{' || *p == '[') {
        close = (*p == '{') ? '}' : ']';
        p = ref_ws(p + 1, end);

        while (*p != close) {
            p = ref_ws(ref_skip(p, end), end);

            if (*p == ':' || *p == ',') {
                p = ref_ws(p + 1, end);
            }
        }

        return p + 1;
    }

    while (p < end && strchr(" \t\r\n,:]}", *p) == NULL) {
        p++;
    }

    return p;
}


static const unsigned char *
ref_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    return p;
}


/*
 * The reference lookup in a form that form_to_json() accepted: the
 * decoded value of the last pair whose decoded key is the pointer with
 * its "/" as "." (after "~1" and "~0" are read).
 */

static int
ref_form_get(const unsigned char *body, size_t len, const unsigned char *ptr,
    size_t plen, unsigned char *out, size_t *outlen)
{
    int                   found;
    size_t                i, n, klen, kn;
    unsigned char        *want, *key;
    const unsigned char  *p, *end, *amp, *eq;

    found = 0;

    if (plen == 0 || ptr[0] != '/') {
        return -1;
    }

    want = malloc(plen);
    key = malloc(len + 1);
    ensure(want && key);

    n = 0;

    for (i = 1; i < plen; i++) {
        if (ptr[i] == '~') {
            if (i + 1 == plen || (ptr[i + 1] != '0' && ptr[i + 1] != '1')) {
                goto done;
            }

            want[n++] = (ptr[++i] == '1') ? '/' : '~';

        } else {
            want[n++] = (ptr[i] == '/') ? '.' : ptr[i];
        }
    }

    end = body + len;

    for (p = body; p < end; p = amp + 1) {
        amp = memchr(p, '&', end - p);
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            continue;
        }

        eq = memchr(p, '=', amp - p);
        klen = (eq ? eq : amp) - p;

        /* form_to_json() accepted the body: every "%" has two hex digits */

        kn = 0;

        for (i = 0; i < klen; i++) {
            if (p[i] == '%') {
                key[kn++] = (unsigned char) strtoul(
                    (char []) { (char) p[i + 1], (char) p[i + 2], 0 }, NULL, 16);
                i += 2;

            } else {
                key[kn++] = (p[i] == '+') ? ' ' : p[i];
            }
        }

        if (kn != n || memcmp(key, want, n) != 0) {
            continue;
        }

        found = 1;
        *outlen = 0;

        for (i = klen + (eq != NULL); p + i < amp; i++) {
            if (p[i] == '%') {
                out[(*outlen)++] = (unsigned char) strtoul(
                    (char []) { (char) p[i + 1], (char) p[i + 2], 0 }, NULL, 16);
                i += 2;

            } else {
                out[(*outlen)++] = (p[i] == '+') ? ' ' : p[i];
            }
        }
    }

done:

    free(want);
    free(key);

    return found ? 0 : -1;
}
