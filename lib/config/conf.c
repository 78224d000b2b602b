/* conf - main.cf parser, parameter registry, $name expansion, typed values */
#include "config/conf.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONF_FILE_MAX       (1024 * 1024)   /* main.cf size */
#define CONF_LINE_MAX       (64 * 1024)     /* one logical line */
#define CONF_EXPAND_DEPTH   32
#define CONF_EXPAND_MAX     (64 * 1024)
#define CONF_HOST_WAIT_MS   1500            /* canonical hostname lookup */

/* The registry: every PARAM() of params.def, sorted by name on first use. */
static const conf_param_t conf_decl[] = {
#define PARAM(n, t, d, mn, mx) { n, t, d, mn, mx },
#include "config/params.def"
#undef PARAM
};
#define CONF_NPARAMS (sizeof(conf_decl) / sizeof(conf_decl[0]))

static conf_param_t conf_table[CONF_NPARAMS];
static int conf_table_ready;

/* One declared parameter's state in one conf_t. */
typedef struct conf_slot {
    char *raw;              /* value from main.cf or an override; NULL = default */
    int line;               /* main.cf line; 0 = override */
    char *cache;            /* expanded value, once computed */
    const char *expand_err; /* static text when expansion failed */
    char **list;            /* conf_list split of cache */
} conf_slot_t;

/* A name that is not declared: kept for conf_validate. */
typedef struct conf_unknown {
    char *name;
    int line;               /* 0 = override */
} conf_unknown_t;

struct conf {
    char *dir;
    char *path;             /* DIR/main.cf */
    conf_slot_t slots[CONF_NPARAMS];
    conf_unknown_t *unknown;
    size_t n_unknown;
    char **grave;           /* invalidated values still owned by callers */
    size_t n_grave;
    size_t cap_grave;
};

static char conf_why[1024];

/* conf_param_cmp - qsort/bsearch by name */
static int conf_param_cmp(const void *a, const void *b)
{
    return strcmp(((const conf_param_t *)a)->name, ((const conf_param_t *)b)->name);
}

/* conf_table_init - sort the registry once; a duplicate is a build bug */
static void conf_table_init(void)
{
    if (conf_table_ready)
        return;
    memcpy(conf_table, conf_decl, sizeof(conf_decl));
    qsort(conf_table, CONF_NPARAMS, sizeof(conf_table[0]), conf_param_cmp);
    for (size_t i = 1; i < CONF_NPARAMS; i++)
        if (strcmp(conf_table[i - 1].name, conf_table[i].name) == 0)
            msg_panic("parameter declared twice in params_*.def: %s", conf_table[i].name);
    conf_table_ready = 1;
}

/* conf_index - registry index of name, or -1 */
static long conf_index(const char *name)
{
    conf_param_t key = { .name = name };
    const conf_param_t *p;

    conf_table_init();
    p = bsearch(&key, conf_table, CONF_NPARAMS, sizeof(conf_table[0]), conf_param_cmp);
    return p ? (long)(p - conf_table) : -1;
}

const conf_param_t *conf_param_lookup(const char *name)
{
    long i = conf_index(name);

    return i < 0 ? NULL : &conf_table[i];
}

bool conf_is_known(const char *name)
{
    return conf_index(name) >= 0;
}

const char *conf_config_dir(const conf_t *conf)
{
    return conf->dir;
}

