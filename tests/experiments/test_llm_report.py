"""The search's log and report.md, against a real OpenAI-compatible server on loopback: the
baselines and every candidate are logged as they finish ([k/N, ETA ...] and the best so far),
and report.md tabulates what search.json records, duplicates marked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rewardlab.experiments.llm_reward.report import search_report
from rewardlab.experiments.llm_reward.search import load_search_config, run_search
from tests.experiments.test_llm_search import GOOD, NO_CODE, UNKNOWN_VARIABLE, config
from tests.llm.fake_server import FakeLLMServer, last_user_message, unused_port


def candidate_rows(report: str) -> dict[str, list[str]]:
    """The report's candidate table rows by id, as cells (escaped pipes kept in a cell)."""
    rows = {}
    for line in report.splitlines():
        if line.startswith("| `r"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].split("`")[1]] = cells
    return rows


def cell(text: str) -> str:
    """A text as the report's table shows it: one line of at most 240 characters, pipes
    escaped, no HTML."""
    text = " ".join(text.split())
    text = text if len(text) <= 240 else text[:237] + "..."
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def assert_rows_match(report: str, summary: dict[str, Any]) -> dict[str, list[str]]:
    """Every candidate of search.json is one row of the report, with the same values."""
    rows = candidate_rows(report)
    assert list(rows) == [c["id"] for c in summary["candidates"]]
    best = summary["best"]["id"] if summary["best"] else None
    for c in summary["candidates"]:
        row = rows[c["id"]]
        assert row[0] == f"`{c['id']}`" + (" (best)" if c["id"] == best else "")
        assert row[1] == (c["sha256"][:12] if c["sha256"] else "—")
        assert row[2] == cell(c["check"])
        duplicate = f"duplicate of `{c['duplicate_of']}`"
        assert row[3] == (duplicate if c["duplicate_of"] else c["training"])
        if c["fitness"] is None:
            assert row[4] == "—" and row[-1] == cell(c["outcome"])
        else:
            assert row[4].split(" ")[0] == f"{c['fitness']:.2f}" and row[-1] == ""
    return rows


def by_seed(body: dict[str, Any]) -> tuple[int, int]:
    """(iteration, sample) of a request, from its seed (search seed 0)."""
    seed = body.get("seed") or 0  # a round's K samples: its seed + k (k < 10 here)
    return seed // 10_000, seed % 10


def duplicating_script(body: dict[str, Any]) -> str:
    """Round 0: a program, one without code (repaired into a second program), the first
    again. Round 1: the second program again, an unknown variable (twice), a third program."""
    last = last_user_message(body)
    iteration, k = by_seed(body)
    if "failed the check" in last:
        return UNKNOWN_VARIABLE if iteration else GOOD.format(scale=0.1)
    if iteration == 0:
        return [GOOD.format(scale=0.05), NO_CODE, GOOD.format(scale=0.05)][k]
    return [GOOD.format(scale=0.1), UNKNOWN_VARIABLE, GOOD.format(scale=0.2)][k]


