"""Capture a frame of every state inside the per-env ``step``, before any auto-reset."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.info_keys import FRAME as FRAME_KEY

__all__ = ["FRAME_KEY", "CaptureFrames"]


class CaptureFrames(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
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
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"CaptureFrames needs frames, but the env's render_mode is {env.render_mode!r}; "
                "create the env with render_mode='rgb_array' (e.g. gym.make(env_id, "
                "render_mode='rgb_array'))"
            )

    def _frame(self) -> np.ndarray:
        # Copy: some renderers reuse their buffer between calls.
        return np.array(self.env.render(), dtype=np.uint8, copy=True)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; ``info["frame"]`` is the first state's frame."""
        obs, info = self.env.reset(seed=seed, options=options)
        info[FRAME_KEY] = self._frame()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; ``info["frame"]`` is the frame of the state entered."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[FRAME_KEY] = self._frame()
        return obs, reward, terminated, truncated, info
