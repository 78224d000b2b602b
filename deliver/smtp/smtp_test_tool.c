/*
 * smtp_test_tool - helpers for smtp_test.py (not installed)
 *   mkq QUEUE_DIR SENDER CONTENT_FILE RCPT...
 *       write a queue file with lib/queue; prints "QID OFFSET SIZE"
 *   mkmap SPEC SOURCE
 *       compile a table with lib/table (as storkmap does)
 *   req SOCKET COUNT QID QPATH SENDER OFFSET SIZE NEXTHOP FLAGS RCPT...
 *       act as qmgr: send DELIVER_REQ COUNT times on one connection
 *       (NEXTHOP and FLAGS "-" leave them out; TRANSPORT is "smtp";
 *       ENVID "envid-1" and RET "HDRS" ride along; a recipient
 *       "addr/N" has NOTIFY N); prints "INDEX ACTION DSN TEXT" per
 *       recipient and "DONE STATUS REASON" per request
 */
#include "ipc/ipc.h"
#include "queue/qfile.h"
#include "table/table.h"
#include "util/msg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int do_mkq(int argc, char **argv)
{
    qfile_writer_t *w;
    qfile_t qf;
    const char *why;
    char buf[8192], path[4096];
    struct timeval tv;
    ssize_t n;
    int fd;

    if (argc < 4)
        return 2;
    if (qfile_create(argv[0], &w, &why) < 0) {
        fprintf(stderr, "qfile_create: %s\n", why);
        return 1;
    }
    gettimeofday(&tv, NULL);
    qfile_put_arrival(w, tv.tv_sec, (int32_t)tv.tv_usec);
    qfile_put_sender(w, argv[1]);
    for (int i = 3; i < argc; i++)
        qfile_put_rcpt(w, argv[i], "", 0);
    qfile_begin_content(w);
    if ((fd = open(argv[2], O_RDONLY)) < 0)
        return 1;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        qfile_write_content(w, buf, (size_t)n);
    close(fd);
    if (qfile_finish(w, &why) < 0 || qfile_sync(w, &why) < 0 || qfile_commit(w, &why) < 0) {
        fprintf(stderr, "qfile: %s\n", why);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s/%s", argv[0], QUEUE_INCOMING, qfile_writer_qid(w));
    if ((fd = open(path, O_RDONLY)) < 0 || qfile_read(fd, &qf, &why) < 0) {
        fprintf(stderr, "qfile_read: %s\n", why);
        return 1;
    }
    printf("%s %lld %llu\n", qfile_writer_qid(w), (long long)qf.content_offset,
           (unsigned long long)qf.content_size);
    qfile_free(&qf);
    close(fd);
    qfile_writer_free(&w);
    return 0;
}

static int do_mkmap(int argc, char **argv)
{
    buf_t errors;
    int n;

    if (argc < 2)
        return 2;
    buf_init(&errors, BUF_NOLIMIT);
    n = table_build(argv[0], argv[1], TABLE_SYNTAX_MAP, &errors);
    fputs(buf_cstr(&errors), stderr);
    buf_free(&errors);
    return n > 0 ? 1 : 0;
}

/* req_build - one DELIVER_REQ */
static void req_build(ipc_msg_t *m, int argc, char **argv)
{
    ipc_msg_init(m, IPC_M_DELIVER_REQ);
    ipc_put_str(m, IPC_A_QID, argv[2]);
    ipc_put_str(m, IPC_A_QPATH, argv[3]);
    ipc_put_str(m, IPC_A_SENDER, argv[4]);
    ipc_put_u64(m, IPC_A_ARRIVAL, (uint64_t)time(NULL));
    ipc_put_u64(m, IPC_A_CONTENT_OFFSET, strtoull(argv[5], NULL, 10));
    ipc_put_u64(m, IPC_A_CONTENT_SIZE, strtoull(argv[6], NULL, 10));
    ipc_put_str(m, IPC_A_TRANSPORT, "smtp");
    ipc_put_str(m, IPC_A_ENVID, "envid-1");
    ipc_put_str(m, IPC_A_RET, "HDRS");
    if (strcmp(argv[7], "-") != 0)
        ipc_put_str(m, IPC_A_NEXTHOP, argv[7]);
    if (strcmp(argv[8], "-") != 0)
        ipc_put_u64(m, IPC_A_FLAGS, strtoull(argv[8], NULL, 10));
    for (int i = 9; i < argc; i++) {
        size_t g = ipc_group_begin(m, IPC_A_RCPT);
        char addr[1024], *slash;
        unsigned notify = 0;

        snprintf(addr, sizeof(addr), "%s", argv[i]);
        if ((slash = strchr(addr, '/')) != NULL) {
            *slash = 0;
            notify = (unsigned)atoi(slash + 1);
        }
        ipc_put_str(m, IPC_A_ADDR, addr);
        ipc_put_str(m, IPC_A_ORCPT, notify ? "rfc822;orig+x=y@example.com" : "");
        ipc_put_u64(m, IPC_A_OFFSET, 0);
        ipc_put_u64(m, IPC_A_INDEX, (uint64_t)(i - 9));
        ipc_put_u64(m, IPC_A_NOTIFY, notify);
        ipc_group_end(m, g);
    }
}

static int do_req(int argc, char **argv)
{
    const char *why;
    int fd, count;

    if (argc < 10)
        return 2;
    if ((fd = ipc_connect(argv[0], "smtp", 10000, &why)) < 0) {
        fprintf(stderr, "connect: %s\n", why);
        return 1;
    }
    count = atoi(argv[1]);
    for (int c = 0; c < count; c++) {
        ipc_msg_t m;

        req_build(&m, argc, argv);
        if (ipc_send(fd, &m, 10000) < 0) {
            fprintf(stderr, "send failed\n");
            return 1;
        }
        ipc_msg_free(&m);
        for (;;) {
            ipc_view_t v;
            uint64_t u = 0;
            const char *reason;

            if (ipc_recv(fd, &m, 120000, &why) < 0) {
                fprintf(stderr, "recv: %s\n", why);
                return 1;
            }
            v = ipc_msg_view(&m);
            if (m.type == IPC_M_DELIVER_DONE) {
                ipc_get_u64(v, IPC_A_STATUS, &u);
                reason = ipc_get_str(v, IPC_A_REASON);
                printf("DONE %llu %s\n", (unsigned long long)u, reason ? reason : "-");
                ipc_msg_free(&m);
                break;
            }
            if (m.type != IPC_M_DELIVER_RCPT) {
                fprintf(stderr, "unexpected %s\n", ipc_msg_name(m.type));
                return 1;
            }
            ipc_get_u64(v, IPC_A_INDEX, &u);
            printf("%llu %s %s %s\n", (unsigned long long)u, ipc_get_str(v, IPC_A_ACTION),
                   ipc_get_str(v, IPC_A_DSN_STATUS), ipc_get_str(v, IPC_A_TEXT));
            ipc_msg_free(&m);
        }
        fflush(stdout);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    msg_init("smtp_test_tool", "stork");
    msg_use_stderr(true);
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "mkq") == 0)
        return do_mkq(argc - 2, argv + 2);
    if (strcmp(argv[1], "mkmap") == 0)
        return do_mkmap(argc - 2, argv + 2);
    if (strcmp(argv[1], "req") == 0)
        return do_req(argc - 2, argv + 2);
    return 2;
}
