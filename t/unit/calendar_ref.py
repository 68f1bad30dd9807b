"""An independent reference of business time, for t/004-calendar.t: the
same cases as calendar_cli on stdin, answered with Python's zoneinfo (the
system's tzdata, its own TZif and POSIX-rule reader) and datetime.

A local date is open when its weekday has hours and it is no holiday;
its period runs from the first instant its local time reaches the start
to the first instant it reaches the end; a time in a gap is reached at
the change.  Ten years of dates at most, as the module counts.
"""

import sys
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1)
ZONES = {}


def zone(name):
    if name not in ZONES:
        ZONES[name] = ZoneInfo(name)
    return ZONES[name]


def local(tz, t):
    """the naive local time at Unix second t"""
    return datetime.fromtimestamp(t, timezone.utc).astimezone(tz).replace(
        tzinfo=None)


def instant(tz, lt):
    """the first Unix second at which local time in tz reaches lt"""
    shows = []
    for fold in (0, 1):
        t = int(lt.replace(tzinfo=tz, fold=fold).timestamp())
        if local(tz, t) == lt:
            shows.append(t)
    if shows:
        return min(shows)
    # a gap: fold=1 lies before the change, fold=0 after it
    lo = int(lt.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(lt.replace(tzinfo=tz, fold=0).timestamp())
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local(tz, mid) >= lt:
            hi = mid
        else:
            lo = mid
    return hi


def periods(tz, hours, holidays, first, count):
    d = first
    for _ in range(count):
        s, e = hours[(d.weekday() + 1) % 7]
        if e > s and int(d.strftime('%Y%m%d')) not in holidays:
            midnight = datetime(d.year, d.month, d.day)
            ps = instant(tz, midnight + timedelta(minutes=s))
            pe = instant(tz, midnight + timedelta(minutes=e))
            if pe > ps:
                yield ps, pe
        d += timedelta(days=1)


def parse(hours, holidays):
    m = [int(x) for x in hours.split(',')]
    h = [(m[2 * i], m[2 * i + 1]) for i in range(7)]
    hol = set() if holidays == '-' else {int(x) for x in holidays.split(',')}
    return h, hol


def add(tz, hours, holidays, t, secs):
    if secs <= 0:
        return t
    first = local(tz, t).date() - timedelta(days=1)
    for ps, pe in periods(tz, hours, holidays, first, 3654):
        if pe <= t:
            continue
        s = max(ps, t)
        if pe - s >= secs:
            return s + secs
        secs -= pe - s
    return -1


def between(tz, hours, holidays, a, b):
    sign = 1
    if b < a:
        a, b, sign = b, a, -1
    first = local(tz, a).date() - timedelta(days=1)
    last = local(tz, b).date()
    n = min((last - first).days, 3653) + 1
    total = 0
    for ps, pe in periods(tz, hours, holidays, first, n):
        s, e = max(ps, a), min(pe, b)
        if e > s:
            total += e - s
    return sign * total


def main():
    for line in sys.stdin:
        f = line.split()
        tz = zone(f[1])
        if f[0] == 'offset':
            t = int(f[2])
            off = datetime.fromtimestamp(t, timezone.utc).astimezone(tz)
            print(int(off.utcoffset().total_seconds()), flush=True)
            continue
        hours, hol = parse(f[2], f[3])
        a, b = int(f[4]), int(f[5])
        fn = add if f[0] == 'add' else between
        print(fn(tz, hours, hol, a, b), flush=True)


main()
