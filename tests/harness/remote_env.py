"""remote_env - what the end-to-end tests of remote delivery need besides
Stork instances and DNS (dns_env.py): scripted SMTP/LMTP receivers,
certificates made at test time, and DSN parsing.

Receiver      a scripted SMTP (or LMTP) server on (127.0.0.x, port) or a
              UNIX socket, one thread per session. It records every
              command and message, counts connections, and keeps the
              highest number of concurrent sessions and of concurrent
              transactions (MAIL up to the reply to the end of DATA)
              it ever saw. Replies can be scripted per recipient and
              per message; `delay` makes each DATA take that long, so
              that concurrency builds up.
make_certs    a test CA, a leaf signed by it for given names, a
              self-signed leaf and an unrelated key pair (openssl CLI).
parse_dsn     a delivery status notification parsed with python's email
              package into its parts and per-recipient fields.

Every socket has a timeout; servers stop by closing their listener.
"""

import base64
import contextlib
import email
import email.policy
import os
import re
import socket
import ssl
import subprocess
import threading
import time


# ------------------------------------------------------------ receivers

class _Conn:
    """A CRLF line reader/writer over a socket that can switch to TLS."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
            if len(self.buf) > 10 * 1024 * 1024:
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")


class Receiver:
    """A scripted SMTP/LMTP server (see the module doc).

    addr/port or path (UNIX socket, mode 0666). Options:
      ext       EHLO keywords (default PIPELINING 8BITMIME DSN SMTPUTF8)
      tls       an ssl.SSLContext: offer STARTTLS with it
      rcpt      function(addr) -> reply line, or None for 250
      data      function(msg) -> reply line after ".", or None for 250
      lmtp_rcpt function(addr) -> per-recipient reply after "." (LMTP)
      delay     seconds to wait before answering the end of DATA
      name      the name in the greeting and EHLO reply
      auth      {user: password}: offer AUTH PLAIN LOGIN and check them
      need_auth refuse MAIL (530 5.7.0) before a successful AUTH
      tls_break offer STARTTLS, answer 220 and then drop the connection
    Each message: mail (the MAIL line), rcpts (addresses), rcpt_lines
    (the RCPT commands as sent), data (bytes,
    dot-unstuffed), tls, helo, auth (the user or None), pipelined (RCPT
    was already in the buffer when MAIL was read).
    """

    def __init__(self, addr=None, port=None, path=None, lmtp=False, ext=None, tls=None,
                 rcpt=None, data=None, lmtp_rcpt=None, delay=0.0, name="test.server",
                 auth=None, need_auth=False, tls_break=False):
        self.addr, self.port, self.path, self.lmtp = addr, port, path, lmtp
        self.ext = list(ext) if ext is not None else ["PIPELINING", "8BITMIME", "DSN",
                                                      "SMTPUTF8"]
        self.tls, self.rcpt_fn, self.data_fn, self.lmtp_rcpt = tls, rcpt, data, lmtp_rcpt
        self.delay, self.name = delay, name
        self.auth, self.need_auth, self.tls_break = auth, need_auth, tls_break
        self.lock = threading.Lock()
        self.connections = 0
        self.messages = []      # dicts: mail, rcpts (addresses), data (bytes), tls, helo
        self.commands = []
        self.sessions = self.max_sessions = 0
        self.transactions = self.max_transactions = 0
        fam = socket.AF_UNIX if path else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        if not path:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(path if path else (addr, port))
        if path:
            os.chmod(path, 0o666)
        self.lsock.listen(64)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        with contextlib.suppress(OSError):
            self.lsock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.lsock.close()
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def mail_commands(self):
        with self.lock:
            return [c for c in self.commands if c.upper().startswith("MAIL")]

    def _serve(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._session, args=(s,), daemon=True).start()

    def _count(self, what, delta):
        with self.lock:
            v = getattr(self, what) + delta
            setattr(self, what, v)
            top = "max_" + what
            if v > getattr(self, top):
                setattr(self, top, v)

    def _auth(self, c, text):
        """AUTH PLAIN (initial response) or LOGIN; the user, or None."""
        parts = text.split(" ")
        try:
            if parts[1].upper() == "PLAIN" and len(parts) > 2:
                raw = base64.b64decode(parts[2]).split(b"\0")
                user, pw = raw[1].decode(), raw[2].decode()
            else:
                c.send("334 VXNlcm5hbWU6")
                user = base64.b64decode(c.readline() or b"").decode()
                c.send("334 UGFzc3dvcmQ6")
                pw = base64.b64decode(c.readline() or b"").decode()
        except (IndexError, ValueError):
            c.send("501 5.5.2 Error: malformed AUTH")
            return None
        if self.auth.get(user) == pw:
            c.send("235 2.7.0 Authentication successful")
            return user
        c.send("535 5.7.8 Error: authentication failed")
        return None

    def _session(self, s):
        self._count("sessions", 1)
        in_tx = False
        s.settimeout(60)
        c = _Conn(s)
        tls_on = False
        helo = None
        user = None
        msg = None
        try:
            c.send("220 %s ESMTP scripted" % self.name)
            while True:
                line = c.readline()
                if line is None:
                    return
                text = line.decode("utf-8", "replace")
                with self.lock:
                    self.commands.append(text)
                verb = text.split(" ")[0].upper()
                if verb in ("EHLO", "LHLO"):
                    helo = text
                    ext = list(self.ext)
                    if (self.tls or self.tls_break) and not tls_on:
                        ext.append("STARTTLS")
                    if self.auth:
                        ext.append("AUTH PLAIN LOGIN")
                    lines = [self.name] + ext
                    for ln in lines[:-1]:
                        c.send("250-" + ln)
                    c.send("250 " + lines[-1])
                elif verb == "HELO":
                    helo = text
                    c.send("250 " + self.name)
                elif verb == "STARTTLS" and self.tls_break and not tls_on:
                    c.send("220 2.0.0 Ready to start TLS")
                    return
                elif verb == "AUTH" and self.auth:
                    user = self._auth(c, text) or user
                elif verb == "STARTTLS" and self.tls and not tls_on:
                    c.send("220 2.0.0 Ready to start TLS")
                    c.sock = self.tls.wrap_socket(c.sock, server_side=True)
                    c.buf = b""
                    tls_on = True
                elif verb == "MAIL":
                    if self.need_auth and not user:
                        c.send("530 5.7.0 Authentication required")
                        continue
                    if not in_tx:
                        in_tx = True
                        self._count("transactions", 1)
                    msg = {"mail": text, "rcpts": [], "rcpt_lines": [], "tls": tls_on,
                           "helo": helo, "auth": user, "pipelined": b"RCPT" in c.buf}
                    c.send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    m = re.search(r"<([^>]*)>", text)
                    addr = m.group(1) if m else ""
                    reply = self.rcpt_fn(addr) if self.rcpt_fn else None
                    if msg is None:
                        c.send("503 5.5.1 Error: need MAIL command")
                    elif reply:
                        c.send(reply)
                    else:
                        msg["rcpts"].append(addr)
                        msg["rcpt_lines"].append(text)
                        c.send("250 2.1.5 Ok")
                elif verb == "DATA":
                    if msg is None or not msg["rcpts"]:
                        c.send("554 5.5.1 Error: no valid recipients")
                        continue
                    c.send("354 End data with <CR><LF>.<CR><LF>")
                    data = []
                    while True:
                        ln = c.readline()
                        if ln is None:
                            return
                        if ln == b".":
                            break
                        data.append(ln[1:] if ln.startswith(b".") else ln)
                    msg["data"] = b"".join(x + b"\r\n" for x in data)
                    if self.delay:
                        time.sleep(self.delay)
                    if self.lmtp:
                        with self.lock:
                            self.messages.append(msg)
                        for r in msg["rcpts"]:
                            reply = self.lmtp_rcpt(r) if self.lmtp_rcpt else None
                            c.send(reply or "250 2.0.0 <%s> delivered" % r)
                    else:
                        reply = self.data_fn(msg) if self.data_fn else None
                        if not reply or reply.startswith("2"):
                            with self.lock:
                                self.messages.append(msg)
                        c.send(reply or "250 2.0.0 Ok: queued as SCRIPTED")
                    msg = None
                    in_tx = False
                    self._count("transactions", -1)
                elif verb == "RSET":
                    msg = None
                    if in_tx:
                        in_tx = False
                        self._count("transactions", -1)
                    c.send("250 2.0.0 Ok")
                elif verb == "NOOP":
                    c.send("250 2.0.0 Ok")
                elif verb == "QUIT":
                    c.send("221 2.0.0 Bye")
                    return
                else:
                    c.send("502 5.5.2 Error: command not recognized")
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            if in_tx:
                self._count("transactions", -1)
            self._count("sessions", -1)
            with contextlib.suppress(OSError):
                s.close()


def can_bind(addr):
    """Whether this host lets us bind 127.0.0.x (Linux: all of 127/8)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def port_free_on(port, addrs):
    """Whether TCP port is free on every address in addrs."""
    for a in addrs:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((a, port))
            except OSError:
                return False
    return True


