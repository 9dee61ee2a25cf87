"""``CLIPReward``: a zero-shot CLIP reward on an env's own frames, prompted with its task.

This module imports torch and open_clip (through
:class:`~rewardlab.reward_models.clip.CLIPRewardModel`); ``rewardlab.wrappers`` exports
:class:`CLIPReward` lazily so ``import rewardlab.wrappers`` stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import get_task
from rewardlab.info_keys import MODEL_FRESH
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.clip import CLIPOptions, CLIPRewardModel
from rewardlab.wrappers.reward import ModelReward, RewardMode, require_rgb_array

__all__ = ["CLIPReward"]


class _StepClock(gym.Wrapper[Any, Any, Any, Any]):
    """Counts steps since reset and whether the last step ended the episode.

    ``ModelReward`` calls its model after the inner step, so a model reading this clock knows
    whether the step just taken is due for evaluation, truncation included (which a
    ``RewardBatch`` does not carry).
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.t = 0
        self.ended = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self.t, self.ended = 0, False
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        self.ended = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info


class _EveryK(RewardModel):
    """Evaluates ``model`` on steps ``1, k+1, 2k+1, ...`` and the last one; repeats in between.

    It renders the frame itself, only on the steps it evaluates: rendering is skipped with the
    model call. :attr:`fresh` says whether the last call evaluated the model.
    """

    def __init__(self, model: CLIPRewardModel, clock: _StepClock, every: int) -> None:
        self.model = model
        self.clock = clock
        self.every = every
        self.fresh = False
        self._last: RewardOutput | None = None

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        self.fresh = (self.clock.t - 1) % self.every == 0 or self.clock.ended
        if self.fresh:
            frames = np.asarray(self.clock.render())[None]
            self._last = self.model(dataclasses.replace(batch, frames=frames))
        assert self._last is not None
        return self._last

    def __deepcopy__(self, memo: dict[int, Any]) -> _EveryK:
        # ModelReward records its model with deepcopy: share it, as copying would clone the
        # encoder and the env the clock wraps (MuJoCo envs cannot be copied).
        return self


class CLIPReward(ModelReward):
    """Rewards each step with a CLIP model's score of the frame entered, prompted by the task.

    A :class:`~rewardlab.wrappers.reward.ModelReward` around a
    :class:`~rewardlab.reward_models.clip.CLIPRewardModel`: every step ``env.render()`` of
    ``s'`` (before any reset) is encoded and scored by the head against the prompts, which
    default to the task's own (``rewardlab.get_task(env)``, for any env with a registered
    task: ``goal``, ``baseline``, ``negatives``). ``info["original_reward"]`` holds the env's
    reward and ``info["reward_model/clip"]`` the CLIP score.

    With ``every=k`` the model runs on steps ``1, k + 1, 2k + 1, ...`` of each episode and
    always on its last step (terminated or truncated); steps in between repeat the last
    value. This trades reward resolution for a k-fold cheaper encoder.
    ``info["model_fresh"]`` (:data:`rewardlab.info_keys.MODEL_FRESH`) is True on the steps
    the model ran and False where the value is repeated, for every ``every``.

    The CLIP score also works as a shaping potential:
    ``PotentialShaping(env, clip_model, gamma)`` with a ``CLIPRewardModel`` adds
    ``gamma * Phi(s') - Phi(s)`` and leaves the optimal policy unchanged.

    Args:
        env: The env to wrap; its ``render_mode`` must be ``"rgb_array"``.
        model: open_clip model name, a :class:`~rewardlab.reward_models.clip.CLIPOptions`,
            or a built ``CLIPRewardModel`` to share its encoder (then only ``head`` and the
            head's options may be given: the prompts and other options are the instance's).
        pretrained: open_clip pretrained tag, a local checkpoint path, or None for random
            weights (warns; tests only).
        head: One of :data:`rewardlab.reward_models.clip.HEADS`; default the
            :class:`~rewardlab.reward_models.clip.CLIPOptions` default, or an instance's own
            head. A different head on an instance shares its encoder.
        goal: Goal caption or prompt set; default ``get_task(env).goal``.
        baseline: Baseline caption; default ``get_task(env).baseline``.
        negatives: Failure captions; default ``get_task(env).negatives``.
        mode: ``"replace"`` or ``"add"``, as in ``ModelReward``.
        every: Evaluate the model every ``every`` steps (>= 1), see above.
        **options: The other :class:`~rewardlab.reward_models.clip.CLIPOptions` fields
            (``device``, ``resize``, ``crop``, ``cache_size``, ...) and the head's options
            (``alpha``, ``c``, ``temperature``, ``threshold``), as for ``CLIPRewardModel``.

    Raises:
        ValueError: If the env does not render ``rgb_array``, ``every < 1``, the head is
            unknown, or prompts or encoder options are given with a model instance.
        TypeError: If the env is not a rewardlab env and no goal is given, or for an unknown
            option.
        PretrainedWeightsNotFoundError: If the weights can be neither found nor downloaded.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        model: str | CLIPOptions | CLIPRewardModel = CLIPOptions.model,
        pretrained: str | None = CLIPOptions.pretrained,
        head: str | None = None,
        *,
        goal: str | Sequence[str] | None = None,
        baseline: str | Sequence[str] | None = None,
        negatives: Sequence[str] | None = None,
        mode: RewardMode = "replace",
        every: int = 1,
        **options: Any,
    ) -> None:
        require_rgb_array(env, "CLIPReward")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        # Recorded before ModelReward's own recording, which then keeps these: the user's
        # arguments, not the internal clock and throttle; by reference, since a deep copy
        # would clone the encoder.
        gym.utils.RecordConstructorArgs.__init__(
            self,
            model=model,
            pretrained=pretrained,
            head=head,
            goal=goal,
            baseline=baseline,
            negatives=negatives,
            mode=mode,
            every=every,
            _disable_deepcopy=True,
            **options,
        )
        if head is not None:
            options["head"] = head
        prompts: dict[str, Any] = {"goal": goal, "baseline": baseline, "negatives": negatives}
        if isinstance(model, CLIPRewardModel):
            fixed = [name for name, value in prompts.items() if value is not None]
            fields = {f.name for f in dataclasses.fields(CLIPOptions)} - {"head"}
            fixed += sorted(fields & set(options))
            fixed += ["pretrained"] if pretrained != CLIPOptions.pretrained else []
            if fixed:
                raise ValueError(
                    f"{fixed} given with a built CLIPRewardModel, which has its own prompts "
                    "and options; build the model with them instead"
                )
            clip = model.with_head(options.pop("head", model.head), **options) if options else model
        else:
            if any(v is None for v in prompts.values()):
                try:
                    task = get_task(env)
                except TypeError as exc:
                    # An env without a task: the given prompts are all there is (a goal at
                    # least).
                    if goal is None:
                        raise TypeError(
                            f"{exc}. Or pass the prompts: goal= (and baseline= for the default "
                            "head, or head='cosine')"
                        ) from None
                    prompts = {k: v for k, v in prompts.items() if v is not None}
                else:
                    prompts = {k: getattr(task, k) if v is None else v for k, v in prompts.items()}
            clip = CLIPRewardModel(model, pretrained, **prompts, **options)
        self._clock = _StepClock(env)
        self._throttle = _EveryK(clip, self._clock, every)
        super().__init__(self._clock, self._throttle, mode=mode)
        self.clip = clip
        self.every = every

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step as ``ModelReward`` does, and mark in info whether the model ran."""
        obs, reward, terminated, truncated, info = super().step(action)
        info[MODEL_FRESH] = self._throttle.fresh
        return obs, reward, terminated, truncated, info
