"""Reward models: pure batched functions of transitions (no Gymnasium or SB3 plumbing).

:class:`~rewardlab.reward_models.clip.CLIPRewardModel` is exported lazily: importing this
package does not import torch or open_clip.
"""

from typing import Any

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput

__all__ = ["CLIPRewardModel", "RewardBatch", "RewardModel", "RewardOutput"]


def __getattr__(name: str) -> Any:
    if name == "CLIPRewardModel":
        from rewardlab.reward_models.clip import CLIPRewardModel

        return CLIPRewardModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
