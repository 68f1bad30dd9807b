
/*
 * Copyright (C) ngx_crm authors
 */


#ifndef _NGX_HTTP_CRM_ZONEFILE_H_INCLUDED_
#define _NGX_HTTP_CRM_ZONEFILE_H_INCLUDED_


/*
 * The bytes of /usr/share/zoneinfo/NAME in a malloc()ed buffer of their
 * exact length, for the calendar's unit programs; NULL when it cannot be
 * read.
 */


#include <stdio.h>
#include <stdlib.h>


static inline unsigned char *
zonefile(const char *name, size_t *len)
{
    char            path[512];
    long            n;
    FILE           *f;
    unsigned char  *buf;

    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0
        || fseek(f, 0, SEEK_SET) != 0 || (buf = malloc(n)) == NULL)
    {
        fclose(f);
        return NULL;
    }

    *len = fread(buf, 1, n, f);
    fclose(f);

    return buf;
}


#endif /* _NGX_HTTP_CRM_ZONEFILE_H_INCLUDED_ */
