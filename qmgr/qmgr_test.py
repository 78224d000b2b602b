#!/usr/bin/env python3
"""qmgr_test - qmgr under a fake master with a fake local agent.

Usage: qmgr_test.py QMGR_BINARY QMGR_TEST_AGENT_BINARY BOUNCE_BINARY

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

QMGR, TOOL, BOUNCE = sys.argv[1], sys.argv[2], sys.argv[3]
DEADLINE = time.time() + 170
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


def start_daemon(binary, conf, name, sock_path):
    """run a daemon the way the master does: fd 3 status pipe, fd 4 listener"""
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(sock_path)
    lsock.listen(64)
    rfd, wfd = os.pipe()
    lfd = lsock.fileno()

    def fds():
        hw, hl = os.dup2(wfd, 100), os.dup2(lfd, 101)
        os.dup2(hw, 3)
        os.dup2(hl, 4)
        os.close(hw)
        os.close(hl)
    p = subprocess.Popen([binary, "-c", conf, "-n", name, "-t", "unix"], preexec_fn=fds, close_fds=False)
    os.close(wfd)
    return p, lsock, rfd


class Instance:
    def __init__(self, extra_cf="", agents=()):
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
""" + extra_cf)
        self.sock_path = os.path.join(self.q, "public", "qmgr")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.sock_path)
        self.lsock.listen(64)
        self.qmgr = None
        self.agent = subprocess.Popen([TOOL, "agent", self.q, self.out], stdout=subprocess.PIPE)
        self.agent.stdout.readline()
        self.more_agents = []
        for sock, proto in agents:
            a = subprocess.Popen([TOOL, "agent", self.q, self.out, sock, proto], stdout=subprocess.PIPE)
            a.stdout.readline()
            self.more_agents.append(a)
        self.bounce, self.bsock, self.bstatus = start_daemon(
            BOUNCE, self.conf, "bounce", os.path.join(self.q, "private", "bounce"))

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
        for p in [self.agent, self.bounce] + self.more_agents:
            p.kill()
            p.wait()

    def lines(self, name):
        try:
            with open(os.path.join(self.out, name)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def notice_of(self, qid, what="sender non-delivery notification"):
        for line in self.logtext().splitlines():
            if f"{qid}: {what}: " in line:
                return line.rsplit(" ", 1)[1]
        return None

    def content(self, qid):
        got = self.delivered(qid)
        return open(os.path.join(self.out, got[0]), "rb").read() if got else b""


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
                     "Diagnostic-Code: X-Stork; unknown user", "message/rfc822", "Subject: will fail",
                     "Arrival-Date: "):
            check(want in text, f"bounce contains {want!r}")
        check("ok3@localhost" not in text.split("message/delivery-status")[-1], "delivered recipient not in report")

    # null sender failure: never bounce a bounce
    qid = inst.enqueue("", ["fail2@localhost"], b"Subject: x\r\n\r\ny\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "null-sender failure removed")
    check(wait_for(lambda: inst.notice_of(qid, "postmaster non-delivery notification") is not None, 10),
          "null-sender failure goes to the postmaster, not back to the null sender")

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
    # Under load a retry may run between the stat and the listing: the
    # entry must then carry the file's new mtime, never a made-up time.
    try:
        mtime2 = int(os.stat(os.path.join(inst.q, "deferred", qid)).st_mtime)
    except FileNotFoundError:
        mtime2 = mtime
    check(any(f"{qid} deferred <s@localhost> {t} far@example.net(" in lst for t in (mtime, mtime2))
          or f"{qid} active" in lst, "rebuilt entry keeps the next attempt (mtime)")
    r = inst.tool("control", inst.sock_path, "requeue", "ALL", "deferred")
    check(r.startswith("0 1"), f"requeue ALL deferred ({r.strip()})")
    check(wait_for(lambda: inst.logtext().count(f"{qid}: from=") >= 2, 10), "requeued message scheduled again")
    wait_for(lambda: qid in inst.files("deferred"), 10)
    inst.tool("control", inst.sock_path, "delete", "ALL")
    check(wait_for(lambda: not inst.files("deferred"), 10), "delete ALL")

    # a torn file goes to corrupt/, qmgr carries on
    # Written in a scratch spool first: a debounced scan of incoming/ may
    # take a file there before the test has read it.
    scratch = os.path.join(inst.top, "scratch")
    os.makedirs(os.path.join(scratch, "incoming"), exist_ok=True)
    good = inst.tool("enqueue", scratch, "s@localhost", "ok-torn@localhost",
                     stdin=b"Subject: t\r\n\r\nbody\r\n").strip()
    data = open(os.path.join(scratch, "incoming", good), "rb").read()
    torn = good[:-1] + ("0" if good[-1] != "0" else "1")
    with open(os.path.join(inst.q, "incoming", torn), "wb") as f:
        f.write(data[:-3])
    os.chmod(os.path.join(inst.q, "incoming", torn), 0o700)    # marked complete, yet torn
    os.rename(os.path.join(scratch, "incoming", good), os.path.join(inst.q, "incoming", good))
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
    # incoming/QID without the owner-execute bit: a writer still at work
    # (kept, never read) or one that died an hour ago (removed)
    for name, age in (("1J0000000000000A", 7200), ("1J0000000000000B", 0)):
        p = os.path.join(inst.q, "incoming", name)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, 0o600)
        os.utime(p, (time.time() - age, time.time() - age))

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
    check(not os.path.exists(os.path.join(inst.q, "incoming", "1J0000000000000A")),
          "stale uncommitted file removed")
    check(os.path.exists(os.path.join(inst.q, "incoming", "1J0000000000000B"))
          and "1J0000000000000B: from=" not in inst.logtext(), "uncommitted file left alone")
    os.unlink(os.path.join(inst.q, "incoming", "1J0000000000000B"))

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


