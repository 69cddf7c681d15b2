"""The filesystems under test: how to mount and unmount each, and how to find its server."""

import os
import re
import shutil
import subprocess
import time

from . import proc

MOUNT_TIMEOUT = 30.0


class Unavailable(Exception):
    """The contender cannot run on this machine (message says why)."""


def is_mountpoint(path):
    """True if `path` is listed as a mount point in /proc/self/mountinfo."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == real:
                return True
    return False


def force_unmount(mnt):
    """Best-effort cleanup of a leftover mount at `mnt` (lazy unmount)."""
    while is_mountpoint(mnt):
        r = subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)
            if is_mountpoint(mnt):
                raise RuntimeError(f"cannot unmount leftover mount at {mnt}")


def log_tail(path, n=400):
    """The last `n` characters of a server's log file ('' if none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - n, 0))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


class Mounted:
    """A live mount: the server process (None for the kernel) and how long mounting took."""

    def __init__(self, contender, mnt, server, seconds, log=None):
        self.contender = contender
        self.mnt = mnt
        self.server = server
        self.mount_seconds = seconds
        self.log = log

    def peak_rss_mib(self):
        """Peak RSS of the server process tree so far, MiB (None for the kernel)."""
        if self.server is None or self.server.poll() is not None:
            return None
        return proc.peak_rss_kib(self.server.pid) / 1024

    def alive(self):
        """False if the server process has exited (crashed) while mounted."""
        return self.server is None or self.server.poll() is None

    def unmount(self):
        """Unmounts and waits for the server to exit (kills it after 15 s)."""
        self.contender.unmount_cmd(self.mnt)
        if is_mountpoint(self.mnt):
            force_unmount(self.mnt)
        if self.server is not None:
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill_group(self.server)


def _wait_ready(mnt, probe, server, t0, log=None):
    """Polls until `mnt` is a mount point whose `probe` path stats; returns elapsed seconds."""
    parent_dev = os.stat(os.path.dirname(os.path.realpath(mnt))).st_dev
    while True:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"server exited {server.returncode} before the mount was "
                               f"ready: {log_tail(log)}")
        try:
            if os.stat(mnt).st_dev != parent_dev:
                os.stat(os.path.join(mnt, probe))
                return time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > MOUNT_TIMEOUT:
            raise RuntimeError(f"mount not ready after {MOUNT_TIMEOUT}s")
        time.sleep(0.0005)


class Contender:
    """Base: `argv(img, mnt)` starts a foreground FUSE server."""

    name = "?"
    label = "?"

    def check(self):
        """Raises Unavailable if this contender cannot run here."""

    def argv(self, img, mnt):
        raise NotImplementedError

    def mount(self, img, mnt, probe):
        """Mounts `img` on `mnt`; returns a Mounted once `probe` (a path inside) stats.
        The server's output goes to WORK/logs/NAME.log (a file, never an undrained pipe that
        would stall a chatty server), overwritten by each mount."""
        force_unmount(mnt)
        logdir = os.path.join(os.path.dirname(os.path.realpath(mnt)), "logs")
        os.makedirs(logdir, exist_ok=True)
        log = os.path.join(logdir, f"{self.name}.log")
        with open(log, "wb") as out:
            t0 = time.perf_counter()
            server = subprocess.Popen(self.argv(img, mnt), stdout=out, stderr=out,
                                      start_new_session=True)
        try:
            secs = _wait_ready(mnt, probe, server, t0, log)
        except Exception:
            proc.kill_group(server)
            force_unmount(mnt)
            raise
        return Mounted(self, mnt, server, secs, log)

    def unmount_cmd(self, mnt):
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)


class Kernel(Contender):
    """The in-kernel SquashFS driver on a loop device (root only)."""

    name = "kernel"
    label = "kernel"

    def check(self):
        if os.geteuid() != 0:
            raise Unavailable("needs root for a loop mount")
        with open("/proc/filesystems") as f:
            if "squashfs" not in f.read():
                subprocess.run(["modprobe", "squashfs"], stderr=subprocess.DEVNULL)

    def mount(self, img, mnt, probe):
        force_unmount(mnt)
        t0 = time.perf_counter()
        subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", img, mnt], check=True)
        return Mounted(self, mnt, None, _wait_ready(mnt, probe, None, t0))

    def unmount_cmd(self, mnt):
        subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)


