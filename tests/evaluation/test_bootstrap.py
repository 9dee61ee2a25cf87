"""The weighted replicate metrics equal the plain metrics on the expanded resampled data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.evaluation import bootstrap as bs
from rewardlab.evaluation import reward_metrics as rm


def _dataset(rng: np.random.Generator, n_episodes: int = 9, ties: bool = True):
    lengths = rng.integers(1, 12, size=n_episodes)
    episode = np.repeat(np.arange(n_episodes), lengths)
    n = episode.size
    # Rounded scores: many ties, the hard case for ranks, AUC and thresholds.
    scores = rng.normal(size=n).round(1 if ties else 12)
    labels = rng.random(n) < 0.3
    progress = rng.random(n).round(1)
    return episode, scores, labels, progress


def _expanded(counts: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Rows of the resampled dataset: each episode's rows, as often as it was drawn."""
    rows = [np.flatnonzero(episode == e) for e in range(counts.size)]
    return np.concatenate([np.tile(rows[e], int(c)) for e, c in enumerate(counts)])


def _same(a: float, b: float, tol: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=tol)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_weighted_metric_equals_the_metric_on_the_resampled_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    episode, scores, labels, progress = _dataset(rng)
    n_episodes = int(episode.max()) + 1
    quality = rng.integers(0, 3, size=n_episodes) * 0.5
    ep_scores = rng.normal(size=n_episodes).round(1)
    boot = bs.EpisodeBootstrap.draw(episode, n_episodes, reps=25, seed=seed)
    y = labels.astype(np.float64)
    rankings = [
        bs.Ranking(scores, episode, labels=y),
        bs.Ranking(progress, episode),
        bs.Ranking(y, episode),
    ]
    score_episodes = bs.Ranking(ep_scores)
    per_episode = np.where(rng.random(n_episodes) < 0.3, np.nan, rng.normal(size=n_episodes))
    for w_ep in boot.blocks():
        rs, rp, ry = (r.on(w_ep) for r in rankings)
        re, rq = score_episodes.on(w_ep), bs.Ranking(quality).on(w_ep)
        got = {
            "pearson": bs.w_pearson(rs, rp),
            "biserial": bs.w_pearson(rs, ry),
            "distance": bs.w_pearson_distance(rs, rp),
            "spearman": bs.w_spearman(rs, rp),
            "episode_spearman": bs.w_spearman(re, rq),
            "auc": bs.w_roc_auc(rs),
            "ap": bs.w_average_precision(rs),
            "threshold": bs.w_best_threshold(rs)[0],
            "balanced": bs.w_best_threshold(rs)[1],
            "preference": bs.w_preference(ep_scores, quality, w_ep, min_gap=0.05),
            "mean": bs.w_mean(per_episode, w_ep),
        }
        for b, counts in enumerate(w_ep):
            rows = _expanded(counts, episode)
            eps = np.repeat(np.arange(n_episodes), counts.astype(int))
            s, yy, pr = scores[rows], labels[rows], progress[rows]
            threshold, balanced = rm.best_threshold(s, yy)
            finite = per_episode[eps][np.isfinite(per_episode[eps])]
            want = {
                "pearson": rm.pearson(s, pr),
                "biserial": rm.point_biserial(s, yy),
                "distance": rm.pearson_distance(s, pr),
                "spearman": rm.spearman(s, pr),
                "episode_spearman": rm.spearman(ep_scores[eps], quality[eps]),
                "auc": rm.roc_auc(s, yy),
                "ap": rm.average_precision(s, yy),
                "threshold": threshold,
                "balanced": balanced,
                "preference": rm.preference_accuracy(ep_scores[eps], quality[eps], min_gap=0.05)[0],
                "mean": finite.mean() if finite.size else math.nan,
            }
            for key, value in want.items():
                tol = 1e-7 if key == "distance" else 1e-9  # the distance is from sums
                assert _same(float(got[key][b]), float(value), tol), (key, b, got[key][b], value)


