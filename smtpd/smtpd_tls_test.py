"""smtpd_tls_test.py - STARTTLS, wrapper mode, AUTH and the restriction
lists, run from smtpd_test.py (which passes itself as `h` for its fake
master, raw client and check helpers) against the real verify daemon.

Made at test time: a self-signed certificate (openssl req) and a virtual
user whose password hash comes from `openssl passwd -6`. One main.cf
serves three smtpd processes as master.cf would run them:
  smtp        smtpd_tls_security_level = may, AUTH enabled
  submission  -o smtpd_tls_security_level=encrypt
              -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
  smtps       -o smtpd_tls_wrappermode=yes
"""
import base64
import os
import smtplib
import socket
import ssl
import subprocess
import time

USER, PASSWORD = "auth@virt.example", "s3cret pass"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s)


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_files(top):
    cert, key = os.path.join(top, "cert.pem"), os.path.join(top, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=mx.example.com"],
                   check=True, capture_output=True, timeout=30)
    hashed = subprocess.run(["openssl", "passwd", "-6", PASSWORD], check=True,
                            capture_output=True, text=True, timeout=30).stdout.strip()
    with open(os.path.join(top, "vmailbox"), "w") as f:
        f.write("%s %s:virt.example/auth/:\n" % (USER, hashed))
        f.write("other@virt.example :virt.example/other/:\n")
    return cert, key


def start_verify(h, verify_bin, srv):
    path = os.path.join(srv.qdir, "private", "verify")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    lsock.setblocking(False)
    r, w = os.pipe()
    proc = h.spawn([verify_bin, "-c", srv.conf, "-n", "verify", "-t", "unix"], lsock, w)
    os.close(w)
    return proc, lsock, r


def gone(r):
    """The server closed the connection (EOF or reset), nothing else came."""
    r.s.settimeout(5)
    try:
        while True:
            chunk = r.s.recv(65536)
            if not chunk:
                return True
            r.buf += chunk
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def tls_raw(h, port, source="127.0.0.1"):
    """A raw client after EHLO and STARTTLS."""
    r = h.Raw(port, source)
    h.expect(r.reply(), 220, None, "greeting")
    r.cmd(b"EHLO raw.test")
    h.expect(r.cmd(b"STARTTLS"), 220, "2.0.0", "STARTTLS")
    r.s = client_ctx().wrap_socket(r.s)
    r.cmd(b"EHLO raw.test")
    return r


def run(h, smtpd_bin, verify_bin, qdump, top):
    os.makedirs(top, exist_ok=True)
    cert, key = make_files(top)
    cf = ("virtual_mailbox_domains = virt.example\n"
          "virtual_mailbox_maps = texthash:%s/vmailbox\n"
          "alias_maps =\n"
          "smtpd_tls_security_level = may\n"
          "smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
          "smtpd_sasl_auth_enable = yes\n"
          "smtpd_tls_loglevel = 1\n" % (top, cert, key))
    servers, verify = [], None
    try:
        srv = h.Smtpd(smtpd_bin, top, cf)
        servers.append(srv)
        verify = start_verify(h, verify_bin, srv)
        h.QmgrServer(os.path.join(srv.qdir, "public", "qmgr"), "qmgr").start()
        sub = h.Smtpd(smtpd_bin, top, cf, ["-o", "smtpd_tls_security_level=encrypt", "-o",
                                           "smtpd_recipient_restrictions=permit_sasl_authenticated,reject"])
        servers.append(sub)
        smtps = h.Smtpd(smtpd_bin, top, cf, ["-o", "smtpd_tls_wrappermode=yes"])
        servers.append(smtps)
        run_starttls(h, srv, qdump)
        run_auth(h, srv, qdump)
        run_submission(h, sub)
        run_wrapper(h, smtps, qdump)
        slow = h.Smtpd(smtpd_bin, top, cf, ["-o", "smtpd_starttls_timeout=1s",
                                            "-o", "smtpd_tls_wrappermode=yes"])
        servers.append(slow)
        run_handshake_timeout(h, srv, slow)
        limited = h.Smtpd(smtpd_bin, top, cf, ["-o", "smtpd_tls_wrappermode=yes",
                                               "-o", "smtpd_client_connection_count_limit=1",
                                               "-o", "smtpd_client_event_limit_exceptions="])
        servers.append(limited)
        run_wrapper_limit(h, limited)
        run_bad_config(h, smtpd_bin, top, cf)
        time.sleep(0.3)
        log = srv.logtext()
        check_log(h, log)
    finally:
        for s in servers:
            s.stop()
        if verify:
            proc, lsock, r = verify
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            lsock.close()
            os.close(r)
    return servers[0] if servers else None


