"""dns_env - a real DNS environment on loopback for tests.

DnsEnv builds, in a temporary directory, what tests of remote delivery
need from DNS, with Debian's own servers:

  nsd      authoritative, on a free 127.0.0.1 port, serving a fake signed
           root ".", a signed "test." and the zones a test adds (signed or
           not), plus any reverse zone (e.g. "127.in-addr.arpa").
  unbound  a validating resolver on another free 127.0.0.1 port, with the
           fake root's DS as its trust anchor and one stub-zone per zone
           (NS records can't carry a port), so the chain of trust runs
           root -> test. -> dane.test. as it does on the internet: signed
           zones come back secure, unsigned children insecure.

Clients are pointed at the resolver (env.port / env.servers, the value
for main.cf's dns_servers) and given env.anchor_file (main.cf's
dnssec_trust_anchor_file). Never point them at nsd.

    env = DnsEnv(tmpdir)
    env.add_zone("dane.test", ["@ MX 10 mx", "mx A 127.0.0.2",
                               "_25._tcp.mx TLSA 3 1 1 " + digest],
                 signed=True)
    env.add_zone("a.test", ["@ MX 0 ."])           # null MX, unsigned
    env.start()
    ... env.servers ("127.0.0.1:PORT"), env.anchor_file ...
    env.stop()

add_default_zones() adds the set the library tests use (see its
docstring). Keys are made anew at every start() (ECDSAP256SHA256 with
ldns-keygen, zones signed with ldns-signzone): a client that outlives a
restart sees bogus answers until its cached keys expire, so restart
clients too.

No query ever leaves loopback: unbound has a stub-zone for "." too, so
nothing is resolved from the real root hints, and it only listens and
sends on 127.0.0.1. Processes are started in the foreground, stopped by
pid, and every wait is bounded.

Run as a program:
  python3 dns_env.py --selftest          check the environment, print
                                         "N passed, N failed"
  python3 dns_env.py --run CMD ARGS...   start the default zones, run CMD
                                         with STORK_DNS_SERVERS,
                                         STORK_DNS_ANCHOR, STORK_DNS_DIR
                                         set, stop, exit with CMD's status
Exit status 77 (skip) when nsd, unbound or ldnsutils are missing.

Needs Debian packages: nsd unbound ldnsutils openssl (dig from dnsutils
only for debugging by hand).
"""

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
LDNS_KEYGEN = shutil.which("ldns-keygen") or "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = shutil.which("ldns-signzone") or "/usr/bin/ldns-signzone"

SKIP = 77
TTL = 300


class DnsEnvError(Exception):
    pass


def tools_missing():
    """Names of the programs DnsEnv needs that are not installed."""
    return [p for p in (NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE)
            if not os.access(p, os.X_OK)]


