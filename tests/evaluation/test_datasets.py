"""Trajectory datasets: layout, truthful labels, reproducibility, lazy loading, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab  # noqa: F401  (registers the ids)
from rewardlab.evaluation.datasets import (
    EPISODE_KINDS,
    DatasetConfig,
    TrajectoryDataset,
    generate_dataset,
    load_dataset,
)

SMALL = {"render_width": 32, "render_height": 32}
FAMILIES = ["rewardlab/GridKeyDoor-v0", "rewardlab/ManipReach-v0", "rewardlab/DriveHighway-v0"]


def config(env_id: str = "rewardlab/GridKeyDoor-v0", n: int = 2, **kwargs: Any) -> DatasetConfig:
    kwargs.setdefault("env_kwargs", SMALL)
    return DatasetConfig(env_id, episodes=dict.fromkeys(EPISODE_KINDS, n), **kwargs)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> TrajectoryDataset:
    return generate_dataset(config(n=2), tmp_path_factory.mktemp("ds") / "grid")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    cfg = config(request.param, n=1)
    return generate_dataset(cfg, tmp_path_factory.mktemp("ds") / "family")


def test_layout_is_consistent(grid: TrajectoryDataset) -> None:
    n, m = grid.n_states, grid.n_transitions
    assert m == n - len(grid.episodes)
    assert grid.obs.shape[0] == grid.progress.shape[0] == grid.success.shape[0] == n
    assert grid.frames.shape == (n, 32, 32, 3) and grid.frames.dtype == np.uint8
    assert grid.actions.shape[0] == grid.rewards.shape[0] == grid.dense_rewards.shape[0] == m
    for name in grid.metadata["state_variables"]:
        assert grid.state(name).shape[0] == n
    s, s2 = grid.transition_states()
    assert np.array_equal(s2, s + 1)
    starts, steps = grid.state_starts, grid.n_steps
    assert np.array_equal(starts[1:], starts[:-1] + steps[:-1] + 1)
    # No transition crosses an episode boundary.
    ends = starts + steps
    assert not np.isin(s, ends).any()
    kinds = [e.kind for e in grid.episodes]
    assert kinds == [k for k in EPISODE_KINDS for _ in range(2)]
    assert isinstance(grid.frames, np.memmap)  # lazy: memory-mapped, not read in


def test_labels_come_from_the_simulator(grid: TrajectoryDataset) -> None:
    """Replay every episode's actions in a fresh env: same progress, success and rewards."""
    env = gym.make(grid.env_id, **SMALL)
    dense = gym.make(grid.env_id, **SMALL, reward_type="dense")
    t0 = grid.transition_starts
    for e, ep in enumerate(grid.episodes):
        obs, info = env.reset(seed=ep.seed)
        dense.reset(seed=ep.seed)
        row = ep.state_start
        assert np.array_equal(obs, grid.obs[row]) and info["progress"] == grid.progress[row]
        for t in range(ep.n_steps):
            action = grid.actions[t0[e] + t]
            obs, reward, terminated, truncated, info = env.step(action)
            _, dense_reward, *_ = dense.step(action)
            assert np.array_equal(obs, grid.obs[row + t + 1])
            assert info["progress"] == grid.progress[row + t + 1]
            assert info["is_success"] == grid.success[row + t + 1]
            assert reward == grid.rewards[t0[e] + t]
            assert dense_reward == grid.dense_rewards[t0[e] + t]
        assert grid.terminal[row + ep.n_steps] == ep.terminated == terminated
        assert not grid.terminal[row : row + ep.n_steps].any()
        assert ep.success == bool(grid.success[row : row + ep.n_steps + 1].any())
        assert ep.episode_return == pytest.approx(grid.rewards[t0[e] : t0[e] + ep.n_steps].sum())


def test_kinds_do_what_they_say(family: TrajectoryDataset) -> None:
    by_kind: dict[str, list] = {}
    for ep in family.episodes:
        by_kind.setdefault(ep.kind, []).append(ep)
    assert all(ep.success for ep in by_kind["expert"])
    assert not any(ep.success for ep in by_kind["near_miss"])
    for ep in by_kind["near_miss"]:
        rows = slice(ep.state_start, ep.state_start + ep.n_steps + 1)
        assert family.progress[rows].max() >= 0.6  # it did get close
    clipped = [ep for ep in by_kind["counterfactual"] if ep.variant == "clipped"]
    assert clipped and not any(ep.success for ep in clipped)
    for ep in by_kind["partial"]:
        assert ep.switch_step is not None and ep.switch_step < ep.n_steps


def test_frames_are_the_env_renders(grid: TrajectoryDataset) -> None:
    env = gym.make(grid.env_id, render_mode="rgb_array", **SMALL)
    ep = grid.episodes[0]
    env.reset(seed=ep.seed)
    assert np.array_equal(env.render(), grid.frames[ep.state_start])
    env.step(grid.actions[grid.transition_starts[0]])
    assert np.array_equal(env.render(), grid.frames[ep.state_start + 1])


def test_regenerating_from_metadata_is_byte_identical(
    grid: TrajectoryDataset, tmp_path: Path
) -> None:
    again = generate_dataset(grid.config, tmp_path / "again")
    assert again.metadata["sha256"] == grid.metadata["sha256"]
    assert again.config == grid.config
    grid.verify()


