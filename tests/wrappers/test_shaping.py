"""Potential-based shaping: exact identities on tabular MDPs and on sampled episodes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
from rewardlab.envs.gridworld import TabularMDP
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.potentials import shaping_term
from rewardlab.wrappers import (
    MismatchedShaping,
    PotentialShaping,
    ProgressBonus,
    check_shaping_gamma,
)

GRID_IDS = [
    "rewardlab/GridEmpty-v0",
    "rewardlab/GridKeyDoor-v0",
    "rewardlab/GridKeyDoorDense-v0",
    "rewardlab/GridLavaCrossing-v0",
]


def _tabular(env_id: str, **kwargs: Any) -> tuple[gym.Env[Any, Any], TabularMDP, np.ndarray]:
    """The env (reset), its tabular model and the progress potential of every state."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    inner = env.unwrapped
    mdp = inner.tabular()  # type: ignore[attr-defined]
    phi = np.empty(len(mdp.terminal))
    for s in range(len(phi)):
        inner.set_state_index(s)  # type: ignore[attr-defined]
        phi[s] = inner.progress()  # type: ignore[attr-defined]
    return env, mdp, phi


def _with_reward(mdp: TabularMDP, reward: np.ndarray) -> TabularMDP:
    reward = reward.copy()
    reward[mdp.terminal] = 0.0  # terminal rows stay absorbing with zero reward
    return TabularMDP(
        P=mdp.P,
        R=reward,
        terminal=mdp.terminal,
        initial=mdp.initial,
        states=mdp.states,
        next_state=mdp.next_state,
        reward_type=mdp.reward_type,
    )


def _shaped(mdp: TabularMDP, phi: np.ndarray, gamma: float) -> np.ndarray:
    """``R + gamma Phi(s') - Phi(s)`` with ``Phi(s') = 0`` for terminal ``s'``."""
    phi_next = np.where(mdp.terminal, 0.0, phi)
    return mdp.R + gamma * phi_next[None, None, :] - phi[:, None, None]


def _greedy_sets(q: np.ndarray) -> list[set[int]]:
    return [set(np.flatnonzero(row >= row.max() - 1e-9).tolist()) for row in q]


def _reaches_goal(mdp: TabularMDP, q: np.ndarray) -> list[bool]:
    """Whether the greedy policy (first argmax) ends the episode from each start state."""
    policy = q.argmax(axis=1)
    ends = []
    for s in np.flatnonzero(mdp.initial):
        for _ in range(4 * len(mdp.terminal)):  # longer than any simple path
            if mdp.terminal[s]:
                break
            s = mdp.next_state[s, policy[s]]
        ends.append(bool(mdp.terminal[s]))
    return ends


# --- Ng, Harada & Russell (1999): Q' = Q - Phi, same greedy policy --------------------------


@pytest.mark.parametrize("env_id", GRID_IDS)
@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_tabular_shaping_shifts_q_by_potential_and_keeps_policy(env_id: str, gamma: float) -> None:
    _, mdp, phi = _tabular(env_id)
    live = ~mdp.terminal
    _, q = mdp.value_iteration(gamma)
    _, q_shaped = _with_reward(mdp, _shaped(mdp, phi, gamma)).value_iteration(gamma)
    np.testing.assert_allclose(q_shaped[live], q[live] - phi[live, None], rtol=0, atol=1e-8)
    greedy, greedy_shaped = _greedy_sets(q), _greedy_sets(q_shaped)
    assert all(greedy[s] == greedy_shaped[s] for s in np.flatnonzero(live))


# --- telescoping on real episodes -----------------------------------------------------------


def _discounted(values: list[float], gamma: float) -> float:
    return float(sum(gamma**t * v for t, v in enumerate(values)))


