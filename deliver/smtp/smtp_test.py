#!/usr/bin/env python3
"""smtp_test - the smtp/lmtp delivery agent against real DNS (nsd +
unbound on loopback, tests/harness/dns_env.py) and scripted SMTP/LMTP
servers on 127.0.0.x, run under a fake master and driven as qmgr through
smtp_test_tool. Usage: smtp_test.py SMTP_BINARY TOOL_BINARY HARNESS_DIR
Exit 77 (skip) when nsd/unbound/ldnsutils/openssl are missing."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

SMTP, TOOL, HARNESS = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, HARNESS)
import dns_env  # noqa: E402
import remote_env  # noqa: E402
from remote_env import Receiver as Server  # noqa: E402

failures = []
OKS = ("relayed", "delivered")
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
        print("ok:", what)
    else:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


# ------------------------------------------------ servers and certificates
# The scripted SMTP/LMTP receiver and the test certificates are the
# harness's (tests/harness/remote_env.py), shared with the e2e tests.

def server_ctx(d, name):
    return remote_env.server_context((os.path.join(d, name + ".pem"),
                                      os.path.join(d, name + ".key")))


# ---------------------------------------------------------------- the agent

def start_agent(conf, queue, name, *opts):
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

    proc = subprocess.Popen([SMTP, "-c", conf, "-n", name, "-t", "unix"] + list(opts),
                            preexec_fn=pre, close_fds=False)
    for fd in (status_w, hi_l, hi_s):
        os.close(fd)
    lsock.close()
    os.set_blocking(status_r, False)
    return sock_path, proc, status_r


class Env:
    pass


def tool(*args):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=150)
    if p.returncode != 0:
        print("tool", args[0], "failed:", p.stderr, file=sys.stderr)
    return p


def message(env, content, sender, rcpts):
    path = os.path.join(env.tmp, "content")
    with open(path, "wb") as f:
        f.write(content)
    p = tool("mkq", env.queue, sender, path, *rcpts)
    qid, off, size = p.stdout.split()
    return qid, int(off), int(size)


def deliver(env, rcpts, nexthop="-", content=None, sender="sender@origin.test", count=1,
            flags="-", sock=None):
    """Returns ({rcpt: (action, dsn, text)}, [done lines], qid)."""
    content = content or (b"Subject: test\r\nFrom: sender@origin.test\r\n\r\n"
                          b"hello\r\n.leading dot\r\n")
    plain = [r.split("/")[0] for r in rcpts]
    qid, off, size = message(env, content, sender, plain)
    p = tool("req", sock or env.sock, count, qid, "incoming/" + qid, sender, off, size,
             nexthop, flags, *rcpts)
    replies, dones = {}, []
    for line in p.stdout.splitlines():
        if line.startswith("DONE"):
            dones.append(line)
            continue
        idx, action, dsn, text = line.split(" ", 3)
        replies[plain[int(idx)]] = (action, dsn, text)
    return replies, dones, qid


def log_text(env):
    with open(env.log, errors="replace") as f:
        return f.read()


# ------------------------------------------------------------------ tests

def run_tests(env):
    P = env.port
    srv = {}

    def add(name, addr, **opts):
        srv[name] = Server(addr, P, **opts)
        return srv[name]

    def rcpt_script(a):
        if a.startswith("defer"):
            return "450 4.2.0 <%s>: mailbox busy" % a
        if a.startswith("fail"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % a
        return None

    add("mx2", "127.0.0.22")
    add("nomx", "127.0.0.23")
    add("script", "127.0.0.24", rcpt=rcpt_script,
        ext=["PIPELINING", "SIZE 10000000", "8BITMIME", "DSN"])
    add("small", "127.0.0.25", ext=["SIZE 100"])
    add("may", "127.0.0.26", tls=server_ctx(env.certs, "self"))
    add("notls", "127.0.0.27", ext=["8BITMIME"])
    add("verify", "127.0.0.28", tls=server_ctx(env.certs, "leaf"))
    add("dane", "127.0.0.29", tls=server_ctx(env.certs, "leaf"))
    add("danebad", "127.0.0.30", tls=server_ctx(env.certs, "leaf"))
    add("auth", "127.0.0.31", tls=server_ctx(env.certs, "self"), auth={"user": "secret"},
        need_auth=True)
    add("nopipe", "127.0.0.32", ext=["8BITMIME"])
    add("badauth", "127.0.0.34", tls=server_ctx(env.certs, "self"), auth={"user": "secret"},
        need_auth=True)
    add("tlsbreak", "127.0.0.35", tls_break=True)
    try:
        # MX preference: mx1 (127.0.0.21) refuses, mx2 takes it
        r, d, qid = deliver(env, ["a@mxpref.test"])
        check(r.get("a@mxpref.test", ("",))[0] in OKS, f"first MX refuses, second: {r}")
        check(len(srv["mx2"].messages) == 1, "mx2 got the message")
        lg = log_text(env)
        check(re.search(qid + r": to=<a@mxpref.test>, relay=mx2.mxpref.test\[127.0.0.22\]:%d, "
                        r"delay=[0-9.e-]+, delays=[0-9.e/-]+, dsn=2.0.0, status=sent "
                        r"\(250 2.0.0 Ok: queued as SCRIPTED\)" % P, lg) is not None,
              "Postfix-shaped status=sent line")
        check(f"connect to mx1.mxpref.test[127.0.0.21]:{P}: Connection refused" in lg,
              "refused connection to mx1 logged")
        text = r.get("a@mxpref.test", ("", "", ""))[2]
        check(text.endswith("(in reply to end of DATA command)"), f"success text: {text}")
        m = srv["mx2"].messages[0] if srv["mx2"].messages else {"data": b""}
        # The receiver removes the stuffing: a stuffed line comes back whole.
        check(b"\r\n.leading dot\r\n" in m["data"], "dot-stuffing")

        # null MX fails at once; NXDOMAIN fails; no MX falls back to A
        r, d, _ = deliver(env, ["a@nullmx.test"])
        v = r.get("a@nullmx.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.1.10" and "null MX" in v[2], f"null MX: {v}")
        r, d, _ = deliver(env, ["a@nosuch.test"])
        v = r.get("a@nosuch.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.1.2", f"NXDOMAIN bounces 5.1.2: {v}")
        r, d, _ = deliver(env, ["a@nomx.test"])
        check(r.get("a@nomx.test", ("",))[0] in OKS and len(srv["nomx"].messages) == 1,
              f"no MX: A record used: {r}")

        # per-recipient 4xx/5xx, pipelining, DSN parameters
        r, d, _ = deliver(env, ["ok@script.test/6", "defer@script.test", "fail@script.test"])
        v = r.get("defer@script.test", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.2.0" and v[2].startswith(
            "host script.test[127.0.0.24]:%d said: 450 4.2.0 <defer@script.test>: mailbox busy"
            % P) and v[2].endswith("(in reply to RCPT TO command)"), f"4xx defers: {v}")
        v = r.get("fail@script.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.1.1" and "no such user" in v[2],
              f"5xx fails with the remote text: {v}")
        check(r.get("ok@script.test", ("",))[0] == "delivered",
              "DSN-capable next hop: action delivered (NOTIFY passed on)")
        m = srv["script"].messages[-1] if srv["script"].messages else {}
        check(m.get("pipelined"), "MAIL and RCPT arrived pipelined")
        check("SIZE=" in m.get("mail", "") and "RET=HDRS" in m.get("mail", "")
              and "ENVID=envid-1" in m.get("mail", ""), f"MAIL parameters: {m.get('mail')}")
        check(any("NOTIFY=SUCCESS,FAILURE" in x and "ORCPT=rfc822;orig+2Bx+3Dy@example.com"
                  in x for x in m.get("rcpt_lines", [])),
              f"RCPT DSN parameters: {m.get('rcpt_lines')}")

        # connection reuse: two requests on one qmgr connection, one session
        before, nmsg = srv["script"].connections, len(srv["script"].messages)
        r, d, qid = deliver(env, ["ok2@script.test"], count=2)
        check(len(d) == 2 and srv["script"].connections - before <= 1
              and len(srv["script"].messages) == nmsg + 2,
              f"two messages, at most one new connection ({srv['script'].connections - before})")
        check(qid + ": reusing the connection to script.test" in log_text(env),
              "connection reuse logged")
        check("RSET" in srv["script"].commands, "RSET before reuse")

        # no pipelining: one command at a time still works
        r, d, _ = deliver(env, ["x@nopipe.test", "y@nopipe.test"])
        check(all(v[0] == "relayed" for v in r.values()) and len(r) == 2
              and not srv["nopipe"].messages[-1]["pipelined"], f"without PIPELINING: {r}")

        # SIZE refusal
        r, d, _ = deliver(env, ["a@small.test"], content=b"Subject: big\r\n\r\n" + b"x" * 200
                          + b"\r\n")
        v = r.get("a@small.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.3.4" and not srv["small"].messages,
              f"SIZE refusal fails 5.3.4, nothing sent: {v}")

        # SMTPUTF8 required, not offered
        r, d, _ = deliver(env, ["a@small.test"], flags=1)
        v = r.get("a@small.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.6.7", f"SMTPUTF8 not offered bounces: {v}")

        # TLS may with a self-signed certificate
        r, d, _ = deliver(env, ["a@may.test"])
        check(r.get("a@may.test", ("",))[0] in OKS and srv["may"].messages
              and srv["may"].messages[0]["tls"], f"may: delivered over TLS: {r}")
        check(re.search(r"Untrusted TLS connection established to may.test\[127.0.0.26\]:%d: "
                        r"TLSv1.[23] with cipher" % P, log_text(env)) is not None,
              "Untrusted TLS line logged")

        # encrypt to a server without STARTTLS defers
        r, d, _ = deliver(env, ["a@notls.test"])
        v = r.get("a@notls.test", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.7.4" and "TLS is required, but was not "
              "offered by host notls.test[127.0.0.27]" in v[2] and not srv["notls"].messages,
              f"encrypt without STARTTLS defers: {v}")
        check(any("REASON" not in x and "TLS is required" in x for x in d),
              f"DELIVER_DONE carries the reason: {d}")

        # verify: right name passes, wrong name defers
        r, d, _ = deliver(env, ["a@verify.test"])
        check(r.get("a@verify.test", ("",))[0] in OKS, f"verify, right name: {r}")
        check("Verified TLS connection established to mx.verify.test[127.0.0.28]"
              in log_text(env), "Verified TLS line logged")
        n = len(srv["verify"].messages)
        r, d, _ = deliver(env, ["a@wrongname.test"])
        v = r.get("a@wrongname.test", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.7.5" and len(srv["verify"].messages) == n,
              f"verify, wrong name defers: {v}")

        # DANE: match and mismatch
        r, d, _ = deliver(env, ["a@dane.test"])
        check(r.get("a@dane.test", ("",))[0] in OKS and srv["dane"].messages
              and srv["dane"].messages[0]["tls"], f"DANE match delivered: {r}")
        check("Verified TLS connection established to mx.dane.test[127.0.0.29]"
              in log_text(env), "DANE Verified line logged")
        r, d, _ = deliver(env, ["a@danebad.test"])
        v = r.get("a@danebad.test", ("", "", ""))
        check(v[0] == "deferred" and not srv["danebad"].messages,
              f"DANE mismatch defers, never plaintext: {v}")
        check(re.search(r"a@danebad.test>, relay=mx.danebad.test.*status=deferred \(TLS handshake with "
                        r"mx.danebad.test", log_text(env)) is not None,
              "DANE mismatch logged")
        # insecure zone with the dane level: opportunistic TLS
        r, d, _ = deliver(env, ["a@may.test"], nexthop="may.test")
        check(r.get("a@may.test", ("",))[0] in OKS, "dane level, unsigned zone: may")

        # AUTH PLAIN over TLS to a smarthost ([host]:port, no MX lookup)
        r, d, _ = deliver(env, ["a@far.away"], nexthop=f"[127.0.0.31]:{P}")
        m = srv["auth"].messages
        check(r.get("a@far.away", ("",))[0] in OKS and m and m[0]["auth"] == "user"
              and m[0]["tls"], f"AUTH PLAIN over TLS to a relayhost: {r}")
        check(any(c.startswith("AUTH PLAIN ") for c in srv["auth"].commands), "PLAIN used")

        # every address refuses: deferred 4.4.1, DELIVER_DONE has the reason
        r, d, _ = deliver(env, ["a@down.test"])
        v = r.get("a@down.test", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.4.1" and "connect to down.test[127.0.0.33]:%d: "
              "Connection refused" % P in v[2], f"all hosts down defers 4.4.1: {v}")
        check(d and "Connection refused" in d[0], f"DELIVER_DONE REASON: {d}")

        # 8-bit content: BODY=8BITMIME when offered
        r, d, _ = deliver(env, ["ok8@script.test"], content=b"Subject: x\r\n\r\n\xc3\xa4\r\n")
        m = srv["script"].messages[-1] if srv["script"].messages else {}
        check("BODY=8BITMIME" in m.get("mail", ""), f"BODY=8BITMIME: {m.get('mail')}")

        # AUTH failure defers 4.7.0 with the server's reply
        r, d, _ = deliver(env, ["a@far.away"], nexthop=f"[127.0.0.34]:{P}")
        v = r.get("a@far.away", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.7.0" and "535 5.7.8" in v[2]
              and not srv["badauth"].messages, f"AUTH failure defers: {v}")

        # may: a failed handshake is retried in the clear
        r, d, _ = deliver(env, ["a@tlsbreak.test"])
        m = srv["tlsbreak"].messages
        check(r.get("a@tlsbreak.test", ("",))[0] in OKS and m and not m[0]["tls"]
              and srv["tlsbreak"].connections == 2, f"may: plaintext after TLS failure: {r}")

        # concurrency: several requests at once on separate qmgr connections
        results = []

        def one(i):
            results.append(deliver(env, ["c%d@nomx.test" % i])[0])
        ts = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        check(len(results) == 5 and all(list(x.values())[0][0] in OKS for x in results),
              "five concurrent requests delivered")
    finally:
        for s in srv.values():
            s.stop()


def run_lmtp(env):
    path = os.path.join(env.tmp, "lmtp.sock")
    srv = Server(path=path, lmtp=True,
                 rcpt=lambda a: "550 5.1.1 unknown user" if a.startswith("nobody") else None,
                 lmtp_rcpt=lambda a: "452 4.2.2 mailbox full" if a.startswith("full")
                 else None)
    try:
        r, d, _ = deliver(env, ["u@lmtp.test", "full@lmtp.test", "nobody@lmtp.test"],
                          nexthop="unix:" + path, sock=env.lmtp_sock)
        check(r.get("u@lmtp.test", ("",))[0] == "delivered", f"LMTP delivered: {r}")
        v = r.get("full@lmtp.test", ("", "", ""))
        check(v[0] == "deferred" and v[1] == "4.2.2" and "(in reply to end of DATA command)"
              in v[2], f"LMTP per-recipient reply after DATA: {v}")
        v = r.get("nobody@lmtp.test", ("", "", ""))
        check(v[0] == "failed" and v[1] == "5.1.1", f"LMTP RCPT rejection: {v}")
        check(any(c.startswith("LHLO ") for c in srv.commands), "LHLO sent")
    finally:
        srv.stop()


def main():
    missing = dns_env.tools_missing()
    if missing or not shutil.which("openssl"):
        print("skipping: missing", missing)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="smtp_test.")
    env = Env()
    env.tmp = tmp
    env.certs = os.path.join(tmp, "certs")
    os.mkdir(env.certs)
    remote_env.make_certs(env.certs, ["mx.verify.test", "mx.dane.test"])
    env.port = dns_env.free_port()
    P = env.port
    digest = dns_env.tlsa_3_1_1(os.path.join(env.certs, "leaf.pem"))
    wrong = dns_env.tlsa_3_1_1(os.path.join(env.certs, "other.pem"))
    dns = dns_env.DnsEnv(tmp)
    dns.add_zone("mxpref.test", ["@ MX 10 mx1", "@ MX 20 mx2", "mx1 A 127.0.0.21",
                                 "mx2 A 127.0.0.22"])
    dns.add_zone("nullmx.test", ["@ MX 0 ."])
    dns.add_zone("nomx.test", ["@ A 127.0.0.23"])
    dns.add_zone("script.test", ["@ A 127.0.0.24"])
    dns.add_zone("small.test", ["@ A 127.0.0.25"])
    dns.add_zone("may.test", ["@ A 127.0.0.26"])
    dns.add_zone("notls.test", ["@ A 127.0.0.27"])
    dns.add_zone("nopipe.test", ["@ A 127.0.0.32"])
    dns.add_zone("down.test", ["@ A 127.0.0.33"])
    dns.add_zone("tlsbreak.test", ["@ A 127.0.0.35"])
    dns.add_zone("verify.test", ["@ MX 10 mx", "mx A 127.0.0.28"])
    dns.add_zone("wrongname.test", ["@ MX 10 mx", "mx A 127.0.0.28"])
    dns.add_zone("dane.test", ["@ MX 10 mx", "mx A 127.0.0.29",
                               "_%d._tcp.mx TLSA 3 1 1 %s" % (P, digest)], signed=True)
    dns.add_zone("danebad.test", ["@ MX 10 mx", "mx A 127.0.0.30",
                                  "_%d._tcp.mx TLSA 3 1 1 %s" % (P, wrong)], signed=True)
    conf, queue = os.path.join(tmp, "conf"), os.path.join(tmp, "queue")
    env.queue = queue
    os.mkdir(conf)
    for d in ("", "incoming", "active", "deferred", "hold", "corrupt", "private", "public"):
        os.mkdir(os.path.join(queue, d))
    env.log = os.path.join(tmp, "maillog")
    procs = []
    try:
        dns.start()
        with open(os.path.join(conf, "tls_policy"), "w") as f:
            f.write("notls.test encrypt\nverify.test verify\nwrongname.test verify\n"
                    "dane.test dane\ndanebad.test dane\nmay.test dane\n")
        with open(os.path.join(conf, "sasl_passwd"), "w") as f:
            f.write(f"[127.0.0.31]:{P} user:secret\n[127.0.0.34]:{P} user:wrong\n")
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(f"""queue_directory = {queue}
maillog_file = {env.log}
myhostname = client.test
dns_servers = {dns.servers}
dnssec_trust_anchor_file = {dns.anchor_file}
dns_lookup_timeout = 5s
smtp_service_port = {P}
smtp_connect_timeout = 5s
smtp_helo_timeout = 20s
smtp_tls_CAfile = {env.certs}/ca.pem
smtp_tls_policy_maps = texthash:{conf}/tls_policy
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:{conf}/sasl_passwd
smtp_connection_cache_time_limit = 3s
""")
        env.sock, proc, _ = start_agent(conf, queue, "smtp")
        procs.append(proc)
        env.lmtp_sock, proc, _ = start_agent(conf, queue, "lmtp")
        procs.append(proc)
        run_tests(env)
        run_lmtp(env)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        dns.stop()
        if failures and os.path.exists(env.log):
            sys.stderr.write(log_text(env))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
