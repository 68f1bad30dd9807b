
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The customer cache: normalized e-mail -> customer id, for the header
 * filter that sets the customer cookie from identity.upstream_header and
 * cannot wait for PostgreSQL.  A miss is answered by PostgreSQL in the
 * background, and the answer put here for the next response.
 *
 * Made as nginx makes its own shared caches (limit_req, the SSL session
 * cache): one shared zone "ngx_http_crm_cache" of cache.size bytes with a
 * slab pool, which holds
 *
 *   - ngx_http_crm_cache_sh_t, the head: a red-black tree keyed by the
 *     crc32 of the e-mail (ties resolved by its bytes), a queue of the
 *     entries in order of use, most recent first, and the counters;
 *   - one ngx_http_crm_cache_node_t an entry, with the e-mail inside.
 *
 * Everything there is read and written under the slab pool's mutex, by
 * all the workers.  A get moves its entry to the head of the queue, so the
 * tail is the least recently used: when the slab has no room for a new
 * entry, entries leave from the tail until it has.  An entry stores when
 * it was put, not when it expires, so a reload that changes cache.ttl
 * applies the new ttl to what is already there.  Times are milliseconds
 * of the wall clock (ngx_timeofday()), which every worker reads alike;
 * ngx_current_msec is each process's own.  The cached clocks of two
 * workers differ by the length of a turn of their event loops: an entry
 * is fresh while its age, taken either way, is less than the ttl.
 *
 * Who frees what: an entry is freed (ngx_slab_free_locked) by whoever finds
 * it stale, evicts it or deletes it, under the mutex; nothing else in the
 * zone is ever freed.  The zone is nginx's: a reload with the same
 * cache.size gets the old zone, and its entries, in
 * ngx_http_crm_cache_init(); another size makes a new, empty zone (the
 * name conflicts only within one configuration), and nginx frees the old
 * one with the old cycle.  ngx_http_crm_cache_ctx_t, the handle, lives in
 * the cycle pool and is never freed by this file.  With cache.ttl 0 there
 * is no zone: a get misses, a put does nothing.
 */


#include "ngx_http_crm.h"
#include "ngx_http_crm_cache.h"


typedef struct {
    ngx_rbtree_node_t              node;    /* key: crc32, data: key len */
    ngx_queue_t                    queue;
    uint64_t                       id;
    uint64_t                       stored;  /* ms since the epoch */
    u_char                         key[1];
} ngx_http_crm_cache_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;   /* most recently used first */
    ngx_uint_t                     entries;
    ngx_uint_t                     hits;
    ngx_uint_t                     misses;
} ngx_http_crm_cache_sh_t;


struct ngx_http_crm_cache_ctx_s {
    ngx_http_crm_cache_sh_t       *sh;      /* NULL: the cache is off */
    ngx_slab_pool_t               *shpool;
    ngx_msec_t                     ttl;
};


static ngx_int_t ngx_http_crm_cache_init(ngx_shm_zone_t *zone, void *data);
static void ngx_http_crm_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_crm_cache_node_t *ngx_http_crm_cache_lookup(
    ngx_http_crm_cache_sh_t *sh, uint32_t hash, u_char *key, size_t len);
static void ngx_http_crm_cache_expire(ngx_http_crm_cache_ctx_t *cache,
    uint64_t now, ngx_uint_t n);
static void ngx_http_crm_cache_free(ngx_http_crm_cache_ctx_t *cache,
    ngx_http_crm_cache_node_t *cn);
static ngx_uint_t ngx_http_crm_cache_stale(ngx_http_crm_cache_ctx_t *cache,
    ngx_http_crm_cache_node_t *cn, uint64_t now);


/*
 * At configuration time: the handle, from cf->pool, and the shared zone
 * it will use; the zone's memory comes later, with
 * ngx_http_crm_cache_init().  Returns NULL on error, already logged
 * (except for an allocation from the pool).  A second call in one
 * configuration returns the first handle.
 */

