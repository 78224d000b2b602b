/*
 * NAME
 *	storkmap - build, query and list lookup tables (postmap, postalias,
 *	newaliases)
 * SYNOPSIS
 *	storkmap [-aNv] [-c DIR] type:file ...
 *	storkmap [-aNv] [-c DIR] -q key type:file ...
 *	storkmap [-aNv] [-c DIR] -s type:file ...
 *	newaliases [-v] [-c DIR] [type:file ...]
 * DESCRIPTION
 *	Without -q or -s, builds each table from its text source: for
 *	hash:/etc/stork/virtual the source /etc/stork/virtual becomes
 *	/etc/stork/virtual.db, written atomically (lib/table table_build);
 *	a spec without "type:" is hash. Keys are folded to lower case, as
 *	postmap does. Problems are printed as "PATH:LINE: text"; a source
 *	with problems replaces nothing and the exit status is 1.
 *	-a     aliases(5) syntax ("name: value, value"), as postalias.
 *	-c DIR the configuration directory (else $STORK_CONFIG_DIR, else
 *	       /etc/stork); read only by newaliases.
 *	-N     keys and values include their terminating NUL; that is
 *	       always so in Stork (accepted for postmap compatibility).
 *	-q key print the value of key (folded to lower case) from the first
 *	       table that has it; exit 0 when found, 1 when not. With
 *	       "-q -", keys are read from standard input, one per line, and
 *	       "key<TAB>value" is printed for each one found.
 *	-s     print every entry, "key<TAB>value" ("key: value" with -a).
 *	-v     verbose.
 *	Invoked as newaliases: aliases syntax, and without arguments the
 *	tables of $alias_database are built.
 * EXIT STATUS
 *	0 success; 1 not found (-q) or problems in a source; 2 usage
 *	errors or unusable tables; 78 a bad main.cf (newaliases).
 */
#include "config/conf.h"
#include "table/table.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define STORKMAP_MAX_KEY 4096

typedef struct storkmap_opts {
    const char *config_dir;
    const char *query;
    bool list;
    bool aliases;
    bool newaliases;
} storkmap_opts_t;

/* usage - print the synopsis and exit 2 */
static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-aNv] [-c config_dir] [-q key | -s] [type:]file ...\n"
            "       newaliases [-v] [-c config_dir] [[type:]file ...]\n",
            prog);
    exit(2);
}

