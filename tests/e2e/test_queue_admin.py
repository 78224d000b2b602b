#!/usr/bin/env python3
"""Queue administration: storkqueue -p/-j/-f and storksuper -h/-H/-r/-d on
messages that are stuck in the queue (their virtual Maildir path is a
plain file, so local delivery defers them)."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (StorkInstance, maildir_messages, read_bytes, run_tests,  # noqa: E402
                            wait_until)


def all_ids(st):
    qf = st.queue_files()
    return {os.path.basename(n): q for q, names in qf.items() for n in names
            if not os.path.basename(n).startswith("t.")}


def queue_of(st, qid):
    return all_ids(st).get(qid)


def send_stuck(st, token):
    """Send one message to the stuck mailbox; return its queue id once the
    first delivery attempt has deferred it."""
    before = set(all_ids(st))
    st.send("admin-test@client.test", st.vaddr("stuck"),
            ("Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\nbody %s\r\n"
             % (token, token, token)).encode())
    new = wait_until(lambda: set(all_ids(st)) - before, 10, what="a new queue file")
    assert len(new) == 1, new
    qid = new.pop()
    wait_until(lambda: queue_of(st, qid) == "deferred", 20,
               what="%s deferred (now in %s)" % (qid, queue_of(st, qid)))
    return qid


def storkqueue(st, *args):
    return st.run("storkqueue", *args, check=True)


def storksuper(st, *args):
    return st.run("storksuper", *args, check=True)


def json_entries(st):
    out = storkqueue(st, "-j").stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {e["queue_id"]: e for e in entries}


# No retries on their own during the test: every attempt after the first
# is one the test asked for.
SLOW_RETRY = {"minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
              "queue_run_delay": "300s"}


def test_queue_admin():
    with StorkInstance(virtual_users={"alice": "x", "stuck": "x"},
                       extra_main_cf=SLOW_RETRY) as st:
        # The Maildir path of stuck@virt.test is a file: delivery defers.
        stuck_dir = st.vmaildir("stuck")
        os.makedirs(os.path.dirname(stuck_dir), exist_ok=True)
        with open(stuck_dir, "w") as f:
            f.write("not a directory\n")
        if st.root_mode:
            import pwd
            pw = pwd.getpwnam("vmail")
            os.chown(os.path.dirname(stuck_dir), pw.pw_uid, pw.pw_gid)
        st.start()
        m1 = send_stuck(st, "adm-m1")
        m2 = send_stuck(st, "adm-m2")
        m3 = send_stuck(st, "adm-m3")

        # -p: mailq layout with the deferral reason
        out = storkqueue(st, "-p").stdout
        for qid in (m1, m2, m3):
            assert re.search(r"^%s[ *]?\s+\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d\s+"
                             r"admin-test@client\.test$" % qid, out, re.M), out
        assert "stuck@virt.test" in out and re.search(r"^\s*\(.+\)$", out, re.M), out
        assert re.search(r"-- \d+ Kbytes in 3 Requests\.", out), out

        # -h: hold, shown with '!' in -p and queue_name "hold" in -j
        storksuper(st, "-h", m1)
        wait_until(lambda: queue_of(st, m1) == "hold", 10, what="m1 in hold/")
        out = storkqueue(st, "-p").stdout
        assert re.search(r"^%s!" % m1, out, re.M), out
        e = json_entries(st)
        assert e[m1]["queue_name"] == "hold", e[m1]
        assert e[m1]["sender"] == "admin-test@client.test", e[m1]
        assert e[m1]["recipients"][0]["address"] == "stuck@virt.test", e[m1]
        assert isinstance(e[m1]["arrival_time"], int) and e[m1]["message_size"] > 0, e[m1]
        assert e[m2]["queue_name"] == "deferred", e[m2]
        assert e[m2]["recipients"][0].get("delay_reason"), e[m2]
        # -i: one message is attempted now (backoff is long in this test,
        # so a new attempt can only come from -i)
        tried = lambda: len(st.log_lines(r"%s: to=<stuck@virt\.test>.*status=deferred" % m2))
        n = tried()
        storkqueue(st, "-i", m2)
        wait_until(lambda: tried() > n, 10, what="storkqueue -i to retry %s" % m2)

        # -d: delete one message; it is gone and never delivered
        storksuper(st, "-d", m3)
        wait_until(lambda: queue_of(st, m3) is None, 10, what="m3 deleted")
        assert re.search(r"%s: removed" % m3, st.read_log())
        assert m3 not in json_entries(st)

        # Make the mailbox deliverable again.
        os.unlink(stuck_dir)

        # -r: requeue m2: delivered promptly (no waiting for backoff)
        storksuper(st, "-r", m2)
        msgs = st.wait_for_maildir(stuck_dir, 1, timeout=15)
        assert b"body adm-m2" in read_bytes(msgs[0])

        # m1 stays on hold although it is deliverable now
        time.sleep(3)
        assert queue_of(st, m1) == "hold"
        assert len(maildir_messages(stuck_dir)) == 1

        # -H releases it; -f flushes; it is delivered
        storksuper(st, "-H", m1)
        wait_until(lambda: queue_of(st, m1) != "hold", 10, what="m1 released")
        storkqueue(st, "-f")
        msgs = st.wait_for_maildir(stuck_dir, 2, timeout=15)
        bodies = b"".join(read_bytes(m) for m in msgs)
        assert b"body adm-m1" in bodies and b"body adm-m3" not in bodies
        st.wait_queue_empty()
        out = storkqueue(st, "-p").stdout
        assert "Mail queue is empty" in out, out
        assert json_entries(st) == {}


def test_delete_all_in_hold():
    with StorkInstance(virtual_users={"stuck": "x"}) as st:
        stuck_dir = st.vmaildir("stuck")
        os.makedirs(os.path.dirname(stuck_dir), exist_ok=True)
        open(stuck_dir, "w").close()
        st.start()
        ids = [send_stuck(st, "all-%d" % i) for i in range(3)]
        storksuper(st, "-h", "ALL")
        wait_until(lambda: all(queue_of(st, q) == "hold" for q in ids), 10, what="all held")
        storksuper(st, "-d", "ALL", "hold")
        wait_until(lambda: all(queue_of(st, q) is None for q in ids), 10, what="all deleted")
        assert "Mail queue is empty" in storkqueue(st, "-p").stdout


if __name__ == "__main__":
    run_tests(globals())
