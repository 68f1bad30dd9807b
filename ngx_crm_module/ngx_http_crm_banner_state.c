
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The banner state of each customer, made as the customer cache is
 * (ngx_http_crm_cache.c): one shared zone "ngx_http_crm_banners" of
 * cache.size bytes with a slab pool, a red-black tree keyed by the
 * customer id, a queue of entries most recently used first, entries
 * evicted from its tail when the slab is full.  Everything in the zone is
 * read and written under the slab pool's mutex.
 *
 * An entry holds the state as PostgreSQL last gave it, packed (see
 * ngx_http_crm_banners_pack()), when that was, whether a lookup is on its
 * way, and this node's impressions today per banner.  A view copies the
 * packed state out and unpacks it into the request's pool.  A missing or
 * stale entry makes the worker that sees it first send one lookup (the
 * entry is marked "filling" under the mutex, so the thousand views of one
 * customer during a miss make one query); a stale entry is used meanwhile.
 * A lookup that fails clears the mark, so that a later view tries again;
 * one lost with its worker is retried after twice database.timeout.
 *
 * The cap: impressions are counted here as they are given, and the count
 * that decides is the larger of this node's and PostgreSQL's (every
 * node's, as of the last lookup): exact on one node, caught up on the
 * others at each lookup.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_banner_state.h"


/* this node's impressions of one banner today, by the crc32 of its id */
typedef struct {
    uint32_t                       hash;
    uint32_t                       n;
} ngx_http_crm_banner_count_t;


#define NGX_HTTP_CRM_BANNER_COUNTS  8


typedef struct {
    ngx_rbtree_node_t              node;      /* key: customer id */
    ngx_queue_t                    queue;
    uint64_t                       stored;    /* ms; 0: never filled */
    uint64_t                       filling;   /* ms; 0: no lookup out */
    uint32_t                       day;       /* of counts */
    uint32_t                       filled_day;
    ngx_http_crm_banner_count_t    counts[NGX_HTTP_CRM_BANNER_COUNTS];
    size_t                         len;
    u_char                         data[1];   /* the packed state */
} ngx_http_crm_banner_node_t;


/* impressions by banner id since the zone was made, for crm_status */
typedef struct {
    uint64_t                       shown;
    uint64_t                       would_show;
    size_t                         len;
    u_char                         id[64];
} ngx_http_crm_banner_tally_t;


#define NGX_HTTP_CRM_BANNER_TALLIES  32


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    ngx_uint_t                     entries;
    ngx_uint_t                     hits;
    ngx_uint_t                     misses;
    ngx_http_crm_banner_tally_t    tally[NGX_HTTP_CRM_BANNER_TALLIES];
} ngx_http_crm_banners_sh_t;


struct ngx_http_crm_banners_s {
    ngx_http_crm_banners_sh_t     *sh;        /* NULL: off */
    ngx_slab_pool_t               *shpool;
    ngx_msec_t                     ttl;
};


/* a lookup: owned by itself, freed when answered */
typedef struct {
    ngx_http_crm_pg_query_t        query;
    ngx_http_crm_banners_t        *zone;
    uint64_t                       cid;
    uint32_t                       day;
    const char                    *values[3];
    u_char                         id[NGX_INT64_LEN + 1];
} ngx_http_crm_banner_fill_t;


/* packed values are cut to this */
#define NGX_HTTP_CRM_BANNER_VALUE_MAX  1024


static ngx_int_t ngx_http_crm_banners_init(ngx_shm_zone_t *zone,
    void *data);
static ngx_uint_t ngx_http_crm_banners_may_fill(
    ngx_http_crm_banner_node_t *bn, uint64_t now, ngx_msec_t wait);
static ngx_http_crm_banner_node_t *ngx_http_crm_banners_lookup(
    ngx_http_crm_banners_sh_t *sh, uint64_t cid);
static ngx_http_crm_banner_node_t *ngx_http_crm_banners_alloc(
    ngx_http_crm_banners_t *zone, uint64_t cid, size_t len);
