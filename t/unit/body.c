
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of the request-body core (ngx_http_crm_json.c, _json_walk.c,
 * _form.c, _fields.c), printed as
 * TAP.  Built and run by t/002-unit-body.t; every buffer handed to the
 * library is malloc()ed to its exact documented size, so valgrind or
 * ASan catch a write past it.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_crm_json.h"
#include "ngx_http_crm_form.h"
#include "ngx_http_crm_fields.h"


#define B(s)  (const unsigned char *) (s), (sizeof(s) - 1)

#define MB10  (10 * 1024 * 1024)


static int ok(int cond, const char *name);
static void diag_bytes(const char *label, const unsigned char *p,
    size_t len);
static void is_bytes(const unsigned char *got, size_t glen,
    const unsigned char *exp, size_t elen, const char *name);
static unsigned char *dup_bytes(const unsigned char *p, size_t len);

static void json_ok(const char *name, const unsigned char *p, size_t len);
static void json_bad(const char *name, const unsigned char *p, size_t len,
    const char *reason);
static void json_depth(const char *name, size_t depth, int object,
    unsigned max_depth, const char *reason);

static void form_is(const char *name, const unsigned char *p, size_t len,
    const char *exp);
static void form_bad(const char *name, const unsigned char *p, size_t len,
    const char *reason);

static void get_is(const char *name, const char *doc, const char *pointer,
    ngx_http_crm_json_type_e type, const char *raw);
static void get_none(const char *name, const char *doc,
    const char *pointer);
static void many_is(const char *name, const char *doc,
    const char *const *pointers, size_t n);
static void unescape_is(const char *name, const char *raw, const char *exp,
    size_t elen);
static int form_lookup(const char *body, const char *pointer,
    unsigned char *out, size_t *outlen);
static void form_get_is(const char *name, const char *body,
    const char *pointer, const char *exp);
static void form_get_none(const char *name, const char *body,
    const char *pointer);

static void email_is(const char *name, const char *in, const char *exp);
static void phone_is(const char *name, const char *in, const char *exp);

static void test_json(void);
static void test_json_big(void);
static void test_form(void);
static void test_get(void);
static void test_get_many(void);
static void test_form_lookup(void);
static void test_normalize(void);
static void test_empty(void);


static unsigned  tests;
static unsigned  failures;


int
main(void)
{
    test_json();
    test_json_big();
    test_form();
    test_get();
    test_get_many();
    test_form_lookup();
    test_normalize();
    test_empty();

    printf("1..%u\n", tests);

    if (failures) {
        printf("# %u of %u tests failed\n", failures, tests);
    }

    return failures ? 1 : 0;
}


static void
test_json(void)
{
    json_ok("empty object", B("{}"));
    json_ok("empty array", B("[]"));
    json_ok("nested object",
            B("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}"));
    json_ok("whitespace around and inside",
            B(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } }\n "));
    json_ok("string scalar", B("\"str\""));
    json_ok("zero", B("0"));
    json_ok("minus zero", B("-0"));
    json_ok("1e5", B("1e5"));
    json_ok("fraction with exponent", B("-12.5E-3"));
    json_ok("exponent with plus", B("1E+2"));
    json_ok("true", B("true"));
    json_ok("null", B("null"));
    json_ok("every short escape", B("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\""));
    json_ok("surrogate pair escape", B("\"\\ud83d\\ude00\""));
    json_ok("raw UTF-8 2, 3 and 4 bytes",
            B("\"\xd0\x9f\xe2\x82\xac\xf0\x9f\x98\x80\""));
    json_ok("UTF-8 boundaries U+D7FF U+FFFF U+10FFFF",
            B("\"\xed\x9f\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\""));
    json_ok("DEL raw in string", B("\"\x7f\""));
    json_ok("1e131071 fits numeric", B("1e131071"));
    json_ok("1e-16383 fits numeric", B("1e-16383"));
    json_ok("0e200000 is zero", B("0e200000"));
    json_ok("0.1e131072 fits numeric", B("0.1e131072"));

    json_bad("empty body", B(""), "empty body");
    json_bad("only whitespace", B("  \r\n\t"), "empty body");
    json_bad("object cut after colon", B("{\"a\":"), "truncated JSON");
    json_bad("array cut", B("[1,2"), "truncated JSON");
    json_bad("string cut", B("\"abc"), "truncated JSON");
    json_bad("literal cut", B("tru"), "truncated JSON");
    json_bad("escape cut", B("\"\\u12"), "truncated JSON");
    json_bad("trailing garbage", B("{\"a\":1}x"), "trailing bytes after JSON");
    json_bad("two values", B("{} {}"), "trailing bytes after JSON");
    json_bad("trailing comma in array", B("[1,]"), "invalid JSON");
    json_bad("trailing comma in object", B("{\"a\":1,}"), "invalid JSON");
    json_bad("missing colon", B("{\"a\" 1}"), "invalid JSON");
    json_bad("single quotes", B("{'a':1}"), "invalid JSON");
    json_bad("bracket mismatch", B("[1}"), "invalid JSON");
    json_bad("bare word", B("nulx"), "invalid JSON");
    json_bad("literal runs on", B("[truex]"), "invalid JSON");
    json_bad("NaN", B("NaN"), "invalid JSON");
    json_bad("leading plus", B("+1"), "invalid JSON");
    json_bad("leading dot", B(".5"), "invalid JSON");
    json_bad("leading zero 01", B("01"), "invalid JSON");
    json_bad("leading zero in array", B("[00]"), "invalid JSON");
    json_bad("1. at end", B("1."), "truncated JSON");
    json_bad("1. in array", B("[1.]"), "invalid JSON");
    json_bad("1.e5", B("1.e5"), "invalid JSON");
    json_bad("1e without digits", B("[1e]"), "invalid JSON");
    json_bad("minus alone", B("-"), "truncated JSON");
    json_bad("double minus", B("--1"), "invalid JSON");
    json_bad("1e999999", B("1e999999"), "number out of range");
    json_bad("1e131072", B("1e131072"), "number out of range");
    json_bad("1e-16384", B("1e-16384"), "number out of range");
    json_bad("1.5e-16383", B("1.5e-16383"), "number out of range");
    json_bad("0e-16384 (scale of zero)", B("0e-16384"),
             "number out of range");
    json_bad("0e1073741823 (exponent of zero)", B("0e1073741823"),
             "number out of range");
    json_bad("exponent of 30 digits", B("1e100000000000000000000000000000"),
             "number out of range");

    json_bad("\\u0000", B("\"a\\u0000b\""), "\\u0000 is not allowed");
    json_bad("\\u0000 in a key", B("{\"\\u0000\":1}"),
             "\\u0000 is not allowed");
    json_bad("lone high surrogate", B("\"\\ud83d\""),
             "unpaired surrogate escape");
    json_bad("lone low surrogate", B("\"\\ude00\""),
             "unpaired surrogate escape");
    json_bad("high then non-surrogate", B("\"\\ud83d\\u0041\""),
             "unpaired surrogate escape");
    json_bad("high then short escape", B("\"\\ud83d\\n\""),
             "unpaired surrogate escape");
    json_bad("swapped pair", B("\"\\ude00\\ud83d\""),
             "unpaired surrogate escape");
    json_bad("unknown escape", B("\"\\x\""), "invalid escape");
    json_bad("bad hex in \\u", B("\"\\u12g4\""), "invalid escape");
    json_bad("raw control char", B("\"a\x01\""),
             "control character in string");
    json_bad("raw tab", B("\"a\tb\""), "control character in string");
    json_bad("raw NUL", B("\"a\0b\""), "control character in string");
    json_bad("overlong C0 AF", B("\"\xc0\xaf\""), "invalid UTF-8");
    json_bad("overlong E0 80 80", B("\"\xe0\x80\x80\""), "invalid UTF-8");
    json_bad("UTF-8 surrogate ED A0 80", B("\"\xed\xa0\x80\""),
             "invalid UTF-8");
    json_bad("above U+10FFFF F4 90 80 80", B("\"\xf4\x90\x80\x80\""),
             "invalid UTF-8");
    json_bad("byte F5", B("\"\xf5\x80\x80\x80\""), "invalid UTF-8");
    json_bad("byte FE", B("\"\xfe\""), "invalid UTF-8");
    json_bad("byte FF", B("\"\xff\""), "invalid UTF-8");
    json_bad("lone continuation byte", B("\"\x80\""), "invalid UTF-8");
    json_bad("sequence cut by quote", B("\"\xe2\x82\""), "invalid UTF-8");
    json_bad("non-ASCII outside strings", B("[\xd0\x9f]"), "invalid JSON");
    json_bad("byte order mark", B("\xef\xbb\xbf{}"), "invalid JSON");
}


