
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of the policy loader (ngx_http_crm_policy*.c), printing TAP.
 *
 * examples/crm.yaml is found through $CRM_ROOT, else relative to this
 * binary (t/unit/policy -> ../../examples/crm.yaml).  The example must
 * parse and hold exactly the built-in defaults; every bad document must
 * fail with the exact FILE:LINE:COLUMN and a telling message.
 *
 * Time zones are checked against a zoneinfo made here ($CRM_ZONEINFO), so
 * the tests do not depend on the tzdata of the machine.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ngx_http_crm_policy.h"
#include "tap.h"


#define MIN      "version: 1\ndatabase: {conninfo: \"dbname=x\"}\n"
#define SEC      1000LL
#define MINUTE   (60 * SEC)
#define HOUR     (60 * MINUTE)
#define DAY      (24 * HOUR)


static ngx_http_crm_policy_t *parse(const char *yaml, char *err);
static void bad(const char *name, const char *yaml, const char *where,
    const char *fragment);
static int str_is(ngx_http_crm_str_t *s, const char *v);
static int same_policy(ngx_http_crm_policy_t *a, ngx_http_crm_policy_t *b);
static int same_str(ngx_http_crm_str_t *a, ngx_http_crm_str_t *b);
static char *read_example(const char *argv0, size_t *len);
static char *uncomment_example(const char *yaml);
static void test_example(const char *argv0);
static void test_minimal(void);
static void test_full(void);
static void test_errors(void);
static void test_api(void);
static int zoneinfo_make(char *dir);
static void zoneinfo_remove(const char *dir);
static int write_file(const char *dir, const char *name, const char *data);


/* every error message must start with the file name and be one line */

static int  bad_format;


int
main(int argc, char **argv)
{
    char  zoneinfo[64];

    (void) argc;

    if (zoneinfo_make(zoneinfo) != 0) {
        printf("Bail out! cannot make a zoneinfo directory\n");
        return 1;
    }

    setenv("CRM_ZONEINFO", zoneinfo, 1);

    test_example(argv[0]);
    test_minimal();
    test_full();
    test_errors();
    test_api();

    zoneinfo_remove(zoneinfo);

    return done_testing();
}


/* Europe/Berlin and Etc/GMT+5 are TZif files; zone.tab is not */

static int
zoneinfo_make(char *dir)
{
    char  path[128];

    snprintf(dir, 64, "/tmp/crm-zoneinfo-XXXXXX");

    if (mkdtemp(dir) == NULL) {
        return -1;
    }

    snprintf(path, sizeof(path), "%s/Europe", dir);
    if (mkdir(path, 0700) != 0) {
        return -1;
    }

    snprintf(path, sizeof(path), "%s/Etc", dir);
    if (mkdir(path, 0700) != 0) {
        return -1;
    }

    if (write_file(dir, "Europe/Berlin", "TZif2...") != 0
        || write_file(dir, "Etc/GMT+5", "TZif2...") != 0
        || write_file(dir, "zone.tab", "# tz zone descriptions\n") != 0)
    {
        return -1;
    }

    return 0;
}


static int
write_file(const char *dir, const char *name, const char *data)
{
    char   path[128];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }

    fputs(data, f);

    return fclose(f);
}


static void
zoneinfo_remove(const char *dir)
{
    char                path[128];
    size_t              i;

    static const char  *names[] = {
        "Europe/Berlin", "Etc/GMT+5", "zone.tab", "Europe", "Etc", ""
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void) remove(path);
    }
}


static ngx_http_crm_policy_t *
parse(const char *yaml, char *err)
{
    return ngx_http_crm_policy_parse("t.yaml", (const unsigned char *) yaml,
                                     strlen(yaml), err,
                                     NGX_HTTP_CRM_POLICY_ERRLEN);
}


/*
 * yaml must fail; the message must start with "t.yaml:" + where + ": "
 * and contain fragment.
 */

static void
bad(const char *name, const char *yaml, const char *where,
    const char *fragment)
{
    int                     pass;
    char                    err[NGX_HTTP_CRM_POLICY_ERRLEN];
    char                    prefix[64];
    ngx_http_crm_policy_t  *p;

    memset(err, 'X', sizeof(err));

    p = parse(yaml, err);

    snprintf(prefix, sizeof(prefix), "t.yaml:%s: ", where);

    if (strncmp(err, "t.yaml:", 7) != 0 || strchr(err, '\n') != NULL) {
        bad_format++;
    }

    pass = p == NULL
           && strncmp(err, prefix, strlen(prefix)) == 0
           && strstr(err, fragment) != NULL;

    if (!ok(pass, "rejects %s at %s", name, where)) {
        diag("got:      %s", p ? "(parsed)" : err);
        diag("expected: %s...%s", prefix, fragment);
    }

    ngx_http_crm_policy_free(p);
}


static int
str_is(ngx_http_crm_str_t *s, const char *v)
{
    return s->data != NULL
           && s->len == strlen(v)
           && memcmp(s->data, v, s->len) == 0
           && s->data[s->len] == '\0';
}


static int
same_str(ngx_http_crm_str_t *a, ngx_http_crm_str_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}


