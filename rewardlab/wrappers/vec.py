"""Reward layers as SB3 ``VecEnvWrapper`` layers: a reward layer's core on every sub-env.

:class:`VecRewardLayer` runs the same :class:`~rewardlab.wrappers.core.RewardCore` as the
per-env wrappers, on all sub-envs at once: ONE batched model call per vector step, and the
same rewards as the per-env layer step by step across episode boundaries. It undoes SB3's
auto-reset conventions:

- ``dones[i]`` is ``terminated or truncated``; ``terminated`` is recovered as
  ``done and not infos[i]["TimeLimit.truncated"]``.
- After a done the returned ``obs[i]`` is already the next episode's first observation; the
  true final one, used as ``s'``, is ``infos[i]["terminal_observation"]``, and the new
  episode's reset info is ``venv.reset_infos[i]``.
- Frames come from ``infos[i]["frame"]`` written by
  :class:`~rewardlab.wrappers.frames.CaptureFrames` inside each sub-env, so the last frame
  of an episode is never replaced by the next episode's first.

Only array observations (``Box``, ``Discrete``, ...) are supported, not ``Dict`` ones.
The layers pass the inner ``reset_infos`` on as their own, so they can be stacked; a layer
that does not (e.g. SB3's ``VecNormalize``) must go outside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rewardlab.info_keys import FRAME
from rewardlab.reward_models.base import RewardModel
from rewardlab.reward_models.potentials import (
    check_discount,
    check_mismatched_discount,
    check_scale,
)
from rewardlab.wrappers.core import (
    ModelCore,
    Potential,
    PotentialCore,
    RewardCore,
    RewardMode,
    Transitions,
)
from rewardlab.wrappers.frames import CaptureFrames
from rewardlab.wrappers.timing import StepTimes

__all__ = [
    "VecMismatchedShaping",
    "VecModelReward",
    "VecPotentialShaping",
    "VecProgressBonus",
    "VecRewardLayer",
    "reward_diagnostics",
    "reward_layers",
]


def _array_obs(obs: VecEnvObs, who: str) -> np.ndarray:
    """The batch's observations as one ``(B, ...)`` array; a ``Dict`` observation (goal-
    conditioned envs: Fetch) reaches reward models flattened, its keys in sorted order."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[k]).reshape(len(obs[k]), -1) for k in sorted(obs)], 1)
    if isinstance(obs, tuple):
        raise TypeError(f"{who} supports array and dict observations, got a tuple")
    return np.asarray(obs)


