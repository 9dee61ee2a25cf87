"""Statistics for comparing RL runs: IQM, stratified bootstrap intervals, probability of
improvement, performance profiles, learning-curve area and steps-to-threshold.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (the rliable library), in vectorized numpy/scipy. Scores are arrays of shape
``(n_runs, n_tasks)``; a 1-D array of shape ``(n_runs,)`` is one task. Every bootstrap draws
all its resampling indices at once from a seeded :class:`numpy.random.Generator`: the same
seed gives the same interval.

Conventions:

- IQM is ``scipy.stats.trim_mean(x, 0.25)``: sort, drop ``floor(0.25 n)`` values from each
  end, average the rest. For ``n`` divisible by 4 this is exactly the middle 50%.
- Intervals are percentile bootstrap intervals: the ``(1 - c) / 2`` and ``(1 + c) / 2``
  quantiles (numpy's default linear interpolation) of the statistic over the resamples.
- The bootstrap is stratified: runs are resampled with replacement *within each task*, the
  task set stays fixed.

This module imports only numpy and scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sp_stats

__all__ = [
    "Interval",
    "Statistic",
    "ThresholdSummary",
    "aggregate",
    "aggregate_iqm",
    "aggregate_mean",
    "human_normalized_score",
    "iqm",
    "iqm_curve",
    "normalized_auc",
    "performance_profile",
    "performance_profile_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "steps_to_threshold",
    "steps_to_threshold_summary",
    "stratified_bootstrap_ci",
]

Statistic = Callable[[np.ndarray], Any]
"""A vectorized statistic: maps scores of shape ``(..., n_runs, n_tasks)`` to ``(...)``."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]``.

    Attributes:
        point: The statistic on the original sample.
        low: Lower end of the interval.
        high: Upper end of the interval.
    """

    point: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        """Whether the closed intervals ``[low, high]`` of ``self`` and ``other`` intersect."""
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict[str, float]:
        """``{"point": ..., "low": ..., "high": ...}`` as plain floats."""
        return asdict(self)


@dataclass(frozen=True)
class ThresholdSummary:
    """Steps-to-threshold over runs, with the runs that never reached it counted (censored).

    Attributes:
        n_runs: Number of runs.
        n_reached: Runs that reached the threshold.
        n_never: Runs that never reached it (``n_runs - n_reached``); their step is unknown,
            so they are left out of ``median`` and ``iqm`` rather than imputed.
        median: Median first step over the runs that reached it; NaN when none did.
        iqm: IQM of the first step over the runs that reached it; NaN when none did.
    """

    n_runs: int
    n_reached: int
    n_never: int
    median: float
    iqm: float

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (NaN stays NaN)."""
        return asdict(self)


def _as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {rng!r}")


def _check_bootstrap_args(reps: int, confidence: float) -> None:
    # Checked before the data, so a bad argument is reported first.
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _as_scores(x: ArrayLike, what: str) -> np.ndarray:
    """``x`` as a finite float64 ``(n_runs, n_tasks)`` array with at least one run."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"{what} must have shape (n_runs,) or (n_runs, n_tasks) with at least one run "
            f"and one task, got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{what} has a non-finite score at (run, task) = {tuple(bad.tolist())}")
    return a


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``(reps, n_runs, n_tasks)`` stratified resamples of ``x``: runs drawn within each task."""
    n_runs, n_tasks = x.shape
    idx = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))
    return x[idx, np.arange(n_tasks)]


def _percentile_interval(boot: np.ndarray, confidence: float) -> np.ndarray:
    """The ``(1-c)/2`` and ``(1+c)/2`` quantiles of ``boot`` over its first axis, stacked."""
    alpha = 1.0 - confidence
    return np.quantile(boot, [alpha / 2, 1.0 - alpha / 2], axis=0)


def human_normalized_score(
    method: float, sparse: float, human: float, *, clip: tuple[float, float] | None = None
) -> float | None:
    """Eureka's human normalized score ``(method - sparse) / |human - sparse|``.

    ``human`` is the score of the env's hand-designed dense reward, ``sparse`` that of the
    task reward: 0 means no better than sparse, 1 as good as the human reward. Eureka clips
    to ``[0, 3]`` before averaging over tasks (``clip=(0, 3)``).

    Returns:
        The score, or None when it is undefined (``human == sparse``): never NaN, so it can go
        into JSON as it is.
    """
    gap = abs(human - sparse)
    if gap == 0 or not math.isfinite(gap) or not math.isfinite(method):
        return None
    score = (method - sparse) / gap
    if clip is not None:
        score = min(max(score, clip[0]), clip[1])
    return score


