"""Exact regret of a reward on a finite MDP: what optimizing it gets you on the true task.

A reward can be close to the true one by a distance (EPIC, STARC) and still send a learner
somewhere else. On a tabular model (a gridworld's :meth:`~rewardlab.envs.gridworld.
GridWorldEnv.tabular`) the consequence can be computed exactly, for two learners:

- **at the optimum**: the optimal policy under the reward (value iteration with the agent's
  discount; uniform over tied actions), what unlimited optimization converges to;
- **under limited optimization**: ``k`` steps of exact soft policy iteration (the natural
  policy gradient of a tabular softmax policy, ``logits += step_size * Q``) from the uniform
  policy, what a learner with limited experience gets. A reward that is harmless at the optimum
  can still stall learning (a discount mismatch), which only this view shows.

Each policy is run on the true task from the episode's first-state distribution for the time
limit: success probability, true discounted return, and the normalized regret
``(J* - J) / J*``, where ``J*`` is the true return of the true reward's optimal policy and the
true reward pays only on entering success (so never succeeding returns 0): 0 is as good as
optimizing the task itself, 1 as bad as never succeeding.

Arrays: ``P`` and rewards are ``(S, A, S)``; terminal states are absorbing, and what a reward
pays out of them is ignored (an episode ends there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TaskOutcome",
    "optimal_policy",
    "policy_values",
    "reward_regret",
    "soft_policy_iteration",
    "task_outcome",
]


@dataclass(frozen=True)
class TaskOutcome:
    """A policy run on the true task.

    Attributes:
        success: Probability of success within the time limit.
        true_return: Expected true return, discounted with the agent's gamma.
        regret: Normalized regret ``(J* - J) / J*`` (0: as good as the task's optimum, 1: as
            bad as never succeeding); NaN when ``J*`` is 0 (the task cannot be solved).
    """

    success: float
    true_return: float
    regret: float


def policy_values(
    transitions: np.ndarray, reward: np.ndarray, policy: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(V, Q)`` of a stochastic ``(S, A)`` policy under ``reward``: one linear solve."""
    expected = np.einsum("sat,sat->sa", transitions, reward)
    p_pi = np.einsum("sa,sat->st", policy, transitions)
    v = np.linalg.solve(np.eye(len(p_pi)) - gamma * p_pi, (policy * expected).sum(axis=1))
    return v, expected + gamma * transitions @ v


def optimal_policy(
    transitions: np.ndarray, reward: np.ndarray, gamma: float, tol: float = 1e-9
) -> np.ndarray:
    """The optimal ``(S, A)`` policy under ``reward`` by value iteration, uniform over the
    actions within ``tol`` (relative to the largest ``|Q|``) of the best: ties are not broken
    by action order, which would favour one way of doing nothing over another."""
    expected = np.einsum("sat,sat->sa", transitions, reward)
    v = np.zeros(len(transitions))
    for _ in range(100_000):
        q = expected + gamma * transitions @ v
        v_new = q.max(axis=1)
        if np.max(np.abs(v_new - v)) <= 1e-12 * max(1.0, np.max(np.abs(v_new))):
            break
        v = v_new
    else:
        raise RuntimeError("value iteration did not converge in 100,000 sweeps")
    best = q >= q.max(axis=1, keepdims=True) - tol * max(1.0, np.max(np.abs(q)))
    return best / best.sum(axis=1, keepdims=True)


def soft_policy_iteration(
    transitions: np.ndarray, reward: np.ndarray, gamma: float, steps: int, step_size: float = 1.0
) -> np.ndarray:
    """The ``(S, A)`` policy after ``steps`` exact soft policy-iteration (NPG) steps from the
    uniform policy: ``logits += step_size * Q^pi`` under ``reward``."""
    n_states, n_actions = transitions.shape[:2]
    logits = np.zeros((n_states, n_actions))
    policy = np.full((n_states, n_actions), 1.0 / n_actions)
    for _ in range(steps):
        logits += step_size * policy_values(transitions, reward, policy, gamma)[1]
        policy = np.exp(logits - logits.max(axis=1, keepdims=True))
        policy /= policy.sum(axis=1, keepdims=True)
    return policy


def task_outcome(
    transitions: np.ndarray,
    policy: np.ndarray,
    true_reward: np.ndarray,
    initial: np.ndarray,
    success: np.ndarray,
    horizon: int,
    gamma: float,
) -> tuple[float, float]:
    """``(success probability, discounted true return)`` of ``policy`` within ``horizon``
    steps from the first-state distribution ``initial``; success states are absorbing."""
    p_pi = np.einsum("sa,sat->st", policy, transitions)
    r_pi = (policy * np.einsum("sat,sat->sa", transitions, true_reward)).sum(axis=1)
    dist, total = np.asarray(initial, dtype=np.float64), 0.0
    for t in range(horizon):
        total += gamma**t * float(dist @ r_pi)
        dist = dist @ p_pi
    return float(dist[success].sum()), total


def reward_regret(
    transitions: np.ndarray,
    reward: np.ndarray,
    true_reward: np.ndarray,
    initial: np.ndarray,
    terminal: np.ndarray,
    success: np.ndarray,
    horizon: int,
    gamma: float,
    steps: Sequence[int] = (10,),
    step_size: float = 1.0,
) -> dict[str, TaskOutcome]:
    """How optimizing ``reward`` does on the true task: ``{"optimum": ..., "k=<steps>": ...}``.

    Args:
        transitions: ``(S, A, S)`` transition probabilities.
        reward: ``(S, A, S)`` the reward judged.
        true_reward: ``(S, A, S)`` the task's reward, paying only on entering success.
        initial: ``(S,)`` first-state distribution.
        terminal: ``(S,)`` bool, the absorbing states where an episode ends.
        success: ``(S,)`` bool, the terminal states that are a success.
        horizon: The episode's time limit in steps.
        gamma: The agent's discount, in ``[0, 1)``.
        steps: Soft policy-iteration step counts to report.
        step_size: Its step size.

    Raises:
        ValueError: On mismatched shapes, ``gamma`` outside ``[0, 1)``, or a true reward that
            pays anything but entering success.
    """
    shape = transitions.shape
    if reward.shape != shape or true_reward.shape != shape or shape[0] != shape[2]:
        raise ValueError(
            f"transitions, reward and true_reward must share one (S, A, S) shape, got "
            f"{shape}, {reward.shape}, {true_reward.shape}"
        )
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma!r}")
    live = ~np.asarray(terminal, dtype=bool)[:, None, None]
    reward, true_reward = reward * live, true_reward * live
    success = np.asarray(success, dtype=bool)
    if np.any(true_reward[:, :, ~success] != 0):
        raise ValueError("true_reward must pay only on entering a success state (never: 0)")
    best = task_outcome(
        transitions,
        optimal_policy(transitions, true_reward, gamma),
        true_reward,
        initial,
        success,
        horizon,
        gamma,
    )[1]

    def outcome(policy: np.ndarray) -> TaskOutcome:
        p, j = task_outcome(transitions, policy, true_reward, initial, success, horizon, gamma)
        return TaskOutcome(p, j, (best - j) / best if best > 0 else float("nan"))

    out = {"optimum": outcome(optimal_policy(transitions, reward, gamma))}
    for k in steps:
        policy = soft_policy_iteration(transitions, reward, gamma, k, step_size)
        out[f"k={k}"] = outcome(policy)
    return out
