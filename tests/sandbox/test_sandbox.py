"""Sandboxed reward programs: the process boundary, runtime guards and the hostile corpus.

Every hostile program in ``hostile/`` must be rejected by validation or contained at run time
with a recorded reason; the table :data:`HOSTILE` names the expected outcome of each. The
"escape" tests construct :class:`ValidatedProgram` directly, skipping validation, and use the
classic ``().__class__.__base__.__subclasses__()`` walk to reach ``os``: they show what the
worker process still prevents when validation has been fooled.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rewardlab.sandbox import (
    GuardedProgram,
    ProgramContained,
    ProgramRejected,
    SandboxLimits,
    SandboxWorker,
    ValidatedProgram,
    validate_program,
)
from rewardlab.sandbox import worker as sandbox_worker
from rewardlab.sandbox.process import _WORKER_ENV
from rewardlab.sandbox.validation import NUMPY_LINALG_ALLOWED
from tests.sandbox.test_validation import GOOD, VARIABLES, batch

HOSTILE_DIR = Path(__file__).parent / "hostile"
FAST = SandboxLimits(call_timeout_s=0.5)
CORPUS_VARIABLES = {name: VARIABLES[name] for name in ("agent_pos", "goal_pos")} | {
    "block_pos": (3,),
    "target_pos": (3,),
}

# name -> (stage, expected): "rejected" by validation with that reason; "contained" at run
# time (SandboxWorker.call raises ProgramContained with that reason); "guarded": runs, and
# GuardedProgram records the named counter.
HOSTILE: dict[str, tuple[str, str]] = {
    "array_interface": ("rejected", "dunder"),
    "breakpoint_call": ("rejected", "forbidden_name"),
    "class_def": ("rejected", "forbidden_syntax"),
    "compile_code": ("rejected", "forbidden_name"),
    "component_wrong_shape": ("contained", "bad_output"),
    "components_list": ("contained", "bad_output"),
    "datetime_item_now": ("rejected", "forbidden_attribute"),
    "decorator": ("rejected", "forbidden_syntax"),
    "deep_recursion": ("contained", "exception"),
    "dtype_attribute_walk": ("rejected", "forbidden_attribute"),
    "dtype_datetime64_type": ("rejected", "forbidden_dtype"),
    "dtype_datetime_string": ("rejected", "forbidden_dtype"),
    "dtype_function_alias": ("rejected", "forbidden_attribute"),
    "dtype_kwargs_splat": ("rejected", "forbidden_argument"),
    "dtype_object": ("rejected", "forbidden_dtype"),
    "dtype_object_code": ("rejected", "forbidden_dtype"),
    "dtype_rebound_builtin": ("rejected", "forbidden_name"),
    "dtype_runtime_choice": ("rejected", "forbidden_dtype"),
    "dtype_starred_args": ("rejected", "forbidden_argument"),
    "dtype_structured": ("rejected", "forbidden_dtype"),
    "dtype_unbound_method": ("rejected", "forbidden_attribute"),
    "dtype_variable": ("rejected", "forbidden_dtype"),
    "dunder_import": ("rejected", "dunder"),
    "eval_string": ("rejected", "forbidden_name"),
    "exec_string": ("rejected", "forbidden_name"),
    "fork_bomb": ("rejected", "dunder"),
    "format_walk": ("rejected", "forbidden_attribute"),
    "from_sys_import": ("rejected", "import"),
    "generator_frame": ("rejected", "forbidden_attribute"),
    "generator_yield": ("rejected", "forbidden_syntax"),
    "getattr_concat": ("rejected", "forbidden_name"),
    "global_state": ("rejected", "forbidden_syntax"),
    "globals_call": ("rejected", "forbidden_name"),
    "huge_range_loop": ("contained", "memory"),
    "huge_reward": ("guarded", "clipped"),
    "huge_string": ("rejected", "constant"),
    "import_ctypes": ("rejected", "import"),
    "import_os": ("rejected", "import"),
    "import_subprocess": ("rejected", "import"),
    "inf_output": ("guarded", "nonfinite"),
    "infinite_loop": ("contained", "timeout"),
    "lambda_globals": ("rejected", "dunder"),
    "memory_bomb_list": ("contained", "memory"),
    "memory_bomb_literal": ("rejected", "constant"),
    "memory_bomb_numpy": ("contained", "memory"),
    "missing_entry": ("rejected", "no_entry"),
    "module_call": ("rejected", "module_level"),
    "module_loop": ("rejected", "module_level"),
    "module_print": ("rejected", "module_level"),
    "nan_component": ("guarded", "component_nonfinite"),
    "nan_output": ("guarded", "nonfinite"),
    "ndarray_base": ("rejected", "forbidden_attribute"),
    "ndarray_buffer": ("rejected", "forbidden_attribute"),
    "ndarray_ctypes": ("rejected", "forbidden_attribute"),
    "ndarray_data": ("rejected", "forbidden_attribute"),
    "ndarray_setflags": ("rejected", "forbidden_attribute"),
    "ndarray_tofile": ("rejected", "forbidden_attribute"),
    "ndarray_tolist": ("rejected", "forbidden_attribute"),
    "ndarray_uninitialised": ("rejected", "forbidden_attribute"),
    "ndarray_view": ("rejected", "forbidden_attribute"),
    "np_alias": ("rejected", "forbidden_name"),
    "np_ctypeslib": ("rejected", "forbidden_attribute"),
    "np_dict": ("rejected", "dunder"),
    "np_dtype_call": ("rejected", "forbidden_attribute"),
    "np_lib_format": ("rejected", "forbidden_attribute"),
    "np_load": ("rejected", "forbidden_attribute"),
    "np_os": ("rejected", "forbidden_attribute"),
    "np_random_seed": ("rejected", "forbidden_attribute"),
    "open_passwd": ("rejected", "forbidden_name"),
    "power_bomb": ("rejected", "constant"),
    "print_debug": ("rejected", "unknown_name"),
    "private_name": ("rejected", "private"),
    "raise_keyboardinterrupt": ("rejected", "forbidden_name"),
    "raise_systemexit": ("rejected", "forbidden_name"),
    "resize_use_after_free": ("rejected", "forbidden_attribute"),
    "return_list": ("contained", "bad_output"),
    "return_scalar": ("contained", "bad_output"),
    "return_triple": ("contained", "bad_output"),
    "slow_int_power": ("contained", "timeout"),
    "string_reward": ("contained", "bad_output"),
    "subclasses_walk": ("rejected", "dunder"),
    "syntax_error": ("rejected", "syntax"),
    "try_swallow": ("rejected", "forbidden_syntax"),
    "two_entries": ("rejected", "duplicate_entry"),
    "type_call": ("rejected", "forbidden_name"),
    "ufunc_signature": ("rejected", "forbidden_argument"),
    "unknown_variable": ("rejected", "unknown_variable"),
    "varargs": ("rejected", "bad_signature"),
    "where_uninitialised_clip": ("rejected", "forbidden_argument"),
    "where_uninitialised_counter": ("rejected", "forbidden_argument"),
    "with_open": ("rejected", "forbidden_syntax"),
    "wrong_shape": ("contained", "bad_output"),
    "zero_division": ("contained", "exception"),
    "exception_unprintable": ("contained", "exception"),
    "address_counter": ("contained", "exception"),
    "address_text_routes": ("contained", "exception"),
}

# Rejected programs whose attack has several parts: the message must name each of them, not
# only the first (the table's reason), so that a later check still stands if an earlier one
# is loosened.
HOSTILE_ALSO: dict[str, tuple[str, ...]] = {
    "datetime_item_now": ("`.item`", "`.now`", "'M8[s]'"),
    "dtype_unbound_method": ("`np.float64.astype`", "'M8[s]'"),
    "ndarray_buffer": ("np.ndarray", "`buffer=`", "`offset=`", "`strides=`"),
    "resize_use_after_free": ("`.resize`", "`refcheck=`", "`.tobytes`", "`.exec`"),
    "where_uninitialised_clip": ("`np.divide(...)`", "`np.clip(...)`", "`np.multiply.outer(...)`"),
}


def corpus_inputs(program: ValidatedProgram, n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        name: rng.integers(0, 5, size=(n, *CORPUS_VARIABLES[name])) for name in program.parameters
    }


def gone(pid: int) -> bool:
    """True when no process has this id (a zombie would still count as present)."""
    return not Path(f"/proc/{pid}").exists()


def dead(pid: int) -> bool:
    """True when no process has this id, or only a zombie (an orphan its reaper has not
    reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_corpus_table_covers_every_file() -> None:
    files = {path.stem for path in HOSTILE_DIR.glob("*.py")} - {"conftest"}
    assert files == set(HOSTILE)
    assert len(HOSTILE) >= 30
    assert set(HOSTILE_ALSO) <= {
        name for name, (stage, _) in HOSTILE.items() if stage == "rejected"
    }


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_rejected_or_contained(name: str) -> None:
    stage, expected = HOSTILE[name]
    source = (HOSTILE_DIR / f"{name}.py").read_text()
    if stage == "rejected":
        with pytest.raises(ProgramRejected) as rejected:
            validate_program(source, CORPUS_VARIABLES)
        assert rejected.value.reason == expected, rejected.value.message
        assert rejected.value.message
        for part in HOSTILE_ALSO.get(name, ()):
            assert part in rejected.value.message
        return
    program = validate_program(source, CORPUS_VARIABLES)
    inputs = corpus_inputs(program)
    if stage == "contained":
        with SandboxWorker(program, FAST) as worker:
            pid = worker.pid
            with pytest.raises(ProgramContained) as contained:
                worker.call(inputs)
            assert contained.value.reason == expected, contained.value.message
        assert gone(pid)
        return
    with GuardedProgram(program, FAST) as guarded:
        result = guarded(inputs)
        stats = guarded.stats
        assert np.isfinite(result.reward).all() and np.abs(result.reward).max() <= 100
        assert all(np.isfinite(value).all() for value in result.components.values())
        counters = {
            "nonfinite": stats.nonfinite,
            "clipped": stats.clipped,
            "component_nonfinite": sum(c.nonfinite for c in stats.components.values()),
        }
        assert counters[expected] > 0
        assert not stats.failures


def test_parent_keeps_working_after_hostile_programs() -> None:
    # Each hostile run above used and killed its own worker; a good program still runs, with
    # the same answer as in this process.
    program = validate_program(GOOD["push"], VARIABLES)
    inputs = batch(program.parameters)
    with SandboxWorker(program) as worker:
        result = worker.call(inputs)
    expected, components = program.compile_function()(**inputs)
    np.testing.assert_array_equal(result.reward, expected)
    assert set(result.components) == set(components)


# -- the worker -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_program_matches_in_process(name: str) -> None:
    program = validate_program(GOOD[name], VARIABLES)
    function = program.compile_function()
    with SandboxWorker(program) as worker:
        for seed in range(3):
            inputs = batch(program.parameters, n=7, seed=seed)
            result = worker.call(inputs)
            expected, components = function(**inputs)
            assert result.reward.dtype == np.float64
            np.testing.assert_array_equal(result.reward, expected)
            assert list(result.components) == list(components)
            for key, value in components.items():
                np.testing.assert_array_equal(result.components[key], value)
        assert worker.calls == 3


def test_dtypes_extra_variables_and_empty_batches() -> None:
    source = (
        "def compute_reward(carrying_key, agent_pos, block_pos):\n"
        "    r = carrying_key * 1.0 + agent_pos.sum(axis=-1) + block_pos[:, 0]\n"
        "    return r, {'key': carrying_key, 'steps': agent_pos[:, 0]}\n"
    )
    program = validate_program(source, VARIABLES)
    with SandboxWorker(program) as worker:
        inputs = {
            "carrying_key": np.array([True, False]),
            "agent_pos": np.array([[1, 2], [3, 4]], dtype=np.int8),
            "block_pos": np.array([[0.5, 0, 0], [0.25, 0, 0]], dtype=np.float32),
            "goal_pos": np.zeros((2, 2)),  # not a parameter: not sent
        }
        result = worker.call(inputs)
        np.testing.assert_array_equal(result.reward, [4.5, 7.25])
        np.testing.assert_array_equal(result.components["key"], [1.0, 0.0])
        empty = worker.call({name: value[:0] for name, value in inputs.items()})
        assert empty.reward.shape == (0,) and empty.components["steps"].shape == (0,)
        # The answer is the caller's to modify.
        result.reward[0] = 1.0


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"agent_pos": np.zeros((2, 2))}, "lack \\['goal_pos'\\]"),
        ({"agent_pos": np.zeros((2, 2)), "goal_pos": np.zeros((3, 2))}, "batch size 3"),
        ({"agent_pos": np.zeros((2, 2)), "goal_pos": np.zeros((2, 3))}, "per-row shape"),
        ({"agent_pos": np.zeros((2, 2)), "goal_pos": np.float64(1.0)}, "leading batch axis"),
        ({"agent_pos": np.zeros((2, 2)), "goal_pos": np.array([["a", "b"]] * 2)}, "dtype"),
        ({"agent_pos": np.zeros((2, 2)), "goal_pos": np.zeros((2, 2), complex)}, "dtype"),
    ],
    ids=["missing", "batch", "row-shape", "scalar", "strings", "complex"],
)
def test_caller_errors_leave_the_worker_running(inputs: dict, match: str) -> None:
    program = validate_program(GOOD["gridworld"], VARIABLES)
    with SandboxWorker(program) as worker:
        with pytest.raises(ValueError, match=match):
            worker.call(inputs)
        good = worker.call({"agent_pos": np.zeros((2, 2)), "goal_pos": np.ones((2, 2))})
        np.testing.assert_allclose(good.reward, [-0.2, -0.2])