def iqm(x: ArrayLike, axis: int | tuple[int, ...] | None = -1) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of the values along ``axis``.

    ``IQM(x) = mean(sorted(x)[k : n - k])`` with ``k = floor(0.25 n)``, the
    ``scipy.stats.trim_mean(x, 0.25)`` convention (exactly the middle half when ``4 | n``).

    Args:
        x: Values.
        axis: Axis, tuple of axes (reduced together, as one flattened sample) or ``None``
            (all values).

    Returns:
        A float when every axis is reduced, else an array of the remaining shape.

    Raises:
        ValueError: If the reduced sample is empty.

    Example:
        >>> float(iqm([1, 2, 3, 4, 5, 6, 7, 8]))  # mean of 3, 4, 5, 6
        4.5
    """
    a = np.asarray(x, dtype=np.float64)
    if axis is None:
        a, axis = a.reshape(-1), -1
    elif isinstance(axis, tuple):
        if any(not -a.ndim <= ax < a.ndim for ax in axis):
            raise ValueError(f"axis {axis} out of range for an array of shape {a.shape}")
        axes = sorted({ax % a.ndim for ax in axis})
        kept = [d for d in range(a.ndim) if d not in axes]
        a = a.transpose(kept + list(axes)).reshape([a.shape[d] for d in kept] + [-1])
        axis = -1
    if a.ndim == 0 or a.shape[axis] == 0:
        raise ValueError(f"iqm needs at least one value along axis {axis}, got shape {a.shape}")
    return _sp_stats.trim_mean(a, 0.25, axis=axis)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray | float:
    """IQM over all runs and tasks: ``scores`` of shape ``(..., n_runs, n_tasks)`` to ``(...)``.

    The run-and-task scores are pooled into one sample of ``n_runs * n_tasks`` values, as in
    rliable's ``aggregate_iqm``. A statistic for :func:`stratified_bootstrap_ci`.
    """
    return iqm(scores, axis=(-2, -1))


def aggregate_mean(scores: np.ndarray) -> np.ndarray | float:
    """Mean over runs of the mean over tasks: ``(..., n_runs, n_tasks)`` to ``(...)``.

    A statistic for :func:`stratified_bootstrap_ci`.
    """
    return np.mean(scores, axis=(-2, -1))


def stratified_bootstrap_ci(
    scores: Mapping[str, ArrayLike],
    statistic: Statistic = aggregate_iqm,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> dict[str, Interval]:
    """Percentile stratified-bootstrap confidence interval of ``statistic`` for each entry.

    For each key, ``reps`` resamples ``x*_b`` are drawn by sampling ``n_runs`` runs with
    replacement independently within each task (Agarwal et al. 2021). The interval is
    ``[q_{(1-c)/2}, q_{(1+c)/2}]`` of ``{statistic(x*_b)}``; the point is ``statistic(x)``.

    Args:
        scores: Name to array of shape ``(n_runs, n_tasks)`` (or ``(n_runs,)``, one task).
        statistic: Vectorized statistic mapping ``(..., n_runs, n_tasks)`` to ``(...)``, called
            once on all ``(reps, n_runs, n_tasks)`` resamples; e.g. :func:`aggregate_iqm`
            (default) or :func:`aggregate_mean`.
        reps: Number of bootstrap resamples.
        confidence: Coverage ``c`` of the interval, in ``(0, 1)``.
        rng: Generator or seed. Keys are resampled in mapping order from one generator, so an
            int seed gives identical results for identical input; a Generator is advanced.

    Returns:
        Name to :class:`Interval`.

    Raises:
        ValueError: For an empty mapping, a bad shape, a non-finite score (naming the key and
            the run), or a statistic that does not reduce the last two axes.

    Example:
        >>> ci = stratified_bootstrap_ci({"a": [0.75, 0.75, 0.75]}, reps=100)
        >>> (ci["a"].point, ci["a"].low, ci["a"].high)
        (0.75, 0.75, 0.75)
    """
    _check_bootstrap_args(reps, confidence)
    if not scores:
        raise ValueError("scores is empty: pass at least one name -> (n_runs, n_tasks) array")
    gen = _as_generator(rng)
    out: dict[str, Interval] = {}
    for name, x in scores.items():
        a = _as_scores(x, f"scores[{name!r}]")
        boot = np.asarray(statistic(_resample(a, reps, gen)), dtype=np.float64)
        if boot.shape != (reps,):
            raise ValueError(
                f"statistic must map (..., n_runs, n_tasks) to (...): on resamples of shape "
                f"{(reps, *a.shape)} it returned shape {boot.shape}, expected ({reps},)"
            )
        point = float(statistic(a))
        low, high = _percentile_interval(boot, confidence)
        out[name] = Interval(point, float(low), float(high))
    return out


def aggregate(
    scores: Mapping[str, ArrayLike],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> dict[str, dict[str, Interval]]:
    """IQM and mean with stratified-bootstrap intervals for each entry of ``scores``.

    Args:
        scores: Name to array of shape ``(n_runs, n_tasks)`` or ``(n_runs,)``.
        reps: Number of bootstrap resamples.
        confidence: Coverage of the intervals.
        rng: Generator or seed (IQM is drawn first, then the mean, from one generator).

    Returns:
        ``{name: {"iqm": Interval, "mean": Interval}}``.
    """
    gen = _as_generator(rng)
    by_stat = {
        stat_name: stratified_bootstrap_ci(
            scores, statistic, reps=reps, confidence=confidence, rng=gen
        )
        for stat_name, statistic in (("iqm", aggregate_iqm), ("mean", aggregate_mean))
    }
    return {name: {s: by_stat[s][name] for s in by_stat} for name in scores}


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vectorized PoI: ``x (..., n, k)``, ``y (..., m, k)`` to ``(...)`` via rank sums."""
    n, m = x.shape[-2], y.shape[-2]
    ranks = _sp_stats.rankdata(np.concatenate([x, y], axis=-2), axis=-2)  # ties: average
    u = ranks[..., :n, :].sum(axis=-2) - n * (n + 1) / 2.0
    return (u / (n * m)).mean(axis=-1)


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_scores(x, "x"), _as_scores(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"x and y must have the same number of tasks, got {a.shape[1]} and {b.shape[1]}"
        )
    return a, b


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """Probability that a run of X scores higher than a run of Y, averaged over tasks.

    ``P(X > Y) = 1/K sum_k 1/(n m) sum_{i,j} [x_ik > y_jk] + 0.5 [x_ik = y_jk]``, i.e. the
    Mann-Whitney ``U_k / (n m)`` per task ``k``, averaged over the ``K`` tasks.

    Args:
        x: Scores of X, shape ``(n, n_tasks)`` or ``(n,)``.
        y: Scores of Y, shape ``(m, n_tasks)`` or ``(m,)``; same tasks as ``x``.

    Returns:
        A probability in ``[0, 1]``: 0.5 for identical samples, 1.0 when every x beats every y.

    Example:
        >>> probability_of_improvement([3, 4], [1, 2])
        1.0
        >>> probability_of_improvement([1, 2], [1, 2])
        0.5
    """
    a, b = _check_pair(x, y)
    return float(_poi(a, b))


