"""The reward search against LLM servers as they behave: one that dies mid-search, one that
starts failing, and Ctrl-C while the search waits on the server or trains. Real HTTP servers
on loopback; Ctrl-C is a real SIGINT to a ``rewardlab llm-reward search`` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.experiments.llm_reward.search import run_search
from rewardlab.llm import client as client_module
from tests.experiments.test_llm_search import ENV, GOOD, config
from tests.llm.fake_server import FakeLLMServer, Reply, last_user_message

ROOT = Path(__file__).resolve().parents[2]


def improving(body: dict[str, Any]) -> str:
    """A program for every request (the first round's and the improved ones alike)."""
    return GOOD.format(scale=0.1 if "Write an improved reward" in last_user_message(body) else 0.05)


def test_a_server_that_dies_mid_search_stops_it_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    server = FakeLLMServer(responses=improving).start()
    logged: list[str] = []

    def log(line: str) -> None:
        logged.append(line)
        if line.startswith("r0-i1: asking"):  # the first round answered; now it dies
            server.stop()

    try:
        cfg = config(server.base_url, tmp_path / "cache", iterations=3, failure_episodes=0)
        summary = run_search(cfg, tmp_path / "run", log=log)
    finally:
        server.stop()
    assert summary["stop_reason"] == "error"
    error = summary["error"]
    assert error.startswith(
        "the LLM server failed every request of r0-i1 (2 requests), after 2 answers before"
    )
    assert "connection refused" in error
    assert f"--cache-dir {tmp_path / 'cache'}" in error  # how to go on once it is back
    # What it found before is kept; the failed round is recorded and no third one was asked.
    rows = {row["id"]: row for row in summary["candidates"]}
    assert list(rows) == ["r0-i0-k0", "r0-i0-k1", "r0-i1-k0", "r0-i1-k1"]
    assert rows["r0-i0-k0"]["fitness"] is not None and rows["r0-i0-k1"]["fitness"] is not None
    assert [rows[f"r0-i1-k{k}"]["check"] for k in (0, 1)] == ["no answer", "no answer"]
    assert [r["iteration"] for r in summary["rounds"]] == [0, 1]
    assert summary["rounds"][1]["stopped"] == error
    saved = json.loads((tmp_path / "run/search.json").read_text())
    assert saved["stop_reason"] == "error" and saved["error"] == error
    report = (tmp_path / "run/report.md").read_text()
    assert "The search stopped with an error after 4 of 6 candidates: the LLM server failed" in (
        " ".join(report.split())
    )
    assert logged[-1].startswith("LLM: 2 requests answered by the server, 0 from the cache")


def test_the_cli_exits_1_when_the_server_starts_failing_and_counts_the_retried_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardlab.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)  # retries at once
    answered = []

    def then_500(body: dict[str, Any]) -> Any:
        if len(answered) < 1:
            answered.append(body)
            return Reply(content=GOOD.format(scale=0.05), usage=(300, 50))
        return Reply(status=500, body={"error": {"message": "out of memory"}})

    with FakeLLMServer(responses=then_500) as server:
        args = ["llm-reward", "search", "--env", ENV, "--model", "m", "--base-url"]
        args += [server.base_url, "--steps", "64", "--samples", "1", "--iterations", "3"]
        status = main([*args, "--env-kwarg", "size=5", "--out", str(tmp_path / "run")])
        # The default 4 retries: round i1's request was sent 5 times, all abandoned.
        assert server.request_count == 1 + 5
    out, err = capsys.readouterr()
    assert status == 1
    assert (
        "error: the LLM server failed every request of r0-i1 (1 request), after 1 answer before"
        in err
    )
    assert "HTTP 500" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "run/search.json").read_text())
    assert summary["stop_reason"] == "error"
    usage = summary["usage"]
    # The same prompt for every attempt of the request; none was answered, so its tokens are
    # unknown, and the answered request (another prompt) says nothing about them.
    assert (usage["abandoned"], usage["abandoned_unmeasured"]) == (5, 5)
    assert usage["abandoned_prompt_tokens"] == 0
    record = json.loads((tmp_path / "run/candidates/r0-i1-k0/candidate.json").read_text())
    assert [a["reason"] for a in record["attempts"][0]["abandoned"]] == ["HTTP 500"] * 5
    # The last log line and the report say it.
    said = "5 attempts abandoned (timed out, connection lost or HTTP 5xx"
    assert said in out.splitlines()[-3]  # before the CLI's "stopped:" and "report:" lines
    assert said in (tmp_path / "run/report.md").read_text()


