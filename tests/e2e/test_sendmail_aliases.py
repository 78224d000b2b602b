#!/usr/bin/env python3
"""Local submission and aliases: `sendmail -t` (through maildrop/ and
pickup) is delivered; sendmail with recipients on the command line; an
alias and a list alias (aliases(5) compiled by storkmap) fan out."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from stork_instance import (StorkInstance, TempUser, maildir_messages, read_bytes,  # noqa: E402
                            require_root, run_tests, split_added_headers)


def make_instance():
    return StorkInstance(
        virtual_users={"alice": "x", "bob": "x", "carol": "x"},
        aliases={
            "postmaster": "alice@virt.test",
            "team": ["alice@virt.test", "bob@virt.test", "carol@virt.test"],
            "chain": "team",
            "owner-team": "alice@virt.test",
        })


def sendmail(st, args, message):
    """Run the build's sendmail with the instance's config."""
    cmd = [st.command("sendmail"), "-c", st.config_dir] + args
    return st.run_cmd(cmd, input=message, timeout=30)


def test_sendmail_t():
    """sendmail -t: recipients from To/Cc/Bcc; Bcc removed; the message is
    otherwise stored as submitted (it has its own Date/Message-ID, so
    nothing needs adding)."""
    with make_instance() as st:
        st.start()
        head = (b"From: Cron Daemon <root@stork.test>\n"
                b"To: alice@virt.test\n"
                b"Cc: Bob <bob@virt.test>\n")
        bcc = b"Bcc: carol@virt.test\n"
        rest = (b"Subject: sendmail -t\n"
                b"Date: Sun, 22 Nov 2026 09:00:00 +0000\n"
                b"Message-ID: <sendmail-t-1@stork.test>\n"
                b"\n"
                b"line one\n"
                b".\n"
                b"after a lone dot (with -i this is content)\n"
                b"\xc3\xa9t\xc3\xa9 8-bit\n")
        r = sendmail(st, ["-t", "-i", "-f", "cron@stork.test"], head + bcc + rest)
        assert r.returncode == 0, "sendmail -t failed: %s %s" % (r.stdout, r.stderr)
        for user in ("alice", "bob", "carol"):
            msgs = st.wait_for_maildir(st.vmaildir(user), 1)
            data = read_bytes(msgs[0])
            added, stored = split_added_headers(data)
            assert stored == head + rest, "stored %r\nsent %r" % (stored, head + rest)
            assert any(h.startswith(b"Return-Path: <cron@stork.test>") for h in added), added
        st.wait_queue_empty()
        assert re.search(r"from=<cron@stork\.test>", st.read_log())


def test_sendmail_recipient_args_and_dot():
    """Without -i a lone '.' line ends the message (classic sendmail)."""
    with make_instance() as st:
        st.start()
        r = sendmail(st, ["-f", "me@stork.test", "carol@virt.test"],
                     b"Subject: args\n\nfirst\n.\nnot part of the message\n")
        assert r.returncode == 0, r.stderr
        msgs = st.wait_for_maildir(st.vmaildir("carol"), 1)
        data = read_bytes(msgs[0])
        assert b"\nfirst\n" in data and b"not part" not in data, data


def test_alias_and_list_alias():
    with make_instance() as st:
        st.start()
        st.send("s@client.test", "postmaster@stork.test", b"Subject: pm\r\n\r\npm\r\n")
        st.wait_for_maildir(st.vmaildir("alice"), 1)
        st.send("s@client.test", "team@stork.test", b"Subject: list\r\n\r\nto the team\r\n")
        st.wait_for_maildir(st.vmaildir("alice"), 2)
        for u in ("bob", "carol"):
            st.wait_for_maildir(st.vmaildir(u), 1)
        st.send("s@client.test", "chain@stork.test", b"Subject: chain\r\n\r\nnested\r\n")
        st.wait_for_maildir(st.vmaildir("alice"), 3)
        st.wait_for_maildir(st.vmaildir("bob"), 2)
        st.wait_queue_empty()
        for u, n in (("alice", 3), ("bob", 2), ("carol", 2)):
            got = maildir_messages(st.vmaildir(u))
            assert len(got) == n, "%s has %d messages, want %d" % (u, len(got), n)
        team = [read_bytes(m) for m in maildir_messages(st.vmaildir("bob"))
                if b"to the team" in read_bytes(m)]
        assert team and b"Delivered-To: " in team[0]


def test_alias_to_system_user():
    require_root()
    with StorkInstance() as st, TempUser(st.dir) as user:
        st.aliases = {"sysalias": user.name}
        st.write_aliases()
        st.start()
        st.send("s@client.test", "sysalias@stork.test", b"Subject: a\r\n\r\nx\r\n")
        msgs = st.wait_for_maildir(user.maildir, 1)
        assert os.stat(msgs[0]).st_uid == user.uid


def test_newaliases_and_query():
    """storkmap -q reads back what it compiled."""
    with make_instance() as st:
        r = st.run("storkmap", "-q", "alice@virt.test", "hash:%s/vmailbox" % st.config_dir)
        assert r.returncode == 0 and ":virt.test/alice/:" in r.stdout, (r.returncode, r.stdout,
                                                                       r.stderr)
        r = st.run("storkmap", "-q", "nobody@virt.test", "hash:%s/vmailbox" % st.config_dir)
        assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout)


if __name__ == "__main__":
    run_tests(globals())
