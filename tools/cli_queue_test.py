#!/usr/bin/env python3
"""cli_queue_test - sendmail → maildrop → pickup → incoming, and the queue
commands on the files with the mail system stopped.

usage: cli_queue_test.py BIN_DIR PICKUP_PATH

Runs pickup under a small fake master (fd 3 status pipe, fd 4 listening
socket at public/pickup), in a temporary instance. Bounded: every wait
has a deadline, and the whole test takes a few seconds.
"""
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN, PICKUP = sys.argv[1], sys.argv[2]
QMGR = sys.argv[3] if len(sys.argv) > 3 else None
FAILS = []
CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(cmd, stdin=b"", env=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=20, env=env)
    err = p.stderr.decode(errors="replace")
    check("Sanitizer" not in err and "runtime error" not in err,
          f"sanitizer report from {cmd}: {err}")
    return p.returncode, p.stdout.decode(errors="replace"), err


def files(q, d):
    return sorted(os.listdir(os.path.join(q, d)))


def wait_for(pred, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def start_daemon(path, name):
    """Start a daemon the way stork-master does: fd 3 the status pipe,
    fd 4 a listening socket at public/NAME."""
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(os.path.join(q, "public", name))
    lsock.listen(16)
    rfd, wfd = os.pipe()
    # Move everything above 20 first: dup2 onto 3 or 4 must not clobber
    # another of them.
    STATUS_READERS.append(fcntl.fcntl(rfd, fcntl.F_DUPFD, 20))
    os.close(rfd)
    hi_w = fcntl.fcntl(wfd, fcntl.F_DUPFD, 20)
    hi_l = fcntl.fcntl(lsock.fileno(), fcntl.F_DUPFD, 20)
    os.dup2(hi_w, 3)
    os.dup2(hi_l, 4)
    p = subprocess.Popen([path, "-c", conf, "-n", name, "-t", "unix", "-w", "60"],
                         pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(tmp, name + ".err"), "w"))
    for fd in {3, 4, hi_w, hi_l, wfd, lsock.detach()}:
        try:
            os.close(fd)
        except OSError:
            pass
    return p


def stop_daemon(p, name):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    with open(os.path.join(tmp, name + ".err")) as f:
        text = f.read()
    check("Sanitizer" not in text and "runtime error" not in text, f"{name} sanitizer: {text}")


STATUS_READERS = []


tmp = tempfile.mkdtemp(prefix="stork-cli-")
conf = os.path.join(tmp, "etc")
q = os.path.join(tmp, "queue")
log = os.path.join(tmp, "maillog")
os.makedirs(conf)
for d in ("incoming", "active", "deferred", "hold", "corrupt", "maildrop", "public", "private", "index"):
    os.makedirs(os.path.join(q, d))
with open(os.path.join(conf, "main.cf"), "w") as f:
    f.write(f"queue_directory = {q}\nmyhostname = host.example\nmyorigin = origin.example\n"
            f"maillog_file = {log}\nmessage_size_limit = 100000\n")

sm = [os.path.join(BIN, "sendmail"), "-c", conf]
sq = [os.path.join(BIN, "storkqueue"), "-c", conf]
ss = [os.path.join(BIN, "storksuper"), "-c", conf]
sc = [os.path.join(BIN, "storkcat"), "-c", conf]
me = __import__("pwd").getpwuid(os.getuid()).pw_name
uid = os.getuid()
pickup = qmgr = None