REMOTE_CF = """relayhost = [smarthost.test]:2525
transport_maps = texthash:{conf}/transport
delay_warning_time = 3s
smtp_initial_destination_concurrency = 2
smtp_destination_concurrency_limit = 4
relay_destination_rate_delay = 1s
"""

TRANSPORT = """routed.test      relay:[10.0.0.1]:25
.sub.test        smtp:sub-hop.test
bypass.test      smtp:
slow.test        smtp:
fast.test        smtp:
down.test        smtp:
paced.test       relay:[10.0.0.9]
"""


def dsn_parts(raw):
    """RFC 3464 parsing with python's email package: (report, per-message
    fields, [per-recipient fields], returned part)"""
    import email
    m = email.message_from_bytes(raw)
    parts = m.get_payload() if m.is_multipart() else []
    status = parts[1] if len(parts) > 1 else None
    blocks = status.get_payload() if status is not None and status.is_multipart() else []
    return m, parts, (blocks[0] if blocks else {}), blocks[1:]


def test_routing(inst):
    attrs = dict(os.environ, QMGR_TEST_ATTRS="envid=ENV42;ret=HDRS;smtputf8=yes;body=8BITMIME")
    qid = inst.tool("enqueue", inst.q, "s@localhost", "ok1@elsewhere.test", "ok1@routed.test",
                    "ok1@a.sub.test", "ok1@bypass.test", "ok2@elsewhere.test",
                    stdin=b"Subject: r\r\n\r\nx\r\n", env=attrs).strip()
    inst.tool("notify", inst.sock_path, qid)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "routed message delivered")
    req = inst.lines("req.log")
    for want in ("smtp smtp [smarthost.test]:2525 3 ENV42 HDRS ok1@elsewhere.test,ok2@elsewhere.test",
                 "relay relay [10.0.0.1]:25 3 ENV42 HDRS ok1@routed.test",
                 "smtp smtp sub-hop.test 3 ENV42 HDRS ok1@a.sub.test",
                 "smtp smtp bypass.test 3 ENV42 HDRS ok1@bypass.test"):
        check(want in req, f"agent request: {want}")
    qid = inst.enqueue("s@localhost", ["ok3@localhost"], b"Subject: l\r\n\r\nx\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "local mail still local")
    check(any(l.startswith("local local localhost 0 ") and "ok3@localhost" in l for l in inst.lines("req.log")),
          "local request carries TRANSPORT local, NEXTHOP = domain, FLAGS 0")


def par_max(inst, nexthop):
    vals = [int(l.split()[1]) for l in inst.lines("par.log") if l.split()[0] == nexthop]
    return max(vals) if vals else 0


def test_concurrency(inst):
    slow = [inst.enqueue("s@localhost", [f"ok{i}@slow.test"], b"Subject: s\r\n\r\nx\r\n", notify=False)
            for i in range(12)]
    fast = [inst.enqueue("s@localhost", [f"ok{i}@fast.test"], b"Subject: f\r\n\r\nx\r\n", notify=False)
            for i in range(8)]
    t0 = time.time()
    inst.notify_many(slow + fast)
    check(wait_for(lambda: all(f"{q}: removed" in inst.logtext() for q in fast), 15), "fast destination done")
    t_fast = time.time() - t0
    slow_left = sum(1 for q in slow if f"{q}: removed" not in inst.logtext())
    check(slow_left > 0 and t_fast < 2.5, f"a slow destination does not hold up a fast one ({t_fast:.1f}s, {slow_left} slow left)")
    check(wait_for(lambda: all(f"{q}: removed" in inst.logtext() for q in slow), 30), "slow destination done")
    m = par_max(inst, "slow.test")
    check(2 <= m <= 4, f"slow.test parallel requests within the window and limit 4 ({m})")

    down = [inst.enqueue("s@localhost", [f"ok{i}@down.test"], b"Subject: d\r\n\r\nx\r\n", notify=False)
            for i in range(10)]
    inst.notify_many(down)
    check(wait_for(lambda: all(q in inst.files("deferred") for q in down), 15), "down destination: all deferred")
    log = inst.logtext()
    check("smtp destination down.test: delivery temporarily suspended: connect to down.test[127.0.0.1]:25: "
          "Connection refused" in log, "site failures mark the destination dead")
    tried = sum(1 for l in inst.lines("req.log") if l.split()[2] == "down.test")
    check(tried < len(down), f"dead destination: the rest deferred without a try ({tried} tried)")
    check("status=deferred (delivery temporarily suspended: connect to down.test" in log,
          "suspended recipients carry the site's reason")
    check(par_max(inst, "down.test") <= 2, "down.test never above its initial concurrency")
    lst = inst.tool("list", inst.sock_path)
    check(f"ok0@down.test(" in lst and "Connection refused" in lst, "list shows the per-recipient reason")
    # storkqueue -s: the destination is revived and its mail is due now
    time.sleep(1.1)
    wait_for(lambda: all(q in inst.files("deferred") for q in down), 10)
    before = sum(1 for l in inst.lines("req.log") if l.split()[2] == "down.test")
    r = inst.tool("control", inst.sock_path, "flush_site", "down.test")
    check(r.startswith("0 10 "), f"flush_site down.test schedules its 10 messages ({r.strip()})")
    check(wait_for(lambda: sum(1 for l in inst.lines("req.log") if l.split()[2] == "down.test") > before, 10),
          "flushed destination tried again")
    wait_for(lambda: all(q in inst.files("deferred") for q in down), 10)
    for q in down:
        inst.tool("control", inst.sock_path, "delete", q)

    # 4xx then success, the reason visible in between
    qid = inst.enqueue("s@localhost", ["tmp1@fast.test"], b"Subject: t\r\n\r\nx\r\n")
    check(wait_for(lambda: qid in inst.files("deferred"), 10), "remote 4xx deferred")
    check("450 4.2.0 try again later" in inst.tool("list", inst.sock_path), "list shows the remote 4xx reply")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext(), 15), "remote 4xx retried and delivered")


