/*
 * smtpd_restrict.c - parse and evaluate the RCPT restriction lists
 * (see smtpd_restrict.h). Pure: no I/O.
 */
#include <string.h>
#include <strings.h>
#include "smtpd_restrict.h"

static const struct {
    const char *name;
    smtpd_restrict_rule_t rule;
} smtpd_restrict_names[] = {
    { "permit_mynetworks", SMTPD_RESTRICT_PERMIT_MYNETWORKS },
    { "permit_sasl_authenticated", SMTPD_RESTRICT_PERMIT_SASL_AUTHENTICATED },
    { "reject_unauth_destination", SMTPD_RESTRICT_REJECT_UNAUTH_DESTINATION },
    { "reject", SMTPD_RESTRICT_REJECT },
};

/* smtpd_restrict_parse - words into rules; -1 and *bad_r on an unknown word */
int smtpd_restrict_parse(char **words, smtpd_restrict_t *list, size_t *bad_r)
{
    size_t nnames = sizeof(smtpd_restrict_names) / sizeof(smtpd_restrict_names[0]);

    list->n = 0;
    for (size_t i = 0; words && words[i]; i++) {
        size_t k;
        for (k = 0; k < nnames; k++)
            if (strcasecmp(words[i], smtpd_restrict_names[k].name) == 0)
                break;
        if (k == nnames || list->n == SMTPD_RESTRICT_MAX) {
            *bad_r = i;
            return -1;
        }
        list->rules[list->n++] = smtpd_restrict_names[k].rule;
    }
    return 0;
}

/* smtpd_restrict_eval - the first rule that decides, else DUNNO */
smtpd_verdict_t smtpd_restrict_eval(const smtpd_restrict_t *list,
                                    const smtpd_restrict_facts_t *facts)
{
    for (size_t i = 0; i < list->n; i++) {
        switch (list->rules[i]) {
        case SMTPD_RESTRICT_PERMIT_MYNETWORKS:
            if (facts->trusted)
                return SMTPD_VERDICT_OK;
            break;
        case SMTPD_RESTRICT_PERMIT_SASL_AUTHENTICATED:
            if (facts->authenticated)
                return SMTPD_VERDICT_OK;
            break;
        case SMTPD_RESTRICT_REJECT_UNAUTH_DESTINATION:
            if (facts->remote)
                return SMTPD_VERDICT_RELAY;
            break;
        case SMTPD_RESTRICT_REJECT:
            return SMTPD_VERDICT_REJECT;
        }
    }
    return SMTPD_VERDICT_DUNNO;
}

/* smtpd_restrict_closes - can the list refuse a remote recipient? */
bool smtpd_restrict_closes(const smtpd_restrict_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        if (list->rules[i] == SMTPD_RESTRICT_REJECT_UNAUTH_DESTINATION
            || list->rules[i] == SMTPD_RESTRICT_REJECT)
            return true;
    return false;
}
