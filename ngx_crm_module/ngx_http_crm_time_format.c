
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Writing times: RFC 3339 at a zone's offset, for the answer's "due", and
 * the strftime subset of feedback.acknowledge.due_format, for people.
 * Pure C, like the calendar: the offset is the caller's, from
 * ngx_http_crm_tz_offset(); nothing reads libc's time zone or locale.
 */


#include <string.h>

#include "ngx_http_crm_calendar.h"


static unsigned char *ngx_http_crm_digits(unsigned char *p, int64_t v,
    int width);


static unsigned char *
ngx_http_crm_digits(unsigned char *p, int64_t v, int width)
{
    int  i;

    if (v < 0) {
        v = 0;
    }

    for (i = width - 1; i >= 0; i--) {
        p[i] = (unsigned char) ('0' + v % 10);
        v /= 10;
    }

    return p + width;
}


size_t
ngx_http_crm_rfc3339(unsigned char *buf, int64_t t, int32_t offset)
{
    int             m, d;
    int64_t         l, y, secs;
    int32_t         o;
    unsigned char  *p;

    l = t + offset;
    secs = l - ngx_http_crm_day_of(l) * 86400;
    ngx_http_crm_civil(ngx_http_crm_day_of(l), &y, &m, &d);

    p = ngx_http_crm_digits(buf, y, 4);
    *p++ = '-';
    p = ngx_http_crm_digits(p, m, 2);
    *p++ = '-';
    p = ngx_http_crm_digits(p, d, 2);
    *p++ = 'T';
    p = ngx_http_crm_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = ngx_http_crm_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = ngx_http_crm_digits(p, secs % 60, 2);

    o = offset;
    *p++ = o < 0 ? '-' : '+';
    o = o < 0 ? -o : o;
    p = ngx_http_crm_digits(p, o / 3600, 2);
    *p++ = ':';
    p = ngx_http_crm_digits(p, o / 60 % 60, 2);

    return p - buf;
}


/*
 * A due time for people: fmt with the conversions of
 * NGX_HTTP_CRM_STRFTIME (the policy checked it), English names as in the
 * C locale; at most size bytes.
 */

size_t
ngx_http_crm_calendar_format(unsigned char *out, size_t size,
    const unsigned char *fmt, size_t len, int64_t t, int32_t offset)
{
    int                   m, d, wday, hour;
    size_t                i, n;
    int64_t               l, y, day, secs;
    int32_t               o;
    const char           *s;
    unsigned char         tmp[16], *p, *end;

    static const char    *wdays[] = { "Sunday", "Monday", "Tuesday",
                                      "Wednesday", "Thursday", "Friday",
                                      "Saturday" };
    static const char    *months[] = { "January", "February", "March",
                                       "April", "May", "June", "July",
                                       "August", "September", "October",
                                       "November", "December" };

    l = t + offset;
    day = ngx_http_crm_day_of(l);
    secs = l - day * 86400;
    ngx_http_crm_civil(day, &y, &m, &d);
    wday = ngx_http_crm_wday(day);
    hour = (int) (secs / 3600);

    p = out;
    end = out + size;

    for (i = 0; i < len; i++) {
        s = NULL;
        n = 0;

        if (fmt[i] != '%' || i + 1 == len) {
            tmp[0] = fmt[i];
            n = 1;

        } else {
            switch (fmt[++i]) {
            case 'Y': n = ngx_http_crm_digits(tmp, y, 4) - tmp; break;
            case 'y': n = ngx_http_crm_digits(tmp, y % 100, 2) - tmp; break;
            case 'm': n = ngx_http_crm_digits(tmp, m, 2) - tmp; break;
            case 'd': n = ngx_http_crm_digits(tmp, d, 2) - tmp; break;
            case 'e':
                n = ngx_http_crm_digits(tmp, d, 2) - tmp;
                if (tmp[0] == '0') {
                    tmp[0] = ' ';
                }
                break;
            case 'H': n = ngx_http_crm_digits(tmp, hour, 2) - tmp; break;
            case 'I':
                n = ngx_http_crm_digits(tmp, hour % 12 ? hour % 12 : 12, 2)
                    - tmp;
                break;
            case 'M':
                n = ngx_http_crm_digits(tmp, secs / 60 % 60, 2) - tmp;
                break;
            case 'S': n = ngx_http_crm_digits(tmp, secs % 60, 2) - tmp; break;
            case 'p': s = hour < 12 ? "AM" : "PM"; break;
            case 'a': s = wdays[wday]; n = 3; break;
            case 'A': s = wdays[wday]; break;
            case 'b': s = months[m - 1]; n = 3; break;
            case 'B': s = months[m - 1]; break;
            case 'z':
                o = offset < 0 ? -offset : offset;
                tmp[0] = offset < 0 ? '-' : '+';
                (void) ngx_http_crm_digits(tmp + 1, o / 3600, 2);
                (void) ngx_http_crm_digits(tmp + 3, o / 60 % 60, 2);
                n = 5;
                break;
            default: tmp[0] = fmt[i]; n = 1; break;  /* "%%" */
            }
        }

        if (s != NULL) {
            n = n ? n : strlen(s);

        } else {
            s = (const char *) tmp;
        }

        if ((size_t) (end - p) < n) {
            break;
        }

        memcpy(p, s, n);
        p += n;
    }

    return p - out;
}
