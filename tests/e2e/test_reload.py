#!/usr/bin/env python3
"""stork reload while SMTP sessions are open: an open session completes its
message after the reload; services added to or removed from master.cf
appear and disappear; `stork status|check|stop` behave."""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (RawSMTP, StorkInstance, free_port, read_bytes,  # noqa: E402
                            run_tests, wait_until)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(64).startswith(b"220")
    except OSError:
        return False


def start_transaction(st, port, rcpt):
    c = RawSMTP(st.host, port)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<open@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    return c


def finish_transaction(c, token):
    code, lines = c.cmd("DATA")
    assert code == 354, (code, lines)
    c.send(b"Subject: %s\r\n\r\nbody %s\r\n.\r\n" % (token, token))
    code, lines = c.reply()
    assert code == 250, (code, lines)
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_reload_keeps_open_sessions():
    with StorkInstance() as st:
        st.start()
        a = start_transaction(st, st.port, st.vaddr("alice"))
        b = RawSMTP(st.host, st.port)      # connected, nothing said yet
        st.reload()
        # New connections work after the reload.
        wait_until(lambda: port_open(st.port), 10, what="SMTP after reload")
        st.send("new@client.test", st.vaddr("bob"), b"Subject: after\r\n\r\nafter\r\n")
        # The sessions accepted before the reload complete their work.
        finish_transaction(a, b"before-reload")
        assert b.cmd("EHLO client.test")[0] == 250
        assert b.cmd("MAIL FROM:<b@client.test>")[0] == 250
        assert b.cmd("RCPT TO:<alice@virt.test>")[0] == 250
        finish_transaction(b, b"idle-before-reload")
        msgs = st.wait_for_maildir(st.vmaildir("alice"), 2)
        bodies = b"".join(read_bytes(m) for m in msgs)
        assert b"body before-reload" in bodies and b"body idle-before-reload" in bodies
        st.wait_for_maildir(st.vmaildir("bob"), 1)


def test_reload_adds_and_removes_services():
    with StorkInstance() as st:
        st.start()
        port2 = free_port()
        st.extra_master_cf = "127.0.0.1:%d inet n - y - - smtpd\n" % port2
        st.write_master_cf()
        st.reload()
        wait_until(lambda: port_open(port2), 10, what="the added service on port %d" % port2)
        c = start_transaction(st, port2, st.vaddr("bob"))
        st.extra_master_cf = ""
        st.write_master_cf()
        st.reload()
        wait_until(lambda: not port_open(port2), 10, what="port %d to close" % port2)
        assert port_open(st.port), "the remaining service stopped answering"
        finish_transaction(c, b"on-removed-service")
        msgs = st.wait_for_maildir(st.vmaildir("bob"), 1)
        assert b"body on-removed-service" in read_bytes(msgs[0])


def test_reload_bad_config_keeps_running():
    """A reload with a broken main.cf must not take the running server
    down (Postfix refuses the reload and keeps the old config)."""
    with StorkInstance() as st:
        st.start()
        with open(os.path.join(st.config_dir, "main.cf"), "a") as f:
            f.write("no_such_parameter_xyz = 1\n")
        r = st.run("stork", "check")
        assert r.returncode != 0, "stork check accepted an unknown parameter"
        err = r.stdout + r.stderr
        assert "main.cf:" in err and "no_such_parameter_xyz" in err, err
        st.run("stork", "reload")
        assert port_open(st.port)
        assert st.proc.poll() is None, "master died on a bad reload"
        st.write_main_cf()
        assert st.run("stork", "check").returncode == 0


def test_status_and_stop():
    with StorkInstance() as st:
        r = st.run("stork", "status")
        assert r.returncode != 0, "status says running before start: %s" % r.stdout
        st.start()
        r = st.run("stork", "status")
        assert r.returncode == 0, (r.stdout, r.stderr)
        # A second master on the same queue is refused (the lock).
        r2 = st.run_cmd([st.master_path, "-c", st.config_dir, "-d"], timeout=15)
        assert r2.returncode != 0, "a second master started on the same queue"
        assert port_open(st.port)
        r = st.run("stork", "stop")
        assert r.returncode == 0, (r.stdout, r.stderr)
        st.proc.wait(timeout=20)
        st.proc = None
        wait_until(lambda: not port_open(st.port), 10, what="port closed after stop")
        assert st.run("stork", "status").returncode != 0


if __name__ == "__main__":
    run_tests(globals())
