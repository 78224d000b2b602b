/* master_cf - parse the service table (master.cf) */
#include "config/master_cf.h"
#include "config/conf.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MASTER_CF_FILE_MAX  (1024 * 1024)
#define MASTER_CF_LINE_MAX  (64 * 1024)
#define MASTER_CF_ARGS_MAX  256
#define MASTER_CF_ENTRIES_MAX 1000
#define MASTER_CF_WAKEUP_MAX (7 * 86400)
#define MASTER_CF_MAXPROC_MAX 100000

/* Parsing state: the entries so far and the error count. */
typedef struct master_cf_parse {
    const char *path;
    buf_t *errors;
    int problems;
    master_cf_entry_t *entries;
    size_t n;
} master_cf_parse_t;

/* master_cf_err - one "PATH:LINE: text" problem */
static void master_cf_err(master_cf_parse_t *mp, int line, const char *fmt, ...)
    STORK_PRINTF(3, 4);
static void master_cf_err(master_cf_parse_t *mp, int line, const char *fmt, ...)
{
    va_list ap;

    mp->problems++;
    if (mp->errors == NULL)
        return;
    if (line > 0)
        buf_printf(mp->errors, "%s:%d: ", mp->path, line);
    else
        buf_printf(mp->errors, "%s: ", mp->path);
    va_start(ap, fmt);
    buf_vprintf(mp->errors, fmt, ap);
    va_end(ap);
    buf_putc(mp->errors, '\n');
}

/* master_cf_bool - y/n/- column; -1 on junk */
static int master_cf_bool(const char *s, bool def)
{
    if (strcmp(s, "-") == 0)
        return def;
    if (strcmp(s, "y") == 0)
        return 1;
    if (strcmp(s, "n") == 0)
        return 0;
    return -1;
}