@pytest.mark.parametrize("env_id", GRID_IDS)
def test_shaped_return_telescopes_on_sampled_episodes(env_id: str) -> None:
    gamma = 0.95
    outcomes = set()
    for max_steps in (None, 6):
        kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
        env = PotentialShaping(gym.make(env_id, **kwargs), "progress", gamma)
        expert = rewardlab.expert_policy(env)
        for seed in range(3):
            for policy in ("random", "expert"):
                env.action_space.seed(seed)
                obs, info = env.reset(seed=seed)
                phi0 = info["progress"]
                assert info["potential"] == phi0
                tabular = env.unwrapped.tabular()  # type: ignore[attr-defined]
                phi_of = {}
                shaping, done = [], False
                while not done:
                    s = env.unwrapped.state_index()  # type: ignore[attr-defined]
                    phi_of[s] = info["progress"]
                    a = env.action_space.sample() if policy == "random" else expert(obs)
                    obs, reward, terminated, truncated, info = env.step(a)
                    s2 = env.unwrapped.state_index()  # type: ignore[attr-defined]
                    assert info["original_reward"] == tabular.R[s, a, s2]
                    assert reward == info["original_reward"] + info["shaping"]
                    shaping.append(reward - info["original_reward"])
                    done = terminated or truncated
                phi_end = 0.0 if terminated else info["progress"]
                assert info["potential"] == phi_end
                expected = gamma ** len(shaping) * phi_end - phi0
                assert _discounted(shaping, gamma) == pytest.approx(expected, abs=1e-12)
                outcomes.add("terminated" if terminated else "truncated")
    assert outcomes == {"terminated", "truncated"}


class _DriftingPotential:
    """A callable potential whose scale changes at every call (a model still training)."""

    def __init__(self) -> None:
        self.calls = 0
        self.outputs: list[float] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        value = (1.0 + 0.37 * self.calls) * (obs[:, 0] + 2.0 * obs[:, 1])
        self.outputs.append(float(value[0]))
        return value


@pytest.mark.parametrize("max_steps", [5, 200])
def test_dynamic_potential_telescopes_exactly(max_steps: int) -> None:
    # Devlin & Kudenko (2012): with Phi(s) cached when s was entered, the sum telescopes even
    # though Phi changes every step; re-evaluating Phi(s) with the new scale would not.
    gamma = 0.9
    potential = _DriftingPotential()
    base = gym.make("rewardlab/GridEmpty-v0", max_episode_steps=max_steps)
    env = PotentialShaping(base, potential, gamma)
    expert = rewardlab.expert_policy(env)
    for seed in range(3):
        potential.outputs.clear()
        obs, info = env.reset(seed=seed)
        shaping, done = [], False
        while not done:
            obs, reward, terminated, truncated, info = env.step(expert(obs))
            shaping.append(info["shaping"])
            done = terminated or truncated
        phi_end = 0.0 if terminated else potential.outputs[-1]
        assert terminated == (max_steps == 200)
        # Phi(s_0), then Phi(s') every step: on termination too (one batched rule for the
        # per-env and vector layers), where it is replaced by 0.
        assert len(potential.outputs) == len(shaping) + 1
        expected = gamma ** len(shaping) * phi_end - potential.outputs[0]
        assert _discounted(shaping, gamma) == pytest.approx(expected, abs=1e-12)


class _ProgressModel(RewardModel):
    """A potential model of ``s'`` only: its progress, optionally read from the frame too."""

    needs_info = ("progress",)

    def __init__(self, needs_frames: bool = False) -> None:
        self.needs_frames = needs_frames
        self.frames_seen = 0

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        if self.needs_frames:
            assert batch.frames is not None and batch.frames.dtype == np.uint8
            self.frames_seen += 1
        np.testing.assert_array_equal(batch.obs, batch.next_obs)
        return RewardOutput(reward=2.0 * batch.info["progress"])


@pytest.mark.parametrize("needs_frames", [False, True])
def test_reward_model_potential_is_phi_of_next_state(needs_frames: bool) -> None:
    gamma = 0.99
    model = _ProgressModel(needs_frames)
    base = gym.make(
        "rewardlab/GridEmpty-v0", render_mode="rgb_array", render_width=16, render_height=16
    )
    env = PotentialShaping(base, model, gamma)
    obs, info = env.reset(seed=1)
    assert info["potential"] == 2.0 * info["progress"]
    prev = info["potential"]
    for _ in range(3):
        obs, _, terminated, _, info = env.step(2)
        assert not terminated
        assert info["shaping"] == pytest.approx(gamma * 2.0 * info["progress"] - prev)
        prev = info["potential"]
    assert model.frames_seen == (4 if needs_frames else 0)


def test_shaping_term_zeroes_terminal_potential_only() -> None:
    f = shaping_term(np.array([0.2, 0.2]), np.array([0.7, 0.7]), np.array([False, True]), 0.5)
    np.testing.assert_allclose(f, [0.5 * 0.7 - 0.2, -0.2])


# --- negative controls change the optimal policy ----------------------------------------------


