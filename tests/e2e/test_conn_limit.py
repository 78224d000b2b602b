#!/usr/bin/env python3
"""Per-client connection limits (smtpd_client_connection_count_limit and
smtpd_client_connection_rate_limit), counted across every smtpd process by
the verify service: a client over a limit gets 421 4.7.0 and is
disconnected, its other sessions go on, a closed session frees its
place, and clients in smtpd_client_event_limit_exceptions are never
limited."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import RawSMTP, StorkInstance, run_tests, wait_until  # noqa: E402


def greet(st, source="127.0.0.1"):
    return RawSMTP(st.host, st.port, source_address=source)


def refused(c):
    """The greeting was 421 4.7.0 and the server closed the connection."""
    code, lines = c.greeting
    closed = c.replies_until_close(limit=3) == []
    c.close()
    return code == 421 and lines[0].startswith("4.7.0 ") and "too many connections" in lines[0] \
        and closed


def log_text(st):
    with open(st.maillog, errors="replace") as f:
        return f.read()


def test_concurrency_limit():
    cf = {"smtpd_client_connection_count_limit": "2",
          "smtpd_client_event_limit_exceptions": "127.0.0.9"}
    with StorkInstance(extra_main_cf=cf) as st:
        st.start()
        a, b = greet(st), greet(st)
        assert a.greeting[0] == 220 and b.greeting[0] == 220
        assert refused(greet(st)), "a third session from 127.0.0.1"
        assert "Connection concurrency limit exceeded: 3 from unknown[127.0.0.1]" in log_text(st)
        # The sessions already open are not disturbed.
        assert a.cmd("EHLO client.test")[0] == 250
        # Another client address, and an excepted one, are not limited.
        others = [greet(st, "127.0.0.2") for _ in range(2)] + [greet(st, "127.0.0.9")
                                                                for _ in range(3)]
        assert all(c.greeting[0] == 220 for c in others)
        # A session that ends gives its place back.
        assert b.cmd("QUIT")[0] == 221
        b.close()
        wait_until(lambda: _admitted(st), 10, what="a new session once one has ended")
        a.close()
        for c in others:
            c.close()


def _admitted(st):
    c = greet(st)
    ok = c.greeting[0] == 220
    c.close()
    time.sleep(0.1)      # let the closed session's end be counted
    return ok


def test_rate_limit():
    cf = {"smtpd_client_connection_rate_limit": "3", "anvil_rate_time_unit": "2s",
          "smtpd_client_event_limit_exceptions": ""}
    with StorkInstance(extra_main_cf=cf) as st:
        st.start()
        time.sleep(2.2)      # the start-up probe's connection has its own time unit
        for _ in range(3):
            c = greet(st)
            assert c.greeting[0] == 220
            assert c.cmd("QUIT")[0] == 221
            c.close()
        assert refused(greet(st)), "a fourth connection within the time unit"
        assert "Connection rate limit exceeded: 4 from unknown[127.0.0.1]" in log_text(st)
        # The next time unit admits the client again.
        wait_until(lambda: _admitted(st), 10, what="a connection in the next time unit")


def test_defaults_exempt_mynetworks():
    # Default limit 50; the client (127.0.0.1) is in mynetworks, the
    # default exception list: 60 sessions at once are all served.
    with StorkInstance() as st:
        st.start()
        cs = [greet(st) for _ in range(60)]
        assert all(c.greeting[0] == 220 for c in cs)
        for c in cs:
            c.close()


if __name__ == "__main__":
    run_tests(globals())