/* all fields but conninfo, which the minimal policy sets on its own */

static int
same_policy(ngx_http_crm_policy_t *a, ngx_http_crm_policy_t *b)
{
    size_t                i;
    ngx_http_crm_sla_t   *sa, *sb;

    if (a->version != b->version
        || a->database.connections != b->database.connections
        || a->database.timeout != b->database.timeout
        || !same_str(&a->database.spool, &b->database.spool)
        || a->cache.size != b->cache.size
        || a->cache.ttl != b->cache.ttl
        || !same_str(&a->identity.cookie, &b->identity.cookie)
        || !same_str(&a->identity.secret_file, &b->identity.secret_file)
        || a->identity.max_age != b->identity.max_age
        || !same_str(&a->identity.upstream_header,
                     &b->identity.upstream_header))
    {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_CRM_FIELD_N; i++) {
        if (!same_str(&a->fields[i], &b->fields[i])) {
            return 0;
        }
    }

    if (a->loyalty.card.after_paid_orders != b->loyalty.card.after_paid_orders
        || !same_str(&a->loyalty.card.prefix, &b->loyalty.card.prefix)
        || a->loyalty.ntiers != b->loyalty.ntiers
        || a->loyalty.promise.valid_for != b->loyalty.promise.valid_for
        || a->loyalty.promise.max_discount
           != b->loyalty.promise.max_discount)
    {
        return 0;
    }

    for (i = 0; i < a->loyalty.ntiers; i++) {
        if (!same_str(&a->loyalty.tiers[i].name, &b->loyalty.tiers[i].name)
            || a->loyalty.tiers[i].paid_orders
               != b->loyalty.tiers[i].paid_orders
            || a->loyalty.tiers[i].spent != b->loyalty.tiers[i].spent
            || a->loyalty.tiers[i].discount != b->loyalty.tiers[i].discount)
        {
            return 0;
        }
    }

    sa = &a->feedback.sla;
    sb = &b->feedback.sla;

    if (!same_str(&a->feedback.acknowledge.template,
                  &b->feedback.acknowledge.template)
        || !same_str(&a->feedback.acknowledge.faq_url,
                     &b->feedback.acknowledge.faq_url)
        || !same_str(&a->feedback.acknowledge.ask_phone,
                     &b->feedback.acknowledge.ask_phone)
        || !same_str(&a->feedback.acknowledge.due_format,
                     &b->feedback.acknowledge.due_format)
        || sa->target != sb->target
        || sa->limit != sb->limit
        || !same_str(&sa->timezone, &sb->timezone)
        || memcmp(sa->hours, sb->hours, sizeof(sa->hours)) != 0
        || sa->nholidays != sb->nholidays
        || sa->breach_compensation != sb->breach_compensation
        || a->feedback.conflict.max_rating != b->feedback.conflict.max_rating
        || a->feedback.conflict.ncategories
           != b->feedback.conflict.ncategories
        || a->feedback.conflict.compensation
           != b->feedback.conflict.compensation)
    {
        return 0;
    }

    return a->surprises.probability == b->surprises.probability
           && a->surprises.min_paid_orders == b->surprises.min_paid_orders
           && a->surprises.cooldown == b->surprises.cooldown
           && a->surprises.daily_budget == b->surprises.daily_budget
           && a->surprises.ngifts == b->surprises.ngifts
           && a->nbanners == b->nbanners
           && a->holdout.percent == b->holdout.percent;
}


static char *
read_example(const char *argv0, size_t *len)
{
    char        path[4096];
    char       *buf;
    long        size;
    FILE       *f;
    const char  *root, *slash;

    root = getenv("CRM_ROOT");

    if (root != NULL && root[0] != '\0') {
        snprintf(path, sizeof(path), "%s/examples/crm.yaml", root);

    } else {
        slash = strrchr(argv0, '/');
        snprintf(path, sizeof(path), "%.*s/../../examples/crm.yaml",
                 slash ? (int) (slash - argv0) : 1, slash ? argv0 : ".");
    }

    f = fopen(path, "rb");
    if (f == NULL) {
        diag("cannot open %s", path);
        return NULL;
    }

    buf = NULL;

    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0)
    {
        buf = malloc(size + 1);

        if (buf != NULL && fread(buf, 1, size, f) != (size_t) size) {
            free(buf);
            buf = NULL;
        }

        if (buf != NULL) {
            buf[size] = '\0';
            *len = size;
        }
    }

    fclose(f);

    return buf;
}


