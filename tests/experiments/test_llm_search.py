"""The Eureka-style search end to end, against a real OpenAI-compatible server on loopback;
then the same search replayed offline from its cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab.experiments.llm_reward.search import load_search_config, run_search
from rewardlab.wrappers import vec
from tests.agents.test_budget import FakeClock
from tests.llm.fake_server import FakeLLMServer, Reply, last_user_message, unused_port

ENV = "rewardlab/GridEmpty-v0"

GOOD = """Here is a reward that pulls the agent to the goal.

```python
def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    approach = -{scale} * distance
    bonus = 5.0 * (distance == 0)
    return approach + bonus, {{"approach": approach, "bonus": bonus}}
```
"""

NO_CODE = "I would reward the agent for getting closer to the goal."
UNKNOWN_VARIABLE = (
    "```python\ndef compute_reward(agent_position):\n    return agent_position, {}\n```"
)


def script(body: dict[str, Any]) -> Any:
    """Answers by what is asked and by the request's seed (samples arrive in any order)."""
    last = last_user_message(body)
    seed = body.get("seed") or 0
    if "failed the check" in last:  # a repair round
        return GOOD.format(scale=0.03)
    if "Write an improved reward" in last:
        return GOOD.format(scale=0.1 if seed % 2 else 0.2)
    if "None of the programs worked" in last:
        return GOOD.format(scale=0.05)
    return GOOD.format(scale=0.05) if seed % 2 == 0 else NO_CODE


def config(base_url: str, cache_dir: Path, **overrides: Any) -> Any:
    data = {
        "env": ENV,
        "llm": {"model": "test-model", "base_url": base_url, "max_retries": 0, "timeout_s": 5},
        "samples": 2,
        "iterations": 2,
        "restarts": 1,
        "train": {
            "steps": 256,
            "seeds": [0],
            "eval_episodes": 2,
            "evaluations": 2,
            "hyperparams": {"n_envs": 2, "n_steps": 32, "batch_size": 32},
            "env_kwargs": {"size": 5},
        },
        "failure_episodes": 2,
        "cache": {"dir": str(cache_dir)},
        **overrides,
    }
    return load_search_config(data)


def three_envs(cfg: Any) -> Any:
    """``cfg`` training on 3 envs: batches of 3, a size the smoke test (64, 1, 2) never uses."""
    hyperparams = {"n_envs": 3, "n_steps": 32, "batch_size": 32}
    return cfg.model_copy(
        update={"train": cfg.train.model_copy(update={"hyperparams": hyperparams})}
    )


def choices(summary: dict[str, Any]) -> tuple[Any, ...]:
    return (summary["candidates"], summary["rounds"], summary["best"])


def test_search_then_replay_gives_the_same_candidates_and_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    cache = tmp_path / "cache"
    with FakeLLMServer(responses=script) as server:
        first = run_search(config(server.base_url, cache), tmp_path / "run")
        sent = list(server.requests)
    # K=2 x N=2 samples plus one repair request for the response without code.
    assert len(sent) == 5 and all(r.get("n", 1) == 1 for r in sent)
    assert [c["id"] for c in first["candidates"]] == [
        "r0-i0-k0",
        "r0-i0-k1",
        "r0-i1-k0",
        "r0-i1-k1",
    ]
    assert all(c["fitness"] is not None for c in first["candidates"])
    assert first["rounds"][0]["best"] is not None and first["stop_reason"] == "done"

    record = json.loads((tmp_path / "run/candidates/r0-i0-k1/candidate.json").read_text())
    assert record["attempts"][0]["verdict"]["reason"] == "no_code"  # then repaired
    assert record["attempts"][-1]["verdict"]["passed"]
    outcome = first["candidates"][1]["outcome"]
    assert outcome.startswith("fitness ") and outcome.endswith("(after 1 repair)")
    best = json.loads((tmp_path / "run/candidates/r0-i0-k0/candidate.json").read_text())
    assert "task_success_rate" in best["reflection"] and "approach" in best["reflection"]
    # The second round was shown the best program and its reflection.
    second = [r for r in sent if "Write an improved reward" in last_user_message(r)]
    assert len(second) == 2 and "task_success_rate" in last_user_message(second[0])
    assert (tmp_path / "run/best_program.py").read_text().startswith("def compute_reward")

    # Replay: the server is gone; the cache answers; training is seeded.
    replayed = run_search(
        config(
            f"http://127.0.0.1:{unused_port()}/v1",
            cache,
            cache={"dir": str(cache), "mode": "replay"},
        ),
        tmp_path / "replay",
    )
    assert choices(replayed) == choices(first)
    assert replayed["usage"]["cached"] == 5


