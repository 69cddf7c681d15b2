#!/usr/bin/env python3
"""Container start-up benchmark (issue 10): `squashbox exec IMAGE /bin/true` read-only, with
--writable-tmpfs and with an ext3 --overlay, side by side with the assembled peers
(squashfuse_ll 0.5.2 through fusermount3, fuse-overlayfs 1.14, bwrap), as a plain user; and
the serve benchmark's import storm inside `squashbox exec` against a bare `squashbox mount`.

See benches/startup/README.md. Run as root: it creates the benchmark user, gives that user a
0666 /dev/fuse in a private mount namespace (the machine's node is not touched) and drops the
page cache before each cold storm."""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402

SERVE_WORK = "/var/tmp/squashbox-bench"
IMPORT_STMT = ("import numpy, scipy, scipy.stats, scipy.linalg, scipy.optimize, pandas, "
               "sympy, matplotlib, matplotlib.pyplot")
ALL = list(report.CONTENDERS)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(SERVE_WORK, "startup"),
                    help="work dir (world-readable copies of the binary, image and peers)")
    ap.add_argument("--squashbox", default=os.path.join(REPO, "target/release/squashbox"))
    ap.add_argument("--image", default=os.path.join(
        REPO, "fixtures/upstream/apptainer-e2e/busybox_amd64.sif"))
    ap.add_argument("--runs", type=int, default=50, help="timed starts per contender")
    ap.add_argument("--warmup", type=int, default=3, help="untimed starts first")
    ap.add_argument("--contenders", default=",".join(ALL), help="comma list of " + ",".join(ALL))
    ap.add_argument("--user", default="squashbox-bench", help="the plain user (made if missing)")
    ap.add_argument("--peers", default=None, help="install-peers prefix the user can read "
                    "(default WORK/peers, filled by benches/install-peers.sh when empty)")
    ap.add_argument("--storm-image", default=os.path.join(SERVE_WORK, "python-stack.sqfs"),
                    help="the serve benchmark's image (benches/serve/run.sh builds it)")
    ap.add_argument("--procs", default="1,4", help="import storm process counts ('' for none)")
    ap.add_argument("--storm-reps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--markdown", help="write the tables and run details here")
    ap.add_argument("--json", help="write the raw times here")
    a = ap.parse_args(argv)
    a.contenders = [c for c in a.contenders.split(",") if c]
    bad = [c for c in a.contenders if c not in ALL]
    if bad:
        ap.error(f"unknown contender(s) {bad}")
    a.procs = [int(p) for p in a.procs.split(",") if p]
    a.peers = a.peers or os.path.join(a.work, "peers")
    return a


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def ensure_user(name):
    """(uid, gid, home) of the benchmark user, created if missing with a home in useradd's
    default base (a home under /var/tmp would sit inside the image's read-only /var for the
    peers' bwrap, which cannot create a mount point there)."""
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        log(f"creating user {name}")
        sh(["useradd", "--create-home", "--shell", "/bin/sh", name])
    uid, gid = int(sh(["id", "-u", name])), int(sh(["id", "-g", name]))
    home = sh(["getent", "passwd", name]).strip().split(":")[5]
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, gid)
    return uid, gid, home