static void ngx_http_crm_banners_free(ngx_http_crm_banners_t *zone,
    ngx_http_crm_banner_node_t *bn);
static void ngx_http_crm_banners_fill(ngx_log_t *log,
    ngx_http_crm_main_conf_t *crmcf, uint64_t cid, uint32_t day);
static void ngx_http_crm_banners_filled(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static u_char *ngx_http_crm_banners_pack(PGresult *res, size_t *len,
    ngx_log_t *log);
static ngx_int_t ngx_http_crm_banners_unpack(u_char *p, size_t len,
    ngx_uint_t today, ngx_http_crm_banner_node_t *bn,
    ngx_http_crm_banner_state_t *st);


static const char  ngx_http_crm_banners_sql[] =
    "SELECT n, id, would_show, shown, key, value "
    "FROM crm.banner_rows($1::bigint, $2, $3::jsonb)";

static const char  *ngx_http_crm_banner_var_names[] = {
    NGX_HTTP_CRM_BANNER_VAR_NAMES
};


ngx_http_crm_banners_t *
ngx_http_crm_banners_zone(ngx_conf_t *cf, size_t size, ngx_msec_t ttl)
{
    ngx_shm_zone_t          *zone;
    ngx_http_crm_banners_t  *bz;

    static ngx_str_t  name = ngx_string("ngx_http_crm_banners");

    bz = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_banners_t));
    if (bz == NULL) {
        return NULL;
    }

    bz->ttl = ttl;

    if (ttl == 0) {
        return bz;
    }

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_crm_module);
    if (zone == NULL) {
        return NULL;
    }

    if (zone->data != NULL) {
        return zone->data;
    }

    zone->init = ngx_http_crm_banners_init;
    zone->data = bz;
    zone->noreuse = 0;

    return bz;
}


static ngx_int_t
ngx_http_crm_banners_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_crm_banners_t  *obz = data;

    size_t                   len;
    ngx_slab_pool_t         *shpool;
    ngx_http_crm_banners_t  *bz;

    bz = zone->data;

    if (obz != NULL) {
        bz->sh = obz->sh;
        bz->shpool = obz->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    bz->shpool = shpool;

    if (zone->shm.exists) {
        bz->sh = shpool->data;
        return NGX_OK;
    }

    bz->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_crm_banners_sh_t));
    if (bz->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = bz->sh;

    ngx_rbtree_init(&bz->sh->rbtree, &bz->sh->sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&bz->sh->queue);

    len = sizeof(" in crm banner zone \"\"") + zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in crm banner zone \"%V\"%Z",
                &zone->shm.name);

    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * NGX_OK with *state, unpacked into r->pool (fresh or stale: a stale one
 * also starts a lookup); NGX_DECLINED when the customer is not there yet
 * (a lookup is started unless one is out) or the zone is off.
 */

