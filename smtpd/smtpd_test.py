#!/usr/bin/env python3
"""smtpd_test.py SMTPD QDUMP [VERIFY] - end-to-end tests of smtpd under a fake master.

The test plays stork-master: it opens the listening socket (fd 4) and the
status pipe (fd 3), writes a main.cf into a temporary config directory
whose queue_directory has incoming/ private/ public/, and runs the smtpd
binary directly. A small Python verify service answers VERIFY_REQ on
private/verify and a fake qmgr on public/qmgr records QMGR_NEW notices,
both speaking Stork's IPC frames. Clients are smtplib and raw sockets.
Queue files are checked with smtpd_qdump (qfile_read) and raw reads of
the content. Exit 77 when something needed is missing.
With VERIFY (the real verify daemon), a further instance tests STARTTLS,
wrapper mode and AUTH against a certificate and a virtual user made at
test time (openssl req, openssl passwd -6), the real verify service
checking the password.
"""
import fcntl
import os
import stat
import select
import shutil
import smtplib
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

# --- IPC frames (lib/ipc/ipc.h) ---------------------------------------
A_PROTO, A_MAJOR, A_MINOR, A_QID, A_ADDR = 1, 2, 3, 4, 12
A_DSN_STATUS, A_TEXT, A_COUNT, A_CLASS, A_CLIENT_ADDR, A_RATE = 17, 19, 27, 28, 34, 46
T_U64, T_STR = 1, 2
M_HELLO, M_QMGR_NEW, M_VERIFY_REQ, M_VERIFY_REPLY = 1, 2, 11, 12
M_CLIENT_CONNECT, M_CLIENT_COUNT, M_CLIENT_DISCONNECT = 20, 21, 22


def attr_str(aid, s):
    b = s.encode()
    return struct.pack("<HBI", aid, T_STR, len(b)) + b


def attr_u64(aid, v):
    return struct.pack("<HBI", aid, T_U64, 8) + struct.pack("<Q", v)


def frame(mtype, payload, req_id=0):
    return struct.pack("<IHHI", len(payload), mtype, 0, req_id) + payload


def hello(proto):
    return frame(M_HELLO, attr_str(A_PROTO, proto) + attr_u64(A_MAJOR, 1) + attr_u64(A_MINOR, 0))


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(conn):
    hdr = recv_exact(conn, 12)
    if hdr is None:
        return None
    length, mtype, _flags, req_id = struct.unpack("<IHHI", hdr)
    payload = recv_exact(conn, length) if length else b""
    attrs, off = {}, 0
    while off < len(payload):
        aid, atype, alen = struct.unpack("<HBI", payload[off:off + 7])
        attrs[aid] = payload[off + 7:off + 7 + alen]
        off += 7 + alen
    return mtype, req_id, attrs


class UnixServer(threading.Thread):
    """A thread serving a UNIX socket with one handler thread per client."""

    def __init__(self, path, proto):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.proto = proto

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.sendall(hello(self.proto))
        while True:
            f = read_frame(conn)
            if f is None or self.handle(conn, *f) is False:
                conn.close()
                return


LOCAL_DOMAINS = {"example.com", "localhost", "mx.example.com"}
LOCAL_USERS = {"user", "alice", "bob", "postmaster", "j\u00f6rg"}


class VerifyServer(UnixServer):
    """Classifies like lib/mail/resolve.h on a tiny fixed table. An address
    with "hangup" closes the connection unanswered (as a retiring verify
    process may, just as a request arrives): "hangup-once" only the first
    time it is asked."""
    hung_up = set()
    sessions = {}

    def handle(self, conn, mtype, req_id, attrs):
        if mtype in (M_CLIENT_CONNECT, M_CLIENT_DISCONNECT):
            return self.count_session(conn, mtype, req_id, attrs[A_CLIENT_ADDR].decode())
        addr = attrs[A_ADDR].decode()
        local, _, domain = addr.rpartition("@") if "@" in addr else (addr, "", "example.com")
        domain = domain.lower()
        if "hangup" in addr and ("once" not in addr or addr not in VerifyServer.hung_up):
            VerifyServer.hung_up.add(addr)
            return False
        if "hangup" in addr:
            cls, dsn, text = "local", "2.1.5", ""
        elif "tempfail" in addr:
            cls, dsn, text = "error", "4.3.0", "<%s>: Temporary lookup failure" % addr
        elif domain in LOCAL_DOMAINS:
            if local.lower() in LOCAL_USERS:
                cls, dsn, text = "local", "2.1.5", ""
            else:
                cls, dsn = "unknown", "5.1.1"
                text = "<%s>: Recipient address rejected: User unknown in local recipient table" % addr
        else:
            cls, dsn, text = "remote", "2.0.0", ""
        payload = attr_str(A_CLASS, cls) + attr_str(A_DSN_STATUS, dsn)
        if text:
            payload += attr_str(A_TEXT, text)
        conn.sendall(frame(M_VERIFY_REPLY, payload, req_id))


    def count_session(self, conn, mtype, req_id, client):
        n = VerifyServer.sessions.get(client, 0) + (1 if mtype == M_CLIENT_CONNECT else -1)
        VerifyServer.sessions[client] = n
        if mtype == M_CLIENT_CONNECT:
            conn.sendall(frame(M_CLIENT_COUNT, attr_u64(A_COUNT, n) + attr_u64(A_RATE, n), req_id))