static void
test_json_big(void)
{
    size_t          i, n;
    const char     *reason;
    unsigned char  *p;

    json_depth("64 nested arrays", 64, 0, 64, NULL);
    json_depth("65 nested arrays", 65, 0, 64, "nesting deeper than 64");
    json_depth("64 nested objects", 64, 1, 64, NULL);
    json_depth("65 nested objects", 65, 1, 64, "nesting deeper than 64");
    json_depth("1024 nested with max_depth 5000", 1024, 0, 5000, NULL);
    json_depth("1025 nested with max_depth 5000 (capped at 1024)", 1025, 0,
               5000, "nesting too deep");
    json_depth("2 nested with max_depth 1", 2, 1, 1, "nesting too deep");

    p = malloc(MB10);
    if (p == NULL) {
        abort();
    }

    memset(p, '[', MB10);
    reason = NULL;
    ok(ngx_http_crm_json_check(p, MB10, 64, &reason) == -1
       && reason && strcmp(reason, "nesting deeper than 64") == 0,
       "10 MB of [ rejected");

    ok(ngx_http_crm_json_check(p, MB10, 100000, &reason) == -1
       && strcmp(reason, "nesting too deep") == 0,
       "10 MB of [ rejected with a huge max_depth");

    /* a 10 MB flat array: [1,1,...,1] */

    p[0] = '[';
    for (i = 1; i < MB10 - 1; i += 2) {
        p[i] = '1';
        p[i + 1] = ',';
    }
    p[MB10 - 1] = ']';
    if (p[MB10 - 2] == ',') {
        p[MB10 - 2] = '1';
    }

    json_ok("10 MB flat array", p, MB10);

    memset(p, 'a', MB10);
    p[0] = '"';
    p[MB10 - 1] = '"';
    json_ok("10 MB string", p, MB10);

    /* numeric's limits: 131072 integer digits, 16383 fraction digits */

    n = 131072;
    p[0] = '1';
    memset(p + 1, '0', n - 1);
    json_ok("131072-digit integer", p, n);

    p[n] = '0';
    json_bad("131073-digit integer", p, n + 1, "number out of range");

    p[0] = '0';
    p[1] = '.';
    memset(p + 2, '5', 16383);
    json_ok("16383 fraction digits", p, 16383 + 2);
    json_bad("16384 fraction digits", p, 16384 + 2, "number out of range");

    free(p);
}


