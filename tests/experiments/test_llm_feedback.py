"""What the LLM is told about a task and after a round: the reward context, the Eureka reward
reflection, and the failure analysis of real gridworld episodes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
import rewardlab.envs.gridworld
from rewardlab.envs.core import get_task
from rewardlab.experiments.llm_reward import feedback
from rewardlab.experiments.llm_reward.context import reward_context
from rewardlab.experiments.llm_reward.feedback import (
    EpisodeEnd,
    analyze_failures,
    failure_summary,
    reward_reflection,
)

# --- reward context ----------------------------------------------------------------------------


def test_state_class_lists_every_variable_with_its_batched_shape() -> None:
    context = reward_context("rewardlab/GridKeyDoor-v0")
    variables = get_task(gym.make("rewardlab/GridKeyDoor-v0")).state_variables
    assert context.variables == variables
    lines = context.state_class().splitlines()
    assert lines[:2] == [
        "class State:",
        '    """Batched: every field has a leading batch dimension B."""',
    ]
    fields = lines[2:]
    assert [line.split(":")[0].strip() for line in fields] == [v.name for v in variables]
    by_name = dict(zip([v.name for v in variables], fields, strict=True))
    assert by_name["agent_pos"] == (
        "    agent_pos   : np.ndarray  # (B, 2) int cells: agent cell (x, y); y grows downwards"
    )
    assert "# (B,) bool: the agent holds the key" in by_name["carrying_key"]
    assert "# (B,) int: 0 east (+x)" in by_name["agent_dir"]  # unitless: no units shown
    assert "# (B, 8, 8) bool: wall cells indexed [y, x]" in by_name["walls"]
    marked = {v.name for v in variables if "[privileged: the policy" in by_name[v.name]}
    assert marked == {v.name for v in variables if v.privileged} == {"walls", "lava"}


@pytest.mark.parametrize("env_id", rewardlab.env_ids())
def test_every_variable_is_told_with_the_kind_the_program_gets(env_id: str) -> None:
    context = reward_context(env_id)
    env = gym.make(env_id)
    env.reset(seed=1)
    state = get_task(env).state()
    kinds = {"b": "bool", "i": "int", "f": "float"}
    assert context.kinds == tuple(kinds[state[v.name].dtype.kind] for v in context.variables)
    for line, v, kind in zip(
        context.state_class().splitlines()[2:], context.variables, context.kinds, strict=True
    ):
        shape = "(B, " + ", ".join(map(str, v.shape)) + ")" if v.shape else "(B,)"
        assert f"# {shape} {kind}" in line


def test_shapes_follow_the_env_kwargs() -> None:
    context = reward_context("rewardlab/GridEmpty-v0", {"size": 5})
    assert context.shapes["walls"] == (5, 5) and context.shapes["agent_pos"] == (2,)
    assert "(B, 5, 5) bool" in context.state_class()
    assert context.variable_names == tuple(context.shapes)


def test_render_and_contract() -> None:
    context = reward_context("rewardlab/GridKeyDoor-v0")
    text = context.render()
    assert text.startswith(
        "Task (rewardlab/GridKeyDoor-v0): Minigrid DoorKey 8x8: pick up the key, unlock the "
        "door, reach the goal.\nA successful state looks like: "
    )
    assert "Episodes last up to 300 steps" in text
    assert text.endswith(context.state_class())  # no source unless asked
    assert context.source is None and "```" not in text
    signature = "def compute_reward(" + ", ".join(context.variable_names) + ")"
    assert signature in context.contract()


def test_include_source_appends_the_envs_module() -> None:
    context = reward_context("rewardlab/GridKeyDoor-v0", include_source=True)
    source = inspect.getsource(rewardlab.envs.gridworld)
    assert context.source == source
    text = context.render()
    assert text.endswith(f"The environment's source code:\n```python\n{source}\n```")
    assert text.index(context.state_class()) < text.index("class GridWorldEnv(")


def test_unknown_env_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown env id 'rewardlab/Nope-v0'"):
        reward_context("rewardlab/Nope-v0")


# --- reward reflection -------------------------------------------------------------------------


def test_reflection_lists_success_then_total_reward_then_components() -> None:
    # In the format of RewardComponentLog.summary(): window means, then overall statistics.
    components = {
        "distance": {"values": [-4.0, -2.5, -1.0], "max": -0.5, "mean": -2.5, "min": -6.0},
        "reward": {"values": [0.125, 1.0, 2.0], "max": 10.0, "mean": 1.04, "min": -6.0},
        "bonus": {"values": [0.0, 0.0, 0.0], "max": 0.0, "mean": 0.0, "min": 0.0},
    }
    text = reward_reflection(components, [0.0, 0.25, 0.5])
    lines = text.splitlines()
    assert lines[1:5] == [
        "task_success_rate: [0, 0.25, 0.5], Max: 0.5, Mean: 0.25, Min: 0",
        "total_reward: [0.125, 1, 2], Max: 10, Mean: 1.04, Min: -6",
        "bonus: [0, 0, 0], Max: 0, Mean: 0, Min: 0",
        "distance: [-4, -2.5, -1], Max: -0.5, Mean: -2.5, Min: -6",
    ]
    assert lines[0].startswith("We trained a policy with your reward function.")
    assert lines[5] == "" and lines[6].startswith("How to read this:")


def test_reflection_without_evaluations_or_components() -> None:
    lines = reward_reflection({}, []).splitlines()
    assert lines[1] == "task_success_rate: [], Max: 0, Mean: 0, Min: 0"
    assert lines[2] == ""


# --- failure analysis --------------------------------------------------------------------------


def toward_goal(obs: np.ndarray) -> int:
    """A scripted policy from the vector observation: face east until the goal's column,
    then south; move forward when facing that way, else turn right."""
    agent, facing, goal = obs[0:2], int(np.argmax(obs[2:6])), obs[8:10]
    want = 0 if goal[0] > agent[0] + 1e-6 else 1
    return 2 if facing == want else 1


def seeded_random(seed: int) -> Callable[[Any], int]:
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(5))


def replay(env_id: str, act: Callable[[Any], Any], seed: int) -> EpisodeEnd:
    """The same episode stepped here: what analyze_failures must report."""
    env = gym.make(env_id)
    task = get_task(env)
    obs, info = env.reset(seed=seed)
    progress, reached, done = [info["progress"]], info["is_success"], False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        progress.append(info["progress"])
        reached = reached or info["is_success"]
        done = terminated or truncated
    success = info["is_success"]
    state = task.state()
    env.close()
    flags = [v.name for v in task.state_variables if v.units == "bool" and v.shape == ()]
    return EpisodeEnd(
        seed=seed,
        success=bool(success),
        reason="success"
        if success
        else "left_success"
        if reached
        else "terminal_failure"
        if terminated
        else "time_limit",
        steps=len(progress) - 1,
        final_progress=float(progress[-1]),
        max_progress=float(max(progress)),
        flags=tuple(f for f in flags if state[f]),
    )


def test_a_scripted_policy_succeeds_in_every_episode() -> None:
    seeds = [0, 1, 2, 3]
    ends = analyze_failures("rewardlab/GridEmpty-v0", toward_goal, seeds)
    assert [e.seed for e in ends] == seeds
    env = gym.make("rewardlab/GridEmpty-v0")
    for end in ends:
        assert (end.success, end.reason, end.flags) == (True, "success", ())
        assert end.final_progress == end.max_progress == 1.0
        # 10 moves from (1, 1) to (6, 6); right turns until facing east, then one to south.
        env.reset(seed=end.seed)
        start = int(get_task(env).state()["agent_dir"])
        assert end.steps == 10 + (-start) % 4 + 1
    assert failure_summary(ends) == "The trained policy succeeded in 4 of 4 episodes."


@pytest.mark.parametrize(
    ("env_id", "reason"),
    [("rewardlab/GridKeyDoor-v0", "time_limit"), ("rewardlab/GridLavaCrossing-v0", None)],
)
def test_failed_random_episodes_are_recorded_as_they_ended(env_id: str, reason: str) -> None:
    seeds = list(range(6))
    ends = analyze_failures(env_id, seeded_random(0), seeds)
    act = seeded_random(0)
    assert ends == [replay(env_id, act, seed) for seed in seeds]
    assert not any(e.success for e in ends)
    if reason == "time_limit":  # 300 steps are not enough for random play in key-door
        assert {(e.reason, e.steps) for e in ends} == {("time_limit", 300)}
        assert any(e.flags == ("carrying_key", "door_open") for e in ends)
    else:  # lava ends the episode, at progress 0
        assert {e.reason for e in ends} == {"terminal_failure"}
        assert all(e.final_progress == 0.0 and e.steps < 324 for e in ends)


def test_failure_summary_of_random_key_door_play() -> None:
    ends = analyze_failures("rewardlab/GridKeyDoor-v0", seeded_random(0), range(4))
    keys = sum("carrying_key" in e.flags for e in ends)
    doors = sum("door_open" in e.flags for e in ends)
    lines = failure_summary(ends).splitlines()
    assert lines[:2] == [
        "The trained policy succeeded in 0 of 4 episodes.",
        "How the failed episodes ended:",
    ]
    final = np.mean([e.final_progress for e in ends])
    best = np.mean([e.max_progress for e in ends])
    assert lines[2] == (
        f"- 4 ran out of time after 300 steps on average, with ground-truth progress "
        f"{final:.2f} at the end (best reached {best:.2f}; 1 is success); set at the end: "
        f"carrying_key in {keys}, door_open in {doors}."
    )


def end(reason: str, steps: int, final: float, best: float, *flags: str) -> EpisodeEnd:
    return EpisodeEnd(0, reason == "success", reason, steps, final, best, flags)


def test_failure_summary_groups_by_how_episodes_ended() -> None:
    ends = [
        end("success", 12, 1.0, 1.0),
        end("time_limit", 100, 0.5, 0.9, "carrying_key"),
        end("time_limit", 100, 0.25, 0.3),
        end("terminal_failure", 7, 0.0, 0.1),
    ]
    assert failure_summary(ends).splitlines() == [
        "The trained policy succeeded in 1 of 4 episodes.",
        "How the failed episodes ended:",
        "- 2 ran out of time after 100 steps on average, with ground-truth progress 0.38 at "
        "the end (best reached 0.60; 1 is success); set at the end: carrying_key in 1.",
        "- 1 ended in a terminal state without success after 7 steps on average, with "
        "ground-truth progress 0.00 at the end (best reached 0.10; 1 is success).",
        "- 1 got much closer to the goal than where they ended: the policy may be drifting "
        "away or being paid for something other than finishing.",
    ]
    assert failure_summary([]) == "No evaluation episodes were run."


def test_an_episode_that_left_its_success_state_is_not_a_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where success does not end the episode (manipulation), the final state decides, as in
    # the true-task evaluation: success reached at step 3 and lost after is a failure.
    class SuccessAtStep3(gym.Wrapper):  # type: ignore[type-arg]
        def reset(self, **kwargs: Any) -> Any:
            self.t = 0
            return self.env.reset(**kwargs)

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            return obs, reward, terminated, self.t >= 6, {**info, "is_success": self.t == 3}

    make = feedback.make
    monkeypatch.setattr(feedback, "make", lambda *a, **k: SuccessAtStep3(make(*a, **k)))
    (ended,) = analyze_failures("rewardlab/ManipReach-v0", lambda obs: np.zeros(4), [0])
    assert (ended.success, ended.reason, ended.steps) == (False, "left_success", 6)
    summary = failure_summary([ended])
    assert "1 reached a success state but did not stay there after 6 steps" in summary


def test_context_says_which_settings_the_env_was_made_with() -> None:
    text = reward_context("rewardlab/GridEmpty-v0", {"size": 5}).render()
    assert "This env is made with size=5, which overrides the above." in text
    assert "made with" not in reward_context("rewardlab/GridEmpty-v0").render()