class QmgrServer(UnixServer):
    """Records QMGR_NEW notices."""
    qids = []

    def handle(self, conn, mtype, req_id, attrs):
        if mtype == M_QMGR_NEW:
            QmgrServer.qids.append(attrs[A_QID].decode())


# --- the fake master ----------------------------------------------------
class Spawned:
    """The part of subprocess.Popen the tests use, for a posix_spawn child."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def _reap(self, flags):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self):
        return self._reap(os.WNOHANG)

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("spawned daemon", timeout)
            time.sleep(0.02)
        return self.returncode

    def terminate(self):
        if self.returncode is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self):
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def spawn(argv, lsock, status_w):
    """Run a daemon as stork-master does: status pipe on 3, listener on 4.
    posix_spawn, not Popen's preexec_fn: this process has threads (the fake
    qmgr and verify servers), and Python code in a forked child of a
    threaded process can deadlock before exec (seen: a daemon that never
    started)."""
    # Sources above 3 and 4 first, so neither dup2 overwrites the other's
    # source (F_DUPFD_CLOEXEC takes the lowest free number >= 100).
    lfd_hi = fcntl.fcntl(lsock.fileno(), fcntl.F_DUPFD_CLOEXEC, 100)
    sfd_hi = fcntl.fcntl(status_w, fcntl.F_DUPFD_CLOEXEC, 100)
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, sfd_hi, 3),
               (os.POSIX_SPAWN_DUP2, lfd_hi, 4)]
    try:
        return Spawned(os.posix_spawn(argv[0], argv, os.environ, file_actions=actions))
    finally:
        os.close(lfd_hi)
        os.close(sfd_hi)


class Smtpd:
    def __init__(self, binary, top, extra_cf="", args=()):
        self.top = top
        self.qdir = os.path.join(top, "queue")
        self.conf = os.path.join(top, "conf")
        self.log = os.path.join(top, "maillog")
        os.makedirs(self.conf, exist_ok=True)
        for d in ("incoming", "active", "deferred", "hold", "corrupt", "private", "public"):
            os.makedirs(os.path.join(self.qdir, d), exist_ok=True)
        # Written aside and renamed: servers sharing this directory start
        # while the next one is set up, and must never read a half file.
        cf_tmp = os.path.join(self.conf, "main.cf.%d" % os.getpid())
        with open(cf_tmp, "w") as f:
            f.write("queue_directory = %s\n" % self.qdir)
            f.write("myhostname = mx.example.com\n")
            f.write("mydestination = example.com, localhost\n")
            f.write("mynetworks = 127.0.0.1/32, [::1]/128\n")
            f.write("message_size_limit = 100000\n")
            f.write("maillog_file = %s\n" % self.log)
            f.write("smtpd_error_sleep_time = 0\n")
            f.write("smtpd_recipient_limit = 5\n")
            f.write(extra_cf)
        os.replace(cf_tmp, os.path.join(self.conf, "main.cf"))
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.status_r, status_w = os.pipe()
        self.proc = spawn([binary, "-c", self.conf, "-n", "smtp", "-t", "inet"] + list(args),
                          self.lsock, status_w)
        os.close(status_w)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.lsock.close()
        os.close(self.status_r)

    def logtext(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _committed(self, name):
        """incoming/ files are committed once the owner-execute bit is set"""
        try:
            return bool(os.lstat(os.path.join(self.qdir, "incoming", name)).st_mode & stat.S_IXUSR)
        except FileNotFoundError:
            return False

    def incoming(self):
        """Committed queue files (files still being written excluded)."""
        return sorted(n for n in os.listdir(os.path.join(self.qdir, "incoming"))
                      if self._committed(n))

    def temp_files(self):
        return [n for n in os.listdir(os.path.join(self.qdir, "incoming")) if not self._committed(n)]


class Raw:
    """A raw SMTP client socket that reads whole replies."""

    def __init__(self, port, source="127.0.0.1"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(source, 0))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """One (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; have %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self):
        """True if the server closed the connection (after any data)."""
        self.s.settimeout(5)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            return False

    def close(self):
        self.s.close()