def test_verify_names_a_changed_file(tmp_path: Path) -> None:
    ds = generate_dataset(config(n=1, frames=False), tmp_path / "ds")
    np.save(tmp_path / "ds" / "rewards.npy", np.zeros(ds.n_transitions))
    with pytest.raises(ValueError, match=r"rewards\.npy"):
        ds.verify()


def test_idle_continuation(tmp_path: Path) -> None:
    cfg = DatasetConfig(
        "rewardlab/GridEmpty-v0", episodes={"partial": 2}, continuation="idle", env_kwargs=SMALL
    )
    ds = generate_dataset(cfg, tmp_path / "ds")
    for ep in ds.episodes:
        rows = ds.progress[ep.state_start + ep.switch_step + 1 : ep.state_start + ep.n_steps + 1]
        assert np.all(rows == rows[0])  # idle: the state never changes again


def test_twin_env_records_the_dense_reward_only_when_needed(tmp_path: Path) -> None:
    ds = generate_dataset(
        DatasetConfig("rewardlab/GridKeyDoorDense-v0", episodes={"expert": 1}, frames=False),
        tmp_path / "ds",
    )
    assert np.array_equal(ds.rewards, ds.dense_rewards)
    assert ds.metadata["dense_reward_type"] == "dense"


def test_other_env_or_version_is_refused(grid: TrajectoryDataset, tmp_path: Path) -> None:
    load_dataset(grid.path, env_id="rewardlab/GridKeyDoor-v0")
    with pytest.raises(ValueError, match="another version of the env"):
        load_dataset(grid.path, env_id="rewardlab/GridKeyDoor-v1")
    with pytest.raises(ValueError, match="GridKeyDoor-v0, not rewardlab/GridEmpty-v0"):
        load_dataset(grid.path, env_id="rewardlab/GridEmpty-v0")


def test_bad_configs_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown episode kind"):
        DatasetConfig("rewardlab/GridEmpty-v0", episodes={"experts": 2})
    with pytest.raises(ValueError, match="at least one episode"):
        DatasetConfig("rewardlab/GridEmpty-v0", episodes={"expert": 0})
    with pytest.raises(ValueError, match="unknown env id"):
        DatasetConfig("rewardlab/GridEmty-v0")
    with pytest.raises(ValueError, match="continuation"):
        DatasetConfig("rewardlab/GridEmpty-v0", continuation="wait")
    with pytest.raises(FileNotFoundError, match="no trajectory dataset"):
        load_dataset(tmp_path / "nothing")


def test_empty_dataset_is_refused(tmp_path: Path) -> None:
    ds = generate_dataset(
        DatasetConfig("rewardlab/GridEmpty-v0", episodes={"expert": 1}, frames=False),
        tmp_path / "ds",
    )
    meta = json.loads((ds.path / "metadata.json").read_text())
    meta["n_transitions"] = 0
    (ds.path / "metadata.json").write_text(json.dumps(meta))
    (ds.path / "episodes.json").write_text("[]")
    with pytest.raises(ValueError, match="empty"):
        load_dataset(ds.path)


def test_existing_dataset_is_kept_and_failures_leave_nothing(
    grid: TrajectoryDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(grid.config, grid.path)
    load_dataset(grid.path).verify()  # untouched

    from rewardlab.evaluation import datasets

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(grid.config, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(grid.config, grid.path, overwrite=True)
    load_dataset(grid.path).verify()  # the old dataset survives a failed overwrite


def test_missing_frames_say_how_to_get_them(tmp_path: Path) -> None:
    ds = generate_dataset(config(n=1, frames=False), tmp_path / "ds")
    with pytest.raises(KeyError, match="without frames"):
        _ = ds.frames


def test_counterfactuals_are_what_they_claim(grid: TrajectoryDataset) -> None:
    """Clipped: one more expert step succeeds. Other goal: another seed's expert actions."""
    variants = {
        ep.variant: (e, ep) for e, ep in enumerate(grid.episodes) if ep.kind == "counterfactual"
    }
    assert set(variants) == {"clipped", "other_goal"}
    e, ep = variants["clipped"]
    env = gym.make(grid.env_id, **SMALL)
    env.reset(seed=ep.seed)
    t0 = grid.transition_starts[e]
    for t in range(ep.n_steps):
        env.step(grid.actions[t0 + t])
    *_, info = env.step(env.unwrapped.expert_action())
    assert info["is_success"] and ep.n_steps == ep.switch_step >= 1
    e, ep = variants["other_goal"]
    plan_env = gym.make(grid.env_id, **SMALL)
    others = [s for s in range(ep.seed + 1, ep.seed + 5)]
    t0 = grid.transition_starts[e]
    replayed = grid.actions[t0 : t0 + ep.n_steps]
    matches = []
    for other in others:  # the replayed plan is the expert's from one of the next seeds
        plan_env.reset(seed=other)
        plan = []
        done = False
        while not done:
            a = plan_env.unwrapped.expert_action()
            plan.append(a)
            *_, terminated, truncated, _ = plan_env.step(a)
            done = terminated or truncated
        matches.append(np.array_equal(np.asarray(plan[: ep.n_steps]), replayed))
    assert any(matches)


def test_overwrite_never_deletes_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a rewardlab-trajectories dataset"):
        generate_dataset(config(n=1, frames=False), folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
