"""Bootstrap intervals over episodes for the metrics sampled from a trajectory dataset.

A replicate resamples the dataset's episodes with replacement (transitions of one episode are
not independent, so episodes are the unit). Instead of building each resampled dataset, a
replicate is a vector of episode counts ``w`` (multinomial, summing to the number of
episodes) and every metric is computed in its weighted form, which equals the metric on the
expanded data exactly: a transition of an episode drawn twice counts twice, ties stay ties
(copies share their value), and pairs of copies of one episode compare equal. Replicates are
processed in blocks as ``(b, n)`` arrays, so the cost is a few vectorized passes per block.

Each ``w_*`` function takes per-element values and a ``(b, n)`` weight block and returns one
value per replicate (NaN where the metric is undefined on that replicate, as the unweighted
function in :mod:`~rewardlab.evaluation.reward_metrics` returns NaN).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse as _sparse

__all__ = [
    "EpisodeBootstrap",
    "Ranked",
    "Ranking",
    "percentile_interval",
    "w_average_precision",
    "w_best_threshold",
    "w_mean",
    "w_pearson",
    "w_pearson_distance",
    "w_preference",
    "w_roc_auc",
    "w_spearman",
]

_BLOCK_ELEMENTS = 2_000_000
"""Most ``replicates x elements`` values an array of a block holds (16 MB of float64)."""


@dataclass(frozen=True)
class EpisodeBootstrap:
    """Replicates of a dataset whose episodes are resampled with replacement.

    Attributes:
        counts: ``(B, E)`` how often each episode is drawn in each replicate.
        episode: ``(N,)`` the episode of each transition.
    """

    counts: np.ndarray
    episode: np.ndarray

    @classmethod
    def draw(cls, episode: np.ndarray, n_episodes: int, reps: int, seed: int) -> EpisodeBootstrap:
        """``reps`` replicates of ``n_episodes`` episodes, drawn with ``seed``."""
        if reps < 1 or n_episodes < 1:
            raise ValueError(f"reps and n_episodes must be >= 1, got {reps}, {n_episodes}")
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n_episodes, np.full(n_episodes, 1.0 / n_episodes), size=reps)
        return cls(counts.astype(np.float64), np.asarray(episode, dtype=np.int64))

    @property
    def reps(self) -> int:
        return int(self.counts.shape[0])

    def blocks(self) -> Iterator[np.ndarray]:
        """The episode weights ``(b, E)`` of each block of replicates: small enough that the
        ``(b, values)`` arrays the metrics build stay within :data:`_BLOCK_ELEMENTS`."""
        size = max(1, _BLOCK_ELEMENTS // max(self.episode.size, 1))
        for i in range(0, self.reps, size):
            yield self.counts[i : i + size]


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the finite replicate values; NaN when fewer than half of
    the replicates define the metric (too few to place the bounds)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.size < values.size / 2:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def w_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of the finite values of ``x`` (NaN ones are left out, as undefined)."""
    ok = np.isfinite(x)
    total = w[:, ok].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, w[:, ok] @ x[ok] / total, math.nan)


_DENSE_COUNTS = 4_000_000
"""Episode x value count matrices up to this size are dense (a BLAS product per block), larger
ones sparse (memory)."""


