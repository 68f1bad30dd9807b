
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * The host names of a libpq conninfo, resolved when the configuration is
 * read (at start and at every reload), so that no worker ever waits in
 * getaddrinfo() when it connects: libpq looks a host up only when it has
 * no hostaddr for it.  The conninfo is written anew, keyword='value' (from
 * a URI too), with a hostaddr for every item of the host list: a name
 * that resolves to several addresses becomes as many items (the same name
 * each time, and its port repeated when ports are a list), so that libpq
 * still tries every address, in the resolver's order, as it would have.
 * An address stays as it is, a socket directory gets an empty hostaddr.
 * host= is kept, for TLS's name check and the log.  A name that does not
 * resolve is an error, as nginx says "host not found" of an upstream.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <netdb.h>
#include <arpa/inet.h>

#include <libpq-fe.h>

#include "ngx_http_crm_conninfo.h"


#define NGX_HTTP_CRM_CONNINFO_ADDRS  16     /* kept of one name */


typedef struct {
    ngx_str_t    host;
    ngx_str_t    port;
    ngx_uint_t   n;                                 /* addresses */
    ngx_str_t    addr[NGX_HTTP_CRM_CONNINFO_ADDRS];
} ngx_http_crm_conninfo_host_t;


static ngx_int_t ngx_http_crm_conninfo_lookup(ngx_conf_t *cf,
    const char *what, ngx_http_crm_conninfo_host_t *h);
static ngx_uint_t ngx_http_crm_conninfo_split(ngx_pool_t *pool, char *list,
    ngx_str_t **items);
static u_char *ngx_http_crm_conninfo_quote(u_char *p, u_char *s, size_t len);
static u_char *ngx_http_crm_conninfo_escape(u_char *p, u_char *s,
    size_t len);


/*
 * *conninfo (len bytes) with a hostaddr item for every address of every
 * host name, from cf->pool; left alone when nothing needs looking up (no
 * host, addresses and socket directories only, hostaddr given, a bare
 * database name).  NGX_ERROR, said at [emerg], for a conninfo libpq
 * cannot read, host and port lists that do not match, or a name that
 * does not resolve.
 */

ngx_int_t
ngx_http_crm_conninfo_resolve(ngx_conf_t *cf, const char *what,
    u_char **conninfo, size_t *len)
{
    char                          *err, *text;
    size_t                         n;
    u_char                        *p;
    ngx_str_t                     *hosts, *ports;
    ngx_uint_t                     i, k, nhosts, nports, names;
    PQconninfoOption              *opts, *o, *host, *hostaddr, *port;
    ngx_http_crm_conninfo_host_t  *h;

    text = ngx_pnalloc(cf->pool, *len + 1);
    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(text, *conninfo, *len);
    text[*len] = '\0';

    /* a bare database name (libpq's expand_dbname): a local socket */

    if (ngx_strchr(text, '=') == NULL
        && ngx_strncmp(text, "postgresql://", 13) != 0
        && ngx_strncmp(text, "postgres://", 11) != 0)
    {
        return NGX_OK;
    }

    err = NULL;
    opts = PQconninfoParse(text, &err);

    if (opts == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "crm: database.%s: %s",
                      what, err != NULL ? err : "out of memory");
        if (err != NULL) {
            PQfreemem(err);
        }
        return NGX_ERROR;
    }

    host = NULL;
    hostaddr = NULL;
    port = NULL;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            port = o;
        }
    }

    /* addresses given, or no host (a local socket): nothing to look up */

    if (host == NULL || host->val == NULL || host->val[0] == '\0'
        || (hostaddr != NULL && hostaddr->val != NULL
            && hostaddr->val[0] != '\0'))
    {
        PQconninfoFree(opts);
        return NGX_OK;
    }

    nhosts = ngx_http_crm_conninfo_split(cf->pool, host->val, &hosts);
    nports = (port != NULL && port->val != NULL)
             ? ngx_http_crm_conninfo_split(cf->pool, port->val, &ports) : 0;

    if (nports > 1 && nports != nhosts) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: database.%s: %ui hosts and %ui ports; "
                      "expected one port, or one for each host",
                      what, nhosts, nports);
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    h = ngx_pcalloc(cf->pool, nhosts * sizeof(ngx_http_crm_conninfo_host_t));
    if (h == NULL || hosts == NULL || (nports && ports == NULL)) {
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    names = 0;

    for (i = 0; i < nhosts; i++) {
        h[i].host = hosts[i];

        if (nports > 1) {
            h[i].port = ports[i];
        }

        if (ngx_http_crm_conninfo_lookup(cf, what, &h[i]) != NGX_OK) {
            PQconninfoFree(opts);
            return NGX_ERROR;
        }

        names += (h[i].addr[0].len && h[i].addr[0].data != h[i].host.data);
    }

    if (names == 0) {
        /* addresses and socket directories only: libpq resolves nothing */
        PQconninfoFree(opts);
        return NGX_OK;
    }

    /* the conninfo again, every value quoted, with the lists made anew */

    n = sizeof("host='' hostaddr='' port=''");

    for (o = opts; o->keyword; o++) {
        if (o->val != NULL) {
            n += ngx_strlen(o->keyword) + sizeof("='' ")
                 + 2 * ngx_strlen(o->val);
        }
    }

    for (i = 0; i < nhosts; i++) {
        n += h[i].n * 2 * (h[i].host.len + h[i].port.len + 2
                           + INET6_ADDRSTRLEN + 1);
    }

    p = ngx_pnalloc(cf->pool, n + 1);
    if (p == NULL) {
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    *conninfo = p;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o == host || o == hostaddr
            || (o == port && nports > 1))
        {
            continue;
        }

        p = ngx_cpymem(p, o->keyword, ngx_strlen(o->keyword));
        *p++ = '=';
        p = ngx_http_crm_conninfo_quote(p, (u_char *) o->val,
                                        ngx_strlen(o->val));
        *p++ = ' ';
    }

    /* host, hostaddr and (a list of) port: one item for each address */

    p = ngx_cpymem(p, "host='", sizeof("host='") - 1);
    for (i = 0; i < nhosts; i++) {
        for (k = 0; k < h[i].n; k++) {
            if (i || k) {
                *p++ = ',';
            }
            p = ngx_http_crm_conninfo_escape(p, h[i].host.data,
                                             h[i].host.len);
        }
    }
    *p++ = '\'';

    p = ngx_cpymem(p, " hostaddr='", sizeof(" hostaddr='") - 1);
    for (i = 0; i < nhosts; i++) {
        for (k = 0; k < h[i].n; k++) {
            if (i || k) {
                *p++ = ',';
            }
            p = ngx_cpymem(p, h[i].addr[k].data, h[i].addr[k].len);
        }
    }
    *p++ = '\'';

    if (nports > 1) {
        p = ngx_cpymem(p, " port='", sizeof(" port='") - 1);
        for (i = 0; i < nhosts; i++) {
            for (k = 0; k < h[i].n; k++) {
                if (i || k) {
                    *p++ = ',';
                }
                p = ngx_http_crm_conninfo_escape(p, h[i].port.data,
                                                 h[i].port.len);
            }
        }
        *p++ = '\'';
    }

    *p = '\0';
    *len = p - *conninfo;

    PQconninfoFree(opts);

    return NGX_OK;
}


