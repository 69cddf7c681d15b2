"""Builds (once) the benchmark image: a relocatable CPython with numpy, scipy, pandas, sympy
and matplotlib, packed with mksquashfs. The result is cached in the work dir and reused."""

import json
import os
import shutil
import subprocess
import sys

PACKAGES = ["numpy", "scipy", "pandas", "sympy", "matplotlib"]
# What each import-storm process imports (submodules too, so the storm touches many files).
IMPORT_STMT = ("import numpy, scipy, scipy.stats, scipy.linalg, scipy.optimize, pandas, "
               "sympy, matplotlib, matplotlib.pyplot")
MKSQUASHFS_ARGS = ["-comp", "gzip", "-b", "131072", "-noappend", "-no-progress"]


def log(msg):
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def python_env(root, mplconfig):
    """Environment that runs the interpreter found under `root` (a mount or the stage tree)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LD_LIBRARY_PATH": os.path.join(root, "lib"),
        "PYTHONHOME": root,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": mplconfig,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "LC_ALL": "C.UTF-8",
    }
    return env


def interpreter(root, pyver):
    return os.path.join(root, "bin", f"python{pyver}")


_PROBE = "import sys; print(sys.base_prefix); print('%d.%d' % sys.version_info[:2]); " \
         "print(sys.implementation.name)"


def real_cpython(python):
    """The real interpreter behind `python` (a path or a name on PATH, possibly a pyenv shim or
    a venv's python): `BASE_PREFIX/bin/pythonX.Y`, checked to sit next to its own stdlib.
    Returns (path, None), or (None, why not)."""
    exe = python if os.sep in python else shutil.which(python)
    if not exe:
        return None, f"{python}: not found on PATH"
    try:
        out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{exe}: {e}"
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 3:
        return None, f"{exe}: does not run ({out.stderr.strip()[-200:]})"
    prefix, ver, impl = lines
    if impl != "cpython":
        return None, f"{exe}: is {impl}, not CPython"
    real = os.path.join(prefix, "bin", f"python{ver}")
    if not os.access(real, os.X_OK):
        return None, f"{exe}: no interpreter at {real}"
    if not os.path.exists(os.path.join(prefix, "lib", f"python{ver}", "os.py")):
        return None, f"{exe}: no stdlib in {prefix}/lib/python{ver}"
    return real, None


def has_pip(python):
    """True if `python -m pip` works (the image build installs packages with it)."""
    r = subprocess.run([python, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


def default_python():
    """The CPython to copy into the image when --python is not given: the first of `python3`
    on PATH and the interpreter running this script that resolves to a real install with its
    stdlib, preferring one that has pip. Exits with the reasons if there is none."""
    found, why = [], []
    for cand in ["python3", sys.executable]:
        real, err = real_cpython(cand) if cand else (None, "no sys.executable")
        if err:
            why.append(err)
        elif real not in found:
            found.append(real)
    for real in found:
        if has_pip(real):
            return real
    if found:
        return found[0]
    sys.exit("no usable CPython for the image; give --python: " + "; ".join(why))


def _pyver(src_python):
    out = subprocess.check_output(
        [src_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True)
    return out.strip()


def _copy_interpreter(prefix, stage, pyver):
    """Copies bin/python, libpython and the stdlib (not site-packages) of `prefix`."""
    os.makedirs(os.path.join(stage, "bin"))
    shutil.copy2(os.path.join(prefix, "bin", f"python{pyver}"), os.path.join(stage, "bin"))
    os.symlink(f"python{pyver}", os.path.join(stage, "bin", "python3"))
    libdir = os.path.join(prefix, "lib")
    os.makedirs(os.path.join(stage, "lib"))
    for name in os.listdir(libdir):
        if name.startswith("libpython"):
            src = os.path.join(libdir, name)
            dst = os.path.join(stage, "lib", name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
    std = f"python{pyver}"
    shutil.copytree(os.path.join(libdir, std), os.path.join(stage, "lib", std), symlinks=True,
                    ignore=lambda d, names: ["site-packages"] if d.endswith(std) else [])
    os.makedirs(os.path.join(stage, "lib", std, "site-packages"))
    inc = os.path.join(prefix, "include")
    if os.path.isdir(inc):
        shutil.copytree(inc, os.path.join(stage, "include"), symlinks=True)


def _tree_stats(root):
    files = dirs = size = 0
    for d, dn, fn in os.walk(root):
        dirs += len(dn)
        for f in fn:
            files += 1
            size += os.lstat(os.path.join(d, f)).st_size
    return files, dirs, size


def ensure_image(work, src_python):
    """Returns (image path, metadata dict); builds the image if it is missing or stale."""
    img = os.path.join(work, "python-stack.sqfs")
    meta_path = os.path.join(work, "python-stack.json")
    want = {"src_python": src_python, "packages": PACKAGES, "mksquashfs": MKSQUASHFS_ARGS}
    if os.path.exists(img) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if all(meta.get(k) == v for k, v in want.items()):
            return img, meta
    pyver = _pyver(src_python)
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(src_python)))
    stage = os.path.join(work, "stage")
    if os.path.exists(stage):
        shutil.rmtree(stage)
    log(f"staging CPython {pyver} from {prefix} into {stage}")
    _copy_interpreter(prefix, stage, pyver)
    site = os.path.join(stage, "lib", f"python{pyver}", "site-packages")
    log(f"pip install --target {site} {' '.join(PACKAGES)}")
    subprocess.run([src_python, "-m", "pip", "install", "-q", "--no-warn-script-location",
                    "--cache-dir", os.path.join(work, "pip-cache"), "--target", site]
                   + PACKAGES, check=True)
    mpl = os.path.join(work, "mplconfig")
    os.makedirs(mpl, exist_ok=True)
    log("checking the staged interpreter runs relocated")
    py = interpreter(stage, pyver)
    probe = ("import sys; assert sys.prefix == %r, sys.prefix; %s; "
             "print(numpy.__version__, scipy.__version__, pandas.__version__, "
             "sympy.__version__, matplotlib.__version__)" % (stage, IMPORT_STMT))
    versions = subprocess.check_output([py, "-c", probe], env=python_env(stage, mpl),
                                       text=True).split()
    # Freshly-written bytecode would land in the stage only if pip skipped it; compile all.
    subprocess.run([py, "-m", "compileall", "-q", "-j", "0", os.path.join(stage, "lib")],
                   env=python_env(stage, mpl), check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    files, dirs, size = _tree_stats(stage)
    tmp = img + ".tmp"
    log(f"mksquashfs ({files} files, {size / 2**20:.0f} MiB)")
    subprocess.run(["mksquashfs", stage, tmp] + MKSQUASHFS_ARGS, check=True,
                   stdout=subprocess.DEVNULL)
    os.replace(tmp, img)
    meta = dict(want, pyver=pyver, files=files, dirs=dirs, bytes=size,
                image_bytes=os.path.getsize(img),
                versions=dict(zip(["numpy", "scipy", "pandas", "sympy", "matplotlib"], versions)))
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    return img, meta
