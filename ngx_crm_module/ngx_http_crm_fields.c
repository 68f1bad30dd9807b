
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The fields a customer is known by, from the values the capture reads
 * out of a body: the e-mail and the phone, normalized so that the same
 * person written two ways is one key (the customer cache and the
 * database both use it).  Plain C, no allocation: out may be in.
 */


#include <stddef.h>

#include "ngx_http_crm_fields.h"


#define ngx_http_crm_is_digit(c)  ((c) >= '0' && (c) <= '9')
#define ngx_http_crm_is_ws(c)                                                 \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


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
