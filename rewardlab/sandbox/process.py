"""The parent's side of the sandbox: start a worker process for one program and call it.

:class:`SandboxWorker` starts ``worker.py`` in its own process group with a minimal
environment, hands it the program and its :class:`SandboxLimits`, and runs each batch as one
framed call with a deadline. Everything the worker answers is decoded as hostile input
(``protocol.decode_result``, ``decode_error``, ``decode_ready``: sizes, JSON nesting, types and
strings bounded); any misbehaviour is raised as :class:`ProgramContained`, never as another
exception, and a worker that broke the protocol is killed. What the worker applies to
itself, and what each layer protects, is in the README's security section;
:attr:`SandboxWorker.hardening` lists the layers one worker got.

Failures raise :class:`ProgramContained` with one of these ``reason`` codes:

- ``"startup"``: the worker did not start or the program failed to load.
- ``"timeout"``: a call exceeded ``call_timeout_s``; the worker was killed.
- ``"cpu_limit"``: the worker used up its lifetime CPU seconds (``SIGXCPU``).
- ``"memory"``: the program ran out of its address-space limit (``MemoryError``).
- ``"crashed"``: the worker died otherwise (a signal, an exit).
- ``"exception"``: ``compute_reward`` raised; the message has the error and its program lines.
- ``"bad_output"``: the return value broke the ``(reward, components)`` contract, or its
  component names differ from the first call's (the names are a fixed schema).
- ``"protocol"``: the worker sent a malformed answer, at startup or to a call (only code that
  escaped validation can); the worker was killed.
- ``"exception_budget"``: :class:`~rewardlab.sandbox.guard.GuardedProgram` saw
  ``max_exceptions`` failed calls.

Cost: a call is one pipe round trip plus framing and guards, 100-200 us for a batch of 8 on
a 2-vCPU VM, on top of the program's own time, which runs up to 2x slower than in the parent
(parent and worker share caches, or a CPU: a process switch in between costs the next one its
warm caches). While calls come less than 2 ms apart and the machine has a CPU to spare, the
worker polls for the next call instead of sleeping (see ``protocol.Reader``), which saves the
wake-up; otherwise, and 2 ms after the last call (a learner's update), it sleeps.

Not thread-safe: one caller at a time per worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from rewardlab.sandbox import protocol as wire
from rewardlab.sandbox import worker as _worker_module
from rewardlab.sandbox.validation import ValidatedProgram

__all__ = [
    "ProgramContained",
    "RewardCallResult",
    "SandboxLimits",
    "SandboxWorker",
]

_WORKER_PATH = str(Path(_worker_module.__file__).resolve())
# Everything the worker's environment holds: no inherited variable can carry a secret in.
_WORKER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    # One thread: RLIMIT_NPROC counts threads, and reward programs are tiny batched numpy.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # A fixed hash seed: the iteration order of a set of strings is then the same in every
    # worker, so it cannot make a reward differ between the check's worker and training's.
    # (Hence no -E/-I on the command line, which would ignore these variables: the worker's
    # environment is exactly this mapping, so nothing else can reach the interpreter.)
    "PYTHONHASHSEED": "0",
    "PYTHONNOUSERSITE": "1",  # -s
    "PYTHONSAFEPATH": "1",  # -P (Python >= 3.11): not the script's folder on sys.path
    "PYTHONDONTWRITEBYTECODE": "1",  # -B
}
# Polling instead of sleeping (wire.Reader): the parent polls for an answer for up to twice
# the recent call time, and asks the worker to poll for the next call for up to twice the
# recent gap between calls (averages of times clipped at 2 * SPIN_MAX_S, so that one long
# pause, e.g. a learner's update, does not stop it), each at most wire.SPIN_MAX_S. Neither
# polls when calls come further apart than that, nor while the machine has no CPU to spare
# (sampled from /proc/loadavg every _LOAD_EVERY calls): a polling worker would take it from the
# parent or from other work.
_LOAD_EVERY = 16


class ProgramContained(RuntimeError):
    """A reward program failed or misbehaved at run time, and was contained.

    Attributes:
        reason: Machine-readable code (see the module docstring).
        message: What happened, readable by the LLM that wrote the program (error type and
            message, the program's own traceback lines, how to fix it).
        last_reason: For ``"exception_budget"``, the reason of the last failed call.
    """

    def __init__(self, reason: str, message: str, *, last_reason: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.last_reason = last_reason

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds from args (one string), which __init__ does not take: one
        # raised in a process pool's or Ray's worker could not be unpickled in the parent.
        return (type(self), (self.reason, self.message), {"last_reason": self.last_reason})


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits and isolation settings of a sandbox worker.

    Attributes:
        memory_bytes: Address-space limit (``RLIMIT_AS``). numpy alone maps ~100-300 MB.
        cpu_seconds: CPU seconds over the worker's life (``RLIMIT_CPU``), a backstop in case
            the parent stops watching; :class:`GuardedProgram` replaces a worker that has used
            half of it (in calls, or polling for them).
        open_files: ``RLIMIT_NOFILE``: enough for the pipes and shared libraries.
        processes: ``RLIMIT_NPROC`` (0: no child processes or threads). Enforced only for a
            non-root worker, hence the privilege drop.
        file_size_bytes: ``RLIMIT_FSIZE``, bounding the worker's stderr file.
        call_timeout_s: Wall-clock limit of one call, after which the worker is killed.
        startup_timeout_s: Wall-clock limit for starting the worker and loading the program.
        uid: User a worker started by root switches to (None: stay root, and lose
            ``RLIMIT_NPROC``).
        gid: Group a worker started by root switches to.
        isolate_network: Put the worker in an empty network namespace (no route to any
            host, not even this one's loopback) where the kernel allows: as root, or in a
            new user namespace where unprivileged user namespaces are allowed.
        isolate_ipc: Put the worker in a new IPC namespace (no SysV IPC objects or POSIX
            message queues of others; its own die with it), where allowed as above.
        landlock: Where the kernel has Landlock (Linux >= 5.13), take from the worker every
            file access but reading the Python standard library, numpy and the folders of
            the shared libraries loaded at startup, TCP (kernel ABI >= 4), and signals and
            abstract UNIX sockets to other processes (ABI >= 6).
        seccomp: Install a syscall filter (Linux, with libseccomp and the ``pyseccomp``
            package) before the program is compiled: no sockets of any kind, SysV IPC,
            keyrings, new processes or programs, signals to other processes, namespaces,
            mounts, ``ptrace``, io_uring, ``bpf``, ``ioctl``, changing files or opening them for
            writing, or syscalls of another ABI (32-bit or x32: the worker is killed). A
            denied call fails with ``PermissionError``. Where the filter cannot be
            installed, the worker does not start; False runs without it.
    """

    memory_bytes: int = 1 << 30
    cpu_seconds: int = 60
    open_files: int = 16
    processes: int = 0
    file_size_bytes: int = 1 << 20
    call_timeout_s: float = 2.0
    startup_timeout_s: float = 10.0
    uid: int | None = 65534
    gid: int = 65534
    isolate_network: bool = True
    isolate_ipc: bool = True
    landlock: bool = True
    seccomp: bool = True

    def __post_init__(self) -> None:
        if self.memory_bytes < 256 << 20:
            raise ValueError(
                f"memory_bytes must be at least 256 MiB (numpy alone needs ~100-300 MB of "
                f"address space), got {self.memory_bytes}"
            )
        for name, low in (("cpu_seconds", 1), ("open_files", 1), ("file_size_bytes", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.open_files < 8:
            raise ValueError(f"open_files must be >= 8 (pipes and stdio), got {self.open_files}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0, got {self.processes}")
        for name in ("call_timeout_s", "startup_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class RewardCallResult:
    """One call's rewards.

    Attributes:
        reward: ``(B,)`` float64.
        components: Named ``(B,)`` float64 arrays, as the program returned them (a program's
            components need not sum to its reward).
        error: For a failed call that :class:`GuardedProgram` absorbed (``reward`` is then its
            fallback), ``"<reason>: <message>"``; None otherwise.
    """

    reward: np.ndarray
    components: Mapping[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None


def _terminate(proc: subprocess.Popen[bytes], owner: int) -> None:
    """Kill the worker's process group (if the worker is not yet reaped) and reap it."""
    if os.getpid() != owner:
        return  # a forked copy of the parent: the worker is not its child to kill
    if proc.returncode is None:
        # The unreaped leader keeps its pid, hence the group id, from being reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class SandboxWorker:
    """One worker process running one validated reward program.

    Args:
        program: The program to run (from
            :func:`~rewardlab.sandbox.validation.validate_program`).
        limits: Resource limits and isolation settings.
        components: The component names every call must return (in any order); None: those
            of the first answered call. A later worker of the same program takes the first
            one's, so that restarts cannot change them either.

    Raises:
        ProgramContained: With reason ``"startup"`` when the worker does not come up, or
            ``"protocol"`` when its answer to the program is malformed.

    Attributes:
        program: The program it runs.
        limits: Its limits.
        hardening: What the worker applied, in order: ``"rlimits"``, and where possible
            ``"userns"`` (a non-root worker's way to the next two), ``"netns"``,
            ``"ipcns"``, ``"no_new_privs"``, ``"landlock_fs"``, ``"landlock_tcp"``,
            ``"landlock_scope"`` (see :class:`SandboxLimits`), ``"uid=<uid>"`` (root
            dropped), ``"pdeathsig"`` and ``"seccomp"``.
        components: The component names calls return (None before the first answer).
        calls: Calls answered so far.
        busy_seconds: Wall-clock seconds spent in calls.
        cpu_seconds: The worker's CPU seconds as of its last answer, by its own account
            (polling for calls counts, see ``wire.Reader``); a lie only gets it replaced
            sooner, or killed by ``RLIMIT_CPU``.
    """

    def __init__(
        self,
        program: ValidatedProgram,
        limits: SandboxLimits | None = None,
        *,
        components: tuple[str, ...] | None = None,
    ) -> None:
        if not isinstance(program, ValidatedProgram):
            raise TypeError(
                f"program must be a ValidatedProgram (from validate_program), got "
                f"{type(program).__name__}"
            )
        self.program = program
        self.limits = limits if limits is not None else SandboxLimits()
        self.components = components
        # The names tuple of the last call that matched them: while the worker sends the same
        # names field, decode_result returns this very object (its cache), so the check that
        # the names did not change is an identity test.
        self._known_names = components
        self.calls = 0
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0
        self._call_s = self._gap_s = wire.SPIN_MAX_S / 4
        self._ended = self._spin_s = 0.0
        self._others = 0.0  # average count of runnable processes other than ours
        self._cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self._spare_cpu = True
        self._next_load = 0
        self.hardening: tuple[str, ...] = ()
        self._params = program.parameters
        self._shapes = program.parameter_shapes
        # Lives as long as the worker; close() closes it.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        if not sys.executable:
            raise RuntimeError("sys.executable is empty: cannot start a Python worker process")
        self._proc = subprocess.Popen(
            [sys.executable, "-s", "-B", _WORKER_PATH],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(_WORKER_ENV),
            cwd="/",
            start_new_session=True,
            close_fds=True,
            bufsize=0,
        )
        self._finalizer = weakref.finalize(self, _terminate, self._proc, os.getpid())
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._wfd = self._proc.stdin.fileno()
        self._rfd = self._proc.stdout.fileno()
        os.set_blocking(self._wfd, False)
        self._replies = wire.Reader(self._rfd)
        self._poll_out = select.poll()
        self._poll_out.register(self._wfd, select.POLLOUT)
        # Per-call caches: the schema and wire order of each input signature, the names of
        # each names field.
        self._schemas: dict[
            tuple[tuple[np.dtype[Any], tuple[int, ...]], ...], tuple[bytes, tuple[int, ...]]
        ] = {}
        self._names: dict[bytes, tuple[str, ...]] = {}
        self._start()

    @property
    def pid(self) -> int:
        """The worker's process id (also its process group id)."""
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """True while the worker runs and can take calls."""
        return self._proc.returncode is None and self._proc.poll() is None

    def _start(self) -> None:
        limits = self.limits
        load = {
            # Every limit but the timeouts, which the parent enforces.
            **{name: v for name, v in asdict(limits).items() if not name.endswith("_timeout_s")},
            "source": self.program.source,
            "parent_pid": os.getpid(),
            "parent_death_signal": threading.current_thread() is threading.main_thread(),
        }
        body = json.dumps(load).encode()
        deadline = time.monotonic() + limits.startup_timeout_s
        reason = "startup"
        try:
            self._write(wire.FRAME.pack(len(body), wire.OP_LOAD) + body, deadline)
            op, reply = self._read(deadline, wire.MAX_JSON_BODY)
        except _Broken as exc:
            if exc.reason == "protocol":
                reason, problem = "protocol", f"the worker broke the protocol: {exc.message}"
            else:
                self._fail_stop(0.2)
                tail = self._stderr_tail()
                problem = (
                    f"the sandbox worker did not start ({exc.reason}"
                    f"{': ' * bool(exc.message)}{exc.message})"
                    + (f"; its stderr ends with:\n{tail}" if tail else "")
                )
        else:
            if op == wire.OP_READY:
                try:
                    self.hardening = wire.decode_ready(reply)
                    return
                except Exception as exc:  # noqa: BLE001  (hostile bytes: any failure is theirs)
                    reason, problem = "protocol", f"malformed startup answer: {_why(exc)}"
            elif op == wire.OP_ERROR:
                try:
                    problem = wire.decode_error(reply, wire.STARTUP_ERRORS)[1]
                except Exception as exc:  # noqa: BLE001
                    reason, problem = "protocol", f"malformed startup error: {_why(exc)}"
            else:
                reason, problem = "protocol", f"unexpected startup answer (opcode {op})"
        self.close()
        raise ProgramContained(reason, problem)

    def call(self, variables: Mapping[str, Any]) -> RewardCallResult:
        """Run ``compute_reward`` on one batch.

        Args:
            variables: At least every variable the program takes, as arrays with the same
                leading batch dimension ``B`` (bool, int or float dtypes). Extra keys are
                ignored.

        Returns:
            The reward and components, float64 ``(B,)`` each, unguarded (may be non-finite).

        Raises:
            ValueError: When ``variables`` lacks a parameter or the arrays do not fit (the
                caller's mistake, not the program's; the worker is unaffected).
            ProgramContained: When the program failed (see the module docstring for reasons).
                After ``"timeout"``, ``"cpu_limit"``, ``"crashed"`` or ``"protocol"`` the worker
                is dead; start a new one to go on.
        """
        names, block = self.call_block(variables)
        return RewardCallResult(block[0], {name: block[row] for row, name in enumerate(names, 1)})

    def call_block(self, variables: Mapping[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
        """:meth:`call`'s answer as (component names, ``(1 + C, B)`` block: reward first).

        The cheaper form, for callers that treat reward and components alike.
        """
        # Only a worker we stopped: one that died since is noticed by the call (EOF).
        if self._proc.returncode is not None:
            raise ProgramContained(
                "crashed", "the worker is no longer running; start a new SandboxWorker"
            )
        arrays, batch, schema = self._inputs(variables)
        start = time.monotonic()
        spin_us = round(self._plan_spin(start) * 1e6)
        size = wire.REQUEST.size + len(schema) + sum(array.nbytes for array in arrays)
        parts: list[Any] = [
            wire.FRAME.pack(size, wire.OP_CALL),
            wire.REQUEST.pack(len(schema), spin_us, batch),
            schema,
            *arrays,
        ]
        data = b"".join(parts)
        deadline = start + self.limits.call_timeout_s
        try:
            self._write(data, deadline)
            op, body = self._read(deadline, self._max_reply(batch))
        except _Broken as exc:
            raise self._contain(exc) from None
        except BaseException:
            # Interrupted mid-call (KeyboardInterrupt in the parent): the answer still in the
            # pipe would be read as the next call's. Never reuse this worker.
            self._fail_stop(0.0)
            raise
        finally:
            self._ended = time.monotonic()
            took = self._ended - start
            self.busy_seconds += took
            self._call_s += 0.25 * (min(took, 2 * wire.SPIN_MAX_S) - self._call_s)
        if op == wire.OP_RESULT:
            try:
                names, block, self.cpu_seconds = wire.decode_result(body, batch, self._names)
            except Exception as exc:  # noqa: BLE001  (hostile bytes: any failure is theirs)
                raise self._contain(_Broken("protocol", f"malformed result: {_why(exc)}")) from None
            self.calls += 1
            if names is not self._known_names:
                self._check_names(names)
            return names, block
        if op == wire.OP_ERROR:
            try:
                kind, text = wire.decode_error(body, wire.CALL_ERRORS)
            except Exception as exc:  # noqa: BLE001
                raise self._contain(_Broken("protocol", f"malformed error: {_why(exc)}")) from None
            self.calls += 1
            raise ProgramContained(kind, text)
        raise self._contain(_Broken("protocol", f"unexpected opcode {op}"))

    def _check_names(self, names: tuple[str, ...]) -> None:
        """Fix the component names at the first answer; ``"bad_output"`` if they change."""
        if self.components is None:
            self.components = names
        elif set(names) != set(self.components):
            added = sorted(set(names) - set(self.components))
            missing = sorted(set(self.components) - set(names))
            raise ProgramContained(
                "bad_output",
                f"compute_reward returned other component names than on its first call "
                f"(new: {added}, missing: {missing}); return the same names on every call, "
                "whatever the states",
            )
        self._known_names = names

    def close(self) -> None:
        """Kill the worker (it holds no state worth a graceful exit) and free its pipes."""
        self._finalizer()
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> SandboxWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _inputs(self, variables: Mapping[str, Any]) -> tuple[list[np.ndarray], int, bytes]:
        """The parameters' arrays, the batch size and the schema; ValueError if they misfit."""
        try:
            arrays = [np.asarray(variables[name], order="C") for name in self._params]
        except KeyError:
            missing = [name for name in self._params if name not in variables]
            raise ValueError(
                f"variables lack {missing}, which compute_reward takes; pass every state "
                f"variable the program uses: {list(self._params)}"
            ) from None
        # Fast path: a signature seen before was fully checked then.
        shapes = [array.shape for array in arrays]
        if all(shapes):
            batch = shapes[0][0]
            if all(shape[0] == batch for shape in shapes):
                key = tuple((a.dtype, shape[1:]) for a, shape in zip(arrays, shapes, strict=True))
                known = self._schemas.get(key)
                if known is not None:
                    schema, order = known
                    return [arrays[i] for i in order], batch, schema
        return self._check_inputs(arrays)

    def _check_inputs(self, arrays: list[np.ndarray]) -> tuple[list[np.ndarray], int, bytes]:
        batch = -1
        for name, shape, array in zip(self._params, self._shapes, arrays, strict=True):
            if array.dtype.kind not in wire.WIRE_KINDS or array.dtype.itemsize > 8:
                raise ValueError(
                    f"variable {name!r} has dtype {array.dtype}; pass bool, int or float arrays "
                    "of at most 64 bits"
                )
            if array.ndim == 0:
                raise ValueError(f"variable {name!r} is a scalar; it needs a leading batch axis")
            if batch < 0:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise ValueError(
                    f"variable {name!r} has batch size {array.shape[0]}, "
                    f"{self._params[0]!r} has {batch}"
                )
            if shape is not None and array.shape[1:] != shape:
                raise ValueError(
                    f"variable {name!r} has per-row shape {array.shape[1:]}, declared {shape}"
                )
        # Largest items first: every array is then aligned in the worker (wire.REQUEST).
        order = tuple(sorted(range(len(arrays)), key=lambda i: -arrays[i].dtype.itemsize))
        schema = wire.encode_schema((self._params[i], arrays[i]) for i in order)
        if len(self._schemas) < 64:
            self._schemas[tuple((a.dtype, a.shape[1:]) for a in arrays)] = (schema, order)
        return [arrays[i] for i in order], batch, schema

    def _plan_spin(self, now: float) -> float:
        """How long the worker should poll for the next call after answering this one."""
        gap = now - self._ended
        self._gap_s += 0.25 * (min(gap, 2 * wire.SPIN_MAX_S) - self._gap_s)
        self._next_load -= 1
        if self._next_load <= 0:
            self._next_load = _LOAD_EVERY
            # The parent is runnable, and so is the worker while it polls.
            others = _runnable() - 1 - (gap < self._spin_s)
            self._others += 0.25 * (others - self._others)
            self._spare_cpu = self._others + 2 <= self._cpus + 0.5
        spin = min(2 * self._gap_s, wire.SPIN_MAX_S)
        self._spin_s = spin if self._spare_cpu and self._gap_s < wire.SPIN_MAX_S else 0.0
        return self._spin_s

    def _max_reply(self, batch: int) -> int:
        rows = 8 * (1 + wire.MAX_COMPONENTS) * batch
        return max(wire.MAX_JSON_BODY, wire.RESULT.size + wire.MAX_NAMES_FIELD + rows)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._wfd, view) :]
            except BlockingIOError:
                ready = self._poll_out.poll(_ms_left(deadline))
                if not ready and time.monotonic() >= deadline:
                    raise _Broken("timeout", "") from None
            except BrokenPipeError:
                raise _Broken("eof", "") from None

    def _read(self, deadline: float, max_body: int) -> tuple[int, bytearray]:
        data = bytearray()
        total = wire.FRAME.size
        spin_s = min(2 * self._call_s, wire.SPIN_MAX_S) if self._spare_cpu else 0.0
        while len(data) < total:
            if data and time.monotonic() >= deadline:
                # Bytes trickling in: each read returns some before the deadline, the answer
                # never completes.
                raise _Broken("timeout", "")
            try:
                chunk = self._replies.read(
                    1 << 16 if total == wire.FRAME.size else total - len(data),
                    0.0 if data else spin_s,
                    deadline,
                )
            except TimeoutError:
                raise _Broken("timeout", "") from None
            if not chunk:
                raise _Broken("eof", "")
            data += chunk
            if total == wire.FRAME.size and len(data) >= total:
                length, _ = wire.FRAME.unpack_from(data)
                if length > max_body:
                    raise _Broken("protocol", f"an answer of {length} bytes (limit {max_body})")
                total += length
            if len(data) > total:
                raise _Broken("protocol", "bytes past the end of an answer")
        return data[4], data[wire.FRAME.size :]

    def _fail_stop(self, grace_s: float) -> os.waitid_result | None:
        """Stop the worker; how it ended by itself within ``grace_s``, or None if it had not."""
        info = None
        deadline = time.monotonic() + grace_s
        while self._proc.returncode is None:
            # WNOWAIT: learn the exit status without reaping, so the group id stays ours
            # until _terminate has killed the group.
            try:
                info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped behind our back (a SIGCHLD handler)
                break
            if info is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        self._finalizer()
        return info

    def _contain(self, exc: _Broken) -> ProgramContained:
        """Kill the worker after a broken call; the exception to raise, with its reason."""
        timeout = self.limits.call_timeout_s
        if exc.reason == "timeout":
            self._fail_stop(0.0)
            return ProgramContained(
                "timeout",
                f"compute_reward did not return within {timeout:g} s and was stopped (an "
                "endless loop, or too much work for one batch: use vectorized numpy over the "
                "batch instead of Python loops)",
            )
        if exc.reason == "protocol":
            self._fail_stop(0.0)
            return ProgramContained("protocol", f"the worker broke the protocol: {exc.message}")
        info = self._fail_stop(0.5)
        tail = self._stderr_tail()
        detail = f"; its stderr ends with:\n{tail}" if tail else ""
        if info is None:
            return ProgramContained("crashed", "the worker closed its pipe and was killed" + detail)
        if info.si_code == os.CLD_EXITED:
            if "MemoryError" in tail:
                return ProgramContained("memory", "the worker ran out of memory" + detail)
            return ProgramContained(
                "crashed", f"the worker exited with status {info.si_status}" + detail
            )
        name = _signal_name(info.si_status)
        if info.si_status == signal.SIGXCPU:
            return ProgramContained(
                "cpu_limit",
                f"the worker used up its {self.limits.cpu_seconds} CPU seconds ({name})",
            )
        return ProgramContained("crashed", f"the worker was killed by {name}" + detail)

    def _stderr_tail(self, chars: int = 1000) -> str:
        try:
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - 4 * chars))
            text = self._stderr.read().decode(errors="replace")[-chars:].strip()
        except (OSError, ValueError):
            return ""
        return wire.printable(text)  # the worker wrote it: no terminal escapes


class _Broken(Exception):
    """The worker did not answer a call properly (internal to SandboxWorker)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message


def _runnable() -> int:
    """Processes running or ready to run on this machine (1 where that is unknown)."""
    try:
        with open("/proc/loadavg", "rb") as file:
            return int(file.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 1


def _ms_left(deadline: float) -> int:
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _why(exc: Exception) -> str:
    """What was malformed, in at most 300 characters (the message may quote the worker)."""
    text = wire.printable(str(exc)) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