def test_bad_servers_and_answers_never_crash_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    # Unreachable server: every candidate records the error, the search ends normally.
    summary = run_search(
        config(f"http://127.0.0.1:{unused_port()}/v1", tmp_path / "c1", iterations=1),
        tmp_path / "unreachable",
    )
    # Not one answer: an error (a wrong base_url is not a finished search), records kept.
    assert summary["best"] is None and summary["stop_reason"] == "error"
    assert summary["error"].startswith("the LLM server answered none of the requests")
    assert "could not reach the LLM server" in summary["error"]
    record = json.loads((tmp_path / "unreachable/candidates/r0-i0-k0/candidate.json").read_text())
    assert "could not reach the LLM server" in record["attempts"][0]["error"]

    # Malformed bodies, no code block and an unknown variable, with no repair rounds.
    answers = [Reply(body=b"{not json"), Reply(content=NO_CODE), Reply(content=UNKNOWN_VARIABLE)]

    def bad(body: dict[str, Any]) -> Any:
        return answers[(body.get("seed") or 0) % 3]

    with FakeLLMServer(responses=bad) as server:
        summary = run_search(
            config(server.base_url, tmp_path / "c2", iterations=1, samples=3, repair_rounds=0),
            tmp_path / "bad",
        )
    assert summary["best"] is None and summary["stop_reason"] == "done"  # some answered
    verdicts = {}
    for k in range(3):
        rec = json.loads((tmp_path / f"bad/candidates/r0-i0-k{k}/candidate.json").read_text())
        attempt = rec["attempts"][0]
        verdicts[k] = attempt.get("error") or attempt["verdict"]["reason"]
    assert "JSON" in str(verdicts[0]) or "malformed" in str(verdicts[0]).lower()
    assert verdicts[1] == "no_code"
    assert verdicts[2] == "unknown_variable"


def test_budgets_stop_the_search_with_a_reason_and_keep_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        summary = run_search(
            config(server.base_url, tmp_path / "c", budgets={"env_steps": 100}),
            tmp_path / "run",
        )
        # The first candidate trains (256 steps); the budget stops the search before the
        # second, whose answer is kept unchecked.
        assert "env-step budget" in summary["stop_reason"]
        assert summary["env_steps"] >= 256
        assert [c["id"] for c in summary["candidates"]] == ["r0-i0-k0", "r0-i0-k1"]
        assert summary["best"] == {"id": "r0-i0-k0", "fitness": summary["candidates"][0]["fitness"]}
        assert (tmp_path / "run/best_program.py").exists()
        skipped = json.loads((tmp_path / "run/candidates/r0-i0-k1/candidate.json").read_text())
        assert "env-step budget" in skipped["skipped"] and skipped["attempts"][0]["response"]
        (stopped,) = summary["rounds"]  # the round it stopped in is kept
        assert stopped["best"] == "r0-i0-k0" and "env-step budget" in stopped["stopped"]

        # A token budget the first round spends: the second round is never asked for.
        summary = run_search(
            config(server.base_url, tmp_path / "c2", samples=1, budgets={"tokens": 1}),
            tmp_path / "tok",
        )
        assert summary["stop_reason"].startswith("token budget")
        assert [r["iteration"] for r in summary["rounds"]] == [0]
        # A wall-time budget spent before the first round: not one request is sent.
        sent = server.request_count
        summary = run_search(
            config(server.base_url, tmp_path / "c3", budgets={"wall_s": 1e-6}), tmp_path / "wall"
        )
        assert "wall-time budget" in summary["stop_reason"]
        assert summary["rounds"] == summary["candidates"] == []
        assert server.request_count == sent


