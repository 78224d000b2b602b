/* maildir_name - unique Maildir file names */
#include "maildir/maildir_name.h"
#include "util/str.h"
#include "util/proc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * The counter is per process. A child forked from a process that already
 * made names has a different pid, so copies of the counter cannot collide.
 */
static unsigned long maildir_seq;

/* maildir_name_escape_host - '/' → \057, ':' → \072 (Courier, Dovecot) */
void maildir_name_escape_host(buf_t *out, const char *host)
{
    for (const char *p = host; *p; p++) {
        if (*p == '/')
            buf_puts(out, "\\057");
        else if (*p == ':')
            buf_puts(out, "\\072");
        else
            buf_putc(out, (unsigned char)*p);
    }
}

/* maildir_name_new - append "SECONDS.M<usec>P<pid>Q<seq>.HOST"; the host
 * name is read once per process (a delivery made two uname calls) */
void maildir_name_new(buf_t *out)
{
    static char host[256];
    struct timeval tv;

    gettimeofday(&tv, NULL);
    if (host[0] == 0) {
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == 0)
            safe_cpy(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
    }
    buf_printf(out, "%lld.M%ldP%ldQ%lu.", (long long)tv.tv_sec, (long)tv.tv_usec,
               (long)proc_pid(), ++maildir_seq);
    maildir_name_escape_host(out, host);
}

/* maildir_name_sizes - append ",S=size,W=vsize" */
void maildir_name_sizes(buf_t *out, uint64_t size, uint64_t vsize)
{
    buf_printf(out, ",S=%llu,W=%llu", (unsigned long long)size, (unsigned long long)vsize);
}

/* maildir_name_size - the S= field of a name, before any ":2," info part */
int maildir_name_size(const char *name, uint64_t *size_r)
{
    const char *end = strchr(name, ':');
    size_t len = end ? (size_t)(end - name) : strlen(name);
    const char *p = name;

    /* Fields after the base name are ",KEY=VALUE"; find ",S=". */
    while ((p = memchr(p, ',', len - (size_t)(p - name))) != NULL) {
        p++;
        if ((size_t)(p - name) + 2 <= len && p[0] == 'S' && p[1] == '=') {
            const char *d = p + 2;
            uint64_t v = 0;
            int digits = 0;

            while ((size_t)(d - name) < len && *d >= '0' && *d <= '9') {
                if (v > (UINT64_MAX - 9) / 10)
                    return -1;
                v = v * 10 + (uint64_t)(*d - '0');
                d++;
                digits++;
            }
            if (digits == 0 || ((size_t)(d - name) < len && *d != ','))
                return -1;
            *size_r = v;
            return 0;
        }
    }
    return -1;
}
