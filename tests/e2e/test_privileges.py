#!/usr/bin/env python3
"""Privilege separation, checked from /proc on an instance run as root:
smtpd and qmgr run as the `stork` user (real, effective, saved and fs uid),
smtpd is chrooted to the queue directory, the master alone stays root, and
a system user's delivered Maildir file belongs to that user."""

import os
import pwd
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (RawSMTP, StorkInstance, TempUser, proc_status_ids,  # noqa: E402
                            require_root, run_tests)


def test_daemons_unprivileged_and_chrooted():
    require_root()
    stork = pwd.getpwnam("stork")
    with StorkInstance(root_mode=True) as st, TempUser(st.dir) as user:
        st.start()
        # Keep a session open so an smtpd process surely exists.
        c = RawSMTP(st.host, st.port)
        assert c.cmd("EHLO client.test")[0] == 250
        for prog in ("smtpd", "qmgr"):
            pids = st.wait_daemon(prog)
            for pid in pids:
                uids = proc_status_ids(pid, "Uid")
                gids = proc_status_ids(pid, "Gid")
                assert uids == [stork.pw_uid] * 4, "%s pid %d uids %s" % (prog, pid, uids)
                assert gids == [stork.pw_gid] * 4, "%s pid %d gids %s" % (prog, pid, gids)
                groups = proc_status_ids(pid, "Groups") if _has_groups(pid) else []
                assert set(groups) <= {stork.pw_gid}, "%s keeps groups %s" % (prog, groups)
        for pid in st.daemons("smtpd"):
            root = os.readlink("/proc/%d/root" % pid)
            assert os.path.realpath(root) == os.path.realpath(st.queue_dir), \
                "smtpd pid %d root is %s, not %s" % (pid, root, st.queue_dir)
        for pid in st.daemons("qmgr"):
            assert os.readlink("/proc/%d/root" % pid) == "/", "qmgr should not be chrooted"
        assert proc_status_ids(st.master_pid, "Uid")[1] == 0
        c.cmd("QUIT")
        c.close()

        # Delivery to a system user: the file is the user's, and so is
        # every directory local created.
        rcpt = "%s@%s" % (user.name, st.local_domain)
        st.send("s@client.test", rcpt, b"Subject: priv\r\n\r\nowned by the user\r\n")
        msgs = st.wait_for_maildir(user.maildir, 1)
        s = os.stat(msgs[0])
        assert (s.st_uid, s.st_gid) == (user.uid, user.gid), (s.st_uid, s.st_gid)
        assert s.st_mode & 0o002 == 0, "world-writable mail file: %s" % oct(s.st_mode)
        for sub in ("tmp", "new", "cur"):
            assert os.stat(os.path.join(user.maildir, sub)).st_uid == user.uid
        # local runs as root only to switch: no long-lived local process
        # keeps root privileges while writing (its euid is checked by the
        # file owner above); the queue file is gone.
        st.wait_queue_empty()


def _has_groups(pid):
    with open("/proc/%d/status" % pid) as f:
        return any(l.startswith("Groups:") and l.split()[1:] for l in f)


def test_queue_permissions():
    """private/ is reachable only by mail_owner; maildrop/ is the sticky,
    group-writable drop box; queue files are not world-readable."""
    require_root()
    stork = pwd.getpwnam("stork")
    with StorkInstance(root_mode=True) as st:
        st.start()
        priv = os.stat(os.path.join(st.queue_dir, "private"))
        assert priv.st_uid == stork.pw_uid and priv.st_mode & 0o077 == 0, oct(priv.st_mode)
        for q in ("incoming", "active", "deferred", "hold", "corrupt"):
            s = os.stat(os.path.join(st.queue_dir, q))
            assert s.st_uid == stork.pw_uid and s.st_mode & 0o007 == 0, (q, oct(s.st_mode))


if __name__ == "__main__":
    run_tests(globals())