ngx_http_crm_cache_ctx_t *
ngx_http_crm_cache_zone(ngx_conf_t *cf, size_t size, ngx_msec_t ttl)
{
    ngx_shm_zone_t            *zone;
    ngx_http_crm_cache_ctx_t  *cache;

    static ngx_str_t  name = ngx_string("ngx_http_crm_cache");

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_crm_cache_ctx_t));
    if (cache == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cache->sh = NULL;
     *     cache->shpool = NULL;
     */

    cache->ttl = ttl;

    if (ttl == 0) {
        return cache;
    }

    if (size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "crm: cache.size %uz is too small, the least is "
                           "%uz", size, (size_t) (8 * ngx_pagesize));
        return NULL;
    }

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_crm_module);
    if (zone == NULL) {
        return NULL;
    }

    if (zone->data != NULL) {
        return zone->data;
    }

    zone->init = ngx_http_crm_cache_init;
    zone->data = cache;
    zone->noreuse = 0;

    return cache;
}


/*
 * data is the old cycle's handle when nginx reuses its zone (a reload,
 * cache.size unchanged): the head and the entries are taken over as they
 * are.  Otherwise the zone is new and gets an empty head.
 */

static ngx_int_t
ngx_http_crm_cache_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_crm_cache_ctx_t  *ocache = data;

    size_t                     len;
    ngx_slab_pool_t           *shpool;
    ngx_http_crm_cache_ctx_t  *cache;

    cache = zone->data;

    if (ocache != NULL) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    cache->shpool = shpool;

    if (zone->shm.exists) {
        cache->sh = shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_crm_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_crm_cache_rbtree_insert_value);

    ngx_queue_init(&cache->sh->queue);

    len = sizeof(" in crm cache zone \"\"") + zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in crm cache zone \"%V\"%Z",
                &zone->shm.name);

    /* a full zone is the normal state of a cache, not worth a log line */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * NGX_OK (0), a hit, with *id set; NGX_ERROR (-1), a miss: the key is not
 * there or is stale (and is freed), or the cache is off.  A key that could
 * not have been put (empty, longer than NGX_HTTP_CRM_CACHE_KEY_MAX) misses
 * without being counted.
 */

ngx_int_t
ngx_http_crm_cache_get(ngx_http_crm_cache_ctx_t *cache, u_char *key,
    size_t len, uint64_t *id)
{
    uint32_t                    hash;
    uint64_t                    now;
    ngx_int_t                   rc;
    ngx_http_crm_cache_sh_t    *sh;
    ngx_http_crm_cache_node_t  *cn;

    sh = cache->sh;

    if (sh == NULL || len == 0 || len > NGX_HTTP_CRM_CACHE_KEY_MAX) {
        return NGX_ERROR;
    }

    hash = ngx_crc32_short(key, len);
    now = ngx_http_crm_now_ms();

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_crm_cache_lookup(sh, hash, key, len);

    if (cn != NULL && ngx_http_crm_cache_stale(cache, cn, now)) {
        ngx_http_crm_cache_free(cache, cn);
        cn = NULL;
    }

    if (cn != NULL) {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&sh->queue, &cn->queue);

        *id = cn->id;
        sh->hits++;
        rc = NGX_OK;

    } else {
        sh->misses++;
        rc = NGX_ERROR;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "crm cache get %08XD: %s",
                   hash, (rc == NGX_OK) ? "hit" : "miss");

    return rc;
}


/*
 * Puts the key, or refreshes it (id and time) when it is there.  Returns
 * NGX_OK, also when the cache is off; NGX_ERROR when the key cannot be
 * kept (empty, longer than NGX_HTTP_CRM_CACHE_KEY_MAX) or there is no room
 * even with every other entry evicted.  Silent: a cache that cannot keep
 * an entry only costs a query.
 */