failures = []


def check(cond, what):
    if cond:
        print("ok   - %s" % what)
    else:
        print("FAIL - %s" % what)
        failures.append(what)


def expect(r, code, dsn, what):
    got_code, lines = r
    ok = got_code == code and (dsn is None or lines[-1][4:].startswith(dsn))
    check(ok, "%s: %d %s (got %s)" % (what, code, dsn or "", lines))


def qfile(srv, qdump, qid):
    path = os.path.join(srv.qdir, "incoming", qid)
    out = subprocess.run([qdump, path], capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return None, None
    env = {"attr": {}, "rcpt": []}
    for line in out.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "sender":
            env["sender"] = f[1]
        elif f[0] == "attr":
            env["attr"][f[1]] = f[2]
        elif f[0] == "rcpt":
            env["rcpt"].append((f[1], f[2], int(f[3])))
        elif f[0] == "content":
            off, size = int(f[1]), int(f[2])
    with open(path, "rb") as fp:
        fp.seek(off)
        content = fp.read(size)
    return env, content


def queued_qid(r):
    text = r[1][-1]
    return text.rsplit(" ", 1)[-1] if "queued as" in text else None


def strip_received(content):
    """Split off the Received: header smtpd added (it ends at the first
    CRLF not followed by folding white space)."""
    assert content.startswith(b"Received: from ")
    pos = 0
    while True:
        pos = content.index(b"\r\n", pos) + 2
        if content[pos:pos + 1] not in (b" ", b"\t"):
            return content[:pos], content[pos:]


def main():
    if len(sys.argv) not in (3, 4):
        print("usage: smtpd_test.py SMTPD QDUMP [VERIFY]")
        return 2
    smtpd_bin, qdump = sys.argv[1], sys.argv[2]
    verify_bin = sys.argv[3] if len(sys.argv) == 4 else None
    for p in (smtpd_bin, qdump):
        if not os.access(p, os.X_OK):
            print("SKIP: %s not built" % p)
            return 77
    try:
        socket.create_connection  # noqa
        t = socket.socket()
        t.bind(("127.0.0.2", 0))
        t.close()
    except OSError:
        print("SKIP: cannot bind 127.0.0.2")
        return 77
    deadline = time.time() + 150
    top = tempfile.mkdtemp(prefix="smtpd_test.")
    srv = srv2 = srv3 = None
    completed = False
    try:
        srv = Smtpd(smtpd_bin, top)
        VerifyServer(os.path.join(srv.qdir, "private", "verify"), "verify").start()
        QmgrServer(os.path.join(srv.qdir, "public", "qmgr"), "qmgr").start()
        run_tests(srv, qdump)
        srv2 = Smtpd(smtpd_bin, os.path.join(top, "t2"), "smtpd_timeout = 2s\n"
                     "smtpd_soft_error_limit = 1\nsmtpd_error_sleep_time = 1s\n")
        VerifyServer(os.path.join(srv2.qdir, "private", "verify"), "verify").start()
        run_timeout_test(srv2)
        if verify_bin and shutil.which("openssl"):
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import smtpd_tls_test
            srv3 = smtpd_tls_test.run(sys.modules[__name__], smtpd_bin, verify_bin, qdump,
                                      os.path.join(top, "t3"))
        else:
            print("skip - STARTTLS/AUTH tests (no verify daemon or no openssl)")
        check(time.time() < deadline, "finished within the time budget")
        completed = True
    finally:
        for s in (srv, srv2):
            if s:
                s.stop()
        if failures or not completed:
            print("--- maillog ---")
            print(srv.logtext() if srv else "")
            if srv3:
                print("--- maillog (TLS/AUTH instance) ---")
                print(srv3.logtext())
            print("kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


def run_tests(srv, qdump):
    port = srv.port
    # Greeting and EHLO keywords (smtplib)
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10)
    code, msg = c.ehlo()
    check(code == 250, "EHLO 250")
    feats = c.esmtp_features
    for k in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8",
              "chunking", "dsn"):
        check(k in feats, "EHLO offers %s" % k.upper())
    check(feats.get("size") == "100000", "SIZE 100000")
    check("vrfy" not in feats, "EHLO does not offer VRFY")
    check(msg.split(b"\n")[0] == b"mx.example.com", "EHLO first line is myhostname")

    # A message via smtplib, with dot-stuffing and CRLF
    body = (b"Subject: test one\r\nMessage-ID: <one@client.test>\r\n\r\n"
            b"line 1\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n")
    before = set(QmgrServer.qids)
    c.mail("sender@client.test")
    c.rcpt("user@example.com")
    code, resp = c.data(body)
    check(code == 250 and b"2.0.0 Ok: queued as" in resp, "DATA accepted: %r" % resp)
    qid1 = resp.decode().rsplit(" ", 1)[-1]
    c.quit()
    env, content = qfile(srv, qdump, qid1)
    check(env is not None, "queue file %s parses" % qid1)
    if env:
        check(env["sender"] == "sender@client.test", "envelope sender")
        check(env["rcpt"] == [("user@example.com", "", 0)], "envelope recipient %r" % env["rcpt"])
        check(env["attr"].get("client_address") == "127.0.0.1", "client_address")
        check(env["attr"].get("helo_name") == "client.test", "helo_name")
        check(env["attr"].get("protocol") == "ESMTP", "protocol ESMTP")
        rec, rest = strip_received(content)
        check(rec.startswith(b"Received: from client.test (unknown [127.0.0.1])\r\n"
                             b"\tby mx.example.com (Stork) with ESMTP id " + qid1.encode()
                             + b"\r\n\tfor <user@example.com>; "), "Received header %r" % rec)
        check(rest == body, "content byte-for-byte, dot-stuffing undone: %r" % rest)
    check(not srv.temp_files(), "no temp files left")

    # Pipelining, two recipients, 8-bit body, two messages in one session
    r = Raw(port)
    expect(r.reply(), 220, None, "greeting")
    check(r.buf == b"", "nothing after the greeting")
    r.send(b"EHLO pipe.test\r\nMAIL FROM:<a@pipe.test> BODY=8BITMIME\r\n"
           b"RCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE "
           b"ORCPT=rfc822;bob+2Bx@example.com\r\nDATA\r\n")
    expect(r.reply(), 250, None, "pipelined EHLO")
    expect(r.reply(), 250, "2.1.0", "pipelined MAIL")
    expect(r.reply(), 250, "2.1.5", "pipelined RCPT 1")
    expect(r.reply(), 250, "2.1.5", "pipelined RCPT 2")
    expect(r.reply(), 354, None, "pipelined DATA")
    body8 = b"Subject: 8bit\r\n\r\n\xe4\xf6\xfc \xc3\xa9\r\n"
    r.send(body8 + b".\r\nMAIL FROM:<>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
    rr = r.reply()
    expect(rr, 250, "2.0.0", "pipelined message 1 queued")
    qid2 = queued_qid(rr)
    expect(r.reply(), 250, "2.1.0", "second MAIL in the session")
    expect(r.reply(), 250, "2.1.5", "second RCPT")
    expect(r.reply(), 354, None, "second DATA")
    r.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    rr = r.reply()
    expect(rr, 250, "2.0.0", "message 2 queued")
    qid3 = queued_qid(rr)
    expect(r.reply(), 221, "2.0.0", "QUIT")
    check(r.closed(), "closed after QUIT")
    env, content = qfile(srv, qdump, qid2)
    if env:
        check(strip_received(content)[1] == body8, "8-bit body intact")
        check(env["rcpt"] == [("alice@example.com", "", 0),
                              ("bob@example.com", "rfc822;bob+x@example.com", 6)],
              "two recipients with NOTIFY/ORCPT: %r" % env["rcpt"])
        check(b"\tfor <" not in content.split(b"\r\n\r\n")[0], "no 'for' with two recipients")
    else:
        check(False, "queue file of message 2")
    env, content = qfile(srv, qdump, qid3)
    check(env is not None and env["sender"] == "", "null sender stored")

    # BDAT / CHUNKING
    r = Raw(port)
    r.reply()
    r.cmd(b"EHLO chunk.test")
    r.send(b"MAIL FROM:<c@chunk.test>\r\nRCPT TO:<user@example.com>\r\n")
    r.reply()
    r.reply()
    part1 = b"Subject: chunk\r\n\r\nline\r\n.\r\n"
    part2 = b"after dot\r\n"
    r.send(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2)
    expect(r.reply(), 250, "2.0.0", "BDAT chunk 1")
    rr = r.reply()
    expect(rr, 250, "2.0.0", "BDAT LAST queued")
    env, content = qfile(srv, qdump, queued_qid(rr) or "x")
    check(env is not None and strip_received(content)[1] == part1 + part2,
          "BDAT content verbatim (no dot handling)")
    # BDAT without a transaction: the chunk is read and rejected
    r.send(b"BDAT 5 LAST\r\nhello")
    expect(r.reply(), 503, "5.5.1", "BDAT without MAIL")
    expect(r.cmd(b"NOOP"), 250, "2.0.0", "session in sync after rejected BDAT")
    r.close()

    # SIZE limits
    r = Raw(port)
    r.reply()
    r.cmd(b"EHLO size.test")
    expect(r.cmd(b"MAIL FROM:<s@size.test> SIZE=200000"), 552, "5.3.4", "SIZE over limit at MAIL")
    expect(r.cmd(b"MAIL FROM:<s@size.test> SIZE=1000"), 250, "2.1.0", "SIZE under limit")
    r.cmd(b"RCPT TO:<user@example.com>")
    files_before = srv.incoming()
    expect(r.cmd(b"DATA"), 354, None, "DATA for big message")
    r.send((b"x" * 998 + b"\r\n") * 150 + b".\r\n")
    expect(r.reply(), 552, "5.3.4", "message over limit rejected after DATA")
    check(srv.incoming() == files_before, "no queue file for the big message")
    r.send(b"MAIL FROM:<s@size.test>\r\nRCPT TO:<user@example.com>\r\nBDAT 200000 LAST\r\n")
    r.reply()
    r.reply()
    r.send(b"y" * 200000)
    expect(r.reply(), 552, "5.3.4", "BDAT over limit")
    expect(r.cmd(b"NOOP"), 250, "2.0.0", "in sync after big BDAT")
    check(srv.incoming() == files_before, "no queue file for the big BDAT")
    check(not srv.temp_files(), "temp files of rejected messages removed")
    r.close()

    # Bare LF / bare CR: rejected after the real end, never a second message
    variants = [
        ("bare LF dot bare LF (smuggling)",
         b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<user@example.com>\r\n"
         b"DATA\r\nsmuggled\r\n.\r\n", b"bare <LF>"),
        ("CRLF dot bare LF", b"Subject: s\r\n\r\nbody\r\n.\nmore\r\n.\r\n", b"bare <LF>"),
        ("bare LF dot CRLF", b"Subject: s\r\n\r\nbody\n.\r\nmore\r\n.\r\n", b"bare <LF>"),
        ("bare CR dot", b"Subject: s\r\n\r\nbody\r.\r\nmore\r\n.\r\n", b"bare <CR>"),
        ("bare LF in a header", b"Subject: s\nX: y\r\n\r\nbody\r\n.\r\n", b"bare <LF>"),
    ]
    for name, data, why in variants:
        files_before = srv.incoming()
        r = Raw(port)
        r.reply()
        r.cmd(b"EHLO bare.test")
        r.send(b"MAIL FROM:<b@bare.test>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
        r.reply()
        r.reply()
        r.reply()
        r.send(data)
        rr = r.reply()
        expect(rr, 550, "5.5.2", "%s rejected" % name)
        check(why.decode() in rr[1][-1], "%s: reason names %s" % (name, why.decode()))
        expect(r.cmd(b"QUIT"), 221, "2.0.0", "%s: next reply is QUIT's (no second message)" % name)
        check(srv.incoming() == files_before, "%s: no queue file" % name)
        r.close()
    r = Raw(port)
    r.reply()
    r.cmd(b"EHLO bare.test")
    r.send(b"MAIL FROM:<b@bare.test>\r\nRCPT TO:<user@example.com>\r\nBDAT 8 LAST\r\na\nb\r\nc\r\n")
    r.reply()
    r.reply()
    expect(r.reply(), 550, "5.5.2", "bare LF in BDAT rejected")
    r.close()

    # Relay control and recipient classification
    r = Raw(port, source="127.0.0.2")
    r.reply()
    r.cmd(b"EHLO outside.test")
    r.cmd(b"MAIL FROM:<s@outside.test>")
    rr = r.cmd(b"RCPT TO:<x@remote.example>")
    expect(rr, 554, "5.7.1", "relay from outside mynetworks")
    check("<x@remote.example>: Relay access denied" in rr[1][-1], "relay reply text")
    for trick, code, dsn in ((b"<user%remote.example@example.com>", 550, "5.1.1"),
                             (b"<@example.com:x@remote.example>", 554, "5.7.1"),
                             (b"<\"x@remote.example\"@example.com>", 550, "5.1.1"),
                             (b"<remote.example!x@example.com>", 550, "5.1.1"),
                             (b"<x@remote.example@example.com>", 501, "5.1.3")):
        expect(r.cmd(b"RCPT TO:" + trick), code, dsn, "relay trick %s" % trick.decode())
    expect(r.cmd(b"RCPT TO:<nobody@example.com>"), 550, "5.1.1", "unknown user")
    expect(r.cmd(b"RCPT TO:<tempfail@example.com>"), 451, "4.3.0", "verify error → 451")
    expect(r.cmd(b"RCPT TO:<hangup-once@example.com>"), 250, "2.1.5",
           "verify connection lost under a request: asked again on a new one")
    expect(r.cmd(b"RCPT TO:<hangup@example.com>"), 451, "4.3.0",
           "verify connection lost twice → 451")
    expect(r.cmd(b"RCPT TO:<User@Example.COM>"), 250, "2.1.5", "local user from outside")
    expect(r.cmd(b"RCPT TO:<Postmaster>"), 250, "2.1.5", "RCPT TO:<Postmaster>")
    r.cmd(b"QUIT")
    r.close()
    r = Raw(port)
    r.reply()
    r.cmd(b"EHLO inside.test")
    r.cmd(b"MAIL FROM:<s@inside.test>")
    expect(r.cmd(b"RCPT TO:<x@remote.example>"), 250, "2.1.5", "relay from mynetworks")
    for i in range(4):
        r.cmd(b"RCPT TO:<x%d@remote.example>" % i)
    expect(r.cmd(b"RCPT TO:<y@remote.example>"), 452, "4.5.3", "recipient limit")
    r.close()

    # SMTPUTF8
    r = Raw(port)
    r.reply()
    r.cmd(b"EHLO utf8.test")
    expect(r.cmd("MAIL FROM:<j\u00f6rg@example.com>".encode()), 553, "5.6.7",
           "UTF-8 sender without SMTPUTF8")
    expect(r.cmd("MAIL FROM:<j\u00f6rg@example.com> SMTPUTF8".encode()), 250, "2.1.0",
           "UTF-8 sender with SMTPUTF8")
    expect(r.cmd("RCPT TO:<j\u00f6rg@example.com>".encode()), 250, "2.1.5", "UTF-8 recipient")
    r.close()

    # Protocol errors and small commands
    r = Raw(port)
    r.reply()
    expect(r.cmd(b"MAIL FROM:<a@b.c>"), 503, "5.5.1", "MAIL before EHLO")
    expect(r.cmd(b"HELO"), 501, "5.5.4", "HELO without argument")
    expect(r.cmd(b"HELO plain.test"), 250, None, "HELO")
    expect(r.cmd(b"RCPT TO:<user@example.com>"), 503, "5.5.1", "RCPT before MAIL")
    expect(r.cmd(b"DATA"), 503, "5.5.1", "DATA before MAIL")
    expect(r.cmd(b"VRFY user"), 502, "5.5.1", "VRFY disabled")
    expect(r.cmd(b"HELP"), 214, "2.0.0", "HELP")
    expect(r.cmd(b"NOOP \xff"), 500, "5.5.2", "invalid UTF-8 in a command")
    expect(r.cmd("HELO h\u00e9".encode()), 500, "5.5.2", "non-ASCII in HELO")
    expect(r.cmd(b"NOOP a\x00b"), 500, "5.5.2", "NUL in a command")
    expect(r.cmd(b"XYZZY"), 502, "5.5.2", "unknown command")
    expect(r.cmd(b"NOOP " + b"a" * 3000), 500, "5.5.2", "line too long")
    expect(r.cmd(b"RSET"), 250, "2.0.0", "RSET")
    expect(r.cmd(b"MAIL FROM:<a@b.c> FOO=BAR"), 555, "5.5.4", "unknown MAIL parameter")
    expect(r.cmd(b"MAIL FROM:<a b@c>"), 501, "5.1.7", "bad sender syntax")
    expect(r.cmd(b"MAIL FROM: <a@b.c>"), 250, "2.1.0", "space after the colon tolerated")
    expect(r.cmd(b"MAIL FROM:<a@b.c>"), 503, "5.5.1", "nested MAIL")
    expect(r.cmd(b"RCPT TO:<bad@@x>"), 501, "5.1.3", "bad recipient syntax")
    expect(r.cmd(b"DATA"), 554, "5.5.1", "DATA without valid recipients")
    expect(r.cmd(b"QUIT"), 221, "2.0.0", "QUIT")
    r.close()

    # Error limit: unknown commands until 421
    r = Raw(port)
    r.reply()
    r.send(b"BOGUS\r\n" * 25)
    codes = []
    try:
        while True:
            codes.append(r.reply()[0])
    except (EOFError, socket.timeout, ConnectionResetError):
        pass
    check(codes.count(502) == 20 and codes[-1] == 421, "hard error limit: 20 x 502 then 421 (%d replies)" % len(codes))
    r.close()
    # Junk command limit: 100 NOOPs are fine, then each counts as an error
    r = Raw(port)
    r.reply()
    r.send(b"NOOP\r\n" * 130)
    codes = []
    try:
        while True:
            codes.append(r.reply()[0])
    except (EOFError, socket.timeout, ConnectionResetError):
        pass
    check(codes[:120].count(250) == 120 and codes[-1] == 421,
          "junk command limit: NOOP flood ends in 421 (%d replies)" % len(codes))
    r.close()
    # Non-SMTP client
    r = Raw(port)
    r.reply()
    expect(r.cmd(b"GET / HTTP/1.0"), 221, "2.7.0", "HTTP request hung up")
    check(r.closed(), "closed after GET")
    r.close()

    # qmgr heard about every queued message
    time.sleep(0.3)
    for q in (qid1, qid2, qid3):
        check(q in QmgrServer.qids, "QMGR_NEW %s" % q)

    # Log lines in Postfix's shape
    time.sleep(0.2)
    log = srv.logtext()
    check("connect from unknown[127.0.0.1]" in log, "log: connect from")
    check("%s: client=unknown[127.0.0.1]" % qid1 in log, "log: QID: client=")
    check("%s: message-id=<one@client.test>" % qid1 in log, "log: QID: message-id=")
    check("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" in log,
          "log: disconnect counters")
    check("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <x@remote.example>: "
          "Relay access denied; from=<s@outside.test> to=<x@remote.example> proto=ESMTP "
          "helo=<outside.test>" in log, "log: NOQUEUE reject line")
    check("non-SMTP command from unknown[127.0.0.1]: GET" in log, "log: non-SMTP command")


def run_timeout_test(srv):
    # Past smtpd_soft_error_limit each error reply is followed by a pause
    # (smtpd_error_sleep_time); pipelined RCPTs still answer in order.
    r = Raw(srv.port)
    r.reply()
    r.cmd(b"EHLO tarpit.test")
    r.cmd(b"MAIL FROM:<t@tarpit.test>")
    t0 = time.time()
    r.send(b"RCPT TO:<nobody1@example.com>\r\nRCPT TO:<nobody2@example.com>\r\n"
           b"RCPT TO:<user@example.com>\r\nRCPT TO:<nobody3@example.com>\r\nNOOP\r\n")
    got = [r.reply() for _ in range(5)]
    codes = [g[0] for g in got]
    check(codes == [550, 550, 250, 550, 250], "tarpit keeps reply order: %r" % codes)
    check(time.time() - t0 >= 1.5, "tarpit slowed the error replies (%.1f s)" % (time.time() - t0))
    check("550 5.1.1 <nobody2@example.com>" in got[1][1][-1], "replies belong to their RCPT")
    r.close()
    r = Raw(srv.port)
    r.reply()
    r.s.settimeout(10)
    t0 = time.time()
    expect(r.reply(), 421, "4.4.2", "smtpd_timeout")
    check(time.time() - t0 < 6, "timeout after about 2 s")
    check(r.closed(), "closed after timeout")
    r.close()


if __name__ == "__main__":
    sys.exit(main())