static void
test_form(void)
{
    form_is("plus and percent-escapes",
            B("a=1&b=x+y&customer.email=A%40B.C"),
            "{\"a\":\"1\",\"b\":\"x y\",\"customer.email\":\"A@B.C\"}");
    form_is("UTF-8 escapes, either case", B("%D0%9F=%d0%bf"),
            "{\"\xd0\x9f\":\"\xd0\xbf\"}");
    form_is("raw UTF-8", B("name=\xd0\x9f\xd1\x91\xd1\x82\xd1\x80"),
            "{\"name\":\"\xd0\x9f\xd1\x91\xd1\x82\xd1\x80\"}");
    form_is("key without =", B("flag"), "{\"flag\":\"\"}");
    form_is("empty pairs skipped", B("a=1&&b=2&"),
            "{\"a\":\"1\",\"b\":\"2\"}");
    form_is("only separators", B("&&&"), "{}");
    form_is("empty key", B("=v"), "{\"\":\"v\"}");
    form_is("= inside value", B("a==b=c"), "{\"a\":\"=b=c\"}");
    form_is("escaped quote, backslash, control chars",
            B("q=%22x%22%5C%0A%01%1F%7F"),
            "{\"q\":\"\\\"x\\\"\\\\\\u000a\\u0001\\u001f\x7f\"}");
    form_is("raw quote and backslash", B("k\"=\\"),
            "{\"k\\\"\":\"\\\\\"}");
    form_is("raw control chars, worst-case size", B("\x01&\x01&\x01"),
            "{\"\\u0001\":\"\",\"\\u0001\":\"\",\"\\u0001\":\"\"}");
    form_is("repeated key emitted twice", B("a=1&a=2"),
            "{\"a\":\"1\",\"a\":\"2\"}");
    form_is("encoded & and =", B("a%26b=c%3Dd"), "{\"a&b\":\"c=d\"}");
    form_is("encoded plus", B("p=%2B7"), "{\"p\":\"+7\"}");

    form_bad("empty body", B(""), "empty body");
    form_bad("% at end", B("a=%"), "malformed percent-escape");
    form_bad("%4 at end", B("a=%4"), "malformed percent-escape");
    form_bad("%zz", B("a=%zz&b=1"), "malformed percent-escape");
    form_bad("%4g", B("a=%4g"), "malformed percent-escape");
    form_bad("bad escape in key", B("a%=1"), "malformed percent-escape");
    form_bad("%FF", B("a=%FF"), "invalid UTF-8");
    form_bad("cut sequence %D0", B("a=%D0"), "invalid UTF-8");
    form_bad("sequence split by =", B("%D0=%9F"), "invalid UTF-8");
    form_bad("overlong %C0%AF", B("a=%C0%AF"), "invalid UTF-8");
    form_bad("surrogate %ED%A0%80", B("a=%ED%A0%80"), "invalid UTF-8");
    form_bad("raw byte FF", B("a=\xff"), "invalid UTF-8");
    form_bad("%00", B("a=%00"), "NUL byte in form");
    form_bad("raw NUL", B("a=x\0y"), "NUL byte in form");
}


static const char  doc[] =
    "{\"customer\":{\"email\":\"A@B.C\",\"phone\":\"+7 (912) 345-67-89\","
    "\"name\":\"P\\u00e9ter \\\"Pete\\\"\",\"tags\":[\"x\",\"y\",{\"z\":1}]},"
    "\"order_id\":12345,\"total\":-12.5e1,\"paid\":true,\"gift\":false,"
    "\"note\":null,"
    "\"items\":[{\"sku\":\"a\",\"qty\":2},{\"sku\":\"b\",\"qty\":1}],"
    "\"a/b\":1,\"m~n\":2,\"\":3,\"dup\":1,\"dup\":\"last\",\"empty\":{},"
    "\"s\":\"str\",\"caf\\u00e9\":\"accent\",\"sl\\/ash\":\"esc\"}";

static const char  spaced[] =
    " \n{ \"a\" : [ 1 , { \"b\" : \"c\" } ] , \"n\" : -0.5 }\n";