def test_the_log_and_report_show_every_candidate_baseline_and_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    logged: list[str] = []
    with FakeLLMServer(responses=duplicating_script) as server:
        cfg = config(server.base_url, tmp_path / "c", samples=3, baselines=True)
        summary = run_search(cfg, tmp_path / "run", log=logged.append)
    out = tmp_path / "run"
    assert json.loads((out / "search.json").read_text()) == summary
    assert not list(out.glob(".*.tmp"))  # written atomically
    report = (out / "report.md").read_text()
    assert report == search_report(summary, (out / "best_program.py").read_text())

    # The table is search.json's candidates, duplicates marked and not trained again.
    rows = assert_rows_match(report, summary)
    dup = {c["id"]: c["duplicate_of"] for c in summary["candidates"]}
    assert dup == {
        "r0-i0-k0": None,
        "r0-i0-k1": None,
        "r0-i0-k2": "r0-i0-k0",
        "r0-i1-k0": "r0-i0-k1",
        "r0-i1-k1": None,
        "r0-i1-k2": None,
    }
    assert rows["r0-i0-k1"][2] == "passed after 1 repair"
    assert rows["r0-i1-k1"][2].startswith("rejected (") and rows["r0-i1-k1"][3] == "not trained"
    assert not (out / "candidates/r0-i1-k0/seed_0").exists()
    assert summary["env_steps"] == 3 * 256  # three distinct programs trained
    assert "3 distinct programs were trained, and 2 candidates repeated" in report
    assert "One training seed per candidate (seed 0)" in report

    # Each candidate logged with its count, an ETA until the last, and the best so far.
    lines = [line for line in logged if re.match(r"\[\d/6", line)]
    assert len(lines) == 6 and lines[-1].startswith("[6/6] r0-i1-k2: ")
    best: dict[str, Any] | None = None
    for k, (line, c) in enumerate(zip(lines, summary["candidates"], strict=True), start=1):
        assert line.startswith(f"[{k}/6, ETA " if k < 6 else "[6/6]")
        assert f"] {c['id']}: " in line
        if c["fitness"] is not None and (best is None or c["fitness"] > best["fitness"]):
            best = c
        assert line.endswith(
            f"best so far {best['id']} ({best['fitness']:.2f})"
            if best
            else "no program has a fitness yet"
        )
    assert best is not None and best["id"] == summary["best"]["id"]
    assert "r0-i1: asking test-model for 3 programs" in logged

    # The baselines, each logged as it finishes, and in the report's table.
    base = summary["baselines"]
    retrained = f"{base['best']} retrained"
    for label, name in ((retrained, "method"), ("sparse", "sparse"), ("dense (dense)", "human")):
        assert f"baseline {label}: true success {base[name]:.2f} (1 seed)" in logged
        run_lines = [line for line in logged if f"baseline {label}, seed 1000" in line]
        assert len(run_lines) == 1 and re.match(r"\[\d/3(, ETA .+)?\] ", run_lines[0])
    assert logged.index(f"baseline sparse: true success {base['sparse']:.2f} (1 seed)") > (
        logged.index(lines[-1])
    )
    assert any(line.startswith(f"human normalized score of {base['best']}: ") for line in logged)
    for label, name in (("best program, retrained", "method"), ("sparse task reward", "sparse")):
        assert f"| {label} | " in report
        (row,) = [line for line in report.splitlines() if line.startswith(f"| {label} | ")]
        assert f"| {base[name]:.2f} | {base['per_seed'][name][0]:.2f} |" in row
    # A normalized column exactly when the baselines define one.
    defined = base["sparse"] != base["human"]
    assert ("| normalized |" in report) == defined
    if not defined:
        assert "the normalized score is undefined" in report
    beat = sum(
        c["fitness"] is not None and c["fitness"] > base["sparse"] for c in summary["candidates"]
    )
    assert ("No candidate beat the sparse baseline" in report) == (beat == 0)


def test_an_unreachable_server_leaves_a_report_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    logged: list[str] = []
    url = f"http://127.0.0.1:{unused_port()}/v1"
    summary = run_search(
        config(url, tmp_path / "c", iterations=1), tmp_path / "run", log=logged.append
    )
    report = (tmp_path / "run/report.md").read_text()
    assert summary["stop_reason"] == "error"
    assert "The search stopped with an error after 2 of 2 candidates: the LLM server answered " in (
        report
    )
    assert "could not reach the LLM server" in report
    assert "No candidate has a fitness, so there is no best program." in report
    rows = assert_rows_match(report, summary)
    assert [r[2] for r in rows.values()] == ["no answer", "no answer"]
    assert "2 requests got no usable answer from the LLM" in report
    assert logged[0] == "r0-i0: asking test-model for 2 programs"
    assert logged[1].startswith("[1/2, ETA ") and logged[2].startswith("[2/2] r0-i0-k1: no answer")
    assert not (tmp_path / "run/best_program.py").exists()


def test_no_candidate_passing_the_checks_is_said_with_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    answers = [NO_CODE, UNKNOWN_VARIABLE, NO_CODE]
    with FakeLLMServer(responses=lambda body: answers[by_seed(body)[1]]) as server:
        cfg = config(server.base_url, tmp_path / "c", samples=3, iterations=1, repair_rounds=0)
        summary = run_search(cfg, tmp_path / "run")
    report = (tmp_path / "run/report.md").read_text()
    assert summary["stop_reason"] == "done" and summary["best"] is None
    assert_rows_match(report, summary)
    assert "No candidate passed the checks, so nothing was trained." in report
    (reasons,) = [line for line in report.splitlines() if line.startswith("- Rejected by")]
    assert "extraction: no_code x2" in reasons and "unknown_variable x1" in reasons
    assert "None: no candidate has a fitness." in report
    # Nothing was trained, so nothing is said about baselines or seeds.
    assert "baseline" not in report.split("## Settings")[0]
    assert "training seed" not in report


def test_a_search_stopped_before_its_first_round_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    url = f"http://127.0.0.1:{unused_port()}/v1"
    cfg = config(url, tmp_path / "c", budgets={"wall_s": 1e-6})
    summary = run_search(cfg, tmp_path / "run")
    report = (tmp_path / "run/report.md").read_text()
    assert summary["candidates"] == []
    assert "The search stopped early, after 0 of 4 candidates: wall-time budget" in report
    assert "No candidate was made" in report and "## Candidates\n\nNone." in report
    assert "| budgets | wall_s 1e-06 |" in report