/* master_cf_number - a decimal column within 0..max, '-' = def; -1 on junk */
static int master_cf_number(const char *s, int def, int max, bool allow_q, int *out)
{
    char *end;
    long v;

    if (strcmp(s, "-") == 0) {
        *out = def;
        return 0;
    }
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (allow_q && *end == '?')             /* Postfix's "wake only when used" */
        end++;
    if (errno || *end || v < 0 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* master_cf_port - a port name or number as a decimal string, or NULL */
static char *master_cf_port(const char *port)
{
    static const struct { const char *name; int port; } known[] = {
        { "smtp", 25 }, { "submission", 587 }, { "submissions", 465 },
        { "smtps", 465 }, { "lmtp", 24 },
    };
    char *end;
    long v;

    if (*port == 0)
        return NULL;
    if (isdigit((unsigned char)*port)) {
        errno = 0;
        v = strtol(port, &end, 10);
        if (errno || *end || v < 1 || v > 65535)
            return NULL;
        return xasprintf("%ld", v);
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(port, known[i].name) == 0)
            return xasprintf("%d", known[i].port);
    struct servent *se = getservbyname(port, "tcp");
    return se ? xasprintf("%d", ntohs((uint16_t)se->s_port)) : NULL;
}

int master_cf_inet_split(const char *service, char **host_r, char **port_r,
                         const char **why_r)
{
    const char *colon, *port;
    char *host = NULL;

    *host_r = *port_r = NULL;
    if (service[0] == '[') {
        const char *rb = strchr(service, ']');

        if (rb == NULL || rb[1] != ':' || rb == service + 1) {
            *why_r = "bad [host]:port syntax";
            return -1;
        }
        host = xstrndup(service + 1, (size_t)(rb - service - 1));
        port = rb + 2;
    } else if ((colon = strrchr(service, ':')) != NULL) {
        if (memchr(service, ':', (size_t)(colon - service))) {
            *why_r = "IPv6 address must be in brackets: [addr]:port";
            return -1;
        }
        host = xstrndup(service, (size_t)(colon - service));
        port = colon + 1;
    } else {
        port = service;
    }
    if (host && (*host == 0 || strcmp(host, "*") == 0))
        xfreep(&host);
    if ((*port_r = master_cf_port(port)) == NULL) {
        free(host);
        *why_r = "unknown or bad port";
        return -1;
    }
    *host_r = host;
    return 0;
}

/* master_cf_check_args - "-o name=value" pairs must name declared parameters */
static void master_cf_check_args(master_cf_parse_t *mp, int line, char **argv, size_t argc)
{
    for (size_t i = 1; i < argc; i++) {
        const char *nv, *eq;
        char *name;

        if (strcmp(argv[i], "-o") == 0) {
            if (i + 1 >= argc) {
                master_cf_err(mp, line, "-o without name=value");
                return;
            }
            nv = argv[++i];
        } else if (strncmp(argv[i], "-o", 2) == 0) {
            nv = argv[i] + 2;
        } else {
            continue;
        }
        if ((eq = strchr(nv, '=')) == NULL || eq == nv) {
            master_cf_err(mp, line, "-o %s: expected name=value", nv);
            continue;
        }
        name = xstrndup(nv, (size_t)(eq - nv));
        if (!conf_is_known(name))
            master_cf_err(mp, line, "-o %s: unknown parameter name: %s", nv, name);
        free(name);
    }
}

/* master_cf_check_service - the service column for its type */
static int master_cf_check_service(master_cf_parse_t *mp, int line, const master_cf_entry_t *e)
{
    const char *why;
    char *host, *port;

    if (e->type == MASTER_CF_INET) {
        if (master_cf_inet_split(e->service, &host, &port, &why) < 0) {
            master_cf_err(mp, line, "%s: %s", e->service, why);
            return -1;
        }
        free(host);
        free(port);
        return 0;
    }
    if (strchr(e->service, '/') || strcmp(e->service, ".") == 0
        || strcmp(e->service, "..") == 0 || strlen(e->service) > 100) {
        master_cf_err(mp, line, "%s: bad unix service name", e->service);
        return -1;
    }
    return 0;
}

/* master_cf_entry - one logical line into an entry; 0 or -1 */
static int master_cf_entry(master_cf_parse_t *mp, const char *text, int line)
{
    master_cf_entry_t e = { .line = line };
    char **f;
    size_t nf = str_split(text, " \t", &f);
    int priv, unpriv, chr, bad = 0;

    if (nf < 8) {
        master_cf_err(mp, line, "too few fields (service type private unpriv chroot "
                      "wakeup maxproc command)");
        str_argv_free(&f);
        return -1;
    }
    if (nf - 7 > MASTER_CF_ARGS_MAX) {
        master_cf_err(mp, line, "more than %d command arguments", MASTER_CF_ARGS_MAX);
        str_argv_free(&f);
        return -1;
    }
    if (strcmp(f[1], "inet") == 0) {
        e.type = MASTER_CF_INET;
    } else if (strcmp(f[1], "unix") == 0) {
        e.type = MASTER_CF_UNIX;
    } else {
        master_cf_err(mp, line, "%s: unsupported service type: %s (inet or unix)", f[0], f[1]);
        bad = 1;
    }
    priv = master_cf_bool(f[2], e.type == MASTER_CF_UNIX);
    unpriv = master_cf_bool(f[3], true);
    chr = master_cf_bool(f[4], false);
    if (priv < 0)
        master_cf_err(mp, line, "%s: bad private field: %s (y, n or -)", f[0], f[2]), bad = 1;
    else if (priv && e.type == MASTER_CF_INET)
        master_cf_err(mp, line, "%s: an inet service cannot be private", f[0]), bad = 1;
    if (unpriv < 0)
        master_cf_err(mp, line, "%s: bad unpriv field: %s (y, n or -)", f[0], f[3]), bad = 1;
    if (chr < 0)
        master_cf_err(mp, line, "%s: bad chroot field: %s (y, n or -)", f[0], f[4]), bad = 1;
    if (master_cf_number(f[5], 0, MASTER_CF_WAKEUP_MAX, true, &e.wakeup) < 0)
        master_cf_err(mp, line, "%s: bad wakeup field: %s", f[0], f[5]), bad = 1;
    if (master_cf_number(f[6], -1, MASTER_CF_MAXPROC_MAX, false, &e.maxproc) < 0)
        master_cf_err(mp, line, "%s: bad maxproc field: %s", f[0], f[6]), bad = 1;
    e.private_ = priv > 0;
    e.unpriv = unpriv != 0;
    e.chroot = chr > 0;
    e.service = xstrdup(f[0]);
    e.argc = nf - 7;
    e.argv = xmallocarray(e.argc + 1, sizeof(char *));
    for (size_t i = 0; i < e.argc; i++)
        e.argv[i] = xstrdup(f[7 + i]);
    e.argv[e.argc] = NULL;
    str_argv_free(&f);
    int before = mp->problems;
    if (!bad)
        (void)master_cf_check_service(mp, line, &e);
    master_cf_check_args(mp, line, e.argv, e.argc);
    bad |= mp->problems != before;
    for (size_t i = 0; !bad && i < mp->n; i++) {
        if (mp->entries[i].type == e.type && strcmp(mp->entries[i].service, e.service) == 0) {
            master_cf_err(mp, line, "duplicate service %s/%s (first at line %d)", e.service,
                          e.type == MASTER_CF_INET ? "inet" : "unix", mp->entries[i].line);
            bad = 1;
        }
    }
    if (!bad && mp->n >= MASTER_CF_ENTRIES_MAX) {
        master_cf_err(mp, line, "more than %d services", MASTER_CF_ENTRIES_MAX);
        bad = 1;
    }
    if (bad) {
        master_cf_entry_t *one = xmalloc(sizeof(*one));
        *one = e;
        master_cf_free(&one, 1);
        return -1;
    }
    mp->entries = xreallocarray(mp->entries, mp->n + 1, sizeof(*mp->entries));
    mp->entries[mp->n++] = e;
    return 0;
}

/* master_cf_parse_text - logical lines of the whole file */
static void master_cf_parse_text(master_cf_parse_t *mp, const char *text, size_t len)
{
    buf_t logical;
    int line = 0, start_line = 0;
    const char *cp = text, *end = text + len;

    buf_init(&logical, MASTER_CF_LINE_MAX);
    while (cp < end) {
        const char *nl = memchr(cp, '\n', (size_t)(end - cp));
        size_t n = nl ? (size_t)(nl - cp) : (size_t)(end - cp), skip = 0;
        const char *p = cp;

        line++;
        cp += n + (nl ? 1 : 0);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        while (skip < n && (p[skip] == ' ' || p[skip] == '\t'))
            skip++;
        if (skip == n || p[skip] == '#')
            continue;
        if (memchr(p, 0, n)) {
            master_cf_err(mp, line, "NUL byte in line");
            continue;
        }
        if (skip > 0) {
            if (start_line == 0)
                master_cf_err(mp, line, "continuation line without a service before it");
            else if (buf_putc(&logical, ' ') < 0 || buf_append(&logical, p + skip, n - skip) < 0)
                master_cf_err(mp, start_line, "entry longer than %d bytes", MASTER_CF_LINE_MAX);
            continue;
        }
        if (start_line)
            (void)master_cf_entry(mp, buf_cstr(&logical), start_line);
        buf_reset(&logical);
        start_line = line;
        if (buf_append(&logical, p, n) < 0)
            master_cf_err(mp, line, "entry longer than %d bytes", MASTER_CF_LINE_MAX);
    }
    if (start_line)
        (void)master_cf_entry(mp, buf_cstr(&logical), start_line);
    buf_free(&logical);
}

int master_cf_load(const char *path, master_cf_entry_t **entries_r, size_t *n_r,
                   buf_t *errors)
{
    master_cf_parse_t mp = { .path = path, .errors = errors };
    buf_t text;
    char chunk[8192];
    ssize_t got;
    int fd;

    *entries_r = NULL;
    *n_r = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        master_cf_err(&mp, 0, "cannot open: %s", strerror(errno));
        return mp.problems;
    }
    buf_init(&text, MASTER_CF_FILE_MAX);
    while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || buf_append(&text, chunk, (size_t)got) < 0) {
            master_cf_err(&mp, 0, "%s", got < 0 ? "read error" : "file larger than 1 MiB");
            break;
        }
    }
    close(fd);
    if (mp.problems == 0)
        master_cf_parse_text(&mp, buf_cstr(&text), text.len);
    buf_free(&text);
    if (mp.problems) {
        master_cf_free(&mp.entries, mp.n);
        return mp.problems;
    }
    *entries_r = mp.entries;
    *n_r = mp.n;
    return 0;
}

void master_cf_free(master_cf_entry_t **entries, size_t n)
{
    master_cf_entry_t *e = *entries;

    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].service);
        for (size_t j = 0; j < e[i].argc; j++)
            free(e[i].argv[j]);
        free(e[i].argv);
    }
    xfreep(entries);
}
