"""Potential-based reward shaping as a per-env Gymnasium wrapper, and its negative controls.

:class:`PotentialShaping` adds ``F = gamma * Phi(s') - Phi(s)`` to the env's reward
(Ng, Harada & Russell 1999). With ``gamma`` equal to the agent's discount the optimal policy
is unchanged: ``Q'*(s, a) = Q*(s, a) - Phi(s)``. The potential of each state is cached when
the state is entered and reused as ``Phi(s)`` on the next step (dynamic shaping, Devlin &
Kudenko 2012), so the shaped return telescopes exactly,
``sum_t gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0)``, even for a potential that changes
during an episode. ``Phi(s_T) = 0`` only when the episode *terminated*; on truncation the
potential of the true final observation is used.

:class:`ProgressBonus` and :class:`MismatchedShaping` are **negative controls**: they change
the optimal policy and exist only to be compared against.
:func:`check_shaping_gamma` raises when a shaping wrapper's discount differs from the
agent's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.reward_models.base import RewardBatch, RewardModel
from rewardlab.reward_models.potentials import shaping_term
from rewardlab.wrappers.reward import require_rgb_array

__all__ = [
    "POTENTIAL_NAMES",
    "check_potential",
    "MismatchedShaping",
    "Potential",
    "PotentialShaping",
    "ProgressBonus",
    "check_shaping_gamma",
]

POTENTIAL_NAMES: tuple[str, ...] = ("progress",)
"""Named potentials: ``"progress"`` is the task's ground-truth ``info["progress"]``."""

Potential = str | Callable[[np.ndarray], np.ndarray] | RewardModel
"""A potential: a name in :data:`POTENTIAL_NAMES`, a batched callable ``(B, *obs) -> (B,)``
or a :class:`~rewardlab.reward_models.base.RewardModel` read as ``Phi(s')``."""


def _check_gamma(gamma: float, name: str = "gamma") -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in (0, 1], got {gamma!r}")
    if not 0.0 < float(gamma) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {gamma!r}")
    return float(gamma)


def _check_mismatch(gamma: float, agent_gamma: float) -> float:
    """Validate a negative control's discounts; return ``agent_gamma``.

    Raises:
        ValueError: If a discount is not in ``(0, 1]`` or ``gamma`` equals the agent's.
    """
    agent = _check_gamma(agent_gamma, "agent_gamma")
    if _check_gamma(gamma) == agent:
        raise ValueError(
            f"mismatched shaping needs gamma != agent_gamma, got both {gamma!r}: a shaping "
            "discount that equals the agent's gamma is plain policy-invariant shaping; use "
            "PotentialShaping (drop shaping_gamma), or another value for the mismatched-"
            "discount control"
        )
    return agent


def _check_scale(scale: float) -> float:
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return float(scale)


def check_potential(potential: object) -> None:
    """Raise unless ``potential`` is a name in :data:`POTENTIAL_NAMES`, a callable or a model.

    Raises:
        ValueError: For an unknown name, listing the valid ones.
        TypeError: For anything else that is not callable.
    """
    if isinstance(potential, str):
        if potential not in POTENTIAL_NAMES:
            raise ValueError(
                f"unknown potential {potential!r}; valid names are {list(POTENTIAL_NAMES)}, "
                "or pass a callable obs_batch -> (B,) or a RewardModel"
            )
    elif not callable(potential):  # a RewardModel is callable too
        raise TypeError(
            f"potential must be one of {list(POTENTIAL_NAMES)}, a callable or a RewardModel, "
            f"got {type(potential).__name__}"
        )


