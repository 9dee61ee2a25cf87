"""Exact regret on tabular MDPs: hand-solved chains, and the key-door controls of issue 14."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rewardlab  # noqa: F401  (registers the ids)
from rewardlab.envs.gridworld import GridWorldEnv, TabularMDP
from rewardlab.evaluation.regret import (
    optimal_policy,
    policy_values,
    reward_regret,
    soft_policy_iteration,
    task_outcome,
)

STAY, GO = 0, 1


def _chain(n: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States 0..n-1 in a line, the last one the (absorbing) goal; GO moves right, STAY stays.

    Returns ``(P, true_reward, terminal, initial)``.
    """
    p = np.zeros((n, 2, n))
    for s in range(n):
        p[s, STAY, s] = 1.0
        p[s, GO, min(s + 1, n - 1) if s < n - 1 else s] = 1.0
    true = np.zeros((n, 2, n))
    true[n - 2, GO, n - 1] = 1.0
    terminal = np.zeros(n, dtype=bool)
    terminal[-1] = True
    initial = np.zeros(n)
    initial[0] = 1.0
    return p, true, terminal, initial


def test_the_true_rewards_optimum_has_zero_regret_and_a_stay_reward_full_regret() -> None:
    p, true, terminal, initial = _chain()
    out = reward_regret(p, true, true, initial, terminal, terminal, horizon=5, gamma=0.9)
    assert out["optimum"].success == 1.0
    assert out["optimum"].true_return == pytest.approx(0.9)  # the goal entered at step 2
    assert out["optimum"].regret == 0.0
    stay = np.zeros_like(true)
    stay[:, STAY, :] = 1.0
    out = reward_regret(p, stay, true, initial, terminal, terminal, horizon=5, gamma=0.9)
    assert (out["optimum"].success, out["optimum"].regret) == (0.0, 1.0)


def test_the_time_limit_counts() -> None:
    p, true, terminal, initial = _chain()
    out = reward_regret(p, true, true, initial, terminal, terminal, horizon=1, gamma=0.9)
    assert out["optimum"].success == 0.0  # two steps are needed
    assert np.isnan(out["optimum"].regret)  # nothing can succeed in time: no J* to compare to


def test_uniform_policy_outcome_matches_a_hand_count() -> None:
    p, true, terminal, initial = _chain()
    uniform = np.full((3, 2), 0.5)
    success, ret = task_outcome(p, uniform, true, initial, terminal, horizon=3, gamma=1.0 - 1e-9)
    # Reaching state 2 within 3 steps needs two GOs among three coin flips, the first two or
    # with one STAY before the second GO: 1/4 + 2 * 1/8.
    assert success == pytest.approx(0.5)
    assert ret == pytest.approx(0.5)


def test_ties_are_split_not_broken_by_action_order() -> None:
    p, _, _, _ = _chain()
    policy = optimal_policy(p, np.zeros_like(p), 0.9)
    np.testing.assert_allclose(policy, 0.5)


def test_policy_values_solve_the_bellman_equation() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((4, 3, 4))
    p /= p.sum(axis=2, keepdims=True)
    r = rng.normal(size=(4, 3, 4))
    policy = rng.random((4, 3))
    policy /= policy.sum(axis=1, keepdims=True)
    v, q = policy_values(p, r, policy, 0.8)
    np.testing.assert_allclose(v, (policy * q).sum(axis=1))
    np.testing.assert_allclose(q, np.einsum("sat,sat->sa", p, r + 0.8 * v[None, None, :]))


def test_soft_policy_iteration_from_uniform_improves_and_zero_steps_is_uniform() -> None:
    p, true, terminal, initial = _chain(5)
    np.testing.assert_allclose(soft_policy_iteration(p, true, 0.9, 0), 0.5)
    returns = [
        task_outcome(p, soft_policy_iteration(p, true, 0.9, k), true, initial, terminal, 8, 0.9)[1]
        for k in (0, 2, 8)
    ]
    assert returns[0] < returns[1] < returns[2]


def test_bad_input_is_refused() -> None:
    p, true, terminal, initial = _chain()
    with pytest.raises(ValueError, match="must have the \\(S, A, S\\) shape"):
        reward_regret(p, true[:, :1], true, initial, terminal, terminal, 5, 0.9)
    with pytest.raises(ValueError, match="share one \\(S, A, S\\) shape"):
        reward_regret(p, true, true[:, :1], initial, terminal, terminal, 5, 0.9)
    with pytest.raises(ValueError, match="gamma must be in"):
        reward_regret(p, true, true, initial, terminal, terminal, 5, 1.0)
    paying = true.copy()
    paying[0, STAY, 0] = 1.0
    with pytest.raises(ValueError, match="only on entering a success state"):
        reward_regret(p, true, paying, initial, terminal, terminal, 5, 0.9)


@pytest.fixture(scope="module")
def key_door() -> tuple[TabularMDP, np.ndarray, int]:
    """Key-door's tabular model (reset seed 0), each state's progress and the time limit."""
    env = gym.make("rewardlab/GridKeyDoor-v0")
    env.reset(seed=0)
    inner = env.unwrapped
    assert isinstance(inner, GridWorldEnv) and env.spec is not None
    mdp = inner.tabular()
    progress = np.empty(len(mdp.terminal))
    for i in range(len(progress)):
        inner.set_state_index(i)
        progress[i] = inner.progress()
    horizon = int(env.spec.max_episode_steps or 0)
    env.close()
    return mdp, progress, horizon


def test_key_door_controls_fail_where_training_fails(
    key_door: tuple[TabularMDP, np.ndarray, int],
) -> None:
    # Issue 14: the mismatched-discount control's optimal policy still solves the task, but
    # after 10 soft policy-iteration steps from uniform it never succeeds, while sparse and
    # PBRS succeed ~95% of the time (what 20 PPO runs showed); the progress bonus's optimal
    # policy loiters and never enters the goal.
    mdp, progress, horizon = key_door
    gamma, r = 0.99, mdp.R
    phi = np.where(mdp.terminal, 0.0, progress)
    rewards = {
        "sparse": r,
        "pbrs": r + gamma * phi[None, None, :] - phi[:, None, None],
        "pbrs_mismatched": r + 0.9 * phi[None, None, :] - phi[:, None, None],
        "progress_bonus": r + progress[None, None, :],
    }
    success = mdp.terminal & (progress == 1.0)
    out = {
        name: reward_regret(mdp.P, reward, r, mdp.initial, mdp.terminal, success, horizon, gamma)
        for name, reward in rewards.items()
    }
    for name in ("sparse", "pbrs"):
        assert out[name]["optimum"].success == pytest.approx(1.0)
        assert out[name]["optimum"].regret == pytest.approx(0.0, abs=1e-9)
        assert 0.9 < out[name]["k=10"].success < 1.0
    assert out["pbrs"]["k=10"].success == pytest.approx(out["sparse"]["k=10"].success)
    assert out["pbrs_mismatched"]["optimum"].success == pytest.approx(1.0)
    assert out["pbrs_mismatched"]["k=10"].success < 0.01
    assert out["pbrs_mismatched"]["k=10"].regret > 0.99
    assert out["progress_bonus"]["optimum"].success < 0.01
    assert out["progress_bonus"]["optimum"].regret > 0.99
