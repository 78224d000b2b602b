"""postfix_instance - a private Postfix instance under a temporary directory.

Its own config_directory, queue_directory and data_directory; smtpd on a
loopback port of our choice (master.cf); virtual mailboxes (Maildir, the
virtual(8) agent, which fsyncs each delivered file) under the temporary
directory owned by the `vmail` user; everything else is Postfix's default
(cleanup fsyncs the queue file before smtpd answers 250). Started with
`postfix -c DIR start`; stopped by signalling the master's pid (from its
pid file) and waiting, bounded. Nothing else on the machine is touched.
"""

import os
import pwd
import shutil
import subprocess
import time

import procstat

MASTER_CF = """\
{host}:{port} inet n - n - {smtpd_maxproc} smtpd {smtpd_opts}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    name = "postfix"

    def __init__(self, base_dir, port, relay_port=None, virtual_users=(),
                 extra_main_cf=None, smtpd_maxproc="-", smtpd_opts=""):
        self.dir = base_dir
        self.config_dir = os.path.join(base_dir, "etc")
        self.queue_dir = os.path.join(base_dir, "queue")
        self.data_dir = os.path.join(base_dir, "data")
        self.vmail_dir = os.path.join(base_dir, "vmail")
        self.maillog = os.path.join(base_dir, "maillog")
        self.host = "127.0.0.1"
        self.port = port
        self.relay_port = relay_port
        self.virtual_domain = "virt.test"
        self.virtual_users = list(virtual_users)
        self.extra_main_cf = dict(extra_main_cf or {})
        self.smtpd_maxproc = smtpd_maxproc
        self.smtpd_opts = smtpd_opts
        self.master_pid = None
        self.vmail = pwd.getpwnam("vmail")
        for d in (self.config_dir, self.queue_dir, self.data_dir, self.vmail_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(base_dir, 0o755)
        os.chown(self.vmail_dir, self.vmail.pw_uid, self.vmail.pw_gid)
        pf = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        open(self.maillog, "a").close()
        self.write_config()

    def vaddr(self, user):
        return "%s@%s" % (user, self.virtual_domain)

    def vmaildir(self, user):
        return os.path.join(self.vmail_dir, self.virtual_domain, user)

    def main_cf(self):
        v = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "$mydomain",
            "mydestination": "$myhostname, postfix.test, localhost",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "virtual_mailbox_domains": self.virtual_domain,
            "virtual_mailbox_base": self.vmail_dir,
            "virtual_mailbox_maps": "hash:%s/vmailbox" % self.config_dir,
            "virtual_uid_maps": "static:%d" % self.vmail.pw_uid,
            "virtual_gid_maps": "static:%d" % self.vmail.pw_gid,
            "virtual_minimum_uid": "100",
            "smtpd_banner": "$myhostname ESMTP",
        }
        if self.relay_port:
            v["relayhost"] = "[127.0.0.1]:%d" % self.relay_port
        v.update(self.extra_main_cf)
        return v

    def write_config(self):
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# written by bench/postfix_instance.py\n")
            for k, val in self.main_cf().items():
                f.write("%s = %s\n" % (k, val))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(host=self.host, port=self.port,
                                     smtpd_maxproc=self.smtpd_maxproc,
                                     smtpd_opts=self.smtpd_opts))
        path = os.path.join(self.config_dir, "vmailbox")
        with open(path, "w") as f:
            for u in self.virtual_users:
                f.write("%s %s/%s/\n" % (self.vaddr(u), self.virtual_domain, u))
        subprocess.run(["postmap", "-c", self.config_dir, "hash:" + path], check=True,
                       capture_output=True, timeout=60)

    def prepare_maildirs(self):
        """Empty Maildirs (tmp, new, cur) for every virtual user, owned by vmail."""
        reset_maildirs(self, self.vmail.pw_uid, self.vmail.pw_gid)

    def postfix(self, *args, timeout=120):
        return subprocess.run(["postfix", "-c", self.config_dir] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, timeout=60):
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s %s" % (r.stdout, r.stderr))
        pidfile = os.path.join(self.queue_dir, "pid", "master.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = int(open(pidfile).read().strip())
                if procstat.alive(pid) and procstat.smtp_ready(self.host, self.port):
                    self.master_pid = pid
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("postfix did not come up on port %d" % self.port)

    def descendants(self):
        return procstat.descendants(self.master_pid) if self.master_pid else []

    def stop(self, timeout=30):
        if not self.master_pid:
            return
        procstat.stop_tree(self.master_pid, timeout)
        self.master_pid = None

    def queue_cmd(self, *args, timeout=600):
        return subprocess.run(["postqueue", "-c", self.config_dir] + list(args),
                              capture_output=True, timeout=timeout)

    def queue_count(self):
        return procstat.count_files(self.queue_dir, ("incoming", "active", "deferred",
                                                     "maildrop", "hold"))

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# Where emptied Maildirs go (set by bench.py; removed with the bench
# directory at the end). Deleting thousands of files just before a run
# would slow down the run's own file creations: ext4 without a journal
# (this machine's disk) skips inodes freed in the last 5-300 s on every
# create (fs/ext4/ialloc.c, recently_deleted()), and it would hit
# whichever server runs next. Moving the directory away costs nothing.
TRASH_DIR = None


def reset_maildirs(inst, uid, gid):
    """Move the virtual domain's Maildirs away (or remove them) and make empty ones."""
    dom = os.path.join(inst.vmail_dir, inst.virtual_domain)
    if TRASH_DIR and os.path.isdir(dom):
        os.makedirs(TRASH_DIR, exist_ok=True)
        os.rename(dom, os.path.join(TRASH_DIR, "%d" % time.monotonic_ns()))
    shutil.rmtree(dom, ignore_errors=True)
    os.makedirs(dom, exist_ok=True)
    os.chown(dom, uid, gid)
    for u in inst.virtual_users:
        md = inst.vmaildir(u)
        for sub in ("", "tmp", "new", "cur"):
            p = os.path.join(md, sub)
            os.makedirs(p, exist_ok=True)
            os.chown(p, uid, gid)
            os.chmod(p, 0o700)