static void
test_get(void)
{
    json_ok("lookup document is valid", B(doc));

    get_is("nested string", doc, "/customer/email",
           NGX_HTTP_CRM_JSON_STRING, "A@B.C");
    get_is("string stays escaped", doc, "/customer/name",
           NGX_HTTP_CRM_JSON_STRING, "P\\u00e9ter \\\"Pete\\\"");
    get_is("number", doc, "/order_id", NGX_HTTP_CRM_JSON_NUMBER, "12345");
    get_is("number with exponent", doc, "/total", NGX_HTTP_CRM_JSON_NUMBER,
           "-12.5e1");
    get_is("true", doc, "/paid", NGX_HTTP_CRM_JSON_TRUE, "true");
    get_is("false", doc, "/gift", NGX_HTTP_CRM_JSON_FALSE, "false");
    get_is("null", doc, "/note", NGX_HTTP_CRM_JSON_NULL, "null");
    get_is("object", doc, "/customer/tags/2", NGX_HTTP_CRM_JSON_OBJECT,
           "{\"z\":1}");
    get_is("array", doc, "/customer/tags", NGX_HTTP_CRM_JSON_ARRAY,
           "[\"x\",\"y\",{\"z\":1}]");
    get_is("empty object", doc, "/empty", NGX_HTTP_CRM_JSON_OBJECT, "{}");
    get_is("array index 0", doc, "/items/0/qty", NGX_HTTP_CRM_JSON_NUMBER,
           "2");
    get_is("array index 1", doc, "/items/1/sku", NGX_HTTP_CRM_JSON_STRING,
           "b");
    get_is("through an array into an object", doc, "/customer/tags/2/z",
           NGX_HTTP_CRM_JSON_NUMBER, "1");
    get_is("~1 is /", doc, "/a~1b", NGX_HTTP_CRM_JSON_NUMBER, "1");
    get_is("~0 is ~", doc, "/m~0n", NGX_HTTP_CRM_JSON_NUMBER, "2");
    get_is("empty key", doc, "/", NGX_HTTP_CRM_JSON_NUMBER, "3");
    get_is("duplicate key: the last, as jsonb keeps", doc, "/dup",
           NGX_HTTP_CRM_JSON_STRING, "last");
    get_is("escaped key matches UTF-8 pointer", doc, "/caf\xc3\xa9",
           NGX_HTTP_CRM_JSON_STRING, "accent");
    get_is("\\/ in key matches ~1", doc, "/sl~1ash",
           NGX_HTTP_CRM_JSON_STRING, "esc");
    get_is("empty pointer is the document", spaced, "",
           NGX_HTTP_CRM_JSON_OBJECT,
           "{ \"a\" : [ 1 , { \"b\" : \"c\" } ] , \"n\" : -0.5 }");
    get_is("whitespace everywhere", spaced, "/a/1/b",
           NGX_HTTP_CRM_JSON_STRING, "c");
    get_is("raw array keeps inner spaces", spaced, "/a",
           NGX_HTTP_CRM_JSON_ARRAY, "[ 1 , { \"b\" : \"c\" } ]");
    get_is("number before closing brace", spaced, "/n",
           NGX_HTTP_CRM_JSON_NUMBER, "-0.5");
    get_is("scalar document", " 42 ", "", NGX_HTTP_CRM_JSON_NUMBER, "42");

    get_none("missing key", doc, "/missing");
    get_none("missing nested key", doc, "/customer/missing");
    get_none("index past the end", doc, "/items/2");
    get_none("index -", doc, "/items/-");
    get_none("index with leading zero", doc, "/items/01");
    get_none("index not a number", doc, "/items/x");
    get_none("pointer into a string", doc, "/customer/email/0");
    get_none("pointer into a number", doc, "/order_id/x");
    get_none("pointer into an empty object", doc, "/empty/a");
    get_none("~2 is malformed", doc, "/a~2b");
    get_none("~ at end is malformed", doc, "/m~");
    get_none("pointer without leading /", doc, "customer");
    get_none("prefix of a key", doc, "/customer/emai");
    get_none("key is a prefix of the pointer", doc, "/customer/emails");
    get_none("empty document", "  ", "");

    unescape_is("short escapes", "a\\\"\\\\\\/\\b\\f\\n\\r\\t",
                "a\"\\/\b\f\n\r\t", 9);
    unescape_is("\\u to 2 and 3 bytes", "\\u00e9\\u20AC",
                "\xc3\xa9\xe2\x82\xac", 5);
    unescape_is("surrogate pair to 4 bytes", "\\ud83d\\ude00!",
                "\xf0\x9f\x98\x80!", 5);
    unescape_is("raw UTF-8 copied", "\xd0\x9f", "\xd0\x9f", 2);
    unescape_is("lone surrogate becomes U+FFFD", "\\ud83dx",
                "\xef\xbf\xbdx", 4);
    unescape_is("broken escape copied", "a\\", "a\\", 2);
}


/*
 * json_get_many() must give, pointer by pointer, what json_get(), its
 * one-pointer case, gives: the shared walk loses nothing to the others
 */

#define MANY(name, d, ...)                                                    \
    do {                                                                      \
        static const char *const  ps_[] = { __VA_ARGS__ };                   \
        many_is(name, d, ps_, sizeof(ps_) / sizeof(ps_[0]));                  \
    } while (0)

