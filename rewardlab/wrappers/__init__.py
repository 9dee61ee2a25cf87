"""Adapters from reward models and potentials to Gymnasium wrappers and SB3 vector envs.

Every reward layer is one batched rule (:mod:`rewardlab.wrappers.core`) run by a per-env
wrapper (:class:`ModelReward`, :class:`CLIPReward`, :class:`PotentialShaping` and the
negative controls :class:`ProgressBonus`, :class:`MismatchedShaping`) or by an SB3
``VecEnvWrapper`` (:class:`VecModelReward`, :class:`VecPotentialShaping`,
:class:`VecProgressBonus`, :class:`VecMismatchedShaping`); the info keys they write are in
:mod:`rewardlab.info_keys`. :class:`CaptureFrames` and :class:`CaptureState` put a frame and
the task's state variables in each step's info. CLIPReward and the vector layers are
imported lazily, so ``import rewardlab.wrappers`` imports neither torch, open_clip nor
stable_baselines3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardlab.wrappers.core import POTENTIAL_NAMES, REWARD_MODES, Potential
from rewardlab.wrappers.frames import FRAME_KEY, CaptureFrames
from rewardlab.wrappers.reward import (
    COMPONENT_PREFIX,
    POTENTIAL_COMPONENT_PREFIX,
    ModelReward,
    RewardLayer,
)
from rewardlab.wrappers.shaping import (
    MismatchedShaping,
    PotentialShaping,
    ProgressBonus,
    check_shaping_gamma,
)
from rewardlab.wrappers.state import CaptureState

if TYPE_CHECKING:
    from rewardlab.wrappers.clip import CLIPReward
    from rewardlab.wrappers.vec import (
        VecMismatchedShaping,
        VecModelReward,
        VecPotentialShaping,
        VecProgressBonus,
        VecRewardLayer,
    )

__all__ = [
    "COMPONENT_PREFIX",
    "CLIPReward",
    "FRAME_KEY",
    "POTENTIAL_COMPONENT_PREFIX",
    "POTENTIAL_NAMES",
    "REWARD_MODES",
    "CaptureFrames",
    "CaptureState",
    "MismatchedShaping",
    "ModelReward",
    "Potential",
    "PotentialShaping",
    "ProgressBonus",
    "RewardLayer",
    "VecMismatchedShaping",
    "VecModelReward",
    "VecPotentialShaping",
    "VecProgressBonus",
    "VecRewardLayer",
    "check_shaping_gamma",
]


def __getattr__(name: str) -> Any:
    if name == "CLIPReward":
        from rewardlab.wrappers.clip import CLIPReward

        return CLIPReward
    if name.startswith("Vec") and name in __all__:
        from rewardlab.wrappers import vec

        return getattr(vec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