class _PotentialWrapper(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs, ABC):
    """Evaluates a potential on every state entered and adds a term built from it.

    Subclasses implement :meth:`_term`. The potential of the state entered is cached and
    handed to the next step as ``Phi(s)`` (Devlin & Kudenko 2012).
    """

    def __init__(self, env: gym.Env[Any, Any], potential: Potential) -> None:
        gym.Wrapper.__init__(self, env)
        self.potential = potential
        check_potential(potential)
        if isinstance(potential, RewardModel) and potential.needs_frames:
            require_rgb_array(env, type(potential).__name__)
        self._phi: float | None = None

    def _potential_of(self, obs: Any, info: dict[str, Any]) -> float:
        """``Phi`` of the state the env is in now, whose observation is ``obs``."""
        pot = self.potential
        if isinstance(pot, str):
            if "progress" not in info:
                raise KeyError(
                    "potential 'progress' reads info['progress'], which this env does not "
                    "report; use a rewardlab env or pass a callable potential"
                )
            return float(info["progress"])
        batch_obs = np.asarray(obs)[None]
        if isinstance(pot, RewardModel):
            missing = [k for k in pot.needs_info if k not in info]
            if missing:
                raise KeyError(f"{type(pot).__name__} needs info keys {missing} the env lacks")
            space = self.env.action_space
            # The model is read as Phi(s'): obs and next_obs are both the state, the action
            # is a zero placeholder, so a model reading anything but s' is not a potential.
            batch = RewardBatch(
                obs=batch_obs,
                action=np.zeros((1, *(space.shape or ())), dtype=space.dtype or np.float64),
                next_obs=batch_obs,
                terminated=np.zeros(1, dtype=bool),
                frames=np.asarray(self.env.render())[None] if pot.needs_frames else None,
                info={k: np.asarray([info[k]]) for k in pot.needs_info},
            )
            values = np.asarray(pot(batch).reward, dtype=np.float64)
        else:
            values = np.asarray(pot(batch_obs), dtype=np.float64)
        if values.shape != (1,) or not np.isfinite(values[0]):
            raise ValueError(
                f"the potential must return one finite value per observation, shape (1,), "
                f"got {values!r}"
            )
        return float(values[0])

    @abstractmethod
    def _term(self, phi: float, phi_next: float, terminated: bool) -> float:
        """The term added to the reward for a step from ``s`` to ``s'``."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and cache ``Phi(s_0)``, also put in ``info["potential"]``."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._phi = self._potential_of(obs, info)
        info["potential"] = self._phi
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and add the term; ``info`` gets ``shaping``, ``original_reward`` and
        ``potential``.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self._phi is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi_next = self._next_potential(obs, info, bool(terminated))
        term = self._term(self._phi, phi_next, bool(terminated))
        self._phi = phi_next
        info["original_reward"] = float(reward)
        info["shaping"] = term
        info["potential"] = phi_next
        return obs, float(reward) + term, terminated, truncated, info

    def _next_potential(self, obs: Any, info: dict[str, Any], terminated: bool) -> float:
        # A true terminal state has no future: Phi = 0 (Ng et al. 1999). Truncation is not
        # termination, so the true final observation keeps its potential.
        return 0.0 if terminated else self._potential_of(obs, info)


class PotentialShaping(_PotentialWrapper):
    """Policy-invariant potential-based shaping: ``r + gamma * Phi(s') - Phi(s)``.

    Implements Ng, Harada & Russell (1999) with dynamic-potential caching (Devlin & Kudenko
    2012): ``Phi(s)`` is the value computed when ``s`` was entered, so
    ``sum_t gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0)`` exactly, even when the potential
    changes mid-episode. ``Phi(s_T) = 0`` only if the episode terminated; on truncation the
    true final observation's potential is used. The optimal policy is unchanged only if
    ``gamma`` is the agent's discount: check it with :func:`check_shaping_gamma`.

    Every ``step`` info holds ``original_reward`` (the wrapped env's reward; log it, not the
    shaped one, as the task metric), ``shaping`` (``F``) and ``potential`` (``Phi(s')``);
    the ``reset`` info holds ``potential`` (``Phi(s_0)``).

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
        >>> sorted(k for k in info if k in ("original_reward", "potential", "shaping"))
        ['original_reward', 'potential', 'shaping']
    """

    enforces_policy_invariance = True
    """Read by :func:`check_shaping_gamma`: this layer's ``gamma`` must be the agent's."""

    def __init__(self, env: gym.Env[Any, Any], potential: Potential, gamma: float) -> None:
        # Recorded by reference: deep-copying would clone a model potential (a CLIP encoder).
        gym.utils.RecordConstructorArgs.__init__(
            self, potential=potential, gamma=gamma, _disable_deepcopy=True
        )
        self.gamma = _check_gamma(gamma)
        super().__init__(env, potential)

    def shaping_gammas(self) -> list[float]:
        """Discounts of this and every policy-invariant shaping layer inside it.

        Lets :func:`check_shaping_gamma` ask sub-envs that live in other processes.
        """
        layers, _ = _layers(self)
        return [x.gamma for x in layers if getattr(x, "enforces_policy_invariance", False)]

    def _term(self, phi: float, phi_next: float, terminated: bool) -> float:
        f = shaping_term(np.array([phi]), np.array([phi_next]), np.array([terminated]), self.gamma)
        return float(f[0])


class ProgressBonus(_PotentialWrapper):
    """NEGATIVE CONTROL: adds the raw potential ``scale * Phi(s')`` to the reward.

    This is the "semantic trap" (Robo-Dopamine): rewarding progress itself rather than its
    potential-based difference (Ng, Harada & Russell 1999; Devlin & Kudenko 2012) changes the
    optimal policy, e.g. the agent hovers in high-progress states instead of finishing. It
    exists to be compared against :class:`PotentialShaping`; do not use it to train agents
    you want to solve the task.

    ``Phi(s')`` is the potential of the state entered, terminal states included. Every
    ``step`` info holds ``original_reward``, ``shaping`` (the bonus) and ``potential``.

    Args:
        env: The env to wrap.
        potential: As for :class:`PotentialShaping`.
        scale: Multiplier of the bonus.

    Raises:
        ValueError: If ``scale`` is not finite or ``potential`` is an unknown name.
    """

    enforces_policy_invariance = False

    def __init__(self, env: gym.Env[Any, Any], potential: Potential, scale: float = 1.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, potential=potential, scale=scale, _disable_deepcopy=True
        )
        self.scale = _check_scale(scale)
        super().__init__(env, potential)

    def _next_potential(self, obs: Any, info: dict[str, Any], terminated: bool) -> float:
        return self._potential_of(obs, info)

    def _term(self, phi: float, phi_next: float, terminated: bool) -> float:
        return self.scale * phi_next


class MismatchedShaping(_PotentialWrapper):
    """NEGATIVE CONTROL: potential-based shaping with a discount other than the agent's.

    Adds ``F = gamma * Phi(s') - Phi(s)`` exactly as :class:`PotentialShaping` does (with
    ``Phi(s') = 0`` on termination and dynamic-potential caching, Devlin & Kudenko 2012), but
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
        gym.utils.RecordConstructorArgs.__init__(
            self, potential=potential, gamma=gamma, agent_gamma=agent_gamma, _disable_deepcopy=True
        )
        self.agent_gamma = _check_mismatch(gamma, agent_gamma)
        self.gamma = _check_gamma(gamma)
        super().__init__(env, potential)

    def _term(self, phi: float, phi_next: float, terminated: bool) -> float:
        f = shaping_term(np.array([phi]), np.array([phi_next]), np.array([terminated]), self.gamma)
        return float(f[0])


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


def _mismatch(name: str, gamma: float, agent: float) -> ValueError:
    return ValueError(
        f"{name} shapes with gamma={gamma!r} but the agent discounts with gamma={agent!r}; "
        "potential-based shaping is policy-invariant only when they are equal: pass the "
        "agent's gamma to the shaping wrapper"
    )


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
    agent = _check_gamma(agent_gamma, "agent_gamma")
    layers, remote = _layers(env)
    for layer in layers:
        if getattr(layer, "enforces_policy_invariance", False) and layer.gamma != agent:
            raise _mismatch(type(layer).__name__, layer.gamma, agent)
    for venv in remote:  # sub-envs in other processes: ask them through the VecEnv API
        shaped = [i for i, w in enumerate(venv.env_is_wrapped(PotentialShaping)) if w]
        if not shaped:
            continue
        for gammas in venv.env_method("shaping_gammas", indices=shaped):
            for gamma in gammas:
                if gamma != agent:
                    raise _mismatch(f"PotentialShaping in a {type(venv).__name__}", gamma, agent)