def ensure_tools():
    if not shutil.which("bwrap"):
        log("bwrap missing: apt-get install -y bubblewrap")
        subprocess.run(["apt-get", "install", "-y", "-qq", "bubblewrap"], stdout=sys.stderr,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    missing = [t for t in ("bwrap", "fusermount3", "setpriv", "unshare", "mknod", "useradd")
               if not shutil.which(t)]
    if missing:
        sys.exit(f"startup_bench: missing tools: {', '.join(missing)}")


def ensure_peers(a):
    """The peers' wrappers under a prefix the user can read and run."""
    bins = {"squashfuse_ll": "squashfuse_ll-0.5.2", "fuse_overlayfs": "fuse-overlayfs-1.14"}
    paths = {k: os.path.join(a.peers, "bin", v) for k, v in bins.items()}
    if not all(os.path.exists(p) for p in paths.values()):
        log(f"installing peers into {a.peers} (benches/install-peers.sh)")
        subprocess.run(["bash", os.path.join(REPO, "benches", "install-peers.sh"), "--trixie",
                        a.peers], stdout=sys.stderr)
    subprocess.run(["chmod", "-R", "a+rX", a.peers])
    return {k: p for k, p in paths.items() if os.path.exists(p)}


def squashfs_offset(sb, image):
    """Where the SquashFS starts: the primary FS partition of a SIF, else 0."""
    with open(image, "rb") as f:
        if b"SIF_MAGIC" not in f.read(64):
            return 0
    for line in sh([sb, "sif", "list", image]).splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) >= 5 and f[4].startswith("FS (Squashfs"):
            return int(f[3].split("-")[0])
    sys.exit(f"startup_bench: {image}: no SquashFS partition in `squashbox sif list`")


def host_lib_dirs():
    """The host's C library directories, which the storm image's interpreter needs inside
    the container (the image holds CPython and its packages, not glibc)."""
    out = subprocess.run(["ldd", "/bin/sh"], capture_output=True, text=True).stdout
    dirs = []
    for line in out.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            d = os.path.dirname(path)  # as the loader names it: the ELF interpreter is
            # an absolute path (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...)
            if d not in dirs:
                dirs.append(d)
    return dirs


def private_copy(src, dst, mode):
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)
    return dst


class AsUser:
    """Runs the driver as the user in a private mount + PID namespace with a 0666 /dev/fuse
    (a fresh node on a small tmpfs, bind-mounted over /dev/fuse there only)."""

    SETUP = ('set -e; mount -t tmpfs -o mode=0755,size=64k squashbox-dev "$0"; '
             'mknod -m 0666 "$0/fuse" c 10 229; mount --bind "$0/fuse" /dev/fuse; '
             'u=$1; g=$2; shift 2; exec setpriv --reuid="$u" --regid="$g" --init-groups -- "$@"')

    def __init__(self, work, uid, gid, home):
        self.dev = os.path.join(work, "dev")
        os.makedirs(self.dev, exist_ok=True)
        self.uid, self.gid, self.home = uid, gid, home

    def run(self, args, timeout):
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               "--mount-proc", "--kill-child", "--", "sh", "-c", self.SETUP, self.dev,
               str(self.uid), str(self.gid), "/usr/bin/python3", "-B", *args]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.home, "LANG": "C.UTF-8",
               "TERM": os.environ.get("TERM", "dumb")}
        r = subprocess.run(cmd, cwd=self.home, env=env, capture_output=True, text=True,
                           timeout=timeout)
        if r.stderr.strip():
            log("driver stderr: " + r.stderr.strip()[-800:])
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"error": f"driver exit {r.returncode}: {r.stderr.strip()[-400:]}"}


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run_storm(a, user, cfg_path):
    storm = {}
    # One untimed warm-up (mplconfig cache, the binary's own pages).
    user.run([cfg_path["driver"], "storm", "--config", cfg_path["cfg"], "--mode", "bare",
              "--procs", "1"], a.timeout)
    for rep in range(a.storm_reps):
        for procs in a.procs:
            modes = ["bare", "container"] if rep % 2 == 0 else ["container", "bare"]
            for mode in modes:
                drop_caches()
                r = user.run([cfg_path["driver"], "storm", "--config", cfg_path["cfg"],
                              "--mode", mode, "--procs", str(procs)], a.timeout * 3)
                log(f"storm rep {rep + 1} P={procs} {mode}: "
                    + (r.get("error") or f"cold {r['cold']:.2f} s, warm {r['warm']:.2f} s"))
                storm.setdefault(str(procs), {}).setdefault(mode, []).append(r)
    return storm


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}"


