
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_TAP_H_INCLUDED_
#define _NGX_HTTP_CRM_TAP_H_INCLUDED_


/*
 * The smallest TAP producer: ok(cond, name, ...) prints "ok N - name" or
 * "not ok N - name"; diag() prints "# ..." lines; done() prints the plan
 * "1..N" last (TAP allows it at the end) and returns the exit status.
 */


#include <stdarg.h>
#include <stdio.h>


static int  tap_run;
static int  tap_failed;


static inline int
tap_ok(int pass, const char *fmt, ...)
{
    va_list  args;

    tap_run++;

    if (!pass) {
        tap_failed++;
    }

    printf("%sok %d - ", pass ? "" : "not ", tap_run);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
    fflush(stdout);

    return pass;
}


static inline void
tap_diag(const char *fmt, ...)
{
    va_list  args;

    printf("# ");

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
    fflush(stdout);
}


static inline int
tap_done(void)
{
    printf("1..%d\n", tap_run);

    if (tap_failed) {
        tap_diag("failed %d of %d", tap_failed, tap_run);
    }

    return tap_failed ? 1 : 0;
}


#define ok(cond, ...)  tap_ok((cond) ? 1 : 0, __VA_ARGS__)
#define diag           tap_diag
#define done_testing   tap_done


#endif /* _NGX_HTTP_CRM_TAP_H_INCLUDED_ */
