"""The batched core of every reward layer, shared by its per-env wrapper and its vector layer.

A reward layer is a rule over a batch of transitions: :class:`ModelCore` pays a reward
model's reward (replacing or added to the reward below it), :class:`PotentialCore` adds a
term built from a potential (policy-invariant shaping and its negative controls). The
per-env wrappers (:mod:`rewardlab.wrappers.reward`, :mod:`rewardlab.wrappers.shaping`) run
a core on a batch of one; the SB3 layers (:mod:`rewardlab.wrappers.vec`) on all sub-envs
at once, with SB3's auto-reset undone. So each rule exists once.

Every core writes the info contract of :mod:`rewardlab.info_keys`: the env's reward, a
record ``(layer, reward_in, term, reward_out)`` and its own terms.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from gymnasium import spaces

from rewardlab.info_keys import (
    ENV_REWARD,
    MODEL_PREFIX,
    ORIGINAL_REWARD,
    POTENTIAL,
    POTENTIAL_MODEL_PREFIX,
    PROGRESS,
    RESERVED,
    REWARD_LAYERS,
    SHAPING,
)
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.compose import FunctionReward, InfoReward

__all__ = [
    "POTENTIAL_NAMES",
    "REWARD_MODES",
    "ModelCore",
    "Potential",
    "PotentialCore",
    "RewardCore",
    "RewardMode",
    "Transitions",
    "as_potential_model",
    "batch_info",
    "run_model",
]

REWARD_MODES: tuple[str, ...] = ("replace", "add")
"""``"replace"``: the model's reward replaces the env's; ``"add"``: it is added to it."""

RewardMode = Literal["replace", "add"]

POTENTIAL_NAMES: tuple[str, ...] = (PROGRESS,)
"""Named potentials: ``"progress"`` is the task's ground-truth ``info["progress"]``."""

Potential = str | Callable[[np.ndarray], np.ndarray] | RewardModel
"""A potential: a name in :data:`POTENTIAL_NAMES`, a batched callable ``(B, *obs) -> (B,)``
or a :class:`~rewardlab.reward_models.base.RewardModel` read as ``Phi(s')``."""

Frames = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
"""``(B, H, W, 3)`` frames of the states whose infos are given (an adapter's way to render)."""


class Transitions(NamedTuple):
    """One step of ``B`` envs, as a core sees it.

    Attributes:
        obs: The observations returned (after an auto-reset, the next episode's first).
        action: ``(B, ...)`` actions taken.
        next_obs: The true ``s'`` (the final observation where an episode ended).
        terminated: ``(B,)`` bool, True where ``next_obs`` is a true terminal state.
        rewards: ``(B,)`` float64 rewards from below the layer.
        infos: The step infos (of ``next_obs``); the core writes its keys into them.
        ended: True when some row's episode ended (terminated or truncated).
    """

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    rewards: np.ndarray
    infos: Sequence[dict[str, Any]]
    ended: bool


def all_finite(values: np.ndarray) -> bool:
    """True when every element of a float array is finite.

    Hot path (every vector step): a finite Python sum means every value is finite, since NaN
    and inf propagate; summing the ``tolist()`` costs a fraction of a numpy reduction on the
    small batches of a vector env. Only an overflowing sum needs the elementwise check.
    """
    return math.isfinite(sum(values.ravel().tolist())) or bool(np.all(np.isfinite(values)))


