
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of business time (ngx_http_crm_calendar.c), printed as TAP;
 * run by t/001-unit.t.  Zones are the system's zoneinfo files (tzdata);
 * malformed zones are cut and bent copies of a real one, each in a
 * malloc()ed buffer of its exact length, so valgrind or ASan catch a read
 * past it.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_calendar.h"
#include "tap.h"
#include "zonefile.h"


#define MAXALLOC  64

static void   *allocs[MAXALLOC * 64];
static size_t  nallocs;


static void *
alloc(void *data, size_t size)
{
    void  *p;

    (void) data;

    if (nallocs == sizeof(allocs) / sizeof(allocs[0])) {
        return NULL;
    }

    p = malloc(size ? size : 1);
    allocs[nallocs++] = p;

    return p;
}


static const ngx_http_crm_tz_t *
zone(const char *name)
{
    size_t                len;
    const char           *err;
    unsigned char        *buf;
    ngx_http_crm_tz_t    *tz;

    buf = zonefile(name, &len);
    if (buf == NULL) {
        diag("no /usr/share/zoneinfo/%s: is tzdata installed?", name);
        return ngx_http_crm_tz_utc();
    }

    tz = ngx_http_crm_tz_parse(buf, len, alloc, NULL, &err);
    free(buf);

    if (tz == NULL) {
        diag("%s: %s", name, err);
        return ngx_http_crm_tz_utc();
    }

    return tz;
}


/* seconds of "YYYY-MM-DD HH:MM" UTC */