ngx_int_t
ngx_http_crm_banners_get(ngx_http_request_t *r,
    ngx_http_crm_main_conf_t *crmcf, uint64_t cid, uint32_t day,
    ngx_http_crm_banner_state_t **state)
{
    u_char                       *copy;
    size_t                        len;
    uint64_t                      now;
    ngx_int_t                     rc;
    ngx_uint_t                    fill, today;
    ngx_msec_t                    wait;
    ngx_http_crm_banners_t       *bz;
    ngx_http_crm_banner_node_t   *bn, snap;
    ngx_http_crm_banners_sh_t    *sh;
    ngx_http_crm_banner_state_t  *st;

    bz = crmcf->banners;

    if (bz == NULL || bz->sh == NULL || cid == 0) {
        return NGX_DECLINED;
    }

    sh = bz->sh;
    now = ngx_http_crm_now_ms();
    wait = 2 * (ngx_msec_t) crmcf->policy->database.timeout;
    copy = NULL;
    len = 0;
    fill = 0;
    today = 0;

    ngx_shmtx_lock(&bz->shpool->mutex);

    bn = ngx_http_crm_banners_lookup(sh, cid);

    if (bn == NULL) {
        bn = ngx_http_crm_banners_alloc(bz, cid, 0);
    }

    if (bn != NULL) {
        ngx_queue_remove(&bn->queue);
        ngx_queue_insert_head(&sh->queue, &bn->queue);

        if (bn->stored == 0 || now - bn->stored >= bz->ttl
            || bn->stored > now + bz->ttl)
        {
            fill = ngx_http_crm_banners_may_fill(bn, now, wait);
        }

        if (bn->stored) {
            copy = ngx_pnalloc(r->pool, bn->len);

            if (copy != NULL) {
                ngx_memcpy(copy, bn->data, bn->len);
                len = bn->len;
                snap = *bn;
                today = (bn->filled_day == day);

                if (bn->day != day) {
                    ngx_memzero(snap.counts, sizeof(snap.counts));
                }
            }
        }
    }

    if (copy != NULL) {
        sh->hits++;

    } else {
        sh->misses++;
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);

    if (fill) {
        ngx_http_crm_banners_fill(r->connection->log, crmcf, cid, day);
    }

    if (copy == NULL) {
        return NGX_DECLINED;
    }

    st = ngx_palloc(r->pool, sizeof(ngx_http_crm_banner_state_t));
    if (st == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_crm_banners_unpack(copy, len, today, &snap, st);
    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    *state = st;

    return NGX_OK;
}


/*
 * One impression of banner for customer cid, today: NGX_OK when under its
 * cap (max 0: none) and counted, NGX_DECLINED when the cap is reached.
 * shown is the count the state gave (every node's, as of its lookup).
 */

ngx_int_t
ngx_http_crm_banners_take(ngx_http_crm_banners_t *bz, uint64_t cid,
    ngx_str_t *banner, ngx_uint_t shown, ngx_uint_t max, uint32_t day)
{
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_uint_t                   i, n;
    ngx_http_crm_banner_node_t  *bn;
    ngx_http_crm_banner_count_t *c;

    if (bz == NULL || bz->sh == NULL) {
        return NGX_OK;
    }

    hash = ngx_crc32_short(banner->data, banner->len);
    rc = NGX_OK;

    ngx_shmtx_lock(&bz->shpool->mutex);

    bn = ngx_http_crm_banners_lookup(bz->sh, cid);

    if (bn != NULL) {
        if (bn->day != day) {
            ngx_memzero(bn->counts, sizeof(bn->counts));
            bn->day = day;
        }

        c = NULL;

        for (i = 0; i < NGX_HTTP_CRM_BANNER_COUNTS; i++) {
            if (bn->counts[i].n == 0 || bn->counts[i].hash == hash) {
                c = &bn->counts[i];
                break;
            }
        }

        n = ngx_max(shown, (ngx_uint_t) (c ? c->n : 0));

        if (max && (n >= max || c == NULL)) {
            /* capped, or a ninth banner today that could not be counted */
            rc = NGX_DECLINED;

        } else if (c != NULL) {
            c->hash = hash;
            c->n = (uint32_t) (n + 1);
        }
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);

    return rc;
}


/* an impression counted by take() that was not shown after all */

void
ngx_http_crm_banners_untake(ngx_http_crm_banners_t *bz, uint64_t cid,
    ngx_str_t *banner, uint32_t day)
{
    uint32_t                     hash;
    ngx_uint_t                   i;
    ngx_http_crm_banner_node_t  *bn;

    if (bz == NULL || bz->sh == NULL) {
        return;
    }

    hash = ngx_crc32_short(banner->data, banner->len);

    ngx_shmtx_lock(&bz->shpool->mutex);

    bn = ngx_http_crm_banners_lookup(bz->sh, cid);

    if (bn != NULL && bn->day == day) {
        for (i = 0; i < NGX_HTTP_CRM_BANNER_COUNTS; i++) {
            if (bn->counts[i].n && bn->counts[i].hash == hash) {
                bn->counts[i].n--;
                break;
            }
        }
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);
}


void
ngx_http_crm_banners_stats(ngx_http_crm_banners_t *bz, ngx_uint_t *entries,
    ngx_uint_t *hits, ngx_uint_t *misses)
{
    *entries = 0;
    *hits = 0;
    *misses = 0;

    if (bz == NULL || bz->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&bz->shpool->mutex);
    *entries = bz->sh->entries;
    *hits = bz->sh->hits;
    *misses = bz->sh->misses;
    ngx_shmtx_unlock(&bz->shpool->mutex);
}


/*
 * PostgreSQL said the customer's state changed (NOTIFY crm_banner): her
 * entry is stale from now on, and is looked up again at once; views meanwhile
 * use what it holds.
 */

void
ngx_http_crm_banners_changed(ngx_http_crm_main_conf_t *crmcf, uint64_t cid,
    uint32_t day)
{
    uint64_t                     now;
    ngx_uint_t                   fill;
    ngx_msec_t                   wait;
    ngx_http_crm_banners_t      *bz;
    ngx_http_crm_banner_node_t  *bn;

    bz = crmcf->banners;

    if (bz == NULL || bz->sh == NULL || cid == 0) {
        return;
    }

    now = ngx_http_crm_now_ms();
    wait = 2 * (ngx_msec_t) crmcf->policy->database.timeout;
    fill = 0;

    ngx_shmtx_lock(&bz->shpool->mutex);

    bn = ngx_http_crm_banners_lookup(bz->sh, cid);

    if (bn != NULL) {
        if (bn->stored) {
            bn->stored = 1;
        }

        fill = ngx_http_crm_banners_may_fill(bn, now, wait);
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);

    if (fill) {
        ngx_http_crm_banners_fill(ngx_cycle->log, crmcf, cid, day);
    }
}


/* one more impression (or exposure) of banner, by its id */

void
ngx_http_crm_banners_count(ngx_http_crm_banners_t *bz, ngx_str_t *banner,
    ngx_uint_t would_show)
{
    size_t                        i, len;
    ngx_http_crm_banner_tally_t  *t;

    if (bz == NULL || bz->sh == NULL) {
        return;
    }

    len = ngx_min(banner->len, sizeof(t->id));

    ngx_shmtx_lock(&bz->shpool->mutex);

    for (i = 0; i < NGX_HTTP_CRM_BANNER_TALLIES; i++) {
        t = &bz->sh->tally[i];

        if (t->len == 0) {
            t->len = len;
            ngx_memcpy(t->id, banner->data, len);
        }

        if (t->len == len && ngx_memcmp(t->id, banner->data, len) == 0) {
            if (would_show) {
                t->would_show++;

            } else {
                t->shown++;
            }

            break;
        }
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);
}


/* {"id":{"shown":N,"would_show":N},...} into [p, last) */

u_char *
ngx_http_crm_banners_tally(ngx_http_crm_banners_t *bz, u_char *p,
    u_char *last)
{
    size_t                        i;
    ngx_http_crm_banner_tally_t  *t;

    p = ngx_slprintf(p, last, "{");

    if (bz != NULL && bz->sh != NULL) {
        ngx_shmtx_lock(&bz->shpool->mutex);

        for (i = 0; i < NGX_HTTP_CRM_BANNER_TALLIES; i++) {
            t = &bz->sh->tally[i];

            if (t->len == 0) {
                break;
            }

            if (last - p < (ssize_t) (6 * t->len + 64)) {
                break;
            }

            p = ngx_slprintf(p, last, "%s\"", i ? "," : "");
            p = (u_char *) ngx_escape_json(p, t->id, t->len);
            p = ngx_slprintf(p, last, "\":{\"shown\":%uL,\"would_show\":%uL}",
                             t->shown, t->would_show);
        }

        ngx_shmtx_unlock(&bz->shpool->mutex);
    }

    return ngx_slprintf(p, last, "}");
}


/*
 * Whether this worker sends the entry's lookup: none is out, or the one
 * out is older than wait (lost with its worker); marks it out.  Locked.
 */

static ngx_uint_t
ngx_http_crm_banners_may_fill(ngx_http_crm_banner_node_t *bn, uint64_t now,
    ngx_msec_t wait)
{
    if (bn->filling && now - bn->filling < wait && bn->filling <= now + wait) {
        return 0;
    }

    bn->filling = now;

    return 1;
}


static ngx_http_crm_banner_node_t *
ngx_http_crm_banners_lookup(ngx_http_crm_banners_sh_t *sh, uint64_t cid)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {
        if ((uint64_t) node->key == cid) {
            return (ngx_http_crm_banner_node_t *) node;
        }

        node = ((uint64_t) cid < (uint64_t) node->key) ? node->left
                                                         : node->right;
    }

    return NULL;
}