static void
test_example(const char *argv0)
{
    char                    err[NGX_HTTP_CRM_POLICY_ERRLEN];
    char                   *yaml, *full;
    size_t                  len;
    ngx_http_crm_policy_t  *ex, *min;

    yaml = read_example(argv0, &len);

    ok(yaml != NULL, "examples/crm.yaml is readable");

    ex = yaml ? ngx_http_crm_policy_parse("crm.yaml",
                                          (unsigned char *) yaml, len,
                                          err, sizeof(err))
              : NULL;

    if (!ok(ex != NULL, "examples/crm.yaml parses")) {
        diag("%s", yaml ? err : "not read");
    }

    min = parse(MIN, err);

    ok(ex && min && same_policy(ex, min),
       "examples/crm.yaml holds exactly the built-in defaults");

    ok(ex && str_is(&ex->database.conninfo,
                    "host=127.0.0.1 port=5432 dbname=crm user=postgres"),
       "examples/crm.yaml conninfo is the local test database");

    ngx_http_crm_policy_free(ex);
    ngx_http_crm_policy_free(min);

    /* the commented-out gift and banner must be valid as documented */

    full = yaml ? uncomment_example(yaml) : NULL;

    ex = full ? ngx_http_crm_policy_parse("crm.yaml", (unsigned char *) full,
                                          strlen(full), err, sizeof(err))
              : NULL;

    if (!ok(ex != NULL && ex->surprises.ngifts == 1
            && ex->surprises.gifts[0].cost == 250 && ex->nbanners == 1
            && ex->banners[0].when == NGX_HTTP_CRM_WHEN_BIRTHDAY
            && ex->banners[0].days_before == 3
            && ex->banners[0].relatives == 0,
            "examples/crm.yaml commented gift and banner parse"))
    {
        diag("%s", ex ? "wrong values" : err);
    }

    ngx_http_crm_policy_free(ex);
    free(full);
    free(yaml);
}


/*
 * Drops "gifts: []" and "banners: []" and uncomments the "# gifts:" and
 * "# banners:" blocks that follow them in the example.
 */

static char *
uncomment_example(const char *yaml)
{
    int          on;
    char        *out, *o;
    size_t       indent;
    const char  *line, *end, *t;

    out = malloc(strlen(yaml) + 1);
    if (out == NULL) {
        return NULL;
    }

    o = out;
    on = 0;

    for (line = yaml; *line != '\0'; line = end) {
        end = strchr(line, '\n');
        end = end ? end + 1 : line + strlen(line);

        for (t = line; *t == ' '; t++) { /* void */ }
        indent = t - line;

        if (strncmp(t, "gifts: []", 9) == 0
            || strncmp(t, "banners: []", 11) == 0)
        {
            continue;
        }

        if (strncmp(t, "# gifts:", 8) == 0
            || strncmp(t, "# banners:", 10) == 0)
        {
            on = 1;

        } else if (*t != '#') {
            on = 0;
        }

        if (on && t[1] == ' ') {
            memcpy(o, line, indent);
            o += indent;
            memcpy(o, t + 2, end - t - 2);
            o += end - t - 2;

        } else {
            memcpy(o, line, end - line);
            o += end - line;
        }
    }

    *o = '\0';

    return out;
}


static void
test_minimal(void)
{
    char                       err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_http_crm_sla_t        *sla;
    ngx_http_crm_policy_t     *p;
    ngx_http_crm_surprises_t  *s;

    p = parse(MIN, err);

    if (!ok(p != NULL, "minimal policy parses")) {
        diag("%s", err);
        return;
    }

    ok(p->version == 1 && str_is(&p->database.conninfo, "dbname=x"),
       "version and conninfo");
    ok(p->database.connections == 2 && p->database.timeout == 250
       && str_is(&p->database.spool, "crm-spool"),
       "database defaults: 2 connections, 250ms, crm-spool");
    ok(p->cache.size == 16 * 1024 * 1024 && p->cache.ttl == 30 * SEC,
       "cache defaults: 16m, 30s");
    ok(str_is(&p->identity.cookie, "crm")
       && str_is(&p->identity.secret_file, "crm.secret")
       && p->identity.max_age == 365 * DAY
       && str_is(&p->identity.upstream_header, ""),
       "identity defaults, upstream_header empty but not NULL");
    ok(str_is(&p->fields[NGX_HTTP_CRM_FIELD_ORDER_ID], "/order_id")
       && str_is(&p->fields[NGX_HTTP_CRM_FIELD_EMAIL], "/email")
       && str_is(&p->fields[NGX_HTTP_CRM_FIELD_MESSAGE], "/message"),
       "fields default to /name");
    ok(p->loyalty.card.after_paid_orders == 1
       && str_is(&p->loyalty.card.prefix, "CRM-"),
       "card defaults");
    ok(p->loyalty.ntiers == 1
       && str_is(&p->loyalty.tiers[0].name, "member")
       && p->loyalty.tiers[0].paid_orders == 1
       && p->loyalty.tiers[0].spent == 0
       && p->loyalty.tiers[0].discount == 5,
       "default tier: member, 1 paid order, 5%%");
    ok(p->loyalty.promise.valid_for == 30 * DAY
       && p->loyalty.promise.max_discount == 20,
       "promise defaults: 30d, 20%%");

    sla = &p->feedback.sla;

    ok(strstr((char *) p->feedback.acknowledge.template.data,
              "{ticket}") != NULL
       && str_is(&p->feedback.acknowledge.faq_url, "")
       && p->feedback.acknowledge.ask_phone.len > 0,
       "acknowledge defaults");
    ok(sla->target == 4 * HOUR && sla->limit == 24 * HOUR
       && str_is(&sla->timezone, "UTC") && sla->breach_compensation == 10,
       "sla defaults: 4h, 24h, UTC, 10%%");
    ok(sla->hours[1].start == 9 * 60 && sla->hours[1].end == 18 * 60
       && sla->hours[5].start == 9 * 60 && sla->hours[5].end == 18 * 60
       && sla->hours[6].end == 0 && sla->hours[0].end == 0,
       "sla hours default: mon-fri 09:00-18:00, weekend closed");
    ok(sla->nholidays == 0 && sla->holidays == NULL, "no holidays");
    ok(p->feedback.conflict.max_rating == 2
       && p->feedback.conflict.ncategories == 0
       && p->feedback.conflict.compensation == 15,
       "conflict defaults");

    s = &p->surprises;

    ok(s->probability == 0 && s->min_paid_orders == 1
       && s->cooldown == 30 * DAY && s->daily_budget == 0 && s->ngifts == 0,
       "surprises defaults");
    ok(p->nbanners == 0 && p->banners == NULL && p->holdout.percent == 0,
       "no banners, no holdout");

    ngx_http_crm_policy_free(p);
}


