/*
 * local_rcpt - deliver one recipient: resolve it, expand aliases, virtual
 * aliases and ~/.forward recursively, and deliver every leaf
 *
 * Loops and limits (like Postfix's local): an address whose Delivered-To:
 * is already in the message bounces 5.4.6; an expansion deeper than
 * local_recursion_limit bounces 5.4.6; one that reaches more than
 * local_expansion_limit leaves stops there with 5.3.0 for the rest.
 * Within one expansion every alias, .forward and mailbox is used once:
 * a member that names an alias being expanded ("root: root, admin")
 * goes to that user's mailbox instead of expanding again.
 * The result for qmgr's recipient is the worst of its leaves: deferred
 * beats bounced beats delivered. A deferred expansion is retried as a
 * whole, so leaves that were delivered may get a second copy (as with
 * Postfix).
 */
#include "local.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOCAL_SEEN_MAX 10000

/* local_exp_seen - true if kind:key was met before; remember it if not */
bool local_exp_seen(local_exp_t *x, char kind, const char *key)
{
    char *k = xasprintf("%c:%s", kind, key);

    for (size_t i = 0; i < x->n_seen; i++) {
        if (strcmp(x->seen[i], k) == 0) {
            free(k);
            return true;
        }
    }
    if (x->n_seen >= LOCAL_SEEN_MAX) {
        free(k);
        return true;            /* the leaf limit stops us long before this */
    }
    x->seen = xreallocarray(x->seen, x->n_seen + 1, sizeof(char *));
    x->seen[x->n_seen++] = k;
    return false;
}

/* local_exp_dup - did kind:key get this message already (any recipient)? */
bool local_exp_dup(local_exp_t *x, char kind, const char *key)
{
    local_msg_t *msg = x->msg;
    char *k = xasprintf("%c:%s", kind, key);
    bool dup = false;

    for (size_t i = 0; i < msg->n_done && !dup; i++)
        dup = strcmp(msg->done[i], k) == 0;
    free(k);
    /* Within one expansion, a target is tried once whatever its result. */
    if (!dup)
        dup = local_exp_seen(x, kind, key);
    if (dup)
        x->n_dup++;
    return dup;
}

/* local_exp_done - remember a target that has its copy now */
void local_exp_done(local_exp_t *x, char kind, const char *key)
{
    local_msg_t *msg = x->msg;

    if (msg->n_done >= LOCAL_SEEN_MAX)
        return;
    msg->done = xreallocarray(msg->done, msg->n_done + 1, sizeof(char *));
    msg->done[msg->n_done++] = xasprintf("%c:%s", kind, key);
}

void local_msg_done_free(local_msg_t *msg)
{
    for (size_t i = 0; i < msg->n_done; i++)
        free(msg->done[i]);
    xfreep(&msg->done);
    msg->n_done = 0;
}

/* local_user_lookup - getpwnam into a copy; 1 found, 0 not, -1 error */
int local_user_lookup(const char *name, local_user_t *u, const char **why_r)
{
    struct passwd pw, *res = NULL;
    char sbuf[8192];
    int err;

    memset(u, 0, sizeof(*u));
    if (*name == 0 || strchr(name, '/') != NULL)
        return 0;
    err = getpwnam_r(name, &pw, sbuf, sizeof(sbuf), &res);
    if (res == NULL) {
        if (err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM)
            return 0;
        *why_r = strerror(err);
        return -1;
    }
    u->name = xstrdup(pw.pw_name);
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    u->home = xstrdup(pw.pw_dir);
    return 1;
}

void local_user_free(local_user_t *u)
{
    xfreep(&u->name);
    xfreep(&u->home);
}

/* prepend_addr - an address for a header line: no control characters */
static void prepend_addr(buf_t *out, const char *a)
{
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        buf_putc(out, *p < 0x20 || *p == 0x7f ? '?' : *p);
}

/* local_prepend - the header lines local adds to every delivered copy */
void local_prepend(const local_msg_t *msg, const char *rcpt, buf_t *out)
{
    buf_reset(out);
    buf_puts(out, "Return-Path: <");
    prepend_addr(out, msg->sender ? msg->sender : "");
    buf_puts(out, ">\nDelivered-To: ");
    prepend_addr(out, rcpt);
    buf_puts(out, "\n");
}

/* local_op_message - fill the per-copy fields of op: the message (queue
 * file fd, content range, sender), the recipient and its header lines
 * (written into prepend, which must outlive op) */
