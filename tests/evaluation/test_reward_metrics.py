"""Reward-quality metrics: exact identities, brute-force references and scipy."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sp_stats

from rewardlab.evaluation import reward_metrics
from rewardlab.evaluation.reward_metrics import (
    UndefinedDistanceError,
    average_precision,
    best_threshold,
    epic_canonicalize,
    epic_distance,
    pearson,
    pearson_distance,
    point_biserial,
    preference_accuracy,
    roc_auc,
    roc_curve,
    spearman,
    starc_canonicalize,
    starc_distance,
    tabular_epic_distance,
    value_order_correlation,
)

S, A, GAMMA = 30, 4, 0.9

# --- correlations ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_pearson_and_spearman_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    x_tied = rng.integers(0, 5, size=50)  # many ties: average ranks
    assert pearson(x, y) == pytest.approx(sp_stats.pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(sp_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman(x_tied, y) == pytest.approx(sp_stats.spearmanr(x_tied, y).statistic, abs=1e-12)


def test_correlations_of_monotone_data() -> None:
    x = np.arange(10.0)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0, abs=1e-15)
    assert pearson(x, -x) == pytest.approx(-1.0, abs=1e-15)
    assert spearman(x, np.exp(x)) == 1.0
    assert spearman(x, -(x**3)) == -1.0


@pytest.mark.parametrize("fn", [pearson, spearman, pearson_distance])
def test_correlation_undefined_is_nan(fn: Callable[..., float]) -> None:
    assert math.isnan(fn([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert math.isnan(fn([7.0, 7.0], [1.0, 2.0]))
    assert math.isnan(fn([1.0], [2.0]))
    assert math.isnan(fn([], []))


@pytest.mark.parametrize("fn", [pearson, spearman, pearson_distance])
def test_correlation_rejects_bad_input(fn: Callable[..., float]) -> None:
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1.0, 2.0]], [[1.0, 2.0]])


def test_pearson_distance_is_sqrt_of_half_one_minus_rho() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=40), rng.normal(size=40)
    assert pearson_distance(x, y) == pytest.approx(math.sqrt((1 - pearson(x, y)) / 2), abs=1e-12)
    assert pearson_distance(x, 2 * x + 5) == pytest.approx(0.0, abs=1e-15)
    assert pearson_distance(x, -x) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("seed", range(10))
def test_pearson_distance_is_exact_near_zero(seed: int) -> None:
    # sqrt((1 - rho) / 2) would turn a rounding error of 1e-16 in rho into about 1e-8.
    x = np.random.default_rng(seed).normal(size=1000)
    assert pearson_distance(x, 3 * x + 1) < 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_point_biserial_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(80) < 0.3
    scores = rng.normal(size=80) + labels
    expected = sp_stats.pointbiserialr(labels, scores).statistic
    assert point_biserial(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert point_biserial(scores, labels.astype(int)) == pytest.approx(expected, abs=1e-12)
    assert point_biserial(scores, labels.astype(float)) == pytest.approx(expected, abs=1e-12)


def test_point_biserial_undefined_and_bad_labels() -> None:
    assert math.isnan(point_biserial([0.1, 0.5, 0.9], [0, 0, 0]))
    assert math.isnan(point_biserial([0.1, 0.5, 0.9], [True, True, True]))
    assert math.isnan(point_biserial([0.3, 0.3, 0.3], [0, 1, 0]))
    with pytest.raises(ValueError, match=r"0/1, got value\(s\) \[2\]"):
        point_biserial([0.1, 0.5, 0.9], [0, 1, 2])
    with pytest.raises(ValueError, match="same length"):
        point_biserial([0.1, 0.5, 0.9], [0, 1])


# --- value-order correlation -----------------------------------------------------------------


def test_voc_monotone_episodes() -> None:
    values = np.concatenate([np.arange(5.0), np.exp(np.arange(8.0))])
    mean, per = value_order_correlation(values, [0, 5])
    assert per.tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert mean == pytest.approx(1.0, abs=1e-12)
    mean, per = value_order_correlation(-values, [0, 5])
    assert per.tolist() == pytest.approx([-1.0, -1.0], abs=1e-12)
    assert mean == pytest.approx(-1.0, abs=1e-12)


def test_voc_matches_per_episode_spearman_with_ties() -> None:
    rng = np.random.default_rng(3)
    lengths = [6, 1, 0, 9, 4, 3, 12, 2]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    values = rng.integers(0, 4, size=sum(lengths)).astype(float)  # many ties
    values[starts[5] : starts[5] + 3] = 2.0  # a constant episode: undefined
    mean, per = value_order_correlation(values, starts)
    expected = []
    for start, n in zip(starts, lengths, strict=True):
        seg = values[start : start + n]
        ok = n >= 2 and seg.min() != seg.max()
        expected.append(sp_stats.spearmanr(seg, np.arange(n)).statistic if ok else np.nan)
    np.testing.assert_allclose(per, expected, atol=1e-12)
    assert np.isnan(per[[1, 2, 5]]).all()
    assert mean == pytest.approx(np.nanmean(expected), abs=1e-12)


def test_voc_min_length_and_undefined_mean() -> None:
    values = [0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 5.0]
    _, per = value_order_correlation(values, [0, 2, 4], min_length=3)
    assert np.isnan(per[:2]).all()
    assert per[2] == pytest.approx(sp_stats.spearmanr([2, 1, 5], [0, 1, 2]).statistic)
    mean, per = value_order_correlation([1.0, 2.0, 3.0], [0, 1, 2])  # all length 1
    assert math.isnan(mean) and np.isnan(per).all() and per.shape == (3,)


def test_voc_rejects_bad_starts() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        value_order_correlation([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="non-decreasing"):
        value_order_correlation([1.0, 2.0, 3.0], [0, 2, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        value_order_correlation([1.0, 2.0, 3.0], [0, 4])
    with pytest.raises(ValueError, match="min_length must be >= 2"):
        value_order_correlation([1.0, 2.0, 3.0], [0], min_length=1)


# --- detection -------------------------------------------------------------------------------


def _brute_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _brute_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    predicted = scores[None, :] >= thresholds[:, None]
    tp = (predicted & labels).sum(axis=1)
    fp = (predicted & ~labels).sum(axis=1)
    return thresholds, tp, fp


def _brute_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    _, tp, fp = _brute_rates(scores, labels)
    ap, prev_recall = 0.0, 0.0
    for t, f in zip(tp[1:], fp[1:], strict=True):  # skip +inf: nothing predicted
        recall = t / labels.sum()
        ap += (recall - prev_recall) * t / (t + f)
        prev_recall = recall
    return ap


def _tied_detection_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(200) < 0.35
    scores = np.round(rng.normal(size=200) + 0.8 * labels, 1)  # coarse: many ties
    return scores, labels


@pytest.mark.parametrize("seed", range(4))
def test_detection_metrics_match_brute_force(seed: int) -> None:
    scores, labels = _tied_detection_data(seed)
    assert roc_auc(scores, labels) == pytest.approx(_brute_auc(scores, labels), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(_brute_ap(scores, labels), abs=1e-12)
    thresholds, tp, fp = _brute_rates(scores, labels)
    fpr, tpr, thr = roc_curve(scores, labels)
    np.testing.assert_array_equal(thr, thresholds)
    np.testing.assert_allclose(tpr, tp / labels.sum(), atol=1e-15)
    np.testing.assert_allclose(fpr, fp / (~labels).sum(), atol=1e-15)
    balanced = (tp / labels.sum() + 1 - fp / (~labels).sum()) / 2
    k = int(np.argmax(balanced[1:])) + 1  # the first (highest) best distinct score
    assert best_threshold(scores, labels) == pytest.approx((thresholds[k], balanced[k]))


@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_is_trapezoid_area_of_roc_curve(seed: int) -> None:
    scores, labels = _tied_detection_data(seed)
    fpr, tpr, _ = roc_curve(scores, labels)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert roc_auc(scores, labels) == pytest.approx(area, abs=1e-12)


def test_detection_extremes() -> None:
    labels = np.array([0, 0, 0, 1, 1], dtype=bool)
    perfect = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert roc_auc(perfect, labels) == 1.0
    assert roc_auc(-perfect, labels) == 0.0
    assert roc_auc(np.full(5, 0.4), labels) == 0.5
    assert average_precision(perfect, labels) == 1.0
    assert best_threshold(perfect, labels) == (0.7, 1.0)
    # J = tpr - fpr is 0.5 at both 0.4 and 0.2: the higher threshold is returned.
    assert best_threshold([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]) == (0.4, 0.75)
    fpr, tpr, thr = roc_curve(perfect, labels)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, np.inf)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(thr) < 0).all()
    fpr, tpr, thr = roc_curve(np.full(5, 0.4), labels)  # ties collapse to one point
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert thr.tolist() == [np.inf, 0.4]


def test_roc_auc_of_random_scores_is_near_half() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.3
    assert abs(roc_auc(rng.normal(size=20_000), labels) - 0.5) < 0.03


def test_detection_with_an_empty_class() -> None:
    scores = [0.1, 0.5, 0.9]
    for labels in ([0, 0, 0], [1, 1, 1]):
        assert math.isnan(roc_auc(scores, labels))
        assert all(math.isnan(v) for v in best_threshold(scores, labels))
    assert math.isnan(average_precision(scores, [0, 0, 0]))
    assert average_precision(scores, [1, 1, 1]) == 1.0
    fpr, tpr, _ = roc_curve(scores, [0, 0, 0])
    assert np.isnan(tpr).all() and fpr.tolist() == [0.0, 1 / 3, 2 / 3, 1.0]


# --- preference accuracy ---------------------------------------------------------------------


def _brute_preference(s: np.ndarray, q: np.ndarray, min_gap: float) -> tuple[float, int]:
    total, n = 0.0, 0
    for i, j in itertools.combinations(range(len(s)), 2):
        if abs(q[i] - q[j]) > min_gap:
            n += 1
            total += 0.5 if s[i] == s[j] else float((s[i] > s[j]) == (q[i] > q[j]))
    return (total / n if n else math.nan), n


def test_preference_accuracy_extremes() -> None:
    q = np.random.default_rng(0).normal(size=40)
    n_pairs = 40 * 39 // 2
    assert preference_accuracy(q, q) == (1.0, n_pairs)
    assert preference_accuracy(-q, q) == (0.0, n_pairs)
    assert preference_accuracy(np.ones(40), q) == (0.5, n_pairs)
    acc, n = preference_accuracy(q, np.ones(40))  # no pair differs in quality
    assert math.isnan(acc) and n == 0


def test_preference_accuracy_min_gap_filters_pairs() -> None:
    q = np.array([0.0, 0.1, 0.5, 1.0])
    s = np.array([0.0, -1.0, 0.5, 1.0])  # gets only the closest pair (0.0, 0.1) wrong
    # gaps: 0.1, 0.5, 1.0, 0.4, 0.9, 0.5; > 0.45 keeps four pairs, all ordered right
    assert preference_accuracy(s, q, min_gap=0.45) == (1.0, 4)
    assert preference_accuracy(s, q) == (5 / 6, 6)
    with pytest.raises(ValueError, match="min_gap"):
        preference_accuracy(s, q, min_gap=-0.1)


@pytest.mark.parametrize("min_gap", [0.0, 0.3])
def test_preference_accuracy_matches_brute_force_in_blocks(
    min_gap: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    q = np.round(rng.normal(size=70), 1)  # ties in quality: never a qualifying pair
    s = np.round(q + rng.normal(size=70), 0)  # ties in scores: count 1/2
    expected = _brute_preference(s, q, min_gap)
    acc, n = preference_accuracy(s, q, min_gap=min_gap)
    assert n == expected[1] and acc == pytest.approx(expected[0], abs=1e-12)
    monkeypatch.setattr(reward_metrics, "_PAIR_BLOCK", 150)  # two rows per block
    assert preference_accuracy(s, q, min_gap=min_gap) == (acc, n)


def test_preference_accuracy_of_random_scores_is_near_half() -> None:
    rng = np.random.default_rng(2)
    acc, n = preference_accuracy(rng.normal(size=1000), rng.normal(size=1000))
    assert n == 1000 * 999 // 2
    assert abs(acc - 0.5) < 0.02


# --- EPIC ------------------------------------------------------------------------------------


def _table_reward(r: np.ndarray) -> reward_metrics.TransitionReward:
    def reward(s: np.ndarray, a: np.ndarray, s2: np.ndarray) -> np.ndarray:
        return np.asarray(r[s, a, s2])

    return reward


def _shaped(r: np.ndarray, phi: np.ndarray, gamma: float, scale: float = 1.0) -> np.ndarray:
    return scale * r + gamma * phi[None, None, :] - phi[:, None, None]


def _samples(
    rng: np.random.Generator, n: int, m: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    transitions = (rng.integers(0, S, n), rng.integers(0, A, n), rng.integers(0, S, n))
    return transitions, rng.integers(0, S, m), rng.integers(0, A, m)


def test_epic_canonicalize_matches_the_formula_in_any_chunking() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(S, A, S))
    (s, a, s2), cs, ca = _samples(rng, 50, 16)
    # Brute force: the M x M and per-transition means written out.
    mean_next = r[s2[:, None], ca[None, :], cs[None, :]].mean(axis=1)
    mean_here = r[s[:, None], ca[None, :], cs[None, :]].mean(axis=1)
    mean_all = r[cs[:, None], ca[None, :], cs[None, :]].mean()
    expected = r[s, a, s2] + GAMMA * mean_next - mean_here - GAMMA * mean_all
    for chunk_size in (1, 7, 16, 1 << 20):
        got = epic_canonicalize(_table_reward(r), (s, a, s2), cs, ca, GAMMA, chunk_size=chunk_size)
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_epic_canonicalize_removes_shaping_exactly() -> None:
    rng = np.random.default_rng(1)
    r, phi = rng.normal(size=(S, A, S)), 10 * rng.normal(size=S)
    transitions, cs, ca = _samples(rng, 500, 64)
    c = epic_canonicalize(_table_reward(r), transitions, cs, ca, GAMMA)
    c_shaped = epic_canonicalize(_table_reward(_shaped(r, phi, GAMMA)), transitions, cs, ca, GAMMA)
    np.testing.assert_allclose(c_shaped, c, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_epic_distance_invariances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r, phi = rng.normal(size=(S, A, S)), 5 * rng.normal(size=S)
    transitions, cs, ca = _samples(rng, 2000, 128)

    def d(other: np.ndarray) -> float:
        return epic_distance(_table_reward(r), _table_reward(other), transitions, cs, ca, GAMMA)

    assert d(_shaped(r, phi, GAMMA, scale=3.7)) == pytest.approx(0.0, abs=1e-9)
    assert d(-r) == pytest.approx(1.0, abs=1e-9)
    noisy = d(r + 0.5 * rng.normal(size=r.shape))
    assert 0.05 < noisy < 0.5
    assert 0.5 < d(-r + 0.5 * rng.normal(size=r.shape)) < 1.0


def test_epic_weights_equal_repeated_transitions() -> None:
    rng = np.random.default_rng(4)
    ra, rb = rng.normal(size=(S, A, S)), rng.normal(size=(S, A, S))
    (s, a, s2), cs, ca = _samples(rng, 300, 32)
    counts = rng.integers(0, 4, size=300)
    weighted = epic_distance(
        _table_reward(ra), _table_reward(rb), (s, a, s2), cs, ca, GAMMA, weights=counts
    )
    repeated = (np.repeat(s, counts), np.repeat(a, counts), np.repeat(s2, counts))
    assert weighted == pytest.approx(
        epic_distance(_table_reward(ra), _table_reward(rb), repeated, cs, ca, GAMMA), abs=1e-12
    )
    assert weighted != pytest.approx(
        epic_distance(_table_reward(ra), _table_reward(rb), (s, a, s2), cs, ca, GAMMA), abs=1e-3
    )


def test_epic_undefined_for_reward_constant_up_to_shaping() -> None:
    rng = np.random.default_rng(5)
    r, phi = rng.normal(size=(S, A, S)), rng.normal(size=S)
    transitions, cs, ca = _samples(rng, 400, 32)
    for constant in (np.full((S, A, S), 2.0), _shaped(np.zeros((S, A, S)), phi, GAMMA)):
        with pytest.raises(UndefinedDistanceError, match="constant up to shaping"):
            epic_distance(_table_reward(r), _table_reward(constant), transitions, cs, ca, GAMMA)


def test_epic_rejects_bad_input() -> None:
    rng = np.random.default_rng(6)
    r = _table_reward(rng.normal(size=(S, A, S)))
    (s, a, s2), cs, ca = _samples(rng, 10, 8)
    with pytest.raises(ValueError, match="equal lengths"):
        epic_canonicalize(r, (s, a[:5], s2), cs, ca, GAMMA)
    with pytest.raises(ValueError, match="equal length"):
        epic_canonicalize(r, (s, a, s2), cs, ca[:3], GAMMA)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        epic_canonicalize(r, (s, a, s2), cs, ca, 1.5)
    with pytest.raises(TypeError, match="integer indices"):
        epic_canonicalize(r, (s.astype(float), a, s2), cs, ca, GAMMA)
    with pytest.raises(ValueError, match=r"must return shape \(10,\)"):
        epic_canonicalize(lambda s, a, s2: np.zeros(3), (s, a, s2), cs, ca, GAMMA)
    with pytest.raises(ValueError, match="weights must have shape"):
        epic_distance(r, r, (s, a, s2), cs, ca, GAMMA, weights=np.ones(3))


def test_tabular_epic_invariances() -> None:
    rng = np.random.default_rng(7)
    r, phi = rng.normal(size=(S, A, S)), 5 * rng.normal(size=S)
    p = rng.dirichlet(np.ones(S))
    q = rng.dirichlet(np.ones(A))
    for kwargs in ({}, {"state_dist": p, "action_dist": q}):
        shaped = _shaped(r, phi, GAMMA, scale=0.3)
        assert tabular_epic_distance(r, shaped, GAMMA, **kwargs) == pytest.approx(0.0, abs=1e-9)
        assert tabular_epic_distance(r, -r, GAMMA, **kwargs) == pytest.approx(1.0, abs=1e-9)
        noisy = tabular_epic_distance(r, r + rng.normal(size=r.shape), GAMMA, **kwargs)
        assert 0.2 < noisy < 0.8
    with pytest.raises(ValueError, match="constant up to shaping"):
        tabular_epic_distance(r, _shaped(np.zeros_like(r), phi, GAMMA), GAMMA)


def test_tabular_epic_is_weighted_pearson_distance_of_canonical_rewards() -> None:
    rng = np.random.default_rng(8)
    ra, rb = rng.normal(size=(5, 2, 5)), rng.normal(size=(5, 2, 5))
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(2))
    w = rng.random(size=(5, 2, 5))

    def canonical(r: np.ndarray) -> np.ndarray:
        # Loops over every state, action and next state, spelled out.
        m = np.array(
            [sum(q[a] * p[t] * r[x, a, t] for a in range(2) for t in range(5)) for x in range(5)]
        )
        out = np.empty_like(r)
        for s, a, t in itertools.product(range(5), range(2), range(5)):
            out[s, a, t] = r[s, a, t] + GAMMA * m[t] - m[s] - GAMMA * (p @ m)
        return out

    ca, cb = canonical(ra).ravel(), canonical(rb).ravel()
    wn = w.ravel() / w.sum()
    cov = wn @ ((ca - wn @ ca) * (cb - wn @ cb))
    rho = cov / math.sqrt((wn @ (ca - wn @ ca) ** 2) * (wn @ (cb - wn @ cb) ** 2))
    got = tabular_epic_distance(ra, rb, GAMMA, state_dist=p, action_dist=q, weights=w)
    assert got == pytest.approx(math.sqrt((1 - rho) / 2), abs=1e-12)


def test_sampled_epic_converges_to_tabular_epic() -> None:
    rng = np.random.default_rng(9)
    ra = rng.normal(size=(S, A, S))
    phi = 3 * rng.normal(size=S)
    rb = _shaped(ra + rng.normal(size=ra.shape), phi, GAMMA)
    transitions, cs, ca = _samples(rng, 200_000, 512)
    sampled = epic_distance(_table_reward(ra), _table_reward(rb), transitions, cs, ca, GAMMA)
    exact = tabular_epic_distance(ra, rb, GAMMA)
    # Over 40 seeds of this setup the difference had mean 2e-4, sd 9e-4 and max 2.1e-3
    # (M = 512 coverage samples dominate): 0.01 is > 10 sd, while a wrong canonicalization
    # term moves the distance by far more (exact is about 0.38).
    assert 0.3 < exact < 0.45
    assert sampled == pytest.approx(exact, abs=0.01)


# --- STARC -----------------------------------------------------------------------------------


def _random_mdp(seed: int, n_s: int = 12, n_a: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Sparse random dynamics (3 successors per (s, a)) and a random reward."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n_s, n_a, n_s))
    for s, a in itertools.product(range(n_s), range(n_a)):
        succ = rng.choice(n_s, size=3, replace=False)
        p[s, a, succ] = rng.dirichlet(np.ones(3))
    return p, rng.normal(size=(n_s, n_a, n_s))


@pytest.mark.parametrize("random_policy", [False, True])
def test_starc_canonicalization_is_the_advantage(random_policy: bool) -> None:
    p, r = _random_mdp(0)
    pi = np.random.default_rng(1).dirichlet(np.ones(3), size=12) if random_policy else None
    # Independent reference: iterative policy evaluation.
    r_sa = (p * r).sum(axis=-1)
    probs = np.full((12, 3), 1 / 3) if pi is None else pi  # the default policy is uniform
    v = np.zeros(12)
    for _ in range(2000):
        v = (probs * (r_sa + GAMMA * p @ v)).sum(axis=1)
    q = r_sa + GAMMA * p @ v
    got = starc_canonicalize(r, p, GAMMA, policy=pi)
    assert got.shape == (12, 3)
    np.testing.assert_allclose(got, q - v[:, None], atol=1e-9)


def test_starc_distance_invariances() -> None:
    p, r = _random_mdp(2)
    rng = np.random.default_rng(3)
    phi = 4 * rng.normal(size=12)
    assert starc_distance(r, _shaped(r, phi, GAMMA, scale=2.5), p, GAMMA) == pytest.approx(
        0.0, abs=1e-9
    )
    # Rewards on impossible transitions, and changes that keep E_{S'} R, are irrelevant.
    redistributed = r + np.where(p == 0, rng.normal(size=r.shape), 0.0)
    assert starc_distance(r, redistributed, p, GAMMA) == pytest.approx(0.0, abs=1e-9)
    spread = r - (p * r).sum(axis=-1, keepdims=True)  # zero-mean part over S'
    assert starc_distance(r, r - spread, p, GAMMA) == pytest.approx(0.0, abs=1e-9)
    assert starc_distance(r, -r, p, GAMMA) == pytest.approx(1.0, abs=1e-9)
    unrelated = starc_distance(r, rng.normal(size=r.shape), p, GAMMA)
    assert 0.1 < unrelated < 0.95


def test_starc_distance_does_not_depend_on_the_shaping_potential() -> None:
    p, ra = _random_mdp(4)
    rng = np.random.default_rng(5)
    rb = rng.normal(size=ra.shape)
    base = starc_distance(ra, rb, p, GAMMA)
    assert 0.1 < base < 0.95
    for _ in range(3):
        phi_a, phi_b = 10 * rng.normal(size=12), 10 * rng.normal(size=12)
        shaped = starc_distance(_shaped(ra, phi_a, GAMMA), _shaped(rb, phi_b, GAMMA), p, GAMMA)
        assert shaped == pytest.approx(base, abs=1e-9)


def test_starc_zero_canonicalization_is_the_zero_vector() -> None:
    p, r = _random_mdp(6)
    shaping_only = _shaped(np.zeros_like(r), np.random.default_rng(7).normal(size=12), GAMMA)
    np.testing.assert_allclose(starc_canonicalize(shaping_only, p, GAMMA), 0.0, atol=1e-12)
    assert starc_distance(r, shaping_only, p, GAMMA) == pytest.approx(0.5, abs=1e-12)
    assert starc_distance(shaping_only, np.zeros_like(r), p, GAMMA) == 0.0


def test_starc_rejects_bad_input() -> None:
    p, r = _random_mdp(8)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\), got 1"):
        starc_distance(r, r, p, 1.0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\)"):
        starc_canonicalize(r, p, -0.1)
    with pytest.raises(ValueError, match="probability vectors over s'"):
        starc_canonicalize(r, 2 * p, GAMMA)
    with pytest.raises(ValueError, match="policy must have shape"):
        starc_canonicalize(r, p, GAMMA, policy=np.ones((12, 2)) / 2)
    with pytest.raises(ValueError, match="same shape"):
        starc_distance(r, r[:, :2], p, GAMMA)