def run_model(model: RewardModel, batch: RewardBatch) -> RewardOutput:
    """Call ``model`` on ``batch`` and check it returns one finite reward per row.

    Raises:
        ValueError: If the reward is not ``(B,)`` or not finite, or a component has the wrong
            shape.
    """
    out = model(batch)
    reward = np.asarray(out.reward, dtype=np.float64)
    n = len(batch.terminated)
    if reward.shape != (n,):
        raise ValueError(
            f"{type(model).__name__} returned rewards of shape {reward.shape}, expected ({n},)"
        )
    if not all_finite(reward):
        raise ValueError(f"{type(model).__name__} returned non-finite rewards {reward!r}")
    if not out.components:
        return out if out.reward is reward else RewardOutput(reward)
    components = {k: np.asarray(v, dtype=np.float64) for k, v in out.components.items()}
    for key, value in components.items():
        if value.shape != (n,):
            raise ValueError(
                f"{type(model).__name__} component {key!r} has shape {value.shape}, expected ({n},)"
            )
    return RewardOutput(reward, components)


def batch_info(
    model: RewardModel, infos: Sequence[Mapping[str, Any]], where: str = "the env's step info"
) -> dict[str, np.ndarray]:
    """Stack the info keys ``model.needs_info`` of each row into ``(B,)`` arrays.

    Raises:
        KeyError: If a row lacks a key the model needs, listing the keys it has.
    """
    try:
        return {k: np.asarray([info[k] for info in infos]) for k in model.needs_info}
    except KeyError:
        # Only when a key is missing: name every missing key of the first row lacking one.
        for info in infos:
            missing = [k for k in model.needs_info if k not in info]
            if missing:
                raise KeyError(
                    f"{type(model).__name__} needs info keys {missing}, missing from {where}, "
                    f"which has {sorted(info)}"
                ) from None
        raise


def as_potential_model(potential: object) -> RewardModel:
    """The reward model read as ``Phi(s')`` for a potential: ``"progress"`` is an
    :class:`~rewardlab.reward_models.compose.InfoReward`, a callable ``(B, *obs) -> (B,)`` a
    :class:`~rewardlab.reward_models.compose.FunctionReward` of ``next_obs``.

    Raises:
        ValueError: For an unknown name, listing the valid ones.
        TypeError: For anything else that is not callable.
    """
    if isinstance(potential, RewardModel):
        return potential
    if isinstance(potential, str):
        if potential not in POTENTIAL_NAMES:
            raise ValueError(
                f"unknown potential {potential!r}; valid names are {list(POTENTIAL_NAMES)}, "
                "or pass a callable obs_batch -> (B,) or a RewardModel"
            )
        return InfoReward(potential)
    if not callable(potential):
        raise TypeError(
            f"potential must be one of {list(POTENTIAL_NAMES)}, a callable or a RewardModel, "
            f"got {type(potential).__name__}"
        )
    fn = potential
    return FunctionReward(lambda batch: fn(batch.next_obs))


def _record(
    infos: Sequence[dict[str, Any]],
    layer: RewardCore,
    reward_in: np.ndarray,
    term: np.ndarray,
    reward_out: np.ndarray,
    terms: Mapping[str, np.ndarray],
) -> None:
    """Write a layer's record, its term under its :attr:`RewardCore.term_key` and its other
    ``(B,)`` terms into each row's info.

    Hot path (every vector step): plain loops over Python floats, the other terms key by key.
    """
    name, term_key = layer.name, layer.term_key
    for info, r_in, t, r_out in zip(
        infos, reward_in.tolist(), term.tolist(), reward_out.tolist(), strict=True
    ):
        layers = info.get(REWARD_LAYERS)
        if layers is None:  # the innermost layer: what it received is the env's reward
            info[ENV_REWARD] = info[ORIGINAL_REWARD] = r_in
            info[REWARD_LAYERS] = [(name, r_in, t, r_out)]
        else:
            layers.append((name, r_in, t, r_out))
        if term_key is not None:
            info[term_key] = t
    for key, values in terms.items():
        for info, value in zip(infos, values.tolist(), strict=True):
            info[key] = value


def _check_unreserved(infos: Sequence[Mapping[str, Any]]) -> None:
    for info in infos:
        if REWARD_LAYERS not in info and not RESERVED.isdisjoint(info):
            raise ValueError(
                f"the env reports info keys {sorted(RESERVED.intersection(info))}, which "
                "rewardlab's reward layers write (rewardlab.info_keys.RESERVED); rename them in "
                "the env"
            )


