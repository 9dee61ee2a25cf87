"""The pre-training check of LLM-written reward programs: the states it runs them on, and
every problem it reports (each program below trips exactly the check it is named after)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
from rewardlab.envs.core import expert_policy, get_task
from rewardlab.experiments.llm_reward import checks
from rewardlab.experiments.llm_reward.checks import random_states, smoke_test
from rewardlab.sandbox import GuardedProgram, RewardCallResult

# 100 states, in order: the first 64-row batch holds x = 1..64, the second x = 65..100.
X = {"x": np.arange(1.0, 101.0)}
X_SHAPES = {"x": ()}

GOOD = """
def compute_reward(x):
    return -x, {"neg": -x, "half": 0.5 * x}
"""

KEY_DOOR = "rewardlab/GridKeyDoor-v0"
KEY_DOOR_SHAPES = {v.name: v.shape for v in get_task(gym.make(KEY_DOOR)).state_variables}

# Rewards closeness to the goal as an inverse distance: fine everywhere random play goes,
# infinite on the goal cell itself.
INVERSE_DISTANCE = """
def compute_reward(agent_pos, goal_pos, door_open):
    dist = np.abs(goal_pos - agent_pos).sum(axis=-1)
    closeness = 1.0 / dist
    door = door_open.astype(np.float64)
    return closeness + door, {"closeness": closeness, "door": door}
"""


def rows(states: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(states.values())))
    return [{k: v[i] for k, v in states.items()} for i in range(n)]


def contains(states: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> bool:
    return any(all(np.array_equal(row[k], state[k]) for k in state) for row in rows(states))


# --- random_states ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", rewardlab.env_ids())
def test_states_hold_the_experts_success_and_terminal_states(env_id: str) -> None:
    states = random_states(env_id, episodes=1, max_steps=5, expert_episodes=1, seed=3)
    # The expert's episode resets with seed + episodes (after the random one).
    env = gym.make(env_id)
    task, act = get_task(env), expert_policy(env)
    obs, _ = env.reset(seed=4)
    expert_rows = [task.state()]
    first_success = None
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        expert_rows.append(task.state())
        done = terminated or truncated
        if info["is_success"] and first_success is None:
            first_success = expert_rows[-1]
    env.close()
    assert first_success is not None, f"the expert of {env_id} did not succeed"
    assert contains(states, first_success)
    assert contains(states, expert_rows[-1])  # the state the last step entered
    n = len(next(iter(states.values())))
    assert len(expert_rows) < n <= len(expert_rows) + 6  # and 2-6 random states


def test_key_door_states_reach_the_door_and_the_goal_only_with_the_expert() -> None:
    at_goal = {}
    for experts in (0, 2):
        states = random_states(KEY_DOOR, expert_episodes=experts)
        at_goal[experts] = int((states["agent_pos"] == states["goal_pos"]).all(axis=-1).sum())
        if experts:
            assert states["door_open"].any()
    # Random play (seed 0) never gets there; each expert episode ends on the goal.
    assert at_goal == {0: 0, 2: 2}


def test_states_are_deterministic_by_seed_and_shuffled() -> None:
    a = random_states(KEY_DOOR, seed=5)
    b = random_states(KEY_DOOR, seed=5)
    c = random_states(KEY_DOOR, seed=6)
    assert a.keys() == set(KEY_DOOR_SHAPES)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(a[k].shape != c[k].shape or not np.array_equal(a[k], c[k]) for k in a)
    for name, shape in KEY_DOOR_SHAPES.items():
        assert a[name].shape[1:] == shape
    # Shuffled: the first batch already holds states of several episodes (door columns vary).
    assert len({tuple(d) for d in a["door_pos"][:64]}) > 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expert_episodes": -1}, "expert_episodes must be >= 0, got -1"),
        ({"max_steps": -2}, "max_steps must be >= 0, got -2"),
        ({"episodes": 0, "expert_episodes": 0}, "at least 1"),
    ],
)
def test_state_collection_arguments_are_checked(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        random_states(KEY_DOOR, None, **kwargs)


# --- smoke_test: passing -----------------------------------------------------------------------


def test_a_good_program_passes_with_its_statistics() -> None:
    report = smoke_test(GOOD, X_SHAPES, X)
    assert report.passed and report.stage == "ok" and report.reason == ""
    assert report.problems == [] and report.warnings == []
    assert report.components == ["half", "neg"]
    assert report.reward_stats["min"] == -100.0 and report.reward_stats["max"] == -1.0
    assert report.reward_stats["mean"] == -50.5
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.message() == "The program passed the pre-training check."
    assert report.summary().startswith("passed: reward in [-100, -1]")


def test_no_states_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one state"):
        smoke_test(GOOD, X_SHAPES, {"x": np.zeros(0)})


# --- smoke_test: each problem -------------------------------------------------------------------


def test_a_validation_failure_is_reported_before_running() -> None:
    report = smoke_test("def compute_reward(y):\n    return y, {}\n", X_SHAPES, X)
    assert not report.passed and report.stage == "validation"
    assert report.latency_ms is None


def test_a_runtime_failure_shows_the_programs_own_error() -> None:
    source = """
