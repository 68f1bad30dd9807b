
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the template renderer: the input is a template and
 * up to three values, separated by NUL bytes.  It checks that the measured
 * length is the written one, and that with HTML escaping a value brings no
 * '<', '>', '"' or '\'' of its own: a template without them renders
 * without them.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_template.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                i, n, m, len, nvars;
    unsigned char        *out;
    const uint8_t        *p, *last, *nul;
    ngx_http_crm_tvar_t   vars[3];

    static const char    *names[] = { "name", "ticket", "due" };

    if (size == 0) {
        return 0;
    }

    last = data + size;
    nul = memchr(data + 1, '\0', size - 1);
    len = (nul ? nul : last) - (data + 1);

    nvars = 0;

    for (p = nul ? nul + 1 : last; p < last && nvars < 3; nvars++) {
        nul = memchr(p, '\0', last - p);
        vars[nvars].name = names[nvars];
        vars[nvars].data = p;
        vars[nvars].len = (nul ? nul : last) - p;
        p = nul ? nul + 1 : last;
    }

    n = ngx_http_crm_template_render(NULL, data + 1, len, vars, nvars,
                                     data[0] & 1);
    out = malloc(n ? n : 1);
    m = ngx_http_crm_template_render(out, data + 1, len, vars, nvars,
                                     data[0] & 1);

    if (m != n) {
        abort();
    }

    if ((data[0] & 1)
        && memchr(data + 1, '<', len) == NULL
        && memchr(data + 1, '>', len) == NULL
        && memchr(data + 1, '"', len) == NULL
        && memchr(data + 1, '\'', len) == NULL)
    {
        for (i = 0; i < m; i++) {
            if (out[i] == '<' || out[i] == '>' || out[i] == '"'
                || out[i] == '\'')
            {
                abort();
            }
        }
    }

    free(out);

    return 0;
}
