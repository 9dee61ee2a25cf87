"""Every byte from the worker is hostile: forged answers from a worker the tests replace.

A stand-in worker (a few lines of stdlib Python, started in place of ``worker.py``) reads the
parent's frames and answers with exactly the bytes a test gives it: deeply nested JSON, huge
length headers, truncated frames, bytes past the end, unknown opcodes, invalid UTF-8, NaN CPU
times, forbidden component names, a block of the wrong length, a malformed READY, a frame
trickled byte by byte. Each must reach the caller as :class:`ProgramContained` with its
reason, with the worker killed and reaped, and the parent must go on running real programs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rewardlab.sandbox import (
    GuardedProgram,
    ProgramContained,
    SandboxLimits,
    SandboxWorker,
    process,
    validate_program,
)
from rewardlab.sandbox import protocol as wire

LIMITS = SandboxLimits(call_timeout_s=0.5, startup_timeout_s=2.0)
SOURCE = "def compute_reward(x):\n    return x[:, 0] * 1.0, {'a': x[:, 0] * 2.0}\n"
PROGRAM = validate_program(SOURCE, ["x"])
INPUTS = {"x": np.array([[1.0], [2.0]])}  # batch 2

# The stand-in worker: answers LOAD with READY, then each CALL with the next answer, each
# written whole or a byte at a time; then holds the pipe open until the parent closes it.
FAKE_WORKER = """
import os, struct, sys, time

FRAME = struct.Struct("<IB")
with open(PIDFILE, "w") as file:
    file.write(str(os.getpid()))


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def read_frame():
    length, _ = FRAME.unpack(read_exact(FRAME.size))
    read_exact(length)


def write(data, trickle):
    if not trickle:
        os.write(1, data)
    for i in range(len(data) if trickle else 0):
        os.write(1, data[i : i + 1])
        time.sleep(trickle)


read_frame()
write(READY, 0)
for answer in ANSWERS:
    read_frame()
    write(answer, TRICKLE)
while os.read(0, 1 << 16):
    pass
