"""Reward models and potential-based shaping as SB3 ``VecEnvWrapper`` layers.

Both adapters make ONE batched call per vector step for all sub-envs and agree step by step
with their per-env counterparts (:class:`~rewardlab.wrappers.reward.ModelReward`,
:class:`~rewardlab.wrappers.shaping.PotentialShaping`) across episode boundaries. They undo
SB3's auto-reset conventions:

- ``dones[i]`` is ``terminated or truncated``; ``terminated`` is recovered as
  ``done and not infos[i]["TimeLimit.truncated"]``.
- After a done the returned ``obs[i]`` is already the next episode's first observation; the
  true final one, used as ``s'``, is ``infos[i]["terminal_observation"]``, and the new
  episode's reset info is ``venv.reset_infos[i]``.
- Frames come from ``infos[i]["frame"]`` written by
  :class:`~rewardlab.wrappers.frames.CaptureFrames` inside each sub-env, so the last frame
  of an episode is never replaced by the next episode's first.

Only array observations (``Box``, ``Discrete``, ...) are supported, not ``Dict`` ones.
Both layers copy the inner ``reset_infos`` to their own, so they can be stacked; a layer
that does not (e.g. SB3's ``VecNormalize``) must go outside them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, NamedTuple

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rewardlab.reward_models.base import RewardBatch, RewardModel
from rewardlab.wrappers.frames import FRAME_KEY, CaptureFrames
from rewardlab.wrappers.reward import (
    COMPONENT_PREFIX,
    POTENTIAL_COMPONENT_PREFIX,
    RewardMode,
    all_finite,
    batch_info,
    check_model,
    run_model,
)
from rewardlab.wrappers.shaping import (
    Potential,
    _check_gamma,
    _check_mismatch,
    _check_scale,
    check_potential,
)
from rewardlab.wrappers.timing import StepTimes

__all__ = [
    "VecMismatchedShaping",
    "VecModelReward",
    "VecPotentialShaping",
    "VecProgressBonus",
    "reward_diagnostics",
]


def _array_obs(obs: VecEnvObs, who: str) -> np.ndarray:
    if isinstance(obs, (dict, tuple)):
        raise TypeError(f"{who} supports array observations only, got {type(obs).__name__}")
    return np.asarray(obs)


def _require_frames(venv: VecEnv, who: str) -> None:
    if not all(venv.env_is_wrapped(CaptureFrames)):
        raise ValueError(
            f"{who} needs frames, but the sub-envs are not wrapped in CaptureFrames; build each "
            "sub-env as CaptureFrames(Monitor(gym.make(env_id, render_mode='rgb_array'))), or "
            "use rewardlab.make_vec, which does it for you"
        )


def _stack_frames(infos: Sequence[Mapping[str, Any]], who: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(info[FRAME_KEY]) for info in infos])
    except KeyError:
        raise KeyError(
            f"{who} needs infos[i][{FRAME_KEY!r}] from CaptureFrames inside each sub-env"
        ) from None


class _Step(NamedTuple):
    """An inner vector step with SB3's auto-reset undone."""

    obs: VecEnvObs  # as returned: after a done, the next episode's first observation
    arr: np.ndarray  # ``obs`` as an array
    rews: np.ndarray
    dones: np.ndarray  # bool
    infos: list[dict[str, Any]]
    next_obs: np.ndarray  # the true ``s'``: ``arr`` itself when nothing is done
    terminated: np.ndarray  # bool; read-only when nothing is done
    any_done: bool


_NOT_TERMINATED: dict[int, np.ndarray] = {}


def _not_terminated(n: int) -> np.ndarray:
    """A shared read-only ``(n,)`` all-False array: most steps end no episode."""
    flags = _NOT_TERMINATED.get(n)
    if flags is None:
        flags = _NOT_TERMINATED[n] = np.zeros(n, dtype=bool)
        flags.flags.writeable = False
    return flags


