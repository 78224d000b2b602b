#ifndef STORK_SMTPD_SMTPD_RESTRICT_H
#define STORK_SMTPD_SMTPD_RESTRICT_H
/*
 * NAME
 *	smtpd_restrict - the RCPT access lists smtpd_relay_restrictions and
 *	smtpd_recipient_restrictions (a small subset of Postfix's)
 * DESCRIPTION
 *	smtpd_restrict_parse(words, &list, &bad): the parameter's words
 *	(conf_list) into list. Keywords: permit_mynetworks,
 *	permit_sasl_authenticated, reject_unauth_destination, reject.
 *	-1 with bad = the index of the first unknown word (the caller
 *	names the parameter: a configuration error).
 *	smtpd_restrict_eval(&list, &facts): the first rule that decides:
 *	  permit_mynetworks          OK if facts.trusted
 *	  permit_sasl_authenticated  OK if facts.authenticated
 *	  reject_unauth_destination  RELAY (554 5.7.1 Relay access denied)
 *	                             if facts.remote (the recipient is not
 *	                             in a local or virtual domain)
 *	  reject                     REJECT (554 5.7.1 Access denied)
 *	and DUNNO when no rule decides. As in Postfix, smtpd evaluates the
 *	relay list and then the recipient list; OK only ends its own list.
 *	smtpd_restrict_closes(&list): has a rule that can refuse a remote
 *	recipient (reject_unauth_destination or reject); smtpd refuses to
 *	start unless one of the two lists does, so no configuration turns
 *	it into an open relay by accident (Postfix does the same).
 * LIMITS
 *	SMTPD_RESTRICT_MAX rules per list.
 */
#include <stdbool.h>
#include <stddef.h>

#define SMTPD_RESTRICT_MAX 16

typedef enum {
    SMTPD_RESTRICT_PERMIT_MYNETWORKS,
    SMTPD_RESTRICT_PERMIT_SASL_AUTHENTICATED,
    SMTPD_RESTRICT_REJECT_UNAUTH_DESTINATION,
    SMTPD_RESTRICT_REJECT,
} smtpd_restrict_rule_t;

typedef enum {
    SMTPD_VERDICT_DUNNO, SMTPD_VERDICT_OK, SMTPD_VERDICT_RELAY, SMTPD_VERDICT_REJECT
} smtpd_verdict_t;

typedef struct smtpd_restrict {
    smtpd_restrict_rule_t rules[SMTPD_RESTRICT_MAX];
    size_t n;
} smtpd_restrict_t;

typedef struct smtpd_restrict_facts {
    bool trusted;           /* client in $mynetworks */
    bool authenticated;     /* SMTP AUTH succeeded */
    bool remote;            /* recipient domain is neither local nor virtual */
} smtpd_restrict_facts_t;

int smtpd_restrict_parse(char **words, smtpd_restrict_t *list, size_t *bad_r);
smtpd_verdict_t smtpd_restrict_eval(const smtpd_restrict_t *list,
                                    const smtpd_restrict_facts_t *facts);
bool smtpd_restrict_closes(const smtpd_restrict_t *list);

#endif
