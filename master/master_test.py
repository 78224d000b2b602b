#!/usr/bin/env python3
"""master_test - stork-master against a real temp instance on loopback.

usage: master_test.py STORK_MASTER TEST_DAEMON

Starts stork-master -d with a temp config on a free loopback port and
checks: greeting; a SIGKILLed child is logged and respawned (with
throttling); SIGHUP adds a second port while an open connection stays
usable; a second master on the same queue fails; -t reports bad config
with file:line; SIGTERM stops everything and removes the pid file.
Every wait is bounded; the whole test takes well under 30 seconds.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MASTER, DAEMON = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(fn, timeout=8.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return None


def log_text(tmp):
    try:
        with open(os.path.join(tmp, "maillog"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def connect(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = c.makefile("rb")
    return c, f


def greet(port):
    c, f = connect(port)
    line = f.readline().decode()
    m = re.match(r"hello (\d+) (\S+)", line)
    return c, f, (int(m.group(1)) if m else None), line


def echo(c, f, text):
    c.sendall(text.encode() + b"\n")
    return f.readline().decode().strip()


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def gone(pid):
    """pid has exited: reaped, or a zombie (it may be reaped while we look)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def main():
    tmp = tempfile.mkdtemp(prefix="stork-master-test.")
    os.chmod(tmp, 0o755)
    conf = os.path.join(tmp, "conf")
    os.mkdir(conf)
    port1, port2 = free_port(), free_port()
    daemon_dir = os.path.dirname(DAEMON)
    cmd = os.path.basename(DAEMON)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(f"""# test instance
queue_directory = {tmp}/queue
daemon_directory = {daemon_dir}
maillog_file = {tmp}/maillog
service_throttle_time = 1s
inet_interfaces = loopback-only
""")
    mcf = os.path.join(conf, "master.cf")
    base = (f"127.0.0.1:{port1} inet n - n - 3 {cmd}\n"
            f"  -o syslog_name=stork-test\n"
            f"wake unix n - n 60 1 {cmd}\n")
    with open(mcf, "w") as f:
        f.write(base)

    master = subprocess.Popen([MASTER, "-c", conf, "-d"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        run(tmp, conf, mcf, base, cmd, port1, port2, master)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
        if failures:
            print("---- maillog ----")
            print(log_text(tmp))
            print("---- master output ----")
            print(master.stdout.read().decode(errors="replace"))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


def run(tmp, conf, mcf, base, cmd, port1, port2, master):
    pidfile = os.path.join(tmp, "queue", "pid", "master.pid")
    check(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip()) is not None,
          "pid file written")
    check(int(open(pidfile).read()) == master.pid, "pid file holds the master's pid")
    for d, mode in (("private", 0o700), ("public", 0o711), ("maildrop", 0o1730),
                    ("incoming", 0o700)):
        st = os.stat(os.path.join(tmp, "queue", d))
        check(st.st_mode & 0o7777 == mode, f"queue/{d} mode {oct(mode)}")
    check(os.path.exists(os.path.join(tmp, "queue", "public", "wake")), "unix socket created")
    check(wait_for(lambda: "service=wake" in log_text(tmp)) is not None,
          "wakeup service started at boot")
    c1, f1, pid1, line = greet(port1)
    check(pid1 is not None, f"greeting on port 1: {line.strip()}")
    check(echo(c1, f1, "ping") == "echo ping", "connection usable")
    check("syslog_name=stork-test" in log_text(tmp), "-o override reached the daemon")

    # A second client while the first is busy: a second process.
    c2, f2, pid2, _ = greet(port1)
    check(pid2 is not None and pid2 != pid1, "second concurrent client gets a second process")
    c2.close()

    # SIGKILL from outside: logged with the reason and respawned at once;
    # not a bad start-up, so no throttling (a crash signal would be).
    os.kill(pid1, signal.SIGKILL)
    f1.close()
    c1.close()
    check(wait_for(lambda: f"pid {pid1} killed by signal 9" in log_text(tmp)) is not None,
          "death logged: killed by signal 9")
    c3, f3, pid3, _ = greet(port1)
    check("bad command startup -- throttling" not in log_text(tmp),
          "a process killed from outside is not throttled")
    check(pid3 is not None and pid3 not in (pid1,), f"respawned: new pid {pid3}")
    check(echo(c3, f3, "still") == "echo still", "respawned child serves")

    # Second master on the same queue fails clearly.
    second = subprocess.run([MASTER, "-c", conf, "-d"], capture_output=True, timeout=10)
    out = (second.stdout + second.stderr).decode(errors="replace")
    check(second.returncode != 0 and "already running" in out,
          "second master refused: " + out.strip().splitlines()[-1] if out.strip() else "")

    # Bad configuration: -t names file:line:key; a reload keeps the old one.
    bad = os.path.join(tmp, "badconf")
    os.mkdir(bad)
    with open(os.path.join(bad, "main.cf"), "w") as f:
        f.write("myhostname = x.example\nmessage_size_limit = huge\nno_such_thing = 1\n")
    shutil.copy(mcf, os.path.join(bad, "master.cf"))
    t = subprocess.run([MASTER, "-c", bad, "-t"], capture_output=True, timeout=10)
    err = t.stderr.decode()
    check(t.returncode == 1 and "main.cf:2: message_size_limit: bad size value" in err
          and "main.cf:3: unknown parameter name: no_such_thing" in err,
          "-t reports file:line:key errors")
    with open(mcf, "a") as f:
        f.write("broken line\n")
    os.kill(master.pid, signal.SIGHUP)
    check(wait_for(lambda: "still running the old configuration" in log_text(tmp)) is not None,
          "bad reload refused, old configuration kept")
    check(echo(c3, f3, "after-bad-reload") == "echo after-bad-reload",
          "connection fine after refused reload")

    # Good reload: second port added; the open connection stays usable.
    with open(mcf, "w") as f:
        f.write(base + f"127.0.0.1:{port2} inet n - n - - {cmd}\n")
    os.kill(master.pid, signal.SIGHUP)
    check(wait_for(lambda: "reload -- version" in log_text(tmp)) is not None, "reload logged")
    c4, f4, pid4, line4 = greet(port2)
    check(pid4 is not None and f"127.0.0.1:{port2}" in line4, "new port serves after reload")
    check(echo(c3, f3, "during-reload") == "echo during-reload",
          "connection accepted before reload still usable")
    c5, f5, pid5, _ = greet(port1)
    check(pid5 is not None and pid5 != pid3, "old port served by a new-generation process")
    check(alive(pid3), "old child kept alive while its client is connected")
    f3.close()
    c3.close()
    check(wait_for(lambda: gone(pid3),
                   5) is not None, "old child exits after its client leaves")
    for c in (c4, c5):
        c.close()

    # A command that fails at start is logged and throttled, not spun.
    with open(mcf, "a") as f:
        f.write(f"bad unix n - n 60 1 {cmd} fail\n")
    os.kill(master.pid, signal.SIGHUP)
    check(wait_for(lambda: "exit status 1" in log_text(tmp)) is not None,
          "failing daemon: exit status logged")
    time.sleep(1.5)
    starts = log_text(tmp).count("service=bad ")
    check(1 <= starts <= 3, f"failing daemon restarted slowly ({starts} starts in ~1.5 s)")

    # SIGTERM: children stop, master exits, pid file removed.
    children = [int(p) for p in re.findall(r"\[(\d+)\]: test daemon started", log_text(tmp))]
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pass
    check(master.poll() == 0, "master exited on SIGTERM")
    check(not os.path.exists(pidfile), "pid file removed")
    time.sleep(0.3)
    check(not any(alive(p) for p in children), "no child left running")


if __name__ == "__main__":
    main()