def probability_of_improvement_ci(
    x: ArrayLike,
    y: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a percentile stratified-bootstrap interval.

    Each resample draws the runs of X and, independently, the runs of Y with replacement
    within each task.

    Args:
        x: Scores of X, shape ``(n, n_tasks)`` or ``(n,)``.
        y: Scores of Y, shape ``(m, n_tasks)`` or ``(m,)``.
        reps: Number of bootstrap resamples.
        confidence: Coverage of the interval.
        rng: Generator or seed.

    Returns:
        The PoI and its interval.
    """
    _check_bootstrap_args(reps, confidence)
    a, b = _check_pair(x, y)
    gen = _as_generator(rng)
    boot = _poi(_resample(a, reps, gen), _resample(b, reps, gen))
    point = float(_poi(a, b))
    low, high = _percentile_interval(boot, confidence)
    return Interval(point, float(low), float(high))


def _profile(scores: np.ndarray, taus: ArrayLike) -> np.ndarray:
    """``(..., n_runs, n_tasks)`` to ``(..., len(taus))``: task-mean of P(score > tau)."""
    t = np.atleast_1d(np.asarray(taus, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"taus must be 1-D, got shape {t.shape}")
    return (scores[..., None] > t).mean(axis=-3).mean(axis=-2)


def performance_profile(scores: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Run-score distribution: the fraction of runs scoring above each threshold ``tau``.

    ``F(tau) = 1/K sum_k 1/n sum_i [x_ik > tau]`` (Agarwal et al. 2021), the average over
    tasks of the empirical survival function of the run scores.

    Args:
        scores: Shape ``(n_runs, n_tasks)`` or ``(n_runs,)``.
        taus: Thresholds, shape ``(len(taus),)``.

    Returns:
        Shape ``(len(taus),)``, non-increasing in ``tau`` for sorted ``taus``.

    Example:
        >>> performance_profile([0.1, 0.5, 0.9, 1.0], [0.0, 0.5, 1.0]).tolist()
        [1.0, 0.5, 0.0]
    """
    return _profile(_as_scores(scores, "scores"), taus)


def performance_profile_ci(
    scores: ArrayLike,
    taus: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`performance_profile` with a pointwise stratified-bootstrap band.

    Args:
        scores: Shape ``(n_runs, n_tasks)`` or ``(n_runs,)``.
        taus: Thresholds, shape ``(len(taus),)``.
        reps: Number of bootstrap resamples.
        confidence: Pointwise coverage of the band.
        rng: Generator or seed.

    Returns:
        ``(point, low, high)``, each of shape ``(len(taus),)``.
    """
    _check_bootstrap_args(reps, confidence)
    a = _as_scores(scores, "scores")
    point = _profile(a, taus)
    boot = _profile(_resample(a, reps, _as_generator(rng)), taus)
    low, high = _percentile_interval(boot, confidence)
    return point, low, high


def _check_curve(steps: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {s.shape}")
    if v.ndim not in (1, 2) or v.shape[-1] != s.size:
        raise ValueError(
            f"values must have shape ({s.size},) or (n_runs, {s.size}) to match steps, "
            f"got {v.shape}"
        )
    if not np.isfinite(s).all() or not (np.diff(s) > 0).all():
        raise ValueError("steps must be finite and strictly increasing")
    if not np.isfinite(v).all():
        rows = np.flatnonzero(~np.isfinite(v.reshape(-1, s.size)).all(axis=-1))
        raise ValueError(f"values must be finite; run(s) {rows.tolist()} have NaN or inf")
    return s, v


def normalized_auc(
    steps: ArrayLike, values: ArrayLike, budget: float, *, max_value: float = 1.0
) -> np.ndarray | float:
    """Area under a learning curve over ``[steps[0], budget]``, normalized to ``[0, 1]``.

    The curve starts at its first evaluation ``s_0 = steps[0]`` (nothing is assumed before
    it), is linear between evaluations (trapezoid rule), and holds its last value from the
    last evaluation to ``budget``; evaluations after ``budget`` are cut off, the curve
    interpolated at ``budget``. Then::

        AUC = integral_{s_0}^{budget} v(s) ds / ((budget - s_0) * max_value)

    i.e. the time-average of ``v / max_value``, so a constant ``max_value`` curve scores 1.

    Args:
        steps: Evaluation steps, shape ``(T,)``, strictly increasing.
        values: Evaluated values, shape ``(T,)`` or ``(n_runs, T)`` (runs sharing ``steps``;
            for curves of different lengths call once per curve).
        budget: End of the integration range, greater than ``steps[0]``.
        max_value: The best possible value (1 for a success rate).

    Returns:
        A float for one curve, else shape ``(n_runs,)``.

    Example:
        >>> normalized_auc([0, 10], [0.0, 1.0], budget=20)  # (5 + 10) / 20
        0.75
    """
    s, v = _check_curve(steps, values)
    if not math.isfinite(budget) or budget <= s[0]:
        raise ValueError(f"budget must be finite and > the first step {s[0]:g}, got {budget}")
    if not math.isfinite(max_value) or max_value <= 0:
        raise ValueError(f"max_value must be finite and positive, got {max_value}")
    inside = s < budget
    # The value at `budget`: held last value, or linear interpolation between the evaluations
    # around it when the curve runs past the budget.
    k = int(np.searchsorted(s, budget))
    if k == s.size:
        v_end = v[..., -1]
    else:
        w = (budget - s[k - 1]) / (s[k] - s[k - 1])
        v_end = v[..., k - 1] + w * (v[..., k] - v[..., k - 1])
    s_ext = np.append(s[inside], budget)
    v_ext = np.concatenate([v[..., inside], v_end[..., None]], axis=-1)
    area = (np.diff(s_ext) * (v_ext[..., 1:] + v_ext[..., :-1]) / 2.0).sum(axis=-1)
    result = area / ((budget - s[0]) * max_value)
    return float(result) if result.ndim == 0 else result


def steps_to_threshold(
    steps: ArrayLike, values: ArrayLike, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """First evaluation step at which each run's value reaches ``threshold``.

    ``first = min{ steps[t] : values[t] >= threshold }``, NaN when no evaluation reaches it.

    Args:
        steps: Evaluation steps, shape ``(T,)``, strictly increasing.
        values: Shape ``(T,)`` or ``(n_runs, T)`` (runs sharing ``steps``).
        threshold: Value to reach (inclusive).

    Returns:
        ``(first_step, reached)``: float array (NaN where not reached) and bool array, each of
        shape ``values.shape[:-1]``.

    Example:
        >>> first, reached = steps_to_threshold([10, 20, 30], [[0.2, 0.9, 1.0], [0, 0, 0]], 0.8)
        >>> first.tolist(), reached.tolist()
        ([20.0, nan], [True, False])
    """
    s, v = _check_curve(steps, values)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    hit = v >= threshold
    reached = hit.any(axis=-1)
    first = np.where(reached, s[hit.argmax(axis=-1)], np.nan)
    return np.asarray(first), np.asarray(reached)


def steps_to_threshold_summary(first_step: ArrayLike, reached: ArrayLike) -> ThresholdSummary:
    """Median and IQM of the first step over the runs that reached the threshold, and counts.

    Runs that never reached it are censored: their count is reported, they are not averaged.

    Args:
        first_step: Shape ``(n_runs,)``, from :func:`steps_to_threshold`.
        reached: Shape ``(n_runs,)``, bool.

    Returns:
        A :class:`ThresholdSummary`.

    Example:
        >>> steps_to_threshold_summary([10.0, 30.0, float("nan")], [True, True, False]).median
        20.0
    """
    f = np.asarray(first_step, dtype=np.float64).reshape(-1)
    r = np.asarray(reached, dtype=bool).reshape(-1)
    if f.shape != r.shape:
        raise ValueError(f"first_step and reached must match, got {f.shape} and {r.shape}")
    if not np.isfinite(f[r]).all():
        raise ValueError("first_step must be finite wherever reached is True")
    hits = f[r]
    n_reached = int(r.sum())
    return ThresholdSummary(
        n_runs=int(r.size),
        n_reached=n_reached,
        n_never=int(r.size) - n_reached,
        median=float(np.median(hits)) if n_reached else math.nan,
        iqm=float(iqm(hits)) if n_reached else math.nan,
    )


def iqm_curve(
    curves: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM across runs at each evaluation point, with a pointwise bootstrap band.

    ``point[t] = IQM_i curves[i, t]``; each resample draws whole runs (the same run indices at
    every ``t``) with replacement.

    Args:
        curves: Shape ``(n_runs, T)``, runs evaluated at the same steps.
        reps: Number of bootstrap resamples.
        confidence: Pointwise coverage of the band.
        rng: Generator or seed.

    Returns:
        ``(point, low, high)``, each of shape ``(T,)``.
    """
    _check_bootstrap_args(reps, confidence)
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"curves must have shape (n_runs, T) with n_runs, T >= 1, got {c.shape}")
    if not np.isfinite(c).all():
        rows = np.flatnonzero(~np.isfinite(c).all(axis=1))
        raise ValueError(f"curves must be finite; run(s) {rows.tolist()} have NaN or inf")
    idx = _as_generator(rng).integers(0, c.shape[0], size=(reps, c.shape[0]))
    boot = np.asarray(iqm(c[idx], axis=1))
    point = np.asarray(iqm(c, axis=0))
    low, high = _percentile_interval(boot, confidence)
    return point, low, high
