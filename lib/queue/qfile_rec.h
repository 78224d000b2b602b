#ifndef STORK_QUEUE_QFILE_REC_H
#define STORK_QUEUE_QFILE_REC_H
/*
 * NAME
 *	qfile_rec - private to lib/queue: record types and little-endian
 *	encoding shared by the queue-file writer and reader
 */
#include <stdint.h>

#define QREC_ARRIVAL 'A'
#define QREC_SENDER  'S'
#define QREC_ATTR    'N'
#define QREC_RCPT    'R'
#define QREC_CONTENT 'M'
#define QREC_END     'E'

#define QREC_HDR_LEN 5          /* u8 type, u32 length */
#define QFILE_MAGIC_LEN 8

static inline void qrec_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void qrec_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t qrec_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t qrec_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