class RewardCore(ABC):
    """A reward layer's rule over a batch of transitions (an adapter feeds it).

    The adapter calls :meth:`reset` when every row starts an episode, :meth:`step` after
    each step, and :meth:`restart` for the rows a vector env auto-reset.

    Attributes:
        name: The layer's name in the info records.
        role: ``"reward"`` (a model paying the reward) or ``"potential"`` (shaping).
        model: The reward model the layer calls.
        replaces: True when the term replaces the reward below instead of adding to it.
        term_key: The info key that also holds the layer's term, if any.
    """

    name: str
    role: str
    replaces = False
    term_key: str | None = None

    def __init__(self, model: RewardModel, frames: Frames, action_space: spaces.Space[Any]):
        self.model = model
        self.frames = frames
        self.action_space = action_space
        self._checked = False

    def reset(self, obs: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:  # noqa: B027
        """Every row starts an episode at ``obs`` (reset infos ``infos``); nothing by default."""

    def restart(  # noqa: B027
        self, rows: np.ndarray, obs: np.ndarray, infos: Sequence[dict[str, Any]]
    ) -> None:
        """The ``rows`` auto-reset to ``obs`` (reset infos ``infos``); nothing by default."""

    @abstractmethod
    def term(self, step: Transitions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The layer's ``(B,)`` float64 term and its own info keys' ``(B,)`` values."""

    def step(self, step: Transitions) -> np.ndarray:
        """The ``(B,)`` float64 rewards the layer returns; records the step in the infos."""
        if not self._checked:  # an env's own info is checked once, not every step
            _check_unreserved(step.infos)
            self._checked = True
        term, terms = self.term(step)
        out = term.copy() if self.replaces else step.rewards + term
        _record(step.infos, self, step.rewards, term, out, terms)
        return out

    def _batch(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        infos: Sequence[Mapping[str, Any]],
    ) -> RewardOutput:
        model = self.model
        frames = None
        if model.needs_frames:
            frames = self.frames(infos)
            if frames.ndim != 4 or frames.shape[0] != len(infos) or frames.shape[-1] != 3:
                raise ValueError(f"frames must be (B, H, W, 3) uint8, got {frames.shape}")
        # Every row comes from the same step: built without RewardBatch's checks (hot path).
        batch = RewardBatch.of_rows(
            obs, action, next_obs, terminated, frames, batch_info(model, infos)
        )
        return run_model(model, batch)


class ModelCore(RewardCore):
    """Pays a reward model's reward of ``(s, a, s', terminated)``, replacing or added to the
    reward below; its components go in as ``reward_model/<name>``."""

    name = "model"
    role = "reward"

    def __init__(
        self,
        model: RewardModel,
        mode: str,
        frames: Frames,
        action_space: spaces.Space[Any],
    ) -> None:
        if not isinstance(model, RewardModel):
            raise TypeError(
                f"model must be a rewardlab RewardModel, got {type(model).__name__}; wrap a plain "
                "function in rewardlab.reward_models.FunctionReward"
            )
        if mode not in REWARD_MODES:
            raise ValueError(f"mode must be one of {list(REWARD_MODES)}, got {mode!r}")
        super().__init__(model, frames, action_space)
        self.replaces = mode == "replace"
        self._obs: np.ndarray | None = None

    def reset(self, obs: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:
        """Remember the first observations as the next ``s``."""
        self._obs = obs.copy()

    def term(self, step: Transitions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The model's reward; ``s`` of the next step is the observation returned."""
        assert self._obs is not None, "reset() before step()"
        out = self._batch(self._obs, step.action, step.next_obs, step.terminated, step.infos)
        self._obs = step.obs.copy()
        return out.reward, {MODEL_PREFIX + key: value for key, value in out.components.items()}


class PotentialCore(RewardCore):
    """Adds a term built from a potential ``Phi``, cached when each state is entered.

    With ``gamma``: ``F = gamma * Phi(s') - Phi(s)`` with ``Phi(s') = 0`` where the episode
    terminated (Ng, Harada & Russell 1999); ``Phi(s)`` is the value cached when ``s`` was
    entered (Devlin & Kudenko 2012), so the shaped return telescopes exactly. With ``scale``
    instead: the raw bonus ``scale * Phi(s')`` (the progress-bonus negative control).

    ``Phi`` is the potential model's reward on a batch with ``obs = next_obs =`` the state
    and zero actions, so a model reading anything but ``s'`` is not a potential. Infos get
    :data:`~rewardlab.info_keys.SHAPING` (the term), :data:`~rewardlab.info_keys.POTENTIAL`
    (``Phi(s')``, 0 where terminated for shaping; ``Phi(s_0)`` in reset infos) and the
    model's components of ``Phi(s')`` as ``potential_model/<name>``.
    """

    role = "potential"
    term_key = SHAPING

    def __init__(
        self,
        potential: Potential,
        frames: Frames,
        action_space: spaces.Space[Any],
        *,
        name: str,
        gamma: float | None = None,
        scale: float | None = None,
    ) -> None:
        if (gamma is None) == (scale is None):
            raise ValueError("a potential layer takes exactly one of gamma and scale")
        super().__init__(as_potential_model(potential), frames, action_space)
        self.name, self.gamma, self.scale = name, gamma, scale
        self._phi: np.ndarray | None = None
        self._placeholders: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def potentials(self, obs: np.ndarray, infos: Sequence[Mapping[str, Any]]) -> RewardOutput:
        """``Phi`` of the states whose observations are ``obs`` and infos ``infos``."""
        n = len(obs)
        placeholders = self._placeholders.get(n)
        if placeholders is None:  # zero actions, nothing terminated: built once per size
            space = self.action_space
            dtype = space.dtype if space.dtype is not None else np.float64
            placeholders = np.zeros((n, *(space.shape or ())), dtype=dtype), np.zeros(n, bool)
            for array in placeholders:
                array.flags.writeable = False
            self._placeholders[n] = placeholders
        return self._batch(obs, placeholders[0], obs, placeholders[1], infos)

    def reset(self, obs: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:
        """Cache ``Phi(s_0)`` of every row."""
        self._phi = self.potentials(obs, infos).reward.copy()
        for info, phi in zip(infos, self._phi.tolist(), strict=True):
            info[POTENTIAL] = phi

    def restart(self, rows: np.ndarray, obs: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:
        """After an auto-reset the next step leaves the new episode's first state."""
        assert self._phi is not None
        phi = self.potentials(obs, infos).reward
        self._phi[rows] = phi
        for info, value in zip(infos, phi.tolist(), strict=True):
            info[POTENTIAL] = value

    def term(self, step: Transitions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``gamma * Phi(s') - Phi(s)`` (or ``scale * Phi(s')``); caches ``Phi(s')``."""
        assert self._phi is not None, "reset() before step()"
        out = self.potentials(step.next_obs, step.infos)
        phi_next = out.reward
        if self.gamma is None:
            term = phi_next * self.scale
        else:
            if step.ended and step.terminated.any():  # a true terminal state: Phi = 0
                phi_next = np.where(step.terminated, 0.0, phi_next)
            # potentials.shaping_term, with its zeroing hoisted above: it is skipped on the
            # steps where nothing terminated, and Phi(s') goes to info zeroed.
            term = phi_next * self.gamma
            term -= self._phi
        self._phi = phi_next.copy()  # the model may hand back an array it reuses
        terms = {POTENTIAL: self._phi}
        for key, value in out.components.items():
            terms[POTENTIAL_MODEL_PREFIX + key] = value
        return term, terms