static void
test_get_many(void)
{
    size_t                      i, plens[20];
    unsigned char               found[20];
    const unsigned char        *ps[20];
    ngx_http_crm_json_value_t   v[20];

    MANY("the lookup document, every kind of value", doc,
         "/customer/email", "/customer/name", "/order_id", "/total",
         "/paid", "/gift", "/note", "/customer/tags/2", "/customer/tags",
         "/empty", "/items/0/qty", "/items/1/sku", "/customer/tags/2/z",
         "/a~1b", "/m~0n", "/");
    MANY("escapes and duplicates", doc, "/dup", "/caf\xc3\xa9", "/sl~1ash",
         "/cafe", "/sl/ash", "/dup/0");
    MANY("missing and malformed", doc, "/missing", "/customer/missing",
         "/items/2", "/items/-", "/items/01", "/items/x",
         "/customer/email/0", "/order_id/x", "/empty/a", "/a~2b", "/m~",
         "customer", "/customer/emai", "/customer/emails");
    MANY("the empty pointer with others", spaced, "", "/a/1/b", "/a", "/n",
         "/a/0", "/a/1", "/a/2");
    MANY("a pointer and its prefixes", doc, "/customer",
         "/customer/tags", "/customer/tags/2", "/customer/tags/2/z", "");
    MANY("prefixes in the other order", doc, "/customer/tags/2/z",
         "/customer/tags/2", "/customer/tags", "/customer");
    MANY("the same pointer twice", doc, "/customer/email",
         "/customer/email", "/items/1", "/items/1");
    MANY("scalar document", " 42 ", "", "/a", "/0");
    MANY("string document", "\"a\"", "", "/0");
    MANY("empty document", "  ", "", "/a");
    MANY("duplicate object, the last has no inner key",
         "{\"a\":{\"b\":1},\"a\":{\"c\":2}}", "/a/b", "/a/c", "/a");
    MANY("duplicate object, the last has the inner key",
         "{\"a\":{\"c\":2},\"a\":{\"b\":1,\"c\":3}}", "/a/b", "/a/c", "/a");
    MANY("duplicate inside a duplicate",
         "{\"a\":{\"b\":{\"c\":1},\"b\":{}},\"x\":0,"
         "\"a\":{\"b\":{\"c\":2},\"b\":{\"c\":3,\"c\":4}}}",
         "/a/b/c", "/a/b", "/a", "/x");
    MANY("duplicate replaced by a scalar",
         "{\"a\":{\"b\":1},\"a\":7}", "/a/b", "/a");
    MANY("duplicate replaced by an array",
         "{\"a\":{\"0\":1},\"a\":[5,6]}", "/a/0", "/a/1", "/a/2");
    MANY("key \"0\" in an object, index in an array",
         "{\"0\":[{\"0\":\"x\"},[\"y\",\"z\"]]}", "/0/0/0", "/0/1/1",
         "/0/1/0/0", "/0/00", "/0/2");
    MANY("escaped keys", "{\"\\u0065mail\":1,\"a\\\"b\":2,\"~\":3,"
         "\"t\\tab\":4,\"\\ud83d\\ude00\":5}",
         "/email", "/a\"b", "/~0", "/t\tab", "/\xf0\x9f\x98\x80", "/~1");
    MANY("empty keys and empty segments",
         "{\"\":{\"\":{\"\":1}},\"b\":{\"\":2}}", "/", "//", "///", "/b/",
         "////");
    MANY("nested arrays",
         "[[1,[2,3]],[],[[[4]]],{\"a\":[true,null]}]", "/0/1/1", "/1/0",
         "/2/0/0/0", "/3/a/1", "/3/a/2", "/4", "/0", "",
         "/18446744073709551615", "/9999999999999999999");
    MANY("whitespace everywhere",
         " \r\n{ \"a\" :\t[ 1 , { \"b\" : \"c\" } ] ,\"a\" : { \"b\" : [ ] } "
         "}\n", "/a/b", "/a/1/b", "/a", "/a/b/0");
    MANY("strings holding brackets and quotes",
         "{\"s\":\"}]{[\\\"\",\"t\":[\"]\",{\"u\":\"\\\\\"}]}", "/s", "/t/1/u",
         "/t/0", "/t/2");
    MANY("sixteen pointers", doc,
         "/customer/email", "/customer/phone", "/order_id", "/total",
         "/paid", "/gift", "/note", "/items/0/sku", "/items/1/qty",
         "/a~1b", "/m~0n", "/", "/dup", "/empty", "/s", "/missing");
    MANY("more than sixteen: a second pass", doc,
         "/customer/email", "/customer/phone", "/order_id", "/total",
         "/paid", "/gift", "/note", "/items/0/sku", "/items/1/qty",
         "/a~1b", "/m~0n", "/", "/dup", "/empty", "/s", "/missing",
         "/customer/tags/1", "/items/1/sku", "/x", "");
    MANY("deeper than the walk follows",
         "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
         "{\"a\":1}}}}}}}}}}",
         "/a/a/a/a/a/a/a/a/a/a",
         "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a"
         "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a"
         "/a", "/a/a/a/a/a");
    MANY("a broken document", "{\"a\":1,\"b\":[2", "/a",
         "/b/0", "/b");

    /* n == 0, and NULL for the empty document and the empty pointer */

    ok(ngx_http_crm_json_get_many(B("{}"), NULL, NULL, 0, NULL, NULL) == 0,
       "get_many: no pointers");

    ps[0] = NULL;
    plens[0] = 0;
    found[0] = 2;
    ok(ngx_http_crm_json_get_many(NULL, 0, ps, plens, 1, v, found) == 0
       && found[0] == 0, "get_many in an empty document");

    ok(ngx_http_crm_json_get_many(B("[1]"), ps, plens, 1, v, found) == 1
       && found[0] == 1 && v[0].type == NGX_HTTP_CRM_JSON_ARRAY
       && v[0].len == 3, "get_many with a NULL empty pointer");

    for (i = 0; i < 20; i++) {
        ps[i] = (const unsigned char *) "/a";
        plens[i] = 2;
    }

    ok(ngx_http_crm_json_get_many(B("{\"a\":1}"), ps, plens, 20, v, found)
       == 20, "get_many: twenty times the same pointer");
}


static void
many_is(const char *name, const char *doc, const char *const *pointers,
    size_t n)
{
    int                         rc;
    char                        title[256];
    size_t                      i, len, count, exp, plens[32];
    unsigned char              *d, *ps[32], found[32];
    ngx_http_crm_json_value_t   v[32], w;

    if (n > 32) {
        abort();
    }

    len = strlen(doc);
    d = dup_bytes((const unsigned char *) doc, len);

    memset(ps, 0, sizeof(ps));
    memset(plens, 0, sizeof(plens));

    for (i = 0; i < n; i++) {
        plens[i] = strlen(pointers[i]);
        ps[i] = dup_bytes((const unsigned char *) pointers[i], plens[i]);
    }

    memset(found, 2, sizeof(found));

    count = ngx_http_crm_json_get_many(d, len,
                                       (const unsigned char *const *) ps,
                                       plens, n, v, found);

    snprintf(title, sizeof(title), "get_many: %s", name);

    exp = 0;

    for (i = 0; i < n; i++) {
        rc = ngx_http_crm_json_get(d, len, ps[i], plens[i], &w);

        if (rc == 0) {
            exp++;
        }

        if (rc == 0 && found[i] == 1 && v[i].type == w.type
            && v[i].start == w.start && v[i].len == w.len)
        {
            continue;
        }

        if (rc == -1 && found[i] == 0) {
            continue;
        }

        ok(0, title);
        printf("#   pointer \"%s\": json_get %d, found %d\n",
               pointers[i], rc, (int) found[i]);
        goto done;
    }

    if (!ok(count == exp, title)) {
        printf("#   %zu found, json_get finds %zu\n", count, exp);
    }

done:

    free(d);

    for (i = 0; i < n; i++) {
        free(ps[i]);
    }
}


