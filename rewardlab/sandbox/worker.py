"""The sandbox worker: one process that runs one reward program, started by ``process.py``.

Run as ``python -s -B worker.py`` (by path, with a fixed environment, so it imports only the standard library, numpy and
its sibling ``protocol.py``, never ``rewardlab`` and whatever that pulls in). Everything the
reward program can touch lives in this process; the parent treats every byte it sends back as
untrusted.

Startup, in this order, before any untrusted code runs: move the protocol pipes off fds 0/1
(stray writes to stdout then land in the stderr file, not in the protocol), read the LOAD
message, load what numpy loads lazily (Python modules, BLAS and LAPACK kernels), apply the
resource limits, enter a new network namespace and set ``no_new_privs`` where the kernel
allows it, restrict itself with Landlock where the kernel has it (reading only beneath the
standard library, numpy and the folders of the shared libraries loaded by then), drop root
to an unprivileged uid/gid, ask to be killed with its parent, close every other fd, compile
the program, answer READY. Then serve CALL messages until the parent closes the pipe. Once
root is dropped, modules the unprivileged user cannot read (a stdlib under ``/root``) can no
longer be imported, even by code that escaped validation.

The module is also imported by :mod:`rewardlab.sandbox.validation` for :data:`SAFE_BUILTINS`
and :func:`compile_reward_function`, so the parent's in-process compile and the worker's are
the same code.
"""

from __future__ import annotations
import __future__

import builtins
import json
import math
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

if __package__:
    from rewardlab.sandbox import protocol as wire
else:
    # Run by path as the worker process: load the sibling by its file rather than through
    # the rewardlab package, whose import would pull in far more than this process needs.
    import importlib.util

    def _sibling(name: str) -> Any:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"_rewardlab_sandbox_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    wire = _sibling("protocol")

__all__ = ["SAFE_BUILTINS", "compile_reward_function", "main"]

_SAFE_BUILTIN_NAMES = (
    "abs",
    "all",
    "any",
    "bool",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "frozenset",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "pow",
    "range",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "ArithmeticError",
    "AssertionError",
    "Exception",
    "IndexError",
    "KeyError",
    "NotImplementedError",
    "RuntimeError",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
)

#: The builtins a reward program sees. A convenience and a clear error ("name 'open' is not
#: defined") for honest programs, NOT a security boundary: CPython offers many ways from any
#: object back to the real builtins. The worker process (limits, no secrets, no privileges)
#: is the boundary; the AST validation in ``validation.py`` is the first line of defence.
SAFE_BUILTINS: dict[str, object] = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}


def _numpy_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] = (),
    level: int = 0,
) -> Any:
    """``__import__`` for numpy's own lazy imports, and nothing else.

    numpy imports some of its submodules on first use from C (``ndarray.sum`` imports
    ``numpy._core._methods``), which looks ``__import__`` up in the *calling* frame's builtins:
    the program's. Programs cannot name it (validation rejects names starting with ``_``).
    """
    if level == 0 and name.partition(".")[0] == "numpy":
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError(f"reward programs cannot import {name!r}")


SAFE_BUILTINS["__import__"] = _numpy_import

# The compiler flag of ``from __future__ import annotations``: annotations (LLMs like
# ``-> Tuple[np.ndarray, Dict[str, np.ndarray]]``) stay strings and are never evaluated.
_ANNOTATIONS_FLAG = __future__.annotations.compiler_flag


def compile_reward_function(source: str, builtins_: Mapping[str, object] | None = None) -> Any:
    """Execute a reward program's definitions in a fresh namespace; return ``compute_reward``.

    The namespace holds only ``np``, ``math`` and ``builtins_`` (default
    :data:`SAFE_BUILTINS`). This runs the module body (``def`` statements only, once the
    program is validated) in the *calling* process.

    Args:
        source: Program source, validated by ``program.validate_program`` in production.
        builtins_: The ``__builtins__`` mapping the program sees.

    Returns:
        The program's ``compute_reward`` function.

    Raises:
        LookupError: When the program defines no callable ``compute_reward``.
    """
    namespace: dict[str, Any] = {
        "__builtins__": dict(SAFE_BUILTINS if builtins_ is None else builtins_),
        "__name__": "reward_program",
        "np": np,
        "math": math,
    }
    code = compile(
        source, wire.PROGRAM_FILENAME, "exec", flags=_ANNOTATIONS_FLAG, dont_inherit=True
    )
    exec(code, namespace)
    function = namespace.get("compute_reward")
    if not callable(function):
        raise LookupError("the program defines no function compute_reward")
    return function


# ---------------------------------------------------------------------------------------------
# Hardening

#: The ``np.linalg`` functions :func:`_warm_up` calls: every one a reward program may use
#: (``validation.NUMPY_LINALG_ALLOWED``, which a test keeps equal to this).
WARM_LINALG = ("det", "inv", "norm", "pinv", "solve")


