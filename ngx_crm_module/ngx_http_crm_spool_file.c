
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The spool's files on disk: the worker's own file, made at start (or by
 * the scan, once the directory is usable), appended to, and started again
 * from nothing once all of it is written; and the files of workers that
 * are gone, taken over and removed once written.  The writer that sends
 * them to PostgreSQL, and its states, are in ngx_http_crm_spool.c.
 *
 * Lines appended while the event loop handles one batch of events are
 * written to the file with one write() at the end of that turn (a posted
 * event), before the loop waits again: no answer from the shop, and so
 * nothing the client sees, can come before its event is in the file.
 *
 * Files are named worker-PID-TIME.jsonl and held with flock() by their
 * worker.  A file nobody holds was left by a worker that is gone (or put
 * there by hand): the writer of any worker looks for one every second,
 * takes it over, sends it after its own, and removes it.
 *
 * Who opens and closes what (the memory: ngx_http_crm_spool.c):
 *
 *   the file names (spool->own.name, spool->orphan.name): arrays inside
 *       the struct; no allocation.
 *   the worker's own file: opened in ngx_http_crm_spool_open(); truncated,
 *       never closed, by ngx_http_crm_spool_truncate() when all of it is
 *       written; closed at worker exit by ngx_http_crm_spool_close() (and
 *       removed there when all of it was written).
 *   the orphan file: opened by ngx_http_crm_spool_adopt(), closed and
 *       removed by ngx_http_crm_spool_drop_orphan() once written, or only
 *       closed by ngx_http_crm_spool_close() (another worker takes it over).
 *
 * A write() that fails (a full disk) loses the lines of that turn: said at
 * [crit] with its errno; the file keeps whole lines only.
 */


#include "ngx_http_crm_spool_int.h"

#include <sys/file.h>
#include <dirent.h>


static ngx_int_t ngx_http_crm_spool_write(ngx_http_crm_spool_t *spool,
    u_char *data, size_t len, ngx_uint_t lines);


/*
 * The worker's own file is made under a name no scan looks at, locked, and
 * only then renamed into place: a worker looking for abandoned files can
 * never take a file whose worker has not locked it yet.  The name carries
 * the pid and the start time, so it is new even when a pid comes back.
 * A failure is logged at level (the first one at [alert], the retries at
 * [debug]) and leaves the spool with no file.
 */

ngx_int_t
ngx_http_crm_spool_open(ngx_http_crm_spool_t *spool, ngx_uint_t level)
{
    u_char                      tmp[NGX_MAX_PATH];
    ngx_time_t                 *tp;
    ngx_http_crm_spool_file_t  *f = &spool->own;

    tp = ngx_timeofday();

    ngx_snprintf(tmp, NGX_MAX_PATH, "%V/.new-%P.jsonl%Z", &spool->dir,
                 ngx_pid);
    ngx_snprintf(f->name, NGX_MAX_PATH, "%V/worker-%P-%T%03M.jsonl%Z",
                 &spool->dir, ngx_pid, tp->sec, tp->msec);

    f->fd = ngx_open_file(tmp, NGX_FILE_RDWR|O_APPEND, NGX_FILE_TRUNCATE,
                          NGX_FILE_DEFAULT_ACCESS);

    if (f->fd == NGX_INVALID_FILE) {
        ngx_log_error(level, spool->log, ngx_errno,
                      "crm: " ngx_open_file_n " \"%s\" failed; events are "
                      "not captured, retrying every second", tmp);
        return NGX_ERROR;
    }

    if (flock(f->fd, LOCK_EX|LOCK_NB) == -1) {
        ngx_log_error(level, spool->log, ngx_errno,
                      "crm: flock(\"%s\") failed; events are not captured, "
                      "retrying every second", tmp);
        (void) ngx_close_file(f->fd);
        f->fd = NGX_INVALID_FILE;
        return NGX_ERROR;
    }

    if (ngx_rename_file(tmp, f->name) == NGX_FILE_ERROR) {
        ngx_log_error(level, spool->log, ngx_errno,
                      "crm: " ngx_rename_file_n " \"%s\" to \"%s\" failed; "
                      "events are not captured, retrying every second",
                      tmp, f->name);
        (void) ngx_close_file(f->fd);
        f->fd = NGX_INVALID_FILE;
        return NGX_ERROR;
    }

    f->size = 0;
    f->sent = 0;
    f->refused = 0;

    ngx_http_crm_spool_gauge(spool);

    return NGX_OK;
}