/* conf_hostname - gethostname(), fully qualified when a quick lookup allows */
static const char *conf_hostname(void)
{
    static char *host;
    char name[256];
    struct gaicb *areq, *reqs[1];
    struct addrinfo hints;
    struct timespec wait = { CONF_HOST_WAIT_MS / 1000, (CONF_HOST_WAIT_MS % 1000) * 1000000L };

    if (host)
        return host;
    if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == 0)
        snprintf(name, sizeof(name), "localhost");
    name[sizeof(name) - 1] = 0;
    host = xstrdup(name);
    if (strchr(name, '.'))
        return host;

    /*
     * The resolver may hang for a long time on a badly configured machine;
     * ask asynchronously and give up after a short wait. A request that did
     * not finish is left to the resolver thread (and leaked on purpose:
     * req and its name must stay valid while it runs).
     */
    areq = xcalloc(1, sizeof(*areq));
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_CANONNAME;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    areq->ar_name = xstrdup(name);
    areq->ar_request = xmemdup(&hints, sizeof(hints));
    reqs[0] = areq;
    if (getaddrinfo_a(GAI_NOWAIT, reqs, 1, NULL) != 0) {
        free((void *)areq->ar_name);
        free((void *)areq->ar_request);
        free(areq);
        return host;
    }
    (void)gai_suspend((const struct gaicb *const *)reqs, 1, &wait);
    if (gai_error(areq) == 0) {
        struct addrinfo *res = areq->ar_result;

        if (res && res->ai_canonname && strchr(res->ai_canonname, '.')) {
            free(host);
            host = xstrdup(res->ai_canonname);
            str_lower(host);
        }
        freeaddrinfo(res);
        free((void *)areq->ar_name);
        free((void *)areq->ar_request);
        free(areq);
    } else if (gai_error(areq) != EAI_INPROGRESS) {
        free((void *)areq->ar_name);
        free((void *)areq->ar_request);
        free(areq);
    } else {
        (void)gai_cancel(areq);
    }
    return host;
}

/* conf_default - the compiled-in (or run-time computed) default, unexpanded */
static const char *conf_default(conf_t *conf, size_t idx)
{
    const char *name = conf_table[idx].name;

    if (strcmp(name, "config_directory") == 0)
        return conf->dir;
    if (strcmp(name, "myhostname") == 0)
        return conf_hostname();
    return conf_table[idx].defval;
}

static int conf_expand_text(conf_t *conf, const char *text, buf_t *out, int depth,
                            const char **why_r);

/* conf_expand_param - append the expanded value of parameter idx */
static int conf_expand_param(conf_t *conf, size_t idx, buf_t *out, int depth,
                             const char **why_r)
{
    conf_slot_t *slot = &conf->slots[idx];

    if (depth > CONF_EXPAND_DEPTH) {
        *why_r = "expansion too deep (reference loop?)";
        return -1;
    }
    /* A value already expanded at the top level is final. */
    if (slot->cache && slot->expand_err == NULL) {
        if (buf_puts(out, slot->cache) < 0) {
            *why_r = "expansion too long";
            return -1;
        }
        return 0;
    }
    if (slot->raw == NULL && strcmp(conf_table[idx].name, "mydomain") == 0) {
        buf_t host;
        const char *dot;
        int rc;
        long h = conf_index("myhostname");

        buf_init(&host, CONF_EXPAND_MAX);
        rc = h < 0 ? 0 : conf_expand_param(conf, (size_t)h, &host, depth + 1, why_r);
        dot = strchr(buf_cstr(&host), '.');
        if (rc == 0 && buf_puts(out, dot && dot[1] ? dot + 1 : "localdomain") < 0) {
            *why_r = "expansion too long";
            rc = -1;
        }
        buf_free(&host);
        return rc;
    }
    if (depth == 0)
        return conf_expand_text(conf, slot->raw ? slot->raw : conf_default(conf, idx),
                                out, depth + 1, why_r);

    /*
     * A nested reference: remember the result like conf_value does. A
     * value is the same at every depth, and without this "a = $b$b",
     * "b = $c$c", ... with short or empty values re-expands 2^depth times
     * (the length cap never triggers). conf_value stores depth 0 itself.
     */
    buf_t val;
    int rc;

    buf_init(&val, CONF_EXPAND_MAX);
    rc = conf_expand_text(conf, slot->raw ? slot->raw : conf_default(conf, idx),
                          &val, depth + 1, why_r);
    if (rc == 0 && buf_append(out, buf_cstr(&val), val.len) < 0) {
        *why_r = "expansion too long";
        rc = -1;
    }
    if (rc == 0 && slot->cache == NULL)
        slot->cache = buf_steal(&val);
    buf_free(&val);
    return rc;
}

/* conf_name_len - length of a parameter name at s */
static size_t conf_name_len(const char *s)
{
    size_t n = 0;

    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    return n;
}

/*
 * conf_expand_ref - expand one ${name}, ${name?text}, ${name:text}; cp
 * points after "${" or "$(", close is '}' or ')'; *end_r gets the first
 * byte after the reference. Returns 0, -1 on error, 1 when the name is
 * not declared (the caller copies the reference verbatim).
 */
