
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * A template is text with placeholders "{word}"; the policy checked at
 * load time that every placeholder is one the template may use, and any
 * other "{" is text (CSS in a banner stays as it is).  A placeholder with
 * no value among vars, or an empty value, renders as nothing, and so that
 * "Thank you, {name}." reads well for a customer with no name, the spaces
 * and one comma written just before an empty placeholder go with it
 * ("Thank you."); at the start of the template, the comma and spaces just
 * after it go instead ("{name}, thank you" gives "thank you").
 *
 * One pass both measures and writes: out NULL only counts, so a caller
 * allocates exactly what the same code then writes.
 */


#include <string.h>

#include "ngx_http_crm_template.h"


static const ngx_http_crm_tvar_t *ngx_http_crm_template_var(
    const unsigned char *name, size_t len, const ngx_http_crm_tvar_t *vars,
    size_t nvars);
static size_t ngx_http_crm_template_text(unsigned char *out,
    const unsigned char *p, size_t len);


size_t
ngx_http_crm_template_render(unsigned char *out, const unsigned char *tpl,
    size_t len, const ngx_http_crm_tvar_t *vars, size_t nvars, int html)
{
    size_t                      n, w, text;
    const unsigned char        *p, *last, *start;
    const ngx_http_crm_tvar_t  *v;

    n = 0;
    start = tpl;                        /* text not yet written */
    last = tpl + len;

    for (p = tpl; p < last; p++) {

        if (*p != '{' || (w = ngx_http_crm_template_word(p, last)) == 0) {
            continue;
        }

        v = ngx_http_crm_template_var(p + 1, w, vars, nvars);
        text = p - start;

        if (v == NULL || v->len == 0) {

            /* the separator before an empty value goes with it */

            while (text && (start[text - 1] == ' '
                            || start[text - 1] == '\t'))
            {
                text--;
            }

            if (text && start[text - 1] == ',') {
                text--;
            }

            n += ngx_http_crm_template_text(out ? out + n : NULL, start, text);

            p += w + 1;                 /* at the '}' */

            if (start == tpl && text == 0) {

                /* at the start: the separator after it goes instead */

                if (p + 1 < last && p[1] == ',') {
                    p++;
                }

                while (p + 1 < last && (p[1] == ' ' || p[1] == '\t')) {
                    p++;
                }
            }

            start = p + 1;
            continue;
        }

        n += ngx_http_crm_template_text(out ? out + n : NULL, start, text);

        if (html) {
            n += ngx_http_crm_html_escape(out ? out + n : NULL, v->data,
                                          v->len);

        } else {
            n += ngx_http_crm_template_text(out ? out + n : NULL, v->data,
                                            v->len);
        }

        p += w + 1;
        start = p + 1;
    }

    n += ngx_http_crm_template_text(out ? out + n : NULL, start, last - start);

    return n;
}


size_t
ngx_http_crm_html_escape(unsigned char *out, const unsigned char *in,
    size_t len)
{
    size_t       i, n, l;
    const char  *e;

    n = 0;

    for (i = 0; i < len; i++) {

        switch (in[i]) {
        case '&':  e = "&amp;";  l = 5; break;
        case '<':  e = "&lt;";   l = 4; break;
        case '>':  e = "&gt;";   l = 4; break;
        case '"':  e = "&quot;"; l = 6; break;
        case '\'': e = "&#39;";  l = 5; break;
        default:   e = NULL;     l = 1; break;
        }

        if (out != NULL) {
            if (e != NULL) {
                memcpy(out + n, e, l);

            } else {
                out[n] = in[i];
            }
        }

        n += l;
    }

    return n;
}


size_t
ngx_http_crm_template_word(const unsigned char *p, const unsigned char *last)
{
    const unsigned char  *q;

    for (q = p + 1; q < last; q++) {
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')
              || (*q >= '0' && *q <= '9') || *q == '_'))
        {
            break;
        }
    }

    if (q == p + 1 || q == last || *q != '}') {
        return 0;
    }

    return q - p - 1;
}


static const ngx_http_crm_tvar_t *
ngx_http_crm_template_var(const unsigned char *name, size_t len,
    const ngx_http_crm_tvar_t *vars, size_t nvars)
{
    size_t  i;

    for (i = 0; i < nvars; i++) {
        if (strlen(vars[i].name) == len
            && memcmp(vars[i].name, name, len) == 0)
        {
            return &vars[i];
        }
    }

    return NULL;
}


static size_t
ngx_http_crm_template_text(unsigned char *out, const unsigned char *p,
    size_t len)
{
    if (out != NULL && len) {
        memcpy(out, p, len);
    }

    return len;
}
