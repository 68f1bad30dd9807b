
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Form bodies (application/x-www-form-urlencoded) as JSON: a form
 * becomes an object of strings, keys in order of appearance, so that a
 * form is stored and looked up as any JSON body is.  A repeated key is
 * emitted each time and jsonb keeps the last, as json_get() finds it.  A
 * form key is the pointer's path written with dots: form_pointer() turns
 * "/customer/email" into "/customer.email", the one-segment pointer of
 * the key "customer.email" in the converted object.
 *
 * Nothing here allocates: callers provide every output buffer, sized as
 * each function says.  Reasons are static strings.
 */


#include <string.h>

#include "ngx_http_crm_json.h"
#include "ngx_http_crm_form.h"


static int ngx_http_crm_form_next(const unsigned char **pp,
    const unsigned char *end, const unsigned char **key, size_t *klen,
    const unsigned char **val, size_t *vlen);
static int ngx_http_crm_form_byte(const unsigned char **pp,
    const unsigned char *end);
static int ngx_http_crm_form_decode(const unsigned char *p, size_t len,
    unsigned char *out, int json, size_t *n, const char **reason);


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
 * Writes into out (plen bytes) the one-segment pointer under which a
 * form's converted JSON holds the field: "/customer/email" becomes
 * "/customer.email", escapes kept.  json_get() with it on the output of
 * form_to_json() finds the last pair of that key in the raw body.  Returns 0,
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
