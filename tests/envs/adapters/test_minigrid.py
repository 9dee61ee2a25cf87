"""Minigrid's task: success is the state the env pays in, progress counts the planner's
remaining actions, the expert follows that plan."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rewardlab
from rewardlab.envs.adapters.minigrid import FORWARD, LEFT, PICKUP, TOGGLE, MinigridTask
from rewardlab.envs.tasks import FEATURES

pytest.importorskip("minigrid")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

# One id per success definition of the adapter, and the lava envs.
KINDS = [
    "MiniGrid-Empty-5x5-v0",
    "MiniGrid-DoorKey-5x5-v0",
    "MiniGrid-LavaGapS5-v0",
    "MiniGrid-KeyCorridorS3R1-v0",
    "MiniGrid-Unlock-v0",
    "MiniGrid-Fetch-5x5-N2-v0",
    "MiniGrid-PutNear-6x6-N2-v0",
    "MiniGrid-MemoryS7-v0",
    "MiniGrid-RedBlueDoors-6x6-v0",
    "MiniGrid-Dynamic-Obstacles-5x5-v0",
]
# Ids whose plan is exact: the expert's progress after t of its T actions is t / T.
EXACT = [
    "MiniGrid-Empty-Random-6x6-v0",
    "MiniGrid-DoorKey-8x8-v0",
    "MiniGrid-FourRooms-v0",
    "MiniGrid-LavaCrossingS9N2-v0",
    "MiniGrid-LavaGapS6-v0",
    "MiniGrid-SimpleCrossingS9N1-v0",
    "MiniGrid-MultiRoom-N4-S5-v1",
    "MiniGrid-MemoryS9-v0",
    "MiniGrid-Unlock-v0",
    "MiniGrid-UnlockPickup-v0",
    "MiniGrid-BlockedUnlockPickup-v0",
    "MiniGrid-Fetch-8x8-N3-v0",
    "MiniGrid-PutNear-8x8-N3-v0",
    "MiniGrid-RedBlueDoors-6x6-v0",
    "MiniGrid-ObstructedMaze-1Dlh-v0",
]


def _rollout(env: gym.Env[Any, Any], seed: int, policy: Any) -> tuple[list[float], dict[str, Any]]:
    """Progress at each state of one episode, and the last step's outcome."""
    obs, info = env.reset(seed=seed)
    progress = [info["progress"]]
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        progress.append(info["progress"])
        if terminated or truncated:
            outcome = {"reward": reward, "terminated": terminated, "truncated": truncated, **info}
            return progress, outcome


def _face(env: gym.Env[Any, Any], cell: tuple[int, int]) -> None:
    """Put the agent on a free cell next to ``cell``, facing it."""
    inner: Any = env.unwrapped
    for d, (dx, dy) in enumerate([(1, 0), (0, 1), (-1, 0), (0, -1)]):
        stand = (cell[0] - dx, cell[1] - dy)
        if inner.grid.get(*stand) is None:
            inner.agent_pos, inner.agent_dir = stand, d
            return
    raise AssertionError(f"no free cell next to {cell}")


def _cells(env: gym.Env[Any, Any], kind: str) -> list[tuple[int, int]]:
    grid = env.unwrapped.grid  # type: ignore[attr-defined]
    return [
        (x, y)
        for y in range(grid.height)
        for x in range(grid.width)
        if grid.get(x, y) is not None and grid.get(x, y).type == kind
    ]


@pytest.mark.parametrize("env_id", KINDS)
def test_env_checker_and_the_info_keys(env_id: str) -> None:
    env = rewardlab.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    assert info["is_success"] is False and info["progress"] == 0.0
    for _ in range(30):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert isinstance(info["is_success"], bool)
        assert isinstance(info["progress"], float) and 0.0 <= info["progress"] <= 1.0
        if terminated or truncated:
            obs, info = env.reset()


@pytest.mark.parametrize("env_id", EXACT)
def test_expert_progress_counts_its_remaining_actions(env_id: str) -> None:
    env = rewardlab.make(env_id)
    act = rewardlab.expert_policy(env)
    for seed in range(2):
        progress, outcome = _rollout(env, seed, act)
        steps = len(progress) - 1
        np.testing.assert_allclose(progress, np.arange(steps + 1) / steps, rtol=0, atol=1e-12)
        assert outcome["is_success"] and outcome["terminated"] and outcome["reward"] > 0


