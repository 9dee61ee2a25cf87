"""Rewards learned from data: reward networks over states, frames or both, on frozen or
fine-tuned image encoders (:mod:`rewardlab.learned.encoders`), saved as checkpoints that say
what they were trained on (:mod:`rewardlab.learned.reward_net`).

Importing this package is cheap: torch and timm are imported when a network is built.
"""

from rewardlab.learned.reward_net import (
    LearnedReward,
    RewardNetConfig,
    TrainedOn,
    build_reward_net,
    load_learned_reward,
    save_checkpoint,
)

__all__ = [
    "LearnedReward",
    "RewardNetConfig",
    "TrainedOn",
    "build_reward_net",
    "load_learned_reward",
    "save_checkpoint",
]