/* a new entry, evicting from the tail until it fits; locked */

static ngx_http_crm_banner_node_t *
ngx_http_crm_banners_alloc(ngx_http_crm_banners_t *bz, uint64_t cid,
    size_t len)
{
    ngx_queue_t                 *q;
    ngx_http_crm_banner_node_t  *bn, *old;

    for ( ;; ) {
        bn = ngx_slab_alloc_locked(bz->shpool,
                                   offsetof(ngx_http_crm_banner_node_t, data)
                                   + len);
        if (bn != NULL) {
            break;
        }

        if (ngx_queue_empty(&bz->sh->queue)) {
            return NULL;
        }

        q = ngx_queue_last(&bz->sh->queue);
        old = ngx_queue_data(q, ngx_http_crm_banner_node_t, queue);
        ngx_http_crm_banners_free(bz, old);
    }

    ngx_memzero(bn, offsetof(ngx_http_crm_banner_node_t, data));
    bn->node.key = (ngx_rbtree_key_t) cid;
    bn->len = len;

    ngx_rbtree_insert(&bz->sh->rbtree, &bn->node);
    ngx_queue_insert_head(&bz->sh->queue, &bn->queue);
    bz->sh->entries++;

    return bn;
}


static void
ngx_http_crm_banners_free(ngx_http_crm_banners_t *bz,
    ngx_http_crm_banner_node_t *bn)
{
    ngx_queue_remove(&bn->queue);
    ngx_rbtree_delete(&bz->sh->rbtree, &bn->node);
    ngx_slab_free_locked(bz->shpool, bn);
    bz->sh->entries--;
}