@pytest.mark.parametrize(
    ("env_id", "monotone"),
    [
        ("MiniGrid-KeyCorridorS3R2-v0", True),  # a closed door walked through twice
        ("MiniGrid-LockedRoom-v0", True),
        ("MiniGrid-ObstructedMaze-2Dlhb-v1", False),  # stages ordered greedily
        ("MiniGrid-Dynamic-Obstacles-6x6-v0", False),  # detours around the balls
    ],
)
def test_expert_succeeds_where_the_plan_is_an_estimate(env_id: str, monotone: bool) -> None:
    env = rewardlab.make(env_id)
    act = rewardlab.expert_policy(env)
    for seed in range(3):
        progress, outcome = _rollout(env, seed, act)
        assert outcome["is_success"] and outcome["reward"] > 0
        assert progress[0] == 0.0 and progress[-1] == 1.0 and max(progress[:-1]) < 1.0
        if monotone:
            assert np.all(np.diff(progress) > 0)


@pytest.mark.parametrize("env_id", KINDS)
def test_success_is_exactly_when_the_env_pays(env_id: str) -> None:
    """Random play: every step's is_success equals the env's own reward being positive, and
    an unpaid termination (lava, a wrong pick-up or door) leaves progress at 0."""
    env = rewardlab.make(env_id)
    env.action_space.seed(1)
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(200):
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert info["is_success"] == (float(reward) > 0)
            if terminated and float(reward) == 0:
                assert info["progress"] == 0.0
            if terminated or truncated:
                break


def test_stepping_into_lava_fails() -> None:
    env = rewardlab.make("MiniGrid-LavaGapS5-v0")
    env.reset(seed=0)
    _face(env, _cells(env, "lava")[0])
    _, reward, terminated, _, info = env.step(FORWARD)
    assert terminated and reward == 0
    assert info["is_success"] is False and info["progress"] == 0.0


def test_a_wrong_pick_up_or_door_fails() -> None:
    fetch = rewardlab.make("MiniGrid-Fetch-8x8-N3-v0")
    for seed in range(20):  # a layout with an object that is not the target
        fetch.reset(seed=seed)
        inner: Any = fetch.unwrapped
        wrong = [
            c
            for kind in ("key", "ball")
            for c in _cells(fetch, kind)
            if (kind, inner.grid.get(*c).color) != (inner.targetType, inner.targetColor)
        ]
        if wrong:
            break
    _face(fetch, wrong[0])
    _, reward, terminated, _, info = fetch.step(PICKUP)
    assert terminated and reward == 0 and info["is_success"] is False and info["progress"] == 0
    doors = rewardlab.make("MiniGrid-RedBlueDoors-6x6-v0")
    doors.reset(seed=0)
    grid, blue = doors.unwrapped.grid, doors.unwrapped.blue_door  # type: ignore[attr-defined]
    _face(doors, next(c for c in _cells(doors, "door") if grid.get(*c) is blue))
    _, reward, terminated, _, info = doors.step(TOGGLE)  # blue before red
    assert terminated and reward == 0 and info["is_success"] is False and info["progress"] == 0


def test_a_door_without_its_key_has_no_plan() -> None:
    env = rewardlab.make("MiniGrid-DoorKey-5x5-v0")
    obs, _ = env.reset(seed=0)
    env.unwrapped.grid.set(*_cells(env, "key")[0], None)  # type: ignore[attr-defined]
    assert rewardlab.get_task(env).progress() == 0.0
    with pytest.raises(ValueError, match="no plan"):
        rewardlab.expert_policy(env)(obs)


def test_idle_play_never_succeeds() -> None:
    env = rewardlab.make("MiniGrid-Empty-5x5-v0")
    idle = rewardlab.get_task(env).env.idle_action()
    progress, outcome = _rollout(env, 0, lambda obs: idle)
    assert outcome["truncated"] and not outcome["terminated"]
    assert set(progress) == {0.0} and not outcome["is_success"]
    dynamic = rewardlab.make("MiniGrid-Dynamic-Obstacles-5x5-v0")
    assert rewardlab.get_task(dynamic).env.idle_action() == LEFT  # three actions, no no-op


