#!/usr/bin/env python3
"""qmgr_test - qmgr under a fake master with a fake local agent.

Usage: qmgr_test.py QMGR_BINARY QMGR_TEST_AGENT_BINARY

Checks: incoming -> active -> delivered -> removed; 4xx defers with
backoff and is retried; 5xx produces a bounce that is itself delivered;
a null-sender failure is not bounced; smtp recipients are deferred when
no smtp agent exists; list/hold/release/delete/flush; kill -9 of qmgr in
the middle of a batch loses nothing; SIGTERM leaves a trusted index.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

QMGR, TOOL = sys.argv[1], sys.argv[2]
DEADLINE = time.time() + 150
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for(pred, timeout=20.0, step=0.05):
    end = min(time.time() + timeout, DEADLINE)
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Instance:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="qmgr_test.")
        self.conf = os.path.join(self.top, "etc")
        self.q = os.path.join(self.top, "spool")
        self.out = os.path.join(self.top, "out")
        self.log = os.path.join(self.top, "maillog")
        for d in (self.conf, self.out):
            os.makedirs(d)
        for d in ("incoming", "active", "deferred", "hold", "corrupt", "private", "public"):
            os.makedirs(os.path.join(self.q, d))
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(f"""queue_directory = {self.q}
maillog_file = {self.log}
myhostname = mx.example.test
mydestination = localhost, mx.example.test
alias_maps =
alias_database =
minimal_backoff_time = 1s
maximal_backoff_time = 2s
local_transport_limit = 3
""")
        self.sock_path = os.path.join(self.q, "public", "qmgr")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.sock_path)
        self.lsock.listen(64)
        self.qmgr = None
        self.agent = subprocess.Popen([TOOL, "agent", self.q, self.out], stdout=subprocess.PIPE)
        self.agent.stdout.readline()

    def start_qmgr(self):
        rfd, wfd = os.pipe()
        lfd = self.lsock.fileno()

        def fds():
            # via high numbers: either source may already be 3 or 4
            hw, hl = os.dup2(wfd, 100), os.dup2(lfd, 101)
            os.dup2(hw, 3)
            os.dup2(hl, 4)
            os.close(hw)
            os.close(hl)
        self.status_r = rfd
        self.qmgr = subprocess.Popen([QMGR, "-c", self.conf, "-n", "qmgr", "-t", "unix", "-w", "300"],
                                     preexec_fn=fds, close_fds=False)
        os.close(wfd)
        check(wait_for(lambda: os.path.exists(os.path.join(self.q, "index", "queue.db"))), "qmgr started")

    def stop_qmgr(self, sig):
        self.qmgr.send_signal(sig)
        rc = self.qmgr.wait(timeout=20)
        if sig == signal.SIGTERM:
            check(rc == 0, f"qmgr exits 0 on SIGTERM ({rc})")
        os.close(self.status_r)
        self.qmgr = None

    def tool(self, *args, stdin=b"", env=None):
        r = subprocess.run([TOOL, *args], input=stdin, stdout=subprocess.PIPE, timeout=30, env=env)
        return r.stdout.decode()

    def enqueue(self, sender, rcpts, body, notify=True, arrival=None):
        env = dict(os.environ, QMGR_TEST_ARRIVAL=str(arrival)) if arrival else None
        qid = self.tool("enqueue", self.q, sender, *rcpts, stdin=body, env=env).strip()
        if notify:
            self.tool("notify", self.sock_path, qid)
        return qid

    def notify_many(self, qids):
        """QMGR_NEW frames over one connection, framed by hand (fast)"""
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(self.sock_path)
        hdr = b""
        while len(hdr) < 12:                    # the server's HELLO first
            hdr += c.recv(12 - len(hdr))
        n = struct.unpack("<I", hdr[:4])[0]
        while n > 0:
            n -= len(c.recv(n))
        for q in qids:
            b = q.encode()
            payload = struct.pack("<HBI", 4, 2, len(b)) + b          # QID, STR
            c.sendall(struct.pack("<IHHI", len(payload), 2, 0, 0) + payload)   # QMGR_NEW
        c.close()

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def files(self, queue):
        return sorted(n for n in os.listdir(os.path.join(self.q, queue)) if not n.startswith("t."))

    def delivered(self, qid):
        return sorted(n for n in os.listdir(self.out) if n.startswith(qid + "."))

    def close(self):
        if self.qmgr:
            self.qmgr.kill()
            self.qmgr.wait()
        self.agent.kill()
        self.agent.wait()


def test_flow(inst):
    body = b"Subject: test\r\nFrom: a@b\r\n\r\n8-bit \xc3\xa9\xff body\r\n.leading dot\r\n"
    qid = inst.enqueue("sender@mx.example.test", ["ok1@localhost", "ok2@mx.example.test"], body)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "two local recipients delivered and removed")
    got = inst.delivered(qid)
    check(len(got) == 2, f"agent saw both recipients once ({got})")
    check(all(open(os.path.join(inst.out, n), "rb").read() == body for n in got), "content byte-exact at the agent")
    check(f"{qid}: from=<sender@mx.example.test>, size={len(body)}, nrcpt=2 (queue active)" in inst.logtext(),
          "from= log line in Postfix shape")
    check(not inst.files("incoming") and not inst.files("active"), "incoming/ and active/ empty")

    # 4xx once, then success after the backoff
    qid = inst.enqueue("sender@localhost", ["tmp@localhost"], b"Subject: t\r\n\r\nx\r\n")
    check(wait_for(lambda: qid in inst.files("deferred"), 10), "4xx -> deferred/")
    st = os.stat(os.path.join(inst.q, "deferred", qid)) if qid in inst.files("deferred") else None
    check(st is not None and st.st_mtime > time.time() - 0.5, "deferred file mtime is the next attempt")
    lst = inst.tool("list", inst.sock_path)
    check(qid in lst and "mailbox temporarily unavailable" in lst, "list shows the deferral reason")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext(), 15), "retried after backoff and removed")
    check(len(inst.delivered(qid)) == 1, "delivered once after retry")

    # 5xx: a bounce to the sender, itself delivered
    orig = b"Subject: will fail\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
    qid = inst.enqueue("owner@localhost", ["fail@localhost", "ok3@localhost"], orig)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "partly failed message removed")
    log = inst.logtext()
    bq = None
    for line in log.splitlines():
        if f"{qid}: sender non-delivery notification: " in line:
            bq = line.rsplit(" ", 1)[1]
    check(bq is not None, "bounce queued")
    if bq:
        check(wait_for(lambda: f"{bq}: removed" in inst.logtext()), "bounce delivered and removed")
        check(f"{bq}: from=<>," in inst.logtext(), "bounce comes from the null sender")
        b = inst.delivered(bq)
        text = open(os.path.join(inst.out, b[0]), "rb").read().decode() if b else ""
        for want in ("multipart/report", "report-type=delivery-status", "Reporting-MTA: dns; mx.example.test",
                     "Final-Recipient: rfc822; fail@localhost", "Action: failed", "Status: 5.1.1",
                     "Diagnostic-Code: X-Stork; unknown user", "text/rfc822-headers", "Subject: will fail",
                     "Arrival-Date: "):
            check(want in text, f"bounce contains {want!r}")
        check("ok3@localhost" not in text.split("message/delivery-status")[-1], "delivered recipient not in report")

    # null sender failure: never bounce a bounce
    qid = inst.enqueue("", ["fail2@localhost"], b"Subject: x\r\n\r\ny\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "null-sender failure removed")
    check(f"{qid}: sender is the null sender" in inst.logtext(), "null-sender failure not bounced")

    # remote recipient without an smtp agent
    qid = inst.enqueue("s@localhost", ["someone@example.com"], b"Subject: r\r\n\r\nz\r\n")
    check(wait_for(lambda: qid in inst.files("deferred"), 10), "remote recipient deferred")
    check(f"{qid}: to=<someone@example.com>, relay=none" in inst.logtext()
          and "status=deferred (delivery temporarily suspended: transport smtp unavailable)" in inst.logtext(),
          "qmgr logs its own to= deferral line")
    r = inst.tool("control", inst.sock_path, "hold", qid)
    check(r.startswith("0 1"), f"hold accepted ({r.strip()})")
    check(wait_for(lambda: qid in inst.files("hold"), 10), "held message in hold/")
    check(f"{qid} hold" in inst.tool("list", inst.sock_path), "list shows hold")
    r = inst.tool("control", inst.sock_path, "release", qid)
    check(r.startswith("0 1") and qid in inst.files("deferred") + inst.files("active"), "release")
    r = inst.tool("control", inst.sock_path, "bogus", qid)
    check(r.startswith("1 "), "unknown op refused")
    r = inst.tool("control", inst.sock_path, "hold", "../../etc")
    check(r.startswith("1 "), "bad queue id refused")
    wait_for(lambda: qid in inst.files("deferred"), 10)
    r = inst.tool("control", inst.sock_path, "delete", qid)
    check(r.startswith("0 1"), "delete")
    check(wait_for(lambda: qid not in inst.files("deferred") + inst.files("active"), 10), "deleted file gone")
    r = inst.tool("control", inst.sock_path, "flush")
    check(r.startswith("0 "), "flush answered")

    # expired: a deferral of a message older than maximal_queue_lifetime bounces
    qid = inst.enqueue("old@localhost", ["tmp-old@localhost"], b"Subject: old\r\n\r\nx\r\n",
                       arrival=int(time.time()) - 6 * 86400)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "expired message removed")
    check(f"{qid}: from=<old@localhost>, status=expired, returned to sender" in inst.logtext(), "expiry logged")
    check(f"{qid}: sender non-delivery notification" in inst.logtext(), "expired message bounced")

    # requeue and the rebuild control op; a deferred message survives a rebuild
    qid = inst.enqueue("s@localhost", ["far@example.net"], b"Subject: r2\r\n\r\nz\r\n")
    check(wait_for(lambda: qid in inst.files("deferred"), 10), "second remote message deferred")
    mtime = int(os.stat(os.path.join(inst.q, "deferred", qid)).st_mtime)
    r = inst.tool("control", inst.sock_path, "rebuild")
    check(r.startswith("0 "), "rebuild answered")
    lst = inst.tool("list", inst.sock_path)
    check(f"{qid} deferred <s@localhost> {mtime} far@example.net(" in lst
          or f"{qid} active" in lst, "rebuilt entry keeps the next attempt (mtime)")
    r = inst.tool("control", inst.sock_path, "requeue", "ALL", "deferred")
    check(r.startswith("0 1"), f"requeue ALL deferred ({r.strip()})")
    check(wait_for(lambda: inst.logtext().count(f"{qid}: from=") >= 2, 10), "requeued message scheduled again")
    wait_for(lambda: qid in inst.files("deferred"), 10)
    inst.tool("control", inst.sock_path, "delete", "ALL")
    check(wait_for(lambda: not inst.files("deferred"), 10), "delete ALL")

    # a torn file goes to corrupt/, qmgr carries on
    good = inst.enqueue("s@localhost", ["ok-torn@localhost"], b"Subject: t\r\n\r\nbody\r\n", notify=False)
    path = os.path.join(inst.q, "incoming", good)
    data = open(path, "rb").read()
    torn = good[:-1] + ("0" if good[-1] != "0" else "1")
    with open(os.path.join(inst.q, "incoming", torn), "wb") as f:
        f.write(data[:-3])
    inst.notify_many([torn, good])
    check(wait_for(lambda: torn in inst.files("corrupt")), "torn file moved to corrupt/")
    check(wait_for(lambda: f"{good}: removed" in inst.logtext()), "qmgr carries on after a corrupt file")
    os.unlink(os.path.join(inst.q, "corrupt", torn))

    # an abandoned temp file older than an hour is removed at the next start
    stale = os.path.join(inst.q, "incoming", "t.0000000000000000")
    open(stale, "w").close()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = os.path.join(inst.q, "incoming", "t.0000000000000001")
    open(fresh, "w").close()

    # a lost notice: the file is found at the next start (below) or scan
    return inst.enqueue("s@localhost", ["ok-lost@localhost"], b"Subject: lost\r\n\r\nq\r\n", notify=False)


def test_agent_crash(inst):
    """kill -9 of the delivery agents mid-delivery: deferred, then delivered"""
    qids = [inst.enqueue("s@localhost", [f"slow-a{i}@localhost"], b"Subject: a\r\n\r\nb\r\n", notify=False)
            for i in range(6)]
    inst.notify_many(qids)
    time.sleep(0.15)
    with open(f"/proc/{inst.agent.pid}/task/{inst.agent.pid}/children") as f:
        kids = [int(p) for p in f.read().split()]
    for k in kids:
        os.kill(k, signal.SIGKILL)
    check(len(kids) > 0, f"killed {len(kids)} agent processes")
    check(wait_for(lambda: all(f"{q}: removed" in inst.logtext() for q in qids), 30),
          "messages delivered after the agents were killed")
    check("unknown mail transport error" in inst.logtext(), "lost agent: recipients deferred")
    check(all(inst.delivered(q) for q in qids), "agent crash lost nothing")


def test_crash(inst, lost_qid):
    # SIGTERM: clean index, trusted at the next start
    inst.stop_qmgr(signal.SIGTERM)
    n_rebuild = inst.logtext().count("queue index is not clean")
    inst.start_qmgr()
    check(wait_for(lambda: f"{lost_qid}: removed" in inst.logtext()), "incoming file without a notice found at start")
    check(inst.logtext().count("queue index is not clean") == n_rebuild, "index trusted after SIGTERM")
    check(not os.path.exists(os.path.join(inst.q, "incoming", "t.0000000000000000")), "stale temp file removed")
    check(os.path.exists(os.path.join(inst.q, "incoming", "t.0000000000000001")), "fresh temp file kept")
    os.unlink(os.path.join(inst.q, "incoming", "t.0000000000000001"))

    # kill -9 in the middle of a batch of slow deliveries
    qids = [inst.enqueue("s@localhost", [f"slow{i}@localhost"], f"Subject: {i}\r\n\r\nbody {i}\r\n".encode(),
                         notify=False) for i in range(24)]
    inst.notify_many(qids)
    wait_for(lambda: sum(1 for q in qids if inst.delivered(q)) >= 3, 20)
    inst.stop_qmgr(signal.SIGKILL)
    before = sum(1 for q in qids if inst.delivered(q))
    check(0 < before < len(qids), f"killed mid-batch ({before}/{len(qids)} delivered)")
    time.sleep(0.5)
    inst.start_qmgr()
    check(wait_for(lambda: all(f"{q}: removed" in inst.logtext() for q in qids), 60), "all messages finished after restart")
    check(all(inst.delivered(q) for q in qids), "every message delivered at least once")
    dups = sum(len(inst.delivered(q)) - 1 for q in qids)
    check(dups <= 10, f"duplicates only for in-flight work ({dups})")
    check("queue index is not clean" in inst.logtext(), "index rebuilt after kill -9")
    for d in ("incoming", "active", "deferred", "corrupt"):
        check(not inst.files(d), f"{d}/ empty at the end")


def main():
    inst = Instance()
    try:
        inst.start_qmgr()
        lost = test_flow(inst)
        test_agent_crash(inst)
        test_crash(inst, lost)
    finally:
        inst.close()
        if failures:
            print("---- maillog ----")
            print(inst.logtext()[-6000:])
        if os.environ.get("QMGR_TEST_LOG"):
            print(inst.logtext())
        shutil.rmtree(inst.top, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
