/* master_reload - SIGHUP: re-read main.cf and master.cf, apply or keep the old */
#include "master.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* master_reload_log_errors - one log line per configuration problem */
static void master_reload_log_errors(const buf_t *errors)
{
    char *copy = xstrdup(buf_cstr(errors)), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        msg_error("%s", line);
    free(copy);
}

/*
 * master_reload - the new configuration replaces the old only when it is
 * valid and every new listening socket opens. Services that stay (same
 * name and type) keep their listening sockets, so no connection waiting
 * in the kernel's queue is lost. Every old child gets SIGUSR1: it stops
 * accepting, finishes its clients and exits; new children run the new
 * configuration.
 */
void master_reload(master_t *m)
{
    master_cf_entry_t *ents;
    size_t n;
    conf_t *conf, *old_conf;
    buf_t errors;
    master_serv_t **map;
    bool failed = false;
    const char *why;

    buf_init(&errors, 64 * 1024);
    if (master_load_config(m->config_dir, &conf, &ents, &n, &errors) > 0) {
        master_reload_log_errors(&errors);
        msg_error("reload: configuration errors; still running the old configuration");
        buf_free(&errors);
        return;
    }
    buf_free(&errors);

    /* Pass 1: open sockets for services that are new, with the new conf. */
    old_conf = m->conf;
    m->conf = conf;
    map = xcalloc(n ? n : 1, sizeof(*map));
    for (size_t i = 0; i < n && !failed; i++) {
        master_serv_t *s = master_serv_find(m, ents[i].service, ents[i].type);

        if (s) {
            map[i] = s;
            continue;
        }
        map[i] = master_serv_new(m, &ents[i]);
        map[i]->removed = true;         /* not live until committed */
        if (master_listen_open(m, map[i], &why) < 0 || master_status_open(m, map[i]) < 0) {
            msg_error("reload: %s; still running the old configuration",
                      map[i]->n_listen ? "cannot open status pipe" : why);
            failed = true;
        }
    }
    if (failed) {
        for (size_t i = 0; i < n; i++)
            if (map[i] && map[i]->removed && map[i]->n_total == 0)
                master_serv_free(m, map[i]);
        m->conf = old_conf;
        conf_free(&conf);
        master_cf_free(&ents, n);
        free(map);
        return;
    }

    /* Pass 2: commit. Old children retire; gone services wait for theirs. */
    master_proc_retire_all(m, SIGUSR1);
    for (master_serv_t *s = m->servs; s; s = s->next) {
        bool kept = false;

        for (size_t i = 0; i < n; i++)
            if (map[i] == s)
                kept = true;
        if (!kept && !s->removed) {
            s->removed = true;
            master_listen_close(m, s);
        }
    }
    for (size_t i = 0; i < n; i++) {
        map[i]->removed = false;
        master_serv_update(m, map[i], &ents[i]);
    }
    for (master_serv_t *s = m->servs, *next; s; s = next) {
        next = s->next;
        if (s->removed && s->n_total == 0)
            master_serv_free(m, s);
    }
    conf_free(&old_conf);
    master_cf_free(&ents, n);
    free(map);
    msg_info("reload -- version %s, configuration %s", STORK_VERSION, m->config_dir);
    master_spawn_check_all(m);
}
