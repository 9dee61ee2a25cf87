"""The sandbox worker: one process that runs one reward program, started by ``process.py``.

Run as ``python -s -B worker.py`` (by path, with a fixed environment, so it imports only the
standard library, numpy, ``pyseccomp`` and its sibling ``protocol.py``, never ``rewardlab``
and whatever that pulls in). Everything the reward program can touch lives in this process;
the parent treats every byte it sends back as untrusted.

Startup, in this order, before any untrusted code runs: move the protocol pipes off fds 0/1
(stray writes to stdout then land in the stderr file, not in the protocol), read the LOAD
message, import the seccomp binding, load what numpy loads lazily (Python modules, BLAS and
LAPACK kernels), apply the resource limits, enter new network and IPC namespaces where
allowed (as root directly; otherwise inside a new user namespace, whose capabilities are
dropped at once), set ``no_new_privs``, restrict itself with Landlock where the kernel has it
(reading only beneath the standard library, numpy and the folders of the shared libraries
loaded by then), drop root to an unprivileged uid/gid, ask to be killed with its parent,
close every other fd, install the syscall filter (seccomp: see :data:`SECCOMP_DENIED` and the
rules after it), compile the program, answer READY with the list of layers applied. Then
serve CALL messages until the parent closes the pipe. Once root is dropped, modules the
unprivileged user cannot read (a stdlib under ``/root``) can no longer be imported, even by
code that escaped validation.

The module is also imported by :mod:`rewardlab.sandbox.validation` for :data:`SAFE_BUILTINS`
and :func:`compile_reward_function`, so the parent's in-process compile and the worker's are
the same code.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import errno
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

_SAFE_BUILTIN_NAMES = """
    abs all any bool dict divmod enumerate filter float frozenset int isinstance len list map max
    min pow range reversed round set slice sorted str sum tuple zip
    ArithmeticError AssertionError Exception IndexError KeyError NotImplementedError RuntimeError
    TypeError ValueError ZeroDivisionError
