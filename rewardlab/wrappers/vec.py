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

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rewardlab.reward_models.base import RewardBatch, RewardModel
from rewardlab.reward_models.potentials import shaping_term
from rewardlab.wrappers.frames import FRAME_KEY, CaptureFrames
from rewardlab.wrappers.reward import (
    COMPONENT_PREFIX,
    RewardMode,
    batch_info,
    check_model,
    run_model,
)
from rewardlab.wrappers.shaping import Potential, _check_gamma, check_potential

__all__ = ["VecModelReward", "VecPotentialShaping"]


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


def _wait_transitions(
    wrapper: VecEnvWrapper,
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Finish the inner step; return ``(obs, obs as array, rewards, dones, infos, next_obs,
    terminated)`` with the auto-reset undone in ``next_obs``, and pass ``reset_infos`` on."""
    obs, rews, dones, infos = wrapper.venv.step_wait()
    wrapper.reset_infos = list(wrapper.venv.reset_infos)
    arr = _array_obs(obs, type(wrapper).__name__)
    dones = np.asarray(dones, dtype=bool)
    next_obs, terminated = _final_transition(arr, dones, infos)
    return obs, arr, rews, dones, list(infos), next_obs, terminated


def _final_transition(
    obs: np.ndarray, dones: np.ndarray, infos: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(next_obs, terminated)`` with auto-reset undone: the true final obs where done."""
    next_obs = obs.copy()
    terminated = np.zeros(len(dones), dtype=bool)
    if not dones.any():  # the common step: nothing to undo
        return next_obs, terminated
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
    returned as float64.

    Args:
        venv: The SB3 vector env to wrap.
        model: The reward model.
        mode: ``"replace"`` returns the model's rewards, ``"add"`` the env's plus them.

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
        obs, arr, rews, dones, infos, next_obs, terminated = _wait_transitions(self)
        name = type(self.model).__name__
        batch = RewardBatch(
            obs=self._obs,
            action=self._actions,
            next_obs=next_obs,
            terminated=terminated,
            frames=_stack_frames(infos, name) if self.model.needs_frames else None,
            info=batch_info(self.model, infos),
        )
        out = run_model(self.model, batch)
        self._obs = arr.copy()
        # float64 holds every float32 exactly, so .tolist() gives the same Python floats as
        # float(rews[i]) without a numpy scalar per row.
        rews64 = np.asarray(rews).astype(np.float64)
        for info, r in zip(infos, rews64.tolist(), strict=True):
            info["original_reward"] = r
        for key, value in out.components.items():
            info_key = COMPONENT_PREFIX + key
            for info, v in zip(infos, value.tolist(), strict=True):
                info[info_key] = v
        new = out.reward.copy()
        if self.mode == "add":
            new += rews64
        return obs, new, dones, infos


class VecPotentialShaping(VecEnvWrapper):
    """Policy-invariant potential-based shaping over an SB3 vector env.

    The vector version of :class:`~rewardlab.wrappers.shaping.PotentialShaping`, with the
    same rewards: adds ``F = gamma * Phi(s') - Phi(s)`` (Ng, Harada & Russell 1999) with
    dynamic-potential caching (Devlin & Kudenko 2012), ``Phi(s') = 0`` only where the
    episode terminated, and on truncation the potential of the true final observation
    (``infos[i]["terminal_observation"]``; ``"progress"`` from the terminal step's
    ``infos[i]``). After a done, the cached ``Phi`` becomes that of the new episode's first
    state, read from ``venv.reset_infos[i]`` (``"progress"``, ``"frame"``) and the returned
    observation. Each vector step makes one potential call for all sub-envs, plus one for
    the sub-envs that just reset.

    Every ``infos[i]`` gets ``original_reward``, ``shaping`` (``F``) and ``potential``
    (``Phi(s')``, 0 where terminated). Rewards are returned as float64.

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
    """Read by :func:`check_shaping_gamma`: this layer's ``gamma`` must be the agent's."""

    def __init__(self, venv: VecEnv, potential: Potential, gamma: float) -> None:
        self.gamma = _check_gamma(gamma)
        check_potential(potential)
        if isinstance(potential, RewardModel) and potential.needs_frames:
            _require_frames(venv, type(potential).__name__)
        super().__init__(venv)
        self.potential = potential
        self._phi: np.ndarray | None = None

    def _potentials(self, obs: np.ndarray, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``Phi`` of the states whose observations are ``obs`` and infos ``infos``."""
        pot = self.potential
        if isinstance(pot, str):
            try:
                values = np.array([float(info["progress"]) for info in infos])
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
            values = np.asarray(pot(batch).reward, dtype=np.float64)
        else:
            fn: Callable[[np.ndarray], np.ndarray] = pot
            values = np.asarray(fn(obs), dtype=np.float64)
        # A finite sum means every value is finite (NaN/inf propagate); only an overflowing
        # sum falls through to the elementwise check.
        if values.shape != (len(obs),) or not (
            math.isfinite(values.sum()) or np.all(np.isfinite(values))
        ):
            raise ValueError(
                "the potential must return one finite value per observation, shape "
                f"({len(obs)},), got {values!r}"
            )
        return values

    def reset(self) -> VecEnvObs:
        """Reset every sub-env and cache ``Phi(s_0)``."""
        obs = self.venv.reset()
        self.reset_infos = list(self.venv.reset_infos)
        arr = _array_obs(obs, type(self).__name__)
        self._phi = self._potentials(arr, self.reset_infos)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env and add the shaping term.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self._phi is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        obs, arr, rews, dones, infos, next_obs, terminated = _wait_transitions(self)
        phi_next = self._potentials(next_obs, infos)
        if dones.any():
            # A true terminal state has no future: Phi = 0 (Ng et al. 1999); a truncated one
            # keeps the potential of its true final observation.
            phi_next = np.where(terminated, 0.0, phi_next)
            term = shaping_term(self._phi, phi_next, terminated, self.gamma)
            phi = phi_next.copy()
            done_idx = np.flatnonzero(dones)
            # After an auto-reset the next step leaves the new episode's first state.
            phi[done_idx] = self._potentials(
                arr[done_idx], [self.reset_infos[i] for i in done_idx.tolist()]
            )
        else:
            # Nothing terminated: shaping_term reduces to this, without its np.where.
            term = self.gamma * phi_next - self._phi
            phi = phi_next.copy()  # the potential may hand back an array it reuses
        self._phi = phi
        # float64 holds every float32 exactly, so .tolist() gives the same Python floats as
        # float(rews[i]) without a numpy scalar per row.
        rews64 = np.asarray(rews).astype(np.float64)
        for info, r, f, p in zip(
            infos, rews64.tolist(), term.tolist(), phi_next.tolist(), strict=True
        ):
            info["original_reward"] = r
            info["shaping"] = f
            info["potential"] = p
        return obs, rews64 + term, dones, infos
