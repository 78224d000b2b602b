/*
 * qindex_bdb - the queue index in one Berkeley DB file with three btrees
 * ("entries": qid → entry, "due": be64 next_attempt + qid → "", "meta":
 * the clean marker and generation) in a DB_PRIVATE environment, so that
 * no shared region survives the process and a kill -9 wedges nothing.
 */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <db.h>

#include "queue/qfile.h"
#include "queue/qfile_rec.h"
#include "queue/qindex.h"
#include "util/buf.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#define QINDEX_VERSION 1
#define QINDEX_CACHE (8 * 1024 * 1024)
#define DUE_KEY_LEN (8 + QID_LEN)

struct qindex {
    char *path;
    char *home;
    char *file;
    DB_ENV *env;
    DB *entries;
    DB *due;
    DB *meta;
    uint64_t generation;
};

/* qindex_dbt - a DBT over caller memory */
static DBT qindex_dbt(const void *p, size_t n)
{
    DBT d;
    memset(&d, 0, sizeof(d));
    d.data = (void *)p;
    d.size = (u_int32_t)n;
    return d;
}

/* qindex_close_files - close the handles (no clean marker) */
static void qindex_close_files(qindex_t *qi)
{
    DB **dbs[] = { &qi->entries, &qi->due, &qi->meta };

    for (size_t i = 0; i < 3; i++)
        if (*dbs[i]) {
            (*dbs[i])->close(*dbs[i], 0);
            *dbs[i] = NULL;
        }
    if (qi->env) {
        qi->env->close(qi->env, 0);
        qi->env = NULL;
    }
}