"""

#: The builtins a reward program sees. A convenience and a clear error ("name 'open' is not
#: defined") for honest programs, NOT a security boundary: CPython offers many ways from any
#: object back to the real builtins. The worker process (limits, no secrets, no privileges)
#: is the boundary; the AST validation in ``validation.py`` is the first line of defence.
SAFE_BUILTINS: dict[str, object] = {
    name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES.split()
}


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


# Text of values. The text of most objects (a function, a generator, a bound method, an
# object array) holds its memory address; relative addresses grow with every object a call
# leaves behind, the same in every process, so a program reading them has a call counter that
# the check's two workers agree on (a reward that changes after N calls of training). So a
# program may turn into text only what prints as a value: the compiled program calls these
# wherever it makes text (str(), f-strings, %-formatting).
_TEXT_CHECK, _STR, _MODULO = "__rewardlab_text__", "__rewardlab_str__", "__rewardlab_mod__"
_TEXT_DEPTH = 4


def _textable(value: object, depth: int = _TEXT_DEPTH) -> bool:
    """Whether the text of ``value`` shows only values: numbers, strings, numeric arrays, and
    lists, tuples and dicts of them."""
    if value is None or isinstance(value, (bool, int, float, str, np.bool_, np.number)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufc"
    if depth > 0 and isinstance(value, (list, tuple)):
        return all(_textable(item, depth - 1) for item in value)
    if depth > 0 and isinstance(value, dict):
        return all(_textable(k, depth - 1) and _textable(v, depth - 1) for k, v in value.items())
    return False


def _text(value: object) -> object:
    if not _textable(value):
        raise TypeError(
            f"a {type(value).__name__} cannot be turned into text in a reward program (its "
            "text would show a memory address); format numbers, strings and numeric arrays"
        )
    return value


def _str(*args: object) -> str:
    for value in args:
        _text(value)
    return str(*args)


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):  # %-formatting, not the remainder of numbers
        _text(right)
    return left % right


_TEXT_HELPERS = {_TEXT_CHECK: _text, _STR: _str, _MODULO: _modulo}


class _GuardText(ast.NodeTransformer):
    """Route the program's text-making through :func:`_text` (see above).

    ``str`` names become :func:`_str` (except as a type in ``isinstance``), each f-string
    field is checked, and ``a % b`` becomes :func:`_modulo`; ``x %= y`` on a name becomes
    ``x = _modulo(x, y)`` (validation rejects it on anything else).
    """

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "isinstance" and len(node.args) == 2:
            # ``str`` as the type, alone or in a tuple, stays the type; everything else in
            # the call is guarded as anywhere (an f-string hidden in the tuple too).
            types = node.args[1]
            elements = types.elts if isinstance(types, ast.Tuple) else [types]
            for i, element in enumerate(elements):
                if not (isinstance(element, ast.Name) and element.id == "str"):
                    elements[i] = self.visit(element)
            if not isinstance(types, ast.Tuple):
                node.args[1] = elements[0]
            node.args[0] = self.visit(node.args[0])
            node.keywords = [self.visit(keyword) for keyword in node.keywords]
            return node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "str" and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Name(_STR, ast.Load()), node)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        node.value = _call(_TEXT_CHECK, node.value, like=node.value)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Mod):
            return _call(_MODULO, node.left, node.right, like=node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Mod) and isinstance(node.target, ast.Name):
            load = ast.copy_location(ast.Name(node.target.id, ast.Load()), node.target)
            value = _call(_MODULO, load, node.value, like=node)
            return ast.copy_location(ast.Assign([node.target], value), node)
        return node


def _call(name: str, *args: ast.expr, like: ast.AST) -> ast.Call:
    call = ast.Call(ast.Name(name, ast.Load()), list(args), [])
    return ast.fix_missing_locations(ast.copy_location(call, like))


def compile_reward_function(source: str, builtins_: Mapping[str, object] | None = None) -> Any:
    """Execute a reward program's definitions in a fresh namespace; return ``compute_reward``.

    The namespace holds only ``np``, ``math``, ``builtins_`` (default :data:`SAFE_BUILTINS`)
    and the checks the program's text-making is routed through (:class:`_GuardText`). This
    runs the module body (``def`` statements only, once the program is validated) in the
    *calling* process.

    Args:
        source: Program source, validated by ``validation.validate_program`` in production.
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
        **_TEXT_HELPERS,
    }
    tree = _GuardText().visit(ast.parse(source, wire.PROGRAM_FILENAME))
    code = compile(tree, wire.PROGRAM_FILENAME, "exec", flags=_ANNOTATIONS_FLAG, dont_inherit=True)
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
    prctl = getattr(libc, "prctl", None)  # Linux only, like unshare
    applied += _namespaces(libc, config)
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


_CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWNET = 0x08000000, 0x10000000, 0x40000000


