
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Business time.  A zone is a TZif file's transitions (RFC 8536, the
 * 64-bit block of versions 2 and 3) and, past the last one, its POSIX TZ
 * footer rule ("CET-1CEST,M3.5.0,M10.5.0/3").  Local dates are walked one
 * by one: a date is open when its weekday has hours and it is no holiday,
 * from the first instant its local time reaches the start to the first
 * instant it reaches the end.  A local time that does not happen (clocks
 * go forward) is reached at the change; one that happens twice, at its
 * first.  sql/fn_calendar.sql counts the same way, for the staff views.
 *
 * Days are civil days from 1970-01-01 (proleptic Gregorian); nothing here
 * reads a file, the environment or libc's time zone.  Times are written
 * for people and machines by ngx_http_crm_time_format.c.
 */


#include <string.h>

#include "ngx_http_crm_calendar.h"


#define NGX_HTTP_CRM_CAL_DAYS    3653         /* ten years of dates */
#define NGX_HTTP_CRM_CAL_TIMES   100000       /* transitions at most */


typedef struct {
    int             kind;                     /* 'J', 'n' or 'M' */
    int             month, week, day;         /* day: Jn / n / weekday */
    int32_t         time;                     /* seconds, local */
} ngx_http_crm_tz_when_t;


struct ngx_http_crm_tz_s {
    size_t                  n;
    int64_t                *at;              /* transitions, ascending */
    int32_t                *off;             /* the offset from at[i] on */
    int32_t                 first;           /* before at[0] */
    int                     rule;            /* a footer rule applies */
    int                     dst;             /* ... with daylight time */
    int32_t                 std_off;         /* seconds east of UTC */
    int32_t                 dst_off;
    ngx_http_crm_tz_when_t  start, end;
};


static const ngx_http_crm_tz_t  ngx_http_crm_tz_utc_zone;


static int64_t ngx_http_crm_days(int64_t y, int m, int d);
static int ngx_http_crm_leap(int64_t y);
static int ngx_http_crm_mdays(int64_t y, int m);
static uint32_t ngx_http_crm_be32(const unsigned char *p);
static int64_t ngx_http_crm_be64(const unsigned char *p);
static const char *ngx_http_crm_tz_footer(ngx_http_crm_tz_t *tz,
    const unsigned char *p, const unsigned char *last);
static const unsigned char *ngx_http_crm_tz_name(const unsigned char *p,
    const unsigned char *last);
static const unsigned char *ngx_http_crm_tz_time(const unsigned char *p,
    const unsigned char *last, int32_t *secs, int32_t max);
static const unsigned char *ngx_http_crm_tz_rule(const unsigned char *p,
    const unsigned char *last, ngx_http_crm_tz_when_t *w);
static int64_t ngx_http_crm_tz_when(const ngx_http_crm_tz_when_t *w,
    int64_t y, int32_t off);
static int32_t ngx_http_crm_tz_by_rule(const ngx_http_crm_tz_t *tz,
    int64_t t);
static int64_t ngx_http_crm_local_instant(const ngx_http_crm_tz_t *tz,
    int64_t local);
static int ngx_http_crm_open(const ngx_http_crm_calendar_t *cal,
    int64_t day, int64_t *ps, int64_t *pe);
static int64_t ngx_http_crm_local_day(const ngx_http_crm_tz_t *tz,
    int64_t t);


/* --- civil days ------------------------------------------------------- */

/* days from 1970-01-01 of y-m-d (H. Hinnant's days_from_civil) */

static int64_t
ngx_http_crm_days(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


void
ngx_http_crm_civil(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t  z, era, doe, yoe, doy, mp;

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *m = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}


static int
ngx_http_crm_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


static int
ngx_http_crm_mdays(int64_t y, int m)
{
    static const int  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                  30, 31 };

    return mdays[m - 1] + (m == 2 && ngx_http_crm_leap(y));
}


/* --- TZif --------------------------------------------------------------- */

static uint32_t
ngx_http_crm_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | p[3];
}