def test_progress_bonus_agent_hovers_instead_of_finishing() -> None:
    gamma = 0.9
    _, mdp, phi = _tabular("rewardlab/GridKeyDoor-v0", size=5, randomize_layout=False)
    _, q = mdp.value_iteration(gamma)
    _, q_bonus = _with_reward(mdp, mdp.R + phi[None, None, :]).value_iteration(gamma)
    assert all(_reaches_goal(mdp, q))
    assert not any(_reaches_goal(mdp, q_bonus))
    live = np.flatnonzero(~mdp.terminal)
    greedy, greedy_bonus = _greedy_sets(q), _greedy_sets(q_bonus)
    assert any(not greedy[s] & greedy_bonus[s] for s in live)


def test_mismatched_discount_agent_hovers_instead_of_finishing() -> None:
    agent_gamma, shaping_gamma = 0.9, 1.0
    _, mdp, progress = _tabular("rewardlab/GridEmpty-v0")
    phi = 10.0 * progress
    _, q = mdp.value_iteration(agent_gamma)
    _, q_mis = _with_reward(mdp, _shaped(mdp, phi, shaping_gamma)).value_iteration(agent_gamma)
    assert all(_reaches_goal(mdp, q))
    assert not any(_reaches_goal(mdp, q_mis))
    # The same potential shaped with the agent's own discount keeps the optimum.
    _, q_ok = _with_reward(mdp, _shaped(mdp, phi, agent_gamma)).value_iteration(agent_gamma)
    assert all(_reaches_goal(mdp, q_ok))


def test_negative_control_wrappers_pay_their_formulas() -> None:
    def potential(obs: np.ndarray) -> np.ndarray:
        return 1.0 + obs[:, 0]

    bonus = ProgressBonus(gym.make("rewardlab/GridEmpty-v0"), "progress", scale=3.0)
    mismatched = MismatchedShaping(gym.make("rewardlab/GridEmpty-v0"), potential, 1.0, 0.9)
    _, info_b = bonus.reset(seed=0)
    obs, info_m = mismatched.reset(seed=0)
    prev = 1.0 + obs[0]
    for _ in range(4):
        _, r_b, _, _, info_b = bonus.step(2)
        obs, r_m, _, _, info_m = mismatched.step(2)
        assert r_b == info_b["original_reward"] + 3.0 * info_b["progress"]
        assert info_b["shaping"] == 3.0 * info_b["progress"]
        assert info_m["shaping"] == pytest.approx(1.0 * (1.0 + obs[0]) - prev)
        assert r_m == info_m["original_reward"] + info_m["shaping"]
        prev = 1.0 + obs[0]


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5, float("nan"), True])
def test_gamma_outside_unit_interval_is_rejected(gamma: float) -> None:
    with pytest.raises(ValueError, match=r"gamma must be .*\(0, 1\]"):
        PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", gamma)


def test_gamma_one_is_accepted_and_args_are_recorded() -> None:
    env = PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", 1.0)
    assert env.gamma == 1.0
    assert env._saved_kwargs == {"potential": "progress", "gamma": 1.0}


def test_unknown_potential_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown potential 'distance'.*'progress'"):
        PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "distance", 0.99)


def test_step_before_reset_raises() -> None:
    env = PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", 0.99)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_frame_model_needs_rgb_array_render_mode() -> None:
    with pytest.raises(ValueError, match="rgb_array"):
        PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), _ProgressModel(True), 0.99)


def test_mismatched_shaping_rejects_equal_discounts() -> None:
    with pytest.raises(ValueError, match="PotentialShaping"):
        MismatchedShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", 0.99, 0.99)


def test_check_shaping_gamma_names_both_discounts() -> None:
    env = gym.wrappers.RecordEpisodeStatistics(
        PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", 0.95)
    )
    check_shaping_gamma(env, 0.95)
    with pytest.raises(ValueError, match=r"gamma=0\.95.*gamma=0\.99"):
        check_shaping_gamma(env, 0.99)


def test_check_shaping_gamma_skips_negative_controls() -> None:
    env = ProgressBonus(
        MismatchedShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", 0.5, 0.99), "progress"
    )
    check_shaping_gamma(env, 0.99)


def test_check_shaping_gamma_walks_sb3_dummy_vec_env() -> None:
    vec_env = pytest.importorskip("stable_baselines3.common.vec_env")

    def make(gamma: float) -> Any:
        return lambda: PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", gamma)

    venv = vec_env.VecMonitor(vec_env.DummyVecEnv([make(0.99), make(0.9)]))
    with pytest.raises(ValueError, match=r"gamma=0\.9 .*gamma=0\.99"):
        check_shaping_gamma(venv, 0.99)
    check_shaping_gamma(vec_env.DummyVecEnv([make(0.99)]), 0.99)