def test_replicates_without_a_class_or_spread_are_undefined() -> None:
    episode = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.5, 0.5])
    labels = np.array([0.0, 0.0, 1.0, 0.0])
    w = np.array([[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]])  # episode 0 twice; 1 twice
    w_ep = w[:, [0, 2]]
    r = bs.Ranking(scores, episode, labels=labels).on(w_ep)
    y = bs.Ranking(labels, episode).on(w_ep)
    auc = bs.w_roc_auc(r)
    assert math.isnan(auc[0]) and auc[1] == 0.5  # no positive / tied scores
    rho = bs.w_pearson(r, y)
    assert math.isnan(rho[0]) and math.isnan(rho[1])  # constant labels / constant scores
    assert np.isnan(bs.w_spearman(r, y)).all()
    assert np.isnan(bs.w_best_threshold(r)[1][0])
    with pytest.raises(ValueError, match="without labels"):
        bs.w_roc_auc(y)


def test_pearson_keeps_its_precision_on_a_large_offset() -> None:
    rng = np.random.default_rng(0)
    x = 1e9 + rng.normal(size=200)
    y = x - 1e9 + 0.1 * rng.normal(size=200)
    w = rng.multinomial(200, np.full(200, 1 / 200), size=3).astype(float)
    got = bs.w_pearson(bs.Ranking(x).on(w), bs.Ranking(y).on(w))  # one element per episode
    for b in range(3):
        rows = np.repeat(np.arange(200), w[b].astype(int))
        assert got[b] == pytest.approx(rm.pearson(x[rows], y[rows]), abs=1e-9)


def test_percentile_interval_needs_most_replicates_defined() -> None:
    values = np.r_[np.linspace(0.0, 1.0, 101), np.full(10, np.nan)]
    low, high = bs.percentile_interval(values)
    assert low == pytest.approx(0.025) and high == pytest.approx(0.975)
    assert all(map(math.isnan, bs.percentile_interval(np.r_[0.5, np.full(3, np.nan)])))


def test_draw_is_seeded_and_sums_to_the_episode_count() -> None:
    episode = np.repeat(np.arange(5), 3)
    a = bs.EpisodeBootstrap.draw(episode, 5, reps=50, seed=3)
    b = bs.EpisodeBootstrap.draw(episode, 5, reps=50, seed=3)
    assert np.array_equal(a.counts, b.counts)
    assert (a.counts.sum(axis=1) == 5).all()
    with pytest.raises(ValueError, match="reps"):
        bs.EpisodeBootstrap.draw(episode, 5, reps=0, seed=0)


def test_sparse_count_matrices_give_the_same_replicates(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    episode, scores, labels, progress = _dataset(rng)
    y = labels.astype(np.float64)
    w = bs.EpisodeBootstrap.draw(episode, int(episode.max()) + 1, reps=20, seed=1).counts
    dense = bs.Ranking(scores, episode, labels=y).on(w)
    monkeypatch.setattr(bs, "_DENSE_COUNTS", 0)  # as for a large dataset
    sparse = bs.Ranking(scores, episode, labels=y).on(w)
    for fn in (bs.w_roc_auc, bs.w_average_precision, lambda r: bs.w_best_threshold(r)[1]):
        assert np.allclose(fn(dense), fn(sparse), equal_nan=True)


def test_pearson_is_exact_for_episodes_at_very_different_levels() -> None:
    # One episode near 0, one near 1e9, unit noise in each: subtracting sums of squares
    # would cancel; the replicates must still equal the metric on the resampled rows.
    rng = np.random.default_rng(3)
    episode = np.repeat([0, 1], 50)
    x = np.r_[rng.normal(size=50), 1e9 + rng.normal(size=50)]
    y = np.r_[rng.normal(size=50), rng.normal(size=50)]
    w = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    got = bs.w_pearson(bs.Ranking(x, episode).on(w), bs.Ranking(y, episode).on(w))
    for b, counts in enumerate(w):
        rows = _expanded(counts, episode)
        assert got[b] == pytest.approx(rm.pearson(x[rows], y[rows]), abs=1e-9)
