"""A reward program that is slow only at the training batch size: the check measures it there,
training stops on it (or, when told to, finishes and warns), and the command line says so
in one line. The program's slowness is a Python loop of ~0.2 s against a 50 ms limit, and
~0.2 ms at every other batch size; nothing asserts a time. Command-line runs whose outcome
only depends on the budget see the reward layer through a fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from rewardlab.agents.train import TrainConfig, train
from rewardlab.cli import main
from rewardlab.experiments.llm_reward.checks import random_states, smoke_test
from rewardlab.wrappers import vec
from rewardlab.wrappers.timing import RewardBudget, RewardTooSlow
from tests.agents.test_budget import PROGRAM, FakeClock

GRID = "rewardlab/GridEmpty-v0"
SHAPES = {"agent_pos": (2,), "goal_pos": (2,)}

# Rewards closeness to the goal; with exactly three rows (training on three envs) it first
# counts to ten million, one by one.
SLOW_AT_THREE = """
def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0
    if len(distance) == 3:
        total = 0.0
        for i in range(10000000):
            total = total + 1.0
        distance = distance + 0.0 * total
    return -distance, {"distance": distance}
"""

SLOW_PROBLEM = (
    "it takes more than 50 ms per call on 3 states, the batch of a training run with 3 envs, "
    "where it would slow training down: vectorize with numpy, no Python loops over the batch"
)


def test_the_check_finds_it_only_at_the_training_batch_size() -> None:
    states = random_states(GRID, {"size": 5}, episodes=1, max_steps=8, expert_episodes=1)
    assert smoke_test(SLOW_AT_THREE, SHAPES, states).passed  # batches of 64, 1 and 2
    assert smoke_test(SLOW_AT_THREE, SHAPES, states, n_envs=4).passed
    report = smoke_test(SLOW_AT_THREE, SHAPES, states, n_envs=3)
    assert (report.stage, report.reason, report.problems) == ("checks", "slow", [SLOW_PROBLEM])
    assert report.n_envs == 3 and report.train_us_per_row is not None


def _config(tmp_path: Path, on_exceed: Literal["error", "warn"] = "error") -> TrainConfig:
    program = tmp_path / "slow.py"
    program.write_text(SLOW_AT_THREE)
    return TrainConfig(
        env=GRID,
        env_kwargs={"size": 5},
        reward={"model": {"kind": "program", "path": str(program)}},
        hyperparams={"n_envs": 3, "n_steps": 4, "batch_size": 12, "n_epochs": 1},
        steps=12,
        eval_freq=12,
        eval_episodes=1,
        # Judged after one warm-up step and a window of three (the default: 16 and 64).
        reward_budget=RewardBudget(warmup=1, window=3, on_exceed=on_exceed),
    )


def test_training_on_three_envs_stops_on_it(tmp_path: Path) -> None:
    with pytest.raises(RewardTooSlow) as caught:
        train(_config(tmp_path), tmp_path / "run")
    cost = caught.value.cost
    assert (cost.program, cost.n_envs, cost.limit_ms) == (str(tmp_path / "slow.py"), 3, 50.0)
    assert cost.exceeded and caught.value.report.startswith(f"reward program {cost.program} costs")
    # The failed run keeps what the sandbox saw, as a finished one would.
    diagnostics = json.loads((tmp_path / "run" / "reward_diagnostics.json").read_text())
    assert diagnostics["reward"]["calls"] >= 4 and "seccomp" in diagnostics["reward"]["hardening"]


def test_with_warn_training_on_three_envs_finishes_and_warns(tmp_path: Path) -> None:
    result = train(_config(tmp_path, "warn"), tmp_path / "run")
    assert result.steps == 12 and (tmp_path / "run" / "model.zip").is_file()
    (warning,) = result.warnings
    assert warning.startswith(f"reward program {tmp_path / 'slow.py'} costs ")
    assert " per call at 3 envs " in warning


def test_a_comparison_run_keeps_and_logs_the_warning(tmp_path: Path) -> None:
    from rewardlab.experiments.runner import DONE_MARKER, RunJob, _finished, execute_run

    config = _config(tmp_path, "warn").model_dump(mode="json")
    marker = execute_run(config, str(tmp_path / "run"))
    (warning,) = marker["warnings"]
    assert " per call at 3 envs " in warning
    assert json.loads((tmp_path / "run" / DONE_MARKER).read_text())["warnings"] == [warning]
    lines: list[str] = []
    _finished(RunJob(GRID, "slow", 0, tmp_path / "run", config), marker, lines.append)
    assert lines[-1] == f"warning: {GRID} slow seed=0: {warning}"


# --- the command line ---------------------------------------------------------------------------


def _train_args(tmp_path: Path) -> list[str]:
    program = tmp_path / "my_reward.py"
    program.write_text(PROGRAM)
    return [
        "train",
        "--env",
        GRID,
        "--env-kwarg",
        "size=5",
        "--reward",
        f"{{model: {{kind: program, path: {program}}}}}",
        "--steps",
        "256",
        "--eval-episodes",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
        *("--set", "n_envs=2", "--set", "n_steps=128", "--set", "batch_size=64"),
    ]


def test_train_reports_a_program_over_budget_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.080))
    assert main(_train_args(tmp_path)) == 1
    err = capsys.readouterr().err
    program = tmp_path / "my_reward.py"
    assert err.startswith(
        f"error: reward program failed (slow): reward program {program} costs 80 ms per call "
        "at 2 envs (40 ms per row), 80x the env step (1 ms); the limit is 50 ms per call (10x "
        "the env step, at least 50 ms). Vectorize it"
    )
    assert "or pass --slow-reward warn to only warn" in err and "Traceback" not in err
    check = f"rewardlab llm-reward check {program} --env {GRID} --env-kwarg size=5 --n-envs 2"
    assert f"`{check}`" in err
    assert (tmp_path / "run" / "failed.json").is_file()


def test_train_with_slow_reward_warn_finishes_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.080))
    assert main([*_train_args(tmp_path), "--slow-reward", "warn"]) == 0
    err = capsys.readouterr().err
    assert f"warning: reward program {tmp_path / 'my_reward.py'} costs 80 ms per call" in err
    # A budget of 100x the env step and at least 50 ms: 80 ms is within it.
    (tmp_path / "run").rename(tmp_path / "first")
    assert main([*_train_args(tmp_path), "--reward-budget", "100"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_prints_the_cost_at_the_training_batch_and_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "my_reward.py"
    program.write_text(PROGRAM)
    # PPO's default on the gridworlds: 16 envs.
    assert main(["llm-reward", "check", str(program), "--env", GRID]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("passed: ")
    assert out[1].startswith("cost at the training batch size (16 envs): ")
    assert out[1].endswith(" per row")
    assert out[2].startswith("sandbox: rlimits, ")
    assert main(["llm-reward", "check", str(program), "--env", GRID, "--algo", "dqn"]) == 0
    assert "(1 env)" in capsys.readouterr().out
    assert main(["llm-reward", "check", str(program), "--env", GRID, "--n-envs", "0"]) == 2


# --- in a search ---------------------------------------------------------------------------------


def test_a_search_records_a_program_over_budget_as_a_failed_candidate_and_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.experiments.llm_reward.search import run_search
    from tests.experiments.test_llm_search import GOOD, choices, config, three_envs
    from tests.llm.fake_server import FakeLLMServer, last_user_message, unused_port

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.060))
    cache = tmp_path / "cache"
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        cfg = config(server.base_url, cache, iterations=2, samples=1, repair_rounds=0)
        first = run_search(three_envs(cfg), tmp_path / "run")
        prompts = [last_user_message(r) for r in server.requests]
    # Two failed candidates, not a failed search; the second round hears why, without times.
    assert first["stop_reason"] == "done" and first["best"] is None
    assert [c["fitness"] for c in first["candidates"]] == [None, None]
    assert (
        "passed the check, then failed in training: slow: compute_reward costs more" in (prompts[1])
    )
    assert " ms per call at " not in prompts[1]
    record = json.loads((tmp_path / "run/candidates/r0-i0-k0/candidate.json").read_text())
    verdict = record["attempts"][0]["verdict"]
    assert verdict["passed"] and verdict["n_envs"] == 3 and verdict["train_us_per_row"] > 0

    # Replayed offline while the program seems to cost more (90 ms against 2 ms env steps):
    # the same requests, so the recording answers every one of them.
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.002, model_s=0.090))
    replay = config(
        f"http://127.0.0.1:{unused_port()}/v1",
        cache,
        iterations=2,
        samples=1,
        repair_rounds=0,
        cache={"dir": str(cache), "mode": "replay"},
    )
    replayed = run_search(three_envs(replay), tmp_path / "replay")
    assert replayed["stop_reason"] == "done" and choices(replayed) == choices(first)