try:
    # 1. sendmail: explicit recipient, -f/-F, LF line ends, dot ends input.
    rc, out, err = run(sm + ["-f", "sender@src.example", "-F", "Full Name", "rcpt@dst.example"],
                       b"Subject: one\n\nline 1\n.\nnot part of the message\n")
    check(rc == 0, f"sendmail exit {rc}: {err}")
    md = files(q, "maildrop")
    check(len(md) == 1 and not md[0].startswith("t."), f"maildrop after sendmail: {md}")
    first = md[0] if md else None
    if first:
        st = os.stat(os.path.join(q, "maildrop", first))
        check(st.st_mode & 0o777 == 0o444, f"maildrop file mode {oct(st.st_mode)}")
        rc, out, err = run(sc + [first])
        check("*** ENVELOPE RECORDS maildrop/" + first in out, "storkcat finds maildrop file")
        check("sender: sender@src.example" in out and "recipient: rcpt@dst.example" in out,
              "storkcat envelope: " + out)
        check("named_attribute: full_name=Full Name" in out and f"named_attribute: uid={uid}" in out,
              "storkcat attrs")
        check("line 1\n*** MESSAGE FILE END" in out and "not part" not in out, "dot ends input")
        check("From: Full Name <sender@src.example>" in out, "From: added: " + out)
        check(re.search(r"Message-Id: <\d{14}\.%s@host\.example>" % first, out), "Message-Id added")
        check(re.search(r"Date: \w{3}, \d+ \w{3} \d{4} ", out), "Date added")

    # 2. sendmail -t: To/Cc/Bcc recipients, Bcc removed, -oi keeps "." lines.
    msg = (b"From: Me <me@src.example>\nTo: a@dst.example, B <b@dst.example>\n"
           b"Cc: c\nBcc: hidden@dst.example\nSubject: two\n\n.\nbody\n")
    rc, out, err = run(sm + ["-t", "-oi"], msg)
    check(rc == 0, f"sendmail -t exit {rc}: {err}")
    second = [f for f in files(q, "maildrop") if f != first]
    check(len(second) == 1, f"second maildrop file: {second}")
    if second:
        rc, out, err = run(sc + [second[0]])
        for r in ("a@dst.example", "b@dst.example", "c@origin.example", "hidden@dst.example"):
            check(f"recipient: {r}\n" in out, f"-t recipient {r}: {out}")
        check("Bcc" not in out and "hidden" not in out.split("*** MESSAGE CONTENTS")[1],
              "Bcc removed")
        check(f"sender: {me}@origin.example" in out, "default sender")
        check("\n.\nbody\n" in out, "-oi keeps the dot line")
        check("From: Me <me@src.example>" in out and out.count("From:") == 1, "From kept")

    # 3. Errors and -bv.
    rc, out, err = run(sm, b"x\n")
    check(rc == 64, f"no recipients: exit {rc}")
    rc, out, err = run(sm + ["bad@exa mple.com"], b"x\n")
    check(rc == 67, f"bad recipient: exit {rc} {err}")
    rc, out, err = run(sm + ["-t"], b"Subject: none\n\nx\n")
    check(rc == 64, f"-t without recipients: exit {rc}")
    rc, out, err = run(sm + ["rcpt@dst.example"], b"x" * 200000 + b"\n")
    check(rc == 65, f"too big: exit {rc}")
    rc, out, err = run(sm + ["-bv", "ok@dst.example"])
    check(rc == 0 and "ok@dst.example... deliverable" in out, f"-bv: {rc} {out}")
    check(len(files(q, "maildrop")) == 2, "failed submissions leave nothing")

    # 4. Junk in maildrop: a bad file goes to corrupt/, stale temp files go.
    junk = "0000000000000000"
    with open(os.path.join(q, "maildrop", junk), "wb") as f:
        f.write(b"STORKQ01 this is not a queue file")
    for t, age in (("t.OLD", 7200), ("t.NEW", 0)):
        p = os.path.join(q, "maildrop", t)
        open(p, "w").close()
        os.utime(p, (time.time() - age, time.time() - age))

    # 5. pickup under a fake master.
    pickup = start_daemon(PICKUP, "pickup")
    ok = wait_for(lambda: len(files(q, "incoming")) == 2
                  and files(q, "maildrop") == ["t.NEW"])
    check(ok, f"pickup moved files: incoming={files(q, 'incoming')} "
              f"maildrop={files(q, 'maildrop')}")
    check(len(files(q, "corrupt")) == 1, f"junk in corrupt/: {files(q, 'corrupt')}")
    inc = [i for i in files(q, "incoming") if "Subject: one" in run(sc + ["-h", i])[1]]
    check(len(inc) == 1, "first message in incoming/")
    if inc:
        rc, out, err = run(sc + [inc[0]])
        check(out.startswith("*** ENVELOPE RECORDS incoming/" + inc[0]), "storkcat incoming")
        check(f"named_attribute: uid={uid}" in out and "named_attribute: protocol=local" in out
              and "named_attribute: client_name=localhost" in out, "pickup attributes: " + out)
        check(re.search(r"\*\*\* MESSAGE CONTENTS incoming/%s \*\*\*\nReceived: by host\.example "
                        r"\(Stork, from userid %d\)\n\tid %s; \w{3}, " % (inc[0], uid, inc[0]), out),
              "Received header: " + out)
        check("Subject: one\nMessage-Id:" in out and "\n\nline 1\n" in out, "content copied")
        with open(os.path.join(q, "incoming", inc[0]), "rb") as f:
            raw = f.read()
        check(b"\r\nline 1\r\n" in raw and b"\nline 1\n" not in raw, "CRLF in the queue file")

    # 6. PICKUP_WAKE: a new submission arrives long before the 60 s wakeup.
    rc, out, err = run(sm + ["-f", "", "wake@dst.example"], b"Subject: three\n\nwake\n")
    check(rc == 0, "third sendmail")
    check(wait_for(lambda: len(files(q, "incoming")) == 3, 5), "PICKUP_WAKE triggers a scan")
    # 7. sendmail -bs: one message through SMTP, dot-unstuffed.
    smtp = (b"EHLO client.example\r\nMAIL FROM:<s@src.example> SIZE=100\r\n"
            b"RCPT TO:<x@dst.example>\r\nRCPT TO:<\"john doe\"@dst.example>\r\nDATA\r\n"
            b"Subject: bs\r\n\r\n..dot\r\n.\r\nNOOP\r\nRCPT TO:<y@dst.example>\r\nQUIT\r\n")
    rc, out, err = run(sm + ["-bs"], smtp)
    check(rc == 0 and out.startswith("220 host.example ESMTP"), f"-bs greeting: {out}")
    check("250-PIPELINING" in out and "250 ENHANCEDSTATUSCODES" in out, "-bs EHLO")
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-V]{16})", out)
    check(m is not None, "-bs queued: " + out)
    check("503 5.5.1 Error: need MAIL command" in out and out.rstrip().endswith("221 2.0.0 Bye"),
          "-bs state after DATA")
    check(wait_for(lambda: len(files(q, "incoming")) == 4, 5), "-bs message picked up")

    with open(log) as f:
        logtext = f.read()
    check(re.search(r"pickup\[\d+\]: [0-9A-V]{16}: uid=%d from=<sender@src\.example>" % uid,
                    logtext), "pickup log line")
    check("moved to corrupt/" in logtext, "corrupt warning logged")

    # Stop the mail system (pickup); the queue commands work on files.
    stop_daemon(pickup, "pickup")
    pickup = None

    # 8. storkqueue -p / -j and mailq with qmgr down.
    inc = files(q, "incoming")
    bs_id = m.group(1) if m else None
    bs_qid = None
    for i in inc:
        rc, out, err = run(sc + ["-e", i])
        if "x@dst.example" in out:
            bs_qid = i
    rc, out, err = run(sq + ["-p"])
    check(rc == 0 and out.startswith("----Queue ID----- --Size-- ---Arrival Time---- "
                                     "--Sender/Recipient------\n"), "mailq header: " + out)
    check(out.endswith(" Kbytes in 4 Requests.\n"), "mailq trailer: " + out)
    check("MAILER-DAEMON" in out and "\"john doe\"@dst.example" in out, "mailq addresses")
    rc, out2, err = run([os.path.join(BIN, "mailq"), "-c", conf])
    check(out2 == out, "mailq == storkqueue -p")

    hold_id = inc[0]
    with open(os.path.join(q, "index", "queue.db"), "w") as f:
        f.write("stale")
    rc, out, err = run(ss + ["-h", hold_id])
    check(rc == 0 and "storksuper: Placed on hold: 1 message\n" in err, f"-h: {rc} {err}")
    check(files(q, "hold") == [hold_id], "held file in hold/")
    check(not os.path.exists(os.path.join(q, "index", "queue.db")), "index removed after a direct change")
    rc, out, err = run(sq + ["-p"])
    check(re.search(r"^%s!\s+\d+ " % hold_id, out, re.M), "held message marked '!': " + out)
    rc, out, err = run(sq + ["-j"])
    objs = [json.loads(l) for l in out.splitlines()]
    check(len(objs) == 4, "4 JSON objects")
    held = [o for o in objs if o["queue_id"] == hold_id]
    check(held and held[0]["queue_name"] == "hold" and held[0]["forced_expire"] is False
          and isinstance(held[0]["arrival_time"], int) and held[0]["message_size"] > 0
          and held[0]["recipients"] and "address" in held[0]["recipients"][0],
          "JSON fields: " + out)
    check(any(o["sender"] == "MAILER-DAEMON" for o in objs), "JSON null sender")

    rc, out, err = run(ss + ["-H", hold_id])
    check("Released from hold: 1 message" in err and files(q, "deferred") == [hold_id], "-H")
    rc, out, err = run(ss + ["-h", "ALL"])
    check("Placed on hold: 4 messages" in err and len(files(q, "hold")) == 4, f"-h ALL: {err}")
    rc, out, err = run(ss + ["-r", "-"], ("\n".join(files(q, "hold")[:2]) + "\n").encode())
    check("Requeued: 2 messages" in err and len(files(q, "incoming")) == 2, f"-r -: {err}")
    check("warning" not in err, "-r without warnings: " + err)
    rc, out, err = run(ss + ["-d", "nonsense"])
    check(rc == 64, "invalid queue id refused")

    # 9. storkcat -h / -b on the -bs message.
    if bs_qid:
        rc, out, err = run(sc + ["-b", bs_qid])
        check(out == ".dot\n", "-b body dot-unstuffed: %r" % out)
        rc, out, err = run(sc + ["-h", bs_qid])
        check(out.startswith("Received: by host.example") and "Subject: bs\n" in out
              and "*** " not in out and ".dot" not in out, "-h: %r" % out)
    rc, out, err = run(sc + ["0000000000000001"])
    check(rc == 66, f"storkcat of a missing id: {rc}")

    rc, out, err = run(ss + ["-d", "ALL"])
    check("Deleted: 4 messages" in err, f"-d ALL: {err}")
    rc, out, err = run(sq + ["-p"])
    check(out == "Mail queue is empty\n", "empty queue: " + out)
    rc, out, err = run(ss + ["-s"])
    check(rc == 0, f"-s: {rc} {err}")
    rc, out, err = run(sq + ["-f"])
    check(rc == 69, f"flush with the system down: {rc}")

    # 10. With qmgr running, the commands go through it.
    if QMGR:
        os.unlink(os.path.join(q, "public", "pickup"))
        qmgr = start_daemon(QMGR, "qmgr")
        pickup = start_daemon(PICKUP, "pickup")
        rc, out, err = run(sm + ["live@remote.example"], b"Subject: live\n\nlive\n")
        listed = lambda: re.search(r"^([0-9A-V]{16})[*!]?\s+\d+ .*\n(?: +\(.*\)\n)? +live@remote\.example$",
                                   run(sq + ["-p"])[1], re.M)
        check(wait_for(listed, 10), "qmgr lists the message: " + run(sq + ["-p"])[1])
        lm = listed()
        if lm:
            rc, out, err = run(sq + ["-j"])
            check(json.loads(out.splitlines()[0])["queue_id"] == lm.group(1), "qmgr -j")
            rc, out, err = run(ss + ["-h", lm.group(1)])
            check("Placed on hold: 1 message" in err, "hold through qmgr: " + err)
            check(wait_for(lambda: re.search(r"^%s!" % lm.group(1), run(sq + ["-p"])[1], re.M), 5),
                  "held through qmgr shows '!'")
            rc, out, err = run(sq + ["-f"])
            check(rc == 0, f"flush through qmgr: {rc} {err}")
            rc, out, err = run(ss + ["-d", "ALL"])
            check("Deleted: 1 message" in err, "delete through qmgr: " + err)
            check(wait_for(lambda: run(sq + ["-p"])[1] == "Mail queue is empty\n", 5),
                  "empty through qmgr")
        stop_daemon(pickup, "pickup")
        pickup = None
        stop_daemon(qmgr, "qmgr")
        qmgr = None
finally:
    for d in (pickup, qmgr):
        if d is not None:
            d.kill()
            d.wait()
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{CHECKS - len(FAILS)} passed, {len(FAILS)} failed")
sys.exit(1 if FAILS else 0)
