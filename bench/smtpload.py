"""smtpload - the benchmark's SMTP load generator (asyncio, loopback only).

run_load() sends messages over `concurrency` parallel sessions, one
message per connection (as inbound MX traffic arrives), and timestamps
each message from the write of the end of DATA ("\r\n.\r\n") to the 250
reply, so p50/p99 of that latency can be reported. It stops starting new
messages after `count` messages or `duration` seconds, whichever comes
first, and every socket operation has a timeout, so a run is bounded.

hold_sessions() opens N sessions, reads each greeting, sends EHLO, reads
the reply and keeps them open; probe_greeting() then times new sessions'
greetings while they are held.

uvloop is used when installed (less client CPU); the client's own CPU is
measured by the caller (resource.getrusage) and reported.
"""

import asyncio
import os
import socket
import time

try:
    import uvloop  # noqa
except ImportError:  # plain asyncio works, only slower
    uvloop = None

IO_TIMEOUT = 60.0


def new_loop():
    """An event loop (uvloop's when available)."""
    if uvloop is not None:
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def make_message(size, seq):
    """A message of about `size` bytes: headers and 76-character lines,
    CRLF, dot-stuffing not needed (no line starts with a dot)."""
    head = ("From: <bench@client.test>\r\nTo: <rcpt@bench.test>\r\n"
            "Subject: bench %d\r\nMessage-ID: <%d.%d@client.test>\r\n\r\n"
            % (seq, seq, os.getpid()))
    line = ("x" * 76) + "\r\n"
    body_len = max(0, size - len(head))
    nlines = max(1, body_len // len(line))
    return (head + line * nlines).encode()


class SMTPProto(asyncio.Protocol):
    """A minimal client side: collects replies, hands them to a waiter."""

    def __init__(self):
        self.buf = b""
        self.lines = []
        self.replies = []
        self.waiter = None
        self.transport = None
        self.closed = False
        self.reply_time = 0.0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n")
            if i < 0:
                break
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            self.lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                code = int(line[:3]) if line[:3].isdigit() else 0
                self.replies.append((code, self.lines))
                self.lines = []
        if self.replies:
            self.reply_time = time.monotonic()
            self._wake()

    def connection_lost(self, exc):
        self.closed = True
        self._wake()

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def reply(self):
        """The next reply (code, lines); code 0 when the peer closed."""
        while not self.replies:
            if self.closed:
                return 0, []
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, IO_TIMEOUT)
            self.waiter = None
        return self.replies.pop(0)

    def send(self, data):
        self.transport.write(data)


async def connect(host, port):
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(SMTPProto, host, port), IO_TIMEOUT)
    return proto


async def one_message(host, port, mail_from, rcpt, body, stats):
    """One session, one message. Appends the latency on success."""
    p = await connect(host, port)
    try:
        code, _ = await p.reply()
        if code != 220:
            stats["errors"] += 1
            stats["last_error"] = "greeting %d" % code
            return
        p.send(b"EHLO client.test\r\n")
        code, lines = await p.reply()
        if code != 250:
            stats["errors"] += 1
            stats["last_error"] = "EHLO %d" % code
            return
        pipelining = any(l[4:].upper().startswith(b"PIPELINING") for l in lines)
        cmds = [b"MAIL FROM:<%s>\r\n" % mail_from, b"RCPT TO:<%s>\r\n" % rcpt, b"DATA\r\n"]
        codes = []
        if pipelining:
            p.send(b"".join(cmds))
            for _ in cmds:
                codes.append((await p.reply())[0])
        else:
            for c in cmds:
                p.send(c)
                codes.append((await p.reply())[0])
        if codes != [250, 250, 354]:
            stats["errors"] += 1
            stats["last_error"] = "MAIL/RCPT/DATA %s" % codes
            if codes and codes[-1] == 354:
                p.send(b".\r\n")
                await p.reply()
            return
        p.send(body)
        t0 = time.monotonic()
        p.send(b".\r\n")
        code, lines = await p.reply()
        if code != 250:
            stats["errors"] += 1
            stats["last_error"] = "end of DATA %d %s" % (code, lines[:1])
            return
        stats["lat"].append(p.reply_time - t0)
        stats["accepted"] += 1
        stats["last_ok"] = p.reply_time
        p.send(b"QUIT\r\n")
        await p.reply()
    finally:
        if p.transport is not None:
            p.transport.close()


