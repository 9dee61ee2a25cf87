"""Run statistics: exact values vs hand computation and scipy, bootstrap coverage, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from rewardlab.evaluation import (
    Interval,
    aggregate,
    aggregate_iqm,
    aggregate_mean,
    iqm,
    iqm_curve,
    normalized_auc,
    performance_profile,
    performance_profile_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    steps_to_threshold,
    steps_to_threshold_summary,
    stratified_bootstrap_ci,
)

# --- IQM ----------------------------------------------------------------------------------


def test_iqm_is_mean_of_middle_half() -> None:
    assert iqm(np.arange(1, 9)) == np.mean([3, 4, 5, 6])
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter
    assert iqm([100.0, 1.0, 2.0, 3.0, -100.0, 4.0, 5.0, 6.0]) == np.mean([2, 3, 4, 5])
    assert iqm([7.0]) == 7.0


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_matches_scipy_trim_mean(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(n, 3))
    np.testing.assert_allclose(iqm(x, axis=0), sp_stats.trim_mean(x, 0.25, axis=0), rtol=1e-14)
    assert iqm(x[:, 0]) == pytest.approx(sp_stats.trim_mean(x[:, 0], 0.25), rel=1e-14)


def test_iqm_over_several_axes_pools_them() -> None:
    x = np.random.default_rng(0).normal(size=(4, 5, 6))
    pooled = sp_stats.trim_mean(x.transpose(1, 0, 2).reshape(5, -1), 0.25, axis=1)
    np.testing.assert_allclose(iqm(x, axis=(0, 2)), pooled, rtol=1e-14)
    np.testing.assert_allclose(iqm(x, axis=(-1, 0)), pooled, rtol=1e-14)
    assert iqm(x, axis=None) == pytest.approx(sp_stats.trim_mean(x.reshape(-1), 0.25))
    np.testing.assert_allclose(
        np.asarray(aggregate_iqm(x)), [float(iqm(m, axis=None)) for m in x], rtol=1e-14
    )
    np.testing.assert_allclose(aggregate_mean(x), x.mean(axis=(1, 2)), rtol=1e-14)


def test_iqm_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        iqm([])


# --- stratified bootstrap -----------------------------------------------------------------


def test_bootstrap_ci_covers_true_mean_at_about_nominal_rate() -> None:
    rng = np.random.default_rng(123)
    trials, hits = 200, 0
    for _ in range(trials):
        x = rng.normal(3.0, 2.0, size=30)
        ci = stratified_bootstrap_ci({"x": x}, aggregate_mean, reps=400, rng=rng)["x"]
        hits += ci.low <= 3.0 <= ci.high
    # Percentile intervals of a mean from 30 normal draws cover slightly under 95%.
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_ci_shrinks_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=10), rng.normal(size=1000)
    cis = stratified_bootstrap_ci({"small": small, "large": large}, reps=500, rng=1)
    width = {k: ci.high - ci.low for k, ci in cis.items()}
    assert 0 < width["large"] < 0.25 * width["small"]  # ~ sqrt(10/1000) = 0.1


def test_bootstrap_ci_is_seeded() -> None:
    x = {"a": np.random.default_rng(0).random((6, 3)), "b": np.arange(5.0)}
    first = stratified_bootstrap_ci(x, reps=300, rng=7)
    assert first == stratified_bootstrap_ci(x, reps=300, rng=7)
    assert first == stratified_bootstrap_ci(x, reps=300, rng=np.random.default_rng(7))
    assert first != stratified_bootstrap_ci(x, reps=300, rng=8)


def test_bootstrap_ci_point_and_interval_bounds() -> None:
    x = np.random.default_rng(2).random((9, 2))
    ci = stratified_bootstrap_ci({"x": x}, aggregate_iqm, reps=300)["x"]
    assert ci.point == iqm(x, axis=None)
    assert x.min() <= ci.low <= ci.high <= x.max()


@pytest.mark.parametrize("statistic", [aggregate_iqm, aggregate_mean])
def test_bootstrap_ci_of_constant_sample_is_degenerate(statistic: object) -> None:
    ci = stratified_bootstrap_ci({"c": np.full((7, 2), 0.75)}, statistic, reps=200)["c"]  # type: ignore[arg-type]
    assert ci == Interval(0.75, 0.75, 0.75)


def test_bootstrap_resamples_runs_within_each_task() -> None:
    # Each run averages 0.5 over the two tasks: resampling whole runs would always give 0.5;
    # resampling runs independently per task does not.
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    ci = stratified_bootstrap_ci({"x": x}, aggregate_mean, reps=500)["x"]
    assert ci.point == 0.5
    assert ci.low < 0.5 < ci.high
    # Within a task the runs are resampled: a task whose runs agree stays fixed.
    y = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert stratified_bootstrap_ci({"y": y}, aggregate_mean, reps=200)["y"] == Interval(
        0.5, 0.5, 0.5
    )


def test_one_task_1d_equals_2d() -> None:
    x = np.random.default_rng(3).random(8)
    assert stratified_bootstrap_ci({"x": x}, reps=200) == stratified_bootstrap_ci(
        {"x": x[:, None]}, reps=200
    )


def test_bootstrap_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        stratified_bootstrap_ci({})
    with pytest.raises(ValueError, match=r"scores\['b'\].*\(run, task\) = \(1, 0\)"):
        stratified_bootstrap_ci({"a": [1.0, 2.0], "b": [1.0, math.nan]})
    with pytest.raises(ValueError, match="must map"):
        stratified_bootstrap_ci({"a": [1.0, 2.0]}, lambda s: np.mean(s), reps=10)
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci({"a": [1.0, 2.0]}, confidence=95)
    with pytest.raises(ValueError, match="reps"):
        stratified_bootstrap_ci({"a": [1.0, 2.0]}, reps=0)
    with pytest.raises(TypeError, match="rng"):
        stratified_bootstrap_ci({"a": [1.0, 2.0]}, rng=0.5)  # type: ignore[arg-type]


def test_aggregate_is_iqm_then_mean_from_one_generator() -> None:
    x = np.random.default_rng(4).random((10, 2))
    out = aggregate({"x": x}, reps=300, rng=5)
    gen = np.random.default_rng(5)
    assert (
        out["x"]["iqm"] == stratified_bootstrap_ci({"x": x}, aggregate_iqm, reps=300, rng=gen)["x"]
    )
    assert (
        out["x"]["mean"]
        == stratified_bootstrap_ci({"x": x}, aggregate_mean, reps=300, rng=gen)["x"]
    )
    assert out["x"]["mean"].point == pytest.approx(x.mean())


def test_interval_overlaps() -> None:
    assert Interval(0.5, 0.4, 0.6).overlaps(Interval(0.7, 0.6, 0.8))
    assert not Interval(0.5, 0.4, 0.6).overlaps(Interval(0.7, 0.61, 0.8))
    assert Interval(1.0, 0.2, 0.3).to_dict() == {"point": 1.0, "low": 0.2, "high": 0.3}


# --- probability of improvement -----------------------------------------------------------


def test_poi_identical_and_dominated() -> None:
    x = np.random.default_rng(0).integers(0, 4, size=(9, 3)).astype(float)  # many ties
    assert probability_of_improvement(x, x) == 0.5
    assert probability_of_improvement(x + 10, x) == 1.0
    assert probability_of_improvement(x, x + 10) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_poi_matches_mann_whitney_and_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=7).astype(float)
    y = rng.integers(0, 5, size=11).astype(float)
    u = sp_stats.mannwhitneyu(x, y).statistic
    pairwise = np.mean((x[:, None] > y) + 0.5 * (x[:, None] == y))
    assert probability_of_improvement(x, y) == pytest.approx(u / (7 * 11), abs=1e-15)
    assert probability_of_improvement(x, y) == pytest.approx(pairwise, abs=1e-15)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == 1.0


def test_poi_averages_over_tasks() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.random((5, 3)), rng.random((8, 3))
    per_task = [probability_of_improvement(x[:, k], y[:, k]) for k in range(3)]
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_task), abs=1e-15)
    with pytest.raises(ValueError, match="same number of tasks"):
        probability_of_improvement(x, y[:, :2])


def test_poi_ci() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(10), rng.random(12)
    ci = probability_of_improvement_ci(x, y, reps=300, rng=3)
    assert ci.point == probability_of_improvement(x, y)
    assert 0.0 <= ci.low < ci.point < ci.high <= 1.0
    assert ci == probability_of_improvement_ci(x, y, reps=300, rng=3)
    assert probability_of_improvement_ci(x + 2, y, reps=100) == Interval(1.0, 1.0, 1.0)


# --- performance profiles ---------------------------------------------------------------


def test_performance_profile_is_the_empirical_fraction_above_tau() -> None:
    scores = np.array([0.0, 0.2, 0.2, 0.5, 0.9, 1.0, 1.0, 1.0])
    taus = np.array([-0.1, 0.0, 0.2, 0.3, 0.9, 0.99, 1.0])
    expected = [8 / 8, 7 / 8, 5 / 8, 5 / 8, 3 / 8, 3 / 8, 0 / 8]  # strictly greater than tau
    assert performance_profile(scores, taus).tolist() == expected
    two_tasks = np.stack([scores, scores[::-1] * 0], axis=1)
    np.testing.assert_array_equal(
        performance_profile(two_tasks, taus),
        (np.array(expected) + (taus < 0)) / 2,  # task 2 is all zeros
    )


def test_performance_profile_band() -> None:
    scores = np.random.default_rng(0).random(10)
    taus = np.linspace(0, 1, 11)
    point, low, high = performance_profile_ci(scores, taus, reps=300)
    np.testing.assert_array_equal(point, performance_profile(scores, taus))
    assert point.shape == low.shape == high.shape == (11,)
    assert (low <= high).all() and (low >= 0).all() and (high <= 1).all()
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0  # below / at every score
    assert (np.diff(low) <= 0).all() and (np.diff(high) <= 0).all()


# --- learning-curve area and steps to threshold ------------------------------------------


def test_normalized_auc_of_constant_curve_is_one() -> None:
    assert normalized_auc([0, 10, 20], [1.0, 1.0, 1.0], budget=50) == 1.0
    assert normalized_auc([5, 10, 20], [1.0, 1.0, 1.0], budget=50) == 1.0  # starts at step 5
    assert normalized_auc([0, 10, 80], [1.0, 1.0, 1.0], budget=50) == 1.0  # cut at budget
    assert normalized_auc([0, 10], [4.0, 4.0], budget=20, max_value=4.0) == 1.0


def test_normalized_auc_by_hand() -> None:
    # Step from 0 to 1 between steps 10 and 20; held at 1 from 30 to the budget 40:
    # area = 0 + (0 + 1) / 2 * 10 + 10 + 10 = 25 over 40 steps.
    assert normalized_auc([0, 10, 20, 30], [0.0, 0.0, 1.0, 1.0], budget=40) == 25 / 40
    # Starting at step 10: area = 5 + 10 + 10 = 25 over 30 steps.
    assert normalized_auc([10, 20, 30], [0.0, 1.0, 1.0], budget=40) == pytest.approx(25 / 30)
    # Budget between evaluations: the curve is interpolated there (0.5 at step 5).
    assert normalized_auc([0, 10, 20], [0.0, 1.0, 1.0], budget=5) == (0.5 * 5 / 2) / 5
    curves = np.array([[0.0, 0.0, 1.0, 1.0], [1.0, 0.5, 0.5, 0.0]])
    batched = normalized_auc([0, 10, 20, 30], curves, budget=35)
    assert isinstance(batched, np.ndarray)
    np.testing.assert_allclose(
        batched, [float(normalized_auc([0, 10, 20, 30], c, budget=35)) for c in curves], rtol=1e-15
    )
    np.testing.assert_allclose(batched, [20 / 35, (7.5 + 5 + 2.5) / 35], rtol=1e-15)


def test_normalized_auc_errors() -> None:
    with pytest.raises(ValueError, match="budget"):
        normalized_auc([10, 20], [0.0, 1.0], budget=10)
    with pytest.raises(ValueError, match="strictly increasing"):
        normalized_auc([0, 20, 10], [0.0, 1.0, 1.0], budget=30)
    with pytest.raises(ValueError, match="match steps"):
        normalized_auc([0, 10, 20], [0.0, 1.0], budget=30)
    with pytest.raises(ValueError, match=r"run\(s\) \[1\]"):
        normalized_auc([0, 10], [[0.0, 1.0], [math.nan, 1.0]], budget=30)


def test_steps_to_threshold_counts_censored_runs() -> None:
    steps = [0, 10, 20, 30]
    values = [[0.1, 0.5, 0.8, 0.9], [0.9, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.79], [0, 0.8, 1, 1]]
    first, reached = steps_to_threshold(steps, values, 0.8)
    np.testing.assert_array_equal(first, [20.0, 0.0, np.nan, 10.0])
    assert reached.tolist() == [True, True, False, True]
    summary = steps_to_threshold_summary(first, reached)
    assert (summary.n_runs, summary.n_reached, summary.n_never) == (4, 3, 1)
    assert summary.median == 10.0 and summary.iqm == 10.0  # of 0, 10, 20 (trim 0 of 3)

    first, reached = steps_to_threshold(steps, np.zeros((3, 4)), 0.5)
    never = steps_to_threshold_summary(first, reached)
    assert (never.n_reached, never.n_never) == (0, 3)
    assert math.isnan(never.median) and math.isnan(never.iqm)

    one, hit = steps_to_threshold(steps, [0.0, 0.0, 0.6, 0.0], 0.5)
    assert (float(one), bool(hit)) == (20.0, True)


def test_steps_to_threshold_summary_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="finite wherever reached"):
        steps_to_threshold_summary([np.nan, 10.0], [True, True])
    with pytest.raises(ValueError, match="must match"):
        steps_to_threshold_summary([1.0, 10.0], [True])


# --- IQM learning curves -------------------------------------------------------------------


def test_iqm_curve_point_is_per_column_iqm() -> None:
    curves = np.random.default_rng(0).random((9, 6))
    point, low, high = iqm_curve(curves, reps=300, rng=1)
    np.testing.assert_allclose(point, [float(iqm(curves[:, t])) for t in range(6)], rtol=1e-14)
    assert point.shape == low.shape == high.shape == (6,)
    assert (low <= high).all()
    assert (curves.min(axis=0) <= low).all() and (high <= curves.max(axis=0)).all()
    again = iqm_curve(curves, reps=300, rng=1)
    for a, b in zip((point, low, high), again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_iqm_curve_resamples_whole_runs() -> None:
    # Each run is flat over time: resampling the same runs at every step keeps the band flat.
    levels = np.random.default_rng(2).random(7)
    curves = np.repeat(levels[:, None], 5, axis=1)
    point, low, high = iqm_curve(curves, reps=300)
    for band in (point, low, high):
        assert (band == band[0]).all()
    assert low[0] < point[0] < high[0]
    _, low_c, high_c = iqm_curve(np.full((4, 3), 0.25), reps=50)
    assert (low_c == 0.25).all() and (high_c == 0.25).all()
    bad = np.zeros((4, 3))
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"run\(s\) \[2\]"):
        iqm_curve(bad, reps=10)