void local_op_message(local_op_t *op, const local_exp_t *x, const char *rcpt, buf_t *prepend)
{
    local_prepend(x->msg, rcpt, prepend);
    op->prepend = prepend->data;
    op->sender = x->msg->sender;
    op->rcpt = rcpt;
    op->fd = x->msg->fd;
    op->offset = x->msg->content_offset;
    op->length = x->msg->content_size;
}

/* local_exp_leaf - log one final delivery and fold it into the result */
void local_exp_leaf(local_exp_t *x, const char *to, const char *relay, local_result_t *r,
                    double start)
{
    local_log(x->msg, to, x->orig, relay, r, start);
    x->leaves++;
    if (r->status == LOCAL_OK)
        x->n_ok++;
    else if (r->status == LOCAL_DEFER)
        x->n_defer++;
    else
        x->n_bounce++;
    /* Keep the first text of the worst status seen so far. */
    if (x->leaves == 1 || r->status > x->worst.status
        || (r->status == LOCAL_DEFER && x->worst.status == LOCAL_BOUNCE)) {
        if (x->leaves == 1 || (r->status == LOCAL_DEFER) != (x->worst.status == LOCAL_DEFER)
            || x->worst.status == LOCAL_OK)
            local_result_set(&x->worst, r->status, r->dsn, "%s", buf_cstr(&r->text));
    }
}

/* leaf_fail - a leaf that failed before any delivery attempt */
static void leaf_fail(local_exp_t *x, const char *to, local_status_t s, const char *dsn,
                      const char *text)
{
    local_result_t r;

    local_result_init(&r);
    local_result_set(&r, s, dsn, "%s", text);
    local_exp_leaf(x, to, "local", &r, local_now());
    local_result_free(&r);
}

/* canon_addr - lower-cased "local@domain"; a bare name gets @myorigin */
static char *canon_addr(const local_state_t *st, const char *addr)
{
    size_t len = strlen(addr);
    char *a;

    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>')
        a = xstrndup(addr + 1, len - 2);
    else
        a = xstrdup(addr);
    str_lower(str_trim(a));
    if (*a && strchr(a, '@') == NULL) {
        char *q = xasprintf("%s@%s", a, st->p.myorigin);

        free(a);
        a = str_lower(q);
    }
    return a;
}

/* strip_ext - "user+ext" → "user" (copy); NULL when there is no extension */
static char *strip_ext(const local_state_t *st, const char *local)
{
    const char *d = st->p.recipient_delimiter;
    size_t n;

    if (d == NULL || *d == 0)
        return NULL;
    n = strcspn(local, d);
    if (n == 0 || local[n] == 0)
        return NULL;
    return xstrndup(local, n);
}

/* try_alias - expand local part key as an alias; true if it was one.
 * *looped_r is set when key was expanded before in this expansion. */
static bool try_alias(local_exp_t *x, const char *key, const char *addr, int depth,
                      bool *looped_r)
{
    local_result_t r;
    buf_t val;
    int ret;

    if (local_exp_seen(x, 'A', key)) {
        *looped_r = true;
        return false;           /* being expanded already: use the mailbox */
    }
    buf_init(&val, BUF_NOLIMIT);
    local_result_init(&r);
    ret = local_alias_lookup(x, key, &val, &r);
    if (ret < 0)
        local_exp_leaf(x, addr, "local", &r, local_now());
    else if (ret > 0)
        local_exp_list(x, val.data, "alias", NULL, addr, depth);
    buf_free(&val);
    local_result_free(&r);
    return ret != 0;
}

/* local_class_local - an address in $mydestination */
static void local_class_local(local_exp_t *x, const char *addr, const char *local, int depth)
{
    local_state_t *st = x->st;
    char *base = strip_ext(st, local);
    const char *user = base ? base : local;
    local_user_t u;
    const char *why;
    bool looped = false;
    int ret;

    /* Postfix's order: the full local part, then without extension. */
    if (try_alias(x, local, addr, depth, &looped)
        || (base && try_alias(x, base, addr, depth, &looped))) {
        free(base);
        return;
    }
    ret = local_user_lookup(user, &u, &why);
    if (ret < 0) {
        local_result_t r;

        local_result_init(&r);
        local_result_set(&r, LOCAL_DEFER, "4.3.0", "user lookup for \"%s\": %s", user, why);
        local_exp_leaf(x, addr, "local", &r, local_now());
        local_result_free(&r);
    } else if (ret == 0) {
        local_result_t r;

        local_result_init(&r);
        if (looped)
            local_result_set(&r, LOCAL_BOUNCE, "5.4.6", "mail forwarding loop: alias \"%s\" "
                             "expands to itself", user);
        else
            local_result_set(&r, LOCAL_BOUNCE, "5.1.1", "unknown user: \"%s\"", user);
        local_exp_leaf(x, addr, "local", &r, local_now());
        local_result_free(&r);
    } else {
        local_result_t r;

        local_result_init(&r);
        if (local_exp_seen(x, 'F', u.name) || (ret = local_forward(x, &u, addr, depth, &r)) == 0)
            local_maildir_user(x, addr, &u);
        else if (ret < 0)
            local_exp_leaf(x, addr, "local", &r, local_now());
        local_result_free(&r);
        local_user_free(&u);
    }
    free(base);
}

