"""Side-by-side ext3 benchmark: kernel ext3 on a loop device, fuse2fs 1.47.0 (bookworm),
fuse2fs 1.47.2 (benches/install-peers.sh) and ours (`squashbox ext3 mount`), one fresh image
per contender, in one run. See benches/ext3/README.md. Python 3 standard library only; run as
root (loop mounts, drop_caches)."""

import argparse
import os
import subprocess
import sys
import time

PEERS = os.path.join(os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share")),
                     "squashbox-peers", "bin")
WORKLOADS = ["untar", "stat", "read", "rm", "seqwrite", "seqread", "randfsync", "mount10g",
             "rss"]
ROWS = {
    "untar": "untar of the tree (s)",
    "stat": "stat walk, cold (s)",
    "read": "read everything back, cold (s)",
    "rm": "rm -rf of the tree (s)",
    "seqwrite": "1 GiB sequential write + fsync (s)",
    "seqread": "1 GiB sequential read, cold (s)",
    "randfsync": "1024 x 4 KiB random writes, fsync each (s)",
    "mount10g": "mount of a 10 GiB sparse image (s)",
    "rss": "server peak RSS after the run (MiB)",
}


def log(msg):
    print(f"[ext3-bench] {msg}", file=sys.stderr, flush=True)


def mounted(path):
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == want for line in f)


def wait_mounted(path, child, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if mounted(path):
            return
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"server exited {child.returncode}")
        time.sleep(0.005)
    raise RuntimeError(f"{path} not mounted after {timeout}s")


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Mount:
    """One contender's mount of `img` on `mnt`: start() returns the seconds to readiness."""

    def __init__(self, name, args, img, mnt):
        self.name, self.args, self.img, self.mnt, self.child = name, args, img, mnt, None

    def start(self):
        t0 = time.time()
        if self.name == "kernel":
            subprocess.run(["mount", "-o", "loop", "-t", "ext3", self.img, self.mnt], check=True)
            return time.time() - t0
        if self.name in ("ours", "ours-before"):
            binary = self.args.squashbox if self.name == "ours" else self.args.squashbox_before
            cmd = [binary, "ext3", "mount", "-f", self.img, self.mnt]
        else:
            cmd = [self.args.fuse2fs[self.name], "-f", self.img, self.mnt, "-o", "allow_other"]
        self.child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_mounted(self.mnt, self.child)
        return time.time() - t0

    def rss_mib(self):
        if self.child is None:
            return None
        with open(f"/proc/{self.child.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        subprocess.run(["umount", self.mnt], check=False)
        if self.child is not None:
            try:
                self.child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


def timed(cmd, **kw):
    t0 = time.time()
    subprocess.run(cmd, check=True, **kw)
    return time.time() - t0


def run_contender(args, name):
    res = {}
    img, mnt = os.path.join(args.work, "img"), os.path.join(args.work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["mkfs.ext3", "-q", "-F", img, f"{args.image_gib}G"], check=True)
    m = Mount(name, args, img, mnt)
    m.start()
    try:
        tree = os.path.join(mnt, "t")
        os.mkdir(tree)
        res["untar"] = timed(["tar", "-C", tree, "-xf", args.tar])
        drop_caches()
        res["stat"] = timed(["find", tree, "-printf", "%s %m\n"], stdout=subprocess.DEVNULL)
        drop_caches()
        res["read"] = timed(f"find {tree} -type f -print0 | xargs -0 cat > /dev/null",
                            shell=True)
        res["rm"] = timed(["rm", "-rf", tree])
        big = os.path.join(mnt, "big")
        res["seqwrite"] = timed(["dd", "if=/dev/zero", f"of={big}", "bs=1M", "count=1024",
                                 "conv=fsync", "status=none"])
        drop_caches()
        res["seqread"] = timed(["dd", f"if={big}", "of=/dev/null", "bs=1M", "status=none"])
        os.unlink(big)
        res["randfsync"] = timed(["fio", "--name=r", f"--filename={mnt}/rand", "--size=64m",
                                  "--io_size=4m", "--rw=randwrite", "--bs=4k", "--fsync=1",
                                  "--ioengine=psync", "--output=/dev/null"])
        res["rss"] = m.rss_mib()
    finally:
        m.stop()
    os.unlink(img)
    img10 = os.path.join(args.work, "img10")
    subprocess.run(["mkfs.ext3", "-q", "-F", img10, "10G"], check=True)
    drop_caches()
    m = Mount(name, args, img10, mnt)
    res["mount10g"] = m.start()
    m.stop()
    os.unlink(img10)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tar", required=True, help="tarball of the tree (>= 10k files)")
    ap.add_argument("--squashbox", default="target/release/squashbox")
    ap.add_argument("--squashbox-before",
                    help="an older build, run as contender `ours-before` (A/B in one run)")
    ap.add_argument("--work", default="/var/tmp/squashbox-bench/ext3/work")
    ap.add_argument("--image-gib", type=int, default=4)
    ap.add_argument("--contenders", default="kernel,fuse2fs-1.47.0,fuse2fs-1.47.2,ours")
    ap.add_argument("--markdown", help="append the table to this file")
    args = ap.parse_args()
    args.squashbox = os.path.abspath(args.squashbox)
    if args.squashbox_before:
        args.squashbox_before = os.path.abspath(args.squashbox_before)
    args.fuse2fs = {"fuse2fs-1.47.0": "/usr/bin/fuse2fs",
                    "fuse2fs-1.47.2": os.path.join(PEERS, "fuse2fs-1.47.2")}
    os.makedirs(args.work, exist_ok=True)
    names = args.contenders.split(",")
    results = {}
    for name in names:
        log(f"{name} ...")
        results[name] = run_contender(args, name)
        log(f"{name}: {results[name]}")
    head = "| workload | " + " | ".join(names) + " | ours / kernel | 1.47.2 / ours |"
    lines = [head, "|" + "---|" * (len(names) + 3)]
    for w in WORKLOADS:
        vals = [results[n].get(w) for n in names]
        cells = ["-" if v is None else f"{v:.2f}" for v in vals]
        ours, kern = results.get("ours", {}).get(w), results.get("kernel", {}).get(w)
        new = results.get("fuse2fs-1.47.2", {}).get(w)
        rk = f"{ours / kern:.2f}x" if ours and kern else "-"
        rn = f"{new / ours:.2f}" if ours and new else "-"
        lines.append(f"| {ROWS[w]} | " + " | ".join(cells) + f" | {rk} | {rn} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
