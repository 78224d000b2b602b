"""bench.py - Stork and Postfix side by side (issue 4). Run through bench/run.

Cases (see bench/README.md): smtp (SMTP in -> Maildir), relay (SMTP in ->
smtp client -> smtp-sink), disk (durable_commit, smtp-sink rates), conn
(held sessions), bigq (a big deferred queue). Stork and Postfix alternate
inside every case, each repetition; medians, min/max and the Stork/Postfix
ratio go to the terminal and to bench/RESULTS.md.
"""

import argparse
import datetime
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import procstat  # noqa: E402
import smtpload  # noqa: E402
import postfix_instance  # noqa: E402
from postfix_instance import PostfixInstance, reset_maildirs  # noqa: E402

NUSERS = 10
USERS = ["u%d" % i for i in range(NUSERS)]
NA = "n/a"


def log(*a):
    print(*a, flush=True)


# ------------------------------------------------------------------ sink

class Sink:
    """An smtp-sink on a loopback port (accept and discard). It counts
    messages with -c into a file (not a pipe: no reader in the client's
    process competes with the load generator); count reads its tail."""

    def __init__(self, port, out_dir):
        self.port = port
        self.path = os.path.join(out_dir, "sink-%d.out" % port)
        self.out = open(self.path, "wb")
        self.proc = subprocess.Popen(
            ["smtp-sink", "-c", "-u", "nobody", "127.0.0.1:%d" % port, "4096"],
            stdout=self.out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not procstat.smtp_ready("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def count(self):
        """Messages received so far (the last mesg=N of the -c output)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 200))
                tail = f.read()
        except OSError:
            return 0
        m = re.findall(rb"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.out.close()


# ------------------------------------------------------------------ servers

class PostfixServer:
    name = "Postfix"

    def __init__(self, base, relay_port, extra_main_cf=None, smtpd_maxproc="-"):
        self.inst = PostfixInstance(os.path.join(base, "postfix"), procstat.free_port(),
                                    relay_port=relay_port, virtual_users=USERS,
                                    extra_main_cf=extra_main_cf, smtpd_maxproc=smtpd_maxproc)
        self.relay_ok = True
        self.relay_why = ""

    def start(self):
        self.inst.start()

    def stop(self):
        self.inst.stop()

    def cleanup(self):
        self.inst.cleanup()

    @property
    def port(self):
        return self.inst.port

    @property
    def master_pid(self):
        return self.inst.master_pid

    def vaddrs(self):
        return [self.inst.vaddr(u) for u in USERS]

    def maildirs(self):
        return [self.inst.vmaildir(u) for u in USERS]

    def reset_maildirs(self):
        self.inst.prepare_maildirs()

    def queue_count(self):
        return self.inst.queue_count()

    def queue_cmd_line(self):
        return ["postqueue", "-c", self.inst.config_dir]


def settle_disk():
    """Write everything back and drop the page cache. ext4 without a
    journal skips, on every file creation, each inode freed in the last
    minute whose inode-table block is still cached (recently_deleted() in
    fs/ext4/ialloc.c), one lookup each; emptying the previous run's
    Maildirs frees thousands just before a run. Dropping the cache ends
    that for both servers alike, so a run pays only for what it deletes
    itself. False when not permitted (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


class StorkServer:
    name = "Stork"

    def __init__(self, base, relay_port, build_dir, extra_main_cf=None, smtpd_maxproc="-"):
        os.environ["STORK_BUILD_DIR"] = build_dir
        sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "harness"))
        import stork_instance  # the project's own way to make an instance
        self.si = stork_instance
        d = os.path.join(base, "stork")
        os.makedirs(d, exist_ok=True)
        # Benchmarks need no short retry timers; held sessions need a long
        # idle timeout. Only parameters Stork declares are written.
        cf = {"smtpd_timeout": "600s", "max_idle": "100s"}
        cf.update(extra_main_cf or {})
        known = None
        try:
            known = stork_instance.StorkInstance.known_params(None)
        except Exception:
            pass
        if known is not None:
            cf = {k: v for k, v in cf.items() if k in known}
        libexec = os.path.join(build_dir, "libexec")
        self.relay_ok = os.access(os.path.join(libexec, "smtp"), os.X_OK) and \
            known is not None and "relayhost" in known
        self.relay_why = "" if self.relay_ok else "not implemented (no deliver/smtp client yet)"
        extra_master = ""
        if self.relay_ok and relay_port:
            cf["relayhost"] = "[127.0.0.1]:%d" % relay_port
            # The harness adds "smtp unix" itself once libexec/smtp exists.
            import inspect
            if "smtp unix" not in inspect.getsource(stork_instance.StorkInstance):
                extra_master = "smtp unix - - n - - smtp\n"
        self.inst = stork_instance.StorkInstance(
            tmpdir=d, extra_main_cf=cf, virtual_users={u: "secret" for u in USERS},
            smtpd_maxproc=str(smtpd_maxproc), extra_master_cf=extra_master)

    def start(self):
        self.inst.start(timeout=60)

    def stop(self):
        if self.inst.proc is not None:
            try:
                self.inst.stop(check_log=False)
            except Exception as e:  # leftovers were SIGKILLed by the harness
                log("  warning: stopping Stork: %s" % str(e).splitlines()[0])

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.inst.dir, ignore_errors=True)

    @property
    def port(self):
        return self.inst.port

    @property
    def master_pid(self):
        return self.inst.master_pid

    def vaddrs(self):
        return [self.inst.vaddr(u) for u in USERS]

    def maildirs(self):
        return [self.inst.vmaildir(u) for u in USERS]

    def reset_maildirs(self):
        import pwd
        pw = pwd.getpwnam(self.inst.vmail_owner)
        self.inst.virtual_users_list = USERS
        reset_maildirs(_Shim(self.inst), pw.pw_uid, pw.pw_gid)

    def queue_count(self):
        return self.inst.queue_count()

    def queue_cmd_line(self):
        return [self.inst.command("storkqueue"), "-c", self.inst.config_dir]

    def diagnostics(self):
        return self.inst.diagnostics(20)


