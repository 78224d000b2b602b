"""procstat - /proc readings for the benchmark: the processes of a server
(a master and everything below it), their CPU time and memory, and a
bounded stop of a tree we started.

CPU of an instance = for the master and every live descendant,
utime + stime + cutime + cstime. A process that exits between two samples
moves its whole time into its parent's cutime/cstime, so the difference of
two samples is exactly the CPU the tree used in between, including
processes that came and went.
"""

import os
import signal
import socket
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        s = f.read().decode("latin-1")
    return s[s.rindex(")") + 2:].split()


def proc_children():
    """{ppid: [pid, ...]} of every process."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(root):
    """Pids of every live process below root."""
    kids = proc_children()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for k in kids.get(p, ()):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def tree_cpu(root):
    """CPU seconds (user+system, including reaped children) of root's tree."""
    total = 0
    for pid in [root] + descendants(root):
        try:
            f = _stat_fields(pid)
            # fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


def disk_ops(path):
    """Requests the block device holding path has completed so far:
    {"writes", "flushes", "discards"} from /sys/dev/block/M:m/stat
    (the whole machine's traffic to that device, not one server's)."""
    st = os.stat(path)
    try:
        with open("/sys/dev/block/%d:%d/stat" % (os.major(st.st_dev), os.minor(st.st_dev))) as f:
            v = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return None
    # reads, merges, sectors, ticks; writes (4) ...; discards (11) ...; flushes (15)
    return {"writes": v[4], "discards": v[11] if len(v) > 11 else 0,
            "flushes": v[15] if len(v) > 15 else 0}


def tree_pss(root):
    """Sum of Pss (bytes; shared pages divided among their users) of
    root's tree, from /proc/PID/smaps_rollup."""
    total = 0
    for pid in [root] + descendants(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            pass
    return total


def tree_rss(root):
    """Sum of VmRSS (bytes) and the number of processes in root's tree."""
    total, n = 0, 0
    for pid in [root] + descendants(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        n += 1
                        break
        except (OSError, ValueError):
            pass
    return total, n


def tree_by_name(root):
    """{program name: count} of root's tree (for reports)."""
    out = {}
    for pid in [root] + descendants(root):
        try:
            with open("/proc/%d/comm" % pid) as f:
                name = f.read().strip()
            out[name] = out.get(name, 0) + 1
        except OSError:
            pass
    return out


def stop_tree(master_pid, timeout=30):
    """SIGTERM a master we started, wait (bounded) for it and its tree to
    go; SIGKILL what is left of that tree (by pid)."""
    pids = descendants(master_pid)
    try:
        os.kill(master_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(master_pid) and not [p for p in pids if alive(p)]:
            return True
        try:  # reap it if it is our child
            os.waitpid(master_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    for p in [master_pid] + pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return False


def smtp_ready(host, port, timeout=5):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            ok = s.recv(512).startswith(b"220")
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            return ok
    except OSError:
        return False


def count_files(base, subdirs):
    """Number of files under base/<subdir> for each subdir (recursive)."""
    n = 0
    for sd in subdirs:
        for _, _, files in os.walk(os.path.join(base, sd)):
            n += len(files)
    return n


def count_new(maildirs):
    """Files in the new/ directories of the given Maildirs."""
    n = 0
    for md in maildirs:
        try:
            n += sum(1 for e in os.scandir(os.path.join(md, "new")) if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


def last_mtime(maildirs):
    """The newest mtime (wall clock) among the files in new/."""
    t = 0.0
    for md in maildirs:
        try:
            for e in os.scandir(os.path.join(md, "new")):
                try:
                    t = max(t, e.stat().st_mtime)
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            pass
    return t


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