static void
test_full(void)
{
    char                    err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_http_crm_sla_t     *sla;
    ngx_http_crm_banner_t  *b;
    ngx_http_crm_policy_t  *p;

    static const char  yaml[] =
        "version: 1\n"
        "database:\n"
        "  conninfo: host=a,b target_session_attrs=read-write\n"
        "  connections: 256\n"
        "  timeout: 60s\n"
        "cache:\n"
        "identity:\n"
        "  cookie: shop_id\n"
        "  max_age: 3650d\n"
        "  upstream_header: X-Customer-Email\n"
        "fields:\n"
        "  email: /customer/email\n"
        "  phone: \"\"\n"
        "  name: /a~1b/~0c\n"
        "loyalty:\n"
        "  card: {after_paid_orders: 3, prefix: \"\"}\n"
        "  tiers:\n"
        "    - {name: bronze, paid_orders: 0, discount: 0}\n"
        "    - {name: silver, paid_orders: 3, spent: 99.5, discount: 5}\n"
        "    - {name: gold, paid_orders: 10, spent: 1000, discount: 10}\n"
        "  promise: {valid_for: 1h, max_discount: 100}\n"
        "feedback:\n"
        "  acknowledge:\n"
        "    template: |\n"
        "      Dear {name}, {ticket} { x} {} {a b} {a-b} a{color:red}\n"
        "  sla:\n"
        "    target: 90m\n"
        "    limit: 90m\n"
        "    timezone: Europe/Berlin\n"
        "    hours:\n"
        "      mon: \"00:00-24:00\"\n"
        "      sat: 10:00-14:30\n"
        "    holidays: [2026-12-25, 2024-02-29, 2026-01-01, 2026-12-25]\n"
        "  conflict:\n"
        "    categories: [damaged, late]\n"
        "surprises:\n"
        "  probability: 0.05\n"
        "  min_paid_orders: 0\n"
        "  cooldown: 0s\n"
        "  daily_budget: 100.25\n"
        "  gifts:\n"
        "    - name: chocolate\n"
        "      cost: 2.5\n"
        "    - {name: sticker, cost: 0}\n"
        "banners:\n"
        "  - id: bday-1\n"
        "    when: birthday\n"
        "    template: \"<b>{name}</b> {discount}% until {valid_until}\"\n"
        "    max_per_day: 0\n"
        "    days_before: 0\n"
        "    gift: 15\n"
        "    relatives: yes\n"
        "  - id: late\n"
        "    when: order_delayed\n"
        "    template: 'Order {order_id} arrives {eta}'\n"
        "holdout: {percent: 100}\n";

    p = parse(yaml, err);

    if (!ok(p != NULL, "a policy using every section parses")) {
        diag("%s", err);
        return;
    }

    ok(str_is(&p->database.conninfo,
              "host=a,b target_session_attrs=read-write")
       && p->database.connections == 256 && p->database.timeout == 60 * SEC,
       "database values");
    ok(p->cache.size == 16 * 1024 * 1024 && p->cache.ttl == 30 * SEC,
       "an empty section takes its defaults");
    ok(str_is(&p->identity.cookie, "shop_id")
       && p->identity.max_age == 3650 * DAY
       && str_is(&p->identity.upstream_header, "X-Customer-Email"),
       "identity values");
    ok(str_is(&p->fields[NGX_HTTP_CRM_FIELD_EMAIL], "/customer/email")
       && str_is(&p->fields[NGX_HTTP_CRM_FIELD_PHONE], "")
       && str_is(&p->fields[NGX_HTTP_CRM_FIELD_NAME], "/a~1b/~0c")
       && str_is(&p->fields[NGX_HTTP_CRM_FIELD_TOTAL], "/total"),
       "fields: set, empty, escaped, default");
    ok(p->loyalty.card.after_paid_orders == 3
       && str_is(&p->loyalty.card.prefix, ""),
       "card values");
    ok(p->loyalty.ntiers == 3
       && str_is(&p->loyalty.tiers[2].name, "gold")
       && p->loyalty.tiers[1].spent == 9950
       && p->loyalty.tiers[2].spent == 100000
       && p->loyalty.tiers[0].spent == 0
       && p->loyalty.tiers[2].discount == 10,
       "tiers, money in cents");
    ok(p->loyalty.promise.valid_for == HOUR
       && p->loyalty.promise.max_discount == 100,
       "promise values");
    ok(str_is(&p->feedback.acknowledge.template,
              "Dear {name}, {ticket} { x} {} {a b} {a-b} a{color:red}\n"),
       "a \"{\" that starts no {word} is literal text");

    sla = &p->feedback.sla;

    ok(sla->target == 90 * MINUTE && sla->limit == 90 * MINUTE,
       "target may equal limit");
    ok(str_is(&sla->timezone, "Europe/Berlin"), "a zoneinfo time zone");
    ok(sla->hours[1].start == 0 && sla->hours[1].end == 1440
       && sla->hours[6].start == 600 && sla->hours[6].end == 870
       && sla->hours[2].end == 0 && sla->hours[0].end == 0,
       "hours given replace the default week; days left out are closed");
    ok(sla->nholidays == 3 && sla->holidays[0] == 20240229
       && sla->holidays[1] == 20260101 && sla->holidays[2] == 20261225,
       "holidays sorted, duplicates dropped, leap day valid");
    ok(p->feedback.conflict.ncategories == 2
       && str_is(&p->feedback.conflict.categories[1], "late"),
       "conflict categories");
    ok(p->surprises.probability > 0.0499 && p->surprises.probability < 0.0501
       && p->surprises.min_paid_orders == 0 && p->surprises.cooldown == 0
       && p->surprises.daily_budget == 10025,
       "surprises values");
    ok(p->surprises.ngifts == 2
       && str_is(&p->surprises.gifts[0].name, "chocolate")
       && p->surprises.gifts[0].cost == 250
       && p->surprises.gifts[1].cost == 0,
       "gifts");

    b = p->banners;

    ok(p->nbanners == 2 && str_is(&b[0].id, "bday-1")
       && b[0].when == NGX_HTTP_CRM_WHEN_BIRTHDAY
       && b[0].max_per_day == 0 && b[0].days_before == 0
       && b[0].days_after == 3 && b[0].gift == 15 && b[0].relatives == 1,
       "birthday banner with its own keys and defaults");
    ok(p->nbanners == 2 && b[1].when == NGX_HTTP_CRM_WHEN_ORDER_DELAYED
       && b[1].max_per_day == 1 && b[1].days_before == 0
       && b[1].days_after == 0 && b[1].relatives == 0
       && str_is(&b[1].template, "Order {order_id} arrives {eta}"),
       "other banners keep the birthday keys at 0");
    ok(p->holdout.percent == 100, "holdout 100%%");

    ngx_http_crm_policy_free(p);
}