static void
ngx_http_crm_banners_fill(ngx_log_t *log, ngx_http_crm_main_conf_t *crmcf,
    uint64_t cid, uint32_t day)
{
    ngx_http_crm_banners_t      *bz;
    ngx_http_crm_banner_node_t  *bn;
    ngx_http_crm_banner_fill_t  *f;

    bz = crmcf->banners;

    f = ngx_calloc(sizeof(ngx_http_crm_banner_fill_t), log);

    if (f != NULL) {
        f->zone = bz;
        f->cid = cid;
        f->day = day;

        (void) ngx_sprintf(f->id, "%uL%Z", cid);

        f->values[0] = (char *) f->id;
        f->values[1] = (char *) crmcf->policy_sha256;
        f->values[2] = (char *) crmcf->banner_spec;

        f->query.command = ngx_http_crm_banners_sql;
        f->query.nparams = 3;
        f->query.values = f->values;
        f->query.timeout = (ngx_msec_t) crmcf->policy->database.timeout;
        f->query.handler = ngx_http_crm_banners_filled;
        f->query.data = f;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "crm banner state: lookup of customer %uL", cid);

        if (crmcf->pg != NULL
            && ngx_http_crm_pg_send(crmcf->pg, &f->query) == NGX_OK)
        {
            return;
        }

        ngx_free(f);
    }

    /* not sent: the next view tries again */

    ngx_shmtx_lock(&bz->shpool->mutex);

    bn = ngx_http_crm_banners_lookup(bz->sh, cid);
    if (bn != NULL) {
        bn->filling = 0;
    }

    ngx_shmtx_unlock(&bz->shpool->mutex);
}