/*
 * Appends one line (ending in '\n') for the worker's file and wakes the
 * writer; event: the line is a captured interaction, for the counters.
 * The line is copied: the caller's memory may go.  Returns NGX_ERROR when
 * the line is lost: no file yet, or the write failed; the caller says so.
 */

ngx_int_t
ngx_http_crm_spool_append(ngx_http_crm_spool_t *spool, u_char *line,
    size_t len, ngx_uint_t event)
{
    ngx_int_t  rc;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool append: %uz bytes, %s", len,
                   ngx_http_crm_spool_states[spool->state]);

    if (spool->state == NGX_HTTP_CRM_SPOOL_NO_FILE) {
        return NGX_ERROR;
    }

    if (spool->out_len + len > NGX_HTTP_CRM_SPOOL_OUT) {
        rc = ngx_http_crm_spool_write(spool, spool->out, spool->out_len,
                                      spool->out_lines);

        /* written, or said lost and counted: never twice */

        spool->out_len = 0;
        spool->out_lines = 0;

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (len > NGX_HTTP_CRM_SPOOL_OUT) {
        if (ngx_http_crm_spool_write(spool, line, len, 1) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        ngx_memcpy(spool->out + spool->out_len, line, len);
        spool->out_len += len;
        spool->out_lines++;

        if (!spool->write.posted) {
            ngx_post_event(&spool->write, &ngx_posted_events);
        }
    }

    if (event) {
        (void) ngx_atomic_fetch_add(&spool->stats->captured, 1);
    }

    if (spool->state == NGX_HTTP_CRM_SPOOL_IDLE) {
        ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PENDING);
    }

    if (ngx_http_crm_pg_is_down(spool->crmcf->pg)) {

        if (event) {
            spool->backlog++;
            (void) ngx_atomic_fetch_add(&spool->stats->spooled, 1);
        }

        return NGX_OK;
    }

    ngx_http_crm_spool_schedule(spool);

    return NGX_OK;
}


void
ngx_http_crm_spool_write_handler(ngx_event_t *ev)
{
    ngx_http_crm_spool_t  *spool = ev->data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, spool->log, 0,
                   "crm spool write handler: %uz bytes, %ui lines",
                   spool->out_len, spool->out_lines);

    if (spool->out_len) {
        (void) ngx_http_crm_spool_write(spool, spool->out, spool->out_len,
                                        spool->out_lines);
        spool->out_len = 0;
        spool->out_lines = 0;
    }
}


/*
 * One write() of whole lines to the worker's file; a short write is
 * continued, so that a full disk is told by its own errno (ENOSPC, from
 * the next write()) rather than by whatever errno an earlier call left.
 * On a failure the lines are lost: said at [crit] with the errno of the
 * write() that failed and counted as errors; what was written of them is
 * cut back so that the file holds whole lines only.
 */

static ngx_int_t
ngx_http_crm_spool_write(ngx_http_crm_spool_t *spool, u_char *data,
    size_t len, ngx_uint_t lines)
{
    size_t     done;
    ssize_t    n;
    ngx_err_t  err;

    if (len == 0) {
        return NGX_OK;
    }

    done = 0;
    err = 0;

    while (done < len) {
        n = ngx_write_fd(spool->own.fd, data + done, len - done);

        if (n == -1) {
            err = ngx_errno;

            if (err == NGX_EINTR) {
                continue;
            }

            break;
        }

        if (n == 0) {
            break;
        }

        done += n;
    }

    if (done != len) {
        if (err) {
            ngx_log_error(NGX_LOG_CRIT, spool->log, err,
                          "crm: " ngx_write_fd_n " \"%s\" failed (%uz of %uz "
                          "bytes written), %ui lines lost",
                          spool->own.name, done, len, lines);

        } else {
            ngx_log_error(NGX_LOG_CRIT, spool->log, 0,
                          "crm: " ngx_write_fd_n " \"%s\" wrote nothing and "
                          "set no errno (%uz of %uz bytes written), %ui "
                          "lines lost", spool->own.name, done, len, lines);
        }

        (void) ngx_atomic_fetch_add(&spool->stats->errors, lines);

        if (done > 0 && ftruncate(spool->own.fd, spool->own.size) == -1) {
            ngx_log_error(NGX_LOG_ALERT, spool->log, ngx_errno,
                          "crm: ftruncate(\"%s\") failed", spool->own.name);
        }

        return NGX_ERROR;
    }

    spool->own.size += len;

    ngx_http_crm_spool_gauge(spool);

    return NGX_OK;
}


