
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of the signed customer cookie (ngx_http_crm_cookie.c),
 * printed as TAP.  Built and run by t/003-unit-cookie.t.
 *
 * The known answers were computed apart from this code, with
 *
 *   printf %s 'v1.42.1700000000' \
 *       | openssl dgst -sha256 -mac HMAC -macopt key:KEY -binary \
 *       | basenc --base64url | tr -d =
 *
 * and values with a valid mac over a malformed text are made here with
 * libcrypto's HMAC() and EVP_EncodeBlock(), so a refusal there is the
 * parser's, not the mac's.  Values handed to verify() and headers handed
 * to find() and find_next() are copied to malloc()ed buffers of their
 * exact length, so valgrind or ASan catch a read past it.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_crm_cookie.h"
#include "tap.h"


#define S(s)  (const unsigned char *) (s), (sizeof(s) - 1)

#define OK         NGX_HTTP_CRM_COOKIE_OK
#define MALFORMED  NGX_HTTP_CRM_COOKIE_MALFORMED
#define BAD_MAC    NGX_HTTP_CRM_COOKIE_BAD_MAC
#define EXPIRED    NGX_HTTP_CRM_COOKIE_EXPIRED

#define T0         1700000000
#define DAY        86400
#define YEAR       (365 * DAY)

/* 32 bytes: the shortest key, used for the known answers */
#define KEY        "0123456789abcdef0123456789abcdef"
#define OLD_KEY    "old-key-old-key-old-key-old-key-old-key!"
#define NEW_KEY    "new-key-new-key-new-key-new-key-new-key!"

#define KAT_42     "v1.42.1700000000."                                        \
                   "Vf2YcCxXfMLwv_G6sP1qhTV9Jeh4_PBOHoYhoqUMLQE"
#define KAT_1      "v1.1.0.PjLDUk_RljOIriA1W9Lz3Omuopd-scd_MLBrH_UUUQk"
#define KAT_MAX    "v1.9223372036854775807.9223372036854775807."              \
                   "pKCSQmwPdbEH372Ak8odobu5mmQnckvUP7w3R-cFUWA"
#define KAT_OLD    "v1.7.1600000000."                                         \
                   "O-XBwNRhjQFfbR3C01LKVaoI3-ELisO7KH9QLTMxaZA"


typedef struct {
    unsigned char        *data;
    ngx_http_crm_keys_t   keys;
} keyfile_t;


static void keyfile(keyfile_t *kf, const char *text);
static void keyfile_free(keyfile_t *kf);
static int verify(const char *value, size_t len, const keyfile_t *kf,
    int64_t now, int64_t max_age, uint64_t *id);
static int verify_str(const char *value, const keyfile_t *kf, int64_t now,
    int64_t max_age, uint64_t *id);
static size_t mac_over(char *out, const char *msg, const char *key);
static int parse_err(const char *text, const char *err);
static int find(const char *header, const char *name, const char *exp);
static int find_all(const char *header, const char *name, const char *exp);

static void test_keys(void);
static void test_sign(void);
static void test_verify(void);
static void test_tamper(void);
static void test_strict(void);
static void test_time(void);
static void test_rotation(void);
static void test_find(void);
static void test_find_next(void);
static void test_prepared(void);


int
main(void)
{
    test_keys();
    test_sign();
    test_verify();
    test_tamper();
    test_strict();
    test_time();
    test_rotation();
    test_find();
    test_find_next();
    test_prepared();

    return done_testing();
}


