"""A program's components are a fixed, bounded schema, and their statistics stay finite.

Names are identifiers of at most 64 characters, at most 32 of them, never ``reward``,
``total_reward`` or ``task_success_rate`` (see ``protocol``'s docstring); the first answered
call fixes the set, and a call returning another set is ``"bad_output"``, also across worker
restarts. Finite values near the largest float must not turn the statistics, or the JSON a
training run writes, into NaN or Infinity.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlab.agents.callbacks import RewardComponentLog
from rewardlab.sandbox import (
    GuardedProgram,
    ProgramContained,
    RunningStats,
    SandboxLimits,
    SandboxWorker,
    validate_program,
)
from rewardlab.sandbox import protocol as wire

LIMITS = SandboxLimits(call_timeout_s=2.0)
HUGE = 1.7e308
# The guards' sums of such values overflow (then they take the slow, exact path): numpy says so.
OVERFLOW = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)

# A new component name on every call: the step number the first row carries.
CHURN = """
def compute_reward(x):
    step = int(x[0, 0])
    return x[:, 0] * 1.0, {f"term_{step}": x[:, 0] * 1.0, "kept": x[:, 0] * 2.0}
"""


def rows(step: int, batch: int = 8) -> dict[str, np.ndarray]:
    return {"x": np.full((batch, 1), float(step))}


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (which Python's JSON writes by default)."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} in JSON")

    return json.loads(text, parse_constant=refuse)


def finite_numbers(value: Any) -> list[float]:
    """Every number in a JSON value (raising on a non-finite one)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in finite_numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in finite_numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert math.isfinite(value), value
        return [float(value)]
    return []


# -- names ------------------------------------------------------------------------------------


def components_program(components: str) -> str:
    return f"def compute_reward(x):\n    v = x[:, 0] * 1.0\n    return v, {components}\n"


@pytest.mark.parametrize(
    ("components", "match"),
    [
        ('{"reward": v}', "'reward' is reserved"),
        ('{"total_reward": v}', "'total_reward' is reserved"),
        ('{"task_success_rate": v}', "'task_success_rate' is reserved"),
        ('{"a,b": v}', "'a,b' is not an identifier"),
        ('{"a\\nb": v}', "'a\\nb' is not an identifier"),
        ('{"": v}', "'' is not an identifier"),
        ('{"n" * 65: v}', "is not an identifier of at most 64 characters"),
        ('{"1st": v}', "not starting with a digit"),
        ('{"a b": v}', "'a b' is not an identifier"),
        ('{"reward/extra": v}', "not an identifier"),
        ('{"caf\\u00e9": v}', "not an identifier"),
        ("{1: v}", "must be strings, got 1 (int)"),
        ("{(1, 2): v}", "must be strings"),
        ('{f"c{i}": v for i in range(33)}', "33 components, at most 32"),
    ],
)
def test_reserved_and_malformed_names_are_bad_output(components: str, match: str) -> None:
    program = validate_program(components_program(components), ["x"])
    with SandboxWorker(program, LIMITS) as worker:
        with pytest.raises(ProgramContained) as contained:
            worker.call(rows(1))
        assert contained.value.reason == "bad_output"
        assert match in contained.value.message
        assert worker.alive  # the program's mistake, not the worker's: it goes on


@pytest.mark.parametrize(
    "components",
    [
        '{"n" * 64: v}',
        '{f"c{i}": v for i in range(32)}',
        '{"_private_looking": v, "rewarded": v, "reward_shaping": v, "potential": v}',
        '{"progress": v, "is_success": v, "original_reward": v, "shaping": v, "state": v}',
    ],
)
def test_names_within_the_rules_pass(components: str) -> None:
    program = validate_program(components_program(components), ["x"])
    with SandboxWorker(program, LIMITS) as worker:
        out = worker.call(rows(1))
    assert all(wire.component_name_problem(name) is None for name in out.components)
    assert len(out.components) in (1, 4, 5, 32)