static int64_t
ngx_http_crm_be64(const unsigned char *p)
{
    return (int64_t) (((uint64_t) ngx_http_crm_be32(p) << 32)
                      | ngx_http_crm_be32(p + 4));
}


ngx_http_crm_tz_t *
ngx_http_crm_tz_parse(const unsigned char *buf, size_t len,
    ngx_http_crm_alloc_pt alloc, void *data, const char **err)
{
    size_t                i, tsize, block, cnt[6];
    const char           *e;
    ngx_http_crm_tz_t    *tz;
    const unsigned char  *p, *last, *times, *idx, *types;

    last = buf + len;

    if (len < 44 || memcmp(buf, "TZif", 4) != 0) {
        *err = "no TZif header";
        return NULL;
    }

    p = buf;
    tsize = 4;

    for ( ;; ) {
        if ((size_t) (last - p) < 44) {
            *err = "truncated header";
            return NULL;
        }

        /* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */

        for (i = 0; i < 6; i++) {
            cnt[i] = ngx_http_crm_be32(p + 20 + 4 * i);

            if (cnt[i] > NGX_HTTP_CRM_CAL_TIMES) {
                *err = "a count out of range";
                return NULL;
            }
        }

        if (cnt[4] == 0 || (cnt[0] && cnt[0] != cnt[4])
            || (cnt[1] && cnt[1] != cnt[4]))
        {
            *err = "bad type counts";
            return NULL;
        }

        block = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5]
                + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];

        if ((size_t) (last - p - 44) < block) {
            *err = "truncated data";
            return NULL;
        }

        if (tsize == 8 || p[4] < '2') {
            break;
        }

        /* version 2 and later: the 64-bit block after the 32-bit one */

        p += 44 + block;
        tsize = 8;

        if ((size_t) (last - p) < 4 || memcmp(p, "TZif", 4) != 0) {
            *err = "no second TZif header";
            return NULL;
        }
    }

    times = p + 44;
    idx = times + cnt[3] * tsize;
    types = idx + cnt[3];

    tz = alloc(data, sizeof(ngx_http_crm_tz_t));
    if (tz == NULL) {
        *err = "out of memory";
        return NULL;
    }

    memset(tz, 0, sizeof(ngx_http_crm_tz_t));

    tz->n = cnt[3];
    tz->at = alloc(data, (tz->n + 1) * sizeof(int64_t));
    tz->off = alloc(data, (tz->n + 1) * sizeof(int32_t));

    if (tz->at == NULL || tz->off == NULL) {
        *err = "out of memory";
        return NULL;
    }

    tz->first = (int32_t) ngx_http_crm_be32(types);

    for (i = 0; i < tz->n; i++) {
        tz->at[i] = tsize == 8 ? ngx_http_crm_be64(times + 8 * i)
                               : (int32_t) ngx_http_crm_be32(times + 4 * i);

        if (i && tz->at[i] <= tz->at[i - 1]) {
            *err = "transitions out of order";
            return NULL;
        }

        if (idx[i] >= cnt[4]) {
            *err = "a transition of an unknown type";
            return NULL;
        }

        tz->off[i] = (int32_t) ngx_http_crm_be32(types + 6 * idx[i]);
    }

    for (i = 0; i < cnt[4]; i++) {
        int32_t  o = (int32_t) ngx_http_crm_be32(types + 6 * i);

        if (o <= -25 * 3600 || o >= 26 * 3600) {
            *err = "an offset out of range";
            return NULL;
        }
    }

    if (tsize == 8) {
        p = times + block;

        e = ngx_http_crm_tz_footer(tz, p, last);
        if (e != NULL) {
            *err = e;
            return NULL;
        }
    }

    return tz;
}


/* "\nTZ\n": empty, or a POSIX TZ string */

