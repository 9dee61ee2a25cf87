"""Potential-based reward shaping as a per-env Gymnasium wrapper, and its negative controls.

:class:`PotentialShaping` adds ``F = gamma * Phi(s') - Phi(s)`` to the env's reward and, with
``gamma`` equal to the agent's discount, leaves the optimal policy unchanged
(``Q'*(s, a) = Q*(s, a) - Phi(s)``). :class:`ProgressBonus` and :class:`MismatchedShaping`
are **negative controls**: they change the optimal policy and exist only to be compared
against. :func:`check_shaping_gamma` raises when a shaping wrapper's discount differs from
the agent's.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rewardlab.reward_models.potentials import (
    check_discount,
    check_mismatched_discount,
    check_scale,
)
from rewardlab.wrappers.core import POTENTIAL_NAMES, Potential, PotentialCore
from rewardlab.wrappers.reward import RewardLayer

__all__ = [
    "POTENTIAL_NAMES",
    "MismatchedShaping",
    "Potential",
    "PotentialShaping",
    "ProgressBonus",
    "check_shaping_gamma",
]


class _PotentialLayer(RewardLayer):
    """A per-env layer around a :class:`~rewardlab.wrappers.core.PotentialCore` named
    ``name``, recording the arguments ``recorded`` and ``potential``."""

    def __init__(
        self,
        env: gym.Env[Any, Any],
        potential: Potential,
        name: str,
        recorded: dict[str, float],
        **term: float,
    ) -> None:
        # Recorded by reference: deep-copying would clone a model potential (a CLIP encoder).
        gym.utils.RecordConstructorArgs.__init__(
            self, potential=potential, **recorded, _disable_deepcopy=True
        )
        self.potential = potential
        self.core = PotentialCore(potential, self._frames, env.action_space, name=name, **term)
        super().__init__(env, self.core.model)


class PotentialShaping(_PotentialLayer):
    """Policy-invariant potential-based shaping: ``r + gamma * Phi(s') - Phi(s)``.

    Implements Ng, Harada & Russell (1999) with dynamic-potential caching (Devlin & Kudenko
    2012): ``Phi(s)`` is the value computed when ``s`` was entered, so
    ``sum_t gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0)`` exactly, even when the potential
    changes mid-episode. ``Phi(s_T) = 0`` only if the episode terminated; on truncation the
    true final observation's potential is used. The optimal policy is unchanged only if
    ``gamma`` is the agent's discount: check it with :func:`check_shaping_gamma`.

    Every ``step`` info holds ``env_reward`` (the env's own reward; log it, not the shaped
    one, as the task metric), ``shaping`` (``F``), ``potential`` (``Phi(s')``) and the
    layer's record ``("shaping", reward_in, F, reward_out)`` in ``reward_layers``; the
    ``reset`` info holds ``potential`` (``Phi(s_0)``).

    Args:
        env: The env to wrap.
        potential: ``"progress"`` (the task's ground-truth ``info["progress"]``), a callable
            mapping observations ``(B, *obs_shape)`` to ``(B,)``, or a
            :class:`~rewardlab.reward_models.base.RewardModel` read as ``Phi(s')``: it is
            called on a one-row batch whose ``obs`` and ``next_obs`` are the state and whose
            action is zeros, so it must depend on ``s'`` only. A model with
            ``needs_frames`` gets ``env.render()``, which needs ``render_mode="rgb_array"``.
        gamma: Shaping discount in ``(0, 1]``, equal to the agent's.

    Raises:
        ValueError: If ``gamma`` is not in ``(0, 1]``, ``potential`` is an unknown name, or
            a frame-reading model wraps an env without ``rgb_array`` rendering.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> from rewardlab.wrappers import PotentialShaping
        >>> env = PotentialShaping(gym.make("rewardlab/GridEmpty-v0"), "progress", gamma=0.99)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(2)
        >>> reward == info["env_reward"] + info["shaping"]
        True
    """

    enforces_policy_invariance = True
    """Read by :func:`check_shaping_gamma`: this layer's ``gamma`` must be the agent's."""

    def __init__(self, env: gym.Env[Any, Any], potential: Potential, gamma: float) -> None:
        self.gamma = check_discount(gamma)
        super().__init__(env, potential, "shaping", {"gamma": gamma}, gamma=self.gamma)

    def shaping_gammas(self) -> list[float]:
        """Discounts of this and every policy-invariant shaping layer inside it.

        Lets :func:`check_shaping_gamma` ask sub-envs that live in other processes.
        """
        layers, _ = _layers(self)
        return [x.gamma for x in layers if getattr(x, "enforces_policy_invariance", False)]


class ProgressBonus(_PotentialLayer):
    """NEGATIVE CONTROL: adds the raw potential ``scale * Phi(s')`` to the reward.

    This is the "semantic trap" (Robo-Dopamine): rewarding progress itself rather than its
    potential-based difference (Ng, Harada & Russell 1999; Devlin & Kudenko 2012) changes the
    optimal policy, e.g. the agent hovers in high-progress states instead of finishing. It
    exists to be compared against :class:`PotentialShaping`; do not use it to train agents
    you want to solve the task.

    ``Phi(s')`` is the potential of the state entered, terminal states included. Info keys
    as for :class:`PotentialShaping` (``shaping`` is the bonus).

    Args:
        env: The env to wrap.
        potential: As for :class:`PotentialShaping`.
        scale: Multiplier of the bonus.

    Raises:
        ValueError: If ``scale`` is not finite or ``potential`` is an unknown name.
    """

    enforces_policy_invariance = False

    def __init__(self, env: gym.Env[Any, Any], potential: Potential, scale: float = 1.0) -> None:
        self.scale = check_scale(scale)
        super().__init__(env, potential, "progress_bonus", {"scale": scale}, scale=self.scale)


class MismatchedShaping(_PotentialLayer):
    """NEGATIVE CONTROL: potential-based shaping with a discount other than the agent's.

    Adds ``F = gamma * Phi(s') - Phi(s)`` exactly as :class:`PotentialShaping` does, but
    ``gamma`` deliberately differs from ``agent_gamma``. Ng, Harada & Russell (1999)'s
    invariance then fails: with ``gamma > agent_gamma`` the agent collects
    ``(gamma - agent_gamma) * Phi(s')`` per step in addition to a potential difference, so
    it may prefer hovering in high-progress states over finishing. It exists to be compared
    against :class:`PotentialShaping`; :func:`check_shaping_gamma` skips it.

    Args:
        env: The env to wrap.
        potential: As for :class:`PotentialShaping`.
        gamma: The (wrong) shaping discount, in ``(0, 1]``.
        agent_gamma: The agent's discount, in ``(0, 1]``, different from ``gamma``.

    Raises:
        ValueError: If a discount is not in ``(0, 1]`` or the two are equal.
    """

    enforces_policy_invariance = False

    def __init__(
        self, env: gym.Env[Any, Any], potential: Potential, gamma: float, agent_gamma: float
    ) -> None:
        self.agent_gamma = check_mismatched_discount(gamma, agent_gamma)
        self.gamma = check_discount(gamma)
        recorded = {"gamma": gamma, "agent_gamma": agent_gamma}
        super().__init__(env, potential, "mismatched_shaping", recorded, gamma=self.gamma)


def _layers(env: Any) -> tuple[list[Any], list[Any]]:
    """Every in-process layer of a wrapper chain, outermost first, through SB3 vector envs,
    and the vector envs whose sub-envs live in other processes (e.g. ``SubprocVecEnv``)."""
    layers: list[Any] = []
    remote: list[Any] = []
    stack = [env]
    while stack:
        layer = stack.pop()
        layers.append(layer)
        if isinstance(layer, gym.Wrapper):
            stack.append(layer.env)
        elif hasattr(layer, "venv"):  # SB3 VecEnvWrapper
            stack.append(layer.venv)
        elif isinstance(getattr(layer, "envs", None), list):  # SB3 DummyVecEnv
            stack.extend(reversed(layer.envs))
        elif hasattr(layer, "env_is_wrapped") and hasattr(layer, "env_method"):
            remote.append(layer)
    return layers, remote


def check_shaping_gamma(env: Any, agent_gamma: float) -> None:
    """Raise if a shaping layer's discount differs from the agent's.

    Potential-based shaping (Ng, Harada & Russell 1999), dynamic or not (Devlin & Kudenko
    2012), leaves the optimal policy unchanged only when its ``gamma`` is the agent's.
    Walks the chain of Gymnasium wrappers (``.env``), SB3 ``VecEnvWrapper`` layers
    (``.venv``) and the sub-envs of a ``DummyVecEnv`` (``.envs``); every layer whose
    ``enforces_policy_invariance`` attribute is True (:class:`PotentialShaping`, and any
    adapter that sets it) must have ``gamma == agent_gamma``. :class:`MismatchedShaping` and
    :class:`ProgressBonus` are negative controls and are skipped. Call it when training starts
    with the learner's discount (SB3: ``model.gamma``).

    Sub-envs in other processes (``SubprocVecEnv``) are asked through the VecEnv API
    (``env_is_wrapped``, ``env_method("shaping_gammas")``).

    Args:
        env: A Gymnasium env or an SB3 VecEnv (and wrappers of either).
        agent_gamma: The agent's discount.

    Raises:
        ValueError: On a mismatch, naming both discounts and the fix.
    """
    agent = check_discount(agent_gamma, "agent_gamma")
    layers, remote = _layers(env)
    invariant = [x for x in layers if getattr(x, "enforces_policy_invariance", False)]
    shapers = [(type(x).__name__, x.gamma) for x in invariant]
    for venv in remote:  # sub-envs in other processes: ask them through the VecEnv API
        shaped = [i for i, w in enumerate(venv.env_is_wrapped(PotentialShaping)) if w]
        where = f"PotentialShaping in a {type(venv).__name__}"
        for gammas in venv.env_method("shaping_gammas", indices=shaped) if shaped else []:
            shapers += [(where, gamma) for gamma in gammas]
    for name, gamma in shapers:
        if gamma != agent:
            raise ValueError(
                f"{name} shapes with gamma={gamma!r} but the agent discounts with "
                f"gamma={agent!r}; potential-based shaping is policy-invariant only when they "
                "are equal: pass the agent's gamma to the shaping wrapper"
            )