def test_secrets_never_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-test-secret")
    program = escaped(
        "    env = os.environ\n"
        "    secret = float('OPENAI_API_KEY' in env or 'AWS_SECRET_ACCESS_KEY' in env)\n"
        "    return x[:, 0] * 0 + secret, {'variables': x[:, 0] * 0 + len(env)}\n"
    )
    with SandboxWorker(program) as worker:
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes()
        names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
        assert names == set(_WORKER_ENV)
        assert b"secret" not in environ
        # The worker's own view, from a program that escaped validation.
        result = worker.call({"x": np.ones((3, 1))})
        np.testing.assert_array_equal(result.reward, [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(result.components["variables"], [len(_WORKER_ENV)] * 3)


def test_resource_limits_are_applied() -> None:
    limits = SandboxLimits(memory_bytes=512 << 20, cpu_seconds=30, open_files=12)
    with SandboxWorker(validate_program(GOOD["gridworld"], VARIABLES), limits) as worker:
        assert "rlimits" in worker.hardening
        table = {}
        for line in Path(f"/proc/{worker.pid}/limits").read_text().splitlines()[1:]:
            name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
            table[name] = (soft, hard)
    assert table["Max address space"] == (str(512 << 20), str(512 << 20))
    assert table["Max cpu time"] == ("30", "31")
    assert table["Max open files"] == ("12", "12")
    assert table["Max processes"] == ("0", "0")
    assert table["Max core file size"] == ("0", "0")
    assert table["Max file size"] == (str(1 << 20), str(1 << 20))


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop happens only for root")
def test_root_worker_runs_unprivileged() -> None:
    program = escaped("    os.kill(os.getppid(), 0)\n    return x[:, 0], {}\n")
    with SandboxWorker(program) as worker:
        assert "uid=65534" in worker.hardening
        status = Path(f"/proc/{worker.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uids.split()[1:] == ["65534"] * 4
        # Not even permission to signal the parent.
        with pytest.raises(ProgramContained, match="PermissionError") as contained:
            worker.call({"x": np.ones((1, 1))})
        assert contained.value.reason == "exception"


def test_network_namespace_when_available() -> None:
    with SandboxWorker(validate_program(GOOD["gridworld"], VARIABLES)) as worker:
        if "netns" not in worker.hardening:
            pytest.skip("this kernel or user cannot create network namespaces")
        assert os.readlink(f"/proc/{worker.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_timeout_kills_the_worker_and_its_group() -> None:
    program = validate_program((HOSTILE_DIR / "infinite_loop.py").read_text(), CORPUS_VARIABLES)
    worker = SandboxWorker(program, SandboxLimits(call_timeout_s=0.3))
    pid = worker.pid
    assert os.getpgid(pid) == pid  # its own process group
    start = time.monotonic()
    with pytest.raises(ProgramContained) as contained:
        worker.call(corpus_inputs(program))
    assert contained.value.reason == "timeout"
    assert "did not return within 0.3 s" in contained.value.message
    assert time.monotonic() - start < 2.0
    assert not worker.alive and gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(ProgramContained, match="no longer running"):
        worker.call(corpus_inputs(program))
    worker.close()


def test_cpu_limit_kills_a_spinning_worker() -> None:
    program = validate_program((HOSTILE_DIR / "infinite_loop.py").read_text(), CORPUS_VARIABLES)
    with SandboxWorker(program, SandboxLimits(cpu_seconds=1, call_timeout_s=20)) as worker:
        start = time.monotonic()
        with pytest.raises(ProgramContained) as contained:
            worker.call(corpus_inputs(program))
    assert contained.value.reason == "cpu_limit"
    assert time.monotonic() - start < 5.0


def test_parent_interrupted_mid_call_never_reuses_the_worker() -> None:
    program = validate_program((HOSTILE_DIR / "infinite_loop.py").read_text(), CORPUS_VARIABLES)

    class Interrupting:
        def poll(self, timeout: int) -> list:
            raise KeyboardInterrupt

    with SandboxWorker(program, FAST) as worker:
        worker._replies.poll = Interrupting()  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            worker.call(corpus_inputs(program))
        assert not worker.alive and gone(worker.pid)


def test_startup_failure_is_contained() -> None:
    program = ValidatedProgram("SCALE = 1 / 0\n", ("x",))
    with pytest.raises(ProgramContained) as contained:
        SandboxWorker(program, FAST)
    assert contained.value.reason == "startup"
    assert "ZeroDivisionError" in contained.value.message
    assert "line 1" in contained.value.message


def test_contained_failures_survive_pickling() -> None:
    # Process pools and Ray send a run's exception back to the caller pickled (`compare`).
    exc = ProgramContained("exception_budget", "failed 3 time(s)", last_reason="timeout")
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is ProgramContained
    assert (copy.reason, copy.message, copy.last_reason) == (
        "exception_budget",
        "failed 3 time(s)",
        "timeout",
    )
    assert str(copy) == str(exc)


def test_worker_needs_a_validated_program() -> None:
    with pytest.raises(TypeError, match="ValidatedProgram"):
        SandboxWorker(GOOD["push"])  # type: ignore[arg-type]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        SandboxLimits(memory_bytes=1 << 20)
    with pytest.raises(ValueError, match="call_timeout_s"):
        SandboxLimits(call_timeout_s=float("nan"))
    with pytest.raises(ValueError, match="open_files"):
        SandboxLimits(open_files=3)


# -- escapes: what the process still prevents once validation is fooled ----------------------

ESCAPE = """
def real_import():
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__["__builtins__"]["__import__"]


def compute_reward(x):
    os = real_import()("os")
    builtins = real_import()("builtins")
"""


def escaped(body: str) -> ValidatedProgram:
    source = ESCAPE + body
    with pytest.raises(ProgramRejected):  # validation sees through it...
        validate_program(source, ["x"])
    return ValidatedProgram(source, ("x",))  # ...so skip it, as if it had not


# uid=None: the worker keeps the test's user, as it does whenever the parent is not root; only
# Landlock then stands between it and the parent.
LANDLOCKED = [
    ("environ", "builtins.open(f'/proc/{os.getppid()}/environ', 'rb').read()", "landlock_fs"),
    ("mem", "builtins.open(f'/proc/{os.getppid()}/mem', 'rb')", "landlock_fs"),
    ("read", "builtins.open('/etc/hostname', 'rb').read()", "landlock_fs"),
    ("write", "builtins.open(TMP + '/escaped', 'w').write('x')", "landlock_fs"),
    ("signal", "os.kill(os.getppid(), 0)", "landlock_scope"),
]


@pytest.mark.parametrize(("attempt", "protection"), [(a, p) for _, a, p in LANDLOCKED])
def test_landlock_denies_files_and_the_parent(
    attempt: str, protection: str, tmp_path: Path
) -> None:
    attempt = attempt.replace("TMP", repr(str(tmp_path)))
    program = escaped(f"    {attempt}\n    return x[:, 0], {{}}\n")
    with SandboxWorker(program, SandboxLimits(uid=None, call_timeout_s=2)) as worker:
        if protection not in worker.hardening:
            pytest.skip(f"this kernel lacks Landlock's {protection} ({worker.hardening})")
        with pytest.raises(ProgramContained, match="PermissionError") as contained:
            worker.call({"x": np.ones((1, 1))})
        assert contained.value.reason == "exception"
    assert not (tmp_path / "escaped").exists()


def test_without_landlock_the_parents_environ_is_readable() -> None:
    # The control of the test above: what Landlock takes away is really there.
    program = escaped(
        "    environ = builtins.open(f'/proc/{os.getppid()}/environ', 'rb').read()\n"
        "    return x[:, 0] * 0 + len(environ), {}\n"
    )
    limits = SandboxLimits(uid=None, landlock=False)
    with SandboxWorker(program, limits) as worker:
        assert not any(item.startswith("landlock") for item in worker.hardening)
        result = worker.call({"x": np.ones((1, 1))})
    assert result.reward[0] == len(Path(f"/proc/{os.getpid()}/environ").read_bytes()) > 0


LINALG_PROGRAM = """
def compute_reward(x):
    m = np.eye(2) * 2.0 + 1.0
    f = m.astype(np.float32)
    s = np.linalg.det(m) + np.linalg.inv(m).sum() + np.linalg.pinv(m).sum()
    s = s + np.linalg.solve(m, np.ones(2)).sum() + (m @ m).sum() + np.dot(m[0], m[1])
    s = s + float((f @ f).sum())
    return np.linalg.norm(x, axis=-1) + s, {}
"""


def test_blas_and_every_allowed_linalg_function_run_in_the_worker() -> None:
    # The worker warms up what programs may call before it restricts itself (Landlock, where
    # the kernel has it), so that no BLAS or LAPACK library is first loaded in a call.
    assert set(sandbox_worker.WARM_LINALG) == NUMPY_LINALG_ALLOWED
    program = validate_program(LINALG_PROGRAM, {"x": (2,)})
    x = np.array([[3.0, 4.0], [0.0, 1.0]])
    with SandboxWorker(program, SandboxLimits(uid=None)) as worker:
        result = worker.call({"x": x})
    m = np.eye(2) * 2.0 + 1.0
    s = np.linalg.det(m) + np.linalg.inv(m).sum() + np.linalg.pinv(m).sum()
    s += np.linalg.solve(m, np.ones(2)).sum() + (m @ m).sum() + m[0] @ m[1] + (m @ m).sum()
    np.testing.assert_allclose(result.reward, [5.0 + s, 1.0 + s])


def test_library_dirs_are_the_folders_of_mapped_shared_libraries(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r--p 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f01-7f02 r-xp 00001000 08:01 11 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f02-7f03 r--p 00000000 08:01 12 /venv/numpy/_core/_multiarray_umath.cpython-311.so\n"
        "7f03-7f04 rw-p 00000000 00:00 0 \n"
        "7f04-7f05 r--p 00000000 08:01 13 /usr/lib/locale/C.utf8/LC_CTYPE\n"
        "7f05-7f06 r--p 00000000 08:01 14 /tmp/gone/libold.so (deleted)\n"
        "7f06-7f07 r--p 00000000 08:01 15 /libroot.so\n"
        "7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n"
    )
    assert sandbox_worker._library_dirs(str(maps)) == [
        "/usr/lib/x86_64-linux-gnu",
        "/venv/numpy/_core",
    ]
    assert sandbox_worker._library_dirs(str(tmp_path / "missing")) == []
    # This process's own maps: numpy's compiled core is among them.
    core = (
        sys.modules.get("numpy._core._multiarray_umath")
        or sys.modules["numpy.core._multiarray_umath"]
    )
    assert os.path.dirname(str(core.__file__)) in sandbox_worker._library_dirs()


class FakeSyscall:
    """Landlock's syscalls as a kernel of ABI 1 would answer them, failing one ADD_RULE; the
    test process itself is never restricted."""

    def __init__(self, failing_rule: int | None) -> None:
        self.failing_rule = failing_rule
        self.calls: list[int] = []
        self.rules = 0
        self.ruleset = os.open(os.devnull, os.O_RDONLY)

    def __call__(self, number: Any, *args: Any) -> int:
        self.calls.append(number.value)
        if number.value == sandbox_worker._LANDLOCK_CREATE_RULESET:
            return 1 if args[0] is None else self.ruleset  # the ABI version, or a ruleset fd
        if number.value == sandbox_worker._LANDLOCK_ADD_RULE:
            self.rules += 1
            return -1 if self.rules == self.failing_rule else 0
        return 0


@pytest.mark.parametrize("failing_rule", [None, 1, 2])
def test_landlock_fails_closed_when_a_rule_cannot_be_added(
    tmp_path: Path, failing_rule: int | None
) -> None:
    syscall = FakeSyscall(failing_rule)
    readable = [str(tmp_path), str(tmp_path / "missing"), os.path.dirname(os.__file__)]
    if failing_rule is None:
        applied = sandbox_worker._landlock(SimpleNamespace(syscall=syscall), readable)
        restricts = syscall.calls.count(sandbox_worker._LANDLOCK_RESTRICT_SELF)
        assert applied == ["landlock_fs"] and restricts == 1
        assert syscall.rules == 2  # a missing folder needs no rule
    else:
        # Not unconfined: the worker does not start, and says how to run without it.
        with pytest.raises(
            sandbox_worker.LandlockError, match=r"allowing reads beneath .*landlock=False"
        ):
            sandbox_worker._landlock(SimpleNamespace(syscall=syscall), readable)
        assert sandbox_worker._LANDLOCK_RESTRICT_SELF not in syscall.calls
        assert syscall.rules == failing_rule  # no rule after the failed one
    with pytest.raises(OSError):
        os.fstat(syscall.ruleset)  # closed either way


def test_landlock_fails_closed_when_a_folder_cannot_be_opened() -> None:
    syscall = FakeSyscall(None)
    too_long = "/" + "a" * 5000  # ENAMETOOLONG: neither allowed nor known to be missing
    with pytest.raises(sandbox_worker.LandlockError, match="cannot open"):
        sandbox_worker._landlock(
            SimpleNamespace(syscall=syscall), [os.path.dirname(os.__file__), too_long]
        )
    assert sandbox_worker._LANDLOCK_RESTRICT_SELF not in syscall.calls


def test_worker_dies_with_its_parent_even_mid_call() -> None:
    # The parent is killed while the worker runs an endless call: without PR_SET_PDEATHSIG
    # the worker would spin until its CPU limit (60 s).
    script = (
        "import os, signal, threading\n"
        "import numpy as np\n"
        "from rewardlab.sandbox import ValidatedProgram\n"
        "from rewardlab.sandbox import SandboxLimits, SandboxWorker\n"
        "source = 'def compute_reward(x):\\n    while True:\\n        pass\\n'\n"
        "program = ValidatedProgram(source, ('x',))\n"
        "worker = SandboxWorker(program, SandboxLimits(call_timeout_s=60))\n"
        "print(worker.pid, *worker.hardening, flush=True)\n"
        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGKILL)).start()\n"
        "worker.call({'x': np.ones((1, 1))})\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid, *hardening = parent.stdout.readline().split()
    assert parent.wait(timeout=30) == -signal.SIGKILL
    if "pdeathsig" not in hardening:
        pytest.skip(f"no PR_SET_PDEATHSIG on this platform ({hardening})")
    deadline = time.monotonic() + 5
    while not dead(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dead(int(pid))


def test_escaped_fork_is_refused() -> None:
    program = escaped(
        "    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    return x[:, 0], {}\n"
    )
    with SandboxWorker(program, FAST) as worker:
        # The syscall filter refuses fork (EPERM); without it, the process limit does (EAGAIN).
        with pytest.raises(ProgramContained, match="PermissionError|BlockingIOError") as contained:
            worker.call({"x": np.ones((1, 1))})
        assert contained.value.reason == "exception"


@pytest.mark.parametrize("exception", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_escaped_process_exits_are_reported_and_the_worker_goes_on(exception: str) -> None:
    program = escaped(
        f"    if x[0, 0] > 0:\n        raise builtins.{exception}(3)\n    return x[:, 0], {{}}\n"
    )
    with SandboxWorker(program, FAST) as worker:
        with pytest.raises(ProgramContained, match=exception) as contained:
            worker.call({"x": np.ones((2, 1))})
        assert contained.value.reason == "exception"
        assert "line" in contained.value.message  # the program's own traceback lines
        np.testing.assert_array_equal(worker.call({"x": -np.ones((2, 1))}).reward, [-1, -1])


@pytest.mark.parametrize(
    ("body", "reason", "match"),
    [
        ("    os._exit(3)\n", "crashed", "exited with status 3"),
        ("    os.kill(os.getpid(), 11)\n", "crashed", "SIGSEGV"),
        # Garbage on every fd, the protocol pipe included: the parent reads a nonsense frame.
        (
            "    for fd in range(3, 16):\n"
            "        try:\n"
            "            os.write(fd, b'\\xff' * 64)\n"
            "        except builtins.OSError:\n"
            "            pass\n"
            "    return x[:, 0], {}\n",
            "protocol",
            "answer of",
        ),
    ],
    ids=["exit", "segfault", "garbage"],
)
def test_escaped_worker_deaths_are_contained(body: str, reason: str, match: str) -> None:
    with SandboxWorker(escaped(body), FAST) as worker:
        pid = worker.pid
        with pytest.raises(ProgramContained, match=match) as contained:
            worker.call({"x": np.ones((1, 1))})
        assert contained.value.reason == reason
        assert not worker.alive
    assert gone(pid)


# -- guards -----------------------------------------------------------------------------------


def test_guarded_program_statistics() -> None:
    program = validate_program(GOOD["push"], VARIABLES)
    function = program.compile_function()
    with GuardedProgram(program, clip=None) as guarded:
        batches = [batch(program.parameters, n=6, seed=seed) for seed in range(4)]
        for inputs in batches:
            result = guarded(inputs)
            np.testing.assert_array_equal(result.reward, function(**inputs)[0])
        stats = guarded.stats
    outputs = [function(**inputs) for inputs in batches]
    rewards = np.concatenate([reward for reward, _ in outputs])
    assert stats.calls == 4 and stats.reward.count == 24
    assert stats.reward.mean == pytest.approx(rewards.mean())
    assert (stats.reward.min, stats.reward.max) == (rewards.min(), rewards.max())
    push = np.concatenate([components["push"] for _, components in outputs])
    assert stats.components["push"].mean == pytest.approx(push.mean())
    assert stats.components["push"].max == push.max()
    snapshot = json.loads(json.dumps(stats.snapshot()))
    assert set(snapshot["components"]) == {"push", "reach", "success"}
    assert snapshot["reward"]["count"] == 24 and snapshot["failures"] == {}


def test_guards_replace_nonfinite_values_and_clip() -> None:
    source = (
        "def compute_reward(x):\n"
        "    return x[:, 0] * 1.0, {'raw': x[:, 0] * 1.0, 'log': np.log(x[:, 0] * 1.0)}\n"
    )
    with GuardedProgram(
        validate_program(source, ["x"]), clip=(-10.0, 10.0), nonfinite_value=-1.0
    ) as guarded:
        result = guarded({"x": np.array([[np.nan], [np.inf], [50.0], [-50.0], [2.0]])})
        np.testing.assert_array_equal(result.reward, [-1.0, -1.0, 10.0, -10.0, 2.0])
        # Components: non-finite values replaced, never clipped.
        np.testing.assert_array_equal(result.components["raw"], [-1.0, -1.0, 50.0, -50.0, 2.0])
        stats = guarded.stats
        assert (stats.nonfinite, stats.clipped) == (2, 2)
        assert stats.components["raw"].nonfinite == 2
        assert stats.components["log"].nonfinite == 3  # nan, inf, log(-50)
        assert stats.reward.min == -10.0 and stats.reward.max == 10.0


def test_exception_budget() -> None:
    source = "def compute_reward(x):\n    return x[:, 0] / (1 // 0), {}\n"
    with GuardedProgram(validate_program(source, ["x"]), FAST, max_exceptions=3) as guarded:
        for _ in range(2):
            result = guarded({"x": np.ones((4, 1))})
            np.testing.assert_array_equal(result.reward, np.zeros(4))
            assert result.error is not None and "ZeroDivisionError" in result.error
        with pytest.raises(ProgramContained) as aborted:
            guarded({"x": np.ones((4, 1))})
        assert aborted.value.reason == "exception_budget"
        assert aborted.value.last_reason == "exception"
        assert "ZeroDivisionError: integer division or modulo by zero" in aborted.value.message
        assert "line 2, in compute_reward" in aborted.value.message
        assert guarded.stats.failures == {"exception": 3}
        assert guarded.worker is None
        with pytest.raises(ProgramContained) as again:
            guarded({"x": np.ones((4, 1))})
        assert again.value is aborted.value


def test_worker_is_restarted_after_a_timeout() -> None:
    source = (
        "def compute_reward(x):\n"
        "    while x[0, 0] > 0:\n"
        "        pass\n"
        "    return x[:, 0] * 1.0, {}\n"
    )
    with GuardedProgram(
        validate_program(source, ["x"]), SandboxLimits(call_timeout_s=0.3), max_exceptions=2
    ) as guarded:
        assert guarded.worker is not None
        first_pid = guarded.worker.pid
        stuck = guarded({"x": np.ones((2, 1))})
        assert stuck.error is not None and stuck.error.startswith("timeout")
        assert gone(first_pid)
        fine = guarded({"x": -np.ones((2, 1))})
        np.testing.assert_array_equal(fine.reward, [-1.0, -1.0])
        assert guarded.stats.restarts == 1 and guarded.worker.pid != first_pid
        with pytest.raises(ProgramContained) as aborted:
            guarded({"x": np.ones((2, 1))})
        assert aborted.value.reason == "exception_budget"
        assert aborted.value.last_reason == "timeout"


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_worker_reports_its_cpu_time() -> None:
    program = validate_program(GOOD["push"], VARIABLES)
    with SandboxWorker(program) as worker:
        for _ in range(20):
            worker.call(batch(program.parameters))
        ticks = cpu_ticks(worker.pid)
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert 0 < worker.cpu_seconds <= (ticks + 2) * tick  # each rounded down to a tick


def test_an_idle_worker_uses_no_cpu() -> None:
    # Between quick calls the worker may poll for the next one, never for long after the last.
    program = validate_program(GOOD["gridworld"], VARIABLES)
    with SandboxWorker(program) as worker:
        inputs = batch(program.parameters)
        for _ in range(300):
            worker.call(inputs)
        time.sleep(0.05)
        before = cpu_ticks(worker.pid)
        time.sleep(0.5)
        assert cpu_ticks(worker.pid) - before <= 1  # a spinning worker would use ~50


@pytest.mark.parametrize("used", ["busy_seconds", "cpu_seconds"])
def test_worker_is_renewed_before_its_cpu_limit(used: str) -> None:
    program = validate_program(GOOD["gridworld"], VARIABLES)
    with GuardedProgram(program, SandboxLimits(cpu_seconds=10)) as guarded:
        inputs = batch(program.parameters)
        guarded(inputs)
        assert guarded.worker is not None
        setattr(guarded.worker, used, 6.0)  # more than half of its 10 CPU seconds used
        first_pid = guarded.worker.pid
        guarded(inputs)
        assert guarded.worker.pid != first_pid and guarded.stats.restarts == 1
        assert guarded.stats.calls == 2 and not guarded.stats.failures


def test_guarded_program_arguments_are_checked() -> None:
    program = validate_program(GOOD["gridworld"], VARIABLES)
    with pytest.raises(ValueError, match="clip"):
        GuardedProgram(program, clip=(1.0, -1.0))
    with pytest.raises(ValueError, match="max_exceptions"):
        GuardedProgram(program, max_exceptions=0)
    with pytest.raises(ValueError, match="nonfinite_value"):
        GuardedProgram(program, nonfinite_value=float("nan"))


def test_closed_workers_are_reaped() -> None:
    worker = SandboxWorker(validate_program(GOOD["gridworld"], VARIABLES))
    pid = worker.pid
    worker.close()
    worker.close()  # idempotent
    assert gone(pid)