def _warm_up() -> None:
    """Load what numpy loads lazily while every file is still readable.

    Array methods import Python modules on first use (``sum`` imports
    ``numpy._core._methods``, ``str`` the array printer), and BLAS/LAPACK builds may load
    shared libraries on their first call (MKL loads the kernels for the CPU at hand, e.g.
    ``libmkl_avx2.so``): after Landlock or the privilege drop these loads would fail inside
    the program's first call, looking like its own error.
    """
    m = np.array([[2.0, 1.0], [1.0, 3.0]])
    for a in (m, m.astype(np.float32)):  # single and double precision kernels
        str(a @ a + np.dot(a, a[0]) + a.std() + a.mean() + a.sum())
    args = {"solve": (m, m[0])}
    for name in WARM_LINALG:
        getattr(np.linalg, name)(*args.get(name, (m,)))
    np.linalg.norm(m, axis=-1)


def _library_dirs(maps: str = "/proc/self/maps") -> list[str]:
    """The folders of the shared libraries this process has mapped, in order of first mapping.

    Landlock must leave them readable: a library loaded later (a BLAS kernel the warm-up did
    not reach) is looked up beside the one that loads it.
    """
    dirs: dict[str, None] = {}
    try:
        with open(maps) as fh:
            for line in fh:
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and ".so" in os.path.basename(path):
                    folder = os.path.dirname(path)
                    if folder != "/" and not path.endswith(" (deleted)"):
                        dirs[folder] = None
    except OSError:
        return []
    return list(dirs)


def _harden(config: Mapping[str, Any]) -> list[str]:
    """Apply limits and drop privileges; return what was applied, for the parent's record."""
    import resource

    applied = []
    limits = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_FSIZE: int(config["file_size_bytes"]),
        resource.RLIMIT_NOFILE: int(config["open_files"]),
        resource.RLIMIT_AS: int(config["memory_bytes"]),
        resource.RLIMIT_NPROC: int(config["processes"]),
    }
    for limit, value in limits.items():
        resource.setrlimit(limit, (value, value))
    cpu = int(config["cpu_seconds"])
    # SIGXCPU at the soft limit; the hard limit one second later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    applied.append("rlimits")

    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    unshare = getattr(libc, "unshare", None)  # Linux only, like prctl
    prctl = getattr(libc, "prctl", None)
    # Without a network namespace of its own the worker could still open sockets; entering a
    # new (empty) one needs CAP_SYS_ADMIN, so it is best effort and recorded.
    clone_newnet = 0x40000000
    if config["isolate_network"] and unshare is not None and unshare(clone_newnet) == 0:
        applied.append("netns")
    pr_set_no_new_privs = 38
    if prctl is not None and prctl(pr_set_no_new_privs, 1, 0, 0, 0) == 0:
        applied.append("no_new_privs")
        if config["landlock"]:
            # Before the privilege drop: the unprivileged user may not reach these folders.
            readable = [os.path.dirname(os.__file__), os.path.dirname(np.__file__)]
            applied += _landlock(libc, readable + _library_dirs())

    if os.geteuid() == 0 and config["uid"] is not None:
        # Root ignores RLIMIT_NPROC and may read or signal anything: drop to an unprivileged
        # user. Done after the imports because the interpreter may live where that user
        # cannot read (a venv under /root).
        try:
            os.setgroups([])
            os.setgid(int(config["gid"]))
            os.setuid(int(config["uid"]))
        except PermissionError as exc:
            raise RuntimeError(
                f"cannot drop root to uid {config['uid']} ({exc}); run as a non-root user, or "
                "pass SandboxLimits(uid=None) to stay root (child processes are then not "
                "limited)"
            ) from None
        if os.getuid() == 0 or os.geteuid() == 0:
            raise RuntimeError("the privilege drop did not take: the worker is still root")
        applied.append(f"uid={os.getuid()}")

    # Die with the parent, even in the middle of a call (its pipe's end of file would only be
    # seen between calls, and not at all while a forked copy of the parent holds the pipe).
    # After the privilege drop, which clears this setting. The signal comes when the *thread*
    # that started the worker ends, hence only for workers started by the main thread.
    pr_set_pdeathsig = 1
    if (
        config["parent_death_signal"]
        and prctl is not None
        and prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0
    ):
        if os.getppid() != config["parent_pid"]:  # the parent died before the prctl
            os._exit(3)
        applied.append("pdeathsig")
    return applied


# Landlock (Linux >= 5.13): an unprivileged process can give up access rights for good. The
# kernel's ABI version says which rights it knows; a ruleset may only handle known ones.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_LANDLOCK_ACCESS_FS_READ_FILE, _LANDLOCK_ACCESS_FS_READ_DIR = 1 << 2, 1 << 3
_LANDLOCK_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_LANDLOCK_NET_TCP = 0b11  # bind, connect (ABI 4)
_LANDLOCK_SCOPE = 0b11  # abstract UNIX sockets, signals (ABI 6)


