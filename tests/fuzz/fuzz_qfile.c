/*
 * fuzz_qfile - libFuzzer target for lib/queue/qfile_read.c
 *
 * Input: the bytes of a queue file, written to a memfd (a regular file
 * for fstat) that qfile_read() parses. Properties of an accepted file:
 * the content ends exactly 5 bytes (the 'E' record) before the end, each
 * recipient's status_offset holds its status byte, strings are what the
 * records held, qfile_attr finds every attribute, and qfile_mark_rcpt
 * on the last recipient gives a file that reads back with the new status.
 */
#include "fuzz.h"
#include "queue/qfile.h"

#include <sys/mman.h>
#include <unistd.h>

/* the_fd - one memfd reused for every input */
static int the_fd(void)
{
    static int fd = -1;

    if (fd < 0 && (fd = memfd_create("fuzz_qfile", MFD_CLOEXEC)) < 0) {
        perror("memfd_create");
        abort();
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = the_fd();
    qfile_t qf;
    const char *why = NULL;
    size_t done = 0;

    if (ftruncate(fd, 0) < 0)
        abort();
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    if (qfile_read(fd, &qf, &why) < 0) {
        fuzz_check(why != NULL && *why);
        fuzz_check(qf.nrcpts == 0 && qf.rcpts == NULL && qf.sender == NULL && qf.nattrs == 0);
        return 0;
    }
    fuzz_check(qf.file_size <= size);
    fuzz_check(qf.sender != NULL && qf.nrcpts > 0 && qf.nrcpts <= QFILE_MAX_RCPTS);
    fuzz_check(qf.arrival_usec >= 0 && qf.arrival_usec < 1000000);
    fuzz_check(qf.content_offset > 0
               && (uint64_t)qf.content_offset + qf.content_size + 5 == qf.file_size);
    for (size_t i = 0; i < qf.nrcpts; i++) {
        const qfile_rcpt_t *r = &qf.rcpts[i];

        fuzz_check(r->addr[0] != 0);
        fuzz_check(r->status == QFILE_RCPT_PENDING || r->status == QFILE_RCPT_DONE);
        fuzz_check(r->status_offset > 0 && (size_t)r->status_offset < size);
        fuzz_check(data[r->status_offset] == (uint8_t)r->status);
        fuzz_check(r->status_offset < qf.content_offset);
    }
    for (size_t i = 0; i < qf.nattrs; i++) {
        const char *v = qfile_attr(&qf, qf.attr_names[i]);
        fuzz_check(qf.attr_names[i][0] != 0 && v != NULL);
    }
    fuzz_check(qfile_attr(&qf, "") == NULL);

    /* Marking the last recipient in place keeps the file valid. */
    {
        size_t last = qf.nrcpts - 1;
        char want = qf.rcpts[last].status == QFILE_RCPT_DONE ? QFILE_RCPT_PENDING
                                                              : QFILE_RCPT_DONE;
        qfile_t again;

        fuzz_check(qfile_mark_rcpt(fd, qf.rcpts[last].status_offset, want) == 0);
        fuzz_check(qfile_read(fd, &again, &why) == 0);
        fuzz_check(again.nrcpts == qf.nrcpts && again.rcpts[last].status == want);
        fuzz_check(strcmp(again.rcpts[last].addr, qf.rcpts[last].addr) == 0);
        qfile_free(&again);
    }
    qfile_free(&qf);
    fuzz_check(qf.rcpts == NULL && qf.nrcpts == 0);
    return 0;
}
