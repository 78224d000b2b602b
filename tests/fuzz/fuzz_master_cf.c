/*
 * fuzz_master_cf - libFuzzer target for lib/config/master_cf.c
 *
 * Input: master.cf text, written to a file of a private temporary
 * directory and loaded with master_cf_load(). The first line also goes
 * through master_cf_inet_split(). Properties: entries come back only
 * when there are no problems, one error line per problem, every entry's
 * fields are within the documented ranges, argv is NULL-terminated with
 * argc items, and no two entries share service name and type.
 */
#include "fuzz.h"
#include "config/master_cf.h"

#include <fcntl.h>
#include <unistd.h>

static char dir[64];
static char path[96];

/* cleanup - remove the temporary file and directory at exit */
static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

/* setup - the temporary directory, once */
static void setup(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof(dir), "/tmp/stork-fuzz-mcf.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/master.cf", dir);
    atexit(cleanup);
}

/* write_file - replace master.cf */
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

/* count_lines - lines of the error report */
static int count_lines(const buf_t *b)
{
    int n = 0;

    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    master_cf_entry_t *e = NULL;
    size_t n = 99;
    buf_t errors;
    int problems;

    setup();
    write_file(data, size);
    buf_init(&errors, BUF_NOLIMIT);
    problems = master_cf_load(path, &e, &n, &errors);
    fuzz_check(problems >= 0);
    if (problems) {
        fuzz_check(e == NULL && n == 0);
        /* NUL and newline never reach a message, so one line per problem. */
        fuzz_check(count_lines(&errors) == problems);
    } else {
        fuzz_check(errors.len == 0);
        fuzz_check(n == 0 || e != NULL);
    }
    for (size_t i = 0; i < n; i++) {
        fuzz_check(e[i].service && e[i].service[0]);
        fuzz_check(e[i].type == MASTER_CF_INET || e[i].type == MASTER_CF_UNIX);
        fuzz_check(!(e[i].type == MASTER_CF_INET && e[i].private_));
        fuzz_check(e[i].wakeup >= 0 && e[i].wakeup <= 7 * 86400);
        fuzz_check(e[i].maxproc >= -1 && e[i].maxproc <= 100000);
        fuzz_check(e[i].argc >= 1 && e[i].argv[e[i].argc] == NULL);
        for (size_t j = 0; j < e[i].argc; j++)
            fuzz_check(e[i].argv[j] != NULL && e[i].argv[j][0] != 0);
        fuzz_check(e[i].line >= 1);
        for (size_t j = 0; j < i; j++)
            fuzz_check(e[j].type != e[i].type || strcmp(e[j].service, e[i].service) != 0);
        if (e[i].type == MASTER_CF_INET) {
            char *host, *port;
            const char *why;
            fuzz_check(master_cf_inet_split(e[i].service, &host, &port, &why) == 0);
            fuzz_check(port != NULL && atoi(port) >= 1 && atoi(port) <= 65535);
            free(host);
            free(port);
        }
    }
    master_cf_free(&e, n);
    fuzz_check(e == NULL);
    buf_free(&errors);

    /* The first line as an inet service column. */
    {
        const uint8_t *nl = memchr(data, '\n', size);
        char *svc = fuzz_strdup(data, nl ? (size_t)(nl - data) : size);
        char *host = NULL, *port = NULL;
        const char *why = NULL;

        if (master_cf_inet_split(svc, &host, &port, &why) == 0) {
            char *end;
            long v = strtol(port, &end, 10);
            fuzz_check(*end == 0 && v >= 1 && v <= 65535);
            fuzz_check(host == NULL || host[0] != 0);
        } else {
            fuzz_check(why != NULL && host == NULL && port == NULL);
        }
        free(host);
        free(port);
        free(svc);
    }
    return 0;
}
