"""The sandbox worker: one process that runs one reward program, started by ``sandbox.py``.

Run as ``python -I -B _sandbox_worker.py`` (by path, so it imports only the standard library
and numpy, never ``rewardlab`` and whatever that pulls in). Everything the reward program can
touch lives in this process; the parent treats every byte it sends back as untrusted.

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

Wire format (both directions): a frame is ``<IB`` (body length, opcode) and the body. Arrays
travel as raw bytes behind a small header (see ``REQUEST`` and ``RESULT``), never pickled, so
the parent decodes the worker's answers with ``struct`` and ``np.frombuffer`` alone; the few
non-array messages (LOAD, READY, ERROR) are JSON. One call is one write and one read on each
side.

The module is also imported by :mod:`rewardlab.reward_models.program` for
:data:`SAFE_BUILTINS` and :func:`compile_reward_function`, so the parent's in-process compile
and the worker's are the same code.
"""

from __future__ import annotations
import __future__

import builtins
import json
import math
import os
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROGRAM_FILENAME",
    "SAFE_BUILTINS",
    "Reader",
    "compile_reward_function",
    "decode_request",
    "decode_result",
    "encode_schema",
    "parse_schema",
]

#: File name reward programs are compiled under; tracebacks keep only frames from it.
PROGRAM_FILENAME = "<reward_program>"

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
#: is the boundary; the AST validation in ``program.py`` is the first line of defence.
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
    code = compile(source, PROGRAM_FILENAME, "exec", flags=_ANNOTATIONS_FLAG, dont_inherit=True)
    exec(code, namespace)
    function = namespace.get("compute_reward")
    if not callable(function):
        raise LookupError("the program defines no function compute_reward")
    return function


# ---------------------------------------------------------------------------------------------
# Wire format

FRAME = struct.Struct("<IB")  # body length, opcode
OP_LOAD, OP_CALL = 1, 2
OP_READY, OP_RESULT, OP_ERROR = 10, 11, 12

# CALL body: schema length, how long the worker may poll for the next call after answering
# this one (microseconds, see Reader), batch size; the schema (ASCII, zero-padded to 8 bytes);
# then each array's raw C-order bytes in schema order. The schema, "name:dtype:d1,d2;..." with
# per-row shapes, is the same from call to call, so both sides cache its parsing. The parent
# lists the arrays by decreasing item size, so that every array is aligned for its dtype
# (numpy is slower on unaligned arrays).
REQUEST = struct.Struct("<H2xIQ")
#: The worker polls for the next call for at most this long, whatever the parent asks.
SPIN_MAX_S = 0.002
# RESULT body: length of the names field, the worker's CPU seconds so far; the component
# names joined by NUL, zero-padded to 8 bytes; then a (1 + C, B) float64 block: the reward,
# then each component.
RESULT = struct.Struct("<H6xd")

#: Dtype kinds that travel: bool, signed and unsigned ints, floats (no objects, no strings).
WIRE_KINDS = frozenset("biuf")
MAX_COMPONENTS = 64
_MAX_DIM = 8


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def encode_schema(arrays: Iterable[tuple[str, np.ndarray]]) -> bytes:
    """The schema of a CALL: names, dtypes and per-row shapes, padded to 8 bytes."""
    entries = (
        f"{name}:{array.dtype.str}:{','.join(map(str, array.shape[1:]))}" for name, array in arrays
    )
    return _padded(";".join(entries).encode("ascii"))


def parse_schema(
    schema: bytes, max_arrays: int
) -> list[tuple[str, np.dtype[Any], tuple[int, ...]]]:
    """Inverse of :func:`encode_schema`.

    Raises:
        ValueError: On a malformed schema.
    """
    text = schema.rstrip(b"\0").decode("ascii")
    entries = text.split(";") if text else []
    if len(entries) > max_arrays:
        raise ValueError(f"{len(entries)} arrays, at most {max_arrays} expected")
    parsed = []
    for entry in entries:
        name, dtype_str, dims = entry.split(":")
        dtype = np.dtype(dtype_str)
        if dtype.kind not in WIRE_KINDS or dtype.itemsize > 8:
            raise ValueError(f"dtype {dtype_str!r} is not a bool, int or float dtype")
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        if len(shape) >= _MAX_DIM or min(shape, default=0) < 0:
            raise ValueError(f"bad per-row shape {shape}")
        parsed.append((name, dtype, shape))
    return parsed


#: Where each array of a CALL body lies: (name, dtype, shape, offset) each, and the body size.
Layout = tuple[list[tuple[str, np.dtype[Any], tuple[int, ...], int]], int]


