/* local_params - the main.cf settings of the local delivery agent */
#include "local.h"
#include "maildir/maildir_deliver.h"

#include <string.h>
#include <strings.h>

/* allow_has - does an allow_mail_to_* list name this class? */
static bool allow_has(char **list, const char *cls)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcasecmp(list[i], cls) == 0)
            return true;
    return false;
}

/* local_params_load - read every parameter local uses (see params_local.def) */
void local_params_load(conf_t *conf, local_params_t *p)
{
    char **cmds = conf_list(conf, "allow_mail_to_commands");
    char **files = conf_list(conf, "allow_mail_to_files");

    memset(p, 0, sizeof(*p));
    p->alias_maps = conf_list(conf, "alias_maps");
    p->virtual_alias_maps = conf_list(conf, "virtual_alias_maps");
    p->virtual_mailbox_maps = conf_list(conf, "virtual_mailbox_maps");
    p->virtual_mailbox_base = conf_str(conf, "virtual_mailbox_base");
    p->virtual_mailbox_owner = conf_str(conf, "virtual_mailbox_owner");
    p->default_privs = conf_str(conf, "default_privs");
    p->home_mailbox = conf_str(conf, "home_mailbox");
    p->recipient_delimiter = conf_str(conf, "recipient_delimiter");
    p->myhostname = conf_str(conf, "myhostname");
    p->myorigin = conf_str(conf, "myorigin");
    p->cmd_alias = allow_has(cmds, "alias");
    p->cmd_forward = allow_has(cmds, "forward");
    p->file_alias = allow_has(files, "alias");
    p->file_forward = allow_has(files, "forward");
    p->command_time_limit = conf_int(conf, "command_time_limit");
    p->expansion_limit = conf_int(conf, "local_expansion_limit");
    p->recursion_limit = conf_int(conf, "local_recursion_limit");
    p->worker_limit = conf_int(conf, "local_worker_limit");
    p->worker_idle_time = conf_int(conf, "local_worker_idle_time");
    p->virtual_minimum_uid = conf_int(conf, "virtual_minimum_uid");
    maildir_set_dir_sync(conf_bool(conf, "maildir_directory_fsync"));
}
