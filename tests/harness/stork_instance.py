"""stork_instance - a real Stork instance in a temporary directory, for the
end-to-end tests.

StorkInstance writes a config directory (main.cf, master.cf, aliases, a
virtual users table compiled with the build's storkmap), a queue directory
and a log file under one temporary directory, picks free loopback ports,
starts build/libexec/stork-master in the foreground and stops it again.

Two modes:
  root_mode=True   (the default when the tests run as root, as CI does):
                   the instance runs as installed; stork-master drops each
                   daemon to mail_owner `stork`, smtpd chroots to the queue
                   directory, local switches to the recipient's uid, and
                   virtual mailboxes belong to `vmail`. Needs those users
                   (tools/deps.sh makes them); tests skip without them.
  root_mode=False  a private instance run by the invoking user (no ids
                   change); system-user delivery tests skip.

Only processes this instance started are ever signalled, found through
/proc by parent pid. Every wait is bounded.

Tests are plain functions run by run_tests() (no third-party runner): a
test raises Skip to skip; the file exits 0 (all passed), 1 (a failure) or
77 (everything skipped; ctest's SKIP_RETURN_CODE).
"""

import contextlib
import crypt  # noqa: deprecated in 3.11, still the libc crypt(3) we test against
import grp
import os
import stat
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.environ.get("STORK_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

QUEUES = ("incoming", "active", "deferred", "hold", "corrupt", "maildrop")

# Lines in maillog or the master's stderr that mean a daemon misbehaved.
BAD_LOG = re.compile(r"(\bpanic: |AddressSanitizer|LeakSanitizer|"
                     r"UndefinedBehaviorSanitizer|runtime error: )")
# LeakSanitizer cannot run inside a chroot (it needs /proc to stop the
# process's threads): chrooted smtpd says so at exit. That is a limit of
# the tool, not a finding; chrooted leaks are checked by non-root runs.
LSAN_CANNOT_RUN = re.compile(r"LeakSanitizer has encountered a fatal error|"
                             r"HINT: LeakSanitizer does not work under ptrace|"
                             r"HINT: For debugging, try setting environment variable "
                             r"LSAN_OPTIONS=verbosity=1")


class Skip(Exception):
    """Raised by a test (or the harness) to skip the current test."""


class TestTimeout(Exception):
    pass


# ---------------------------------------------------------------- helpers

def is_root():
    return os.geteuid() == 0


def require_root():
    if not is_root():
        raise Skip("needs root")


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def free_port(host="127.0.0.1"):
    """A currently free TCP port on host (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def sha512_crypt(password):
    """A crypt(3) SHA-512 hash, as `openssl passwd -6` makes."""
    try:
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except Exception:  # crypt module missing: use openssl
        return subprocess.run(["openssl", "passwd", "-6", password], check=True,
                              capture_output=True, text=True).stdout.strip()


def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Poll pred() until it returns a true value; raise after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def proc_table():
    """{pid: (ppid, argv list, uid)} for every process we can read."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                stat = f.read().decode("latin-1")
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
            uid = os.stat("/proc/%d" % pid).st_uid
        except (OSError, ValueError):
            continue
        procs[pid] = (ppid, argv, uid)
    return procs


def proc_status_ids(pid, field="Uid"):
    """The real/effective/saved/fs ids of a process from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def maildir_messages(path):
    """Files in a Maildir's new/ and cur/ (sorted), [] if none yet."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        try:
            out += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
        except FileNotFoundError:
            pass
    return sorted(out)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


ADDED_HEADERS = (b"return-path:", b"delivered-to:", b"x-original-to:", b"received:")


def split_added_headers(stored):
    """Split a delivered file into (the headers Stork added, the rest).

    Stork prepends Return-Path:, Delivered-To: (local) and Received:
    (smtpd/pickup). Everything after them must be the submitted message
    byte for byte (after SMTP dot-unstuffing and CRLF -> LF)."""
    pos = 0
    added = []
    current = None
    while pos < len(stored):
        end = stored.find(b"\n", pos)
        if end < 0:
            break
        line = stored[pos:end + 1]
        if line[:1] in (b" ", b"\t") and current is not None:
            added[-1] += line
        elif line.lower().startswith(ADDED_HEADERS):
            current = line
            added.append(line)
        else:
            break
        pos = end + 1
    return added, stored[pos:]


# ---------------------------------------------------------------- instance

class StorkInstance:
    """A Stork instance under tmpdir (made if None). See the module doc."""

    def __init__(self, tmpdir=None, root_mode=None, extra_main_cf=None,
                 virtual_users=None, aliases=None, mynetworks="127.0.0.1/32",
                 extra_master_cf="", smtpd_maxproc="-", name="stork",
                 host="127.0.0.1", port=None, myhostname="mx.stork.test",
                 local_domain="stork.test", virtual_domain="virt.test"):
        self.root_mode = is_root() if root_mode is None else root_mode
        if self.root_mode:
            require_root()
            for u in ("stork", "vmail"):
                if not user_exists(u):
                    raise Skip("user %s missing (run tools/deps.sh)" % u)
        self.build_dir = BUILD_DIR
        self.bin_dir = os.path.join(self.build_dir, "bin")
        self.libexec_dir = os.path.join(self.build_dir, "libexec")
        self.master_path = self._find_program("stork-master")
        self._own_tmp = tmpdir is None
        self.dir = tmpdir or tempfile.mkdtemp(prefix="stork-e2e-")
        self.dir = os.path.realpath(self.dir)
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.vmail_dir = os.path.join(self.dir, "vmail")
        self.maillog = os.path.join(self.dir, "maillog")
        self.master_out = os.path.join(self.dir, "master.out")
        # host/port: where smtpd listens (a second instance side by side
        # takes another 127.0.0.x, or a port the test chose); the names
        # keep two instances' local and virtual domains apart.
        self.host = host
        self.port = port or free_port(host)
        self.myhostname = myhostname
        self.local_domain = local_domain
        self.virtual_domain = virtual_domain
        self.mynetworks = mynetworks
        self.extra_main_cf = dict(extra_main_cf or {})
        self.extra_master_cf = extra_master_cf
        self.smtp_chroot = "n"
        self.smtpd_maxproc = smtpd_maxproc
        self.virtual_users = dict(virtual_users if virtual_users is not None else
                                  {"alice": "secret", "bob": "secret"})
        self.virtual_quota = {}
        self.aliases = dict(aliases or {})
        self.proc = None
        self.master_pid = None
        self.killed = set()      # pids we SIGKILLed on purpose
        self.tolerate_exits = False  # crash tests: peers of killed daemons may exit 1
        self._master_log = None
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.mail_owner = "stork" if self.root_mode else self.user
        self.vmail_owner = "vmail" if self.root_mode else self.user
        self._setup()

    # ---- layout

    def _find_program(self, name):
        for d in (os.path.join(BUILD_DIR, "libexec"), os.path.join(BUILD_DIR, "bin")):
            p = os.path.join(d, name)
            if os.access(p, os.X_OK):
                return p
        raise AssertionError("%s not built in %s (build all targets first)" % (name, BUILD_DIR))

    def command(self, name):
        """Path of a built command (bin/ first, then libexec/)."""
        return self._find_program(name)

    def _setup(self):
        os.chmod(self.dir, 0o755)       # daemons that dropped to stork traverse it
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.makedirs(self.vmail_dir, exist_ok=True)
        if self.root_mode:
            pw = pwd.getpwnam("vmail")
            os.chown(self.vmail_dir, pw.pw_uid, pw.pw_gid)
        open(self.maillog, "a").close()
        if self.root_mode:
            pw = pwd.getpwnam("stork")
            os.chown(self.maillog, pw.pw_uid, pw.pw_gid)
        os.chmod(self.maillog, 0o644)
        self.write_main_cf()
        self.write_master_cf()
        self.write_virtual_users()
        self.write_aliases()

    def known_params(self):
        """Names declared in lib/config/params_*.def (the source tree)."""
        names = set()
        d = os.path.join(SOURCE_DIR, "lib", "config")
        for fn in os.listdir(d):
            if fn.startswith("params") and fn.endswith(".def"):
                with open(os.path.join(d, fn)) as f:
                    names.update(re.findall(r'^\s*PARAM\(\s*"([a-z0-9_]+)"', f.read(), re.M))
        return names

    def main_cf_values(self):
        v = {
            "queue_directory": self.queue_dir,
            "daemon_directory": self.libexec_dir,
            "command_directory": self.bin_dir,
            "maillog_file": self.maillog,
            "mail_owner": self.mail_owner,
            "myhostname": self.myhostname,
            "mydomain": self.local_domain,
            "myorigin": self.local_domain,
            "mydestination": "%s, %s, localhost" % (self.myhostname, self.local_domain),
            "mynetworks": self.mynetworks,
            "inet_interfaces": self.host,
            "alias_maps": "hash:%s/aliases" % self.config_dir,
            "alias_database": "hash:%s/aliases" % self.config_dir,
            "virtual_mailbox_domains": self.virtual_domain,
            "virtual_mailbox_base": self.vmail_dir,
            "virtual_mailbox_maps": "hash:%s/vmailbox" % self.config_dir,
            "virtual_mailbox_owner": self.vmail_owner,
        }
        # Short timers so retries and idle exits happen within a test.
        # Only the ones some program declares are written (a name nobody
        # declares would, rightly, stop the instance from starting).
        timers = {
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "queue_run_delay": "2s",
            "service_throttle_time": "1s",
            "max_idle": "30s",
            "smtpd_timeout": "30s",
            "smtpd_error_sleep_time": "0s",
        }
        known = self.known_params()
        v.update({k: val for k, val in timers.items() if k in known})
        v.update(self.extra_main_cf)
        return v

    def write_main_cf(self):
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# written by tests/harness/stork_instance.py\n")
            for k, val in self.main_cf_values().items():
                f.write("%s = %s\n" % (k, val))

    def master_cf_text(self):
        text = (
            "# service type private unpriv chroot wakeup maxproc command\n"
            "%s:%d inet n - y - %s smtpd\n"
            "pickup unix n - n 60 1 pickup\n"
            "qmgr unix n - n 300 1 qmgr\n"
            "verify unix - - n - - verify\n"
            "local unix - n n - - local\n"
            % (self.host, self.port, self.smtpd_maxproc)
        )
        # Optional services, present once their daemon is built.
        # As conf/master.cf ships them: maxproc "-" for bounce (the
        # master reads 0 as zero processes, not Postfix's "no limit"), and
        # smtp not chrooted (smtp_chroot="y" runs it chrooted).
        if os.access(os.path.join(self.libexec_dir, "bounce"), os.X_OK):
            text += "bounce unix - - n - - bounce\n"
        if os.access(os.path.join(self.libexec_dir, "smtp"), os.X_OK):
            text += "smtp unix - - %s - - smtp\n" % self.smtp_chroot
        return text + self.extra_master_cf

    def write_master_cf(self):
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf_text())

    def vaddr(self, user):
        return "%s@%s" % (user, self.virtual_domain)

    def vmaildir(self, user):
        return os.path.join(self.vmail_dir, self.virtual_domain, user)

    def write_virtual_users(self):
        """The virtual users table: address -> HASH:MAILDIR:QUOTA, compiled."""
        path = os.path.join(self.config_dir, "vmailbox")
        with open(path, "w") as f:
            for user, password in sorted(self.virtual_users.items()):
                f.write("%s %s:%s/%s/:%d\n" % (self.vaddr(user), sha512_crypt(password),
                                              self.virtual_domain, user,
                                              self.virtual_quota.get(user, 0)))
        self.storkmap("hash:" + path)

    def write_aliases(self):
        path = os.path.join(self.config_dir, "aliases")
        with open(path, "w") as f:
            f.write("# aliases(5)\n")
            for name, targets in sorted(self.aliases.items()):
                if isinstance(targets, str):
                    targets = [targets]
                f.write("%s: %s\n" % (name, ", ".join(targets)))
        self.storkmap("-a", "hash:" + path)

    def storkmap(self, *args):
        """Run storkmap (-a: aliases syntax) and fail loudly on errors."""
        args = list(args)
        cmd = [self.command("storkmap"), "-c", self.config_dir]
        cmd += args
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode,
                                                           r.stdout, r.stderr))
        for spec in args:
            if spec.startswith("hash:"):
                os.chmod(spec[5:] + ".db", 0o644)
        return r

    # ---- running commands

    def env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = self.config_dir
        env["STORK_CONFIG_DIR"] = self.config_dir
        # Sanitizer reports go to stderr, which the daemons share with the
        # master (master.out); check_clean() looks there. (A log_path file
        # cannot be opened from inside smtpd's chroot.)
        return env

    def run(self, name, *args, input=None, check=False, timeout=30):
        """Run a built command with -c CONFIG_DIR; returns CompletedProcess
        (text mode). input may be str or bytes."""
        cmd = [self.command(name), "-c", self.config_dir] + list(args)
        return self.run_cmd(cmd, input=input, check=check, timeout=timeout)

    def run_cmd(self, cmd, input=None, check=False, timeout=30):
        binary = isinstance(input, bytes)
        r = subprocess.run(cmd, input=input, capture_output=True, text=not binary,
                           timeout=timeout, env=self.env())
        if binary:
            r.stdout = r.stdout.decode("utf-8", "replace")
            r.stderr = r.stderr.decode("utf-8", "replace")
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    # ---- lifecycle

    def start(self, timeout=30):
        """Start stork-master in the foreground and wait for the SMTP port."""
        assert self.proc is None, "already started"
        for prog in ("smtpd", "pickup", "qmgr", "verify", "local"):
            self._find_program(prog)        # fail now if one is not built
        self._master_log = open(self.master_out, "ab")
        self.proc = subprocess.Popen([self.master_path, "-c", self.config_dir, "-d"],
                                     stdin=subprocess.DEVNULL, stdout=self._master_log,
                                     stderr=subprocess.STDOUT, env=self.env())
        self.master_pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise AssertionError("stork-master exited %s at start-up\n%s"
                                     % (rc, self.diagnostics()))
            if self.smtp_ready():
                return self
            # A daemon that keeps failing at start will not come up: say
            # so now rather than at the timeout.
            failing = re.findall(r"warning: (\S+): bad command startup", self.read_log())
            if failing and max(failing.count(f) for f in set(failing)) >= 3:
                raise AssertionError("%s keeps failing at start-up\n%s"
                                     % (max(set(failing), key=failing.count),
                                        self.diagnostics()))
            if time.monotonic() >= deadline:
                raise AssertionError("SMTP port %d not answering after %ds\n%s"
                                     % (self.port, timeout, self.diagnostics()))
            time.sleep(0.1)

    def smtp_ready(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as s:
                s.settimeout(10)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def descendants(self, root=None):
        """Pids of every live process below the master (ours only)."""
        root = root or self.master_pid
        procs = proc_table()
        out, todo = [], [root]
        while todo:
            p = todo.pop()
            kids = [pid for pid, (ppid, _, _) in procs.items() if ppid == p]
            out += kids
            todo += kids
        return out

    def daemons(self, program):
        """Pids of the master's children running `program` (argv[0] base name)."""
        if not self.master_pid:
            return []
        return [pid for pid, (ppid, argv, _) in proc_table().items()
                if ppid == self.master_pid and argv
                and os.path.basename(argv[0]) == program]

    def wait_daemon(self, program, timeout=15):
        """Wait until the master runs at least one `program`; its pids."""
        return wait_until(lambda: self.daemons(program), timeout,
                          what="a %s process" % program)

    def kill(self, program, sig=signal.SIGKILL):
        """Signal every `program` child of the master; returns the pids."""
        pids = self.daemons(program)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                if sig == signal.SIGKILL:
                    self.killed.add(pid)
        return pids

    def kill_all(self):
        """SIGKILL the master and every daemon below it (a crash of the
        whole tree), then reap the master."""
        assert self.proc is not None
        pids = self.descendants()
        for pid in [self.master_pid] + pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                self.killed.add(pid)
        self.proc.wait(timeout=10)
        self.proc = None
        wait_until(lambda: not any(os.path.exists("/proc/%d" % p) and
                                   not _is_zombie(p) for p in pids), 10,
                   what="killed daemons to go away")

    def reload(self):
        return self.run("stork", "reload", check=True)

    def stop(self, timeout=20, check_log=True):
        """SIGTERM the master, wait (bounded), then make sure nothing of
        ours is left; SIGKILL leftovers (and fail, that is a bug)."""
        if self.proc is None:
            return
        pids = self.descendants()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("stork-master ignored SIGTERM for %ds" % timeout)
        finally:
            self.proc = None
            if self._master_log:
                self._master_log.close()
                self._master_log = None
        try:
            wait_until(lambda: not [p for p in pids if _alive(p)], 10,
                       what="daemons to exit after the master stopped")
        except AssertionError:
            left = [p for p in pids if _alive(p)]
            for p in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            raise AssertionError("daemons outlived the master: %s" % left)
        if check_log:
            self.check_clean()

    def check_clean(self):
        """No panic or sanitizer report in maillog or the master's output
        (which the daemons' stderr goes to), and no daemon that died on its
        own."""
        problems = []
        for path in (self.maillog, self.master_out):
            with contextlib.suppress(FileNotFoundError):
                for line in open(path, errors="replace"):
                    if BAD_LOG.search(line) and not LSAN_CANNOT_RUN.search(line):
                        problems.append("%s: %s" % (os.path.basename(path), line.rstrip()))
        problems += self.sanitizer_reports()
        try:
            out = open(self.master_out, errors="replace").read()
        except FileNotFoundError:
            out = ""
        lsan_failed = {int(p) for p in re.findall(r"^==(\d+)==LeakSanitizer has encountered",
                                                  out, re.M)}
        # A daemon that died on its own (not by our SIGKILL, not SIGTERM at
        # stop) is a crash even if the test's mail got through.
        for m in re.finditer(r"process (\S+) pid (\d+) (exit status|killed by signal) (\d+)",
                             self.read_log()):
            path, pid, how, num = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            if pid in self.killed or (how == "killed by signal" and num == signal.SIGTERM):
                continue
            if pid in lsan_failed:
                continue
            if how == "exit status" and (num == 0 or self.tolerate_exits):
                continue
            problems.append("maillog: daemon %s pid %d %s %d" % (path, pid, how, num))
        if problems:
            raise AssertionError("problems in the logs of the instance in %s:\n%s"
                                 % (self.dir, "\n".join(problems[:60])))

    def sanitizer_reports(self):
        """Sanitizer reports in master.out, each named by its program."""
        try:
            text = open(self.master_out, errors="replace").read()
        except FileNotFoundError:
            return []
        log = self.read_log()
        out = []
        for m in re.finditer(r"^==(\d+)==ERROR: (.*)$", text, re.M):
            pid = m.group(1)
            prog = re.search(r"stork/([\w-]+)\[%s\]" % pid, log)
            end = text.find("SUMMARY:", m.end())
            block = text[m.start():end if end >= 0 else m.start() + 3000]
            out.append("sanitizer report from %s pid %s:\n%s" %
                       (prog.group(1) if prog else "?", pid, block[:3000]))
        return out

    def cleanup(self):
        with contextlib.suppress(Exception):
            self.stop(check_log=False)
        if self._own_tmp and not os.environ.get("STORK_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
            else:
                sys.stderr.write(self.diagnostics())
        finally:
            self.cleanup()
        return False

    # ---- observing

    def read_log(self):
        with contextlib.suppress(FileNotFoundError):
            with open(self.maillog, errors="replace") as f:
                return f.read()
        return ""

    def diagnostics(self, lines=60):
        out = ["--- instance %s" % self.dir,
               "--- %s (last %d lines)" % (self.maillog, lines)]
        out += self.read_log().splitlines()[-lines:]
        with contextlib.suppress(FileNotFoundError):
            with open(self.master_out, errors="replace") as f:
                out += ["--- master output"] + f.read().splitlines()[-lines:]
        return "\n".join(out) + "\n"

    def queue_files(self):
        """{queue: [file names]} for the queue directories (temp files too)."""
        out = {}
        for q in QUEUES:
            d = os.path.join(self.queue_dir, q)
            names = []
            for root, _, files in os.walk(d):
                names += [os.path.relpath(os.path.join(root, n), d) for n in files]
            out[q] = sorted(names)
        return out

    def uncommitted(self, queue, name):
        """A file a writer has not committed: maildrop's t.ID, or an
        incoming/ file without its owner-execute bit (still being written,
        or its writer died)."""
        if os.path.basename(name).startswith("t."):
            return True
        if queue != "incoming":
            return False
        try:
            return not os.lstat(os.path.join(self.queue_dir, queue, name)).st_mode & stat.S_IXUSR
        except FileNotFoundError:
            return False

    def queue_count(self, queues=("incoming", "active", "deferred", "hold", "maildrop")):
        """Messages in the queue; uncommitted files are not messages and
        are not counted."""
        qf = self.queue_files()
        return sum(1 for q in queues for n in qf[q] if not self.uncommitted(q, n))

    def temp_files(self):
        """Uncommitted writers' files left in the queue."""
        qf = self.queue_files()
        return [q + "/" + n for q in qf for n in qf[q] if self.uncommitted(q, n)]

    def wait_queue_empty(self, timeout=30):
        wait_until(lambda: self.queue_count() == 0, timeout, what="an empty queue")

    def wait_for_maildir(self, path, n, timeout=20):
        """Wait until the Maildir at path holds at least n messages."""
        try:
            return wait_until(lambda: (lambda m: m if len(m) >= n else None)(
                maildir_messages(path)), timeout, what="%d message(s) in %s" % (n, path))
        except AssertionError as e:
            raise AssertionError("%s (has %d)\n%s" % (e, len(maildir_messages(path)),
                                                       self.diagnostics()))

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [l for l in self.read_log().splitlines() if rx.search(l)]

    # ---- clients

    def smtp(self, source_address=None, timeout=30):
        """A connected smtplib.SMTP (greeting read)."""
        s = smtplib.SMTP(timeout=timeout,
                         source_address=(source_address, 0) if source_address else None)
        s.connect(self.host, self.port)
        return s

    def send(self, mail_from, rcpts, message, source_address=None, mail_options=(),
             rcpt_options=()):
        """Send one message with smtplib; returns the DATA reply (code, text).
        Raises smtplib exceptions on refusal."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if isinstance(message, str):
            message = message.encode()
        s = self.smtp(source_address)
        try:
            s.ehlo("client.test")
            code, resp = s.mail(mail_from, list(mail_options))
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, mail_from)
            for r in rcpts:
                code, resp = s.rcpt(r, list(rcpt_options))
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({r: (code, resp)})
            code, resp = s.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, resp)
            return code, resp
        finally:
            with contextlib.suppress(Exception):
                s.quit()
            s.close()


def _alive(pid):
    return os.path.exists("/proc/%d" % pid) and not _is_zombie(pid)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] == "Z"
    except (OSError, ValueError):
        return True


# ---------------------------------------------------------------- raw SMTP

class RawSMTP:
    """A bare socket SMTP client for pipelining and malformed input."""

    def __init__(self, host, port, source_address=None, timeout=15):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source_address, 0) if source_address else None)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One (possibly multi-line) reply: (code, [text lines])."""
        lines = []
        while True:
            l = self.line()
            lines.append(l[4:])
            if len(l) < 4 or l[3] != "-":
                return int(l[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def replies_until_close(self, limit=100):
        """Read replies until the server closes (or limit); list of codes."""
        codes = []
        with contextlib.suppress(EOFError, OSError):
            while len(codes) < limit:
                codes.append(self.reply())
        return codes

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# ---------------------------------------------------------------- users

class TempUser:
    """A temporary system user (useradd, home in a temp dir); root only."""

    def __init__(self, base_dir, name=None):
        require_root()
        self.name = name or "stk%d" % (os.getpid() % 100000)
        self.home = os.path.join(base_dir, "home-" + self.name)
        if user_exists(self.name):
            subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["useradd", "--home-dir", self.home, "--create-home",
                        "--shell", "/usr/sbin/nologin", "--user-group", self.name],
                       check=True, capture_output=True, timeout=30)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.chmod(self.home, 0o755)

    @property
    def maildir(self):
        return os.path.join(self.home, "Maildir")

    def delete(self):
        subprocess.run(["userdel", self.name], capture_output=True, timeout=30)
        with contextlib.suppress(KeyError):
            grp.getgrnam(self.name)
            subprocess.run(["groupdel", self.name], capture_output=True, timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()
        return False


# ---------------------------------------------------------------- runner

def _alarm(signum, frame):
    raise TestTimeout("test took too long")


def run_tests(namespace, per_test_timeout=90):
    """Run every test_* function in namespace (definition order); print one
    line per test and 'N passed, N failed, N skipped'; exit 0, 1, or 77
    when everything was skipped. argv[1:] selects tests by name."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    wanted = set(sys.argv[1:])
    if wanted:
        tests = [(n, f) for n, f in tests if n in wanted]
    passed = failed = skipped = 0
    signal.signal(signal.SIGALRM, _alarm)
    for name, fn in tests:
        t0 = time.monotonic()
        signal.alarm(per_test_timeout)
        try:
            fn()
            status = "ok"
            passed += 1
        except Skip as e:
            status = "skip (%s)" % e
            skipped += 1
        except Exception:
            status = "FAIL"
            failed += 1
            traceback.print_exc()
        finally:
            signal.alarm(0)
        print("%-40s %s (%.1fs)" % (name, status, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)
    sys.exit(0)