"""


def frame(op: int, body: bytes) -> bytes:
    return wire.FRAME.pack(len(body), op) + body


def json_frame(op: int, text: str) -> bytes:
    return frame(op, text.encode())


READY = json_frame(wire.OP_READY, '{"hardening": ["rlimits", "uid=65534"], "pid": 7}')


def error(**fields: object) -> bytes:
    message = {"kind": "exception", "type": "ValueError", "message": "m", "traceback": ""}
    return json_frame(wire.OP_ERROR, json.dumps({**message, **fields}))


def result(
    names: Sequence[bytes] = (b"a",),
    rows: int | None = None,
    batch: int = 2,
    cpu: float = 0.1,
    field: bytes | None = None,
) -> bytes:
    """A RESULT frame: the names field, then ``rows`` rows of ``batch`` float64 (default: the
    reward and one row per name, as an honest worker sends)."""
    if field is None:
        field = b"\0".join(names)
        field += bytes(-len(field) % 8)
    rows = 1 + len(names) if rows is None else rows
    block = np.arange(rows * batch, dtype=np.float64).tobytes()
    return frame(wire.OP_RESULT, wire.RESULT.pack(len(field), cpu) + field + block)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class Fake:
    """Puts the stand-in worker in place of ``worker.py`` (see :data:`FAKE_WORKER`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.monkeypatch, self.tmp_path = monkeypatch, tmp_path
        self.pidfile = tmp_path / "fake.pid"

    def install(
        self, ready: bytes = READY, answers: Sequence[bytes] = (), trickle: float = 0.0
    ) -> None:
        script = self.tmp_path / "fake_worker.py"
        constants = (
            f"READY = {ready!r}\nANSWERS = {list(answers)!r}\nTRICKLE = {trickle!r}\n"
            f"PIDFILE = {str(self.pidfile)!r}\n"
        )
        script.write_text(constants + FAKE_WORKER)
        self.monkeypatch.setattr(process, "_WORKER_PATH", str(script))

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def restore(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Fake:
    return Fake(monkeypatch, tmp_path)


def gone(pid: int) -> bool:
    """No process has this id: killed and reaped (a zombie would still be listed)."""
    return not Path(f"/proc/{pid}").exists()


def assert_parent_still_works(fake: Fake) -> None:
    """The real worker runs a good program after the forged one."""
    fake.restore()
    with SandboxWorker(PROGRAM, LIMITS) as worker:
        out = worker.call(INPUTS)
    np.testing.assert_array_equal(out.reward, [1.0, 2.0])
    np.testing.assert_array_equal(out.components["a"], [2.0, 4.0])


# Answers to a CALL of batch 2 -> (reason, part of the message).
FORGED_ANSWERS: dict[str, tuple[bytes, str, str]] = {
    "error_nested_json": (
        json_frame(
            wire.OP_ERROR, '{"kind": "exception", "type": ' + nested(200_00) + ', "message": ""}'
        ),
        "protocol",
        "nested",
    ),
    "error_nested_deep_past_the_body_limit": (
        json_frame(wire.OP_ERROR, nested(40_000)),
        "protocol",
        "answer of",
    ),
    "error_nested_inside_a_string_then_outside": (
        json_frame(wire.OP_ERROR, '{"kind": "[[[\\"[[", "x": [[[[]]]]}'),
        "protocol",
        "nested 5 deep",
    ),
    "huge_length_header": (
        wire.FRAME.pack(0xFFFFFFFF, wire.OP_RESULT) + b"x" * 64,
        "protocol",
        "answer of 4294967295 bytes",
    ),
    "truncated_frame": (frame(wire.OP_RESULT, b"\0" * 100)[:50], "timeout", "did not return"),
    "bytes_after_the_end": (result() + b"\0", "protocol", "past the end"),
    # Misframed: the stray bytes and the answer's length read as a length of ~950 MB.
    "stray_bytes_before_the_answer": (b"\xff" * 3 + result(), "protocol", "answer of"),
    "unknown_opcode": (frame(99, b""), "protocol", "unexpected opcode 99"),
    "request_opcode": (frame(wire.OP_CALL, b""), "protocol", "unexpected opcode"),
    "ready_to_a_call": (READY, "protocol", "unexpected opcode"),
    "error_not_utf8": (frame(wire.OP_ERROR, b'{"kind": "\xff\xfe"}'), "protocol", "utf-8"),
    "error_not_json": (json_frame(wire.OP_ERROR, "{'kind': 1"), "protocol", "malformed error"),
    "error_a_list": (json_frame(wire.OP_ERROR, "[1, 2]"), "protocol", "not an object"),
    "error_nan_constant": (
        json_frame(
            wire.OP_ERROR,
            '{"kind": "exception", "type": NaN, "message": "", "traceback": ""}',
        ),
        "protocol",
        "NaN",
    ),
    "error_unknown_kind": (error(kind="startup"), "protocol", "of kind 'startup'"),
    "error_kind_not_a_string": (error(kind=["exception"]), "protocol", "of kind"),
    "error_message_not_a_string": (error(message={"a": 1}), "protocol", "'message'"),
    "error_message_too_long": (error(message="x" * 5000), "protocol", "at most 2000"),
    "error_type_too_long": (error(type="E" * 101), "protocol", "'type'"),
    "error_missing_field": (
        json_frame(wire.OP_ERROR, '{"kind": "exception", "type": "E", "message": "m"}'),
        "protocol",
        "fields",
    ),
    "error_extra_field": (error(extra=1), "protocol", "fields"),
    "result_shorter_than_its_header": (frame(wire.OP_RESULT, b"\0" * 8), "protocol", "header"),
    "result_nan_cpu_time": (result(cpu=math.nan), "protocol", "CPU time nan"),
    "result_negative_cpu_time": (result(cpu=-1.0), "protocol", "CPU time -1"),
    "result_names_not_ascii": (result(names=(b"\xff\xfe",)), "protocol", "ascii"),
    "result_names_with_a_comma": (result(names=(b"a,b",)), "protocol", "identifier"),
    "result_names_with_a_newline": (result(names=(b"a\nb",)), "protocol", "identifier"),
    "result_names_empty_name": (result(names=(b"a", b"", b"b")), "protocol", "identifier"),
    "result_names_reserved": (result(names=(b"reward",)), "protocol", "reserved"),
    "result_names_too_long": (result(names=(b"n" * 65,)), "protocol", "identifier"),
    "result_names_too_many": (
        result(names=[f"c{i}".encode() for i in range(33)]),
        "protocol",
        "33 component names",
    ),
    "result_names_repeat": (result(names=(b"a", b"a")), "protocol", "repeat"),
    "result_names_field_past_the_body": (
        frame(wire.OP_RESULT, wire.RESULT.pack(60_000, 0.1) + b"a" * 8),
        "protocol",
        "names field of",
    ),
    "result_block_too_short": (result(rows=1), "protocol", "for 2 rows of 2"),
    "result_block_too_long": (result(rows=3), "protocol", "for 2 rows of 2"),
    "result_block_for_another_batch": (result(batch=3), "protocol", "rows of 2"),
}


@pytest.mark.parametrize("case", sorted(FORGED_ANSWERS))
def test_a_forged_answer_is_contained_and_the_parent_goes_on(fake: Fake, case: str) -> None:
    answer, reason, match = FORGED_ANSWERS[case]
    fake.install(answers=[answer])
    worker = SandboxWorker(PROGRAM, LIMITS)
    pid = fake.pid
    assert worker.hardening == ("rlimits", "uid=65534")
    with pytest.raises(ProgramContained) as contained:
        worker.call(INPUTS)
    assert contained.value.reason == reason
    assert match.lower() in contained.value.message.lower()
    assert not worker.alive and gone(pid)  # killed and reaped: no zombie
    worker.close()
    assert_parent_still_works(fake)


def test_a_frame_trickled_past_the_deadline_times_out(fake: Fake) -> None:
    # ~60 bytes, one per 50 ms: every read gets a byte before the deadline, the answer would
    # take 3 s to complete.
    fake.install(answers=[result()], trickle=0.05)
    worker = SandboxWorker(PROGRAM, LIMITS)
    pid = fake.pid
    start = time.monotonic()
    with pytest.raises(ProgramContained) as contained:
        worker.call(INPUTS)
    assert time.monotonic() - start < LIMITS.call_timeout_s + 0.5
    assert contained.value.reason == "timeout"
    assert not worker.alive and gone(pid)
    assert_parent_still_works(fake)


def test_an_honest_answer_from_the_stand_in_is_accepted(fake: Fake) -> None:
    """The stand-in speaks the protocol: the failures above come from what each case forged."""
    # Control characters in an error's text are escaped (it may be printed on a terminal).
    message = "bad \x1b[2J\x1b]0;title\x07 end\ud800"
    fake.install(answers=[result(), error(message=message, traceback="line 2, in f: x")])
    with SandboxWorker(PROGRAM, LIMITS) as worker:
        out = worker.call(INPUTS)
        np.testing.assert_array_equal(out.reward, [0.0, 1.0])
        np.testing.assert_array_equal(out.components["a"], [2.0, 3.0])
        with pytest.raises(ProgramContained) as contained:
            worker.call(INPUTS)
        assert worker.alive  # an honest error keeps the worker
    assert contained.value.reason == "exception"
    assert contained.value.message == (
        "ValueError: bad \\x1b[2J\\x1b]0;title\\x07 end\\ud800\nline 2, in f: x"
    )
    contained.value.message.encode("utf-8")  # no lone surrogate left


# READY (or what comes instead) -> (reason, part of the message).
FORGED_STARTS: dict[str, tuple[bytes, str, str]] = {
    "hardening_not_a_list": (
        json_frame(wire.OP_READY, '{"hardening": "rlimits"}'),
        "protocol",
        "list",
    ),
    "hardening_too_many_layers": (
        json_frame(wire.OP_READY, json.dumps({"hardening": ["rlimits"] * 33})),
        "protocol",
        "at most 32",
    ),
    "hardening_layer_not_a_string": (
        json_frame(wire.OP_READY, '{"hardening": [1]}'),
        "protocol",
        "layer 1",
    ),
    "hardening_layer_with_escapes": (
        json_frame(wire.OP_READY, json.dumps({"hardening": ["\x1b[2Jroot"]})),
        "protocol",
        "layer",
    ),
    "hardening_layer_too_long": (
        json_frame(wire.OP_READY, json.dumps({"hardening": ["a" * 200]})),
        "protocol",
        "layer",
    ),
    "hardening_missing": (json_frame(wire.OP_READY, '{"pid": 3}'), "protocol", "fields"),
    "ready_extra_field": (
        json_frame(wire.OP_READY, '{"hardening": [], "x": 1}'),
        "protocol",
        "fields",
    ),
    "ready_pid_not_an_int": (
        json_frame(wire.OP_READY, '{"hardening": [], "pid": true}'),
        "protocol",
        "pid",
    ),
    "ready_nested_json": (
        json_frame(wire.OP_READY, '{"hardening": ' + nested(30_000) + "}"),
        "protocol",
        "nested",
    ),
    "ready_huge_length_header": (
        wire.FRAME.pack(1 << 30, wire.OP_READY) + b"{",
        "protocol",
        "answer of",
    ),
    "ready_not_utf8": (frame(wire.OP_READY, b"\xc3\x28"), "protocol", "utf-8"),
    "startup_error_nested_json": (
        json_frame(wire.OP_ERROR, '{"kind": ' + nested(30_000) + "}"),
        "protocol",
        "nested",
    ),
    "startup_error_of_a_call_kind": (error(kind="exception"), "protocol", "of kind"),
    "startup_answer_unknown_opcode": (frame(42, b"{}"), "protocol", "opcode 42"),
    "startup_result": (result(), "protocol", "opcode"),
    "startup_error": (error(kind="startup", type="ZeroDivisionError"), "startup", "Zero"),
}


@pytest.mark.parametrize("case", sorted(FORGED_STARTS))
def test_a_forged_startup_answer_is_contained(fake: Fake, case: str) -> None:
    ready, reason, match = FORGED_STARTS[case]
    fake.install(ready=ready)
    with pytest.raises(ProgramContained) as contained:
        SandboxWorker(PROGRAM, LIMITS)
    assert contained.value.reason == reason
    assert match.lower() in contained.value.message.lower()
    assert gone(fake.pid)
    assert_parent_still_works(fake)


def test_forged_answers_count_against_the_exception_budget(fake: Fake) -> None:
    """GuardedProgram absorbs a forged answer like any failed call, replacing the worker."""
    fake.install(answers=[json_frame(wire.OP_ERROR, nested(1000))])
    with GuardedProgram(PROGRAM, LIMITS, max_exceptions=2) as guarded:
        first = fake.pid
        out = guarded(INPUTS)
        assert out.error is not None and out.error.startswith("protocol: ")
        np.testing.assert_array_equal(out.reward, [0.0, 0.0])
        assert gone(first)
        with pytest.raises(ProgramContained) as contained:
            guarded(INPUTS)  # a new stand-in, forging again: the budget is spent
        assert fake.pid != first and gone(fake.pid)
    assert contained.value.reason == "exception_budget"
    assert contained.value.last_reason == "protocol"
    assert guarded.stats.failures == {"protocol": 2} and guarded.stats.restarts == 1


def parsed_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(parsed_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(parsed_depth, value), default=0)
    return 0


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"a": [1, {"b": []}]}',
        '{"a": "[[[[{{{{"}',
        '{"a": "\\"[[[["}',  # an escaped quote does not end the string
        '{"a": "\\\\", "b": [[]]}',  # an escaped backslash does not escape the quote
        '{"a": "\\u005b\\u005b", "b": "]]]", "c": [{}]}',
    ],
)
def test_json_depth_reads_strings_as_a_parser_does(text: str) -> None:
    assert wire.json_depth(text) == parsed_depth(json.loads(text))