/* try_virtual_alias - expand addr through virtual_alias_maps; true if it was one */
static bool try_virtual_alias(local_exp_t *x, const char *addr, int depth)
{
    local_result_t r;
    buf_t val;
    int ret;

    if (local_exp_seen(x, 'V', addr))
        return false;           /* "a@d: a@d, b@d" keeps a copy in a@d's mailbox */
    buf_init(&val, BUF_NOLIMIT);
    local_result_init(&r);
    ret = local_virtual_alias(x, addr, &val, &r);
    if (ret < 0)
        local_exp_leaf(x, addr, "local", &r, local_now());
    else if (ret > 0)
        local_exp_list(x, val.data, "virtual alias", NULL, addr, depth);
    buf_free(&val);
    local_result_free(&r);
    return ret != 0;
}

/* local_exp_address - resolve and deliver one address (recursively) */
void local_exp_address(local_exp_t *x, const char *addr_in, int depth)
{
    local_state_t *st = x->st;
    char *addr = canon_addr(st, addr_in);
    char *at = strrchr(addr, '@');
    resolve_result_t res;

    if (depth > st->p.recursion_limit) {
        leaf_fail(x, addr, LOCAL_BOUNCE, "5.4.6", "mail forwarding loop (alias nesting too deep)");
    } else if (at == NULL || at == addr) {
        leaf_fail(x, addr_in, LOCAL_BOUNCE, "5.1.3", "bad recipient address syntax");
    } else if (local_delivered_has(x->msg, addr)) {
        leaf_fail(x, addr, LOCAL_BOUNCE, "5.4.6", "mail forwarding loop");
    } else if (x->leaves >= (size_t)st->p.expansion_limit) {
        if (!local_exp_seen(x, 'L', "limit"))
            leaf_fail(x, addr, LOCAL_BOUNCE, "5.3.0", "alias expansion limit exceeded");
    } else if (resolve_addr(st->resolve, addr, &res) < 0 && res.cls == RESOLVE_REMOTE) {
        /* A failed mydestination/virtual domain match: the class is unknown. */
        local_result_t r;

        local_result_init(&r);
        local_result_set(&r, LOCAL_DEFER, "4.3.0", "address resolution: %s",
                         res.why ? res.why : "lookup error");
        local_exp_leaf(x, addr, "local", &r, local_now());
        local_result_free(&r);
    } else if (res.cls == RESOLVE_REMOTE) {
        if (depth == 0) {
            leaf_fail(x, addr, LOCAL_DEFER, "4.3.5",
                      "recipient domain is not local (mail system configuration error)");
        } else if (!local_exp_dup(x, 'R', addr)) {
            x->remote = xreallocarray(x->remote, x->n_remote + 1, sizeof(char *));
            x->remote[x->n_remote++] = xstrdup(addr);
            x->leaves++;
        }
    } else if (try_virtual_alias(x, addr, depth + 1)) {
        /* done: virtual aliases apply to local and virtual domains alike */
    } else if (res.cls == RESOLVE_VIRTUAL) {
        local_virtual_mailbox(x, addr);
    } else {
        char *local = xstrndup(addr, (size_t)(at - addr));

        local_class_local(x, addr, local, depth);
        free(local);
    }
    free(addr);
}

