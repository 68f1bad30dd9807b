
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of the template renderer and the HTML escape
 * (ngx_http_crm_template.c), printed as TAP; run by t/001-unit.t.  Every
 * template is copied to a malloc()ed buffer of its exact length and the
 * output buffer is exactly the measured length, so valgrind or ASan catch
 * a read or write past either.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_template.h"
#include "tap.h"


static char *render(const char *tpl, const ngx_http_crm_tvar_t *vars,
    size_t n, int html);
static int is(const char *tpl, const char *name, const char *value,
    int html, const char *want);


static const char  *ack = "Thank you, {name}. Your ticket is {ticket}; "
                          "we will answer by {due}. {faq}{ask_phone}";


int
main(void)
{
    char                  *got;
    size_t                 n;
    ngx_http_crm_tvar_t    vars[5];

    vars[0] = (ngx_http_crm_tvar_t) { "name", (const unsigned char *) "Ann",
                                      3 };
    vars[1] = (ngx_http_crm_tvar_t) { "ticket",
                                      (const unsigned char *) "7KQ2M9XH4RTA",
                                      12 };
    vars[2] = (ngx_http_crm_tvar_t) { "due",
                                      (const unsigned char *)
                                      "2026-12-03 10:00", 16 };
    vars[3] = (ngx_http_crm_tvar_t) { "faq", (const unsigned char *)
                                      "https://shop.example/faq ", 25 };
    vars[4] = (ngx_http_crm_tvar_t) { "ask_phone", (const unsigned char *)
                                      "Leave a phone.", 14 };

    got = render(ack, vars, 5, 0);
    tap_ok(strcmp(got, "Thank you, Ann. Your ticket is 7KQ2M9XH4RTA; we "
                  "will answer by 2026-12-03 10:00. https://shop.example/faq "
                  "Leave a phone.") == 0, "every placeholder: %s", got);
    free(got);

    vars[0].len = 0;
    vars[4].len = 0;
    vars[3].len = 0;

    got = render(ack, vars, 5, 0);
    tap_ok(strcmp(got, "Thank you. Your ticket is 7KQ2M9XH4RTA; we will "
                  "answer by 2026-12-03 10:00.") == 0,
           "no name, faq or ask_phone: the comma and the spaces go: \"%s\"",
           got);
    free(got);

    got = render(ack, vars, 0, 0);
    tap_ok(strcmp(got, "Thank you. Your ticket is; we will answer by.")
           == 0, "no values at all: \"%s\"", got);
    free(got);

    is("{name}, welcome", "name", "", 0, "welcome");
    is("{name}, welcome", "name", "Bo", 0, "Bo, welcome");
    is("Hi {name} and welcome", "name", "", 0, "Hi and welcome");
    is("Hi {name}!", "name", "", 0, "Hi!");
    is("Hi,{name}!", "name", "", 0, "Hi!");
    is("{name}", "name", "", 0, "");
    is("", "name", "x", 0, "");
    is("{name}{name}", "name", "ab", 0, "abab");
    is("a{color:red} {name}", "name", "x", 0, "a{color:red} x");
    is("{unknown} {name}", "name", "x", 0, "x");
    is("{ name} {} {name", "name", "x", 0, "{ name} {} {name");
    is("{name}}", "name", "x", 0, "x}");
    is("{{name}", "name", "x", 0, "{x");
    is("tail {", "name", "x", 0, "tail {");

    is("<p>{name}</p>", "name", "<script>alert('x')</script>&\"", 1,
       "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</p>");
    is("<p>{name}</p>", "name", "<b>", 0, "<p><b></p>");

    n = ngx_http_crm_html_escape(NULL, (const unsigned char *) "a<&>'\"b", 7);
    tap_ok(n == 2 + 4 + 5 + 4 + 5 + 6, "html escape measures %zu", n);

    return tap_done();
}


static char *
render(const char *tpl, const ngx_http_crm_tvar_t *vars, size_t nvars,
    int html)
{
    char           *out;
    size_t          len, n, m;
    unsigned char  *t;

    len = strlen(tpl);
    t = malloc(len ? len : 1);
    memcpy(t, tpl, len);

    n = ngx_http_crm_template_render(NULL, t, len, vars, nvars, html);
    out = malloc(n + 1);
    m = ngx_http_crm_template_render((unsigned char *) out, t, len, vars,
                                     nvars, html);
    free(t);

    if (m != n) {
        tap_diag("measured %zu, wrote %zu", n, m);
    }

    out[m] = '\0';

    return out;
}


static int
is(const char *tpl, const char *name, const char *value, int html,
    const char *want)
{
    int                   ok;
    char                 *got;
    unsigned char        *v;
    ngx_http_crm_tvar_t   var;

    var.name = name;
    var.len = strlen(value);
    v = malloc(var.len ? var.len : 1);
    memcpy(v, value, var.len);
    var.data = v;

    got = render(tpl, &var, 1, html);
    ok = tap_ok(strcmp(got, want) == 0, "\"%s\" with %s=\"%s\" gives \"%s\"",
                tpl, name, value, got);
    if (!ok) {
        tap_diag("expected \"%s\"", want);
    }

    free(got);
    free(v);

    return ok;
}
