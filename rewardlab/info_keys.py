"""Every info key rewardlab reads or writes, in one place: the contract between envs, reward
layers and loggers.

**Envs** report their task in each step's info: :data:`IS_SUCCESS`, :data:`PROGRESS` (in
``[0, 1]``) and, for dense rewards, named components ``reward_<name>`` that sum to the reward.

**Reward layers** (a reward model, CLIP, a reward program, shaping or a negative control, as a
per-env wrapper or a vector layer, stacked in any order) add:

- :data:`ENV_REWARD`: the env's own reward, whatever is stacked above it (written by the
  innermost layer, never overwritten); :data:`ORIGINAL_REWARD` is its documented alias. Log
  it, not the reward returned, as the task metric.
- :data:`REWARD_LAYERS`: one record ``(layer, reward_in, term, reward_out)`` per layer,
  innermost first: the reward the layer received, the term it computed (the model's reward,
  the shaping term ``F``) and the reward it returned, which is ``term`` when the layer
  replaces the reward and ``reward_in + term`` when it adds to it.
- Each layer's own terms: ``reward_model/<name>`` (a model's components: a composite's sum
  to its reward; a reward program's are what it reports), :data:`SHAPING` (the shaping
  layer's term), :data:`POTENTIAL` (``Phi(s')``), ``potential_model/<name>`` (a model
  potential's components of ``Phi(s')``), :data:`MODEL_FRESH` (``CLIPReward(every=k)``:
  whether the value was computed on this step).

**The identity** (exact; :func:`check_reward_info` tests it): ``records[0].reward_in`` is
``info["env_reward"]``; each record's ``reward_in`` is the previous one's ``reward_out``
(rounded to float32 where an SB3 ``DummyVecEnv`` stored it between a per-env layer and a
vector layer); the last ``reward_out`` is the reward returned.

The keys a reward layer writes are reserved: an env reporting one of them is an error, since
a layer would overwrite it. Names with a ``/`` (``reward_model/...``) cannot collide with an
env component ``reward_<name>`` or a reward program's component, whose names are identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "ENV_REWARD",
    "FRAME",
    "IS_SUCCESS",
    "MODEL_FRESH",
    "MODEL_PREFIX",
    "ORIGINAL_REWARD",
    "POTENTIAL",
    "POTENTIAL_MODEL_PREFIX",
    "PROGRESS",
    "RESERVED",
    "REWARD_LAYERS",
    "SHAPING",
    "STATE_PREFIX",
    "check_reward_info",
]

IS_SUCCESS = "is_success"
"""Env: True once the task is solved (the true success the comparisons judge)."""

PROGRESS = "progress"
"""Env: ground-truth task progress in ``[0, 1]`` (the ``"progress"`` shaping potential)."""

ENV_REWARD = "env_reward"
"""Reward layers: the env's own reward, whatever layers are stacked above it."""

ORIGINAL_REWARD = "original_reward"
"""Documented alias of :data:`ENV_REWARD`, with the same value."""

REWARD_LAYERS = "reward_layers"
"""Reward layers: ``[(layer, reward_in, term, reward_out), ...]``, innermost first."""

MODEL_PREFIX = "reward_model/"
"""Reward-model layers: a model's named components, ``reward_model/<name>``."""

POTENTIAL_MODEL_PREFIX = "potential_model/"
"""Shaping layers: a model potential's components of ``Phi(s')``, ``potential_model/<name>``."""

SHAPING = "shaping"
"""Shaping layers (and the negative controls): the term added to the reward."""

POTENTIAL = "potential"
"""Shaping layers: ``Phi`` of the state entered (``Phi(s_0)`` in the reset info)."""

MODEL_FRESH = "model_fresh"
"""``CLIPReward(every=k)``: True on the steps the model was evaluated, False where the last
value is repeated."""

FRAME = "frame"
"""``CaptureFrames``: the ``(H, W, 3)`` uint8 frame of the state entered."""

STATE_PREFIX = "state/"
"""``CaptureState``: a task state variable of the state entered, ``state/<name>``."""

RESERVED = frozenset({ENV_REWARD, ORIGINAL_REWARD, REWARD_LAYERS, SHAPING, POTENTIAL, MODEL_FRESH})
"""The plain keys reward layers write; an env must not report them."""


def check_reward_info(info: Mapping[str, Any], reward: float) -> None:
    """Check that ``reward`` is exactly what the layer records in ``info`` say it is.

    Args:
        info: A step info that went through at least one reward layer.
        reward: The reward the outermost layer returned for that step.

    Raises:
        ValueError: Naming the first record that breaks the identity.
    """
    records = info[REWARD_LAYERS]
    expected = info[ENV_REWARD]
    if info[ORIGINAL_REWARD] != expected:
        raise ValueError(f"original_reward {info[ORIGINAL_REWARD]} != env_reward {expected}")
    for layer, reward_in, term, reward_out in records:
        if reward_in not in (expected, float(np.float32(expected))):
            raise ValueError(
                f"layer {layer!r} received {reward_in}, the one below returned {expected}"
            )
        if reward_out not in (term, reward_in + term):
            raise ValueError(
                f"layer {layer!r} returned {reward_out}, neither its term {term} nor "
                f"{reward_in} + {term}"
            )
        expected = reward_out
    if reward not in (expected, float(np.float32(expected))):
        raise ValueError(f"the reward returned is {reward}, the last layer recorded {expected}")
