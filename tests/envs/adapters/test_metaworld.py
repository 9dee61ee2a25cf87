"""Meta-World's envs through their shipped task: the env's own success in every info, progress
exactly 1 at success, Meta-World's scripted policies as experts, episodes that end cleanly,
seeded resets, and an adapter that leaves the simulation untouched."""

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

pytest.importorskip("metaworld")

from rewardlab.envs.adapters.metaworld import RADIUS, TASKS  # noqa: E402
from tests.envs.adapters.helpers import checked_state, episode

MT1 = "Meta-World/MT1"
EXPERT_TASKS = ["reach-v3", "push-v3", "window-close-v3"]


def _episode(
    env: gym.Env[Any, Any], act: Callable[[Any], Any], seed: int, until_success: bool = False
) -> tuple[list[dict[str, Any]], bool]:
    """Infos of one episode, reset's first, and whether it ended ``truncated``."""
    ep = episode(env, act, seed, until_success=until_success)
    return ep.infos, ep.truncated


def test_the_task_table_covers_metaworlds_50_tasks() -> None:
    from metaworld.env_dict import ENV_CLS_MAP
    from metaworld.policies import ENV_POLICY_MAP

    assert set(TASKS) == set(ENV_CLS_MAP) == set(RADIUS) == set(ENV_POLICY_MAP)
    assert len(TASKS) == 50
    for name, texts in TASKS.items():
        assert all(texts) and len(set(texts)) == 3, name


def test_env_checker_and_task_info_on_every_step() -> None:
    env = rewardlab.make(MT1, env_name="push-v3", max_episode_steps=50)
    # The unwrapped env ignores reset seeds (SawyerXYZEnv.reset), which check_env's seeding
    # check rejects; the adapter's wrapper reseeds it. The close check re-makes the env from
    # its spec, which TaskInfo (not RecordConstructorArgs) does not allow.
    gym_check_env(env, skip_render_check=True, skip_close_check=True)
    env.action_space.seed(0)
    infos, truncated = _episode(env, lambda obs: env.action_space.sample(), seed=0)
    assert truncated and len(infos) == 51
    for info in infos:
        assert type(info["is_success"]) is bool
        assert type(info["progress"]) is float and 0.0 <= info["progress"] <= 1.0
    assert get_task(env).features() == frozenset(FEATURES)
    obs, _ = env.reset(seed=1)
    # Meta-World bounds the goal to [0, 0] until a task makes it observable; the adapter
    # declares the space MT1's observations are in.
    assert obs in env.observation_space and obs[-3:].any()


@pytest.mark.parametrize("name", EXPERT_TASKS)
def test_expert_succeeds_and_progress_is_one_exactly_at_success(name: str) -> None:
    env = rewardlab.make(MT1, env_name=name, seed=0)
    act = expert_policy(env)
    for seed in (0, 1):
        infos, _ = _episode(env, act, seed, until_success=True)
        assert not infos[0]["is_success"] and infos[0]["progress"] == 0.0
        assert infos[-1]["is_success"], f"{name} seed {seed}: the expert failed"
        assert infos[-1]["progress"] == 1.0
        for info in infos:
            assert (info["progress"] == 1.0) == info["is_success"]
        assert all(info["is_success"] == (info["success"] > 0.5) for info in infos[1:])
        assert max(info["progress"] for info in infos[:-1]) > 0.5


def test_window_closed_in_the_stale_reset_observation_is_not_success() -> None:
    """window-close's reset opens the window without recomputing positions: its reset
    observation shows the window closed (the goal). The adapter reads the recomputed state:
    no success at reset, progress 0, and the expert's episode still starts from there."""
    env = rewardlab.make(MT1, env_name="window-close-v3", seed=0)
    obs, info = env.reset(seed=0)
    inner: Any = env.unwrapped
    _, claimed = inner.evaluate_state(obs, np.zeros(4, dtype=np.float32))
    assert claimed["success"] == 1.0  # the env's own criterion on its reset observation
    assert not info["is_success"] and info["progress"] == 0.0
    _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert not info["is_success"] and not info["success"]  # the env agrees after one step


