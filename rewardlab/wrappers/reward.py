"""Reward layers as per-env Gymnasium wrappers: a reward layer's core on a batch of one.

:class:`RewardLayer` runs a :class:`~rewardlab.wrappers.core.RewardCore` on every step;
:class:`ModelReward` pays a reward model's reward. The shaping layers are in
:mod:`rewardlab.wrappers.shaping`; the same cores run on SB3 vector envs in
:mod:`rewardlab.wrappers.vec`, so a per-env layer and its vector twin give the same rewards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.info_keys import MODEL_PREFIX, POTENTIAL_MODEL_PREFIX
from rewardlab.reward_models.base import RewardModel
from rewardlab.wrappers.core import (
    REWARD_MODES,
    ModelCore,
    RewardCore,
    RewardMode,
    Transitions,
    all_finite,
)

__all__ = [
    "COMPONENT_PREFIX",
    "POTENTIAL_COMPONENT_PREFIX",
    "REWARD_MODES",
    "ModelReward",
    "RewardLayer",
    "all_finite",
]

COMPONENT_PREFIX = MODEL_PREFIX
"""Alias of :data:`rewardlab.info_keys.MODEL_PREFIX`."""

POTENTIAL_COMPONENT_PREFIX = POTENTIAL_MODEL_PREFIX
"""Alias of :data:`rewardlab.info_keys.POTENTIAL_MODEL_PREFIX`."""


def require_rgb_array(env: gym.Env[Any, Any], what: str) -> None:
    """Raise unless ``env`` renders ``rgb_array`` frames.

    Raises:
        ValueError: Naming ``what`` needs frames and how to create the env.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(
            f"{what} needs frames, but the env's render_mode is {env.render_mode!r}; create "
            "the env with render_mode='rgb_array' (e.g. gym.make(env_id, "
            "render_mode='rgb_array'), or rewardlab.make_vec_env, which does it for you)"
        )


class RewardLayer(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """A reward layer over one env: runs :attr:`core` on a batch of one every step.

    Every step info gets the keys of :mod:`rewardlab.info_keys`: ``env_reward`` (and its
    alias ``original_reward``, the env's own reward whatever is stacked above: log it, not
    the reward returned, as the task metric), this layer's record in ``reward_layers`` and
    the layer's own terms. Closing the env closes the layer's model.

    Subclasses set :attr:`core` in their constructor.
    """

    core: RewardCore

    def __init__(self, env: gym.Env[Any, Any], model: RewardModel) -> None:
        gym.Wrapper.__init__(self, env)
        if model.needs_frames:
            require_rgb_array(env, type(model).__name__)
        self._started = False

    def _frames(self, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        # No auto-reset in a single env: the state rendered is the one just entered.
        return np.asarray(self.env.render())[None]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start the layer's episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.core.reset(np.asarray(obs)[None], [info])
        self._started = True
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and pay the layer's reward.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        row = np.asarray(obs)[None]
        rewards = self.core.step(
            Transitions(
                row,
                np.asarray(action)[None],
                row,
                np.array([bool(terminated)]),
                np.array([float(reward)]),
                [info],
                bool(terminated or truncated),
            )
        )
        return obs, float(rewards[0]), terminated, truncated, info

    def close(self) -> None:
        """Close the env, then the model's resources (a reward program's sandbox)."""
        try:
            super().close()
        finally:
            self.core.model.close()


class ModelReward(RewardLayer):
    """Rewards an env's transitions with a batched reward model, one row per step.

    Every step the model gets ``RewardBatch(obs=s, action=a, next_obs=s',
    terminated=[terminated], frames, info)`` with batch size 1. ``frames`` is
    ``env.render()`` of ``s'`` (taken right after the step, before any reset) when the
    model's ``needs_frames`` is set, and ``info`` holds the step info's keys listed in the
    model's ``needs_info``. Each model component goes in as ``reward_model/<name>``; see
    :class:`RewardLayer` for the other info keys.

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
        >>> import rewardlab
        >>> from rewardlab.reward_models import InfoReward
        >>> env = ModelReward(gym.make("rewardlab/GridEmpty-v0"), InfoReward("progress"))
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(2)
        >>> reward == info["progress"], info["env_reward"], info["reward_layers"][0][0]
        (True, 0.0, 'model')
    """

    def __init__(
        self, env: gym.Env[Any, Any], model: RewardModel, mode: RewardMode = "replace"
    ) -> None:
        # Recorded by reference: a deep copy would clone the model (a CLIP encoder: ~600 MB).
        gym.utils.RecordConstructorArgs.__init__(
            self, model=model, mode=mode, _disable_deepcopy=True
        )
        self.core = ModelCore(model, mode, self._frames, env.action_space)
        super().__init__(env, model)
        self.model = model
        self.mode = mode
