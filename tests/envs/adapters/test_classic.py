"""Gymnasium's classic-control envs through their shipped tasks: success and progress as the
adapters document them, experts that succeed, idle and random play that does not."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab import expert_policy, get_task
from rewardlab.envs.adapters.classic import CartPole, MountainCar, Pendulum
from rewardlab.envs.tasks import FEATURES
from tests.envs.adapters.helpers import checked_state, infos_terminated, random_policy, task_info

IDS = ["CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


_episode = infos_terminated
_random = random_policy
_task_info = task_info


def _set_state(env: gym.Env[Any, Any], *state: float) -> None:
    env.unwrapped.state = np.array(state, dtype=np.float64)  # type: ignore[attr-defined]


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_and_task_info_on_every_step(env_id: str) -> None:
    env = rewardlab.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    infos, _ = _episode(env, _random(env), seed=0)
    for info in infos:
        assert type(info["is_success"]) is bool
        assert type(info["progress"]) is float and 0.0 <= info["progress"] <= 1.0
    assert get_task(env).features() == frozenset(FEATURES)


@pytest.mark.parametrize("env_id", IDS)
def test_state_matches_its_variables_through_stacked_wrappers(env_id: str) -> None:
    wrapped = gym.wrappers.RecordEpisodeStatistics(
        gym.wrappers.TransformObservation(rewardlab.make(env_id), lambda o: o, None)
    )
    wrapped.reset(seed=3)
    wrapped.step(wrapped.action_space.sample())
    state = checked_state(wrapped)
    task = get_task(wrapped)
    inner = wrapped.unwrapped.state  # type: ignore[attr-defined]
    first, second = (v.name for v in task.state_variables[:2])
    if env_id == "Pendulum-v1":  # the angle is wrapped to [-pi, pi)
        assert math.cos(state[first]) == pytest.approx(math.cos(inner[0]))
    else:
        assert state[first] == inner[0]
        assert state[second] == inner[1]
    assert task.goal and task.baseline and task.negatives and task.description


@pytest.mark.parametrize("env_id", IDS)
def test_expert_succeeds_and_progress_is_one_exactly_in_success(env_id: str) -> None:
    env = rewardlab.make(env_id)
    act = expert_policy(env)
    for seed in range(3):
        infos, terminated = _episode(env, act, seed)
        assert infos[-1]["is_success"]
        assert all(i["progress"] == 1.0 for i in infos if i["is_success"])
        if env_id.startswith("MountainCar"):  # the goal ends the episode
            assert terminated
            assert infos[0]["progress"] < 0.05
        else:  # up by step 100 and held until the time limit
            assert all(i["is_success"] for i in infos[100:])
            assert len(infos) - 1 == env.spec.max_episode_steps  # type: ignore[union-attr]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("policy", ["random", "idle"])
def test_random_and_idle_play_do_not_end_in_success(env_id: str, policy: str) -> None:
    env = rewardlab.make(env_id)
    adapter = get_task(env).env
    act = _random(env) if policy == "random" else (lambda obs: adapter.idle_action())
    for seed in range(3):
        infos, _ = _episode(env, act, seed)
        assert not infos[-1]["is_success"]


def test_mountain_car_success_is_the_envs_goal_termination() -> None:
    for env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        env = rewardlab.make(env_id)
        for act in (expert_policy(env), _random(env)):
            obs, info = env.reset(seed=1)
            for _ in range(300):
                obs, _, terminated, truncated, info = env.step(act(obs))
                assert info["is_success"] == terminated
                if terminated or truncated:
                    break


def test_mountain_car_success_needs_the_goal_velocity_too() -> None:
    # The flag reached while still rolling back (velocity below goal_velocity) is no success.
    env = rewardlab.make("MountainCar-v0", goal_velocity=0.01)
    env.reset(seed=0)
    _set_state(env, 0.55, 0.005)
    assert _task_info(env)[0] is False
    _set_state(env, 0.55, 0.01)
    assert _task_info(env) == (True, 1.0)


def test_mountain_car_progress_is_its_energy_and_rises_under_the_expert() -> None:
    env = rewardlab.make("MountainCar-v0")
    env.reset(seed=0)
    _set_state(env, -math.pi / 6, 0.0)  # at rest in the valley
    assert _task_info(env) == (False, 0.0)
    _set_state(env, -1.2, 0.0)  # at rest on the left hilltop: potential energy only
    expected = (math.sin(-3.6) + 1) / (math.sin(1.5) + 1)
    assert _task_info(env)[1] == pytest.approx(expected)
    act = expert_policy(env)
    obs, info = env.reset(seed=2)
    previous = info["progress"]
    while True:
        obs, _, terminated, truncated, info = env.step(act(obs))
        position = env.unwrapped.state[0]  # type: ignore[attr-defined]
        if position > -1.2:  # the left wall stops the car: the only real energy loss
            assert info["progress"] >= previous - 0.01
        previous = info["progress"]
        if terminated or truncated:
            break
    assert terminated and previous == 1.0


def test_cartpole_success_band_and_failure_states() -> None:
    env = rewardlab.make("CartPole-v1")
    env.reset(seed=0)
    fail = env.unwrapped.theta_threshold_radians  # type: ignore[attr-defined]
    band = CartPole.upright_fraction * fail
    _set_state(env, 0.0, 0.0, band, 0.0)
    assert _task_info(env) == (True, 1.0)
    _set_state(env, 0.0, 0.0, -(band + fail) / 2, 0.0)
    assert _task_info(env) == (False, pytest.approx(0.5))
    # Hostile: the pole upright but the cart off the track is a failure state.
    _set_state(env, 2.5, 0.0, 0.0, 0.0)
    assert _task_info(env) == (False, 0.0)
    # Every episode that ends in a failure terminal ends unsuccessful, with progress 0.
    for seed in range(5):
        infos, terminated = _episode(env, _random(env), seed)
        assert terminated and not infos[-1]["is_success"] and infos[-1]["progress"] == 0.0


def test_cartpole_reward_types() -> None:
    env = rewardlab.make("CartPole-v1", reward_type="sutton_barto")
    env.reset(seed=0)
    assert env.step(0)[1] == 0.0
    sparse = rewardlab.make("CartPole-v1", reward_type="sparse")
    sparse.reset(seed=0)
    for _ in range(30):
        _, reward, terminated, _, info = sparse.step(1)
        assert reward == float(info["is_success"])
        if terminated:
            break
    assert terminated and reward == 0.0


def test_pendulum_success_needs_upright_and_still_with_any_angle_winding() -> None:
    env = rewardlab.make("Pendulum-v1")
    env.reset(seed=0)
    _set_state(env, 4 * math.pi + 0.05, 0.5)  # two turns wound up, then upright
    assert _task_info(env) == (True, 1.0)
    _set_state(env, 0.0, 2.0)  # upright but swinging through
    assert _task_info(env) == (False, 1.0)
    _set_state(env, Pendulum.upright_angle + 0.01, 0.0)
    assert _task_info(env)[0] is False
    _set_state(env, math.pi, 0.0)  # hanging down
    assert _task_info(env) == (False, 0.0)


def test_pendulum_expert_swings_up_from_hanging_down() -> None:
    env = rewardlab.make("Pendulum-v1")
    act = expert_policy(env)
    obs, info = env.reset(seed=0, options={"x_init": 0.0, "y_init": 0.0})
    _set_state(env, math.pi, 0.0)
    obs = env.unwrapped._get_obs()  # type: ignore[attr-defined]
    peaks = []
    for _ in range(150):
        obs, _, _, _, info = env.step(act(obs))
        peaks.append(info["progress"])
    assert info["is_success"]
    # Each swing gets higher: the best progress of each 20-step window rises to 1.
    windows = [max(peaks[k : k + 20]) for k in range(0, 100, 20)]
    assert windows == sorted(windows) and windows[0] < 0.9 and windows[-1] == 1.0


def test_idle_actions_are_the_documented_no_ops() -> None:
    car = rewardlab.make("MountainCar-v0")
    car.reset(seed=0)
    assert get_task(car).env.idle_action() == 1
    assert isinstance(get_task(car).env, MountainCar)
    cart = rewardlab.make("CartPole-v1")
    cart.reset(seed=0)
    _set_state(cart, 0.0, 0.3, 0.0, 0.0)  # moving right: brake by pushing left
    assert get_task(cart).env.idle_action() == 0
    for env_id in ("MountainCarContinuous-v0", "Pendulum-v1"):
        env = rewardlab.make(env_id)
        env.reset(seed=0)
        idle = get_task(env).env.idle_action()
        assert env.action_space.contains(idle) and not idle.any()


@pytest.mark.parametrize("env_id", IDS)
def test_frames_render(env_id: str) -> None:
    env = rewardlab.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.dtype == np.uint8 and frame.std() > 0
    env.close()