def decode_request(
    body: bytearray, layouts: dict[bytes, Layout]
) -> tuple[dict[str, np.ndarray], int, float]:
    """The arrays of a CALL body, as writable views of ``body``, the batch size and how long
    to poll for the next call (seconds).

    ``layouts`` caches the layout of each batch size and schema seen.

    Raises:
        ValueError: On a malformed body.
    """
    schema_len, spin_us, batch = REQUEST.unpack_from(body)
    key = bytes(body[8 : REQUEST.size + schema_len])  # batch size and schema
    layout = layouts.get(key)
    if layout is None:
        layout = _layout(key[8:], batch)
        if len(layouts) < 64:
            layouts[key] = layout
    entries, size = layout
    if len(body) != size:
        raise ValueError(f"request of {len(body)} bytes, its schema says {size}")
    arrays = {
        name: np.ndarray(shape, dtype, body, offset) for name, dtype, shape, offset in entries
    }
    return arrays, batch, min(spin_us * 1e-6, SPIN_MAX_S)


def _layout(schema: bytes, batch: int) -> Layout:
    offset = REQUEST.size + len(schema)
    entries = []
    for name, dtype, shape in parse_schema(schema, 256):
        entries.append((name, dtype, (batch, *shape), offset))
        offset += batch * math.prod(shape) * dtype.itemsize
    return entries, offset


def decode_result(
    body: bytearray, batch: int, names_cache: dict[bytes, tuple[str, ...]]
) -> tuple[tuple[str, ...], np.ndarray, float]:
    """(component names, ``(1 + C, batch)`` float64 block, worker CPU seconds) of a RESULT.

    The sender is not trusted: every length is checked against the body, names are checked
    once per distinct names field (``names_cache``).

    Raises:
        ValueError: On a malformed body.
    """
    if len(body) < RESULT.size:
        raise ValueError("result shorter than its header")
    names_len, cpu_seconds = RESULT.unpack_from(body)
    if not (math.isfinite(cpu_seconds) and cpu_seconds >= 0):
        raise ValueError(f"CPU time {cpu_seconds}")
    offset = RESULT.size + names_len
    field = bytes(body[RESULT.size : offset])
    names = names_cache.get(field)
    if names is None:
        text = field.rstrip(b"\0").decode()
        names = tuple(text.split("\0")) if text else ()
        if len(names) > MAX_COMPONENTS or len(set(names)) != len(names) or "" in names:
            raise ValueError("component names must be unique, non-empty and at most 64")
        if len(names_cache) < 64:
            names_cache[field] = names
    rows = 1 + len(names)
    if len(body) != offset + 8 * rows * batch:
        raise ValueError(f"result of {len(body)} bytes for {rows} rows of {batch}")
    block = np.frombuffer(body, np.float64, rows * batch, offset).reshape(rows, batch)
    return names, block, cpu_seconds


# A try of a spinning read that takes longer than this was preempted: another process wants
# the CPU, so spinning would only take it from them.
_PREEMPTED_S = 250e-6
_QUIET_MIN_S, _QUIET_MAX_S = 0.01, 1.0