/*
 * The addresses of one item of the host list: itself when it is an
 * address, one empty one for a socket directory (or an empty item), else
 * those the resolver gives (TCP, each once, at most ADDRS).
 */

static ngx_int_t
ngx_http_crm_conninfo_lookup(ngx_conf_t *cf, const char *what,
    ngx_http_crm_conninfo_host_t *h)
{
    int               rc;
    void             *a;
    u_char           *name, *text;
    ngx_uint_t        k;
    struct addrinfo   hints, *res, *ai;
    u_char            buf[sizeof(struct in6_addr)];

    h->n = 1;
    h->addr[0].len = 0;
    h->addr[0].data = h->host.data;

    if (h->host.len == 0 || h->host.data[0] == '/' || h->host.data[0] == '@')
    {
        return NGX_OK;
    }

    name = ngx_pnalloc(cf->pool, h->host.len + 1);
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name, h->host.data, h->host.len);
    name[h->host.len] = '\0';

    if (inet_pton(AF_INET, (char *) name, buf) == 1
        || inet_pton(AF_INET6, (char *) name, buf) == 1)
    {
        h->addr[0].len = h->host.len;
        return NGX_OK;
    }

    ngx_memzero(&hints, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo((char *) name, NULL, &hints, &res);

    if (rc != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: database.%s: host \"%s\" not found: %s",
                      what, name, gai_strerror(rc));
        return NGX_ERROR;
    }

    h->n = 0;

    for (ai = res;
         ai != NULL && h->n < NGX_HTTP_CRM_CONNINFO_ADDRS;
         ai = ai->ai_next)
    {
        if (ai->ai_family == AF_INET) {
            a = &((struct sockaddr_in *) ai->ai_addr)->sin_addr;

        } else if (ai->ai_family == AF_INET6) {
            a = &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;

        } else {
            continue;
        }

        text = ngx_pnalloc(cf->pool, INET6_ADDRSTRLEN);
        if (text == NULL) {
            freeaddrinfo(res);
            return NGX_ERROR;
        }

        if (inet_ntop(ai->ai_family, a, (char *) text, INET6_ADDRSTRLEN)
            == NULL)
        {
            continue;
        }

        h->addr[h->n].data = text;
        h->addr[h->n].len = ngx_strlen(text);

        for (k = 0; k < h->n; k++) {
            if (h->addr[k].len == h->addr[h->n].len
                && ngx_strncmp(h->addr[k].data, text, h->addr[k].len) == 0)
            {
                break;
            }
        }

        if (k == h->n) {
            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, cf->log, 0,
                           "crm: database.%s: host \"%s\" is %s",
                           what, name, text);
            h->n++;
        }
    }

    freeaddrinfo(res);

    if (h->n == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "crm: database.%s: host \"%s\" has no address",
                      what, name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the items of a comma-separated list, pointing into it */

static ngx_uint_t
ngx_http_crm_conninfo_split(ngx_pool_t *pool, char *list, ngx_str_t **items)
{
    u_char      *p, *end, *comma;
    ngx_uint_t   n, i;

    p = (u_char *) list;
    end = p + ngx_strlen(list);

    n = 1;
    for (comma = p; comma < end; comma++) {
        n += (*comma == ',');
    }

    *items = ngx_palloc(pool, n * sizeof(ngx_str_t));
    if (*items == NULL) {
        return n;
    }

    for (i = 0; i < n; i++) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        (*items)[i].data = p;
        (*items)[i].len = comma - p;
        p = comma + 1;
    }

    return n;
}


/* 'value', with ' and \ escaped as libpq reads them */

static u_char *
ngx_http_crm_conninfo_quote(u_char *p, u_char *s, size_t len)
{
    *p++ = '\'';
    p = ngx_http_crm_conninfo_escape(p, s, len);
    *p++ = '\'';

    return p;
}


static u_char *
ngx_http_crm_conninfo_escape(u_char *p, u_char *s, size_t len)
{
    u_char  *end;

    for (end = s + len; s < end; s++) {
        if (*s == '\'' || *s == '\\') {
            *p++ = '\\';
        }

        *p++ = *s;
    }

    return p;
}
