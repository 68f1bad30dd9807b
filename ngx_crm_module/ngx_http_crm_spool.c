
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The spool: every captured event is first appended, as one JSON line, to
 * the worker's own file in database.spool; the writer then sends the file
 * to PostgreSQL in batches (one crm.record_events() call each, the batch
 * being the bytes of the file as they are) and forgets the file once all
 * of it is written.  So an event survives the worker (crash, kill -9,
 * reload, restart) from the moment its request is let go; the event id
 * makes a batch sent twice harmless.
 *
 * This file is the writer: its states, the batches and their results, the
 * scan every second, the spool's start and end.  The files themselves (the
 * lines appended, the own file made and started again, the files of gone
 * workers taken over and removed) are in ngx_http_crm_spool_file.c.
 *
 * States of the writer (spool->state, changed only by
 * ngx_http_crm_spool_set_state(), which says "crm spool "FILE": A -> B"
 * at debug level):
 *
 *   no file    the worker's own file could not be made (the directory is
 *              read-only, missing, not a directory): lines are refused and
 *              lost, the callers count them; the scan tries again every
 *              second, with one [alert] for the first failure and one
 *              [notice] once the file is made
 *   idle       everything in the files is written
 *   pending    the files need the writer: bytes not yet sent, or a file to
 *              truncate or remove; a flush is posted, or waits for a free
 *              connection (the pg ready hook) or the next scan
 *   in flight  one batch is out through crm.record_events()
 *   slow       a batch PostgreSQL refused (a line it cannot read) is out
 *              again, line by line, through crm.record_events_slow(),
 *              which keeps the unreadable lines in crm.spool_reject
 *   paused     a batch failed (connection lost, timeout, or refused line
 *              by line too): it stays in the file, nothing is sent before
 *              the next scan
 *
 *   no file   -> idle       the file is made (start, or a scan)
 *   idle      -> pending    a line appended, an orphan taken over
 *   pending   -> in flight  a batch sent
 *   pending   -> slow       a batch sent whose bytes were refused once
 *                           (the file's "refused" mark is past them)
 *   pending   -> idle       nothing left to send
 *   in flight -> pending    written, or refused (marked: goes line by line)
 *   slow      -> pending    written line by line
 *   in flight,
 *   slow      -> paused     no result, or refused line by line
 *   paused    -> pending    the scan
 *
 * Whether a batch goes line by line is a property of the bytes, not of
 * the writer: f->refused, the end of what PostgreSQL refused in file f, is
 * kept through a pause, so a refused batch is never sent whole again.
 *
 * Who allocates and frees what (the files: ngx_http_crm_spool_file.c):
 *
 *   the spool struct, spool->out (the lines of this turn, 64k): from
 *       cycle->pool at ngx_http_crm_spool_create(), freed with the pool
 *       when the worker exits.
 *   spool->buf (the batch read from a file, + 1 byte for libpq's NUL):
 *       ngx_alloc() at create, 256k; ngx_http_crm_spool_send() replaces
 *       it by one twice as large (ngx_alloc, then ngx_free of the old one)
 *       for a line longer than it, up to 64M; ngx_free() in
 *       ngx_http_crm_spool_destroy().  It is only replaced in pending,
 *       never while a batch is out.
 *   the batch's query parameter (spool->values[0], spool->lengths[0]):
 *       no copy, it points into spool->buf, which stays untouched while
 *       the batch is in flight or slow; libpq copies it into its output
 *       buffer when the query starts (at once, or when a connection is
 *       free for a query the pg layer queued).  The PGresult belongs to the pg
 *       layer, which PQclear()s it after ngx_http_crm_spool_done().
 */


#include "ngx_http_crm_spool_int.h"
#include "ngx_http_crm_event.h"


#define NGX_HTTP_CRM_SPOOL_BATCH      (256 * 1024)
#define NGX_HTTP_CRM_SPOOL_LINE_MAX   (64 * 1024 * 1024)
#define NGX_HTTP_CRM_SPOOL_SCAN       1000
#define NGX_HTTP_CRM_SPOOL_LINES      256

/* a batch does not hold a request: it may take longer than a decision */
#define NGX_HTTP_CRM_SPOOL_TIMEOUT    10000


static void ngx_http_crm_spool_flush_handler(ngx_event_t *ev);
static void ngx_http_crm_spool_flush(ngx_http_crm_spool_t *spool);
static ngx_int_t ngx_http_crm_spool_send(ngx_http_crm_spool_t *spool,
    ngx_http_crm_spool_file_t *f);
static void ngx_http_crm_spool_done(ngx_http_crm_pg_query_t *q,
    PGresult *res);
static void ngx_http_crm_spool_scan_handler(ngx_event_t *ev);


static char  ngx_http_crm_spool_sql[] =
    "SELECT crm.record_events($1)";

static char  ngx_http_crm_spool_slow_sql[] =
    "SELECT crm.record_events_slow($1)";


#if (NGX_DEBUG)

const char  *ngx_http_crm_spool_states[] = {
    "no file",
    "idle",
    "pending",
    "in flight",
    "slow",
    "paused"
};

#endif


/*
 * Opens the worker's spool file and starts the writer.  Returns NULL only
 * when memory fails.  When the file cannot be made (the directory is not
 * usable) the spool starts with no file: it refuses lines, and the scan
 * makes the file as soon as it can.
 */

ngx_http_crm_spool_t *
ngx_http_crm_spool_create(ngx_cycle_t *cycle, ngx_http_crm_main_conf_t *crmcf)
{
    ngx_http_crm_spool_t  *spool;

    spool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_crm_spool_t));
    if (spool == NULL) {
        return NULL;
    }

    spool->log = cycle->log;
    spool->crmcf = crmcf;
    spool->stats = crmcf->stats;
    spool->dir = crmcf->spool_path->name;
    spool->own.fd = NGX_INVALID_FILE;
    spool->orphan.fd = NGX_INVALID_FILE;

    spool->buf_size = NGX_HTTP_CRM_SPOOL_BATCH;
    spool->buf = ngx_alloc(spool->buf_size + 1, cycle->log);
    if (spool->buf == NULL) {
        return NULL;
    }

    spool->out = ngx_palloc(cycle->pool, NGX_HTTP_CRM_SPOOL_OUT);
    if (spool->out == NULL) {
        ngx_free(spool->buf);
        return NULL;
    }

    spool->write.handler = ngx_http_crm_spool_write_handler;
    spool->write.data = spool;
    spool->write.log = cycle->log;

    spool->flush.handler = ngx_http_crm_spool_flush_handler;
    spool->flush.data = spool;
    spool->flush.log = cycle->log;
    spool->flush.cancelable = 1;

    spool->scan.handler = ngx_http_crm_spool_scan_handler;
    spool->scan.data = spool;
    spool->scan.log = cycle->log;
    spool->scan.cancelable = 1;

    spool->query.handler = ngx_http_crm_spool_done;
    spool->query.timeout =
        ngx_max(NGX_HTTP_CRM_SPOOL_TIMEOUT,
                (ngx_msec_t) crmcf->policy->database.timeout);
    spool->query.data = spool;
    spool->query.nparams = 1;
    spool->query.values = spool->values;
    spool->query.lengths = spool->lengths;

    if (ngx_http_crm_spool_open(spool, NGX_LOG_ALERT) == NGX_OK) {
        ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_IDLE);
    }

    ngx_add_timer(&spool->scan, 1);

    return spool;
}


