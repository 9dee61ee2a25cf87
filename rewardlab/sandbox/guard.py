"""Guards around a sandboxed program for training: output checks, a failure budget, statistics.

:class:`GuardedProgram` wraps a :class:`~rewardlab.sandbox.process.SandboxWorker`: it replaces
and counts non-finite values, clips the reward, absorbs a few failed calls (restarting a dead
worker) before giving up with ``"exception_budget"``, and keeps per-component statistics for
Eureka's reward reflection.

Not thread-safe: one caller at a time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from rewardlab.sandbox.process import (
    ProgramContained,
    RewardCallResult,
    SandboxLimits,
    SandboxWorker,
)
from rewardlab.sandbox.validation import ValidatedProgram

__all__ = ["GuardedProgram", "GuardedStats", "RunningStats"]

_LARGEST = sys.float_info.max


@dataclass
class RunningStats:
    """Running count, mean, min and max of one quantity's finite values.

    Every statistic stays finite, so it can be written as JSON: finite values near the
    largest float (1.7e308) overflow a sum, so the mean is kept as a weighted average of the
    batches' means instead, each taken from values scaled down first where their sum
    overflows (a mean that rounds past the largest float is that float).

    Attributes:
        count: Values seen (after non-finite ones were replaced).
        mean: Their mean.
        min: Their minimum (``inf`` before any).
        max: Their maximum (``-inf`` before any).
        nonfinite: NaN or infinite values the program returned (replaced before the update).
    """

    count: int = 0
    mean: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    nonfinite: int = 0

    def update(self, values: np.ndarray) -> None:
        """Fold in a batch of finite values."""
        if values.size:
            with np.errstate(over="ignore"):  # an overflowing sum takes the scaled path
                mean = float(values.sum()) / values.size
            if not math.isfinite(mean):
                mean = _scaled_mean(values)
            self.fold(values.size, mean, float(values.min()), float(values.max()))

    def fold(self, n: int, mean: float, low: float, high: float) -> None:
        """Fold in ``n`` finite values with this (finite) mean, minimum and maximum."""
        self.count += n
        weight = n / self.count
        step = mean - self.mean
        if math.isfinite(step):
            self.mean += step * weight
        else:  # means of opposite signs near the largest float
            # Between two finite means, so finite, but for rounding at the largest float.
            merged = self.mean * (1.0 - weight) + mean * weight
            self.mean = merged if math.isfinite(merged) else math.copysign(_LARGEST, merged)
        self.min = min(self.min, low)
        self.max = max(self.max, high)

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain numbers (``None`` for the min and max of nothing), ready for JSON."""
        return asdict(self) | ({"min": None, "max": None} if self.count == 0 else {})


def _scaled_mean(values: np.ndarray) -> float:
    """The mean of finite values whose sum overflows: summed after dividing by their count."""
    mean = float((values / values.size).sum())
    return mean if math.isfinite(mean) else math.copysign(_LARGEST, mean)


@dataclass
class GuardedStats:
    """What :class:`GuardedProgram` has seen.

    Attributes:
        calls: Successful calls.
        failures: Failed calls by reason.
        nonfinite: Non-finite reward values replaced (components count their own).
        clipped: Reward values clipped.
        restarts: Workers started after the first (after a dead one, or to renew CPU time).
        last_error: ``"<reason>: <message>"`` of the last failed call.
        reward: Statistics of the guarded reward.
        components: Statistics of each component (non-finite values replaced, not clipped),
            one per name of the program's fixed set (see :class:`GuardedProgram`).
        hardening: The layers the latest worker applied (:attr:`SandboxWorker.hardening`).
    """

    calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    nonfinite: int = 0
    clipped: int = 0
    restarts: int = 0
    last_error: str | None = None
    reward: RunningStats = field(default_factory=RunningStats)
    components: dict[str, RunningStats] = field(default_factory=dict)
    hardening: tuple[str, ...] = ()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy, e.g. for reward reflection at ~10 points of training."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "failures": dict(self.failures),
            "reward": self.reward.as_dict(),
            "components": {name: stats.as_dict() for name, stats in self.components.items()},
            "hardening": list(self.hardening),
        }


