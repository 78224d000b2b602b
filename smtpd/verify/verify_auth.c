/*
 * verify_auth.c - check SMTP AUTH credentials against the virtual users
 * table (see verify_auth.h).
 */
#include <stdlib.h>
#include <string.h>
#include "mail/vuser.h"
#include "table/table.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"
#include "verify_auth.h"

#define VERIFY_AUTH_USER_MAX 320

/* Never matches (the digest is not SHA-512 output); spends the time a
 * real check would, so unknown users cannot be told from bad passwords. */
#define VERIFY_AUTH_DUMMY_HASH \
    "$6$storkdummysalt$0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

struct verify_auth {
    char **specs;
    table_t **tables;
    size_t n;
};

/* verify_auth_new - remember and open $virtual_mailbox_maps */
verify_auth_t *verify_auth_new(conf_t *conf)
{
    verify_auth_t *a = xcalloc(1, sizeof(*a));
    char **specs = conf_list(conf, "virtual_mailbox_maps");
    const char *why;

    for (size_t i = 0; specs && specs[i]; i++)
        a->n++;
    a->specs = xcalloc(a->n + 1, sizeof(*a->specs));
    a->tables = xcalloc(a->n + 1, sizeof(*a->tables));
    for (size_t i = 0; i < a->n; i++) {
        a->specs[i] = xstrdup(specs[i]);
        if ((a->tables[i] = table_open(a->specs[i], &why)) == NULL)
            msg_warn("virtual_mailbox_maps: %s: %s (AUTH fails until it can be opened)",
                     a->specs[i], why);
    }
    return a;
}

/* verify_auth_table - table i, (re)opened when missing or replaced */
static table_t *verify_auth_table(verify_auth_t *a, size_t i, const char **why_r)
{
    if (a->tables[i] && table_changed(a->tables[i]))
        table_close(&a->tables[i]);
    if (a->tables[i] == NULL)
        a->tables[i] = table_open(a->specs[i], why_r);
    return a->tables[i];
}

/* verify_auth_lookup - the table value for key: 1 found, 0 not, -1 error */
static int verify_auth_lookup(verify_auth_t *a, const char *key, buf_t *val, const char **why_r)
{
    for (size_t i = 0; i < a->n; i++) {
        table_t *t = verify_auth_table(a, i, why_r);
        int ret;

        if (t == NULL)
            return -1;
        buf_reset(val);
        if ((ret = table_get(t, key, val, why_r)) != 0)
            return ret;
    }
    return 0;
}

/* verify_auth_check - OK, BAD or TEMP */
verify_auth_status_t verify_auth_check(verify_auth_t *a, const char *user, const char *password,
                                       const char **why_r)
{
    vuser_t vu = { 0 };
    buf_t key, val;
    const char *why = NULL;
    verify_auth_status_t st = VERIFY_AUTH_BAD;
    int found = 0;

    *why_r = "authentication failure";
    if (strlen(user) > VERIFY_AUTH_USER_MAX || *user == 0)
        return VERIFY_AUTH_BAD;
    buf_init(&key, BUF_NOLIMIT);
    buf_init(&val, VUSER_MAX_VALUE + 1);
    for (const char *p = user; *p; p++)
        buf_putc(&key, *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p);
    found = verify_auth_lookup(a, buf_cstr(&key), &val, &why);
    if (found < 0) {
        msg_warn("virtual_mailbox_maps lookup for %s failed: %s", buf_cstr(&key), why);
        *why_r = "user table lookup failed";
        st = VERIFY_AUTH_TEMP;
    } else if (found == 0 || vuser_parse(buf_cstr(&val), &vu, &why) < 0) {
        if (found)
            msg_warn("bad virtual_mailbox_maps entry for %s: %s", buf_cstr(&key), why);
        vu.password_hash = xstrdup(VERIFY_AUTH_DUMMY_HASH);
        (void)vuser_check_password(&vu, password);
    } else if (vuser_check_password(&vu, password)) {
        st = VERIFY_AUTH_OK;
        *why_r = "ok";
    }
    vuser_clear(&vu);
    buf_free(&key);
    buf_free(&val);
    return st;
}

/* verify_auth_free - close the tables */
void verify_auth_free(verify_auth_t **ap)
{
    verify_auth_t *a = *ap;

    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        table_close(&a->tables[i]);
        free(a->specs[i]);
    }
    free(a->tables);
    free(a->specs);
    xfreep(ap);
}