def free_port():
    """A 127.0.0.1 port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise DnsEnvError("no free port found")


def canon(name):
    """Absolute, lower-case form of a zone name: "dane.test." or "."."""
    name = name.strip().lower().rstrip(".")
    return name + "." if name else "."


def tlsa_3_1_1(cert_pem_path):
    """The association data of a TLSA 3 1 1 record for a PEM certificate:
    the SHA-256 of its SubjectPublicKeyInfo, in hex."""
    import hashlib
    pub = subprocess.run(["openssl", "x509", "-in", cert_pem_path, "-noout",
                          "-pubkey"], check=True, capture_output=True,
                         timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True,
                         timeout=30).stdout
    return hashlib.sha256(der).hexdigest()


# ------------------------------------------------------- a tiny DNS client

def _encode_name(name):
    out = b""
    for label in canon(name).rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
          "TXT": 16, "AAAA": 28, "DS": 43, "DNSKEY": 48, "TLSA": 52}


def query(port, name, qtype, timeout=3.0, dnssec=True, do_bit=False):
    """Send one query over UDP to 127.0.0.1:port, asking for the AD bit
    when dnssec. Returns (rcode, ad, ancount). Used for readiness checks and the self-test; clients under
    test use their own resolver code."""
    qid = random.randrange(65536)
    flags = 0x0100 | (0x0020 if dnssec else 0)        # RD, AD
    header = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if do_bit else 0)
    q = header + _encode_name(name) + struct.pack(">HH", QTYPES[qtype], 1)
    if do_bit:   # OPT: udp size 1232, DO bit (RRSIGs are then counted)
        q += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            data, _ = s.recvfrom(65535)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                break
    _, rflags, _, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
    return rflags & 0xF, bool(rflags & 0x0020), ancount


# ------------------------------------------------------------- the env

class DnsEnv:
    """nsd + unbound on loopback in directory tmpdir (see module doc)."""

    def __init__(self, tmpdir=None):
        self._own_tmp = tmpdir is None
        self.dir = tmpdir or tempfile.mkdtemp(prefix="stork-dns-")
        self.dir = os.path.join(self.dir, "dns") if not self._own_tmp else self.dir
        self.zones = {}          # canon name -> {"records": [...], "signed": bool}
        self.nsd_port = None
        self.port = None
        self._procs = {}         # "nsd"/"unbound" -> Popen
        self.add_zone(".", [], signed=True)
        self.add_zone("test.", [], signed=True)

    # -- configuration

    def add_zone(self, name, records, signed=False):
        """Add (or replace the records of) a zone. records are zone-file
        lines relative to the zone ("@ MX 10 mx", "mx A 127.0.0.2", names
        without a final dot are relative); SOA and NS are added. A signed
        zone gets a DS in its parent, so it validates from the root."""
        self.zones[canon(name)] = {"records": list(records), "signed": signed}
        return self

    def add_default_zones(self):
        """The zones the library tests use (all address records are
        127.0.0.0/8 or ::1):
          mx.test      unsigned: MX 10 mx1, 20 mx2, 20 mx3, 30 mx4; A/AAAA
          nullmx.test  unsigned: null MX (MX 0 .)
          nomx.test    unsigned: no MX, A 127.0.0.7 and AAAA ::1
          txt.test     unsigned: TXT with two strings
          dane.test    signed: MX 10 mx, mx A 127.0.0.2, TLSA 3 1 1 (a fixed
                       digest 0x00..0x1f) on _25._tcp.mx
          127.in-addr.arpa  unsigned: PTR 1 -> localhost.test.
          bogus.test   signed, then its DS in test. is replaced by one for
                       another key, so every answer is bogus."""
        self.add_zone("mx.test", [
            "@ MX 10 mx1", "@ MX 20 mx2", "@ MX 20 mx3", "@ MX 30 mx4",
            "@ A 127.0.0.5",
            "mx1 A 127.0.0.11", "mx2 A 127.0.0.12", "mx3 A 127.0.0.13",
            "mx4 A 127.0.0.14", "mx4 AAAA ::1",
            "alias CNAME mx1"])
        self.add_zone("nullmx.test", ["@ MX 0 .", "@ A 127.0.0.6"])
        self.add_zone("nomx.test", ["@ A 127.0.0.7", "@ AAAA ::1"])
        self.add_zone("txt.test", ['@ TXT "v=spf1 -all" " second"'])
        digest = bytes(range(32)).hex()
        self.add_zone("dane.test", [
            "@ MX 10 mx", "mx A 127.0.0.2",
            "_25._tcp.mx TLSA 3 1 1 " + digest], signed=True)
        self.add_zone("bogus.test", ["@ MX 10 mx", "mx A 127.0.0.3",
                                     "_25._tcp.mx TLSA 3 1 1 " + digest],
                      signed=True)
        self.zones["bogus.test."]["break_ds"] = True
        self.add_zone("127.in-addr.arpa", ["1.0.0 PTR localhost.test."])
        return self

    @property
    def servers(self):
        """The resolver as dns_servers wants it: "127.0.0.1:PORT"."""
        return "127.0.0.1:%d" % self.port

    @property
    def anchor_file(self):
        return os.path.join(self.dir, "root.anchor")

    # -- build

    def _parent(self, zone):
        """The closest enclosing zone we serve ("." at worst)."""
        if zone == ".":
            return None
        labels = zone.rstrip(".").split(".")
        for i in range(1, len(labels)):
            cand = ".".join(labels[i:]) + "."
            if cand in self.zones:
                return cand
        return "."

    def _children(self, zone):
        return [z for z in self.zones if self._parent(z) == zone]

    def _run(self, argv, cwd):
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise DnsEnvError("%s failed: %s" % (argv[0], r.stderr.strip()))
        return r.stdout

    def _zone_file(self, zone, ds_of_children):
        origin = zone
        lines = ["$ORIGIN %s" % origin, "$TTL %d" % TTL,
                 "@ SOA ns.test. hostmaster.test. 1 3600 600 86400 60",
                 "@ NS ns.test."]
        if zone == ".":
            lines.append("ns.test. A 127.0.0.1")   # glue
        if zone == "test.":
            lines.append("ns A 127.0.0.1")
        lines += self.zones[zone]["records"]
        for child in self._children(zone):
            lines.append("%s NS ns.test." % child)
            if child in ds_of_children:
                lines.append(ds_of_children[child])
        return "\n".join(lines) + "\n"

    def _fname(self, zone):
        return "root" if zone == "." else zone.rstrip(".")

    def _sign(self, zone, path, kdir):
        """Make a key for zone, sign path; returns the DS line for the
        parent."""
        base = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", zone],
                         kdir).strip()
        inception = time.strftime("%Y%m%d%H%M%S",
                                  time.gmtime(time.time() - 3600))
        self._run([LDNS_SIGNZONE, "-i", inception, "-o", zone, path,
                   os.path.join(kdir, base)], self.dir)
        with open(os.path.join(kdir, base + ".ds")) as f:
            ds = f.read().strip()
        return ds

    def _fake_ds(self, zone, kdir):
        """A DS for a key that never signs the zone (for bogus tests)."""
        sub = os.path.join(kdir, "other")
        os.makedirs(sub, exist_ok=True)
        base = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", zone],
                         sub).strip()
        with open(os.path.join(sub, base + ".ds")) as f:
            return f.read().strip()

    def _build_zones(self):
        kdir = os.path.join(self.dir, "keys")
        os.makedirs(kdir, exist_ok=True)
        # Children before parents: a parent needs its children's DS.
        order = sorted((z for z in self.zones if z != "."),
                       key=lambda z: -z.count(".")) + ["."]
        ds = {}
        served = {}
        for zone in order:
            path = os.path.join(self.dir, self._fname(zone) + ".zone")
            with open(path, "w") as f:
                f.write(self._zone_file(zone, ds))
            if self.zones[zone]["signed"]:
                line = self._sign(zone, path, kdir)
                if self.zones[zone].get("break_ds"):
                    line = self._fake_ds(zone, kdir)
                ds[zone] = line
                served[zone] = path + ".signed"
            else:
                served[zone] = path
        with open(self.anchor_file, "w") as f:
            f.write(ds["."] + "\n")
        return served

    def _write_nsd_conf(self, served):
        conf = os.path.join(self.dir, "nsd.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write("server:\n"
                    "  ip-address: 127.0.0.1@%d\n"
                    "  port: %d\n"
                    "  do-ip6: no\n"
                    "  username: \"\"\n"
                    "  chroot: \"\"\n"
                    "  zonesdir: \"%s\"\n"
                    "  database: \"\"\n"
                    "  zonelistfile: \"%s/nsd.zonelist\"\n"
                    "  xfrdfile: \"%s/nsd.xfrd\"\n"
                    "  xfrdir: \"%s\"\n"
                    "  pidfile: \"%s/nsd.pid\"\n"
                    "  logfile: \"%s/nsd.log\"\n"
                    "  server-count: 1\n"
                    "  verbosity: 1\n"
                    "  hide-version: yes\n"
                    "remote-control:\n  control-enable: no\n"
                    % (self.nsd_port, self.nsd_port, d, d, d, d, d, d))
            for zone, path in served.items():
                f.write("zone:\n  name: \"%s\"\n  zonefile: \"%s\"\n"
                        % (zone, path))
        return conf

    def _write_unbound_conf(self):
        conf = os.path.join(self.dir, "unbound.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write("server:\n"
                    "  interface: 127.0.0.1\n"
                    "  port: %d\n"
                    "  outgoing-interface: 127.0.0.1\n"
                    "  do-ip6: no\n"
                    "  do-daemonize: no\n"
                    "  username: \"\"\n"
                    "  chroot: \"\"\n"
                    "  directory: \"%s\"\n"
                    "  pidfile: \"%s/unbound.pid\"\n"
                    "  logfile: \"%s/unbound.log\"\n"
                    "  use-syslog: no\n"
                    "  verbosity: 1\n"
                    "  val-log-level: 2\n"
                    "  num-threads: 1\n"
                    "  outgoing-range: 64\n"
                    "  so-reuseport: no\n"
                    "  access-control: 127.0.0.0/8 allow\n"
                    "  do-not-query-localhost: no\n"
                    "  qname-minimisation: no\n"
                    "  module-config: \"validator iterator\"\n"
                    "  trust-anchor-file: \"%s\"\n"
                    "  cache-max-ttl: 30\n"
                    "  cache-max-negative-ttl: 5\n"
                    "  infra-host-ttl: 5\n"
                    "  local-zone: \"test.\" nodefault\n"
                    "  local-zone: \"127.in-addr.arpa.\" nodefault\n"
                    "remote-control:\n  control-enable: no\n"
                    % (self.port, d, d, d, self.anchor_file))
            for zone in self.zones:
                f.write("stub-zone:\n  name: \"%s\"\n"
                        "  stub-addr: 127.0.0.1@%d\n  stub-prime: no\n"
                        % (zone, self.nsd_port))
        return conf

    # -- run

    def _wait_ready(self, port, name, proc, what, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DnsEnvError("%s exited with status %s: %s"
                                  % (what, proc.returncode, self._log(what)))
            try:
                rcode, _, _ = query(port, name, "SOA", timeout=0.5)
                if rcode == 0:
                    return
                last = "rcode %d" % rcode
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise DnsEnvError("%s not ready after %ss (%s): %s"
                          % (what, timeout, last, self._log(what)))

    def _log(self, what):
        try:
            with open(os.path.join(self.dir, what + ".log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def start(self, timeout=20):
        missing = tools_missing()
        if missing:
            raise DnsEnvError("missing programs: " + " ".join(missing))
        if self._procs:
            raise DnsEnvError("already started")
        if os.path.isdir(self.dir) and not self._own_tmp:
            shutil.rmtree(self.dir)
        os.makedirs(self.dir, exist_ok=True)
        self.nsd_port = free_port()
        self.port = free_port()
        while self.port == self.nsd_port:
            self.port = free_port()
        served = self._build_zones()
        nsd_conf = self._write_nsd_conf(served)
        ub_conf = self._write_unbound_conf()
        try:
            self._procs["nsd"] = subprocess.Popen(
                [NSD, "-d", "-c", nsd_conf], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.dir, "nsd.stderr"), "w"))
            self._wait_ready(self.nsd_port, ".", self._procs["nsd"], "nsd",
                             timeout)
            self._procs["unbound"] = subprocess.Popen(
                [UNBOUND, "-d", "-c", ub_conf], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.dir, "unbound.stderr"), "w"))
            self._wait_ready(self.port, "test.", self._procs["unbound"],
                             "unbound", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10):
        """Stop what start() started (by pid): SIGTERM, then SIGKILL."""
        for what in ("unbound", "nsd"):
            p = self._procs.pop(what, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        if self._own_tmp:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------- self-test

def _selftest():
    passed = failed = 0

    def check(cond, what):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print("FAIL: " + what, file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="stork-dns-") as tmp:
        env = DnsEnv(tmp).add_default_zones()
        t0 = time.monotonic()
        env.start()
        try:
            print("dns_env: up in %.1fs, resolver %s" %
                  (time.monotonic() - t0, env.servers))
            rc, ad, n = query(env.port, "dane.test", "MX")
            check(rc == 0 and ad and n == 1, "dane.test MX secure (%d %s %d)" % (rc, ad, n))
            rc, ad, n = query(env.port, "_25._tcp.mx.dane.test", "TLSA")
            check(rc == 0 and ad and n == 1, "TLSA secure")
            rc, ad, n = query(env.port, "mx.test", "MX")
            check(rc == 0 and not ad and n == 4, "mx.test MX insecure, 4 records")
            rc, ad, n = query(env.port, "nosuch.test", "A")
            check(rc == 3 and ad, "nosuch.test NXDOMAIN, proven")
            rc, ad, n = query(env.port, "nullmx.test", "MX")
            check(rc == 0 and n == 1, "null MX")
            rc, ad, n = query(env.port, "bogus.test", "MX")
            check(rc == 2, "bogus.test SERVFAIL (rcode %d)" % rc)
            rc, ad, n = query(env.port, "1.0.0.127.in-addr.arpa", "PTR")
            check(rc == 0 and n == 1, "PTR")
            rc, ad, n = query(env.port, "example.com", "A")
            check(rc == 3, "names outside the fake root do not exist (rcode %d)" % rc)
        finally:
            env.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def _run(argv):
    with tempfile.TemporaryDirectory(prefix="stork-dns-") as tmp:
        env = DnsEnv(tmp).add_default_zones()
        env.start()
        try:
            envvars = dict(os.environ, STORK_DNS_SERVERS=env.servers,
                           STORK_DNS_ANCHOR=env.anchor_file,
                           STORK_DNS_DIR=env.dir)
            return subprocess.run(argv, env=envvars, timeout=300).returncode
        finally:
            env.stop()


def main(argv):
    missing = tools_missing()
    if missing:
        print("dns_env: skipped, missing " + " ".join(missing))
        print("0 passed, 0 failed, 1 skipped")
        return SKIP
    if len(argv) >= 2 and argv[1] == "--selftest":
        return _selftest()
    if len(argv) >= 3 and argv[1] == "--run":
        return _run(argv[2:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