class GuardedProgram:
    """A sandboxed reward program with output guards, an exception budget and statistics.

    Each call's reward has non-finite values replaced by ``nonfinite_value`` (counted in
    ``stats.nonfinite``) and is clipped to ``clip`` (counted in ``stats.clipped``). A failed
    call (any :class:`ProgramContained`) is absorbed while the budget lasts: it returns
    ``fallback_reward`` for the batch with ``error`` set, and a dead worker is replaced on the
    next call. The ``max_exceptions``-th failure closes the worker and raises
    ``ProgramContained("exception_budget")`` naming the last error; so does every later call.

    The component names are a fixed schema: the first answered call sets them, for this
    worker and every replacement, and a call returning others is a failed ``"bad_output"``
    call. So ``stats.components`` holds at most
    :data:`~rewardlab.sandbox.protocol.MAX_COMPONENTS` entries however long it runs.

    Args:
        program: The validated program.
        limits: Sandbox limits of its worker.
        clip: ``(low, high)`` bounds of the reward, or None for no clipping.
        nonfinite_value: What NaN and infinite values (reward and components) become.
        max_exceptions: Failed calls after which the program is abandoned (1: the first).
        fallback_reward: Reward of every row of a failed call within the budget.

    Raises:
        ProgramContained: ``"startup"`` when the first worker does not come up.

    Example:
        >>> from rewardlab.sandbox.validation import validate_program
        >>> source = '''
        ... def compute_reward(x):
        ...     return -np.abs(x), {"dist": np.abs(x)}
        ... '''
        >>> with GuardedProgram(validate_program(source, ["x"]), clip=(-1.5, 1.5)) as guarded:
        ...     result = guarded({"x": np.array([1.0, -2.0, np.nan])})
        >>> result.reward
        array([-1. , -1.5,  0. ])
        >>> guarded.stats.clipped, guarded.stats.nonfinite, guarded.stats.components["dist"].max
        (1, 1, 2.0)
    """

    def __init__(
        self,
        program: ValidatedProgram,
        limits: SandboxLimits | None = None,
        *,
        clip: tuple[float, float] | None = (-100.0, 100.0),
        nonfinite_value: float = 0.0,
        max_exceptions: int = 3,
        fallback_reward: float = 0.0,
    ) -> None:
        if clip is not None and not (len(clip) == 2 and clip[0] <= clip[1]):
            raise ValueError(f"clip must be (low, high) with low <= high, or None, got {clip}")
        if max_exceptions < 1:
            raise ValueError(f"max_exceptions must be >= 1, got {max_exceptions}")
        for name, value in (("nonfinite_value", nonfinite_value), ("fallback", fallback_reward)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        self.program = program
        self.limits = limits if limits is not None else SandboxLimits()
        self.clip = clip
        self.nonfinite_value = float(nonfinite_value)
        self.max_exceptions = max_exceptions
        self.fallback_reward = float(fallback_reward)
        self.stats = GuardedStats()
        self.aborted: ProgramContained | None = None
        self._components: tuple[str, ...] | None = None
        self._worker: SandboxWorker | None = SandboxWorker(program, self.limits)
        self.stats.hardening = self._worker.hardening

    @property
    def worker(self) -> SandboxWorker | None:
        """The current worker (None between a dead one and the next call, or once closed)."""
        return self._worker

    def __call__(self, variables: Mapping[str, Any]) -> RewardCallResult:
        """Guarded rewards of one batch (see the class docstring).

        Raises:
            ValueError: When ``variables`` do not fit the program (see
                :meth:`SandboxWorker.call`).
            ProgramContained: ``"exception_budget"`` once the budget is spent, or
                ``"startup"`` when a replacement worker does not come up.
        """
        if self.aborted is not None:
            raise self.aborted
        worker = self._worker
        if (
            worker is None
            or not worker.alive
            or max(worker.busy_seconds, worker.cpu_seconds) > self.limits.cpu_seconds / 2
        ):
            self.close()
            worker = self._worker = SandboxWorker(
                self.program, self.limits, components=self._components
            )
            self.stats.restarts += 1
            self.stats.hardening = worker.hardening
        try:
            names, block = worker.call_block(variables)
        except ProgramContained as exc:
            return self._failed(exc, variables)
        stats = self.stats
        # The block is this call's own buffer: guard it in place, all rows at once. NaN and
        # inf propagate into the row sums, so finite sums mean a finite block (an overflowing
        # sum only sends a finite block down the exact path).
        totals = block.sum(axis=1).tolist()
        nonfinite = None
        if not all(map(math.isfinite, totals)):
            finite = np.isfinite(block)
            nonfinite = (block.shape[1] - np.count_nonzero(finite, axis=1)).tolist()
            block[~finite] = self.nonfinite_value
            stats.nonfinite += nonfinite[0]
            # Still non-finite: a row of finite values whose sum overflows (see RunningStats).
            totals = block.sum(axis=1).tolist()
        reward = block[0]
        size = block.shape[1]
        if size:
            lows = block.min(axis=1).tolist()
            highs = block.max(axis=1).tolist()
            if self.clip is not None and (lows[0] < self.clip[0] or highs[0] > self.clip[1]):
                low, high = self.clip
                stats.clipped += int(np.count_nonzero((reward < low) | (reward > high)))
                np.clip(reward, low, high, out=reward)
                totals[0] = float(reward.sum())
                lows[0], highs[0] = max(lows[0], low), min(highs[0], high)
            for row, name in enumerate(("", *names)):
                running = stats.reward if row == 0 else stats.components.get(name)
                if running is None:
                    running = stats.components[name] = RunningStats()
                mean = totals[row] / size
                if nonfinite is not None and not math.isfinite(mean):
                    mean = _scaled_mean(block[row])
                running.fold(size, mean, lows[row], highs[row])
                if nonfinite is not None:
                    running.nonfinite += nonfinite[row]
        stats.calls += 1
        return RewardCallResult(reward, {name: block[row] for row, name in enumerate(names, 1)})

    def _failed(self, exc: ProgramContained, variables: Mapping[str, Any]) -> RewardCallResult:
        failures = self.stats.failures
        failures[exc.reason] = failures.get(exc.reason, 0) + 1
        self.stats.last_error = f"{exc.reason}: {exc.message}"
        total = sum(failures.values())
        if total >= self.max_exceptions:
            self.close()
            self.aborted = ProgramContained(
                "exception_budget",
                f"compute_reward failed {total} time(s), the limit is {self.max_exceptions}; "
                f"the last error ({exc.reason}): {exc.message}",
                last_reason=exc.reason,
            )
            raise self.aborted from exc
        batch = len(np.asarray(variables[self.program.parameters[0]]))
        return RewardCallResult(
            np.full(batch, self.fallback_reward), {}, error=self.stats.last_error
        )

    def close(self) -> None:
        """Kill the worker; later calls raise (after abort) or start a new one (which must
        return the component names the first did)."""
        if self._worker is not None:
            if self._components is None:
                self._components = self._worker.components
            self._worker.close()
            self._worker = None

    def __enter__(self) -> GuardedProgram:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