async def _load(host, port, concurrency, count, duration, size, rcpts, mail_from):
    bodies = [make_message(size, i) for i in range(16)]
    stats = {"accepted": 0, "errors": 0, "lat": [], "last_error": "", "started": 0,
             "last_ok": 0.0}
    start = time.monotonic()
    deadline = start + duration
    state = {"next": 0}

    async def worker():
        while True:
            i = state["next"]
            if i >= count or time.monotonic() >= deadline:
                return
            state["next"] = i + 1
            stats["started"] += 1
            rcpt = rcpts[i % len(rcpts)].encode()
            try:
                await one_message(host, port, mail_from, rcpt, bodies[i % len(bodies)], stats)
            except (OSError, asyncio.TimeoutError, ValueError) as e:
                stats["errors"] += 1
                stats["last_error"] = "%s: %s" % (type(e).__name__, e)
                if stats["errors"] > max(100, count // 10):
                    return      # the server is not working: stop early
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = stats["last_ok"] if stats["last_ok"] else time.monotonic()
    stats["elapsed"] = max(1e-6, end - start)
    return stats


def run_load(host, port, concurrency, count, duration, size, rcpts,
             mail_from=b"bench@client.test"):
    """Run a load; returns {accepted, errors, elapsed, lat: [seconds], ...}."""
    loop = new_loop()
    try:
        return loop.run_until_complete(_load(host, port, concurrency, count, duration,
                                             size, rcpts, mail_from))
    finally:
        loop.close()


# ------------------------------------------------------------ held sessions

async def _hold_one(host, port, sessions, errors):
    try:
        p = await connect(host, port)
        code, _ = await p.reply()
        if code != 220:
            errors.append("greeting %d" % code)
            p.transport.close()
            return
        p.send(b"EHLO client.test\r\n")
        code, _ = await p.reply()
        if code != 250:
            errors.append("EHLO %d" % code)
            p.transport.close()
            return
        sessions.append(p)
    except (OSError, asyncio.TimeoutError) as e:
        errors.append("%s: %s" % (type(e).__name__, e))


async def _probe(host, port, n):
    """Time n new sessions' greeting (connect to 220), one after another."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        try:
            p = await connect(host, port)
            code, _ = await p.reply()
            if code == 220:
                times.append(time.monotonic() - t0)
            p.send(b"QUIT\r\n")
            try:
                await asyncio.wait_for(p.reply(), 5)
            except asyncio.TimeoutError:
                pass
            p.transport.close()
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.05)
    return times


class HeldSessions:
    """Open n sessions (batches of `batch` at a time), keep them open,
    measure while held, close them all."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.loop = new_loop()
        self.sessions = []
        self.errors = []

    def open(self, n, batch=200, time_limit=300):
        async def go():
            deadline = time.monotonic() + time_limit
            while len(self.sessions) + len(self.errors) < n and time.monotonic() < deadline:
                k = min(batch, n - len(self.sessions) - len(self.errors))
                await asyncio.gather(*(_hold_one(self.host, self.port, self.sessions,
                                                 self.errors) for _ in range(k)))
                if len(self.errors) > max(50, n // 20):
                    break
        t0 = time.monotonic()
        self.loop.run_until_complete(go())
        return time.monotonic() - t0

    def alive(self):
        return sum(1 for p in self.sessions if not p.closed)

    def probe(self, n=20):
        return self.loop.run_until_complete(_probe(self.host, self.port, n))

    def close(self):
        for p in self.sessions:
            if p.transport is not None:
                p.transport.close()
        self.loop.run_until_complete(asyncio.sleep(0.2))
        self.loop.close()
        self.sessions = []


def raise_fd_limit(want):
    """Raise RLIMIT_NOFILE toward `want`; returns the soft limit in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, max(hard, want)),
                                                        max(hard, want)))
        except (ValueError, OSError):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (ValueError, OSError):
                pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


if __name__ == "__main__":
    import sys
    h, port, c, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    st = run_load(h, port, c, n, 30, size, ["rcpt@bench.test"])
    lat = sorted(st["lat"])
    print("accepted", st["accepted"], "errors", st["errors"], st["last_error"],
          "rate %.1f" % (st["accepted"] / st["elapsed"]),
          "p50 %.2fms" % (1000 * lat[len(lat) // 2]) if lat else "")
    _ = socket
