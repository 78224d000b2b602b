#ifndef STORK_TOOLS_CLI_SHOWQ_H
#define STORK_TOOLS_CLI_SHOWQ_H
/*
 * NAME
 *	cli_showq - list the queue (storkqueue -p/-j, mailq, sendmail -bp)
 * DESCRIPTION
 *	cli_showq(queue_dir, json): asks qmgr (cli_qmgr_list); when qmgr
 *	does not answer, reads the queue files (cli_qscan, which needs
 *	read access: root or mail_owner). Writes the mailq layout or one
 *	JSON object per message to stdout. Returns an exit status
 *	(0, EX_UNAVAILABLE when neither source can be read, EX_IOERR on an
 *	output error).
 */
#include <stdbool.h>

int cli_showq(const char *queue_dir, bool json);

#endif
