/* master_listen - open and close a service's listening sockets */
#include "master.h"
#include "util/msg.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MASTER_BACKLOG 128

static char master_listen_why[512];

/* master_listen_fail - format the reason, close what was opened, -1 */
static int master_listen_fail(master_t *m, master_serv_t *s, const char **why_r,
                              const char *what, const char *detail)
{
    snprintf(master_listen_why, sizeof(master_listen_why), "%s/%s: %s: %s",
             s->name, master_serv_type(s), what, detail);
    *why_r = master_listen_why;
    master_listen_close(m, s);
    return -1;
}

/* master_listen_addr - one bound, listening, non-blocking inet socket */
static int master_listen_addr(const struct addrinfo *ai, bool dual_stack, const char **why_r)
{
    int fd, on = 1, v6only = dual_stack ? 0 : 1;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *why_r = strerror(errno);
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MASTER_BACKLOG) < 0) {
        *why_r = strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* master_listen_host - sockets for every address of host (NULL = wildcard) */
static int master_listen_host(master_t *m, master_serv_t *s, const char *host,
                              const char *port, const char **why_r)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    const char *why = NULL;
    int err, fd;

    if (host == NULL) {
        /* One dual-stack socket serves IPv4 and IPv6; else IPv4 alone. */
        hints.ai_family = AF_INET6;
        if (getaddrinfo(NULL, port, &hints, &res) == 0) {
            fd = master_listen_addr(res, true, &why);
            freeaddrinfo(res);
            if (fd >= 0) {
                s->listen_fds[s->n_listen++] = fd;
                return 0;
            }
        }
        hints.ai_family = AF_INET;
    }
    if ((err = getaddrinfo(host, port, &hints, &res)) != 0)
        return master_listen_fail(m, s, why_r, host ? host : "*", gai_strerror(err));
    for (ai = res; ai; ai = ai->ai_next) {
        if (s->n_listen >= MASTER_LISTEN_MAX) {
            freeaddrinfo(res);
            return master_listen_fail(m, s, why_r, host ? host : "*", "too many addresses");
        }
        if ((fd = master_listen_addr(ai, false, &why)) < 0) {
            char addr[NI_MAXHOST] = "?";
            char *what;

            (void)getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
                              NI_NUMERICHOST);
            what = xasprintf("bind %s port %s", addr, port);
            freeaddrinfo(res);
            master_listen_fail(m, s, why_r, what, why);
            free(what);
            return -1;
        }
        s->listen_fds[s->n_listen++] = fd;
    }
    freeaddrinfo(res);
    return 0;
}

/*
 * master_listen_inet - "[host:]port"; without a host, every address in
 * inet_interfaces ("all" = wildcard, "loopback-only" = 127.0.0.1 and ::1).
 */
static int master_listen_inet(master_t *m, master_serv_t *s, const char **why_r)
{
    char *host, *port;
    const char *why;
    int rc = 0;

    if (master_cf_inet_split(s->name, &host, &port, &why) < 0)
        return master_listen_fail(m, s, why_r, "bad service address", why);
    if (host) {
        rc = master_listen_host(m, s, host, port, why_r);
    } else {
        char **ifs = conf_list(m->conf, "inet_interfaces");
        bool all = ifs[0] == NULL;

        for (char **ip = ifs; *ip; ip++)
            if (strcmp(*ip, "all") == 0)
                all = true;
        if (all) {
            rc = master_listen_host(m, s, NULL, port, why_r);
        } else {
            for (char **ip = ifs; rc == 0 && *ip; ip++) {
                if (strcmp(*ip, "loopback-only") == 0) {
                    rc = master_listen_host(m, s, "127.0.0.1", port, why_r);
                    if (rc == 0 && master_listen_host(m, s, "::1", port, why_r) < 0)
                        rc = 0;     /* no IPv6 loopback here: IPv4 is enough */
                } else {
                    const char *h = *ip;
                    char *unbr = NULL;

                    if (h[0] == '[' && h[strlen(h) - 1] == ']')
                        h = unbr = xstrndup(h + 1, strlen(h) - 2);
                    rc = master_listen_host(m, s, h, port, why_r);
                    free(unbr);
                }
            }
        }
    }
    free(host);
    free(port);
    return rc;
}

/*
 * master_listen_unix - $queue_directory/private/NAME (0600) or
 * public/NAME (0666); owned by mail_owner when we are root, so that
 * unprivileged clients of private services can connect.
 */
static int master_listen_unix(master_t *m, master_serv_t *s, const char **why_r)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char *path;
    int fd, n;

    path = xasprintf("%s/%s/%s", conf_str(m->conf, "queue_directory"),
                     s->private_ ? "private" : "public", s->name);
    n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
        master_listen_fail(m, s, why_r, path, "socket path too long");
        free(path);
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        master_listen_fail(m, s, why_r, path, strerror(errno));
        free(path);
        return -1;
    }
    (void)unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0
        || chmod(path, s->private_ ? 0600 : 0666) < 0
        || listen(fd, MASTER_BACKLOG) < 0) {
        master_listen_fail(m, s, why_r, path, strerror(errno));
        close(fd);
        free(path);
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(conf_str(m->conf, "mail_owner"));

        if (pw && chown(path, pw->pw_uid, pw->pw_gid) < 0)
            msg_warn("chown %s: %m", path);
    }
    free(path);
    s->listen_fds[s->n_listen++] = fd;
    return 0;
}

int master_listen_open(master_t *m, master_serv_t *s, const char **why_r)
{
    if (s->n_listen > 0)
        return 0;
    return s->type == MASTER_CF_INET ? master_listen_inet(m, s, why_r)
                                     : master_listen_unix(m, s, why_r);
}

void master_listen_close(master_t *m, master_serv_t *s)
{
    for (size_t i = 0; i < s->n_listen; i++) {
        if (s->watching)
            event_fd_del(m->loop, s->listen_fds[i]);
        close(s->listen_fds[i]);
    }
    s->watching = false;
    s->n_listen = 0;
}