def test_the_parent_and_the_worker_apply_the_same_rule() -> None:
    for name in ("reward", "a,b", "a\nb", "", "n" * 65, "x" * 64, "ok_1", "Ünïcode", "_", "a-b"):
        worker_verdict = None
        try:
            wire.check_output((np.zeros(1), {name: np.zeros(1)}), 1)
        except wire.BadOutput as exc:
            worker_verdict = str(exc)
        assert worker_verdict == wire.component_name_problem(name)
        field = name.encode() + bytes(-len(name.encode()) % 8)
        body = bytearray(wire.RESULT.pack(len(field), 0.0) + field + bytes(16))
        if worker_verdict is None:
            assert wire.decode_result(body, 1, {})[0] == (name,)
        else:
            with pytest.raises(ValueError):
                wire.decode_result(body, 1, {})


# -- a fixed set ------------------------------------------------------------------------------


def test_names_are_fixed_by_the_first_call() -> None:
    with SandboxWorker(validate_program(CHURN, ["x"]), LIMITS) as worker:
        first = worker.call(rows(0))
        assert set(first.components) == {"term_0", "kept"}
        assert worker.components == ("term_0", "kept")
        with pytest.raises(ProgramContained) as contained:
            worker.call(rows(1))
        assert contained.value.reason == "bad_output"
        assert "new: ['term_1'], missing: ['term_0']" in contained.value.message
        assert worker.alive and worker.calls == 2
        assert set(worker.call(rows(0)).components) == {"term_0", "kept"}


def test_reordered_names_are_the_same_set() -> None:
    source = """
def compute_reward(x):
    v = x[:, 0] * 1.0
    if x[0, 0] > 0:
        return v, {"a": v, "b": 2 * v}
    return v, {"b": 2 * v, "a": v}
"""
    with SandboxWorker(validate_program(source, ["x"]), LIMITS) as worker:
        for step in (1, -1, 1, -1):
            out = worker.call(rows(step))
            np.testing.assert_array_equal(out.components["b"], 2 * out.components["a"])


def test_name_churn_at_training_batch_sizes_is_bounded() -> None:
    """A new name on every call: each call after the first fails; nothing grows per name."""
    program = validate_program(CHURN, ["x"])
    with GuardedProgram(program, LIMITS, max_exceptions=1000) as guarded:
        for step in range(200):
            out = guarded(rows(step, batch=16))
            if step == 0:
                assert out.error is None and set(out.components) == {"term_0", "kept"}
            else:
                assert out.error is not None and out.error.startswith("bad_output: ")
                assert out.components == {}
        stats = guarded.stats
        assert set(stats.components) == {"term_0", "kept"}
        assert stats.calls == 1 and stats.failures == {"bad_output": 199}
        assert stats.restarts == 0  # the worker is fine: the program broke the contract
        assert len(guarded.worker._names) <= 64  # type: ignore[union-attr]
    with GuardedProgram(program, LIMITS) as guarded:  # the default budget: three failures
        guarded(rows(0))
        guarded(rows(1))
        guarded(rows(2))
        with pytest.raises(ProgramContained) as contained:
            guarded(rows(3))
    assert contained.value.reason == "exception_budget"
    assert contained.value.last_reason == "bad_output"


def test_a_replacement_worker_keeps_the_first_workers_names() -> None:
    with GuardedProgram(validate_program(CHURN, ["x"]), LIMITS) as guarded:
        guarded(rows(0))
        first = guarded.worker
        guarded.close()  # as after a dead worker, or to renew its CPU time
        out = guarded(rows(5))
        assert guarded.worker is not first and guarded.stats.restarts == 1
        assert out.error is not None and "new: ['term_5'], missing: ['term_0']" in out.error
        assert set(guarded(rows(0)).components) == {"term_0", "kept"}
        assert set(guarded.stats.components) == {"term_0", "kept"}


# -- finite statistics ------------------------------------------------------------------------


