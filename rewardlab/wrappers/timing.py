"""What a reward layer's vector steps cost: the inner env step and the reward model's call.

:class:`StepTimes` is filled by the SB3 reward layers (:class:`~rewardlab.wrappers.vec.
VecModelReward` and the shaping layers), one :meth:`StepTimes.add` per vector step, and read
by whoever judges the cost (the training run's reward budget,
:class:`~rewardlab.agents.budget.RewardCostCheck`). One call's time is noisy (a learner's
update, a garbage collection, another process taking the CPU), so it keeps medians over
windows of calls, after a warm-up (a new worker's first calls, cold caches).
"""

from __future__ import annotations

import math
import statistics

__all__ = ["StepTimes"]


class StepTimes:
    """Median seconds of a layer's inner env step and of its model call, window by window.

    Args:
        warmup: Vector steps ignored at the start (and after :meth:`reset`).
        window: Vector steps per window.

    Attributes:
        warmup: As given.
        window: As given.
        windows: Windows completed since the last :meth:`reset`.
        env_s: Median seconds of the inner vector env's step over the last complete window
            (NaN before the first). For a layer over another reward layer it includes that
            layer's model call.
        model_s: Median seconds of the model's call over the same steps.

    Example:
        >>> times = StepTimes(warmup=1, window=3)
        >>> for env_s, model_s in [(9.0, 9.0), (1.0, 0.5), (2.0, 0.1), (1.5, 0.2)]:
        ...     times.add(env_s, model_s)
        >>> times.windows, times.env_s, times.model_s
        (1, 1.5, 0.2)
    """

    def __init__(self, warmup: int = 16, window: int = 64) -> None:
        self.warmup, self.window = warmup, window
        self.reset()

    def reset(self, warmup: int | None = None, window: int | None = None) -> None:
        """Forget every measurement; start over with a new warm-up (and new sizes if given).

        Raises:
            ValueError: If ``warmup`` is negative or ``window`` is below 1.
        """
        warmup = self.warmup if warmup is None else warmup
        window = self.window if window is None else window
        if warmup < 0 or window < 1:
            raise ValueError(f"need warmup >= 0 and window >= 1, got {warmup} and {window}")
        self.warmup, self.window = warmup, window
        self.windows = 0
        self.env_s = self.model_s = math.nan
        self._skip = warmup
        self._env: list[float] = []
        self._model: list[float] = []

    def add(self, env_s: float, model_s: float) -> None:
        """Record one vector step (hot path: two list appends while a window fills)."""
        if self._skip:
            self._skip -= 1
            return
        env = self._env
        env.append(env_s)
        self._model.append(model_s)
        if len(env) >= self.window:
            self.env_s = statistics.median(env)
            self.model_s = statistics.median(self._model)
            self.windows += 1
            self._env, self._model = [], []