/* the one place the state changes */

void
ngx_http_crm_spool_set_state(ngx_http_crm_spool_t *spool,
    ngx_http_crm_spool_state_e state)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool \"%s\": %s -> %s", spool->own.name,
                   ngx_http_crm_spool_states[spool->state],
                   ngx_http_crm_spool_states[state]);

    spool->state = state;
}


/* a connection became idle: pg hook */

void
ngx_http_crm_spool_ready(void *data)
{
    ngx_http_crm_spool_t  *spool = data;

    if (spool == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool ready: %s",
                   ngx_http_crm_spool_states[spool->state]);

    ngx_http_crm_spool_schedule(spool);
}


/*
 * Worker exit.  What is not written stays in the file for the next worker;
 * the lock goes with the fd.
 */

void
ngx_http_crm_spool_destroy(ngx_http_crm_spool_t *spool)
{
    if (spool == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool destroy: %s",
                   ngx_http_crm_spool_states[spool->state]);

    if (spool->write.posted) {
        ngx_delete_posted_event(&spool->write);
    }

    ngx_http_crm_spool_write_handler(&spool->write);

    if (spool->flush.timer_set) {
        ngx_del_timer(&spool->flush);
    }

    if (spool->flush.posted) {
        ngx_delete_posted_event(&spool->flush);
    }

    if (spool->scan.timer_set) {
        ngx_del_timer(&spool->scan);
    }

    ngx_http_crm_pg_detach(&spool->query);

    ngx_http_crm_spool_close(spool);

    ngx_free(spool->buf);
}


/*
 * Batches what accumulated in this turn of the event loop: only pending
 * needs the writer; idle has nothing, no file cannot, in flight and slow
 * wait for their result, paused for the scan.
 */

void
ngx_http_crm_spool_schedule(ngx_http_crm_spool_t *spool)
{
    if (spool->state == NGX_HTTP_CRM_SPOOL_PENDING && !spool->flush.posted) {
        ngx_post_event(&spool->flush, &ngx_posted_events);
    }
}


