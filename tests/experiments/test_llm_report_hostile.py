"""report.md against what breaks it: a server answering garbage (HTML, broken JSON, Markdown
that would break the table), and searches interrupted mid-round, between rounds and during
the baselines. Each leaves search.json with everything found so far and a report that says
what happened; nothing already written is lost."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rewardlab.experiments.llm_reward import search as search_module
from rewardlab.experiments.llm_reward.search import run_search
from tests.experiments.test_llm_report import assert_rows_match, by_seed, candidate_rows
from tests.experiments.test_llm_search import GOOD, config
from tests.llm.fake_server import FakeLLMServer, Reply

train_module = importlib.import_module("rewardlab.agents.train")

GARBAGE = [
    Reply(body=b"<html>| <script>alert(1)</script>\n| a | b |</html>"),
    Reply(body={"choices": "not a list | <b>"}),
    Reply(body=b"\xff\xfe\x00 not utf-8 | \n\n## heading"),
    Reply(
        content="```python\ndef compute_reward(agent_pos):\n    return agent_pos | <script>\n```"
    ),
    Reply(
        content="```python\ndef compute_reward(agent_pos):\n"
        "    raise ValueError('a | b\\n| c |<img src=x>' * 40)\n```"
    ),
]


def test_a_server_answering_garbage_leaves_a_well_formed_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    logged: list[str] = []
    with FakeLLMServer(responses=lambda body: GARBAGE[by_seed(body)[1]]) as server:
        cfg = config(
            server.base_url, tmp_path / "c", samples=len(GARBAGE), iterations=1, repair_rounds=0
        )
        summary = run_search(cfg, tmp_path / "run", log=logged.append)
    report = (tmp_path / "run/report.md").read_text()
    assert summary["best"] is None and summary["stop_reason"] == "done"  # some answered
    rows = assert_rows_match(report, summary)
    assert [r[2] for r in rows.values()][:3] == ["no answer"] * 3
    # Every table row has its columns, whatever the answers held; no HTML gets through.
    header = next(line for line in report.splitlines() if line.startswith("| candidate |"))
    columns = len(re.split(r"(?<!\\)\|", header))
    table = [line for line in report.splitlines() if line.startswith("| `r")]
    assert len(table) == len(GARBAGE)
    assert all(len(re.split(r"(?<!\\)\|", line)) == columns for line in table)
    assert "<script" not in report and "<img" not in report and "<b>" not in report
    assert "\n## heading" not in report
    shown = [r[-1].replace("&lt;", "<").replace("\\|", "|") for r in rows.values()]
    assert max(len(text) for text in shown) == 240  # cut, the whole in search.json
    # The log: one line per candidate, even for a multi-line exception.
    candidates = [line for line in logged if line.startswith("[")]
    assert len(candidates) == len(GARBAGE) and all("\n" not in line for line in candidates)


class Interrupt(KeyboardInterrupt):
    """Ctrl-C, at a chosen point."""


@pytest.mark.parametrize(
    "where",
    ["in the second candidate's check", "between the rounds"],
)
def test_an_interrupted_search_keeps_what_it_found_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    if where == "between the rounds":
        error: BaseException = RuntimeError("the feedback broke")

        def next_messages(*args: Any, **kwargs: Any) -> Any:
            raise error

        monkeypatch.setattr(search_module._Search, "_next_messages", next_messages)
    else:
        error = Interrupt("stop now")
        smoke_test = search_module.smoke_test
        calls = []

        def check(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            if len(calls) == 2:
                raise error
            return smoke_test(*args, **kwargs)

        monkeypatch.setattr(search_module, "smoke_test", check)
    scales = iter(range(1, 100))
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=next(scales) / 100)) as server:
        cfg = config(server.base_url, tmp_path / "c", failure_episodes=0)
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C ends the search: returned
            returned = run_search(cfg, tmp_path / "run")
        else:  # anything else nothing expected is raised on, the files written first
            with pytest.raises(type(error)):
                run_search(cfg, tmp_path / "run")
    out = tmp_path / "run"
    summary = json.loads((out / "search.json").read_text())
    report = (out / "report.md").read_text()
    assert summary["stop_reason"] == "interrupted"
    if isinstance(error, KeyboardInterrupt):
        assert returned == summary
        cache = tmp_path / "c"
        assert summary["error"] == (
            "interrupted (Ctrl-C); the answers received are kept: to go on, run the same "
            f"search with a new --out and --cache-dir {cache}: the answers it recorded are not "
            "asked again (add --replay to re-run only what was recorded, offline)"
        )
        said = "interrupted (Ctrl-C); the answers received are kept"
    else:
        said = f"interrupted by {type(error).__name__}: {error}"
        assert summary["error"] == said
    assert f"The search stopped after 2 of 4 candidates, {said}" in report
    rows = assert_rows_match(report, summary)
    assert summary["candidates"][0]["fitness"] is not None
    best = summary["best"]["id"]
    program = (out / f"candidates/{best}/program.py").read_text()
    assert (out / "best_program.py").read_text() == program
    if where == "between the rounds":
        # The whole first round was checked and trained; the second was never asked for.
        assert list(rows) == ["r0-i0-k0", "r0-i0-k1"]
        assert all(c["fitness"] is not None for c in summary["candidates"])
        assert summary["rounds"] == [{"restart": 0, "iteration": 0, "best": best}]
    else:
        # The candidate it was on is marked, and so is its round; no more were made.
        assert list(rows) == ["r0-i0-k0", "r0-i0-k1"]
        assert rows["r0-i0-k1"][2:4] == ["stopped", "not trained"]
        record = json.loads((out / "candidates/r0-i0-k1/candidate.json").read_text())
        assert record["error"] == "interrupted (Ctrl-C)"
        assert summary["rounds"][0]["best"] == "r0-i0-k0"


def test_a_search_interrupted_in_its_baselines_keeps_the_search_and_the_finished_baselines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    train = train_module.train

    def training(cfg: Any, run_dir: Any, **kwargs: Any) -> Any:
        if Path(run_dir).parent.name == "sparse":  # baselines/sparse/seed_1000
            raise Interrupt("stop during the sparse baseline")
        return train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(train_module, "train", training)
    logged: list[str] = []
    with FakeLLMServer(responses=lambda body: GOOD.format(scale=0.05)) as server:
        cfg = config(server.base_url, tmp_path / "c", samples=1, iterations=1, baselines=True)
        returned = run_search(cfg, tmp_path / "run", log=logged.append)
    out = tmp_path / "run"
    summary = json.loads((out / "search.json").read_text())
    report = (out / "report.md").read_text()
    # The search itself finished and stays as it was written before the baselines began;
    # the error (the CLI's exit 1) says the baselines were interrupted.
    assert returned == summary
    assert summary["stop_reason"] == "done" and summary["best"]["id"] == "r0-i0-k0"
    assert summary["error"] == (
        "the baselines were interrupted (Ctrl-C); the search had finished and is kept "
        "(best r0-i0-k0)"
    )
    assert_rows_match(report, summary)
    base = summary["baselines"]
    assert base["interrupted"] == "Ctrl-C"
    assert base["method"] is not None and base["per_seed"]["method"] == [base["method"]]
    assert "sparse" not in base and "human" not in base
    assert f"baseline r0-i0-k0 retrained: true success {base['method']:.2f} (1 seed)" in logged
    assert "The baselines were interrupted (Ctrl-C)." in report
    (sparse,) = [line for line in report.splitlines() if line.startswith("| sparse task reward")]
    assert "| not run |" in sparse
    assert candidate_rows(report)["r0-i0-k0"][0] == "`r0-i0-k0` (best)"
