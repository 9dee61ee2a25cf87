"""Reward-quality metrics: how well a learned or hand-written reward matches a ground truth.

Four families, all vectorized numpy/scipy:

- Correlations of per-step rewards or episode returns with a ground truth: :func:`pearson`,
  :func:`spearman`, :func:`point_biserial` (with a goal label, the protocol of VLM-RM), and
  the value-order correlation :func:`value_order_correlation` (GVL) along expert episodes.
- Success detection from a reward used as a score: :func:`roc_curve`, :func:`roc_auc`,
  :func:`average_precision`, :func:`best_threshold`; and pairwise ordering of episodes,
  :func:`preference_accuracy`.
- EPIC (Gleave et al. 2020, "Quantifying Differences in Reward Functions") from samples,
  :func:`epic_canonicalize` and :func:`epic_distance`, on any state representation: states
  and actions are referenced by index into tables the caller owns (:data:`TransitionReward`).
- Exact distances on a finite MDP given as arrays: :func:`tabular_epic_distance`, and STARC
  (Skalse et al. 2023, "STARC: A General Framework For Quantifying Differences Between
  Reward Functions") with value-adjusted levelling, :func:`starc_canonicalize` and
  :func:`starc_distance`.

Conventions:

- Undefined is NaN, not an exception: a correlation with a constant input or fewer than two
  values, a detection metric with an empty class, a preference accuracy with no qualifying
  pair (reports print these as n/a). Malformed input (mismatched lengths, NaN or inf, bad
  labels) raises ``ValueError``. The reward distances raise ``ValueError`` where they are
  undefined (EPIC of a reward constant up to shaping), so that a caller cannot mistake "no
  answer" for a distance.
- Ties: Spearman and VOC use average ranks; ROC AUC counts a tied positive/negative pair as
  1/2; ROC and PR points are taken at the distinct score values, so tied scores collapse to
  one point.
- Distances are in ``[0, 1]``: EPIC is ``sqrt((1 - rho) / 2)`` *with* the 1/2 of Gleave et
  al. (a reward and its negation are at distance 1; one package omits the 1/2, giving
  ``[0, sqrt(2)]``), STARC is ``||n(R_a) - n(R_b)||_2 / 2``.

This module imports only numpy and scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sp_stats

__all__ = [
    "CanonicalReward",
    "TransitionReward",
    "UndefinedDistanceError",
    "average_precision",
    "best_threshold",
    "canonical_distance",
    "epic_canonical",
    "epic_canonicalize",
    "epic_distance",
    "pearson",
    "pearson_distance",
    "point_biserial",
    "preference_accuracy",
    "roc_auc",
    "roc_curve",
    "spearman",
    "starc_canonicalize",
    "starc_distance",
    "tabular_epic_distance",
    "value_order_correlation",
]


class UndefinedDistanceError(ValueError):
    """A reward distance is undefined for these rewards (EPIC of a reward that is constant up
    to shaping): no answer, as opposed to malformed input."""


TransitionReward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A batched reward on indexed transitions.

Called with integer index arrays ``(state_idx, action_idx, next_state_idx)`` of equal length
``n`` into a state table and an action table owned by the caller; returns the ``(n,)`` float
rewards. Indexing lets any state representation (observations, frames, tabular states) be
canonicalized: EPIC must evaluate the reward on transitions that never occurred.
"""

# A canonicalized reward whose standard deviation is below this fraction of the magnitude of
# the terms it was computed from is constant up to rounding: the shaping terms cancel exactly
# in exact arithmetic, and floating-point sums leave residues of a few ulps of that magnitude.
_CONSTANT_RTOL = 1e-10

# Pairs compared per block in preference_accuracy: about 4M (a 2048 x 2048 block), a few tens
# of MB of temporaries whatever the number of episodes.
_PAIR_BLOCK = 1 << 22

_PROB_ATOL = 1e-8

_DEFAULT_CHUNK = 1 << 20


# --- validation ------------------------------------------------------------------------------


def _as_1d(x: ArrayLike, what: str) -> np.ndarray:
    """``x`` as a finite 1-D float64 array."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a))
        raise ValueError(
            f"{what} must be finite; {bad.size} value(s) are NaN or inf (first at index "
            f"{bad[0]}); drop or impute them first"
        )
    return a


def _as_pair(x: ArrayLike, y: ArrayLike, xname: str, yname: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_1d(x, xname), _as_1d(y, yname)
    if a.size != b.size:
        raise ValueError(
            f"{xname} and {yname} must have the same length, got {a.size} and {b.size}"
        )
    return a, b


def _as_labels(labels: ArrayLike, n: int) -> np.ndarray:
    """Binary labels (bool, or numbers that are all 0 or 1) as a bool array of length ``n``."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size != n:
        raise ValueError(f"scores and labels must have the same length, got {n} and {y.size}")
    if y.dtype != np.bool_:
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"labels must be bool or 0/1 numbers, got dtype {y.dtype}")
        if not np.isin(y, (0, 1)).all():
            bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
            raise ValueError(
                f"labels must be bool or 0/1, got value(s) {bad.tolist()}; threshold them first"
            )
    return y.astype(bool)


def _as_index(x: ArrayLike, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D index array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what} must hold integer indices, got dtype {a.dtype}")
    return a


