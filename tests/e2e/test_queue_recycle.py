#!/usr/bin/env python3
"""Queue-file recycling (queue_file_recycle_limit): qmgr keeps a delivered
message's file in recycle/, the next message reuses it under a new queue
id, and what is delivered is exactly the new message, never the longer
tail of the old one. A spent file that could look complete (mode not
0600, as a crash can leave it) is removed when qmgr starts and never
reused; with the limit at 0 files are deleted as before."""

import os
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (StorkInstance, maildir_messages, read_bytes, run_tests,  # noqa: E402
                            split_added_headers, wait_until)


def recycle_dir(st):
    return os.path.join(st.queue_dir, "recycle")


def spent_files(st):
    """{name: inode} of the files in recycle/."""
    d = recycle_dir(st)
    return {n: os.lstat(os.path.join(d, n)).st_ino for n in sorted(os.listdir(d))}


def next_second():
    """A writer reads recycle/ at most once a second when it knows no
    names there."""
    time.sleep(1.1)


def body_of(path):
    _, rest = split_added_headers(read_bytes(path))
    return rest


def deliver(st, user, message, n):
    code, _ = st.send("sender@client.test", st.vaddr(user), message)
    assert code == 250
    msgs = st.wait_for_maildir(st.vmaildir(user), n)
    st.wait_queue_empty()
    return sorted(msgs, key=os.path.getmtime)[-1]


def test_reuse_delivers_only_the_new_message():
    with StorkInstance() as st:
        st.start()
        big = b"Subject: big\r\n\r\n" + b"".join(
            b"old line %06d of the earlier, longer message\r\n" % i for i in range(2500))
        deliver(st, "alice", big, 1)
        wait_until(lambda: len(spent_files(st)) == 1, 10, what="the spent file in recycle/")
        (old_name, ino), = spent_files(st).items()
        mode = os.lstat(os.path.join(recycle_dir(st), old_name)).st_mode
        assert stat.S_IMODE(mode) == 0o600, oct(mode)
        big_size = os.lstat(os.path.join(recycle_dir(st), old_name)).st_size

        next_second()
        small = b"Subject: small\r\n\r\nthe new message\r\n"
        got = body_of(deliver(st, "bob", small, 1))
        assert got == small.replace(b"\r\n", b"\n"), got[:300]
        # The same file came back under the small message's id, still as
        # long as the big one was (nothing was truncated or freed).
        wait_until(lambda: len(spent_files(st)) == 1, 10, what="the file back in recycle/")
        (new_name, new_ino), = spent_files(st).items()
        assert new_ino == ino and new_name != old_name, (old_name, new_name)
        assert os.lstat(os.path.join(recycle_dir(st), new_name)).st_size == big_size
        log = st.read_log()
        assert "%s: removed" % old_name in log and "%s: removed" % new_name in log
        assert new_name + ": client=" in log, "the reused file's new id was not logged"
        assert st.queue_files()["corrupt"] == []


def test_spent_file_that_looks_complete_is_removed_at_start():
    with StorkInstance() as st:
        st.start()
        deliver(st, "alice", b"Subject: one\r\n\r\nfirst\r\n", 1)
        wait_until(lambda: len(spent_files(st)) == 1, 10, what="the spent file in recycle/")
        st.stop()
        # A crash kept qmgr's rename but lost its chmod: the file (a
        # complete, delivered message) must not come back.
        (name, _), = spent_files(st).items()
        os.chmod(os.path.join(recycle_dir(st), name), 0o700)
        st.start()
        wait_until(lambda: spent_files(st) == {}, 10, what="qmgr to remove the file")
        next_second()
        deliver(st, "bob", b"Subject: two\r\n\r\nsecond\r\n", 1)
        time.sleep(1)
        assert len(maildir_messages(st.vmaildir("alice"))) == 1
        assert st.queue_files()["corrupt"] == []


def test_reused_file_survives_kill9():
    """A message acknowledged in a reused file is still queued, whole,
    after every process was killed with SIGKILL and the instance
    restarted (its destination refuses connections, so it waits)."""
    with StorkInstance(extra_main_cf={"default_transport": "smtp:[127.0.0.1]:9"}) as st:
        st.start()
        deliver(st, "alice", b"Subject: one\r\n\r\nfirst\r\n", 1)
        wait_until(lambda: len(spent_files(st)) == 1, 10, what="the spent file in recycle/")
        next_second()
        code, resp = st.send("sender@client.test", "someone@remote.example",
                             b"Subject: two\r\n\r\nkept in a reused file\r\n")
        qid = resp.decode().rsplit(" ", 1)[-1]
        assert code == 250 and spent_files(st) == {}, spent_files(st)
        st.kill_all()
        st.start()
        wait_until(lambda: qid in st.run("storkqueue", "-j").stdout, 15,
                   what="%s listed after the restart" % qid)
        body = st.run("storkcat", "-b", qid, check=True).stdout
        assert body == "kept in a reused file\n", body
        assert st.queue_files()["corrupt"] == []


def test_limit_zero_deletes():
    with StorkInstance(extra_main_cf={"queue_file_recycle_limit": "0"}) as st:
        st.start()
        deliver(st, "alice", b"Subject: one\r\n\r\nfirst\r\n", 1)
        time.sleep(0.5)
        assert spent_files(st) == {}


if __name__ == "__main__":
    run_tests(globals())
