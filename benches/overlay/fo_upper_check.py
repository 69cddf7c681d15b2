"""Check run by the overlay benchmark: an upper directory that fuse-overlayfs 1.14 wrote reads
back the same through our in-process stack.

fuse-overlayfs 1.14 (the peer installer's, not a test prerequisite: tests read nothing outside
the repository) runs over the image mounted by our squashfuse_ll personality, with a fresh
upper; a script of changes runs in its merged view (new files and directories, appends and
truncation of lower files, chmod and chown, deletion of lower files and of a lower directory
re-made as an opaque one, renames, a hard link, a symlink, a FIFO, a user xattr), and the
changed subtrees are walked. Then `squashbox overlay mount --lower IMG --upper THAT_UPPER`
serves the same upper and the walk must agree: type, permission bits, owner, size, content,
link target, user xattrs and, for non-directories, mtime. Link counts are left out
(fuse-overlayfs counts its own way)."""

import hashlib
import os
import stat
import subprocess

SCRIPT_ROOTS = ["sympy", "fo_new"]


def _script(site):
    """The changes, made through the merged view at `site` (a site-packages directory)."""
    s = os.path.join(site, "sympy")
    core = os.path.join(s, "core")
    os.makedirs(os.path.join(site, "fo_new", "sub"))
    with open(os.path.join(site, "fo_new", "sub", "new.txt"), "w") as f:
        f.write("written by fuse-overlayfs\n" * 100)
    with open(os.path.join(s, "__init__.py"), "a") as f:
        f.write("\n# appended through the overlay\n")
    os.truncate(os.path.join(core, "expr.py"), 100)
    os.chmod(os.path.join(s, "abc.py"), 0o600)
    os.chown(os.path.join(core, "basic.py"), 1000, 1001)
    os.setxattr(os.path.join(core, "numbers.py"), "user.bench", b"fo-1.14")
    os.unlink(os.path.join(core, "add.py"))
    subprocess.run(["rm", "-rf", os.path.join(s, "polys")], check=True)
    os.mkdir(os.path.join(s, "polys"))
    with open(os.path.join(s, "polys", "only.py"), "w") as f:
        f.write("x = 1\n")
    os.rename(os.path.join(core, "mul.py"), os.path.join(core, "mul_renamed.py"))
    os.link(os.path.join(core, "power.py"), os.path.join(core, "power_link.py"))
    os.symlink("core/function.py", os.path.join(s, "function_link"))
    os.mkfifo(os.path.join(s, "fifo"))


def _describe(path):
    st = os.lstat(path)
    d = {"type": stat.S_IFMT(st.st_mode), "perm": stat.S_IMODE(st.st_mode),
         "uid": st.st_uid, "gid": st.st_gid}
    if not stat.S_ISDIR(st.st_mode):
        d["mtime"] = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        d["size"] = st.st_size
        with open(path, "rb") as f:
            d["sha"] = hashlib.sha256(f.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        d["target"] = os.readlink(path)
    if not stat.S_ISLNK(st.st_mode):
        try:
            d["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                           for n in sorted(os.listxattr(path, follow_symlinks=False))
                           if n.startswith("user.")}
        except OSError as e:
            # fuse-overlayfs 1.14 sometimes answers EOPNOTSUPP: compared as "unknown".
            d["xattrs"] = f"error {e.errno}"
    return d


def _same(a, b):
    """Whether two descriptions agree, leaving xattrs out where either side could not list
    them."""
    if a is None or b is None:
        return a is b
    if isinstance(a.get("xattrs"), str) or isinstance(b.get("xattrs"), str):
        a = {k: v for k, v in a.items() if k != "xattrs"}
        b = {k: v for k, v in b.items() if k != "xattrs"}
    return a == b


def _walk(site):
    tree = {}
    for top in SCRIPT_ROOTS:
        base = os.path.join(site, top)
        tree[top] = _describe(base)
        for d, dirs, files in os.walk(base):
            for n in dirs + files:
                p = os.path.join(d, n)
                tree[os.path.relpath(p, site)] = _describe(p)
    return tree


def check(setup_cls, args, meta, fo_bin):
    """Run the check; returns (passed, one-line summary). `setup_cls` is the benchmark's
    Setup (a fresh tmpfs with lower/upper/work/mnt and mount helpers)."""
    site_rel = "lib/python{}/site-packages".format(meta["pyver"])
    s = setup_cls(args, "fo-upper-check")
    try:
        lower, mnt = s.p("lower"), s.mnt
        s.serve([os.path.join(args.work, "bin", "squashfuse_ll"), "-f", args.image, lower],
                lower)
        s.serve([fo_bin, "-f", "-o",
                 f"lowerdir={lower},upperdir={s.p('upper')},workdir={s.p('work')}", mnt], mnt)
        _script(os.path.join(mnt, site_rel))
        theirs = _walk(os.path.join(mnt, site_rel))
        s.unserve(mnt)
        work2 = s.p("work2")
        os.makedirs(work2)
        s.serve([args.bin, "overlay", "mount", "-f", "--lower", args.image, "--upper",
                 s.p("upper"), "--work", work2, mnt], mnt)
        ours = _walk(os.path.join(mnt, site_rel))
    finally:
        s.stop()
    # The script's changes must show in fuse-overlayfs's own view, or the check is vacuous.
    expect = {
        "sympy/core/add.py": None,
        "sympy/core/mul.py": None,
        "sympy/polys/polytools.py": None,
    }
    for p, want in expect.items():
        if theirs.get(p) != want:
            return False, f"fuse-overlayfs's view lacks the change at {p}"
    if theirs.get("sympy/core/numbers.py", {}).get("xattrs") != {"user.bench": b"fo-1.14"}:
        return False, "fuse-overlayfs's view lacks the user xattr"
    diff = sorted(p for p in set(theirs) | set(ours) if not _same(theirs.get(p), ours.get(p)))
    unlisted = [sum(isinstance(d.get("xattrs"), str) for d in t.values()) for t in (theirs, ours)]
    note = (f" (xattrs not compared where listxattr failed: {unlisted[0]} entries through "
            f"fuse-overlayfs, {unlisted[1]} through ours)") if any(unlisted) else ""
    if not diff:
        return True, f"same: {len(ours)} entries under {', '.join(SCRIPT_ROOTS)}{note}"
    shown = "; ".join(f"{p}: theirs {theirs.get(p)} ours {ours.get(p)}" for p in diff[:3])
    return False, f"{len(diff)} entries differ: {shown}"
