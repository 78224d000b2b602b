/*
 * qid - queue ids: 11 base32 digits of microseconds since the epoch, then
 * 5 of a per-process value, all from the ordered alphabet [0-9A-V] so that
 * string order is time order.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "queue/qid.h"
#include "util/proc.h"

#define QID_TIME_DIGITS 11
#define QID_PROC_DIGITS (QID_LEN - QID_TIME_DIGITS)

static const char qid_alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

/* qid_digit - value of one base32 digit, or -1 */
static int qid_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'V')
        return c - 'A' + 10;
    return -1;
}

/* qid_encode - write n base32 digits of v, most significant first */
static void qid_encode(char *out, int n, uint64_t v)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = qid_alphabet[v & 31];
        v >>= 5;
    }
}

/* qid_new - a new id; the time part never repeats or goes backwards
 * within one process, so ids from one process are unique and ordered */
void qid_new(char buf[QID_BUFSIZE])
{
    static uint64_t last_usec;
    static uint32_t seq;
    struct timeval tv;
    uint64_t usec;

    gettimeofday(&tv, NULL);
    usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    if (usec <= last_usec)
        usec = last_usec + 1;
    last_usec = usec;
    seq++;
    /* 25 bits: 22 of pid (Linux pid_max is at most 2^22) and 3 of sequence,
     * so that a recycled pid in the same microsecond still tends to differ;
     * O_EXCL creation is the final guarantee. */
    uint64_t proc = (((uint64_t)proc_pid() & 0x3FFFFF) << 3) | (seq & 7);
    qid_encode(buf, QID_TIME_DIGITS, usec);
    qid_encode(buf + QID_TIME_DIGITS, QID_PROC_DIGITS, proc);
    buf[QID_LEN] = 0;
}

/* qid_valid - exactly QID_LEN digits of the alphabet: safe in a path */
bool qid_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < QID_LEN; i++)
        if (qid_digit((unsigned char)s[i]) < 0)
            return false;
    return s[QID_LEN] == 0;
}

/* qid_time - the creation time encoded in an id */
int qid_time(const char *s, int64_t *sec_r, int32_t *usec_r)
{
    uint64_t v = 0;

    if (!qid_valid(s))
        return -1;
    for (int i = 0; i < QID_TIME_DIGITS; i++)
        v = (v << 5) | (uint64_t)qid_digit((unsigned char)s[i]);
    *sec_r = (int64_t)(v / 1000000u);
    *usec_r = (int32_t)(v % 1000000u);
    return 0;
}