static void
test_form_lookup(void)
{
    size_t                      n, outlen;
    const char                 *reason;
    unsigned char              *json, *ptr, *out;
    ngx_http_crm_json_value_t   v;

    static const char  body[] =
        "customer.email=A%40B.C&x=1&customer.email=last%40b.c"
        "&name=P%C3%A9ter+Pan&a%2Fb=slash&m~n=tilde&flag&empty=";

    form_get_is("dotted key, last pair wins", body, "/customer/email",
                "last@b.c");
    form_get_is("decoded value", body, "/name", "P\xc3\xa9ter Pan");
    form_get_is("~1 matches an encoded /", body, "/a~1b", "slash");
    form_get_is("~0 matches ~", body, "/m~0n", "tilde");
    form_get_is("key without =", body, "/flag", "");
    form_get_is("empty value", body, "/empty", "");
    form_get_is("plain key", "a=1", "/a", "1");
    form_get_none("absent key", body, "/customer/phone");
    form_get_none("dotted key is not nested", body, "/customer");
    form_get_none("malformed body", "a=1&b=%zz", "/a");
    form_get_none("empty pointer", body, "");
    form_get_none("pointer without /", body, "a");
    form_get_none("empty body", "", "/a");

    /* step by step: form_to_json(), then json_get() with form_pointer() */

    n = sizeof(body) - 1;
    json = malloc(ngx_http_crm_form_json_size(n));
    ptr = dup_bytes(B("/customer/email"));
    out = malloc(64);
    if (json == NULL || ptr == NULL || out == NULL) {
        abort();
    }

    ok(ngx_http_crm_form_to_json((const unsigned char *) body, n, json,
                                 &outlen, &reason) == 0,
       "form converted for the JSON path");
    ok(ngx_http_crm_form_pointer(ptr, 15, ptr) == 0, "form_pointer");
    is_bytes(ptr, 15, B("/customer.email"), "form_pointer output");
    ok(ngx_http_crm_json_get(json, outlen, ptr, 15, &v) == 0
       && v.type == NGX_HTTP_CRM_JSON_STRING,
       "json_get finds the dotted key in the converted form");
    n = ngx_http_crm_json_unescape(v.start, v.len, out);
    is_bytes(out, n, B("last@b.c"), "both paths give the last value");
    ok(ngx_http_crm_form_pointer(B("x"), out) == -1,
       "form_pointer refuses a pointer without /");

    free(json);
    free(ptr);
    free(out);
}


