"""Side-by-side overlay benchmark: the kernel overlay, fuse-overlayfs 1.10 and 1.14, our
fuse-overlayfs personality, and our in-process stack, on one image, in one run.

See benches/overlay/README.md. Python 3 standard library only; reuses benches/serve's image
builder and process helpers. Run as root (kernel mounts, drop_caches)."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from sbench import image, proc  # noqa: E402

import fo_upper_check  # noqa: E402

PEERS = os.path.join(os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share")),
                     "squashbox-peers", "bin")
CONTENDERS = ["kernel", "fo-1.10", "fo-1.14", "ours-fo", "ours-stack"]
WORKLOADS = ["stat", "copyup", "untar", "rm", "import"]
ROWS = {
    "stat": "stat walk of the merged tree",
    "copyup": "copy-up of every .py (touch)",
    "untar": "untar sympy into the overlay",
    "rm": "rm -rf of lower content (sympy)",
    "import": "import storm, 4 processes, empty upper",
}
SITE = "lib/python{}/site-packages"


def log(msg):
    print(f"[overlay-bench] {msg}", file=sys.stderr, flush=True)


def mounted(path):
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == want for line in f)


def wait_mounted(path, child=None, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if mounted(path):
            return
        if child is not None and child.poll() is not None:
            raise proc.Failed(f"server exited {child.returncode}: {child.stderr.read()[-300:]}")
        time.sleep(0.02)
    raise proc.Timeout(f"{path} not mounted after {timeout}s")


def umount(path):
    for _ in range(50):
        if not mounted(path):
            return
        if subprocess.run(["umount", path], stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)


class Setup:
    """One contender's mounts for one workload: a merged view at `mnt` over the image, with a
    fresh upper; `servers` are its foreground FUSE servers, `mounts` what to unmount (top
    first)."""

    def __init__(self, args, name):
        self.args, self.name = args, name
        # A fresh tmpfs per setup holds the upper and work directories (and the mount
        # points): no disk writeback, and no ext4 inode-allocator state left by the previous
        # contender's deletions (which made creates up to 3x slower for whoever came later).
        self.root = os.path.join(args.work, "ovl")
        umount(self.root)
        os.makedirs(self.root, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g,mode=0755", "ovl-bench",
                        self.root], check=True)
        for d in ["lower", "upper", "work", "mnt"]:
            os.makedirs(os.path.join(self.root, d))
        self.mnt = os.path.join(self.root, "mnt")
        self.servers, self.mounts = [], [self.root]
        self.server_of = {}

    def p(self, d):
        return os.path.join(self.root, d)

    def serve(self, argv, target):
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
        self.servers.append(child)
        self.server_of[target] = child
        self.mounts.insert(0, target)
        wait_mounted(target, child)

    def unserve(self, target):
        """Unmount `target` (mounted by `serve`) and wait for its server to end."""
        umount(target)
        self.mounts.remove(target)
        child = self.server_of.pop(target)
        self.servers.remove(child)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill_group(child)

    def kmount(self, argv, target):
        subprocess.run(argv + [target], check=True)
        self.mounts.insert(0, target)

    def start(self):
        a, img = self.args, self.args.image
        lower, up, wk = self.p("lower"), self.p("upper"), self.p("work")
        ovl_o = f"lowerdir={lower},upperdir={up},workdir={wk}"
        sq_ll = os.path.join(a.work, "bin", "squashfuse_ll")
        fo_ours = os.path.join(a.work, "bin", "fuse-overlayfs")
        if self.name == "kernel":
            self.kmount(["mount", "-t", "squashfs", "-o", "loop,ro", img], lower)
            self.kmount(["mount", "-t", "overlay", "overlay", "-o", ovl_o], self.mnt)
        elif self.name in ("fo-1.10", "fo-1.14", "ours-fo"):
            # Every fuse-overlayfs runs over the same lower: our squashfuse_ll personality.
            self.serve([sq_ll, "-f", img, lower], lower)
            fo = {"fo-1.10": os.path.join(PEERS, "fuse-overlayfs-1.10"),
                  "fo-1.14": os.path.join(PEERS, "fuse-overlayfs-1.14"),
                  "ours-fo": fo_ours}[self.name]
            self.serve([fo, "-f", "-o", ovl_o, self.mnt], self.mnt)
        elif self.name == "ours-stack":
            self.serve([a.bin, "overlay", "mount", "-f", "--lower", img, "--upper", up,
                        "--work", wk, self.mnt], self.mnt)
        elif self.name == "image-alone":
            self.serve([a.bin, "mount", "-f", img, self.mnt], self.mnt)
        else:
            raise ValueError(self.name)

    def stop(self):
        for m in self.mounts[:-1]:
            umount(m)
        for s in self.servers:
            try:
                s.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill_group(s)
        umount(self.root)


def sh(args, script):
    secs, _ = proc.run_timed(["bash", "-o", "pipefail", "-c", script], args.timeout)
    return secs


def workload(args, meta, name, mnt):
    site = os.path.join(mnt, SITE.format(meta["pyver"]))
    if name == "stat":
        return sh(args, f"find {mnt} -printf '%s %m %U %T@\\n' > /dev/null")
    if name == "copyup":
        return sh(args, f"find {mnt} -name '*.py' -print0 | xargs -0 -n 256 touch")
    if name == "untar":
        dest = os.path.join(mnt, "untarred")
        return sh(args, f"mkdir {dest} && tar -xf {args.tarball} -C {dest}")
    if name == "rm":
        return sh(args, f"rm -rf {site}/sympy")
    if name == "import":
        env = image.python_env(mnt, os.path.join(args.work, "mplconfig"))
        cmds = [[image.interpreter(mnt, meta["pyver"]), "-c", image.IMPORT_STMT]] * args.procs
        return proc.run_parallel(cmds, args.timeout, env=env)
    raise ValueError(name)


def stack_image(args):
    """The serve benchmark's image: reused as it is when present (whatever CPython built it),
    else built as benches/serve builds it."""
    img = os.path.join(args.work, "python-stack.sqfs")
    meta_path = os.path.join(args.work, "python-stack.json")
    if args.python is None and os.path.exists(img) and os.path.exists(meta_path):
        with open(meta_path) as f:
            return img, json.load(f)
    src = args.python or image.default_python()
    real, why = image.real_cpython(src)
    if real is None:
        sys.exit(f"no usable CPython: {why}")
    return image.ensure_image(args.work, real)


def prepare(args, meta):
    os.makedirs(os.path.join(args.work, "bin"), exist_ok=True)
    own = os.path.join(args.work, "bin", "squashbox-overlay-bench")
    shutil.copy2(args.bin, own)
    args.bin = own
    for name in ["squashfuse_ll", "fuse-overlayfs"]:
        link = os.path.join(args.work, "bin", name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(own, link)
    args.tarball = os.path.join(args.work, "sympy.tar")
    if not os.path.exists(args.tarball):
        stage_site = os.path.join(args.work, "stage", SITE.format(meta["pyver"]))
        subprocess.run(["tar", "-cf", args.tarball, "-C", stage_site, "sympy"], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", default="/var/tmp/squashbox-bench")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "target", "release", "squashbox"))
    ap.add_argument("--python", default=None, help="as benches/serve (builds the image)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4, help="import storm processes")
    ap.add_argument("--contenders", default=",".join(CONTENDERS + ["image-alone"]))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--no-fo-check", action="store_true",
                    help="skip the check that ours reads an upper fuse-overlayfs 1.14 wrote")
    args = ap.parse_args()
    args.image, meta = stack_image(args)
    prepare(args, meta)
    contenders = args.contenders.split(",")
    results = {}  # (workload, contender) -> [seconds]
    for rep in range(args.reps):
        for w in args.workloads.split(","):
            order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
            for c in order:
                if c == "image-alone" and w != "import":
                    continue
                s = Setup(args, c)
                try:
                    s.start()
                    if w == "import":  # one untimed warm-up, as benches/serve does
                        workload(args, meta, w, s.mnt)
                    proc.drop_caches()
                    secs = workload(args, meta, w, s.mnt)
                    results.setdefault((w, c), []).append(secs)
                    log(f"rep {rep + 1} {w} {c}: {secs:.2f} s")
                except (proc.Failed, proc.Timeout, subprocess.CalledProcessError) as e:
                    log(f"rep {rep + 1} {w} {c}: FAILED {e}")
                finally:
                    s.stop()
    check = None
    fo14 = os.path.join(PEERS, "fuse-overlayfs-1.14")
    if not args.no_fo_check:
        if os.path.exists(fo14):
            try:
                ok, msg = fo_upper_check.check(Setup, args, meta, fo14)
            except Exception as e:  # the table must still be printed
                ok, msg = False, f"the check itself failed: {e!r}"
            check = f"{'PASS' if ok else 'FAIL'}: {msg}"
        else:
            check = f"not run: {fo14} missing (benches/install-peers.sh installs it)"
        log(f"fuse-overlayfs 1.14 upper read back by ours: {check}")
    report(args, meta, contenders, results, check)


def report(args, meta, contenders, results, check=None):
    shown = [c for c in contenders if any(k[1] == c for k in results)]
    lines = [f"{meta['files']} files, {meta['dirs']} dirs; {args.reps} reps; medians in s, "
             "ratio to the kernel overlay in ()", "",
             "| workload | " + " | ".join(shown) + " |",
             "|---" * (len(shown) + 1) + "|"]
    for w in args.workloads.split(","):
        base = results.get((w, "kernel"))
        kmed = statistics.median(base) if base else None
        cells = []
        for c in shown:
            v = results.get((w, c))
            if not v:
                cells.append("-")
                continue
            m = statistics.median(v)
            cells.append(f"{m:.2f} ({m / kmed:.2f}x)" if kmed else f"{m:.2f}")
        lines.append(f"| {ROWS[w]} | " + " | ".join(cells) + " |")
    if check:
        lines += ["", f"Upper written by fuse-overlayfs 1.14, read back by ours-stack: {check}"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