class Reader:
    """Reads a pipe (made non-blocking), retrying briefly before sleeping until data comes.

    Being woken from sleep can cost 50-500 us on a VM (the process then also runs on cold
    caches): more than a reward call. So a read may *spin* first: retry for up to ``spin_s``,
    yielding the CPU between tries, then sleep in ``poll``. A spin that is preempted ends at
    once, and spinning stays off for a while (10 ms, doubling while it keeps happening, up to
    1 s), so that a busy machine does not lose CPU time to it.

    Args:
        fd: The pipe's read end.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.poll = select.poll()
        self.poll.register(fd, select.POLLIN)
        self._quiet_until = 0.0
        self._quiet_s = _QUIET_MIN_S

    def read(self, size: int, spin_s: float = 0.0, deadline: float = math.inf) -> bytes:
        """Up to ``size`` bytes (``b""`` at end of file), spinning for up to ``spin_s`` first.

        Raises:
            TimeoutError: When nothing came before ``deadline`` (a ``time.monotonic()``).
        """
        now = last = time.monotonic()
        spin_until = now + spin_s if spin_s > 0 and now >= self._quiet_until else 0.0
        while True:
            try:
                data = os.read(self.fd, size)
            except BlockingIOError:
                now = time.monotonic()
            else:
                if spin_until:
                    self._quiet_s = _QUIET_MIN_S
                return data
            if now < spin_until:
                if now - last < _PREEMPTED_S:
                    last = now
                    os.sched_yield()
                    continue
                self._quiet_until = now + self._quiet_s
                self._quiet_s = min(2 * self._quiet_s, _QUIET_MAX_S)
                spin_until = 0.0
            if deadline == math.inf:
                self.poll.poll()
            elif (
                not self.poll.poll(max(0, math.ceil((deadline - now) * 1000)))
                and time.monotonic() >= deadline
            ):
                raise TimeoutError


# ---------------------------------------------------------------------------------------------
# Worker process

_MAX_TEXT = 2000  # characters of an error message or traceback sent back
_MAX_REQUEST = 1 << 30


class _BadOutput(Exception):
    """compute_reward returned something that breaks the (reward, components) contract."""


def _send(fd: int, op: int, parts: list[Any]) -> None:
    body_len = sum(memoryview(part).nbytes for part in parts)
    data = b"".join([FRAME.pack(body_len, op), *parts])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send_json(fd: int, op: int, message: Mapping[str, object]) -> None:
    _send(fd, op, [json.dumps(message).encode()])


def _recv(reader: Reader, spin_s: float = 0.0) -> tuple[int, bytearray] | None:
    """Next (opcode, body) from the parent, or None at end of file."""
    data = bytearray(reader.read(1 << 16, spin_s))
    if not data:
        return None
    while len(data) < FRAME.size:
        chunk = reader.read(FRAME.size - len(data))
        if not chunk:
            return None
        data += chunk
    length, op = FRAME.unpack_from(data)
    if length > _MAX_REQUEST:
        raise ValueError(f"request of {length} bytes")
    while len(data) < FRAME.size + length:
        chunk = reader.read(FRAME.size + length - len(data))
        if not chunk:
            return None
        data += chunk
    # A fresh bytearray per call: the decoded arrays are writable views of it and never alias
    # an earlier call's inputs.
    return op, data[FRAME.size :]


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, tuple):
        return f"a tuple of length {len(value)}"
    return f"a {type(value).__name__}"


def _batch_array(what: str, value: object, batch: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise _BadOutput(
            f"{what} must be a numpy array of shape ({batch},), one value per batch row, got "
            f"{_describe(value)}; build it from the batched inputs (e.g. -np.linalg.norm(a - b, "
            "axis=-1)) or use np.full(n, value) for a constant"
        )
    if value.dtype.kind not in WIRE_KINDS:
        raise _BadOutput(f"{what} must hold real numbers, got dtype {value.dtype}")
    if value.shape != (batch,):
        raise _BadOutput(
            f"{what} has shape {value.shape}, it must be ({batch},): one value per batch row "
            "(reduce the trailing axes, e.g. with axis=-1, or reshape(-1) a (B, 1) array)"
        )
    return value


def _check_output(result: object, batch: int) -> tuple[list[str], list[np.ndarray]]:
    """Component names and the (B,) arrays to send, the reward first."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise _BadOutput(
            f"compute_reward must return a tuple (reward, components), got {_describe(result)}"
        )
    reward, components = result
    values = [_batch_array("reward", reward, batch)]
    if not isinstance(components, dict):
        raise _BadOutput(
            f"components must be a dict {{name: array of shape ({batch},)}}, "
            f"got {_describe(components)}"
        )
    if len(components) > MAX_COMPONENTS:
        raise _BadOutput(f"{len(components)} components, at most {MAX_COMPONENTS} allowed")
    for name, value in components.items():
        if not isinstance(name, str) or not name or len(name) > 100 or "\0" in name:
            raise _BadOutput(f"component names must be strings of 1-100 characters, got {name!r}")
        values.append(_batch_array(f"components[{name!r}]", value, batch))
    return list(components), values


def _encode_result(names: list[str], values: list[np.ndarray]) -> list[Any]:
    field = _padded("\0".join(names).encode())
    rows = [np.ascontiguousarray(value, np.float64) for value in values]
    return [RESULT.pack(len(field), time.process_time()), field, *rows]


def _error(kind: str, exc: BaseException, source_lines: list[str]) -> dict[str, str]:
    """An error message for the parent: type, message and the program's own frames."""
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == PROGRAM_FILENAME and frame.lineno is not None:
            code = (
                source_lines[frame.lineno - 1].strip() if frame.lineno <= len(source_lines) else ""
            )
            frames.append(f"line {frame.lineno}, in {frame.name}: {code}")
    return {
        "kind": kind,
        "type": type(exc).__name__,
        "message": str(exc)[:_MAX_TEXT],
        "traceback": "\n".join(frames[-5:])[-_MAX_TEXT:],
    }


#: The ``np.linalg`` functions :func:`_warm_up` calls: every one a reward program may use
#: (``program.NUMPY_LINALG_ALLOWED``, which a test keeps equal to this).
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

    requests = Reader(proto_in)
    request = _recv(requests)
    if request is None or request[0] != OP_LOAD:
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
        _send_json(proto_out, OP_ERROR, _error("startup", exc, source_lines))
        sys.exit(1)
    _send_json(proto_out, OP_READY, {"hardening": hardening, "pid": os.getpid()})
    layouts: dict[bytes, Layout] = {}
    spin_s = 0.0
    while True:
        request = _recv(requests, spin_s)
        if request is None:
            return
        spin_s = 0.0
        op, body = request
        if op != OP_CALL:
            sys.exit(2)
        try:
            inputs, batch, spin_s = decode_request(body, layouts)
            result = function(**inputs)
            parts = _encode_result(*_check_output(result, batch))
        except _BadOutput as exc:
            _send_json(proto_out, OP_ERROR, _error("bad_output", exc, source_lines))
        except MemoryError as exc:
            _send_json(proto_out, OP_ERROR, _error("memory", exc, source_lines))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: report, go on
            _send_json(proto_out, OP_ERROR, _error("exception", exc, source_lines))
        else:
            _send(proto_out, OP_RESULT, parts)


if __name__ == "__main__":
    main()