static void
test_keys(void)
{
    char       err[128], text[17 * 40 + 1];
    size_t     i;
    keyfile_t  kf;

    keyfile(&kf, KEY "\n");
    ok(kf.keys.n == 1 && kf.keys.len[0] == 32
       && kf.keys.key[0] == kf.data
       && memcmp(kf.keys.key[0], KEY, 32) == 0,
       "keys: one key, pointing into the buffer");
    keyfile_free(&kf);

    keyfile(&kf, KEY);
    ok(kf.keys.n == 1 && kf.keys.len[0] == 32,
       "keys: no newline at the end");
    keyfile_free(&kf);

    keyfile(&kf, "# cookie keys, newest first\r\n"
                 "\r\n"
                 "  \t" NEW_KEY " \t\r\n"
                 "\n"
                 "   # the old key, until max_age has passed\n"
                 "\t\n"
                 OLD_KEY "\r\n"
                 "#" KEY "\n");
    ok(kf.keys.n == 2, "keys: comments, blank lines and CRLF skipped");
    ok(kf.keys.len[0] == sizeof(NEW_KEY) - 1
       && memcmp(kf.keys.key[0], NEW_KEY, kf.keys.len[0]) == 0,
       "keys: spaces, tabs and CR around the first key stripped");
    ok(kf.keys.len[1] == sizeof(OLD_KEY) - 1
       && memcmp(kf.keys.key[1], OLD_KEY, kf.keys.len[1]) == 0,
       "keys: second key in file order");
    keyfile_free(&kf);

    keyfile(&kf, "a key with spaces inside it, 37 bytes\n");
    ok(kf.keys.n == 1 && kf.keys.len[0] == 37,
       "keys: inner spaces are part of the key");
    keyfile_free(&kf);

    ok(parse_err("# keys\n\n" "0123456789abcdef0123456789abcde\n" KEY "\n",
                 "key on line 3 is shorter than 32 bytes"),
       "keys: 31 bytes refused, with the line number");

    ok(parse_err(KEY "\r\n" "  short  \r\n",
                 "key on line 2 is shorter than 32 bytes"),
       "keys: short key after CRLF lines, spaces not counted");

    ok(parse_err("", "no key"), "keys: empty file is no key");
    ok(parse_err("# only a comment\n\n  \n\r\n", "no key"),
       "keys: comments and blank lines only is no key");

    text[0] = '\0';

    for (i = 0; i < 16; i++) {
        sprintf(text + strlen(text), "%02zu-%s\n", i, KEY);
    }

    keyfile(&kf, text);
    ok(kf.keys.n == 16 && memcmp(kf.keys.key[15], "15-", 3) == 0,
       "keys: 16 keys accepted");
    keyfile_free(&kf);

    sprintf(text + strlen(text), "16-%s\n", KEY);

    ok(parse_err(text, "key on line 17 is one too many (16 at most)"),
       "keys: 17 keys refused");

    /* the message is cut to errlen, NUL included */

    kf.data = (unsigned char *) strdup("short\n");
    memset(err, 'x', sizeof(err));
    ok(ngx_http_crm_keys_parse(kf.data, 6, &kf.keys, err, 8) == -1
       && strcmp(err, "key on ") == 0 && err[8] == 'x',
       "keys: message truncated to errlen");
    ok(ngx_http_crm_keys_parse(kf.data, 6, &kf.keys, NULL, 0) == -1,
       "keys: err may be NULL");
    free(kf.data);
}


static void
test_sign(void)
{
    char                    exp[128], msg[64];
    size_t                  n, len, i, k;
    keyfile_t               kf, none;
    unsigned char          *out, buf[NGX_HTTP_CRM_COOKIE_LEN_MAX];
    static const int64_t    times[] = { 0, 1, 1234567890, T0, INT64_MAX };
    static const uint64_t   ids[] = { 1, 9, 10, 42, 1000000007,
                                      (uint64_t) INT64_MAX };

    ok(NGX_HTTP_CRM_COOKIE_LEN_MAX == 86, "sign: LEN_MAX is 86");

    keyfile(&kf, KEY "\n");

    n = ngx_http_crm_cookie_sign(buf, 42, T0, &kf.keys);
    ok(n == sizeof(KAT_42) - 1 && memcmp(buf, KAT_42, n) == 0,
       "sign: known answer for id 42 (openssl dgst)");

    n = ngx_http_crm_cookie_sign(buf, 1, 0, &kf.keys);
    ok(n == sizeof(KAT_1) - 1 && memcmp(buf, KAT_1, n) == 0,
       "sign: known answer for id 1 at time 0");

    /* the longest value, into a buffer of exactly LEN_MAX bytes */

    out = malloc(NGX_HTTP_CRM_COOKIE_LEN_MAX);
    n = ngx_http_crm_cookie_sign(out, INT64_MAX, INT64_MAX, &kf.keys);
    ok(n == NGX_HTTP_CRM_COOKIE_LEN_MAX && n == sizeof(KAT_MAX) - 1
       && memcmp(out, KAT_MAX, n) == 0,
       "sign: known answer for the longest value fills LEN_MAX");
    free(out);

    /* against HMAC() and EVP_EncodeBlock() for several ids and times */

    n = 0;
    len = 0;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
            sprintf(msg, "v1.%llu.%lld", (unsigned long long) ids[i],
                    (long long) times[k]);
            len = mac_over(exp, msg, KEY);

            if (ngx_http_crm_cookie_sign(buf, ids[i], times[k], &kf.keys)
                    != len
                || memcmp(buf, exp, len) != 0)
            {
                diag("differs for %s", msg);
                n++;
            }
        }
    }

    ok(n == 0, "sign: agrees with HMAC() for 30 ids and times");

    for (n = 0; n < len; n++) {
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789-_.", buf[n]) == NULL)
        {
            break;
        }
    }

    ok(n == len, "sign: only cookie-octets, no padding");

    ok(ngx_http_crm_cookie_sign(buf, 0, T0, &kf.keys) == 0,
       "sign: id 0 refused");
    ok(ngx_http_crm_cookie_sign(buf, (uint64_t) INT64_MAX + 1, T0, &kf.keys)
       == 0, "sign: id 2^63 refused");
    ok(ngx_http_crm_cookie_sign(buf, 42, -1, &kf.keys) == 0,
       "sign: negative issued_at refused");

    none.keys.n = 0;
    ok(ngx_http_crm_cookie_sign(buf, 42, T0, &none.keys) == 0,
       "sign: no key refused");

    keyfile_free(&kf);
}


