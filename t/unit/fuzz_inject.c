
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the banner's place in a streamed page
 * (ngx_http_crm_inject.c).  The input's first byte is hold_max, the next
 * one how many cuts (0 to 7) and that many bytes the cuts (each a share
 * of the page); the rest is the page.  Streamed in those pieces, the page
 * with the banner must be what the whole-page search gives, and what is
 * held never more than ngx_http_crm_inject_hold().
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_inject.h"
#include "inject_ref.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long                    at;
    char                   *want, *page;
    size_t                  i, j, v, len, wlen, ncuts, cuts[7];
    uint64_t                hold_max;
    sink_t                  s;
    ngx_http_crm_inject_t   m;

    if (size < 2) {
        return 0;
    }

    hold_max = data[0];
    ncuts = data[1] % 8;

    if (size < 2 + ncuts) {
        return 0;
    }

    len = size - 2 - ncuts;
    page = malloc(len + 1);
    memcpy(page, data + 2 + ncuts, len);

    for (i = 0; i < ncuts; i++) {
        cuts[i] = len * data[2 + i] / 255;
    }

    for (i = 1; i < ncuts; i++) {                   /* ascending */
        v = cuts[i];

        for (j = i; j > 0 && cuts[j - 1] > v; j--) {
            cuts[j] = cuts[j - 1];
        }

        cuts[j] = v;
    }

    at = reference(page, len, hold_max);
    want = expected(page, len, at, &wlen);

    ngx_http_crm_inject_init(&m, hold_max);
    stream(page, len, cuts, ncuts, hold_max, &s);

    if (!same(&s, want, wlen, ngx_http_crm_inject_hold(&m))) {
        abort();
    }

    free(want);
    free(page);

    return 0;
}