class Squashfuse(Contender):
    """A squashfuse/squashfuse_ll binary run in the foreground."""

    def __init__(self, name, label, binary, extra=()):
        self.name, self.label, self.binary, self.extra = name, label, binary, list(extra)

    def check(self):
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise Unavailable(f"{self.binary or 'binary'} not found")

    def argv(self, img, mnt):
        return [self.binary, "-f"] + self.extra + [img, mnt]


class Squashbox(Contender):
    """Our server: `squashbox mount -f [-o OPTS] IMAGE MNT` (a private copy of the binary, so a
    rebuild during the run does not swap it), or the drop-in when `as_ll` is set."""

    def __init__(self, binary, work, opts="", as_ll=False, variant=None):
        self.src, self.work, self.opts, self.as_ll = binary, work, opts, as_ll
        self.name = "squashbox_ll" if as_ll else "squashbox"
        self.label = "squashbox (as squashfuse_ll)" if as_ll else "squashbox"
        if variant:
            self.name = self.label = f"squashbox-{variant}"
        if opts:
            self.label += f" -o {opts}"
        self.binary = None
        self.bindir = os.path.join(work, "bin", variant or "")

    def check(self):
        if not os.access(self.src, os.X_OK):
            raise Unavailable(f"{self.src} not built")
        d = self.bindir
        os.makedirs(d, exist_ok=True)
        copy = os.path.join(d, "squashbox")
        if not os.path.exists(copy) or os.path.getmtime(copy) != os.path.getmtime(self.src):
            shutil.copy2(self.src, copy + ".tmp")
            os.replace(copy + ".tmp", copy)
        self.binary = copy
        if self.as_ll:
            ll = os.path.join(d, "squashfuse_ll")
            if not os.path.islink(ll):
                os.symlink("squashbox", ll)
            self.binary = ll
        r = subprocess.run([copy, "mount", "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"`squashbox mount --help` failed: "
                              f"{(r.stderr or r.stdout).strip()[-200:]}")

    def cache_mib(self):
        """The block cache size this run uses: cache= from the options, else the default
        that `squashbox mount --help` states (64 if it states none)."""
        m = re.search(r"(?:^|,)cache=(\d+)", self.opts)
        if m:
            return int(m.group(1))
        h = subprocess.run([self.binary, "mount", "--help"], capture_output=True, text=True)
        m = re.search(r"cache[^\n]*?\(default (\d+)", h.stdout, re.I)
        return int(m.group(1)) if m else 64

    def argv(self, img, mnt):
        o = ["-o", self.opts] if self.opts else []
        if self.as_ll:
            return [self.binary, "-f"] + o + [img, mnt]
        return [self.binary, "mount", "-f"] + o + [img, mnt]

    def unmount_cmd(self, mnt):
        if self.as_ll:
            return super().unmount_cmd(mnt)
        r = subprocess.run([os.path.join(self.bindir, "squashbox"), "unmount", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.unmount_errors = getattr(self, "unmount_errors", 0) + 1
            super().unmount_cmd(mnt)


def all_contenders(args):
    """Every known contender, in table order."""
    peers = os.path.join(args.peers, "bin", "squashfuse_ll")
    return [
        Kernel(),
        Squashfuse("squashfuse", "squashfuse 0.1.105", shutil.which("squashfuse")),
        Squashfuse("squashfuse_ll", "squashfuse_ll 0.1.105", shutil.which("squashfuse_ll")),
        Squashfuse("squashfuse_ll-0.5.2", "squashfuse_ll 0.5.2 (MT)", peers),
        Squashbox(args.squashbox, args.work, args.squashbox_opts),
        Squashbox(args.squashbox, args.work, args.squashbox_opts, as_ll=True),
    ] + [Squashbox(path, args.work, opts, variant=name) for name, path, opts in args.variants]