ngx_int_t
ngx_http_crm_cache_put(ngx_http_crm_cache_ctx_t *cache, u_char *key,
    size_t len, uint64_t id)
{
    size_t                      size;
    uint32_t                    hash;
    uint64_t                    now;
    ngx_slab_pool_t            *shpool;
    ngx_http_crm_cache_sh_t    *sh;
    ngx_http_crm_cache_node_t  *cn;

    sh = cache->sh;

    if (sh == NULL) {
        return NGX_OK;
    }

    if (len == 0 || len > NGX_HTTP_CRM_CACHE_KEY_MAX) {
        return NGX_ERROR;
    }

    shpool = cache->shpool;
    hash = ngx_crc32_short(key, len);
    now = ngx_http_crm_now_ms();

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "crm cache put %08XD", hash);

    ngx_shmtx_lock(&shpool->mutex);

    cn = ngx_http_crm_cache_lookup(sh, hash, key, len);

    if (cn != NULL) {
        cn->id = id;
        cn->stored = now;

        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&sh->queue, &cn->queue);

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_OK;
    }

    /* one or two stale entries make room before it is needed */
    ngx_http_crm_cache_expire(cache, now, 1);

    size = offsetof(ngx_http_crm_cache_node_t, key) + len;

    for ( ;; ) {
        cn = ngx_slab_alloc_locked(shpool, size);
        if (cn != NULL) {
            break;
        }

        if (ngx_queue_empty(&sh->queue)) {
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_ERROR;
        }

        /*
         * Full: the least recently used entry goes, fresh or not.  It may
         * free no slot of this entry's size, so it goes on until one is.
         */

        ngx_http_crm_cache_expire(cache, now, 0);
    }

    cn->node.key = hash;
    cn->node.data = (u_char) len;
    cn->id = id;
    cn->stored = now;
    ngx_memcpy(cn->key, key, len);

    ngx_rbtree_insert(&sh->rbtree, &cn->node);
    ngx_queue_insert_head(&sh->queue, &cn->queue);
    sh->entries++;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/*
 * Entries in the zone (stale ones included, until they are found), and
 * the hits and misses of all the workers since the zone was made; all
 * zero when the cache is off.
 */

void
ngx_http_crm_cache_stats(ngx_http_crm_cache_ctx_t *cache, ngx_uint_t *entries,
    ngx_uint_t *hits, ngx_uint_t *misses)
{
    if (cache->sh == NULL) {
        *entries = 0;
        *hits = 0;
        *misses = 0;
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    *entries = cache->sh->entries;
    *hits = cache->sh->hits;
    *misses = cache->sh->misses;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static void
ngx_http_crm_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_crm_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = (ngx_http_crm_cache_node_t *) node;
            cnt = (ngx_http_crm_cache_node_t *) temp;

            p = (ngx_memn2cmp(cn->key, cnt->key, (size_t) node->data,
                              (size_t) temp->data)
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* under the mutex */

static ngx_http_crm_cache_node_t *
ngx_http_crm_cache_lookup(ngx_http_crm_cache_sh_t *sh, uint32_t hash,
    u_char *key, size_t len)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_crm_cache_node_t  *cn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        cn = (ngx_http_crm_cache_node_t *) node;

        rc = ngx_memn2cmp(key, cn->key, len, (size_t) node->data);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Under the mutex, from the tail of the queue:
 *
 * n == 1 frees one or two stale entries;
 * n == 0 frees the least recently used entry by force,
 *        and then one or two stale entries.
 */

static void
ngx_http_crm_cache_expire(ngx_http_crm_cache_ctx_t *cache, uint64_t now,
    ngx_uint_t n)
{
    ngx_queue_t                *q;
    ngx_http_crm_cache_node_t  *cn;

    while (n < 3) {

        if (ngx_queue_empty(&cache->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&cache->sh->queue);

        cn = ngx_queue_data(q, ngx_http_crm_cache_node_t, queue);

        if (n++ != 0 && !ngx_http_crm_cache_stale(cache, cn, now)) {
            return;
        }

        ngx_http_crm_cache_free(cache, cn);
    }
}


/* under the mutex */

static void
ngx_http_crm_cache_free(ngx_http_crm_cache_ctx_t *cache,
    ngx_http_crm_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node);
    ngx_slab_free_locked(cache->shpool, cn);

    cache->sh->entries--;
}


/*
 * Stale: as old as the ttl, or older.  The age is taken either way: the
 * worker that put the entry may have read the clock a little later than
 * this one, and a clock set back by more than the ttl makes it stale too.
 */

static ngx_uint_t
ngx_http_crm_cache_stale(ngx_http_crm_cache_ctx_t *cache,
    ngx_http_crm_cache_node_t *cn, uint64_t now)
{
    uint64_t  age;

    age = (now >= cn->stored) ? now - cn->stored : cn->stored - now;

    return age >= (uint64_t) cache->ttl;
}
