/*
 * fuzz_vuser - libFuzzer target for lib/mail/vuser.c
 *
 * Input: a virtual users table value "PASSWORD_HASH:MAILDIR:QUOTA" (up to
 * the first NUL). vuser_parse, then vuser_maildir_path against a few
 * bases. Properties: a parsed entry has a non-empty mailbox path without
 * "." or ".." components or control characters, is_maildir matches its
 * trailing '/', the hash is the text before the first ':', and a built
 * path always starts with the base at a component boundary.
 * vuser_check_password is not called: crypt(3) is slow and not ours.
 */
#include "fuzz.h"
#include "mail/vuser.h"

/* has_dot_component - a "." or ".." path component? */
static bool has_dot_component(const char *p)
{
    while (*p) {
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
        while (*p == '/')
            p++;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const bases[] = { "/var/vmail", "/var/vmail/", "/", "relative", "/a/../b" };
    char *value = fuzz_strdup(data, size);
    vuser_t vu;
    const char *why = NULL;

    if (vuser_parse(value, &vu, &why) < 0) {
        fuzz_check(why != NULL && vu.maildir == NULL && vu.password_hash == NULL);
        vuser_clear(&vu);
        free(value);
        return 0;
    }
    fuzz_check(vu.password_hash != NULL && vu.maildir != NULL && vu.maildir[0] != 0);
    fuzz_check(strncmp(value, vu.password_hash, strlen(vu.password_hash)) == 0
               && value[strlen(vu.password_hash)] == ':');
    fuzz_check(!has_dot_component(vu.maildir));
    for (const char *c = vu.maildir; *c; c++)
        fuzz_check((unsigned char)*c >= 0x20 && *c != 0x7f);
    fuzz_check(vu.is_maildir == (vu.maildir[strlen(vu.maildir) - 1] == '/'));
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        buf_t path;
        size_t blen = strlen(bases[i]);

        while (blen > 1 && bases[i][blen - 1] == '/')
            blen--;
        buf_init(&path, BUF_NOLIMIT);
        if (vuser_maildir_path(bases[i], &vu, &path, &why) == 0) {
            const char *p = buf_cstr(&path);
            fuzz_check(bases[i][0] == '/');
            fuzz_check(strncmp(p, bases[i], blen) == 0);
            fuzz_check(blen == 1 || p[blen] == '/' || p[blen] == 0);
            fuzz_check(!has_dot_component(p));
        } else {
            fuzz_check(why != NULL);
        }
        buf_free(&path);
    }
    vuser_clear(&vu);
    fuzz_check(vu.maildir == NULL && vu.password_hash == NULL);
    vuser_clear(&vu);
    free(value);
    return 0;
}
