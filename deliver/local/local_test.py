#!/usr/bin/env python3
"""local_test - run the local delivery agent under a fake master and talk
to it as qmgr would (through local_test_tool, which uses lib/ipc and
lib/queue). Usage: local_test.py LOCAL_BINARY TOOL_BINARY"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

LOCAL, TOOL = sys.argv[1], sys.argv[2]
ROOT = os.geteuid() == 0
failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def tool(*args, stdin=None):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        print("tool", args[0], "failed:", p.stderr, file=sys.stderr)
    return p


def owner_user():
    """The virtual_mailbox_owner: an unprivileged user when root."""
    if not ROOT:
        return pwd.getpwuid(os.geteuid())
    for name in ("vmail", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise SystemExit("no unprivileged user for the test")


def main():
    tmp = tempfile.mkdtemp(prefix="local_test.")
    os.chmod(tmp, 0o755)
    conf, queue, vbase = (os.path.join(tmp, d) for d in ("conf", "queue", "vmail"))
    os.mkdir(conf)
    for d in ("", "incoming", "active", "deferred", "hold", "corrupt", "private", "public"):
        os.mkdir(os.path.join(queue, d))
    os.mkdir(vbase)
    vowner = owner_user()
    if ROOT:
        os.chown(vbase, vowner.pw_uid, vowner.pw_gid)
    log = os.path.join(tmp, "maillog")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(f"""queue_directory = {queue}
maillog_file = {log}
myhostname = test.example
mydestination = test.example, localhost
alias_maps = hash:{conf}/aliases
virtual_mailbox_domains = virt.example
virtual_mailbox_maps = hash:{conf}/vmailbox
virtual_mailbox_base = {vbase}
virtual_mailbox_owner = {vowner.pw_name}
""")
    os.mkdir(os.path.join(tmp, "out"))
    os.chmod(os.path.join(tmp, "out"), 0o777)
    with open(os.path.join(conf, "aliases"), "w") as f:
        f.write(f"""# test aliases
list: user@virt.example, other@virt.example
badtarget: nosuchuser
cmd: "|/bin/cat > /dev/null"
file: /tmp/should-not-be-written
cmdout: "|cat > {tmp}/out/cmd.out"
cmdfail: "|exit 67"
mbox: {tmp}/out/mbox
loop1: loop2
loop2: loop1
remote: someone@remote.example, user@virt.example
""")
    with open(os.path.join(conf, "vmailbox"), "w") as f:
        f.write("""user@virt.example $6$salt$hash:virt.example/user/:0