/* qindex_open_db - one named btree in the file */
static int qindex_open_db(qindex_t *qi, DB **db_r, const char *name, const char **why_r)
{
    int ret;

    if ((ret = db_create(db_r, qi->env, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    if ((ret = (*db_r)->open(*db_r, NULL, qi->file, name, DB_BTREE, DB_CREATE, 0600)) != 0) {
        *why_r = db_strerror(ret);
        (*db_r)->close(*db_r, 0);
        *db_r = NULL;
        return -1;
    }
    return 0;
}

/* qindex_errcall - BDB's own diagnostics: only with -v (our callers log
 * the error that matters, and a garbled file would otherwise print pages) */
static void qindex_errcall(const DB_ENV *env, const char *pfx, const char *text)
{
    if (msg_verbose)
        msg_info("%s: %s", pfx, text);
}

/* qindex_open_files - the environment and the three btrees */
static int qindex_open_files(qindex_t *qi, const char **why_r)
{
    int ret;

    if ((ret = db_env_create(&qi->env, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    qi->env->set_errpfx(qi->env, "qindex");
    qi->env->set_errcall(qi->env, qindex_errcall);
    qi->env->set_cachesize(qi->env, 0, QINDEX_CACHE, 1);
    if ((ret = qi->env->open(qi->env, qi->home, DB_CREATE | DB_INIT_MPOOL | DB_PRIVATE, 0600)) != 0) {
        *why_r = db_strerror(ret);
        qi->env->close(qi->env, 0);
        qi->env = NULL;
        return -1;
    }
    if (qindex_open_db(qi, &qi->entries, "entries", why_r) < 0
        || qindex_open_db(qi, &qi->due, "due", why_r) < 0
        || qindex_open_db(qi, &qi->meta, "meta", why_r) < 0) {
        qindex_close_files(qi);
        return -1;
    }
    return 0;
}

/* qindex_meta_get - a meta value; 0 and *v, or -1 if absent/bad */
static int qindex_meta_get(qindex_t *qi, const char *name, uint64_t *v)
{
    DBT k = qindex_dbt(name, strlen(name)), d;

    memset(&d, 0, sizeof(d));
    if (qi->meta->get(qi->meta, NULL, &k, &d, 0) != 0 || d.size != 8)
        return -1;
    *v = qrec_get_u64(d.data);
    return 0;
}

/* qindex_meta_put - store a meta value and flush the file */
static int qindex_meta_put(qindex_t *qi, const char *name, uint64_t v, const char **why_r)
{
    unsigned char b[8];
    int ret;

    qrec_put_u64(b, v);
    DBT k = qindex_dbt(name, strlen(name)), d = qindex_dbt(b, 8);
    if ((ret = qi->meta->put(qi->meta, NULL, &k, &d, 0)) != 0
        || (ret = qi->meta->sync(qi->meta, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    return 0;
}

/* qindex_open - open (or recreate) the index and mark it in use */
qindex_t *qindex_open(const char *path, bool *clean_r, const char **why_r)
{
    qindex_t *qi = xcalloc(1, sizeof(*qi));
    uint64_t clean = 0;
    char *tmp;

    qi->path = xstrdup(path);
    tmp = xstrdup(path);
    qi->home = xstrdup(dirname(tmp));
    free(tmp);
    tmp = xstrdup(path);
    qi->file = xstrdup(basename(tmp));
    free(tmp);
    *clean_r = false;
    if (qindex_open_files(qi, why_r) < 0) {
        msg_warn("%s: cannot open the queue index (%s): recreating it", path, *why_r);
        if (unlink(path) < 0 && errno != ENOENT) {
            *why_r = "cannot remove the unreadable queue index";
            qindex_close(&qi, false);
            return NULL;
        }
        if (qindex_open_files(qi, why_r) < 0) {
            qindex_close(&qi, false);
            return NULL;
        }
    } else if (qindex_meta_get(qi, "clean", &clean) == 0 && clean == 1) {
        *clean_r = true;
    }
    if (qindex_meta_get(qi, "generation", &qi->generation) < 0)
        qi->generation = 0;
    qi->generation++;
    /* in use from now on: a crash must leave the index untrusted */
    if (qindex_meta_put(qi, "generation", qi->generation, why_r) < 0
        || qindex_meta_put(qi, "clean", 0, why_r) < 0) {
        qindex_close(&qi, false);
        return NULL;
    }
    return qi;
}

/* qindex_reset - remove and recreate the file: nothing old survives */
int qindex_reset(qindex_t *qi, const char **why_r)
{
    qindex_close_files(qi);
    if (unlink(qi->path) < 0 && errno != ENOENT) {
        *why_r = "cannot remove the queue index";
        return -1;
    }
    if (qindex_open_files(qi, why_r) < 0)
        return -1;
    return qindex_meta_put(qi, "generation", qi->generation, why_r) < 0
        || qindex_meta_put(qi, "clean", 0, why_r) < 0 ? -1 : 0;
}

uint64_t qindex_generation(const qindex_t *qi) { return qi->generation; }

/* put_str - u32 length and bytes */
static void put_str(buf_t *b, const char *s)
{
    unsigned char l[4];
    size_t n = strlen(s);

    qrec_put_u32(l, (uint32_t)n);
    buf_append(b, l, 4);
    buf_append(b, s, n);
}

/* qindex_encode - the stored form of an entry */
static void qindex_encode(buf_t *b, const qindex_entry_t *e)
{
    unsigned char n[8];

    buf_putc(b, QINDEX_VERSION);
    put_str(b, e->queue);
    qrec_put_u64(n, (uint64_t)e->arrival_sec);
    buf_append(b, n, 8);
    qrec_put_u32(n, (uint32_t)e->arrival_usec);
    buf_append(b, n, 4);
    qrec_put_u64(n, e->size);
    buf_append(b, n, 8);
    qrec_put_u64(n, (uint64_t)e->next_attempt);
    buf_append(b, n, 8);
    put_str(b, e->sender ? e->sender : "");
    qrec_put_u32(n, (uint32_t)e->nrcpts);
    buf_append(b, n, 4);
    for (size_t i = 0; i < e->nrcpts; i++) {
        buf_putc(b, e->rcpts[i].status);
        put_str(b, e->rcpts[i].addr);
        put_str(b, e->rcpts[i].reason ? e->rcpts[i].reason : "");
    }
}

/*
 * A cursor over a stored value; every read is bounds-checked. Strings
 * are copied out (qindex_get), or, in a walk, made in place: the value
 * is first copied into scratch memory the walk owns, and each string's
 * bytes move back over its own 4-byte length, which leaves room for the
 * NUL without touching what follows. A walk then costs no allocation
 * per entry.
 */
typedef struct dec {
    unsigned char *p;
    size_t left;
    int bad;
    bool inplace;
} dec_t;

/* The reusable memory of a walk (in-place decoding). */
typedef struct dec_arena {
    buf_t value;
    qindex_rcpt_t *rcpts;
    size_t cap;
} dec_arena_t;

static unsigned char *dec_take(dec_t *d, size_t n)
{
    if (d->bad || n > d->left) {
        d->bad = 1;
        return NULL;
    }
    unsigned char *p = d->p;
    d->p += n;
    d->left -= n;
    return p;
}

static uint64_t dec_u64(dec_t *d)
{
    const unsigned char *p = dec_take(d, 8);
    return p ? qrec_get_u64(p) : 0;
}

static uint32_t dec_u32(dec_t *d)
{
    const unsigned char *p = dec_take(d, 4);
    return p ? qrec_get_u32(p) : 0;
}

static char *dec_str(dec_t *d)
{
    unsigned char *lp = dec_take(d, 4);
    uint32_t n = lp ? qrec_get_u32(lp) : 0;
    unsigned char *p = dec_take(d, n);

    if (p == NULL || memchr(p, 0, n) != NULL) {
        d->bad = 1;
        return NULL;
    }
    if (!d->inplace)
        return xstrndup((const char *)p, n);
    memmove(lp, p, n);
    lp[n] = 0;
    return (char *)lp;
}

/* qindex_decode_with - a stored value into an entry; the strings are
 * allocated (a == NULL) or made in place in a->value (which the caller
 * has filled with the value); -1 if garbled */
static int qindex_decode_with(const char *qid, unsigned char *p, size_t n, qindex_entry_t *e,
                              dec_arena_t *a)
{
    dec_t d = { p, n, 0, a != NULL };

    memset(e, 0, sizeof(*e));
    const unsigned char *v = dec_take(&d, 1);
    if (v == NULL || *v != QINDEX_VERSION)
        return -1;
    char *queue = dec_str(&d);
    if (queue == NULL || strlen(queue) >= QINDEX_QUEUE_MAX) {
        if (!a)
            free(queue);
        return -1;
    }
    memcpy(e->qid, qid, QID_BUFSIZE);
    memcpy(e->queue, queue, strlen(queue) + 1);
    if (!a)
        free(queue);
    e->arrival_sec = (int64_t)dec_u64(&d);
    e->arrival_usec = (int32_t)dec_u32(&d);
    e->size = dec_u64(&d);
    e->next_attempt = (int64_t)dec_u64(&d);
    e->sender = dec_str(&d);
    uint32_t nr = dec_u32(&d);
    if (d.bad || nr > QFILE_MAX_RCPTS || nr > d.left / 9)
        goto bad;
    if (!a) {
        e->rcpts = xcalloc(nr ? nr : 1, sizeof(*e->rcpts));
    } else {
        if (nr > a->cap) {
            a->cap = nr;
            a->rcpts = xreallocarray(a->rcpts, a->cap, sizeof(*a->rcpts));
        }
        e->rcpts = a->rcpts;
    }
    for (uint32_t i = 0; i < nr && !d.bad; i++) {
        const unsigned char *s = dec_take(&d, 1);
        e->rcpts[i].status = s ? (char)*s : 0;
        e->rcpts[i].addr = dec_str(&d);
        e->rcpts[i].reason = dec_str(&d);
        e->nrcpts = i + 1;
    }
    if (d.bad || d.left != 0)
        goto bad;
    return 0;

bad:
    if (!a)
        qindex_entry_free(e);
    return -1;
}

/* qindex_decode - a stored value back into an entry of its own */
static int qindex_decode(const char *qid, const void *p, size_t n, qindex_entry_t *e)
{
    /* Only read: with no arena the cursor never writes through p. */
    return qindex_decode_with(qid, (unsigned char *)(uintptr_t)p, n, e, NULL);
}

/* due_key - be64 time then qid, so byte order is time order */
static void due_key(unsigned char k[DUE_KEY_LEN], int64_t t, const char *qid)
{
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)((uint64_t)t >> (56 - 8 * i));
    memcpy(k + 8, qid, QID_LEN);
}

/* qindex_old_next - the next_attempt currently stored for qid, or 0 */
static int64_t qindex_old_next(qindex_t *qi, const char *qid)
{
    qindex_entry_t old;
    const char *why;

    if (qindex_get(qi, qid, &old, &why) != 1)
        return 0;
    int64_t t = old.next_attempt;
    qindex_entry_free(&old);
    return t;
}

/* qindex_put - insert or replace an entry and its due key */
int qindex_put(qindex_t *qi, const qindex_entry_t *e, const char **why_r)
{
    unsigned char dk[DUE_KEY_LEN];
    buf_t b;
    int ret;

    if (!qid_valid(e->qid) || strlen(e->queue) >= QINDEX_QUEUE_MAX) {
        *why_r = "bad index entry";
        return -1;
    }
    int64_t old = qindex_old_next(qi, e->qid);
    if (old > 0 && old != e->next_attempt) {
        due_key(dk, old, e->qid);
        DBT k = qindex_dbt(dk, DUE_KEY_LEN);
        qi->due->del(qi->due, NULL, &k, 0);
    }
    buf_init(&b, BUF_NOLIMIT);
    qindex_encode(&b, e);
    DBT k = qindex_dbt(e->qid, QID_LEN), d = qindex_dbt(b.data, b.len);
    ret = qi->entries->put(qi->entries, NULL, &k, &d, 0);
    buf_free(&b);
    if (ret == 0 && e->next_attempt > 0) {
        due_key(dk, e->next_attempt, e->qid);
        DBT dkk = qindex_dbt(dk, DUE_KEY_LEN), empty = qindex_dbt("", 0);
        ret = qi->due->put(qi->due, NULL, &dkk, &empty, 0);
    }
    if (ret != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    return 0;
}

/* qindex_get - 1 and *e, 0 if absent, -1 on error */
int qindex_get(qindex_t *qi, const char *qid, qindex_entry_t *e, const char **why_r)
{
    DBT k = qindex_dbt(qid, strlen(qid)), d;
    int ret;

    memset(e, 0, sizeof(*e));
    if (!qid_valid(qid))
        return 0;
    memset(&d, 0, sizeof(d));
    ret = qi->entries->get(qi->entries, NULL, &k, &d, 0);
    if (ret == DB_NOTFOUND)
        return 0;
    if (ret != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    if (qindex_decode(qid, d.data, d.size, e) < 0) {
        *why_r = "garbled index entry";
        return -1;
    }
    return 1;
}

/* qindex_del - remove an entry and its due key */
int qindex_del(qindex_t *qi, const char *qid, const char **why_r)
{
    unsigned char dk[DUE_KEY_LEN];
    int ret;

    if (!qid_valid(qid))
        return 0;
    int64_t old = qindex_old_next(qi, qid);
    if (old > 0) {
        due_key(dk, old, qid);
        DBT k = qindex_dbt(dk, DUE_KEY_LEN);
        qi->due->del(qi->due, NULL, &k, 0);
    }
    DBT k = qindex_dbt(qid, QID_LEN);
    ret = qi->entries->del(qi->entries, NULL, &k, 0);
    if (ret != 0 && ret != DB_NOTFOUND) {
        *why_r = db_strerror(ret);
        return -1;
    }
    return 0;
}

/* qindex_walk_step - decode the cursor's entry and call fn: 1 to stop,
 * -1 if garbled, 0 to go on */
static int qindex_walk_step(const DBT *k, const DBT *d, dec_arena_t *a, qindex_walk_fn *fn,
                            void *ctx, const char **why_r)
{
    char qid[QID_BUFSIZE];
    qindex_entry_t e;

    if (k->size != QID_LEN) {
        *why_r = "garbled index key";
        return -1;
    }
    memcpy(qid, k->data, QID_LEN);
    qid[QID_LEN] = 0;
    buf_reset(&a->value);
    if (!qid_valid(qid) || buf_append(&a->value, d->data, d->size) < 0
        || qindex_decode_with(qid, (unsigned char *)a->value.data, d->size, &e, a) < 0) {
        *why_r = "garbled index entry";
        return -1;
    }
    return fn(&e, ctx) ? 1 : 0;
}

/* qindex_walk_from - entries with a queue id after `after` (every entry
 * when it is NULL or ""), in queue id order; fn non-zero stops */
int qindex_walk_from(qindex_t *qi, const char *after, qindex_walk_fn *fn, void *ctx,
                     const char **why_r)
{
    dec_arena_t a = { 0 };
    DBC *c;
    DBT k, d;
    int ret, rc = 0;

    if ((ret = qi->entries->cursor(qi->entries, NULL, &c, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    buf_init(&a.value, BUF_NOLIMIT);
    memset(&d, 0, sizeof(d));
    if (after && *after) {
        /* the first key >= after, then past it if it is after itself */
        k = qindex_dbt(after, strlen(after));
        ret = c->get(c, &k, &d, DB_SET_RANGE);
        if (ret == 0 && k.size == strlen(after) && memcmp(k.data, after, k.size) == 0)
            ret = c->get(c, &k, &d, DB_NEXT);
    } else {
        memset(&k, 0, sizeof(k));
        ret = c->get(c, &k, &d, DB_FIRST);
    }
    for (; ret == 0; ret = c->get(c, &k, &d, DB_NEXT)) {
        int step = qindex_walk_step(&k, &d, &a, fn, ctx, why_r);
        if (step < 0)
            rc = -1;
        if (step != 0)
            break;
    }
    if (ret != 0 && ret != DB_NOTFOUND && rc == 0) {
        *why_r = db_strerror(ret);
        rc = -1;
    }
    c->close(c);
    buf_free(&a.value);
    free(a.rcpts);
    return rc;
}

/* qindex_walk - every entry in queue id order */
int qindex_walk(qindex_t *qi, qindex_walk_fn *fn, void *ctx, const char **why_r)
{
    return qindex_walk_from(qi, NULL, fn, ctx, why_r);
}

/* qindex_due - scheduled entries with next_attempt <= now, earliest first */
int qindex_due(qindex_t *qi, int64_t now, qindex_due_fn *fn, void *ctx, const char **why_r)
{
    DBC *c;
    DBT k, d;
    int ret, rc = 0;

    if ((ret = qi->due->cursor(qi->due, NULL, &c, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    memset(&k, 0, sizeof(k));
    memset(&d, 0, sizeof(d));
    while ((ret = c->get(c, &k, &d, DB_NEXT)) == 0) {
        const unsigned char *p = k.data;
        char qid[QID_BUFSIZE];
        uint64_t t = 0;
        if (k.size != DUE_KEY_LEN) {
            *why_r = "garbled due key";
            rc = -1;
            break;
        }
        for (int i = 0; i < 8; i++)
            t = (t << 8) | p[i];
        if ((int64_t)t > now)
            break;
        memcpy(qid, p + 8, QID_LEN);
        qid[QID_LEN] = 0;
        if (!qid_valid(qid))
            continue;
        if (fn(qid, (int64_t)t, ctx))
            break;
    }
    if (ret != 0 && ret != DB_NOTFOUND && rc == 0) {
        *why_r = db_strerror(ret);
        rc = -1;
    }
    c->close(c);
    return rc;
}

/* qindex_sync - flush everything to the file (not a clean marker) */
int qindex_sync(qindex_t *qi, const char **why_r)
{
    int ret;

    if ((ret = qi->entries->sync(qi->entries, 0)) != 0
        || (ret = qi->due->sync(qi->due, 0)) != 0) {
        *why_r = db_strerror(ret);
        return -1;
    }
    return 0;
}

/* qindex_close - flush, set the clean marker if asked, close */
void qindex_close(qindex_t **qip, bool clean)
{
    qindex_t *qi = *qip;
    const char *why;

    if (qi == NULL)
        return;
    if (clean && qi->entries && qi->meta) {
        if (qindex_sync(qi, &why) < 0 || qindex_meta_put(qi, "clean", 1, &why) < 0)
            msg_warn("%s: cannot mark the queue index clean: %s", qi->path, why);
    }
    qindex_close_files(qi);
    free(qi->path);
    free(qi->home);
    free(qi->file);
    free(qi);
    *qip = NULL;
}

/* qindex_entry_free - release an entry filled by qindex_get */
void qindex_entry_free(qindex_entry_t *e)
{
    for (size_t i = 0; i < e->nrcpts; i++) {
        free(e->rcpts[i].addr);
        free(e->rcpts[i].reason);
    }
    free(e->rcpts);
    free(e->sender);
    e->rcpts = NULL;
    e->sender = NULL;
    e->nrcpts = 0;
}
