"""eval-reward and llm-reward on an env rewardlab has never seen, once its task is registered
(by a --tasks module, as a user would): every path runs, and its outputs hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.cli import main

ENV = "rewardlab_tests/LineWalkTasks-v0"
TASKS = ["--tasks", "tests.envs.line_walk_task"]


def test_eval_reward_judges_rewards_on_a_registered_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = ["eval-reward", "--env", ENV, *TASKS, "--reward", "sparse", "--reward", "pbrs"]
    args += ["--reward", "progress", "--episodes", "3", "--bootstrap", "50", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    # The task's dense reference is the env's own reward (dense_reward_type="env").
    assert "ref: env reward (expert)" in report and "ref: random" in report
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["name"]: r for r in summary["rewards"]}
    assert list(rows) == ["sparse", "pbrs", "progress", "ref: env reward (expert)", "ref: random"]
    # sparse is the task's own success(s'): equivalent to the ground truth, and it orders
    # every pair of episodes as the task does.
    assert rows["sparse"]["epic"] == 0.0 and rows["sparse"]["preference"] == 1.0
    assert rows["ref: random"]["epic"] > 0.5
    metadata = json.loads((out / "dataset" / "metadata.json").read_text())
    assert metadata["env_id"] == ENV and metadata["state_variables"] == ["pos"]


def test_llm_reward_check_runs_a_program_on_a_registered_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "walk.py"
    program.write_text(
        "def compute_reward(pos):\n"
        "    at_end = (pos >= 5).astype(np.float64)\n"
        "    return at_end, {'at_end': at_end}\n"
    )
    assert main(["llm-reward", "check", str(program), "--env", ENV, *TASKS]) == 0
    out = capsys.readouterr().out
    assert "passed" in out.lower()
    bad = tmp_path / "bad.py"
    bad.write_text("def compute_reward(speed):\n    return speed, {}\n")
    assert main(["llm-reward", "check", str(bad), "--env", ENV, *TASKS]) != 0
    assert "`speed` is not a state variable" in capsys.readouterr().err


def test_llm_reward_check_plays_randomly_where_the_task_has_no_expert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "hop.py"
    program.write_text(
        "def compute_reward(torso_x_velocity, is_healthy):\n"
        "    forward = torso_x_velocity.astype(np.float64)\n"
        "    alive = is_healthy.astype(np.float64)\n"
        "    return forward + alive, {'forward': forward, 'alive': alive}\n"
    )
    assert main(["llm-reward", "check", str(program), "--env", "Hopper-v5"]) == 0
    assert "passed" in capsys.readouterr().out.lower()
