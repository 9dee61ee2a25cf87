"""The heads of a reward network: what turns its input vector (state variables, frame
features, or both, concatenated) into a reward.

==================  ==========================================================================
``mlp``             an MLP with one output (preferences; any objective)
``progress``        an MLP with two outputs: a progress logit (the reward is its sigmoid, in
                    [0, 1]) and a success logit (progress/success heads on labelled episodes)
``perceptual``      Sermanet et al.'s per-step feature classifiers, fit (not trained by
                    gradient) to demonstrations: ``head_shape = (steps, features per step)``
``goal_distance``   ``-min_g ||x - g||`` over goal embeddings (VIP-style):
                    ``head_shape = (goals,)``
==================  ==========================================================================

The fitted heads keep what they were fit to as buffers, so a checkpoint's ``state_dict``
restores them; their shapes come from ``head_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rewardlab.learned.reward_net import HEADS

__all__ = ["GoalDistanceHead", "MLPHead", "PerceptualHead", "ProgressHead", "build_head"]


def _mlp(width: int, hidden: Sequence[int], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class MLPHead(nn.Module):
    """``r = MLP(x)``."""

    def __init__(self, width: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.mlp = _mlp(width, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).squeeze(1)


class ProgressHead(nn.Module):
    """Progress and success from one MLP; the reward is the predicted progress in [0, 1]."""

    def __init__(self, width: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.mlp = _mlp(width, hidden, 2)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(progress logit, success logit)``, each ``(B,)``."""
        out = self.mlp(x)
        return out[:, 0], out[:, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x)[0])


class PerceptualHead(nn.Module):
    """Sermanet, Xu & Levine (2016): step ``i`` keeps features ``index[i]``; its score is the
    Gaussian-style likelihood ``exp(-mean_j z_ij^2 / 2)`` of ``z = (x[index] - mean) / std``;
    the reward is the ``weight``-weighted mean of the step scores (``2^(i-1)``: later steps
    count more), in [0, 1]."""

    index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor

    def __init__(self, width: int, steps: int, features: int) -> None:
        super().__init__()
        if steps < 1 or not 1 <= features <= width:
            raise ValueError(
                f"a perceptual head needs >= 1 step and 1..{width} features per step, "
                f"got {steps} and {features}"
            )
        self.register_buffer("index", torch.zeros(steps, features, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(steps, features))
        self.register_buffer("std", torch.ones(steps, features))
        self.register_buffer("weight", 2.0 ** torch.arange(steps, dtype=torch.float32))

    def step_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, steps)`` per-step scores in [0, 1]."""
        z = (x[:, self.index] - self.mean) / self.std
        return torch.exp(-0.5 * (z * z).mean(dim=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step_scores(x) @ self.weight / self.weight.sum()


class GoalDistanceHead(nn.Module):
    """``r = -min_g ||x - goal_g||`` (VIP-style goal embedding distance)."""

    goals: torch.Tensor

    def __init__(self, width: int, goals: int) -> None:
        super().__init__()
        if goals < 1:
            raise ValueError(f"a goal-distance head needs >= 1 goal, got {goals}")
        self.register_buffer("goals", torch.zeros(goals, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x, self.goals).min(dim=1).values


def build_head(
    kind: str, width: int, hidden: Sequence[int], shape: Sequence[int] = ()
) -> nn.Module:
    """The head ``kind`` over ``width`` inputs (``hidden``: MLP widths; ``shape``: the
    fitted heads' sizes)."""
    if kind == "mlp":
        return MLPHead(width, hidden)
    if kind == "progress":
        return ProgressHead(width, hidden)
    if kind == "perceptual":
        return PerceptualHead(width, *shape)
    if kind == "goal_distance":
        return GoalDistanceHead(width, *shape)
    raise ValueError(f"unknown head {kind!r}; one of {HEADS}")
