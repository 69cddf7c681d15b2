#!/usr/bin/env python3
"""The plain-user half of the start-up benchmark (benches/startup/README.md).

startup_bench.py (root) runs this as the benchmark user inside a private mount namespace
whose /dev/fuse is a 0666 node. It prints one JSON object on stdout.

  driver.py startup --config FILE   every contender `--runs` times, interleaved
  driver.py storm --config FILE --mode bare|container --procs N
                                    one import storm (cold, then warm) on a fresh mount

Python 3 standard library only."""

import json
import os
import shutil
import signal
import subprocess
import threading
import sys
import tempfile
import time

# The default binds every contender gets (ours makes them itself), besides the image's tree.
HOST_BINDS_RW = ["/tmp", "/var/tmp"]
HOST_FILES_RO = ["/etc/hosts", "/etc/localtime", "/etc/resolv.conf"]
# Top-level names the assembled root takes from the host, not from the image.
NOT_FROM_IMAGE = {"proc", "sys", "dev", "tmp", "home"}
# What the peers run inside: the image's environment scripts, then the command, as ours does.
ENV_THEN_EXEC = 'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; exec "$@"'

# The storm's launcher, run by the image's own interpreter: N importers at once, twice (the
# first on a fresh mount after the caller dropped the caches, the second warm). Prints JSON.
LAUNCHER = r"""
import json, subprocess, sys, time
n, stmt = int(sys.argv[1]), sys.argv[2]
out = {}
for phase in ("cold", "warm"):
    t = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-c", stmt]) for _ in range(n)]
    rcs = [p.wait() for p in ps]
    out[phase] = time.perf_counter() - t
    if any(rcs):
        out["error"] = f"{phase}: importer exit codes {rcs}"
        break
print(json.dumps(out))
"""


class StepFailed(Exception):
    """A step of one start: its command and what it said."""