# -- Ctrl-C --


def search_process(tmp_path: Path, base_url: str, steps: int) -> subprocess.Popen[str]:
    """``rewardlab llm-reward search`` in a fresh interpreter (2 samples x 2 iterations)."""
    spec = {
        "env": ENV,
        "llm": {"model": "m", "base_url": base_url, "max_retries": 0, "timeout_s": 120},
        "samples": 2,
        "iterations": 2,
        "failure_episodes": 0,
        "train": {
            "steps": steps,
            "eval_episodes": 2,
            "evaluations": 2,
            "hyperparams": {"n_envs": 2, "n_steps": 32, "batch_size": 32},
            "env_kwargs": {"size": 5},
        },
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "rewardlab.cli", "llm-reward", "search"]
    command += ["--config", str(tmp_path / "search.yaml"), "--out", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def interrupt_when(
    proc: subprocess.Popen[str], ready: Callable[[], bool], timeout_s: float = 90
) -> tuple[str, str, float]:
    """Send SIGINT to the process group once ``ready()``, as Ctrl-C in a terminal does;
    returns stdout, stderr and the seconds it took to end."""
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
                pytest.fail(f"never got ready to interrupt (exit {proc.poll()}): {out}\n{err}")
            time.sleep(0.05)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return out, err, time.monotonic() - sent
    finally:
        proc.kill()


def cached_answers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.json") if not p.name.endswith(".error.json")]


def test_ctrl_c_while_waiting_on_the_server_stops_cleanly_and_keeps_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def slow_second_round(body: dict[str, Any]) -> Any:
        if "Write an improved reward" in last_user_message(body) and body["seed"] % 2:
            return Reply(content=GOOD.format(scale=0.2), delay_s=120)  # in flight at Ctrl-C
        return improving(body)

    cache = tmp_path / "run/llm_cache"
    with FakeLLMServer(responses=slow_second_round) as server:
        proc = search_process(tmp_path, server.base_url, steps=256)
        # Round i0's two answers and round i1's quick one are cached; its slow one is out.
        out, err, took = interrupt_when(
            proc, lambda: server.request_count == 4 and len(cached_answers(cache)) == 3
        )
    assert proc.returncode == 130, err
    assert "Traceback" not in err and took < 30
    summary = json.loads((tmp_path / "run/search.json").read_text())
    assert summary["stop_reason"] == "interrupted"
    assert summary["error"].startswith(
        "interrupted (Ctrl-C); 1 request in flight was abandoned (the server may still "
        "compute it); the answers received are kept: to go on, run the same search with a "
        f"new --out and --cache-dir {cache}"
    )
    assert err.strip() == f"error: {summary['error']}"  # one line, no traceback
    assert out.splitlines()[-2].startswith("stopped: interrupted; best r0-i0-k")
    # Every answer received is in the records: round i0 trained, i1's answer kept unchecked.
    rows = {row["id"]: row for row in summary["candidates"]}
    assert list(rows) == ["r0-i0-k0", "r0-i0-k1", "r0-i1-k0"]
    assert all(rows[f"r0-i0-k{k}"]["fitness"] is not None for k in (0, 1))
    kept = json.loads((tmp_path / "run/candidates/r0-i1-k0/candidate.json").read_text())
    assert kept["attempts"][0]["response"].startswith("Here is a reward")
    assert kept["skipped"] == "interrupted (Ctrl-C) while asking for this round's programs"
    assert summary["rounds"][1]["stopped"] == kept["skipped"]
    report = " ".join((tmp_path / "run/report.md").read_text().split())
    assert "The search stopped after 3 of 4 candidates, interrupted (Ctrl-C)" in report
    assert len(cached_answers(cache)) == 3  # no failure was recorded for the abandoned one

    # Going on as it says: only the request that was never answered is sent again.
    from rewardlab.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with FakeLLMServer(responses=improving) as server:
        args = ["llm-reward", "search", "--config", str(tmp_path / "search.yaml")]
        args += ["--base-url", server.base_url, "--cache-dir", str(cache)]
        assert main([*args, "--out", str(tmp_path / "resumed")]) == 0
        assert server.request_count == 1 and server.seeds == [10_001]
    resumed = json.loads((tmp_path / "resumed/search.json").read_text())
    assert [row["id"] for row in resumed["candidates"]] == [*rows, "r0-i1-k1"]
    assert resumed["usage"]["cached"] == 3


def test_ctrl_c_during_training_stops_cleanly_and_keeps_the_rounds_answers(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    with FakeLLMServer(responses=improving) as server:
        proc = search_process(tmp_path, server.base_url, steps=10_000_000)
        out, err, took = interrupt_when(
            proc, lambda: (run / "candidates/r0-i0-k0/seed_0/config.json").exists()
        )
        assert server.request_count == 2
    assert proc.returncode == 130, err
    assert "Traceback" not in err and took < 30
    summary = json.loads((run / "search.json").read_text())
    assert summary["stop_reason"] == "interrupted" and summary["best"] is None
    assert err.strip() == f"error: {summary['error']}"
    rows = {row["id"]: row for row in summary["candidates"]}
    assert (rows["r0-i0-k0"]["check"], rows["r0-i0-k0"]["training"]) == ("passed", "stopped")
    first = json.loads((run / "candidates/r0-i0-k0/candidate.json").read_text())
    assert first["error"] == "interrupted (Ctrl-C)"
    second = json.loads((run / "candidates/r0-i0-k1/candidate.json").read_text())
    assert second["skipped"] == "interrupted (Ctrl-C)"
    assert second["attempts"][0]["response"].startswith("Here is a reward")
    assert (run / "report.md").exists()


def test_a_timed_out_request_is_kept_with_its_attempt_and_replays_with_the_same_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.llm.fake_server import unused_port

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    cache = tmp_path / "cache"
    llm = {"model": "m", "max_retries": 1, "timeout_s": 0.3}
    with FakeLLMServer(responses=improving) as server:
        server.inject(Reply(content="too late", delay_s=3.0))  # the first request to arrive
        cfg = config(server.base_url, cache, samples=2, iterations=1, failure_episodes=0)
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update=llm)})
        summary = run_search(cfg, tmp_path / "run")
        assert server.request_count == 3
    usage = summary["usage"]
    prompt = usage["prompt_tokens"] // 2  # both samples share the prompt
    assert (usage["abandoned"], usage["abandoned_unmeasured"]) == (1, 0)
    assert usage["abandoned_prompt_tokens"] == prompt > 0
    records = [
        json.loads((tmp_path / f"run/candidates/r0-i0-k{k}/candidate.json").read_text())
        for k in (0, 1)
    ]
    (lost,) = [a for r in records for a in r["attempts"][0].get("abandoned", [])]
    assert lost["reason"] == "timed out" and lost["seconds"] >= 0.3
    assert usage["abandoned_s"] == lost["seconds"]
    report = " ".join((tmp_path / "run/report.md").read_text().split())
    assert "1 attempt abandoned (timed out, connection lost or HTTP 5xx" in report
    assert f"{prompt} prompt tokens sent with them" in report

    replay = cfg.model_copy(
        update={
            "llm": cfg.llm.model_copy(update={"base_url": f"http://127.0.0.1:{unused_port()}/v1"}),
            "cache": cfg.cache.model_copy(update={"mode": "replay"}),
        }
    )
    replayed = run_search(replay, tmp_path / "replay")
    assert {k: v for k, v in replayed["usage"].items() if k not in ("requests", "cached")} == {
        k: v for k, v in usage.items() if k not in ("requests", "cached")
    }
