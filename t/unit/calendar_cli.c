
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The C calendar on the command line, for t/004-calendar.t: one case a
 * line on stdin, one answer a line on stdout.
 *
 *   offset ZONE T
 *   add ZONE HOURS HOLIDAYS T SECONDS
 *   between ZONE HOURS HOLIDAYS A B
 *
 * HOURS: 14 comma-separated minutes, start and end of Sunday to Saturday;
 * HOLIDAYS: comma-separated YYYYMMDD, ascending, or "-".
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_calendar.h"
#include "zonefile.h"


static void *
alloc(void *data, size_t size)
{
    (void) data;

    return malloc(size ? size : 1);
}


static const ngx_http_crm_tz_t *
zone(const char *name)
{
    size_t              len;
    const char         *err;
    unsigned char      *buf;
    ngx_http_crm_tz_t  *tz;

    if (strcmp(name, "UTC") == 0) {
        return ngx_http_crm_tz_utc();
    }

    buf = zonefile(name, &len);
    if (buf == NULL) {
        return NULL;
    }

    tz = ngx_http_crm_tz_parse(buf, len, alloc, NULL, &err);
    free(buf);

    return tz;
}


int
main(void)
{
    int                       i;
    char                      line[4096], op[16], name[256], hours[256];
    char                      hol[2048], *p;
    long long                 a, b;
    uint32_t                  days[256];
    ngx_http_crm_calendar_t   cal;

    setvbuf(stdout, NULL, _IOLBF, 0);

    while (fgets(line, sizeof(line), stdin) != NULL) {
        memset(&cal, 0, sizeof(cal));

        if (sscanf(line, "offset %255s %lld", name, &a) == 2) {
            cal.tz = zone(name);
            printf("%d\n", cal.tz ? ngx_http_crm_tz_offset(cal.tz, a) : 0);
            continue;
        }

        if (sscanf(line, "%15s %255s %255s %2047s %lld %lld", op, name,
                   hours, hol, &a, &b) != 6
            || (cal.tz = zone(name)) == NULL)
        {
            printf("error\n");
            continue;
        }

        for (i = 0, p = hours; i < 14; i++) {
            if (i % 2) {
                cal.hours[i / 2].end = (unsigned) strtoul(p, &p, 10);

            } else {
                cal.hours[i / 2].start = (unsigned) strtoul(p, &p, 10);
            }

            if (*p == ',') {
                p++;
            }
        }

        cal.holidays = days;

        for (p = hol; *p && *p != '-' && cal.nholidays < 256; ) {
            days[cal.nholidays++] = (uint32_t) strtoul(p, &p, 10);

            if (*p == ',') {
                p++;
            }
        }

        if (strcmp(op, "add") == 0) {
            printf("%lld\n", (long long) ngx_http_crm_calendar_add(&cal, a, b));

        } else {
            printf("%lld\n",
                   (long long) ngx_http_crm_calendar_between(&cal, a, b));
        }
    }

    return 0;
}
