"""Adapters from reward models and potentials to Gymnasium wrappers and SB3 vector envs.

Per-env wrappers: :class:`ModelReward`, :class:`CLIPReward` (a CLIP reward prompted with the
task), :class:`PotentialShaping` (and the negative controls :class:`ProgressBonus`,
:class:`MismatchedShaping`), :class:`CaptureFrames`. SB3 ``VecEnvWrapper`` layers:
:class:`VecModelReward`, :class:`VecPotentialShaping` (and the negative controls
:class:`VecProgressBonus`, :class:`VecMismatchedShaping`). CLIPReward and the vector layers
are imported lazily, so
``import rewardlab.wrappers`` imports neither torch, open_clip nor stable_baselines3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardlab.wrappers.frames import FRAME_KEY, CaptureFrames
from rewardlab.wrappers.reward import (
    COMPONENT_PREFIX,
    POTENTIAL_COMPONENT_PREFIX,
    REWARD_MODES,
    ModelReward,
)
from rewardlab.wrappers.shaping import (
    POTENTIAL_NAMES,
    MismatchedShaping,
    Potential,
    PotentialShaping,
    ProgressBonus,
    check_shaping_gamma,
)

if TYPE_CHECKING:
    from rewardlab.wrappers.clip import CLIPReward
    from rewardlab.wrappers.vec import (
        VecMismatchedShaping,
        VecModelReward,
        VecPotentialShaping,
        VecProgressBonus,
    )

__all__ = [
    "COMPONENT_PREFIX",
    "CLIPReward",
    "FRAME_KEY",
    "POTENTIAL_COMPONENT_PREFIX",
    "POTENTIAL_NAMES",
    "REWARD_MODES",
    "CaptureFrames",
    "MismatchedShaping",
    "ModelReward",
    "Potential",
    "PotentialShaping",
    "ProgressBonus",
    "VecMismatchedShaping",
    "VecModelReward",
    "VecPotentialShaping",
    "VecProgressBonus",
    "check_shaping_gamma",
]

_LAZY = {"VecMismatchedShaping", "VecModelReward", "VecPotentialShaping", "VecProgressBonus"}


def __getattr__(name: str) -> Any:
    if name == "CLIPReward":
        from rewardlab.wrappers.clip import CLIPReward

        return CLIPReward
    if name in _LAZY:
        from rewardlab.wrappers import vec

        return getattr(vec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
