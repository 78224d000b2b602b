#!/usr/bin/env python3
"""Relay control: a client outside mynetworks (bound to 127.0.0.2 while
mynetworks = 127.0.0.1/32) may only send to local and virtual domains.
Address tricks that older MTAs turned into relaying (%-hack, source
routes, bang paths, quoted local parts) are refused with 5xx and nothing
is ever queued for a remote domain."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import RawSMTP, Skip, StorkInstance, run_tests  # noqa: E402

OUTSIDE = "127.0.0.2"

# (RCPT argument, what it tries)
TRICKS = [
    ("<victim@example.net>", "plain relay"),
    ("<VICTIM@EXAMPLE.NET>", "plain relay, upper case"),
    ("<victim@example.net.>", "trailing dot"),
    ("<victim%example.net@stork.test>", "%-hack via a local domain"),
    ("<victim%example.net@virt.test>", "%-hack via a virtual domain"),
    ("<victim%example.net@[127.0.0.1]>", "%-hack via an address literal"),
    ("<@stork.test:victim@example.net>", "source route through us"),
    ("<@stork.test,@other.test:victim@example.net>", "multi-hop source route"),
    ("<example.net!victim@stork.test>", "bang path via a local domain"),
    ("<example.net!victim@virt.test>", "bang path via a virtual domain"),
    ("<example.net!victim>", "bare bang path"),
    ('<"victim@example.net"@stork.test>', "quoted local part with @"),
    ('<"victim@example.net">', "quoted address without domain"),
    ('<"victim%example.net"@stork.test>', "quoted %-hack"),
    ('<"example.net!victim"@stork.test>', "quoted bang path"),
    ('<"victim@example.net"@virt.test>', "quoted local part, virtual domain"),
    ("<victim@example.net@stork.test>", "two @"),
    ("<victim@[192.0.2.1]>", "foreign address literal"),
    ("<victim@stork.test@example.net>", "local domain then remote"),
    ("victim@example.net", "no angle brackets"),
]


def test_relay_refused_from_outside():
    with StorkInstance(mynetworks="127.0.0.1/32",
                       extra_main_cf={"smtpd_hard_error_limit": 1000,
                                      "smtpd_soft_error_limit": 1000}) as st:
        st.start()
        try:
            c = RawSMTP(st.host, st.port, source_address=OUTSIDE)
        except OSError as e:
            raise Skip("cannot bind to %s: %s" % (OUTSIDE, e))
        assert c.greeting[0] == 220, c.greeting
        assert c.cmd("EHLO client.test")[0] == 250
        failures = []
        for rcpt, what in TRICKS:
            code, text = c.cmd("MAIL FROM:<attacker@client.test>")
            assert code == 250, (code, text)
            code, text = c.cmd("RCPT TO:" + rcpt)
            if not 500 <= code < 600:
                failures.append("%s (%s): %d %s" % (rcpt, what, code, text))
            elif code == 554 or code == 550 or code == 553 or code == 501:
                # enhanced status code on every reply
                if not text[-1][:2] == "5.":
                    failures.append("%s: no enhanced status code: %s" % (rcpt, text))
            code, text = c.cmd("RSET")
            assert code == 250, (code, text)
        # A plain relay attempt gets Postfix's answer, 554 5.7.1.
        c.cmd("MAIL FROM:<attacker@client.test>")
        code, text = c.cmd("RCPT TO:<victim@example.net>")
        assert code == 554 and text[0].startswith("5.7.1"), (code, text)
        # With no accepted recipient, DATA must not open a message.
        code, text = c.cmd("DATA")
        assert 500 <= code < 600, ("DATA without recipients", code, text)
        c.cmd("QUIT")
        c.close()
        assert not failures, "relay tricks not refused with 5xx:\n" + "\n".join(failures)
        time.sleep(0.5)
        qf = st.queue_files()
        queued = {q: f for q, f in qf.items() if f}
        assert not queued, "something was queued: %s" % queued
        log = st.read_log()
        assert "example.net>, relay=" not in log and "status=sent" not in log, log


def test_outside_client_may_send_to_local_and_virtual():
    with StorkInstance(mynetworks="127.0.0.1/32") as st:
        st.start()
        try:
            st.send("outside@client.test", st.vaddr("alice"),
                    b"Subject: from outside\r\n\r\nhello\r\n", source_address=OUTSIDE)
        except OSError as e:
            if "Cannot assign" in str(e):
                raise Skip("cannot bind to %s" % OUTSIDE)
            raise
        st.wait_for_maildir(st.vmaildir("alice"), 1)
        log = st.read_log()
        assert "[127.0.0.2]" in log, "client address not logged"


def test_inside_client_may_relay():
    """mynetworks clients are allowed to relay (RCPT accepted). Remote
    delivery is issue 3, so the transaction is reset, not sent."""
    with StorkInstance(mynetworks="127.0.0.1/32") as st:
        st.start()
        c = RawSMTP(st.host, st.port)
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<inside@client.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@example.net>")
        assert code == 250, (code, text)
        assert c.cmd("RSET")[0] == 250
        c.cmd("QUIT")
        c.close()


if __name__ == "__main__":
    run_tests(globals())
