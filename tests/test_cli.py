"""The command line: env listing, the expert demo the README's first command runs, and how
commands report a reward program that fails at run time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rewardlab import env_ids
from rewardlab.cli import main
from rewardlab.demo import DEFAULT_DEMO_IDS, image_strip
from rewardlab.experiments.runner import DONE_MARKER
from rewardlab.sandbox import ProgramContained, guard


def test_envs_lists_every_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in env_ids():
        assert env_id in out


def test_demo_ids_are_registered() -> None:
    assert set(DEFAULT_DEMO_IDS) <= set(env_ids())


def test_demo_rejects_unknown_env(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["demo", "--env", "rewardlab/Nope-v0", "--out", str(tmp_path)]) == 2
    assert "rewardlab envs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_demo_writes_a_strip_of_a_successful_expert(tmp_path) -> None:
    cv2 = pytest.importorskip("cv2")
    env_id = "rewardlab/GridKeyDoor-v0"
    assert main(["demo", "--env", env_id, "--out", str(tmp_path), "--size", "64"]) == 0
    strip = cv2.imread(str(tmp_path / "GridKeyDoor-v0.png"))
    assert strip.shape[0] == 64 and strip.shape[1] > 64 * 2


def test_image_strip_picks_first_and_last() -> None:
    frames = [np.full((2, 3, 3), i, dtype=np.uint8) for i in range(10)]
    strip = image_strip(frames, n_frames=3, gap=1)
    assert strip.shape == (2, 3 * 3 + 2, 3)
    assert strip[0, 0, 0] == 0 and strip[0, -1, 0] == 9
    with pytest.raises(ValueError):
        image_strip([])


# --- a reward program that fails at run time -------------------------------------------------

FAILING_PROGRAM = "def compute_reward(agent_pos):\n    raise ValueError('boom')\n"
GRID = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]


# NaN more than two cells from the goal: the sandbox replaces them (and counts them).
NAN_PROGRAM = (
    "def compute_reward(agent_pos, goal_pos):\n"
    "    d = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0\n"
    "    return np.where(d > 2, np.nan, -d), {}\n"
)


def _program(tmp_path: Path, source: str = FAILING_PROGRAM) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(source)
    return path


def _program_spec(path: Path) -> str:
    return f"{{model: {{kind: program, path: {path}}}}}"


def _assert_program_failed(err: str, reason: str, path: Path) -> None:
    assert err.startswith(f"error: reward program failed ({reason}): ")
    assert "ValueError: boom" in err and "raise ValueError('boom')" in err
    check = f"`rewardlab llm-reward check {path} --env rewardlab/GridEmpty-v0 --env-kwarg size=5`"
    assert check in err
    assert "Traceback" not in err


def test_eval_reward_reports_a_failing_program_and_keeps_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = _program(tmp_path), tmp_path / "eval"
    args = ["eval-reward", *GRID, "--episodes", "1", "--max-steps", "10", "--out", str(out)]
    assert main([*args, "--reward", _program_spec(path)]) == 1
    err = capsys.readouterr().err
    _assert_program_failed(err, "exception", path)
    assert f"the dataset {out / 'dataset'} is kept" in err
    assert not (out / "report.md").exists()

    # The next run reuses that dataset instead of generating one.
    assert main([*args, "--reward", "pbrs"]) == 0
    assert f"dataset: TrajectoryDataset('{out / 'dataset'}'" in capsys.readouterr().out


def test_train_reports_a_program_that_exhausts_its_exception_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = _program(tmp_path), tmp_path / "run"
    args = ["train", *GRID, "--reward", _program_spec(path), "--steps", "64", "--out", str(out)]
    tiny = ["--set", "n_envs=1", "--set", "n_steps=32", "--set", "batch_size=32"]
    assert main([*args, *tiny, "--eval-episodes", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    _assert_program_failed(err, "exception_budget", path)
    assert "the last error (exception)" in err
    assert f"The run folder {out} keeps what the run wrote" in err
    assert json.loads((out / "config.json").read_text())["env"] == "rewardlab/GridEmpty-v0"
    assert not (out / "model.zip").exists()


def test_train_warns_when_the_sandbox_corrected_the_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = _program(tmp_path, NAN_PROGRAM), tmp_path / "run"
    args = ["train", *GRID, "--reward", _program_spec(path), "--steps", "64", "--out", str(out)]
    tiny = ["--set", "n_envs=1", "--set", "n_steps=32", "--set", "batch_size=32"]
    assert main([*args, *tiny, "--eval-episodes", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    nonfinite = json.loads((out / "reward_diagnostics.json").read_text())["reward"]["nonfinite"]
    assert nonfinite > 0
    assert f"warning: the reward program's sandbox replaced {nonfinite} NaN or infinite" in err


def test_train_reports_a_program_whose_worker_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_worker(*args: object) -> None:
        raise ProgramContained("startup", "the worker exited before loading the program")

    monkeypatch.setattr(guard, "SandboxWorker", no_worker)
    path, out = _program(tmp_path), tmp_path / "run"
    args = ["train", *GRID, "--reward", _program_spec(path), "--steps", "64", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: reward program failed (startup): the worker exited")
    assert "Nothing was written" in err and "Traceback" not in err
    assert not out.exists()


def test_compare_reports_a_program_failing_in_a_worker_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = _program(tmp_path), tmp_path / "out"
    spec = {
        "name": "failing",
        "envs": [{"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}],
        "hyperparams": {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
        "budget": 64,
        "seeds": [0],
        "eval": {"freq": 64, "episodes": 1},
        # The process pool runs one job at a time, in this order.
        "variants": {"sparse": "sparse", "program": _program_spec(path)},
        "workers": 1,
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    args = ["compare", str(spec_path), "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    _assert_program_failed(err, "exception_budget", path)
    assert f"Finished runs are kept in {out}" in err
    runs = out / "runs" / "rewardlab__GridEmpty-v0"
    assert (runs / "sparse" / "seed_0" / DONE_MARKER).is_file()
    assert not (runs / "program" / "seed_0" / DONE_MARKER).exists()
    assert not (out / "report.md").exists()

    assert main(args) == 1
    assert "1 already done, 1 to run" in capsys.readouterr().out


def test_eval_reward_warns_when_the_sandbox_corrected_the_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = _program(tmp_path, NAN_PROGRAM), tmp_path / "eval"
    args = ["eval-reward", *GRID, "--episodes", "2", "--out", str(out)]
    assert main([*args, "--reward", _program_spec(path)]) == 0
    printed = capsys.readouterr().out
    assert f"warning: reward program {path}: its sandbox replaced" in printed
    assert "the scores are of the corrected rewards" in printed
