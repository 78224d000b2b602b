/* vuser - parse and use a virtual users table value */
#include "mail/vuser.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <crypt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* path_ok - no "." or ".." components, no control characters */
static bool path_ok(const char *p)
{
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    while (*p) {
        size_t n = strcspn(p, "/");

        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        while (*p == '/')
            p++;
    }
    return true;
}

/* parse_quota - "", "0", "100m" → bytes (0 = unlimited) */
static int parse_quota(const char *s, uint64_t *q)
{
    char *t;
    int ret;

    if (*s == 0) {
        *q = 0;
        return 0;
    }
    t = str_trim(xstrdup(s));
    ret = str_to_size(t, q);
    free(t);
    return ret;
}

/* vuser_parse - "HASH:MAILDIR:QUOTA" */
int vuser_parse(const char *value, vuser_t *vu, const char **why_r)
{
    const char *c1 = strchr(value, ':'), *c2 = strrchr(value, ':');
    uint64_t quota;
    char *maildir;

    memset(vu, 0, sizeof(*vu));
    if (strlen(value) > VUSER_MAX_VALUE) {
        *why_r = "virtual user entry too long";
        return -1;
    }
    if (c1 == NULL || c1 == c2) {
        *why_r = "malformed virtual user entry: expected PASSWORD_HASH:MAILDIR:QUOTA";
        return -1;
    }
    if (parse_quota(c2 + 1, &quota) < 0) {
        *why_r = "malformed virtual user entry: bad quota";
        return -1;
    }
    maildir = str_trim(xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)));
    if (*maildir == 0 || !path_ok(maildir)) {
        *why_r = *maildir ? "virtual user mailbox path has a \".\" or \"..\" component or a "
                            "control character"
                          : "virtual user entry has no mailbox path";
        free(maildir);
        return -1;
    }
    vu->password_hash = xstrndup(value, (size_t)(c1 - value));
    vu->maildir = maildir;
    vu->is_maildir = maildir[strlen(maildir) - 1] == '/';
    vu->quota = quota;
    return 0;
}

/* vuser_maildir_path - base + maildir, never outside base */
int vuser_maildir_path(const char *base, const vuser_t *vu, buf_t *path_r, const char **why_r)
{
    size_t blen = strlen(base);

    while (blen > 1 && base[blen - 1] == '/')
        blen--;
    if (*base != '/' || !path_ok(base)) {
        *why_r = "virtual_mailbox_base must be an absolute path without . or .. components";
        return -1;
    }
    buf_reset(path_r);
    if (vu->maildir[0] == '/') {
        /* Absolute: allowed only inside base (component boundary). */
        if (strncmp(vu->maildir, base, blen) != 0
            || (blen > 1 && vu->maildir[blen] != '/' && vu->maildir[blen] != 0)) {
            *why_r = "virtual user mailbox path is outside virtual_mailbox_base";
            return -1;
        }
        if (buf_puts(path_r, vu->maildir) < 0 || path_r->len >= PATH_MAX) {
            *why_r = "virtual user mailbox path too long";
            return -1;
        }
        return 0;
    }
    if (buf_append(path_r, base, blen) < 0 || (blen > 1 && buf_putc(path_r, '/') < 0)
        || buf_puts(path_r, vu->maildir) < 0 || path_r->len >= PATH_MAX) {
        *why_r = "virtual user mailbox path too long";
        return -1;
    }
    return 0;
}

/* vuser_check_password - crypt_r and a constant-time compare */
bool vuser_check_password(const vuser_t *vu, const char *plain)
{
    const char *hash = vu->password_hash;
    struct crypt_data *cd;
    const char *out;
    size_t hlen;
    unsigned char diff = 0;
    bool ok;

    if (hash == NULL || *hash == 0 || *hash == '!' || *hash == '*'
        || strlen(plain) > VUSER_MAX_PASSWORD)
        return false;
    cd = xcalloc(1, sizeof(*cd));
    out = crypt_r(plain, hash, cd);
    hlen = strlen(hash);
    ok = out != NULL && out[0] != '*' && strlen(out) == hlen;
    if (ok) {
        for (size_t i = 0; i < hlen; i++)
            diff |= (unsigned char)(out[i] ^ hash[i]);
        ok = diff == 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok;
}

/* vuser_clear - free the strings */
void vuser_clear(vuser_t *vu)
{
    xfreep(&vu->password_hash);
    xfreep(&vu->maildir);
    vu->is_maildir = false;
    vu->quota = 0;
}
