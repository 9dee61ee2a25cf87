"""A reward model as a per-env Gymnasium wrapper.

:class:`ModelReward` calls a :class:`~rewardlab.reward_models.base.RewardModel` on a one-row
:class:`~rewardlab.reward_models.base.RewardBatch` ``(s, a, s', terminated)`` every step.
For many envs at once, one model call per step, use
:class:`~rewardlab.wrappers.vec.VecModelReward`; both give the same rewards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput

__all__ = [
    "COMPONENT_PREFIX",
    "POTENTIAL_COMPONENT_PREFIX",
    "REWARD_MODES",
    "ModelReward",
    "all_finite",
]

REWARD_MODES: tuple[str, ...] = ("replace", "add")
"""``"replace"``: the model's reward replaces the env's; ``"add"``: it is added to it."""

COMPONENT_PREFIX = "reward_model/"
"""Info key prefix of a model's named components: ``info["reward_model/<name>"]``."""

POTENTIAL_COMPONENT_PREFIX = "potential_model/"
"""Info key prefix of a shaping potential's named components (of ``Phi(s')``), kept apart
from the reward model's: ``info["potential_model/<name>"]``."""

RewardMode = Literal["replace", "add"]


def check_model(model: Any, mode: str) -> None:
    """Validate a reward model and a mode for the adapters.

    Raises:
        TypeError: If ``model`` is not a :class:`RewardModel`.
        ValueError: If ``mode`` is not in :data:`REWARD_MODES`.
    """
    if not isinstance(model, RewardModel):
        raise TypeError(
            f"model must be a rewardlab RewardModel, got {type(model).__name__}; wrap a plain "
            "function in a RewardModel subclass whose __call__ takes a RewardBatch"
        )
    if mode not in REWARD_MODES:
        raise ValueError(f"mode must be one of {list(REWARD_MODES)}, got {mode!r}")


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
    n = len(batch)
    if reward.shape != (n,):
        raise ValueError(
            f"{type(model).__name__} returned rewards of shape {reward.shape}, expected ({n},)"
        )
    if not all_finite(reward):
        raise ValueError(f"{type(model).__name__} returned non-finite rewards {reward!r}")
    components = {k: np.asarray(v, dtype=np.float64) for k, v in out.components.items()}
    for key, value in components.items():
        if value.shape != (n,):
            raise ValueError(
                f"{type(model).__name__} component {key!r} has shape {value.shape}, expected ({n},)"
            )
    return RewardOutput(reward=reward, components=components)


def batch_info(
    model: RewardModel, infos: Sequence[Mapping[str, Any]], where: str = "the env's step info"
) -> dict[str, np.ndarray]:
    """Stack the info keys ``model.needs_info`` of each row into ``(B,)`` arrays.

    Raises:
        KeyError: If a row lacks a key the model needs.
    """
    try:
        return {k: np.asarray([info[k] for info in infos]) for k in model.needs_info}
    except KeyError:
        # Only when a key is missing: name every missing key of the first row lacking one.
        for info in infos:
            missing = [k for k in model.needs_info if k not in info]
            if missing:
                raise KeyError(
                    f"{type(model).__name__} needs info keys {missing}, missing from {where}"
                ) from None
        raise


def require_rgb_array(env: gym.Env[Any, Any], what: str) -> None:
    """Raise unless ``env`` renders ``rgb_array`` frames.

    Raises:
        ValueError: Naming ``what`` needs frames and how to create the env.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(
            f"{what} needs frames, but the env's render_mode is {env.render_mode!r}; create "
            "the env with render_mode='rgb_array' (e.g. gym.make(env_id, "
            "render_mode='rgb_array'), or rewardlab.make_vec, which does it for you)"
        )


class ModelReward(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Rewards an env's transitions with a batched reward model, one row per step.

    Every step the model gets ``RewardBatch(obs=s, action=a, next_obs=s',
    terminated=[terminated], frames, info)`` with batch size 1. ``frames`` is
    ``env.render()`` of ``s'`` (taken right after the step, before any reset) when the
    model's ``needs_frames`` is set, and ``info`` holds the step info's keys listed in the
    model's ``needs_info``.

    Every step info gets ``original_reward`` (the wrapped env's reward: log it, not the
    model's, as the task metric; with ``Monitor`` inside this wrapper SB3 does so) and each
    model component as ``reward_model/<name>`` (see :data:`COMPONENT_PREFIX`).

    Args:
        env: The env to wrap.
        model: The reward model.
        mode: ``"replace"`` returns the model's reward, ``"add"`` the env's reward plus it.

    Raises:
        TypeError: If ``model`` is not a ``RewardModel``.
        ValueError: If ``mode`` is unknown, or the model needs frames and the env's
            ``render_mode`` is not ``"rgb_array"``.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> import rewardlab
        >>> from rewardlab.reward_models.base import RewardModel, RewardOutput
        >>> class Progress(RewardModel):
        ...     needs_info = ("progress",)
        ...     def __call__(self, batch):
        ...         return RewardOutput(np.asarray(batch.info["progress"], dtype=float))
        >>> env = ModelReward(gym.make("rewardlab/GridEmpty-v0"), Progress())
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(2)
        >>> reward == info["progress"], info["original_reward"]
        (True, 0.0)
    """

    def __init__(
        self, env: gym.Env[Any, Any], model: RewardModel, mode: RewardMode = "replace"
    ) -> None:
        # Recorded by reference: a deep copy would clone the model (a CLIP encoder: ~600 MB).
        gym.utils.RecordConstructorArgs.__init__(
            self, model=model, mode=mode, _disable_deepcopy=True
        )
        gym.Wrapper.__init__(self, env)
        check_model(model, mode)
        if model.needs_frames:
            require_rgb_array(env, type(model).__name__)
        self.model = model
        self.mode = mode
        self._obs: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and remember the first observation as the next ``s``."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and reward ``(s, a, s')`` with the model.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        frames = np.asarray(self.env.render())[None] if self.model.needs_frames else None
        batch = RewardBatch(
            obs=self._obs[None],
            action=np.asarray(action)[None],
            next_obs=np.asarray(obs)[None],
            terminated=np.array([bool(terminated)]),
            frames=frames,
            info=batch_info(self.model, [info]),
        )
        out = run_model(self.model, batch)
        self._obs = np.asarray(obs)
        info["original_reward"] = float(reward)
        for key, value in out.components.items():
            info[COMPONENT_PREFIX + key] = float(value[0])
        new = float(out.reward[0])
        if self.mode == "add":
            new += float(reward)
        return obs, new, terminated, truncated, info