def _count_matrix(
    weights: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> np.ndarray | _sparse.csr_matrix:
    """``M[e, g]`` = the sum of ``weights`` of the elements of episode ``e`` in group ``g``."""
    if shape[0] * shape[1] <= _DENSE_COUNTS:
        m = np.zeros(shape)
        np.add.at(m, (rows, cols), weights)
        return m
    return _sparse.csr_matrix((weights, (rows, cols)), shape=shape)


class Ranking:
    """A 1-D array of per-element values, with what every block of replicates needs from it
    computed once: its ascending order and tie groups, and how many elements of each episode
    fall in each group (so that a replicate's weight per group is one product of the
    episode weights with that count matrix, not a pass over the elements).

    Args:
        x: ``(n,)`` values.
        episode: ``(n,)`` the episode of each element; None when every element is its own
            episode (per-episode values such as returns).
        labels: Optional ``(n,)`` 0/1 labels the detection metrics score ``x`` against.
    """

    def __init__(
        self, x: np.ndarray, episode: np.ndarray | None = None, labels: np.ndarray | None = None
    ) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        if self.x.ndim != 1 or self.x.size == 0:
            raise ValueError(f"a ranking needs a non-empty 1-D array, got shape {self.x.shape}")
        n = self.x.size
        self.episode = np.arange(n) if episode is None else np.asarray(episode, dtype=np.int64)
        n_episodes = int(self.episode.max()) + 1
        self.lengths = np.bincount(self.episode, minlength=n_episodes).astype(np.float64)
        # Each episode's mean, and every element's deviation from its episode's mean.
        sums = self.episode_sums(self.x)
        self.episode_mean = np.divide(
            sums, self.lengths, out=np.zeros_like(sums), where=self.lengths > 0
        )
        self.deviation = self.x - self.episode_mean[self.episode]
        # Co-occurrence with other rankings of the same elements (_cooccurrence), by id.
        self.pairs: dict[int, tuple[Any, ...]] = {}
        self.order = np.argsort(self.x, kind="stable")
        xs = self.x[self.order]
        new = np.ones(n, dtype=bool)
        new[1:] = xs[1:] != xs[:-1]
        self.values = xs[new]  # distinct values, ascending
        self.group = np.empty(n, dtype=np.int64)
        self.group[self.order] = np.cumsum(new) - 1
        shape = (n_episodes, self.values.size)
        self.counts = _count_matrix(np.ones(n), self.episode, self.group, shape)
        self.positives = (
            None
            if labels is None
            else _count_matrix(np.asarray(labels, np.float64), self.episode, self.group, shape)
        )

    def episode_sums(self, v: np.ndarray) -> np.ndarray:
        """``(E,)``: the sum of per-element ``v`` over each episode."""
        return np.bincount(self.episode, weights=v, minlength=self.lengths.size)

    def on(self, w: np.ndarray) -> Ranked:
        """These values on a block of replicates with episode weights ``w`` (``(b, E)``)."""
        return Ranked(self, w)


class Ranked:
    """One array on one block of replicates: its weight per distinct value, and what the
    metrics derive from it, each computed once."""

    def __init__(self, ranking: Ranking, w: np.ndarray) -> None:
        self.ranking, self.w = ranking, w
        self.groups = np.asarray(w @ ranking.counts)
        self.n = w @ ranking.lengths
        # Whether the values take two or more distinct values among the elements drawn.
        self.varies = np.count_nonzero(self.groups > 0, axis=1) > 1

    @functools.cached_property
    def midranks(self) -> np.ndarray:
        """``(b, groups)``: the average rank (1-based) of each distinct value."""
        g = self.groups
        return np.cumsum(g, axis=1) - g + (g + 1.0) / 2.0

    @functools.cached_property
    def descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per distinct value ``c``, descending, for the ranking's labels: the weight of the
        positives at ``c``, whether ``c`` was drawn, and the weights of the positives and of
        the negatives with a value ``>= c``."""
        if self.ranking.positives is None:
            raise ValueError("this ranking was built without labels")
        pos = np.asarray(self.w @ self.ranking.positives)[:, ::-1]
        groups = self.groups[:, ::-1]
        return pos, groups > 0, np.cumsum(pos, axis=1), np.cumsum(groups - pos, axis=1)


def _correlation(sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)


def w_pearson(x: Ranked, y: Ranked) -> np.ndarray:
    """Pearson correlation per replicate; NaN where ``x`` or ``y`` is constant on it. ``x``
    and ``y`` are values of the same elements.

    The co-moments of a replicate are combined from each episode's own (around its own
    means) plus the spread of the episodes' means around the replicate's (Chan et al.'s
    parallel formula): no sum of squares is subtracted from another, so episodes at very
    different levels lose nothing to cancellation."""
    w, rx, ry, n = x.w, x.ranking, y.ranking, x.n
    weight = w * rx.lengths  # (b, E): elements each episode contributes

    def spread(mean: np.ndarray) -> np.ndarray:  # episode means around the replicate's
        return mean[None, :] - (weight @ mean / n)[:, None]

    da, db = spread(rx.episode_mean), spread(ry.episode_mean)

    def co(u: Ranking, v: Ranking, du: np.ndarray, dv: np.ndarray) -> np.ndarray:
        within = rx.episode_sums(u.deviation * v.deviation)
        return w @ within + (weight * du * dv).sum(axis=1)

    rho = _correlation(co(rx, ry, da, db), co(rx, rx, da, da), co(ry, ry, db, db))
    return np.where(x.varies & y.varies, rho, math.nan)


def _cooccurrence(x: Ranking, y: Ranking) -> tuple[np.ndarray, ...]:
    """The distinct (episode, x's tie group, y's tie group) triples of the elements, with
    their counts: structured rewards repeat them (a state visited again gives the same
    values), so a replicate's cross sum runs over far fewer terms than elements."""
    cached = x.pairs.get(id(y))
    if cached is None or cached[0] is not y:
        gx, gy = x.values.size, y.values.size
        key = (x.episode * gx + x.group) * gy + y.group
        keys, counts = np.unique(key, return_counts=True)
        episode, rest = np.divmod(keys, gx * gy)
        cached = (y, episode, *np.divmod(rest, gy), counts.astype(np.float64))
        x.pairs[id(y)] = cached
    return cached[1:]