def versions(sb):
    out = {"squashbox": sh([sb, "--version"]).strip()}
    for tool, args in (("bwrap", ["--version"]), ("fusermount3", ["-V"])):
        try:
            out[tool] = sh([tool, *args], timeout=10).strip()
        except (subprocess.CalledProcessError, OSError):
            out[tool] = "?"
    return out


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("startup_bench: run as root (it makes the user and a private /dev/fuse)")
    ensure_tools()
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    uid, gid, home = ensure_user(a.user)
    peers = ensure_peers(a)
    contenders = [c for c in a.contenders
                  if not c.startswith("peers") or "squashfuse_ll" in peers]
    if "fuse_overlayfs" not in peers and "peers-overlay" in contenders:
        contenders.remove("peers-overlay")
    skipped = [c for c in a.contenders if c not in contenders]
    sb = private_copy(a.squashbox, os.path.join(a.work, "squashbox"), 0o755)
    img = private_copy(a.image, os.path.join(a.work, os.path.basename(a.image)), 0o644)
    driver = private_copy(os.path.join(HERE, "driver.py"), os.path.join(a.work, "driver.py"),
                          0o644)
    mplconfig = os.path.join(a.work, "mplconfig")
    os.makedirs(mplconfig, exist_ok=True)
    os.chown(mplconfig, uid, gid)
    pyver = None
    meta = os.path.splitext(a.storm_image)[0] + ".json"
    if a.procs and os.path.exists(a.storm_image) and os.path.exists(meta):
        with open(meta) as f:
            pyver = json.load(f)["pyver"]
    elif a.procs:
        log(f"no {a.storm_image} (+ .json): run benches/serve/run.sh once; storm skipped")
    cfg = {"squashbox": sb, "image": img, "offset": squashfs_offset(sb, img),
           "contenders": contenders, "runs": a.runs, "warmup": a.warmup,
           "storm_image": a.storm_image, "pyver": pyver, "import_stmt": IMPORT_STMT,
           "mplconfig": mplconfig, "timeout": a.timeout, "host_lib_binds": host_lib_dirs(),
           **peers}
    cfg_file = os.path.join(a.work, "config.json")
    with open(cfg_file, "w") as f:
        json.dump(cfg, f, indent=1)
    os.chmod(cfg_file, 0o644)
    user = AsUser(a.work, uid, gid, home)
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    log(f"start-up: {', '.join(contenders)}; {a.runs} runs each after {a.warmup} warm-up")
    res = user.run([driver, "startup", "--config", cfg_file], a.timeout * 10)
    if "error" in res and not isinstance(res["error"], dict):
        sys.exit(f"startup_bench: the driver failed: {res['error']}")
    storm = None
    if pyver:
        storm = run_storm(a, user, {"driver": driver, "cfg": cfg_file})
    load1 = os.getloadavg()
    table = report.markdown(res, storm)
    print(table)
    errors = [f"`{n}`: {e}" for n, r in res.items() for e in sorted(set(r["errors"]))[:3]]
    if storm:
        errors += [f"storm P={p} {m}: {x['error']}" for p, ms in storm.items()
                   for m, xs in ms.items() for x in xs if "error" in x]
    for e in errors:
        log("error: " + e)
    if a.markdown:
        v = versions(sb)
        det = [f"- date: {started}; machine: {machine()}",
               f"- load average (1 min) at start {load0[0]:.2f}, at end {load1[0]:.2f}",
               f"- command: `benches/startup/run.sh {shlex.join(argv)}`",
               f"- image: `{os.path.basename(a.image)}`; storm image: "
               f"`{a.storm_image if storm else '(none)'}`",
               f"- {v['squashbox']}; {v['bwrap']}; {v['fusermount3']}"]
        if skipped:
            det.append(f"- skipped (peer missing): {', '.join(skipped)}")
        det += [f"- error: {e}" for e in errors]
        with open(a.markdown, "w") as f:
            f.write(table + "\n" + "\n".join(det) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"startup": res, "storm": storm, "config": cfg}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
