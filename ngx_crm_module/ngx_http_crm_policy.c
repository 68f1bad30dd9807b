
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The policy loader: YAML text in, a complete ngx_http_crm_policy_t out.
 * This file holds the public entry, the document (one mapping, one
 * document) and the arena; the rest of the loader lives beside it:
 *
 *   ngx_http_crm_policy_yaml.c    the walk over libyaml's events
 *   ngx_http_crm_policy_schema.c  the key tables and the section checks
 *   ngx_http_crm_policy_scalar.c  the scalar converters
 *   ngx_http_crm_policy_error.c   the first error: its text and position
 *
 * The schema is data: each mapping of the policy is a table of key
 * descriptors (name, type, offset in its C struct, range, default written
 * as YAML text, optional check).  One recursive descent walks libyaml's
 * event stream against those tables, so a mapping, a list and a scalar are
 * each parsed and checked in exactly one place, and defaults go through the
 * same converters as the document's own values.
 *
 * The event API (not the document API) is used so that aliases, anchors,
 * tags and a second document are seen where they are written and rejected
 * with their position, and so that the walk stops at the first error.
 *
 * Memory: everything the policy points to, and the policy itself, lives in
 * one arena of malloc()ed chunks that ngx_http_crm_policy_free() releases.
 * On error the arena is released before returning NULL; the libyaml parser
 * and its current event are released on every path by the public function.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_policy_int.h"


#define NGX_HTTP_CRM_CHUNK        4096
#define NGX_HTTP_CRM_ALIGN        16


struct ngx_http_crm_chunk_s {
    ngx_http_crm_chunk_t      *next;
    size_t                     size;
    size_t                     used;
};


static ngx_http_crm_policy_t *ngx_http_crm_document(
    ngx_http_crm_yaml_ctx_t *ctx);
static void ngx_http_crm_arena_free(ngx_http_crm_chunk_t *c);


ngx_http_crm_policy_t *
ngx_http_crm_policy_parse(const char *file, const unsigned char *data,
    size_t len, char *err, size_t errlen)
{
    ngx_http_crm_yaml_ctx_t      ctx;
    ngx_http_crm_policy_t  *policy;

    memset(&ctx, 0, sizeof(ngx_http_crm_yaml_ctx_t));

    ctx.file = file ? file : "policy";
    ctx.data = data ? data : (const unsigned char *) "";
    ctx.len = data ? len : 0;
    ctx.err = err;
    ctx.errlen = errlen;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (!yaml_parser_initialize(&ctx.parser)) {
        (void) ngx_http_crm_fail(&ctx, &ctx.mark, "out of memory");
        return NULL;
    }

    yaml_parser_set_input_string(&ctx.parser, ctx.data, ctx.len);

    policy = ngx_http_crm_document(&ctx);

    if (ctx.have_event) {
        yaml_event_delete(&ctx.event);
    }

    yaml_parser_delete(&ctx.parser);

    if (policy == NULL) {
        ngx_http_crm_arena_free(ctx.arena);
        return NULL;
    }

    policy->arena = ctx.arena;

    return policy;
}


void
ngx_http_crm_policy_free(ngx_http_crm_policy_t *policy)
{
    if (policy != NULL) {
        /* the policy lives in its own arena: read the head first */
        ngx_http_crm_arena_free(policy->arena);
    }
}


/*
 * The stream must hold exactly one document whose root is a mapping.
 * Returns the policy, or NULL after ngx_http_crm_fail().
 */

static ngx_http_crm_policy_t *
ngx_http_crm_document(ngx_http_crm_yaml_ctx_t *ctx)
{
    char                    got[NGX_HTTP_CRM_GOTLEN];
    yaml_event_t           *ev;
    ngx_http_crm_frame_t    f;
    ngx_http_crm_policy_t  *policy;

    ev = &ctx->event;

    if (ngx_http_crm_next(ctx) != 0) {      /* STREAM-START */
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {
        return NULL;
    }

    if (ev->type == YAML_STREAM_END_EVENT) {
        goto empty;
    }

    if (ngx_http_crm_next(ctx) != 0) {      /* the root node */
        return NULL;
    }

    if (ev->type == YAML_SCALAR_EVENT
        && ngx_http_crm_null(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    {
        goto empty;
    }

    if (ev->type != YAML_MAPPING_START_EVENT) {
        if (ev->type == YAML_SCALAR_EVENT) {
            ngx_http_crm_got(ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE,
                             got, sizeof(got));
        } else {
            snprintf(got, sizeof(got), "a list");
        }

        (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "the policy is %s; expected a mapping of "
                                 "sections such as \"version\" and "
                                 "\"database\"", got);
        return NULL;
    }

    policy = ngx_http_crm_alloc(ctx, sizeof(ngx_http_crm_policy_t));
    if (policy == NULL) {
        return NULL;
    }

    if (ngx_http_crm_map(ctx, &ngx_http_crm_policy_root, (char *) policy, &f)
        != 0)
    {
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {      /* DOCUMENT-END */
        return NULL;
    }

    if (ngx_http_crm_next(ctx) != 0) {
        return NULL;
    }

    if (ev->type != YAML_STREAM_END_EVENT) {
        (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                                 "a second YAML document; expected exactly "
                                 "one policy document");
        return NULL;
    }

    return policy;

empty:

    (void) ngx_http_crm_fail(ctx, &ev->start_mark,
                             "the policy is empty; expected a mapping with "
                             "at least \"version\" and \"database\"");
    return NULL;
}


/* the arena: zeroed memory, aligned for any field, freed all at once */

void *
ngx_http_crm_alloc(ngx_http_crm_yaml_ctx_t *ctx, size_t size)
{
    char                  *p;
    size_t                 hdr, chunk;
    ngx_http_crm_chunk_t  *c;

    hdr = (sizeof(ngx_http_crm_chunk_t) + NGX_HTTP_CRM_ALIGN - 1)
          & ~((size_t) NGX_HTTP_CRM_ALIGN - 1);

    if (size > SIZE_MAX / 2) {
        (void) ngx_http_crm_fail(ctx, &ctx->parser.mark, "out of memory");
        return NULL;
    }

    size = (size + NGX_HTTP_CRM_ALIGN - 1) & ~((size_t) NGX_HTTP_CRM_ALIGN - 1);

    c = ctx->arena;

    if (c == NULL || c->size - c->used < size) {
        chunk = size > NGX_HTTP_CRM_CHUNK ? size : NGX_HTTP_CRM_CHUNK;

        c = malloc(hdr + chunk);
        if (c == NULL) {
            (void) ngx_http_crm_fail(ctx, &ctx->parser.mark, "out of memory");
            return NULL;
        }

        c->size = chunk;
        c->used = 0;

        if (ctx->arena != NULL && chunk > NGX_HTTP_CRM_CHUNK) {

            /* a large block: keep the room left in the current chunk */

            c->next = ctx->arena->next;
            ctx->arena->next = c;

        } else {
            c->next = ctx->arena;
            ctx->arena = c;
        }
    }

    p = (char *) c + hdr + c->used;
    c->used += size;

    memset(p, 0, size);

    return p;
}


static void
ngx_http_crm_arena_free(ngx_http_crm_chunk_t *c)
{
    ngx_http_crm_chunk_t  *next;

    for ( /* void */ ; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
}
