#!/usr/bin/env python3
"""Throughput sanity for remote delivery: 1,000 messages submitted to
Stork A for 10 remote domains (each domain's MX a scripted receiver on
its own 127.0.0.x, found through the test DNS) with
smtp_destination_concurrency_limit = 4. All arrive, each exactly once,
within a bound, and no receiver ever saw more than 4 transactions (MAIL
up to the end of DATA) or sessions at once: the per-destination limit
held. Each DATA takes a little time at the receiver, so concurrency
builds up to the limit rather than staying at 1."""

import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import dns_env  # noqa: E402
from remote_env import Receiver, can_bind, common_port  # noqa: E402
from stork_instance import Skip, StorkInstance, run_tests, wait_until  # noqa: E402

SENDER = "alice@virt.test"
NDOMAINS = 10
NMESSAGES = 1000
LIMIT = 4
SUBMITTERS = 4
BOUND = 120          # seconds from the first submission to the last arrival
ADDRS = ["127.0.0.%d" % (60 + i) for i in range(NDOMAINS)]


def domain(i):
    return "d%d.test" % i


def submit(a, first, count, errors):
    """Send messages first..first+count-1 over one SMTP session each
    batch (a new session every 50 messages)."""
    try:
        n = first
        while n < first + count:
            s = a.smtp()
            try:
                s.ehlo("load.test")
                for _ in range(min(50, first + count - n)):
                    rcpt = "u%d@%s" % (n, domain(n % NDOMAINS))
                    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\n"
                            "Message-ID: <load-%d@virt.test>\r\n\r\nmessage %d\r\n"
                            % (SENDER, rcpt, n, n, n)).encode()
                    s.sendmail(SENDER, [rcpt], body)
                    n += 1
            finally:
                s.quit()
    except Exception as e:  # reported by the test
        errors.append("submitter from %d: %r" % (first, e))


def test_1000_messages_10_domains():
    missing = dns_env.tools_missing()
    if missing:
        raise Skip("missing " + " ".join(missing))
    if not can_bind(ADDRS[0]):
        raise Skip("cannot bind 127.0.0.x addresses")
    tmp = tempfile.mkdtemp(prefix="stork-e2e-remote-load-")
    os.chmod(tmp, 0o755)
    port = common_port(ADDRS)
    dns = dns_env.DnsEnv(tmp)
    for i, addr in enumerate(ADDRS):
        dns.add_zone(domain(i), ["@ MX 10 mx", "mx A " + addr])
    receivers = []
    a = None
    try:
        dns.start()
        receivers = [Receiver(addr, port, delay=0.05, name="mx." + domain(i))
                     for i, addr in enumerate(ADDRS)]
        a = StorkInstance(extra_main_cf={
            "dns_servers": dns.servers,
            "dnssec_trust_anchor_file": dns.anchor_file,
            "dns_lookup_timeout": "5s",
            "smtp_service_port": port,
            "smtp_connect_timeout": "5s",
            "smtp_destination_concurrency_limit": LIMIT,
            "smtp_initial_destination_concurrency": 2,
            # so that the per-destination limit, not the transport's, binds
            "smtp_transport_limit": 100,
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        })
        a.start()
        t0 = time.monotonic()
        errors = []
        per = NMESSAGES // SUBMITTERS
        threads = [threading.Thread(target=submit, args=(a, k * per, per, errors))
                   for k in range(SUBMITTERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND)
        assert not errors, errors
        t_submit = time.monotonic() - t0

        def arrived():
            return sum(len(r.messages) for r in receivers)
        try:
            wait_until(lambda: arrived() >= NMESSAGES, max(5, BOUND - t_submit), interval=0.5,
                       what="%d messages at the receivers" % NMESSAGES)
        except AssertionError as e:
            raise AssertionError("%s (have %d)\n%s" % (e, arrived(), a.diagnostics()))
        took = time.monotonic() - t0
        time.sleep(0.5)      # anything extra (a duplicate) would show now
        for i, r in enumerate(receivers):
            got = sorted(int(re.search(rb"Subject: load (\d+)", m["data"]).group(1))
                         for m in r.messages)
            want = list(range(i, NMESSAGES, NDOMAINS))
            assert got == want, ("receiver %s: %d messages, missing %s, extra %s"
                                 % (domain(i), len(got), sorted(set(want) - set(got))[:10],
                                    [x for x in got if x not in want or got.count(x) > 1][:10]))
            assert all(m["rcpts"] == ["u%d@%s" % (n, domain(i))]
                       for m, n in zip(sorted(r.messages, key=lambda m: int(
                           re.search(rb"load (\d+)", m["data"]).group(1))), want))
        print("1000 messages in %.1fs (submission %.1fs); max transactions per destination "
              "%s, max sessions %s" % (took, t_submit,
                                       [r.max_transactions for r in receivers],
                                       [r.max_sessions for r in receivers]), flush=True)
        assert took < BOUND, took
        over = [(domain(i), r.max_transactions, r.max_sessions)
                for i, r in enumerate(receivers)
                if r.max_transactions > LIMIT or r.max_sessions > LIMIT]
        assert not over, "per-destination concurrency limit %d exceeded: %s" % (LIMIT, over)
        # The limit was reached somewhere: the test did test concurrency
        # (from the initial 2 up to the limit).
        assert max(r.max_transactions for r in receivers) == LIMIT, \
            [r.max_transactions for r in receivers]
        sent = len(a.log_lines(r"relay=mx\.d\d\.test\[.*status=sent"))
        assert sent == NMESSAGES, sent
        a.wait_queue_empty(30)
        a.stop()
    finally:
        if a:
            a.cleanup()
        for r in receivers:
            r.stop()
        dns.stop()
        if not os.environ.get("STORK_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests(globals(), per_test_timeout=170)