static void
test_verify(void)
{
    size_t         n;
    uint64_t       id;
    keyfile_t      kf, other;
    unsigned char  buf[NGX_HTTP_CRM_COOKIE_LEN_MAX];

    keyfile(&kf, KEY "\n");
    keyfile(&other, NEW_KEY "\n");

    id = 0;
    ok(verify_str(KAT_42, &kf, T0, YEAR, &id) == OK && id == 42,
       "verify: known answer gives id 42");

    id = 0;
    ok(verify_str(KAT_MAX, &kf, INT64_MAX, 0, &id) == OK
       && id == (uint64_t) INT64_MAX,
       "verify: id 2^63-1 at time 2^63-1");

    id = 0;
    ok(verify_str(KAT_1, &kf, 100, 100, &id) == OK && id == 1,
       "verify: issued_at 0 is a number");

    n = ngx_http_crm_cookie_sign(buf, 123456789, T0 + 5, &kf.keys);
    id = 0;
    ok(verify((char *) buf, n, &kf, T0 + 10, 3600, &id) == OK
       && id == 123456789,
       "verify: sign() then verify() round trip");

    id = 7;
    ok(verify_str(KAT_42, &other, T0, YEAR, &id) == BAD_MAC && id == 7,
       "verify: another key is BAD_MAC, id untouched");

    ok(verify_str(KAT_42, &other, T0 + 2 * YEAR, DAY, &id) == BAD_MAC,
       "verify: BAD_MAC before EXPIRED");

    id = 7;
    ok(ngx_http_crm_cookie_verify(NULL, 0, &kf.keys, T0, YEAR, &id)
       == MALFORMED && id == 7,
       "verify: empty value is MALFORMED");

    other.keys.n = 0;
    ok(verify_str(KAT_42, &other, T0, YEAR, &id) == BAD_MAC,
       "verify: no keys is BAD_MAC");

    ok(OK == 0 && MALFORMED < 0 && BAD_MAC < 0 && EXPIRED < 0
       && MALFORMED != BAD_MAC && BAD_MAC != EXPIRED
       && MALFORMED != EXPIRED,
       "verify: results are 0 and three distinct negatives");

    keyfile_free(&kf);
    keyfile_free(&other);
}


static void
test_tamper(void)
{
    int                rc, bad;
    char               v[sizeof(KAT_42)];
    size_t             i, mac, len;
    uint64_t           id;
    keyfile_t          kf;
    const char        *c;
    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    keyfile(&kf, KEY "\n");

    len = sizeof(KAT_42) - 1;
    mac = len - NGX_HTTP_CRM_COOKIE_MAC_LEN;

    memcpy(v, KAT_42, sizeof(KAT_42));
    v[4] = '3';
    ok(verify(v, len, &kf, T0, YEAR, &id) == BAD_MAC,
       "tamper: id 42 -> 43 is BAD_MAC");

    memcpy(v, KAT_42, sizeof(KAT_42));
    v[15] = '1';
    ok(verify(v, len, &kf, T0, YEAR, &id) == BAD_MAC,
       "tamper: issued_at changed is BAD_MAC");

    /*
     * Every other base64url character at every mac position: BAD_MAC,
     * except at the last, where a change of its two unused bits only
     * is MALFORMED.
     */

    for (i = mac; i < len; i++) {
        bad = 0;

        for (c = b64; *c; c++) {
            if (*c == KAT_42[i]) {
                continue;
            }

            memcpy(v, KAT_42, sizeof(KAT_42));
            v[i] = *c;

            rc = verify(v, len, &kf, T0, YEAR, &id);

            if (i == len - 1 && ((strchr(b64, *c) - b64) & 3)) {
                bad += (rc != MALFORMED);

            } else {
                bad += (rc != BAD_MAC);
            }
        }

        ok(bad == 0, "tamper: mac character %zu, 63 replacements",
           i - mac);
    }

    bad = 0;

    for (i = 0; i < len; i++) {
        bad += (verify(KAT_42, i, &kf, T0, YEAR, &id) != MALFORMED);
    }

    ok(bad == 0, "tamper: every truncation is MALFORMED");

    keyfile_free(&kf);
}