def w_spearman(x: Ranked, y: Ranked) -> np.ndarray:
    """Spearman correlation per replicate: Pearson of the replicate's average ranks (``x``
    and ``y`` of the same elements)."""
    mean = (x.n + 1.0) / 2.0  # of the ranks 1..n, whatever the ties

    def spread(r: Ranked) -> np.ndarray:  # sum of squared deviations, per tie group
        return (r.groups * (r.midranks - mean[:, None]) ** 2).sum(axis=1)

    episode, gx, gy, counts = _cooccurrence(x.ranking, y.ranking)
    terms = x.w[:, episode] * x.midranks[:, gx] * y.midranks[:, gy]
    cross = terms @ counts - x.n * mean * mean
    rho = _correlation(cross, spread(x), spread(y))
    return np.where(x.varies & y.varies, rho, math.nan)


def w_pearson_distance(x: Ranked, y: Ranked) -> np.ndarray:
    """``sqrt((1 - rho) / 2)`` per replicate (EPIC's distance of canonicalized rewards);
    NaN where ``x`` or ``y`` is constant on the replicate. From the weighted sums: near
    ``rho = 1`` the rounding of ``rho`` (1e-16) shows as about 1e-8 in the distance, which
    an interval's bounds can carry (the point value is computed exactly elsewhere)."""
    return np.sqrt(np.maximum(1.0 - w_pearson(x, y), 0.0) / 2.0)


def w_roc_auc(scores: Ranked) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties count 1/2) of the scores against their ranking's labels,
    per replicate; NaN without both classes."""
    pos, _, tps, fps = scores.descending
    neg = np.diff(fps, axis=1, prepend=0.0)
    p, n = tps[:, -1], fps[:, -1]
    # Descending: the negatives below a value are all negatives minus those at or above it.
    below = n[:, None] - fps
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + neg / 2.0)).sum(axis=1) / (p * n)
    return np.where((p > 0) & (n > 0), auc, math.nan)


def w_average_precision(scores: Ranked) -> np.ndarray:
    """Average precision (step sum over distinct scores) per replicate; NaN without
    positives."""
    pos, _, tps, fps = scores.descending
    p = tps[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pos > 0, tps / (tps + fps), 0.0)
        return np.where(p > 0, (pos * precision).sum(axis=1) / p, math.nan)


def w_best_threshold(scores: Ranked) -> tuple[np.ndarray, np.ndarray]:
    """``(threshold, balanced accuracy)`` per replicate at the best Youden's J over the
    scores drawn (the highest among ties); NaN without both classes."""
    _, drawn, tps, fps = scores.descending
    p, n = tps[:, -1], fps[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where(drawn, tps / p[:, None] - fps / n[:, None], -np.inf)
    k = np.argmax(j, axis=1)
    ok = (p > 0) & (n > 0)
    threshold = np.where(ok, scores.ranking.values[::-1][k], math.nan)
    return threshold, np.where(ok, (1.0 + j[np.arange(k.size), k]) / 2.0, math.nan)


def w_preference(
    scores: np.ndarray, quality: np.ndarray, w: np.ndarray, *, min_gap: float
) -> np.ndarray:
    """Pairwise preference accuracy per replicate: pairs of drawn episodes whose quality
    differs by more than ``min_gap``, weighted by how often each was drawn (copies of one
    episode tie in quality and are never a pair); NaN where no pair qualifies."""
    dq = quality[:, None] - quality[None, :]
    upper = np.triu(np.ones(dq.shape, dtype=bool), k=1)
    keep = upper & (np.abs(dq) > min_gap)
    same = np.sign(scores[:, None] - scores[None, :]) * np.sign(dq)
    agree = np.where(keep, (same > 0) + 0.5 * (same == 0), 0.0)
    pairs = ((w @ keep) * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, ((w @ agree) * w).sum(axis=1) / pairs, math.nan)