def run_starttls(h, srv, qdump):
    port = srv.port
    # Plaintext EHLO: STARTTLS offered, AUTH not (smtpd_tls_auth_only)
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="tls.test", timeout=10)
    c.ehlo()
    h.check("starttls" in c.esmtp_features, "plaintext EHLO offers STARTTLS")
    h.check("auth" not in c.esmtp_features, "plaintext EHLO does not offer AUTH")
    code, _ = c.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)).decode())
    h.check(code == 538, "AUTH in plaintext refused with 538 (got %d)" % code)
    code, _ = c.starttls(context=client_ctx())
    h.check(code == 220, "smtplib starttls() 220")
    c.ehlo()
    h.check("starttls" not in c.esmtp_features, "no STARTTLS after TLS")
    h.check(c.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN"],
            "AUTH PLAIN LOGIN offered over TLS: %r" % c.esmtp_features.get("auth"))
    h.check(c.sock.version() in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % c.sock.version())
    c.mail("s@tls.test")
    c.rcpt("other@virt.example")
    code, resp = c.data(b"Subject: over TLS\r\n\r\nhello\r\n")
    h.check(code == 250, "message over TLS accepted")
    qid = resp.decode().rsplit(" ", 1)[-1]
    c.quit()
    env, content = h.qfile(srv, qdump, qid)
    if env:
        h.check(env["attr"].get("protocol") == "ESMTPS", "protocol ESMTPS: %r" % env["attr"])
        rec = h.strip_received(content)[0]
        h.check(b"\r\n\t(using TLSv1." in rec and b" with cipher " in rec and b" bits))\r\n" in rec,
                "Received names the TLS cipher: %r" % rec)
        h.check(b"with ESMTPS id " + qid.encode() in rec, "Received: with ESMTPS")
    else:
        h.check(False, "queue file of the TLS message")

    # STARTTLS injection (CVE-2011-0411): RSET pipelined in plaintext
    # after STARTTLS must never be executed.
    r = h.Raw(port)
    r.reply()
    r.cmd(b"EHLO inject.test")
    r.send(b"STARTTLS\r\nRSET\r\n")
    h.expect(r.reply(), 220, "2.0.0", "STARTTLS with pipelined RSET")
    r.s.settimeout(0.5)
    try:
        extra = r.s.recv(100)
    except socket.timeout:
        extra = b""
    h.check(r.buf == b"" and extra == b"", "no reply for the plaintext RSET (%r)" % (r.buf + extra))
    r.s.settimeout(10)
    r.s = client_ctx().wrap_socket(r.s)
    rr = r.cmd(b"EHLO inject.test")
    h.check(rr[0] == 250 and rr[1][0] == "250-mx.example.com",
            "first reply over TLS is EHLO's: %r" % rr[1][:1])
    h.expect(r.cmd(b"NOOP"), 250, "2.0.0", "session in sync after STARTTLS")
    h.expect(r.cmd(b"STARTTLS"), 554, "5.5.1", "second STARTTLS")
    r.cmd(b"QUIT")
    r.close()

    # Session state is reset by STARTTLS: MAIL needs a new EHLO
    r = h.Raw(port)
    r.reply()
    r.cmd(b"EHLO reset.test")
    h.expect(r.cmd(b"STARTTLS extra"), 501, "5.5.4", "STARTTLS with an argument")
    h.expect(r.cmd(b"STARTTLS"), 220, "2.0.0", "STARTTLS")
    r.s = client_ctx().wrap_socket(r.s)
    h.expect(r.cmd(b"MAIL FROM:<a@reset.test>"), 503, "5.5.1", "HELO forgotten after STARTTLS")
    r.close()

    # A failed handshake ends that session only
    other = h.Raw(port)
    other.reply()
    r = h.Raw(port)
    r.reply()
    h.expect(r.cmd(b"STARTTLS"), 220, "2.0.0", "STARTTLS before garbage")
    r.send(b"this is not a TLS client hello\r\n" * 4)
    h.check(gone(r), "garbage instead of a handshake: connection closed")
    r.close()
    h.expect(other.cmd(b"NOOP"), 250, "2.0.0", "other session unaffected by the failed handshake")
    other.close()