def test_json_depth_of_text_a_parser_would_refuse() -> None:
    assert wire.json_depth("[" * 100_000) == 100_000
    # An escaped backslash ends nothing: the string closes, the brackets count.
    assert wire.json_depth('"\\\\" [[ "') == 2
    assert wire.json_depth('"\\" [[ "') == 0  # an escaped quote: all one string


def test_decoding_never_recurses_on_nested_json() -> None:
    # Far deeper than the interpreter's recursion limit: refused before json.loads sees it.
    body = ('{"kind": ' + nested(10_000) + "}").encode()
    with pytest.raises(ValueError, match="nested 10001 deep"):
        wire.decode_error(body, wire.CALL_ERRORS)
    with pytest.raises(ValueError, match="nested"):
        wire.decode_ready(body)


def test_decode_result_names_are_checked_once_per_field() -> None:
    cache: dict[bytes, tuple[str, ...]] = {}
    body = bytearray(result(names=(b"dist", b"bonus"))[wire.FRAME.size :])
    names, block, cpu = wire.decode_result(body, 2, cache)
    assert names == ("dist", "bonus") and block.shape == (3, 2) and cpu == 0.1
    again = wire.decode_result(bytearray(body), 2, cache)[0]
    assert again is names  # the cached tuple: SandboxWorker's check is an identity test


