
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The walk over libyaml's event stream, against the key tables of
 * ngx_http_crm_policy_schema.c.  ctx->event is the current event; each
 * function starts on the event it parses and leaves the last event it used
 * current, so the caller's next ngx_http_crm_next() moves past it.
 *
 * A mapping is parsed in a frame (the keys seen and where each was
 * written), which its check then reads; keys not seen get their defaults
 * here too, through the same scalar converters as the document's values.
 * A list grows its array in the arena by doubling.  ctx->path names the
 * key being parsed, for messages: each level appends to it and restores it.
 */


#include <string.h>

#include "ngx_http_crm_policy_int.h"


static int ngx_http_crm_syntax_error(ngx_http_crm_yaml_ctx_t *ctx);
static int ngx_http_crm_list(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base);
static int ngx_http_crm_value(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base);
static int ngx_http_crm_default(ngx_http_crm_yaml_ctx_t *ctx,
    const ngx_http_crm_key_t *k, char *base, yaml_mark_t *mark);


/*
 * Replaces the current event with the next one.  Aliases, anchors and tags
 * are refused here, once for every node.  Returns 0, or -1 after an error.
 */

int
ngx_http_crm_next(ngx_http_crm_yaml_ctx_t *ctx)
{
    char           got[NGX_HTTP_CRM_GOTLEN];
    yaml_char_t   *anchor, *tag;
    yaml_event_t  *ev;

    ev = &ctx->event;

    if (ctx->have_event) {
        yaml_event_delete(ev);
        ctx->have_event = 0;
    }

    if (!yaml_parser_parse(&ctx->parser, ev)) {
        return ngx_http_crm_syntax_error(ctx);
    }

    ctx->have_event = 1;

    switch (ev->type) {

    case YAML_ALIAS_EVENT:
        anchor = ev->data.alias.anchor;
        ngx_http_crm_got(anchor, anchor ? strlen((char *) anchor) : 0, 1,
                         got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "alias *%s: aliases are not supported; "
                                 "expected the value written out", got);

    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;

    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;

    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;

    default:
        return 0;
    }

    if (anchor != NULL) {
        ngx_http_crm_got(anchor, strlen((char *) anchor), 1, got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "anchor &%s: anchors and aliases are not "
                                 "supported; expected plain values", got);
    }

    if (tag != NULL) {
        ngx_http_crm_got(tag, strlen((char *) tag), 1, got, sizeof(got));
        return ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "tag %s: tags are not supported; "
                                 "expected an untagged value", got);
    }

    return 0;
}


static int
ngx_http_crm_syntax_error(ngx_http_crm_yaml_ctx_t *ctx)
{
    size_t          i, end;
    yaml_mark_t     mark;
    const char     *problem;
    yaml_parser_t  *parser;

    parser = &ctx->parser;
    problem = parser->problem ? parser->problem : "unknown problem";

    switch (parser->error) {

    case YAML_MEMORY_ERROR:
        return ngx_http_crm_fail(ctx, &parser->mark, "out of memory");

    case YAML_READER_ERROR:

        /* the reader knows a byte offset only: count lines up to it */

        memset(&mark, 0, sizeof(yaml_mark_t));
        end = parser->problem_offset < ctx->len ? parser->problem_offset
                                                : ctx->len;

        for (i = 0; i < end; i++) {
            if (ctx->data[i] == '\n') {
                mark.line++;
                mark.column = 0;

            } else if ((ctx->data[i] & 0xc0) != 0x80) {
                mark.column++;
            }
        }

        return ngx_http_crm_fail(ctx, &mark, "YAML syntax error: %s",
                                 problem);

    default:
        return ngx_http_crm_fail(ctx, &parser->problem_mark,
                                 "YAML syntax error: %s", problem);
    }
}


/*
 * Parses a mapping (the current event is its start, or a null scalar that
 * stands for an empty mapping) against the table k->arg into obj, then
 * sets the defaults of the keys it did not name.
 */