static int64_t
at(const char *s)
{
    int      y, m, d, hh, mm;
    int64_t  days;

    sscanf(s, "%d-%d-%d %d:%d", &y, &m, &d, &hh, &mm);

    y -= m <= 2;
    days = (int64_t) (y / 400) * 146097
           + (y % 400) * 365 + (y % 400) / 4 - (y % 400) / 100
           + (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1 - 719468;

    return days * 86400 + hh * 3600 + mm * 60;
}


static void
hours(ngx_http_crm_calendar_t *cal, int from, unsigned start,
    unsigned end, int to)
{
    int  i;

    for (i = 0; i < 7; i++) {
        cal->hours[i].start = (i >= from && i <= to) ? start : 0;
        cal->hours[i].end = (i >= from && i <= to) ? end : 0;
    }
}


static int
bad(const unsigned char *src, size_t len, const char *name)
{
    const char      *err = NULL;
    unsigned char   *copy;
    ngx_http_crm_tz_t *tz;

    copy = malloc(len ? len : 1);
    memcpy(copy, src, len);

    tz = ngx_http_crm_tz_parse(copy, len, alloc, NULL, &err);
    free(copy);

    return ok(tz == NULL && err != NULL, "%s: refused (%s)", name,
              err ? err : "accepted");
}


int
main(void)
{
    char                     buf[64];
    size_t                   n, len;
    uint32_t                 xmas[] = { 20261225 };
    unsigned char           *berlin_bytes, *copy;
    unsigned char            out[NGX_HTTP_CRM_RFC3339_LEN + 1];
    const ngx_http_crm_tz_t *berlin, *ny, *tehran, *lord_howe, *kolkata;
    ngx_http_crm_calendar_t  cal;

    berlin = zone("Europe/Berlin");
    ny = zone("America/New_York");
    tehran = zone("Asia/Tehran");
    lord_howe = zone("Australia/Lord_Howe");
    kolkata = zone("Asia/Kolkata");

    /* offsets, from the transitions and from the footer rule */

    ok(ngx_http_crm_tz_offset(berlin, at("2026-03-29 00:59")) == 3600
       && ngx_http_crm_tz_offset(berlin, at("2026-03-29 01:00")) == 7200,
       "Berlin goes to summer time at 01:00Z on 2026-03-29");
    ok(ngx_http_crm_tz_offset(berlin, at("2026-10-25 00:59")) == 7200
       && ngx_http_crm_tz_offset(berlin, at("2026-10-25 01:00")) == 3600,
       "... and back at 01:00Z on 2026-10-25");
    ok(ngx_http_crm_tz_offset(berlin, at("2090-07-01 12:00")) == 7200
       && ngx_http_crm_tz_offset(berlin, at("2090-12-01 12:00")) == 3600,
       "2090, past the file's transitions: the footer rule");
    ok(ngx_http_crm_tz_offset(ny, at("2026-03-08 06:59")) == -18000
       && ngx_http_crm_tz_offset(ny, at("2026-03-08 07:00")) == -14400,
       "New York: second Sunday of March at 02:00 local");
    ok(ngx_http_crm_tz_offset(ny, at("2090-11-05 05:59")) == -14400
       && ngx_http_crm_tz_offset(ny, at("2090-11-05 06:00")) == -18000,
       "... in 2090 by the footer: first Sunday of November");
    ok(ngx_http_crm_tz_offset(tehran, at("2026-06-01 00:00")) == 12600,
       "Tehran: +03:30 all year since 2022");
    ok(ngx_http_crm_tz_offset(lord_howe, at("2090-01-01 00:00")) == 39600
       && ngx_http_crm_tz_offset(lord_howe, at("2090-07-01 00:00"))
          == 37800,
       "Lord Howe: half an hour of daylight time, southern summer");
    ok(ngx_http_crm_tz_offset(kolkata, at("2026-01-01 00:00")) == 19800,
       "Kolkata: +05:30");
    ok(ngx_http_crm_tz_offset(ngx_http_crm_tz_utc(), 0) == 0, "UTC");

    /* business time over weekends, holidays and clock changes */

    memset(&cal, 0, sizeof(cal));
    cal.tz = berlin;
    hours(&cal, 1, 540, 1020, 5);

    ok(ngx_http_crm_calendar_add(&cal, at("2026-03-27 15:00"), 7200)
       == at("2026-03-30 08:00"),
       "Friday 16:00 Berlin + 2 business hours: Monday 10:00 summer time");
    ok(ngx_http_crm_calendar_add(&cal, at("2026-10-23 14:00"), 7200)
       == at("2026-10-26 09:00"),
       "... and over the autumn change: Monday 10:00 winter time");
    ok(ngx_http_crm_calendar_add(&cal, at("2026-03-27 20:00"), 3600)
       == at("2026-03-30 08:00"),
       "after closing, counting starts at the next opening");
    ok(ngx_http_crm_calendar_add(&cal, at("2026-03-02 08:00"), 0)
       == at("2026-03-02 08:00"), "no time: at once");
    ok(ngx_http_crm_calendar_add(&cal, at("2026-03-02 08:00"), 3 * 5 * 8 * 3600)
       == at("2026-03-20 16:00"),
       "a limit of three working weeks ends three Fridays later");
    ok(ngx_http_crm_calendar_between(&cal, at("2026-03-27 15:00"),
                                     at("2026-03-30 08:00")) == 7200
       && ngx_http_crm_calendar_between(&cal, at("2026-03-30 08:00"),
                                        at("2026-03-27 15:00")) == -7200,
       "between: 2 hours, negative backwards");

    cal.holidays = xmas;
    cal.nholidays = 1;
    ok(ngx_http_crm_calendar_add(&cal, at("2026-12-24 15:00"), 7200)
       == at("2026-12-28 09:00"), "a holiday is skipped");
    cal.nholidays = 0;

    hours(&cal, 0, 0, 1440, 6);
    ok(ngx_http_crm_calendar_between(&cal, at("2026-03-28 00:00"),
                                     at("2026-03-30 00:00")) == 172800,
       "24x7 across the change: real seconds");
    ok(ngx_http_crm_calendar_add(&cal, at("2026-10-24 12:00"), 86400)
       == at("2026-10-25 12:00"), "24x7: a day is 86400 seconds");

    hours(&cal, 0, 0, 1440, 0);
    ok(ngx_http_crm_calendar_between(&cal, at("2026-03-27 00:00"),
                                     at("2026-04-01 00:00")) == 82800,
       "00:00-24:00 on the Sunday clocks go forward: 23 hours");
    ok(ngx_http_crm_calendar_between(&cal, at("2026-10-23 00:00"),
                                     at("2026-10-28 00:00")) == 90000,
       "... on the Sunday they go back: 25 hours");

    hours(&cal, 0, 120, 240, 0);
    ok(ngx_http_crm_calendar_between(&cal, at("2026-03-27 00:00"),
                                     at("2026-04-01 00:00")) == 3600,
       "hours from 02:00, which does not happen, open at the change");
    hours(&cal, 0, 120, 180, 0);
    ok(ngx_http_crm_calendar_between(&cal, at("2026-10-23 00:00"),
                                     at("2026-10-28 00:00")) == 7200,
       "hours from 02:00, which happens twice, open at the first");

    hours(&cal, 9, 0, 0, 9);
    ok(ngx_http_crm_calendar_add(&cal, at("2026-03-02 08:00"), 60) == -1,
       "a calendar never open: no due time");

    /* writing it */

    n = ngx_http_crm_rfc3339(out, at("2026-03-27 15:00"),
                             ngx_http_crm_tz_offset(berlin,
                                                    at("2026-03-27 15:00")));
    out[n] = '\0';
    ok(n == NGX_HTTP_CRM_RFC3339_LEN
       && strcmp((char *) out, "2026-03-27T16:00:00+01:00") == 0,
       "RFC 3339 at Berlin's offset: %s", out);
    n = ngx_http_crm_rfc3339(out, at("2026-07-01 12:00"), -4 * 3600);
    out[n] = '\0';
    ok(strcmp((char *) out, "2026-07-01T08:00:00-04:00") == 0,
       "... and west of UTC: %s", out);

    n = ngx_http_crm_calendar_format((unsigned char *) buf, sizeof(buf) - 1,
            (const unsigned char *) "%a %e %b %Y, %I:%M %p (%z) %%", 30,
            at("2026-03-02 14:05"), 3600);
    buf[n] = '\0';
    ok(strcmp(buf, "Mon  2 Mar 2026, 03:05 PM (+0100) %") == 0,
       "due_format: %s", buf);
    n = ngx_http_crm_calendar_format((unsigned char *) buf, 10,
            (const unsigned char *) "%A %d %B", 8, at("2026-09-30 00:00"),
            0);
    ok(n <= 10, "due_format stays within its buffer (%zu bytes)", n);

    /* malformed zones */

    berlin_bytes = zonefile("Europe/Berlin", &len);

    if (berlin_bytes != NULL) {
        bad(berlin_bytes, 10, "10 bytes");
        bad(berlin_bytes, 60, "cut in the first block");
        bad(berlin_bytes, len / 2, "cut in the second block");
        bad((const unsigned char *) "TZjf", 4, "bad magic");

        copy = malloc(len);
        memcpy(copy, berlin_bytes, len);
        copy[32] = 0x7f;                 /* timecnt of the first block */
        bad(copy, len, "a count past the end");

        memcpy(copy, berlin_bytes, len);
        copy[len - 5] = '!';             /* in the footer */
        bad(copy, len, "a bent footer");

        memcpy(copy, berlin_bytes, len);
        copy[len - 1] = 'X';             /* the footer's last newline */
        bad(copy, len, "an unterminated footer");
        free(copy);
        free(berlin_bytes);
    }

    while (nallocs) {
        free(allocs[--nallocs]);
    }

    return done_testing();
}
