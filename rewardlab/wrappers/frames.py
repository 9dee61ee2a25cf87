"""Capture a frame of every state inside the per-env ``step``, before any auto-reset."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.info_keys import FRAME as FRAME_KEY
from rewardlab.wrappers.reward import require_rgb_array

__all__ = ["FRAME_KEY", "CaptureFrames"]


class _Capture(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Adds :meth:`_add`'s keys to the info of ``reset`` and of every ``step``."""

    def _add(self, info: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; the info holds what this wrapper captures of the first state."""
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._add(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the info holds what this wrapper captures of the state entered."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._add(info)


class CaptureFrames(_Capture):
    """Puts ``env.render()`` of the state entered into ``info["frame"]``, at reset and step.

    The frame is rendered inside this env's own ``step``, so an SB3 ``VecEnv`` that
    auto-resets after the step still passes the *last* frame of an episode in ``infos[i]``
    of its terminal step (rendering from the vector env after the step would show the next
    episode's first state). The first frame of the next episode is in
    ``venv.reset_infos[i]["frame"]``. :class:`~rewardlab.wrappers.vec.VecModelReward`
    reads these; put this wrapper outside ``Monitor`` and inside the vector env.

    Args:
        env: The env to wrap; its ``render_mode`` must be ``"rgb_array"``.

    Raises:
        ValueError: If the env does not render ``rgb_array`` frames.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> env = CaptureFrames(gym.make("rewardlab/GridEmpty-v0", render_mode="rgb_array"))
        >>> obs, info = env.reset(seed=0)
        >>> info["frame"].dtype, info["frame"].ndim
        (dtype('uint8'), 3)
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        require_rgb_array(env, "CaptureFrames")

    def _add(self, info: dict[str, Any]) -> dict[str, Any]:
        # Copy: some renderers reuse their buffer between calls.
        info[FRAME_KEY] = np.array(self.env.render(), dtype=np.uint8, copy=True)
        return info
