"""Rewards from preferences: Bradley-Terry as published, oracles, the label file, and a fit
that recovers the task's ordering of held-out segments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import rewardlab
from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
from rewardlab.learned import RewardNetConfig, TrainedOn, save_checkpoint
from rewardlab.learned.preferences import (
    Preference,
    Segment,
    SyntheticOracle,
    bradley_terry_loss,
    bradley_terry_probability,
    disagreement,
    fit_preferences,
    heron_label,
    label_pairs,
    read_preferences,
    sample_segments,
    segment_returns,
    task_values,
    write_preferences,
)

GRID = "rewardlab/GridEmpty-v0"


def test_bradley_terry_is_imitations_closed_form() -> None:
    # imitation's PreferenceModel (discount 1): p = 1 / (1 + exp(R_b - R_a)), then
    # noise_prob * 0.5 + (1 - noise_prob) * p.
    ra, rb, noise = np.array([2.0, -1.0, 0.0]), np.array([0.5, 3.0, 0.0]), 0.1
    expected = noise * 0.5 + (1 - noise) / (1 + np.exp(rb - ra))
    np.testing.assert_allclose(bradley_terry_probability(ra, rb, noise), expected, rtol=1e-12)
    assert bradley_terry_probability(np.array([800.0]), np.array([0.0]))[0] == 1.0  # no overflow
    # The loss is the labels' cross-entropy under that probability, ties as 1/2.
    labels = np.array([1.0, 0.0, 0.5])
    p = expected
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    got = bradley_terry_loss(torch.tensor(ra), torch.tensor(rb), torch.tensor(labels), noise=noise)
    assert math.isclose(float(got), want, rel_tol=1e-9)
    exact = bradley_terry_loss(torch.tensor(ra), torch.tensor(rb), torch.tensor(labels))
    p0 = 1 / (1 + np.exp(rb - ra))
    assert math.isclose(
        float(exact), -np.mean(labels * np.log(p0) + (1 - labels) * np.log(1 - p0)), rel_tol=1e-9
    )


def test_heron_compares_factors_in_order_of_importance() -> None:
    margins = [0.1, 0.1]
    assert heron_label([1.0, 0.0], [0.5, 9.0], margins) == 1.0  # the first factor decides
    assert heron_label([1.0, 0.0], [0.95, 9.0], margins) == 0.0  # within its margin: next
    assert heron_label([1.0, 5.0], [1.05, 5.05], margins) == 0.5  # all within: a tie
    with pytest.raises(ValueError, match="one entry per factor"):
        heron_label([1.0], [1.0, 2.0], margins)


def test_synthetic_oracle_rational_noisy_and_careless() -> None:
    rng = np.random.default_rng(0)
    ra, rb = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5 + 1e-3])
    np.testing.assert_array_equal(SyntheticOracle().labels(ra, rb, rng), [1.0, 0.0, 0.0])
    tied = SyntheticOracle(tie_margin=0.01).labels(ra, rb, rng)
    np.testing.assert_array_equal(tied, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(
        SyntheticOracle(error_rate=1.0).labels(ra, rb, rng), [0.0, 1.0, 1.0]
    )
    # Boltzmann-rational: the share preferring a matches sigmoid(beta * (R(a) - R(b))).
    many = SyntheticOracle(beta=2.0).labels(np.full(20000, 0.5), np.zeros(20000), rng)
    assert abs(many.mean() - 1 / (1 + math.exp(-1.0))) < 0.01
    with pytest.raises(ValueError, match="error_rate"):
        SyntheticOracle(error_rate=1.5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    kinds = {"expert": 6, "random": 6, "partial": 6, "near_miss": 6, "counterfactual": 6}
    config = DatasetConfig(GRID, episodes=kinds, frames=False, env_kwargs={"size": 5})
    return generate_dataset(config, tmp_path_factory.mktemp("prefs") / "ds")


def test_the_label_file_round_trips_and_names_bad_lines(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefs = [Preference(Segment(0, 0, 2), Segment(1, 1, 2), 1.0)]
    path = write_preferences(tmp_path / "p.jsonl", dataset.path, prefs)
    assert read_preferences(path) == (str(dataset.path), prefs)
    path.write_text(path.read_text() + '{"a": [0, 0], "b": [1, 1, 2], "label": 1}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:3: expected"):
        read_preferences(path)
    (tmp_path / "q.jsonl").write_text('{"a": [0, 0, 1]}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:1: a preference file starts with"):
        read_preferences(tmp_path / "q.jsonl")
    with pytest.raises(ValueError, match="does not fit episode 0"):
        segment_returns(dataset, [Segment(0, 0, 10_000)], np.zeros(dataset.n_states))


def test_a_fit_on_synthetic_preferences_orders_held_out_segments(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    truth = task_values(dataset, "progress")
    segments = sample_segments(dataset, 480, 3, rng)
    pairs = list(zip(segments[::2], segments[1::2], strict=True))
    prefs = label_pairs(dataset, pairs, truth, SyntheticOracle(tie_margin=1e-9), rng)
    train, heldout = prefs[:180], prefs[180:]
    with rewardlab.make(GRID, size=5) as env:
        task = rewardlab.get_task(env)
        layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        space = repr(env.observation_space)
    config = RewardNetConfig(inputs="state", state_layout=layout, hidden=(32,))
    fit = fit_preferences(dataset, train, config, ensemble=2, epochs=40, heldout=heldout)
    assert all(a is not None and a >= 0.85 for a in fit.heldout_accuracy), fit.heldout_accuracy
    spread = disagreement(dataset, fit.nets, config, [(p.a, p.b) for p in heldout[:20]])
    assert spread.shape == (20,) and np.all(spread >= 0)
    # The fitted net is a reward model anywhere: as a checkpoint, in a vector env.
    trained = TrainedOn(GRID, {"size": 5}, space, "bradley_terry", "synthetic (progress)", 0)
    path = save_checkpoint(tmp_path / "bt.pt", fit.nets[0], trained)
    spec = {"model": {"kind": "learned", "path": str(path), "device": "cpu"}}
    venv = rewardlab.make_vec_env(GRID, 2, spec, env_kwargs={"size": 5})
    venv.reset()
    assert np.all(np.isfinite(venv.step(np.array([0, 1]))[1]))
    venv.close()