static void
ngx_http_crm_banners_filled(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_banner_fill_t *f = q->data;

    u_char                      *packed;
    size_t                       len;
    ngx_http_crm_banners_t      *bz;
    ngx_http_crm_banner_node_t  *bn, *old;

    bz = f->zone;
    packed = NULL;
    len = 0;

    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        packed = ngx_http_crm_banners_pack(res, &len, ngx_cycle->log);
    }

    ngx_shmtx_lock(&bz->shpool->mutex);

    old = ngx_http_crm_banners_lookup(bz->sh, f->cid);

    if (packed == NULL) {
        if (old != NULL) {
            old->filling = 0;
        }

        goto done;
    }

    if (old != NULL) {
        /* out of the way while the new one is allocated: not evicted */
        ngx_queue_remove(&old->queue);
        ngx_queue_init(&old->queue);
        ngx_rbtree_delete(&bz->sh->rbtree, &old->node);
    }

    bn = ngx_http_crm_banners_alloc(bz, f->cid, len);

    if (bn != NULL) {
        ngx_memcpy(bn->data, packed, len);
        bn->stored = ngx_http_crm_now_ms();
        bn->filled_day = f->day;

        if (old != NULL) {
            bn->day = old->day;
            ngx_memcpy(bn->counts, old->counts, sizeof(bn->counts));
        }
    }

    if (old != NULL) {
        ngx_slab_free_locked(bz->shpool, old);
        bz->sh->entries--;
    }

done:

    ngx_shmtx_unlock(&bz->shpool->mutex);

    if (packed != NULL) {
        ngx_free(packed);
    }

    ngx_free(f);
}


/*
 * The rows of crm.banner_rows() (n, id, would_show, shown, key, value:
 * one a placeholder of each banner, n 0 for the name), packed:
 *
 *   u8 banners, then each: u8 id length, id, u8 would_show, u32 shown,
 *   then its placeholders: u8 index + 1, u16 length, value; u8 0 ends them
 *
 * The name is placeholder 0 of every banner.  No rows: a customer with
 * nothing to show (unknown or forgotten).
 */

