"""The pre-training check of LLM-written reward programs: the states it runs them on, and
every problem it reports (each program below trips exactly the check it is named after)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
from rewardlab.envs.core import expert_policy, get_task
from rewardlab.experiments.llm_reward import checks
from rewardlab.experiments.llm_reward.checks import random_states, smoke_test
from rewardlab.reward_models import program_reward
from rewardlab.sandbox import GuardedProgram, RewardCallResult, ValidatedProgram, process

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


def test_a_constant_component_near_the_float_limit_is_named_without_overflow_noise() -> None:
    source = "def compute_reward(x):\n    return -x, {'big': x * 0.0 + 1.7e308, 'x': x}\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow RuntimeWarning would fail here
        report = smoke_test(source, X_SHAPES, X)
    assert report.passed
    assert report.warnings == ["component 'big' is constant on these states"]


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
    report = smoke_test(GOOD, X_SHAPES, X, n_envs=3)
    assert report.passed and report.stage == "ok" and report.reason == ""
    assert report.problems == [] and report.warnings == []
    assert report.components == ["half", "neg"]
    assert report.reward_stats["min"] == -100.0 and report.reward_stats["max"] == -1.0
    assert report.reward_stats["mean"] == -50.5
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.message() == "The program passed the pre-training check."
    assert report.summary().startswith("passed: reward in [-100, -1]")
    # The cost per row at the training batch size, and the sandbox the worker ran in.
    assert report.n_envs == 3 and report.train_ms_per_call is not None
    assert report.train_us_per_row == pytest.approx(report.train_ms_per_call * 1e3 / 3)
    assert report.cost().startswith("cost at the training batch size (3 envs): ")
    assert "rlimits" in report.hardening
    assert smoke_test(GOOD, X_SHAPES, X).cost() == ""  # no training batch size given


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
    # x = 1 is 1 / 1 alone and 1 / 64 in the first batch (check_reward_model's words).
    assert problem.startswith(
        "the reward of row 0 is 1 alone (a batch of 1) and 0.015625 in the batch of 64 as "
        "given: it depends on the other rows of the batch: compute each row from its own "
    )


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

    monkeypatch.setattr(program_reward, "GuardedProgram", Drifting)
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
    # The sandbox fixes the names at the first call and refuses any other set after it.
    assert (report.stage, report.reason) == ("runtime", "bad_output")
    assert "other component names than on its first call (new: ['bonus']" in report.problems[0]


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


# --- the same states in two processes, and at the training batch size -------------------------

# Reads its worker's process id through the interpreter's own objects: validation would
# reject this program, so it is built as a ValidatedProgram directly (the sandbox still runs
# it). It is the same within a worker, and differs between two.
PROCESS_ID = """
def compute_reward(x):
    pid = 0
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            pid = cls.__init__.__globals__["getpid"]()
    return x + (pid % 997) * 1e-3, {"x": x}
"""

TWO_PROCESSES = (
    "it returned different rewards for the same states in two separate processes: a reward "
    "must be a function of the state alone (no randomness, no clock, nothing that differs from "
    "one process to another, such as the address of an object in memory)"
)


def test_a_program_that_differs_between_processes_is_caught() -> None:
    program = ValidatedProgram(PROCESS_ID, ("x",))
    first = smoke_test(program, X_SHAPES, X)
    assert (first.stage, first.reason, first.problems) == (
        "checks",
        "nondeterministic",
        [TWO_PROCESSES],
    )
    # Its rewards differ from run to run; what the LLM is told does not.
    assert smoke_test(program, X_SHAPES, X).message() == first.message()


def test_a_program_whose_component_names_differ_between_processes_is_caught() -> None:
    source = PROCESS_ID.replace('{"x": x}', '{"x" + str(pid): x}').replace(
        " + (pid % 997) * 1e-3", ""
    )
    report = smoke_test(ValidatedProgram(source, ("x",)), X_SHAPES, X)
    assert (report.reason, report.problems) == ("nondeterministic", [TWO_PROCESSES])


@pytest.mark.parametrize(
    "source",
    [
        # The address of its own function object: the same in one process, not in another.
        """
def compute_reward(x):
    where = str(compute_reward)
    return x + int(where[-9:-1], 16) % 1000003 * 1e-6, {"x": x}
""",
        # The address of a bound method of a fresh list.
        """
def compute_reward(x):
    where = f"{[x].append}"
    return x + int(where[-9:-1], 16) % 1000003 * 1e-6, {"x": x}