/* local_rcpt_deliver - one recipient of qmgr's request, all its leaves */
void local_rcpt_deliver(local_state_t *st, local_msg_t *msg, const char *addr,
                        local_result_t *res)
{
    local_exp_t x;

    memset(&x, 0, sizeof(x));
    x.st = st;
    x.msg = msg;
    x.orig = addr;
    local_result_init(&x.worst);
    local_exp_address(&x, addr, 0);
    if (x.n_remote > 0)
        local_resubmit(&x);
    if (x.n_ok + x.n_defer + x.n_bounce == 0 && x.n_dup > 0) {
        /* Every target already has this message through another recipient. */
        local_result_set(&x.worst, LOCAL_OK, "2.0.0", "delivered (duplicate of another recipient)");
    } else if (x.n_ok + x.n_defer + x.n_bounce == 0) {
        /* Every member was met before: the aliases form a cycle. */
        leaf_fail(&x, addr, LOCAL_BOUNCE, "5.4.6", "mail forwarding loop (alias cycle)");
    }
    if (x.n_defer == 0 && x.n_bounce == 0 && x.n_ok > 1)
        local_result_set(res, LOCAL_OK, "2.0.0", "delivered to %zu recipients", x.n_ok);
    else
        local_result_set(res, x.worst.status, x.worst.dsn, "%s", buf_cstr(&x.worst.text));
    for (size_t i = 0; i < x.n_seen; i++)
        free(x.seen[i]);
    free(x.seen);
    for (size_t i = 0; i < x.n_remote; i++)
        free(x.remote[i]);
    free(x.remote);
    local_result_free(&x.worst);
}

/* member_next - the next member of an alias value or .forward file:
 * comma or newline separated, "quoted" members keep their commas,
 * '#' starts a comment line; returns a new string or NULL at the end */
static char *member_next(const char **pp)
{
    const char *p = *pp;
    buf_t m;
    bool quoted = false;

    for (;;) {
        while (*p == ',' || *p == '\n' || *p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p != '#')
            break;
        while (*p && *p != '\n')
            p++;
    }
    if (*p == 0) {
        *pp = p;
        return NULL;
    }
    buf_init(&m, BUF_NOLIMIT);
    for (; *p; p++) {
        if (*p == '"') {
            quoted = !quoted;
            continue;
        }
        if (!quoted && (*p == ',' || *p == '\n'))
            break;
        buf_putc(&m, (unsigned char)*p);
    }
    *pp = p;
    if (m.data == NULL)
        return xstrdup("");
    str_trim(m.data);
    return buf_steal(&m);
}

/* allowed - may this origin send mail to commands (or files)? */
static bool allowed(const local_state_t *st, const char *origin, bool command)
{
    if (strcmp(origin, "alias") == 0)
        return command ? st->p.cmd_alias : st->p.file_alias;
    if (strcmp(origin, "forward") == 0)
        return command ? st->p.cmd_forward : st->p.file_forward;
    return false;
}

/* local_exp_list - deliver to every member of an alias or .forward */
void local_exp_list(local_exp_t *x, const char *list, const char *origin,
                    const local_user_t *owner, const char *addr, int depth)
{
    const char *p = list;
    char *m;

    while ((m = member_next(&p)) != NULL) {
        if (*m == 0) {
            /* an empty quoted member: nothing */
        } else if (x->leaves >= (size_t)x->st->p.expansion_limit) {
            if (!local_exp_seen(x, 'L', "limit"))
                leaf_fail(x, addr, LOCAL_BOUNCE, "5.3.0", "alias expansion limit exceeded");
        } else if (m[0] == '|') {
            if (!allowed(x->st, origin, true))
                leaf_fail(x, addr, LOCAL_BOUNCE, "5.7.1", "mail to command is restricted");
            else if (!local_exp_dup(x, 'C', m + 1))
                local_command_target(x, m + 1, owner, addr);
        } else if (m[0] == '/') {
            if (!allowed(x->st, origin, false))
                leaf_fail(x, addr, LOCAL_BOUNCE, "5.7.1", "mail to file is restricted");
            else if (!local_exp_dup(x, 'P', m))
                local_file_target(x, m, owner, addr);
        } else if (strncasecmp(m, ":include:", 9) == 0) {
            leaf_fail(x, addr, LOCAL_DEFER, "4.3.5",
                      ":include: lists are not supported (mail system configuration error)");
        } else if (m[0] == '\\') {
            /* "\user": that user's mailbox, no alias or .forward */
            local_user_t u;
            const char *why;
            char *name = str_lower(xstrdup(m + 1));
            char *full = canon_addr(x->st, name);
            int ret = local_user_lookup(name, &u, &why);

            if (ret > 0)
                local_maildir_user(x, full, &u);
            else
                leaf_fail(x, full, ret < 0 ? LOCAL_DEFER : LOCAL_BOUNCE, ret < 0 ? "4.3.0" : "5.1.1",
                          ret < 0 ? "user lookup error" : "unknown user");
            if (ret > 0)
                local_user_free(&u);
            free(name);
            free(full);
        } else {
            local_exp_address(x, m, depth + 1);
        }
        free(m);
    }
}
