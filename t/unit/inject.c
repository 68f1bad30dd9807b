
/*
 * Copyright (C) ngx_crm authors
 */


/*
 * Unit tests of the banner's place in a streamed page
 * (ngx_http_crm_inject.c), printed as TAP; run by t/001-unit.t.  Each page
 * is fed as a sender would, split at every point (and at every pair of
 * points for the short ones, at random points for the long ones), each
 * piece in a malloc()ed buffer of its exact size; what goes out (the page
 * with the banner at its place) must be what an independent whole-page
 * search gives, and what is held at any time never more than
 * ngx_http_crm_inject_hold().
 */


#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_crm_inject.h"
#include "inject_ref.h"
#include "tap.h"


static int check(const char *name, const char *page, uint64_t hold_max);


static int
check(const char *name, const char *page, uint64_t hold_max)
{
    int                     ok;
    long                    at;
    char                   *want;
    size_t                  len, wlen, a, b, k, cuts[8];
    sink_t                  s;
    ngx_http_crm_inject_t   m;

    len = strlen(page);
    at = reference(page, len, hold_max);
    want = expected(page, len, at, &wlen);

    ngx_http_crm_inject_init(&m, hold_max);

    ok = 1;

    /* whole, then split once at every point of a page up to 4 KB */

    stream(page, len, NULL, 0, hold_max, &s);
    ok = ok && same(&s, want, wlen, ngx_http_crm_inject_hold(&m));

    for (a = 0; a <= len && len <= 4096 && ok; a++) {
        cuts[0] = a;
        stream(page, len, cuts, 1, hold_max, &s);
        ok = same(&s, want, wlen, ngx_http_crm_inject_hold(&m));

        if (!ok) {
            tap_diag("%s: split at %zu", name, a);
        }
    }

    /* twice at every pair of points, or at random ones for a long page */

    if (len <= 200) {
        for (a = 0; a <= len && ok; a++) {
            for (b = a; b <= len && ok; b++) {
                cuts[0] = a;
                cuts[1] = b;
                stream(page, len, cuts, 2, hold_max, &s);
                ok = same(&s, want, wlen, ngx_http_crm_inject_hold(&m));

                if (!ok) {
                    tap_diag("%s: split at %zu and %zu", name, a, b);
                }
            }
        }

    } else {
        for (a = 0; a < 2000 && ok; a++) {
            for (k = 0; k < 8; k++) {
                cuts[k] = (size_t) rand() % (len + 1);
            }

            for (k = 1; k < 8; k++) {               /* ascending */
                size_t  v = cuts[k], j = k;

                while (j > 0 && cuts[j - 1] > v) {
                    cuts[j] = cuts[j - 1];
                    j--;
                }

                cuts[j] = v;
            }

            stream(page, len, cuts, 8, hold_max, &s);
            ok = same(&s, want, wlen, ngx_http_crm_inject_hold(&m));

            if (!ok) {
                tap_diag("%s: random split %zu", name, a);
            }
        }
    }

    free(want);

    return tap_ok(ok, "%s (place %ld)", name, at);
}


/* what one whole feed gives, for the places the tests name */

static long
place(const char *page, uint64_t hold_max)
{
    ngx_http_crm_inject_t  m;

    ngx_http_crm_inject_init(&m, hold_max);
    (void) ngx_http_crm_inject_feed(&m, (const unsigned char *) page,
                                    strlen(page));
    ngx_http_crm_inject_end(&m);

    return m.found ? (long) m.at : -1;
}


static const struct {
    const char  *name;
    const char  *page;
    long         at;
    const char  *why;
} cases[] = {
    { "a page", "<html><body><p>hi</p></body></html>", 21,
      "before </body>" },
    { "capitals", "<HTML><BODY><p>hi</p></BoDy></HTML>", 21,
      "</BoDy> in any case" },
    { "the marker", "<body><!--crm-banner--><p>x</p></body>", 6,
      "at the marker, not before </body>" },
    { "two markers", "<body><!--crm-banner--><!--crm-banner--></body>", 6,
      "at the first marker" },
    { "two </body>", "<body>x</body><script>y</script></body>\n</html>\n",
      32, "before the last </body>" },
    { "marker after </body>", "<body>x</body> <!--crm-banner--> </html>", 15,
      "a marker after </body> still wins" },
    { "no place", "<p>no place</p><!--crm-banner-- ></bod y>", -1,
      "no marker, no </body>: no place" },
    { "restarts", "<</body><<!--crm-banner-<!--crm-banner-->", 24,
      "matches restart on '<'" }
};


int
main(void)
{
    char        *big, *p;
    size_t       i;
    const char  *page;

    srand(12345);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tap_ok(place(cases[i].page, 4096) == cases[i].at, "%s",
               cases[i].why);
        check(cases[i].name, cases[i].page, 4096);
    }

    page = "</body></body></body>";
    check("only </body>", page, 4096);

    page = "<!--crm-banner-->";
    check("only the marker", page, 4096);

    page = "";
    tap_ok(place(page, 4096) == -1, "an empty page has no place");

    /* a long tail after </body>: held up to hold_max, then that one */

    page = "<body>x</body>0123456789</body>";
    tap_ok(place(page, 16) == 24,
           "a later </body> ending within hold_max + 1 bytes wins");
    tap_ok(place(page, 15) == 7,
           "past hold_max the earlier </body> is the place");
    check("tail of 17, hold 16", page, 16);
    check("tail of 17, hold 15", page, 15);
    check("tail of 17, hold 0", page, 0);

    page = "<body>x</body>0123456789<!--crm-banner-->";
    tap_ok(place(page, 25) == 7 && place(page, 26) == 24,
           "a marker after a tail: it wins only within hold_max + 1");
    check("marker after a tail, hold 25", page, 25);
    check("marker after a tail, hold 26", page, 26);

    /* 200 KB: random splits, the place near the end */

    big = malloc(200 * 1024 + 64);
    p = big;
    p += sprintf(p, "<html><body>");

    for (i = 0; p - big < 200 * 1024; i++) {
        p += sprintf(p, "<p class=\"c%zu\">line %zu &lt;b&gt; <b>x</b></p>\n",
                     i % 7, i);
    }

    sprintf(p, "</BODY>\n</html>\n");
    check("200 KB page", big, 4096);
    check("200 KB page, hold 0", big, 0);
    free(big);

    return tap_done();
}
