
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_CALENDAR_H_INCLUDED_
#define _NGX_HTTP_CRM_CALENDAR_H_INCLUDED_


/*
 * Business time: a ticket's due time counted in the shop's opening hours,
 * in its time zone, skipping its holidays.  Pure C, see
 * ngx_http_crm_calendar.c: the zone comes from a TZif file's bytes read at
 * configuration time; nothing here reads files or touches TZ.
 */


#include <stddef.h>
#include <stdint.h>


/* a time zone parsed from a TZif file (RFC 8536, versions 1 to 3) */
typedef struct ngx_http_crm_tz_s  ngx_http_crm_tz_t;

/* the memory a parsed zone lives in, e.g. a configuration pool */
typedef void *(*ngx_http_crm_alloc_pt)(void *data, size_t size);


/* one weekday: minutes since local midnight, start < end <= 1440; 0, 0 */
typedef struct {                                       /* closed */
    unsigned                   start;
    unsigned                   end;
} ngx_http_crm_cal_hours_t;


typedef struct {
    const ngx_http_crm_tz_t   *tz;
    ngx_http_crm_cal_hours_t   hours[7];       /* by weekday, 0 is Sunday */
    const uint32_t            *holidays;       /* YYYYMMDD, ascending */
    size_t                     nholidays;
} ngx_http_crm_calendar_t;


/*
 * Parses the len bytes of a TZif file; NULL with *err set (a static
 * string) when they are not one.  Everything is allocated with alloc.
 */
ngx_http_crm_tz_t *ngx_http_crm_tz_parse(const unsigned char *buf,
    size_t len, ngx_http_crm_alloc_pt alloc, void *data, const char **err);

/* UTC, for a zone named "UTC" when no file is needed */
const ngx_http_crm_tz_t *ngx_http_crm_tz_utc(void);

/* seconds east of UTC at instant t (Unix seconds) */
int32_t ngx_http_crm_tz_offset(const ngx_http_crm_tz_t *tz, int64_t t);

/*
 * The instant after t at which seconds of business time have passed, t
 * itself for 0; -1 when that is more than ten years away (a calendar open
 * too seldom).  Local times that do not happen (clocks go forward) open at
 * the change, times that happen twice count from the first.
 */
int64_t ngx_http_crm_calendar_add(const ngx_http_crm_calendar_t *cal,
    int64_t t, int64_t seconds);

/* the business seconds between a and b, negative when b is before a */
int64_t ngx_http_crm_calendar_between(const ngx_http_crm_calendar_t *cal,
    int64_t a, int64_t b);

/* floor division of seconds into days, and the weekday (0: Sunday) */

#define ngx_http_crm_day_of(t)                                                \
    ((t) >= 0 ? (t) / 86400 : -((-(t) + 86399) / 86400))

#define ngx_http_crm_wday(day)  ((int) ((((day) % 7) + 11) % 7))


/* y-m-d of a civil day counted from 1970-01-01 */
void ngx_http_crm_civil(int64_t days, int64_t *y, int *m, int *d);

/* writes t as RFC 3339 local time at offset (seconds east of UTC),
 * "2026-03-27T16:00:00+01:00", always 25 bytes; returns the length */
#define NGX_HTTP_CRM_RFC3339_LEN  25
size_t ngx_http_crm_rfc3339(unsigned char *buf, int64_t t, int32_t offset);

/*
 * Writes t at offset as fmt says, strftime's way with the conversions of
 * NGX_HTTP_CRM_STRFTIME and the C locale's names, at most size bytes;
 * returns the length.
 */
size_t ngx_http_crm_calendar_format(unsigned char *out, size_t size,
    const unsigned char *fmt, size_t len, int64_t t, int32_t offset);


#endif /* _NGX_HTTP_CRM_CALENDAR_H_INCLUDED_ */