static int conf_expand_ref(conf_t *conf, const char *cp, char close, buf_t *out,
                           int depth, const char **end_r, const char **why_r)
{
    size_t nlen = conf_name_len(cp), level = 0;
    const char *op = cp + nlen, *tp, *ep;
    char *name, *text = NULL;
    long idx;
    int rc = 0;

    if (nlen > 0 && *op == 0) {
        *why_r = "missing closing bracket in parameter reference";
        return -1;
    }
    if (nlen == 0 || (*op != close && *op != '?' && *op != ':')) {
        *why_r = "bad parameter reference syntax";
        return -1;
    }
    /* Find the matching close, allowing nested references in the text. */
    for (ep = op; *ep; ep++) {
        if (*ep == '{' || *ep == '(')
            level++;
        else if ((*ep == '}' || *ep == ')') && level > 0)
            level--;
        else if (*ep == close)
            break;
    }
    if (*ep != close) {
        *why_r = "missing closing bracket in parameter reference";
        return -1;
    }
    *end_r = ep + 1;
    name = xstrndup(cp, nlen);
    idx = conf_index(name);
    free(name);
    if (idx < 0)
        return 1;
    if (*op == close)
        return conf_expand_param(conf, (size_t)idx, out, depth, why_r);

    /* Conditional: expand the named value to test emptiness first. */
    buf_t val;
    buf_init(&val, CONF_EXPAND_MAX);
    rc = conf_expand_param(conf, (size_t)idx, &val, depth, why_r);
    if (rc == 0 && ((*op == '?') == (val.len > 0))) {
        tp = op + 1;
        text = xstrndup(tp, (size_t)(ep - tp));
        rc = conf_expand_text(conf, text, out, depth + 1, why_r);
        free(text);
    }
    buf_free(&val);
    return rc;
}

/* conf_expand_text - append text with $name references expanded */
static int conf_expand_text(conf_t *conf, const char *text, buf_t *out, int depth,
                            const char **why_r)
{
    const char *cp = text;

    if (depth > CONF_EXPAND_DEPTH) {
        *why_r = "expansion too deep (reference loop?)";
        return -1;
    }
    while (*cp) {
        const char *dollar = strchr(cp, '$'), *end;
        size_t n = dollar ? (size_t)(dollar - cp) : strlen(cp);
        int rc;

        if (buf_append(out, cp, n) < 0)
            goto too_long;
        if (dollar == NULL)
            break;
        cp = dollar + 1;
        if (*cp == '$') {
            if (buf_putc(out, '$') < 0)
                goto too_long;
            cp++;
            continue;
        }
        if (*cp == '{' || *cp == '(') {
            rc = conf_expand_ref(conf, cp + 1, *cp == '{' ? '}' : ')', out, depth, &end, why_r);
        } else {
            size_t nlen = conf_name_len(cp);
            char *name = xstrndup(cp, nlen);
            long idx = nlen ? conf_index(name) : -1;

            free(name);
            end = cp + nlen;
            rc = idx < 0 ? 1 : conf_expand_param(conf, (size_t)idx, out, depth, why_r);
        }
        if (rc < 0)
            return -1;
        /* Not a declared name: keep "$word" as written (for local's $home etc.). */
        if (rc == 1 && buf_append(out, dollar, (size_t)(end - dollar)) < 0)
            goto too_long;
        cp = end;
    }
    return 0;

too_long:
    *why_r = "expansion too long";
    return -1;
}

/* conf_value - the expanded value of parameter idx, cached */
static const char *conf_value(conf_t *conf, size_t idx)
{
    conf_slot_t *slot = &conf->slots[idx];
    buf_t out;
    const char *why = NULL;

    if (slot->cache)
        return slot->cache;
    buf_init(&out, CONF_EXPAND_MAX);
    if (conf_expand_param(conf, idx, &out, 0, &why) < 0)
        slot->expand_err = why;
    slot->cache = out.data ? buf_steal(&out) : xstrdup("");
    buf_free(&out);
    return slot->cache;
}

/* conf_bury - keep a string that callers may still hold until conf_free */
static void conf_bury(conf_t *conf, char *p)
{
    if (p == NULL)
        return;
    /* Grow by doubling: a long conf_list buries one string per item. */
    if (conf->n_grave == conf->cap_grave) {
        conf->cap_grave = conf->cap_grave ? conf->cap_grave * 2 : 64;
        conf->grave = xreallocarray(conf->grave, conf->cap_grave, sizeof(char *));
    }
    conf->grave[conf->n_grave++] = p;
}

