"""Optional perf profile of a contender's server (or the whole machine, for the kernel)
while a workload runs: `perf record -g`, then a `perf report --stdio` text summary."""

import os
import re
import signal
import subprocess
import time


class Profiler:
    """Records one session; `stop()` writes WORK/perf/<contender>-<n>.txt (call graphs) and
    .flat.txt (flat profile by dso and symbol), and returns the flat one's path."""

    def __init__(self, work, mounted, tag):
        self.dir = os.path.join(work, "perf")
        os.makedirs(self.dir, exist_ok=True)
        tag = re.sub(r"[^A-Za-z0-9=.-]+", "_", tag).strip("_")
        self.base = os.path.join(self.dir, f"{mounted.contender.name}-{tag}")
        target = ["-a"] if mounted.server is None else ["-p", str(mounted.server.pid)]
        self.p = subprocess.Popen(["perf", "record", "-g", "-F", "499", "-o",
                                   self.base + ".data"] + target,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let perf attach before the workload starts

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=60)
        with open(self.base + ".txt", "w") as out:
            subprocess.run(["perf", "report", "-i", self.base + ".data", "--stdio",
                            "--no-children", "--percent-limit", "0.5", "--sort",
                            "comm,dso,symbol", "-g", "caller,0.5,callee,function,percent"],
                           stdout=out, stderr=subprocess.DEVNULL, timeout=300)
        with open(self.base + ".flat.txt", "w") as out:
            for sort in ("dso", "dso,symbol"):
                out.flush()
                subprocess.run(["perf", "report", "-i", self.base + ".data", "--stdio",
                                "--no-children", "-g", "none", "--percent-limit", "0.3",
                                "--sort", sort], stdout=out, stderr=subprocess.DEVNULL,
                               timeout=300)
        return self.base + ".flat.txt"


class RequestCounter:
    """Counts the FUSE requests the kernel sends to one mount while a workload runs (the
    fuse:fuse_request_send tracepoint, filtered on the mount's connection number)."""

    def __init__(self, work, mounted):
        os.makedirs(os.path.join(work, "perf"), exist_ok=True)
        self.data = os.path.join(work, "perf", f"requests-{mounted.contender.name}.data")
        conn = os.minor(os.stat(mounted.mnt).st_dev)
        self.p = subprocess.Popen(["perf", "record", "-e", "fuse:fuse_request_send", "--filter",
                                   f"connection == {conn}", "-a", "-o", self.data],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let perf attach before the workload starts

    def stop(self):
        """Returns {opcode name: count}."""
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=60)
        out = subprocess.run(["perf", "script", "-i", self.data, "-F", "trace"],
                             capture_output=True, text=True, timeout=300).stdout
        counts = {}
        for m in re.finditer(r"\(FUSE_([A-Z_]+)\)", out):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        os.unlink(self.data)
        return counts
