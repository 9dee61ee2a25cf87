"""Rewards from labelled trajectories: the split by layout seed, Rank2Reward's ranking loss in
closed form, a progress head that orders held-out episodes, frames end to end, and bad input
refused before anything is written."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rewardlab.envs import get_task, make
from rewardlab.evaluation.datasets import (
    DatasetConfig,
    Episode,
    TrajectoryDataset,
    generate_dataset,
    load_dataset,
)
from rewardlab.evaluation.verdict import VERDICTS
from rewardlab.info_keys import STATE_PREFIX
from rewardlab.learned import load_learned_reward
from rewardlab.learned.labels import (
    learn_from_labels,
    ranking_loss,
    sample_pairs,
    split_by_seed,
)
from rewardlab.learned.reward_net import read_checkpoint
from rewardlab.reward_models.base import RewardBatch

GRID = "rewardlab/GridEmpty-v0"
SMALL = {"size": 5}


@pytest.fixture(scope="module")
def grid_frames(tmp_path_factory: pytest.TempPathFactory) -> TrajectoryDataset:
    """GridEmpty 5x5, 3 episodes per kind, with frames."""
    config = DatasetConfig(
        GRID,
        {k: 3 for k in ("expert", "random", "partial", "near_miss", "counterfactual")},
        0,
        SMALL,
        frames=True,
    )
    return generate_dataset(config, tmp_path_factory.mktemp("labels") / "ds")


def _episode(seed: int) -> Episode:
    return Episode("expert", "", seed, 0, 1, False, False, False, 0.0, 0.0, None)


def _copy(ds: TrajectoryDataset, to: Path) -> Path:
    shutil.copytree(ds.path, to)
    return to


def _layout() -> tuple[list[tuple[str, tuple[int, ...]]], str]:
    with make(GRID, **SMALL) as env:
        task = get_task(env)
        return [(v.name, tuple(v.shape)) for v in task.state_variables], repr(env.observation_space)


# --- the split -------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 0.95])
def test_split_never_puts_one_seed_on_both_sides(fraction: float) -> None:
    # Hostile: seeds shared by up to five episodes, out of order.
    seeds = [3, 3, 3, 1, 7, 7, 7, 7, 7, 2, 1, 9, 3, 2]
    episodes = [_episode(s) for s in seeds]
    for trial in range(20):
        split = split_by_seed(episodes, fraction, np.random.default_rng(trial))
        assert not set(split.train_seeds) & set(split.heldout_seeds)
        assert sorted(split.train_episodes + split.heldout_episodes) == list(range(len(seeds)))
        assert {seeds[i] for i in split.train_episodes} == set(split.train_seeds)
        assert {seeds[i] for i in split.heldout_episodes} == set(split.heldout_seeds)
        assert split.train_seeds and split.heldout_seeds  # never an empty side
    split = split_by_seed(episodes, 0.4, np.random.default_rng(0))
    assert len(split.heldout_seeds) == 2  # 40% of 5 distinct seeds, not of 14 episodes


def test_one_seed_cannot_be_split() -> None:
    with pytest.raises(ValueError, match=r"share 1 layout seed\(s\) \[4\]"):
        split_by_seed([_episode(4)] * 5, 0.25, np.random.default_rng(0))


# --- the ranking loss ------------------------------------------------------------------------


def test_ranking_loss_in_closed_form() -> None:
    progress = torch.tensor([0.0, 0.5, 1.0, 1.0])
    i = torch.tensor([0, 1, 0, 1, 2, 2, 2])
    j = torch.tensor([1, 0, 2, 2, 0, 1, 3])  # the last pair ties: it is left out

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    ordered = torch.tensor([0.0, 10.0, 20.0, -50.0])
    # pairs: (0,1) d=10 ; (1,0) d=10 ; (0,2) d=20 ; (1,2) d=10 ; (2,0) d=20 ; (2,1) d=10
    want = (4 * softplus(-10.0) + 2 * softplus(-20.0)) / 6
    assert float(ranking_loss(ordered, progress, i, j)) == pytest.approx(want, rel=1e-6)
    assert want < 1e-4
    reversed_ = -ordered
    want_rev = (4 * softplus(10.0) + 2 * softplus(20.0)) / 6
    assert float(ranking_loss(reversed_, progress, i, j)) == pytest.approx(want_rev, rel=1e-6)
    assert want_rev > 13.0
    flat = torch.zeros(4)
    assert float(ranking_loss(flat, progress, i, j)) == pytest.approx(math.log(2))
    # No pair differs in progress: zero, and still differentiable.
    logits = torch.randn(4, requires_grad=True)
    loss = ranking_loss(logits, torch.ones(4), i, j)
    loss.backward()
    assert float(loss) == 0.0 and logits.grad is not None


def test_sample_pairs_stay_within_episodes() -> None:
    episode = np.array([5, 5, 2, 9, 9, 9, 2, 5, 7])
    i, j = sample_pairs(episode, 2000, np.random.default_rng(0))
    assert np.array_equal(episode[i], episode[j])
    assert set(zip(i.tolist(), j.tolist(), strict=True)) >= {(3, 5), (5, 4), (0, 7), (2, 6)}
    assert set(j[i == 8].tolist()) == {8}  # a one-row episode pairs with itself only


# --- learning --------------------------------------------------------------------------------


def test_state_head_orders_held_out_episodes(tmp_path: Path) -> None:
    out = tmp_path / "state"
    report = learn_from_labels(
        GRID, out, env_kwargs=SMALL, episodes=6, epochs=80, judge=False, seed=0
    )
    s = json.loads((out / "summary.json").read_text())
    held = s["heldout_metrics"]
    assert held["spearman"] >= 0.85 and held["spearman_episodes"] >= 4, held
    # The ranking term trades calibration for order (0.06 here, ~0.006 without it).
    assert held["progress_mse"] < 0.1 and held["success_accuracy"] >= 0.95, held
    assert held["success_auc"] >= 0.95, held
    assert set(s["split"]["train_seeds"]).isdisjoint(s["split"]["heldout_seeds"])
    assert len(s["loss"]["train"]) == len(s["loss"]["heldout"]) == 80
    assert s["loss"]["train"][-1] < s["loss"]["train"][0]
    text = report.read_text()
    assert "ground-truth progress" in text and "What worked" in text
    assert (out / "loss.png").stat().st_size > 1000 and not (out / "eval").exists()
    # The checkpoint: what it was trained on, and its reward standardized on training states.
    payload = read_checkpoint(out / "checkpoint.pt")
    trained = payload["trained_on"]
    assert trained["objective"] == "progress_regression+ranking+success"
    assert str(s["split"]["heldout_seeds"]) in trained["data"]
    assert trained["metrics"]["heldout_spearman"] == pytest.approx(held["spearman"])
    layout, space = _layout()
    model = load_learned_reward(out / "checkpoint.pt", GRID, layout, space, device="cpu")
    ds = load_dataset(out / "dataset")
    train_eps = [e for e in ds.episodes if e.seed in set(s["split"]["train_seeds"])]
    rows = np.concatenate(
        [np.arange(e.state_start, e.state_start + e.n_steps + 1) for e in train_eps]
    )
    info = {f"{STATE_PREFIX}{n}": np.asarray(ds.state(n))[rows] for n, _ in layout}
    obs = np.asarray(ds.obs)[rows]
    batch = RewardBatch.of_rows(
        obs, np.zeros((len(rows), 0)), obs, np.zeros(len(rows), bool), None, info
    )
    paid = model(batch).reward
    assert abs(paid.mean()) < 1e-4 and paid.std() == pytest.approx(1.0, abs=1e-4)


def test_frames_head_end_to_end(grid_frames: TrajectoryDataset, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    logs: list[str] = []
    learn_from_labels(
        GRID,
        out,
        dataset=grid_frames.path,
        inputs="frames",
        encoder="cnn",
        episodes=2,
        epochs=15,
        seed=1,
        log=logs.append,
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["encoder"] == "cnn" and s["dataset"] == str(grid_frames.path)
    assert any("cnn: encoded" in line for line in logs)
    assert set(s["eval_reward"]) >= {"learned", "progress", "sparse", "ref: random"}
    assert s["eval_reward"]["learned"]["verdict"] in VERDICTS
    assert "rates the learned reward" in (out / "report.md").read_text()
    judged = load_dataset(out / "eval" / "dataset")
    assert judged.has_frames and min(e.seed for e in judged.episodes) >= 10_001
    layout, space = _layout()
    model = load_learned_reward(out / "checkpoint.pt", GRID, layout, space, device="cpu")
    assert model.needs_frames and not (out / "dataset").exists()


def test_three_seeds_give_finite_different_weights(
    grid_frames: TrajectoryDataset, tmp_path: Path
) -> None:
    weights = []
    for seed in (0, 1, 2, 2):
        out = tmp_path / f"seed{seed}-{len(weights)}"
        learn_from_labels(GRID, out, dataset=grid_frames.path, epochs=5, seed=seed, judge=False)
        w = read_checkpoint(out / "checkpoint.pt")["weights"]
        flat = torch.cat([v.flatten().float() for v in w.values()])
        assert torch.isfinite(flat).all()
        weights.append(flat)
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    assert torch.equal(weights[2], weights[3])  # one seed, one result


# --- bad input -------------------------------------------------------------------------------


def _other_env(ds: TrajectoryDataset, tmp: Path) -> dict[str, Any]:
    path = _copy(ds, tmp / "other")
    meta = json.loads((path / "metadata.json").read_text())
    meta["env_id"] = "rewardlab/GridKeyDoor-v0"
    (path / "metadata.json").write_text(json.dumps(meta))
    return {"dataset": path}


def _one_seed(ds: TrajectoryDataset, tmp: Path) -> dict[str, Any]:
    path = _copy(ds, tmp / "one_seed")
    episodes = json.loads((path / "episodes.json").read_text())
    (path / "episodes.json").write_text(json.dumps([{**e, "seed": 7} for e in episodes]))
    return {"dataset": path}


def _nan_progress(ds: TrajectoryDataset, tmp: Path) -> dict[str, Any]:
    path = _copy(ds, tmp / "nan")
    progress = np.load(path / "progress.npy")
    progress[3] = np.nan
    np.save(path / "progress.npy", progress)
    return {"dataset": path}


def _no_frames(ds: TrajectoryDataset, tmp: Path) -> dict[str, Any]:
    path = _copy(ds, tmp / "no_frames")
    (path / "frames.npy").unlink()
    return {"dataset": path, "inputs": "frames", "encoder": "cnn"}


def _checkpoint_there(ds: TrajectoryDataset, tmp: Path) -> dict[str, Any]:
    (tmp / "out").mkdir()
    (tmp / "out" / "checkpoint.pt").write_bytes(b"old")
    return {"dataset": ds.path}


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (_other_env, "generated from rewardlab/GridKeyDoor-v0, not rewardlab/GridEmpty-v0"),
        (
            lambda ds, tmp: {"dataset": ds.path, "regression": 0.0, "ranking": 0.0, "success": 0.0},
            "all 0: nothing to train",
        ),
        (lambda ds, tmp: {"dataset": ds.path, "ranking": -1.0}, "ranking weight must be"),
        (lambda ds, tmp: {"dataset": ds.path, "heldout_fraction": 0.0}, r"in \(0, 1\), got 0.0"),
        (lambda ds, tmp: {"dataset": ds.path, "heldout_fraction": 1.5}, r"in \(0, 1\), got 1.5"),
        (_no_frames, "reads frames, but the dataset"),
        (_checkpoint_there, "already holds a checkpoint"),
        (_one_seed, "share 1 layout seed"),
        (_nan_progress, "outside \\[0, 1\\] or not finite"),
        (lambda ds, tmp: {"dataset": ds.path, "env_kwargs": {"size": 6}}, "env kwargs"),
        (lambda ds, tmp: {"dataset": tmp / "missing"}, "no trajectory dataset"),
        (lambda ds, tmp: {"inputs": "pixels"}, "inputs must be one of"),
    ],
)
def test_bad_input_is_refused_before_writing(
    make_args: Any, message: str, grid_frames: TrajectoryDataset, tmp_path: Path
) -> None:
    args = make_args(grid_frames, tmp_path)
    out = tmp_path / "out"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    with pytest.raises(ValueError, match=message):
        learn_from_labels(GRID, out, **args)
    after = sorted(p.name for p in out.iterdir()) if out.exists() else None
    assert after == before