other@virt.example $6$salt$hash:virt.example/other/:10m
full@virt.example $6$salt$hash:virt.example/full/:100
""")
    check(tool("mkmap", f"hash:{conf}/aliases", f"{conf}/aliases", "aliases").returncode == 0,
          "build aliases")
    check(tool("mkmap", f"hash:{conf}/vmailbox", f"{conf}/vmailbox", "map").returncode == 0,
          "build vmailbox")

    procs = []
    try:
        sock_path, proc = start_local(conf, queue, "local")
        procs.append(proc)
        run_tests(tmp, queue, vbase, vowner, sock_path, log)
        # A second instance where aliases may run commands and write files.
        sock2, proc = start_local(conf, queue, "local2", "-o", "allow_mail_to_commands=alias",
                                  "-o", "allow_mail_to_files=alias")
        procs.append(proc)
        run_allowed_tests(tmp, sock2)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if failures and os.path.exists(log):
            sys.stderr.write(open(log, errors="replace").read())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def start_local(conf, queue, name, *opts):
    """The fake master: listening socket as fd 4, status pipe as fd 3."""
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = os.path.join(queue, "private", name)
    lsock.bind(sock_path)
    lsock.listen(16)
    lsock.setblocking(False)
    status_r, status_w = os.pipe()
    hi_l, hi_s = os.dup(lsock.fileno()), os.dup(status_w)

    def pre():
        os.dup2(hi_s, 3)
        os.dup2(hi_l, 4)

    proc = subprocess.Popen([LOCAL, "-c", conf, "-n", name, "-t", "unix"] + list(opts),
                            preexec_fn=pre, close_fds=False)
    for fd in (status_w, hi_l, hi_s):
        os.close(fd)
    lsock.close()
    return sock_path, proc


def run_allowed_tests(tmp, sock):
    body = b"Subject: cmd\r\n\r\nFrom here\r\nbody\r\n"
    sender = "s@x.example"
    rcpts = ["cmdout@test.example", "cmdfail@test.example", "mbox@test.example"]
    qid, off, size = message(tmp, body, sender, rcpts)
    replies, _ = deliver(sock, qid, off, size, sender, rcpts)
    print(replies)
    r = replies.get("cmdout@test.example")
    check(r and r[0] == "delivered", f"command delivered when allowed: {r}")
    out = os.path.join(tmp, "out", "cmd.out")
    check(os.path.exists(out) and open(out, "rb").read() ==
          b"Return-Path: <s@x.example>\nDelivered-To: cmdout@test.example\n"
          b"Subject: cmd\n\nFrom here\nbody\n", "command got the message on stdin")
    if ROOT and os.path.exists(out):
        check(os.stat(out).st_uid == pwd.getpwnam("nobody").pw_uid,
              "alias command ran as default_privs")
    r = replies.get("cmdfail@test.example")
    check(r and r[0] == "failed" and r[1] == "5.1.1", f"command exit 67 bounced 5.1.1: {r}")
    r = replies.get("mbox@test.example")
    check(r and r[0] == "delivered", f"file delivered when allowed: {r}")
    mbox = os.path.join(tmp, "out", "mbox")
    data = open(mbox, "rb").read() if os.path.exists(mbox) else b""
    check(data.startswith(b"From s@x.example ") and b"\n>From here\n" in data
          and data.endswith(b"body\n\n"), f"mbox file with >From quoting: {data!r}")


def message(tmp, content, sender, rcpts):
    path = os.path.join(tmp, "content")
    with open(path, "wb") as f:
        f.write(content)
    p = tool("mkq", os.path.join(tmp, "queue"), sender, path, *rcpts)
    qid, off, size = p.stdout.split()
    return qid, int(off), int(size)


def deliver(sock, qid, off, size, sender, rcpts, count=1):
    p = tool("req", sock, count, qid, f"incoming/{qid}", sender, int(time.time()), off, size,
             *rcpts)
    replies = {}
    dones = 0
    for line in p.stdout.splitlines():
        if line.startswith("DONE"):
            dones += 1
            continue
        idx, action, dsn, text = line.split(" ", 3)
        replies[rcpts[int(idx)]] = (action, dsn, text)
    return replies, dones


def maildir_files(path):
    d = os.path.join(path, "new")
    return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []


def run_tests(tmp, queue, vbase, vowner, sock, log):
    body = (b"Received: from x\r\nSubject: test \xe4\r\nFrom: a@x.example\r\n\r\n"
            b"line one\r\n8bit \xff\xfe\r\nbare\rcr\r\n.dot\r\n")
    expect_body = body.replace(b"\r\n", b"\n")
    sender = "sender@x.example"
    rcpts = ["user@virt.example", "list@test.example", "badtarget@test.example",
             "full@virt.example", "cmd@test.example", "loop1@test.example",
             "nobody-here@virt.example", "file@test.example", "remote@test.example"]
    qid, off, size = message(tmp, body, sender, rcpts)
    check(size == len(body), "content size")
    # Two requests on one connection: the second delivers a second copy.
    replies, dones = deliver(sock, qid, off, size, sender, rcpts, count=2)
    check(dones == 2, f"two DELIVER_DONE on one connection (got {dones})")
    print(replies)

    r = replies.get("user@virt.example")
    check(r and r[0] == "delivered" and r[1] == "2.0.0", f"virtual user delivered: {r}")
    files = maildir_files(os.path.join(vbase, "virt.example", "user"))
    # user is reached directly, via list and via remote: one copy per request
    check(len(files) == 2, f"one copy per request in user's Maildir: {len(files)}")
    if files:
        data = open(files[0], "rb").read()
        want = (b"Return-Path: <sender@x.example>\nDelivered-To: user@virt.example\n"
                + expect_body)
        check(data == want, f"byte-exact delivery: {data!r}")
        st = os.stat(files[0])
        check(st.st_uid == vowner.pw_uid, f"file owner {st.st_uid} is {vowner.pw_uid}")
        check(",S=%d," % len(want) in files[0], "S= size in name")
        tmpdir = os.path.join(vbase, "virt.example", "user", "tmp")
        check(os.listdir(tmpdir) == [], "tmp/ is empty")

    r = replies.get("list@test.example")
    check(r and r[0] == "delivered", f"list alias delivered: {r}")
    other = maildir_files(os.path.join(vbase, "virt.example", "other"))
    check(len(other) == 2, f"list member other got its copies: {len(other)}")
    if other:
        check(b"Delivered-To: other@virt.example\n" in open(other[0], "rb").read(),
              "Delivered-To of the list member")

    r = replies.get("badtarget@test.example")
    check(r and r[0] == "failed" and r[1] == "5.1.1", f"unknown alias target bounced: {r}")
    r = replies.get("full@virt.example")
    check(r and r[0] == "deferred" and r[1] == "4.2.2" and "mailbox full" in r[2],
          f"over quota deferred 4.2.2: {r}")
    r = replies.get("cmd@test.example")
    check(r and r[0] == "failed" and r[1] == "5.7.1" and "mail to command is restricted" in r[2],
          f"|command refused by default: {r}")
    r = replies.get("file@test.example")
    check(r and r[0] == "failed" and r[1] == "5.7.1", f"/file refused by default: {r}")
    check(not os.path.exists("/tmp/should-not-be-written"), "file not written")
    r = replies.get("loop1@test.example")
    check(r and r[0] == "failed" and r[1] == "5.4.6", f"alias cycle bounced: {r}")
    r = replies.get("nobody-here@virt.example")
    check(r and r[0] == "failed" and r[1] == "5.1.1", f"unknown virtual user: {r}")

    r = replies.get("remote@test.example")
    check(r and r[0] == "delivered", f"remote target resubmitted: {r}")
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    fwd = [l for l in text.splitlines()
           if "to=<someone@remote.example>, orig_to=<remote@test.example>" in l
           and "status=sent (forwarded as " in l]
    check(len(fwd) == 2, f"resubmission logged once per request: {len(fwd)}")
    if fwd:
        newqid = fwd[-1].rstrip(")").split()[-1]
        path = os.path.join(queue, "incoming", newqid)
        check(os.path.exists(path), "resubmitted queue file exists")
        data = open(path, "rb").read() if os.path.exists(path) else b""
        check(b"someone@remote.example" in data, "new file has the remote recipient")
        check(b"Delivered-To: remote@test.example\r\n" + body in data,
              "new file has Delivered-To + original content")

    # A message that already went through user@virt.example: a loop.
    looped = b"Delivered-To: User@Virt.Example\r\n" + body
    qid2, off2, size2 = message(tmp, looped, sender, ["user@virt.example"])
    replies, _ = deliver(sock, qid2, off2, size2, sender, ["user@virt.example"])
    r = replies.get("user@virt.example")
    check(r and r[0] == "failed" and r[1] == "5.4.6", f"Delivered-To loop bounced: {r}")

    # The null sender and a CR LF split across nothing in particular.
    qid3, off3, size3 = message(tmp, b"Subject: x\r\n\r\nhi\r\n", "", ["user@virt.example"])
    replies, _ = deliver(sock, qid3, off3, size3, "", ["user@virt.example"])
    files = maildir_files(os.path.join(vbase, "virt.example", "user"))
    check(any(open(f, "rb").read() == b"Return-Path: <>\nDelivered-To: user@virt.example\n"
              b"Subject: x\n\nhi\n" for f in files), "null sender Return-Path: <>")

    # A request whose offsets do not match the file: deferred, nothing written.
    replies, _ = deliver(sock, qid3, off3 + 1, size3, "", ["user@virt.example"])
    r = replies.get("user@virt.example")
    check(r and r[0] == "deferred" and r[1] == "4.3.0", f"offset mismatch deferred: {r}")

    time.sleep(0.2)
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    check(f"{qid}: to=<user@virt.example>, relay=virtual," in text
          and "status=sent (delivered to maildir)" in text, "Postfix-shaped log line")
    check(f"{qid}: to=<other@virt.example>, orig_to=<list@test.example>, relay=virtual" in text,
          "orig_to logged for list members")
    check("status=bounced (unknown user" in text, "bounced log line")
    check("dsn=4.2.2, status=deferred (maildir delivery failed: mailbox full" in text
          or "status=deferred (mailbox full" in text or "dsn=4.2.2, status=deferred" in text,
          "deferred log line")


if __name__ == "__main__":
    main()