/* print_problems - errors text, one "storkmap: " line each, on stderr */
static void print_problems(const char *prog, const buf_t *errors)
{
    const char *p = buf_cstr(errors);

    while (*p) {
        size_t n = strcspn(p, "\n");

        fprintf(stderr, "%s: %.*s\n", prog, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

/* build_one - compile one table from its source */
static int build_one(const char *prog, const char *spec, const storkmap_opts_t *o)
{
    buf_t errors;
    int problems;

    buf_init(&errors, BUF_NOLIMIT);
    problems = table_build(spec, NULL, o->aliases ? TABLE_SYNTAX_ALIASES : TABLE_SYNTAX_MAP,
                           &errors);
    print_problems(prog, &errors);
    buf_free(&errors);
    if (problems > 0)
        fprintf(stderr, "%s: %s: %d problem%s, table not changed\n", prog, spec, problems,
                problems == 1 ? "" : "s");
    else if (msg_verbose)
        fprintf(stderr, "%s: %s: built\n", prog, spec);
    return problems > 0 ? 1 : 0;
}

/* list_fn - one entry of -s */
static void list_fn(const char *key, const char *val, void *ctx)
{
    const storkmap_opts_t *o = ctx;

    printf(o->aliases ? "%s: %s\n" : "%s\t%s\n", key, val);
}

/* query_tables - the first value of key in the tables; 1 found, 0, -1 */
static int query_tables(const char *prog, table_t **tables, int n, const char *key, buf_t *val)
{
    char *folded = str_lower(xstrdup(key));
    const char *why;
    int ret = 0;

    for (int i = 0; i < n && ret == 0; i++) {
        if ((ret = table_get(tables[i], folded, val, &why)) < 0)
            fprintf(stderr, "%s: %s\n", prog, why);
    }
    free(folded);
    return ret;
}

/* do_query - -q key (or -q - for keys on stdin) */
static int do_query(const char *prog, char **specs, int n, const char *key)
{
    table_t **tables = xcalloc((size_t)n, sizeof(*tables));
    const char *why;
    buf_t val;
    int status = 1, ret = 0;

    for (int i = 0; i < n; i++) {
        if ((tables[i] = table_open(specs[i], &why)) == NULL) {
            fprintf(stderr, "%s: %s\n", prog, why);
            status = 2;
        }
    }
    buf_init(&val, BUF_NOLIMIT);
    if (status == 1 && strcmp(key, "-") != 0) {
        if ((ret = query_tables(prog, tables, n, key, &val)) > 0) {
            printf("%s\n", buf_cstr(&val));
            status = 0;
        }
    } else if (status == 1) {
        char line[STORKMAP_MAX_KEY];

        while (ret >= 0 && fgets(line, sizeof(line), stdin) != NULL) {
            str_trim(line);
            if (*line == 0)
                continue;
            if ((ret = query_tables(prog, tables, n, line, &val)) > 0) {
                printf("%s\t%s\n", line, buf_cstr(&val));
                status = 0;
            }
        }
    }
    if (ret < 0)
        status = 2;
    buf_free(&val);
    for (int i = 0; i < n; i++)
        table_close(&tables[i]);
    free(tables);
    return status;
}

/* alias_database - the tables of $alias_database (newaliases) */
static char **alias_database(const char *prog, const char *config_dir, size_t *n_r)
{
    const char *why;
    conf_t *conf;
    buf_t errors;
    char **specs;

    if (config_dir == NULL && (config_dir = getenv("STORK_CONFIG_DIR")) == NULL)
        config_dir = "/etc/stork";
    if ((conf = conf_open(config_dir, &why)) == NULL) {
        fprintf(stderr, "%s: %s\n", prog, why);
        exit(EX_CONFIG);
    }
    buf_init(&errors, BUF_NOLIMIT);
    if (conf_validate(conf, &errors) > 0) {
        print_problems(prog, &errors);
        exit(EX_CONFIG);
    }
    buf_free(&errors);
    *n_r = str_split(conf_str(conf, "alias_database"), ", \t", &specs);
    conf_free(&conf);
    return specs;
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    const char *prog = slash ? slash + 1 : argv[0];
    storkmap_opts_t o = { 0 };
    char **db_specs = NULL;
    const char *why;
    int c, status = 0;

    msg_init(prog, "stork");
    msg_use_stderr(true);
    o.newaliases = strcmp(prog, "newaliases") == 0;
    o.aliases = o.newaliases;
    while ((c = getopt(argc, argv, "ac:Nnq:sv")) != -1) {
        switch (c) {
        case 'a': o.aliases = true; break;
        case 'c': o.config_dir = optarg; break;
        case 'N': break;        /* always */
        case 'n': break;        /* accepted; lookups try both forms */
        case 'q': o.query = optarg; break;
        case 's': o.list = true; break;
        case 'v': msg_verbose++; break;
        default: usage(prog);
        }
    }
    if (o.query && o.list)
        usage(prog);
    if (optind == argc && o.newaliases && !o.query && !o.list) {
        size_t n;

        db_specs = alias_database(prog, o.config_dir, &n);
        for (size_t i = 0; i < n; i++)
            if (build_one(prog, db_specs[i], &o) != 0)
                status = 1;
        str_argv_free(&db_specs);
        return status;
    }
    if (optind == argc)
        usage(prog);
    if (o.query)
        return do_query(prog, argv + optind, argc - optind, o.query);
    for (int i = optind; i < argc; i++) {
        if (o.list) {
            if (table_list(argv[i], list_fn, &o, &why) < 0) {
                fprintf(stderr, "%s: %s\n", prog, why);
                status = 2;
            }
        } else if (build_one(prog, argv[i], &o) != 0 && status == 0) {
            status = 1;
        }
    }
    return status;
}