static u_char *
ngx_http_crm_banners_pack(PGresult *res, size_t *len, ngx_log_t *log)
{
    u_char      *buf, *p, *count;
    size_t       size, vlen, nlen;
    char        *name, *v, *id, *key;
    uint32_t     s32;
    ngx_int_t    n, last, rows, i, k, shown;
    ngx_uint_t   banners;

    rows = PQntuples(res);

    if (PQnfields(res) != 6) {
        return NULL;
    }

    name = "";
    nlen = 0;
    size = 1;

    for (i = 0; i < rows; i++) {
        size += 8 + 64 + 4 + NGX_HTTP_CRM_BANNER_VALUE_MAX;

        if (!PQgetisnull(res, i, 0) && ngx_atoi((u_char *) PQgetvalue(res, i, 0),
                                                 PQgetlength(res, i, 0)) == 0
            && !PQgetisnull(res, i, 5))
        {
            name = PQgetvalue(res, i, 5);
            nlen = ngx_min((size_t) PQgetlength(res, i, 5),
                           NGX_HTTP_CRM_BANNER_VALUE_MAX);
        }
    }

    size += rows * (4 + nlen);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return NULL;
    }

    count = buf;
    p = buf + 1;
    banners = 0;
    last = 0;

    for (i = 0; i < rows; i++) {
        n = ngx_atoi((u_char *) PQgetvalue(res, i, 0),
                     PQgetlength(res, i, 0));

        if (n <= 0) {
            continue;
        }

        if (n != last) {
            if (banners == NGX_HTTP_CRM_BANNER_CANDS) {
                break;
            }

            if (last) {
                *p++ = 0;
            }

            id = PQgetvalue(res, i, 1);
            vlen = ngx_min((size_t) PQgetlength(res, i, 1), 64);
            *p++ = (u_char) vlen;
            p = ngx_cpymem(p, id, vlen);
            *p++ = (PQgetvalue(res, i, 2)[0] == 't');

            shown = ngx_atoi((u_char *) PQgetvalue(res, i, 3),
                             PQgetlength(res, i, 3));
            s32 = (shown > 0 && shown < 0x7fffffff) ? (uint32_t) shown : 0;

            ngx_memcpy(p, &s32, 4);
            p += 4;

            *p++ = 1;
            *p++ = (u_char) (nlen >> 8);
            *p++ = (u_char) nlen;
            p = ngx_cpymem(p, name, nlen);

            banners++;
            last = n;
        }

        if (PQgetisnull(res, i, 4) || PQgetisnull(res, i, 5)) {
            continue;
        }

        key = PQgetvalue(res, i, 4);

        for (k = 1; k < NGX_HTTP_CRM_BANNER_VARS; k++) {
            if (ngx_strcmp(key, ngx_http_crm_banner_var_names[k]) == 0) {
                break;
            }
        }

        if (k == NGX_HTTP_CRM_BANNER_VARS) {
            continue;
        }

        v = PQgetvalue(res, i, 5);
        vlen = ngx_min((size_t) PQgetlength(res, i, 5),
                       NGX_HTTP_CRM_BANNER_VALUE_MAX);

        *p++ = (u_char) (k + 1);
        *p++ = (u_char) (vlen >> 8);
        *p++ = (u_char) vlen;
        p = ngx_cpymem(p, v, vlen);
    }

    if (last) {
        *p++ = 0;
    }

    *count = (u_char) banners;
    *len = p - buf;

    return buf;
}


/*
 * Unpacks into st, pointing into p; the counts of today come from this
 * node's entry (bn) and the state (when it was looked up today).
 */

static ngx_int_t
ngx_http_crm_banners_unpack(u_char *p, size_t len, ngx_uint_t today,
    ngx_http_crm_banner_node_t *bn, ngx_http_crm_banner_state_t *st)
{
    u_char                      *last;
    size_t                       vlen;
    uint32_t                     shown, hash;
    ngx_uint_t                   i, j, k, n;
    ngx_http_crm_banner_cand_t  *c;

    last = p + len;

    if (p == last) {
        return NGX_ERROR;
    }

    n = *p++;
    st->n = 0;

    if (n > NGX_HTTP_CRM_BANNER_CANDS) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        c = &st->cand[i];
        ngx_memzero(c, sizeof(ngx_http_crm_banner_cand_t));

        if (last - p < 1 || (size_t) (last - p) < 1 + (size_t) p[0] + 5) {
            return NGX_ERROR;
        }

        c->id.len = *p++;
        c->id.data = p;
        p += c->id.len;
        c->would_show = *p++;
        ngx_memcpy(&shown, p, 4);
        p += 4;

        c->shown = today ? shown : 0;
        hash = ngx_crc32_short(c->id.data, c->id.len);

        for (j = 0; j < NGX_HTTP_CRM_BANNER_COUNTS; j++) {
            if (bn->counts[j].n && bn->counts[j].hash == hash) {
                c->shown = ngx_max(c->shown, bn->counts[j].n);
            }
        }

        for ( ;; ) {
            if (p == last) {
                return NGX_ERROR;
            }

            k = *p++;

            if (k == 0) {
                break;
            }

            if (last - p < 2) {
                return NGX_ERROR;
            }

            vlen = ((size_t) p[0] << 8) | p[1];
            p += 2;

            if ((size_t) (last - p) < vlen || k > NGX_HTTP_CRM_BANNER_VARS) {
                return NGX_ERROR;
            }

            c->vars[k - 1].data = p;
            c->vars[k - 1].len = vlen;
            p += vlen;
        }

        st->n++;
    }

    return NGX_OK;
}