def test_dsn(inst):
    attrs = dict(os.environ, QMGR_TEST_ATTRS="envid=E-77")
    orig = b"Subject: to fail\r\nMessage-ID: <f@x>\r\n\r\nthe body\r\n"
    qid = inst.tool("enqueue", inst.q, "owner@localhost", "fail1@fast.test|0|rfc822;Fail1@Fast.test",
                    "ok9@fast.test", stdin=orig, env=attrs).strip()
    inst.tool("notify", inst.sock_path, qid)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "5xx message finished")
    bq = inst.notice_of(qid)
    check(bq is not None, "5xx: non-delivery notification queued")
    if bq:
        check(wait_for(lambda: inst.delivered(bq), 10), "DSN delivered to the sender")
        m, parts, per_msg, per_rcpt = dsn_parts(inst.content(bq))
        check(m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status",
              "multipart/report; report-type=delivery-status")
        check(m["Subject"] == "Undelivered Mail Returned to Sender" and m["Auto-Submitted"] == "auto-replied",
              "subject and Auto-Submitted")
        check(m["To"] == "owner@localhost", "to the original sender")
        check([p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "message/rfc822"],
              f"parts ({[p.get_content_type() for p in parts]})")
        check(per_msg.get("Reporting-MTA") == "dns; mx.example.test", "Reporting-MTA")
        check(per_msg.get("Original-Envelope-Id") == "E-77", "Original-Envelope-Id")
        check(per_msg.get("Arrival-Date") is not None, "Arrival-Date")
        check(len(per_rcpt) == 1, f"one recipient block ({len(per_rcpt)})")
        if per_rcpt:
            r = per_rcpt[0]
            check(r.get("Final-Recipient") == "rfc822; fail1@fast.test", "Final-Recipient")
            check(r.get("Original-Recipient") == "rfc822;Fail1@Fast.test", "Original-Recipient")
            check(r.get("Action") == "failed" and r.get("Status") == "5.1.1", "Action/Status")
            check(r.get("Remote-MTA") == "dns; mx.fast.test", f"Remote-MTA ({r.get('Remote-MTA')})")
            check(r.get("Diagnostic-Code") == "smtp; 550 5.1.1 <fail1@fast.test>: Recipient address rejected: "
                  "User unknown", f"Diagnostic-Code holds the remote reply ({r.get('Diagnostic-Code')})")
        human = parts[0].get_payload(decode=True).decode() if parts else ""
        check("host mx.fast.test[127.0.0.1] said: 550 5.1.1" in human, "human part quotes the remote reply")
        check(b"the body" in inst.content(bq), "original returned in full (no RET)")

    # NOTIFY=SUCCESS: local delivery and a relay without DSN; smtp "delivered" means the next hop took over
    qid = inst.enqueue("owner2@localhost", ["ok-s@localhost|2", "rel1@fast.test|2", "ok-r@fast.test|2"],
                       b"Subject: s\r\n\r\nx\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "NOTIFY=SUCCESS message finished")
    sq = None
    if wait_for(lambda: inst.notice_of(qid, "sender delivery status notification") is not None, 10):
        sq = inst.notice_of(qid, "sender delivery status notification")
    check(sq is not None, "success DSN queued")
    if sq:
        check(wait_for(lambda: inst.delivered(sq), 10), "success DSN delivered")
        m, parts, per_msg, per_rcpt = dsn_parts(inst.content(sq))
        check(m["Subject"] == "Successful Mail Delivery Report", "success subject")
        got = {r.get("Final-Recipient"): r.get("Action") for r in per_rcpt}
        check(got == {"rfc822; ok-s@localhost": "delivered", "rfc822; rel1@fast.test": "relayed"},
              f"success DSN: local delivered + relayed only ({got})")
        check(parts and parts[-1].get_content_type() == "text/rfc822-headers", "success DSN returns headers only")

    # NOTIFY=NEVER: nothing
    qid = inst.enqueue("owner3@localhost", ["fail2@fast.test|1"], b"Subject: n\r\n\r\nx\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "NOTIFY=NEVER failure finished")
    time.sleep(0.3)
    check(inst.notice_of(qid) is None, "NOTIFY=NEVER: no DSN")

    # a bounce of a bounce goes to the postmaster; a failed postmaster copy is dropped
    qid = inst.enqueue("", ["fail3@fast.test"], b"Subject: nb\r\n\r\nx\r\n")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "null-sender failure finished")
    pq = inst.notice_of(qid, "postmaster non-delivery notification")
    check(pq is not None, "null-sender failure: postmaster copy")
    if pq:
        check(wait_for(lambda: inst.delivered(pq), 10), "postmaster copy delivered")
        m, parts, _, _ = dsn_parts(inst.content(pq))
        check(m["To"] == "postmaster@mx.example.test" and m["From"].startswith("MAILER-DAEMON@"),
              "postmaster copy: to postmaster, from MAILER-DAEMON")
        check(f"{pq}: from=<>" in inst.logtext(), "postmaster copy from the null sender")
    attrs = dict(os.environ, QMGR_TEST_ATTRS="dsn_report=double")
    qid = inst.tool("enqueue", inst.q, "", "fail4@fast.test", stdin=b"Subject: dd\r\n\r\nx\r\n", env=attrs).strip()
    inst.tool("notify", inst.sock_path, qid)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext()), "failed double bounce finished")
    check(f"{qid}: undeliverable postmaster notification discarded" in inst.logtext(), "failed double bounce dropped")


