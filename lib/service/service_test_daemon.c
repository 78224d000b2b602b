/*
 * service_test_daemon - a tiny daemon on the service skeleton, for
 * service_test: echoes what each client sends, logs its life cycle
 * ("post_init cwd=... args=...", "stop_fn", "wakeup") to maillog_file.
 */
#include "service/service.h"
#include "util/buf.h"
#include "util/msg.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

/* echo_ready - echo input; on EOF the client is done */
static void echo_ready(event_loop_t *loop, int fd, unsigned mask, void *ctx)
{
    service_t *svc = ctx;
    char b[512];
    ssize_t n = read(fd, b, sizeof(b));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        event_fd_del(loop, fd);
        close(fd);
        service_client_done(svc);
        return;
    }
    if (write(fd, b, (size_t)n) != n)
        msg_warn("echo: short write");
}

/* test_accept - watch the new client */
static void test_accept(service_t *svc, int fd)
{
    if (event_fd_add(service_loop(svc), fd, EVENT_READ, echo_ready, svc) < 0) {
        close(fd);
        service_client_done(svc);
    }
}

/* test_post_init - log where we are and what we were given */
static void test_post_init(service_t *svc)
{
    char cwd[PATH_MAX];
    buf_t args;

    buf_init(&args, 4096);
    for (char **a = service_args(svc); *a; a++)
        buf_printf(&args, "%s%s", args.len ? "," : "", *a);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        cwd[0] = 0;
    msg_info("post_init cwd=%s args=%s name=%s uid=%ld", cwd, buf_cstr(&args),
             service_name(svc), (long)getuid());
    buf_free(&args);
}

static void test_stop(service_t *svc)
{
    msg_info("stop_fn");
}

static void test_wakeup(service_t *svc)
{
    msg_info("wakeup");
}

int main(int argc, char **argv)
{
    static const service_spec_t spec = {
        .name = "svctest",
        .client_limit = 1,
        .post_init = test_post_init,
        .accept_fn = test_accept,
        .wakeup_fn = test_wakeup,
        .stop_fn = test_stop,
    };

    return service_main(argc, argv, &spec);
}
