/*
 * storkconf - print configuration parameters (Postfix's postconf)
 *
 *	storkconf [-c CONFIG_DIR] [-n | -d] [-h] [name ...]
 *	storkconf [-c CONFIG_DIR] -M [service[/type] ...]
 *
 * Without names: every parameter, "name = value", sorted by name, with
 * values expanded. -n only the ones set in main.cf; -d the compiled-in
 * defaults. -h prints values without "name = ". Names given: just those;
 * an unknown name is a warning and exit status 1. -M prints master.cf.
 */
#include "config/conf.h"
#include "config/master_cf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What to print and how, for conf_foreach. */
typedef struct show {
    const char *only;       /* one name, or NULL for all */
    bool values_only;       /* -h */
    bool found;
} show_t;

/* usage - the synopsis, then exit 2 */
static void usage(void)
{
    fprintf(stderr, "usage: storkconf [-c config_dir] [-n | -d] [-h] [name ...]\n"
            "       storkconf [-c config_dir] -M [service[/type] ...]\n"
            "  -n  only parameters set in main.cf\n"
            "  -d  compiled-in defaults\n"
            "  -h  values only, without \"name = \"\n"
            "  -M  the master.cf service table\n");
    exit(2);
}

/* show_one - conf_foreach callback */
static void show_one(const char *name, const char *value, void *ctx)
{
    show_t *sh = ctx;

    if (sh->only && strcmp(sh->only, name) != 0)
        return;
    sh->found = true;
    if (sh->values_only)
        printf("%s\n", value);
    else
        printf("%s =%s%s\n", name, *value ? " " : "", value);
}

/* yn - a master.cf boolean column */
static const char *yn(bool v)
{
    return v ? "y" : "n";
}

/* show_master - master.cf entries, optionally only the named ones */
static int show_master(const char *config_dir, char **names)
{
    char *path = xasprintf("%s/master.cf", config_dir);
    master_cf_entry_t *e;
    size_t n;
    buf_t errors;
    int rc = 0;

    buf_init(&errors, BUF_NOLIMIT);
    if (master_cf_load(path, &e, &n, &errors) > 0) {
        fputs(buf_cstr(&errors), stderr);
        buf_free(&errors);
        free(path);
        return 1;
    }
    buf_free(&errors);
    free(path);
    for (size_t i = 0; i < n; i++) {
        const char *type = e[i].type == MASTER_CF_INET ? "inet" : "unix";
        bool want = names[0] == NULL;
        char wake[16] = "-", maxp[16] = "-";

        for (char **np = names; *np && !want; np++) {
            char *slash = strchr(*np, '/');
            size_t len = slash ? (size_t)(slash - *np) : strlen(*np);

            want = strncmp(*np, e[i].service, len) == 0 && e[i].service[len] == 0
                   && (slash == NULL || strcmp(slash + 1, type) == 0);
        }
        if (!want)
            continue;
        if (e[i].wakeup > 0)
            snprintf(wake, sizeof(wake), "%d", e[i].wakeup);
        if (e[i].maxproc >= 0)
            snprintf(maxp, sizeof(maxp), "%d", e[i].maxproc);
        printf("%-10s %-5s %-7s %-7s %-7s %-7s %-7s", e[i].service, type,
               e[i].type == MASTER_CF_INET ? "n" : yn(e[i].private_), yn(e[i].unpriv),
               yn(e[i].chroot), wake, maxp);
        for (size_t j = 0; j < e[i].argc; j++)
            printf(" %s", e[i].argv[j]);
        printf("\n");
    }
    master_cf_free(&e, n);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("STORK_CONFIG_DIR"), *why;
    int ch, flags = 0, rc = 0;
    bool master = false;
    show_t sh = { 0 };
    conf_t *conf;
    char real[PATH_MAX];

    if (dir == NULL || *dir == 0)
        dir = getenv("MAIL_CONFIG");
    if (dir == NULL || *dir == 0)
        dir = "/etc/stork";
    msg_init("storkconf", "stork");
    while ((ch = getopt(argc, argv, "c:ndhM")) != -1) {
        switch (ch) {
        case 'c': dir = optarg; break;
        case 'n': flags = CONF_FOREACH_NONDEFAULT; break;
        case 'd': flags = CONF_FOREACH_DEFAULTS; break;
        case 'h': sh.values_only = true; break;
        case 'M': master = true; break;
        default: usage();
        }
    }
    if (realpath(dir, real) != NULL)
        dir = real;                 /* config_directory is shown absolute */
    if (master)
        return show_master(dir, argv + optind);
    if ((conf = conf_open(dir, &why)) == NULL) {
        fprintf(stderr, "storkconf: fatal: %s\n", why);
        return 1;
    }
    if (optind == argc) {
        conf_foreach(conf, flags, show_one, &sh);
    } else {
        for (int i = optind; i < argc; i++) {
            if (!conf_is_known(argv[i])) {
                fprintf(stderr, "storkconf: warning: unknown parameter: %s\n", argv[i]);
                rc = 1;
                continue;
            }
            sh.only = argv[i];
            conf_foreach(conf, flags, show_one, &sh);
        }
    }
    conf_free(&conf);
    return rc;
}
