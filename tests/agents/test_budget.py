"""A training run's time budget for reward programs: what the reward layers measure, the
budget's arithmetic, and the stop (or warning) in ``train``. Times come from a fake clock or
are given outright: nothing here depends on how fast this machine is."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewardlab
from rewardlab.agents.callbacks import RewardCostCheck
from rewardlab.agents.train import TrainConfig, train
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.sandbox import ProgramContained
from rewardlab.wrappers import vec
from rewardlab.wrappers.timing import RewardBudget, RewardCost, RewardTooSlow, StepTimes

GRID = "rewardlab/GridEmpty-v0"
PROGRAM = (
    "def compute_reward(agent_pos, goal_pos):\n"
    "    distance = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0\n"
    "    return -distance, {'distance': distance}\n"
)


class FakeClock:
    """``perf_counter`` of the reward layer: each vector step reads it three times (before
    the inner step, after it, after the model call), and sees the env step take ``env_s``
    and the model ``model_s``."""

    def __init__(self, env_s: float, model_s: float) -> None:
        self.now = 0.0
        self._steps: Iterator[float] = itertools.cycle([0.0, env_s, model_s])

    def __call__(self) -> float:
        self.now += next(self._steps)
        return self.now


# --- StepTimes ---------------------------------------------------------------------------------


def test_step_times_are_medians_of_each_window_after_the_warm_up() -> None:
    times = StepTimes(warmup=2, window=3)
    assert times.windows == 0 and math.isnan(times.env_s) and math.isnan(times.model_s)
    # The warm-up's slow steps (a new worker) and one outlier per window do not count.
    for env_s, model_s in [(50, 50), (40, 40), (1, 0.1), (9, 0.3), (2, 0.2)]:
        times.add(env_s, model_s)
    assert (times.windows, times.env_s, times.model_s) == (1, 2, 0.2)
    for env_s, model_s in [(3, 1), (4, 2), (5, 99)]:
        times.add(env_s, model_s)
    assert (times.windows, times.env_s, times.model_s) == (2, 4, 2)
    times.reset(warmup=0, window=1)
    assert times.windows == 0 and math.isnan(times.env_s)
    times.add(7, 8)
    assert (times.windows, times.env_s, times.model_s) == (1, 7, 8)
    with pytest.raises(ValueError, match="window >= 1"):
        times.reset(window=0)


class Constant(RewardModel):
    def __call__(self, batch: RewardBatch) -> RewardOutput:
        return RewardOutput(np.zeros(len(batch)))


def test_the_reward_layer_times_the_inner_step_and_the_model_call_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.004, model_s=0.030))
    venv = rewardlab.make_vec_env(GRID, 2, reward=Constant())
    assert isinstance(venv, vec.VecModelReward)
    venv.times.reset(warmup=1, window=4)
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros(2, dtype=int))
    venv.close()
    assert venv.times.windows == 1
    assert venv.times.env_s == pytest.approx(0.004)
    assert venv.times.model_s == pytest.approx(0.030)


# --- the budget's arithmetic -------------------------------------------------------------------


def _judge(budget: RewardBudget, env_ms: float, call_ms: float) -> RewardCost:
    check = RewardCostCheck(budget, {"reward": "my_reward.py"})
    (cost,) = check.judge(env_ms / 1e3, {"reward": call_ms / 1e3}, n_envs=8)
    return cost


@pytest.mark.parametrize(
    ("env_ms", "call_ms", "limit_ms", "exceeded"),
    [
        (0.2, 49.0, 50.0, False),  # a fast env: the floor is the limit
        (0.2, 51.0, 50.0, True),
        (8.0, 79.0, 80.0, False),  # a slow env: 10x its step
        (8.0, 81.0, 80.0, True),
    ],
)
def test_the_limit_is_a_multiple_of_the_env_step_but_at_least_the_floor(
    env_ms: float, call_ms: float, limit_ms: float, exceeded: bool
) -> None:
    budget = RewardBudget(on_exceed="warn")
    assert budget.limit_ms(env_ms) == pytest.approx(limit_ms)
    cost = _judge(budget, env_ms, call_ms)
    assert cost.limit_ms == pytest.approx(limit_ms) and cost.exceeded is exceeded
    if exceeded:
        with pytest.raises(RewardTooSlow):
            _judge(RewardBudget(), env_ms, call_ms)
    else:
        _judge(RewardBudget(), env_ms, call_ms)


def test_a_budget_without_floor_is_only_the_multiple() -> None:
    budget = RewardBudget(multiple=2.0, min_ms=0.0)
    assert budget.limit_ms(1.0) == 2.0
    with pytest.raises(RewardTooSlow) as caught:
        _judge(budget, env_ms=1.0, call_ms=2.5)
    assert caught.value.cost.limit_ms == 2.0
    with pytest.raises(ValueError, match="multiple"):
        RewardBudget(multiple=0)


def test_the_error_names_the_program_and_its_cost_and_the_llm_gets_no_times() -> None:
    with pytest.raises(RewardTooSlow) as caught:
        _judge(RewardBudget(), env_ms=5.3, call_ms=212.0)
    exc = caught.value
    assert isinstance(exc, ProgramContained) and exc.reason == "slow"
    assert exc.report.startswith(
        "reward program my_reward.py costs 212 ms per call at 8 envs (26.5 ms per row), 40x "
        "the env step (5.3 ms); the limit is 53 ms per call (10x the env step, at least 50 ms). "
        "Vectorize it"
    )
    assert exc.report.endswith("no Python loops over the rows)")
    assert str(exc) == f"slow: {exc.report}"
    # What an LLM is told is the same whatever was measured (a recorded search replays).
    assert exc.message == (
        "compute_reward costs more per call than training allows (with 8 envs: more than 10x "
        "the env step and more than 50 ms per call); vectorize it with numpy over the batch "
        "axis 0, no Python loops over the rows"
    )
    with pytest.raises(RewardTooSlow) as other:
        _judge(RewardBudget(), env_ms=0.1, call_ms=999.0)
    assert other.value.message == exc.message and other.value.report != exc.report
    # Raised in a process pool's worker (compare), it comes back whole.
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is RewardTooSlow and copy.cost == exc.cost and str(copy) == str(exc)


def test_warn_mode_warns_once_per_program() -> None:
    check = RewardCostCheck(RewardBudget(on_exceed="warn"), {"reward": "a.py"})
    for call_s in (0.2, 0.3, 0.01):
        check.judge(0.001, {"reward": call_s, "potential": 0.001}, n_envs=4)
    (warning,) = check.warnings
    assert warning.startswith("reward program a.py costs 200 ms per call at 4 envs")
    assert warning.endswith("training went on (on_exceed: warn)")
    assert check.costs["reward"].call_ms == pytest.approx(10.0)
    assert check.costs["potential"].program == "given as source"


# --- in training -------------------------------------------------------------------------------


def _config(tmp_path: Path, **budget: Any) -> TrainConfig:
    program = tmp_path / "my_reward.py"
    program.write_text(PROGRAM)
    return TrainConfig(
        env=GRID,
        env_kwargs={"size": 5},
        reward={"model": {"kind": "program", "path": str(program)}},
        hyperparams={"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
        steps=64,
        eval_freq=64,
        eval_episodes=1,
        reward_budget=RewardBudget(warmup=2, window=4, **budget),
    )


def test_training_stops_when_the_program_is_over_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen through the fake clock, every call takes 60 ms and every env step 1 ms.
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.060))
    config = _config(tmp_path)
    with pytest.raises(RewardTooSlow) as caught:
        train(config, tmp_path / "run")
    cost = caught.value.cost
    assert (cost.program, cost.role, cost.n_envs) == (str(tmp_path / "my_reward.py"), "reward", 2)
    assert cost.call_ms == pytest.approx(60.0) and cost.env_step_ms == pytest.approx(1.0)
    assert cost.limit_ms == 50.0
    # The run records where it stopped: after the warm-up and one window of 2-env steps.
    failed = json.loads((tmp_path / "run" / "failed.json").read_text())
    assert failed["steps"] == 2 * (2 + 4)
    assert "costs 60 ms per call at 2 envs (30 ms per row)" in failed["error"]
    assert not (tmp_path / "run" / "model.zip").exists()


def test_with_warn_training_finishes_and_says_what_it_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.060))
    result = train(_config(tmp_path, on_exceed="warn"), tmp_path / "run")
    assert result.steps == 64 and (tmp_path / "run" / "model.zip").is_file()
    (warning,) = result.warnings
    assert warning.startswith(f"reward program {tmp_path / 'my_reward.py'} costs 60 ms per call")
    # The cost is logged with the run's other statistics.
    header = (tmp_path / "run" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"reward_cost/reward_ms", "reward_cost/env_step_ms"} <= set(header)


def test_a_program_used_as_a_potential_is_held_to_the_budget_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.060))
    config = _config(tmp_path)
    shaping = {"reward_type": "sparse", "shaping": config.reward.model}
    config = config.model_copy(update={"reward": config.reward.model_validate(shaping)})
    with pytest.raises(RewardTooSlow) as caught:
        train(config, tmp_path / "run")
    assert caught.value.cost.role == "potential"
    assert caught.value.report.startswith(f"potential program {tmp_path / 'my_reward.py'} costs")


def test_a_program_within_budget_trains_without_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.040))
    result = train(_config(tmp_path), tmp_path / "run")
    assert result.steps == 64 and result.warnings == []


def test_a_default_budget_is_left_out_of_the_recorded_config(tmp_path: Path) -> None:
    # Runs recorded before the budget existed (a comparison's done markers) still match.
    plain = TrainConfig(env=GRID, steps=64)
    assert "reward_budget" not in plain.model_dump(mode="json")
    custom = plain.model_copy(update={"reward_budget": RewardBudget(on_exceed="warn")})
    dumped = custom.model_dump(mode="json")
    assert dumped["reward_budget"]["on_exceed"] == "warn"
    assert TrainConfig.model_validate(dumped) == custom
    assert TrainConfig.model_validate(plain.model_dump(mode="json")) == plain
