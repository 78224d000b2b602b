#ifndef STORK_QUEUE_QFILE_H
#define STORK_QUEUE_QFILE_H
/*
 * NAME
 *	qfile - the queue file: format, writer, reader, recipient marks
 * FORMAT (doc/QUEUE.md has the full description)
 *	"STORKQ01" magic, then records {u8 type, u32 LE length, bytes}:
 *	  'A' arrival: u64 LE seconds, u32 LE microseconds
 *	  'S' sender (may be empty: the null sender)
 *	  'N' a named attribute "name=value" (client_address, client_name,
 *	      helo_name, protocol, sasl_username, envid, ret, ...)
 *	  'R' recipient: u8 status, u8 notify flags, then "address\0orcpt"
 *	      (orcpt may be empty). The status byte is at a fixed offset
 *	      (record start + 5) so qmgr can pwrite it in place.
 *	  'M' content: u64 LE content length; the content bytes follow the
 *	      record directly (they are not counted in the record length)
 *	  'E' end (empty): must be the last record; a file without it is
 *	      incomplete or torn and goes to corrupt/.
 *	Recipient status: QFILE_RCPT_PENDING '-', QFILE_RCPT_DONE 'D'
 *	(delivered or bounced: nothing more to do).
 *	Queue directories: incoming active deferred hold corrupt, flat,
 *	files named by queue id. A file in incoming/ is written under its
 *	final name with mode 0600 and is complete once its owner-execute
 *	bit is set (0700, qfile_mode_complete); files in maildrop/ are
 *	written as "maildrop/t.ID" and renamed.
 * WRITER
 *	qfile_create(queue_dir, &w, &why): creates incoming/QID (O_EXCL,
 *	0600, retried on collision). Then qfile_put_* for the envelope (any
 *	order except: all before qfile_begin_content), qfile_begin_content,
 *	qfile_write_content (buffered), qfile_finish (back-patches the
 *	content length, writes 'E', flushes: no fsync), then
 *	qfile_sync (mode 0700, then fsync: content, completion and, on
 *	Linux file systems, the name of a created file are durable) and
 *	qfile_commit (nothing more for incoming/). The caller calls
 *	queue_commit_dir(queue_dir, "incoming", renamed) once per batch,
 *	renamed being true if qfile_name_needs_dir_sync() was for any of
 *	its files (a reused file, or queue_directory_fsync = yes, see
 *	qfile_set_dir_sync), and only then acknowledges.
 *	In incoming/ the writer first reuses a spent file from recycle/
 *	(qfile_recycle_claim) and creates one only when there is none.
 *	qfile_create_in(queue_dir, "maildrop", ...) writes maildrop/t.ID;
 *	qfile_commit renames it and the caller must queue_sync_dir.
 *	qfile_abort unlinks an uncommitted file.
 *	qfile_writer_free closes and frees; it does not unlink.
 * RECYCLING (qfile_recycle.c)
 *	qfile_recycle(queue_dir, queue, qid, fd): qmgr's alternative to
 *	unlinking a finished file: mode 0600, then renamed to recycle/QID;
 *	-1 when the file is not kept (larger than QFILE_RECYCLE_MAX_SIZE,
 *	or an error) and the caller must unlink it.
 *	qfile_recycle_tidy(queue_dir, keep): counts recycle/ and removes
 *	the files that may not be reused (all of them without keep).
 * READER
 *	qfile_read(fd, &qf, &why): parses the envelope and checks that the
 *	content and 'E' are complete; -1 with why on any inconsistency
 *	(never trusts a length). qf.rcpts[i].status_offset is where
 *	qfile_mark_rcpt() writes the status byte.
 *	qfile_attr(&qf, "client_address") → value or NULL.
 *	qfile_open_request(qpath, offset, size, &fd, &qf, &why): a delivery
 *	agent's open of the file a DELIVER_REQ names: qpath must be
 *	"QUEUE/QID" (relative, no "..", a valid id), opened O_NOFOLLOW,
 *	read with qfile_read, and its content offset and size must match
 *	what qmgr sent (else it is not the file qmgr meant). On -1, *fd_r
 *	may be open (>= 0) and qf partly filled: the caller closes and frees
 *	as after success.
 * LIMITS
 *	A record is at most QFILE_MAX_RECORD bytes; at most
 *	QFILE_MAX_RCPTS recipients.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "queue/qid.h"

#define QFILE_MAGIC "STORKQ01"
#define QFILE_MAX_RECORD (64 * 1024)
#define QFILE_MAX_RCPTS 100000
#define QFILE_RCPT_PENDING '-'
#define QFILE_RCPT_DONE 'D'

/* DSN NOTIFY flags (RFC 3461) */
#define QFILE_NOTIFY_NEVER   1
#define QFILE_NOTIFY_SUCCESS 2
#define QFILE_NOTIFY_FAILURE 4
#define QFILE_NOTIFY_DELAY   8

