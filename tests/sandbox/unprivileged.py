"""Run a test's commands as an unprivileged user: the mode most users run the sandbox in.

When the tests run as root (as in CI), commands run as uid/gid 65534 ("nobody") through
``setpriv``; otherwise as the test's own user, which is already unprivileged. That user must
be able to run a Python with this environment's packages: where it cannot run this one (a
venv whose interpreter lives under ``/root``, mode 0700), a throwaway venv is made from
another interpreter of the same version that it can run, seeing this venv's packages.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

NOBODY = 65534
_SETPRIV = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
# It must also start itself again, as SandboxWorker does (setpriv may exec a program its new
# user could not reach: with capabilities kept until the exec).
_PROBE = (
    "import subprocess, sys, numpy, pyseccomp, rewardlab.sandbox; "
    "sys.exit(subprocess.run([sys.executable, '-s', '-c', 'import numpy, pyseccomp']).returncode)"
)


def is_root() -> bool:
    return os.geteuid() == 0


def command(args: Sequence[str]) -> list[str]:
    """``args`` as the unprivileged user runs them."""
    return [*_SETPRIV, *args] if is_root() else list(args)


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment for the unprivileged user, with ``home`` as its HOME."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MPLCONFIGDIR": str(home / ".mpl"),
    }


def run(
    args: Sequence[str], *, home: Path, env: Mapping[str, str] | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as the unprivileged user in ``home``; capture text output."""
    return subprocess.run(
        command(args),
        cwd=home,
        env={**base_env(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def shared_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder in the system's temporary folder that the unprivileged user owns.

    pytest's own ``tmp_path`` lies under a folder only its user may enter.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if is_root():
            os.chown(path, NOBODY, NOBODY)
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _runs(python: str) -> bool:
    home = Path(tempfile.gettempdir())
    try:
        return run([python, "-c", _PROBE], home=home, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.lru_cache(maxsize=1)
def python() -> tuple[str | None, str]:
    """A Python the unprivileged user can run with this environment's packages.

    Returns:
        The interpreter's path, or None and the reason why there is none.
    """
    if is_root() and shutil.which("setpriv") is None:
        return None, "the tests run as root and setpriv (util-linux) is missing"
    if _runs(sys.executable):
        return sys.executable, ""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    packages = sysconfig.get_paths()["purelib"]
    own = os.path.realpath(sys.executable)
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.access(candidate, os.X_OK) or os.path.realpath(candidate) == own:
            continue
        venv = Path(tempfile.mkdtemp(prefix="rewardlab-unprivileged-venv-"))
        atexit.register(shutil.rmtree, venv, ignore_errors=True)
        venv.chmod(0o755)
        made = subprocess.run(
            [candidate, "-m", "venv", "--without-pip", str(venv)], capture_output=True, check=False
        )
        if made.returncode != 0:
            continue
        site_packages = venv / "lib" / f"python{version}" / "site-packages"
        # addsitedir, not a bare path: it also runs the .pth files there (the editable install).
        (site_packages / "rewardlab-tests.pth").write_text(
            f"import site; site.addsitedir({packages!r})\n"
        )
        interpreter = str(venv / "bin" / "python")
        if _runs(interpreter):
            return interpreter, ""
    return None, (
        f"uid {NOBODY} cannot run this Python ({sys.executable} is {own}, beneath a folder "
        f"that user cannot enter) with its packages ({packages}), and no other Python "
        f"{version} it can run can use them: install the project where any user can read it"
    )


def _may_unshare(flags: int, *, root: bool) -> bool:
    """Whether root, or the unprivileged user, may enter new namespaces of ``flags``."""
    interpreter = sys.executable if root else python()[0]
    if interpreter is None:
        return False
    probe = f"import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare({flags}) != 0)"
    args = [interpreter, "-c", probe]
    home = Path(tempfile.gettempdir())
    done = subprocess.run(
        args if root else command(args),
        cwd=home,
        env=base_env(home),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(version))


def expected_layers(*, root: bool) -> list[str]:
    """``SandboxWorker.hardening`` of a worker with default limits started by root, or by
    the unprivileged user, from its main thread, on this machine."""
    newnet, newipc, newuser = 0x40000000, 0x08000000, 0x10000000
    if root:
        namespaces = ["netns", "ipcns"] if _may_unshare(newnet | newipc, root=True) else []
    elif _may_unshare(newuser | newnet | newipc, root=False):
        namespaces = ["userns", "netns", "ipcns"]
    else:
        namespaces = []
    abi = landlock_abi()
    landlock = ["landlock_fs"] * (abi >= 1) + ["landlock_tcp"] * (abi >= 4)
    landlock += ["landlock_scope"] * (abi >= 6)
    dropped = [f"uid={NOBODY}"] if root else []
    return ["rlimits", *namespaces, "no_new_privs", *landlock, *dropped, "pdeathsig", "seccomp"]