static void
test_errors(void)
{
    bad("an unknown nested key",
        MIN "feedback:\n  sla:\n    target: 1h\n    foo: 1\n",
        "6:5", "unknown key \"foo\" in \"feedback.sla\"; expected one of: "
        "target, limit, timezone, hours, holidays, breach_compensation");
    bad("an unknown top-level key", MIN "databse: {}\n",
        "3:1", "unknown key \"databse\" in the policy; expected one of: "
        "version, database,");
    bad("an unknown key in a list item",
        MIN "surprises:\n  gifts:\n    - {name: a, cost: 1, price: 2}\n",
        "5:26", "unknown key \"price\" in \"surprises.gifts[0]\"");
    bad("a quoted integer",
        "version: 1\ndatabase:\n  conninfo: x\n  connections: \"5\"\n",
        "4:16", "\"database.connections\" is \"5\"; expected an integer "
        "from 1 to 256, without quotes");
    bad("a mapping for an integer",
        "version: 1\ndatabase:\n  conninfo: x\n  connections: {a: 1}\n",
        "4:16", "\"database.connections\" is a mapping; expected an integer");
    bad("a list for a section", MIN "cache: [1, 2]\n",
        "3:8", "\"cache\" is a list; expected a mapping");
    bad("a scalar for a list", MIN "banners: none\n",
        "3:10", "\"banners\" is none; expected a list");
    bad("nesting deeper than the schema",
        MIN "holdout:\n  percent:\n    deep: 1\n",
        "5:5", "\"holdout.percent\" is a mapping; expected a percent");
    bad("connections 0",
        "version: 1\ndatabase: {conninfo: x, connections: 0}\n",
        "2:38", "expected an integer from 1 to 256");
    bad("percent 101", MIN "holdout:\n  percent: 101\n",
        "4:12", "\"holdout.percent\" is 101; expected a percent from 0 to "
        "100");
    bad("a negative percent",
        MIN "feedback:\n  conflict:\n    compensation: -1\n",
        "5:19", "expected a percent from 0 to 100");
    bad("a fractional percent", MIN "holdout: {percent: 2.5}\n",
        "3:20", "expected a percent from 0 to 100");
    bad("a negative gift cost",
        MIN "surprises:\n  gifts:\n    - name: tea\n      cost: -5\n",
        "6:13", "\"surprises.gifts[0].cost\" is -5; expected an amount of "
        "money");
    bad("money with three decimals",
        MIN "surprises: {daily_budget: 1.005}\n",
        "3:27", "with at most two decimals");
    bad("a missing gift cost",
        MIN "surprises:\n  gifts:\n    - name: tea\n",
        "5:7", "missing required key \"cost\" in \"surprises.gifts[0]\"");
    bad("probability 1.5", MIN "surprises:\n  probability: 1.5\n",
        "4:16", "\"surprises.probability\" is 1.5; expected a probability "
        "from 0 to 1");
    bad("probability 1.0000001",
        MIN "surprises:\n  probability: 1.0000001\n",
        "4:16", "expected a probability from 0 to 1");
    bad("a probability without gifts",
        MIN "surprises:\n  cooldown: 1d\n  probability: 0.1\n",
        "5:16", "probability > 0 needs at least one gift");
    bad("an unknown banner trigger",
        MIN "banners:\n  - id: a\n    when: tuesday\n    template: x\n",
        "5:11", "\"banners[0].when\" is tuesday; expected one of: conflict, "
        "order_delayed, birthday, new_card, discount_ready, surprise_sent");
    bad("a banner without id",
        MIN "banners:\n  - when: conflict\n    template: x\n",
        "4:5", "missing required key \"id\" in \"banners[0]\"");
    bad("a banner id with a space",
        MIN "banners:\n  - {id: a b, when: conflict, template: x}\n",
        "4:10", "expected 1 to 64 characters from A-Z, a-z, 0-9, _ and -");
    bad("a duplicate banner id",
        MIN "banners:\n  - {id: a, when: conflict, template: x}\n"
        "  - {id: a, when: new_card, template: y}\n",
        "5:10", "\"banners[1].id\" is a, the id of banner 0; expected a "
        "unique id");
    bad("a birthday key on a conflict banner",
        MIN "banners:\n  - id: sorry\n    when: conflict\n"
        "    template: x\n    relatives: true\n",
        "7:16", "\"banners[0].relatives\" is set on a \"conflict\" banner; "
        "expected it only with \"when: birthday\"");
    bad("a bad boolean",
        MIN "banners:\n  - {id: b, when: birthday, template: x, "
        "relatives: 1}\n",
        "4:53", "expected true or false");
    bad("an unknown banner placeholder",
        MIN "banners:\n  - id: a\n    when: new_card\n"
        "    template: \"Your card {card}, {Name}!\"\n",
        "6:15", "\"banners[0].template\" has the unknown placeholder {Name}; "
        "expected only {name}, {card}, {tier}");
    bad("an unknown acknowledge placeholder",
        MIN "feedback:\n  acknowledge:\n    template: \"{name} {card}\"\n",
        "5:15", "has the unknown placeholder {card}; expected only {name}, "
        "{ticket}, {due}, {faq}, {ask_phone}");
    bad("an unknown weekday",
        MIN "feedback:\n  sla:\n    hours:\n      monday: closed\n",
        "6:7", "unknown key \"monday\" in \"feedback.sla.hours\"; expected "
        "one of: mon, tue, wed, thu, fri, sat, sun");
    bad("hours 9:00-18",
        MIN "feedback:\n  sla:\n    hours:\n      mon: 9:00-18\n",
        "6:12", "\"feedback.sla.hours.mon\" is 9:00-18; expected "
        "HH:MM-HH:MM");
    bad("hours with the start after the end",
        MIN "feedback:\n  sla:\n    hours:\n      tue: \"18:00-09:00\"\n",
        "6:12", "the start before the end) or closed");
    bad("hours with an equal start and end",
        MIN "feedback:\n  sla:\n    hours: {wed: \"10:00-10:00\"}\n",
        "5:18", "expected HH:MM-HH:MM");
    bad("hours past 24:00",
        MIN "feedback:\n  sla:\n    hours: {wed: \"10:00-24:01\"}\n",
        "5:18", "expected HH:MM-HH:MM");
    bad("a week with every day closed",
        MIN "feedback:\n  sla:\n    hours: {mon: closed}\n",
        "5:12", "\"feedback.sla.hours\" has no open day");
    bad("duration 10 minutes",
        "version: 1\ndatabase:\n  conninfo: x\n  timeout: 10 minutes\n",
        "4:12", "\"database.timeout\" is 10 minutes; expected a duration "
        "from 1ms to 1m");
    bad("a plain number for a duration", MIN "cache: {ttl: 30}\n",
        "3:14", "an integer and a unit ms, s, m, h or d");
    bad("a duration that overflows",
        MIN "surprises: {cooldown: 99999999999999999999999d}\n",
        "3:23", "expected a duration from 0s to 3650d");
    bad("a duration under its minimum",
        MIN "loyalty:\n  promise: {valid_for: 59m}\n",
        "4:24", "expected a duration from 1h to 3650d");
    bad("size 16q", MIN "cache:\n  size: 16q\n",
        "4:9", "\"cache.size\" is 16q; expected a size from 64k to 1g");
    bad("size 2g", MIN "cache:\n  size: 2G\n",
        "4:9", "expected a size from 64k to 1g");
    bad("a missing database section", "version: 1\ncache: {}\n",
        "1:1", "missing required key \"database\" in the policy");
    bad("a missing version", "database: {conninfo: x}\n",
        "1:1", "missing required key \"version\" in the policy");
    bad("version 2", "version: 2\ndatabase: {conninfo: x}\n",
        "1:10", "\"version\" is 2; expected 1");
    bad("a missing conninfo", "version: 1\ndatabase:\n  connections: 2\n",
        "3:3", "missing required key \"conninfo\" in \"database\"");
    bad("an empty conninfo", "version: 1\ndatabase:\n  conninfo:\n",
        "3:12", "\"database.conninfo\" is empty; expected a non-empty libpq");
    bad("a NUL inside a string",
        MIN "identity:\n  secret_file: \"a\\0b\"\n",
        "4:16", "without NUL");
    bad("a duplicate key",
        "version: 1\ndatabase:\n  conninfo: x\n  timeout: 1s\n"
        "  timeout: 2s\n",
        "5:3", "duplicate key \"timeout\" in \"database\"");
    bad("a YAML syntax error",
        "version: 1\ndatabase:\n  conninfo: x\n   foo: bar: baz\n",
        "4:7", "YAML syntax error: mapping values are not allowed in this "
        "context");
    bad("an unclosed flow mapping", "version: 1\ndatabase: {conninfo: x\n",
        "3:1", "YAML syntax error: did not find expected ',' or '}'");
    bad("invalid UTF-8", MIN "cache: {ttl: \"\x80\"}\n",
        "3:15", "YAML syntax error: invalid leading UTF-8 octet");
    bad("an empty document", "", "1:1", "the policy is empty");
    bad("a document of comments", "# nothing\n\n", "3:1",
        "the policy is empty");
    bad("a document that is a list", "- version: 1\n",
        "1:1", "the policy is a list; expected a mapping");
    bad("a document that is a scalar", "crm\n",
        "1:1", "the policy is crm; expected a mapping");
    bad("a second document", MIN "---\nversion: 1\n",
        "3:1", "a second YAML document");
    bad("an anchor", "version: 1\ndatabase: &db {conninfo: x}\n",
        "2:11", "anchors and aliases are not supported");
    bad("an alias", MIN "cache: *db\n",
        "3:8", "aliases are not supported");
    bad("a tag", MIN "holdout: {percent: !!int 5}\n",
        "3:20", "tags are not supported");
    bad("a mapping as a key", MIN "? {a: 1}\n: 2\n",
        "3:3", "a mapping as a key in the policy; expected a key name");
    bad("tiers out of order",
        MIN "loyalty:\n  tiers:\n"
        "    - {name: gold, paid_orders: 10, discount: 10}\n"
        "    - {name: silver, paid_orders: 3, discount: 5}\n",
        "6:35", "\"loyalty.tiers[1].paid_orders\" is 3, not above 10 of the "
        "tier before; expected tiers in ascending paid_orders");
    bad("tiers with equal paid_orders",
        MIN "loyalty:\n  tiers:\n"
        "    - {name: a, paid_orders: 1, discount: 1}\n"
        "    - {name: b, paid_orders: 1, discount: 2}\n",
        "6:30", "not above 1");
    bad("a duplicate tier name",
        MIN "loyalty:\n  tiers:\n"
        "    - {name: vip, paid_orders: 1, discount: 1}\n"
        "    - {name: vip, paid_orders: 2, discount: 2}\n",
        "6:14", "\"loyalty.tiers[1].name\" is \"vip\", the name of tier 0");
    bad("a tier without discount",
        MIN "loyalty:\n  tiers:\n    - name: a\n      paid_orders: 1\n",
        "5:7", "missing required key \"discount\" in \"loyalty.tiers[0]\"");
    bad("target above limit",
        MIN "feedback:\n  sla:\n    limit: 8h\n    target: 1d\n",
        "6:13", "\"feedback.sla.target\" is 1d, more than \"limit\" 8h; "
        "expected target <= limit");
    bad("a default target above a limit",
        MIN "feedback:\n  sla:\n    limit: 2h\n",
        "5:12", "\"feedback.sla.target\" is 4h, more than \"limit\" 2h");
    bad("holiday 2026-02-30",
        MIN "feedback:\n  sla:\n    holidays:\n      - 2026-01-01\n"
        "      - 2026-02-30\n",
        "7:9", "\"feedback.sla.holidays[1]\" is 2026-02-30; expected a date "
        "YYYY-MM-DD");
    bad("holiday 2025-02-29",
        MIN "feedback:\n  sla:\n    holidays: [2025-02-29]\n",
        "5:16", "expected a date YYYY-MM-DD");
    bad("an unknown time zone",
        MIN "feedback:\n  sla:\n    timezone: Mars/Olympus\n",
        "5:15", "\"feedback.sla.timezone\" is Mars/Olympus; expected a time "
        "zone name from ");
    bad("a time zone outside zoneinfo",
        MIN "feedback:\n  sla:\n    timezone: ../../etc/passwd\n",
        "5:15", "expected a time zone name");
    bad("a zoneinfo file that is not a zone",
        MIN "feedback:\n  sla:\n    timezone: zone.tab\n",
        "5:15", "expected a time zone name");
    bad("a zoneinfo directory",
        MIN "feedback:\n  sla:\n    timezone: Europe\n",
        "5:15", "expected a time zone name");
    bad("a time zone with a ./ component",
        MIN "feedback:\n  sla:\n    timezone: Europe/./Berlin\n",
        "5:15", "expected a time zone name");
    bad("an absolute time zone path",
        MIN "feedback:\n  sla:\n    timezone: /etc/localtime\n",
        "5:15", "expected a time zone name");
    bad("a due format with a time zone name",
        MIN "feedback:\n  acknowledge:\n    due_format: \"%H:%M %Z\"\n",
        "5:17", "\"feedback.acknowledge.due_format\" is \"%H:%M %Z\"; "
        "expected a strftime pattern of at most 256 bytes with only %Y");
    bad("a due format ending in %",
        MIN "feedback:\n  acknowledge:\n    due_format: \"%H:%\"\n",
        "5:17", "expected a strftime pattern");
    bad("a cookie name with a separator",
        MIN "identity: {cookie: \"a;b\"}\n",
        "3:20", "\"identity.cookie\" is \"a;b\"; expected a name of 1 to 64 "
        "characters");
    bad("a header name with a space",
        MIN "identity: {upstream_header: X Email}\n",
        "3:29", "expected a name of (or empty for off) 1 to 256");
    bad("a JSON pointer without a slash", MIN "fields: {email: email}\n",
        "3:17", "\"fields.email\" is email; expected a JSON pointer");
    bad("a JSON pointer with ~2", MIN "fields: {email: /a~2}\n",
        "3:17", "with ~ only in ~0 or ~1");
    bad("a card prefix with a space",
        MIN "loyalty:\n  card: {prefix: CRM 1}\n",
        "4:18", "expected at most 16 printable ASCII characters without "
        "spaces");
    bad("an empty category",
        MIN "feedback:\n  conflict:\n    categories: [late, \"\"]\n",
        "5:24", "\"feedback.conflict.categories[1]\" is \"\"; expected a "
        "non-empty string");

    ok(bad_format == 0,
       "every error message starts with the file name and is one line");
}