""",
    ],
    ids=["function_address", "method_address"],
)
def test_entropy_from_memory_addresses_never_passes(source: str) -> None:
    report = smoke_test(source, X_SHAPES, X)
    # The worker refuses to make text of anything whose text shows an address.
    assert (report.stage, report.reason) == ("runtime", "exception"), report
    assert "cannot be turned into text" in report.problems[0]


# The iteration order of a set of strings depends on the process's hash seed.
SET_ORDER = """
def compute_reward(x):
    code = 0
    for word in {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
                 "kappa", "lambda", "mu"}:
        code = (code * 31 + len(word)) % 1000003
    return x + code * 1e-6, {"x": x}
"""


def test_set_order_is_the_same_in_every_worker_and_the_check_would_see_it_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert smoke_test(SET_ORDER, X_SHAPES, X).passed  # workers share a fixed hash seed
    # Without it (each worker its own random seed), the two workers disagree.
    monkeypatch.setitem(process._WORKER_ENV, "PYTHONHASHSEED", "random")
    report = smoke_test(SET_ORDER, X_SHAPES, X)
    assert (report.reason, report.problems) == ("nondeterministic", [TWO_PROCESSES])


# Adds 1 only when called with exactly three states: as in training with three envs.
THREE_ENVS = """
def compute_reward(x):
    reward = np.where(len(x) == 3, x + 1.0, x)
    return reward, {"value": reward}
"""


def test_a_program_that_differs_only_at_the_training_batch_size_is_caught() -> None:
    assert smoke_test(THREE_ENVS, X_SHAPES, X).passed  # batches of 64, 1 and 2 agree
    assert smoke_test(THREE_ENVS, X_SHAPES, X, n_envs=4).passed
    report = smoke_test(THREE_ENVS, X_SHAPES, X, n_envs=3)
    assert (report.stage, report.reason) == ("checks", "batch_dependent")
    assert report.problems == [
        "its reward for a state depends on the batch it is in: a state gets 2 in a batch of 3 "
        "and 1 in a batch of 64 (training with 3 envs calls it on batches of 3); compute each "
        "row from its own state only, nothing that depends on the batch size or on the other "
        "states (no mean, max, sum or normalization over the batch axis 0)"
    ]


def test_a_training_batch_larger_than_the_states_wraps_around() -> None:
    wide = THREE_ENVS.replace("len(x) == 3", "len(x) == 150")
    report = smoke_test(wide, X_SHAPES, X, n_envs=150)
    assert report.reason == "batch_dependent" and "in a batch of 150" in report.problems[0]
    good = smoke_test(GOOD, X_SHAPES, X, n_envs=150)
    assert good.passed and good.n_envs == 150


def test_a_failure_only_at_the_training_batch_size_says_so() -> None:
    source = THREE_ENVS.replace("np.where(len(x) == 3, x + 1.0, x)", "x[: len(x) - (len(x) == 3)]")
    report = smoke_test(source, X_SHAPES, X, n_envs=3)
    assert (report.stage, report.reason) == ("runtime", "bad_output")
    assert report.problems[0].startswith(
        "called with a batch of B=3 (as in training with 3 envs): "
    )


class SlowAtThree(GuardedProgram):
    """Seen through a fake clock: a call on 3 states takes 100 ms, any other 0.1 ms."""

    now = 0.0
    calls_at_three = 0

    def __call__(self, variables: Mapping[str, Any]) -> RewardCallResult:
        result = super().__call__(variables)
        three = len(result.reward) == 3
        SlowAtThree.calls_at_three += three
        SlowAtThree.now += 0.1 if three else 1e-4
        return result


def test_the_cost_at_the_training_batch_size_is_measured_and_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(program_reward, "GuardedProgram", SlowAtThree)
    monkeypatch.setattr(checks, "perf_counter", lambda: SlowAtThree.now)
    report = smoke_test(GOOD, X_SHAPES, X, n_envs=3)
    assert (report.stage, report.reason) == ("checks", "slow")
    # Only at 3 envs (64 states take 0.1 ms), and the message holds no measured time.
    assert report.problems == [
        "it takes more than 50 ms per call on 3 states, the batch of a training run with 3 "
        "envs, where it would slow training down: vectorize with numpy, no Python loops over "
        "the batch"
    ]
    assert report.latency_ms == pytest.approx(0.1)
    assert report.train_ms_per_call == pytest.approx(100.0)
    assert report.train_us_per_row == pytest.approx(1e5 / 3)
    assert report.cost() == (
        "cost at the training batch size (3 envs): 100 ms per call, 33.3 ms per row"
    )
    # Too slow after the timed calls: the other batches of 3 are not run (34 would be).
    assert SlowAtThree.calls_at_three == checks.TIMED_CALLS + 1

    fast = smoke_test(GOOD, X_SHAPES, X, n_envs=4)
    assert fast.passed and fast.train_ms_per_call == pytest.approx(0.1)
    assert fast.cost() == "cost at the training batch size (4 envs): 100 us per call, 25 us per row"