def test_a_token_budget_spent_by_a_repair_still_checks_the_answers_paid_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    answers = {0: NO_CODE, 1: GOOD.format(scale=0.05)}
    with FakeLLMServer(
        responses=lambda body: answers.get(body.get("seed") or 0, NO_CODE)
    ) as server:
        summary = run_search(
            config(server.base_url, tmp_path / "c", budgets={"tokens": 1}), tmp_path / "run"
        )
        assert server.request_count == 2  # the round; the repair of k0 is never sent
    assert summary["stop_reason"].startswith("token budget")
    assert summary["best"] is not None and summary["best"]["id"] == "r0-i0-k1"
    first = json.loads((tmp_path / "run/candidates/r0-i0-k0/candidate.json").read_text())
    assert first["attempts"][-1]["error"].startswith("token budget spent")


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"search\.samples"):
        load_search_config({"env": ENV, "llm": {"model": "m"}, "samples": 0})
    with pytest.raises(ValueError, match=r"search\.llm\.model"):
        load_search_config({"env": ENV, "llm": {}})


def test_search_training_runs_take_the_reward_budget(tmp_path: Path) -> None:
    from rewardlab.experiments.llm_reward.search import _train_config

    data = {"env": ENV, "llm": {"model": "m"}, "train": {"reward_budget": {"min_ms": 5}}}
    cfg = load_search_config(data)
    assert _train_config(cfg, "sparse", seed=0).reward_budget.min_ms == 5
    with pytest.raises(ValueError, match=r"search\.train\.reward_budget"):
        load_search_config({**data, "train": {"reward_budget": {"min_ms": -1}}})


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rewardlab.cli import main

    good = tmp_path / "good.py"
    good.write_text(
        "def compute_reward(agent_pos, goal_pos):\n"
        "    d = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0\n"
        "    return -d, {'distance': d}\n"
    )
    assert main(["llm-reward", "check", str(good), "--env", ENV]) == 0
    assert "passed" in capsys.readouterr().out
    response = tmp_path / "answer.md"  # an LLM response: the program is extracted from it
    response.write_text("Sure!\n```python\n" + good.read_text() + "```\n")
    assert main(["llm-reward", "check", str(response), "--env", ENV]) == 0
    capsys.readouterr()
    for source, reason in (
        ("import os\n", "import"),
        ("def compute_reward(agent_pos):\n    while True:\n        pass\n", "timeout"),
        ("def compute_reward(agent_pos):\n    return agent_pos, {}\n", "bad_output"),
    ):
        bad = tmp_path / "bad.py"
        bad.write_text(source)
        assert main(["llm-reward", "check", str(bad), "--env", ENV]) == 1
        assert reason in capsys.readouterr().err
    assert main(["llm-reward", "check", str(good), "--env", "rewardlab/Nope-v0"]) == 2


def test_eval_reward_judges_a_program(tmp_path: Path) -> None:
    from rewardlab.evaluation.datasets import DatasetConfig
    from rewardlab.experiments.reward_eval import run_eval

    report = run_eval(
        ENV,
        ["program", "{model: {kind: program, path: reference}, mode: add}"],
        tmp_path / "eval",
        dataset_config=DatasetConfig(ENV, episodes={"expert": 2, "random": 2}, frames=False),
    )
    summary = json.loads((report.parent / "summary.json").read_text())
    row = summary["rewards"][0]
    assert row["name"] == "program" and row["roc_auc"] > 0.9 and row["starc"] is not None


def test_a_program_that_fails_only_in_training_is_a_failed_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    # The check calls it as training does (batches of 3 states, too), so what fails only in
    # training is what only training measures: its cost against the env step. Seen through a
    # fake clock, each call takes 60 ms (more than the 50 ms limit): judged after 80 vector
    # steps (the budget's warm-up and first window), which the search's budget counts.
    monkeypatch.setattr(vec, "perf_counter", FakeClock(env_s=0.001, model_s=0.060))
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        cfg = config(server.base_url, tmp_path / "c", iterations=1, samples=1)
        summary = run_search(three_envs(cfg), tmp_path / "run")
    assert summary["stop_reason"] == "done" and summary["best"] is None
    record = json.loads((tmp_path / "run/candidates/r0-i0-k0/candidate.json").read_text())
    assert record["smoke"]["passed"]
    assert "compute_reward costs more per call than training allows" in record["training_error"]
    failed = json.loads((tmp_path / "run/candidates/r0-i0-k0/seed_0/failed.json").read_text())
    assert "costs 60 ms per call at 3 envs" in failed["error"]
    assert summary["env_steps"] == failed["steps"] == 3 * 80