def summary_with(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A search summary around candidate rows (for the report alone, without training)."""
    cfg = load_search_config(
        {"env": "rewardlab/GridEmpty-v0", "llm": {"model": "m"}, "train": {"seeds": [0, 1, 2]}}
    )
    fit = [r for r in rows if r["fitness"] is not None]
    best = max(fit, key=lambda r: r["fitness"]) if fit else None
    return {
        "env": cfg.env,
        "config": cfg.model_dump(mode="json"),
        "llm": {"model": "m", "base_url": "http://127.0.0.1:9/v1"},
        "candidates": rows,
        "rounds": [{"restart": 0, "iteration": 0, "best": best["id"] if best else None}],
        "best": None if best is None else {"id": best["id"], "fitness": best["fitness"]},
        "stop_reason": "done",
        "error": None,
        "usage": {
            "requests": 3,
            "cached": 0,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cost_usd": 0.0,
        },
        "env_steps": 0,
        "wall_s": 1.0,
        **extra,
    }


def row(k: int, per_seed: list[float], duplicate_of: str | None = None) -> dict[str, Any]:
    return {
        "id": f"r0-i0-k{k}",
        "restart": 0,
        "iteration": 0,
        "sha256": f"{k:064x}",
        "check": "passed",
        "training": "duplicate" if duplicate_of else "trained",
        "duplicate_of": duplicate_of,
        "fitness": sum(per_seed) / len(per_seed),
        "success_per_seed": per_seed,
        "outcome": "fitness ...",
    }


def test_the_report_normalizes_by_the_baselines_and_lists_each_seed() -> None:
    rows = [row(0, [0.0, 0.3, 0.3]), row(1, [0.6, 0.6, 0.9]), row(2, [0.6, 0.6, 0.9], "r0-i0-k1")]
    baselines = {
        "seeds": [1002, 1003, 1004],
        "eval_seed": 2_000_000,
        "best": "r0-i0-k1",
        "best_fitness_in_search": 0.7,
        "dense_reward": "dense",
        "per_seed": {"method": [0.5, 0.5, 0.2], "sparse": [0.2, 0.2, 0.2], "human": [0.8] * 3},
        "method": 0.4,
        "sparse": 0.2,
        "human": 0.8,
        "human_normalized_score": (0.4 - 0.2) / 0.6,
        "human_normalized_score_clipped": (0.4 - 0.2) / 0.6,
    }
    report = search_report(summary_with(rows, baselines=baselines))
    cells = candidate_rows(report)
    # (fitness - sparse) / |dense - sparse|, per candidate; each seed's success in brackets.
    assert cells["r0-i0-k0"][4:6] == ["0.20 (0.00, 0.30, 0.30)", "0.00"]
    assert cells["r0-i0-k1"][4:6] == ["0.70 (0.60, 0.60, 0.90)", "0.83"]
    assert cells["r0-i0-k2"][3] == "duplicate of `r0-i0-k1`"
    assert "2 of 3 candidates beat the sparse baseline (0.20)" in report
    assert (
        "reached 0.40, against 0.20 for the sparse reward and 0.80 for the dense reward: it "
        "beat the sparse reward." in report
    )
    assert "Human normalized score of the best program: 0.33 (clipped to [0, 3]: 0.33)." in report
    assert "3 training seeds per candidate" in report
    # Two distinct programs were selected among, not three rows.
    assert "the highest of 2 programs' fitnesses" in report
    assert "its retraining on held-out seeds (Baselines) is the fairer number" in report


def test_the_report_says_when_nothing_learned_and_when_a_baseline_failed() -> None:
    rows = [row(0, [0.0, 0.0, 0.0]), row(1, [0.0, 0.0, 0.0])]
    baselines = {
        "seeds": [1002, 1003, 1004],
        "eval_seed": 2_000_000,
        "best": "r0-i0-k0",
        "best_fitness_in_search": 0.0,
        "dense_reward": "dense",
        "per_seed": {"method": [], "sparse": [0.0] * 3, "human": [0.0] * 3},
        "method": None,
        "method_error": "ValueError: new seeds | new <states>\nsecond line",
        "sparse": 0.0,
        "human": 0.0,
        "human_normalized_score": None,
        "human_normalized_score_clipped": None,
    }
    report = search_report(summary_with(rows, baselines=baselines))
    assert "None of the 2 candidates with a fitness led to a single success" in report
    assert "No candidate beat the sparse baseline (0.00)" in report
    assert (
        "Baseline 'best program, retrained' failed: ValueError: new seeds \\| new &lt;states>"
        in (report)
    )
    assert "normalized score is undefined" in report and "| normalized |" not in report
    (method,) = [line for line in report.splitlines() if line.startswith("| best program, ")]
    assert len(re.split(r"(?<!\\)\|", method)) == 7 and "second line" in method  # 5 cells
