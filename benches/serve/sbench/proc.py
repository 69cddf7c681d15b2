"""Process helpers: timed commands with a timeout, process-group cleanup, /proc readings."""

import os
import signal
import subprocess
import time


class Timeout(Exception):
    """A workload command ran past its time limit."""


class Failed(Exception):
    """A workload command exited non-zero (message has the tail of its stderr)."""


def kill_group(p):
    """Kills the process group of Popen `p` (started with start_new_session=True)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_timed(cmd, timeout, env=None, shell=False, stdout=subprocess.DEVNULL):
    """Runs one command; returns (seconds, stdout text or None). Raises Timeout or Failed."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, env=env, stdout=stdout, stderr=subprocess.PIPE,
                         start_new_session=True, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        raise Timeout(f"timed out after {timeout}s: {cmd if shell else ' '.join(cmd)}")
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise Failed(f"exit {p.returncode}: {(err or '').strip()[-300:]}")
    return dt, out


def run_parallel(cmds, timeout, env=None):
    """Starts all commands at once and waits for all; returns wall seconds for the slowest."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True, text=True) for c in cmds]
    deadline = t0 + timeout
    errors = []
    try:
        for p in procs:
            left = deadline - time.perf_counter()
            try:
                _, err = p.communicate(timeout=max(left, 0.01))
            except subprocess.TimeoutExpired:
                raise Timeout(f"timed out after {timeout}s ({len(cmds)} processes)")
            if p.returncode != 0:
                errors.append(f"exit {p.returncode}: {(err or '').strip()[-300:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                kill_group(p)
    dt = time.perf_counter() - t0
    if errors:
        raise Failed(f"{len(errors)}/{len(cmds)} failed; first: {errors[0]}")
    return dt


def drop_caches():
    """Writes back and drops the page, dentry and inode caches (root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def descendants(pid):
    """pid and all its descendant pids (from /proc/*/stat parent links)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def peak_rss_kib(pid):
    """Sum of VmHWM (peak resident set, KiB) over a process and its descendants."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_busy_seconds():
    """Machine-wide busy CPU seconds so far (all cores; from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    """CPU seconds used by this harness's waited-for children (workloads and servers)."""
    t = os.times()
    return t.children_user + t.children_system + t.user + t.system