GRID_PROGRAM = (
    "def compute_reward(agent_pos, goal_pos):\n"
    "    d = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0\n"
    "    return -d, {'distance': d}\n"
)
# Deeper than the interpreter's recursion limit: json.loads in the parent used to raise
# RecursionError, and check and train ended in a traceback.
NESTED_ERROR = json_frame(wire.OP_ERROR, '{"kind": ' + nested(20_000) + "}")


def test_check_and_train_report_a_forged_answer_without_a_traceback(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardlab.cli import main

    program = tmp_path / "program.py"
    program.write_text(GRID_PROGRAM)
    grid = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]
    fake.install(answers=[NESTED_ERROR])
    assert main(["llm-reward", "check", str(program), *grid]) == 1
    err = capsys.readouterr().err
    assert "protocol" in err and "nested" in err and "Traceback" not in err
    assert gone(fake.pid)

    out = tmp_path / "run"
    spec = f"{{model: {{kind: program, path: {program}}}}}"
    tiny = ["--set", "n_envs=1", "--set", "n_steps=32", "--set", "batch_size=32"]
    args = ["train", *grid, "--reward", spec, "--steps", "64", "--out", str(out), *tiny]
    assert main([*args, "--eval-episodes", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: reward program failed (exception_budget): ")
    assert "the last error (protocol)" in err and "Traceback" not in err
    assert gone(fake.pid)
