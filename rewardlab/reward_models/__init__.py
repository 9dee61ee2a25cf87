"""Reward models: pure batched functions of transitions (no Gymnasium or SB3 plumbing).

Composites in :mod:`rewardlab.reward_models.compose` build a reward by wrapping other models
(weighted sums, products with penalty factors, clamping, rescaling, running normalization).

:class:`~rewardlab.reward_models.clip.CLIPRewardModel` is exported lazily: importing this
package does not import torch or open_clip. :func:`~rewardlab.reward_models.check.
check_reward_model` runs any model, yours included, through the interface's rules (shapes,
dtypes, finiteness, determinism, batch independence), like Gymnasium's ``check_env``.
"""

import warnings
from typing import Any

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.check import RewardModelCheckError, check_reward_model
from rewardlab.reward_models.compose import (
    Affine,
    Clamp,
    FunctionReward,
    InfoReward,
    PenaltyFactors,
    Product,
    RunningNorm,
    WeightedSum,
)

__all__ = [
    "Affine",
    "CLIPRewardModel",
    "Clamp",
    "FunctionReward",
    "InfoReward",
    "PenaltyFactors",
    "Product",
    "RewardBatch",
    "RewardModel",
    "RewardModelCheckError",
    "RewardOutput",
    "RunningNorm",
    "WeightedSum",
    "check_reward_model",
]


def __getattr__(name: str) -> Any:
    if name == "CLIPRewardModel":
        from rewardlab.reward_models.clip import CLIPRewardModel

        return CLIPRewardModel
    if name == "Clip":  # deprecated alias (a clamp, not CLIP); removed in the next release
        warnings.warn("Clip is renamed Clamp; use Clamp", DeprecationWarning, stacklevel=2)
        return Clamp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