/* conf_invalidate - forget every cached value (a value may reference any other) */
static void conf_invalidate(conf_t *conf)
{
    for (size_t i = 0; i < CONF_NPARAMS; i++) {
        conf_slot_t *slot = &conf->slots[i];

        conf_bury(conf, slot->cache);
        slot->cache = NULL;
        slot->expand_err = NULL;
        if (slot->list) {
            for (char **p = slot->list; *p; p++)
                conf_bury(conf, *p);
            conf_bury(conf, (char *)slot->list);
            slot->list = NULL;
        }
    }
}

/* conf_set - record name = value from main.cf (line > 0) or an override */
static void conf_set(conf_t *conf, const char *name, const char *value, int line)
{
    long idx = conf_index(name);

    if (idx < 0) {
        conf->unknown = xreallocarray(conf->unknown, conf->n_unknown + 1, sizeof(*conf->unknown));
        conf->unknown[conf->n_unknown].name = xstrdup(name);
        conf->unknown[conf->n_unknown].line = line;
        conf->n_unknown++;
        return;
    }
    free(conf->slots[idx].raw);
    conf->slots[idx].raw = xstrdup(value);
    conf->slots[idx].line = line;
}

/* conf_fail - format conf_why and return -1 */
static int conf_fail(const char **why_r, const char *fmt, ...) STORK_PRINTF(2, 3);
static int conf_fail(const char **why_r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(conf_why, sizeof(conf_why), fmt, ap);
    va_end(ap);
    if (why_r)
        *why_r = conf_why;
    return -1;
}

/* conf_parse_entry - "name = value" of one logical line */
static int conf_parse_entry(conf_t *conf, char *text, int line, const char **why_r)
{
    size_t nlen = conf_name_len(text);
    char *cp = text + nlen, *name;

    if (nlen == 0)
        return conf_fail(why_r, "%s:%d: bad parameter name syntax", conf->path, line);
    while (*cp == ' ' || *cp == '\t')
        cp++;
    if (*cp != '=') {
        return conf_fail(why_r, "%s:%d: missing '=' after parameter name \"%.*s\"",
                         conf->path, line, (int)nlen, text);
    }
    name = xstrndup(text, nlen);
    conf_set(conf, name, str_trim(cp + 1), line);
    free(name);
    return 0;
}

/* conf_parse - split main.cf text into logical lines (pure apart from conf) */
static int conf_parse(conf_t *conf, const char *text, size_t len, const char **why_r)
{
    buf_t logical;
    int line = 0, start_line = 0, rc = 0;
    const char *cp = text, *end = text + len;

    buf_init(&logical, CONF_LINE_MAX);
    while (rc == 0 && cp < end) {
        const char *nl = memchr(cp, '\n', (size_t)(end - cp));
        size_t n = nl ? (size_t)(nl - cp) : (size_t)(end - cp);
        const char *p = cp;

        line++;
        cp += n + (nl ? 1 : 0);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (memchr(p, 0, n)) {
            rc = conf_fail(why_r, "%s:%d: NUL byte in file", conf->path, line);
            break;
        }
        size_t skip = 0;
        while (skip < n && (p[skip] == ' ' || p[skip] == '\t'))
            skip++;
        if (skip == n || p[skip] == '#')
            continue;                           /* blank or comment */
        if (skip > 0) {
            if (start_line == 0) {
                rc = conf_fail(why_r, "%s:%d: continuation line without a parameter before it",
                               conf->path, line);
                break;
            }
            if (buf_putc(&logical, ' ') < 0 || buf_append(&logical, p + skip, n - skip) < 0)
                rc = conf_fail(why_r, "%s:%d: logical line longer than %d bytes",
                               conf->path, start_line, CONF_LINE_MAX);
            continue;
        }
        if (start_line && (rc = conf_parse_entry(conf, logical.data, start_line, why_r)) < 0)
            break;
        buf_reset(&logical);
        start_line = line;
        if (buf_append(&logical, p, n) < 0)
            rc = conf_fail(why_r, "%s:%d: logical line longer than %d bytes",
                           conf->path, line, CONF_LINE_MAX);
    }
    if (rc == 0 && start_line)
        rc = conf_parse_entry(conf, logical.data, start_line, why_r);
    buf_free(&logical);
    return rc;
}

