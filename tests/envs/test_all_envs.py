"""Contract tests run on every registered rewardlab id, so a new env is tested automatically."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab import env_ids, expert_policy, get_task

ALL_IDS = env_ids()
N_EPISODES = 50


def test_every_family_registers_several_tasks() -> None:
    for prefix in ("rewardlab/Grid", "rewardlab/Manip", "rewardlab/Drive"):
        assert sum(i.startswith(prefix) for i in ALL_IDS) >= 3, prefix
    assert all(i in gym.registry for i in ALL_IDS)


def _rollout(env: gym.Env, seed: int, policy) -> tuple[bool, list[float], list[bool]]:
    """One episode; returns (ever succeeded, progress per state, is_success per state)."""
    obs, info = env.reset(seed=seed)
    progress, success = [info["progress"]], [info["is_success"]]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        progress.append(info["progress"])
        success.append(info["is_success"])
        done = terminated or truncated
    return any(success), progress, success


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_env_checker(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sb3_env_checker(env_id: str) -> None:
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_checker.check_env(env, warn=True)
    env.close()


def _trace(env_id: str, seed: int, n_steps: int = 300) -> list:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace += [obs, reward, terminated, truncated, info["is_success"], info["progress"]]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    env.close()
    return trace


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_seeded_determinism_across_resets(env_id: str) -> None:
    a, b, c = _trace(env_id, 3), _trace(env_id, 3), _trace(env_id, 4)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=False))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_reward_components_sum_to_reward(env_id: str) -> None:
    env = gym.make(env_id)
    for policy_name in ("random", "expert"):
        act = (
            expert_policy(env)
            if policy_name == "expert"
            else (lambda _obs: env.action_space.sample())
        )
        env.action_space.seed(0)
        obs, info = env.reset(seed=0)
        assert isinstance(info["is_success"], bool)
        for _ in range(200):
            obs, reward, terminated, truncated, info = env.step(act(obs))
            components = {k: v for k, v in info.items() if k.startswith("reward_")}
            assert components, "every step must report its reward components"
            assert isinstance(info["is_success"], bool)
            assert sum(components.values()) == pytest.approx(reward, abs=1e-6)
            if terminated or truncated:
                obs, info = env.reset()
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_expert_succeeds_and_progress_is_a_potential(env_id: str) -> None:
    env = gym.make(env_id)
    act = expert_policy(env)
    successes = 0
    for seed in range(N_EPISODES):
        succeeded, progress, success = _rollout(env, seed, act)
        successes += succeeded
        assert min(progress) >= 0.0 and max(progress) <= 1.0
        assert progress[0] <= 0.2, f"progress at reset should be near 0, got {progress[0]}"
        for p, s in zip(progress, success, strict=True):
            if s:
                assert p == 1.0
    env.close()
    assert successes >= 0.95 * N_EPISODES, f"expert succeeded in {successes}/{N_EPISODES}"


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_idle_action_makes_no_progress(env_id: str) -> None:
    """Expert for 10 steps, then idle: valid actions under which progress comes to a halt
    (at once in gridworlds and manipulation; a car needs a few seconds to brake)."""
    env = gym.make(env_id)
    inner = env.unwrapped
    gym.make(env_id, reward_type=inner.dense_reward_type).close()  # a valid reward_type
    act = expert_policy(env)
    obs, info = env.reset(seed=3)
    for _ in range(10):
        obs, *_, info = env.step(act(obs))
    progress = []
    for _ in range(40):
        action = inner.idle_action()
        assert env.action_space.contains(action), action
        obs, _, terminated, truncated, info = env.step(action)
        assert not terminated
        progress.append(info["progress"])
    assert max(progress[-10:]) - min(progress[-10:]) <= 1e-3, progress
    env.close()


SPARSE_IDS = [i for i in ALL_IDS if gym.spec(i).kwargs.get("reward_type", "sparse") == "sparse"]


@pytest.mark.parametrize("env_id", SPARSE_IDS)
def test_random_policy_rarely_succeeds_on_sparse_tasks(env_id: str) -> None:
    env = gym.make(env_id)
    env.action_space.seed(0)
    successes = sum(
        _rollout(env, seed, lambda _obs: env.action_space.sample())[0] for seed in range(N_EPISODES)
    )
    env.close()
    assert successes < 0.2 * N_EPISODES, f"random succeeded in {successes}/{N_EPISODES}"


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_render_size_and_dtype(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", render_width=160, render_height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (120, 160, 3)
    assert frame.std() > 0, "a blank frame"
    env.step(env.action_space.sample())
    assert env.render().shape == (120, 160, 3)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_render_without_mode_says_how_to_set_one(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="render_mode"):
        env.unwrapped.render()
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_unknown_kwarg_names_the_key(env_id: str) -> None:
    with pytest.raises(TypeError, match="not_an_option"):
        gym.make(env_id, not_an_option=1)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_task_description(env_id: str) -> None:
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id))
    env.reset(seed=0)
    task = get_task(env)
    assert task is env.unwrapped.task
    assert task.goal and task.baseline and task.goal != task.baseline
    assert len(task.negatives) >= 1 and all(isinstance(n, str) and n for n in task.negatives)
    assert 0.0 <= task.progress() <= 1.0
    state = task.state()
    assert [v.name for v in task.state_variables] == list(state)
    for var in task.state_variables:
        assert np.shape(state[var.name]) == var.shape, var.name
        assert var.units and var.doc
    env.close()


def test_get_task_rejects_envs_without_a_task() -> None:
    from tests.envs.line_walk import IDS

    with pytest.raises(TypeError, match="not a rewardlab environment and has no registered task"):
        get_task(gym.make(IDS[0]))


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rewardlab; "
        "bad = [m for m in ('mujoco', 'torch', 'cv2', 'minigrid', 'highway_env', "
        "'gymnasium_robotics', 'metaworld', 'pygame', 'rewardlab.envs.adapters') "
        "if m in sys.modules]; "
        "assert not bad, bad; print(len(rewardlab.env_ids()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(ALL_IDS)
    assert rewardlab.__version__


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_unsupported_render_mode_is_rejected(env_id: str) -> None:
    spec = gym.spec(env_id)
    env_cls = gym.envs.registration.load_env_creator(spec.entry_point)
    with pytest.raises(ValueError, match="'human'"):
        env_cls(**spec.kwargs, render_mode="human")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_observations_stay_in_space_over_long_rollouts(env_id: str) -> None:
    # The checkers only try a few steps; bounds must hold for whole episodes of both policies.
    env = gym.make(env_id)
    space = env.observation_space
    env.action_space.seed(0)
    for act in (expert_policy(env), lambda _obs: env.action_space.sample()):
        for seed in range(5):
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                assert space.contains(obs), (seed, obs)
                obs, _, terminated, truncated, _ = env.step(act(obs))
                done = terminated or truncated
            assert space.contains(obs)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_reset_forgets_the_previous_episode(env_id: str) -> None:
    def replay(env: gym.Env, actions: list) -> list:
        obs, _ = env.reset(seed=7)
        out = [obs]
        for a in actions:
            obs, reward, terminated, truncated, _ = env.step(a)
            out += [obs, reward]
            if terminated or truncated:
                break
        return out

    source = gym.make(env_id).action_space
    source.seed(1)
    actions = [source.sample() for _ in range(40)]
    used = gym.make(env_id)
    act = expert_policy(used)
    obs, _ = used.reset(seed=0)
    for _ in range(150):
        obs, _, terminated, truncated, _ = used.step(act(obs))
        if terminated or truncated:
            obs, _ = used.reset()
    for x, y in zip(replay(used, actions), replay(gym.make(env_id), actions), strict=True):
        np.testing.assert_array_equal(x, y)