def test_feedback_keeps_the_restart_best_and_says_what_the_sandbox_corrected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    # Rewards beyond the guard's range (100): the check only warns, the guards clip them.
    too_large = (
        "```python\ndef compute_reward(agent_pos, goal_pos):\n"
        "    distance = np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0\n"
        "    approach = -1000.0 * distance\n"
        "    return approach, {'approach': -distance}\n```"
    )

    def answer(body: dict[str, Any]) -> str:
        return NO_CODE if "Write an improved reward" in last_user_message(body) else too_large

    with FakeLLMServer(responses=answer) as server:
        cfg = config(server.base_url, tmp_path / "c", iterations=3, samples=1, repair_rounds=0)
        run_search(three_envs(cfg), tmp_path / "run")
        prompts = [last_user_message(r) for r in server.requests]
    # Round 2 hears what the guards corrected; round 3, after a round with no working
    # program, is still shown the restart's best program, with what went wrong since.
    assert "rewards were outside the allowed range and were clipped" in prompts[1]
    assert "The programs of the last round did not work" in prompts[2]
    assert "no_code" in prompts[2] or "no program" in prompts[2].lower()
    third = server.requests[2]["messages"]
    assert third[-2]["role"] == "assistant" and "-1000.0 * distance" in third[-2]["content"]


def test_a_repair_round_sends_back_only_the_start_of_a_huge_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    huge = NO_CODE + "\n" * 2_000_000  # over extract_code's cap: rejected before parsing
    with FakeLLMServer(responses=[huge, GOOD.format(scale=0.05)]) as server:
        cfg = config(server.base_url, tmp_path / "c", iterations=1, samples=1, repair_rounds=1)
        summary = run_search(three_envs(cfg), tmp_path / "run")
        repair = server.requests[1]["messages"]
    assert summary["best"] is not None
    assert repair[-2]["role"] == "assistant" and repair[-2]["content"].startswith(NO_CODE)
    assert (
        len(repair[-2]["content"]) < 60_000 and "more characters not shown" in repair[-2]["content"]
    )
    assert "at most 1000000 are read" in repair[-1]["content"]


def test_a_refused_key_stops_the_search_with_an_error_and_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardlab.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=script) as server:
        server.fail(times=1, status=401)
        summary = run_search(config(server.base_url, tmp_path / "c"), tmp_path / "run")
        assert summary["stop_reason"] == "error" and "401" in summary["error"]
        assert json.loads((tmp_path / "run/search.json").read_text())["error"]

        # The CLI exits 1 with the reason; a folder holding a search is refused (2).
        server.fail(times=1, status=401)
        args = ["llm-reward", "search", "--env", ENV, "--model", "m", "--base-url"]
        args += [server.base_url, "--steps", "64", "--samples", "1", "--iterations", "1"]
        assert main([*args, "--out", str(tmp_path / "cli")]) == 1
        assert capsys.readouterr().err.count("error: ") == 1  # said once
        assert main([*args, "--out", str(tmp_path / "run")]) == 2
        assert "already holds a search" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("drop", "add", "message"),
    [
        ("--model", [], "--model is required (or llm.model in the --config YAML)"),
        ("--env", [], "--env is required"),
        (None, ["--replay"], "--replay needs the recording to replay: --cache-dir"),
        (None, ["--env-kwarg", "sizee=5"], "sizee"),
    ],
)
def test_search_command_names_what_is_missing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    drop: str | None,
    add: list[str],
    message: str,
) -> None:
    from rewardlab.cli import main

    options = {"--env": ENV, "--model": "m", "--base-url": f"http://127.0.0.1:{unused_port()}/v1"}
    args = ["llm-reward", "search", "--out", str(tmp_path / "out"), *add]
    for option, value in options.items():
        if option != drop:
            args += [option, value]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "candidates").exists()


def test_replay_off_its_recording_stops_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    cfg = config(
        f"http://127.0.0.1:{unused_port()}/v1",
        tmp_path / "empty",
        cache={"dir": str(tmp_path / "empty"), "mode": "replay"},
    )
    summary = run_search(cfg, tmp_path / "run")
    assert summary["stop_reason"] == "error" and "replay mode" in summary["error"]
    assert summary["candidates"] == [] and (tmp_path / "run/search.json").exists()


