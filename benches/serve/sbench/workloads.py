"""The workloads. Each runs against a fresh mount and returns {row name: value}.

Row names encode the unit: rows ending in "MiB/s" are throughputs, everything else seconds."""

import hashlib
import json
import os
import shlex
import subprocess

from . import image, proc


class Ctx:
    """What a workload needs: the mount, the image metadata and the harness settings."""

    def __init__(self, args, meta, mnt, fio_files):
        self.args, self.meta, self.mnt, self.fio_files = args, meta, mnt, fio_files
        self.digests = {}


def _shell(ctx, script):
    secs, _ = proc.run_timed(["bash", "-o", "pipefail", "-c", script], ctx.args.timeout)
    return secs


def w_find(ctx, m):
    """`find` over the whole tree (names only; readdir, plus whatever stat find needs)."""
    return {"find (names)": _shell(ctx, f"find {shlex.quote(m.mnt)} > /dev/null")}


def w_stat(ctx, m):
    """`find -printf %s...`: an lstat of every entry."""
    return {"find + stat every entry": _shell(
        ctx, f"find {shlex.quote(m.mnt)} -printf '%s %m %U %T@\\n' > /dev/null")}


def w_readall(ctx, m):
    """Read every file once, one process (tar into a pipe, so tar cannot skip the reads)."""
    return {"read all files (tar)": _shell(
        ctx, f"tar -cf - -C {shlex.quote(m.mnt)} . | cat > /dev/null")}


def w_sha256(ctx, m):
    """Parallel checksums of every file; the digest list is compared across contenders."""
    q = shlex.quote(m.mnt)
    out = os.path.join(ctx.args.work, "sha256.out")
    secs = _shell(ctx, f"cd {q} && find . -type f -print0 | xargs -0 -P 4 -n 64 sha256sum"
                       f" > {shlex.quote(out)}")
    with open(out, "rb") as f:
        digest = hashlib.sha256(b"".join(sorted(f.read().splitlines()))).hexdigest()
    ctx.digests.setdefault(m.contender.name, set()).add(digest)
    return {"sha256sum all files, 4 parallel": secs}


def _fio(ctx, m, bs):
    files = ":".join(os.path.join(m.mnt, f) for f in ctx.fio_files)
    cmd = ["fio", "--name=randread", "--readonly", "--rw=randread", f"--bs={bs}",
           "--ioengine=psync", "--numjobs=4", "--group_reporting", "--time_based",
           f"--runtime={ctx.args.fio_runtime}", "--randrepeat=1", "--invalidate=1",
           f"--filename={files}", "--output-format=json"]
    _, out = proc.run_timed(cmd, ctx.args.timeout, stdout=subprocess.PIPE)
    job = json.loads(out[out.index("{"):])["jobs"][0]
    if job.get("error"):
        raise proc.Failed(f"fio error {job['error']}")
    return job["read"]["bw_bytes"] / 2**20


def w_fio4k(ctx, m):
    """fio 4 KiB random reads over the largest files, 4 jobs, time-bounded."""
    return {"fio randread 4k, 4 jobs MiB/s": _fio(ctx, m, "4k")}


def w_fio128k(ctx, m):
    """fio 128 KiB random reads over the largest files, 4 jobs, time-bounded."""
    return {"fio randread 128k, 4 jobs MiB/s": _fio(ctx, m, "128k")}


def import_cmds(ctx, m, nprocs):
    py = image.interpreter(m.mnt, ctx.meta["pyver"])
    return [[py, "-c", image.IMPORT_STMT] for _ in range(nprocs)]


def run_import(ctx, m, nprocs, cold):
    """P processes import the stack at once; cold drops caches first (fresh mount given)."""
    if cold:
        proc.drop_caches()
    env = image.python_env(m.mnt, os.path.join(ctx.args.work, "mplconfig"))
    return proc.run_parallel(import_cmds(ctx, m, nprocs), ctx.args.timeout, env=env)


ROW_FIND = "find (names)"
ROW_READALL = "read all files (tar)"
# workload name -> (its table rows, function)
SIMPLE = {
    "find": ([ROW_FIND], w_find),
    "stat": (["find + stat every entry"], w_stat),
    "readall": ([ROW_READALL], w_readall),
    "sha256": (["sha256sum all files, 4 parallel"], w_sha256),
    "fio4k": (["fio randread 4k, 4 jobs MiB/s"], w_fio4k),
    "fio128k": (["fio randread 128k, 4 jobs MiB/s"], w_fio128k),
}
ALL = ["find", "stat", "readall", "sha256", "fio4k", "fio128k", "import"]


def largest_files(stage, count):
    """Relative paths of the `count` largest regular files under `stage`."""
    sizes = []
    for d, _, names in os.walk(stage):
        for n in names:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if not os.path.islink(p):
                sizes.append((st.st_size, os.path.relpath(p, stage)))
    sizes.sort(reverse=True)
    return [p for _, p in sizes[:count] if ":" not in p]