def test_rate_delay(inst):
    # The clock starts before the files exist: a scan of incoming/ may
    # take them before the notices are sent.
    t0 = time.time()
    qids = [inst.enqueue("s@localhost", [f"ok{i}@paced.test"], b"Subject: p\r\n\r\nx\r\n", notify=False)
            for i in range(3)]
    inst.notify_many(qids)
    check(wait_for(lambda: all(f"{q}: removed" in inst.logtext() for q in qids), 15), "rate-delayed mail delivered")
    took = time.time() - t0
    check(took >= 1.8, f"relay_destination_rate_delay 1s spaces deliveries ({took:.1f}s for 3)")
    check(par_max(inst, "[10.0.0.9]") == 1, "rate delay: one at a time")


def test_delay_warning(inst):
    qid = inst.enqueue("late@localhost", ["tmp2@fast.test", "ok5@fast.test"], b"Subject: late\r\n\r\nx\r\n",
                       arrival=int(time.time()) - 10)
    check(wait_for(lambda: inst.notice_of(qid, "sender delay notification") is not None, 10), "delay warning sent")
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext(), 15), "late message delivered after the retry")
    check(inst.logtext().count(f"{qid}: sender delay notification") == 1, "exactly one delay warning")
    dq = inst.notice_of(qid, "sender delay notification")
    if dq:
        check(wait_for(lambda: inst.delivered(dq), 10), "delay warning delivered")
        m, parts, _, per_rcpt = dsn_parts(inst.content(dq))
        check(m["Subject"] == "Delayed Mail (still being retried)", "delay subject")
        check([r.get("Action") for r in per_rcpt] == ["delayed"] and per_rcpt[0].get("Will-Retry-Until"),
              "delay DSN: only the deferred recipient, Action delayed, Will-Retry-Until")
    # NOTIFY without DELAY: no warning
    qid = inst.enqueue("late2@localhost", ["tmp3@fast.test|4"], b"Subject: l2\r\n\r\nx\r\n",
                       arrival=int(time.time()) - 10)
    check(wait_for(lambda: f"{qid}: removed" in inst.logtext(), 15), "NOTIFY=FAILURE late message delivered")
    check(inst.notice_of(qid, "sender delay notification") is None, "NOTIFY=FAILURE: no delay warning")