def _stack_frames(infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
    try:
        return np.stack([np.asarray(info[FRAME]) for info in infos])
    except KeyError:
        raise KeyError(
            f"the reward layer needs infos[i][{FRAME!r}] from CaptureFrames inside each sub-env"
        ) from None


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
        final = infos[i]["terminal_observation"]
        if isinstance(final, dict):  # flattened as _array_obs flattens the batch
            final = np.concatenate([np.ravel(final[k]) for k in sorted(final)])
        next_obs[i] = final
        terminated[i] = not infos[i].get("TimeLimit.truncated", False)
    return next_obs, terminated


class VecRewardLayer(VecEnvWrapper):
    """A reward layer over an SB3 vector env: runs :attr:`core` on all sub-envs each step.

    Row ``i`` of a step is ``(s_i, a_i, s'_i, terminated_i)``: ``s'_i`` is
    ``infos[i]["terminal_observation"]`` where ``dones[i]``, ``terminated_i`` is
    ``dones[i] and not infos[i]["TimeLimit.truncated"]``. A model with ``needs_frames``
    reads ``infos[i]["frame"]`` (put :class:`CaptureFrames` in each sub-env). Every
    ``infos[i]`` gets the keys of :mod:`rewardlab.info_keys` (``env_reward`` is the inner
    reward as SB3 passed it: float32 in ``DummyVecEnv``). Rewards are returned as float64.
    Closing the env closes the layer's model.

    Attributes:
        core: The layer's rule.
        times: Median seconds of the inner step and of the layer's work
            (:class:`~rewardlab.wrappers.timing.StepTimes`), e.g. for a reward budget.
    """

    core: RewardCore

    def __init__(self, venv: VecEnv, model: RewardModel) -> None:
        if model.needs_frames and not all(venv.env_is_wrapped(CaptureFrames)):
            raise ValueError(
                f"{type(model).__name__} needs frames, but the sub-envs are not wrapped in "
                "CaptureFrames; build each sub-env as CaptureFrames(Monitor(gym.make(env_id, "
                "render_mode='rgb_array'))), or use rewardlab.make_vec_env, which does it for you"
            )
        super().__init__(venv)
        self.times = StepTimes()
        # Most steps end no episode: they share one read-only all-False ``terminated``.
        self._not_terminated = np.zeros(venv.num_envs, dtype=bool)
        self._not_terminated.flags.writeable = False
        self._actions: np.ndarray | None = None
        self._started = False

    def reset(self) -> VecEnvObs:
        """Reset every sub-env and start the layer's episodes."""
        obs = self.venv.reset()
        self.reset_infos = self.venv.reset_infos
        self.core.reset(_array_obs(obs, type(self).__name__), self.reset_infos)
        self._started = True
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep ``actions`` for the batch and pass them on."""
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env and pay the layer's reward.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if not self._started or self._actions is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        start = perf_counter()
        obs, rews, dones, infos = self.venv.step_wait()
        stepped = perf_counter()
        self.reset_infos = self.venv.reset_infos
        arr = obs if type(obs) is np.ndarray else _array_obs(obs, type(self).__name__)
        dones = np.asarray(dones, dtype=bool)
        if not isinstance(infos, list):  # SB3's VecEnvs return a list already
            infos = list(infos)
        # float64 holds every float32 exactly: the same Python floats as float(rews[i]).
        rewards = np.asarray(rews, dtype=np.float64)
        ended = True in dones.tolist()  # cheaper than dones.any() on a small batch
        if ended:
            next_obs, terminated = _final_transition(arr, dones, infos)
        else:  # the common step: nothing to undo
            next_obs, terminated = arr, self._not_terminated
        step = Transitions(arr, self._actions, next_obs, terminated, rewards, infos, ended)
        out = self.core.step(step)
        if ended:
            done = np.flatnonzero(dones)
            self.core.restart(done, arr[done], [self.reset_infos[i] for i in done.tolist()])
        # The layer's cost includes gathering its batch: what it adds to a step.
        self.times.add(stepped - start, perf_counter() - stepped)
        return obs, out, dones, infos

    def close(self) -> None:
        """Close the vector env, then the model's resources (a reward program's sandbox)."""
        try:
            self.venv.close()
        finally:
            self.core.model.close()


class VecModelReward(VecRewardLayer):
    """The vector version of :class:`~rewardlab.wrappers.reward.ModelReward`: the same
    rewards and info keys, with one batched model call per vector step; ``s_i`` is the
    observation sub-env ``i`` returned last (after a done, the new episode's first).

    Args:
        venv: The SB3 vector env to wrap.
        model, mode: As for ``ModelReward``.

    Raises:
        TypeError, ValueError: As ``ModelReward``; ValueError also when the model needs
            frames and the sub-envs are not wrapped in :class:`CaptureFrames`.
    """

    def __init__(self, venv: VecEnv, model: RewardModel, mode: RewardMode = "replace") -> None:
        self.core = ModelCore(model, mode, _stack_frames, venv.action_space)
        super().__init__(venv, model)
        self.model = model
        self.mode = mode


class _VecPotentialLayer(VecRewardLayer):
    """A vector layer around a :class:`~rewardlab.wrappers.core.PotentialCore` named ``name``
    (the per-env twin is :class:`~rewardlab.wrappers.shaping._PotentialLayer`)."""

    def __init__(self, venv: VecEnv, potential: Potential, name: str, **term: float) -> None:
        self.potential = potential
        self.core = PotentialCore(potential, _stack_frames, venv.action_space, name=name, **term)
        super().__init__(venv, self.core.model)


class VecPotentialShaping(_VecPotentialLayer):
    """The vector version of :class:`~rewardlab.wrappers.shaping.PotentialShaping`: the same
    rewards and info keys. After a done, the cached ``Phi`` is that of the new episode's
    first state, read from ``venv.reset_infos[i]`` and the returned observation; a potential
    model with ``needs_frames`` reads :class:`CaptureFrames`' frames.

    Args:
        venv: The SB3 vector env to wrap.
        potential, gamma: As for ``PotentialShaping``.

    Raises:
        ValueError: As ``PotentialShaping``, or a frame-reading model over sub-envs without
            :class:`CaptureFrames`.
    """

    enforces_policy_invariance = True
    """Read by :func:`~rewardlab.wrappers.shaping.check_shaping_gamma`."""

    def __init__(self, venv: VecEnv, potential: Potential, gamma: float) -> None:
        self.gamma = check_discount(gamma)
        super().__init__(venv, potential, "shaping", gamma=self.gamma)


class VecMismatchedShaping(_VecPotentialLayer):
    """NEGATIVE CONTROL: the vector version of
    :class:`~rewardlab.wrappers.shaping.MismatchedShaping` (shaping with a discount other
    than the agent's), with the same rewards.

    Args:
        venv: The SB3 vector env to wrap.
        potential, gamma, agent_gamma: As for ``MismatchedShaping``.

    Raises:
        ValueError: If a discount is not in ``(0, 1]`` or the two are equal.
    """

    enforces_policy_invariance = False

    def __init__(
        self, venv: VecEnv, potential: Potential, gamma: float, agent_gamma: float
    ) -> None:
        self.agent_gamma = check_mismatched_discount(gamma, agent_gamma)
        self.gamma = check_discount(gamma)
        super().__init__(venv, potential, "mismatched_shaping", gamma=self.gamma)


class VecProgressBonus(_VecPotentialLayer):
    """NEGATIVE CONTROL: the vector version of :class:`~rewardlab.wrappers.shaping.ProgressBonus`
    (the raw potential ``scale * Phi(s')`` added to every reward), with the same rewards.

    Args:
        venv: The SB3 vector env to wrap.
        potential, scale: As for ``ProgressBonus``.

    Raises:
        ValueError: If ``scale`` is not finite or ``potential`` is an unknown name.
    """

    enforces_policy_invariance = False

    def __init__(self, venv: VecEnv, potential: Potential, scale: float = 1.0) -> None:
        self.scale = check_scale(scale)
        super().__init__(venv, potential, "progress_bonus", scale=self.scale)


def reward_layers(venv: VecEnv) -> list[VecRewardLayer]:
    """The reward layers over ``venv`` (its ``VecEnvWrapper`` chain), outermost first."""
    found = []
    layer: VecEnv = venv
    while isinstance(layer, VecEnvWrapper):
        if isinstance(layer, VecRewardLayer):
            found.append(layer)
        layer = layer.venv
    return found


def reward_diagnostics(venv: VecEnv) -> dict[str, dict[str, Any]]:
    """The :meth:`~rewardlab.reward_models.base.RewardModel.diagnostics` of the models in the
    reward layers over ``venv`` that report any, by the layer's role (``"reward"`` for a
    model layer, ``"potential"`` for a shaping layer), outermost first; a second layer of the
    same role is ``"reward_2"``."""
    found: dict[str, dict[str, Any]] = {}
    for layer in reward_layers(venv):
        if report := layer.core.model.diagnostics():
            role = key = layer.core.role
            n = 1
            while key in found:
                n += 1
                key = f"{role}_{n}"
            found[key] = report
    return found
