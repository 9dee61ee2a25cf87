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
    # ~25 non-tie held-out pairs none of which is trained on (chance: 0.5).
    assert all(a >= 0.7 for a in summary["heldout_accuracy"]), summary["heldout_accuracy"]
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
        draw_pairs,
        label_pairs,
        task_values,
        write_preferences,
    )

    config = DatasetConfig("rewardlab/GridEmpty-v0", env_kwargs={"size": 5}, frames=False)
    ds = generate_dataset(config, tmp_path / "ds")
    rng = np.random.default_rng(1)
    pairs = draw_pairs(ds, 80, 3, rng)  # distinct: the held-out split is then exact
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
        (["--noise", "0.7"], "noise (the labeller's flip rate) must be in [0, 0.5)"),
        (["--pairs", "1"], "pairs must be >= 2"),
        (["--epochs", "0"], "--epochs 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "learned"
    base = TINY if "--preferences" not in extra else TINY[: TINY.index("--pairs")]
    assert main(["learn-reward", *base, *extra, "--out", str(out)]) == 2
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


GRID = "rewardlab/GridEmpty-v0"


class _Spy:
    """Records what learn_from_preferences fits (every call to fit_preferences)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, change=None) -> None:  # type: ignore[no-untyped-def]
        import rewardlab.learned.preferences as prefs_module

        self.calls: list[dict[str, object]] = []
        original = prefs_module.fit_preferences

        def spy(ds, prefs, config, **kw):  # type: ignore[no-untyped-def]
            self.calls.append({"train": list(prefs), **kw})
            fit = original(ds, prefs, config, **kw)
            return change(fit) if change else fit

        monkeypatch.setattr(prefs_module, "fit_preferences", spy)


def _keys(prefs) -> list[frozenset[object]]:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import pair_key

    return [pair_key(p.a, p.b) for p in prefs]


@pytest.mark.parametrize("query", ["random", "disagreement"])
def test_no_pair_is_labelled_twice_nor_trained_on_and_held_out(
    query: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    spy = _Spy(monkeypatch)
    # One episode per kind and success labels: few distinct segments, most pairs ties.
    learn_from_preferences(
        GRID,
        tmp_path / "out",
        env_kwargs=GRID_KW,
        synthetic="success",
        pairs=150,
        segment_length=2,
        episodes=1,
        ensemble=2,
        epochs=1,
        query=query,
        query_rounds=3,
        judge=False,
    )
    last = spy.calls[-1]
    train, heldout = last["train"], last["heldout"]
    assert len(train) + len(heldout) == 150  # type: ignore[arg-type]
    keys = _keys([*train, *heldout])  # type: ignore[misc]
    assert len(set(keys)) == len(keys), "a pair was labelled twice"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # Ties are counted over every labelled pair, held-out ones included.
    assert summary["n_ties"] == sum(p.label == 0.5 for p in [*train, *heldout])  # type: ignore[misc]
    assert sum(p.label == 0.5 for p in heldout) > 0  # type: ignore[attr-defined]


def test_identical_pairs_of_a_label_file_stay_on_one_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
    from rewardlab.learned.learn import learn_from_preferences
    from rewardlab.learned.preferences import Preference, Segment, write_preferences

    ds = generate_dataset(DatasetConfig(GRID, env_kwargs=GRID_KW, frames=False), tmp_path / "ds")
    a, b = Segment(0, 0, 2), Segment(1, 0, 2)
    prefs = [Preference(a, b, 1.0)] * 4 + [Preference(b, a, 0.0)] * 4
    prefs += [Preference(Segment(2 + k, 0, 2), Segment(3 + k, 0, 2), 1.0) for k in range(8)]
    labels = write_preferences(tmp_path / "l.jsonl", ds.path, prefs)
    for seed in range(3):
        spy = _Spy(monkeypatch)
        learn_from_preferences(
            GRID,
            tmp_path / f"out{seed}",
            preferences=labels,
            ensemble=1,
            epochs=1,
            seed=seed,
            judge=False,
        )
        train = set(_keys(spy.calls[-1]["train"]))
        heldout = set(_keys(spy.calls[-1]["heldout"]))
        assert train and heldout and not train & heldout


def test_a_label_files_dataset_gives_the_env_kwargs(tmp_path: Path) -> None:
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
    from rewardlab.learned.learn import learn_from_preferences
    from rewardlab.learned.preferences import Preference, Segment, write_preferences
    from rewardlab.learned.reward_net import read_checkpoint

    recorded = {"size": 5, "randomize_layout": False}
    config = DatasetConfig(GRID, {"expert": 3, "random": 3}, env_kwargs=recorded, frames=False)
    ds = generate_dataset(config, tmp_path / "ds")
    prefs = [Preference(Segment(k, 0, 2), Segment(3 + k, 0, 2), 1.0) for k in range(3)]
    labels = write_preferences(tmp_path / "l.jsonl", ds.path, prefs)
    for given in ({"size": 5}, {}):  # other keywords than the dataset's, {} included
        out = tmp_path / "refused"
        with pytest.raises(ValueError, match="was recorded with env kwargs"):
            learn_from_preferences(GRID, out, env_kwargs=given, preferences=labels, judge=False)
        assert not out.exists()
    for given in (None, recorded):
        out = tmp_path / f"out{given is None}"
        learn_from_preferences(
            GRID, out, env_kwargs=given, preferences=labels, ensemble=1, epochs=1, judge=False
        )
        assert read_checkpoint(out / "checkpoint.pt")["trained_on"]["env_kwargs"] == recorded
        assert json.loads((out / "summary.json").read_text())["env_kwargs"] == recorded


def test_the_model_takes_twice_the_flip_rate_and_a_zero_accuracy_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.learned.learn import learn_from_preferences
    from rewardlab.learned.reward_net import read_checkpoint

    def worst_member_first(fit):  # type: ignore[no-untyped-def]
        fit.heldout_accuracy = [0.0, *fit.heldout_accuracy[1:]]
        return fit

    spy = _Spy(monkeypatch, worst_member_first)
    out = tmp_path / "out"
    learn_from_preferences(
        GRID, out, env_kwargs=GRID_KW, noise=0.1, pairs=40, ensemble=2, **{**FAST, "epochs": 2}
    )
    assert spy.calls[-1]["noise"] == pytest.approx(0.2)
    metrics = read_checkpoint(out / "checkpoint.pt")["trained_on"]["metrics"]
    assert metrics["heldout_accuracy"] == 0.0  # member 0's: the checkpoint is member 0
    assert 0.0 <= metrics["heldout_accuracy_ensemble"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_noise"] == pytest.approx(0.2) and summary["heldout_accuracy"][0] == 0.0
    assert "flipped with probability 0.1" in summary["labels"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"synthetic": "heron"}, "HERON's hierarchical comparison"),
        ({"beta": 2.0}, "Boltzmann-rational (P(a > b) = sigmoid(2 (R(a) - R(b))))"),
    ],
)
def test_heron_and_boltzmann_labellers_are_reachable(
    kwargs: dict[str, object], words: str, tmp_path: Path
) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    out = tmp_path / "out"
    report = learn_from_preferences(
        GRID,
        out,
        env_kwargs=GRID_KW,
        pairs=60,
        ensemble=1,
        **FAST,
        **kwargs,  # type: ignore[arg-type]
    )
    assert words in report.read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"].startswith("SYNTHETIC labels: ")
    assert all(a is not None and a >= 0.6 for a in summary["heldout_accuracy"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"synthetic": "heron", "beta": 1.0}, "beta .* does not apply to heron"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"segment_length": 150}, "segment_length 150 is longer than an episode"),
        ({"pairs": 2, "heldout_fraction": 0.9}, "leave none to train on"),
    ],
)
def test_more_bad_options_are_refused_before_anything_is_written(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    out = tmp_path / "learned"
    with pytest.raises(ValueError, match=message):
        learn_from_preferences(GRID, out, env_kwargs=GRID_KW, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()


def test_a_failure_after_generating_removes_what_the_call_wrote(tmp_path: Path) -> None:
    from rewardlab.learned.learn import learn_from_preferences

    small = {"env_kwargs": GRID_KW, "episodes": 1, "segment_length": 40, "judge": False}
    out = tmp_path / "out"
    # Only the generated dataset shows it has too few distinct pairs of 40-step segments.
    with pytest.raises(ValueError, match="distinct pairs"):
        learn_from_preferences(GRID, out, pairs=100_000, **small)  # type: ignore[arg-type]
    assert not out.exists()
    out.mkdir()  # a folder the user made is kept; only the dataset this call wrote goes
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="distinct pairs"):
        learn_from_preferences(GRID, out, pairs=100_000, **small)  # type: ignore[arg-type]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # So a rerun into the same folder works, and a run over another's dataset is refused.
    learn_from_preferences(GRID, out, pairs=6, ensemble=1, epochs=1, **small)  # type: ignore[arg-type]
    (out / "checkpoint.pt").unlink()
    with pytest.raises(ValueError, match="dataset exists"):
        learn_from_preferences(GRID, out, pairs=6, **small)  # type: ignore[arg-type]