def _wait_transitions(wrapper: VecEnvWrapper) -> _Step:
    """Finish the inner step, undo the auto-reset in ``next_obs`` and pass ``reset_infos`` on."""
    obs, rews, dones, infos = wrapper.venv.step_wait()
    wrapper.reset_infos = list(wrapper.venv.reset_infos)
    arr = _array_obs(obs, type(wrapper).__name__)
    dones = np.asarray(dones, dtype=bool)
    infos = list(infos)
    if not np.count_nonzero(dones):  # the common step: nothing to undo
        return _Step(obs, arr, rews, dones, infos, arr, _not_terminated(len(dones)), False)
    next_obs, terminated = _final_transition(arr, dones, infos)
    return _Step(obs, arr, rews, dones, infos, next_obs, terminated, True)


def _final_transition(
    obs: np.ndarray, dones: np.ndarray, infos: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(next_obs, terminated)`` with auto-reset undone: the true final obs where done."""
    next_obs = obs.copy()
    terminated = np.zeros(len(dones), dtype=bool)
    for i in np.flatnonzero(dones).tolist():
        if "terminal_observation" not in infos[i]:
            raise KeyError(
                f"sub-env {i} is done but infos[{i}] has no 'terminal_observation'; wrap an SB3 "
                "VecEnv (DummyVecEnv, SubprocVecEnv) that records it"
            )
        next_obs[i] = infos[i]["terminal_observation"]
        terminated[i] = not infos[i].get("TimeLimit.truncated", False)
    return next_obs, terminated


class VecModelReward(VecEnvWrapper):
    """Rewards every sub-env's transition with one batched reward-model call per step.

    The vector version of :class:`~rewardlab.wrappers.reward.ModelReward`, with the same
    rewards. Row ``i`` of the batch is ``(s_i, a_i, s'_i, terminated_i)``: ``s'_i`` is
    ``infos[i]["terminal_observation"]`` where ``dones[i]``, ``terminated_i`` is
    ``dones[i] and not infos[i]["TimeLimit.truncated"]``, and ``s_i`` is the observation
    the sub-env returned last (after a done, the new episode's first). A model with
    ``needs_frames`` reads ``infos[i]["frame"]`` (put :class:`CaptureFrames` in each sub-env).

    Every ``infos[i]`` gets ``original_reward`` (the inner reward, as SB3 passed it: float32
    in ``DummyVecEnv``) and the model's components as ``reward_model/<name>``. Rewards are
    returned as float64. :attr:`times` measures each step's inner env step and model call.

    Args:
        venv: The SB3 vector env to wrap.
        model: The reward model.
        mode: ``"replace"`` returns the model's rewards, ``"add"`` the env's plus them.

    Attributes:
        times: Median seconds of the inner step and of the model call
            (:class:`~rewardlab.wrappers.timing.StepTimes`), e.g. for a reward budget.

    Raises:
        TypeError: If ``model`` is not a ``RewardModel``.
        ValueError: If ``mode`` is unknown, or the model needs frames and the sub-envs are
            not wrapped in :class:`CaptureFrames`.
    """

    def __init__(self, venv: VecEnv, model: RewardModel, mode: RewardMode = "replace") -> None:
        check_model(model, mode)
        if model.needs_frames:
            _require_frames(venv, type(model).__name__)
        super().__init__(venv)
        self.model = model
        self.mode = mode
        self.times = StepTimes()
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        """Reset every sub-env and remember the first observations."""
        obs = self.venv.reset()
        self.reset_infos = list(self.venv.reset_infos)
        self._obs = _array_obs(obs, type(self).__name__).copy()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep ``actions`` for the batch and pass them on."""
        self._actions = np.asarray(actions).copy()
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env and reward the transitions with one model call.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self._obs is None or self._actions is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        start = perf_counter()
        step = _wait_transitions(self)
        stepped = perf_counter()
        infos = step.infos
        name = type(self.model).__name__
        batch = RewardBatch(
            obs=self._obs,
            action=self._actions,
            next_obs=step.next_obs,
            terminated=step.terminated,
            frames=_stack_frames(infos, name) if self.model.needs_frames else None,
            info=batch_info(self.model, infos),
        )
        out = run_model(self.model, batch)
        # The reward's cost includes gathering its batch: what the layer adds to a step.
        self.times.add(stepped - start, perf_counter() - stepped)
        self._obs = step.arr.copy()
        # float64 holds every float32 exactly, so .tolist() gives the same Python floats as
        # float(rews[i]) without a numpy scalar per row.
        rews64 = np.asarray(step.rews).astype(np.float64)
        for info, r in zip(infos, rews64.tolist(), strict=True):
            info["original_reward"] = r
        _put_components(infos, out.components)
        new = out.reward.copy()
        if self.mode == "add":
            new += rews64
        return step.obs, new, step.dones, infos

    def close(self) -> None:
        """Close the vector env, then the model's resources (a reward program's sandbox)."""
        try:
            self.venv.close()
        finally:
            _close_model(self.model)


def _put_components(
    infos: Sequence[dict[str, Any]],
    components: Mapping[str, np.ndarray],
    prefix: str = COMPONENT_PREFIX,
) -> None:
    """A model's components of each row as ``infos[i][prefix + name]``."""
    for key, value in components.items():
        info_key = prefix + key
        for info, v in zip(infos, value.tolist(), strict=True):
            info[info_key] = v


def reward_diagnostics(venv: VecEnv) -> dict[str, dict[str, Any]]:
    """The :meth:`~rewardlab.reward_models.base.RewardModel.diagnostics` of the reward models
    in the layers over ``venv`` that report any: ``"reward"`` (:class:`VecModelReward`) and
    ``"potential"`` (the shaping layers), outermost first; a second layer of the same role is
    ``"reward_2"``."""
    found: dict[str, dict[str, Any]] = {}
    layer: VecEnv = venv
    while isinstance(layer, VecEnvWrapper):
        role, model = "", None
        if isinstance(layer, VecModelReward):
            role, model = "reward", layer.model
        elif isinstance(layer, _VecPotentialLayer) and isinstance(layer.potential, RewardModel):
            role, model = "potential", layer.potential
        if model is not None and (report := model.diagnostics()):
            key, n = role, 1
            while key in found:
                n += 1
                key = f"{role}_{n}"
            found[key] = report
        layer = layer.venv
    return found


def _close_model(model: object) -> None:
    # Models holding processes (ProgramReward's sandbox worker) expose close().
    close = getattr(model, "close", None)
    if callable(close):
        close()


class _VecPotentialLayer(VecEnvWrapper, ABC):
    """Adds a term computed from cached potentials ``Phi(s)`` and ``Phi(s')`` to the reward.

    Each vector step makes one potential call for all sub-envs, plus one for the sub-envs
    that just reset. ``Phi(s')`` on truncation is the potential of the true final observation
    (``infos[i]["terminal_observation"]``; ``"progress"`` from the terminal step's
    ``infos[i]``). After a done, the cached ``Phi`` becomes that of the new episode's first
    state, read from ``venv.reset_infos[i]`` (``"progress"``, ``"frame"``) and the returned
    observation. Every ``infos[i]`` gets ``original_reward``, ``shaping`` (the term) and
    ``potential`` (``Phi(s')``, 0 where terminated when :attr:`zero_terminal`); a reward-model
    potential's components of ``Phi(s')`` (before that zeroing) go in as
    ``potential_model/<name>`` (:class:`VecModelReward` writes ``reward_model/<name>``). Rewards
    are returned as float64. :attr:`times` measures each step's inner env step and its ``Phi(s')``
    call (:class:`~rewardlab.wrappers.timing.StepTimes`).
    """

    enforces_policy_invariance = False
    """Read by :func:`check_shaping_gamma`: True when ``gamma`` must be the agent's."""

    zero_terminal = True
    """``Phi(s') = 0`` where the episode terminated (a true terminal state has no future)."""

    def __init__(self, venv: VecEnv, potential: Potential) -> None:
        check_potential(potential)
        if isinstance(potential, RewardModel) and potential.needs_frames:
            _require_frames(venv, type(potential).__name__)
        super().__init__(venv)
        self.potential = potential
        self.times = StepTimes()
        self._phi: np.ndarray | None = None

    def close(self) -> None:
        """Close the vector env, then the potential's resources (a reward program's sandbox)."""
        try:
            self.venv.close()
        finally:
            _close_model(self.potential)

    @abstractmethod
    def _term(self, phi: np.ndarray, phi_next: np.ndarray) -> np.ndarray:
        """The ``(B,)`` term added to the reward, from ``Phi(s)`` and ``Phi(s')``."""

    def _potentials(self, obs: np.ndarray, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``Phi`` of the states whose observations are ``obs`` and infos ``infos``."""
        return self._potentials_and_components(obs, infos)[0]

    def _potentials_and_components(
        self, obs: np.ndarray, infos: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, Mapping[str, np.ndarray]]:
        """``Phi`` as :meth:`_potentials`, with a reward model's components of it."""
        components: Mapping[str, np.ndarray] = {}
        pot = self.potential
        if isinstance(pot, str):
            try:
                values = np.array([info["progress"] for info in infos], dtype=np.float64)
            except KeyError:
                raise KeyError(
                    "potential 'progress' reads info['progress'], which this env does not "
                    "report (or a wrapper between this one and the SB3 VecEnv drops its "
                    "reset_infos); use a rewardlab env or pass a callable potential"
                ) from None
        elif isinstance(pot, RewardModel):
            space = self.action_space
            name = type(pot).__name__
            batch = RewardBatch(
                obs=obs,
                action=np.zeros((len(obs), *(space.shape or ())), dtype=space.dtype or np.float64),
                next_obs=obs,
                terminated=np.zeros(len(obs), dtype=bool),
                frames=_stack_frames(infos, name) if pot.needs_frames else None,
                info=batch_info(pot, infos),
            )
            out = pot(batch)
            values = np.asarray(out.reward, dtype=np.float64)
            components = out.components
        else:
            fn: Callable[[np.ndarray], np.ndarray] = pot
            values = np.asarray(fn(obs), dtype=np.float64)
        if values.shape != (len(obs),) or not all_finite(values):
            raise ValueError(
                "the potential must return one finite value per observation, shape "
                f"({len(obs)},), got {values!r}"
            )
        return values, components

    def reset(self) -> VecEnvObs:
        """Reset every sub-env and cache ``Phi(s_0)``."""
        obs = self.venv.reset()
        self.reset_infos = list(self.venv.reset_infos)
        arr = _array_obs(obs, type(self).__name__)
        self._phi = self._potentials(arr, self.reset_infos)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env and add the term.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self._phi is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        start = perf_counter()
        step = _wait_transitions(self)
        stepped = perf_counter()
        phi_next, components = self._potentials_and_components(step.next_obs, step.infos)
        self.times.add(stepped - start, perf_counter() - stepped)
        _put_components(step.infos, components, POTENTIAL_COMPONENT_PREFIX)
        if step.any_done and self.zero_terminal:
            # Ng et al. (1999): Phi = 0 in a true terminal state; a truncated one keeps the
            # potential of its true final observation.
            phi_next = np.where(step.terminated, 0.0, phi_next)
        term = self._term(self._phi, phi_next)
        phi = phi_next.copy()  # the potential may hand back an array it reuses
        if step.any_done:
            # After an auto-reset the next step leaves the new episode's first state.
            done_idx = np.flatnonzero(step.dones)
            phi[done_idx] = self._potentials(
                step.arr[done_idx], [self.reset_infos[i] for i in done_idx.tolist()]
            )
        self._phi = phi
        # float64 holds every float32 exactly, so .tolist() gives the same Python floats as
        # float(rews[i]) without a numpy scalar per row.
        rews64 = np.asarray(step.rews).astype(np.float64)
        for info, r, f, p in zip(
            step.infos, rews64.tolist(), term.tolist(), phi_next.tolist(), strict=True
        ):
            info["original_reward"] = r
            info["shaping"] = f
            info["potential"] = p
        rews64 += term
        return step.obs, rews64, step.dones, step.infos


class VecPotentialShaping(_VecPotentialLayer):
    """Policy-invariant potential-based shaping over an SB3 vector env.

    The vector version of :class:`~rewardlab.wrappers.shaping.PotentialShaping`, with the
    same rewards: adds ``F = gamma * Phi(s') - Phi(s)`` (Ng, Harada & Russell 1999) with
    dynamic-potential caching (Devlin & Kudenko 2012) and ``Phi(s') = 0`` only where the
    episode terminated (see :class:`_VecPotentialLayer` for the auto-reset handling and the
    info keys).

    Args:
        venv: The SB3 vector env to wrap.
        potential: ``"progress"``, a callable ``(B, *obs_shape) -> (B,)`` or a
            ``RewardModel`` read as ``Phi(s')`` (called with ``obs = next_obs = s'`` and zero
            actions; with ``needs_frames`` it reads :class:`CaptureFrames`' frames).
        gamma: Shaping discount in ``(0, 1]``, equal to the agent's: check it with
            :func:`~rewardlab.wrappers.shaping.check_shaping_gamma`.

    Raises:
        ValueError: If ``gamma`` is not in ``(0, 1]``, ``potential`` is an unknown name, or
            a frame-reading model wraps sub-envs without :class:`CaptureFrames`.
    """

    enforces_policy_invariance = True

    def __init__(self, venv: VecEnv, potential: Potential, gamma: float) -> None:
        self.gamma = _check_gamma(gamma)
        super().__init__(venv, potential)

    def _term(self, phi: np.ndarray, phi_next: np.ndarray) -> np.ndarray:
        # phi_next is already 0 where terminated: this is shaping_term without its np.where.
        term = phi_next * self.gamma
        term -= phi
        return term


class VecMismatchedShaping(VecPotentialShaping):
    """NEGATIVE CONTROL: :class:`VecPotentialShaping` with a discount other than the agent's.

    The vector version of :class:`~rewardlab.wrappers.shaping.MismatchedShaping`, with the
    same rewards: ``F = gamma * Phi(s') - Phi(s)`` where ``gamma != agent_gamma``, so the
    invariance of Ng, Harada & Russell (1999) fails. :func:`check_shaping_gamma` skips it.

    Args:
        venv: The SB3 vector env to wrap.
        potential: As for :class:`VecPotentialShaping`.
        gamma: The (wrong) shaping discount, in ``(0, 1]``.
        agent_gamma: The agent's discount, in ``(0, 1]``, different from ``gamma``.

    Raises:
        ValueError: If a discount is not in ``(0, 1]`` or the two are equal.
    """

    enforces_policy_invariance = False

    def __init__(
        self, venv: VecEnv, potential: Potential, gamma: float, agent_gamma: float
    ) -> None:
        self.agent_gamma = _check_mismatch(gamma, agent_gamma)
        super().__init__(venv, potential, gamma)


class VecProgressBonus(_VecPotentialLayer):
    """NEGATIVE CONTROL: adds the raw potential ``scale * Phi(s')`` to every reward.

    The vector version of :class:`~rewardlab.wrappers.shaping.ProgressBonus`, with the same
    rewards: ``Phi(s')`` of the state entered, terminal states included. Rewarding progress
    itself rather than its potential difference changes the optimal policy; it exists to
    be compared against :class:`VecPotentialShaping`.

    Args:
        venv: The SB3 vector env to wrap.
        potential: As for :class:`VecPotentialShaping`.
        scale: Multiplier of the bonus.

    Raises:
        ValueError: If ``scale`` is not finite or ``potential`` is an unknown name.
    """

    zero_terminal = False

    def __init__(self, venv: VecEnv, potential: Potential, scale: float = 1.0) -> None:
        self.scale = _check_scale(scale)
        super().__init__(venv, potential)

    def _term(self, phi: np.ndarray, phi_next: np.ndarray) -> np.ndarray:
        return phi_next * self.scale
