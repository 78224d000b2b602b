#ifndef STORK_TOOLS_CLI_UTIL_H
#define STORK_TOOLS_CLI_UTIL_H
/*
 * NAME
 *	cli_util - what every queue command shares: configuration, the
 *	qmgr control/query connection, and direct queue access when the
 *	mail system is stopped
 * DESCRIPTION
 *	cli_init(argv0, name): logging for a command (stderr and syslog).
 *	cli_conf(dir): main.cf of DIR (-c), else $STORK_CONFIG_DIR, else
 *	/etc/stork; validated: exits EX_CONFIG on any problem.
 *	cli_queue_dir(conf): $queue_directory.
 *
 *	cli_qmgr_connect(queue_dir, &why): connects to qmgr's query and
 *	control socket, public/qmgr (private/qmgr as a fallback for root
 *	and single-user instances) with protocol "qmgr"; -1 when qmgr does
 *	not answer (the mail system is stopped). A qmgr that accepts the
 *	connection but is too busy to greet within 5 s gets 60 s more.
 *	cli_qmgr_list(fd, qid, fn, ctx, &why): QMGR_LIST, then fn for each
 *	QUEUE_ENTRY until LIST_END. Entry attributes read: QID, QUEUE,
 *	ARRIVAL, SIZE, SENDER, FLAGS (bit 1 = forced expire), and RCPT
 *	groups of ADDR and optional REASON.
 *	cli_qmgr_control(fd, op, qid, queue, site, &count, &why):
 *	QMGR_CONTROL, then CONTROL_REPLY; 0 if STATUS is 0 (count_r gets
 *	COUNT, 0 if absent), -1 with why (TEXT of the reply or the IPC
 *	error).
 *
 *	cli_qscan(queue_dir, queues, qid, fn, ctx): the fallback listing:
 *	reads every queue file in the named queues (NULL-terminated list)
 *	with qfile_read, or only the file QID when qid is not NULL, and
 *	calls fn with an entry of its pending recipients. Unreadable or
 *	torn files are skipped with a warning (they may be in flight).
 *	Deferral reasons are not in the files, so they are empty here.
 *	Returns the number of files seen, or -1 when a queue directory
 *	could not be read (the listing is incomplete).
 *	cli_qfind(queue_dir, qid, queues): the queue (from queues, or
 *	CLI_QUEUES_ALL when NULL) that holds QID, or NULL.
 *	CLI_QUEUES_ALL: maildrop incoming active deferred hold, the order
 *	mailq shows them in.
 *	cli_index_dirty(queue_dir): after a direct change to the queue,
 *	make qmgr rebuild its index at its next start by removing it
 *	(CLI_QINDEX_FILE): a new index has no clean marker (qindex.h).
 * OWNERSHIP
 *	Entries passed to callbacks are freed after the callback returns.
 */
#include <stdbool.h>
#include <stdint.h>
#include "cli_fmt.h"
#include "config/conf.h"

/* qmgr's index (qmgr/qmgr_index.c), relative to queue_directory: removed
 * after a direct change, so qmgr rebuilds it from the files at start. */
#define CLI_QINDEX_FILE "index/queue.db"
#define CLI_QMGR_FLAG_FORCED_EXPIRE 1

extern const char *const CLI_QUEUES_ALL[];

void cli_init(const char *argv0, const char *name);
conf_t *cli_conf(const char *config_dir);
const char *cli_queue_dir(conf_t *conf);

typedef void cli_entry_fn(const cli_qentry_t *e, void *ctx);

int cli_qmgr_connect(const char *queue_dir, const char **why_r);
int cli_qmgr_list(int fd, const char *qid, cli_entry_fn *fn, void *ctx, const char **why_r);
int cli_qmgr_control(int fd, const char *op, const char *qid, const char *queue,
                     const char *site, uint64_t *count_r, const char **why_r);

int cli_qscan(const char *queue_dir, const char *const *queues, const char *qid,
              cli_entry_fn *fn, void *ctx);
const char *cli_qfind(const char *queue_dir, const char *qid, const char *const *queues);
void cli_index_dirty(const char *queue_dir);

#endif