static void
test_strict(void)
{
    char         v[256], m[256];
    uint64_t     id;
    keyfile_t    kf;
    const char  *mac;

    keyfile(&kf, KEY "\n");

    mac = &KAT_42[sizeof(KAT_42) - 1 - NGX_HTTP_CRM_COOKIE_MAC_LEN];

    /* the right mac over a text the format refuses */

    mac_over(v, "v1.042.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: leading zero in id, valid mac");

    mac_over(v, "v1.42.01700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: leading zero in issued_at, valid mac");

    mac_over(v, "v1.42.00", KEY);
    ok(verify_str(v, &kf, 0, YEAR, &id) == MALFORMED,
       "strict: issued_at 00, valid mac");

    mac_over(v, "v1.0.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: id 0, valid mac");

    mac_over(v, "v1.-42.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: negative id, valid mac");

    mac_over(v, "v1.+42.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: id with plus sign, valid mac");

    mac_over(v, "v1.42.-1", KEY);
    ok(verify_str(v, &kf, 0, YEAR, &id) == MALFORMED,
       "strict: negative issued_at, valid mac");

    mac_over(v, "v1.18446744073709551616.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: id 2^64 overflows, valid mac");

    mac_over(v, "v1.18446744073709551658.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: id 2^64 + 42 (wraps to 42), valid mac");

    mac_over(v, "v1.9223372036854775808.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: id 2^63, valid mac");

    mac_over(v, "v1.42.9223372036854775808", KEY);
    ok(verify_str(v, &kf, INT64_MAX, YEAR, &id) == MALFORMED,
       "strict: issued_at 2^63, valid mac");

    mac_over(v, "v1.42.1700000000.", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: extra dot before the mac, valid mac");

    mac_over(v, "v1.42..1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: empty field, valid mac");

    mac_over(v, "v1.42", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: no issued_at, valid mac");

    mac_over(v, "v2.42.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: version v2, valid mac");

    mac_over(v, "V1.42.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: version V1, valid mac");

    mac_over(v, "v1. 42.1700000000", KEY);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: space in id, valid mac");

    /* the known answer, bent */

    sprintf(v, "%s.", KAT_42);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: trailing dot");

    sprintf(v, "v1.42.1700000000..%s", mac);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: two dots before the mac");

    sprintf(v, "%s=", KAT_42);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: padding '=' after the mac");

    strcpy(v, KAT_42);
    v[strlen(v) - 1] = '=';
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: '=' as the last mac character");

    strcpy(v, KAT_42);
    *strchr(v + 17, '_') = '/';
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: standard base64 '/' for '_'");

    mac_over(m, "v1.7.1600000000", OLD_KEY);
    strcpy(v, m);
    *strchr(v + 16, '-') = '+';
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: standard base64 '+' for '-'");

    sprintf(v, " %s", KAT_42);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: leading space");

    sprintf(v, "\"%s\"", KAT_42);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: still quoted");

    strcpy(v, KAT_42);
    v[30] = (char) 0xc3;
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: non-ASCII byte in the mac");

    sprintf(v, "v1.4\xd9\xa2.1700000000.%s", mac);
    ok(verify_str(v, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: non-ASCII digit in the id");

    memcpy(v, KAT_42, sizeof(KAT_42));
    v[5] = '\0';
    ok(verify(v, sizeof(KAT_42) - 1, &kf, T0, YEAR, &id) == MALFORMED,
       "strict: NUL byte inside");

    ok(verify_str("v1.", &kf, T0, YEAR, &id) == MALFORMED
       && verify_str("v1", &kf, T0, YEAR, &id) == MALFORMED
       && verify_str("v1...", &kf, T0, YEAR, &id) == MALFORMED,
       "strict: prefixes only");

    keyfile_free(&kf);
}


static void
test_time(void)
{
    uint64_t   id;
    keyfile_t  kf;

    keyfile(&kf, KEY "\n");

    ok(verify_str(KAT_42, &kf, T0 + 3600, 3600, &id) == OK,
       "time: exactly max_age old is valid");
    ok(verify_str(KAT_42, &kf, T0 + 3601, 3600, &id) == EXPIRED,
       "time: a second over max_age is EXPIRED");
    ok(verify_str(KAT_42, &kf, T0, 0, &id) == OK,
       "time: max_age 0, issued now");
    ok(verify_str(KAT_42, &kf, T0 + 1, 0, &id) == EXPIRED,
       "time: max_age 0, a second later");
    ok(verify_str(KAT_42, &kf, T0, -1, &id) == EXPIRED,
       "time: negative max_age expires all");
    ok(verify_str(KAT_42, &kf, T0 - 300, 3600, &id) == OK,
       "time: issued 300 s ahead is valid");
    ok(verify_str(KAT_42, &kf, T0 - 301, 3600, &id) == EXPIRED,
       "time: issued 301 s ahead is EXPIRED");
    ok(verify_str(KAT_42, &kf, INT64_MIN, INT64_MAX, &id) == EXPIRED,
       "time: now INT64_MIN");
    ok(verify_str(KAT_42, &kf, -1, INT64_MAX, &id) == EXPIRED,
       "time: now negative");
    ok(verify_str(KAT_MAX, &kf, INT64_MIN, INT64_MAX, &id) == EXPIRED,
       "time: issued 2^63-1, now INT64_MIN");
    ok(verify_str(KAT_1, &kf, INT64_MAX, INT64_MAX, &id) == OK,
       "time: issued 0, now and max_age INT64_MAX");
    ok(verify_str(KAT_1, &kf, INT64_MAX, INT64_MAX - 1, &id) == EXPIRED,
       "time: issued 0, now INT64_MAX, max_age one less");

    keyfile_free(&kf);
}


static void
test_rotation(void)
{
    char           text[17 * 40 + 1];
    size_t         n, i;
    uint64_t       id;
    keyfile_t      old, both, fresh, many;
    unsigned char  buf[NGX_HTTP_CRM_COOKIE_LEN_MAX];

    keyfile(&old, OLD_KEY "\n");
    keyfile(&both, "# rotated\n" NEW_KEY "\n" OLD_KEY "\n");
    keyfile(&fresh, NEW_KEY "\n");

    n = ngx_http_crm_cookie_sign(buf, 7, 1600000000, &old.keys);
    ok(n == sizeof(KAT_OLD) - 1 && memcmp(buf, KAT_OLD, n) == 0,
       "rotation: known answer under the old key");

    id = 0;
    ok(verify_str(KAT_OLD, &both, 1600000000, YEAR, &id) == OK && id == 7,
       "rotation: old key, now second in the file, verifies");

    n = ngx_http_crm_cookie_sign(buf, 7, 1600000000, &both.keys);
    ok(n == sizeof(KAT_OLD) - 1 && memcmp(buf, KAT_OLD, n) != 0,
       "rotation: new cookies are not signed with the old key");

    ok(verify((char *) buf, n, &fresh, 1600000000, YEAR, &id) == OK,
       "rotation: new cookies are signed with the first key");

    ok(verify((char *) buf, n, &old, 1600000000, YEAR, &id) == BAD_MAC,
       "rotation: new cookies fail under the old key alone");

    ok(verify_str(KAT_OLD, &fresh, 1600000000, YEAR, &id) == BAD_MAC,
       "rotation: old key removed, its cookies fail");

    text[0] = '\0';

    for (i = 0; i < 16; i++) {
        sprintf(text + strlen(text), "%02zu-%s\n", i, KEY);
    }

    keyfile(&many, text);

    id = 0;
    n = ngx_http_crm_cookie_sign(buf, 99, T0, &many.keys);
    ok(verify((char *) buf, n, &many, T0, DAY, &id) == OK && id == 99,
       "rotation: signed by the first of 16 keys");

    /* the 16th key alone signs; all 16 verify */

    many.keys.key[0] = many.keys.key[15];
    many.keys.len[0] = many.keys.len[15];
    many.keys.n = 1;
    n = ngx_http_crm_cookie_sign(buf, 100, T0, &many.keys);

    keyfile_free(&many);
    keyfile(&many, text);

    id = 0;
    ok(verify((char *) buf, n, &many, T0, DAY, &id) == OK && id == 100,
       "rotation: the 16th key verifies");

    keyfile_free(&old);
    keyfile_free(&both);
    keyfile_free(&fresh);
    keyfile_free(&many);
}


static void
test_find(void)
{
    int                   rc;
    char                  hdr[256];
    size_t                n, vlen;
    uint64_t              id;
    keyfile_t             kf;
    unsigned char        *h;
    const unsigned char  *v;

    ok(find("a=1; crm=abc; b=2", "crm", "abc"), "find: in the middle");
    ok(find("crm=abc; b=2", "crm", "abc"), "find: first");
    ok(find("a=1; crm=abc", "crm", "abc"), "find: last");
    ok(find("crm=abc", "crm", "abc"), "find: only");
    ok(find("xcrm=1; crm=2", "crm", "2"), "find: name as a suffix");
    ok(find("crmx=1; crm=2", "crm", "2"), "find: name as a prefix");
    ok(find("crm=1; crm=2", "crm", "1"), "find: first of two");
    ok(find("a=1;crm=2;b=3", "crm", "2"), "find: no spaces");
    ok(find("a=1;   crm  =  2  ;b=3", "crm", "2"),
       "find: spaces around name and value");
    ok(find("a=1;\tcrm=2\t", "crm", "2"), "find: tabs");
    ok(find("crm=\"abc\"; b=2", "crm", "abc"), "find: quoted value");
    ok(find("crm=\"\"", "crm", ""), "find: empty quoted value");
    ok(find("crm=\"", "crm", "\""), "find: lone quote kept");
    ok(find("crm=; b=2", "crm", ""), "find: empty value");
    ok(find("crm=a=b", "crm", "a=b"), "find: value with '='");
    ok(find("crm=2;", "crm", "2"), "find: trailing semicolon");
    ok(find("crm; crm=5", "crm", "5"), "find: pair without '=' skipped");
    ok(find("a=1; b=2", "crm", NULL), "find: missing");
    ok(find("xcrm=1; crmx=2", "crm", NULL), "find: only longer names");
    ok(find("CRM=1; Crm=2", "crm", NULL), "find: names are case-sensitive");
    ok(find("crm", "crm", NULL), "find: name without '='");
    ok(find("a=crm=1", "crm", NULL), "find: name inside a value");
    ok(find("", "crm", NULL), "find: empty header");
    ok(find(" ; ;", "crm", NULL), "find: separators only");
    ok(find("c r m=1", "crm", NULL), "find: name with spaces inside");

    rc = ngx_http_crm_cookie_find(S("=1; crm=1"), S(""), &v, &vlen);
    ok(rc == -1, "find: empty name never matches");

    rc = ngx_http_crm_cookie_find(NULL, 0, S("crm"), &v, &vlen);
    ok(rc == -1, "find: NULL empty header");

    /* a value points into the header; the glue's whole path */

    keyfile(&kf, KEY "\n");

    sprintf(hdr, "_ga=GA1.2.3; xcrm=1; crm=%s; theme=dark", KAT_42);
    n = strlen(hdr);
    h = malloc(n);
    memcpy(h, hdr, n);

    v = NULL;
    id = 0;

    rc = ngx_http_crm_cookie_find(h, n, S("crm"), &v, &vlen);

    ok(rc == 0 && v == h + 25 && vlen == sizeof(KAT_42) - 1
       && ngx_http_crm_cookie_verify(v, vlen, &kf.keys, T0, YEAR, &id)
          == OK
       && id == 42,
       "find: then verify, id 42");

    free(h);
    keyfile_free(&kf);
}


static void
test_find_next(void)
{
    int                   rc;
    char                  hdr[256];
    size_t                n, vlen, offset;
    uint64_t              id, first;
    keyfile_t             kf;
    unsigned int          valid, invalid;
    unsigned char        *h;
    const unsigned char  *v;

    ok(find_all("crm=1; crm=2", "crm", "1\n2\n"), "find_next: two");
    ok(find_all("crm=1;crm=2;crm=3", "crm", "1\n2\n3\n"),
       "find_next: three, no spaces");
    ok(find_all("a=1; crm=x; b=2; crm=y; c=3", "crm", "x\ny\n"),
       "find_next: among others");
    ok(find_all("crm=1", "crm", "1\n"), "find_next: one");
    ok(find_all("crm=1;", "crm", "1\n"), "find_next: trailing semicolon");
    ok(find_all("crm=; crm=\"q\"", "crm", "\nq\n"),
       "find_next: empty, then quoted");
    ok(find_all("crm; xcrm=1; crm=2; crmx=3; crm =4", "crm", "2\n4\n"),
       "find_next: only the name itself");
    ok(find_all("crm=a=crm=b; crm=c", "crm", "a=crm=b\nc\n"),
       "find_next: the name inside a value is no pair");
    ok(find_all("a=1; b=2", "crm", ""), "find_next: none");
    ok(find_all("", "crm", ""), "find_next: empty header");
    ok(find_all(";;;", "crm", ""), "find_next: separators only");

    /* offsets: past the ";", or the length; nothing from there on */

    n = sizeof("crm=1; crm=2") - 1;
    h = malloc(n);
    memcpy(h, "crm=1; crm=2", n);

    offset = 0;
    rc = ngx_http_crm_cookie_find_next(h, n, &offset, S("crm"), &v, &vlen);
    ok(rc == 0 && offset == 6 && v == h + 4 && vlen == 1,
       "find_next: offset past the first pair's ';'");

    rc = ngx_http_crm_cookie_find_next(h, n, &offset, S("crm"), &v, &vlen);
    ok(rc == 0 && offset == n && v == h + 11 && vlen == 1,
       "find_next: offset at the end after the last pair");

    rc = ngx_http_crm_cookie_find_next(h, n, &offset, S("crm"), &v, &vlen);
    ok(rc == -1 && offset == n, "find_next: nothing at the end, offset kept");

    offset = n + 5;
    rc = ngx_http_crm_cookie_find_next(h, n, &offset, S("crm"), &v, &vlen);
    ok(rc == -1 && offset == n + 5, "find_next: offset past the end");

    offset = 0;
    rc = ngx_http_crm_cookie_find_next(h, n, &offset, S(""), &v, &vlen);
    ok(rc == -1 && offset == 0, "find_next: empty name never matches");

    free(h);

    offset = 0;
    rc = ngx_http_crm_cookie_find_next(NULL, 0, &offset, S("crm"), &v,
                                       &vlen);
    ok(rc == -1, "find_next: NULL empty header");

    /* the glue's whole path: a forged value first, the valid one after */

    keyfile(&kf, KEY "\n");

    sprintf(hdr, "crm=v1.42.1700000000.%043d; theme=dark; crm=%s; "
            "crm=junk", 0, KAT_42);
    n = strlen(hdr);
    h = malloc(n);
    memcpy(h, hdr, n);

    offset = 0;
    valid = 0;
    invalid = 0;
    first = 0;

    while (ngx_http_crm_cookie_find_next(h, n, &offset, S("crm"), &v, &vlen)
           == 0)
    {
        id = 0;

        if (ngx_http_crm_cookie_verify(v, vlen, &kf.keys, T0, YEAR, &id)
            == OK)
        {
            if (valid++ == 0) {
                first = id;
            }

        } else {
            invalid++;
        }
    }

    ok(valid == 1 && first == 42 && invalid == 2,
       "find_next: then verify, the valid one between two invalid ones");

    free(h);
    keyfile_free(&kf);
}


/* parses text as a secret file that must succeed */

static void
keyfile(keyfile_t *kf, const char *text)
{
    char    err[128];
    size_t  len;

    len = strlen(text);
    kf->data = malloc(len ? len : 1);
    memcpy(kf->data, text, len);

    if (ngx_http_crm_keys_parse(kf->data, len, &kf->keys, err, sizeof(err))
        != 0)
    {
        diag("keys_parse failed: %s", err);
        kf->keys.n = 0;
    }
}


static void
keyfile_free(keyfile_t *kf)
{
    free(kf->data);
    kf->data = NULL;
}


static int
verify(const char *value, size_t len, const keyfile_t *kf, int64_t now,
    int64_t max_age, uint64_t *id)
{
    int             rc;
    unsigned char  *copy;

    copy = malloc(len ? len : 1);
    memcpy(copy, value, len);

    rc = ngx_http_crm_cookie_verify(copy, len, &kf->keys, now, max_age, id);

    free(copy);

    return rc;
}


static int
verify_str(const char *value, const keyfile_t *kf, int64_t now,
    int64_t max_age, uint64_t *id)
{
    return verify(value, strlen(value), kf, now, max_age, id);
}


/*
 * Writes "msg.mac" with the mac made by HMAC() and EVP_EncodeBlock()
 * turned into unpadded base64url; returns its length.
 */

static size_t
mac_over(char *out, const char *msg, const char *key)
{
    size_t         n, i;
    unsigned int   mlen;
    unsigned char  md[EVP_MAX_MD_SIZE], b64[64];

    HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) msg,
         strlen(msg), md, &mlen);

    EVP_EncodeBlock(b64, md, (int) mlen);

    n = sprintf(out, "%s.", msg);

    for (i = 0; b64[i] && b64[i] != '='; i++) {
        out[n++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }

    out[n] = '\0';

    return n;
}


/* keys_parse() fails on text with exactly err */

static int
parse_err(const char *text, const char *err)
{
    int                  rc;
    char                 buf[128];
    size_t               len;
    unsigned char       *data;
    ngx_http_crm_keys_t  keys;

    len = strlen(text);
    data = malloc(len ? len : 1);
    memcpy(data, text, len);

    buf[0] = '\0';
    rc = ngx_http_crm_keys_parse(data, len, &keys, buf, sizeof(buf));

    free(data);

    if (rc != -1 || strcmp(buf, err) != 0) {
        diag("rc %d, err \"%s\", expected \"%s\"", rc, buf, err);
        return 0;
    }

    return 1;
}


/* find() gives exp in header, or nothing when exp is NULL */

static int
find(const char *header, const char *name, const char *exp)
{
    int                   rc, pass;
    size_t                len, vlen;
    unsigned char        *h;
    const unsigned char  *v;

    len = strlen(header);
    h = malloc(len ? len : 1);
    memcpy(h, header, len);

    rc = ngx_http_crm_cookie_find(h, len, (const unsigned char *) name,
                                  strlen(name), &v, &vlen);

    if (exp == NULL) {
        pass = (rc == -1);

    } else {
        pass = (rc == 0 && v >= h && v + vlen <= h + len
                && vlen == strlen(exp) && memcmp(v, exp, vlen) == 0);
    }

    if (!pass) {
        diag("rc %d, value \"%.*s\"", rc, rc == 0 ? (int) vlen : 0,
             rc == 0 ? (const char *) v : "");
    }

    free(h);

    return pass;
}


/*
 * find_next() from offset 0 on gives the values in exp, each followed by
 * a "\n", and then nothing; every value lies inside the header and every
 * offset moves forward.
 */

static int
find_all(const char *header, const char *name, const char *exp)
{
    int                   pass;
    size_t                len, vlen, offset, prev, elen;
    const char           *e, *nl;
    unsigned char        *h;
    const unsigned char  *v;

    len = strlen(header);
    h = malloc(len ? len : 1);
    memcpy(h, header, len);

    pass = 1;
    e = exp;
    offset = 0;
    prev = 0;

    while (ngx_http_crm_cookie_find_next(h, len, &offset,
                                         (const unsigned char *) name,
                                         strlen(name), &v, &vlen)
           == 0)
    {
        nl = strchr(e, '\n');

        if (nl == NULL || offset <= prev || offset > len
            || v < h || v + vlen > h + len)
        {
            pass = 0;
            break;
        }

        elen = nl - e;

        if (vlen != elen || memcmp(v, e, vlen) != 0) {
            diag("value \"%.*s\", expected \"%.*s\"", (int) vlen,
                 (const char *) v, (int) elen, e);
            pass = 0;
            break;
        }

        e = nl + 1;
        prev = offset;
    }

    if (pass && *e != '\0') {
        diag("missing \"%s\"", e);
        pass = 0;
    }

    free(h);

    return pass;
}


/*
 * keys_prepare(): the pads hashed ahead give the same MACs as HMAC(), for
 * keys shorter than, as long as and longer than SHA-256's 64-byte block
 */

static void
test_prepared(void)
{
    size_t          i, n, m;
    uint64_t        id;
    keyfile_t       kf;
    unsigned char   a[NGX_HTTP_CRM_COOKIE_LEN_MAX];
    unsigned char   b[NGX_HTTP_CRM_COOKIE_LEN_MAX];
    char            text[160];

    static const size_t  lens[] = { 32, 63, 64, 65, 100, 150 };

    keyfile(&kf, KEY "\n");
    ok(ngx_http_crm_keys_prepare(&kf.keys) == 0 && kf.keys.hmac[0].inner,
       "prepared: pads of the key hashed");

    n = ngx_http_crm_cookie_sign(a, 42, T0, &kf.keys);
    ok(n == sizeof(KAT_42) - 1 && memcmp(a, KAT_42, n) == 0,
       "prepared: known answer for id 42");

    id = 0;
    ok(verify_str(KAT_42, &kf, T0, YEAR, &id) == OK && id == 42,
       "prepared: known answer verifies");

    memcpy(a, KAT_42, n);
    a[n - 2] = (a[n - 2] == 'Q') ? 'R' : 'Q';
    ok(verify((char *) a, n, &kf, T0, YEAR, &id) != OK,
       "prepared: a changed mac does not verify");

    ngx_http_crm_keys_release(&kf.keys);
    ok(kf.keys.hmac[0].inner == NULL
       && ngx_http_crm_cookie_sign(a, 42, T0, &kf.keys) == n
       && memcmp(a, KAT_42, n) == 0,
       "prepared: released, HMAC() again, same answer");
    keyfile_free(&kf);

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        memset(text, 'k', lens[i]);
        text[0] = (char) ('A' + i);
        text[lens[i]] = '\n';
        text[lens[i] + 1] = '\0';

        keyfile(&kf, text);
        n = ngx_http_crm_cookie_sign(a, 1000000007, T0, &kf.keys);
        ngx_http_crm_keys_prepare(&kf.keys);
        m = ngx_http_crm_cookie_sign(b, 1000000007, T0, &kf.keys);

        ok(n > 0 && n == m && memcmp(a, b, n) == 0
           && verify((char *) b, m, &kf, T0, DAY, &id) == OK,
           "prepared: a %zu-byte key signs as HMAC() does", lens[i]);

        ngx_http_crm_keys_release(&kf.keys);
        keyfile_free(&kf);
    }
}