def compute_reward(x):
    column = x[:, 3]
    return column, {}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.passed, report.stage, report.reason) == (False, "runtime", "exception")
    (problem,) = report.problems
    # The program's exception and line, not the exception budget that wraps it.
    assert problem.startswith("IndexError: too many indices")
    assert "column = x[:, 3]" in problem
    assert "time(s)" not in problem and "limit is" not in problem
    assert problem in report.message() and "```python" in report.message()


def test_a_program_that_breaks_with_one_env_is_caught() -> None:
    # (B, 1) squeezed: (B,) for every batch but B=1, where it becomes a scalar.
    source = """
def compute_reward(x):
    column = x.reshape(-1, 1)
    reward = column.squeeze()
    return reward, {"r": reward}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.stage, report.reason) == ("runtime", "bad_output")
    (problem,) = report.problems
    assert problem.startswith("called with a batch of B=1 (as in training with one env): ")
    assert "has shape ()" in problem


def test_a_reward_that_depends_on_the_rest_of_the_batch_is_caught() -> None:
    source = """
def compute_reward(x):
    share = x / x.max()
    return share, {"share": share}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.stage, report.reason) == ("checks", "batch_dependent")
    (problem,) = report.problems
    # x = 1 is 1 / 1 alone and 1 / 64 in the first batch.
    assert "gets 1 in a batch of 1 and 0.015625 in a batch of 64" in problem


def test_nonfinite_rewards_only_on_success_states_are_caught() -> None:
    random_only = random_states(KEY_DOOR, expert_episodes=0)
    assert smoke_test(INVERSE_DISTANCE, KEY_DOOR_SHAPES, random_only).passed

    states = random_states(KEY_DOOR)
    report = smoke_test(INVERSE_DISTANCE, KEY_DOOR_SHAPES, states)
    at_goal = int((states["agent_pos"] == states["goal_pos"]).all(axis=-1).sum())
    assert at_goal == 2
    assert (report.stage, report.reason) == ("checks", "nonfinite")
    assert report.problems[0].startswith(f"it returned NaN or inf {at_goal} times on ")


def test_a_nondeterministic_program_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation leaves a program no randomness or state between calls, so a program that
    # drifts anyway (one that escaped validation) is played by its guard adding the call count.
    class Drifting(GuardedProgram):
        calls = 0

        def __call__(self, variables: Mapping[str, Any]) -> RewardCallResult:
            result = super().__call__(variables)
            self.calls += 1
            return RewardCallResult(result.reward + self.calls, dict(result.components))

    monkeypatch.setattr(checks, "GuardedProgram", Drifting)
    report = smoke_test(GOOD, X_SHAPES, X)
    assert (report.stage, report.reason) == ("checks", "nondeterministic")
    assert "different rewards for the same states" in report.problems[0]


def test_component_names_that_change_between_calls_are_caught() -> None:
    source = """
def compute_reward(x):
    components = {"value": x}
    if np.any(x > 80):
        components["bonus"] = (x > 80).astype(np.float64)
    return x, components
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.stage, report.reason) == ("checks", "unstable_components")
    assert "(['value'] vs ['bonus', 'value'])" in report.problems[0]


def test_a_slow_program_is_caught() -> None:
    # A Python loop over the batch: tens of milliseconds per call, the limit is set to 1 ms.
    source = """
def compute_reward(x):
    total = np.zeros(len(x))
    for i in range(len(x)):
        for j in range(300):
            total[i] = total[i] + 0.5 * x[i]
    return total, {"total": total}
"""
    first_batch = {"x": X["x"][:64]}
    report = smoke_test(source, X_SHAPES, first_batch, latency_limit_ms=1.0)
    assert (report.stage, report.reason) == ("checks", "slow")
    assert report.latency_ms is not None and report.latency_ms > 1.0
    # The measured time stays out of the message (a recorded search must replay).
    assert report.problems[0] == (
        "it takes more than 1 ms per call on 64 states: vectorize with numpy, no Python "
        "loops over the batch"
    )


def test_a_constant_reward_is_flagged() -> None:
    source = """
def compute_reward(x):
    alive = np.full(len(x), 0.5)
    return alive, {"alive": alive, "x": x}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.stage, report.reason) == ("checks", "constant")
    assert "is the same (0.5) on all 100 states" in report.problems[0]
    assert report.warnings == ["component 'alive' is constant on these states"]


def test_every_problem_is_reported_and_the_first_names_the_reason() -> None:
    source = """
def compute_reward(x):
    zero = x * 0.0
    return zero / zero, {"zero": zero}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert report.reason == "nonfinite"
    assert len(report.problems) == 2 and "is the same (0)" in report.problems[1]
    assert report.summary().startswith("REJECTED (checks: nonfinite): it returned NaN")


def test_nonfinite_components_are_caught_too() -> None:
    source = """
def compute_reward(x):
    ratio = np.where(x > 50, np.inf, x)
    return -x, {"ratio": ratio}
"""
    report = smoke_test(source, X_SHAPES, X)
    assert (report.stage, report.reason) == ("checks", "nonfinite")
    assert report.problems == [
        "its components were NaN or inf ('ratio' 50 times); they are reported back to you, "
        "so keep them finite too"
    ]