def _namespaces(libc: Any, config: Mapping[str, Any]) -> list[str]:
    """Enter new network and IPC namespaces where the kernel allows; return those entered.

    A new network namespace is empty (no interface but a down loopback): no route to any
    host or local TCP/UDP port. A new IPC namespace has no SysV IPC objects or POSIX message
    queues, and what the worker creates there dies with it. Root enters them directly
    (``CAP_SYS_ADMIN``); any other user only together with a new user namespace, where
    unprivileged user namespaces are allowed. That user namespace maps no uid: files keep
    their owners' real uids for every access check, the worker's own uid is unchanged
    outside, and inside it appears as the overflow uid (65534). The capabilities the new
    user namespace grants (over its own, empty, namespaces only) are dropped at once.
    Best effort: a kernel or policy that refuses leaves the namespaces out of the record.

    Raises:
        RuntimeError: The worker entered a user namespace but could not drop the
            capabilities it got there.
    """
    unshare = getattr(libc, "unshare", None)
    flags = _CLONE_NEWNET * bool(config["isolate_network"])
    flags |= _CLONE_NEWIPC * bool(config["isolate_ipc"])
    if unshare is None or not flags:
        return []
    names = [(_CLONE_NEWNET, "netns"), (_CLONE_NEWIPC, "ipcns")]
    if os.geteuid() == 0:
        # One at a time: a container's root may have one and not the other. No user
        # namespace: the privilege drop that follows needs the host's uids.
        return [name for flag, name in names if flags & flag and unshare(flag) == 0]
    if unshare(_CLONE_NEWUSER | flags) != 0:
        return []  # no unprivileged user namespaces here (sysctl, AppArmor, seccomp)
    if not _drop_capabilities(libc):
        raise RuntimeError(
            f"the worker entered a user namespace but could not drop its capabilities there "
            f"({_errno_text()}); pass SandboxLimits(isolate_network=False, isolate_ipc=False) "
            "to run without namespaces"
        )
    return ["userns"] + [name for flag, name in names if flags & flag]


