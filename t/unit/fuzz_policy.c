
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * libFuzzer harness of the policy loader: any bytes must give a policy or
 * NULL with a one-line message, never a crash, a leak or undefined
 * behaviour.  Seeds: t/unit/fuzz_corpus/.  Run on a scratch copy:
 *
 *   cp -r t/unit/fuzz_corpus /tmp/corpus
 *   t/unit/fuzz_policy -max_total_time=60 /tmp/corpus
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_policy.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                    err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_http_crm_policy_t  *policy;

    policy = ngx_http_crm_policy_parse("fuzz.yaml", data, size, err,
                                       sizeof(err));

    if (policy == NULL) {
        if (strncmp(err, "fuzz.yaml:", 10) != 0
            || strchr(err, '\n') != NULL)
        {
            abort();
        }

        return 0;
    }

    ngx_http_crm_policy_free(policy);

    return 0;
}