def run_auth(h, srv, qdump):
    port = srv.port
    # smtplib login(): PLAIN, good password; relay from outside mynetworks
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="auth.test", timeout=10,
                     source_address=("127.0.0.2", 0))
    c.starttls(context=client_ctx())
    c.ehlo()
    code, _ = c.login(USER, PASSWORD)
    h.check(code == 235, "AUTH PLAIN via smtplib.login: 235")
    c.mail("auth@virt.example")
    code, _ = c.rcpt("x@remote.example")
    h.check(code == 250, "authenticated client may relay (%d)" % code)
    code, resp = c.data(b"Subject: relayed\r\n\r\nhello\r\n")
    h.check(code == 250, "authenticated message queued")
    qid = resp.decode().rsplit(" ", 1)[-1]
    c.quit()
    env, content = h.qfile(srv, qdump, qid)
    if env:
        h.check(env["attr"].get("sasl_username") == USER, "sasl_username in the queue file")
        h.check(env["attr"].get("sasl_method") == "PLAIN", "sasl_method in the queue file")
        h.check(env["attr"].get("protocol") == "ESMTPSA", "protocol ESMTPSA")
        rec = h.strip_received(content)[0]
        h.check(b"with ESMTPSA id " + qid.encode() in rec, "Received: with ESMTPSA: %r" % rec)
        h.check(PASSWORD.encode() not in content, "no password in the queue file")
    else:
        h.check(False, "queue file of the authenticated message")
    h.check("%s: client=unknown[127.0.0.2], sasl_method=PLAIN, sasl_username=%s" % (qid, USER)
            in srv.logtext(), "log: client=..., sasl_method=PLAIN, sasl_username=")

    # LOGIN via smtplib
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="auth.test", timeout=10)
    c.starttls(context=client_ctx())
    c.ehlo()
    c.user, c.password = USER, PASSWORD
    code, _ = c.auth("LOGIN", c.auth_login)
    h.check(code == 235, "AUTH LOGIN via smtplib: 235")
    c.quit()

    # Bad password (PLAIN and LOGIN): 535 5.7.8; unauthenticated relay refused
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="auth.test", timeout=10,
                     source_address=("127.0.0.2", 0))
    c.starttls(context=client_ctx())
    c.ehlo()
    t0 = time.time()
    try:
        c.login(USER, "Wr0ngPassw0rd")
        h.check(False, "bad password refused")
    except smtplib.SMTPAuthenticationError as e:
        h.check(e.smtp_code == 535 and e.smtp_error.startswith(b"5.7.8"),
                "bad password: 535 5.7.8 (%r)" % e.smtp_error)
    c.user, c.password = USER, "Wr0ngPassw0rd"
    try:
        c.auth("LOGIN", c.auth_login)
        h.check(False, "bad LOGIN password refused")
    except smtplib.SMTPAuthenticationError as e:
        h.check(e.smtp_code == 535, "bad LOGIN password: 535 (%d)" % e.smtp_code)
    h.check(time.time() - t0 >= 0.9, "a failed AUTH is tarpitted (%.1f s)" % (time.time() - t0))
    c.mail("s@outside.test")
    code, resp = c.rcpt("x@remote.example")
    h.check(code == 554 and b"Relay access denied" in resp,
            "unauthenticated relay refused (%d %r)" % (code, resp))
    code, _ = c.rcpt("other@virt.example")
    h.check(code == 250, "unauthenticated mail to a virtual user accepted")
    c.close()

    # The exchange in detail (raw, over TLS)
    r = tls_raw(h, port)
    h.expect(r.cmd(b"AUTH CRAM-MD5"), 504, "5.5.4", "unknown mechanism")
    h.expect(r.cmd(b"AUTH"), 501, "5.5.4", "AUTH without a mechanism")
    rr = r.cmd(b"AUTH PLAIN")
    h.check(rr == (334, ["334 "]), "AUTH PLAIN without initial response: 334 (%r)" % (rr,))
    h.expect(r.cmd(b"*"), 501, "5.0.0", "'*' cancels")
    h.expect(r.cmd(b"AUTH PLAIN !!!!"), 501, "5.5.2", "bad base64")
    rr = r.cmd(b"AUTH LOGIN")
    h.check(rr == (334, ["334 VXNlcm5hbWU6"]), "LOGIN asks Username: (%r)" % (rr,))
    rr = r.cmd(b64(USER))
    h.check(rr == (334, ["334 UGFzc3dvcmQ6"]), "LOGIN asks Password: (%r)" % (rr,))
    h.expect(r.cmd(b64(PASSWORD)), 235, "2.7.0", "LOGIN step by step")
    h.expect(r.cmd(b"AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))), 503, "5.5.1",
             "AUTH when already authenticated")
    r.close()
    r = tls_raw(h, port)
    r.cmd(b"MAIL FROM:<a@b.example>")
    h.expect(r.cmd(b"AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))), 503, "5.5.1",
             "AUTH during a transaction")
    r.cmd(b"RSET")
    # pipelined: AUTH with initial response, then MAIL/RCPT relay
    r.send(b"AUTH PLAIN " + b64("%s\0%s\0%s" % (USER, USER, PASSWORD)) +
           b"\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<y@remote.example>\r\n")
    h.expect(r.reply(), 235, "2.7.0", "pipelined AUTH PLAIN with authzid = authcid")
    h.expect(r.reply(), 250, "2.1.0", "pipelined MAIL after AUTH")
    h.expect(r.reply(), 250, "2.1.5", "pipelined relay RCPT after AUTH")
    r.close()
    r = tls_raw(h, port)
    h.expect(r.cmd(b"AUTH PLAIN " + b64("other@virt.example\0%s\0%s" % (USER, PASSWORD))),
             535, "5.7.8", "authzid other than authcid refused")
    h.expect(r.cmd(b"AUTH PLAIN " + b64("\0other@virt.example\0x")), 535, "5.7.8",
             "user without a password hash")
    h.expect(r.cmd(b"AUTH PLAIN " + b"QUFB" * 700), 535, "5.7.8",
             "AUTH line over line_length_limit but within RFC 4954's 12288")
    h.expect(r.cmd(b"AUTH PLAIN " + b"QUFB" * 3100), 500, "5.5.2", "over-long AUTH line refused")
    h.expect(r.cmd(b"NOOP " + b"a" * 3000), 500, "5.5.2", "other commands keep line_length_limit")
    # the limit: the fifth failed check (one above) ends the session
    codes = []
    r.send(b"AUTH PLAIN " + b64("\0nosuch@virt.example\0x") + b"\r\n")
    try:
        for _ in range(8):
            code = r.reply()[0]
            codes.append(code)
            if code == 421:
                break
            r.send(b"AUTH PLAIN " + b64("\0nosuch@virt.example\0x") + b"\r\n")
    except (EOFError, socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    h.check(codes == [535, 535, 535, 535, 421], "fifth failed AUTH: 535 then 421 (%r)" % codes)
    h.check(gone(r), "closed after too many AUTH failures")
    r.close()


def run_submission(h, sub):
    port = sub.port
    r = h.Raw(port)
    r.reply()
    r.cmd(b"EHLO sub.test")
    h.expect(r.cmd(b"MAIL FROM:<a@sub.test>"), 530, "5.7.0", "encrypt: MAIL before STARTTLS")
    h.expect(r.cmd(b"AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))), 538, "5.7.11",
             "encrypt: AUTH before STARTTLS")
    r.close()
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="sub.test", timeout=10)
    c.starttls(context=client_ctx())
    c.ehlo()
    c.mail("a@sub.test")
    code, resp = c.rcpt("other@virt.example")
    h.check(code == 554 and b"Access denied" in resp,
            "submission: unauthenticated RCPT refused, even from mynetworks (%d %r)" % (code, resp))
    c.rset()
    c.login(USER, PASSWORD)
    c.mail("auth@virt.example")
    code, _ = c.rcpt("x@remote.example")
    h.check(code == 250, "submission: authenticated relay accepted")
    c.quit()


def run_wrapper(h, smtps, qdump):
    c = smtplib.SMTP_SSL("127.0.0.1", smtps.port, local_hostname="wrap.test", timeout=10,
                         context=client_ctx())
    code, _ = c.ehlo()
    h.check(code == 250, "wrapper mode: EHLO over implicit TLS")
    h.check("starttls" not in c.esmtp_features, "wrapper mode: no STARTTLS")
    h.check("auth" in c.esmtp_features, "wrapper mode: AUTH offered")
    c.login(USER, PASSWORD)
    c.mail("auth@virt.example")
    c.rcpt("x@remote.example")
    code, resp = c.data(b"Subject: smtps\r\n\r\nhello\r\n")
    h.check(code == 250, "wrapper mode: message queued")
    c.quit()
    env, content = h.qfile(smtps, qdump, resp.decode().rsplit(" ", 1)[-1])
    h.check(env is not None and env["attr"].get("protocol") == "ESMTPSA",
            "wrapper mode: protocol ESMTPSA")
    # a plaintext client on the wrapper port gets no SMTP greeting
    r = h.Raw(smtps.port)
    r.send(b"EHLO plain.test\r\n")
    h.check(gone(r) and r.buf == b"", "wrapper mode: plaintext client dropped (%r)" % r.buf)
    r.close()


def run_wrapper_limit(h, limited):
    # wrapper mode over the connection limit: the 421 comes after the
    # handshake, readable by the client, as the 220 would
    first = smtplib.SMTP_SSL("127.0.0.1", limited.port, local_hostname="wrap.test",
                             timeout=10, context=client_ctx())
    try:
        smtplib.SMTP_SSL("127.0.0.1", limited.port, local_hostname="wrap.test", timeout=10,
                         context=client_ctx())
        h.check(False, "wrapper mode: a second session over the limit is refused")
    except smtplib.SMTPConnectError as e:
        h.check(e.smtp_code == 421 and e.smtp_error.startswith(b"4.7.0 ")
                and b"too many connections" in e.smtp_error,
                "wrapper mode: 421 4.7.0 over TLS past the limit (%r)" % (e.args,))
    code, _ = first.ehlo()
    h.check(code == 250, "wrapper mode: the session within the limit goes on")
    first.quit()


def run_handshake_timeout(h, srv, slow):
    # wrapper mode, smtpd_starttls_timeout = 1s: a client that never
    # starts the handshake is dropped; a normal session meanwhile works
    r = h.Raw(slow.port)
    other = h.Raw(srv.port)
    other.reply()
    t0 = time.time()
    closed = gone(r)
    h.check(closed and time.time() - t0 < 4, "TLS handshake timeout (%.1f s)" % (time.time() - t0))
    h.expect(other.cmd(b"NOOP"), 250, "2.0.0", "other session alive after a handshake timeout")
    other.close()
    r.close()
    time.sleep(0.2)
    h.check("timeout after CONNECT from unknown[127.0.0.1]" in slow.logtext(),
            "log: timeout during the handshake")


def run_bad_config(h, smtpd_bin, top, cf):
    for args, name in ((["-o", "smtpd_relay_restrictions=permit_mynetworks,check_foo"],
                        "smtpd_relay_restrictions"),
                       (["-o", "smtpd_relay_restrictions=permit_mynetworks"],
                        "smtpd_relay_restrictions or smtpd_recipient_restrictions"),
                       (["-o", "smtpd_tls_security_level=maybe"], "smtpd_tls_security_level"),
                       (["-o", "smtpd_tls_cert_file=/nonexistent.pem"], "/nonexistent.pem")):
        bad = h.Smtpd(smtpd_bin, top, cf, args)
        try:
            rc = bad.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        bad.stop()
        h.check(rc not in (None, 0) and name in bad.logtext(),
                "bad config %s refused (exit %r)" % (args[1], rc))


def check_log(h, log):
    h.check("Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1." in log
            and " with cipher " in log, "log: Anonymous TLS connection established")
    h.check("discarding 6 bytes of plaintext input pipelined after STARTTLS" in log,
            "log: pipelined plaintext discarded")
    h.check("SSL_accept error from unknown[127.0.0.1]" in log, "log: SSL_accept error")
    h.check("SASL PLAIN authentication failed: authentication failure, sasl_username=%s" % USER
            in log, "log: SASL authentication failed")
    h.check(PASSWORD not in log and "Wr0ngPassw0rd" not in log,
            "log: no passwords")
    h.check("starttls=1 auth=1" in log, "log: disconnect counts starttls and auth")