def run(cmd, timeout=20, env=None):
    """Runs `cmd` in its own process group, output discarded (stderr kept in a file, so a
    daemon that inherits it cannot hold a pipe open); raises StepFailed on failure, killing
    the group on a timeout."""
    with tempfile.TemporaryFile() as err:
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, env=env, start_new_session=True)
        except OSError as e:
            raise StepFailed(f"{cmd[0]}: {e}") from None
        # A blocking wait: Popen.wait(timeout=...) polls with growing sleeps (0.5, 1, 2, 4,
        # 8, 16 ms...), which would round every start up to the next poll (31.5 ms after
        # 30 ms). The timeout is a timer that kills the group instead.
        fired = threading.Event()

        def kill():
            fired.set()
            os.killpg(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            rc = p.wait()
        finally:
            timer.cancel()
        if fired.is_set():
            raise StepFailed(f"{os.path.basename(cmd[0])}: no exit after {timeout} s "
                             "(killed)")
        if rc != 0:
            err.seek(0)
            text = err.read().decode(errors="replace").strip()[-400:]
            raise StepFailed(f"{' '.join(cmd[:4])}... exit {rc}: {text}")


class Timer:
    """Collects the duration of named steps of one start."""

    def __init__(self):
        self.steps = {}

    def step(self, name, cmd, **kw):
        t = time.perf_counter()
        try:
            run(cmd, **kw)
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - t


def unmount_quietly(path):
    subprocess.run(["fusermount3", "-u", "-z", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def bwrap_args(root_dir, writable, home):
    """bwrap's arguments for a tmpfs root holding the image's top-level entries (bound from
    `root_dir`, read-only unless `writable`) and the default host binds."""
    args = ["bwrap", "--unshare-user", "--die-with-parent"]
    bind = "--bind" if writable else "--ro-bind"
    with os.scandir(root_dir) as it:
        for e in sorted(it, key=lambda e: e.name):
            if e.name in NOT_FROM_IMAGE:
                continue
            if e.is_symlink():
                args += ["--symlink", os.readlink(e.path), "/" + e.name]
            else:
                args += [bind, e.path, "/" + e.name]
    args += ["--bind", "/proc", "/proc", "--bind", "/sys", "/sys", "--dev-bind", "/dev", "/dev"]
    for p in HOST_BINDS_RW:
        args += ["--bind", p, p]
    args += ["--bind", home, home]
    for p in HOST_FILES_RO:
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    args += ["--chdir", home]
    return args


class Contenders:
    """The ways to start `/bin/true` in the image, each a function returning its steps."""

    def __init__(self, cfg, scratch):
        self.cfg = cfg
        self.sb = cfg["squashbox"]
        self.img = cfg["image"]
        self.home = os.environ.get("HOME", "/")
        self.lower = os.path.join(scratch, "lower")
        self.merged = os.path.join(scratch, "merged")
        for d in (self.lower, self.merged):
            os.makedirs(d, exist_ok=True)
        # fuse-overlayfs's upper and work dirs on a tmpfs (the host's /dev/shm).
        self.shm = tempfile.mkdtemp(prefix="sb-startup-", dir=cfg.get("tmpfs", "/dev/shm"))
        self.overlay = os.path.join(scratch, "overlay.img")
        self.fns = {
            "ours-ro": self.ours_ro,
            "ours-tmpfs": self.ours_tmpfs,
            "ours-ext3": self.ours_ext3,
            "peers-ro": self.peers_ro,
            "peers-overlay": self.peers_overlay,
        }

    def prepare(self, names):
        if "ours-ext3" in names:
            if os.path.exists(self.overlay):
                os.unlink(self.overlay)
            run([self.sb, "overlay", "create", "--size", "64", self.overlay])

    def cleanup(self):
        for d in (self.merged, self.lower):
            unmount_quietly(d)
        shutil.rmtree(self.shm, ignore_errors=True)

    def true_cmd(self, extra):
        return [self.sb, "exec", *extra, self.img, "/bin/true"]

    def ours_ro(self, t):
        t.step("exec", self.true_cmd([]))

    def ours_tmpfs(self, t):
        t.step("exec", self.true_cmd(["--writable-tmpfs"]))

    def ours_ext3(self, t):
        t.step("exec", self.true_cmd(["--overlay", self.overlay]))

    def mount_lower(self, t):
        off = self.cfg["offset"]
        opts = ["-o", f"offset={off}"] if off else []
        # Without -f it returns once the mount is in place (libfuse daemonizes after it).
        t.step("squashfuse_ll", [self.cfg["squashfuse_ll"], *opts, self.img, self.lower])

    def bwrap(self, t, root, writable):
        cmd = bwrap_args(root, writable, self.home) + ["/bin/sh", "-c", ENV_THEN_EXEC, "sh",
                                                       "/bin/true"]
        t.step("bwrap", cmd)

    def peers_ro(self, t):
        self.mount_lower(t)
        try:
            self.bwrap(t, self.lower, False)
        finally:
            t.step("fusermount3 -u", ["fusermount3", "-u", self.lower])

    def peers_overlay(self, t):
        upper, work = os.path.join(self.shm, "upper"), os.path.join(self.shm, "work")
        self.mount_lower(t)
        try:
            os.mkdir(upper)
            os.mkdir(work)
            opts = f"lowerdir={self.lower},upperdir={upper},workdir={work}"
            t.step("fuse-overlayfs", [self.cfg["fuse_overlayfs"], "-o", opts, self.merged])
            try:
                self.bwrap(t, self.merged, True)
            finally:
                t.step("fusermount3 -u", ["fusermount3", "-u", self.merged])
        finally:
            t.step("fusermount3 -u", ["fusermount3", "-u", self.lower])
            t0 = time.perf_counter()
            shutil.rmtree(upper, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            t.steps["rm upper"] = time.perf_counter() - t0


def reap():
    """Collects exited orphans (this driver is PID 1 of its PID namespace, so the daemonized
    FUSE servers become its children when their parent exits). Called between starts only,
    when no subprocess of ours is running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cmd_startup(cfg):
    names = cfg["contenders"]
    scratch = tempfile.mkdtemp(prefix="sb-startup-")
    c = Contenders(cfg, scratch)
    out = {n: {"total": [], "steps": {}, "errors": []} for n in names}
    try:
        c.prepare(names)
        for i in range(cfg["warmup"] + cfg["runs"]):
            k = i % len(names)
            for name in names[k:] + names[:k]:  # rotate the order every round
                reap()
                t = Timer()
                t0 = time.perf_counter()
                try:
                    c.fns[name](t)
                except StepFailed as e:
                    c.cleanup()
                    os.makedirs(c.shm, exist_ok=True)
                    out[name]["errors"].append(str(e))
                    continue
                total = time.perf_counter() - t0
                if i < cfg["warmup"]:
                    continue
                out[name]["total"].append(total)
                for s, v in t.steps.items():
                    out[name]["steps"].setdefault(s, []).append(v)
    finally:
        c.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def storm_env(cfg, root):
    """The importers' environment: the interpreter and its libraries under `root`."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LD_LIBRARY_PATH": os.path.join(root, "lib"),
        "PYTHONHOME": root,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": cfg["mplconfig"],
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "LC_ALL": "C.UTF-8",
    }


def launch(cmd, env, timeout):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    wall = time.perf_counter() - t
    text = r.stdout.decode(errors="replace").strip().splitlines()
    try:
        res = json.loads(text[-1])
    except (IndexError, ValueError):
        res = {}
    if r.returncode != 0 or "cold" not in res:
        err = r.stderr.decode(errors="replace").strip()[-600:]
        res["error"] = res.get("error") or f"exit {r.returncode}: {err}"
    res["wall"] = wall
    return res


def cmd_storm(cfg, mode, procs):
    py = f"bin/python{cfg['pyver']}"
    sb, img, timeout = cfg["squashbox"], cfg["storm_image"], cfg["timeout"]
    argv = ["-c", LAUNCHER, str(procs), cfg["import_stmt"]]
    if mode == "container":
        env = storm_env(cfg, "/")
        # PYTHONHOME and LD_LIBRARY_PATH as the container sees them (Apptainer does not pass
        # the host's LD_LIBRARY_PATH; --env sets it inside). The image holds the interpreter
        # but not the C library it was built against: the host's, as the bare mount uses it,
        # is bound in (Debian's merged /usr: /lib/TRIPLET is /usr/lib/TRIPLET).
        extra = ["--env", "PYTHONHOME=/", "--env", "LD_LIBRARY_PATH=/lib"]
        for d in cfg.get("host_lib_binds", []):
            extra += ["-B", d]
        return launch([sb, "exec", *extra, img, "/" + py, *argv], env, timeout)
    mnt = tempfile.mkdtemp(prefix="sb-storm-")
    try:
        t = time.perf_counter()
        run([sb, "mount", img, mnt])
        mount_s = time.perf_counter() - t
        try:
            res = launch([os.path.join(mnt, py), *argv], storm_env(cfg, mnt), timeout)
        finally:
            t = time.perf_counter()
            run([sb, "unmount", mnt])
            unmount_s = time.perf_counter() - t
        res["wall"] += mount_s + unmount_s
        return res
    finally:
        os.rmdir(mnt)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["startup", "storm"])
    ap.add_argument("--config", required=True, help="JSON written by startup_bench.py")
    ap.add_argument("--mode", choices=["bare", "container"])
    ap.add_argument("--procs", type=int, default=1)
    a = ap.parse_args(argv)
    with open(a.config) as f:
        cfg = json.load(f)
    if a.what == "startup":
        out = cmd_startup(cfg)
    else:
        try:
            out = cmd_storm(cfg, a.mode, a.procs)
        except (StepFailed, subprocess.TimeoutExpired, OSError) as e:
            out = {"error": str(e)}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