/* conf_read_file - the whole file, capped; ENOENT gives an empty text */
static int conf_read_file(const char *path, buf_t *out, const char **why_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char chunk[8192];
    ssize_t n;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return conf_fail(why_r, "%s: cannot open: %s", path, strerror(errno));
    }
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return conf_fail(why_r, "%s: read error: %s", path, strerror(errno));
        }
        if (buf_append(out, chunk, (size_t)n) < 0) {
            close(fd);
            return conf_fail(why_r, "%s: file larger than %d bytes", path, CONF_FILE_MAX);
        }
    }
    close(fd);
    return 0;
}

conf_t *conf_open(const char *config_dir, const char **why_r)
{
    conf_t *conf;
    buf_t text;

    conf_table_init();
    conf = xcalloc(1, sizeof(*conf));
    conf->dir = xstrdup(config_dir);
    conf->path = xasprintf("%s/main.cf", config_dir);
    buf_init(&text, CONF_FILE_MAX);
    if (conf_read_file(conf->path, &text, why_r) < 0
        || conf_parse(conf, buf_cstr(&text), text.len, why_r) < 0) {
        buf_free(&text);
        conf_free(&conf);
        return NULL;
    }
    buf_free(&text);
    return conf;
}

void conf_free(conf_t **confp)
{
    conf_t *conf = *confp;

    if (conf == NULL)
        return;
    conf_invalidate(conf);
    for (size_t i = 0; i < CONF_NPARAMS; i++)
        free(conf->slots[i].raw);
    for (size_t i = 0; i < conf->n_unknown; i++)
        free(conf->unknown[i].name);
    free(conf->unknown);
    for (size_t i = 0; i < conf->n_grave; i++)
        free(conf->grave[i]);
    free(conf->grave);
    free(conf->dir);
    free(conf->path);
    free(conf);
    *confp = NULL;
}

int conf_override(conf_t *conf, const char *name_eq_value, const char **why_r)
{
    const char *eq = strchr(name_eq_value, '=');
    char *name, *value;
    size_t nlen;

    if (eq == NULL)
        return conf_fail(why_r, "override: missing '=' in \"%s\"", name_eq_value);
    name = xstrndup(name_eq_value, (size_t)(eq - name_eq_value));
    str_trim(name);
    nlen = conf_name_len(name);
    if (nlen == 0 || name[nlen] != 0) {
        conf_fail(why_r, "override: bad parameter name \"%s\"", name);
        free(name);
        return -1;
    }
    value = xstrdup(eq + 1);
    str_trim(value);
    conf_invalidate(conf);
    conf_set(conf, name, value, 0);
    if (!conf_is_known(name))
        conf_fail(why_r, "override: unknown parameter name: %s", name);
    free(value);
    if (!conf_is_known(name)) {
        free(name);
        return -1;
    }
    free(name);
    return 0;
}