static const char *
ngx_http_crm_tz_footer(ngx_http_crm_tz_t *tz, const unsigned char *p,
    const unsigned char *last)
{
    int32_t               off;
    const unsigned char  *end;

    if (p == last) {
        return NULL;
    }

    if (*p++ != '\n') {
        return "no footer";
    }

    end = memchr(p, '\n', last - p);
    if (end == NULL) {
        return "an unterminated footer";
    }

    if (p == end) {
        return NULL;
    }

    p = ngx_http_crm_tz_name(p, end);
    if (p == NULL) {
        return "a bad zone name in the footer";
    }

    p = ngx_http_crm_tz_time(p, end, &off, 24 * 3600);
    if (p == NULL) {
        return "a bad offset in the footer";
    }

    tz->rule = 1;
    tz->std_off = -off;
    tz->dst_off = tz->std_off + 3600;

    if (p == end) {
        return NULL;
    }

    p = ngx_http_crm_tz_name(p, end);
    if (p == NULL) {
        return "a bad daylight zone name in the footer";
    }

    if (p < end && *p != ',') {
        p = ngx_http_crm_tz_time(p, end, &off, 24 * 3600);
        if (p == NULL) {
            return "a bad daylight offset in the footer";
        }

        tz->dst_off = -off;
    }

    if (p == end || *p != ',') {
        return "daylight time without a rule in the footer";
    }

    p = ngx_http_crm_tz_rule(p + 1, end, &tz->start);

    if (p == NULL || p == end || *p != ',') {
        return "a bad daylight rule in the footer";
    }

    p = ngx_http_crm_tz_rule(p + 1, end, &tz->end);

    if (p != end) {
        return "a bad daylight rule in the footer";
    }

    tz->dst = 1;

    return NULL;
}


/* "CET" or "<+0330>" */

