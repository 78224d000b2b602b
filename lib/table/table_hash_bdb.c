/* table_hash_bdb - "hash:PATH": a Berkeley DB DB_HASH file PATH.db */
#include "table/table_impl.h"
#include "util/xmalloc.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Keys and values are stored with their terminating NUL, as postmap does
 * (so files made by either tool read the same); lookups also try the key
 * without NUL for files written by tools that leave it out.
 */

/* hash_errcall - route Berkeley DB's own diagnostics to the mail log */
static void hash_errcall(const DB_ENV *env, const char *prefix, const char *text)
{
    msg_warn("berkeley db: %s%s%s", prefix ? prefix : "", prefix ? ": " : "", text);
}

/* hash_create - a DB handle with our error routing */
static int hash_create(DB **db_r, buf_t *why)
{
    int ret;

    if ((ret = db_create(db_r, NULL, 0)) != 0) {
        buf_printf(why, "db_create: %s", db_strerror(ret));
        return -1;
    }
    (*db_r)->set_errcall(*db_r, hash_errcall);
    return 0;
}

/* hash_open - open PATH.db read-only */
static int hash_open(table_t *t, const char **why_r)
{
    DB *db;
    int ret, fd;

    t->file = xasprintf("%s.db", t->path);
    if (hash_create(&db, &t->why) < 0) {
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    if ((ret = db->open(db, NULL, t->file, NULL, DB_HASH, DB_RDONLY, 0)) != 0) {
        buf_printf(&t->why, "open %s: %s", t->file, db_strerror(ret));
        db->close(db, 0);
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    t->priv = db;
    if (db->fd(db, &fd) == 0)
        t->stat_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return 0;
}

/* hash_get - look up key (with its NUL, then without) */
static int hash_get(table_t *t, const char *key, buf_t *val_r, const char **why_r)
{
    DB *db = t->priv;
    DBT k, v;
    size_t klen = strlen(key), vlen;
    int ret = DB_NOTFOUND;

    for (int with_nul = 1; with_nul >= 0 && ret == DB_NOTFOUND; with_nul--) {
        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        k.data = (void *)key;
        k.size = (u_int32_t)(klen + (size_t)with_nul);
        if (k.size == 0)
            break;
        ret = db->get(db, NULL, &k, &v, 0);
    }
    if (ret == DB_NOTFOUND)
        return 0;
    if (ret != 0) {
        buf_reset(&t->why);
        buf_printf(&t->why, "%s: lookup error: %s", t->file, db_strerror(ret));
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    vlen = v.data ? strnlen(v.data, v.size) : 0;
    buf_reset(val_r);
    if (buf_append(val_r, v.data, vlen) < 0) {
        buf_reset(&t->why);
        buf_printf(&t->why, "%s: value for \"%s\" too long", t->file, key);
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    return 1;
}

/* hash_list - every entry, through a cursor */
static int hash_list(table_t *t, void (*fn)(const char *, const char *, void *), void *ctx,
                     const char **why_r)
{
    DB *db = t->priv;
    DBC *c;
    DBT k, v;
    int ret;

    if ((ret = db->cursor(db, NULL, &c, 0)) != 0) {
        buf_printf(&t->why, "%s: cursor: %s", t->file, db_strerror(ret));
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    for (;;) {
        char *ks, *vs;

        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        if ((ret = c->get(c, &k, &v, DB_NEXT)) != 0)
            break;
        ks = xstrndup(k.data, strnlen(k.data, k.size));
        vs = xstrndup(v.data, strnlen(v.data, v.size));
        fn(ks, vs, ctx);
        free(ks);
        free(vs);
    }
    c->close(c);
    if (ret != DB_NOTFOUND) {
        buf_printf(&t->why, "%s: read error: %s", t->file, db_strerror(ret));
        *why_r = buf_cstr(&t->why);
        return -1;
    }
    return 0;
}

/* hash_close - release the handle */
static void hash_close(table_t *t)
{
    DB *db = t->priv;

    if (db)
        db->close(db, 0);
    t->priv = NULL;
}

/* fsync_dir - make a rename in the directory of path durable */
static int fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = -1;

    if (fd >= 0) {
        ret = fsync(fd);
        close(fd);
    }
    free(dir);
    return ret;
}

/* hash_write - write every entry into a new DB file tmp */
static int hash_write(const char *tmp, const table_text_t *ents, buf_t *why)
{
    DB *db;
    DBT k, v;
    int ret;

    if (hash_create(&db, why) < 0)
        return -1;
    if ((ret = db->open(db, NULL, tmp, NULL, DB_HASH, DB_CREATE | DB_EXCL, 0600)) != 0) {
        buf_printf(why, "create %s: %s", tmp, db_strerror(ret));
        db->close(db, 0);
        return -1;
    }
    for (size_t i = 0; i < ents->n; i++) {
        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        k.data = ents->v[i].key;
        k.size = (u_int32_t)(strlen(ents->v[i].key) + 1);
        v.data = ents->v[i].value;
        v.size = (u_int32_t)(strlen(ents->v[i].value) + 1);
        if ((ret = db->put(db, NULL, &k, &v, 0)) != 0) {
            buf_printf(why, "write %s: %s", tmp, db_strerror(ret));
            db->close(db, 0);
            return -1;
        }
    }
    if ((ret = db->sync(db, 0)) != 0 || (ret = db->close(db, 0)) != 0) {
        buf_printf(why, "write %s: %s", tmp, db_strerror(ret));
        return -1;
    }
    return 0;
}

/* hash_finish - give tmp the source's mode (and owner, as root), fsync it */
static int hash_finish(const char *tmp, const char *source_path, buf_t *why)
{
    struct stat st;
    int fd;

    if ((fd = open(tmp, O_RDWR | O_CLOEXEC)) < 0) {
        buf_printf(why, "open %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (stat(source_path, &st) == 0) {
        if (fchmod(fd, st.st_mode & 07777) < 0
            || (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)) {
            buf_printf(why, "set mode of %s: %s", tmp, strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (fsync(fd) < 0) {
        buf_printf(why, "fsync %s: %s", tmp, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* hash_build - write PATH.db atomically: temp file, fsync, rename, fsync dir */
static int hash_build(const char *path, const char *source_path, const table_text_t *ents,
                      buf_t *why)
{
    char *dbpath = xasprintf("%s.db", path);
    char *tmp = xasprintf("%s.db.tmp.%ld", path, (long)getpid());
    int ret = -1;

    (void)unlink(tmp);      /* a leftover of a crashed run with our pid */
    if (hash_write(tmp, ents, why) == 0 && hash_finish(tmp, source_path, why) == 0) {
        if (rename(tmp, dbpath) < 0)
            buf_printf(why, "rename %s to %s: %s", tmp, dbpath, strerror(errno));
        else if (fsync_dir(dbpath) < 0)
            buf_printf(why, "fsync directory of %s: %s", dbpath, strerror(errno));
        else
            ret = 0;
    }
    if (ret < 0)
        (void)unlink(tmp);
    free(dbpath);
    free(tmp);
    return ret;
}

const table_ops_t table_hash_ops = {
    "hash", hash_open, hash_get, hash_list, hash_close, hash_build,
};
