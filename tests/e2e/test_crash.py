#!/usr/bin/env python3
"""Crash test: while several clients send 1,000 messages, SIGKILL smtpd,
qmgr and local several times each and once the whole process tree (then
start it again). Afterwards every message that got a 250 is in a Maildir,
duplicates are only the few deliveries that were in flight, and no queue
file went to corrupt/.

Each message carries a unique token; a token is "acked" when its DATA got
250. Tokens whose transaction broke may or may not be delivered (both are
fine). Counts are printed for the closing note."""

import collections
import os
import re
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (StorkInstance, maildir_messages, read_bytes, run_tests,  # noqa: E402
                            wait_until)

TOTAL = int(os.environ.get("STORK_CRASH_MESSAGES", "1000"))
SENDERS = 4
USERS = ["u%d" % i for i in range(5)]
LOAD_SECONDS = float(os.environ.get("STORK_CRASH_SECONDS", "15"))  # pace of the load
SEND_DEADLINE = 150      # seconds for the whole load, at most
DRAIN_TIMEOUT = 90       # seconds for the queue to empty afterwards
TOKEN_RX = re.compile(rb"X-Crash-Token: (c\d+-\d+)")


class Load:
    def __init__(self, st):
        self.st = st
        self.lock = threading.Lock()
        self.acked = set()
        self.broken = 0        # transactions that failed without a verdict
        self.refused = 0       # definite 4xx/5xx answers
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + SEND_DEADLINE

    def sender(self, n, count):
        st = self.st
        conn = None
        seq = 0
        while seq < count and time.monotonic() < self.deadline:
            # Pace the load over LOAD_SECONDS so the kills land during it.
            due = self.t0 + LOAD_SECONDS * seq / count
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            token = "c%d-%d" % (n, seq)
            seq += 1
            rcpt = st.vaddr(USERS[seq % len(USERS)])
            msg = ("From: load@client.test\r\nTo: %s\r\nSubject: load %s\r\n"
                   "Message-ID: <%s@client.test>\r\nX-Crash-Token: %s\r\n\r\n"
                   "body of %s\r\n" % (rcpt, token, token, token, token)).encode()
            try:
                if conn is None:
                    conn = smtplib.SMTP(st.host, st.port, timeout=20)
                    conn.ehlo("client.test")
                code, _ = conn.mail("load@client.test")
                if code != 250:
                    raise smtplib.SMTPResponseException(code, "MAIL")
                code, _ = conn.rcpt(rcpt)
                if code != 250:
                    raise smtplib.SMTPResponseException(code, "RCPT")
                code, _ = conn.data(msg)
                if code == 250:
                    with self.lock:
                        self.acked.add(token)
                else:
                    with self.lock:
                        self.refused += 1
                    conn.rset()
            except smtplib.SMTPResponseException as e:
                with self.lock:
                    self.refused += 1
                if e.smtp_code in (421,) or e.smtp_code < 0:
                    conn = _close(conn)
                else:
                    try:
                        conn.rset()
                    except Exception:
                        conn = _close(conn)
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.broken += 1
                conn = _close(conn)
                time.sleep(0.1)       # the master may be restarting
        _close(conn)


def _close(conn):
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass
    return None


def killer(st, load, log):
    """Kill each daemon kind several times, and the whole tree once."""
    plan = ["smtpd", "qmgr", "local"] * 3
    plan.insert(5, "TREE")
    pause = LOAD_SECONDS / (len(plan) + 1)
    time.sleep(pause)
    for what in plan:
        if load.stop.is_set():
            break
        if what == "TREE":
            st.kill_all()
            log.append(("tree", 1))
            time.sleep(0.5)
            st.start(timeout=30)
        else:
            # local runs only while delivering: wait a little for one
            pids = []
            t_end = time.monotonic() + 3
            while not pids and time.monotonic() < t_end and not load.stop.is_set():
                pids = st.kill(what)
                if not pids:
                    time.sleep(0.05)
            log.append((what, len(pids)))
        time.sleep(pause)