static void
ngx_http_crm_spool_flush_handler(ngx_event_t *ev)
{
    ngx_http_crm_spool_t  *spool = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool flush handler: %s",
                   ngx_http_crm_spool_states[spool->state]);

    ngx_http_crm_spool_flush(spool);
}


/*
 * In pending: truncates the own file once all of it is written, removes a
 * finished orphan, and sends the next batch (own file first); idle when
 * nothing is left.  Stays pending when nothing could be sent now.
 */

static void
ngx_http_crm_spool_flush(ngx_http_crm_spool_t *spool)
{
    ngx_http_crm_spool_file_t  *f;

    if (spool->state != NGX_HTTP_CRM_SPOOL_PENDING) {
        return;
    }

    /* what this turn appended goes to the file first */

    if (spool->write.posted) {
        ngx_delete_posted_event(&spool->write);
        ngx_http_crm_spool_write_handler(&spool->write);
    }

    f = &spool->own;

    if (f->sent == f->size && f->size > 0
        && ngx_http_crm_spool_truncate(spool) != NGX_OK)
    {
        return;
    }

    if (f->sent == f->size) {
        f = &spool->orphan;

        if (f->fd == NGX_INVALID_FILE) {
            ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_IDLE);
            return;
        }

        if (f->sent == f->size) {
            /* pending still: the next flush looks for what is left */
            ngx_http_crm_spool_drop_orphan(spool);
            return;
        }
    }

    (void) ngx_http_crm_spool_send(spool, f);
}


/*
 * Reads the next batch of whole lines of f and sends it, line by line
 * when PostgreSQL refused these bytes once.  Returns NGX_OK when the batch
 * is out (in flight or slow), NGX_DECLINED when nothing could be sent now
 * (no connection, or no whole line), NGX_ERROR on a read error; the state
 * stays pending then.
 */

static ngx_int_t
ngx_http_crm_spool_send(ngx_http_crm_spool_t *spool,
    ngx_http_crm_spool_file_t *f)
{
    u_char      *p, *last, *nbuf;
    size_t       want, size;
    ssize_t      n;
    ngx_uint_t   lines, slow;

    if (ngx_http_crm_pg_is_down(spool->crmcf->pg)) {
        return NGX_DECLINED;
    }

    for ( ;; ) {
        want = (size_t) ngx_min((off_t) spool->buf_size, f->size - f->sent);

        n = pread(f->fd, spool->buf, want, f->sent);

        if (n == -1) {
            ngx_log_error(NGX_LOG_ALERT, spool->log, ngx_errno,
                          "crm: pread(\"%s\") failed", f->name);
            return NGX_ERROR;
        }

        last = spool->buf + n;

        while (last > spool->buf && last[-1] != '\n') {
            last--;
        }

        if (last > spool->buf) {
            break;
        }

        if ((size_t) n < spool->buf_size) {

            /* no newline up to the end: a line cut short by a crash */

            if (f == &spool->orphan) {
                ngx_log_error(NGX_LOG_WARN, spool->log, 0,
                              "crm: \"%s\" ends in %z bytes of a cut line, "
                              "skipped", f->name, n);
                f->sent = f->size;
                ngx_http_crm_spool_schedule(spool);
            }

            return NGX_DECLINED;
        }

        /* one line longer than the buffer */

        size = spool->buf_size * 2;

        if (size > NGX_HTTP_CRM_SPOOL_LINE_MAX) {
            ngx_log_error(NGX_LOG_ALERT, spool->log, 0,
                          "crm: \"%s\" has a line longer than %uz bytes",
                          f->name, (size_t) NGX_HTTP_CRM_SPOOL_LINE_MAX);
            return NGX_ERROR;
        }

        nbuf = ngx_alloc(size + 1, spool->log);
        if (nbuf == NULL) {
            return NGX_ERROR;
        }

        ngx_free(spool->buf);
        spool->buf = nbuf;
        spool->buf_size = size;
    }

    /*
     * at most NGX_HTTP_CRM_SPOOL_LINES lines: a batch that applies orders
     * holds their customers' rows until it commits, and decisions for those
     * customers wait that long; and the events among them, for the counters
     */

    lines = 0;
    n = 0;

    for (p = spool->buf; p < last; p = ngx_strlchr(p, last, '\n') + 1) {

        if (n++ == NGX_HTTP_CRM_SPOOL_LINES) {
            last = p;
            break;
        }

        lines += ((size_t) (last - p) < sizeof(NGX_HTTP_CRM_RESULT_LINE) - 1
                  || ngx_strncmp(p, NGX_HTTP_CRM_RESULT_LINE,
                                 sizeof(NGX_HTTP_CRM_RESULT_LINE) - 1)
                     != 0);
    }

    /* libpq takes a text parameter up to its NUL; the buffer has room */

    *last = '\0';

    spool->values[0] = (const char *) spool->buf;
    spool->lengths[0] = (int) (last - spool->buf);

    slow = (f->sent < f->refused);

    spool->query.command = slow ? ngx_http_crm_spool_slow_sql
                                : ngx_http_crm_spool_sql;

    if (ngx_http_crm_pg_send(spool->crmcf->pg, &spool->query) != NGX_OK) {
        return NGX_DECLINED;
    }

    spool->file = f;
    spool->end = f->sent + (last - spool->buf);
    spool->lines = lines;

    ngx_http_crm_spool_set_state(spool, slow ? NGX_HTTP_CRM_SPOOL_SLOW
                                             : NGX_HTTP_CRM_SPOOL_IN_FLIGHT);

    return NGX_OK;
}