def _check_gamma(gamma: float, *, allow_one: bool) -> float:
    g = float(gamma)
    ok = 0.0 <= g <= 1.0 if allow_one else 0.0 <= g < 1.0
    if not ok:
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"gamma must be in {interval}, got {gamma!r}")
    return g


def _as_weights(weights: ArrayLike, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Non-negative finite weights of ``shape``, normalized to sum 1."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what} must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{what} must have a positive sum, got {total}")
    return w / total


def _is_stochastic(p: np.ndarray) -> bool:
    """Whether ``p`` holds probability vectors along its last axis (finite, >= 0, sum 1)."""
    return bool(
        np.isfinite(p).all()
        and (p >= 0).all()
        and np.allclose(p.sum(-1), 1.0, rtol=0, atol=_PROB_ATOL)
    )


def _as_distribution(p: ArrayLike | None, n: int, what: str) -> np.ndarray:
    """A probability vector of length ``n`` (uniform when ``p`` is None)."""
    if p is None:
        return np.full(n, 1.0 / n)
    a = np.asarray(p, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {a.shape}")
    if not _is_stochastic(a):
        raise ValueError(
            f"{what} must be a probability vector (finite, non-negative, summing to 1), got "
            f"sum {a.sum():.6g}; divide it by its sum"
        )
    return a


# --- correlations ----------------------------------------------------------------------------


def _unit(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``(z, sd)``: ``x`` centered (weighted by ``w`` summing to 1), scaled to unit L2 norm.

    ``z_i = sqrt(w_i) (x_i - mu_w) / ||sqrt(w) (x - mu_w)||`` so that the (weighted) Pearson
    correlation of two vectors is ``z_x . z_y`` and ``||z_x - z_y||^2 = 2 (1 - rho)``.
    ``sd`` is the (weighted) standard deviation; ``z`` is zero when ``sd`` is.
    """
    c = x - x.mean() if w is None else np.sqrt(w) * (x - w @ x)
    norm = float(np.linalg.norm(c))
    sd = norm / math.sqrt(x.size) if w is None else norm
    return (c / norm if norm > 0 else np.zeros_like(c)), sd


def _is_constant(x: np.ndarray) -> bool:
    return x.size < 2 or bool(x.min() == x.max())


def _half_chord(za: np.ndarray, zb: np.ndarray) -> float:
    """``||za - zb|| / 2`` for unit vectors: ``sqrt((1 - za.zb) / 2)`` without cancellation.

    ``sqrt(1 - rho)`` turns a rounding error of 1e-16 in ``rho`` near 1 into 1e-8; the chord
    between the standardized vectors carries only the rounding of the vectors themselves.
    """
    return min(max(float(np.linalg.norm(za - zb)) / 2.0, 0.0), 1.0)


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation of two samples.

    ``rho = sum (x - x_bar)(y - y_bar) / sqrt(sum (x - x_bar)^2 sum (y - y_bar)^2)``.

    Args:
        x: 1-D values.
        y: 1-D values, same length as ``x``.

    Returns:
        The correlation in ``[-1, 1]``; NaN when ``x`` or ``y`` is constant or has fewer than
        two values.

    Raises:
        ValueError: If the lengths differ or a value is NaN or inf.

    Example:
        >>> pearson([1, 2, 3], [2, 4, 7])
        0.9933992677987828
        >>> pearson([1, 2, 3], [5, 5, 5])
        nan
    """
    a, b = _as_pair(x, y, "x", "y")
    if _is_constant(a) or _is_constant(b):
        return math.nan
    return min(max(float(_unit(a)[0] @ _unit(b)[0]), -1.0), 1.0)


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation: :func:`pearson` of the average ranks of ``x`` and ``y``.

    Tied values share the mean of the ranks they span (``scipy.stats.rankdata``'s default).
    Arguments, result and errors as for :func:`pearson`.

    Example:
        >>> spearman([1, 2, 3, 4], [1, 10, 100, 1000])
        1.0
    """
    a, b = _as_pair(x, y, "x", "y")
    return pearson(_sp_stats.rankdata(a), _sp_stats.rankdata(b))


def point_biserial(scores: ArrayLike, labels: ArrayLike) -> float:
    """Point-biserial correlation: :func:`pearson` of the scores with 0/1 labels.

    ``r_pb = (m_1 - m_0) / s * sqrt(n_1 n_0 / n^2)`` with ``m_k`` the mean score of class
    ``k`` and ``s`` the population standard deviation of all scores; equal to
    ``scipy.stats.pointbiserialr``. With a goal label as the ground truth this is the
    correlation VLM-RM reports, and what EPIC reduces to for a goal-indicator reward.

    Args:
        scores: 1-D scores (e.g. per-step rewards).
        labels: 1-D bool or 0/1 labels (e.g. success of the next state), same length.

    Returns:
        The correlation in ``[-1, 1]``; NaN when a class is empty or the scores are constant.

    Raises:
        ValueError: If the lengths differ, a score is NaN or inf, or a label is not 0/1.

    Example:
        >>> point_biserial([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1])
        0.9899494936611666
    """
    s = _as_1d(scores, "scores")
    return pearson(s, _as_labels(labels, s.size).astype(np.float64))


def value_order_correlation(
    values: ArrayLike, episode_starts: ArrayLike, *, min_length: int = 2
) -> tuple[float, np.ndarray]:
    """Value-order correlation (VOC, from GVL): per-episode Spearman of values with time.

    For episode ``e`` with values ``v_0 .. v_{T-1}``, ``VOC_e = spearman(v, [0, .., T-1])``
    (ties in ``v`` get average ranks); 1 for a strictly increasing progress signal, -1 for a
    strictly decreasing one.

    Args:
        values: 1-D, the episodes' values concatenated in order.
        episode_starts: 1-D int offsets of each episode in ``values``: non-decreasing,
            starting at 0, at most ``len(values)``. Episode ``e`` is
            ``values[starts[e]:starts[e + 1]]`` (the last runs to the end).
        min_length: Episodes shorter than this get NaN (at least 2).

    Returns:
        ``(mean, per_episode)``: the mean over the episodes whose correlation is defined (NaN
        if none is), and the ``(n_episodes,)`` correlations, NaN for an episode that is
        shorter than ``min_length`` or has constant values.

    Raises:
        ValueError: For non-finite values, malformed ``episode_starts`` or ``min_length < 2``.

    Example:
        >>> mean, per_episode = value_order_correlation([0, 1, 2, 5, 4, 3, 7], [0, 3, 6])
        >>> float(mean), per_episode.tolist()
        (0.0, [1.0, -1.0, nan])
    """
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)):
        raise ValueError(f"min_length must be an int >= 2, got {min_length!r}")
    if min_length < 2:
        raise ValueError(
            f"min_length must be >= 2 (a correlation needs 2 values), got {min_length}"
        )
    v = _as_1d(values, "values")
    n = v.size
    starts = _as_index(episode_starts, "episode_starts").astype(np.int64)
    if starts.size == 0 or starts[0] != 0:
        raise ValueError(
            f"episode_starts must be non-empty and start at 0, got {starts[:5].tolist()}"
        )
    if (np.diff(starts) < 0).any() or starts[-1] > n:
        raise ValueError(
            f"episode_starts must be non-decreasing offsets into values (length {n}), got "
            f"{starts.tolist() if starts.size <= 10 else starts[:10].tolist() + ['...']}"
        )
    lengths = np.diff(np.append(starts, n))
    n_ep = starts.size
    seg = np.repeat(np.arange(n_ep), lengths)
    t = (np.arange(n) - starts[seg]).astype(np.float64)

    # Within-episode average ranks (0-based): ranked by (episode, value), each episode holds
    # the consecutive ranks from its start on.
    key = seg * (n + 1) + _sp_stats.rankdata(v, method="dense").astype(np.int64)
    ranks = _sp_stats.rankdata(key) - 1.0 - starts[seg]

    # Pearson of ranks with t per episode; both have mean (T - 1) / 2 (average ranks keep the
    # rank sum). The sums are of half-integers, exact in float64 for any realistic T.
    size = lengths.astype(np.float64)
    mid = (size - 1.0) / 2.0
    cov = np.bincount(seg, weights=ranks * t, minlength=n_ep) - size * mid * mid
    var_r = np.bincount(seg, weights=ranks * ranks, minlength=n_ep) - size * mid * mid
    var_t = size * (size * size - 1.0) / 12.0
    defined = (lengths >= min_length) & (var_r > 0)
    per_episode = np.full(n_ep, np.nan)
    per_episode[defined] = np.clip(
        cov[defined] / np.sqrt(var_r[defined] * var_t[defined]), -1.0, 1.0
    )
    mean = float(per_episode[defined].mean()) if defined.any() else math.nan
    return mean, per_episode


# --- detection -------------------------------------------------------------------------------


def _threshold_counts(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """``(thresholds, tps, fps, n_pos, n_neg)``: at each distinct score ``c`` (descending), the
    positives ``tps`` and negatives ``fps`` with ``score >= c``."""
    s = _as_1d(scores, "scores")
    y = _as_labels(labels, s.size)
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    # Last index of each run of equal scores: predicting `score >= c` takes the whole run.
    last = np.append(np.flatnonzero(np.diff(s_desc) != 0), s.size - 1) if s.size else order
    tps = np.cumsum(y_desc)[last]
    fps = last + 1 - tps
    n_pos = int(y.sum())
    return s_desc[last], tps, fps, n_pos, s.size - n_pos


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the detector ``score >= threshold``, one point per distinct score.

    ``fpr(c) = #{neg: score >= c} / n_neg`` and ``tpr(c) = #{pos: score >= c} / n_pos`` at
    the thresholds ``c = [+inf, distinct scores descending]``; the ``+inf`` point is
    ``(0, 0)`` and the last point ``(1, 1)``. Tied scores collapse to one point (as
    scikit-learn's ``roc_curve(..., drop_intermediate=False)``).

    Args:
        scores: 1-D scores, higher meaning "more likely positive".
        labels: 1-D bool or 0/1 labels, same length.

    Returns:
        ``(fpr, tpr, thresholds)``, each of length ``1 + #distinct scores``. A rate whose
        class is empty is all NaN.

    Example:
        >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> fpr.tolist(), tpr.tolist(), thr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.35, 0.1])
    """
    thresholds, tps, fps, n_pos, n_neg = _threshold_counts(scores, labels)
    tps = np.append(0, tps).astype(np.float64)
    fps = np.append(0, fps).astype(np.float64)
    tpr = tps / n_pos if n_pos else np.full(tps.size, np.nan)
    fpr = fps / n_neg if n_neg else np.full(fps.size, np.nan)
    return fpr, tpr, np.append(np.inf, thresholds)


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, by the Mann-Whitney U statistic.

    ``AUC = P(S_pos > S_neg) + P(S_pos = S_neg) / 2 = (sum_{pos} rank - n_pos (n_pos + 1) / 2)
    / (n_pos n_neg)`` with average ranks for ties: 1 for a perfect detector, 0 for an
    inverted one, exactly 0.5 for constant scores. Arguments as for :func:`roc_curve`.

    Returns:
        The AUC in ``[0, 1]``; NaN when a class is empty.

    Example:
        >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    s = _as_1d(scores, "scores")
    y = _as_labels(labels, s.size)
    n_pos = int(y.sum())
    n_neg = s.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    u = _sp_stats.rankdata(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision, the area under the precision-recall curve as a step sum.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct scores ``c_n`` in descending order,
    with ``P_n`` and ``R_n`` the precision and recall of ``score >= c_n`` and ``R_0 = 0``
    (scikit-learn's ``average_precision_score``; no interpolation). A perfect ranking scores
    1; a random one about the positive rate. Arguments as for :func:`roc_curve`.

    Returns:
        AP in ``[0, 1]``; NaN when there is no positive.

    Example:
        >>> average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])  # 0.5 * 1 + 0.5 * 2/3
        0.8333333333333333
    """
    _, tps, fps, n_pos, _ = _threshold_counts(scores, labels)
    if n_pos == 0:
        return math.nan
    precision = tps / (tps + fps)
    recall = tps / n_pos
    return float(np.diff(recall, prepend=0.0) @ precision)


def best_threshold(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """The threshold with the best balanced accuracy for the detector ``score >= threshold``.

    Maximizes Youden's ``J = tpr - fpr`` over the distinct score values; balanced accuracy is
    ``(tpr + 1 - fpr) / 2 = (1 + J) / 2``. Among tied thresholds the highest is returned.
    Arguments as for :func:`roc_curve`.

    Returns:
        ``(threshold, balanced_accuracy)``; ``(nan, nan)`` when a class is empty.

    Example:
        >>> best_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        (0.8, 0.75)
    """
    thresholds, tps, fps, n_pos, n_neg = _threshold_counts(scores, labels)
    if n_pos == 0 or n_neg == 0:
        return math.nan, math.nan
    j = tps / n_pos - fps / n_neg
    k = int(np.argmax(j))  # the first maximum: thresholds are descending
    return float(thresholds[k]), float((1.0 + j[k]) / 2.0)


def preference_accuracy(
    scores: ArrayLike, quality: ArrayLike, *, min_gap: float = 0.0
) -> tuple[float, int]:
    """Fraction of pairs of episodes that ``scores`` orders as ``quality`` does.

    Over the unordered pairs ``{i, j}`` with ``|q_i - q_j| > min_gap``, a pair scores 1 when
    ``sign(s_i - s_j) = sign(q_i - q_j)``, 1/2 when ``s_i = s_j`` and 0 otherwise (as
    preference-based reward learning's Bradley-Terry labels are judged).

    Args:
        scores: 1-D, e.g. episode returns under the reward being judged.
        quality: 1-D ground-truth quality, same length (e.g. true returns).
        min_gap: Pairs whose quality differs by at most this are left out (too close to call).

    Returns:
        ``(accuracy, n_pairs)``: 1 for ``scores = quality``, 0 for ``scores = -quality``, 0.5
        for constant scores; ``(nan, 0)`` when no pair qualifies.

    Raises:
        ValueError: If the lengths differ, a value is NaN or inf, or ``min_gap`` is negative.

    Example:
        >>> preference_accuracy([1.0, 3.0, 2.0], [1.0, 2.0, 3.0])
        (0.6666666666666666, 3)
    """
    s, q = _as_pair(scores, quality, "scores", "quality")
    if not (math.isfinite(min_gap) and min_gap >= 0):
        raise ValueError(f"min_gap must be finite and >= 0, got {min_gap!r}")
    n = s.size
    twice_agree = 0  # 2 per agreeing pair, 1 per tie in scores: exact integer arithmetic
    n_pairs = 0
    rows = max(1, _PAIR_BLOCK // max(n, 1))
    cols = np.arange(n)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        dq = q[i0:i1, None] - q[None, :]
        keep = (np.arange(i0, i1)[:, None] < cols) & (np.abs(dq) > min_gap)
        same = np.sign(s[i0:i1, None] - s[None, :])[keep] * np.sign(dq[keep])
        n_pairs += int(keep.sum())
        twice_agree += 2 * int((same > 0).sum()) + int((same == 0).sum())
    if n_pairs == 0:
        return math.nan, 0
    return twice_agree / (2 * n_pairs), n_pairs


# --- EPIC from samples -----------------------------------------------------------------------


def _call_reward(
    reward: TransitionReward, s: np.ndarray, a: np.ndarray, s2: np.ndarray
) -> np.ndarray:
    r = np.asarray(reward(s, a, s2), dtype=np.float64)
    if r.shape != s.shape:
        raise ValueError(
            f"reward must return shape {s.shape} for {s.size} transitions, got {r.shape}"
        )
    if not np.isfinite(r).all():
        raise ValueError("reward returned NaN or inf; EPIC needs finite rewards everywhere")
    return r


def _coverage_means(
    reward: TransitionReward,
    states: np.ndarray,
    cov_actions: np.ndarray,
    cov_states: np.ndarray,
    chunk_size: int,
) -> np.ndarray:
    """``mean_j R(x, A_j, S_j)`` for each ``x`` in ``states``, whole states per reward call."""
    m = cov_actions.size
    per_call = max(1, chunk_size // m)
    tile_a, tile_s = np.tile(cov_actions, per_call), np.tile(cov_states, per_call)
    means = np.empty(states.size)
    for i in range(0, states.size, per_call):
        block = states[i : i + per_call]
        rows = block.size * m
        r = _call_reward(reward, np.repeat(block, m), tile_a[:rows], tile_s[:rows])
        means[i : i + block.size] = r.reshape(block.size, m).mean(axis=1)
    return means


class CanonicalReward(NamedTuple):
    """EPIC's canonicalized reward on some transitions (:func:`epic_canonical`).

    Attributes:
        values: ``(n,)`` the canonicalized rewards.
        scale: The largest magnitude among the terms they were summed from: a spread below
            rounding of this is no spread (the reward is constant up to shaping).
    """

    values: np.ndarray
    scale: float


def epic_canonical(
    reward: TransitionReward,
    transitions: tuple[ArrayLike, ArrayLike, ArrayLike],
    coverage_states: ArrayLike,
    coverage_actions: ArrayLike,
    gamma: float,
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> CanonicalReward:
    """:func:`epic_canonicalize` with the scale :func:`canonical_distance` needs, so that
    one canonicalization serves several distances (one per reward against one truth, or
    per bootstrap replicate)."""
    g = _check_gamma(gamma, allow_one=True)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
    if len(transitions) != 3:
        raise ValueError(
            f"transitions must be a tuple (states, actions, next_states), got {len(transitions)} "
            "arrays"
        )
    s, a, s2 = (_as_index(x, n) for x, n in zip(transitions, ("s", "a", "s'"), strict=True))
    if not s.size == a.size == s2.size:
        raise ValueError(
            f"transition index arrays must have equal lengths, got {s.size}, {a.size}, {s2.size}"
        )
    if s.size == 0:
        raise ValueError("transitions is empty: pass at least one (s, a, s') transition")
    cs = _as_index(coverage_states, "coverage_states")
    ca = _as_index(coverage_actions, "coverage_actions")
    if cs.size != ca.size or cs.size == 0:
        raise ValueError(
            "coverage_states and coverage_actions must be non-empty and of equal length (M "
            f"samples (A_j, S'_j)), got {cs.size} and {ca.size}"
        )
    r = _call_reward(reward, s, a, s2)
    # One coverage mean per distinct state among s, s' and the coverage states S_i: the last
    # term, mean_{i,j} R(S_i, A_j, S'_j), is the mean over i of the per-state means of S_i.
    states, inverse = np.unique(np.concatenate([s, s2, cs]), return_inverse=True)
    means = _coverage_means(reward, states, ca, cs, chunk_size)
    n = s.size
    m_s, m_s2, m_cov = means[inverse[:n]], means[inverse[n : 2 * n]], means[inverse[2 * n :]]
    canonical = r + g * m_s2 - m_s - g * m_cov.mean()
    scale = max(float(np.abs(r).max()), float(np.abs(means).max()))
    return CanonicalReward(canonical, scale)


def epic_canonicalize(
    reward: TransitionReward,
    transitions: tuple[ArrayLike, ArrayLike, ArrayLike],
    coverage_states: ArrayLike,
    coverage_actions: ArrayLike,
    gamma: float,
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> np.ndarray:
    """EPIC's canonically shaped reward on the given transitions, from coverage samples.

    With ``M`` coverage samples ``(S_j, A_j)`` (``S_j`` = ``coverage_states[j]``, used as both
    the ``S`` and the ``S'`` of the coverage distribution ``D_S x D_A x D_S``)::

        C(R)(s, a, s') = R(s, a, s') + gamma mean_j R(s', A_j, S_j) - mean_j R(s, A_j, S_j)
                         - gamma mean_{i,j} R(S_i, A_j, S_j)

    the sample version of Gleave et al.'s ``R + E[gamma R(s', A, S') - R(s, A, S')
    - gamma R(S, A, S')]``. Because the same samples stand for ``S`` and ``S'``, it is
    *exactly* invariant to potential shaping ``gamma Phi(s') - Phi(s)``, not only in
    expectation: the shaping contributes ``gamma^2 Phi_bar - gamma Phi(s')`` and
    ``Phi(s) - gamma Phi_bar`` through the two per-state means, ``gamma (1 - gamma) Phi_bar``
    through the last term (``Phi_bar = mean_j Phi(S_j)``), and all of it cancels with the
    shaping term itself.

    ``mean_j R(x, A_j, S_j)`` is computed once per distinct state ``x`` among ``s``, ``s'``
    and the coverage states, calling ``reward`` on at most ``max(chunk_size, M)`` rows at a
    time.

    Args:
        reward: Batched reward on indexed transitions (:data:`TransitionReward`).
        transitions: ``(s, a, s')`` integer index arrays of length ``n``.
        coverage_states: ``(M,)`` int, states sampled from ``D_S``.
        coverage_actions: ``(M,)`` int, actions sampled from ``D_A``.
        gamma: Discount in ``[0, 1]``, the one the shaping uses.
        chunk_size: Most rows per call of ``reward`` (at least ``M``: whole states per call).

    Returns:
        ``(n,)`` canonicalized rewards.

    Raises:
        ValueError: For mismatched or empty index arrays, ``gamma`` outside ``[0, 1]``, or a
            reward that returns the wrong shape or non-finite values.
        TypeError: For non-integer index arrays.

    Example:
        >>> table = np.array([0.0, 1.0, 5.0])  # a reward of the next state only
        >>> c = epic_canonicalize(lambda s, a, s2: table[s2], ([0, 1], [0, 0], [1, 2]),
        ...                       [0, 1, 2], [0, 0, 0], gamma=0.9)
        >>> c.round(6).tolist()  # R(s') minus its coverage mean 2
        [-1.0, 3.0]
    """
    return epic_canonical(
        reward, transitions, coverage_states, coverage_actions, gamma, chunk_size=chunk_size
    ).values


def _standardized_or_raise(
    canonical: np.ndarray, w: np.ndarray | None, scale: float, name: str
) -> np.ndarray:
    z, sd = _unit(canonical, w)
    if sd <= _CONSTANT_RTOL * scale:
        raise UndefinedDistanceError(
            f"EPIC is undefined for a reward that is constant up to shaping: the canonicalized "
            f"{name} has zero variance over the given transitions (and weights); compare it by "
            "another metric, or pass transitions where it varies"
        )
    return z


def pearson_distance(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson distance ``sqrt((1 - pearson(x, y)) / 2)``, in ``[0, 1]``.

    Computed as ``||z_x - z_y|| / 2`` of the standardized vectors (the same value, without
    the loss of precision of ``sqrt(1 - rho)`` near ``rho = 1``). Arguments as for
    :func:`pearson`.

    Returns:
        0 for positively proportional deviations, 1 for negatively proportional ones; NaN
        when :func:`pearson` is undefined (constant input, fewer than two values).

    Example:
        >>> round(pearson_distance([1, 2, 3], [-2, -4, -6]), 12)
        1.0
    """
    a, b = _as_pair(x, y, "x", "y")
    if _is_constant(a) or _is_constant(b):
        return math.nan
    return _half_chord(_unit(a)[0], _unit(b)[0])


def epic_distance(
    reward_a: TransitionReward,
    reward_b: TransitionReward,
    transitions: tuple[ArrayLike, ArrayLike, ArrayLike],
    coverage_states: ArrayLike,
    coverage_actions: ArrayLike,
    gamma: float,
    *,
    weights: ArrayLike | None = None,
) -> float:
    """EPIC distance between two rewards, from samples (Gleave et al. 2020).

    ``D = sqrt((1 - rho) / 2)`` with ``rho`` the Pearson correlation, over ``transitions``
    (weighted by ``weights``), of the rewards canonicalized by :func:`epic_canonicalize`:
    0 when the rewards differ only by potential shaping and positive scaling, 1 between a
    reward and its negation (the 1/2 of Gleave et al.; see the module's conventions).
    Computed as :func:`pearson_distance` is, exact to rounding near ``rho = 1``.

    Args:
        reward_a: Batched reward on indexed transitions (:data:`TransitionReward`).
        reward_b: Same, on the same state and action tables.
        transitions: ``(s, a, s')`` integer index arrays of length ``n``, drawn from the
            distribution the rewards are compared on.
        coverage_states: ``(M,)`` int coverage states (see :func:`epic_canonicalize`).
        coverage_actions: ``(M,)`` int coverage actions.
        gamma: Discount in ``[0, 1]``.
        weights: Optional ``(n,)`` non-negative weights of the transitions.

    Returns:
        The distance in ``[0, 1]``.

    Raises:
        UndefinedDistanceError: If either canonicalized reward is constant (EPIC is undefined
            for a reward that is constant up to shaping).
        ValueError: For malformed input as in :func:`epic_canonicalize`.

    Example:
        >>> table = np.array([[0.0, 1.0], [2.0, 0.5]])  # R[s, s']
        >>> sas = ([0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1])
        >>> def r(s, a, s2):
        ...     return table[s, s2]
        >>> def neg(s, a, s2):
        ...     return -table[s, s2]
        >>> round(epic_distance(r, neg, sas, [0, 1], [0, 0], gamma=0.9), 12)
        1.0
    """
    a, b = (
        epic_canonical(r, transitions, coverage_states, coverage_actions, gamma)
        for r in (reward_a, reward_b)
    )
    return canonical_distance(a, b, weights=weights)


def canonical_distance(
    a: CanonicalReward, b: CanonicalReward, *, weights: ArrayLike | None = None
) -> float:
    """EPIC's ``sqrt((1 - rho) / 2)`` between two rewards canonicalized on the same
    transitions (:func:`epic_canonical`), weighted by ``weights``.

    Raises:
        UndefinedDistanceError: If either has no spread over the transitions (and weights).
        ValueError: For mismatched lengths or bad weights.
    """
    if a.values.shape != b.values.shape:
        raise ValueError(
            f"canonicalized rewards of different lengths: {a.values.size}, {b.values.size}"
        )
    w = None if weights is None else _as_weights(weights, a.values.shape, "weights")
    za = _standardized_or_raise(a.values, w, a.scale, "reward_a")
    zb = _standardized_or_raise(b.values, w, b.scale, "reward_b")
    return _half_chord(za, zb)


# --- exact distances on a finite MDP ---------------------------------------------------------


def _as_reward_tensor(reward: ArrayLike, what: str) -> np.ndarray:
    r = np.asarray(reward, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] != r.shape[2] or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(f"{what} must have shape (S, A, S) with S, A >= 1, got {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"{what} must be finite")
    return r


def _as_reward_pair(
    reward_a: ArrayLike, reward_b: ArrayLike
) -> tuple[np.ndarray, np.ndarray, int, int]:
    ra = _as_reward_tensor(reward_a, "reward_a")
    rb = _as_reward_tensor(reward_b, "reward_b")
    if ra.shape != rb.shape:
        raise ValueError(
            f"reward_a and reward_b must have the same shape, got {ra.shape} and {rb.shape}"
        )
    return ra, rb, ra.shape[0], ra.shape[1]


def tabular_epic_distance(
    reward_a: ArrayLike,
    reward_b: ArrayLike,
    gamma: float,
    *,
    state_dist: ArrayLike | None = None,
    action_dist: ArrayLike | None = None,
    weights: ArrayLike | None = None,
) -> float:
    """Exact EPIC distance between two rewards of a finite MDP.

    With ``S, S' ~ state_dist`` and ``A ~ action_dist`` independent,
    ``m(x) = E[R(x, A, S')]`` and::

        C(R)(s, a, s') = R(s, a, s') + gamma m(s') - m(s) - gamma E[m(S)]

    then ``D = sqrt((1 - rho) / 2)`` with ``rho`` the Pearson correlation of ``C(R_a)`` and
    ``C(R_b)`` over all ``(s, a, s')`` weighted by ``weights``, as in :func:`epic_distance`.

    Args:
        reward_a: ``(S, A, S)`` rewards ``R[s, a, s']``.
        reward_b: ``(S, A, S)`` rewards.
        gamma: Discount in ``[0, 1]``.
        state_dist: ``(S,)`` coverage distribution of states; uniform by default.
        action_dist: ``(A,)`` coverage distribution of actions; uniform by default.
        weights: ``(S, A, S)`` non-negative weights of the correlation (normalized here);
            by default ``state_dist x action_dist x state_dist``.

    Returns:
        The distance in ``[0, 1]``.

    Raises:
        UndefinedDistanceError: If either canonicalized reward is constant on the weighted
            support (EPIC is undefined for a reward constant up to shaping).
        ValueError: For bad shapes, distributions or ``gamma``.

    Example:
        >>> r = np.arange(8.0).reshape(2, 2, 2)
        >>> scaled = tabular_epic_distance(r, 3 * r, 0.9)
        >>> negated = tabular_epic_distance(r, -r, 0.9)
        >>> round(scaled, 12), round(negated, 12)
        (0.0, 1.0)
    """
    g = _check_gamma(gamma, allow_one=True)
    ra, rb, n_s, n_a = _as_reward_pair(reward_a, reward_b)
    p = _as_distribution(state_dist, n_s, "state_dist")
    q = _as_distribution(action_dist, n_a, "action_dist")
    if weights is None:
        w = np.einsum("s,a,t->sat", p, q, p).reshape(-1)
    else:
        w = _as_weights(weights, ra.shape, "weights").reshape(-1)
    zs = []
    for r, name in ((ra, "reward_a"), (rb, "reward_b")):
        m = np.einsum("xat,a,t->x", r, q, p)
        canonical = r + g * m[None, None, :] - m[:, None, None] - g * (p @ m)
        scale = max(float(np.abs(r).max()), float(np.abs(m).max()))
        zs.append(_standardized_or_raise(canonical.reshape(-1), w, scale, name))
    return _half_chord(zs[0], zs[1])


def _starc_canonical(
    reward: ArrayLike, transition_probs: ArrayLike, gamma: float, policy: ArrayLike | None
) -> tuple[np.ndarray, float]:
    """The canonicalization and the magnitude of the terms it was computed from."""
    g = _check_gamma(gamma, allow_one=False)
    r = _as_reward_tensor(reward, "reward")
    n_s, n_a, _ = r.shape
    p = np.asarray(transition_probs, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"transition_probs must have the reward's shape {r.shape}, got {p.shape}")
    if not _is_stochastic(p):
        raise ValueError(
            "transition_probs[s, a] must be probability vectors over s' (finite, non-negative, "
            "summing to 1); give absorbing states a self-loop"
        )
    if policy is None:
        pi = np.full((n_s, n_a), 1.0 / n_a)
    else:
        pi = np.asarray(policy, dtype=np.float64)
        if pi.shape != (n_s, n_a):
            raise ValueError(f"policy must have shape (S, A) = {(n_s, n_a)}, got {pi.shape}")
        if not _is_stochastic(pi):
            raise ValueError("policy[s] must be probability vectors over actions (summing to 1)")
    r_sa = np.einsum("sat,sat->sa", p, r)
    p_pi = np.einsum("sa,sat->st", pi, p)
    v = np.linalg.solve(np.eye(n_s) - g * p_pi, np.einsum("sa,sa->s", pi, r_sa))
    canonical = r_sa - v[:, None] + g * np.einsum("sat,t->sa", p, v)
    return canonical, max(float(np.abs(r_sa).max()), float(np.abs(v).max()))


def starc_canonicalize(
    reward: ArrayLike,
    transition_probs: ArrayLike,
    gamma: float,
    *,
    policy: ArrayLike | None = None,
) -> np.ndarray:
    """STARC's value-adjusted levelling of a reward on a finite MDP (Skalse et al. 2023).

    ``c(R)(s, a) = E_{S' ~ P(s, a)}[R(s, a, S') - V^pi(s) + gamma V^pi(S')]``, where
    ``V^pi`` is the exact value of ``pi`` under ``R`` and ``P``, from the linear solve
    ``(I - gamma P_pi) V = r_pi``. This is the advantage ``Q^pi(s, a) - V^pi(s)``. It removes
    potential shaping (``V`` shifts by ``-Phi``) and the way ``R`` spreads over next states
    (only ``E_{S'}`` of ``R`` enters, so the result does not depend on ``s'``).

    Args:
        reward: ``(S, A, S)`` rewards ``R[s, a, s']``.
        transition_probs: ``(S, A, S)`` probabilities ``P[s, a, s']``, each ``P[s, a]``
            summing to 1 (absorbing states self-loop).
        gamma: Discount in ``[0, 1)`` (the values must be finite).
        policy: ``(S, A)`` action probabilities of ``pi``; uniform by default.

    Returns:
        ``(S, A)`` canonicalized rewards.

    Raises:
        ValueError: If ``gamma`` is not in ``[0, 1)``, or for bad shapes or probabilities.

    Example:
        >>> p = np.zeros((2, 1, 2)); p[0, 0, 1] = p[1, 0, 1] = 1.0  # 0 -> 1, 1 absorbing
        >>> r = np.zeros((2, 1, 2)); r[0, 0, 1] = 1.0
        >>> starc_canonicalize(r, p, 0.5).tolist()  # one action: the advantage is 0
        [[0.0], [0.0]]
    """
    return _starc_canonical(reward, transition_probs, gamma, policy)[0]


def starc_distance(
    reward_a: ArrayLike,
    reward_b: ArrayLike,
    transition_probs: ArrayLike,
    gamma: float,
    *,
    policy: ArrayLike | None = None,
) -> float:
    """STARC distance ``||n(R_a) - n(R_b)||_2 / 2`` with ``n(R) = c(R) / ||c(R)||_2``.

    ``c`` is :func:`starc_canonicalize` (value-adjusted levelling) and the L2 norm is over
    all ``(s, a)``. The distance is in ``[0, 1]``: 0 iff the rewards differ only by potential
    shaping, positive scaling and redistribution over next states (changes of ``R(s, a, s')``
    where ``P(s' | s, a) = 0``, or that keep ``E_{S'} R``); 1 for a reward and its negation.
    A reward whose canonicalization is zero (it is shaping only, or all actions are equally
    good everywhere) has norm 0: its normalized form is taken as the zero vector, so its
    distance to any non-trivial reward is 1/2 and to another such reward 0. (Canonicalized
    norms below ``1e-10`` of the reward's and values' magnitude count as 0: they are
    rounding residue.)

    Args:
        reward_a: ``(S, A, S)`` rewards.
        reward_b: ``(S, A, S)`` rewards.
        transition_probs: ``(S, A, S)`` transition probabilities.
        gamma: Discount in ``[0, 1)``.
        policy: ``(S, A)`` policy of the value adjustment; uniform by default.

    Returns:
        The distance in ``[0, 1]``.

    Raises:
        ValueError: If ``gamma`` is not in ``[0, 1)``, or for bad shapes or probabilities.

    Example:
        >>> p = np.zeros((2, 2, 2)); p[:, 0, 0] = p[:, 1, 1] = 1.0  # action a goes to state a
        >>> r = np.zeros((2, 2, 2)); r[:, :, 1] = 1.0  # reward for reaching state 1
        >>> scaled, negated = starc_distance(r, 2 * r, p, 0.9), starc_distance(r, -r, p, 0.9)
        >>> round(scaled, 12), round(negated, 12)
        (0.0, 1.0)
    """
    _as_reward_pair(reward_a, reward_b)
    normalized = []
    for r in (reward_a, reward_b):
        c, scale = _starc_canonical(r, transition_probs, gamma, policy)
        norm = float(np.linalg.norm(c))
        normalized.append(c / norm if norm > _CONSTANT_RTOL * scale else np.zeros_like(c))
    return min(float(np.linalg.norm(normalized[0] - normalized[1])) / 2.0, 1.0)
