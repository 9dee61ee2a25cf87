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
from scipy import sparse as _sparse
from scipy.sparse import linalg as _sparse_linalg

__all__ = [
    "RegretJudge",
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


_SPARSE_SHARE = 0.1
"""Policy evaluation solves sparsely when fewer than this share of ``P_pi`` is nonzero."""


def expected_reward(transitions: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """``(S, A)`` expected reward of each action, ``sum_t P(t | s, a) R(s, a, t)``."""
    return np.einsum("sat,sat->sa", transitions, reward)


def policy_values(
    transitions: np.ndarray,
    reward: np.ndarray,
    policy: np.ndarray,
    gamma: float,
    *,
    expected: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(V, Q)`` of a stochastic ``(S, A)`` policy under ``reward``: one linear solve.
    ``expected``: :func:`expected_reward` of ``reward``, when a caller evaluating many
    policies has it already."""
    if expected is None:
        expected = expected_reward(transitions, reward)
    p_pi = np.einsum("sa,sat->st", policy, transitions)
    system, rhs = np.eye(len(p_pi)) - gamma * p_pi, (policy * expected).sum(axis=1)
    if np.count_nonzero(p_pi) < _SPARSE_SHARE * p_pi.size:
        # A gridworld's dynamics are (nearly) deterministic: a sparse solve is several times
        # faster than a dense one, and exact all the same.
        v = _sparse_linalg.spsolve(_sparse.csc_matrix(system), rhs)
    else:
        v = np.linalg.solve(system, rhs)
    return v, expected + gamma * transitions @ v


def optimal_policy(
    transitions: np.ndarray, reward: np.ndarray, gamma: float, tol: float = 1e-9
) -> np.ndarray:
    """The optimal ``(S, A)`` policy under ``reward``, uniform over the actions within ``tol``
    (relative to the largest ``|Q|``) of the best: ties are not broken by action order, which
    would favour one way of doing nothing over another.

    Policy iteration with exact evaluation: a few linear solves, where value iteration at
    ``gamma = 0.99`` needs thousands of sweeps.
    """
    n_states, n_actions = transitions.shape[:2]
    policy = np.full((n_states, n_actions), 1.0 / n_actions)
    expected = expected_reward(transitions, reward)
    for _ in range(10 * n_states * n_actions):  # PI needs far fewer; a float tie may dither
        q = policy_values(transitions, reward, policy, gamma, expected=expected)[1]
        best = q >= q.max(axis=1, keepdims=True) - tol * max(1.0, float(np.max(np.abs(q))))
        greedy = best / best.sum(axis=1, keepdims=True)
        if np.array_equal(greedy, policy):
            return greedy
        policy = greedy
    raise RuntimeError("policy iteration did not settle; the rewards may be too large for tol")


def soft_policy_iteration(
    transitions: np.ndarray, reward: np.ndarray, gamma: float, steps: int, step_size: float = 1.0
) -> np.ndarray:
    """The ``(S, A)`` policy after ``steps`` exact soft policy-iteration (NPG) steps from the
    uniform policy: ``logits += step_size * Q^pi`` under ``reward``."""
    n_states, n_actions = transitions.shape[:2]
    logits = np.zeros((n_states, n_actions))
    policy = np.full((n_states, n_actions), 1.0 / n_actions)
    expected = expected_reward(transitions, reward)
    for _ in range(steps):
        q = policy_values(transitions, reward, policy, gamma, expected=expected)[1]
        logits += step_size * q
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


class RegretJudge:
    """Judges rewards on one task: the true optimum's return is computed once.

    Args:
        transitions: ``(S, A, S)`` transition probabilities.
        true_reward: ``(S, A, S)`` the task's reward, paying only on entering success.
        initial: ``(S,)`` first-state distribution.
        terminal: ``(S,)`` bool, the absorbing states where an episode ends.
        success: ``(S,)`` bool, the terminal states that are a success.
        horizon: The episode's time limit in steps.
        gamma: The agent's discount, in ``[0, 1)``.

    Raises:
        ValueError: On mismatched shapes, ``gamma`` outside ``[0, 1)``, or a true reward that
            pays anything but entering success.
    """

    def __init__(
        self,
        transitions: np.ndarray,
        true_reward: np.ndarray,
        initial: np.ndarray,
        terminal: np.ndarray,
        success: np.ndarray,
        horizon: int,
        gamma: float,
    ) -> None:
        shape = transitions.shape
        if true_reward.shape != shape or len(shape) != 3 or shape[0] != shape[2]:
            raise ValueError(
                f"transitions and true_reward must share one (S, A, S) shape, got {shape} and "
                f"{true_reward.shape}"
            )
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma!r}")
        self._live = ~np.asarray(terminal, dtype=bool)[:, None, None]
        self.success = np.asarray(success, dtype=bool)
        self.true_reward = true_reward * self._live
        if np.any(self.true_reward[:, :, ~self.success] != 0):
            raise ValueError("true_reward must pay only on entering a success state (never: 0)")
        self.transitions, self.initial = transitions, initial
        self.horizon, self.gamma = horizon, gamma
        self.best_return = self._run(optimal_policy(transitions, self.true_reward, gamma))[1]

    def _run(self, policy: np.ndarray) -> tuple[float, float]:
        return task_outcome(
            self.transitions,
            policy,
            self.true_reward,
            self.initial,
            self.success,
            self.horizon,
            self.gamma,
        )

    def outcome(self, policy: np.ndarray) -> TaskOutcome:
        """``policy`` run on the task."""
        p, j = self._run(policy)
        best = self.best_return
        return TaskOutcome(p, j, (best - j) / best if best > 0 else float("nan"))

    def __call__(
        self, reward: np.ndarray, steps: Sequence[int] = (10,), step_size: float = 1.0
    ) -> dict[str, TaskOutcome]:
        """How optimizing ``reward`` does: ``{"optimum": ..., "k=<k>": ...}`` for each of
        ``steps`` soft policy-iteration step counts.

        Raises:
            ValueError: If ``reward`` is not ``(S, A, S)``.
        """
        if reward.shape != self.transitions.shape:
            raise ValueError(
                f"reward must have the (S, A, S) shape {self.transitions.shape}, got {reward.shape}"
            )
        reward = reward * self._live
        out = {"optimum": self.outcome(optimal_policy(self.transitions, reward, self.gamma))}
        for k in steps:
            policy = soft_policy_iteration(self.transitions, reward, self.gamma, k, step_size)
            out[f"k={k}"] = self.outcome(policy)
        return out


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
    """One reward judged by a :class:`RegretJudge` (arguments as there and as its call)."""
    judge = RegretJudge(transitions, true_reward, initial, terminal, success, horizon, gamma)
    return judge(reward, steps, step_size)
