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
checks the answer again, since a program that escaped validation controls the worker: every
answer is decoded by :func:`decode_result`, :func:`decode_ready` or :func:`decode_error`,
which bound its size, the nesting of its JSON and each string in it, and check every type.

Component names (:func:`component_name_problem`) are identifiers of at most
:data:`MAX_NAME_CHARS` characters, at most :data:`MAX_COMPONENTS` of them, so that a name can
be a column of ``progress.csv``, a TensorBoard tag and an info key as it is. Where a name goes,
and so which names are reserved (:data:`RESERVED_NAMES`): a component ``<name>`` becomes the
info key ``reward_model/<name>`` (``potential_model/<name>`` for a shaping potential), the key
``<name>`` of ``reward_components.json`` and the tag ``reward/<name>`` beside the agent's
total reward, ``reward`` (and ``potential/<name>``), and a line ``<name>:`` of the LLM's reward
reflection beside ``total_reward:`` and ``task_success_rate:``. The project's own info keys
(``reward_model/``, ``potential_model/``, ``state/``, ``TimeLimit.truncated``) hold a ``/`` or a
``.``, which no identifier does, and its bare ones (``original_reward``, ``shaping``,
``potential``, ``is_success``, ``progress``, an env's ``reward_<term>``, ...) never share a
mapping with component names. So the names that can collide are exactly ``reward``,
``total_reward`` and ``task_success_rate``.
"""

from __future__ import annotations

import json
import math
import os
import re
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
#: Most components a program may return.
MAX_COMPONENTS = 32
#: Most characters of a component name.
MAX_NAME_CHARS = 64
#: Names no component may have: those of the totals reported beside the components (see the
#: module docstring).
RESERVED_NAMES = frozenset({"reward", "total_reward", "task_success_rate"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Most bytes of a RESULT's names field: every name, a separator each, the padding.
MAX_NAMES_FIELD = MAX_COMPONENTS * (MAX_NAME_CHARS + 1) + 8
_MAX_DIM = 8


def component_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a component name, or None when it can."""
    if not isinstance(name, str):
        return f"component names must be strings, got {_short_repr(name)} ({type(name).__name__})"
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        return (
            f"component name {_short_repr(name)} is not an identifier of at most "
            f"{MAX_NAME_CHARS} characters (letters, digits and _, not starting with a digit), "
            "e.g. 'goal_distance'"
        )
    if name in RESERVED_NAMES:
        return (
            f"component name {name!r} is reserved (the totals reported beside the components "
            f"are named {sorted(RESERVED_NAMES)}); name the term after what it measures, e.g. "
            "'goal_distance'"
        )
    return None


def _short_repr(value: object, chars: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= chars else text[: chars - 3] + "..."


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

    The sender is not trusted: every length is checked against the body, and the names
    against :func:`component_name_problem`, once per distinct names field (``names_cache``).

    Raises:
        ValueError: On a malformed body.
    """
    if len(body) < RESULT.size:
        raise ValueError("result shorter than its header")
    names_len, cpu_seconds = RESULT.unpack_from(body)
    if not (math.isfinite(cpu_seconds) and cpu_seconds >= 0):
        raise ValueError(f"CPU time {cpu_seconds}")
    if names_len > MAX_NAMES_FIELD:
        raise ValueError(f"a names field of {names_len} bytes (at most {MAX_NAMES_FIELD})")
    offset = RESULT.size + names_len
    field = bytes(body[RESULT.size : offset])
    names = names_cache.get(field)
    if names is None:
        names = _decode_names(field)
        if len(names_cache) < 64:
            names_cache[field] = names
    rows = 1 + len(names)
    if len(body) != offset + 8 * rows * batch:
        raise ValueError(f"result of {len(body)} bytes for {rows} rows of {batch}")
    block = np.frombuffer(body, np.float64, rows * batch, offset).reshape(rows, batch)
    return names, block, cpu_seconds


def _decode_names(field: bytes) -> tuple[str, ...]:
    text = field.rstrip(b"\0").decode("ascii")
    names = tuple(text.split("\0")) if text else ()
    if len(names) > MAX_COMPONENTS:
        raise ValueError(f"{len(names)} component names (at most {MAX_COMPONENTS})")
    if len(set(names)) != len(names):
        raise ValueError("component names repeat")
    for name in names:
        problem = component_name_problem(name)
        if problem is not None:
            raise ValueError(problem)
    return names


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
_MAX_TYPE = 100  # characters of an exception's type name sent back
_MAX_REQUEST = 1 << 30
#: Most bytes of a JSON answer (READY, ERROR): the texts of an error JSON-escaped, with room.
MAX_JSON_BODY = 1 << 16
#: Deepest nesting of a JSON message: each is one object, READY's holding a list.
MAX_JSON_DEPTH = 2
#: Kinds of the ERROR answer to a CALL, and to the LOAD.
CALL_ERRORS = frozenset({"exception", "memory", "bad_output"})
STARTUP_ERRORS = frozenset({"startup"})
#: Most hardening layers a READY may list, and the form of each (``"uid=65534"``).
MAX_HARDENING = 32
_LAYER = re.compile(r"[a-z][a-z0-9_]{0,31}(=[0-9]{1,10})?")
_JSON_TOKENS = re.compile(r'["\\\[\]{}]')
# Control characters but newline and tab, and lone surrogates (JSON can carry them, a
# terminal or a UTF-8 file cannot): a worker's text may reach either.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


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


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of ``text`` nest, as a JSON parser would read it.

    Linear and without recursion, so it can vet a message before :func:`json.loads` (which
    recurses once per level) sees it. Where ``text`` is not JSON the answer may be larger than
    a parser would find, never smaller before the parser's first error.
    """
    depth = deepest = 0
    in_string = False
    escaped = -1  # the index of a character escaped by a backslash
    for match in _JSON_TOKENS.finditer(text):
        at = match.start()
        if at == escaped:
            continue
        token = match.group()
        if in_string:
            if token == "\\":
                escaped = at + 1
            elif token == '"':
                in_string = False
        elif token == '"':
            in_string = True
        elif token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode_json(body: bytes | bytearray) -> dict[str, Any]:
    """A JSON object from a sender that is not trusted: at most :data:`MAX_JSON_BODY` bytes of
    UTF-8, nested at most :data:`MAX_JSON_DEPTH` deep (checked before parsing), no ``NaN`` or
    ``Infinity``.

    Raises:
        ValueError: When ``body`` is anything else.
    """
    if len(body) > MAX_JSON_BODY:
        raise ValueError(f"a message of {len(body)} bytes (at most {MAX_JSON_BODY})")
    text = bytes(body).decode("utf-8")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth} deep (at most {MAX_JSON_DEPTH})")
    message = json.loads(text, parse_constant=_no_constant)
    if not isinstance(message, dict):
        raise ValueError(f"a JSON {type(message).__name__}, not an object")
    return message


def printable(text: str) -> str:
    """``text`` with control characters (but newlines and tabs) and lone surrogates escaped:
    safe to print or to write as UTF-8."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def _text(message: Mapping[str, Any], key: str, limit: int) -> str:
    value = message[key]
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{key!r} must be a string of at most {limit} characters")
    return printable(value)


def decode_error(body: bytes | bytearray, kinds: frozenset[str]) -> tuple[str, str]:
    """(kind, LLM-readable text) of an ERROR answer (see :func:`error_message`): ``Type:
    message`` and the program's traceback lines.

    Raises:
        ValueError: When the body is not such a message or its kind is not in ``kinds``.
    """
    message = decode_json(body)
    if set(message) != {"kind", "type", "message", "traceback"}:
        raise ValueError(f"an error with the fields {sorted(message)[:8]}")
    kind = message["kind"]
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"an error of kind {_short_repr(kind)} (expected one of {sorted(kinds)})")
    text = f"{_text(message, 'type', _MAX_TYPE)}: {_text(message, 'message', _MAX_TEXT)}"
    trace = _text(message, "traceback", _MAX_TEXT)
    return kind, f"{text}\n{trace}" if trace else text


def decode_ready(body: bytes | bytearray) -> tuple[str, ...]:
    """The hardening layers a READY answer lists (at most :data:`MAX_HARDENING`, each a short
    name such as ``"landlock_fs"`` or ``"uid=65534"``).

    Raises:
        ValueError: When the body is not such a message.
    """
    message = decode_json(body)
    if not set(message) <= {"hardening", "pid"} or "hardening" not in message:
        raise ValueError(f"a READY with the fields {sorted(message)[:8]}")
    pid = message.get("pid", 1)
    if type(pid) is not int or not 0 < pid < 1 << 31:
        raise ValueError(f"pid {_short_repr(pid)}")
    layers = message["hardening"]
    if not isinstance(layers, list) or len(layers) > MAX_HARDENING:
        raise ValueError(f"hardening must be a list of at most {MAX_HARDENING} layers")
    for layer in layers:
        if not isinstance(layer, str) or not _LAYER.fullmatch(layer):
            raise ValueError(f"hardening layer {_short_repr(layer)}")
    return tuple(layers)


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


# Names check_output has passed: a program returns the same few on every call, and checking
# them again would cost the worker ~0.25 us each per call.
_PASSED_NAMES: set[object] = set()


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
        raise BadOutput(
            f"{len(components)} components, at most {MAX_COMPONENTS} allowed: report the main "
            "terms of the reward"
        )
    for name, value in components.items():
        if name not in _PASSED_NAMES:
            problem = component_name_problem(name)
            if problem is not None:
                raise BadOutput(problem)
            if len(_PASSED_NAMES) < 2 * MAX_COMPONENTS:
                _PASSED_NAMES.add(name)
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
    try:
        message = str(exc)[:_MAX_TEXT]
    except Exception:  # noqa: BLE001  (its argument's str() failed: a list nested too deep)
        message = "(its message could not be converted to text)"
    return {
        "kind": kind,
        "type": type(exc).__name__[:_MAX_TYPE],
        "message": message,
        "traceback": "\n".join(frames[-5:])[-_MAX_TEXT:],
    }