#define QFILE_MODE_WRITING  0600
#define QFILE_MODE_COMPLETE 0700
#define QFILE_MODE_WARNED   0010    /* qmgr sent the delay warning (group-execute) */

#define QUEUE_INCOMING "incoming"
#define QUEUE_ACTIVE   "active"
#define QUEUE_DEFERRED "deferred"
#define QUEUE_HOLD     "hold"
#define QUEUE_CORRUPT  "corrupt"
#define QUEUE_MAILDROP "maildrop"
#define QUEUE_RECYCLE  "recycle"

#define QFILE_RECYCLE_MAX_SIZE (256 * 1024)  /* larger spent files are unlinked */

typedef struct qfile_writer qfile_writer_t;

int qfile_create(const char *queue_dir, qfile_writer_t **w_r, const char **why_r);
/* qfile_create_in - the same in another directory of the queue (sendmail
 * writes maildrop/t.ID, renamed to maildrop/ID by qfile_commit) */
int qfile_create_in(const char *queue_dir, const char *subdir, qfile_writer_t **w_r,
                    const char **why_r);
const char *qfile_writer_qid(const qfile_writer_t *w);
int qfile_writer_fd(const qfile_writer_t *w);
int qfile_put_arrival(qfile_writer_t *w, int64_t sec, int32_t usec);
int qfile_put_sender(qfile_writer_t *w, const char *sender);
int qfile_put_attr(qfile_writer_t *w, const char *name, const char *value);
int qfile_put_rcpt(qfile_writer_t *w, const char *addr, const char *orcpt, unsigned notify);
int qfile_begin_content(qfile_writer_t *w);
int qfile_write_content(qfile_writer_t *w, const void *p, size_t n);
uint64_t qfile_content_size(const qfile_writer_t *w);
int qfile_finish(qfile_writer_t *w, const char **why_r);
int qfile_sync(qfile_writer_t *w, const char **why_r);
int qfile_commit(qfile_writer_t *w, const char **why_r);
void qfile_abort(qfile_writer_t **w);
void qfile_writer_free(qfile_writer_t **w);
bool qfile_name_needs_dir_sync(const qfile_writer_t *w);
int queue_sync_dir(const char *queue_dir, const char *subdir);
int queue_commit_dir(const char *queue_dir, const char *subdir, bool renamed);
void qfile_set_dir_sync(bool on);
bool qfile_mode_complete(mode_t mode);
int qfile_recycle_claim(const char *queue_dir, char qid[QID_BUFSIZE], char **path_r);
int qfile_recycle(const char *queue_dir, const char *queue, const char *qid, int fd);
long qfile_recycle_tidy(const char *queue_dir, bool keep);

typedef struct qfile_rcpt {
    char *addr;
    char *orcpt;
    unsigned notify;
    char status;
    off_t status_offset;
} qfile_rcpt_t;

typedef struct qfile {
    int64_t arrival_sec;
    int32_t arrival_usec;
    char *sender;
    char **attr_names;
    char **attr_values;
    size_t nattrs;
    qfile_rcpt_t *rcpts;
    size_t nrcpts;
    off_t content_offset;
    uint64_t content_size;
    uint64_t file_size;         /* through 'E'; a recycled file may be longer */
} qfile_t;

int qfile_read(int fd, qfile_t *qf, const char **why_r);
int qfile_open_request(const char *qpath, off_t content_offset, uint64_t content_size,
                       int *fd_r, qfile_t *qf, const char **why_r);
const char *qfile_attr(const qfile_t *qf, const char *name);
void qfile_free(qfile_t *qf);
int qfile_mark_rcpt(int fd, off_t status_offset, char status);

#endif