def _drop_capabilities(libc: Any) -> bool:
    """Empty this thread's effective, permitted and inheritable capability sets (``capset``)."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))

    class Data(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]

    linux_capability_version_3 = 0x20080522  # two Data structs: capabilities 0-31, 32-63
    capset = getattr(libc, "capset", None)
    return capset is not None and (
        capset(ctypes.byref(Header(linux_capability_version_3, 0)), (Data * 2)()) == 0
    )


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


# ---------------------------------------------------------------------------------------------
# Syscall filter (seccomp): what code that escaped validation could still ask the kernel for.
# Every syscall not named here stays allowed (the interpreter and numpy need most of them); the
# ones named are those that reach outside the worker or change what it may do.

#: Denied with EPERM (``PermissionError`` in Python), whatever their arguments.
SECCOMP_DENIED = (
    # Sockets of every family: pathname UNIX sockets are beyond namespaces and Landlock.
    *("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "shutdown"),
    *("sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg"),
    *("getsockopt", "setsockopt", "getsockname", "getpeername"),
    # SysV IPC and POSIX message queues, outliving the worker where there is no IPC namespace.
    *("msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl"),
    *("shmget", "shmat", "shmdt", "shmctl"),
    *("mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"),
    *("add_key", "keyctl", "request_key"),  # the user's kernel keyrings
    # New processes and programs, and other processes' memory or files (clone3 is below).
    *("fork", "vfork", "clone", "execve", "execveat", "ptrace", "kcmp"),
    *("process_vm_readv", "process_vm_writev", "process_madvise", "process_mrelease"),
    *("pidfd_open", "pidfd_getfd", "pidfd_send_signal"),
    # Namespaces and mounts.
    *("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr"),
    *("open_tree", "open_tree_attr", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick"),
    *("statmount", "listmount"),
    # Kernel interfaces that can act for the process (io_uring sends and connects by itself)
    # or have been the way into kernel bugs; none is used by Python or numpy at call time.
    *("io_uring_setup", "io_uring_enter", "io_uring_register", "io_setup", "bpf"),
    *("perf_event_open", "userfaultfd", "memfd_create", "memfd_secret", "personality"),
    *("modify_ldt", "iopl", "ioperm", "uselib", "name_to_handle_at", "open_by_handle_at"),
    *("fanotify_init", "fanotify_mark", "inotify_init", "inotify_init1", "inotify_add_watch"),
    *("syslog", "acct", "swapon", "swapoff", "reboot", "kexec_load", "kexec_file_load"),
    *("init_module", "finit_module", "delete_module", "quotactl", "quotactl_fd", "vhangup"),
    *("settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname"),
    *("setdomainname", "lsm_set_self_attr"),
    # Every ioctl: nothing at call time needs one, and too many act on their own (typing into
    # a terminal, SIGIO to another process, FS_IOC_SETFLAGS on a file the user owns even
    # when opened read-only, reflinks, fs-verity, encryption policies).
    "ioctl",
    # Credentials, limits and scheduling (the parent's too, where it has the same uid).
    *("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid"),
    *("setfsgid", "setgroups", "capset", "setrlimit", "setpriority", "sched_setaffinity"),
    *("sched_setscheduler", "sched_setparam", "sched_setattr", "ioprio_set"),
    *("migrate_pages", "move_pages"),
    # Changing files, also where Landlock is absent; Landlock covers none of chmod, chown,
    # xattrs or timestamps. (Opening for writing is refused by the rules on flags below.)
    *("creat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat"),
    *("rmdir", "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod"),
    *("fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "truncate"),
    *("ftruncate", "fallocate", "utime", "utimes", "utimensat", "futimesat", "setxattr"),
    *("lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "setxattrat"),
    *("removexattrat", "file_setattr", "flock"),
)

#: Denied with ENOSYS, so that the C library falls back to the older call the filter can
#: judge by its arguments: ``clone3`` (its flags are in memory) to ``clone``, ``openat2`` (its
#: flags too) to ``openat``.
SECCOMP_UNSUPPORTED = ("clone3", "openat2")

#: Signals only to the worker itself: the first argument (a pid or thread group id) must be
#: its own pid (one thread: its only thread id is its pid).
SECCOMP_SIGNAL_SELF = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

_MASK32 = 0xFFFFFFFF  # int arguments: the kernel reads only their low 32 bits
#: Denied with EPERM where ``(argument & mask) == value``: (syscall, argument, mask, value).
SECCOMP_DENIED_WHEN = (
    # Opening for writing or creating, by any flag that asks for it (O_TMPFILE includes
    # O_WRONLY or O_RDWR).
    *(
        (name, arg, flag, flag)
        for name, arg in (("open", 1), ("openat", 2))
        for flag in (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC)
    ),
    # F_SETOWN, F_SETSIG, F_SETOWN_EX: SIGIO sent to another process; F_SETLK, F_SETLKW,
    # F_OFD_SETLK, F_OFD_SETLKW, F_SETLEASE: locks other processes would wait on.
    *(("fcntl", 1, _MASK32, cmd) for cmd in (8, 10, 15, 6, 7, 37, 38, 1024)),
    # PR_SET_PDEATHSIG (outliving the parent), PR_SET_DUMPABLE, PR_SET_MM, PR_SET_PTRACER.
    *(("prctl", 0, _MASK32, option) for option in (1, 4, 35, 0x59616D61)),
)

# Syscalls newer than the libseccomp of some distributions (2.5.4 in Debian 12): by number,
# the same on every architecture with the common table (Linux >= 5.1 numbers new syscalls
# alike everywhere but alpha and the MIPS ABIs, which offset them).
_NEW_SYSCALLS = {
    "statmount": 457,
    "listmount": 458,
    "lsm_set_self_attr": 460,
    "setxattrat": 463,
    "removexattrat": 466,
    "open_tree_attr": 467,
    "file_setattr": 469,
}


def _syscall_number(seccomp: Any, name: str) -> int | None:
    """The native number of syscall ``name``, or None where neither libseccomp nor
    :data:`_NEW_SYSCALLS` knows it (negative: libseccomp's stand-in for a syscall this
    architecture lacks, which its rules skip)."""
    found = int(seccomp.resolve_syscall(seccomp.Arch.NATIVE, name))
    if found != -1:  # libseccomp's answer for a name it does not know
        return found
    common_table = seccomp.system_arch() in (
        seccomp.Arch.X86_64,
        seccomp.Arch.AARCH64,
        seccomp.Arch.RISCV64,
    )
    return _NEW_SYSCALLS.get(name) if common_table else None


class SeccompError(OSError):
    """The worker's syscall filter could not be installed."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the sandbox worker's syscall filter (seccomp) is not available: {what}. Reward "
            "programs are not run without it: install libseccomp (Debian/Ubuntu: apt-get "
            "install libseccomp2; Fedora: dnf install libseccomp) and the Python package "
            "pyseccomp (pip install pyseccomp), or, to run without the filter anyway (as on "
            "systems other than Linux), pass SandboxLimits(seccomp=False)"
        )


