"""Gymnasium-Robotics' Fetch envs through their shipped task: the env's own success as a bool in
every info, progress exactly 1 at success, scripted experts that succeed, idle and random play
that does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab import expert_policy, get_task
from rewardlab.envs.tasks import FEATURES
from tests.envs.adapters.helpers import checked_state, episode

pytest.importorskip("gymnasium_robotics")

IDS = ["FetchReach-v4", "FetchPush-v4", "FetchPickAndPlace-v4"]
SEEDS = (0, 1, 2)


def _episode(env: gym.Env[Any, Any], act: Callable[[Any], Any], seed: int) -> list[dict[str, Any]]:
    """Infos of one episode, reset's first."""
    return episode(env, act, seed).infos


def _goal_distance(env: gym.Env[Any, Any]) -> float:
    obs = env.unwrapped._get_obs()  # type: ignore[attr-defined]
    return float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_and_task_info_on_every_step(env_id: str) -> None:
    env = rewardlab.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.observation_space, gym.spaces.Dict)  # kept for MultiInputPolicy
    env.action_space.seed(0)
    for info in _episode(env, lambda obs: env.action_space.sample(), seed=0):
        assert type(info["is_success"]) is bool  # the env's own flag is a float, steps only
        assert type(info["progress"]) is float and 0.0 <= info["progress"] <= 1.0
    assert get_task(env).features() == frozenset(FEATURES)


@pytest.mark.parametrize("env_id", IDS)
def test_expert_succeeds_and_progress_is_one_exactly_at_success(env_id: str) -> None:
    env = rewardlab.make(env_id)
    act = expert_policy(env)
    threshold = env.unwrapped.distance_threshold  # type: ignore[attr-defined]
    for seed in SEEDS:
        infos = _episode(env, act, seed)
        assert not infos[0]["is_success"] and infos[0]["progress"] == 0.0
        assert infos[-1]["is_success"], f"{env_id} seed {seed}: the expert failed"
        assert infos[-1]["progress"] == 1.0
        for info in infos:
            assert (info["progress"] == 1.0) == info["is_success"]
        assert _goal_distance(env) < threshold
        # Before the first success, progress climbs towards 1 as the expert closes in.
        first = next(i for i, info in enumerate(infos) if info["is_success"])
        assert max(info["progress"] for info in infos[:first]) > 0.5


@pytest.mark.parametrize("env_id", IDS)
def test_success_is_the_envs_own_flag_and_dynamics_are_untouched(env_id: str) -> None:
    """Same seed and actions through gym.make and rewardlab.make: identical observations, and
    the adapter's bool is the env's float ``is_success`` on every step."""
    plain, made = gym.make(env_id), rewardlab.make(env_id)
    act = expert_policy(made)
    plain_obs, _ = plain.reset(seed=4)
    obs, _ = made.reset(seed=4)
    for _ in range(50):
        action = act(obs)
        plain_obs, plain_reward, *_, plain_info = plain.step(action)
        obs, reward, *_, info = made.step(action)
        for key in obs:
            np.testing.assert_array_equal(obs[key], plain_obs[key])
        assert reward == plain_reward
        assert info["is_success"] == bool(plain_info["is_success"])


@pytest.mark.parametrize("env_id", IDS)
def test_idle_and_random_play_do_not_succeed(env_id: str) -> None:
    env = rewardlab.make(env_id)
    adapter = get_task(env).env
    for seed in SEEDS:
        infos = _episode(env, lambda obs: adapter.idle_action(), seed)
        assert not any(info["is_success"] for info in infos)
        assert max(info["progress"] for info in infos) < 0.1  # the arm holds still
    env.action_space.seed(0)
    for seed in SEEDS:
        infos = _episode(env, lambda obs: env.action_space.sample(), seed)
        assert not infos[-1]["is_success"]


@pytest.mark.parametrize("env_id", IDS)
def test_state_matches_its_variables_and_the_observation_layout(env_id: str) -> None:
    wrapped = gym.wrappers.FlattenObservation(gym.wrappers.ClipAction(rewardlab.make(env_id)))
    wrapped.reset(seed=3)
    wrapped.step(wrapped.action_space.sample())
    state = checked_state(wrapped)
    task = get_task(wrapped)
    obs = wrapped.unwrapped._get_obs()  # type: ignore[attr-defined]
    np.testing.assert_array_equal(state["grip_pos"], obs["observation"][:3])
    np.testing.assert_array_equal(state["goal_pos"], obs["desired_goal"])
    if env_id != "FetchReach-v4":
        np.testing.assert_array_equal(state["object_pos"], obs["achieved_goal"])
        np.testing.assert_allclose(state["object_rel_pos"], state["object_pos"] - state["grip_pos"])
        assert sum(v.shape[0] for v in task.state_variables) == 28  # 25 observed + the goal
    else:
        assert sum(v.shape[0] for v in task.state_variables) == 13  # 10 observed + the goal
    # The expert reads the simulator, not the (here flattened) observation.
    assert wrapped.action_space.contains(expert_policy(wrapped)(None))


def test_reward_types_select_the_envs_own_rewards() -> None:
    dense = rewardlab.make("FetchReach-v4", reward_type="dense")
    dense.reset(seed=0)
    _, reward, *_ = dense.step(np.zeros(4, dtype=np.float32))
    assert reward == pytest.approx(-_goal_distance(dense))
    sparse = rewardlab.make("FetchReachDense-v4", reward_type="sparse")  # overrides the id's
    sparse.reset(seed=0)
    _, reward, *_, info = sparse.step(np.zeros(4, dtype=np.float32))
    assert reward == -1.0 and not info["is_success"]
    assert get_task(dense).env.dense_reward_type == "dense"


def test_a_goal_left_again_is_not_success() -> None:
    """Success is of the current state: the expert reaches the target, then the arm moves away
    and the last step's ``is_success`` is False, progress below 1."""
    env = rewardlab.make("FetchReach-v4")
    act = expert_policy(env)
    obs, info = env.reset(seed=0)
    while not info["is_success"]:
        obs, _, _, _, info = env.step(act(obs))
    for _ in range(3):
        _, _, _, _, info = env.step(np.array([1.0, 1.0, 1.0, 0.0], dtype=np.float32))
    assert not info["is_success"] and info["progress"] < 1.0


def test_a_block_knocked_off_the_table_is_a_failure() -> None:
    """The block pushed off the table (here: put on the floor far from the goal) is no success,
    whatever the gripper does, and progress does not credit it."""
    env = rewardlab.make("FetchPush-v4")
    env.reset(seed=0)
    inner: Any = env.unwrapped
    qpos = inner._utils.get_joint_qpos(inner.model, inner.data, "object0:joint").copy()
    qpos[:3] = [1.9, 0.2, 0.03]
    inner._utils.set_joint_qpos(inner.model, inner.data, "object0:joint", qpos)
    inner._mujoco.mj_forward(inner.model, inner.data)
    _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert not info["is_success"] and info["progress"] < 0.2


def test_progress_without_rewardlab_make_takes_the_reset_state() -> None:
    """A plain ``gym.make`` env (no TaskInfo, no on_reset): progress takes each new episode's
    start itself, so it is 0 at every reset and 1 at the expert's success."""
    env = gym.make("FetchReach-v4")
    task = get_task(env)
    act = expert_policy(env)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert task.progress() == 0.0
        for _ in range(50):
            obs, *_ = env.step(act(obs))
        assert task.progress() == 1.0