@OVERFLOW
def test_running_stats_stay_finite_near_the_largest_float() -> None:
    stats = RunningStats()
    stats.update(np.full(64, HUGE))  # the sum overflows; the mean is taken scaled down
    assert stats.mean == pytest.approx(HUGE, rel=1e-12) and stats.max == HUGE
    stats.update(np.full(64, -HUGE))
    assert stats.mean == pytest.approx(0.0, abs=1e300) and stats.min == -HUGE
    stats.update(np.array([HUGE, HUGE, -HUGE]))
    assert all(math.isfinite(v) for v in (stats.mean, stats.min, stats.max))
    largest = RunningStats()
    for _ in range(100):
        largest.update(np.full(7, np.finfo(np.float64).max))
    assert largest.mean == pytest.approx(np.finfo(np.float64).max, rel=1e-12)
    assert math.isfinite(largest.mean)
    strict_json(json.dumps(stats.as_dict(), allow_nan=False))


HUGE_PROGRAM = """
def compute_reward(agent_pos, goal_pos):
    d = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0
    huge = np.full(d.shape, 1.7e308)
    return -d, {"distance": d, "huge": huge, "swing": np.where(d > 2, huge, -huge)}
"""


@OVERFLOW
def test_huge_finite_components_keep_the_guard_statistics_finite() -> None:
    program = validate_program(HUGE_PROGRAM, {"agent_pos": (2,), "goal_pos": (2,)})
    rng = np.random.default_rng(0)
    with GuardedProgram(program, LIMITS) as guarded:
        for _ in range(20):
            guarded({"agent_pos": rng.integers(0, 5, (64, 2)), "goal_pos": np.full((64, 2), 2)})
        stats = guarded.stats
    assert stats.nonfinite == 0 and stats.components["huge"].nonfinite == 0
    assert stats.components["huge"].mean == pytest.approx(HUGE, rel=1e-12)
    assert abs(stats.components["swing"].mean) <= HUGE
    snapshot = strict_json(json.dumps(stats.snapshot(), allow_nan=False))
    assert snapshot["components"]["huge"]["max"] == HUGE
    finite_numbers(snapshot)


def test_component_log_leaves_out_and_counts_nonfinite_values() -> None:
    log = RewardComponentLog(total_steps=10)
    log._add("mixed", [1.0, math.nan, math.inf, 3.0])
    log._add("never", [math.nan, -math.inf])
    log._add("huge", [HUGE, HUGE, HUGE])
    log._add("huge", [-HUGE])
    summary = log.summary()
    assert summary["mixed"] | {"values": None} == {
        "values": None,
        "max": 3.0,
        "mean": 2.0,
        "min": 1.0,
        "nonfinite": 2,
    }
    assert summary["never"]["mean"] is None and summary["never"]["nonfinite"] == 2
    assert summary["huge"]["mean"] == pytest.approx(HUGE / 2) and summary["huge"]["max"] == HUGE
    strict_json(json.dumps(summary, allow_nan=False))


@OVERFLOW
def test_training_with_huge_components_writes_strict_json_and_a_clean_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardlab.cli import main

    program = tmp_path / "huge.py"
    program.write_text(HUGE_PROGRAM)
    out = tmp_path / "run"
    spec = f"{{model: {{kind: program, path: {program}}}}}"
    args = ["train", "--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]
    args += ["--reward", spec, "--steps", "128", "--out", str(out), "--no-progress"]
    args += ["--set", "n_envs=2", "--set", "n_steps=32", "--set", "batch_size=32"]
    assert main([*args, "--eval-episodes", "1"]) == 0, capsys.readouterr().err
    components = strict_json((out / "reward_components.json").read_text())
    assert components["huge"]["mean"] == HUGE and components["huge"]["values"] == [HUGE] * 10
    assert set(components) == {"reward", "distance", "huge", "swing"}
    finite_numbers(components)
    diagnostics = strict_json((out / "reward_diagnostics.json").read_text())
    assert diagnostics["reward"]["components"]["huge"]["mean"] == HUGE
    assert set(diagnostics["reward"]["components"]) == {"distance", "huge", "swing"}
    finite_numbers(diagnostics)
    with open(out / "progress.csv", newline="") as file:
        table = list(csv.reader(file))
    header, body = table[0], table[1:]
    assert body and all(len(row) == len(header) for row in body)
    assert {"reward/distance", "reward/huge", "reward/swing"} <= set(header)
    huge = [
        float(row[header.index("reward/huge")]) for row in body if row[header.index("reward/huge")]
    ]
    assert huge and all(value == HUGE for value in huge)