static const unsigned char *
ngx_http_crm_tz_name(const unsigned char *p, const unsigned char *last)
{
    const unsigned char  *start;

    if (p < last && *p == '<') {
        start = ++p;

        while (p < last && *p != '>') {
            p++;
        }

        return (p < last && p - start >= 3) ? p + 1 : NULL;
    }

    start = p;

    while (p < last && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
    {
        p++;
    }

    return p - start >= 3 ? p : NULL;
}


/* [+-]hh[:mm[:ss]], at most max seconds either way */

static const unsigned char *
ngx_http_crm_tz_time(const unsigned char *p, const unsigned char *last,
    int32_t *secs, int32_t max)
{
    int      sign, i, n, v[3];

    sign = 1;

    if (p < last && (*p == '+' || *p == '-')) {
        sign = *p++ == '-' ? -1 : 1;
    }

    for (i = 0; i < 3; i++) {
        if (i && (p == last || *p != ':')) {
            break;
        }

        if (i) {
            p++;
        }

        for (n = 0, v[i] = 0; p < last && *p >= '0' && *p <= '9' && n < 3;
             n++, p++)
        {
            v[i] = v[i] * 10 + (*p - '0');
        }

        if (n == 0 || (i && v[i] > 59)) {
            return NULL;
        }
    }

    for ( /* void */ ; i < 3; i++) {
        v[i] = 0;
    }

    *secs = sign * (v[0] * 3600 + v[1] * 60 + v[2]);

    return (*secs > max || *secs < -max) ? NULL : p;
}


/* Jn, n or Mm.w.d, then an optional "/time" (02:00 by default) */

static const unsigned char *
ngx_http_crm_tz_rule(const unsigned char *p, const unsigned char *last,
    ngx_http_crm_tz_when_t *w)
{
    int  *f[3], max[3], min[3], i, nf, v;

    memset(w, 0, sizeof(ngx_http_crm_tz_when_t));

    if (p < last && (*p == 'J' || *p == 'M')) {
        w->kind = *p++;

    } else {
        w->kind = 'n';
    }

    if (w->kind == 'M') {
        f[0] = &w->month; min[0] = 1; max[0] = 12;
        f[1] = &w->week; min[1] = 1; max[1] = 5;
        f[2] = &w->day; min[2] = 0; max[2] = 6;
        nf = 3;

    } else {
        f[0] = &w->day;
        min[0] = w->kind == 'J' ? 1 : 0;
        max[0] = 365;
        nf = 1;
    }

    for (i = 0; i < nf; i++) {
        if (i) {
            if (p == last || *p != '.') {
                return NULL;
            }

            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return NULL;
        }

        for (v = 0; p < last && *p >= '0' && *p <= '9' && v <= 999; p++) {
            v = v * 10 + (*p - '0');
        }

        if (v < min[i] || v > max[i]) {
            return NULL;
        }

        *f[i] = v;
    }

    w->time = 2 * 3600;

    if (p < last && *p == '/') {
        /* RFC 8536: -167 to 167 hours */
        p = ngx_http_crm_tz_time(p + 1, last, &w->time, 167 * 3600);
    }

    return p;
}


/* the instant of rule w in year y, its time counted at offset off */

static int64_t
ngx_http_crm_tz_when(const ngx_http_crm_tz_when_t *w, int64_t y, int32_t off)
{
    int      first, d;
    int64_t  day;

    day = ngx_http_crm_days(y, 1, 1);

    if (w->kind == 'J') {
        day += w->day - 1 + (ngx_http_crm_leap(y) && w->day >= 60);

    } else if (w->kind == 'n') {
        day += w->day;

    } else {
        day = ngx_http_crm_days(y, w->month, 1);
        first = ngx_http_crm_wday(day);
        d = 1 + (w->day - first + 7) % 7 + (w->week - 1) * 7;

        if (d > ngx_http_crm_mdays(y, w->month)) {
            d -= 7;
        }

        day += d - 1;
    }

    return day * 86400 + w->time - off;
}


static int32_t
ngx_http_crm_tz_by_rule(const ngx_http_crm_tz_t *tz, int64_t t)
{
    int      m, d;
    int64_t  y, s, e;

    if (!tz->dst) {
        return tz->std_off;
    }

    ngx_http_crm_civil(ngx_http_crm_day_of(t + tz->std_off), &y, &m, &d);

    s = ngx_http_crm_tz_when(&tz->start, y, tz->std_off);
    e = ngx_http_crm_tz_when(&tz->end, y, tz->dst_off);

    if (s < e) {
        return (t >= s && t < e) ? tz->dst_off : tz->std_off;
    }

    /* the southern hemisphere: daylight time across the new year */

    return (t >= e && t < s) ? tz->std_off : tz->dst_off;
}


const ngx_http_crm_tz_t *
ngx_http_crm_tz_utc(void)
{
    return &ngx_http_crm_tz_utc_zone;
}


int32_t
ngx_http_crm_tz_offset(const ngx_http_crm_tz_t *tz, int64_t t)
{
    size_t  lo, hi, mid;

    if (tz->n == 0) {
        return tz->rule ? ngx_http_crm_tz_by_rule(tz, t) : tz->first;
    }

    if (t < tz->at[0]) {
        return tz->first;
    }

    if (t >= tz->at[tz->n - 1]) {
        return tz->rule ? ngx_http_crm_tz_by_rule(tz, t)
                        : tz->off[tz->n - 1];
    }

    /* the last transition at or before t */

    lo = 0;
    hi = tz->n - 1;

    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;

        if (tz->at[mid] <= t) {
            lo = mid;

        } else {
            hi = mid;
        }
    }

    return tz->off[lo];
}


/* --- business time ------------------------------------------------------ */

/*
 * The first instant at which local time reaches local (seconds from
 * 1970-01-01 00:00 local): of the candidates that show it the earliest;
 * none does in a gap, and then the instant of the change.
 */