static void
test_normalize(void)
{
    size_t          n;
    unsigned char  *p;

    email_is("trim and lower-case", "  John.Doe@Example.COM \t\r\n",
             "john.doe@example.com");
    email_is("non-ASCII kept as is", "\xd0\x9f\xd0\x81@Mail.RU",
             "\xd0\x9f\xd0\x81@mail.ru");
    email_is("shortest e-mail", "a@b", "a@b");
    email_is("no @", "no-at-sign.example.com", "");
    email_is("nothing before @", " @example.com", "");
    email_is("nothing after @", "john@ ", "");
    email_is("only spaces", "   ", "");
    email_is("empty", "", "");
    email_is("CR LF inside", "a@b.c\r\nBcc: x@y.z", "");
    email_is("space inside", "john doe@example.com", "");
    email_is("control character", "jo\x01hn@example.com", "");
    email_is("DEL", "jo\x7fhn@example.com", "");
    email_is("254 octets",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com");
    email_is("255 octets",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com", "");
    email_is("254 octets after trimming", "  a@b.c  ", "a@b.c");

    phone_is("+7 (912) 345-67-89", "+7 (912) 345-67-89", "79123456789");
    phone_is("8 912 345 67 89", "8 912 345 67 89", "79123456789");
    phone_is("8(912)3456789", "8(912)3456789", "79123456789");
    phone_is("UK number kept", "+44 20 7946 0958", "442079460958");
    phone_is("12 digits starting with 8 kept", "812345678901",
             "812345678901");
    phone_is("five digits", "12-345", "12345");
    phone_is("four digits", "1234", "");
    phone_is("8 800", "8 800", "");
    phone_is("no digits", "call me", "");
    phone_is("15 digits", "123456789012345", "123456789012345");
    phone_is("16 digits", "1234567890123456", "");

    p = dup_bytes(B(" A@B.C "));
    if (p == NULL) {
        abort();
    }

    n = ngx_http_crm_email_normalize(p, 7, p);
    is_bytes(p, n, B("a@b.c"), "e-mail normalized in place");
    free(p);

    p = dup_bytes(B("8 (912) 345-67-89"));
    if (p == NULL) {
        abort();
    }

    n = ngx_http_crm_phone_normalize(p, 17, p);
    is_bytes(p, n, B("79123456789"), "phone normalized in place");
    free(p);
}


static void
json_ok(const char *name, const unsigned char *p, size_t len)
{
    const char     *reason;
    unsigned char  *copy;

    copy = dup_bytes(p, len);
    reason = NULL;

    if (!ok(ngx_http_crm_json_check(copy, len, NGX_HTTP_CRM_JSON_DEPTH,
                                    &reason) == 0, name))
    {
        printf("#   refused: %s\n", reason ? reason : "(no reason)");
    }

    free(copy);
}


static void
json_bad(const char *name, const unsigned char *p, size_t len,
    const char *reason)
{
    int             rc;
    const char     *got;
    unsigned char  *copy;

    copy = dup_bytes(p, len);
    got = NULL;

    rc = ngx_http_crm_json_check(copy, len, NGX_HTTP_CRM_JSON_DEPTH, &got);

    if (!ok(rc == -1 && got != NULL && strcmp(got, reason) == 0, name)) {
        printf("#   got %d \"%s\", expected -1 \"%s\"\n", rc,
               (rc == 0 || got == NULL) ? "" : got, reason);
    }

    free(copy);
}


/* depth nested arrays or objects ({"a":...}) around a 1 */

static void
json_depth(const char *name, size_t depth, int object, unsigned max_depth,
    const char *reason)
{
    int             rc;
    size_t          i, len;
    const char     *got;
    unsigned char  *p, *q;

    p = malloc(depth * 6 + 1);
    if (p == NULL) {
        abort();
    }

    q = p;

    for (i = 0; i < depth; i++) {
        if (object) {
            memcpy(q, "{\"a\":", 5);
            q += 5;

        } else {
            *q++ = '[';
        }
    }

    *q++ = '1';

    for (i = 0; i < depth; i++) {
        *q++ = object ? '}' : ']';
    }

    len = q - p;
    got = NULL;

    rc = ngx_http_crm_json_check(p, len, max_depth, &got);

    if (reason == NULL) {
        if (!ok(rc == 0, name)) {
            printf("#   refused: %s\n", got);
        }

    } else if (!ok(rc == -1 && strcmp(got, reason) == 0, name)) {
        printf("#   got %d \"%s\", expected \"%s\"\n", rc,
               rc ? got : "", reason);
    }

    free(p);
}


static void
form_is(const char *name, const unsigned char *p, size_t len,
    const char *exp)
{
    int             rc;
    char            title[256];
    size_t          outlen;
    const char     *reason;
    unsigned char  *in, *out;

    in = dup_bytes(p, len);
    out = malloc(ngx_http_crm_form_json_size(len));
    if (out == NULL) {
        abort();
    }

    reason = NULL;
    outlen = 0;

    rc = ngx_http_crm_form_to_json(in, len, out, &outlen, &reason);

    snprintf(title, sizeof(title), "form: %s", name);

    if (rc != 0) {
        ok(0, title);
        printf("#   refused: %s\n", reason);

    } else {
        is_bytes(out, outlen, (const unsigned char *) exp, strlen(exp),
                 title);
    }

    snprintf(title, sizeof(title), "form: %s: output passes json_check",
             name);

    if (!ok(rc == 0 && ngx_http_crm_json_check(out, outlen,
                                               NGX_HTTP_CRM_JSON_DEPTH,
                                               &reason) == 0, title))
    {
        printf("#   refused: %s\n", reason);
    }

    free(in);
    free(out);
}


static void
form_bad(const char *name, const unsigned char *p, size_t len,
    const char *reason)
{
    int             rc;
    char            title[256];
    size_t          outlen;
    const char     *got;
    unsigned char  *in, *out;

    in = dup_bytes(p, len);
    out = malloc(ngx_http_crm_form_json_size(len));
    if (out == NULL) {
        abort();
    }

    got = NULL;

    rc = ngx_http_crm_form_to_json(in, len, out, &outlen, &got);

    snprintf(title, sizeof(title), "form refused: %s", name);

    if (!ok(rc == -1 && got != NULL && strcmp(got, reason) == 0, title)) {
        printf("#   got %d \"%s\", expected -1 \"%s\"\n", rc,
               (rc == 0 || got == NULL) ? "" : got, reason);
    }

    free(in);
    free(out);
}


static void
get_is(const char *name, const char *doc, const char *pointer,
    ngx_http_crm_json_type_e type, const char *raw)
{
    int                         rc;
    char                        title[256];
    size_t                      len, plen;
    unsigned char              *d, *ptr;
    ngx_http_crm_json_value_t   v;

    len = strlen(doc);
    plen = strlen(pointer);
    d = dup_bytes((const unsigned char *) doc, len);
    ptr = dup_bytes((const unsigned char *) pointer, plen);

    snprintf(title, sizeof(title), "get %s: %s", pointer, name);

    memset(&v, 0, sizeof(v));
    rc = ngx_http_crm_json_get(d, len, ptr, plen, &v);

    if (rc != 0) {
        ok(0, title);
        printf("#   not found\n");

    } else if (v.type != type) {
        ok(0, title);
        printf("#   type %d, expected %d\n", (int) v.type, (int) type);

    } else {
        is_bytes(v.start, v.len, (const unsigned char *) raw, strlen(raw),
                 title);
    }

    free(d);
    free(ptr);
}


static void
get_none(const char *name, const char *doc, const char *pointer)
{
    int                         rc;
    char                        title[256];
    size_t                      len, plen;
    unsigned char              *d, *ptr;
    ngx_http_crm_json_value_t   v;

    len = strlen(doc);
    plen = strlen(pointer);
    d = dup_bytes((const unsigned char *) doc, len);
    ptr = dup_bytes((const unsigned char *) pointer, plen);

    snprintf(title, sizeof(title), "get %s: %s", pointer, name);

    rc = ngx_http_crm_json_get(d, len, ptr, plen, &v);

    if (!ok(rc == -1, title)) {
        diag_bytes("found", v.start, v.len);
    }

    free(d);
    free(ptr);
}


static void
unescape_is(const char *name, const char *raw, const char *exp, size_t elen)
{
    char            title[256];
    size_t          len, n;
    unsigned char  *in, *out;

    len = strlen(raw);
    in = dup_bytes((const unsigned char *) raw, len);
    out = malloc(len ? len : 1);
    if (out == NULL) {
        abort();
    }

    n = ngx_http_crm_json_unescape(in, len, out);

    snprintf(title, sizeof(title), "unescape: %s", name);
    is_bytes(out, n, (const unsigned char *) exp, elen, title);

    free(in);
    free(out);
}


/* form_to_json(), form_pointer() and json_get(): the value of the key */

static int
form_lookup(const char *body, const char *pointer, unsigned char *out,
    size_t *outlen)
{
    int                         rc;
    size_t                      len, plen, jlen;
    const char                 *reason;
    unsigned char              *b, *ptr, *fptr, *json;
    ngx_http_crm_json_value_t   v;

    len = strlen(body);
    plen = strlen(pointer);
    b = dup_bytes((const unsigned char *) body, len);
    ptr = dup_bytes((const unsigned char *) pointer, plen);
    fptr = malloc(plen ? plen : 1);
    json = malloc(ngx_http_crm_form_json_size(len));
    if (fptr == NULL || json == NULL) {
        abort();
    }

    rc = -1;

    if (ngx_http_crm_form_to_json(b, len, json, &jlen, &reason) == 0
        && ngx_http_crm_form_pointer(ptr, plen, fptr) == 0
        && ngx_http_crm_json_get(json, jlen, fptr, plen, &v) == 0
        && v.type == NGX_HTTP_CRM_JSON_STRING)
    {
        *outlen = ngx_http_crm_json_unescape(v.start, v.len, out);
        rc = 0;
    }

    free(b);
    free(ptr);
    free(fptr);
    free(json);

    return rc;
}


static void
form_get_is(const char *name, const char *body, const char *pointer,
    const char *exp)
{
    char            title[256];
    size_t          outlen;
    unsigned char  *out;

    out = malloc(strlen(body) + 1);
    if (out == NULL) {
        abort();
    }

    snprintf(title, sizeof(title), "form get %s: %s", pointer, name);

    if (form_lookup(body, pointer, out, &outlen) != 0) {
        ok(0, title);
        printf("#   not found\n");

    } else {
        is_bytes(out, outlen, (const unsigned char *) exp, strlen(exp),
                 title);
    }

    free(out);
}


static void
form_get_none(const char *name, const char *body, const char *pointer)
{
    char            title[256];
    size_t          outlen;
    unsigned char  *out;

    out = malloc(strlen(body) + 1);
    if (out == NULL) {
        abort();
    }

    snprintf(title, sizeof(title), "form get %s: %s", pointer, name);

    if (!ok(form_lookup(body, pointer, out, &outlen) == -1, title)) {
        diag_bytes("found", out, outlen);
    }

    free(out);
}


static void
email_is(const char *name, const char *in, const char *exp)
{
    char            title[256];
    size_t          len, n;
    unsigned char  *p, *out;

    len = strlen(in);
    p = dup_bytes((const unsigned char *) in, len);
    out = malloc(len ? len : 1);
    if (out == NULL) {
        abort();
    }

    n = ngx_http_crm_email_normalize(p, len, out);

    snprintf(title, sizeof(title), "e-mail: %s", name);
    is_bytes(out, n, (const unsigned char *) exp, strlen(exp), title);

    free(p);
    free(out);
}


static void
phone_is(const char *name, const char *in, const char *exp)
{
    char            title[256];
    size_t          len, n;
    unsigned char  *p, *out;

    len = strlen(in);
    p = dup_bytes((const unsigned char *) in, len);
    out = malloc(len ? len : 1);
    if (out == NULL) {
        abort();
    }

    n = ngx_http_crm_phone_normalize(p, len, out);

    snprintf(title, sizeof(title), "phone: %s", name);
    is_bytes(out, n, (const unsigned char *) exp, strlen(exp), title);

    free(p);
    free(out);
}


static int
ok(int cond, const char *name)
{
    tests++;

    if (cond) {
        printf("ok %u - %s\n", tests, name);
        return 1;
    }

    failures++;
    printf("not ok %u - %s\n", tests, name);

    return 0;
}


static void
diag_bytes(const char *label, const unsigned char *p, size_t len)
{
    size_t  i;

    printf("#   %s: \"", label);

    for (i = 0; i < len && i < 200; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"') {
            putchar(p[i]);

        } else {
            printf("\\x%02x", p[i]);
        }
    }

    printf("\"%s\n", i < len ? "..." : "");
}


static void
is_bytes(const unsigned char *got, size_t glen, const unsigned char *exp,
    size_t elen, const char *name)
{
    if (!ok(glen == elen && (elen == 0 || memcmp(got, exp, elen) == 0),
            name))
    {
        diag_bytes("got", got, glen);
        diag_bytes("expected", exp, elen);
    }
}


/* an exact-size heap copy, so that reading past the end is caught */

static unsigned char *
dup_bytes(const unsigned char *p, size_t len)
{
    unsigned char  *copy;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    if (len) {
        memcpy(copy, p, len);
    }

    return copy;
}


/* an empty body may come as NULL; pointers are checked before any use */

static void
test_empty(void)
{
    size_t                      outlen;
    const char                 *reason;
    unsigned char               out[16];
    ngx_http_crm_json_value_t   v;

    reason = NULL;
    ok(ngx_http_crm_json_check(NULL, 0, 64, &reason) == -1
       && strcmp(reason, "empty body") == 0, "json_check(NULL, 0)");

    reason = NULL;
    ok(ngx_http_crm_form_to_json(NULL, 0, out, &outlen, &reason) == -1
       && strcmp(reason, "empty body") == 0, "form_to_json(NULL, 0)");

    ok(ngx_http_crm_json_get(NULL, 0, NULL, 0, &v) == -1,
       "json_get in an empty document");
    ok(ngx_http_crm_json_get(B("[1]"), NULL, 0, &v) == 0
       && v.type == NGX_HTTP_CRM_JSON_ARRAY && v.len == 3,
       "json_get with a NULL empty pointer");
    ok(ngx_http_crm_form_to_json(NULL, 0, out, &outlen, &reason) == -1,
       "form_to_json in an empty body");
    ok(ngx_http_crm_json_unescape(NULL, 0, out) == 0, "unescape(NULL, 0)");
    ok(ngx_http_crm_email_normalize(NULL, 0, out) == 0,
       "email_normalize(NULL, 0)");
    ok(ngx_http_crm_phone_normalize(NULL, 0, out) == 0,
       "phone_normalize(NULL, 0)");

    ok(ngx_http_crm_json_pointer_valid(NULL, 0) == 0,
       "pointer_valid: empty pointer");
    ok(ngx_http_crm_json_pointer_valid(B("/customer/email")) == 0,
       "pointer_valid: /customer/email");
    ok(ngx_http_crm_json_pointer_valid(B("/~0~1/")) == 0,
       "pointer_valid: /~0~1/");
    ok(ngx_http_crm_json_pointer_valid(B("customer")) == -1,
       "pointer_valid refuses a pointer without /");
    ok(ngx_http_crm_json_pointer_valid(B("/a~")) == -1,
       "pointer_valid refuses ~ at the end");
    ok(ngx_http_crm_json_pointer_valid(B("/a~2")) == -1,
       "pointer_valid refuses ~2");
}