class _Shim:
    """What reset_maildirs() needs from a Stork instance."""

    def __init__(self, inst):
        self.vmail_dir = inst.vmail_dir
        self.virtual_domain = inst.virtual_domain
        self.virtual_users = USERS
        self.vmaildir = inst.vmaildir


# ------------------------------------------------------------------ stats

def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def summary(vals):
    """(median, min, max) of the numbers in vals, None if none."""
    v = [x for x in vals if isinstance(x, (int, float))]
    if not v:
        return None
    return statistics.median(v), min(v), max(v)


def fmt_num(x):
    if x is None:
        return NA
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_summary(s, reps):
    if s is None:
        return NA
    if reps <= 1 or s[1] == s[2]:
        return fmt_num(s[0])
    return "%s [%s–%s]" % (fmt_num(s[0]), fmt_num(s[1]), fmt_num(s[2]))


# ------------------------------------------------------------------ the runner

class Bench:
    def __init__(self, args):
        self.a = args
        self.rows = []          # (section, label, metric, stork summary, postfix summary, note)
        self.settled = True     # every SMTP run started from a settled disk
        self.carried_notes = []  # notes of sections kept from the previous report
        self.notes = []
        self.raw = {}           # (case, server) -> [results]
        self.base = tempfile.mkdtemp(prefix="stork-bench-", dir=args.tmpdir)
        os.chmod(self.base, 0o755)
        postfix_instance.TRASH_DIR = os.path.join(self.base, "trash")
        self.sink_port = procstat.free_port()
        self.sink = None
        self.servers = []
        self.stork_why = None

    # ---- set-up

    def make_servers(self, sub, postfix_cf=None, stork_cf=None, relay_port=None,
                     smtpd_maxproc="-", want_postfix=True):
        base = os.path.join(self.base, sub)
        os.makedirs(base, exist_ok=True)
        out = []
        if self.a.servers in ("both", "stork"):
            s = self.try_stork(base, relay_port, stork_cf, smtpd_maxproc)
            if s:
                out.append(s)
        if want_postfix and self.a.servers in ("both", "postfix"):
            p = PostfixServer(base, relay_port, postfix_cf, smtpd_maxproc)
            p.start()
            out.append(p)
        return out

    def try_stork(self, base, relay_port, cf, smtpd_maxproc):
        if self.stork_why and not self.a.retry_stork:
            return None
        try:
            s = StorkServer(base, relay_port, self.a.stork_build, cf, smtpd_maxproc)
        except Exception as e:
            self.stork_why = "cannot set up an instance: %s" % str(e).splitlines()[0]
            log("  Stork: " + self.stork_why)
            return None
        try:
            s.start()
        except Exception as e:
            self.stork_why = "does not start: %s" % str(e).splitlines()[0]
            log("  Stork: " + self.stork_why)
            log("  " + "\n  ".join(str(e).splitlines()[1:25]))
            s.cleanup()
            return None
        # A smoke message: a Stork that accepts but does not deliver is
        # reported as such instead of timing out in every case.
        try:
            s.reset_maildirs()
            st = smtpload.run_load("127.0.0.1", s.port, 1, 1, 20, 256, s.vaddrs()[:1])
            if st["accepted"] != 1:
                raise RuntimeError("smoke message refused: %s" % st["last_error"])
            deadline = time.monotonic() + 20
            while procstat.count_new(s.maildirs()) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("smoke message accepted but not delivered within 20 s")
                time.sleep(0.1)
        except Exception as e:
            self.stork_why = str(e).splitlines()[0]
            log("  Stork: " + self.stork_why)
            log("  " + "\n  ".join(s.diagnostics().splitlines()[-15:]))
            s.cleanup()
            return None
        self.stork_why = None
        return s

    def stop_servers(self, servers):
        for s in servers:
            try:
                s.cleanup()
            except Exception as e:
                log("  warning: cleanup of %s: %s" % (s.name, e))

    def order(self, servers, rep):
        """Alternate which server goes first in each repetition."""
        return servers if rep % 2 == 0 else list(reversed(servers))

    def record(self, case, server, res):
        self.raw.setdefault((case, server), []).append(res)

    def results(self, case, server, key):
        return [r.get(key) for r in self.raw.get((case, server), [])]

    # ---- one SMTP load run

    def smtp_run(self, srv, size, conc, relay=False):
        a = self.a
        if relay:
            target = ["rcpt%d@relay.test" % i for i in range(NUSERS)]
            base_count = self.sink.count
            delivered = lambda: self.sink.count - base_count  # noqa: E731
        else:
            srv.reset_maildirs()
            target = srv.vaddrs()
            mds = srv.maildirs()
            delivered = lambda: procstat.count_new(mds)  # noqa: E731
        self.settled &= settle_disk()
        time.sleep(0.3)
        io0 = procstat.disk_ops(self.base)
        cpu0 = procstat.tree_cpu(srv.master_pid)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.time()
        mono0 = time.monotonic()
        st = smtpload.run_load("127.0.0.1", srv.port, conc, a.count, a.duration, size, target)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        acc = st["accepted"]
        # Wait (bounded) until everything accepted was delivered.
        limit = time.monotonic() + max(60.0, acc / 20.0)
        t_done = None
        while time.monotonic() < limit:
            n = delivered()
            if n >= acc:
                t_done = time.monotonic()
                break
            time.sleep(0.05)
        n = delivered()
        if relay:
            dl_elapsed = (t_done - mono0) if t_done else None
        else:
            lm = procstat.last_mtime(mds)
            dl_elapsed = (lm - wall0) if (t_done and lm > wall0) else None
        time.sleep(0.2)
        cpu1 = procstat.tree_cpu(srv.master_pid)
        io1 = procstat.disk_ops(self.base)
        lat = sorted(st["lat"])
        res = {
            "accepted": acc, "delivered": n, "errors": st["errors"],
            "acc_rate": acc / st["elapsed"] if acc else None,
            "dlv_rate": (acc / dl_elapsed) if (dl_elapsed and acc) else None,
            "cpu_per_1000": (cpu1 - cpu0) / n * 1000 if n else None,
            "p50_ms": pct(lat, 50) * 1000 if lat else None,
            "p99_ms": pct(lat, 99) * 1000 if lat else None,
            "client_cpu_per_1000": ((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
                                    / acc * 1000) if acc else None,
        }
        if io0 and io1 and n:
            for k in ("writes", "flushes", "discards"):
                res["disk_%s_per_msg" % k] = (io1[k] - io0[k]) / n
            res["disk_ops_per_msg"] = sum(res["disk_%s_per_msg" % k]
                                          for k in ("writes", "flushes", "discards"))
        if st["errors"]:
            res["error"] = st["last_error"]
        if n < acc:
            res["undelivered"] = acc - n
        log("    %-8s acc %6s/s  dlv %6s/s  cpu %6s s/1000  p50 %6s ms  p99 %6s ms  "
            "(%d msgs, %d err%s%s)"
            % (srv.name, fmt_num(res["acc_rate"]), fmt_num(res["dlv_rate"]),
               fmt_num(res["cpu_per_1000"]), fmt_num(res["p50_ms"]), fmt_num(res["p99_ms"]),
               acc, st["errors"], (", " + st["last_error"]) if st["errors"] else "",
               (", %d NOT DELIVERED" % (acc - n)) if n < acc else ""))
        return res

    # ---- case a and b

    def case_smtp(self):
        log("== case a: SMTP in -> Maildir delivered")
        servers = self.make_servers("smtp", relay_port=self.sink_port)
        try:
            for size in (self.a.sizes if "smtp" in self.a.cases else []):
                for conc in self.a.concurrency:
                    key = ("smtp", size, conc)
                    log("  %d KiB, concurrency %d" % (size // 1024, conc))
                    for rep in range(self.a.reps):
                        for srv in self.order(servers, rep):
                            self.record(key, srv.name, self.smtp_run(srv, size, conc))
                    self.add_smtp_rows("a. SMTP → Maildir", key, "%d KiB, c=%d" % (size // 1024, conc))
            if "relay" in self.a.cases:
                log("== case b: relay to smtp-sink")
                for conc in self.a.relay_concurrency:
                    key = ("relay", 1024, conc)
                    log("  1 KiB, concurrency %d" % conc)
                    for rep in range(self.a.reps):
                        for srv in self.order(servers, rep):
                            if not srv.relay_ok:
                                continue
                            self.record(key, srv.name, self.smtp_run(srv, 1024, conc, relay=True))
                    na = {s.name: s.relay_why for s in servers if not s.relay_ok}
                    self.add_smtp_rows("b. relay → smtp-sink", key, "1 KiB, c=%d" % conc, na)
        finally:
            self.stop_servers(servers)

    def add_smtp_rows(self, section, key, label, na=None):
        na = dict(na or {})
        if self.stork_why and "Stork" not in na:
            na["Stork"] = self.stork_why
        for metric, name, better in (("acc_rate", "accepted msgs/s", "higher"),
                                     ("dlv_rate", "delivered msgs/s", "higher"),
                                     ("cpu_per_1000", "CPU s / 1000 msgs", "lower"),
                                     ("p50_ms", "p50 end-of-DATA→250 ms", "lower"),
                                     ("p99_ms", "p99 end-of-DATA→250 ms", "lower"),
                                     ("disk_ops_per_msg", "disk requests / msg", "lower")):
            st = summary(self.results(key, "Stork", metric))
            pf = summary(self.results(key, "Postfix", metric))
            self.rows.append((section, label, name, st, pf, better, na))

    # ---- case c

    def case_disk(self):
        log("== case c: durable commit rate and smtp-sink accept rate")
        dc = os.path.join(HERE, ".build", "durable_commit")
        d = os.path.join(self.base, "dc")
        os.makedirs(d, exist_ok=True)
        secs = str(self.a.dc_seconds)
        for rep in range(self.a.reps):
            for threads in (1, self.a.dc_threads):
                out = subprocess.run([dc, d, str(threads), secs], capture_output=True, text=True,
                                     timeout=self.a.dc_seconds + 120)
                m = re.search(r"rate=([\d.]+)", out.stdout)
                rate = float(m.group(1)) if m else None
                self.record(("dc", threads), "disk", {"rate": rate})
                log("  durable_commit %2d thread(s): %s files/s %s" % (threads, fmt_num(rate),
                                                                    out.stderr.strip()))
            for conc in self.a.relay_concurrency:
                n = self.a.sink_count
                t0 = time.monotonic()
                r = subprocess.run(["smtp-source", "-s", str(conc), "-m", str(n), "-l", "1024",
                                    "-f", "bench@client.test", "-t", "rcpt@sink.test",
                                    "127.0.0.1:%d" % self.sink_port],
                                   capture_output=True, timeout=300)
                el = time.monotonic() - t0
                rate = n / el if r.returncode == 0 else None
                self.record(("sink", conc), "smtp-source", {"rate": rate})
                st = smtpload.run_load("127.0.0.1", self.sink_port, conc, n, self.a.duration,
                                       1024, ["rcpt@sink.test"])
                prate = st["accepted"] / st["elapsed"] if st["accepted"] else None
                self.record(("sink", conc), "bench client", {"rate": prate})
                log("  smtp-sink c=%d: smtp-source %s msgs/s, bench client %s msgs/s"
                    % (conc, fmt_num(rate), fmt_num(prate)))

    # ---- case d

    def case_conn(self):
        n = self.a.sessions
        log("== case d: %d concurrent sessions held after EHLO" % n)
        limit = smtpload.raise_fd_limit(n * 2 + 1024)
        log("  fd limit %d" % limit)
        maxproc = "-"               # Stork smtpd: smtpd_client_limit (500) sessions per process
        servers = self.make_servers("conn", smtpd_maxproc=maxproc, want_postfix=False)
        try:
            for rep in range(self.a.conn_reps):
                for srv in servers:
                    self.held_run(srv, n)
        finally:
            self.stop_servers(servers)
        # Postfix needs a process per session: a smaller reference point.
        pn = min(n, self.a.postfix_sessions)
        if pn and self.a.servers in ("both", "postfix"):
            pservers = []
            try:
                base = os.path.join(self.base, "conn-pf")
                os.makedirs(base, exist_ok=True)
                p = PostfixServer(base, None, None, smtpd_maxproc=pn + 20)
                pservers.append(p)
                p.start()
                r = self.held_run(p, pn, record=False)
                self.notes.append(
                    "d. Postfix reference (a process per session, so at %d sessions, not %d): "
                    "held %d, total RSS %.0f MiB (PSS %.0f MiB) in %d processes, new-session "
                    "greeting p50 %s ms, max %s ms" % (pn, n, r["held"], r["rss_mib"], r["pss_mib"],
                                                      r["procs"], fmt_num(r["greet_p50_ms"]),
                                                      fmt_num(r["greet_max_ms"])))
            finally:
                self.stop_servers(pservers)
        self.add_conn_rows(n)

    def held_run(self, srv, n, record=True):
        """Hold n sessions on srv; RSS/PSS and new-session greeting times."""
        time.sleep(0.5)
        rss0, _ = procstat.tree_rss(srv.master_pid)
        h = smtpload.HeldSessions("127.0.0.1", srv.port)
        try:
            t_open = h.open(n)
            time.sleep(1.0)
            alive = h.alive()
            rss, nproc = procstat.tree_rss(srv.master_pid)
            pss = procstat.tree_pss(srv.master_pid)
            probes = sorted(h.probe(20))
            alive2 = h.alive()
        finally:
            h.close()
        res = {"held": min(alive, alive2), "open_s": t_open,
               "rss_mib": rss / 1048576.0, "pss_mib": pss / 1048576.0,
               "rss_idle_mib": rss0 / 1048576.0,
               "procs": nproc, "greet_p50_ms": pct(probes, 50) * 1000 if probes else None,
               "greet_max_ms": probes[-1] * 1000 if probes else None,
               "probes_ok": len(probes), "errors": len(h.errors)}
        if record:
            self.record(("conn", n), srv.name, res)
        log("    %s: held %d/%d (opened in %.1f s, %d errors%s), RSS %.1f MiB in %d "
            "processes (idle %.1f MiB), new-session greeting p50 %s ms max %s ms (%d/20)"
            % (srv.name, res["held"], n, t_open, len(h.errors),
               (": " + h.errors[0]) if h.errors else "", res["rss_mib"], nproc,
               res["rss_idle_mib"], fmt_num(res["greet_p50_ms"]),
               fmt_num(res["greet_max_ms"]), len(probes)))
        return res

    def add_conn_rows(self, n):
        na = {"Postfix": "a process per session: see Notes"}
        if self.stork_why:
            na["Stork"] = self.stork_why
        for metric, name, better in (("held", "sessions held", "higher"),
                                     ("rss_mib", "total RSS MiB while held", "lower"),
                                     ("pss_mib", "total PSS MiB while held", "lower"),
                                     ("greet_p50_ms", "new session greeting p50 ms", "lower"),
                                     ("greet_max_ms", "new session greeting max ms", "lower")):
            st = summary(self.results(("conn", n), "Stork", metric))
            self.rows.append(("d. held sessions", "%d sessions" % n, name, st, None, better, na))

    # ---- case e

    def timed_shell(self, cmd, timeout=1800):
        t0 = time.monotonic()
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        return time.monotonic() - t0, r.stdout.strip().splitlines()[-1:] or [r.stderr.strip()[:200]]

    def case_bigq(self):
        n = self.a.big_queue
        log("== case e: big queue of %d messages for an unreachable destination" % n)
        dead_port = procstat.free_port()        # nothing listens: connection refused
        slow = {"minimal_backoff_time": "3h", "maximal_backoff_time": "6h",
                "queue_run_delay": "3h"}
        servers = self.make_servers("bigq", postfix_cf=slow, stork_cf=slow, relay_port=dead_port)
        sink = None
        try:
            for srv in servers:
                res = {}
                log("  %s: injecting %d messages" % (srv.name, n))
                t0 = time.monotonic()
                r = subprocess.run(["smtp-source", "-d", "-s", "20", "-m", str(n), "-l", "300",
                                    "-f", "bench@client.test", "-t", "rcpt@unreachable.test",
                                    "127.0.0.1:%d" % srv.port],
                                   capture_output=True, text=True, timeout=7200)
                res["inject_s"] = time.monotonic() - t0
                res["inject_rate"] = n / res["inject_s"]
                if r.returncode != 0:
                    log("    smtp-source: %s" % r.stderr.strip()[:300])
                # Wait (bounded) until the queue holds them all and is quiet.
                deadline = time.monotonic() + max(120, n / 100)
                last = -1
                while time.monotonic() < deadline:
                    c = srv.queue_count()
                    if c >= n and c == last:
                        break
                    last = c
                    time.sleep(2)
                res["queued"] = srv.queue_count()
                qc = " ".join(srv.queue_cmd_line())
                res["list_p_s"], tail = self.timed_shell(qc + " -p | tail -1")
                res["list_p_tail"] = tail[0] if tail else ""
                res["list_j_s"], cnt = self.timed_shell(qc + " -j | wc -l")
                res["list_j_lines"] = cnt[0] if cnt else ""
                log("    injected in %.1f s (%.0f msgs/s), queued %d; `-p | tail -1` %.2f s (%s); "
                    "`-j | wc -l` %.2f s (%s lines)"
                    % (res["inject_s"], res["inject_rate"], res["queued"], res["list_p_s"],
                       res["list_p_tail"], res["list_j_s"], res["list_j_lines"]))
                # Restart with the destination up: time to a working queue
                # listing, to the first delivery and to the last.
                srv.stop()
                sink = Sink(dead_port, self.base)   # the destination comes up
                base = sink.count
                relay_ok = srv.relay_ok
                t0 = time.monotonic()
                srv.start()
                res["start_s"] = time.monotonic() - t0
                while time.monotonic() - t0 < 300:
                    r = subprocess.run(srv.queue_cmd_line() + ["-p"], capture_output=True,
                                       timeout=600)
                    if r.returncode == 0:
                        break
                    time.sleep(0.1)
                res["ready_s"] = time.monotonic() - t0
                if relay_ok:
                    subprocess.run(srv.queue_cmd_line() + ["-f"], capture_output=True, timeout=600)
                    first = None
                    limit = self.a.bigq_deliver_limit or max(300, n / 20)
                    deadline = time.monotonic() + limit
                    while time.monotonic() < deadline:
                        c = sink.count - base
                        if c >= 1 and first is None:
                            first = time.monotonic() - t0
                        if c >= res["queued"]:
                            break
                        time.sleep(0.1)
                    res["first_s"] = first
                    res["all_s"] = time.monotonic() - t0 if sink.count - base >= res["queued"] else None
                    res["delivered"] = sink.count - base
                    res["deliver_rate"] = res["delivered"] / (time.monotonic() - t0)
                    if res["all_s"] is None:
                        self.notes.append("e. %s: %d of %d delivered when the delivery wait ended "
                                          "(%.0f s after the restart; --bigq-deliver-limit %s): "
                                          "'all delivered' is n/a, the rate is over that time"
                                          % (srv.name, res["delivered"], res["queued"],
                                             time.monotonic() - t0, fmt_num(limit)))
                    log("    restart: master up %.2f s, queue listing answers %.2f s, first delivery "
                        "%s s, all %d delivered %s s"
                        % (res["start_s"], res["ready_s"], fmt_num(first), sink.count - base,
                           fmt_num(res["all_s"])))
                else:
                    log("    restart: master up %.2f s, queue listing answers %.2f s; delivery: %s"
                        % (res["start_s"], res["ready_s"], srv.relay_why))
                self.record(("bigq", n), srv.name, res)
                sink.stop()                         # down again for the next server
                sink = None
        finally:
            self.stop_servers(servers)
            if sink:
                sink.stop()
        na = {}
        if self.stork_why:
            na["Stork"] = self.stork_why
        for metric, name, better in (("inject_rate", "injection msgs/s (smtp-source, 20 sessions)", "higher"),
                                     ("list_p_s", "`queue -p | tail -1` s", "lower"),
                                     ("list_j_s", "`queue -j | wc -l` s", "lower"),
                                     ("ready_s", "restart → queue listing answers s", "lower"),
                                     ("first_s", "restart+flush → first delivery s", "lower"),
                                     ("all_s", "restart+flush → all delivered s", "lower"),
                                     ("deliver_rate", "restart+flush → delivered msgs/s", "higher")):
            st = summary(self.results(("bigq", n), "Stork", metric))
            pf = summary(self.results(("bigq", n), "Postfix", metric))
            na2 = dict(na)
            if metric in ("first_s", "all_s", "deliver_rate"):
                for srv in servers:
                    if not srv.relay_ok:
                        na2[srv.name] = srv.relay_why
            self.rows.append(("e. big queue", "%d msgs" % n, name, st, pf, better, na2))
        for srv_name in ("Stork", "Postfix"):
            for r in self.results(("bigq", n), srv_name, "list_p_tail"):
                self.notes.append("e. %s `-p | tail -1` printed: `%s`" % (srv_name, r))

    # ---- report

    def machine(self):
        def sh(cmd):
            try:
                return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                      timeout=30).stdout.strip()
            except Exception:
                return ""
        mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
        cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
        df = sh("df -hT %s | tail -1" % self.base)
        commit = sh("git -C %s rev-parse --short HEAD" % SOURCE_DIR)
        # The report itself (rewritten by every run) does not make the tree dirty.
        dirty = sh("git -C %s status --porcelain --untracked-files=no -- . ':!bench/RESULTS.md' "
                   "| head -1" % SOURCE_DIR)
        pfv = sh("postconf -d -h mail_version")
        return [
            ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
            ("commit", commit + (" (with uncommitted changes in the tree)" if dirty else "")),
            ("nproc", sh("nproc")), ("CPU", cpu), ("memory", mem),
            ("disk (df -hT of the bench directory)", "`%s`" % re.sub(r"\s+", " ", df)),
            ("kernel", platform.release()), ("Postfix", pfv),
            ("load average at start", self.load_at_start),
        ]

    def write_report(self, elapsed):
        a = self.a
        lines = ["# Stork vs Postfix benchmark results", "",
                 "Generated by `bench/run%s` (bench/README.md explains every case). "
                 "Do not edit: the command rewrites this file." % (" --quick" if a.quick else ""), ""]
        lines += ["## Machine", "", "| | |", "|---|---|"]
        lines += ["| %s | %s |" % (k, v) for k, v in self.machine()]
        lines += ["", "## Run", "",
                  "- mode: %s; %d repetition(s) per case, Stork and Postfix alternating "
                  "(the first server swaps each repetition); wall time %.1f min"
                  % ("--quick" if a.quick else "full", a.reps, elapsed / 60),
                  "- SMTP cases: each run stops after %d messages or %d s, one message per "
                  "connection, %d virtual users, uvloop client: %s"
                  % (a.count, a.duration, NUSERS, "yes" if smtpload.uvloop else "no"),
                  "- before each SMTP run: the previous run's Maildirs are emptied, then "
                  "`sync` and the page cache dropped, so no run pays for files deleted "
                  "before it (bench/README.md, item 13): %s"
                  % ("done" if self.settled else "NOT done (not permitted here)"),
                  "- cells: median [min–max] over the repetitions; ratio = Stork median / "
                  "Postfix median (for rates higher is better for Stork, for CPU and "
                  "latency lower is better)",
                  "- big queue: %s" % ("%d messages (full target is 1,000,000: "
                                      "`bench/run --big-queue 1000000`)" % a.big_queue
                                      if a.big_queue and "bigq" in a.cases else
                                      "not in this run (a section below that says so is "
                                      "carried over from an earlier report)"),
                  ""]
        if self.stork_why:
            lines += ["**Stork could not be measured in (part of) this run: %s**" % self.stork_why, ""]
        section = None
        disk = self.disk_section()
        for sec, label, name, st, pf, better, na in self.rows:
            if sec != section:
                if sec[:2] in ("d.", "e.") and disk:
                    lines += disk     # keep the sections in the order a, b, c, d, e
                    disk = []
                section = sec
                lines += ["", "## " + sec, "",
                          "| case | metric | Stork | Postfix | Stork/Postfix |",
                          "|---|---|---|---|---|"]
            stc = fmt_summary(st, a.reps) if st else ("n/a (%s)" % na["Stork"] if "Stork" in na else NA)
            pfc = fmt_summary(pf, a.reps) if pf else ("n/a (%s)" % na["Postfix"] if "Postfix" in na else NA)
            ratio = "%.2f×" % (st[0] / pf[0]) if (st and pf and pf[0]) else "—"
            if st and pf and st[0] and better == "lower" and pf[0] / st[0] >= 10:
                ratio = "%.3f× (%.0f× faster)" % (st[0] / pf[0], pf[0] / st[0])
            cells = [c.replace("|", "\\|") for c in (label, name, stc, pfc, ratio)]
            lines.append("| %s | %s | %s | %s | %s |" % tuple(cells))
        lines += disk
        lines = self.merge_carried(lines)
        while lines and lines[-1] == "":
            lines.pop()
        if self.notes or self.carried_notes:
            lines += ["", "## Notes", ""] + ["- " + n for n in self.notes] + self.carried_notes
        text = "\n".join(lines) + "\n"
        with open(a.out, "w") as f:
            f.write(text)
        log("\n" + text)
        log("wrote %s" % a.out)

    def carried_over(self, produced):
        """The previous report's sections for cases this run did not
        include (case e takes over an hour, so it is usually run on its
        own), each marked with the run it came from; and their notes."""
        try:
            with open(self.a.out) as f:
                old = f.read()
        except OSError:
            return {}, []
        date = re.search(r"^\| date \| (.+?) \|$", old, re.M)
        commit = re.search(r"^\| commit \| (.+?) \|$", old, re.M)
        where = "the run of %s at commit %s" % (date.group(1) if date else "?",
                                                commit.group(1) if commit else "?")
        secs, notes = {}, []
        for chunk in re.split(r"(?m)^(?=## )", old):
            m = re.match(r"## ([a-e])\. ", chunk)
            if m and m.group(1) not in produced:
                body = chunk.rstrip("\n").split("\n")
                if not any(ln.startswith(("_Carried over", "From `bench/run")) for ln in body):
                    body[1:1] = ["", "_Carried over from %s: this run did not include case %s._"
                                 % (where, m.group(1))]
                secs[m.group(1)] = body
            elif chunk.startswith("## Notes"):
                notes = [ln for ln in chunk.split("\n") if re.match(r"- [a-e]\. ", ln)]
        return secs, [ln for ln in notes if ln[2] in secs]

    def merge_carried(self, lines):
        """Put the carried-over sections among this run's, in case order."""
        chunks, cur = [], []
        for ln in lines:
            if ln.startswith("## ") and cur:
                chunks.append(cur)
                cur = []
            cur.append(ln)
        chunks.append(cur)
        produced = {c[0][3] for c in chunks if re.match(r"## [a-e]\. ", c[0])}
        carried, self.carried_notes = self.carried_over(produced)
        for letter, body in sorted(carried.items()):
            at = next((i for i, c in enumerate(chunks)
                       if re.match(r"## [a-e]\. ", c[0]) and c[0][3] > letter), len(chunks))
            chunks.insert(at, [""] + body + [""])
        out = []
        for ln in (ln for c in chunks for ln in c):
            if not (ln == "" and out and out[-1] == ""):
                out.append(ln)
        return out

    def disk_section(self):
        a = self.a
        out = []
        if not self._flat_rates():
            return out
        out += ["", "## c. the disk and the sink, same run", "",
                "| what | files or msgs/s |", "|---|---|"]
        for (case, who), s in sorted(self._flat_rates().items()):
            if case[0] == "dc":
                label = "durable_commit, %d thread%s (create, write 1 KiB, fsync, rename, fsync dir)" % (
                    case[1], "s" if case[1] > 1 else "")
            else:
                label = "smtp-sink accept rate, c=%d, via %s" % (case[1], who)
            out.append("| %s | %s |" % (label, fmt_summary(s, a.reps)))
        # End to end as a fraction of the disk and of the sink.
        out += ["", "End-to-end (delivered msgs/s, 1 KiB, SMTP → Maildir) as a fraction of "
                "the above:", "",
                "| server | c | delivered msgs/s | ÷ durable commits/s (1 thread) | "
                "÷ durable commits/s (%d threads) | ÷ smtp-sink (smtp-source) |" % a.dc_threads,
                "|---|---|---|---|---|---|"]
        flat = self._flat_rates()
        d1 = flat.get((("dc", 1), "disk"))
        dn = flat.get((("dc", a.dc_threads), "disk"))
        for srv in ("Stork", "Postfix"):
            for conc in a.relay_concurrency:
                s = summary(self.results(("smtp", 1024, conc), srv, "dlv_rate"))
                sk = flat.get((("sink", conc), "smtp-source"))
                if not s:
                    out.append("| %s | %d | %s | | | |" % (srv, conc, NA))
                    continue

                def frac(x):
                    return "%.0f%%" % (100 * s[0] / x[0]) if x and x[0] else NA
                out.append("| %s | %d | %s | %s | %s | %s |" % (srv, conc, fmt_num(s[0]), frac(d1),
                                                                frac(dn), frac(sk)))
        out += ["", "Disk requests per delivered message (1 KiB, SMTP → Maildir; the whole "
                "device's writes / cache flushes / discards over the run, medians):", "",
                "| server | c | writes | flushes | discards |", "|---|---|---|---|---|"]
        for srv in ("Stork", "Postfix"):
            for conc in a.concurrency:
                cells = [(summary(self.results(("smtp", 1024, conc), srv, "disk_%s_per_msg" % k))
                          or (None,))[0] for k in ("writes", "flushes", "discards")]
                if any(c is not None for c in cells):
                    out.append("| %s | %d | %s |" % (srv, conc, " | ".join(fmt_num(c) for c in cells)))
        out += ["", "The bench client's own CPU per 1000 messages (1 KiB, c=10): " +
                ", ".join("%s run %s s" % (srv, fmt_num((summary(self.results(("smtp", 1024, 10), srv,
                                                                             "client_cpu_per_1000"))
                                                          or (None,))[0]))
                          for srv in ("Stork", "Postfix")) +
                ". The 'bench client' sink row is the most this client can offer on this machine."]
        return out

    def _flat_rates(self):
        out = {}
        for (case, who), lst in self.raw.items():
            if case[0] in ("dc", "sink"):
                out[((case[0], case[1]), who)] = summary([r["rate"] for r in lst])
        return out


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Stork vs Postfix benchmark (issue 4)")
    ap.add_argument("--quick", action="store_true", help="a few-minute smoke run")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--count", type=int, help="messages per SMTP run (upper bound)")
    ap.add_argument("--duration", type=int, help="seconds per SMTP run (upper bound)")
    ap.add_argument("--sessions", type=int, help="held sessions for case d")
    ap.add_argument("--big-queue", type=int, dest="big_queue", help="messages for case e, 0 = skip")
    ap.add_argument("--bigq-deliver-limit", type=float, dest="bigq_deliver_limit", default=0,
                    help="case e: stop waiting for the last delivery after this many seconds "
                         "(default: max(300, N/20)); the delivery rate is still reported")
    ap.add_argument("--cases", default="smtp,relay,disk,conn,bigq",
                    help="comma list of smtp,relay,disk,conn,bigq")
    ap.add_argument("--servers", default="both", choices=("both", "stork", "postfix"))
    ap.add_argument("--stork-build", default=os.environ.get("STORK_BUILD_DIR",
                                                            os.path.join(SOURCE_DIR, "build-bench")))
    ap.add_argument("--tmpdir", default="/var/tmp")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--retry-stork", action="store_true",
                    help="try Stork again in each case after it failed once")
    ap.add_argument("--sizes", help="comma list of message sizes in KiB for case a (default 1,64)")
    ap.add_argument("--conc", help="comma list of concurrencies for cases a and b (default 1,10,50"
                    " for a, 10,50 for b)")
    a = ap.parse_args(argv)
    a.cases = set(a.cases.split(","))
    q = a.quick
    a.reps = a.reps or (1 if q else 3)
    a.count = a.count or (1000 if q else 5000)
    a.duration = a.duration or (4 if q else 30)
    a.sessions = a.sessions or (2000 if q else 10000)
    if a.big_queue is None:
        a.big_queue = 3000 if q else 100000
    if a.big_queue == 0:
        a.cases.discard("bigq")
    a.sizes = [int(x) * 1024 for x in a.sizes.split(",")] if a.sizes else [1024, 65536]
    a.concurrency = [int(x) for x in a.conc.split(",")] if a.conc else [1, 10, 50]
    a.relay_concurrency = [int(x) for x in a.conc.split(",")] if a.conc else [10, 50]
    a.dc_threads = 16
    a.dc_seconds = 2 if q else 5
    a.sink_count = 3000 if q else 20000
    a.conn_reps = 1 if q else 2
    a.postfix_sessions = 300 if q else 1000
    return a


def main(argv):
    a = parse_args(argv)
    b = Bench(a)
    b.load_at_start = open("/proc/loadavg").read().split()[:3]
    b.load_at_start = " ".join(b.load_at_start)
    t0 = time.monotonic()
    log("bench: working in %s (Stork build %s)" % (b.base, a.stork_build))
    b.sink = Sink(b.sink_port, b.base)
    try:
        for case, fn in (("disk", b.case_disk), ("smtp", b.case_smtp), ("conn", b.case_conn),
                         ("bigq", b.case_bigq)):
            if case in a.cases or (case == "smtp" and "relay" in a.cases):
                try:
                    fn()
                except Exception:
                    log("case %s failed:\n%s" % (case, traceback.format_exc()))
                    b.notes.append("case %s failed: %s" % (
                        case, traceback.format_exc().strip().splitlines()[-1]))
    finally:
        b.sink.stop()
        b.write_report(time.monotonic() - t0)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(b.base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