/*
 * The batch's result (res NULL: no result, the connection failed or the
 * batch timed out).  Written: counted, the file's sent mark moves past it,
 * pending.  Refused whole: its bytes are marked to go line by line,
 * pending.  Anything else: the batch waits in the file, paused until the
 * next scan (a second).
 */

static void
ngx_http_crm_spool_done(ngx_http_crm_pg_query_t *q, PGresult *res)
{
    ngx_http_crm_spool_t *spool = q->data;

    ngx_int_t                   n;
    ngx_uint_t                  replayed, rejected;
    ngx_http_crm_spool_file_t  *f;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool done: %s, %s, %ui lines",
                   ngx_http_crm_spool_states[spool->state],
                   res ? PQresStatus(PQresultStatus(res)) : "no result",
                   spool->lines);

    switch (spool->state) {

    case NGX_HTTP_CRM_SPOOL_IN_FLIGHT:
    case NGX_HTTP_CRM_SPOOL_SLOW:
        break;

    default:
        /* no batch is out */
        return;
    }

    f = spool->file;
    spool->file = NULL;

    if (res == NULL) {
        ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PAUSED);
        return;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {

        if (spool->state == NGX_HTTP_CRM_SPOOL_IN_FLIGHT) {
            /* send the same bytes once more, line by line */
            f->refused = spool->end;
            ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PENDING);
            ngx_http_crm_spool_schedule(spool);

        } else {
            /* refused line by line too: try again in a second */
            ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PAUSED);
        }

        return;
    }

    /* line by line, the answer is how many events went to spool_reject */

    rejected = 0;

    if (spool->state == NGX_HTTP_CRM_SPOOL_SLOW
        && PQntuples(res) == 1
        && !PQgetisnull(res, 0, 0))
    {
        n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                     PQgetlength(res, 0, 0));

        if (n > 0) {
            rejected = ngx_min((ngx_uint_t) n, spool->lines);
            (void) ngx_atomic_fetch_add(&spool->stats->rejected, rejected);

            ngx_log_error(NGX_LOG_ERR, spool->log, 0,
                          "crm: %ui events PostgreSQL could not write are "
                          "kept in crm.spool_reject", rejected);
        }
    }

    (void) ngx_atomic_fetch_add(&spool->stats->written,
                                spool->lines - rejected);

    if (f == &spool->orphan) {
        replayed = spool->lines;

    } else {
        replayed = ngx_min(spool->lines, spool->backlog);
        spool->backlog -= replayed;
    }

    if (replayed) {
        (void) ngx_atomic_fetch_add(&spool->stats->replayed, replayed);
    }

    f->sent = spool->end;

    ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PENDING);

    ngx_http_crm_spool_gauge(spool);
    ngx_http_crm_spool_schedule(spool);
}


/*
 * Every second: with no file, try to make it again; when the database is
 * up and no file of a gone worker is being sent, look for one that no live
 * worker holds, and take it over.
 */

static void
ngx_http_crm_spool_scan_handler(ngx_event_t *ev)
{
    ngx_http_crm_spool_t  *spool = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool scan handler: %s",
                   ngx_http_crm_spool_states[spool->state]);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&spool->scan, NGX_HTTP_CRM_SPOOL_SCAN);

    switch (spool->state) {

    case NGX_HTTP_CRM_SPOOL_NO_FILE:

        /* the directory is not usable: nothing to take over either */

        if (ngx_http_crm_spool_open(spool, NGX_LOG_DEBUG) != NGX_OK) {
            return;
        }

        ngx_log_error(NGX_LOG_NOTICE, spool->log, 0,
                      "crm: spool \"%V\" usable again, events are captured",
                      &spool->dir);

        ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_IDLE);
        break;

    case NGX_HTTP_CRM_SPOOL_PAUSED:
        ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PENDING);
        break;

    default:
        break;
    }

    if (spool->orphan.fd == NGX_INVALID_FILE
        && !ngx_http_crm_pg_is_down(spool->crmcf->pg))
    {
        ngx_http_crm_spool_adopt(spool);
    }

    ngx_http_crm_spool_schedule(spool);
}
