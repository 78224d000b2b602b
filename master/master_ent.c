/* master_ent - master.cf entries into services (the master_cf glue) */
#include "master.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * master_load_config - main.cf and master.cf, fully validated. Returns the
 * number of problems (lines in errors); on 0 the caller owns conf and the
 * entries. Nothing is opened or started from a configuration with problems.
 */
int master_load_config(const char *config_dir, conf_t **conf_r, master_cf_entry_t **ents_r,
                       size_t *n_r, buf_t *errors)
{
    const char *why;
    conf_t *conf;
    char *path;
    int problems;

    *conf_r = NULL;
    *ents_r = NULL;
    *n_r = 0;
    if ((conf = conf_open(config_dir, &why)) == NULL) {
        buf_printf(errors, "%s\n", why);
        return 1;
    }
    problems = conf_validate(conf, errors);
    path = xasprintf("%s/master.cf", config_dir);
    problems += master_cf_load(path, ents_r, n_r, errors);
    free(path);
    if (problems) {
        conf_free(&conf);
        return problems;
    }
    *conf_r = conf;
    return 0;
}

const char *master_serv_type(const master_serv_t *s)
{
    return s->type == MASTER_CF_INET ? "inet" : "unix";
}

/* master_argv_add - append one string to a growing argv */
static void master_argv_add(char ***argv, size_t *n, char *s)
{
    *argv = xreallocarray(*argv, *n + 2, sizeof(char *));
    (*argv)[(*n)++] = s;
    (*argv)[*n] = NULL;
}

/* master_argv_free - free a NULL-terminated argv */
static void master_argv_free(char ***argv)
{
    if (*argv == NULL)
        return;
    for (char **p = *argv; *p; p++)
        free(*p);
    xfreep(argv);
}

/*
 * master_serv_set - the attributes that a reload may change. The exec
 * command line follows the MASTER CONTRACT in lib/service/service.h.
 */
static void master_serv_set(master_t *m, master_serv_t *s, const master_cf_entry_t *e)
{
    const char *cmd = e->argv[0];
    size_t n = 0;

    s->private_ = e->private_;
    s->unpriv = e->unpriv;
    s->chroot = e->chroot;
    s->wakeup = e->wakeup;
    /* As in Postfix: '-' is default_process_limit, 0 means no limit. */
    s->maxproc = e->maxproc > 0 ? e->maxproc
        : e->maxproc == 0 ? INT_MAX : (int)conf_int(m->conf, "default_process_limit");
    free(s->path);
    s->path = cmd[0] == '/' ? xstrdup(cmd)
                            : xasprintf("%s/%s", conf_str(m->conf, "daemon_directory"), cmd);
    master_argv_free(&s->argv);
    master_argv_add(&s->argv, &n, xstrdup(s->path));
    master_argv_add(&s->argv, &n, xstrdup("-c"));
    master_argv_add(&s->argv, &n, xstrdup(m->config_dir));
    master_argv_add(&s->argv, &n, xstrdup("-n"));
    master_argv_add(&s->argv, &n, xstrdup(s->name));
    master_argv_add(&s->argv, &n, xstrdup("-t"));
    master_argv_add(&s->argv, &n, xstrdup(master_serv_type(s)));
    if (s->unpriv)
        master_argv_add(&s->argv, &n, xstrdup("-u"));
    if (s->chroot)
        master_argv_add(&s->argv, &n, xstrdup("-C"));
    if (s->wakeup > 0) {
        master_argv_add(&s->argv, &n, xstrdup("-w"));
        master_argv_add(&s->argv, &n, xasprintf("%d", s->wakeup));
    }
    for (size_t i = 1; i < e->argc; i++)
        master_argv_add(&s->argv, &n, xstrdup(e->argv[i]));
}

/* master_serv_new - a service without sockets yet; linked into m->servs */
master_serv_t *master_serv_new(master_t *m, const master_cf_entry_t *e)
{
    master_serv_t *s = xcalloc(1, sizeof(*s));

    s->master = m;
    s->name = xstrdup(e->service);
    s->type = e->type;
    s->status_rd = s->status_wr = -1;
    master_serv_set(m, s, e);
    s->next = m->servs;
    m->servs = s;
    return s;
}

/* master_serv_update - a reload changed this service's columns or command */
void master_serv_update(master_t *m, master_serv_t *s, const master_cf_entry_t *e)
{
    master_serv_set(m, s, e);
}

/* master_serv_find - a current (not removed) service by name and type */
master_serv_t *master_serv_find(master_t *m, const char *name, master_cf_type_t type)
{
    for (master_serv_t *s = m->servs; s; s = s->next)
        if (!s->removed && s->type == type && strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* master_serv_free - unlink and release a service that has no children */
void master_serv_free(master_t *m, master_serv_t *s)
{
    if (s->n_total > 0)
        msg_panic("master_serv_free: %s still has %d processes", s->name, s->n_total);
    for (master_serv_t **pp = &m->servs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    event_timer_cancel(m->loop, &s->throttle_timer);
    master_listen_close(m, s);
    master_status_close(m, s);
    master_argv_free(&s->argv);
    free(s->path);
    free(s->name);
    free(s);
}