class LandlockError(OSError):
    """The kernel has Landlock, but confining the worker with it failed."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"Landlock could not confine the sandbox worker: {what}. Reward programs are not "
            "run unconfined where the kernel supports it; to run without Landlock anyway, "
            "pass SandboxLimits(landlock=False)"
        )


def _errno_text() -> str:
    import ctypes

    err = ctypes.get_errno()
    return f"errno {err}: {os.strerror(err)}" if err else "no errno"


def _landlock(libc: Any, readable: Sequence[str]) -> list[str]:
    """Forbid every file access but reading beneath ``readable``, TCP, and signals and abstract
    UNIX sockets to processes outside this one, as far as the kernel supports them.

    Also, by Landlock's design, no ptrace access (``/proc/<pid>/mem``, ``environ``) to any
    process outside. Returns what was applied: nothing where the kernel lacks Landlock.

    Raises:
        LandlockError: The kernel has Landlock but it could not be set up (a folder of
            ``readable`` that exists could not be allowed, or the restriction failed). The
            worker then does not start, rather than run unconfined where it would be
            confined elsewhere, or confined so tightly that it fails later, confusingly.
    """
    import ctypes

    if not sys.platform.startswith("linux") or not hasattr(os, "O_PATH"):
        return []
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 1:
        return []  # no Landlock in this kernel, or disabled at boot

    class RulesetAttr(ctypes.Structure):
        _fields_ = (
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        )

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))

    fs = _LANDLOCK_FS_BY_ABI[max(v for v in _LANDLOCK_FS_BY_ABI if v <= abi)]
    net = _LANDLOCK_NET_TCP if abi >= 4 else 0
    scoped = _LANDLOCK_SCOPE if abi >= 6 else 0
    attr = RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the fields this ABI knows
    ruleset = syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset < 0:
        raise LandlockError(f"creating the ruleset failed ({_errno_text()})")
    try:
        for path in readable:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # nothing there to read
            except OSError as exc:
                raise LandlockError(f"cannot open {path} to allow reading it: {exc}") from None
            try:
                rule = PathBeneathAttr(
                    _LANDLOCK_ACCESS_FS_READ_FILE | _LANDLOCK_ACCESS_FS_READ_DIR, fd
                )
                added = syscall(
                    ctypes.c_long(_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)
            if added != 0:
                raise LandlockError(f"allowing reads beneath {path} failed ({_errno_text()})")
        restricted = syscall(
            ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
        )
    finally:
        os.close(ruleset)
    if restricted != 0:
        raise LandlockError(f"restricting the worker failed ({_errno_text()})")
    return ["landlock_fs"] + ["landlock_tcp"] * bool(net) + ["landlock_scope"] * bool(scoped)


def main() -> None:
    """Serve one reward program over the pipes on fds 0 and 1 (see the module docstring)."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)

    requests = wire.Reader(proto_in)
    request = wire.recv(requests)
    if request is None or request[0] != wire.OP_LOAD:
        sys.exit(2)
    config = json.loads(request[1])
    source: str = config["source"]
    source_lines = source.splitlines()
    try:
        _warm_up()
        np.seterr(all="ignore")  # non-finite results are counted by the parent's guard
        hardening = _harden(config)
        low, high = sorted((proto_in, proto_out))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        os.chdir("/")
        function = compile_reward_function(source)
    except BaseException as exc:
        wire.send_json(proto_out, wire.OP_ERROR, wire.error_message("startup", exc, source_lines))
        sys.exit(1)
    wire.send_json(proto_out, wire.OP_READY, {"hardening": hardening, "pid": os.getpid()})
    layouts: dict[bytes, wire.Layout] = {}
    spin_s = 0.0
    while True:
        request = wire.recv(requests, spin_s)
        if request is None:
            return
        spin_s = 0.0
        op, body = request
        if op != wire.OP_CALL:
            sys.exit(2)
        try:
            inputs, batch, spin_s = wire.decode_request(body, layouts)
            result = function(**inputs)
            parts = wire.encode_result(*wire.check_output(result, batch))
        except wire.BadOutput as exc:
            wire.send_json(
                proto_out, wire.OP_ERROR, wire.error_message("bad_output", exc, source_lines)
            )
        except MemoryError as exc:
            wire.send_json(
                proto_out, wire.OP_ERROR, wire.error_message("memory", exc, source_lines)
            )
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: report, go on
            wire.send_json(
                proto_out, wire.OP_ERROR, wire.error_message("exception", exc, source_lines)
            )
        else:
            wire.send(proto_out, wire.OP_RESULT, parts)


if __name__ == "__main__":
    main()
