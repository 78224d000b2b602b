/*
 * smtp_tls - the client's TLS context and per-destination TLS policy
 * (smtp_tls_security_level, smtp_tls_policy_maps) and the lib/tls
 * parameters for one connection.
 */
#include "smtp.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#include <string.h>
#include <strings.h>

/* smtp_tls_init - one client context for the process */
int smtp_tls_init(smtp_state_t *st, const char **why_r)
{
    conf_t *c = st->conf;
    tls_ctx_opts_t o = { 0 };
    const char *v;

    v = conf_str(c, "smtp_tls_cert_file");
    o.cert_file = *v ? v : NULL;
    v = conf_str(c, "smtp_tls_key_file");
    o.key_file = o.cert_file && *v ? v : NULL;
    v = conf_str(c, "smtp_tls_CAfile");
    o.ca_file = *v ? v : NULL;
    v = conf_str(c, "smtp_tls_CApath");
    o.ca_path = *v ? v : NULL;
    o.protocols = conf_str(c, "smtp_tls_protocols");
    o.ciphers = conf_str(c, "smtp_tls_ciphers");
    if ((st->tls = tls_ctx_client_new(&o, why_r)) == NULL)
        return -1;
    return 0;
}

/* policy_parse - "level [match=a:b] ..." from a policy table */
static int policy_parse(smtp_job_t *job, const char *val, const char **why_r)
{
    char **w = NULL;
    size_t n = str_split(val, " \t", &w);
    int ret = 0;

    if (n == 0) {
        *why_r = "empty policy";
        ret = -1;
    } else if (strcasecmp(w[0], "dane-only") == 0) {
        job->level = TLS_LEV_DANE;
        job->dane_only = true;
    } else if (strcasecmp(w[0], "secure") == 0) {
        job->level = TLS_LEV_VERIFY;
    } else if (tls_level_parse(w[0], &job->level) < 0) {
        *why_r = "unknown TLS security level in policy table";
        ret = -1;
    }
    for (size_t i = 1; ret == 0 && i < n; i++)
        if (strncasecmp(w[i], "match=", 6) == 0) {
            str_argv_free(&job->match);
            (void)str_split(w[i] + 6, ":", &job->match);
        }
    str_argv_free(&w);
    return ret;
}

/* smtp_tls_policy - the level for this next hop: the policy table by
 * next hop as given, by domain, by parent domains (".parent"), else the
 * default level */
int smtp_tls_policy(smtp_job_t *job, const char **why_r)
{
    buf_t val;
    char key[300];
    const char *d = job->dest.host;
    int r;

    job->level = smtp.p.tls_level;
    if (smtp.tls_policy.n == 0)
        return 0;
    buf_init(&val, 4096);
    safe_cpy(key, sizeof(key), job->nexthop ? job->nexthop : "");
    str_lower(key);
    r = smtp_tables_get(&smtp.tls_policy, key, &val, why_r);
    if (r == 0 && !job->dest.is_unix) {
        safe_cpy(key, sizeof(key), d);
        str_lower(key);
        r = smtp_tables_get(&smtp.tls_policy, key, &val, why_r);
        for (const char *dot = strchr(d, '.'); r == 0 && dot; dot = strchr(dot + 1, '.')) {
            safe_cpy(key, sizeof(key), dot);
            str_lower(key);
            r = smtp_tables_get(&smtp.tls_policy, key, &val, why_r);
        }
    }
    if (r > 0)
        r = policy_parse(job, buf_cstr(&val), why_r);
    buf_free(&val);
    return r < 0 ? -1 : 0;
}

/* smtp_tls_params - lib/tls client parameters for one connection */
int smtp_tls_params(const smtp_job_t *job, const smtp_target_t *tgt, tls_level_t level,
                    tls_client_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->level = level;
    p->peer_host = tgt->host;
    p->peer_addr = tgt->ip;
    p->peer_port = tgt->port;
    p->match_names = (const char *const *)job->match;
    if (level == TLS_LEV_VERIFY && job->match == NULL && !job->dest.mx && !tgt->is_unix)
        p->peer_host = job->dest.host;
    if (level == TLS_LEV_DANE) {
        p->tlsa = tgt->tlsa;
        p->ntlsa = tgt->ntlsa;
        p->dane_base = tgt->host;
    }
    return 0;
}