def test_progress_is_a_function_of_the_state() -> None:
    """The expert commits to its plan; progress must not depend on that history: a second
    adapter on the same env, which never planned for the expert, agrees at every step."""
    env = rewardlab.make("MiniGrid-ObstructedMaze-2Dlhb-v1")
    act = rewardlab.expert_policy(env)
    observer = MinigridTask(env.unwrapped)
    obs, info = env.reset(seed=4)
    assert observer.progress() == info["progress"]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        assert observer.progress() == info["progress"]
        done = terminated or truncated
    assert info["is_success"]


def test_state_dict_matches_the_state_variables() -> None:
    env = rewardlab.make("MiniGrid-DoorKey-5x5-v0")
    task = rewardlab.get_task(env)
    act = rewardlab.expert_policy(env)
    inner: Any = env.unwrapped
    obs, _ = env.reset(seed=3)
    door = _cells(env, "door")[0]
    state = task.state()
    assert [v.name for v in task.state_variables] == list(state)
    for variable in task.state_variables:
        assert state[variable.name].shape == variable.shape, variable.name
    assert tuple(state["goal_pos"]) == _cells(env, "goal")[0] == tuple(state["target_pos"])
    assert tuple(state["key_pos"]) == _cells(env, "key")[0]
    assert tuple(state["door_pos"]) == door and state["door_locked"] and not state["door_open"]
    while inner.carrying is None:
        obs, *_ = env.step(act(obs))
    state = task.state()
    assert (state["carrying"], state["carrying_color"], tuple(state["key_pos"])) == (5, 4, (-1, -1))
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(act(obs))
        done = terminated or truncated
    state = task.state()
    assert state["door_open"] and not state["door_locked"]
    assert tuple(state["agent_pos"]) == tuple(state["goal_pos"])
    assert state["step_count"] == inner.step_count
    np.testing.assert_array_equal(state["grid"], inner.grid.encode())


def test_task_through_extra_wrappers() -> None:
    env = gym.wrappers.RecordEpisodeStatistics(
        gym.wrappers.TimeLimit(rewardlab.make("MiniGrid-DoorKey-6x6-v0"), 200)
    )
    task = rewardlab.get_task(env)
    assert task.features() == frozenset(FEATURES) and task.name == "door_key"
    assert "green goal square" in task.goal and task.negatives
    progress, outcome = _rollout(env, 0, rewardlab.expert_policy(env))
    assert outcome["is_success"] and progress[-1] == 1.0 and "episode" in outcome


def test_prompts_name_the_episodes_objects() -> None:
    env = rewardlab.make("MiniGrid-KeyCorridorS3R1-v0")
    fresh = rewardlab.get_task(env).goal
    assert "target object" in fresh  # before a reset: no episode, no object
    goals = set()
    for seed in range(6):
        env.reset(seed=seed)
        obj: Any = env.unwrapped.obj  # type: ignore[attr-defined]
        task = rewardlab.get_task(env)
        assert f"the {obj.color} {obj.type}" in task.goal
        assert repr(env.unwrapped.mission) in task.description  # type: ignore[attr-defined]
        goals.add(task.goal)
    assert len(goals) > 1


@pytest.mark.parametrize(
    ("env_id", "reason"),
    [
        ("MiniGrid-GoToDoor-5x5-v0", "`done` action"),
        ("MiniGrid-GoToObject-6x6-N2-v0", "`done` action"),
        ("MiniGrid-Playground-v0", "no mission"),
    ],
)
def test_ids_without_a_state_success_are_refused(env_id: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        rewardlab.make(env_id)


def test_observation_is_the_scaled_egocentric_image() -> None:
    env = rewardlab.make("MiniGrid-DoorKey-5x5-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7, 7, 3) and obs.dtype == np.float32 and obs in env.observation_space
    image = env.unwrapped.gen_obs()["image"]  # type: ignore[attr-defined]
    np.testing.assert_allclose(obs * np.array([10, 5, 2]), image, atol=1e-5)
    assert env.spec is not None
    again = gym.make(env.spec)  # the wrappers record their arguments
    assert np.array_equal(again.reset(seed=0)[0], obs)