@pytest.mark.parametrize("name", ["window-close-v3", "bin-picking-v3"])
def test_the_adapter_leaves_the_simulation_and_rewards_untouched(name: str) -> None:
    """Same task set, seed and actions through gym.make and rewardlab.make: identical
    observations and rewards, bit for bit (the adapter evaluates the state on a copy at reset,
    and restores what ``evaluate_state`` caches: bin-picking's first reward margin)."""
    plain = gym.make(MT1, env_name=name, seed=0)
    made = rewardlab.make(MT1, env_name=name, seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, size=(40, 4)).astype(np.float32)
    plain.unwrapped.seed(7)  # type: ignore[attr-defined]
    plain_obs, _ = plain.reset()
    obs, _ = made.reset(seed=7)
    np.testing.assert_array_equal(obs, plain_obs)
    for action in actions:
        plain_obs, plain_reward, *_ = plain.step(action)
        obs, reward, *_ = made.step(action)
        np.testing.assert_array_equal(obs, plain_obs)
        assert reward == plain_reward


def test_seeded_resets_reproduce_the_episode() -> None:
    env = rewardlab.make(MT1, env_name="push-v3", seed=0)
    first, _ = env.reset(seed=5)
    env.step(env.action_space.sample())
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    goals = {tuple(env.reset(seed=s)[0][-3:]) for s in range(6)}
    assert len(goals) > 1  # seeds draw among MT1's 50 goal variations


def test_episodes_end_cleanly_at_the_time_limit() -> None:
    """The env raises ValueError on a step past its 500-step horizon; under rewardlab.make an
    episode is truncated exactly there (and at a shorter max_episode_steps), then resets."""
    env = rewardlab.make(MT1, env_name="reach-v3")
    idle = get_task(env).env.idle_action
    infos, truncated = _episode(env, lambda obs: idle(), seed=0)
    assert truncated and len(infos) == 501 and not infos[-1]["is_success"]
    assert max(info["progress"] for info in infos) < 0.1  # the arm holds still
    env.reset(seed=1)
    env.step(idle())
    short = rewardlab.make(MT1, env_name="reach-v3", max_episode_steps=20)
    infos, truncated = _episode(short, lambda obs: idle(), seed=0)
    assert truncated and len(infos) == 21


def test_state_matches_its_variables_and_the_observation_layout() -> None:
    wrapped = gym.wrappers.ClipAction(
        gym.wrappers.TransformObservation(
            rewardlab.make(MT1, env_name="pick-place-v3"), lambda o: o * 0.0, None
        )
    )
    wrapped.reset(seed=0)
    wrapped.step(np.zeros(4, dtype=np.float32))
    state = checked_state(wrapped)
    inner: Any = wrapped.unwrapped
    obs = inner._get_obs()
    np.testing.assert_array_equal(state["hand_pos"], obs[:3])
    np.testing.assert_array_equal(state["obj_pos"], obs[4:7])
    np.testing.assert_array_equal(state["goal_pos"], inner._target_pos)
    np.testing.assert_array_equal(state["tcp_center"], inner.tcp_center)
    # The expert reads the simulator, not the (here zeroed) observation.
    assert wrapped.action_space.contains(expert_policy(wrapped)(None))


def test_goal_hidden_env_keeps_the_goal_privileged() -> None:
    env = rewardlab.make("Meta-World/goal_hidden", env_name="reach-v3", seed=0)
    obs, _ = env.reset(seed=0)
    task = get_task(env)
    assert not obs[-3:].any()  # hidden from the policy
    assert task.state()["goal_pos"].any()
    assert {v.name for v in task.state_variables if v.privileged} == {"goal_pos", "tcp_center"}
    assert task.name == "reach" and task.goal == TASKS["reach-v3"][1]
    infos, _ = _episode(env, expert_policy(env), 0, until_success=True)  # acts on the true goal
    assert infos[-1]["is_success"] and infos[-1]["progress"] == 1.0


def test_idle_push_does_not_succeed() -> None:
    env = rewardlab.make(MT1, env_name="push-v3", seed=0, max_episode_steps=100)
    idle = get_task(env).env.idle_action
    infos, _ = _episode(env, lambda obs: idle(), seed=0)
    assert not any(info["is_success"] for info in infos)
    assert max(info["progress"] for info in infos) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_tasks_expert_succeeds_and_success_matches_its_radius(name: str) -> None:
    """Each of the 50 scripted policies succeeds in one of two seeded episodes, and the task's
    success distance is within its radius at every success (the radius table is its
    evaluate_state's threshold)."""
    env = rewardlab.make(MT1, env_name=name, seed=0)
    act = expert_policy(env)
    adapter = get_task(env).env
    wins = 0
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        assert not info["is_success"]
        for _ in range(500):
            obs, _, _, truncated, info = env.step(act(obs))
            success, distance, _ = adapter._measure()
            assert success == info["is_success"]
            assert (info["progress"] == 1.0) == success
            if success:
                assert distance <= RADIUS[name] + 1e-9
                wins += 1
                break
            if truncated:
                break
    assert wins >= 1