static void
test_api(void)
{
    char                    small[16];
    char                    err[NGX_HTTP_CRM_POLICY_ERRLEN];
    ngx_http_crm_policy_t  *p;

    ngx_http_crm_policy_free(NULL);
    ok(1, "free(NULL) is a no-op");

    p = ngx_http_crm_policy_parse("t.yaml", NULL, 0, small, sizeof(small));
    ok(p == NULL && strcmp(small, "t.yaml:1:1: the") == 0,
       "NULL data is an empty document; the message is cut to errlen");

    p = ngx_http_crm_policy_parse("t.yaml", (unsigned char *) "x: [", 4,
                                  NULL, 0);
    ok(p == NULL, "no error buffer: still NULL, no crash");

    p = ngx_http_crm_policy_parse(NULL, (unsigned char *) MIN "x",
                                  sizeof(MIN) - 1, small, sizeof(small));
    ok(p != NULL, "len bounds the input: bytes past it are not read");
    ngx_http_crm_policy_free(p);

    p = parse(MIN "feedback: {sla: {timezone: Etc/GMT+5}}\n", err);
    ok(p != NULL && str_is(&p->feedback.sla.timezone, "Etc/GMT+5"),
       "a time zone with + in its name");
    ngx_http_crm_policy_free(p);

    p = parse(MIN "cache: {size: 65536}\nbanners: ~\nfeedback:\n"
              "  sla:\n    holidays: [2030-01-09, 2030-01-08, 2030-01-07,\n"
              "      2030-01-06, 2030-01-05, 2030-01-04, 2030-01-03,\n"
              "      2030-01-02, 2030-01-01, 2030-01-05, 1999-12-31]\n"
              "surprises:\n  probability: 0.1234567890123456789012\n"
              "  gifts: [{name: a, cost: 1}]\n", err);
    ok(p != NULL && p->cache.size == 65536 && p->nbanners == 0
       && p->feedback.sla.nholidays == 10
       && p->feedback.sla.holidays[0] == 19991231
       && p->feedback.sla.holidays[1] == 20300101
       && p->feedback.sla.holidays[9] == 20300109
       && p->surprises.probability > 0.1234
       && p->surprises.probability < 0.1235,
       "long lists grow; sizes in bytes; a null list; long fractions");
    if (p == NULL) {
        diag("%s", err);
    }
    ngx_http_crm_policy_free(p);

    p = parse(MIN "fields:\n  email: \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"\n", err);
    ok(p == NULL && strstr(err, "\xc3\xa9...\"; expected a JSON pointer")
       != NULL, "a long value is cut in the message, not inside a UTF-8 "
       "character");
    ngx_http_crm_policy_free(p);

    setenv("CRM_ZONEINFO", "/nonexistent", 1);
    p = parse(MIN "feedback: {sla: {timezone: UTC}}\n", err);
    ok(p != NULL, "UTC needs no zoneinfo file");
    ngx_http_crm_policy_free(p);
}