static int64_t
ngx_http_crm_local_instant(const ngx_http_crm_tz_t *tz, int64_t local)
{
    int      i;
    int64_t  u, c, best, lo, hi, mid, cand[3];

    u = local - ngx_http_crm_tz_offset(tz, local);

    cand[0] = local - ngx_http_crm_tz_offset(tz, u - 86400);
    cand[1] = u;
    cand[2] = local - ngx_http_crm_tz_offset(tz, u + 86400);

    best = INT64_MAX;

    for (i = 0; i < 3; i++) {
        c = cand[i];

        if (c + ngx_http_crm_tz_offset(tz, c) == local && c < best) {
            best = c;
        }
    }

    if (best != INT64_MAX) {
        return best;
    }

    lo = u - 2 * 86400;
    hi = u + 2 * 86400;

    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;

        if (mid + ngx_http_crm_tz_offset(tz, mid) >= local) {
            hi = mid;

        } else {
            lo = mid;
        }
    }

    return hi;
}


/* the local date's open period; 0 when it is closed */

static int
ngx_http_crm_open(const ngx_http_crm_calendar_t *cal, int64_t day,
    int64_t *ps, int64_t *pe)
{
    int                              m, d;
    size_t                           lo, hi, mid;
    int64_t                          y;
    uint32_t                         ymd;
    const ngx_http_crm_cal_hours_t  *h;

    h = &cal->hours[ngx_http_crm_wday(day)];

    if (h->end <= h->start) {
        return 0;
    }

    if (cal->nholidays) {
        ngx_http_crm_civil(day, &y, &m, &d);
        ymd = (uint32_t) (y * 10000 + m * 100 + d);

        lo = 0;
        hi = cal->nholidays;

        while (lo < hi) {
            mid = lo + (hi - lo) / 2;

            if (cal->holidays[mid] == ymd) {
                return 0;
            }

            if (cal->holidays[mid] < ymd) {
                lo = mid + 1;

            } else {
                hi = mid;
            }
        }
    }

    *ps = ngx_http_crm_local_instant(cal->tz, day * 86400 + h->start * 60);
    *pe = ngx_http_crm_local_instant(cal->tz, day * 86400 + h->end * 60);

    return *pe > *ps;
}


static int64_t
ngx_http_crm_local_day(const ngx_http_crm_tz_t *tz, int64_t t)
{
    int64_t  l = t + ngx_http_crm_tz_offset(tz, t);

    return ngx_http_crm_day_of(l);
}


int64_t
ngx_http_crm_calendar_add(const ngx_http_crm_calendar_t *cal, int64_t t,
    int64_t seconds)
{
    int64_t  day, last, ps, pe, s;

    if (seconds <= 0) {
        return t;
    }

    /* the date before too: its period may end after midnight in UTC */

    day = ngx_http_crm_local_day(cal->tz, t) - 1;
    last = day + NGX_HTTP_CRM_CAL_DAYS;

    for ( /* void */ ; day <= last; day++) {
        if (!ngx_http_crm_open(cal, day, &ps, &pe) || pe <= t) {
            continue;
        }

        s = ps > t ? ps : t;

        if (pe - s >= seconds) {
            return s + seconds;
        }

        seconds -= pe - s;
    }

    return -1;
}


int64_t
ngx_http_crm_calendar_between(const ngx_http_crm_calendar_t *cal,
    int64_t a, int64_t b)
{
    int64_t  day, last, ps, pe, s, e, x, sign, total;

    sign = 1;

    if (b < a) {
        x = a;
        a = b;
        b = x;
        sign = -1;
    }

    day = ngx_http_crm_local_day(cal->tz, a) - 1;
    last = ngx_http_crm_local_day(cal->tz, b);

    if (last > day + NGX_HTTP_CRM_CAL_DAYS) {
        last = day + NGX_HTTP_CRM_CAL_DAYS;
    }

    total = 0;

    for ( /* void */ ; day <= last; day++) {
        if (!ngx_http_crm_open(cal, day, &ps, &pe)) {
            continue;
        }

        s = ps > a ? ps : a;
        e = pe < b ? pe : b;

        if (e > s) {
            total += e - s;
        }
    }

    return sign * total;
}


static const ngx_http_crm_tz_t  ngx_http_crm_tz_utc_zone = {
    .n = 0, .first = 0, .rule = 0
};