def common_port(addrs):
    """A TCP port free on all of addrs (they all listen on one port,
    because the smtp client uses one smtp_service_port for every MX)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port_free_on(port, addrs):
            return port
    raise AssertionError("no common free port on %s" % addrs)


# ---------------------------------------------------------- certificates

def _openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True,
                   timeout=60)


def make_certs(d, names):
    """In directory d: ca.pem/ca.key (a test CA), leaf.pem/leaf.key signed
    by it with subjectAltName DNS:<each of names> (CN the first name),
    self.pem/self.key (self-signed) and other.pem/other.key (unrelated,
    for a TLSA record that matches nothing). Returns {base: (cert, key)}
    plus "ca": path of the CA certificate. Files are world-readable: the
    daemons that read them may run as mail_owner."""
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=Stork Test CA")
    _openssl(d, "req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr",
             "-subj", "/CN=" + names[0])
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n")
    _openssl(d, "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    _openssl(d, "req", "-x509", *ec, "-keyout", "self.key", "-out", "self.pem", "-days", "2",
             "-subj", "/CN=self-signed.test")
    _openssl(d, "req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem",
             "-days", "2", "-subj", "/CN=other.test")
    os.chmod(d, 0o755)
    out = {"ca": os.path.join(d, "ca.pem")}
    for base in ("ca", "leaf", "self", "other"):
        for ext in ("pem", "key"):
            os.chmod(os.path.join(d, base + "." + ext), 0o644)
        if base != "ca":
            out[base] = (os.path.join(d, base + ".pem"), os.path.join(d, base + ".key"))
    return out


def server_context(cert_key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_key)
    return ctx


# ----------------------------------------------------------------- DSNs

def parse_dsn(raw):
    """A DSN (bytes as stored in a Maildir) -> dict with
      msg        the email.message.EmailMessage (the multipart/report)
      parts      [content types of the report's parts]
      fields     the message/delivery-status per-message fields (dict,
                 lower-case names)
      rcpts      [dict per-recipient fields]
      human      the text of the first (human-readable) part
    Raises AssertionError when the structure is not RFC 3464's."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg.get_param("report-type")
    parts = list(msg.iter_parts())
    types = [p.get_content_type() for p in parts]
    assert len(parts) >= 2 and types[1] == "message/delivery-status", types
    status = parts[1]
    # email parses message/delivery-status into a list of header blocks:
    # the per-message fields, then one block per recipient.
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, blocks
    def fields(b):
        return {k.lower(): str(v) for k, v in b.items()}
    human = parts[0].get_content() if types[0].startswith("text/") else ""
    return {"msg": msg, "parts": types, "fields": fields(blocks[0]),
            "rcpts": [fields(b) for b in blocks[1:]], "human": human}
