/*
 * fuzz_conf - libFuzzer target for lib/config/conf.c (main.cf)
 *
 * Input: main.cf text; an optional line "%%" ends it, and each line after
 * it is a conf_override() argument ("name=value"). The text is written to
 * DIR/main.cf of a private temporary directory and opened with
 * conf_open(). Then conf_validate, and every declared parameter is read
 * back through conf_foreach (which expands $name references), conf_str,
 * conf_list, and conf_int/conf_bool for the numeric and boolean types.
 * Properties: a failed open names the file; expanded values are C
 * strings at most 64 KiB long; lists hold no empty or separator-bearing
 * items; validation counts one problem per reported line.
 */
#include "fuzz.h"
#include "config/conf.h"

#include <fcntl.h>
#include <unistd.h>

#define FUZZ_CONF_MAX_OVERRIDES 8

static char dir[64];
static char path[96];

/* setup - the temporary config directory, once (removed at exit) */
static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof(dir), "/tmp/stork-fuzz-conf.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    atexit(cleanup);
}

/* write_file - replace main.cf */
static void write_file(const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        abort();
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k <= 0)
            abort();
        p += k;
        n -= (size_t)k;
    }
    close(fd);
}

typedef struct names {
    const char *v[1024];
    size_t n;
} names_t;

/* collect - conf_foreach callback: remember names, check values */
static void collect(const char *name, const char *value, void *ctx)
{
    names_t *nm = ctx;

    fuzz_check(value != NULL && strlen(value) <= 64 * 1024);
    if (nm && nm->n < sizeof(nm->v) / sizeof(nm->v[0]))
        nm->v[nm->n++] = name;
}

/* count_lines - lines in the validation report */
static int count_lines(const buf_t *b)
{
    int n = 0;

    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = NULL;
    size_t cf_len = size;
    conf_t *conf;
    const char *why = NULL;
    buf_t errors;
    names_t names = { .n = 0 };
    int problems;

    setup();
    /* "%%" on a line of its own splits main.cf from the overrides. */
    for (size_t i = 0; i + 2 <= size; i++) {
        if ((i == 0 || data[i - 1] == '\n') && data[i] == '%' && data[i + 1] == '%'
            && (i + 2 == size || data[i + 2] == '\n')) {
            sep = data + i;
            cf_len = i;
            break;
        }
    }
    write_file(data, cf_len);
    conf = conf_open(dir, &why);
    if (conf == NULL) {
        fuzz_check(why != NULL && strncmp(why, path, strlen(path)) == 0);
        return 0;
    }
    fuzz_check(strcmp(conf_config_dir(conf), dir) == 0);
    if (sep) {
        const uint8_t *p = sep + 2, *end = data + size;
        int n = 0;

        while (p < end && n++ < FUZZ_CONF_MAX_OVERRIDES) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *ov = fuzz_strdup(p, k);

            if (conf_override(conf, ov, &why) < 0)
                fuzz_check(why != NULL);
            free(ov);
            p += k + (nl != NULL);
        }
    }
    buf_init(&errors, BUF_NOLIMIT);
    problems = conf_validate(conf, &errors);
    fuzz_check(problems >= 0);
    /* A value may hold no newline (lines are joined), so one line each. */
    fuzz_check(problems == count_lines(&errors));
    buf_free(&errors);

    conf_foreach(conf, 0, collect, &names);
    conf_foreach(conf, CONF_FOREACH_NONDEFAULT, collect, NULL);
    for (size_t i = 0; i < names.n; i++) {
        const conf_param_t *p = conf_param_lookup(names.v[i]);
        const char *s = conf_str(conf, names.v[i]);

        fuzz_check(p != NULL && s != NULL);
        switch (p->type) {
        case CONF_INT:
        case CONF_SIZE:
        case CONF_TIME:
            (void)conf_int(conf, names.v[i]);
            break;
        case CONF_BOOL:
            (void)conf_bool(conf, names.v[i]);
            break;
        case CONF_LIST: {
            char **l = conf_list(conf, names.v[i]);
            fuzz_check(l != NULL);
            for (; *l; l++)
                fuzz_check(**l && strpbrk(*l, ", \t\r\n") == NULL);
            break;
        }
        default:
            break;
        }
    }
    conf_free(&conf);
    fuzz_check(conf == NULL);
    return 0;
}