/*
 * All of the own file is written: it starts again from nothing, and so
 * does the count of its lines appended while PostgreSQL was down.  Returns
 * NGX_ERROR when ftruncate() fails; the file stays as it is then.
 */

ngx_int_t
ngx_http_crm_spool_truncate(ngx_http_crm_spool_t *spool)
{
    ngx_http_crm_spool_file_t  *f = &spool->own;

    if (ftruncate(f->fd, 0) == -1) {
        ngx_log_error(NGX_LOG_ALERT, spool->log, ngx_errno,
                      "crm: ftruncate(\"%s\") failed", f->name);
        return NGX_ERROR;
    }

    f->size = 0;
    f->sent = 0;
    f->refused = 0;
    spool->backlog = 0;

    ngx_http_crm_spool_gauge(spool);

    return NGX_OK;
}


void
ngx_http_crm_spool_adopt(ngx_http_crm_spool_t *spool)
{
    DIR                        *dir;
    size_t                      len;
    ngx_fd_t                    fd;
    struct dirent              *de;
    ngx_file_info_t             fi;
    ngx_http_crm_spool_file_t  *f = &spool->orphan;

    dir = opendir((char *) spool->dir.data);

    if (dir == NULL) {
        ngx_log_error(NGX_LOG_ERR, spool->log, ngx_errno,
                      "crm: opendir(\"%V\") failed", &spool->dir);
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (len < sizeof("worker-.jsonl") - 1
            || ngx_strncmp(de->d_name, "worker-", 7) != 0
            || ngx_strcmp(de->d_name + len - 6, ".jsonl") != 0)
        {
            continue;
        }

        ngx_snprintf(f->name, NGX_MAX_PATH, "%V/%s%Z",
                     &spool->dir, de->d_name);

        if (ngx_strcmp(f->name, spool->own.name) == 0) {
            continue;
        }

        fd = ngx_open_file(f->name, NGX_FILE_RDWR, NGX_FILE_OPEN, 0);

        if (fd == NGX_INVALID_FILE) {
            continue;
        }

        /*
         * a live worker holds its own file; a file another worker has
         * just finished and removed has no link left
         */

        if (flock(fd, LOCK_EX|LOCK_NB) == -1
            || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
            || fi.st_nlink == 0)
        {
            (void) ngx_close_file(fd);
            continue;
        }

        f->fd = fd;
        f->size = ngx_file_size(&fi);
        f->sent = 0;
        f->refused = 0;

        ngx_http_crm_spool_gauge(spool);

        if (spool->state == NGX_HTTP_CRM_SPOOL_IDLE) {
            ngx_http_crm_spool_set_state(spool, NGX_HTTP_CRM_SPOOL_PENDING);
        }

        ngx_log_error(NGX_LOG_NOTICE, spool->log, 0,
                      "crm: replaying \"%s\" (%O bytes) left by a worker "
                      "that is gone", f->name, f->size);
        break;
    }

    (void) closedir(dir);
}


void
ngx_http_crm_spool_drop_orphan(ngx_http_crm_spool_t *spool)
{
    ngx_http_crm_spool_file_t  *f = &spool->orphan;

    if (ngx_delete_file(f->name) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, spool->log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", f->name);
    }

    (void) ngx_close_file(f->fd);
    f->fd = NGX_INVALID_FILE;

    ngx_http_crm_spool_gauge(spool);

    /* there may be more */
    ngx_http_crm_spool_adopt(spool);
    ngx_http_crm_spool_schedule(spool);
}


/* the bytes this worker has not written yet, for crm_status */

void
ngx_http_crm_spool_gauge(ngx_http_crm_spool_t *spool)
{
    off_t  bytes;

    bytes = spool->own.size - spool->own.sent;

    if (spool->orphan.fd != NGX_INVALID_FILE) {
        bytes += spool->orphan.size - spool->orphan.sent;
    }

    spool->stats->spool_bytes[ngx_worker % NGX_HTTP_CRM_WORKERS_MAX] = bytes;
}


/*
 * Worker exit: the own file is removed when all of it was written; what is
 * not written stays in the files for the next worker.  The locks go with
 * the fds.
 */

void
ngx_http_crm_spool_close(ngx_http_crm_spool_t *spool)
{
    if (spool->own.fd != NGX_INVALID_FILE) {

        if (spool->own.sent == spool->own.size) {
            (void) ngx_delete_file(spool->own.name);
        }

        (void) ngx_close_file(spool->own.fd);
    }

    if (spool->orphan.fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(spool->orphan.fd);
    }
}
