"""``rewardlab learn-reward``: from synthetic or filed preferences to a checkpoint, a loss
curve and eval-reward's verdict; bad input is one line, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.cli import main

TINY = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5", "--episodes", "3"]
TINY += ["--pairs", "120", "--segment-length", "3", "--epochs", "20", "--ensemble", "2"]


def test_learn_reward_from_synthetic_preferences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "learned"
    assert main(["learn-reward", *TINY, "--out", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"].startswith("SYNTHETIC labels: the true task's progress")
    assert summary["n_train_pairs"] == 90 and summary["n_heldout_pairs"] == 30
    assert all(a >= 0.8 for a in summary["heldout_accuracy"]), summary["heldout_accuracy"]
    assert set(summary["eval_reward"]) >= {"learned", "progress", "sparse"}
    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report and "| learned |" in report
    assert (out / "loss.png").stat().st_size > 1000 and (out / "checkpoint.pt").is_file()
    # The checkpoint pays rewards in training, and a second run into the same folder is refused.
    args = ["train", "--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5", "--steps", "256"]
    reward = f"{{model: {{kind: learned, path: {out / 'checkpoint.pt'}}}}}"
    args += ["--reward", reward, "--no-progress", "--out", str(tmp_path / "run")]
    assert main([*args, "--set", "n_envs=2", "--set", "n_steps=64", "--set", "batch_size=64"]) == 0
    assert main(["learn-reward", *TINY, "--out", str(out)]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_learn_reward_from_a_label_file(tmp_path: Path) -> None:
    import numpy as np

    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
    from rewardlab.learned.preferences import (
        SyntheticOracle,
        label_pairs,
        sample_segments,
        task_values,
        write_preferences,
    )

    config = DatasetConfig("rewardlab/GridEmpty-v0", env_kwargs={"size": 5}, frames=False)
    ds = generate_dataset(config, tmp_path / "ds")
    rng = np.random.default_rng(1)
    segments = sample_segments(ds, 160, 3, rng)
    pairs = list(zip(segments[::2], segments[1::2], strict=True))
    prefs = label_pairs(ds, pairs, task_values(ds, "progress"), SyntheticOracle(), rng)
    labels = write_preferences(tmp_path / "labels.jsonl", ds.path, prefs)
    out = tmp_path / "learned"
    args = ["learn-reward", "--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]
    args += ["--preferences", str(labels), "--epochs", "10", "--ensemble", "1", "--no-judge"]
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == f"labels from {labels}" and summary["n_heldout_pairs"] == 20
    assert not (out / "eval").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preferences", "/nonexistent/labels.jsonl"], "cannot read the preference file"),
        (["--noise", "0.7"], "noise (the labeller's error rate) must be in [0, 0.5)"),
        (["--pairs", "1"], "pairs must be >= 2"),
        (["--epochs", "0"], "--epochs 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "learned"
    assert main(["learn-reward", *TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


GRID_KW = {"size": 5}
FAST = {"episodes": 3, "segment_length": 3, "epochs": 10, "judge": False}


def test_disagreement_queries_spend_the_same_label_budget(tmp_path: Path) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    out = tmp_path / "dis"
    messages: list[str] = []
    report = learn_from_preferences(
        "rewardlab/GridEmpty-v0",
        out,
        env_kwargs=GRID_KW,
        pairs=80,
        ensemble=2,
        query="disagreement",
        query_rounds=3,
        log=messages.append,
        **FAST,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["query"] == "disagreement" and summary["query_rounds"] == 3
    assert summary["n_train_pairs"] + summary["n_heldout_pairs"] == 80
    assert summary["n_heldout_pairs"] == 20
    assert sum("pairs the ensemble disagrees on most" in m for m in messages) == 2
    assert "Query selection: disagreement" in report.read_text()
    assert all(a >= 0.7 for a in summary["heldout_accuracy"]), summary["heldout_accuracy"]


def test_frame_inputs_learn_from_a_frames_dataset(tmp_path: Path) -> None:
    from rewardlab.learned.learn import learn_from_preferences
    from rewardlab.learned.reward_net import read_checkpoint

    out = tmp_path / "frames"
    learn_from_preferences(
        "rewardlab/GridEmpty-v0",
        out,
        env_kwargs=GRID_KW,
        pairs=60,
        ensemble=1,
        inputs="frames",
        encoder="cnn",
        freeze_encoder=False,
        **{**FAST, "episodes": 1},
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == "frames" and summary["encoder"] == "cnn"
    assert summary["freeze_encoder"] is False
    config = read_checkpoint(out / "checkpoint.pt")["config"]
    assert config["inputs"] == "frames" and config["encoder"] == "cnn"
    assert (out / "dataset" / "frames.npy").is_file()
    assert "encoder cnn, fine-tuned" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "uncertainty"}, "unknown query selection 'uncertainty'"),
        ({"query": "disagreement", "ensemble": 1}, "needs an ensemble of >= 2"),
        ({"query": "disagreement", "query_rounds": 1}, "needs query_rounds >= 2"),
        ({"inputs": "pixels"}, "inputs must be 'state', 'frames' or 'both'"),
        ({"inputs": "frames", "encoder": "resnet"}, "unknown encoder 'resnet'"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    out = tmp_path / "learned"
    with pytest.raises(ValueError, match=message):
        learn_from_preferences("rewardlab/GridEmpty-v0", out, env_kwargs=GRID_KW, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()


def test_a_label_file_without_frames_is_refused_for_frame_inputs(tmp_path: Path) -> None:
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
    from rewardlab.learned.learn import learn_from_preferences
    from rewardlab.learned.preferences import Preference, Segment, write_preferences

    config = DatasetConfig("rewardlab/GridEmpty-v0", env_kwargs=GRID_KW, frames=False)
    ds = generate_dataset(config, tmp_path / "ds")
    labels = write_preferences(
        tmp_path / "l.jsonl", ds.path, [Preference(Segment(0, 0, 1), Segment(1, 0, 1), 1.0)]
    )
    out = tmp_path / "learned"
    for extra, message in (
        ({"inputs": "frames", "encoder": "cnn"}, "reads frames, and the dataset"),
        ({"query": "disagreement"}, "a label file's pairs are chosen already"),
    ):
        with pytest.raises(ValueError, match=message):
            learn_from_preferences(
                "rewardlab/GridEmpty-v0",
                out,
                env_kwargs=GRID_KW,
                preferences=labels,
                **extra,  # type: ignore[arg-type]
            )
        assert not out.exists()
