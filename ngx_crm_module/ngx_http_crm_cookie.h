
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_COOKIE_H_INCLUDED_
#define _NGX_HTTP_CRM_COOKIE_H_INCLUDED_


/*
 * The signed customer cookie: plain C and libcrypto, no nginx headers,
 * no allocation.  The value is
 *
 *     v1.<customer_id>.<issued_at>.<mac>
 *
 * with mac the unpadded base64url of HMAC-SHA256(key, "v1.<id>.<at>");
 * see ngx_http_crm_cookie.c for the rules each function follows.
 */


#include <stddef.h>
#include <stdint.h>


/* keys a secret file may hold: the first signs, all verify */
#define NGX_HTTP_CRM_COOKIE_KEYS_MAX    16

/* the shortest key accepted, in bytes */
#define NGX_HTTP_CRM_COOKIE_KEY_MIN     32

/* HMAC-SHA256 and its unpadded base64url */
#define NGX_HTTP_CRM_COOKIE_MAC_SIZE    32
#define NGX_HTTP_CRM_COOKIE_MAC_LEN     43

/* seconds an issued_at may lie ahead of now (clocks of several nodes) */
#define NGX_HTTP_CRM_COOKIE_SKEW        300

/*
 * The longest value: "v1." + 19 digits of the id + "." + 19 digits of
 * issued_at + "." + the mac; sign() writes no terminating NUL.
 */
#define NGX_HTTP_CRM_COOKIE_LEN_MAX                                           \
    (3 + 19 + 1 + 19 + 1 + NGX_HTTP_CRM_COOKIE_MAC_LEN)

/* verify() results */
#define NGX_HTTP_CRM_COOKIE_OK           0
#define NGX_HTTP_CRM_COOKIE_MALFORMED   -1
#define NGX_HTTP_CRM_COOKIE_BAD_MAC     -2
#define NGX_HTTP_CRM_COOKIE_EXPIRED     -3


/*
 * HMAC-SHA256 under one key with the key's two padded blocks hashed once,
 * ahead: a MAC then costs two copies of a hash state and the message's
 * blocks, where HMAC() looks the digest up, allocates and hashes the pads
 * every time.  A zeroed one (not prepared) falls back to HMAC().
 */
typedef struct {
    struct evp_md_ctx_st  *inner;
    struct evp_md_ctx_st  *outer;
} ngx_http_crm_hmac_t;

typedef struct {
    /* each points into the buffer given to keys_parse() */
    const unsigned char  *key[NGX_HTTP_CRM_COOKIE_KEYS_MAX];
    size_t                len[NGX_HTTP_CRM_COOKIE_KEYS_MAX];
    size_t                n;
    /* set by keys_prepare(), released by keys_release() */
    ngx_http_crm_hmac_t   hmac[NGX_HTTP_CRM_COOKIE_KEYS_MAX];
} ngx_http_crm_keys_t;


int ngx_http_crm_keys_parse(unsigned char *data, size_t len,
    ngx_http_crm_keys_t *keys, char *err, size_t errlen);

int ngx_http_crm_keys_prepare(ngx_http_crm_keys_t *keys);
void ngx_http_crm_keys_release(ngx_http_crm_keys_t *keys);

int ngx_http_crm_hmac_init(ngx_http_crm_hmac_t *h, const unsigned char *key,
    size_t len);
void ngx_http_crm_hmac_free(ngx_http_crm_hmac_t *h);
int ngx_http_crm_hmac(const ngx_http_crm_hmac_t *h, const unsigned char *key,
    size_t klen, const unsigned char *msg, size_t len, unsigned char *mac);

size_t ngx_http_crm_cookie_sign(unsigned char *out, uint64_t customer_id,
    int64_t issued_at, const ngx_http_crm_keys_t *keys);
int ngx_http_crm_cookie_verify(const unsigned char *value, size_t len,
    const ngx_http_crm_keys_t *keys, int64_t now, int64_t max_age,
    uint64_t *customer_id);

int ngx_http_crm_cookie_find(const unsigned char *header, size_t len,
    const unsigned char *name, size_t nlen, const unsigned char **value,
    size_t *vlen);
int ngx_http_crm_cookie_find_next(const unsigned char *header, size_t len,
    size_t *offset, const unsigned char *name, size_t nlen,
    const unsigned char **value, size_t *vlen);


#endif /* _NGX_HTTP_CRM_COOKIE_H_INCLUDED_ */