/* conf_bool_parse - yes/no and friends; -1 on junk */
static int conf_bool_parse(const char *s)
{
    static const char *const yes[] = { "yes", "true", "1", "on" };
    static const char *const no[] = { "no", "false", "0", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* conf_convert - a value of a numeric or bool type; -1 with why on failure */
static int conf_convert(const conf_param_t *p, const char *s, int64_t *out, const char **why_r)
{
    static char why[256];
    char *end;
    uint64_t u;
    int b;

    switch (p->type) {
    case CONF_INT:
        errno = 0;
        *out = strtoll(s, &end, 10);
        if (errno || end == s || *end || isspace((unsigned char)*s)) {
            *why_r = "bad integer value";
            return -1;
        }
        break;
    case CONF_SIZE:
        if (str_to_size(s, &u) < 0 || u > INT64_MAX) {
            *why_r = "bad size value";
            return -1;
        }
        *out = (int64_t)u;
        break;
    case CONF_TIME:
        if (str_to_seconds(s, out) < 0) {
            *why_r = "bad time value";
            return -1;
        }
        break;
    case CONF_BOOL:
        if ((b = conf_bool_parse(s)) < 0) {
            *why_r = "bad boolean value";
            return -1;
        }
        *out = b;
        return 0;
    default:
        return 0;
    }
    if ((p->min != 0 || p->max != 0) && (*out < p->min || *out > p->max)) {
        snprintf(why, sizeof(why), "value out of range %lld..%lld",
                 (long long)p->min, (long long)p->max);
        *why_r = why;
        return -1;
    }
    return 0;
}

/* conf_origin - "DIR/main.cf:LINE", "override" or "default" */
static void conf_origin(conf_t *conf, const conf_slot_t *slot, buf_t *errors)
{
    if (slot->raw == NULL)
        buf_puts(errors, "default");
    else if (slot->line > 0)
        buf_printf(errors, "%s:%d", conf->path, slot->line);
    else
        buf_puts(errors, "override");
}

int conf_validate(conf_t *conf, buf_t *errors)
{
    int problems = 0;

    for (size_t i = 0; i < conf->n_unknown; i++) {
        if (conf->unknown[i].line > 0)
            buf_printf(errors, "%s:%d: unknown parameter name: %s\n", conf->path,
                       conf->unknown[i].line, conf->unknown[i].name);
        else
            buf_printf(errors, "override: unknown parameter name: %s\n", conf->unknown[i].name);
        problems++;
    }
    for (size_t i = 0; i < CONF_NPARAMS; i++) {
        const conf_param_t *p = &conf_table[i];
        const conf_slot_t *slot = &conf->slots[i];
        const char *value = conf_value(conf, i), *why = NULL;
        int64_t v;

        if (slot->expand_err) {
            why = slot->expand_err;
        } else if (conf_convert(p, value, &v, &why) == 0) {
            continue;
        }
        conf_origin(conf, slot, errors);
        buf_printf(errors, ": %s: %s \"%s\"\n", p->name, why,
                   slot->raw ? slot->raw : conf_default(conf, i));
        problems++;
    }
    return problems;
}

/* conf_need - registry index of name; asking for an undeclared one is a bug */
static size_t conf_need(const char *name)
{
    long idx = conf_index(name);

    if (idx < 0)
        msg_panic("conf: parameter not declared in params_*.def: %s", name);
    return (size_t)idx;
}

const char *conf_str(conf_t *conf, const char *name)
{
    return conf_value(conf, conf_need(name));
}

int64_t conf_int(conf_t *conf, const char *name)
{
    size_t idx = conf_need(name);
    const conf_param_t *p = &conf_table[idx];
    const char *why;
    int64_t v = 0;
    buf_t def;

    if (p->type != CONF_INT && p->type != CONF_SIZE && p->type != CONF_TIME && p->type != CONF_BOOL)
        msg_panic("conf_int: %s is not a number", name);
    if (conf_convert(p, conf_value(conf, idx), &v, &why) == 0)
        return v;
    /* Only reachable when conf_validate was skipped: use the default. */
    buf_init(&def, CONF_EXPAND_MAX);
    v = 0;
    if (conf_expand_text(conf, p->defval, &def, 1, &why) == 0)
        (void)conf_convert(p, buf_cstr(&def), &v, &why);
    buf_free(&def);
    return v;
}

bool conf_bool(conf_t *conf, const char *name)
{
    size_t idx = conf_need(name);

    if (conf_table[idx].type != CONF_BOOL)
        msg_panic("conf_bool: %s is not a boolean", name);
    return conf_int(conf, name) != 0;
}

char **conf_list(conf_t *conf, const char *name)
{
    size_t idx = conf_need(name);
    conf_slot_t *slot = &conf->slots[idx];

    if (slot->list == NULL)
        (void)str_split(conf_value(conf, idx), ", \t\r\n", &slot->list);
    return slot->list;
}

void conf_foreach(conf_t *conf, int flags,
                  void (*fn)(const char *name, const char *value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < CONF_NPARAMS; i++) {
        if ((flags & CONF_FOREACH_NONDEFAULT) && conf->slots[i].raw == NULL)
            continue;
        if (flags & CONF_FOREACH_DEFAULTS) {
            if (strcmp(conf_table[i].name, "mydomain") == 0) {
                const char *host = conf_hostname(), *dot = strchr(host, '.');

                fn(conf_table[i].name, dot && dot[1] ? dot + 1 : "localdomain", ctx);
            } else {
                fn(conf_table[i].name, conf_default(conf, i), ctx);
            }
        } else {
            fn(conf_table[i].name, conf_value(conf, i), ctx);
        }
    }
}