def run(inst, fn):
    try:
        inst.start_qmgr()
        return fn(inst)
    finally:
        inst.close()
        if failures:
            print("---- maillog ----")
            print(inst.logtext()[-6000:])
        if os.environ.get("QMGR_TEST_LOG"):
            print(inst.logtext())
        shutil.rmtree(inst.top, ignore_errors=True)


def remote_tests(inst):
    with open(os.path.join(inst.conf, "transport"), "w") as f:
        f.write(TRANSPORT)
    test_routing(inst)
    test_concurrency(inst)
    test_dsn(inst)
    test_rate_delay(inst)
    test_delay_warning(inst)


def main():
    def local_tests(inst):
        lost = test_flow(inst)
        test_agent_crash(inst)
        test_crash(inst, lost)
    only = os.environ.get("QMGR_TEST_ONLY")
    if only != "remote":
        run(Instance(), local_tests)
    if only != "local":
        top = tempfile.mkdtemp(prefix="qmgr_conf.")
        inst = Instance(REMOTE_CF.replace("{conf}", top), agents=(("smtp", "smtp"), ("relay", "smtp")))
        with open(os.path.join(top, "transport"), "w") as f:
            f.write(TRANSPORT)
        try:
            run(inst, remote_tests)
        finally:
            shutil.rmtree(top, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
