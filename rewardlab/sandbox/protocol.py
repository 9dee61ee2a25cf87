"""What passes between the sandbox's parent and its worker process: frames, arrays, errors.

Both sides import this module: the parent as ``rewardlab.sandbox.protocol``, the worker (run by
path, see ``worker.py``) by its file, so it needs only the standard library and numpy.

Wire format (both directions): a frame is ``<IB`` (body length, opcode) and the body. Arrays
travel as raw bytes behind a small header (see ``REQUEST`` and ``RESULT``), never pickled, so
the parent decodes the worker's answers with ``struct`` and ``np.frombuffer`` alone; the few
non-array messages (LOAD, READY, ERROR) are JSON. One call is one write and one read on each
side.

The return contract of ``compute_reward`` (:func:`check_output`) is checked in the worker, so
that an honest program's mistake comes back as a readable ``"bad_output"`` error; the parent
checks the answer again, since a program that escaped validation controls the worker.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: File name reward programs are compiled under; tracebacks keep only frames from it.
PROGRAM_FILENAME = "<reward_program>"

# ---------------------------------------------------------------------------------------------
# Framing and arrays
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
# Messages and the return contract

_MAX_TEXT = 2000  # characters of an error message or traceback sent back
_MAX_REQUEST = 1 << 30


class BadOutput(Exception):
    """compute_reward returned something that breaks the (reward, components) contract."""


def send(fd: int, op: int, parts: list[Any]) -> None:
    body_len = sum(memoryview(part).nbytes for part in parts)
    data = b"".join([FRAME.pack(body_len, op), *parts])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_json(fd: int, op: int, message: Mapping[str, object]) -> None:
    send(fd, op, [json.dumps(message).encode()])


def recv(reader: Reader, spin_s: float = 0.0) -> tuple[int, bytearray] | None:
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
        raise BadOutput(
            f"{what} must be a numpy array of shape ({batch},), one value per batch row, got "
            f"{_describe(value)}; build it from the batched inputs (e.g. -np.linalg.norm(a - b, "
            "axis=-1)) or use np.full(n, value) for a constant"
        )
    if value.dtype.kind not in WIRE_KINDS:
        raise BadOutput(f"{what} must hold real numbers, got dtype {value.dtype}")
    if value.shape != (batch,):
        raise BadOutput(
            f"{what} has shape {value.shape}, it must be ({batch},): one value per batch row "
            "(reduce the trailing axes, e.g. with axis=-1, or reshape(-1) a (B, 1) array)"
        )
    return value


def check_output(result: object, batch: int) -> tuple[list[str], list[np.ndarray]]:
    """Component names and the (B,) arrays to send, the reward first."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise BadOutput(
            f"compute_reward must return a tuple (reward, components), got {_describe(result)}"
        )
    reward, components = result
    values = [_batch_array("reward", reward, batch)]
    if not isinstance(components, dict):
        raise BadOutput(
            f"components must be a dict {{name: array of shape ({batch},)}}, "
            f"got {_describe(components)}"
        )
    if len(components) > MAX_COMPONENTS:
        raise BadOutput(f"{len(components)} components, at most {MAX_COMPONENTS} allowed")
    for name, value in components.items():
        if not isinstance(name, str) or not name or len(name) > 100 or "\0" in name:
            raise BadOutput(f"component names must be strings of 1-100 characters, got {name!r}")
        values.append(_batch_array(f"components[{name!r}]", value, batch))
    return list(components), values


def encode_result(names: list[str], values: list[np.ndarray]) -> list[Any]:
    field = _padded("\0".join(names).encode())
    rows = [np.ascontiguousarray(value, np.float64) for value in values]
    return [RESULT.pack(len(field), time.process_time()), field, *rows]


def error_message(kind: str, exc: BaseException, source_lines: list[str]) -> dict[str, str]:
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