@pytest.mark.parametrize("mode", ["add", "potential"])
def test_add_and_potential_modes_train_and_say_how_the_reward_is_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    feedback = tmp_path / "notes.txt"
    feedback.write_text("The agent should not waste steps.")
    with FakeLLMServer(responses=script) as server:
        summary = run_search(
            config(
                server.base_url,
                tmp_path / "c",
                mode=mode,
                samples=1,
                restarts=2,
                feedback_file=str(feedback),
            ),
            tmp_path / "run",
        )
        sent = list(server.requests)
    system = sent[0]["messages"][0]["content"]
    assert ("potential Phi(s)" in system) == (mode == "potential")
    assert "the environment's own sparse reward" in system
    # Two restarts, each with its own first round from the initial messages.
    assert [c["id"] for c in summary["candidates"]] == [
        "r0-i0-k0",
        "r0-i1-k0",
        "r1-i0-k0",
        "r1-i1-k0",
    ]
    assert [r["restart"] for r in summary["rounds"]] == [0, 0, 1, 1]
    best = json.loads((tmp_path / "run/candidates/r0-i0-k0/candidate.json").read_text())
    assert best["fitness"] is not None
    # The program's components reach the reflection in both modes (potential: of Phi(s')).
    assert ("potential/approach" if mode == "potential" else "approach") in best["per_seed"][0][
        "components"
    ]
    diagnostics = best["per_seed"][0]["diagnostics"]
    role = "potential" if mode == "potential" else "reward"
    assert diagnostics[role]["calls"] > 0 and diagnostics[role]["sha256"] == best["sha256"]
    improved = [r for r in sent if "Write an improved reward" in last_user_message(r)]
    assert improved and "The agent should not waste steps." in last_user_message(improved[0])


def test_search_command_with_baselines_reports_the_normalized_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from rewardlab.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        data = config(server.base_url, tmp_path / "cache").model_dump(mode="json")
        (tmp_path / "search.yaml").write_text(yaml.safe_dump(data))
        out = tmp_path / "out"
        args = ["llm-reward", "search", "--config", str(tmp_path / "search.yaml")]
        args += ["--samples", "1", "--iterations", "1", "--baselines", "--out", str(out)]
        assert main(args) == 0
    assert "best r0-i0-k0" in capsys.readouterr().out
    summary = json.loads((out / "search.json").read_text())
    base = summary["baselines"]
    assert base["best"] == "r0-i0-k0" and base["seeds"] == [1000]  # held-out seeds
    assert base["eval_seed"] == 2_000_000  # and held-out evaluation episodes
    assert base["best_fitness_in_search"] == summary["best"]["fitness"]
    for name in ("method", "sparse", "human"):
        assert (out / f"baselines/{name}/seed_1000/eval.csv").exists()
    assert (out / "baselines/human/seed_1000/config.json").read_text().count('"dense"') == 1
    gap = abs(base["human"] - base["sparse"])
    expected = None if gap == 0 else (base["method"] - base["sparse"]) / gap
    assert base["human_normalized_score"] == (None if expected is None else pytest.approx(expected))


def test_a_search_with_a_failed_request_replays_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    cache = tmp_path / "cache"
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        server.fail(times=1, status=500)  # one of the round's two samples
        first = run_search(config(server.base_url, cache, iterations=1), tmp_path / "run")
    errors = [
        json.loads((tmp_path / f"run/candidates/r0-i0-k{k}/candidate.json").read_text())
        for k in range(2)
    ]
    assert sum("500" in str(r["attempts"][0].get("error")) for r in errors) == 1
    replayed = run_search(
        config(
            f"http://127.0.0.1:{unused_port()}/v1",
            cache,
            iterations=1,
            cache={"dir": str(cache), "mode": "replay"},
        ),
        tmp_path / "replay",
    )
    assert replayed["stop_reason"] == "done" and choices(replayed) == choices(first)


