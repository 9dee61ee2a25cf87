"""The one batched interface every reward model implements.

Reward models are pure functions of batched arrays: every input has a leading batch dimension
``B`` and the output is ``(B,)``. They know nothing of Gymnasium wrappers, vector envs or
learners; ``rewardlab.wrappers`` adapts them to a single env or an SB3 ``VecEnv``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RewardBatch", "RewardModel", "RewardOutput"]


@dataclass(frozen=True)
class RewardBatch:
    """A batch of transitions ``(s, a, s')``, one row per env or per step.

    Attributes:
        obs: ``(B, *obs_shape)`` observations before the action.
        action: ``(B, *action_shape)`` actions taken.
        next_obs: ``(B, *obs_shape)`` observations after the action: the true final
            observation on an episode's last step, never the next episode's first.
        terminated: ``(B,)`` bool, True where ``next_obs`` is a true terminal state.
        frames: ``(B, H, W, 3)`` uint8 frames of ``next_obs``, or None when the model does not
            need pixels.
        info: Per-row extras as ``(B, ...)`` arrays (e.g. ``"progress"``, ``"is_success"``).
    """

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    frames: np.ndarray | None = None
    info: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.terminated)
        for name in ("obs", "action", "next_obs"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name} has batch size {len(getattr(self, name))}, terminated has {n}"
                )
        if self.frames is not None and (
            self.frames.ndim != 4 or self.frames.shape[0] != n or self.frames.shape[-1] != 3
        ):
            raise ValueError(f"frames must be (B={n}, H, W, 3) uint8, got {self.frames.shape}")
        for key, value in self.info.items():
            if len(value) != n:
                raise ValueError(f"info[{key!r}] has batch size {len(value)}, expected {n}")

    def __len__(self) -> int:
        return len(self.terminated)

    @classmethod
    def of_rows(
        cls,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        frames: np.ndarray | None,
        info: Mapping[str, np.ndarray],
    ) -> RewardBatch:
        """A batch whose arrays the caller built with one row each per transition, unchecked.

        For adapters, which build a batch every vector step: the frozen dataclass's
        ``__init__`` and checks would cost more than many models' call.
        """
        batch = object.__new__(cls)
        batch.__dict__.update(
            obs=obs,
            action=action,
            next_obs=next_obs,
            terminated=terminated,
            frames=frames,
            info=info,
        )
        return batch


# Not frozen: made by every model call (several per vector step for a composite), and a frozen
# dataclass's __init__ costs three times a plain one's.
@dataclass(slots=True)
class RewardOutput:
    """A model's rewards for a batch, with optional named components.

    Attributes:
        reward: ``(B,)`` float64.
        components: Named ``(B,)`` arrays; when present they sum to ``reward``.
    """

    reward: np.ndarray
    components: Mapping[str, np.ndarray] = field(default_factory=dict)


class RewardModel(ABC):
    """A batched reward ``r(s, a, s')``.

    Attributes:
        needs_frames: True when :meth:`__call__` reads ``batch.frames``; adapters then capture
            a frame of every ``next_obs`` (before any auto-reset).
        needs_info: Keys of ``batch.info`` the model reads.
    """

    needs_frames: bool = False
    needs_info: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """Rewards of every transition in ``batch``, shape ``(B,)``."""

    def diagnostics(self) -> dict[str, Any]:
        """What the model has seen so far that a researcher should know, as plain JSON data
        (empty by default). ``train`` writes it to ``reward_diagnostics.json``: a reward
        program reports its failed calls, replaced non-finite values and clipped rewards."""
        return {}

    def close(self) -> None:  # noqa: B027  (an optional hook: most models hold nothing)
        """Release what the model holds (a reward program's sandbox worker); nothing by
        default. The reward layers call it when their env closes."""
