"""One short training per shipped adapter through the command line, with progress shaping
(the path that needs the most of a task: progress every step, success for the evaluation).
Tiny budgets: these check that every path runs, not that anything is learned."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab.cli import main

TINY = ["--set", "n_envs=2", "--set", "n_steps=64", "--set", "batch_size=64"]


@pytest.mark.parametrize(
    ("env", "steps"),
    [
        (["CartPole-v1"], 256),
        (["MountainCar-v0"], 256),
        (["MountainCarContinuous-v0"], 256),
        (["Pendulum-v1"], 256),
        (["InvertedPendulum-v5"], 256),
        (["Hopper-v5"], 256),
        (["HalfCheetah-v5"], 256),
        (["Humanoid-v5"], 256),
        (["MiniGrid-Empty-5x5-v0"], 256),
        (["highway-fast-v0"], 128),
        (["FetchReach-v4"], 128),  # Dict observations
        (["Meta-World/MT1", "--env-kwarg", "env_name=reach-v3"], 128),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else str(v),
)
def test_cli_trains_with_progress_shaping(env: list[str], steps: int, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--env", *env, "--reward", "pbrs", "--steps", str(steps)]
    args += ["--eval-freq", str(steps), "--eval-episodes", "2", "--out", str(out)]
    if env[0].startswith(("Meta-World", "Hopper", "HalfCheetah", "Humanoid", "MountainCarC")):
        args += ["--env-kwarg", "max_episode_steps=64"]  # short evaluation episodes
    assert main([*args, "--no-progress", *TINY]) == 0
    rows = (out / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("step,success_rate") and len(rows) >= 2
