"""What a reward layer's vector steps cost, and what a reward program's may cost in training.

:class:`StepTimes` is filled by the SB3 reward layers (:class:`~rewardlab.wrappers.vec.
VecModelReward` and the shaping layers), one :meth:`StepTimes.add` per vector step, and read
by whoever judges the cost (the training run's reward budget,
:class:`~rewardlab.agents.callbacks.RewardCostCheck`). One call's time is noisy (a learner's
update, a garbage collection, another process taking the CPU), so it keeps medians over
windows of calls, after a warm-up (a new worker's first calls, cold caches).

A reward program runs once per vector step, in its sandbox worker, on every sub-env's state.
One written with a Python loop over the rows can cost many times the env step, only at the
training batch size, and slow training down without failing. :class:`RewardBudget` says how
much a call may cost (:meth:`RewardBudget.limit_ms`); the callback stops training with
:class:`RewardTooSlow` or, with ``on_exceed="warn"``, records a warning.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab.sandbox import ProgramContained

__all__ = ["RewardBudget", "RewardCost", "RewardTooSlow", "StepTimes"]


class StepTimes:
    """Median seconds of a layer's inner env step and of its model call, window by window.

    Args:
        warmup: Vector steps ignored at the start (and after :meth:`reset`).
        window: Vector steps per window.

    Attributes:
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


class RewardBudget(BaseModel):
    """How much time a reward program may take per vector step in training.

    The limit of one call (all sub-envs' rows at once) is ``max(multiple * env step,
    min_ms)``: the env step is the vector env's step measured the same way in the same run,
    and the floor keeps cheap envs (a gridworld steps in microseconds) from failing every
    sandboxed program, whose call alone costs ~0.1-0.2 ms.

    Attributes:
        multiple: Most times the env step a call may cost.
        min_ms: A call may always take this many milliseconds.
        on_exceed: ``"error"`` stops training with :class:`RewardTooSlow`; ``"warn"`` lets it
            finish and reports the cost (:attr:`RewardCostCheck.warnings`).
        warmup: Vector steps not measured at the start (a new worker's first calls).
        window: Vector steps per measurement: each judges the medians of one window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple: float = Field(default=10.0, gt=0.0)
    min_ms: float = Field(default=50.0, ge=0.0)
    on_exceed: Literal["error", "warn"] = "error"
    warmup: int = Field(default=16, ge=0)
    window: int = Field(default=64, ge=1)

    def limit_ms(self, env_step_ms: float) -> float:
        """Most milliseconds one call may take, when the env step takes ``env_step_ms``.

        Example:
            >>> budget = RewardBudget()
            >>> budget.limit_ms(0.2), budget.limit_ms(8.0)
            (50.0, 80.0)
        """
        return max(self.multiple * env_step_ms, self.min_ms)


@dataclass(frozen=True)
class RewardCost:
    """One window's measurement of a reward program's cost in training.

    Attributes:
        program: How the program is named to the user (its file, or ``"given as source"``).
        role: ``"reward"`` or ``"potential"``: the layer it pays through.
        n_envs: Rows per call (the vector env's sub-envs).
        call_ms: Median milliseconds of one call.
        env_step_ms: Median milliseconds of the vector env's step over the same steps.
        limit_ms: The budget's limit for this env step.
        multiple: The budget's multiple.
        min_ms: The budget's floor.
    """

    program: str
    role: str
    n_envs: int
    call_ms: float
    env_step_ms: float
    limit_ms: float
    multiple: float
    min_ms: float

    @property
    def exceeded(self) -> bool:
        """True when the call costs more than the limit."""
        return self.call_ms > self.limit_ms

    def describe(self) -> str:
        """The measurement and the limit, for the user.

        Example:
            >>> cost = RewardCost("my_reward.py", "reward", 8, 212.0, 5.3, 53.0, 10.0, 50.0)
            >>> print(cost.describe())
            reward program my_reward.py costs 212 ms per call at 8 envs (26.5 ms per row), \
40x the env step (5.3 ms); the limit is 53 ms per call (10x the env step, at least 50 ms)
        """
        ratio = self.call_ms / self.env_step_ms if self.env_step_ms > 0 else math.inf
        envs = "1 env" if self.n_envs == 1 else f"{self.n_envs} envs"
        return (
            f"{self.role} program {self.program} costs {_ms(self.call_ms)} per call at {envs} "
            f"({_ms(self.call_ms / self.n_envs)} per row), {ratio:.0f}x the env step "
            f"({_ms(self.env_step_ms)}); the limit is {_ms(self.limit_ms)} per call "
            f"({self.multiple:g}x the env step, at least {self.min_ms:g} ms)"
        )


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


class RewardTooSlow(ProgramContained):
    """A reward program cost more than its time budget in training (reason ``"slow"``).

    :attr:`message` is what the program's author (the LLM, in a search) is told; it holds no
    measured time, so that it is the same from run to run (a recorded search replays the same
    requests). The measurement is in :attr:`cost`, and ``str()`` of the error, which is what
    a failed run records, gives both.

    Args:
        cost: The measurement that exceeded the budget.
    """

    def __init__(self, cost: RewardCost) -> None:
        envs = "one env" if cost.n_envs == 1 else f"{cost.n_envs} envs"
        super().__init__(
            "slow",
            f"compute_reward costs more per call than training allows (with {envs}: more "
            f"than {cost.multiple:g}x the env step and more than {cost.min_ms:g} ms per "
            "call); vectorize it with numpy over the batch axis 0, no Python loops over the "
            "rows",
        )
        self.cost = cost

    @property
    def report(self) -> str:
        """The measurement, the limit and how to go on, for the user (who runs the program
        with ``reward_budget.on_exceed="warn"`` to only warn: each command says how)."""
        return (
            f"{self.cost.describe()}. Vectorize it (numpy over the batch axis 0, no Python "
            "loops over the rows)"
        )

    def __str__(self) -> str:
        return f"{self.reason}: {self.report}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a process pool's or Ray's worker, it is pickled back to the parent.
        return (type(self), (self.cost,))