def tokens_delivered(st):
    counts = collections.Counter()
    for u in USERS:
        for path in maildir_messages(st.vmaildir(u)):
            m = TOKEN_RX.search(read_bytes(path))
            if m:
                counts[m.group(1).decode()] += 1
    return counts


def test_crash_under_load():
    users = {u: "x" for u in USERS}
    with StorkInstance(virtual_users=users) as st:
        st.tolerate_exits = True
        st.start()
        load = Load(st)
        kills = []
        per = TOTAL // SENDERS
        threads = [threading.Thread(target=load.sender, args=(n, per), daemon=True)
                   for n in range(SENDERS)]
        kt = threading.Thread(target=killer, args=(st, load, kills), daemon=True)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        kt.start()
        for t in threads:
            t.join(SEND_DEADLINE + 30)
        kt.join(60)             # the kill plan runs to its end
        load.stop.set()
        send_time = time.monotonic() - t0
        assert not kt.is_alive(), "killer thread hung"
        if st.proc is None or st.proc.poll() is not None:
            st.proc = None
            st.start()
        # Flush retries (backoff is short in tests) until the queue drains.
        t1 = time.monotonic()
        def drained():
            if st.queue_count() == 0:
                return True
            st.run("storkqueue", "-f")
            return False
        try:
            wait_until(drained, DRAIN_TIMEOUT, interval=2, what="the queue to drain")
        except AssertionError:
            qf = st.queue_files()
            print("queue not drained: %s" % {q: len(f) for q, f in qf.items()})
            log = st.read_log()
            unseen = [n for n in qf["incoming"] if not st.uncommitted("incoming", n)
                      and "%s: from=<" % n not in log]
            if unseen:
                print("%d of them in incoming/ were never taken by qmgr (no 'from=' line): "
                      "their QMGR_NEW notice was lost, and qmgr scans incoming/ only on its "
                      "wakeup; e.g. %s" % (len(unseen), unseen[:3]))
            raise
        drain_time = time.monotonic() - t1
        counts = tokens_delivered(st)
        acked = load.acked
        missing = sorted(t for t in acked if counts[t] == 0)
        dups = {t: c for t, c in counts.items() if c > 1}
        corrupt = st.queue_files()["corrupt"]
        kill_summary = collections.Counter()
        for what, n in kills:
            kill_summary[what] += 1 if n else 0
        print("crash test: attempted %d, acked %d, refused %d, broken %d, delivered distinct %d, "
              "delivered unacked %d, duplicates %d (extra copies %d), missing %d, corrupt %d, "
              "left-over temp files %d; "
              "kills %s; send %.1fs, drain %.1fs"
              % (TOTAL, len(acked), load.refused, load.broken, len(counts),
                 len(set(counts) - acked), len(dups), sum(c - 1 for c in dups.values()),
                 len(missing), len(corrupt), len(st.temp_files()), dict(kill_summary),
                 send_time, drain_time))
        assert not missing, "acknowledged but lost: %s" % missing[:20]
        assert not corrupt, "corrupt queue files: %s" % corrupt
        assert len(acked) >= TOTAL // 2, "too few messages accepted under load: %d" % len(acked)
        assert kill_summary["smtpd"] >= 2 and kill_summary["qmgr"] >= 2, kill_summary
        # Duplicates only for deliveries in flight when local or qmgr (or
        # the tree) died: a small number per kill.
        in_flight_kills = kill_summary["local"] + kill_summary["qmgr"] + kill_summary["tree"]
        assert sum(c - 1 for c in dups.values()) <= 20 * max(1, in_flight_kills), dups
        # The instance is still healthy.
        st.send("after@client.test", st.vaddr("u0"), b"Subject: after\r\n\r\nafter\r\n")


if __name__ == "__main__":
    run_tests(globals(), per_test_timeout=290)