def test_baselines_record_a_best_program_that_fails_when_retrained(tmp_path: Path) -> None:
    from rewardlab.experiments.llm_reward.search import _baselines

    code = (
        "def compute_reward(agent_pos, goal_pos):\n"
        "    if agent_pos.shape[0] == 3:\n"
        "        raise ValueError('new seeds, new states')\n"
        "    return -np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0, {}\n"
    )
    cfg = three_envs(config("http://127.0.0.1:9/v1", tmp_path / "cache"))
    report = _baselines(
        cfg, tmp_path / "baselines", {"id": "r0-i0-k0", "fitness": 1.0, "code": code}
    )
    assert report["method"] is None and "new seeds, new states" in report["method_error"]
    assert report["sparse"] is not None and report["human"] is not None  # still trained
    assert report["human_normalized_score"] is None


def test_the_same_program_twice_is_trained_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        cfg = config(server.base_url, tmp_path / "cache", iterations=1, failure_episodes=0)
        summary = run_search(cfg, tmp_path / "run")
    first, second = summary["candidates"]
    assert first["sha256"] == second["sha256"] and first["fitness"] == second["fitness"]
    record = json.loads((tmp_path / "run/candidates/r0-i0-k1/candidate.json").read_text())
    assert record["duplicate_of"] == "r0-i0-k0" and record["per_seed"]
    assert not (tmp_path / "run/candidates/r0-i0-k1/seed_0").exists()  # no second training
    assert (tmp_path / "run/candidates/r0-i0-k0/seed_0").is_dir()
    assert summary["env_steps"] == 256  # one candidate's training, not two


def test_the_cli_sets_the_answer_cap_the_timeout_and_the_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=script) as server:
        args = ["llm-reward", "search", "--env", ENV, "--model", "m", "--base-url"]
        args += [server.base_url, "--steps", "64", "--samples", "1", "--iterations", "1"]
        args += ["--max-tokens", "77", "--timeout", "9.5", "--concurrency", "2"]
        main([*args, "--out", str(tmp_path / "run")])
        assert server.requests and all(r.get("max_tokens") == 77 for r in server.requests)
    llm = json.loads((tmp_path / "run" / "search.json").read_text())["config"]["llm"]
    assert (llm["max_tokens"], llm["timeout_s"], llm["concurrency"]) == (77, 9.5, 2)


def test_a_rejected_program_whose_repair_request_failed_stays_rejected() -> None:
    from rewardlab.experiments.llm_reward.search import _problem_list, _problems

    smoke = {"passed": False, "stage": "validation", "reason": "syntax", "problems": ["line 2"]}
    rejected = {
        "attempts": [{"response": "def f(", "verdict": smoke}, {"response": None, "error": "503"}],
        "smoke": smoke,
        "fitness": None,
    }
    silent = {"attempts": [{"response": None, "error": "HTTP 503 from 10.0.0.7"}], "smoke": None}
    assert _problems(rejected) == (
        "rejected (validation: syntax): line 2 (then the request for its repair failed: 503)"
    )
    assert _problems(silent) == "no answer: HTTP 503 from 10.0.0.7"
    # The LLM is told what it can act on, never the transport's errors.
    told = _problem_list([rejected, silent])
    assert "503" not in told and "10.0.0.7" not in told
    assert told == (
        "- program 1: rejected (validation: syntax): line 2\n"
        "- program 2: no answer: the request to the server failed"
    )


CUT = "Here is the reward.\n\n```python\ndef compute_reward(agent_pos, goal_pos):\n    d = np.abs("


@pytest.mark.parametrize("repaired", [True, False])
def test_an_answer_cut_at_the_token_limit_is_said_to_be_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repaired: bool
) -> None:
    from rewardlab.experiments.llm_reward.search import CUT_NOTE

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")

    def cut_then(body: dict[str, Any]) -> Any:
        if "failed the check" in last_user_message(body) and repaired:
            return GOOD.format(scale=0.05)
        return Reply(content=CUT, finish_reason="length")

    with FakeLLMServer(responses=cut_then) as server:
        cfg = config(server.base_url, tmp_path / "c", samples=1, iterations=1)
        summary = run_search(cfg, tmp_path / "run")
        repair = server.requests[1]["messages"][-1]["content"]
    assert CUT_NOTE in repair  # the LLM is told why, not only that the syntax broke
    (record,) = summary["candidates"]
    outcome = record["outcome"]
    if repaired:
        assert record["fitness"] is not None and "after 1 repair" in outcome
    else:
        assert record["fitness"] is None
        assert "cut at the server's token limit: raise --max-tokens" in outcome