def _import_seccomp() -> Any:
    """Import ``pyseccomp`` (a ctypes binding to the system's libseccomp).

    Done first at startup, while every file is readable. The binding looks libc and
    libseccomp up with ``ctypes.util.find_library``, which runs ``/sbin/ldconfig`` in a child
    process; the libraries' standard sonames are tried first, so that no process is started
    where they load directly.

    Raises:
        SeccompError: The binding or the library is missing.
    """
    import ctypes
    import ctypes.util

    find_library = ctypes.util.find_library
    sonames = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}

    def find_loadable(name: str) -> str | None:
        soname = sonames.get(name)
        if soname is not None:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        return find_library(name)

    ctypes.util.find_library = find_loadable
    try:
        import pyseccomp
    except ImportError as exc:
        raise SeccompError(f"the Python package pyseccomp is missing ({exc})") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: "Unable to find libseccomp"
        raise SeccompError(f"libseccomp cannot be loaded ({exc})") from None
    finally:
        ctypes.util.find_library = find_library
    return pyseccomp


def _seccomp(seccomp: Any, pid: int) -> list[str]:
    """Install the syscall filter for good, letting signals reach ``pid`` (the worker's own)
    only; return ``["seccomp"]``.

    Only the native architecture's syscalls are judged by the rules: a syscall made through
    another ABI (32-bit ``int 0x80`` on x86-64, x32) kills the worker (SIGSYS), since the
    rules, written in native numbers, would not see it.

    Raises:
        SeccompError: libseccomp or the kernel refused the filter.
    """
    try:
        rules: list[tuple[int, str, tuple[Any, ...]]] = []
        eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
        rules += [(eperm, name, ()) for name in SECCOMP_DENIED]
        rules += [(enosys, name, ()) for name in SECCOMP_UNSUPPORTED]
        rules += [(eperm, n, (seccomp.Arg(0, seccomp.NE, pid),)) for n in SECCOMP_SIGNAL_SELF]
        rules += [
            (eperm, name, (seccomp.Arg(arg, seccomp.MASKED_EQ, mask, value),))
            for name, arg, mask, value in SECCOMP_DENIED_WHEN
        ]
        rules.append((eperm, "prlimit64", (seccomp.Arg(2, seccomp.NE, 0),)))  # setting one
        syscall_filter = seccomp.SyscallFilter(seccomp.ALLOW)
        syscall_filter.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
        for action, name, args in rules:
            found = _syscall_number(seccomp, name)
            if found is not None:
                syscall_filter.add_rule(action, found, *args)
        syscall_filter.load()
    except OSError as exc:
        raise SeccompError(f"libseccomp or the kernel refused the filter ({exc})") from None
    return ["seccomp"]


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
        seccomp = _import_seccomp() if config["seccomp"] else None
        _warm_up()
        np.seterr(all="ignore")  # non-finite results are counted by the parent's guard
        hardening = _harden(config)
        low, high = sorted((proto_in, proto_out))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        os.chdir("/")
        if seccomp is not None:  # last: it forbids some of the above
            hardening += _seccomp(seccomp, os.getpid())
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
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: report, go on
            kind = "exception"
            if isinstance(exc, wire.BadOutput):
                kind = "bad_output"
            elif isinstance(exc, MemoryError):
                kind = "memory"
            wire.send_json(proto_out, wire.OP_ERROR, wire.error_message(kind, exc, source_lines))
        else:
            wire.send(proto_out, wire.OP_RESULT, parts)


if __name__ == "__main__":
    main()