int
ngx_http_crm_map(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *obj, ngx_http_crm_frame_t *f)
{
    char                       where[NGX_HTTP_CRM_PATHLEN + 16];
    char                       names[NGX_HTTP_CRM_PATHLEN * 2];
    char                       got[NGX_HTTP_CRM_GOTLEN];
    size_t                     i, n, plen;
    yaml_event_t              *ev;
    const char                *list[NGX_HTTP_CRM_MAXKEYS + 1];
    const ngx_http_crm_key_t  *keys;

    ev = &ctx->event;
    keys = k->arg;

    memset(f, 0, sizeof(ngx_http_crm_frame_t));
    f->keys = keys;
    f->start = ev->start_mark;

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        goto defaults;
    }

    if (ev->type != YAML_MAPPING_START_EVENT) {
        return ngx_http_crm_bad_event(ctx, k);
    }

    for ( ;; ) {
        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        if (ev->type == YAML_MAPPING_END_EVENT) {
            break;
        }

        if (ev->type != YAML_SCALAR_EVENT) {
            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "a %s as a key %s; expected a key name",
                                     ev->type == YAML_MAPPING_START_EVENT
                                     ? "mapping" : "list",
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        n = ev->data.scalar.length;

        for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++) {
            if (strlen(keys[i].name) == n
                && memcmp(keys[i].name, ev->data.scalar.value, n) == 0)
            {
                break;
            }
        }

        ngx_http_crm_got(ev->data.scalar.value, n, 1, got, sizeof(got));

        if (keys[i].name == NULL || i == NGX_HTTP_CRM_MAXKEYS) {
            for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++)
            {
                list[i] = keys[i].name;
            }

            list[i] = NULL;
            ngx_http_crm_names(list, "", "", names, sizeof(names));

            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "unknown key \"%s\" %s; expected one "
                                     "of: %s", got,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)),
                                     names);
        }

        if (f->seen & (1u << i)) {
            return ngx_http_crm_fail(ctx, &ev->start_mark,
                                     "duplicate key \"%s\" %s; expected each "
                                     "key once", got,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        f->seen |= 1u << i;

        plen = ngx_http_crm_push(ctx, ".%s", keys[i].name, 0);

        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        f->marks[i] = ev->start_mark;

        if (ngx_http_crm_value(ctx, &keys[i], obj) != 0) {
            return -1;
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
    }

defaults:

    for (i = 0; keys[i].name != NULL && i < NGX_HTTP_CRM_MAXKEYS; i++) {
        if (f->seen & (1u << i)) {
            continue;
        }

        if (keys[i].flags & NGX_HTTP_CRM_REQUIRED) {
            return ngx_http_crm_fail(ctx, &f->start,
                                     "missing required key \"%s\" %s",
                                     keys[i].name,
                                     ngx_http_crm_where(ctx, where,
                                                        sizeof(where)));
        }

        if (ngx_http_crm_default(ctx, &keys[i], obj, &f->start) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Parses a list (or a null scalar: an empty list) into an array grown in
 * the arena; base is the struct holding the pointer and the count.
 */

static int
ngx_http_crm_list(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base)
{
    char                      *elts, *item, *p;
    size_t                     i, n, cap, plen, *count;
    yaml_event_t              *ev;
    ngx_http_crm_frame_t       f, *fp;
    const ngx_http_crm_key_t  *ik;

    ev = &ctx->event;
    ik = k->arg;
    count = (size_t *) (base + k->noffset);

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        return 0;
    }

    if (ev->type != YAML_SEQUENCE_START_EVENT) {
        return ngx_http_crm_bad_event(ctx, k);
    }

    elts = NULL;
    cap = 0;

    for (i = 0; /* void */; i++) {
        if (ngx_http_crm_next(ctx) != 0) {
            return -1;
        }

        if (ev->type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }

        n = *count;

        if (n == cap) {
            cap = cap ? cap * 2 : 4;

            p = ngx_http_crm_alloc(ctx, cap * k->size);
            if (p == NULL) {
                return -1;
            }

            if (n) {
                memcpy(p, elts, n * k->size);
            }

            elts = p;
            memcpy(base + k->offset, &p, sizeof(void *));
        }

        item = elts + n * k->size;

        plen = ngx_http_crm_push(ctx, "[%zu]", NULL, i);

        if (ik->type == NGX_HTTP_CRM_T_MAP) {
            if (ngx_http_crm_map(ctx, ik, item, &f) != 0) {
                return -1;
            }

            fp = &f;

        } else {
            if (ngx_http_crm_value(ctx, ik, item) != 0) {
                return -1;
            }

            fp = NULL;
        }

        *count = n + 1;

        if (k->check != NULL && k->check(ctx, base, fp, n) != 0) {
            return -1;
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
    }
}


/* the current event is the value of key k whose struct is base */

static int
ngx_http_crm_value(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base)
{
    yaml_event_t          *ev;
    ngx_http_crm_frame_t   f;

    ev = &ctx->event;

    switch (k->type) {

    case NGX_HTTP_CRM_T_MAP:
        if (ngx_http_crm_map(ctx, k, base + k->offset, &f) != 0) {
            return -1;
        }

        if (k->check != NULL) {
            return k->check(ctx, base + k->offset, &f, 0);
        }

        return 0;

    case NGX_HTTP_CRM_T_LIST:
        return ngx_http_crm_list(ctx, k, base);

    default:
        if (ev->type != YAML_SCALAR_EVENT) {
            return ngx_http_crm_bad_event(ctx, k);
        }

        ctx->mark = ev->start_mark;

        return ngx_http_crm_scalar(ctx, k, ev->data.scalar.value,
                                   ev->data.scalar.length,
                                   ev->data.scalar.style
                                   == YAML_PLAIN_SCALAR_STYLE,
                                   base + k->offset);
    }
}


/* sets the default of key k, through the same converters as the YAML */

static int
ngx_http_crm_default(ngx_http_crm_yaml_ctx_t *ctx, const ngx_http_crm_key_t *k,
    char *base, yaml_mark_t *mark)
{
    size_t                     plen;
    const ngx_http_crm_key_t  *sub;

    if (k->init != NULL) {
        return k->init(ctx, base);
    }

    switch (k->type) {

    case NGX_HTTP_CRM_T_MAP:
        plen = ngx_http_crm_push(ctx, ".%s", k->name, 0);

        for (sub = k->arg; sub->name != NULL; sub++) {
            if (ngx_http_crm_default(ctx, sub, base + k->offset, mark) != 0) {
                return -1;
            }
        }

        ctx->plen = plen;
        ctx->path[plen] = '\0';
        return 0;

    case NGX_HTTP_CRM_T_LIST:
        return 0;                           /* empty: the arena is zeroed */

    default:
        if (k->def == NULL) {
            return 0;
        }

        ctx->mark = *mark;
        return ngx_http_crm_scalar(ctx, k, (const unsigned char *) k->def,
                                   strlen(k->def), 1, base + k->offset);
    }
}


int
ngx_http_crm_frame_mark(ngx_http_crm_frame_t *f, const char *name,
    yaml_mark_t *mark)
{
    size_t  i;

    for (i = 0; f->keys[i].name != NULL; i++) {
        if (strcmp(f->keys[i].name, name) == 0) {
            if (f->seen & (1u << i)) {
                *mark = f->marks[i];
                return 1;
            }

            *mark = f->start;
            return 0;
        }
    }

    *mark = f->start;
    return 0;
}
