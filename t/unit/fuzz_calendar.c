
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the zone parser and the calendar: the input is a
 * TZif file (./config.sh fuzz calendar seeds it with real ones).  A zone
 * that parses must answer offsets within a day either way and due times
 * after their start.  (A made-up zone whose offsets jump by more than the
 * hours of a day may count a period twice in between(); real zones are
 * held to add() and between() agreeing by t/004-calendar.t.)
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_calendar.h"


#define NALLOC  4096

static void    *allocs[NALLOC];
static size_t   nallocs;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void *
alloc(void *data, size_t size)
{
    (void) data;

    if (nallocs == NALLOC) {
        return NULL;
    }

    return allocs[nallocs++] = malloc(size ? size : 1);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                       i;
    int32_t                   off;
    int64_t                   t, due;
    const char               *err;
    unsigned char            *copy;
    ngx_http_crm_tz_t        *tz;
    ngx_http_crm_calendar_t   cal;

    static const int64_t      at[] = { -2208988800LL, 0, 1774749600,
                                       1792890000, 4102444800LL };

    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    tz = ngx_http_crm_tz_parse(copy, size, alloc, NULL, &err);
    free(copy);

    if (tz != NULL) {
        memset(&cal, 0, sizeof(cal));
        cal.tz = tz;

        for (i = 1; i < 6; i++) {
            cal.hours[i].start = 540;
            cal.hours[i].end = 1020;
        }

        for (i = 0; i < 5; i++) {
            t = at[i];
            off = ngx_http_crm_tz_offset(tz, t);

            if (off <= -26 * 3600 || off >= 26 * 3600) {
                abort();
            }

            due = ngx_http_crm_calendar_add(&cal, t, 8 * 3600);

            if (due != -1 && due < t) {
                abort();
            }

            (void) ngx_http_crm_calendar_between(&cal, t, t + 30 * 86400);
        }
    }

    while (nallocs) {
        free(allocs[--nallocs]);
    }

    return 0;
}
