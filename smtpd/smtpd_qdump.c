/*
 * smtpd_qdump - test tool: check a queue file with qfile_read and print
 * its envelope, one item per line, tab-separated:
 *	sender	ADDR
 *	attr	NAME	VALUE
 *	rcpt	ADDR	ORCPT	NOTIFY	STATUS
 *	content	OFFSET	SIZE
 * Exit 1 (with the reason on stderr) if the file does not parse.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include "queue/qfile.h"
#include "util/msg.h"

int main(int argc, char **argv)
{
    qfile_t qf;
    const char *why;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s queue-file\n", argv[0]);
        return 2;
    }
    msg_init("smtpd_qdump", "stork");
    if ((fd = open(argv[1], O_RDONLY)) < 0) {
        perror(argv[1]);
        return 1;
    }
    if (qfile_read(fd, &qf, &why) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], why);
        return 1;
    }
    printf("sender\t%s\n", qf.sender);
    for (size_t i = 0; i < qf.nattrs; i++)
        printf("attr\t%s\t%s\n", qf.attr_names[i], qf.attr_values[i]);
    for (size_t i = 0; i < qf.nrcpts; i++)
        printf("rcpt\t%s\t%s\t%u\t%c\n", qf.rcpts[i].addr, qf.rcpts[i].orcpt ? qf.rcpts[i].orcpt : "",
               qf.rcpts[i].notify, qf.rcpts[i].status);
    printf("content\t%lld\t%" PRIu64 "\n", (long long)qf.content_offset, qf.content_size);
    qfile_free(&qf);
    close(fd);
    return 0;
}
