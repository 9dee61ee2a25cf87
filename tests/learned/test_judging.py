"""Judging a learned reward on episodes it did not learn from, whatever dataset it learned
from, and the env settings of that dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset, load_dataset
from rewardlab.learned.judging import HELDOUT_SEED_OFFSET, dataset_env_kwargs, judging_seed
from rewardlab.learned.labels import learn_from_labels

GRID = "rewardlab/GridEmpty-v0"


def test_the_judging_seed_clears_every_training_seed() -> None:
    assert judging_seed(3) == 3 + HELDOUT_SEED_OFFSET
    assert judging_seed(0, [5, 9999]) == HELDOUT_SEED_OFFSET
    assert judging_seed(0, [10_000, 10_041, 10_007]) == 10_042


def test_a_user_dataset_at_the_judging_seeds_is_not_judged_on_itself(tmp_path: Path) -> None:
    kinds = {"expert": 2, "random": 2, "partial": 2}
    config = DatasetConfig(GRID, kinds, HELDOUT_SEED_OFFSET, {"size": 5}, frames=False)
    ds = generate_dataset(config, tmp_path / "user")
    with pytest.raises(ValueError, match=r"recorded with env kwargs \{'size': 5\}, not"):
        dataset_env_kwargs(ds, {"size": 6})
    assert dataset_env_kwargs(ds, None) == {"size": 5}
    out = tmp_path / "out"
    learn_from_labels(GRID, out, dataset=ds.path, epochs=2, episodes=2)
    summary = json.loads((out / "summary.json").read_text())
    trained = {e.seed for e in ds.episodes}
    judged = {e.seed for e in load_dataset(out / "eval" / "dataset").episodes}
    assert summary["judging_seed"] > max(trained) and not trained & judged
